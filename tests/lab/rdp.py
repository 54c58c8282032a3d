"""The lab's RDP listener: one asyncio TCP listener per simulated Windows host (contracts sections 7 and 9).

A listener answers like the host model says Windows would, up to the first CredSSP round trip:

1. X.224 Connection Request (TPKT, optional cookie / routing token, optional RDP_NEG_REQ) ->
   Connection Confirm with RDP_NEG_RSP or RDP_NEG_FAILURE, chosen by ``decide()`` from the
   behaviour's SecurityLayer, NLA, certificate/key and enabled TLS versions.
2. TLS (when SSL, HYBRID or HYBRID_EX was selected) with the host's current listener certificate. The
   ClientHello is read first so the version can be chosen the way Schannel does: the highest version
   both sides enable, even when the enabled set has holes (e.g. TLS 1.0 + TLS 1.3, which OpenSSL's
   min/max range cannot express). The handshake then runs through memory BIOs on the same stream.
3. CredSSP step 1 (HYBRID / HYBRID_EX): a TSRequest carrying an NTLM NEGOTIATE (raw or SPNEGO-wrapped)
   is answered with a TSRequest version 6 carrying an NTLM CHALLENGE: the host's NetBIOS/DNS names,
   OS version and clock (incl. the model's clock offset).

The lab stops there: anything the client sends next (MCS Connect-Initial after RDP/SSL, the NTLM
AUTHENTICATE after the CHALLENGE) closes the connection, and so does silence after ``timeout`` seconds.
Garbage closes the connection; nothing a client sends can stop the listener or the process.

Everything runs in the lab server's single asyncio loop (one coroutine per connection, no threads). The
behaviour is re-evaluated on every accepted connection, so certificate, TLS versions and security
layer changes apply at once; the listening socket itself only opens, closes or moves on ``sync()``.
A host that does not accept gets no socket (clients see "connection refused"), unless its behaviour is
``filtered`` (a firewall-only block with ``firewall_blocks: drop``): then a ``BlackHole`` holds the port,
a bound socket with a full accept queue, so the kernel drops every SYN and clients time out, as behind
Windows Defender Firewall.
The DER and NTLM code here is written independently of the probe's ``module_utils`` on purpose: two
implementations of the same bytes catch each other's bugs.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import logging
import os
import socket
import ssl
import struct
import tempfile
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # only for annotations: the listener works with any object carrying these fields
    from tests.lab.behaviour import ListenerBehaviour

LOG = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0          # seconds a client may stay silent before the listener closes
MAX_FILLERS = 2                 # own connections that fill a BlackHole's accept queue (listen(0) holds one on Linux)
FILL_TIMEOUT = 1.0              # a filler not connected by then had its SYN dropped: the queue is full already
# struct tcp_info (linux/tcp.h): 8 one-byte fields, rto, ato, snd_mss, rcv_mss, then unacked and sacked, which
# for a listening socket hold the accept queue's length and its backlog (tcp_get_info).
_TCP_INFO_QUEUE = struct.Struct("<24xII")
MAX_TPKT = 4096                 # a Connection Request is tens of bytes; anything bigger is garbage
MAX_TLS_RECORD = 16384 + 2048   # TLSCiphertext limit (RFC 8446 5.2)
MAX_TS_REQUEST = 65536          # a first TSRequest is ~60-300 bytes

# requestedProtocols / selectedProtocol bits, [MS-RDPBCGR] 2.2.1.1.1
PROTOCOL_RDP = 0x00
PROTOCOL_SSL = 0x01
PROTOCOL_HYBRID = 0x02
PROTOCOL_RDSTLS = 0x04
PROTOCOL_HYBRID_EX = 0x08
PROTOCOL_RDSAAD = 0x10

# RDP_NEG_FAILURE failureCode, [MS-RDPBCGR] 2.2.1.2.2
SSL_REQUIRED_BY_SERVER = 1
SSL_NOT_ALLOWED_BY_SERVER = 2
SSL_CERT_NOT_ON_SERVER = 3
INCONSISTENT_FLAGS = 4
HYBRID_REQUIRED_BY_SERVER = 5
SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER = 6

PROTOCOL_NAMES = {PROTOCOL_RDP: "RDP", PROTOCOL_SSL: "SSL", PROTOCOL_HYBRID: "HYBRID", PROTOCOL_HYBRID_EX: "HYBRID_EX"}
FAILURE_NAMES = {
    SSL_REQUIRED_BY_SERVER: "SSL_REQUIRED_BY_SERVER", SSL_NOT_ALLOWED_BY_SERVER: "SSL_NOT_ALLOWED_BY_SERVER",
    SSL_CERT_NOT_ON_SERVER: "SSL_CERT_NOT_ON_SERVER", INCONSISTENT_FLAGS: "INCONSISTENT_FLAGS",
    HYBRID_REQUIRED_BY_SERVER: "HYBRID_REQUIRED_BY_SERVER",
    SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER: "SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER",
}

TYPE_RDP_NEG_REQ = 0x01
TYPE_RDP_NEG_RSP = 0x02
TYPE_RDP_NEG_FAILURE = 0x03

# RDP_NEG_RSP flags: EXTENDED_CLIENT_DATA_SUPPORTED 0x01 | DYNVC_GFX_PROTOCOL_SUPPORTED 0x02 |
# NEGRSP_FLAG_RESERVED 0x04 | RESTRICTED_ADMIN_MODE_SUPPORTED 0x08 | REDIRECTED_AUTHENTICATION_MODE_SUPPORTED
# 0x10 ([MS-RDPBCGR] 2.2.1.2.1). Every flag the spec defines; Windows 10 / Server 2016+ advertise all of
# them (remembered from captures, not in our references - an inference). Clients only read them as hints.
NEG_RSP_FLAGS = 0x1F
# X.224 SRC-REF of the Connection Confirm: 0x1234, as in the [MS-RDPBCGR] 4.1.2 sample trace and xrdp
# (real-rdp-servers.md section 2); FreeRDP sends 0. Probes may use it as a fingerprint, nothing depends on it.
CC_SRC_REF = 0x1234

TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")   # ascending; names as in ListenerBehaviour
_TLS_WIRE_VERSIONS = {0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
_SSL_VERSIONS = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                 "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}


class ProtocolError(ValueError):
    """The client sent something the listener does not accept; the connection is closed."""


# --------------------------------------------------------------------------------------------------
# X.224 negotiation (pure)
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class ConnectionRequest:
    """A parsed X.224 Connection Request."""

    src_ref: int
    cookie: bytes                    # the cookie / routing token line without CRLF, b"" when absent
    requested_protocols: int | None  # None: no RDP_NEG_REQ (a pre-RDP-5.2-style client)
    neg_flags: int = 0


@dataclasses.dataclass(frozen=True)
class NegotiationAnswer:
    """What the server answers: a selected protocol or a failure code (exactly one is set)."""

    selected_protocol: int | None = None
    failure_code: int | None = None

    @property
    def label(self) -> str:
        """Counter / log name: RDP, SSL, HYBRID, HYBRID_EX or the failure code's name."""
        if self.failure_code is not None:
            return FAILURE_NAMES.get(self.failure_code, f"FAILURE_{self.failure_code}")
        return PROTOCOL_NAMES.get(self.selected_protocol or 0, f"PROTOCOL_{self.selected_protocol}")

    @property
    def uses_tls(self) -> bool:
        """True when a TLS handshake follows the Connection Confirm."""
        return self.failure_code is None and self.selected_protocol in (PROTOCOL_SSL, PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX)

    @property
    def uses_credssp(self) -> bool:
        """True when CredSSP follows the TLS handshake."""
        return self.failure_code is None and self.selected_protocol in (PROTOCOL_HYBRID, PROTOCOL_HYBRID_EX)


def parse_connection_request(tpkt: bytes) -> ConnectionRequest:
    """Parse a whole TPKT carrying an X.224 Connection Request ([MS-RDPBCGR] 2.2.1.1).

    Raises ProtocolError for anything else (wrong TPKT version or length, not a CR, malformed
    RDP_NEG_REQ). A cookie or routing token is a line ending in CRLF before the optional RDP_NEG_REQ.
    """
    if len(tpkt) < 11 or tpkt[0] != 3 or int.from_bytes(tpkt[2:4], "big") != len(tpkt):
        raise ProtocolError("not a TPKT of the announced length")
    if tpkt[4] != len(tpkt) - 5:
        raise ProtocolError(f"X.224 length indicator {tpkt[4]} does not match the TPKT")
    if tpkt[5] & 0xF0 != 0xE0:
        raise ProtocolError(f"X.224 TPDU code 0x{tpkt[5]:02x} is not a Connection Request")
    src_ref = int.from_bytes(tpkt[8:10], "big")
    rest = tpkt[11:]
    cookie = b""
    if rest and rest[0] != TYPE_RDP_NEG_REQ:
        end = rest.find(b"\r\n")
        if end < 0:
            raise ProtocolError("cookie / routing token without CRLF")
        cookie, rest = rest[:end], rest[end + 2:]
    if not rest:
        return ConnectionRequest(src_ref, cookie, None)
    if len(rest) < 8 or rest[0] != TYPE_RDP_NEG_REQ:
        raise ProtocolError("trailing data is not an RDP_NEG_REQ")
    _unused, flags, length, requested = struct.unpack("<BBHI", rest[:8])
    if length != 8:
        raise ProtocolError(f"RDP_NEG_REQ length {length} != 8")
    # Anything after it (RDP_NEG_CORRELATION_INFO when flags has CORRELATION_INFO_PRESENT) is ignored.
    return ConnectionRequest(src_ref, cookie, requested, flags)


# one return per Windows answer reads better than a table here
def decide(requested: int | None, behaviour: ListenerBehaviour, tls_ready: bool) -> NegotiationAnswer:  # pylint: disable=too-many-return-statements
    """Choose the negotiation answer the way Windows does (contracts section 9, windows-rdp-facts.md section 3).

    ``requested`` is RDP_NEG_REQ.requestedProtocols, None when the request had none (treated as
    PROTOCOL_RDP only). ``tls_ready``: a TLS server credential can be built (certificate, its readable
    private key and at least one enabled TLS version), see ``credential_ready()``.

    Order and the cases the references do not pin down (inferences, marked):
    * SecurityLayer 0: any TLS-based request -> SSL_NOT_ALLOWED_BY_SERVER [S29 + facts section 3];
      an RDP-only request with NLA required -> HYBRID_REQUIRED_BY_SERVER (inference: NLA needs CredSSP,
      which needs TLS, so such a host accepts no client at all); else PROTOCOL_RDP.
    * NLA required and neither HYBRID nor HYBRID_EX offered -> HYBRID_REQUIRED_BY_SERVER, also before
      SSL_REQUIRED for an RDP-only request (what NLA-enforcing Windows hosts answer to rdp-sec-check's
      PROTOCOL_RDP probe; contracts section 9 lists F5 first).
    * Only RDP offered (incl. no RDP_NEG_REQ): SecurityLayer 2 -> SSL_REQUIRED_BY_SERVER; 1 -> RDP.
      For a request without RDP_NEG_REQ [MS-RDPBCGR] 3.3.5.3.2 lets the server send a failure when it
      requires TLS/CredSSP; that Windows does so is an inference (xrdp sends a plain CC instead).
    * TLS would be selected but no credential -> SSL_CERT_NOT_ON_SERVER [S29, facts sections 1/3].
    * NLA required -> HYBRID (HYBRID_EX when only that was offered; HYBRID_EX is treated like HYBRID).
      NLA not required -> SSL when offered, else HYBRID / HYBRID_EX (the lab's rule per contracts
      section 9, "0x0B -> SSL means no NLA", real-rdp-servers.md section 2; a real Windows host with
      NLA optional may pick HYBRID for 0x0B).
    RDSTLS / RDSAAD bits are ignored: Windows uses RDSTLS only for redirected connections (inference).
    """
    offered = requested or 0
    tls_offered = bool(offered & (PROTOCOL_SSL | PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX))
    hybrid_offered = bool(offered & (PROTOCOL_HYBRID | PROTOCOL_HYBRID_EX))
    layer = behaviour.security_layer if behaviour.security_layer in (0, 1) else 2
    if layer == 0:
        if tls_offered:
            return NegotiationAnswer(failure_code=SSL_NOT_ALLOWED_BY_SERVER)
        if behaviour.nla_required:
            return NegotiationAnswer(failure_code=HYBRID_REQUIRED_BY_SERVER)
        return NegotiationAnswer(selected_protocol=PROTOCOL_RDP)
    if behaviour.nla_required and not hybrid_offered:
        return NegotiationAnswer(failure_code=HYBRID_REQUIRED_BY_SERVER)
    if not tls_offered:
        if layer == 2:
            return NegotiationAnswer(failure_code=SSL_REQUIRED_BY_SERVER)
        return NegotiationAnswer(selected_protocol=PROTOCOL_RDP)
    if not tls_ready:
        return NegotiationAnswer(failure_code=SSL_CERT_NOT_ON_SERVER)
    hybrid = PROTOCOL_HYBRID if offered & PROTOCOL_HYBRID else PROTOCOL_HYBRID_EX
    if behaviour.nla_required:
        return NegotiationAnswer(selected_protocol=hybrid)
    return NegotiationAnswer(selected_protocol=PROTOCOL_SSL if offered & PROTOCOL_SSL else hybrid)


def encode_confirm(answer: NegotiationAnswer, request: ConnectionRequest) -> bytes:
    """TPKT + X.224 Connection Confirm with RDP_NEG_RSP / RDP_NEG_FAILURE ([MS-RDPBCGR] 2.2.1.2).

    A request without RDP_NEG_REQ that gets PROTOCOL_RDP is answered with a bare CC: "negotiation
    data MUST NOT be sent" to such a client ([MS-RDPBCGR] 3.3.5.3.1).
    """
    header = struct.pack(">BHHB", 0xD0, 0, CC_SRC_REF, 0)  # CC, DST-REF 0, SRC-REF, class 0
    if answer.failure_code is not None:
        neg = struct.pack("<BBHI", TYPE_RDP_NEG_FAILURE, 0, 8, answer.failure_code)
    elif request.requested_protocols is None:
        neg = b""
    else:
        neg = struct.pack("<BBHI", TYPE_RDP_NEG_RSP, NEG_RSP_FLAGS, 8, answer.selected_protocol or 0)
    x224 = bytes([len(header) + len(neg)]) + header + neg
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


# --------------------------------------------------------------------------------------------------
# TLS (pure helpers + cached contexts)
# --------------------------------------------------------------------------------------------------

def client_hello_versions(record: bytes) -> frozenset[str]:
    """TLS versions a ClientHello record offers: its supported_versions extension, else every version up
    to legacy_version (RFC 8446 4.2.1, RFC 5246 E.1). Unknown values (GREASE, SSL 3.0) are ignored.

    Raises ProtocolError when ``record`` is not a TLS handshake record starting a ClientHello.
    """
    if len(record) < 5 + 6 or record[0] != 0x16 or record[5] != 0x01:
        raise ProtocolError("not a TLS ClientHello")
    body = record[5:]
    legacy = int.from_bytes(body[4:6], "big")
    fallback = frozenset(name for wire, name in _TLS_WIRE_VERSIONS.items() if wire <= legacy)
    try:
        offered = _supported_versions(body)
    except (IndexError, struct.error):
        return fallback  # truncated hello: OpenSSL will judge it; keep the legacy view
    return fallback if offered is None else offered


def _supported_versions(hello: bytes) -> frozenset[str] | None:
    """Walk a ClientHello handshake message to its supported_versions extension (type 43), if any."""
    pos = 4 + 2 + 32                                   # header, legacy_version, random
    pos += 1 + hello[pos]                              # session id
    pos += 2 + struct.unpack_from(">H", hello, pos)[0]  # cipher suites
    pos += 1 + hello[pos]                              # compression methods
    if pos + 2 > len(hello):
        return None
    end = min(len(hello), pos + 2 + struct.unpack_from(">H", hello, pos)[0])
    pos += 2
    while pos + 4 <= end:
        ext_type, ext_len = struct.unpack_from(">HH", hello, pos)
        data = hello[pos + 4:pos + 4 + ext_len]
        if ext_type == 43 and data:
            listed = data[1:1 + data[0]]
            wires = [int.from_bytes(listed[i:i + 2], "big") for i in range(0, len(listed) - 1, 2)]
            return frozenset(_TLS_WIRE_VERSIONS[w] for w in wires if w in _TLS_WIRE_VERSIONS)
        pos += 4 + ext_len
    return None


def enabled_tls_versions(behaviour: ListenerBehaviour) -> tuple[str, ...]:
    """The behaviour's enabled versions the lab can serve, ascending."""
    return tuple(v for v in TLS_VERSIONS if v in behaviour.tls_versions)


def pick_tls_version(offered: frozenset[str], enabled: tuple[str, ...]) -> str | None:
    """Schannel's choice: the highest version both sides enable.

    Without a common version the highest enabled one is used, so the handshake fails with the
    protocol_version alert a server sends in that case. None when nothing is enabled.
    """
    common = [v for v in enabled if v in offered]
    if common:
        return common[-1]
    return enabled[-1] if enabled else None


@functools.lru_cache(maxsize=1024)
def server_ssl_context(cert_pem: bytes, key_pem: bytes, version: str) -> ssl.SSLContext | None:
    """A server context serving exactly ``version`` with this certificate/key, or None when the pair is
    unusable (unparsable, key does not match) - Windows then cannot build its TLS credential.

    Cached: 200 hosts share few certificates and versions, and building a context costs a PEM parse.
    Ciphers use @SECLEVEL=0: OpenSSL 3 refuses TLS 1.0/1.1 and small keys otherwise, Schannel does not.
    """
    tls_version = _SSL_VERSIONS.get(version)
    if tls_version is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():  # TLSVersion.TLSv1 / TLSv1_1 are deprecated; the lab needs them anyway
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = tls_version
        context.maximum_version = tls_version
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with tempfile.NamedTemporaryFile(suffix=".pem") as chain:  # load_cert_chain only reads files
        chain.write(key_pem + b"\n" + cert_pem)
        chain.flush()
        try:
            context.load_cert_chain(chain.name)
        except (ssl.SSLError, OSError, ValueError):
            return None
    return context


def credential_ready(behaviour: ListenerBehaviour) -> bool:
    """Can the host build its TLS server credential (cert + readable matching key + an enabled version)?"""
    enabled = enabled_tls_versions(behaviour)
    if not enabled or behaviour.certificate_pem is None or behaviour.private_key_pem is None:
        return False
    return server_ssl_context(behaviour.certificate_pem, behaviour.private_key_pem, enabled[-1]) is not None


# --------------------------------------------------------------------------------------------------
# DER (pure, the small subset TSRequest and SPNEGO need)
# --------------------------------------------------------------------------------------------------

def der_encode(tag: int, content: bytes) -> bytes:
    """One DER TLV with a definite, minimal length."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    raw = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(raw)]) + raw + content


def der_integer(value: int) -> bytes:
    """A DER INTEGER (two's complement, minimal)."""
    size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
    return der_encode(0x02, value.to_bytes(size, "big", signed=True))


def der_read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """Read the TLV at ``pos``: (tag, content, position after it). Single-byte tags only."""
    if pos + 2 > len(data):
        raise ProtocolError("truncated DER")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first & 0x80:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ProtocolError("bad DER length")
        size = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    else:
        size = first
    if pos + size > len(data):
        raise ProtocolError("DER content runs past the buffer")
    return tag, data[pos:pos + size], pos + size


def der_children(content: bytes) -> list[tuple[int, bytes]]:
    """All TLVs inside a constructed value's content."""
    children, pos = [], 0
    while pos < len(content):
        tag, value, pos = der_read(content, pos)
        children.append((tag, value))
    return children


def der_message_size(data: bytes) -> int | None:
    """Total size of the DER SEQUENCE starting ``data``, or None while its header is incomplete."""
    if not data:
        return None
    if data[0] != 0x30:
        raise ProtocolError(f"expected a DER SEQUENCE, got tag 0x{data[0]:02x}")
    if len(data) < 2:
        return None
    if data[1] < 0x80:
        return 2 + data[1]
    count = data[1] & 0x7F
    if count == 0 or count > 4:
        raise ProtocolError("bad DER length")
    if len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2:2 + count], "big")


@dataclasses.dataclass(frozen=True)
class TsRequest:
    """The parts of a [MS-CSSP] 2.2.1 TSRequest the lab reads."""

    version: int
    nego_tokens: tuple[bytes, ...]
    error_code: int | None = None


def parse_ts_request(data: bytes) -> TsRequest:
    """Parse a DER TSRequest: version [0] INTEGER, negoTokens [1] SEQUENCE OF SEQUENCE {[0] OCTET STRING}."""
    tag, content, end = der_read(data)
    if tag != 0x30 or end != len(data):
        raise ProtocolError("TSRequest is not one DER SEQUENCE")
    fields = dict(der_children(content))
    if 0xA0 not in fields:
        raise ProtocolError("TSRequest without version")
    version = _explicit_integer(fields[0xA0])
    tokens: list[bytes] = []
    if 0xA1 in fields:
        tag, nego_data, _unused = der_read(fields[0xA1])
        if tag != 0x30:
            raise ProtocolError("negoTokens is not a SEQUENCE OF")
        for item_tag, item in der_children(nego_data):
            item_fields = dict(der_children(item)) if item_tag == 0x30 else {}
            if 0xA0 not in item_fields:
                raise ProtocolError("NegoData item without negoToken")
            token_tag, token, _unused = der_read(item_fields[0xA0])
            if token_tag != 0x04:
                raise ProtocolError("negoToken is not an OCTET STRING")
            tokens.append(token)
    error = _explicit_integer(fields[0xA4]) if 0xA4 in fields else None
    return TsRequest(version, tuple(tokens), error)


def _explicit_integer(wrapped: bytes) -> int:
    """The INTEGER inside an explicit context tag's content."""
    tag, value, _unused = der_read(wrapped)
    if tag != 0x02 or not value:
        raise ProtocolError("expected an INTEGER")
    return int.from_bytes(value, "big", signed=True)


def encode_ts_request(version: int, nego_tokens: tuple[bytes, ...] = (), error_code: int | None = None) -> bytes:
    """DER TSRequest with version, optional negoTokens and optional errorCode."""
    body = der_encode(0xA0, der_integer(version))
    if nego_tokens:
        items = b"".join(der_encode(0x30, der_encode(0xA0, der_encode(0x04, t))) for t in nego_tokens)
        body += der_encode(0xA1, der_encode(0x30, items))
    if error_code is not None:
        body += der_encode(0xA4, der_integer(error_code))
    return der_encode(0x30, body)


# --------------------------------------------------------------------------------------------------
# NTLM / SPNEGO (pure)
# --------------------------------------------------------------------------------------------------

NTLM_SIGNATURE = b"NTLMSSP\x00"
SPNEGO_OID = bytes.fromhex("06062b0601050502")            # 1.3.6.1.5.5.2
NTLM_OID = bytes.fromhex("060a2b06010401823702020a")  # 1.3.6.1.4.1.311.2.2.10

# NEGOTIATE flags, [MS-NLMP] 2.2.2.5
NTLMSSP_NEGOTIATE_UNICODE = 0x00000001
NTLMSSP_REQUEST_TARGET = 0x00000004
NTLMSSP_NEGOTIATE_SIGN = 0x00000010
NTLMSSP_NEGOTIATE_SEAL = 0x00000020
NTLMSSP_NEGOTIATE_NTLM = 0x00000200
NTLMSSP_NEGOTIATE_ALWAYS_SIGN = 0x00008000
NTLMSSP_TARGET_TYPE_DOMAIN = 0x00010000
NTLMSSP_TARGET_TYPE_SERVER = 0x00020000
NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY = 0x00080000
NTLMSSP_NEGOTIATE_TARGET_INFO = 0x00800000
NTLMSSP_NEGOTIATE_VERSION = 0x02000000
NTLMSSP_NEGOTIATE_128 = 0x20000000
NTLMSSP_NEGOTIATE_KEY_EXCH = 0x40000000
NTLMSSP_NEGOTIATE_56 = 0x80000000
# client flags the server echoes when offered (it supports all of them)
_ECHOED_FLAGS = (NTLMSSP_NEGOTIATE_SIGN | NTLMSSP_NEGOTIATE_SEAL | NTLMSSP_NEGOTIATE_ALWAYS_SIGN
                 | NTLMSSP_NEGOTIATE_EXTENDED_SESSIONSECURITY | NTLMSSP_NEGOTIATE_128 | NTLMSSP_NEGOTIATE_KEY_EXCH
                 | NTLMSSP_NEGOTIATE_56)
# always set: Unicode names, a target name and target info, the Version field ([MS-NLMP] 3.2.5.1.1)
_SERVER_FLAGS = (NTLMSSP_NEGOTIATE_UNICODE | NTLMSSP_REQUEST_TARGET | NTLMSSP_NEGOTIATE_NTLM
                 | NTLMSSP_NEGOTIATE_TARGET_INFO | NTLMSSP_NEGOTIATE_VERSION)

# AV pair ids, [MS-NLMP] 2.2.2.1
MSV_AV_EOL = 0
MSV_AV_NB_COMPUTER_NAME = 1
MSV_AV_NB_DOMAIN_NAME = 2
MSV_AV_DNS_COMPUTER_NAME = 3
MSV_AV_DNS_DOMAIN_NAME = 4
MSV_AV_DNS_TREE_NAME = 5
MSV_AV_TIMESTAMP = 7

FILETIME_UNIX_EPOCH = 116444736000000000  # 1970-01-01 in 100 ns units since 1601-01-01
NTLM_REVISION_W2K3 = 15


def filetime(unix_seconds: float) -> int:
    """Windows FILETIME (100 ns since 1601) for a Unix time."""
    return FILETIME_UNIX_EPOCH + int(round(unix_seconds * 10_000_000))


def parse_ntlm_negotiate(message: bytes) -> int:
    """NegotiateFlags of an NTLM NEGOTIATE_MESSAGE ([MS-NLMP] 2.2.1.1); ProtocolError otherwise."""
    if len(message) < 16 or not message.startswith(NTLM_SIGNATURE):
        raise ProtocolError("not an NTLM message")
    message_type, flags = struct.unpack_from("<II", message, 8)
    if message_type != 1:
        raise ProtocolError(f"NTLM message type {message_type} is not NEGOTIATE")
    return flags


def unwrap_nego_token(token: bytes) -> tuple[bytes, bool]:
    """The NTLM message inside a negoToken: raw NTLMSSP, or the mechToken of an SPNEGO NegTokenInit
    (RFC 4178 4.2.1) that offers NTLM. Returns (ntlm, was_spnego)."""
    if token.startswith(NTLM_SIGNATURE):
        return token, False
    tag, content, _unused = der_read(token)
    if tag != 0x60 or not content.startswith(SPNEGO_OID):
        raise ProtocolError("negoToken is neither NTLM nor SPNEGO")
    tag, init, _unused = der_read(content, len(SPNEGO_OID))
    if tag != 0xA0:
        raise ProtocolError("SPNEGO token is not a NegTokenInit")
    tag, sequence, _unused = der_read(init)
    fields = dict(der_children(sequence)) if tag == 0x30 else {}
    if 0xA0 not in fields or NTLM_OID not in fields[0xA0] or 0xA2 not in fields:
        raise ProtocolError("SPNEGO NegTokenInit without an NTLM mechToken")
    tag, mech_token, _unused = der_read(fields[0xA2])
    if tag != 0x04:
        raise ProtocolError("mechToken is not an OCTET STRING")
    return mech_token, True


def wrap_spnego_response(ntlm: bytes) -> bytes:
    """SPNEGO NegTokenResp: negState accept-incomplete, supportedMech NTLM, responseToken (RFC 4178 4.2.2)."""
    fields = (der_encode(0xA0, der_encode(0x0A, b"\x01")) + der_encode(0xA1, NTLM_OID)
              + der_encode(0xA2, der_encode(0x04, ntlm)))
    return der_encode(0xA1, der_encode(0x30, fields))


def _av_pair(av_id: int, value: bytes) -> bytes:
    return struct.pack("<HH", av_id, len(value)) + value


def ntlm_target_info(behaviour: ListenerBehaviour, timestamp: int) -> bytes:
    """AV pairs in Windows' order. A workgroup host names itself as domain (behaviour.domain ==
    netbios_name); only domain members add MsvAvDnsTreeName (the forest, taken = dns_domain)."""
    def utf16(text: str) -> bytes:
        return text.encode("utf-16-le")
    pairs = [_av_pair(MSV_AV_NB_DOMAIN_NAME, utf16(behaviour.domain)),
             _av_pair(MSV_AV_NB_COMPUTER_NAME, utf16(behaviour.netbios_name)),
             _av_pair(MSV_AV_DNS_DOMAIN_NAME, utf16(behaviour.dns_domain)),
             _av_pair(MSV_AV_DNS_COMPUTER_NAME, utf16(behaviour.dns_name))]
    if _domain_member(behaviour) and behaviour.dns_domain:
        pairs.append(_av_pair(MSV_AV_DNS_TREE_NAME, utf16(behaviour.dns_domain)))
    pairs.append(_av_pair(MSV_AV_TIMESTAMP, struct.pack("<Q", timestamp)))
    pairs.append(_av_pair(MSV_AV_EOL, b""))
    return b"".join(pairs)


def _domain_member(behaviour: ListenerBehaviour) -> bool:
    return behaviour.domain.upper() != behaviour.netbios_name.upper()


def build_ntlm_challenge(behaviour: ListenerBehaviour, client_flags: int, server_challenge: bytes, timestamp: int) -> bytes:
    """NTLM CHALLENGE_MESSAGE ([MS-NLMP] 2.2.1.2): target name = NetBIOS domain, target info AV pairs,
    Version = the host's OS version (major, minor, build) with NTLM revision 15."""
    target_name = behaviour.domain.encode("utf-16-le")
    target_info = ntlm_target_info(behaviour, timestamp)
    target_type = NTLMSSP_TARGET_TYPE_DOMAIN if _domain_member(behaviour) else NTLMSSP_TARGET_TYPE_SERVER
    flags = (client_flags & _ECHOED_FLAGS) | _SERVER_FLAGS | target_type
    major, minor, build = behaviour.os_version
    version = struct.pack("<BBH3xB", major & 0xFF, minor & 0xFF, build & 0xFFFF, NTLM_REVISION_W2K3)
    header_size = 56
    header = struct.pack("<8sIHHII8s8xHHI8s", NTLM_SIGNATURE, 2,
                         len(target_name), len(target_name), header_size, flags, server_challenge,
                         len(target_info), len(target_info), header_size + len(target_name), version)
    return header + target_name + target_info


def credssp_answer(request: bytes, behaviour: ListenerBehaviour, unix_now: float, server_challenge: bytes) -> bytes:
    """The server's TSRequest (version 6) answering a client's first TSRequest with an NTLM CHALLENGE.

    ``unix_now`` is the real time; the host clock adds behaviour.clock_offset_seconds. SPNEGO-wrapped
    requests get an SPNEGO-wrapped answer, raw NTLM gets raw NTLM (as Windows' Negotiate package does).
    """
    ts_request = parse_ts_request(request)
    if not ts_request.nego_tokens:
        raise ProtocolError("first TSRequest carries no negoToken")
    ntlm, spnego = unwrap_nego_token(ts_request.nego_tokens[0])
    client_flags = parse_ntlm_negotiate(ntlm)
    stamp = filetime(unix_now + behaviour.clock_offset_seconds)
    challenge = build_ntlm_challenge(behaviour, client_flags, server_challenge, stamp)
    return encode_ts_request(6, (wrap_spnego_response(challenge) if spnego else challenge,))


# --------------------------------------------------------------------------------------------------
# The imperative shell: streams, TLS through memory BIOs, the listener
# --------------------------------------------------------------------------------------------------

async def read_tpkt(reader: asyncio.StreamReader) -> bytes:
    """One whole TPKT (RFC 1006) from the stream; ProtocolError for anything that is not one."""
    header = await reader.readexactly(4)
    length = int.from_bytes(header[2:4], "big")
    if header[0] != 3 or header[1] != 0 or not 11 <= length <= MAX_TPKT:
        raise ProtocolError(f"not a TPKT header: {header.hex()}")
    return header + await reader.readexactly(length - 4)


async def read_tls_record(reader: asyncio.StreamReader) -> bytes:
    """One whole TLS handshake record (the ClientHello's first record)."""
    header = await reader.readexactly(5)
    length = int.from_bytes(header[3:5], "big")
    if header[0] != 0x16 or header[1] != 3 or not 4 <= length <= MAX_TLS_RECORD:
        raise ProtocolError(f"not a TLS handshake record: {header.hex()}")
    return header + await reader.readexactly(length)


class TlsChannel:
    """Server side of a TLS session on an asyncio stream, driven through memory BIOs.

    Used instead of ``StreamWriter.start_tls`` because the listener reads the ClientHello before it
    chooses the context (Schannel-like version choice); start_tls cannot be given bytes already read.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, context: ssl.SSLContext) -> None:
        self._reader = reader
        self._writer = writer
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=True)

    @property
    def version(self) -> str:
        """Negotiated protocol version, e.g. "TLSv1.2"."""
        return self._tls.version() or ""

    async def handshake(self, first: bytes) -> None:
        """Complete the server handshake; ``first`` holds bytes already read (the ClientHello record).

        On failure the pending alert is sent before the error propagates, as a real server does.
        """
        self._incoming.write(first)
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._receive():
                    raise ConnectionError("client closed during the TLS handshake") from None
                continue
            except ssl.SSLError:
                await self._flush()
                raise
            await self._flush()
            return

    async def read(self) -> bytes:
        """Some application data, b"" when the client closed the connection or the TLS session."""
        while True:
            try:
                data = self._tls.read(65536)
            except ssl.SSLWantReadError:
                await self._flush()
                if not await self._receive():
                    return b""
                continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            await self._flush()
            return data

    async def write(self, data: bytes) -> None:
        """Encrypt and send application data."""
        self._tls.write(data)
        await self._flush()

    async def _receive(self) -> bool:
        data = await self._reader.read(65536)
        if not data:
            self._incoming.write_eof()
            return False
        self._incoming.write(data)
        return True

    async def _flush(self) -> None:
        data = self._outgoing.read()
        if data:
            self._writer.write(data)
            await self._writer.drain()


async def read_der_message(channel: TlsChannel) -> bytes:
    """One whole DER SEQUENCE (a TSRequest) from the TLS channel."""
    buffer = b""
    while True:
        size = der_message_size(buffer)
        if size is not None:
            if size > MAX_TS_REQUEST:
                raise ProtocolError(f"TSRequest of {size} bytes")
            if len(buffer) >= size:
                return buffer[:size]
        chunk = await channel.read()
        if not chunk:
            raise ConnectionError("client closed before a whole TSRequest arrived")
        buffer += chunk


def _identity(port: int) -> int:
    return port


ACCEPT = "accept"  # socket modes of a listener: an asyncio server answering RDP ...
DROP = "drop"      # ... or a BlackHole that drops SYNs


def accept_queue(sock: socket.socket) -> tuple[int, int] | None:
    """(queued connections, backlog) of a listening socket from Linux TCP_INFO; None where unavailable."""
    option = getattr(socket, "TCP_INFO", None)
    if option is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, option, _TCP_INFO_QUEUE.size)
    except OSError:
        return None
    return _TCP_INFO_QUEUE.unpack(raw) if len(raw) == _TCP_INFO_QUEUE.size else None


def accept_queue_full(sock: socket.socket, fillers: int) -> bool:
    """Linux drops a SYN when the accept queue holds more than the backlog (sk_acceptq_is_full)."""
    queue = accept_queue(sock)
    if queue is None:  # no TCP_INFO: trust listen(0) to hold exactly one connection
        return fillers >= 1
    return queue[0] > queue[1]


class BlackHole:
    """A bound TCP port that never answers: what a client sees of a port Windows Defender Firewall blocks.

    The firewall has no reject action; it drops the SYN and the client times out (real-rdp-servers.md
    sections 2 and 5). Without privileges (no iptables) Linux drops SYNs for one reason the lab controls: a
    listening socket whose accept queue is full. So the socket listens with backlog 0, the lab connects to it
    itself (``fillers``) until the queue is full, and nothing ever accepts. Not registered with the loop.
    """

    def __init__(self, listener: socket.socket, fillers: list[socket.socket]) -> None:
        self._listener = listener
        self._fillers = fillers

    @classmethod
    async def open(cls, address: str, port: int) -> "BlackHole":
        """Bind ``address:port``, listen(0) and fill the accept queue; OSError when it cannot be done."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio.start_server(reuse_address=True)
            listener.bind((address, port))
            listener.listen(0)
            listener.setblocking(False)
            return cls(listener, await fill_accept_queue(listener, (address, port)))
        except BaseException:
            listener.close()
            raise

    def accept_queue(self) -> tuple[int, int] | None:
        """(queued connections, backlog) of the held socket, None without TCP_INFO."""
        return accept_queue(self._listener)

    def close(self) -> None:
        """Free the port. The listener goes first: its queued connections are reset, so no TIME_WAIT is left."""
        self._listener.close()
        for filler in self._fillers:
            filler.close()
        self._fillers = []


async def fill_accept_queue(listener: socket.socket, address: tuple[str, int]) -> list[socket.socket]:
    """Connect to ``listener`` until its accept queue is full; the connections, to be kept open.

    Raises OSError when the queue is still not full after MAX_FILLERS connections (clients would connect).
    """
    loop = asyncio.get_running_loop()
    fillers: list[socket.socket] = []
    try:
        while len(fillers) < MAX_FILLERS and not accept_queue_full(listener, len(fillers)):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            fillers.append(filler)  # from here on closed by the handler below if anything fails
            filler.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(filler, address), FILL_TIMEOUT)
            except TimeoutError:  # its SYN was dropped: an earlier filler reached the queue meanwhile
                fillers.pop().close()
                break
        if not accept_queue_full(listener, len(fillers)):
            raise OSError(f"accept queue of {address[0]}:{address[1]} not full after {len(fillers)} connections")
    except BaseException:
        for filler in fillers:
            filler.close()
        raise
    return fillers


class RdpListener:  # pylint: disable=too-many-instance-attributes  # counters are part of the API
    """The RDP-Tcp listener of one lab host. Create it with ``start_rdp_listener``.

    Counters (read them any time): ``connections`` (accepted TCP connections), ``negotiations``
    (answers by label: RDP, SSL, HYBRID, HYBRID_EX, SSL_REQUIRED_BY_SERVER, ...), ``tls_handshakes``
    (completed, by version), ``tls_failures``, ``credssp_challenges`` (NTLM CHALLENGEs sent),
    ``dropped`` (connections closed for garbage, timeouts or a listener that should not have accepted).
    """

    def __init__(self, host: Any, behaviour_fn: Callable[[], ListenerBehaviour], *,  # pylint: disable=too-many-arguments
                 port_map: Callable[[int], int] = _identity, timeout: float = DEFAULT_TIMEOUT,
                 clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.address: str = host.address
        self._behaviour_fn = behaviour_fn
        self._port_map = port_map
        self.timeout = timeout
        self._clock = clock
        self._server: asyncio.AbstractServer | None = None
        self._black_hole: BlackHole | None = None
        self.port: int | None = None          # the port actually bound and accepting, None when not listening
        self.filtered_port: int | None = None  # the port a BlackHole holds (SYNs dropped), None when not filtered
        self.last_error = ""                 # why the last bind failed, "" when it worked
        self._lock = asyncio.Lock()
        self._closed = False
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()
        self.connections = 0
        self.negotiations: collections.Counter[str] = collections.Counter()
        self.tls_handshakes: collections.Counter[str] = collections.Counter()
        self.tls_failures = 0
        self.credssp_challenges = 0
        self.dropped = 0

    @property
    def listening(self) -> bool:
        """True while a listening socket that accepts connections is open."""
        return self._server is not None

    @property
    def filtered(self) -> bool:
        """True while the port is held by a socket that drops every SYN (clients time out)."""
        return self._black_hole is not None

    def stats(self) -> dict[str, Any]:
        """All counters as plain data (for status output)."""
        return {"address": self.address, "port": self.port, "filtered_port": self.filtered_port, "connections": self.connections,
                "negotiations": dict(self.negotiations), "tls_handshakes": dict(self.tls_handshakes),
                "tls_failures": self.tls_failures, "credssp_challenges": self.credssp_challenges,
                "dropped": self.dropped, "last_error": self.last_error}

    def _wanted(self, behaviour: ListenerBehaviour) -> tuple[str, int] | None:
        """(ACCEPT or DROP, bound port) the behaviour asks for, None for no socket at all."""
        if behaviour.listening:
            return ACCEPT, self._port_map(behaviour.port)
        if getattr(behaviour, "filtered", False):  # any object with the contract's fields will do
            return DROP, self._port_map(behaviour.port)
        return None

    def _current(self) -> tuple[str, int] | None:
        if self.port is not None:  # set only while a server is open
            return ACCEPT, self.port
        if self.filtered_port is not None:  # set only while a BlackHole is open
            return DROP, self.filtered_port
        return None

    async def sync(self) -> None:
        """Re-evaluate the behaviour: open, close, move or filter the listening socket.

        A closed socket gives clients a real "connection refused"; a filtered port (``behaviour.filtered``)
        a socket that drops their SYNs, so they time out. A bind error (port taken) is logged and kept in
        ``last_error``; the next ``sync()`` tries again.
        """
        async with self._lock:
            if self._closed:  # a resync spawned by a late connection must not reopen a closed listener
                return
            wanted = self._wanted(self._behaviour_fn())
            if wanted == self._current():
                return
            await self._stop_server()
            if wanted is None:
                return
            mode, port = wanted
            await (self._start_server(port) if mode == ACCEPT else self._start_black_hole(port))

    async def close(self) -> None:
        """Close the listening socket and every open connection, for good."""
        async with self._lock:
            self._closed = True
            await self._stop_server()
        for task in list(self._tasks):
            task.cancel()

    async def _start_server(self, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, host=self.address, port=port, reuse_address=True)
        except OSError as exc:
            self.last_error = f"cannot listen on {self.address}:{port}: {exc}"
            LOG.warning("rdp %s", self.last_error)
            return
        self.port = port
        self.last_error = ""

    async def _start_black_hole(self, port: int) -> None:
        try:
            self._black_hole = await BlackHole.open(self.address, port)
        except OSError as exc:
            self.last_error = f"cannot filter {self.address}:{port}: {exc}"
            LOG.warning("rdp %s", self.last_error)
            return
        self.filtered_port = port
        self.last_error = ""

    async def _stop_server(self) -> None:
        """Stop listening and drop open connections, like a stopped TermService; free a filtered port."""
        server, self._server, self.port = self._server, None, None
        black_hole, self._black_hole, self.filtered_port = self._black_hole, None, None
        if black_hole is not None:
            black_hole.close()
        if server is not None:
            server.close()
            await server.wait_closed()
        for writer in list(self._writers):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One connection; every failure ends in closing it, nothing escapes into the loop."""
        self.connections += 1
        self._writers.add(writer)
        try:
            async with asyncio.timeout(self.timeout * 4):  # slow-drip clients cannot hold a connection forever
                await self._converse(reader, writer)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:  # a client leaving between messages (e.g. a TCP-only check) is a normal close
                self.dropped += 1
        except (ProtocolError, TimeoutError, ConnectionError, OSError) as exc:
            self.dropped += 1
            LOG.debug("rdp %s: closing connection: %r", self.address, exc)
        except Exception:  # pylint: disable=broad-exception-caught  # never let a client crash the lab
            self.dropped += 1
            LOG.exception("rdp %s: unexpected error, connection closed", self.address)
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        behaviour = self._behaviour_fn()
        if self._wanted(behaviour) != (ACCEPT, self.port):
            # The model changed after the last sync(): Windows would not have accepted. Reset, then resync.
            writer.transport.abort()
            self._spawn(self.sync())
            raise ConnectionError(f"not listening any more ({behaviour.refuse_reason or 'port moved'})")
        request = parse_connection_request(await asyncio.wait_for(read_tpkt(reader), self.timeout))
        answer = decide(request.requested_protocols, behaviour, credential_ready(behaviour))
        self.negotiations[answer.label] += 1
        writer.write(encode_confirm(answer, request))
        await writer.drain()
        if answer.failure_code is not None:
            return  # Windows closes after an RDP_NEG_FAILURE
        if not answer.uses_tls:
            await self._wait_then_close(reader.read(1))  # the lab stops before MCS Connect-Initial
            return
        channel = await self._accept_tls(reader, writer, behaviour)
        if answer.uses_credssp:
            request_der = await asyncio.wait_for(read_der_message(channel), self.timeout)
            await channel.write(credssp_answer(request_der, behaviour, self._clock(), os.urandom(8)))
            self.credssp_challenges += 1
        await self._wait_then_close(channel.read())  # MCS after SSL, AUTHENTICATE after CredSSP: stop

    async def _accept_tls(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          behaviour: ListenerBehaviour) -> TlsChannel:
        hello = await asyncio.wait_for(read_tls_record(reader), self.timeout)
        version = pick_tls_version(client_hello_versions(hello), enabled_tls_versions(behaviour))
        context = None
        if behaviour.no_common_cipher:  # Schannel answers the ClientHello with handshake_failure (36874) and closes
            self.tls_failures += 1
            raise ConnectionError("no cipher suite in common with the client")
        if version is not None and behaviour.certificate_pem is not None and behaviour.private_key_pem is not None:
            context = server_ssl_context(behaviour.certificate_pem, behaviour.private_key_pem, version)
        if context is None:  # the credential broke between negotiation and handshake
            self.tls_failures += 1
            raise ConnectionError("no TLS credential")
        channel = TlsChannel(reader, writer, context)
        try:
            await asyncio.wait_for(channel.handshake(hello), self.timeout)
        except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
            self.tls_failures += 1
            raise ConnectionError(f"TLS handshake failed: {exc}") from exc
        self.tls_handshakes[channel.version] += 1
        return channel

    async def _wait_then_close(self, read: Any) -> None:
        """Wait until the client sends anything or closes (or ``timeout``); the caller then closes.

        A reset here is a normal end too: clients often close with unread data (e.g. TLS 1.3 session
        tickets), which makes their kernel send RST instead of FIN.
        """
        try:
            await asyncio.wait_for(read, self.timeout)
        except (TimeoutError, ConnectionError):
            pass

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def start_rdp_listener(host: Any, behaviour_fn: Callable[[], ListenerBehaviour], *,
                             port_map: Callable[[int], int] = _identity, timeout: float = DEFAULT_TIMEOUT,
                             clock: Callable[[], float] = time.time) -> RdpListener:
    """Create the listener of ``host`` (anything with ``.address``) and ``sync()`` it once.

    ``behaviour_fn`` returns the current ListenerBehaviour (e.g. ``lambda: listener_behaviour(host, now())``)
    and is called on every ``sync()`` and every accepted connection. ``port_map`` maps the model's port
    (3389, or PortNumber) to the port actually bound - unit tests map into 20000-20199 so they never
    collide with a running lab. ``clock`` is the real time source for the NTLM timestamp.
    """
    listener = RdpListener(host, behaviour_fn, port_map=port_map, timeout=timeout, clock=clock)
    await listener.sync()
    return listener
