# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDP connection-sequence wire formats, as pure encode/parse functions (no I/O).

Covers what a client sends and reads before any credential is used:

* TPKT (RFC 1006) + X.224 (ISO 8073 class 0) Connection Request / Confirm, with the RDP negotiation
  structures RDP_NEG_REQ / RDP_NEG_RSP / RDP_NEG_FAILURE ([MS-RDPBCGR] 2.2.1.1 / 2.2.1.2);
* an X.224 Data TPDU carrying the MCS Disconnect-Provider-Ultimatum (old xrdp's answer to request flags
  it does not accept, see docs/probe.md);
* answers that are not RDP at all (SSH banner, HTTP, a TLS record, a text banner);
* the CredSSP TSRequest ([MS-CSSP] 2.2.1), in DER, with just enough ASN.1 to build and read it;
* NTLM NEGOTIATE and CHALLENGE messages ([MS-NLMP] 2.2.1.1 / 2.2.1.2) and their AV pairs.

Every parser returns a plain dict (JSON-ready) and never raises on malformed input: a malformed answer
is an observation to report, not a crash. Encoders raise ValueError on impossible arguments.
"""

from __future__ import annotations

import datetime as dt
import struct
import typing as t

# --- RDP negotiation constants ([MS-RDPBCGR] 2.2.1.1.1, 2.2.1.2.1, 2.2.1.2.2) ---------------------

PROTOCOL_RDP = 0x00
PROTOCOL_SSL = 0x01
PROTOCOL_HYBRID = 0x02
PROTOCOL_RDSTLS = 0x04
PROTOCOL_HYBRID_EX = 0x08
PROTOCOL_RDSAAD = 0x10

PROTOCOL_NAMES: dict[int, str] = {
    PROTOCOL_SSL: "SSL",
    PROTOCOL_HYBRID: "HYBRID",
    PROTOCOL_RDSTLS: "RDSTLS",
    PROTOCOL_HYBRID_EX: "HYBRID_EX",
    PROTOCOL_RDSAAD: "RDSAAD",
}

# Protocols that start with a TLS handshake right after the X.224 Connection Confirm.
TLS_PROTOCOLS = frozenset({PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX})
# Protocols that run CredSSP (NLA) inside that TLS channel.
CREDSSP_PROTOCOLS = frozenset({PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX})

TYPE_RDP_NEG_REQ = 0x01
TYPE_RDP_NEG_RSP = 0x02
TYPE_RDP_NEG_FAILURE = 0x03

NEG_FAILURE_NAMES: dict[int, str] = {
    0x01: "SSL_REQUIRED_BY_SERVER",
    0x02: "SSL_NOT_ALLOWED_BY_SERVER",
    0x03: "SSL_CERT_NOT_ON_SERVER",
    0x04: "INCONSISTENT_FLAGS",
    0x05: "HYBRID_REQUIRED_BY_SERVER",
    0x06: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}

NEG_RSP_FLAG_NAMES: dict[int, str] = {
    0x01: "EXTENDED_CLIENT_DATA_SUPPORTED",
    0x02: "DYNVC_GFX_PROTOCOL_SUPPORTED",
    0x04: "NEGRSP_FLAG_RESERVED",
    0x08: "RESTRICTED_ADMIN_MODE_SUPPORTED",
    0x10: "REDIRECTED_AUTHENTICATION_MODE_SUPPORTED",
}

# MCS DomainMCSPDU choice index of DisconnectProviderUltimatum (T.125), and its reasons.
MCS_DPUM_CHOICE = 8
MCS_DISCONNECT_REASONS: dict[int, str] = {
    0: "rn-domain-disconnected",
    1: "rn-provider-initiated",
    2: "rn-token-purged",
    3: "rn-user-requested",
    4: "rn-channel-purged",
}

X224_TPDU_CR = 0xE0
X224_TPDU_CC = 0xD0
X224_TPDU_DR = 0x80
X224_TPDU_DT = 0xF0

TPKT_VERSION = 0x03
TPKT_HEADER_LEN = 4
# Answers longer than this are not a Connection Confirm; reading stops there.
MAX_ANSWER_BYTES = 65536


def protocol_names(mask: int) -> list[str]:
    """Names of the protocol bits in ``mask``; ``["RDP"]`` for 0 (standard RDP security only)."""
    if mask == PROTOCOL_RDP:
        return ["RDP"]
    names = [name for bit, name in sorted(PROTOCOL_NAMES.items()) if mask & bit]
    unknown = mask & ~sum(PROTOCOL_NAMES)
    if unknown:
        names.append(f"0x{unknown:x}")
    return names


def selected_protocol_name(value: int) -> str:
    """Name of one selectedProtocol value (a single protocol, not a mask)."""
    if value == PROTOCOL_RDP:
        return "RDP"
    return PROTOCOL_NAMES.get(value, f"0x{value:x}")


def flag_names(flags: int, table: dict[int, str]) -> list[str]:
    """Names of the bits set in ``flags`` according to ``table``; unknown bits as hex."""
    names = [name for bit, name in sorted(table.items()) if flags & bit]
    unknown = flags & ~sum(table)
    if unknown:
        names.append(f"0x{unknown:x}")
    return names


# --- TPKT / X.224 -------------------------------------------------------------------------------------

def build_connection_request(requested_protocols: int | None, cookie: str | None = None, neg_flags: int = 0) -> bytes:
    """TPKT + X.224 Connection Request, optionally with a routing cookie and an RDP_NEG_REQ.

    ``requested_protocols=None`` sends no RDP_NEG_REQ at all (a pre-Vista client). ``cookie`` is the
    user name part of ``Cookie: mstshash=<cookie>\\r\\n``, which mstsc sends too; it also makes HTTP
    servers answer (they wait for a line end before replying).
    """
    if requested_protocols is not None and not 0 <= requested_protocols <= 0xFFFFFFFF:
        raise ValueError(f"requested_protocols out of range: {requested_protocols}")
    if not 0 <= neg_flags <= 0xFF:
        raise ValueError(f"neg_flags out of range: {neg_flags}")
    variable = b""
    if cookie:
        if any(ch in cookie for ch in "\r\n") or not cookie.isascii():
            raise ValueError("cookie must be ASCII without line breaks")
        variable += b"Cookie: mstshash=" + cookie.encode("ascii") + b"\r\n"
    if requested_protocols is not None:
        variable += struct.pack("<BBHI", TYPE_RDP_NEG_REQ, neg_flags, 8, requested_protocols)
    # Fixed part: code, DST-REF (2), SRC-REF (2), class option; the length indicator counts it too.
    tpdu_body = struct.pack(">BHHB", X224_TPDU_CR, 0, 0, 0) + variable
    length_indicator = len(tpdu_body)
    if length_indicator > 254:
        raise ValueError("cookie too long for one X.224 TPDU")
    tpdu = bytes([length_indicator]) + tpdu_body
    return struct.pack(">BBH", TPKT_VERSION, 0, TPKT_HEADER_LEN + len(tpdu)) + tpdu


def tpkt_needed(data: bytes) -> int | None:
    """Total bytes the TPKT packet starting ``data`` needs, 0 if the header is incomplete.

    None when ``data`` does not start like a TPKT packet (then the peer is not speaking RDP).
    """
    if not data:
        return 0
    if data[0] != TPKT_VERSION:
        return None
    if len(data) < TPKT_HEADER_LEN:
        return 0
    length = struct.unpack(">H", data[2:4])[0]
    if length < TPKT_HEADER_LEN + 2:
        return None
    return length


def parse_x224_answer(data: bytes) -> dict[str, t.Any]:
    """Classify the server's answer to a Connection Request.

    ``kind`` is one of: ``negotiation_response`` (CC + RDP_NEG_RSP: ``selected_protocol``, ``flags``),
    ``negotiation_failure`` (CC + RDP_NEG_FAILURE: ``failure_code``, ``failure_name``),
    ``legacy_confirm`` (CC without negotiation data: a server that ignores RDP_NEG_REQ),
    ``disconnect_ultimatum`` (Data TPDU with MCS Disconnect-Provider-Ultimatum: request rejected),
    ``disconnect_request`` (X.224 DR), ``not_rdp`` (see classify_service), ``empty``, ``truncated``,
    ``malformed``.
    """
    result: dict[str, t.Any] = {"kind": "empty", "raw": data[:256].hex()}
    if not data:
        return result
    needed = tpkt_needed(data)
    if needed is None and data[0] == TPKT_VERSION and len(data) >= TPKT_HEADER_LEN and data[1] == 0:
        # a TPKT header whose length cannot hold an X.224 TPDU: an RDP-like peer breaking the framing
        result.update(kind="malformed", tpkt_length=struct.unpack(">H", data[2:4])[0])
        return result
    if needed is None:
        result.update(kind="not_rdp", service=classify_service(data))
        return result
    if needed == 0 or len(data) < needed:
        result["kind"] = "truncated"
        return result
    tpdu = data[TPKT_HEADER_LEN:needed]
    length_indicator = tpdu[0]
    if length_indicator + 1 > len(tpdu) or length_indicator < 1:
        result["kind"] = "malformed"
        return result
    code = tpdu[1] & 0xF0
    if code == X224_TPDU_CC:
        result.update(_parse_connection_confirm(tpdu))
    elif code == X224_TPDU_DT:
        result.update(_parse_data_tpdu(tpdu[1 + length_indicator:]))
    elif code == X224_TPDU_DR:
        result["kind"] = "disconnect_request"
    else:
        result.update(kind="malformed", tpdu_code=f"0x{code:02x}")
    return result


def _parse_connection_confirm(tpdu: bytes) -> dict[str, t.Any]:
    """Fields of an X.224 CC TPDU (``tpdu`` starts at the length indicator)."""
    length_indicator = tpdu[0]
    if length_indicator < 6:
        return {"kind": "malformed"}
    _code, dst_ref, src_ref, class_option = struct.unpack(">BHHB", tpdu[1:7])
    out: dict[str, t.Any] = {"kind": "legacy_confirm", "dst_ref": dst_ref, "src_ref": src_ref,
                             "class_option": class_option}
    neg = tpdu[7:1 + length_indicator]
    if len(neg) < 8:
        return out
    neg_type, flags, neg_len, value = struct.unpack("<BBHI", neg[:8])
    if neg_len != 8:
        out.update(kind="malformed", neg_type=neg_type, neg_length=neg_len)
    elif neg_type == TYPE_RDP_NEG_RSP:
        out.update(kind="negotiation_response", selected_protocol=value,
                   selected_name=selected_protocol_name(value), flags=flags,
                   flag_names=flag_names(flags, NEG_RSP_FLAG_NAMES))
    elif neg_type == TYPE_RDP_NEG_FAILURE:
        out.update(kind="negotiation_failure", failure_code=value,
                   failure_name=NEG_FAILURE_NAMES.get(value, f"UNKNOWN_0x{value:x}"), flags=flags)
    else:
        out.update(kind="malformed", neg_type=neg_type)
    return out


def _parse_data_tpdu(payload: bytes) -> dict[str, t.Any]:
    """An X.224 Data TPDU in answer to a CR: only the MCS Disconnect-Provider-Ultimatum is expected."""
    if len(payload) >= 2 and payload[0] >> 2 == MCS_DPUM_CHOICE:
        # PER: 6 bits choice, then the 3-bit reason enumeration straddling the byte boundary.
        reason = ((payload[0] & 0x03) << 1) | (payload[1] >> 7)
        return {"kind": "disconnect_ultimatum", "mcs_reason": reason,
                "mcs_reason_name": MCS_DISCONNECT_REASONS.get(reason, str(reason))}
    return {"kind": "malformed", "tpdu_code": "0xf0"}


# TLS record content types and alert descriptions (RFC 8446 6, RFC 5246 7.2) seen from a bare TLS service.
_TLS_ALERTS: dict[int, str] = {
    0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac", 22: "record_overflow",
    40: "handshake_failure", 42: "bad_certificate", 47: "illegal_parameter", 50: "decode_error",
    51: "decrypt_error", 70: "protocol_version", 71: "insufficient_security", 80: "internal_error",
    90: "user_canceled", 109: "missing_extension", 112: "unrecognized_name",
}


def _printable_prefix(data: bytes, limit: int = 120) -> str:
    """The first line of ``data`` as text, non-printables escaped."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")[:limit]
    return line.decode("ascii", "backslashreplace")


def classify_service(data: bytes) -> dict[str, t.Any]:
    """Recognise a non-RDP service from the first bytes it sent (its banner or its error answer).

    ``service`` is ``ssh``, ``http``, ``tls``, ``text`` (a printable banner: SMTP, FTP, ...) or
    ``unknown``.
    """
    if data.startswith(b"SSH-"):
        return {"service": "ssh", "banner": _printable_prefix(data)}
    if data.startswith(b"HTTP/"):
        out: dict[str, t.Any] = {"service": "http", "status_line": _printable_prefix(data)}
        for line in data.split(b"\r\n")[1:]:
            if line.lower().startswith(b"server:"):
                out["server"] = line[7:].strip().decode("ascii", "backslashreplace")
        return out
    if data.lstrip()[:14].lower() in (b"<!doctype html", ) or data.lstrip()[:5].lower() == b"<html":
        # an HTTP/0.9-style reply: the error page without a status line
        return {"service": "http", "status_line": None, "body": _printable_prefix(data.lstrip())}
    if len(data) >= 3 and data[0] in (0x15, 0x16) and data[1] == 0x03:
        out = {"service": "tls", "record": "alert" if data[0] == 0x15 else "handshake",
               "record_version": f"0x03{data[2]:02x}"}
        if data[0] == 0x15 and len(data) >= 7:
            out["alert"] = _TLS_ALERTS.get(data[6], str(data[6]))
        if data[0] == 0x16 and len(data) >= 6 and data[5] == 0x02:
            out["handshake"] = "server_hello"
        return out
    head = data[:64]
    if head and all(32 <= byte < 127 or byte in (9, 10, 13) for byte in head):
        return {"service": "text", "banner": _printable_prefix(data)}
    return {"service": "unknown", "first_bytes": data[:16].hex()}


# --- Minimal DER (X.690) for the TSRequest --------------------------------------------------------

def der_length(length: int) -> bytes:
    """DER length octets."""
    if length < 0x80:
        return bytes([length])
    body = length.to_bytes((length.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def der_tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a single-byte tag."""
    return bytes([tag]) + der_length(len(content)) + content


def der_integer(value: int) -> bytes:
    """DER INTEGER (two's complement, minimal)."""
    size = max(1, (value.bit_length() + 8) // 8)
    return der_tlv(0x02, value.to_bytes(size, "big", signed=True))


def der_header(data: bytes, offset: int = 0) -> tuple[int, int, int] | None:
    """(tag, content_start, content_end) of the TLV at ``offset``; None if incomplete or invalid."""
    if len(data) < offset + 2:
        return None
    tag = data[offset]
    first = data[offset + 1]
    start = offset + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(data) < start + count:
            return None
        length = int.from_bytes(data[start:start + count], "big")
        start += count
    return tag, start, start + length


def der_needed(data: bytes) -> int | None:
    """Total bytes of the DER element starting ``data``: 0 while the header is incomplete, None if
    ``data`` does not start a SEQUENCE (then it is not a TSRequest)."""
    if not data:
        return 0
    if data[0] != 0x30:
        return None
    header = der_header(data)
    if header is None:
        return None if len(data) >= 6 else 0
    return header[2]


def der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    """The TLVs directly inside ``data[start:end]``; stops at the first invalid one."""
    children = []
    offset = start
    while offset < end:
        header = der_header(data, offset)
        if header is None or header[2] > end:
            break
        children.append(header)
        offset = header[2]
    return children


def der_oid(dotted: str) -> bytes:
    """DER OBJECT IDENTIFIER of a dotted string (X.690 8.19); ValueError on an impossible OID."""
    try:
        arcs = [int(part) for part in dotted.split(".")]
    except ValueError:
        raise ValueError(f"not a dotted OID: {dotted!r}") from None
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or any(arc < 0 for arc in arcs):
        raise ValueError(f"not a valid OID: {dotted!r}")
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1]] + arcs[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body += bytes(reversed(chunk))
    return der_tlv(0x06, bytes(body))


def oid_from_der(content: bytes) -> str | None:
    """Dotted string of an OBJECT IDENTIFIER's content octets; None when they are not a valid OID."""
    if not content or content[-1] & 0x80:
        return None
    arcs: list[int] = []
    value = 0
    starting = True
    for byte in content:
        if starting and byte == 0x80:
            return None  # a leading 0x80 octet is not minimal (X.690 8.19.2)
        value = (value << 7) | (byte & 0x7F)
        starting = not byte & 0x80
        if starting:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first] + arcs[1:])


def encode_ts_request(version: int, nego_tokens: t.Sequence[bytes]) -> bytes:
    """TSRequest ::= SEQUENCE { version [0] INTEGER, negoTokens [1] NegoData OPTIONAL }."""
    body = der_tlv(0xA0, der_integer(version))
    if nego_tokens:
        items = b"".join(der_tlv(0x30, der_tlv(0xA0, der_tlv(0x04, token))) for token in nego_tokens)
        body += der_tlv(0xA1, der_tlv(0x30, items))
    return der_tlv(0x30, body)


def _der_int_value(data: bytes, start: int, end: int) -> int | None:
    """Value of the INTEGER inside an explicit tag's content ``data[start:end]``."""
    inner = der_header(data, start)
    if inner is None or inner[0] != 0x02 or inner[2] > end:
        return None
    return int.from_bytes(data[inner[1]:inner[2]], "big", signed=True)


def decode_ts_request(data: bytes) -> dict[str, t.Any]:
    """Parse a TSRequest: version, negoTokens, errorCode and which other fields are present.

    ``ok`` is False (with ``error``) when ``data`` is not a well-formed TSRequest.
    """
    header = der_header(data)
    if header is None or header[0] != 0x30 or header[2] > len(data):
        return {"ok": False, "error": "not a DER SEQUENCE (not a TSRequest)", "raw": data[:64].hex()}
    out: dict[str, t.Any] = {"ok": True, "version": None, "nego_tokens": [], "error_code": None,
                             "fields": []}
    field_names = {0xA0: "version", 0xA1: "negoTokens", 0xA2: "authInfo", 0xA3: "pubKeyAuth",
                   0xA4: "errorCode", 0xA5: "clientNonce"}
    for tag, start, end in der_children(data, header[1], header[2]):
        out["fields"].append(field_names.get(tag, f"0x{tag:02x}"))
        if tag == 0xA0:
            out["version"] = _der_int_value(data, start, end)
        elif tag == 0xA4:
            code = _der_int_value(data, start, end)
            out["error_code"] = code & 0xFFFFFFFF if code is not None else None
        elif tag == 0xA1:
            out["nego_tokens"] = _nego_tokens(data, start, end)
    if out["version"] is None:
        out.update(ok=False, error="TSRequest without version")
    return out


def _nego_tokens(data: bytes, start: int, end: int) -> list[bytes]:
    """The negoToken OCTET STRINGs of a NegoData value."""
    tokens = []
    seq = der_header(data, start)
    if seq is None or seq[0] != 0x30:
        return tokens
    for _tag, item_start, item_end in der_children(data, seq[1], min(seq[2], end)):
        for field_tag, f_start, f_end in der_children(data, item_start, item_end):
            octets = der_header(data, f_start) if field_tag == 0xA0 else None
            if octets is not None and octets[0] == 0x04 and octets[2] <= f_end:
                tokens.append(data[octets[1]:octets[2]])
    return tokens


# --- NTLM ([MS-NLMP]) -------------------------------------------------------------------------------

NTLM_SIGNATURE = b"NTLMSSP\x00"
# UNICODE, OEM, REQUEST_TARGET, NTLM, ALWAYS_SIGN, EXTENDED_SESSIONSECURITY, TARGET_INFO, VERSION,
# 128, KEY_EXCH, 56: the flags mstsc-era clients send (0xe2888207 on the wire, little-endian).
NTLM_NEGOTIATE_FLAGS = 0xE2888207
NTLMSSP_NEGOTIATE_VERSION = 0x02000000

AV_IDS: dict[int, str] = {
    1: "netbios_computer", 2: "netbios_domain", 3: "dns_computer", 4: "dns_domain", 5: "dns_tree",
    6: "av_flags", 7: "timestamp", 8: "single_host", 9: "target_name", 10: "channel_bindings",
}

# Windows 1601-01-01 epoch (FILETIME) to Unix epoch, in 100 ns ticks.
_FILETIME_UNIX_OFFSET = 116444736000000000


def build_ntlm_negotiate(flags: int = NTLM_NEGOTIATE_FLAGS, version: tuple[int, int, int] = (10, 0, 19041)) -> bytes:
    """NTLM NEGOTIATE_MESSAGE without domain or workstation (no credentials, nothing to log on with)."""
    major, minor, build = version
    body = NTLM_SIGNATURE + struct.pack("<II", 1, flags)
    body += struct.pack("<HHI", 0, 0, 0) * 2  # DomainNameFields, WorkstationFields: empty
    body += struct.pack("<BBH3xB", major, minor, build, 15)  # Version, NTLMSSP_REVISION_W2K3
    return body


def filetime_to_datetime(filetime: int) -> dt.datetime | None:
    """A Windows FILETIME as an aware UTC datetime (None when out of range)."""
    try:
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(
            microseconds=(filetime - _FILETIME_UNIX_OFFSET) // 10)
    except OverflowError:
        return None


def _utf16_field(data: bytes, offset: int) -> str | None:
    """A (len, maxlen, offset) security buffer at ``offset`` decoded as UTF-16-LE."""
    if len(data) < offset + 8:
        return None
    length, _max, start = struct.unpack("<HHI", data[offset:offset + 8])
    if start + length > len(data):
        return None
    return data[start:start + length].decode("utf-16-le", "replace")


def parse_av_pairs(data: bytes) -> dict[str, t.Any]:
    """AV_PAIR list of a CHALLENGE's TargetInfo: names as str, timestamp as ISO UTC, flags as int."""
    out: dict[str, t.Any] = {}
    offset = 0
    while offset + 4 <= len(data):
        av_id, av_len = struct.unpack("<HH", data[offset:offset + 4])
        value = data[offset + 4:offset + 4 + av_len]
        offset += 4 + av_len
        if av_id == 0:
            break
        name = AV_IDS.get(av_id, f"av_{av_id}")
        if av_id in (1, 2, 3, 4, 5, 9):
            out[name] = value.decode("utf-16-le", "replace")
        elif av_id == 6:
            out[name] = struct.unpack("<I", value)[0] if len(value) == 4 else None
        elif av_id == 7:
            # MsvAvTimestamp is a FILETIME (8 bytes); any other length is no time, never a string to parse
            when = filetime_to_datetime(struct.unpack("<Q", value)[0]) if len(value) == 8 else None
            out[name] = when.isoformat().replace("+00:00", "Z") if when else None
        else:
            out[name] = value.hex()
    return out


def parse_ntlm_challenge(data: bytes) -> dict[str, t.Any]:
    """Parse an NTLM CHALLENGE_MESSAGE: flags, target name, AV pairs, OS version.

    ``ok`` is False (with ``error``) when ``data`` is not a CHALLENGE.
    """
    if len(data) < 48 or not data.startswith(NTLM_SIGNATURE):
        return {"ok": False, "error": "not an NTLM message", "raw": data[:32].hex()}
    message_type = struct.unpack("<I", data[8:12])[0]
    if message_type != 2:
        return {"ok": False, "error": f"NTLM message type {message_type}, expected 2 (CHALLENGE)"}
    flags = struct.unpack("<I", data[20:24])[0]
    out: dict[str, t.Any] = {"ok": True, "flags": flags, "target_name": _utf16_field(data, 12),
                             "server_challenge": data[24:32].hex()}
    info_len, _max, info_start = struct.unpack("<HHI", data[40:48])
    if info_start + info_len <= len(data):
        out.update(parse_av_pairs(data[info_start:info_start + info_len]))
    if flags & NTLMSSP_NEGOTIATE_VERSION and len(data) >= 56:
        major, minor, build = struct.unpack("<BBH", data[48:52])
        out["os_version"] = f"{major}.{minor}.{build}"
        out["ntlm_revision"] = data[55]
    return out
