# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Certificate analysis from DER: what the certificate says, and every problem a client would see.

Used by the probe (leaf + the chain the server sent) and by the host-facts normaliser (the DER of the
certificates in the host's stores). Everything is computed from the bytes; the only I/O is reading
a CA bundle or the system store (``load_trust_store``, cached).

Unlike OpenSSL, which stops at the first verification error (an expired self-signed certificate shows
only as "self-signed"), ``analyze_certificate`` lists **every** problem: expired, not yet valid,
expiring soon, name mismatch, self-signed, untrusted, wrong EKU, weak key, weak signature.
Trust is judged independently of time and name (those are separate problems), by building the chain
with signature checks against the store.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
import re
import ssl
import stat
import threading
import typing as t
import warnings

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.x509.oid import NameOID
    from cryptography.x509 import verification
except ImportError as exc:  # reported by callers through missing_required_lib("cryptography")
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR: str | None = str(exc)
else:
    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None

# What loading or describing hostile certificate bytes may raise: a malformed encoding (ValueError, binascii.Error
# is one), a wrong type, or an X.509 version outside v1..v3 (cryptography's InvalidVersion is not a ValueError).
CERTIFICATE_ERRORS: tuple[type[Exception], ...] = (ValueError, TypeError) + ((x509.InvalidVersion,) if HAS_CRYPTOGRAPHY else ())

# EKU OIDs that matter for an RDP listener ([S27] [S36] in windows-rdp-facts.md).
OID_SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
OID_RDP_SERVER_AUTH = "1.3.6.1.4.1.311.54.1.2"  # szOID_TS_KP_TS_SERVER_AUTH, "Remote Desktop Authentication"
OID_ANY_EKU = "2.5.29.37.0"
EKU_NAMES: dict[str, str] = {
    OID_SERVER_AUTH: "Server Authentication",
    "1.3.6.1.5.5.7.3.2": "Client Authentication",
    "1.3.6.1.5.5.7.3.3": "Code Signing",
    "1.3.6.1.5.5.7.3.4": "Secure Email",
    "1.3.6.1.5.5.7.3.8": "Time Stamping",
    "1.3.6.1.5.5.7.3.9": "OCSP Signing",
    OID_RDP_SERVER_AUTH: "Remote Desktop Authentication",
    OID_ANY_EKU: "Any Purpose",
}

# Microsoft's certificate template extensions, [MS-WCCE] 2.2.2.7.7 (client-passed extensions, copied into the
# issued certificate by an enterprise CA):
# * 1.3.6.1.4.1.311.20.2, szOID_ENROLL_CERTTYPE_EXTENSION, "Certificate Template Name" (v1 templates): the
#   template's name as a BMPString ([MS-WCCE] 2.2.2.7.7.1; IX509ExtensionTemplateName, certenroll.h,
#   https://learn.microsoft.com/en-us/windows/win32/api/certenroll/nn-certenroll-ix509extensiontemplatename).
# * 1.3.6.1.4.1.311.21.7, szOID_CERTIFICATE_TEMPLATE, "Certificate Template Information" (v2+ templates):
#   SEQUENCE { templateID OBJECT IDENTIFIER, templateMajorVersion INTEGER (0..4294967295) OPTIONAL,
#   templateMinorVersion INTEGER (0..4294967295) OPTIONAL } ([MS-WCCE] 2.2.2.7.7.2,
#   https://learn.microsoft.com/en-us/openspecs/windows_protocols/ms-wcce/9da866e5-9ce9-4a83-9064-0d20af8b2ccf;
#   CERT_TEMPLATE_EXT, wincrypt.h).
OID_TEMPLATE_NAME = "1.3.6.1.4.1.311.20.2"
OID_TEMPLATE_INFO = "1.3.6.1.4.1.311.21.7"
_TEMPLATE_VERSION_MAX = 0xFFFFFFFF
# String types a template name may come in: BMPString (what Windows writes), UTF8String, PrintableString, IA5String.
_NAME_STRING_CODECS = {0x1E: "utf-16-be", 0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii"}

# Problem code -> (finding id, severity). Severity is the probe's view; docs/probe.md explains each.
PROBLEMS: dict[str, tuple[str, str]] = {
    "expired": ("RDP-CERT-EXPIRED", "high"),
    "not_yet_valid": ("RDP-CERT-NOT-YET-VALID", "high"),
    "name_mismatch": ("RDP-CERT-NAME-MISMATCH", "high"),
    "untrusted": ("RDP-CERT-UNTRUSTED", "medium"),
    "wrong_eku": ("RDP-CERT-WRONG-EKU", "medium"),
    "expiring_soon": ("RDP-CERT-EXPIRING-SOON", "low"),
    "weak_key": ("RDP-CERT-WEAK-KEY", "low"),
    "weak_signature": ("RDP-CERT-WEAK-SIGNATURE", "low"),
    "self_signed": ("RDP-CERT-SELF-SIGNED", "info"),
}
# Problems that make a verifying client refuse the connection (the certificate step fails).
BLOCKING_PROBLEMS = frozenset({"expired", "not_yet_valid", "name_mismatch"})

DEFAULT_EXPIRING_DAYS = 30
MAX_CHAIN_DEPTH = 8
# A CA bundle larger than this is not a CA bundle (the system bundle is ~0.2 MiB); reading stops there.
MAX_BUNDLE_BYTES = 16 * 1024 * 1024
# A CA directory with more files than this is not read further.
MAX_BUNDLE_DIRECTORY_FILES = 10000
MIN_RSA_BITS = 2048
WEAK_HASHES = frozenset({"md5", "sha1"})


def _utc_iso(when: dt.datetime) -> str:
    """ISO 8601 in UTC with a Z suffix."""
    return when.astimezone(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _upper_hex(data: bytes) -> str:
    """Upper-case hex without separators (the format of a Windows thumbprint)."""
    return data.hex().upper()


def to_der(value: bytes | str) -> bytes:
    """Accept DER bytes, PEM (text or bytes) or base64 text (as the host scripts return DER).

    Raises ValueError (binascii.Error) on text that is neither PEM nor base64.
    """
    data = value.encode("ascii", "ignore") if isinstance(value, str) else value
    if data.lstrip().startswith(b"-----BEGIN"):
        body = b"".join(line for line in data.strip().splitlines() if not line.startswith(b"-----"))
        return base64.b64decode(body)
    if isinstance(value, str):
        return base64.b64decode(data, validate=False)
    return data


# --- description ----------------------------------------------------------------------------------

def _cn(name: "x509.Name") -> str | None:
    """First commonName of an X.509 name."""
    values = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _extension(cert: "x509.Certificate", ext_type: t.Any) -> t.Any:
    """Value of an extension, None when absent or undecodable."""
    try:
        return cert.extensions.get_extension_for_class(ext_type).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # a malformed extension must not hide everything else
        return None


def template_name_from_der(value: bytes) -> str | None:
    """The template name of a v1 Certificate Template Name extension value; None when it is not one (never raises)."""
    header = rdp_wire.der_header(value)
    if header is None or header[2] != len(value) or header[0] not in _NAME_STRING_CODECS:
        return None
    tag, start, end = header
    try:
        name = value[start:end].decode(_NAME_STRING_CODECS[tag])
    except UnicodeDecodeError:
        return None
    return name if name and name.isprintable() else None


def template_info_from_der(value: bytes) -> dict[str, t.Any] | None:
    """``{"oid", "major", "minor"}`` of a v2 Certificate Template Information extension value; None when it is
    not one (never raises)."""
    header = rdp_wire.der_header(value)
    if header is None or header[0] != 0x30 or header[2] != len(value):
        return None
    children = rdp_wire.der_children(value, header[1], header[2])
    if not children or children[-1][2] != header[2] or len(children) > 3 or children[0][0] != 0x06:
        return None  # trailing garbage, too many fields, or no templateID first
    oid = rdp_wire.oid_from_der(value[children[0][1]:children[0][2]])
    versions = []
    for tag, start, end in children[1:]:
        number = int.from_bytes(value[start:end], "big", signed=True) if end > start else -1
        if tag != 0x02 or not 0 <= number <= _TEMPLATE_VERSION_MAX:
            return None
        versions.append(number)
    if oid is None:
        return None
    versions += [None] * (2 - len(versions))
    return {"oid": oid, "major": versions[0], "minor": versions[1]}


def raw_extension_values(tbs_certificate: bytes) -> dict[str, bytes]:
    """extnID -> extnValue (the DER inside the OCTET STRING) of every extension of a TBSCertificate (RFC 5280
    4.1), read with the DER reader rather than cryptography: cryptography decodes some Microsoft extensions
    itself (21.7 as ``MSCertificateTemplate`` since 41) and a malformed one makes it refuse all extensions.
    Unreadable parts are skipped; never raises."""
    header = rdp_wire.der_header(tbs_certificate)
    if header is None or header[0] != 0x30 or header[2] > len(tbs_certificate):
        return {}
    values: dict[str, bytes] = {}
    for tag, start, end in rdp_wire.der_children(tbs_certificate, header[1], header[2]):
        if tag != 0xA3:  # extensions [3] EXPLICIT Extensions
            continue
        inner = rdp_wire.der_header(tbs_certificate, start)
        if inner is None or inner[0] != 0x30 or inner[2] > end:
            return values
        for ext_tag, ext_start, ext_end in rdp_wire.der_children(tbs_certificate, inner[1], inner[2]):
            fields = rdp_wire.der_children(tbs_certificate, ext_start, ext_end) if ext_tag == 0x30 else []
            if len(fields) < 2 or fields[0][0] != 0x06 or fields[-1][0] != 0x04:
                continue
            oid = rdp_wire.oid_from_der(tbs_certificate[fields[0][1]:fields[0][2]])
            if oid is not None and oid not in values:
                values[oid] = tbs_certificate[fields[-1][1]:fields[-1][2]]
    return values


def certificate_template(cert: "x509.Certificate") -> dict[str, t.Any] | None:
    """The Microsoft certificate template the certificate was issued from: ``{"name", "oid", "major", "minor"}``
    from the v1 name and v2 information extensions, None when it carries neither (or only malformed ones)."""
    try:
        extensions = raw_extension_values(cert.tbs_certificate_bytes)
    except ValueError:
        return None
    name_value = extensions.get(OID_TEMPLATE_NAME)
    info_value = extensions.get(OID_TEMPLATE_INFO)
    name = template_name_from_der(name_value) if name_value is not None else None
    info = template_info_from_der(info_value) if info_value is not None else None
    if name is None and info is None:
        return None
    return {"name": name, **(info or {"oid": None, "major": None, "minor": None})}


def _public_key_info(cert: "x509.Certificate") -> dict[str, t.Any]:
    """Key type and size."""
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        return {"type": "unknown", "bits": None, "error": str(exc)}
    if isinstance(key, rsa.RSAPublicKey):
        return {"type": "RSA", "bits": key.key_size}
    if isinstance(key, ec.EllipticCurvePublicKey):
        return {"type": "EC", "bits": key.key_size, "curve": key.curve.name}
    if isinstance(key, dsa.DSAPublicKey):
        return {"type": "DSA", "bits": key.key_size}
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return {"type": type(key).__name__.replace("PublicKey", ""), "bits": None}
    return {"type": type(key).__name__, "bits": None}


def _signature_hash(cert: "x509.Certificate") -> str | None:
    """Hash algorithm of the signature (None for EdDSA or unknown)."""
    try:
        algorithm = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return None
    return algorithm.name if algorithm is not None else None


def _issued_by(cert: "x509.Certificate", issuer: "x509.Certificate") -> bool:
    """True when ``issuer``'s name and key sign ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def describe_certificate(cert: "x509.Certificate") -> dict[str, t.Any]:
    """Everything a person checks on a certificate, JSON-ready (no judgement about time or name)."""
    san = _extension(cert, x509.SubjectAlternativeName)
    eku = _extension(cert, x509.ExtendedKeyUsage)
    eku_oids = [oid.dotted_string for oid in eku] if eku is not None else None
    self_issued = cert.subject == cert.issuer
    der = cert.public_bytes(Encoding.DER)
    return {
        "subject": cert.subject.rfc4514_string(),
        "subject_cn": _cn(cert.subject),
        "issuer": cert.issuer.rfc4514_string(),
        "issuer_cn": _cn(cert.issuer),
        "san_dns": [str(v) for v in san.get_values_for_type(x509.DNSName)] if san is not None else [],
        "san_ip": [str(v) for v in san.get_values_for_type(x509.IPAddress)] if san is not None else [],
        "eku": [{"oid": oid, "name": EKU_NAMES.get(oid, oid)} for oid in eku_oids] if eku_oids is not None else None,
        "serial": f"{cert.serial_number:X}",
        "sha1_thumbprint": _upper_hex(cert.fingerprint(hashes.SHA1())),  # the Windows thumbprint is SHA-1
        "sha256": _upper_hex(cert.fingerprint(hashes.SHA256())),
        "not_before": _utc_iso(cert.not_valid_before_utc),
        "not_after": _utc_iso(cert.not_valid_after_utc),
        "public_key": _public_key_info(cert),
        "signature_hash": _signature_hash(cert),
        "version": cert.version.name,
        "self_issued": self_issued,
        "self_signed": self_issued and _issued_by(cert, cert),
        "der_length": len(der),
        "template": certificate_template(cert),
    }


# --- judgements (pure) ------------------------------------------------------------------------------

def validity_status(cert: "x509.Certificate", now: dt.datetime, expiring_days: int = DEFAULT_EXPIRING_DAYS) -> dict[str, t.Any]:
    """Expired / not yet valid / days left at ``now`` (aware datetime)."""
    not_before = cert.not_valid_before_utc
    not_after = cert.not_valid_after_utc
    left = not_after - now
    days_left = int(left.total_seconds() // 86400)
    return {
        "checked_at": _utc_iso(now),
        "days_left": days_left,
        "expired": now > not_after,
        "not_yet_valid": now < not_before,
        "expiring_soon": not_before <= now <= not_after and left < dt.timedelta(days=expiring_days),
        "days_until_valid": int((not_before - now).total_seconds() // 86400) + 1 if now < not_before else 0,
    }


def _normalise_dns(name: str) -> str:
    """Lower-case, without a trailing dot."""
    return name.strip().rstrip(".").lower()


def dns_name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching: exact (case-insensitive) or a wildcard as the whole left-most label.

    ``*.example.com`` matches ``a.example.com`` but not ``example.com`` nor ``a.b.example.com``.
    """
    pattern = _normalise_dns(pattern)
    name = _normalise_dns(name)
    if not pattern or not name:
        return False
    if pattern == name:
        return True
    if not pattern.startswith("*.") or pattern.count(".") < 2:
        return False
    head, _sep, rest = name.partition(".")
    return bool(head) and rest == pattern[2:]


def ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``name`` spells, if it is a literal (brackets and zone ids tolerated), else None."""
    try:
        return ipaddress.ip_address(name.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def name_check(description: dict[str, t.Any], server_name: str) -> dict[str, t.Any]:
    """Does the certificate cover ``server_name`` (the name or address the client connects to)?

    IP literals match IP SANs only (RFC 6125; OpenSSL does the same). DNS names match DNS SANs; the
    subject CN is used only when the certificate has no DNS SAN at all (legacy rule, which Windows
    still follows for certificates without SAN — inference from CryptoAPI's SSL policy).
    """
    out: dict[str, t.Any] = {"server_name": server_name, "matches": False, "matched_by": None}
    address = ip_literal(server_name)
    if address is not None:
        for san_ip in description["san_ip"]:
            if ip_literal(san_ip) == address:
                out.update(matches=True, matched_by="san_ip")
                return out
        if not description["san_dns"] and not description["san_ip"] and description["subject_cn"] == str(address):
            out.update(matches=True, matched_by="subject_cn")
        return out
    if description["san_dns"]:
        if any(dns_name_matches(pattern, server_name) for pattern in description["san_dns"]):
            out.update(matches=True, matched_by="san_dns")
        return out
    if description["subject_cn"] and dns_name_matches(description["subject_cn"], server_name):
        out.update(matches=True, matched_by="subject_cn")
    return out


def eku_ok_for_rdp(description: dict[str, t.Any]) -> bool:
    """No EKU extension (any use), or one naming Server Authentication, RDP Authentication or Any."""
    if description["eku"] is None:
        return True
    oids = {item["oid"] for item in description["eku"]}
    return bool(oids & {OID_SERVER_AUTH, OID_RDP_SERVER_AUTH, OID_ANY_EKU})


# --- trust ----------------------------------------------------------------------------------------

class TrustStore:
    """Trust anchors indexed by subject; built by ``load_trust_store`` or ``TrustStore.from_pem``."""

    def __init__(self, source: str, certs: t.Sequence["x509.Certificate"], error: str | None = None) -> None:
        self.source = source
        self.error = error
        self.count = len(certs)
        self.by_subject: dict[bytes, list[x509.Certificate]] = {}
        self.fingerprints: set[bytes] = set()
        self.anchors = list(certs)
        self._verification_store: t.Any = None
        for cert in certs:
            self.by_subject.setdefault(cert.subject.public_bytes(), []).append(cert)
            self.fingerprints.add(cert.fingerprint(hashes.SHA256()))

    def verification_store(self) -> "verification.Store":
        """The anchors as cryptography's verification Store (built once per trust store)."""
        if self._verification_store is None:
            self._verification_store = verification.Store(self.anchors)
        return self._verification_store

    @classmethod
    def from_pem(cls, source: str, data: bytes) -> "TrustStore":
        """Anchors from PEM text (several certificates) or one DER certificate."""
        if b"-----BEGIN" not in data:
            try:
                return cls(source, [load_certificate(data)])
            except CERTIFICATE_ERRORS as exc:
                return cls(source, [], error=f"cannot read certificates: {exc}")
        certs, skipped = _load_pem_blocks(data)
        if not certs and skipped:
            return cls(source, [], error=f"cannot read certificates: {skipped} unreadable PEM block(s)")
        return cls(source, certs)


def load_certificate(data: bytes, pem: bool = False) -> "x509.Certificate":
    """Load one certificate and read every field the trust code uses now: cryptography parses the subject,
    issuer and dates lazily, so a malformed one would otherwise raise later, wherever it is first touched.
    Raises one of CERTIFICATE_ERRORS."""
    cert = x509.load_pem_x509_certificate(data) if pem else x509.load_der_x509_certificate(data)
    cert.subject.public_bytes()
    cert.issuer.public_bytes()
    if not (cert.not_valid_before_utc and cert.not_valid_after_utc and cert.fingerprint(hashes.SHA256())):
        raise ValueError("certificate without validity dates or fingerprint")
    return cert


_PEM_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


def _load_pem_blocks(data: bytes) -> tuple[list["x509.Certificate"], int]:
    """Every readable certificate of a PEM bundle, one by one: a single odd certificate in a system
    bundle (cryptography warns about, and will refuse, e.g. non-positive serials) must not make the
    whole store unusable. Returns the certificates and how many blocks were skipped."""
    certs = []
    skipped = 0
    for block in _PEM_BLOCK.findall(data):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                certs.append(load_certificate(block, pem=True))
        except CERTIFICATE_ERRORS:
            skipped += 1
    return certs, skipped


_STORE_CACHE: dict[tuple[str, int, int], TrustStore] = {}
_STORE_LOCK = threading.Lock()

_FILE_KINDS = ((stat.S_ISFIFO, "FIFO (named pipe)"), (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
               (stat.S_ISSOCK, "socket"))


def _not_a_bundle_file(path: str, mode: int, size: int) -> str | None:
    """Why a file with this mode and size cannot be read as a bundle (None when it can)."""
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "special file")
        return f"{path} is a {kind}, not a regular file"
    if size > MAX_BUNDLE_BYTES:
        return f"{path} is {size} bytes, more than the {MAX_BUNDLE_BYTES} bytes a CA bundle may have"
    return None


def bundle_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be used as ``ca_bundle`` (None when it can): it must be a directory, or a regular
    readable file of at most MAX_BUNDLE_BYTES. Only ``stat`` and ``access``: never opens the path (opening
    a FIFO blocks, reading /dev/zero never ends)."""
    try:
        info = os.stat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        return f"{path!r} cannot be used: {getattr(exc, 'strerror', None) or exc}"
    if stat.S_ISDIR(info.st_mode):
        return None if os.access(path, os.R_OK | os.X_OK) else f"{path} is a directory this user cannot read"
    problem = _not_a_bundle_file(path, info.st_mode, info.st_size)
    if problem is None and not os.access(path, os.R_OK):
        problem = f"{path} is not readable by this user"
    return problem


def _read_bounded(path: str) -> bytes:
    """The bytes of a regular file of at most MAX_BUNDLE_BYTES. Opened without blocking and checked on the
    open descriptor (the path may have been swapped for a FIFO since it was checked); ValueError otherwise."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        problem = _not_a_bundle_file(path, info.st_mode, info.st_size)
        if problem:
            raise ValueError(problem)
        data = handle.read(MAX_BUNDLE_BYTES + 1)
    if len(data) > MAX_BUNDLE_BYTES:
        raise ValueError(f"{path} grew beyond {MAX_BUNDLE_BYTES} bytes while it was read")
    return data


def _read_bundle(path: str) -> TrustStore:
    """Load and cache a bundle file, keyed by path, mtime and size (re-read when it changes)."""
    problem = bundle_path_problem(path)
    if problem:
        return TrustStore(path, [], error=f"cannot read trust store: {problem}")
    info = os.stat(path)
    key = (os.path.realpath(path), info.st_mtime_ns, info.st_size)
    with _STORE_LOCK:
        cached = _STORE_CACHE.get(key)
    if cached is not None:
        return cached
    try:
        store = TrustStore.from_pem(path, _read_bounded(path))
    except ValueError as exc:
        return TrustStore(path, [], error=f"cannot read trust store: {exc}")
    with _STORE_LOCK:
        _STORE_CACHE[key] = store
    return store


def _read_directory(path: str) -> TrustStore:
    """Anchors from every readable PEM file of a CA directory (OpenSSL capath layout); special and oversized
    files are skipped."""
    certs: list[x509.Certificate] = []
    seen: set[str] = set()
    for entry in sorted(os.listdir(path))[:MAX_BUNDLE_DIRECTORY_FILES]:
        full = os.path.realpath(os.path.join(path, entry))
        if full in seen or not os.path.isfile(full):
            continue
        seen.add(full)
        try:
            certs.extend(_load_pem_blocks(_read_bounded(full))[0])
        except (OSError, ValueError):
            continue
    return TrustStore(path, certs)


def load_trust_store(ca_bundle: str | None = None) -> TrustStore:
    """The trust anchors: ``ca_bundle`` (PEM or DER file, or a directory) or the system store.

    Never raises: a store that cannot be read has ``error`` set and no anchors.
    """
    if not HAS_CRYPTOGRAPHY:
        return TrustStore(ca_bundle or "system", [], error=f"the cryptography library is required: {CRYPTOGRAPHY_IMPORT_ERROR}")
    try:
        if ca_bundle:
            return _read_directory(ca_bundle) if os.path.isdir(ca_bundle) else _read_bundle(ca_bundle)
        paths = ssl.get_default_verify_paths()
        for candidate in (paths.cafile, paths.openssl_cafile):
            if candidate and os.path.isfile(candidate):
                return _read_bundle(candidate)
        for candidate in (paths.capath, paths.openssl_capath):
            if candidate and os.path.isdir(candidate):
                return _read_directory(candidate)
    except (OSError, ValueError) as exc:
        return TrustStore(ca_bundle or "system", [], error=f"cannot read trust store: {exc}")
    return TrustStore("system", [], error="no system trust store found")


def check_trust(cert: "x509.Certificate", store: TrustStore, intermediates: t.Sequence["x509.Certificate"] = (),
                now: dt.datetime | None = None) -> dict[str, t.Any]:
    """Is ``cert`` trusted by ``store``, with the other certificates the server sent (``intermediates``)?

    The verdict is cryptography's path validation (``verify_chain``: signatures, CA basic constraints and key
    usage of every intermediate, path length, at most MAX_CHAIN_DEPTH certificates); a certificate that is
    itself in the store is trusted (a pinned self-signed listener certificate, as Windows clients use them).
    Time validity of the leaf and name matching are *not* part of this verdict (reported separately); an
    expired intermediate or anchor is (OpenSSL rejects it too). The reason of an untrusted verdict comes from
    walking the chain by issuer name and signature (``_walk_chain``), which names the missing or bad link the
    way OpenSSL does; when the walk finds a chain the verifier rejects, the verifier's reason is given.
    """
    out: dict[str, t.Any] = {"checked": True, "store": store.source, "anchors": store.count,
                             "trusted": False, "reason": "", "chain": [cert.subject.rfc4514_string()]}
    if store.error:
        out.update(reason=store.error)
        return out
    if not store.count:
        out.update(reason=f"the trust store {store.source} holds no readable certificate")
        return out
    if cert.fingerprint(hashes.SHA256()) in store.fingerprints:
        out.update(trusted=True, reason="the certificate itself is in the trust store")
        return out
    walked, walk_reason = _walk_chain(cert, store, intermediates, now)
    verified, verify_detail = verify_chain(cert, store, intermediates, now)
    if isinstance(verified, list):
        expired = _expired_in_chain(verified[1:], now)
        out.update(trusted=not expired, reason=expired or "chain verified to a trusted anchor",
                   chain=[item.subject.rfc4514_string() for item in verified])
        return out
    out.update(chain=walked, reason=walk_reason or f"rejected by path validation: {verify_detail}")
    return out


def verify_chain(cert: "x509.Certificate", store: TrustStore, intermediates: t.Sequence["x509.Certificate"],
                 now: dt.datetime | None) -> tuple[list["x509.Certificate"] | None, str]:
    """(the verified chain, leaf first, or None; the verifier's error) from cryptography's path validation.

    The leaf is judged as a client-auth-neutral end entity (any extensions; its names, EKU and dates are
    separate problems): the verification time is ``now`` moved into the leaf's validity period, and the CA
    certificates' validity at ``now`` itself is checked by the caller.
    """
    when = now or dt.datetime.now(dt.timezone.utc)
    when = min(max(when, cert.not_valid_before_utc), cert.not_valid_after_utc)
    try:
        ca_policy = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
            x509.KeyUsage, verification.Criticality.AGNOSTIC, _key_usage_allows_signing)
        builder = (verification.PolicyBuilder().store(store.verification_store()).time(when)
                   .max_chain_depth(MAX_CHAIN_DEPTH)
                   .extension_policies(ca_policy=ca_policy, ee_policy=verification.ExtensionPolicy.permit_all()))
        return list(builder.build_client_verifier().verify(cert, list(intermediates)).chain), ""
    except (verification.VerificationError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        return None, str(exc)


def _key_usage_allows_signing(_policy: t.Any, _cert: "x509.Certificate", key_usage: "x509.KeyUsage | None") -> None:
    """A CA certificate may omit keyUsage (OpenSSL and Windows accept that); when present it must allow
    keyCertSign (RFC 5280 4.2.1.3)."""
    if key_usage is not None and not key_usage.key_cert_sign:
        raise ValueError("keyUsage of a CA certificate without keyCertSign")


def _walk_chain(cert: "x509.Certificate", store: TrustStore, intermediates: t.Sequence["x509.Certificate"],
                now: dt.datetime | None) -> tuple[list[str], str]:
    """(subjects from the leaf up, why no trusted chain was found or "" when one was) by issuer name and
    signature, as OpenSSL names the failure; basic constraints are left to ``verify_chain``."""
    chain = [cert.subject.rfc4514_string()]
    current = cert
    for _depth in range(MAX_CHAIN_DEPTH):
        anchor = next((ca for ca in store.by_subject.get(current.issuer.public_bytes(), []) if _issued_by(current, ca)), None)
        if anchor is not None:
            chain.append(anchor.subject.rfc4514_string())
            return chain, _expired_in_chain([anchor], now)
        parent = next((ca for ca in intermediates if ca is not current and ca.subject == current.issuer
                       and ca.subject != current.subject and _issued_by(current, ca)), None)
        if parent is None:
            break
        expired = _expired_in_chain([parent], now)
        if expired:
            return chain, expired
        chain.append(parent.subject.rfc4514_string())
        current = parent
    if current.subject == current.issuer:
        reason = ("self-signed certificate, not in the trust store" if current is cert
                  else "the chain ends at a root that is not in the trust store")
    else:
        reason = f"issuer not found in the trust store (unable to get local issuer certificate: {current.issuer.rfc4514_string()})"
    return chain, reason


def _expired_in_chain(certs: list["x509.Certificate"], now: dt.datetime | None) -> str:
    """Reason text when a CA certificate of the chain is outside its validity at ``now``."""
    if now is None:
        return ""
    for ca in certs:
        if not ca.not_valid_before_utc <= now <= ca.not_valid_after_utc:
            return f"CA certificate outside its validity period: {ca.subject.rfc4514_string()}"
    return ""


# --- the whole analysis ---------------------------------------------------------------------------

def _problem(code: str, message: str) -> dict[str, str]:
    """One problem entry with its finding id and severity."""
    finding_id, severity = PROBLEMS[code]
    return {"code": code, "id": finding_id, "severity": severity, "message": message}


def list_problems(description: dict[str, t.Any], validity: dict[str, t.Any], names: list[dict[str, t.Any]],
                  trust: dict[str, t.Any] | None) -> list[dict[str, str]]:
    """Every problem, in a stable order (pure; from the parts ``analyze_certificate`` computes)."""
    problems = []
    if validity["expired"]:
        problems.append(_problem("expired", f"expired on {description['not_after']} ({-validity['days_left']} days ago)"))
    if validity["not_yet_valid"]:
        problems.append(_problem("not_yet_valid", f"not valid before {description['not_before']} "
                                 f"(in {validity['days_until_valid']} days; a clock problem on either side?)"))
    if validity["expiring_soon"]:
        problems.append(_problem("expiring_soon", f"expires on {description['not_after']} (in {validity['days_left']} days)"))
    if names and not any(item["matches"] for item in names):
        covered = description["san_dns"] + description["san_ip"] or [description["subject_cn"] or ""]
        problems.append(_problem("name_mismatch", f"issued for {', '.join(covered)}, not for "
                                 f"{', '.join(item['server_name'] for item in names)}"))
    if description["self_signed"]:
        problems.append(_problem("self_signed", "self-signed (issuer = subject, signature verified with its own key)"))
    if trust is not None and trust.get("checked") and not trust["trusted"]:
        problems.append(_problem("untrusted", f"not trusted by {trust['store']}: {trust['reason']}"))
    if not eku_ok_for_rdp(description):
        problems.append(_problem("wrong_eku", "Extended Key Usage lacks Server Authentication and Remote Desktop "
                                 f"Authentication: {', '.join(item['name'] for item in description['eku'])}"))
    key = description["public_key"]
    if key["type"] == "RSA" and key["bits"] is not None and key["bits"] < MIN_RSA_BITS:
        problems.append(_problem("weak_key", f"RSA key of {key['bits']} bits"))
    if description["signature_hash"] in WEAK_HASHES and not description["self_signed"]:
        # a self-signature is never checked by a client, so its hash does not matter
        problems.append(_problem("weak_signature", f"signed with {description['signature_hash'].upper()}"))
    return problems


def analyze_certificate(der: bytes | str, server_name: str | t.Sequence[str] | None = None, now: dt.datetime | None = None,
                        trust_store: TrustStore | None = None, intermediates: t.Sequence[bytes] = (),
                        expiring_days: int = DEFAULT_EXPIRING_DAYS) -> dict[str, t.Any]:
    """Describe a DER certificate and list all its problems.

    ``server_name``: the name(s) clients use (a mismatch means none matches); None skips the check.
    ``now``: the time to judge validity at (default: this machine's clock, UTC).
    ``trust_store``: anchors for the trust check (``load_trust_store``); None skips it.
    ``intermediates``: DER of the other certificates the server sent, used to build the chain.
    Returns ``{"ok": False, "error": ...}`` when the bytes are not a certificate.
    """
    if not HAS_CRYPTOGRAPHY:
        return {"ok": False, "error": f"the cryptography library is required: {CRYPTOGRAPHY_IMPORT_ERROR}"}
    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        cert = load_certificate(to_der(der))
        description = describe_certificate(cert)
    except CERTIFICATE_ERRORS as exc:  # binascii.Error is a ValueError
        return {"ok": False, "error": f"not a DER X.509 certificate: {exc}"}
    names_to_check = [server_name] if isinstance(server_name, str) else list(server_name or [])
    names = [name_check(description, name) for name in names_to_check if name]
    validity = validity_status(cert, now, expiring_days)
    trust = None
    if trust_store is not None:
        chain = []
        for item in intermediates:
            try:
                chain.append(load_certificate(to_der(item)))
            except CERTIFICATE_ERRORS:
                continue
        trust = check_trust(cert, trust_store, chain, now)
    problems = list_problems(description, validity, names, trust)
    return dict(description, ok=True, validity=validity, name_checks=names,
                name_matches=any(item["matches"] for item in names) if names else None,
                eku_ok_for_rdp=eku_ok_for_rdp(description),
                trust=trust or {"checked": False}, problems=problems,
                problem_ids=[item["id"] for item in problems])
