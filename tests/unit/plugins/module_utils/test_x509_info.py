"""x509_info: description, every problem at once, name matching and chain building against a store."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.rdp.doctor.plugins.module_utils import x509_info
from tests.integration.realservers import certs as testcerts

NOW = dt.datetime(2026, 11, 21, 7, 0, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certs)


def sub_ca(key: rsa.RSAPrivateKey, issuer: x509.Certificate, issuer_key: rsa.RSAPrivateKey, cn: str,
           not_before: dt.datetime = NOW - DAY, not_after: dt.datetime = NOW + 365 * DAY) -> x509.Certificate:
    """An intermediate CA signed by ``issuer``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def custom(key, names: list[str], eku: list | None, issuer=None, hash_algorithm=None, cn: str | None = None) -> x509.Certificate:
    """A leaf with a chosen EKU list (None: no extension) and signature hash."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or names[0] if names else cn or "nosan")])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(0x0123ABCD).not_valid_before(NOW - DAY).not_valid_after(NOW + 365 * DAY))
    if names:
        builder = builder.add_extension(testcerts._san(names), critical=False)  # pylint: disable=protected-access
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(signing_key, hash_algorithm or hashes.SHA256())


@pytest.fixture(scope="module")
def pki() -> dict:
    """A CA, an intermediate, keys and the five test certificates at a fixed NOW."""
    ca_key, inter_key, server_key = testcerts.make_key(), testcerts.make_key(), testcerts.make_key()
    ca = testcerts.make_ca(ca_key, NOW)
    inter = sub_ca(inter_key, ca, ca_key, "Intermediate CA")
    return {
        "ca_key": ca_key, "ca": ca, "inter_key": inter_key, "inter": inter, "server_key": server_key,
        "valid": testcerts.make_server_cert(server_key, ["rdp-valid.test", "localhost", "127.0.0.1"], NOW - DAY,
                                            NOW + 365 * DAY, (ca, ca_key)),
        "via_inter": testcerts.make_server_cert(server_key, ["win01.corp.test"], NOW - DAY, NOW + 90 * DAY,
                                                (inter, inter_key)),
        "self": testcerts.make_server_cert(server_key, ["win01", "win01.corp.test"], NOW - DAY, NOW + 180 * DAY),
        "expired": testcerts.make_server_cert(server_key, ["rdp-expired.test", "localhost"],
                                              dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
                                              dt.datetime(2021, 1, 1, tzinfo=dt.timezone.utc)),
        "notyet": testcerts.make_server_cert(server_key, ["rdp-notyet.test", "127.0.0.1"],
                                             dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc),
                                             dt.datetime(2031, 1, 1, tzinfo=dt.timezone.utc), (ca, ca_key)),
        "store": x509_info.TrustStore.from_pem("test-ca", pem(ca)),
    }


def codes(result: dict) -> list[str]:
    return [problem["code"] for problem in result["problems"]]


# --- description ------------------------------------------------------------------------------------

def test_describe_reads_every_field(pki: dict) -> None:
    cert = pki["valid"]
    result = x509_info.analyze_certificate(der(cert), server_name="rdp-valid.test", now=NOW, trust_store=pki["store"])
    assert result["ok"]
    assert result["subject"] == "CN=rdp-valid.test,O=RDP Probe Test"
    assert result["subject_cn"] == "rdp-valid.test"
    assert result["issuer_cn"] == "RDP Probe Test CA"
    assert result["san_dns"] == ["rdp-valid.test", "localhost"]
    assert result["san_ip"] == ["127.0.0.1"]
    assert result["eku"] == [{"oid": "1.3.6.1.5.5.7.3.1", "name": "Server Authentication"}]
    assert result["serial"] == f"{cert.serial_number:X}"
    assert result["sha1_thumbprint"] == hashlib.sha1(der(cert)).hexdigest().upper()
    assert result["sha256"] == hashlib.sha256(der(cert)).hexdigest().upper()
    assert result["not_before"] == "2026-11-20T07:00:00Z"
    assert result["not_after"] == "2027-11-21T07:00:00Z"
    assert result["public_key"] == {"type": "RSA", "bits": 2048}
    assert result["signature_hash"] == "sha256"
    assert result["validity"]["days_left"] == 365
    assert result["self_signed"] is False and result["self_issued"] is False
    assert result["trust"]["trusted"] is True
    assert result["problems"] == [] and result["problem_ids"] == []
    assert result["name_matches"] is True


def test_accepts_base64_and_pem_text(pki: dict) -> None:
    cert = pki["valid"]
    from_b64 = x509_info.analyze_certificate(base64.b64encode(der(cert)).decode(), now=NOW)
    from_pem = x509_info.analyze_certificate(pem(cert).decode(), now=NOW)
    assert from_b64["sha1_thumbprint"] == from_pem["sha1_thumbprint"] == hashlib.sha1(der(cert)).hexdigest().upper()
    assert from_b64["name_matches"] is None and from_b64["trust"] == {"checked": False}


@pytest.mark.parametrize("junk", [b"", b"\x30\x03\x02\x01\x00", "not base64 !!!", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"])
def test_garbage_is_reported_not_raised(junk) -> None:
    result = x509_info.analyze_certificate(junk, now=NOW)
    assert result["ok"] is False and result["error"]


def test_ec_key_is_described() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    result = x509_info.analyze_certificate(der(custom(key, ["ec.test"], None)), now=NOW)
    assert result["public_key"] == {"type": "EC", "bits": 256, "curve": "secp256r1"}
    assert result["eku"] is None and result["eku_ok_for_rdp"] is True


# --- every problem ---------------------------------------------------------------------------------

def test_expired_self_signed_wrong_name_lists_every_problem(pki: dict) -> None:
    result = x509_info.analyze_certificate(der(pki["expired"]), server_name="127.0.0.1", now=NOW, trust_store=pki["store"])
    assert codes(result) == ["expired", "name_mismatch", "self_signed", "untrusted"]
    assert result["problem_ids"] == ["RDP-CERT-EXPIRED", "RDP-CERT-NAME-MISMATCH", "RDP-CERT-SELF-SIGNED", "RDP-CERT-UNTRUSTED"]
    assert result["validity"]["expired"] and result["validity"]["days_left"] < -2100
    assert "self-signed certificate, not in the trust store" in result["trust"]["reason"]
    assert [p["severity"] for p in result["problems"]] == ["high", "high", "info", "medium"]


def test_not_yet_valid(pki: dict) -> None:
    result = x509_info.analyze_certificate(der(pki["notyet"]), server_name="127.0.0.1", now=NOW, trust_store=pki["store"])
    assert codes(result) == ["not_yet_valid"]
    assert result["validity"]["days_until_valid"] == 1137
    assert result["trust"]["trusted"] is True  # time is judged separately from the chain


def test_expiring_soon_is_low_severity(pki: dict) -> None:
    result = x509_info.analyze_certificate(der(pki["valid"]), server_name="localhost", now=NOW + 350 * DAY,
                                           trust_store=pki["store"])
    assert codes(result) == ["expiring_soon"]
    assert result["problems"][0]["severity"] == "low"
    assert x509_info.analyze_certificate(der(pki["valid"]), now=NOW + 350 * DAY, expiring_days=10)["problems"] == []


def test_several_names_match_when_any_matches(pki: dict) -> None:
    result = x509_info.analyze_certificate(der(pki["self"]), server_name=["WIN01", "other"], now=NOW)
    assert result["name_matches"] is True and "name_mismatch" not in codes(result)
    assert [item["matches"] for item in result["name_checks"]] == [True, False]
    renamed = x509_info.analyze_certificate(der(pki["self"]), server_name=["win02", "win02.corp.test"], now=NOW)
    assert "name_mismatch" in codes(renamed)
    assert "issued for win01, win01.corp.test, not for win02, win02.corp.test" in renamed["problems"][0]["message"]


@pytest.mark.parametrize("eku, ok", [
    ([ExtendedKeyUsageOID.CLIENT_AUTH], False),
    ([x509.ObjectIdentifier(x509_info.OID_RDP_SERVER_AUTH)], True),
    ([ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH], True),
    ([ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE], True),
    (None, True),
])
def test_eku_for_rdp(pki: dict, eku: list | None, ok: bool) -> None:
    result = x509_info.analyze_certificate(der(custom(pki["server_key"], ["h.test"], eku)), now=NOW)
    assert result["eku_ok_for_rdp"] is ok
    assert ("wrong_eku" in codes(result)) is (not ok)


def test_weak_key(pki: dict) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    weak_key = x509_info.analyze_certificate(der(custom(small, ["h.test"], None, issuer=(pki["ca"], pki["ca_key"]))), now=NOW)
    assert codes(weak_key) == ["weak_key"]
    assert weak_key["problems"][0]["message"] == "RSA key of 1024 bits"


@pytest.mark.parametrize("signature_hash, self_signed, flagged", [
    ("sha1", False, True), ("md5", False, True), ("sha256", False, False),
    ("sha1", True, False),  # a self-signature is never verified by a client, so its hash does not matter
])
def test_weak_signature(pki: dict, signature_hash: str, self_signed: bool, flagged: bool) -> None:
    # cryptography 50 no longer signs with SHA-1, so judge a description (the pure part) directly
    description = x509_info.describe_certificate(pki["valid"])
    description.update(signature_hash=signature_hash, self_signed=self_signed)
    validity = x509_info.validity_status(pki["valid"], NOW)
    problems = x509_info.list_problems(description, validity, [], None)
    assert ("weak_signature" in [p["code"] for p in problems]) is flagged


def test_self_issued_with_a_foreign_signature_is_not_self_signed(pki: dict) -> None:
    # subject == issuer, but signed by another key: not self-signed (and not verifiable)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imposter")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(pki["server_key"].public_key())
            .serial_number(5).not_valid_before(NOW - DAY).not_valid_after(NOW + DAY).sign(pki["ca_key"], hashes.SHA256()))
    result = x509_info.analyze_certificate(der(cert), now=NOW)
    assert result["self_issued"] is True and result["self_signed"] is False


# --- names ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("pattern, name, ok", [
    ("win01.corp.test", "WIN01.corp.test.", True),
    ("*.corp.test", "win01.corp.test", True),
    ("*.corp.test", "corp.test", False),
    ("*.corp.test", "a.b.corp.test", False),
    ("*.test", "corp.test", False),            # wildcard needs at least two labels after it
    ("w*.corp.test", "win01.corp.test", False),  # partial-label wildcards are not honoured
    ("", "x", False),
])
def test_dns_name_matching(pattern: str, name: str, ok: bool) -> None:
    assert x509_info.dns_name_matches(pattern, name) is ok


def _desc(san_dns=(), san_ip=(), cn=None) -> dict:
    return {"san_dns": list(san_dns), "san_ip": list(san_ip), "subject_cn": cn}


@pytest.mark.parametrize("desc, name, matched_by", [
    (_desc(san_ip=["127.0.0.1"]), "127.0.0.1", "san_ip"),
    (_desc(san_ip=["::1"]), "[0:0::1]", "san_ip"),
    (_desc(san_dns=["localhost"], cn="127.0.0.1"), "127.0.0.1", None),   # no CN fallback when SANs exist
    (_desc(cn="127.0.0.1"), "127.0.0.1", "subject_cn"),
    (_desc(san_dns=["a.test"], cn="b.test"), "b.test", None),
    (_desc(cn="B.test"), "b.test", "subject_cn"),
    (_desc(san_dns=["*.corp.test"]), "win01.corp.test", "san_dns"),
])
def test_name_check_rules(desc: dict, name: str, matched_by: str | None) -> None:
    result = x509_info.name_check(desc, name)
    assert result["matched_by"] == matched_by
    assert result["matches"] is (matched_by is not None)


# --- trust ----------------------------------------------------------------------------------------

def test_chain_through_an_intermediate_the_server_sent(pki: dict) -> None:
    result = x509_info.analyze_certificate(der(pki["via_inter"]), now=NOW, trust_store=pki["store"],
                                           intermediates=[der(pki["inter"])])
    assert result["trust"]["trusted"] is True
    assert result["trust"]["chain"] == ["CN=win01.corp.test,O=RDP Probe Test", "CN=Intermediate CA",
                                        "CN=RDP Probe Test CA,O=RDP Probe Test"]


def test_missing_intermediate_is_untrusted(pki: dict) -> None:
    result = x509_info.analyze_certificate(der(pki["via_inter"]), now=NOW, trust_store=pki["store"])
    assert codes(result) == ["untrusted"]
    assert "unable to get local issuer certificate" in result["trust"]["reason"]


def test_expired_intermediate_breaks_the_chain(pki: dict) -> None:
    old = sub_ca(pki["inter_key"], pki["ca"], pki["ca_key"], "Intermediate CA", NOW - 400 * DAY, NOW - 30 * DAY)
    result = x509_info.analyze_certificate(der(pki["via_inter"]), now=NOW, trust_store=pki["store"], intermediates=[der(old)])
    assert result["trust"]["trusted"] is False
    assert "outside its validity period: CN=Intermediate CA" in result["trust"]["reason"]


def test_chain_ending_at_an_unknown_root(pki: dict) -> None:
    other = x509_info.TrustStore.from_pem("other", pem(pki["notyet"]))
    result = x509_info.analyze_certificate(der(pki["via_inter"]), now=NOW, trust_store=other,
                                           intermediates=[der(pki["inter"]), der(pki["ca"])])
    assert result["trust"]["reason"] == "the chain ends at a root that is not in the trust store"


def test_a_pinned_self_signed_certificate_is_trusted(pki: dict) -> None:
    pinned = x509_info.TrustStore.from_pem("pinned", der(pki["self"]))
    result = x509_info.analyze_certificate(der(pki["self"]), server_name="win01", now=NOW, trust_store=pinned)
    assert codes(result) == ["self_signed"]
    assert result["trust"]["reason"] == "the certificate itself is in the trust store"


def test_forged_issuer_name_is_not_trusted(pki: dict) -> None:
    # claims the test CA as issuer but is signed by another key: signature check must catch it
    forged = testcerts.make_server_cert(pki["server_key"], ["evil.test"], NOW - DAY, NOW + DAY, (pki["ca"], pki["inter_key"]))
    result = x509_info.analyze_certificate(der(forged), now=NOW, trust_store=pki["store"])
    assert result["trust"]["trusted"] is False


def test_unreadable_bundle_is_untrusted_with_the_reason(tmp_path: Path, pki: dict) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_bytes(b"-----BEGIN CERTIFICATE-----\nnonsense\n-----END CERTIFICATE-----\n")
    store = x509_info.load_trust_store(str(bad))
    assert store.error and store.count == 0
    result = x509_info.analyze_certificate(der(pki["valid"]), now=NOW, trust_store=store)
    assert codes(result) == ["untrusted"] and "cannot read certificates" in result["trust"]["reason"]
    missing = x509_info.load_trust_store(str(tmp_path / "nope.pem"))
    assert missing.error.startswith("cannot read trust store")


def test_bundle_file_is_cached_until_it_changes(tmp_path: Path, pki: dict) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(pem(pki["ca"]))
    first = x509_info.load_trust_store(str(path))
    assert x509_info.load_trust_store(str(path)) is first and first.count == 1
    path.write_bytes(pem(pki["ca"], pki["inter"]))
    assert x509_info.load_trust_store(str(path)).count == 2


def test_directory_store(tmp_path: Path, pki: dict) -> None:
    (tmp_path / "ca.pem").write_bytes(pem(pki["ca"]))
    (tmp_path / "junk.txt").write_bytes(b"not a certificate")
    (tmp_path / "link.pem").symlink_to(tmp_path / "ca.pem")
    store = x509_info.load_trust_store(str(tmp_path))
    assert store.count == 1 and store.error is None


def test_system_store_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pki: dict) -> None:
    bundle = tmp_path / "system.pem"
    bundle.write_bytes(pem(pki["ca"]))
    paths = ssl.DefaultVerifyPaths(str(bundle), None, "SSL_CERT_FILE", str(bundle), "SSL_CERT_DIR", None)
    monkeypatch.setattr(x509_info.ssl, "get_default_verify_paths", lambda: paths)
    store = x509_info.load_trust_store()
    assert store.source == str(bundle) and store.count == 1


def test_no_system_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    nowhere = str(tmp_path / "none")
    paths = ssl.DefaultVerifyPaths(nowhere, nowhere, "SSL_CERT_FILE", nowhere, "SSL_CERT_DIR", nowhere)
    monkeypatch.setattr(x509_info.ssl, "get_default_verify_paths", lambda: paths)
    assert x509_info.load_trust_store().error == "no system trust store found"
