"""Test certificates for the real RDP servers, made with ``cryptography`` (no openssl CLI, no faketime).

One CA and one server key (RSA 2048) per set: distinct keys per certificate would only cost time,
the probe judges names, dates, issuers and signatures, not key identity. The set:

| name       | issuer      | names                                   | validity                 |
|------------|-------------|-----------------------------------------|--------------------------|
| valid      | test CA     | rdp-valid.test, localhost, IP 127.0.0.1 | now-1d .. now+365d       |
| selfsigned | itself      | rdp-self.test, localhost, IP 127.0.0.1  | now-1d .. now+365d       |
| expired    | itself      | rdp-expired.test, localhost             | 2020-01-01 .. 2021-01-01 |
| notyet     | test CA     | rdp-notyet.test, localhost, IP 127.0.0.1| now+1000d .. now+1365d   |
| wrongname  | test CA     | other-host.test                         | now-1d .. now+365d       |
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORG = "RDP Probe Test"


@dataclass(frozen=True)
class CertFiles:
    """Paths of one certificate (PEM), its key (PEM, unencrypted) and the certificate's DER bytes."""

    name: str
    cert: Path
    key: Path
    der: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def make_key() -> rsa.RSAPrivateKey:
    """A fresh RSA 2048 key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_ca(key: rsa.RSAPrivateKey, now: dt.datetime) -> x509.Certificate:
    """The test CA: self-signed, basicConstraints CA, keyCertSign."""
    builder = (x509.CertificateBuilder().subject_name(_name("RDP Probe Test CA")).issuer_name(_name("RDP Probe Test CA"))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    return builder.sign(key, hashes.SHA256())


def make_server_cert(key: rsa.RSAPrivateKey, names: list[str], not_before: dt.datetime, not_after: dt.datetime,
                     issuer: tuple[x509.Certificate, rsa.RSAPrivateKey] | None = None) -> x509.Certificate:
    """A TLS server certificate for ``names`` (first = CN), CA-issued or self-signed (issuer None)."""
    subject = _name(names[0])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(_san(names), critical=False)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    return builder.sign(signing_key, hashes.SHA256())


def _write(directory: Path, name: str, cert: x509.Certificate, key: rsa.RSAPrivateKey) -> CertFiles:
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return CertFiles(name, cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))


def generate_set(directory: Path, now: dt.datetime | None = None) -> dict[str, CertFiles]:
    """Write the CA and the five server certificates (see the module docstring) into ``directory``."""
    now = now or dt.datetime.now(dt.timezone.utc)
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = make_key(), make_key()
    ca = make_ca(ca_key, now)
    day = dt.timedelta(days=1)
    fixed_2020 = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    plans = {
        "valid": (["rdp-valid.test", "localhost", "127.0.0.1"], now - day, now + 365 * day, (ca, ca_key)),
        "selfsigned": (["rdp-self.test", "localhost", "127.0.0.1"], now - day, now + 365 * day, None),
        "expired": (["rdp-expired.test", "localhost"], fixed_2020, fixed_2020 + 366 * day, None),
        "notyet": (["rdp-notyet.test", "localhost", "127.0.0.1"], now + 1000 * day, now + 1365 * day, (ca, ca_key)),
        "wrongname": (["other-host.test"], now - day, now + 365 * day, (ca, ca_key)),
    }
    out = {"ca": _write(directory, "ca", ca, ca_key)}
    for name, (names, not_before, not_after, issuer) in plans.items():
        out[name] = _write(directory, name, make_server_cert(server_key, names, not_before, not_after, issuer), server_key)
    return out
