"""A bounded, deterministic fuzz of every wire and certificate parser (issue 10).

Structure-aware: the generators build TPKT/X.224 frames, TSRequests, NTLM CHALLENGEs, AV pairs, DER TLVs, PEM
bundles and mutated real certificates, so the examples reach the field checks rather than stopping at the first
header byte (test_rdp_wire.py already throws plain random bytes at the parsers). Every parser must return its
documented shape, JSON-ready, and never raise; the probe's judges must turn any parsed answer into a step.
``derandomize=True`` and no example database: the same examples on every run, no files written, well under
30 s for the whole module.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import typing as t

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe as probe_mod
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire as wire
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info
from tests.integration.realservers import certs as testcerts

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
FUZZ_CERTS = settings(FUZZ, max_examples=100)

X224_KINDS = {"negotiation_response", "negotiation_failure", "legacy_confirm", "disconnect_ultimatum",
              "disconnect_request", "not_rdp", "empty", "truncated", "malformed"}


def json_ready(value: t.Any) -> None:
    json.dumps(value)


# --- generators ------------------------------------------------------------------------------------------------------

@st.composite
def x224_frames(draw: st.DrawFn) -> bytes:
    """TPKT frames around X.224 TPDUs: real codes and negotiation structures with random fields and lengths."""
    code = draw(st.sampled_from([0xD0, 0xF0, 0x80, 0xE0, 0x70, 0x00, 0xFF]))
    neg_type = draw(st.sampled_from([1, 2, 3, 0, 9]))
    neg = struct.pack("<BBHI", neg_type, draw(st.integers(0, 255)), draw(st.sampled_from([8, 8, 8, 0, 9, 0xFFFF])),
                      draw(st.integers(0, 0xFFFFFFFF)))
    body = bytes([code]) + draw(st.binary(min_size=0, max_size=6)) + draw(st.sampled_from([neg, b"", neg[:5]]))
    length_indicator = draw(st.one_of(st.just(len(body)), st.integers(0, 255)))
    tpdu = bytes([length_indicator]) + body + draw(st.binary(max_size=8))
    total = draw(st.one_of(st.just(4 + len(tpdu)), st.integers(0, 0xFFFF)))
    frame = struct.pack(">BBH", 3, draw(st.sampled_from([0, 0, 1])), total) + tpdu
    return frame[:draw(st.integers(0, len(frame)))] if draw(st.booleans()) else frame


def der_tlv_strategy() -> st.SearchStrategy[bytes]:
    """DER-shaped TLVs, nested, with honest or lying lengths (long forms up to 9 octets)."""
    def tlv(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        return st.builds(_tlv, st.sampled_from([0x30, 0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0x02, 0x04, 0x06, 0x05]),
                         st.lists(children, max_size=4).map(b"".join), st.integers(-2, 2), st.integers(0, 9))
    return st.recursive(st.binary(max_size=12), tlv, max_leaves=12)


def _tlv(tag: int, content: bytes, lie: int, long_form: int) -> bytes:
    length = max(0, len(content) + lie)
    if long_form:
        octets = length.to_bytes(long_form, "big")
        return bytes([tag, 0x80 | long_form]) + octets + content
    return bytes([tag]) + wire.der_length(length) + content


@st.composite
def ntlm_challenges(draw: st.DrawFn) -> bytes:
    """CHALLENGE messages with random flags, target info offsets and AV pairs (names, timestamps, junk)."""
    pairs = draw(st.lists(st.tuples(st.integers(0, 12), st.binary(max_size=24)), max_size=8))
    info = b"".join(struct.pack("<HH", av_id, draw(st.one_of(st.just(len(value)), st.integers(0, 0xFFFF)))) + value
                    for av_id, value in pairs)
    if draw(st.booleans()):
        info += struct.pack("<HHQ", 7, 8, draw(st.integers(0, 2**64 - 1)))
    message_type = draw(st.sampled_from([2, 2, 2, 1, 3]))
    head = wire.NTLM_SIGNATURE + struct.pack("<I", message_type)
    head += struct.pack("<HHI", draw(st.integers(0, 0xFFFF)), 0, draw(st.integers(0, 0xFFFFFFFF)))
    head += struct.pack("<I", draw(st.integers(0, 0xFFFFFFFF))) + b"\x11" * 8 + b"\x00" * 8
    offset = draw(st.one_of(st.just(56), st.integers(0, 0xFFFFFFFF)))
    head += struct.pack("<HHI", draw(st.one_of(st.just(len(info)), st.integers(0, 0xFFFF))), 0, offset)
    head += draw(st.binary(min_size=0, max_size=8))
    return head + info


@pytest.fixture(scope="module")
def real_certificate() -> bytes:
    key = testcerts.make_key()
    ca = testcerts.make_ca(key, NOW)
    leaf = testcerts.make_server_cert(key, ["rdp-valid.test", "127.0.0.1"], NOW - dt.timedelta(days=1),
                                      NOW + dt.timedelta(days=90), (ca, key))
    return leaf.public_bytes(serialization.Encoding.DER)


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    """Overwrite bytes at positions (modulo the length) and optionally truncate."""
    buffer = bytearray(data)
    for position, value in edits:
        buffer[position % len(buffer)] = value
    return bytes(buffer[:cut]) if cut is not None else bytes(buffer)


# --- wire ----------------------------------------------------------------------------------------------------------------

@FUZZ
@given(x224_frames())
def test_x224_frames_always_classify(frame: bytes) -> None:
    answer = wire.parse_x224_answer(frame)
    assert answer["kind"] in X224_KINDS
    json_ready(answer)
    needed = wire.tpkt_needed(frame)
    assert needed is None or needed == 0 or needed >= wire.TPKT_HEADER_LEN + 2
    if answer["kind"] == "negotiation_response":
        assert 0 <= answer["selected_protocol"] <= 0xFFFFFFFF and isinstance(answer["selected_name"], str)


@FUZZ
@given(x224_frames(), st.sampled_from([None, 0x0B, 0x01, 0x00, 0x03]))
def test_the_probe_judges_any_parsed_answer(frame: bytes, requested: int | None) -> None:
    """Parsed answers of every shape, as the probe records them, always become an x224 and an nla step."""
    record = dict(wire.parse_x224_answer(frame), requested=requested, requested_hex=probe_mod.mix_label(requested),
                  status="complete", elapsed_ms=0.1)
    for records in ([record], [dict(record, requested=0x0B, requested_hex="0x0b"), record]):
        x224 = probe_mod.judge_x224(records)
        assert x224["verdict"] in ("ok", "warn", "fail")
        nla = probe_mod.judge_nla(records, None, True, 300.0)
        assert nla["verdict"] in ("ok", "warn", "fail", "skipped")
        probe_mod.judge_tls(None, records)
        json_ready([x224, nla])


@FUZZ
@given(st.one_of(der_tlv_strategy(), der_tlv_strategy().map(lambda inner: _tlv(0x30, inner, 0, 0))))
def test_der_readers_and_the_ts_request_decoder(data: bytes) -> None:
    header = wire.der_header(data)
    if header is not None:
        tag, start, end = header
        assert 0 <= tag <= 0xFF and 2 <= start <= end
    needed = wire.der_needed(data)
    assert needed is None or needed >= 0
    for _tag, start, end in wire.der_children(data, 0, len(data)):
        assert start <= end <= len(data)
    decoded = wire.decode_ts_request(data)
    assert isinstance(decoded["ok"], bool)
    json_ready({key: value for key, value in decoded.items() if key != "nego_tokens"})
    assert all(isinstance(token, bytes) for token in decoded.get("nego_tokens", []))


@FUZZ
@given(ntlm_challenges(), st.booleans())
def test_ntlm_challenges_and_av_pairs(message: bytes, wrapped: bool) -> None:
    data = wire.encode_ts_request(6, [message]) if wrapped else message
    if wrapped:
        decoded = wire.decode_ts_request(data)
        assert decoded["ok"] and decoded["nego_tokens"] == [message]
    challenge = wire.parse_ntlm_challenge(message)
    assert isinstance(challenge["ok"], bool)
    json_ready(challenge)
    json_ready(wire.parse_av_pairs(message[56:]))
    if challenge.get("timestamp"):
        dt.datetime.fromisoformat(challenge["timestamp"].replace("Z", "+00:00"))  # what credssp_first_step does with it


@FUZZ
@given(st.binary(max_size=20))
def test_oids_and_service_banners(data: bytes) -> None:
    oid = wire.oid_from_der(data)
    assert oid is None or all(part.isdigit() for part in oid.split("."))
    service = wire.classify_service(data)
    assert service["service"] in ("ssh", "http", "tls", "text", "unknown")
    json_ready(service)


# --- certificates ------------------------------------------------------------------------------------------------------

@FUZZ_CERTS
@given(edits=st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=6),
       cut=st.one_of(st.none(), st.integers(0, 2048)))
def test_mutated_certificates_are_analysed_or_unreadable(real_certificate: bytes, edits: list[tuple[int, int]],
                                                         cut: int | None) -> None:
    data = mutate(real_certificate, edits, cut)
    store = x509_info.TrustStore.from_pem("fuzz", real_certificate)
    result = x509_info.analyze_certificate(data, server_name="rdp-valid.test", now=NOW, trust_store=store,
                                           intermediates=[data, b"junk"])
    assert isinstance(result["ok"], bool)
    if result["ok"]:
        assert {problem["code"] for problem in result["problems"]} <= set(x509_info.PROBLEMS)
    else:
        assert result["error"].startswith("not a DER X.509 certificate")
    json_ready(result)
    step = probe_mod.judge_certificate(result, 1.0)
    assert step["verdict"] in ("ok", "warn", "fail")


@FUZZ_CERTS
@given(edits=st.lists(st.tuples(st.integers(0, 4096), st.integers(0, 255)), max_size=4),
       extra=st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=40)), max_size=3))
def test_bundles_of_mutated_blocks_load(real_certificate: bytes, edits: list[tuple[int, int]], extra: list[t.Any]) -> None:
    blocks = [real_certificate, mutate(real_certificate, edits, None)]
    blocks += [item.encode("utf-8", "surrogatepass") if isinstance(item, str) else item for item in extra]
    pem = b"".join(b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(block) + b"-----END CERTIFICATE-----\n"
                   for block in blocks)
    store = x509_info.TrustStore.from_pem("fuzz", pem)
    assert 1 <= store.count <= len(blocks) and store.error is None
    single = x509_info.TrustStore.from_pem("fuzz-der", mutate(real_certificate, edits, None))
    assert single.count in (0, 1) and (single.count == 1 or single.error)


@FUZZ
@given(st.one_of(st.text(max_size=60), st.binary(max_size=60)))
def test_to_der_and_template_readers(value: t.Any) -> None:
    try:
        der = x509_info.to_der(value)
    except ValueError:
        der = b""
    assert isinstance(der, bytes)
    result = x509_info.analyze_certificate(value, now=NOW)
    assert result["ok"] is False and isinstance(result["error"], str)
    raw = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    assert x509_info.template_name_from_der(raw) is None or isinstance(x509_info.template_name_from_der(raw), str)
    assert x509_info.template_info_from_der(raw) is None or "oid" in x509_info.template_info_from_der(raw)
    assert isinstance(x509_info.raw_extension_values(raw), dict)
