"""Microsoft certificate template extensions: the DER reader (v1 name, v2 OID and versions), tolerant of garbage,
and the ``template`` field of every certificate the host facts describe."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from hypothesis import given, strategies as st

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire, x509_info
from tests.lab import certs
from tests.lab.model import MY_STORE
from tests.unit.plugins.module_utils.planners import lab_facts as lf

NOW = dt.datetime(2026, 11, 21, 7, 0, 0, tzinfo=dt.timezone.utc)
RDP_TEMPLATE_OID = "1.3.6.1.4.1.311.21.8.4567890.1234567.8901234.5678901.234567.89.12345678.90123456"


def bmp(text: str) -> bytes:
    return rdp_wire.der_tlv(0x1E, text.encode("utf-16-be"))


def template_info(oid: str, *versions: int) -> bytes:
    return rdp_wire.der_tlv(0x30, rdp_wire.der_oid(oid) + b"".join(rdp_wire.der_integer(v) for v in versions))


def issued(template: certs.Template | None = None, extra: list[x509.UnrecognizedExtension] = ()) -> x509.Certificate:
    cert = certs.issue_server_cert(certs.lab_ca(), "win01", ["win01"], certs.key_for("win01"), NOW - dt.timedelta(days=1),
                                   NOW + dt.timedelta(days=90), template=template)
    if not extra:
        return cert
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer).public_key(cert.public_key())
               .serial_number(cert.serial_number).not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc))
    for extension in extra:
        builder = builder.add_extension(extension, critical=False)
    return builder.sign(certs.lab_ca().key, hashes.SHA256())


# --------------------------------------------------------------------------------------------------
# OBJECT IDENTIFIER encoding (rdp_wire)
# --------------------------------------------------------------------------------------------------

def test_oid_encoding_matches_the_microsoft_example() -> None:
    # IX509ExtensionTemplateName's documented dump: 06 0a 2b 06 01 04 01 82 37 0d 02 01 = 1.3.6.1.4.1.311.13.2.1
    encoded = bytes.fromhex("060a2b0601040182370d0201")
    assert rdp_wire.der_oid("1.3.6.1.4.1.311.13.2.1") == encoded
    assert rdp_wire.oid_from_der(encoded[2:]) == "1.3.6.1.4.1.311.13.2.1"


@pytest.mark.parametrize("content", [b"", b"\x2b\x86", b"\x2b\x80\x01", b"\x80\x01"])
def test_invalid_oid_contents_are_none(content: bytes) -> None:
    assert rdp_wire.oid_from_der(content) is None


@pytest.mark.parametrize("dotted", ["1", "3.1", "1.40", "a.b", "1.-2"])
def test_impossible_oids_are_not_encoded(dotted: str) -> None:
    with pytest.raises(ValueError):
        rdp_wire.der_oid(dotted)


@given(first=st.integers(0, 2), second=st.integers(0, 39), rest=st.lists(st.integers(0, 2**64), max_size=12))
def test_oids_round_trip(first: int, second: int, rest: list[int]) -> None:
    dotted = ".".join(str(arc) for arc in [first, second, *rest])
    encoded = rdp_wire.der_oid(dotted)
    assert rdp_wire.oid_from_der(encoded[2 if encoded[1] < 0x80 else 2 + (encoded[1] & 0x7F):]) == dotted


# --------------------------------------------------------------------------------------------------
# The extension values
# --------------------------------------------------------------------------------------------------

def test_v1_template_name() -> None:
    assert x509_info.template_name_from_der(bmp("RDPServer")) == "RDPServer"
    assert x509_info.template_name_from_der(bmp("Serveur Web é")) == "Serveur Web é"
    assert x509_info.template_name_from_der(rdp_wire.der_tlv(0x0C, "WebServer".encode())) == "WebServer"


def test_v2_template_information() -> None:
    assert x509_info.template_info_from_der(template_info(RDP_TEMPLATE_OID, 100, 4)) == {
        "oid": RDP_TEMPLATE_OID, "major": 100, "minor": 4}
    assert x509_info.template_info_from_der(template_info(RDP_TEMPLATE_OID, 0xFFFFFFFF)) == {
        "oid": RDP_TEMPLATE_OID, "major": 0xFFFFFFFF, "minor": None}
    # Both versions are OPTIONAL in [MS-WCCE] 2.2.2.7.7.2.
    assert x509_info.template_info_from_der(template_info(RDP_TEMPLATE_OID)) == {"oid": RDP_TEMPLATE_OID, "major": None, "minor": None}


MALFORMED_NAMES = [
    b"", b"\x1e", b"\x1e\x03\x00A", b"\x1e\x05\x00R\x00D\x00", bmp("RDP") + b"\x00", b"\x04\x02\x00A", bmp(""),
    rdp_wire.der_tlv(0x1E, "\ud800".encode("utf-16-be", "surrogatepass")), bmp("a\x00b"), rdp_wire.der_tlv(0x0C, b"\xff\xfe"),
]
MALFORMED_INFOS = [
    b"", b"\x30", b"\x30\x00", b"\x30\x05\x06\x03\x2b\x06", template_info(RDP_TEMPLATE_OID, 100) + b"\x00",
    rdp_wire.der_tlv(0x31, rdp_wire.der_oid(RDP_TEMPLATE_OID)), rdp_wire.der_tlv(0x30, rdp_wire.der_integer(100)),
    template_info(RDP_TEMPLATE_OID, -1), template_info(RDP_TEMPLATE_OID, 2**32), template_info(RDP_TEMPLATE_OID, 1, 2, 3),
    rdp_wire.der_tlv(0x30, rdp_wire.der_oid(RDP_TEMPLATE_OID) + rdp_wire.der_tlv(0x04, b"\x01")),
    rdp_wire.der_tlv(0x30, rdp_wire.der_oid(RDP_TEMPLATE_OID) + b"\x02\x00"),
    rdp_wire.der_tlv(0x30, b"\x06\x02\x2b\x80"), rdp_wire.der_tlv(0x30, rdp_wire.der_oid(RDP_TEMPLATE_OID) + b"\x02\x05\x01"),
]


@pytest.mark.parametrize("value", MALFORMED_NAMES)
def test_malformed_v1_names_are_none(value: bytes) -> None:
    assert x509_info.template_name_from_der(value) is None


@pytest.mark.parametrize("value", MALFORMED_INFOS)
def test_malformed_v2_information_is_none(value: bytes) -> None:
    assert x509_info.template_info_from_der(value) is None


@given(st.binary(max_size=200))
def test_random_extension_bytes_never_raise(value: bytes) -> None:
    name = x509_info.template_name_from_der(value)
    info = x509_info.template_info_from_der(value)
    extensions = x509_info.raw_extension_values(value)
    assert name is None or isinstance(name, str)
    assert info is None or set(info) == {"oid", "major", "minor"}
    assert isinstance(extensions, dict)


@given(st.lists(st.tuples(st.sampled_from([0x02, 0x06, 0x1E, 0x30, 0x04]), st.binary(max_size=12)), max_size=4))
def test_random_tlv_sequences_never_raise(parts: list[tuple[int, bytes]]) -> None:
    # DER-shaped garbage reaches the field checks, where random bytes mostly stop at the header.
    value = rdp_wire.der_tlv(0x30, b"".join(rdp_wire.der_tlv(tag, content) for tag, content in parts))
    info = x509_info.template_info_from_der(value)
    assert info is None or (isinstance(info["oid"], str) and all(v is None or 0 <= v <= 0xFFFFFFFF for v in (info["major"], info["minor"])))


# --------------------------------------------------------------------------------------------------
# Certificates
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("template, expected", [
    (certs.Template(name="RDPServer"), {"name": "RDPServer", "oid": None, "major": None, "minor": None}),
    (certs.Template(oid=RDP_TEMPLATE_OID, major=100, minor=7), {"name": None, "oid": RDP_TEMPLATE_OID, "major": 100, "minor": 7}),
    (certs.Template(name="RDPServer", oid=RDP_TEMPLATE_OID, major=2, minor=None),
     {"name": "RDPServer", "oid": RDP_TEMPLATE_OID, "major": 2, "minor": None}),
    (None, None),
])
def test_certificate_template(template: certs.Template | None, expected: dict | None) -> None:
    cert = issued(template)
    assert x509_info.describe_certificate(cert)["template"] == expected
    if template is not None and template.oid:
        # cryptography decodes the v2 extension itself: an independent reading of the same bytes.
        decoded = cert.extensions.get_extension_for_class(x509.MSCertificateTemplate).value
        assert (decoded.template_id.dotted_string, decoded.major_version, decoded.minor_version) == (
            expected["oid"], expected["major"], expected["minor"])


def test_a_malformed_extension_is_no_template_and_no_crash() -> None:
    garbage_info = x509.UnrecognizedExtension(x509.ObjectIdentifier(x509_info.OID_TEMPLATE_INFO), b"\x30\x03\x02\x01")
    garbage_name = x509.UnrecognizedExtension(x509.ObjectIdentifier(x509_info.OID_TEMPLATE_NAME), b"\x1e\x01A")
    both_bad = issued(extra=[garbage_info, garbage_name])
    analysis = x509_info.analyze_certificate(both_bad.public_bytes(serialization.Encoding.DER), now=NOW)
    assert analysis["ok"] is True and analysis["template"] is None
    name_only = issued(extra=[garbage_info, x509.UnrecognizedExtension(x509.ObjectIdentifier(x509_info.OID_TEMPLATE_NAME),
                                                                       bmp("RDPServer"))])
    assert x509_info.describe_certificate(name_only)["template"] == {"name": "RDPServer", "oid": None, "major": None, "minor": None}


# --------------------------------------------------------------------------------------------------
# Host facts on a lab host
# --------------------------------------------------------------------------------------------------

def test_host_facts_describe_each_certificate_template() -> None:
    host = lf.host_of()
    by_name = lf.add_my_cert(host, template=certs.Template(name="RDPServer"))
    by_oid = lf.add_my_cert(host, template=certs.Template(name="WebServer", oid=RDP_TEMPLATE_OID, major=100, minor=5))
    plain = lf.add_my_cert(host)
    facts = lf.facts_of_host(host)
    described = {e["thumbprint"]: e["template"] for e in facts["certificate"]["stores"][MY_STORE]}
    assert described == {
        by_name.thumbprint: {"name": "RDPServer", "oid": None, "major": None, "minor": None},
        by_oid.thumbprint: {"name": "WebServer", "oid": RDP_TEMPLATE_OID, "major": 100, "minor": 5},
        plain.thumbprint: None,
    }
    # The self-signed listener certificate carries no template.
    assert [e["template"] for e in facts["certificate"]["stores"]["Remote Desktop"]] == [None]
