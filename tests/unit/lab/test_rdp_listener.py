"""Tests for the lab RDP listener (tests/lab/rdp.py).

Pure parts (X.224 parsing, the negotiation decision, DER, NTLM, TLS version choice) are tested directly;
the listener runs in an asyncio loop on a background thread and is spoken to with raw sockets + ssl on
127.0.0.x, ports 20000-20199 (never 3389, so a running lab is not disturbed). Expected bytes are written
out by hand here and parsed by this file's own DER/NTLM readers, not by rdp.py's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
import ssl
import struct
import threading
import time
import warnings
from typing import Any, Callable, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.lab import rdp
from tests.lab.behaviour import ListenerBehaviour, listener_behaviour
from tests.lab.model import RDP_FIREWALL_GROUP, RDP_TCP, TS, Host

ADDRESS = "127.0.0.211"
MODEL_ADDRESS = "127.0.0.212"
PORT_RANGE = range(20000, 20200)
FIXED_CLOCK = 1_790_000_000.0          # real time the tests give the listener
CLOCK_OFFSET = 93.5                    # host clock minus real time

# the probe's CredSSP step 1 (real-rdp-servers.md section 2): TSRequest v6 + NTLM NEGOTIATE, 57 bytes
PROBE_TS_REQUEST = bytes.fromhex(
    "3037a003020106a130302e302ca02a04284e544c4d5353500001000000078288e2"
    "000000000000000000000000000000000a00614a0000000f")
# CR with mstsc's mix (19 bytes) and the same with a cookie (real-rdp-servers.md section 2)
MSTSC_CR = bytes.fromhex("030000130ee00000000000010008000b000000")
COOKIE_CR = bytes.fromhex("0300002b26e0000000000043" + "6f6f6b69653a206d737473686173683d616c6963650d0a" + "010008000b000000")


def make_cr(requested: int | None, cookie: bytes = b"") -> bytes:
    """A Connection Request built by hand: TPKT, X.224 CR (SRC-REF 0), cookie, RDP_NEG_REQ."""
    neg = b"" if requested is None else struct.pack("<BBHI", 1, 0, 8, requested)
    x224 = bytes([6 + len(cookie) + len(neg), 0xE0, 0, 0, 0, 0, 0]) + cookie + neg
    return struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224


def rsp(selected: int) -> bytes:
    """Expected CC + RDP_NEG_RSP: SRC-REF 0x1234, flags 0x1F."""
    return bytes.fromhex("030000130ed000001234000" + "21f0800") + struct.pack("<I", selected)


def failure(code: int) -> bytes:
    """Expected CC + RDP_NEG_FAILURE."""
    return bytes.fromhex("030000130ed00000123400030008" + "00") + struct.pack("<I", code)


LEGACY_CC = bytes.fromhex("0300000b06d00000123400")


# ------------------------------------------------------------------------------------------------
# certificates and behaviours
# ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Credential:
    """A certificate and its key as PEM, plus the DER a client sees."""

    cert_pem: bytes
    key_pem: bytes
    der: bytes


def _credential(common_name: str) -> Credential:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=180)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return Credential(cert.public_bytes(serialization.Encoding.PEM), key_pem, cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module", name="pki")
def fixture_pki() -> dict[str, Credential]:
    """Two self-signed certificates with their keys."""
    return {"a": _credential("win01"), "b": _credential("win01-renamed")}


def make_behaviour(cred: Credential, **changes: Any) -> ListenerBehaviour:
    """A healthy Server 2022 workgroup host's behaviour, with ``changes`` applied."""
    base = ListenerBehaviour(
        listening=True, refuse_reason="", port=3389, security_layer=2, nla_required=True,
        certificate_pem=cred.cert_pem, private_key_pem=cred.key_pem,
        tls_versions=frozenset({"TLSv1.2", "TLSv1.3"}), netbios_name="WIN01", dns_name="win01",
        domain="WIN01", dns_domain="win01", os_version=(10, 0, 20348), clock_offset_seconds=CLOCK_OFFSET)
    return dataclasses.replace(base, **changes)


class Knob:
    """A behaviour_fn whose answer the test changes (the model changing under the listener)."""

    def __init__(self, value: ListenerBehaviour) -> None:
        self.value = value

    def __call__(self) -> ListenerBehaviour:
        return self.value

    def set(self, **changes: Any) -> None:
        """Change some fields of the current behaviour."""
        self.value = dataclasses.replace(self.value, **changes)


# ------------------------------------------------------------------------------------------------
# the loop, the listener factory, blocking clients
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module", name="loop")
def fixture_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An asyncio loop on a background thread: the listener lives there, clients block here."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def run(loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    """Run a coroutine on the listener's loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(coro, loop).result(30)


def free_ports(address: str, count: int) -> list[int]:
    """Ports in 20000-20199 that nothing listens on at ``address`` right now."""
    found = []
    for port in PORT_RANGE:
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
        found.append(port)
        if len(found) == count:
            return found
    raise RuntimeError("no free port in 20000-20199")


@dataclasses.dataclass
class FakeHost:
    """The listener only needs ``address`` from a host."""

    address: str


@pytest.fixture(name="listen")
def fixture_listen(loop: asyncio.AbstractEventLoop) -> Iterator[Callable[..., rdp.RdpListener]]:
    """Start listeners (closed at teardown): listen(behaviour_fn, host=..., **start_rdp_listener kwargs)."""
    started: list[rdp.RdpListener] = []

    def start(behaviour_fn: Callable[[], ListenerBehaviour], host: Any = None, **kwargs: Any) -> rdp.RdpListener:
        kwargs.setdefault("clock", lambda: FIXED_CLOCK)
        listener = run(loop, rdp.start_rdp_listener(host or FakeHost(ADDRESS), behaviour_fn, **kwargs))
        started.append(listener)
        return listener

    yield start
    for listener in started:
        run(loop, listener.close())


@pytest.fixture(name="knob")
def fixture_knob(pki: dict[str, Credential]) -> Knob:
    """A healthy behaviour on a free port (identity port map)."""
    return Knob(make_behaviour(pki["a"], port=free_ports(ADDRESS, 1)[0]))


def recv_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly ``size`` bytes, or fewer if the peer closed."""
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def recv_tpkt(sock: socket.socket) -> bytes:
    """One TPKT."""
    header = recv_exact(sock, 4)
    return header + recv_exact(sock, int.from_bytes(header[2:4], "big") - 4)


def connect(port: int, address: str = ADDRESS) -> socket.socket:
    """A TCP connection with a generous timeout (the listener answers in milliseconds)."""
    return socket.create_connection((address, port), timeout=10)


def connect_outcome(port: int, address: str = ADDRESS) -> str:
    """How a client's TCP connect ends within 0.5 s: "connected", "refused" (RST) or "timeout" (SYN dropped)."""
    try:
        with socket.create_connection((address, port), timeout=0.5):
            return "connected"
    except ConnectionRefusedError:
        return "refused"
    except TimeoutError:
        return "timeout"


def negotiate(port: int, request: bytes, address: str = ADDRESS) -> tuple[socket.socket, bytes]:
    """Send a CR, return the socket and the server's whole answer TPKT."""
    sock = connect(port, address)
    sock.sendall(request)
    return sock, recv_tpkt(sock)


def peer_closed(sock: socket.socket) -> bool:
    """True when the server closed the connection (EOF or reset)."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
        return True


def client_context(minimum: str = "TLSv1", maximum: str = "TLSv1.3") -> ssl.SSLContext:
    """A permissive client (observes any certificate, any version in the range)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    versions = {"TLSv1": ssl.TLSVersion.TLSv1, "TLSv1.1": ssl.TLSVersion.TLSv1_1,
                "TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = versions[minimum]
        context.maximum_version = versions[maximum]
    context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def tls_connect(port: int, requested: int = 0x0B, **versions: str) -> ssl.SSLSocket:
    """Negotiate, check SSL/HYBRID was selected, then complete a TLS handshake."""
    sock, answer = negotiate(port, make_cr(requested))
    assert answer[11] == 2, answer.hex()
    return client_context(**versions).wrap_socket(sock)


def wait_until(condition: Callable[[], bool]) -> bool:
    """Poll a condition the listener's loop makes true soon (no timing is asserted)."""
    for _unused in range(500):
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# independent DER / NTLM readers -------------------------------------------------------------------

def tlv(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, value, end) of the DER TLV at ``pos``."""
    tag, size = data[pos], data[pos + 1]
    pos += 2
    if size & 0x80:
        count = size & 0x7F
        size = int.from_bytes(data[pos:pos + count], "big")
        pos += count
    return tag, data[pos:pos + size], pos + size


def tlvs(data: bytes) -> dict[int, bytes]:
    """Children of a constructed value by tag."""
    out, pos = {}, 0
    while pos < len(data):
        tag, value, pos = tlv(data, pos)
        out[tag] = value
    return out


def read_ts_request(sock: ssl.SSLSocket) -> bytes:
    """One whole DER TSRequest from the TLS socket."""
    data = b""
    while True:
        if len(data) >= 6:  # tag, length byte, up to 4 length bytes
            end = tlv(data)[2]
            if len(data) >= end:
                return data[:end]
        chunk = sock.recv(4096)
        assert chunk, "server closed before a whole TSRequest"
        data += chunk


def ts_request_fields(message: bytes) -> tuple[int, bytes]:
    """(version, first negoToken) of a TSRequest."""
    tag, body, _unused = tlv(message)
    assert tag == 0x30
    fields = tlvs(body)
    version = int.from_bytes(tlv(fields[0xA0])[1], "big")
    _unused, nego_data, _unused2 = tlv(fields[0xA1])
    _unused, item, _unused2 = tlv(nego_data)
    _unused, token, _unused2 = tlv(tlvs(item)[0xA0])
    return version, token


def parse_challenge(message: bytes) -> dict[str, Any]:
    """The fields of an NTLM CHALLENGE_MESSAGE ([MS-NLMP] 2.2.1.2)."""
    assert message[:8] == b"NTLMSSP\x00"
    # type, name len/max/offset, flags, challenge, (reserved), info len/max/offset, major, minor, build, revision
    head = struct.unpack_from("<IHHII8s8xHHIBBH3xB", message, 8)
    pairs, pos = {}, head[8]
    while True:
        av_id, av_len = struct.unpack_from("<HH", message, pos)
        pairs[av_id] = message[pos + 4:pos + 4 + av_len]
        pos += 4 + av_len
        if av_id == 0:
            break
    assert pos == head[8] + head[6]
    return {"type": head[0], "target": message[head[3]:head[3] + head[1]].decode("utf-16-le"), "flags": head[4],
            "challenge": head[5], "version": head[9:13],
            "names": {k: v.decode("utf-16-le") for k, v in pairs.items() if k in (1, 2, 3, 4, 5)},
            "timestamp": struct.unpack("<Q", pairs[7])[0], "pairs": list(pairs)}


# ------------------------------------------------------------------------------------------------
# pure: X.224
# ------------------------------------------------------------------------------------------------

def test_parse_mstsc_request() -> None:
    """The 19-byte request mstsc sends: 0x0B, no cookie."""
    request = rdp.parse_connection_request(MSTSC_CR)
    assert (request.requested_protocols, request.cookie, request.neg_flags) == (0x0B, b"", 0)


def test_parse_request_with_cookie() -> None:
    """The cookie line is kept and RDP_NEG_REQ behind it still read."""
    request = rdp.parse_connection_request(COOKIE_CR)
    assert request.cookie == b"Cookie: mstshash=alice"
    assert request.requested_protocols == 0x0B


def test_parse_request_without_neg_req() -> None:
    """A legacy request (cookie, no RDP_NEG_REQ) has no requested protocols."""
    request = rdp.parse_connection_request(make_cr(None, b"Cookie: mstshash=bob\r\n"))
    assert request.requested_protocols is None and request.cookie == b"Cookie: mstshash=bob"


def test_parse_request_with_correlation_info() -> None:
    """CORRELATION_INFO_PRESENT (flag 0x08) appends 36 bytes after RDP_NEG_REQ; they are ignored."""
    neg = struct.pack("<BBHI", 1, 0x08, 8, 0x03) + struct.pack("<BBH", 6, 0, 36) + b"\x11" * 16 + b"\x00" * 16
    x224 = bytes([6 + len(neg), 0xE0, 0, 0, 0, 0, 0]) + neg
    request = rdp.parse_connection_request(struct.pack(">BBH", 3, 0, 4 + len(x224)) + x224)
    assert (request.requested_protocols, request.neg_flags) == (0x03, 0x08)


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",                                          # not TPKT
    bytes.fromhex("030000130ee000000000000100080b0000"),                          # TPKT length lies
    bytes.fromhex("030000130fe000000000000100080b000000"),                        # wrong length indicator
    bytes.fromhex("030000130ef000000000000100080b000000"),                        # DT TPDU, not CR
    bytes.fromhex("030000130ee000000000000100090b000000"),                        # RDP_NEG_REQ length 9
    make_cr(None, b"Cookie: mstshash=no-crlf"),                                  # cookie without CRLF
    make_cr(None, b"Cookie: x\r\n") + b"\x02\x00\x08\x00",                          # trailing bytes, not a NEG_REQ
], ids=["http", "tpkt-length", "li", "dt", "neg-length", "cookie", "trailing"])
def test_parse_rejects_garbage(data: bytes) -> None:
    """Anything that is not a well-formed CR raises ProtocolError (the listener then closes)."""
    with pytest.raises(rdp.ProtocolError):
        rdp.parse_connection_request(data)


@pytest.mark.parametrize("case", [  # (SecurityLayer, NLA, credential ready, requestedProtocols, answer)
    (2, False, True, 0x0B, "SSL"),
    (2, True, True, 0x0B, "HYBRID"),
    (2, True, True, 0x03, "HYBRID"),
    (2, True, True, 0x0F, "HYBRID"),
    (2, True, True, 0x1B, "HYBRID"),
    (2, True, True, 0x08, "HYBRID_EX"),
    (2, True, True, 0x09, "HYBRID_EX"),
    (2, False, True, 0x02, "HYBRID"),
    (2, True, True, 0x01, "HYBRID_REQUIRED_BY_SERVER"),
    (2, True, True, 0x00, "HYBRID_REQUIRED_BY_SERVER"),
    (2, True, True, None, "HYBRID_REQUIRED_BY_SERVER"),
    (2, False, True, 0x00, "SSL_REQUIRED_BY_SERVER"),
    (2, False, True, None, "SSL_REQUIRED_BY_SERVER"),
    (2, False, True, 0x04, "SSL_REQUIRED_BY_SERVER"),
    (2, False, False, 0x0B, "SSL_CERT_NOT_ON_SERVER"),
    (2, True, False, 0x0B, "SSL_CERT_NOT_ON_SERVER"),
    (2, False, False, 0x00, "SSL_REQUIRED_BY_SERVER"),
    (1, False, True, 0x0B, "SSL"),
    (1, False, True, 0x00, "RDP"),
    (1, False, True, None, "RDP"),
    (1, False, False, 0x00, "RDP"),
    (1, False, False, 0x01, "SSL_CERT_NOT_ON_SERVER"),
    (1, True, True, 0x00, "HYBRID_REQUIRED_BY_SERVER"),
    (0, False, True, 0x01, "SSL_NOT_ALLOWED_BY_SERVER"),
    (0, False, True, 0x0B, "SSL_NOT_ALLOWED_BY_SERVER"),
    (0, True, True, 0x0B, "SSL_NOT_ALLOWED_BY_SERVER"),
    (0, False, True, 0x00, "RDP"),
    (0, False, False, None, "RDP"),
    (0, True, True, 0x00, "HYBRID_REQUIRED_BY_SERVER"),
    (7, False, True, 0x00, "SSL_REQUIRED_BY_SERVER"),   # an out-of-range SecurityLayer acts as TLS
])
def test_decide(case: tuple[int, bool, bool, int | None, str], pki: dict[str, Credential]) -> None:
    """The Windows-like answer for each security layer / NLA / credential / request combination."""
    layer, nla, ready, requested, expected = case
    behaviour = make_behaviour(pki["a"], security_layer=layer, nla_required=nla)
    assert rdp.decide(requested, behaviour, ready).label == expected


def test_encode_confirm_bytes() -> None:
    """Exact Connection Confirm bytes (real-rdp-servers.md section 2 layout, SRC-REF 0x1234)."""
    request = rdp.parse_connection_request(MSTSC_CR)
    assert rdp.encode_confirm(rdp.NegotiationAnswer(selected_protocol=1), request).hex() == "030000130ed00000123400021f080001000000"
    assert rdp.encode_confirm(rdp.NegotiationAnswer(failure_code=5), request).hex() == "030000130ed000001234000300080005000000"
    legacy = rdp.parse_connection_request(make_cr(None))
    assert rdp.encode_confirm(rdp.NegotiationAnswer(selected_protocol=0), legacy) == LEGACY_CC
    assert rdp.encode_confirm(rdp.NegotiationAnswer(failure_code=1), legacy) == failure(1)


# ------------------------------------------------------------------------------------------------
# pure: DER, CredSSP, NTLM, SPNEGO
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value,encoded", [(6, "020106"), (0, "020100"), (127, "02017f"), (128, "02020080"),
                                           (-1, "0201ff"), (-128, "020180"), (0x80090308, "02050080090308")])
def test_der_integer(value: int, encoded: str) -> None:
    """Minimal two's-complement INTEGERs."""
    assert rdp.der_integer(value).hex() == encoded


def test_der_long_lengths_round_trip() -> None:
    """Long-form lengths (0x81, 0x82) are written minimally and read back."""
    for size, prefix in ((200, "0481c8"), (300, "0482012c")):
        encoded = rdp.der_encode(0x04, b"x" * size)
        assert encoded.hex().startswith(prefix)
        assert rdp.der_read(encoded) == (0x04, b"x" * size, len(encoded))
        assert rdp.der_message_size(b"\x30" + encoded[1:4]) == len(encoded)


@pytest.mark.parametrize("data", ["3003a0", "3084ffffffff", "3080", "0400"])
def test_der_rejects_bad_input(data: str) -> None:
    """Truncated, indefinite or oversized lengths raise ProtocolError."""
    with pytest.raises(rdp.ProtocolError):
        raw = bytes.fromhex(data)
        if raw[0] == 0x04:
            rdp.der_message_size(raw)  # not a SEQUENCE
        else:
            rdp.parse_ts_request(raw)


def test_parse_probe_ts_request() -> None:
    """The probe's first TSRequest: version 6, one NTLM NEGOTIATE with the probe's flags."""
    ts_request = rdp.parse_ts_request(PROBE_TS_REQUEST)
    assert ts_request.version == 6 and len(ts_request.nego_tokens) == 1
    assert rdp.parse_ntlm_negotiate(ts_request.nego_tokens[0]) == 0xE2888207


def test_encode_ts_request_round_trip() -> None:
    """encode/parse agree, errorCode included."""
    encoded = rdp.encode_ts_request(6, (b"tok" * 100,), error_code=-1073741715)
    assert rdp.parse_ts_request(encoded) == rdp.TsRequest(6, (b"tok" * 100,), -1073741715)


def test_credssp_answer_fields(pki: dict[str, Credential]) -> None:
    """The CHALLENGE names the host, its OS version and its clock incl. the offset."""
    behaviour = make_behaviour(pki["a"], os_version=(10, 0, 17763))
    answer = rdp.credssp_answer(PROBE_TS_REQUEST, behaviour, FIXED_CLOCK, b"\x01" * 8)
    version, token = ts_request_fields(answer)
    challenge = parse_challenge(token)
    assert version == 6
    assert challenge["type"] == 2 and challenge["target"] == "WIN01" and challenge["challenge"] == b"\x01" * 8
    assert challenge["names"] == {2: "WIN01", 1: "WIN01", 4: "win01", 3: "win01"}
    assert challenge["pairs"] == [2, 1, 4, 3, 7, 0]  # Windows' order, no tree name in a workgroup
    assert challenge["version"] == (10, 0, 17763, 15)
    expected = 116444736000000000 + int((FIXED_CLOCK + CLOCK_OFFSET) * 10_000_000)
    assert challenge["timestamp"] == expected
    # client's UNICODE/NTLM/ALWAYS_SIGN/ESS/128/KEY_EXCH/56/VERSION kept; TARGET_INFO, REQUEST_TARGET, SERVER added
    assert challenge["flags"] == 0xE28A8205


def test_ntlm_challenge_of_domain_member(pki: dict[str, Credential]) -> None:
    """A domain member names its domain as target, adds the tree name and sets TARGET_TYPE_DOMAIN."""
    behaviour = make_behaviour(pki["a"], domain="CONTOSO", dns_domain="contoso.com", dns_name="win01.contoso.com")
    challenge = parse_challenge(rdp.build_ntlm_challenge(behaviour, 0x00000001, b"\x00" * 8, 1))
    assert challenge["target"] == "CONTOSO"
    assert challenge["names"] == {2: "CONTOSO", 1: "WIN01", 4: "contoso.com", 3: "win01.contoso.com", 5: "contoso.com"}
    assert challenge["flags"] & 0x00030000 == 0x00010000


SPNEGO_INIT = bytes.fromhex(
    "6048" + "06062b0601050502" + "a03e" + "303c"
    + "a00e" + "300c" + "060a2b06010401823702020a"
    + "a22a" + "0428") + bytes.fromhex("4e544c4d5353500001000000078288e2000000000000000000000000000000000a00614a0000000f")


def test_spnego_wrapped_negotiate_gets_spnego_answer(pki: dict[str, Credential]) -> None:
    """An SPNEGO NegTokenInit with an NTLM mechToken is answered by a NegTokenResp carrying the CHALLENGE."""
    request = bytes.fromhex("3059a003020106a1523050304ea04c044a") + SPNEGO_INIT
    _unused, token = ts_request_fields(rdp.credssp_answer(request, make_behaviour(pki["a"]), FIXED_CLOCK, b"\x02" * 8))
    tag, resp, _unused = tlv(token)
    assert tag == 0xA1
    fields = tlvs(tlv(resp)[1])
    assert fields[0xA0] == b"\x0a\x01\x01"                      # accept-incomplete
    assert fields[0xA1] == bytes.fromhex("060a2b06010401823702020a")  # NTLM
    assert parse_challenge(tlv(fields[0xA2])[1])["challenge"] == b"\x02" * 8


def test_non_ntlm_tokens_are_rejected() -> None:
    """An AUTHENTICATE as first message, or SPNEGO without NTLM, is a protocol error."""
    with pytest.raises(rdp.ProtocolError):
        rdp.parse_ntlm_negotiate(b"NTLMSSP\x00\x03\x00\x00\x00" + b"\x00" * 8)
    kerberos_only = bytes.fromhex("601b" + "06062b0601050502" + "a011" + "300f" + "a00d" + "300b" + "06092a864886f712010202")
    with pytest.raises(rdp.ProtocolError):
        rdp.unwrap_nego_token(kerberos_only)


# ------------------------------------------------------------------------------------------------
# pure: TLS
# ------------------------------------------------------------------------------------------------

def client_hello(minimum: str, maximum: str) -> bytes:
    """A real ClientHello record produced by OpenSSL for this version range."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = client_context(minimum, maximum).wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("minimum,maximum,expected", [
    ("TLSv1.3", "TLSv1.3", {"TLSv1.3"}),
    ("TLSv1.2", "TLSv1.3", {"TLSv1.2", "TLSv1.3"}),
    ("TLSv1", "TLSv1.3", {"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"}),
    ("TLSv1", "TLSv1.2", {"TLSv1", "TLSv1.1", "TLSv1.2"}),   # no supported_versions: legacy_version rules
    ("TLSv1", "TLSv1", {"TLSv1"}),
])
def test_client_hello_versions(minimum: str, maximum: str, expected: set[str]) -> None:
    """The versions a real ClientHello offers."""
    assert rdp.client_hello_versions(client_hello(minimum, maximum)) == expected


def test_client_hello_garbage() -> None:
    """A TPKT where a ClientHello belongs is a protocol error."""
    with pytest.raises(rdp.ProtocolError):
        rdp.client_hello_versions(MSTSC_CR)


@pytest.mark.parametrize("offered,enabled,expected", [
    ({"TLSv1.2", "TLSv1.3"}, ("TLSv1.2", "TLSv1.3"), "TLSv1.3"),
    ({"TLSv1", "TLSv1.1", "TLSv1.2"}, ("TLSv1", "TLSv1.3"), "TLSv1"),   # hole at 1.1/1.2: Schannel-like
    ({"TLSv1.3"}, ("TLSv1.2",), "TLSv1.2"),                              # no common version -> alert later
    ({"TLSv1.2"}, (), None),
])
def test_pick_tls_version(offered: set[str], enabled: tuple[str, ...], expected: str | None) -> None:
    """Highest common version, else the server's highest (the handshake then fails)."""
    assert rdp.pick_tls_version(frozenset(offered), enabled) == expected


def test_credential_ready(pki: dict[str, Credential]) -> None:
    """Missing key, mismatched key, garbage PEM or no TLS version -> no credential."""
    a, b = pki["a"], pki["b"]
    assert rdp.credential_ready(make_behaviour(a))
    assert not rdp.credential_ready(make_behaviour(a, private_key_pem=None))
    assert not rdp.credential_ready(make_behaviour(a, certificate_pem=None))
    assert not rdp.credential_ready(make_behaviour(a, private_key_pem=b.key_pem))
    assert not rdp.credential_ready(make_behaviour(a, certificate_pem=b"-----BEGIN CERTIFICATE-----\nAAAA\n"))
    assert not rdp.credential_ready(make_behaviour(a, tls_versions=frozenset()))
    assert not rdp.credential_ready(make_behaviour(a, tls_versions=frozenset({"SSLv3"})))


# ------------------------------------------------------------------------------------------------
# the listener on loopback
# ------------------------------------------------------------------------------------------------

def test_mstsc_mix_without_nla_selects_ssl(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """0x0B with NLA off -> RDP_NEG_RSP PROTOCOL_SSL, exact bytes."""
    knob.set(nla_required=False)
    listen(knob)
    sock, answer = negotiate(knob.value.port, MSTSC_CR)
    sock.close()
    assert answer == rsp(1)


def test_nla_selects_hybrid_and_answers_ntlm_challenge(
        listen: Callable[..., rdp.RdpListener], knob: Knob, pki: dict[str, Credential]) -> None:
    """0x0B with NLA -> HYBRID; TLS with the behaviour's cert; the TSRequest answer carries the CHALLENGE."""
    listener = listen(knob)
    sock, answer = negotiate(knob.value.port, COOKIE_CR)
    assert answer == rsp(2)
    tls = client_context().wrap_socket(sock)
    assert tls.getpeercert(binary_form=True) == pki["a"].der
    tls.sendall(PROBE_TS_REQUEST)
    version, token = ts_request_fields(read_ts_request(tls))
    challenge = parse_challenge(token)
    assert version == 6
    assert challenge["names"][1] == "WIN01" and challenge["version"] == (10, 0, 20348, 15)
    assert challenge["timestamp"] == 116444736000000000 + int((FIXED_CLOCK + CLOCK_OFFSET) * 10_000_000)
    tls.sendall(b"\x30\x03\x02\x01\x00")  # the AUTHENTICATE would follow: the lab stops here
    assert peer_closed(tls)
    tls.close()
    assert wait_until(lambda: listener.credssp_challenges == 1)
    assert listener.negotiations == {"HYBRID": 1} and listener.tls_handshakes == {"TLSv1.3": 1}


def test_ssl_only_request_with_nla_gets_hybrid_required(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """0x01 with NLA -> F5, then the server closes."""
    listen(knob)
    sock, answer = negotiate(knob.value.port, make_cr(0x01))
    assert answer == failure(5)
    assert peer_closed(sock)
    sock.close()


def test_tls_request_with_security_layer_rdp(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """SecurityLayer 0: TLS-only request -> F2; an RDP-only request (NLA off) -> PROTOCOL_RDP."""
    knob.set(security_layer=0, nla_required=False)
    listen(knob)
    sock, answer = negotiate(knob.value.port, make_cr(0x01))
    sock.close()
    assert answer == failure(2)
    sock, answer = negotiate(knob.value.port, make_cr(0x00))
    assert answer == rsp(0)
    sock.sendall(b"\x03\x00\x00\x08\x02\xf0\x80\x7f")  # start of MCS: the lab stops before MCS
    assert peer_closed(sock)
    sock.close()


def test_rdp_only_request_with_security_layer_tls(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """0x00 with SecurityLayer 2 (NLA off) -> F1; a request without RDP_NEG_REQ too."""
    knob.set(nla_required=False)
    listen(knob)
    for request in (make_cr(0x00), make_cr(None, b"Cookie: mstshash=x\r\n")):
        sock, answer = negotiate(knob.value.port, request)
        sock.close()
        assert answer == failure(1)


def test_legacy_request_on_negotiate_layer_gets_bare_cc(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """SecurityLayer 1 without NLA answers a request without RDP_NEG_REQ with a CC without neg data."""
    knob.set(security_layer=1, nla_required=False)
    listen(knob)
    sock, answer = negotiate(knob.value.port, make_cr(None))
    sock.close()
    assert answer == LEGACY_CC


@pytest.mark.parametrize("change", ["no_key", "wrong_key", "no_tls"])
def test_no_tls_credential_gives_cert_not_on_server(listen: Callable[..., rdp.RdpListener], knob: Knob,
                                                    pki: dict[str, Credential], change: str) -> None:
    """Key unreadable (None), key not matching the cert, or every TLS version disabled -> F3."""
    knob.set(**{"no_key": {"private_key_pem": None}, "wrong_key": {"private_key_pem": pki["b"].key_pem},
                "no_tls": {"tls_versions": frozenset()}}[change])
    listen(knob)
    sock, answer = negotiate(knob.value.port, MSTSC_CR)
    sock.close()
    assert answer == failure(3)


def test_tls12_only_server(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """A TLS 1.2-only server refuses a TLS 1.3-only client and serves TLS 1.2 to a 1.2+ client."""
    knob.set(tls_versions=frozenset({"TLSv1.2"}))
    listener = listen(knob)
    with pytest.raises(ssl.SSLError):
        tls_connect(knob.value.port, minimum="TLSv1.3", maximum="TLSv1.3")
    tls = tls_connect(knob.value.port, minimum="TLSv1.2", maximum="TLSv1.3")
    assert tls.version() == "TLSv1.2"
    tls.close()
    assert wait_until(lambda: listener.tls_failures == 1 and listener.tls_handshakes == {"TLSv1.2": 1})


def test_tls_versions_with_a_hole(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """TLS 1.0 and 1.3 enabled, 1.1/1.2 off: a client up to 1.2 gets TLS 1.0, a 1.3 client gets 1.3."""
    knob.set(tls_versions=frozenset({"TLSv1", "TLSv1.3"}))
    listen(knob)
    legacy = tls_connect(knob.value.port, minimum="TLSv1", maximum="TLSv1.2")
    modern = tls_connect(knob.value.port, minimum="TLSv1", maximum="TLSv1.3")
    assert (legacy.version(), modern.version()) == ("TLSv1", "TLSv1.3")
    legacy.close()
    modern.close()
    with pytest.raises(ssl.SSLError):
        tls_connect(knob.value.port, minimum="TLSv1.2", maximum="TLSv1.2")


def test_served_certificate_follows_the_model_without_sync(
        listen: Callable[..., rdp.RdpListener], knob: Knob, pki: dict[str, Credential]) -> None:
    """The certificate is read per connection: a rebind shows on the next connection, no sync() needed."""
    listen(knob)
    first = tls_connect(knob.value.port)
    assert first.getpeercert(binary_form=True) == pki["a"].der
    first.close()
    knob.set(certificate_pem=pki["b"].cert_pem, private_key_pem=pki["b"].key_pem)
    second = tls_connect(knob.value.port)
    assert second.getpeercert(binary_form=True) == pki["b"].der
    second.close()


def test_refused_when_not_listening_and_back_after_fix(loop: asyncio.AbstractEventLoop,
                                                       listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """listening False + sync() -> connection refused; fixed + sync() -> answers again."""
    listener = listen(knob)
    knob.set(listening=False, refuse_reason="TermService not running")
    run(loop, listener.sync())
    assert not listener.listening
    with pytest.raises(ConnectionRefusedError):
        connect(knob.value.port)
    knob.set(listening=True, refuse_reason="")
    run(loop, listener.sync())
    sock, answer = negotiate(knob.value.port, MSTSC_CR)
    sock.close()
    assert answer == rsp(2)


FIREWALL_BLOCK = {"listening": False, "refuse_reason": "no enabled inbound firewall rule allows TCP 3389"}


def test_filtered_port_drops_syns_and_refused_port_resets(loop: asyncio.AbstractEventLoop,
                                                          listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """filtered (firewall_blocks: drop) -> a bound socket that never accepts: connect() times out; refuse -> RST."""
    listener = listen(knob)
    port = knob.value.port
    knob.set(filtered=True, **FIREWALL_BLOCK)
    run(loop, listener.sync())
    assert (listener.listening, listener.filtered, listener.port, listener.filtered_port) == (False, True, None, port)
    assert listener.stats()["filtered_port"] == port and listener.last_error == ""
    assert connect_outcome(port) == "timeout"
    assert connect_outcome(port) == "timeout"  # still full: the dropped client took no place in the queue
    assert listener.connections == 0
    knob.set(filtered=False)
    run(loop, listener.sync())
    assert (listener.listening, listener.filtered, listener.filtered_port) == (False, False, None)
    assert connect_outcome(port) == "refused"


def test_sync_switches_between_accept_drop_and_refuse(loop: asyncio.AbstractEventLoop,
                                                      listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """Every mode change takes effect on sync(), on the same port, in any order."""
    listener = listen(knob)
    port = knob.value.port
    healthy = {"listening": True, "refuse_reason": "", "filtered": False}
    steps = [({**FIREWALL_BLOCK, "filtered": True}, "timeout"), (healthy, "connected"), ({**FIREWALL_BLOCK, "filtered": True}, "timeout"),
             ({**FIREWALL_BLOCK, "filtered": False}, "refused"), ({**FIREWALL_BLOCK, "filtered": True}, "timeout"), (healthy, "connected")]
    for changes, outcome in steps:
        knob.set(**changes)
        run(loop, listener.sync())
        run(loop, listener.sync())  # nothing changed: a no-op
        assert (connect_outcome(port), listener.listening, listener.filtered) == (outcome, outcome == "connected", outcome == "timeout")
    sock, answer = negotiate(port, MSTSC_CR)
    sock.close()
    assert answer == rsp(2)


def test_filtered_port_moves_with_the_port(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener],
                                           knob: Knob) -> None:
    """PortNumber moved to a port the firewall does not allow: the old port refuses, the new one drops."""
    old, new = free_ports(ADDRESS, 2)
    ports = {3389: old, 3390: new}
    knob.set(port=3389)
    listener = listen(knob, port_map=ports.__getitem__)
    knob.set(port=3390, filtered=True, **FIREWALL_BLOCK)
    run(loop, listener.sync())
    assert listener.filtered_port == new
    assert (connect_outcome(old), connect_outcome(new)) == ("refused", "timeout")


def test_filtered_model_change_without_sync_resets_and_resyncs(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """A connection accepted after the model became filtered is reset unanswered; the listener then drops SYNs."""
    listener = listen(knob)
    knob.set(filtered=True, **FIREWALL_BLOCK)
    sock = connect(knob.value.port)
    sock.sendall(MSTSC_CR)
    assert peer_closed(sock)
    sock.close()
    assert wait_until(lambda: listener.filtered)
    assert connect_outcome(knob.value.port) == "timeout"


def test_filter_bind_failure_is_reported_and_retried(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener],
                                                     knob: Knob) -> None:
    """A port held by someone else cannot be filtered either: last_error set, the next sync() retries."""
    knob.set(filtered=True, **FIREWALL_BLOCK)
    with socket.socket() as blocker:
        blocker.bind((ADDRESS, knob.value.port))
        blocker.listen()
        listener = listen(knob)
        assert not listener.filtered and "cannot filter" in listener.last_error
    run(loop, listener.sync())
    assert listener.filtered and listener.last_error == ""
    assert connect_outcome(knob.value.port) == "timeout"


def test_accept_queue_of_a_black_hole_is_full(loop: asyncio.AbstractEventLoop) -> None:
    """BlackHole: backlog 0 plus its own connection(s); closing it frees the port at once (RST, no TIME_WAIT)."""
    port = free_ports(ADDRESS, 1)[0]
    hole = run(loop, rdp.BlackHole.open(ADDRESS, port))
    try:
        queue = hole.accept_queue()
        assert queue is not None and queue[0] > queue[1] == 0
        assert connect_outcome(port) == "timeout"
    finally:
        hole.close()
    assert connect_outcome(port) == "refused"
    with socket.socket() as again:
        again.bind((ADDRESS, port))  # no SO_REUSEADDR: nothing of the black hole lingers on the port


def test_port_change_moves_the_listener(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener],
                                        knob: Knob) -> None:
    """A new port (via port_map) closes the old socket and opens the new one on sync()."""
    old, new = free_ports(ADDRESS, 2)
    ports = {3389: old, 3390: new}
    knob.set(port=3389)
    listener = listen(knob, port_map=ports.__getitem__)
    assert listener.port == old
    knob.set(port=3390)
    run(loop, listener.sync())
    assert listener.port == new
    with pytest.raises(ConnectionRefusedError):
        connect(old)
    sock, answer = negotiate(new, MSTSC_CR)
    sock.close()
    assert answer == rsp(2)


def test_model_change_without_sync_drops_connection_and_resyncs(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """A connection accepted after the model stopped listening is dropped unanswered; the listener closes itself."""
    listener = listen(knob)
    knob.set(listening=False, refuse_reason="remote connections denied")
    sock = connect(knob.value.port)
    sock.sendall(MSTSC_CR)
    assert peer_closed(sock)
    sock.close()
    assert wait_until(lambda: not listener.listening)
    with pytest.raises(ConnectionRefusedError):
        connect(knob.value.port)


def test_garbage_and_bad_bytes_close_the_connection_only(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """HTTP, a raw ClientHello, or garbage after the CC close that connection; the listener keeps serving."""
    listener = listen(knob)
    for junk in (b"GET / HTTP/1.1\r\nHost: win01\r\n\r\n", client_hello("TLSv1.2", "TLSv1.3"), b"\x03\x00\xff\xff" + b"\x00" * 64):
        sock = connect(knob.value.port)
        sock.sendall(junk)
        assert peer_closed(sock)
        sock.close()
    sock, _unused = negotiate(knob.value.port, MSTSC_CR)
    sock.sendall(MSTSC_CR)  # a TPKT where the ClientHello belongs
    assert peer_closed(sock)
    sock.close()
    tls = tls_connect(knob.value.port)
    tls.sendall(b"\x04\x00 not a TSRequest")
    assert peer_closed(tls)
    tls.close()
    sock, answer = negotiate(knob.value.port, MSTSC_CR)
    sock.close()
    assert answer == rsp(2)
    assert wait_until(lambda: listener.dropped == 5)


def test_silent_client_is_closed_after_timeout(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """A client that says nothing is disconnected after the listener's timeout."""
    listener = listen(knob, timeout=0.2)
    sock = connect(knob.value.port)
    assert peer_closed(sock)
    sock.close()
    tls = tls_connect(knob.value.port)  # silent after TLS: closed as well
    assert peer_closed(tls)
    tls.close()
    assert wait_until(lambda: listener.dropped == 2)


def test_counters(listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """connections and negotiations by answer are counted; a TCP-only check is not a drop."""
    listener = listen(knob)
    connect(knob.value.port).close()
    for request in (MSTSC_CR, make_cr(0x01), make_cr(0x01)):
        sock, _unused = negotiate(knob.value.port, request)
        sock.close()
    assert wait_until(lambda: listener.connections == 4 and sum(listener.negotiations.values()) == 3)
    stats = listener.stats()
    assert stats["negotiations"] == {"HYBRID": 1, "HYBRID_REQUIRED_BY_SERVER": 2}
    assert stats["dropped"] == 0 and stats["port"] == knob.value.port


def test_bind_failure_is_reported_and_retried(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener],
                                              knob: Knob) -> None:
    """A port held by someone else: no crash, last_error set; sync() succeeds once it is free."""
    with socket.socket() as blocker:
        blocker.bind((ADDRESS, knob.value.port))
        blocker.listen()
        listener = listen(knob)
        assert not listener.listening and "cannot listen" in listener.last_error
    run(loop, listener.sync())
    assert listener.listening and listener.last_error == ""


# ------------------------------------------------------------------------------------------------
# with the lab model (tests/lab/model.py + behaviour.py)
# ------------------------------------------------------------------------------------------------

def test_model_driven_listener(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener]) -> None:
    """A healthy model host answers HYBRID with its own certificate; RDP denied -> refused; fixed -> back."""
    host = Host.healthy("WIN07", MODEL_ADDRESS)
    port = free_ports(MODEL_ADDRESS, 1)[0]
    listener = listen(lambda: listener_behaviour(host, dt.datetime.now(dt.timezone.utc)), host=host,
                      port_map=lambda p: port + p - 3389)
    sock, answer = negotiate(port, MSTSC_CR, MODEL_ADDRESS)
    assert answer == rsp(2)
    tls = client_context().wrap_socket(sock)
    entry = host.self_signed_entry()
    assert entry is not None and tls.getpeercert(binary_form=True) == entry.der
    tls.sendall(PROBE_TS_REQUEST)
    challenge = parse_challenge(ts_request_fields(read_ts_request(tls))[1])
    assert challenge["names"][1] == "WIN07"
    tls.close()

    host.reg_set(RDP_TCP, "UserAuthentication", 0)      # NLA off: the next connection sees it
    sock, answer = negotiate(port, MSTSC_CR, MODEL_ADDRESS)
    sock.close()
    assert answer == rsp(1)

    host.reg_set(TS, "fDenyTSConnections", 1)
    run(loop, listener.sync())
    with pytest.raises(ConnectionRefusedError):
        connect(port, MODEL_ADDRESS)
    host.reg_set(TS, "fDenyTSConnections", 0)
    run(loop, listener.sync())
    sock, answer = negotiate(port, MSTSC_CR, MODEL_ADDRESS)
    sock.close()
    assert answer == rsp(1)


def test_model_host_firewall_blocks_drop(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener]) -> None:
    """firewall_blocks drop: the firewall alone -> timeout; RDP disabled as well -> refused; firewall fixed -> answers."""
    host = Host.healthy("WIN08", MODEL_ADDRESS)
    host.firewall_blocks = "drop"
    port = free_ports(MODEL_ADDRESS, 1)[0]
    listener = listen(lambda: listener_behaviour(host, dt.datetime.now(dt.timezone.utc)), host=host,
                      port_map=lambda p: port + p - 3389)
    rules = [rule for rule in host.firewall_rules if rule.group == RDP_FIREWALL_GROUP]
    for rule in rules:
        rule.enabled = False
    run(loop, listener.sync())
    assert connect_outcome(port, MODEL_ADDRESS) == "timeout"
    host.reg_set(TS, "fDenyTSConnections", 1)
    run(loop, listener.sync())
    assert connect_outcome(port, MODEL_ADDRESS) == "refused"
    host.reg_set(TS, "fDenyTSConnections", 0)
    for rule in rules:
        rule.enabled = True
    run(loop, listener.sync())
    sock, answer = negotiate(port, MSTSC_CR, MODEL_ADDRESS)
    sock.close()
    assert answer == rsp(2)
    host.firewall_blocks = "refuse"
    for rule in rules:
        rule.enabled = False
    run(loop, listener.sync())
    assert connect_outcome(port, MODEL_ADDRESS) == "refused"


def test_close_frees_a_filtered_port_for_good(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener],
                                              knob: Knob) -> None:
    """close() in drop mode: the port refuses and a later sync() does not filter it again."""
    knob.set(filtered=True, **FIREWALL_BLOCK)
    listener = listen(knob)
    assert listener.filtered
    run(loop, listener.close())
    run(loop, listener.sync())
    assert (listener.filtered, listener.filtered_port) == (False, None)
    assert connect_outcome(knob.value.port) == "refused"


def test_closed_listener_stays_closed(loop: asyncio.AbstractEventLoop, listen: Callable[..., rdp.RdpListener], knob: Knob) -> None:
    """After close(), sync() (e.g. a late resync) does not reopen the socket."""
    listener = listen(knob)
    run(loop, listener.close())
    run(loop, listener.sync())
    assert not listener.listening
    with pytest.raises(ConnectionRefusedError):
        connect(knob.value.port)
