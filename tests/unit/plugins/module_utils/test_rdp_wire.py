"""rdp_wire: byte-exact encoders and total parsers, checked against answers captured from xrdp 0.9.21
and FreeRDP 2.11 shadow servers (reference: real-rdp-servers.md, "Wire bytes")."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire as wire

# --- Connection Request --------------------------------------------------------------------------


def test_connection_request_mstsc_mix_is_the_19_bytes_mstsc_sends() -> None:
    assert wire.build_connection_request(0x0B).hex() == "030000130ee00000000000010008000b000000"


def test_connection_request_with_cookie_matches_the_captured_bytes() -> None:
    # TPKT + X.224 header, "Cookie: mstshash=alice\r\n", RDP_NEG_REQ 0x0b
    expected = "0300002b26e0000000000043" + "6f6f6b69653a206d737473686173683d616c6963650d0a" + "010008000b000000"
    assert wire.build_connection_request(0x0B, cookie="alice").hex() == expected


def test_connection_request_without_negotiation_is_a_legacy_request() -> None:
    data = wire.build_connection_request(None)
    assert data.hex() == "0300000b06e00000000000"
    assert wire.tpkt_needed(data) == len(data)


@pytest.mark.parametrize("bad", [{"requested_protocols": -1}, {"requested_protocols": 1 << 32},
                                 {"requested_protocols": 1, "cookie": "a\r\nb"}, {"requested_protocols": 1, "neg_flags": 256},
                                 {"requested_protocols": 1, "cookie": "x" * 300}])
def test_connection_request_rejects_impossible_arguments(bad: dict) -> None:
    with pytest.raises(ValueError):
        wire.build_connection_request(**bad)


def test_protocol_names() -> None:
    assert wire.protocol_names(0) == ["RDP"]
    assert wire.protocol_names(0x0B) == ["SSL", "HYBRID", "HYBRID_EX"]
    assert wire.protocol_names(0x41) == ["SSL", "0x40"]
    assert wire.selected_protocol_name(8) == "HYBRID_EX"
    assert wire.selected_protocol_name(0x20) == "0x20"


# --- answers seen from real servers ----------------------------------------------------------------

@pytest.mark.parametrize("hex_answer, kind, fields", [
    ("030000130ed000001234000201080001000000", "negotiation_response",
     {"selected_protocol": 1, "selected_name": "SSL", "flags": 0x01, "src_ref": 0x1234}),
    ("030000130ed000001234000201080000000000", "negotiation_response", {"selected_protocol": 0, "selected_name": "RDP"}),
    ("030000130ed000001234000300080001000000", "negotiation_failure",
     {"failure_code": 1, "failure_name": "SSL_REQUIRED_BY_SERVER"}),
    ("030000130ed000001234000300080003000000", "negotiation_failure", {"failure_name": "SSL_CERT_NOT_ON_SERVER"}),
    ("0300000b06d00000123400", "legacy_confirm", {"src_ref": 0x1234}),
    ("0300000902f0802180", "disconnect_ultimatum", {"mcs_reason": 3, "mcs_reason_name": "rn-user-requested"}),
    ("030000130ed000000000000203080001000000", "negotiation_response",
     {"selected_name": "SSL", "flags": 0x03, "flag_names": ["EXTENDED_CLIENT_DATA_SUPPORTED", "DYNVC_GFX_PROTOCOL_SUPPORTED"]}),
    ("030000130ed000000000000203080002000000", "negotiation_response", {"selected_name": "HYBRID"}),
    ("030000130ed000000000000300080002000000", "negotiation_failure", {"failure_name": "SSL_NOT_ALLOWED_BY_SERVER"}),
    ("030000130ed000000000000300080005000000", "negotiation_failure", {"failure_name": "HYBRID_REQUIRED_BY_SERVER"}),
    ("030000130ed000000000000300080006000000", "negotiation_failure", {"failure_name": "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER"}),
    ("030000130ed000000000000300080009000000", "negotiation_failure", {"failure_name": "UNKNOWN_0x9"}),
    ("0300000b0680000000000000", "disconnect_request", {}),
])
def test_parse_answers_of_real_servers(hex_answer: str, kind: str, fields: dict) -> None:
    answer = wire.parse_x224_answer(bytes.fromhex(hex_answer))
    assert answer["kind"] == kind
    for key, value in fields.items():
        assert answer[key] == value


@pytest.mark.parametrize("hex_answer, kind", [
    ("", "empty"),
    ("0300", "truncated"),
    ("030000130ed0000012340002010800", "truncated"),
    ("0300000600ff", "malformed"),            # length indicator 0
    ("030000070270aa", "malformed"),          # unknown TPDU code
    ("030000130ed000001234000201090001000000", "malformed"),  # neg length 9
    ("030000130ed000001234000901080001000000", "malformed"),  # unknown neg type
    ("0300000902f0807f80", "malformed"),      # DT that is not a DPUm
    ("03000004", "malformed"),                # a TPKT header whose length cannot hold a TPDU: broken RDP framing
    ("03010004", "not_rdp"),                  # reserved octet set: not a TPKT header at all
])
def test_parse_broken_answers_is_total(hex_answer: str, kind: str) -> None:
    assert wire.parse_x224_answer(bytes.fromhex(hex_answer))["kind"] == kind


@pytest.mark.parametrize("data, service, key, value", [
    (b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\nmore", "ssh", "banner", "SSH-2.0-OpenSSH_9.2p1 Debian-2"),
    (b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.22.1\r\n\r\n", "http", "server", "nginx/1.22.1"),
    (b"HTTP/1.0 400 Bad request\r\n\r\n", "http", "status_line", "HTTP/1.0 400 Bad request"),
    (b"<!DOCTYPE HTML>\n<html>", "http", "status_line", None),
    (bytes.fromhex("15030100020246"), "tls", "alert", "protocol_version"),
    (bytes.fromhex("160303003a0200003603"), "tls", "handshake", "server_hello"),
    (b"220 mail.example.com ESMTP Postfix\r\n", "text", "banner", "220 mail.example.com ESMTP Postfix"),
    (bytes.fromhex("ff00ff00"), "unknown", "first_bytes", "ff00ff00"),
])
def test_non_rdp_services_are_recognised(data: bytes, service: str, key: str, value: object) -> None:
    answer = wire.parse_x224_answer(data)
    assert answer["kind"] == "not_rdp"
    assert answer["service"]["service"] == service
    assert answer["service"][key] == value


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=80))
def test_parse_x224_answer_never_raises(data: bytes) -> None:
    assert wire.parse_x224_answer(data)["kind"] in {
        "empty", "truncated", "malformed", "not_rdp", "negotiation_response", "negotiation_failure",
        "legacy_confirm", "disconnect_ultimatum", "disconnect_request"}


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.integers(0, 0xFFFFFFFF)), st.one_of(st.none(), st.text("abcxyz019", min_size=1, max_size=20)))
def test_connection_request_is_a_complete_tpkt(mix: int | None, cookie: str | None) -> None:
    data = wire.build_connection_request(mix, cookie=cookie)
    assert wire.tpkt_needed(data) == len(data)
    assert data[5] == wire.X224_TPDU_CR
    if mix is not None:
        assert struct.unpack("<I", data[-4:])[0] == mix


def test_tpkt_needed() -> None:
    assert wire.tpkt_needed(b"") == 0
    assert wire.tpkt_needed(b"\x03\x00") == 0
    assert wire.tpkt_needed(b"\x03\x00\x00\x13") == 19
    assert wire.tpkt_needed(b"SSH-") is None


# --- DER / TSRequest -------------------------------------------------------------------------------

REFERENCE_TS_REQUEST = ("3037a003020106a130302e302ca02a04284e544c4d5353500001000000078288e2"
                        "000000000000000000000000000000000a00614a0000000f")


def test_ntlm_negotiate_and_ts_request_match_the_captured_57_bytes() -> None:
    negotiate = wire.build_ntlm_negotiate()
    assert len(negotiate) == 40
    assert wire.encode_ts_request(6, [negotiate]).hex() == REFERENCE_TS_REQUEST


def test_decode_ts_request_round_trip() -> None:
    decoded = wire.decode_ts_request(bytes.fromhex(REFERENCE_TS_REQUEST))
    assert decoded["ok"] and decoded["version"] == 6 and decoded["error_code"] is None
    assert decoded["nego_tokens"] == [wire.build_ntlm_negotiate()]
    assert decoded["fields"] == ["version", "negoTokens"]


def test_decode_ts_request_with_error_code_and_nonce() -> None:
    body = wire.der_tlv(0xA0, wire.der_integer(6)) + wire.der_tlv(0xA4, wire.der_integer(-1073741715))
    body += wire.der_tlv(0xA5, wire.der_tlv(0x04, b"\x01" * 32))
    decoded = wire.decode_ts_request(wire.der_tlv(0x30, body))
    assert decoded["error_code"] == 0xC000006D  # STATUS_LOGON_FAILURE as an unsigned 32-bit value
    assert decoded["fields"] == ["version", "errorCode", "clientNonce"]


@pytest.mark.parametrize("data", [b"", b"\x04\x00", b"\x30\x03\xa1\x01\x00", b"\x30\x85\x00\x00\x00\x00\x01"])
def test_decode_ts_request_rejects_non_ts_requests(data: bytes) -> None:
    assert wire.decode_ts_request(data)["ok"] is False


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_der_parsers_never_raise(data: bytes) -> None:
    wire.decode_ts_request(data)
    wire.der_needed(data)
    wire.parse_ntlm_challenge(data)


@pytest.mark.parametrize("length", [0, 1, 127, 128, 255, 256, 70000])
def test_der_long_form_lengths(length: int) -> None:
    encoded = wire.der_tlv(0x04, b"\x00" * length)
    assert wire.der_header(encoded) == (0x04, len(encoded) - length, len(encoded))
    assert wire.der_needed(b"\x30" + encoded[1:]) == len(encoded)


def test_der_integer_is_minimal_twos_complement() -> None:
    assert wire.der_integer(6).hex() == "020106"
    assert wire.der_integer(128).hex() == "02020080"
    assert wire.der_integer(-1).hex() == "0201ff"


def test_der_needed_framing() -> None:
    assert wire.der_needed(b"") == 0
    assert wire.der_needed(b"\x30") == 0
    assert wire.der_needed(b"\x30\x82\x01") == 0
    assert wire.der_needed(b"\x30\x82\x01\x00") == 0x104
    assert wire.der_needed(b"SSH-2.0") is None


# --- NTLM CHALLENGE ----------------------------------------------------------------------------------

def build_challenge(av: list[tuple[int, bytes]], version: tuple[int, int, int] | None = (10, 0, 20348),
                    target: str = "CORP") -> bytes:
    """An NTLM CHALLENGE_MESSAGE as a Windows server sends it."""
    target_bytes = target.encode("utf-16-le")
    info = b"".join(struct.pack("<HH", av_id, len(value)) + value for av_id, value in av) + b"\x00\x00\x00\x00"
    flags = 0xE0898215 | (wire.NTLMSSP_NEGOTIATE_VERSION if version else 0)
    header_len = 56
    head = wire.NTLM_SIGNATURE + struct.pack("<I", 2)
    head += struct.pack("<HHI", len(target_bytes), len(target_bytes), header_len)
    head += struct.pack("<I", flags) + bytes.fromhex("0123456789abcdef") + b"\x00" * 8
    head += struct.pack("<HHI", len(info), len(info), header_len + len(target_bytes))
    head += struct.pack("<BBH3xB", *version, 15) if version else b"\x00" * 8
    return head + target_bytes + info


def filetime(when: dt.datetime) -> bytes:
    ticks = int((when - dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)).total_seconds() * 10_000_000)
    return struct.pack("<Q", ticks)


def test_parse_ntlm_challenge_reads_names_version_and_clock() -> None:
    when = dt.datetime(2026, 11, 21, 7, 0, 0, tzinfo=dt.timezone.utc)
    challenge = build_challenge([(2, "CORP".encode("utf-16-le")), (1, "WIN01".encode("utf-16-le")),
                                 (4, "corp.example.com".encode("utf-16-le")), (3, "win01.corp.example.com".encode("utf-16-le")),
                                 (5, "corp.example.com".encode("utf-16-le")), (7, filetime(when)), (6, b"\x02\x00\x00\x00"),
                                 (42, b"\xaa")])
    parsed = wire.parse_ntlm_challenge(challenge)
    assert parsed["ok"]
    assert (parsed["netbios_domain"], parsed["netbios_computer"], parsed["dns_computer"]) == (
        "CORP", "WIN01", "win01.corp.example.com")
    assert parsed["dns_domain"] == parsed["dns_tree"] == "corp.example.com"
    assert parsed["timestamp"] == "2026-11-21T07:00:00Z"
    assert parsed["os_version"] == "10.0.20348"
    assert parsed["target_name"] == "CORP"
    assert parsed["flags"] & wire.NTLMSSP_NEGOTIATE_VERSION
    assert parsed["server_challenge"] == "0123456789abcdef"
    assert parsed["av_42"] == "aa"
    assert parsed["av_flags"] == 2


def test_parse_ntlm_challenge_without_version() -> None:
    parsed = wire.parse_ntlm_challenge(build_challenge([], version=None))
    assert parsed["ok"] and "os_version" not in parsed


@pytest.mark.parametrize("data, error", [
    (b"NTLMSSP\x00" + struct.pack("<I", 1) + b"\x00" * 40, "expected 2"),
    (b"NOTNTLM\x00" + b"\x00" * 48, "not an NTLM message"),
])
def test_parse_ntlm_rejects_other_messages(data: bytes, error: str) -> None:
    parsed = wire.parse_ntlm_challenge(data)
    assert not parsed["ok"] and error in parsed["error"]


def test_filetime_conversion() -> None:
    assert wire.filetime_to_datetime(116444736000000000) == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    assert wire.filetime_to_datetime(2 ** 64 - 1) is None
