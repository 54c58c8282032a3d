"""Real X.509 certificates for the lab: RDP-style self-signed certs, a lab CA and CA-issued server certs.

RSA key generation costs ~50 ms per 2048-bit key, which would make a 200-host fleet slow to build. The
lab does not need distinct keys per host, so keys come from a small POOL generated once and cached on
disk under ``<repo>/.cache/lab/keys/`` (PEM). Cache files are created with "write a temp file, then
hard-link it into place" so concurrent processes never see a half-written file and all converge on
the first key written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import sys
import tempfile
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]

try:
    from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire, x509_info
except ImportError:  # the lab runs from the repository; the collection is reachable through .cache/collections
    sys.path.append(str(REPO_ROOT / ".cache" / "collections"))
    from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire, x509_info
CACHE_DIR = REPO_ROOT / ".cache" / "lab"
KEY_DIR = CACHE_DIR / "keys"

POOL_SIZE = 8            # keys used for host certificates
CA_KEY_INDEX = POOL_SIZE  # a key of its own for the lab CA, outside the host range
KEY_BITS = 2048

SERVER_AUTH_OID = ExtendedKeyUsageOID.SERVER_AUTH.dotted_string  # 1.3.6.1.5.5.7.3.1
# szOID_TS_KP_TS_SERVER_AUTH, "Remote Desktop Authentication" (windows-rdp-facts.md S27 S36)
REMOTE_DESKTOP_AUTH_OID = "1.3.6.1.4.1.311.54.1.2"

# The RDP self-signed certificate lives about six months (windows-rdp-facts.md S2, unconfirmed by MS).
SELF_SIGNED_VALIDITY = dt.timedelta(days=182)

_LOCK = threading.Lock()
_KEYS: dict[int, rsa.RSAPrivateKey] = {}
_CA: "LabCA | None" = None


def _create_file_once(path: Path, data: bytes) -> bytes:
    """Write ``data`` to ``path`` unless it exists; return what is on disk afterwards.

    A temp file is hard-linked into place: ``os.link`` fails if the target exists, so the first writer
    wins and every process then reads the same bytes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_bytes()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            # file systems without hard links: last writer wins, still never half-written
            os.replace(tmp, path)
            return path.read_bytes()
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path.read_bytes()


def _key_to_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted (lab only)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _load_key(pem: bytes) -> rsa.RSAPrivateKey:
    """Load an RSA private key from PEM."""
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError("lab key cache holds a non-RSA key")
    return key


def pool_key(index: int) -> rsa.RSAPrivateKey:
    """Return pool key ``index`` (0 .. POOL_SIZE, the last one being the CA's), creating it on demand."""
    with _LOCK:
        if index not in _KEYS:
            path = KEY_DIR / f"rsa{KEY_BITS}-{index}.pem"
            if path.exists():
                pem = path.read_bytes()
            else:
                pem = _create_file_once(path, _key_to_pem(rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)))
            _KEYS[index] = _load_key(pem)
        return _KEYS[index]


def key_for(name: str) -> rsa.RSAPrivateKey:
    """A stable pool key for a host or certificate name (same name, same key, in every process)."""
    digest = hashlib.sha256(name.lower().encode("utf-8")).digest()
    return pool_key(digest[0] % POOL_SIZE)


def thumbprint(cert: x509.Certificate) -> str:
    """Windows thumbprint: SHA-1 of the DER encoding, upper-case hex without separators."""
    return cert.fingerprint(hashes.SHA1()).hex().upper()  # nosec - SHA-1 is what Windows uses


def thumbprint_bytes(cert: x509.Certificate) -> bytes:
    """The 20 raw bytes Windows stores in RDP-Tcp\\SSLCertificateSHA1Hash (REG_BINARY)."""
    return cert.fingerprint(hashes.SHA1())  # nosec


def cert_pem(cert: x509.Certificate) -> bytes:
    """PEM encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_der(cert: x509.Certificate) -> bytes:
    """DER encoding of a certificate."""
    return cert.public_bytes(serialization.Encoding.DER)


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    """PKCS#8 PEM of a private key."""
    return _key_to_pem(key)


def _serial(seed: str | None) -> int:
    """A positive serial: random, or derived from ``seed`` for reproducible certificates."""
    if seed is None:
        return x509.random_serial_number()
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:16], "big") >> 1 or 1


def self_signed_rdp_cert(
    common_name: str,
    key: rsa.RSAPrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime | None = None,
    serial_seed: str | None = None,
) -> x509.Certificate:
    """A certificate shaped like the one TermService generates: CN=<fqdn>, self-signed, EKU serverAuth.

    ``not_after`` defaults to ``not_before`` + ~6 months. ``serial_seed`` makes the serial (and so the
    thumbprint, for a given key and dates) reproducible.
    """
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    end = not_after if not_after is not None else not_before + SELF_SIGNED_VALIDITY
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(_serial(serial_seed))
        .not_valid_before(not_before)
        .not_valid_after(end)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=True, data_encipherment=True,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=False,
        )
    )
    return builder.sign(key, hashes.SHA256())


@dataclass(frozen=True)
class LabCA:
    """The lab's certification authority (stands in for an enterprise CA)."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def pem(self) -> bytes:
        """The CA certificate as PEM (a trust anchor for probes)."""
        return cert_pem(self.cert)


def _build_ca_cert(key: rsa.RSAPrivateKey) -> x509.Certificate:
    """A 20-year root so the on-disk cache never expires during a project's life."""
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "rdp.doctor lab"),
        x509.NameAttribute(NameOID.COMMON_NAME, "rdp.doctor Lab Root CA"),
    ])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 20))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def lab_ca() -> LabCA:
    """The lab CA, identical in every process (cached in ``.cache/lab/ca.pem``)."""
    global _CA  # pylint: disable=global-statement  # process-wide cache by design
    if _CA is None:
        key = pool_key(CA_KEY_INDEX)
        path = CACHE_DIR / "ca.pem"
        pem = path.read_bytes() if path.exists() else _create_file_once(path, cert_pem(_build_ca_cert(key)))
        cert = x509.load_pem_x509_certificate(pem)
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            # the key cache was wiped but not the CA: rebuild both consistently
            path.unlink(missing_ok=True)
            cert = x509.load_pem_x509_certificate(_create_file_once(path, cert_pem(_build_ca_cert(key))))
        _CA = LabCA(cert=cert, key=key)
    return _CA


class Template(NamedTuple):
    """The Microsoft certificate template a lab certificate names: the v1 name, the v2 OID and versions, or both."""

    name: str | None = None
    oid: str | None = None
    major: int | None = 100
    minor: int | None = 4


def template_extensions(template: Template) -> list[x509.UnrecognizedExtension]:
    """The extensions an enterprise CA writes for ``template`` ([MS-WCCE] 2.2.2.7.7.1 and 2.2.2.7.7.2): a BMPString
    Certificate Template Name and/or the Certificate Template Information SEQUENCE, in DER."""
    extensions = []
    if template.name is not None:
        value = rdp_wire.der_tlv(0x1E, template.name.encode("utf-16-be"))
        extensions.append(x509.UnrecognizedExtension(x509.ObjectIdentifier(x509_info.OID_TEMPLATE_NAME), value))
    if template.oid is not None:
        body = rdp_wire.der_oid(template.oid)
        if template.major is not None:
            body += rdp_wire.der_integer(template.major)
            if template.minor is not None:
                body += rdp_wire.der_integer(template.minor)
        value = rdp_wire.der_tlv(0x30, body)
        extensions.append(x509.UnrecognizedExtension(x509.ObjectIdentifier(x509_info.OID_TEMPLATE_INFO), value))
    return extensions


def issue_server_cert(
    ca: LabCA,
    common_name: str,
    dns_names: list[str],
    key: rsa.RSAPrivateKey,
    not_before: dt.datetime,
    not_after: dt.datetime,
    remote_desktop_eku: bool = False,
    template: Template | None = None,
) -> x509.Certificate:
    """A CA-issued TLS server certificate with SANs (EKU serverAuth, optionally Remote Desktop Authentication),
    optionally naming the certificate template it was issued from."""
    ekus = [ExtendedKeyUsageOID.SERVER_AUTH]
    if remote_desktop_eku:
        ekus.append(x509.ObjectIdentifier(REMOTE_DESKTOP_AUTH_OID))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True, data_encipherment=False,
                key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False)
    )
    if dns_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
    for extension in template_extensions(template) if template is not None else []:
        builder = builder.add_extension(extension, critical=False)  # [MS-WCCE]: SHOULD be non-critical
    return builder.sign(ca.key, hashes.SHA256())


def cert_names(cert: x509.Certificate) -> list[str]:
    """CN values followed by DNS SAN values, as a client would match them."""
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.extend(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        pass
    return names


def new_key_container_name() -> str:
    """A CryptoAPI-style random key container name (a GUID in braces), for CA-issued certs."""
    return "{" + str(uuid.uuid4()).upper() + "}"
