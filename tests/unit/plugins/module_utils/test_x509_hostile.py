"""x509_info against hostile certificates (issue 10): an X.509 version outside v1..v3 anywhere (leaf, chain, CA
bundle) is an unreadable certificate, not a crash; the trust verdict is cryptography's path validation, so an
intermediate that is not a CA does not make a chain trusted; every problem is still listed."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ansible_collections.rdp.doctor.plugins.module_utils import x509_info
from tests.integration.realservers import certs as testcerts

NOW = dt.datetime(2026, 11, 21, 7, 0, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)
V3_VERSION_FIELD = bytes.fromhex("a003020102")  # [0] EXPLICIT INTEGER 2 (v3) at the start of the TBSCertificate


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def with_version(data: bytes, version: int) -> bytes:
    """The same certificate bytes with the version INTEGER replaced (the signature no longer matters: parsing fails first)."""
    at = data.index(V3_VERSION_FIELD)
    return data[:at] + bytes.fromhex("a0030201") + bytes([version]) + data[at + len(V3_VERSION_FIELD):]


def intermediate(key, issuer: x509.Certificate, issuer_key, basic_constraints: x509.BasicConstraints | None,
                 key_usage: x509.KeyUsage | None = None, cn: str = "Intermediate CA") -> x509.Certificate:
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
               .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(NOW - DAY).not_valid_after(NOW + 365 * DAY))
    if basic_constraints is not None:
        builder = builder.add_extension(basic_constraints, critical=True)
    if key_usage is not None:
        builder = builder.add_extension(key_usage, critical=True)
    return builder.sign(issuer_key, hashes.SHA256())


def key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False, data_encipherment=False,
                         key_agreement=False, key_cert_sign=cert_sign, crl_sign=cert_sign, encipher_only=False,
                         decipher_only=False)


@pytest.fixture(scope="module")
def pki() -> dict:
    ca_key, inter_key, server_key = testcerts.make_key(), testcerts.make_key(), testcerts.make_key()
    ca = testcerts.make_ca(ca_key, NOW)
    return {"ca": ca, "ca_key": ca_key, "inter_key": inter_key, "server_key": server_key,
            "store": x509_info.TrustStore.from_pem("test-ca", ca.public_bytes(serialization.Encoding.PEM)),
            "valid": testcerts.make_server_cert(server_key, ["rdp-valid.test"], NOW - DAY, NOW + 90 * DAY, (ca, ca_key))}


def leaf_under(pki: dict, issuer: x509.Certificate) -> x509.Certificate:
    return testcerts.make_server_cert(pki["server_key"], ["win01.corp.test"], NOW - DAY, NOW + 90 * DAY, (issuer, pki["inter_key"]))


# --- invalid versions ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [3, 4, 0x7F])
def test_a_leaf_with_an_invalid_version_is_unreadable_not_a_crash(pki: dict, version: int) -> None:
    """Used to raise cryptography's InvalidVersion (not a ValueError): 'probe crashed: 3 is not a valid X509 version'."""
    result = x509_info.analyze_certificate(with_version(der(pki["valid"]), version), server_name="rdp-valid.test",
                                           now=NOW, trust_store=pki["store"])
    assert result == {"ok": False, "error": f"not a DER X.509 certificate: {version} is not a valid X509 version"}


def test_an_intermediate_with_an_invalid_version_is_skipped(pki: dict) -> None:
    good = intermediate(pki["inter_key"], pki["ca"], pki["ca_key"], x509.BasicConstraints(ca=True, path_length=0))
    result = x509_info.analyze_certificate(der(leaf_under(pki, good)), now=NOW, trust_store=pki["store"],
                                           intermediates=[with_version(der(good), 3), der(good)])
    assert result["ok"] is True and result["trust"]["trusted"] is True


def test_a_bundle_entry_with_an_invalid_version_is_skipped(pki: dict) -> None:
    bad = with_version(der(pki["valid"]), 3)
    bad_pem = x509_info.base64.encodebytes(bad)
    bundle = (b"-----BEGIN CERTIFICATE-----\n" + bad_pem + b"-----END CERTIFICATE-----\n"
              + pki["ca"].public_bytes(serialization.Encoding.PEM))
    store = x509_info.TrustStore.from_pem("bundle", bundle)
    assert store.count == 1 and store.error is None
    only_bad = x509_info.TrustStore.from_pem("bad", bad)  # one DER certificate
    assert only_bad.count == 0 and "not a valid X509 version" in only_bad.error


# --- trust: cryptography's path validation -------------------------------------------------------------------

@pytest.mark.parametrize(("constraints", "usage", "reason"), [
    (x509.BasicConstraints(ca=False, path_length=None), None, "basicConstraints.cA must be asserted"),
    (None, None, "basicConstraints"),
    (x509.BasicConstraints(ca=True, path_length=None), key_usage(cert_sign=False), "keyCertSign"),
])
def test_an_intermediate_that_is_not_a_ca_makes_the_chain_untrusted(pki: dict, constraints, usage, reason: str) -> None:
    """The chain walk checked names and signatures only, so a CA:FALSE intermediate passed as trusted."""
    fake_ca = intermediate(pki["inter_key"], pki["ca"], pki["ca_key"], constraints, usage)
    result = x509_info.analyze_certificate(der(leaf_under(pki, fake_ca)), server_name="win01.corp.test", now=NOW,
                                           trust_store=pki["store"], intermediates=[der(fake_ca)])
    assert result["trust"]["trusted"] is False
    assert result["trust"]["reason"].startswith("rejected by path validation: ") and reason in result["trust"]["reason"]
    assert [problem["code"] for problem in result["problems"]] == ["untrusted"]


def test_an_intermediate_without_key_usage_is_accepted_as_openssl_and_windows_do(pki: dict) -> None:
    inter = intermediate(pki["inter_key"], pki["ca"], pki["ca_key"], x509.BasicConstraints(ca=True, path_length=None))
    result = x509_info.analyze_certificate(der(leaf_under(pki, inter)), now=NOW, trust_store=pki["store"],
                                           intermediates=[der(inter)])
    assert result["trust"]["trusted"] is True and result["trust"]["reason"] == "chain verified to a trusted anchor"
    assert result["trust"]["chain"] == ["CN=win01.corp.test,O=RDP Probe Test", "CN=Intermediate CA",
                                        "CN=RDP Probe Test CA,O=RDP Probe Test"]


def test_a_path_length_violation_is_untrusted(pki: dict) -> None:
    """CA -> A (pathLen 0) -> B (CA) -> leaf: A may not have a CA below it."""
    first = intermediate(pki["inter_key"], pki["ca"], pki["ca_key"], x509.BasicConstraints(ca=True, path_length=0), cn="A")
    second = intermediate(pki["inter_key"], first, pki["inter_key"], x509.BasicConstraints(ca=True, path_length=None), cn="B")
    result = x509_info.analyze_certificate(der(leaf_under(pki, second)), now=NOW, trust_store=pki["store"],
                                           intermediates=[der(second), der(first)])
    assert result["trust"]["trusted"] is False and result["trust"]["reason"].startswith("rejected by path validation")


def test_an_expired_leaf_under_a_good_chain_is_expired_and_trusted(pki: dict) -> None:
    """Time is judged separately: the verifier runs at a time inside the leaf's validity, CAs are checked at now."""
    old = testcerts.make_server_cert(pki["server_key"], ["rdp-valid.test"], NOW - 30 * DAY, NOW - DAY, (pki["ca"], pki["ca_key"]))
    ca_then = testcerts.make_ca(pki["ca_key"], NOW - 60 * DAY)  # same name and key, valid from before the leaf
    store = x509_info.TrustStore.from_pem("ca", ca_then.public_bytes(serialization.Encoding.PEM))
    result = x509_info.analyze_certificate(der(old), server_name="rdp-valid.test", now=NOW, trust_store=store)
    assert [problem["code"] for problem in result["problems"]] == ["expired"]
    assert result["trust"]["trusted"] is True


def test_twenty_one_certificates_are_refused_by_the_depth_limit(pki: dict) -> None:
    chain = []
    issuer, issuer_key = pki["ca"], pki["ca_key"]
    for level in range(20):
        inter = intermediate(pki["inter_key"], issuer, issuer_key, x509.BasicConstraints(ca=True, path_length=None), cn=f"L{level}")
        chain.append(inter)
        issuer, issuer_key = inter, pki["inter_key"]
    leaf = leaf_under(pki, issuer)
    result = x509_info.analyze_certificate(der(leaf), now=NOW, trust_store=pki["store"],
                                           intermediates=[der(cert) for cert in reversed(chain)])
    assert result["ok"] is True and result["trust"]["trusted"] is False
    assert [problem["code"] for problem in result["problems"]] == ["untrusted"]


def test_a_block_whose_subject_breaks_only_when_read_does_not_cost_the_bundle(pki: dict) -> None:
    """cryptography parses names lazily: a block that loads but whose subject is malformed used to raise from the
    TrustStore constructor, and the whole bundle was lost (found by test_parser_fuzz)."""
    good = der(pki["valid"])
    subject = pki["valid"].subject.public_bytes()
    # the string tag of the subject's first attribute value: SEQUENCE, SET, SEQUENCE headers (2 bytes each), OID (5)
    at = good.index(subject) + 11
    assert good[at] == 0x0C  # UTF8String
    broken = good[:at] + b"\x00" + good[at + 1:]
    x509.load_der_x509_certificate(broken)  # loads: the damage only shows when the subject is read
    bundle = b"".join(b"-----BEGIN CERTIFICATE-----\n" + x509_info.base64.encodebytes(block) + b"-----END CERTIFICATE-----\n"
                      for block in (broken, der(pki["ca"])))
    store = x509_info.TrustStore.from_pem("bundle", bundle)
    assert store.count == 1 and store.error is None
    result = x509_info.analyze_certificate(der(pki["valid"]), now=NOW, trust_store=store, intermediates=[broken])
    assert result["ok"] is True and result["trust"]["trusted"] is True
    assert x509_info.analyze_certificate(broken, now=NOW)["ok"] is False


def test_a_ca_directory_without_any_certificate_is_untrusted_not_a_crash(tmp_path, pki: dict) -> None:
    """A directory store with no readable certificate has no error and no anchors; cryptography refuses an empty
    verification Store (ValueError), which escaped check_trust."""
    (tmp_path / "readme.txt").write_text("no certificates here")
    store = x509_info.load_trust_store(str(tmp_path))
    assert store.count == 0 and store.error is None
    result = x509_info.analyze_certificate(der(pki["valid"]), server_name="rdp-valid.test", now=NOW, trust_store=store)
    assert [problem["code"] for problem in result["problems"]] == ["untrusted"]
    assert result["trust"]["reason"] == f"the trust store {tmp_path} holds no readable certificate"
