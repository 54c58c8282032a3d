"""Hostile RDP servers (issue 10): every case gets an exact verdict, within the probe's own timeouts.

Each case is an in-process threaded server on its own loopback address (127.0.10.N, port chosen by the kernel)
that misbehaves in one way: silence, random bytes, huge and tiny TPKT lengths, truncated and malformed X.224,
protocol violations in each mix, TLS garbage, 21-certificate chains, 5000-character names, tricklers, resets,
HTTP and SSH banners, CredSSP garbage and huge DER lengths, invalid certificate versions. The probe runs with
1-second timeouts; "returned" is asserted with a generous hang guard (the bound is the probe's own deadlines,
this only keeps a regression from hanging the suite), never a timing.
"""

from __future__ import annotations

import datetime as dt
import random
import socket
import ssl
import struct
import threading
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe as probe_mod
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire as wire
from tests.integration.realservers import certs as testcerts

# cryptography warns about a 5000-character common name (the hostile certificate); that is the point of the case
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length must be")
TIMEOUT = 1.0
HANG_GUARD = 60.0
NOW = dt.datetime.now(dt.timezone.utc)
DAY = dt.timedelta(days=1)


# --- wire builders -----------------------------------------------------------------------------------------------

def tpkt(tpdu: bytes) -> bytes:
    return struct.pack(">BBH", 3, 0, 4 + len(tpdu)) + tpdu


def confirm(neg: bytes = b"") -> bytes:
    body = struct.pack(">BHHB", 0xD0, 0, 0x1234, 0) + neg
    return tpkt(bytes([len(body)]) + body)


def neg_rsp(protocol: int) -> bytes:
    return confirm(struct.pack("<BBHI", 2, 0x1F, 8, protocol))


def requested_of(request: bytes) -> int | None:
    if len(request) >= 19 and request[-8] == 1 and request[-6:-4] == b"\x08\x00":
        return struct.unpack("<I", request[-4:])[0]
    return None


def ntlm_challenge(names: dict[int, str]) -> bytes:
    info = b"".join(struct.pack("<HH", av, len(v.encode("utf-16-le"))) + v.encode("utf-16-le") for av, v in names.items())
    info += b"\x00\x00\x00\x00"
    head = wire.NTLM_SIGNATURE + struct.pack("<I", 2) + struct.pack("<HHI", 0, 0, 56)
    head += struct.pack("<I", 0xE28A8215) + b"\x22" * 8 + b"\x00" * 8
    head += struct.pack("<HHI", len(info), len(info), 56) + struct.pack("<BBH3xB", 10, 0, 20348, 15)
    return head + info


def ts_request_with(token: bytes) -> bytes:
    return wire.encode_ts_request(6, [token])


# --- certificates ----------------------------------------------------------------------------------------------------

@dataclass
class Pki:
    ca: Path
    server: ssl.SSLContext
    chain21: ssl.SSLContext
    long_name: ssl.SSLContext
    bad_version: ssl.SSLContext


def _write_context(directory: Path, name: str, certs: list[bytes], key: t.Any) -> ssl.SSLContext:
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}.key"
    cert_path.write_text("".join(ssl.DER_cert_to_PEM_cert(der) for der in certs))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """One key for everything (the probe judges names, dates and chains, not key identity)."""
    directory = tmp_path_factory.mktemp("hostile-pki")
    key = testcerts.make_key()
    ca = testcerts.make_ca(key, NOW)
    (directory / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    names = ["localhost"] + [f"127.0.10.{n}" for n in range(1, 80)]
    leaf = testcerts.make_server_cert(key, names, NOW - DAY, NOW + 90 * DAY, (ca, key))
    # 20 intermediates and the leaf: 21 certificates sent
    chain: list[x509.Certificate] = []
    issuer = ca
    for level in range(20):
        inter = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Level {level}")]))
                 .issuer_name(issuer.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(NOW - DAY).not_valid_after(NOW + 365 * DAY)
                 .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
        chain.append(inter)
        issuer = inter
    deep_leaf = testcerts.make_server_cert(key, names, NOW - DAY, NOW + 90 * DAY, (issuer, key))
    long_dns = "a" * 4995 + ".test"  # 5000 characters
    long_leaf = (x509.CertificateBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "L" * 5000, _validate=False)]))
                 .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
                 .not_valid_before(NOW - DAY).not_valid_after(NOW + 90 * DAY)
                 .add_extension(x509.SubjectAlternativeName([x509.DNSName(long_dns)]), critical=False).sign(key, hashes.SHA256()))
    good = _der(leaf)
    at = good.index(bytes.fromhex("a003020102"))
    bad_version = good[:at] + bytes.fromhex("a003020103") + good[at + 5:]
    return Pki(ca=directory / "ca.pem",
               server=_write_context(directory, "leaf", [good], key),
               chain21=_write_context(directory, "chain21", [_der(deep_leaf)] + [_der(c) for c in reversed(chain)], key),
               long_name=_write_context(directory, "long", [_der(long_leaf)], key),
               bad_version=_write_context(directory, "badversion", [bad_version], key))


# --- the hostile server ------------------------------------------------------------------------------------------

class Peer:
    """What a behaviour gets: the accepted socket, the connection index, the PKI, and small helpers."""

    def __init__(self, conn: socket.socket, index: int, pki: Pki) -> None:
        self.conn = conn
        self.index = index
        self.pki = pki

    def request(self) -> int | None:
        """Read the Connection Request; its requestedProtocols."""
        self.conn.settimeout(10)
        return requested_of(self.conn.recv(1024))

    def reset(self) -> None:
        """Close with RST (SO_LINGER 0)."""
        self.conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.conn.close()

    def tls(self, context: ssl.SSLContext) -> ssl.SSLSocket:
        self.conn.settimeout(10)
        return context.wrap_socket(self.conn, server_side=True)

    def linger(self, sock: socket.socket | ssl.SSLSocket | None = None) -> None:
        """Wait until the client closes (so the client, not this server, decides when the exchange ends)."""
        with_timeout = sock or self.conn
        with_timeout.settimeout(10)
        try:
            while with_timeout.recv(4096):
                pass
        except (OSError, ssl.SSLError):
            pass


Behaviour = t.Callable[[Peer], None]


class HostileServer:
    def __init__(self, address: str, behaviour: Behaviour, pki: Pki) -> None:
        self.behaviour = behaviour
        self.pki = pki
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.address = address
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.threads: list[threading.Thread] = []
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _peer = self.sock.accept()
            except OSError:
                return
            index = self.connections
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, index), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            self.behaviour(Peer(conn, index, self.pki))
        except (OSError, ssl.SSLError, ValueError):
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self.sock.close()


# --- behaviours ----------------------------------------------------------------------------------------------------

def silent(peer: Peer) -> None:
    peer.request()
    peer.linger()


def random_bytes(peer: Peer) -> None:
    peer.request()
    generator = random.Random(10)
    peer.conn.sendall(bytes([0x9C]) + bytes(generator.randrange(256) for _byte in range(200)))
    peer.linger()


def huge_tpkt_then_silence(peer: Peer) -> None:
    peer.request()
    peer.conn.sendall(b"\x03\x00\xff\xff" + b"\x00" * 100)
    peer.linger()


def huge_tpkt_flood(peer: Peer) -> None:
    """A TPKT claiming 65535 bytes, then endless bytes: the read stops at the probe's answer limit."""
    peer.request()
    peer.conn.sendall(b"\x03\x00\xff\xff")
    try:
        for _chunk in range(100):
            peer.conn.sendall(b"\x41" * 4096)
    except OSError:
        pass


def tiny_tpkt(peer: Peer) -> None:
    peer.request()
    peer.conn.sendall(b"\x03\x00\x00\x04")
    peer.linger()


def truncated_confirm(peer: Peer) -> None:
    peer.request()
    peer.conn.sendall(neg_rsp(1)[:11])


def zero_length_indicator(peer: Peer) -> None:
    peer.request()
    peer.conn.sendall(tpkt(b"\x00\xd0\x00\x00\x00\x00\x00"))
    peer.linger()


def unknown_tpdu(peer: Peer) -> None:
    peer.request()
    peer.conn.sendall(tpkt(b"\x06\x70\x00\x00\x00\x00\x00"))
    peer.linger()


def bad_negotiation_length(peer: Peer) -> None:
    peer.request()
    peer.conn.sendall(confirm(struct.pack("<BBHI", 2, 0, 9, 1)))
    peer.linger()


def selects(answers: dict[int | None, int]) -> Behaviour:
    """Answer each requested mix with a chosen selectedProtocol (standard RDP unless listed); never any TLS."""

    def behaviour(peer: Peer) -> None:
        requested = peer.request()
        peer.conn.sendall(neg_rsp(answers.get(requested, 0)))
        peer.linger()
    return behaviour


def tls_garbage(peer: Peer) -> None:
    if not (peer.request() or 0) & 1:
        peer.conn.sendall(neg_rsp(0))
        return
    peer.conn.sendall(neg_rsp(1))
    peer.conn.recv(4096)  # the ClientHello
    peer.conn.sendall(b"\x16\x03\x03\x00\x05garbage and more garbage")
    peer.linger()


def tls_silence(peer: Peer) -> None:
    if not (peer.request() or 0) & 1:
        peer.conn.sendall(neg_rsp(0))
        return
    peer.conn.sendall(neg_rsp(1))
    peer.linger()


def serves(context_of: t.Callable[[Pki], ssl.SSLContext], selected: int = 1) -> Behaviour:
    """SSL (or HYBRID) selected for every request offering it, then a real TLS handshake with the given certificate."""

    def behaviour(peer: Peer) -> None:
        requested = peer.request()
        chosen = selected if requested is not None and requested & selected else 0
        peer.conn.sendall(neg_rsp(chosen))
        if chosen:
            peer.linger(peer.tls(context_of(peer.pki)))
        else:
            peer.linger()
    return behaviour


def trickle(data: bytes, pause: float) -> Behaviour:
    def behaviour(peer: Peer) -> None:
        peer.request()
        for byte in data:
            peer.conn.sendall(bytes([byte]))
            time.sleep(pause)
    return behaviour


def reset_after_request(peer: Peer) -> None:
    peer.request()
    peer.reset()


def reset_on_accept(peer: Peer) -> None:
    peer.reset()


def http_server(peer: Peer) -> None:
    peer.request()
    peer.conn.sendall(b"HTTP/1.1 400 Bad Request\r\nServer: nginx/1.24\r\nContent-Length: 0\r\n\r\n")


def ssh_server(peer: Peer) -> None:
    peer.conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    peer.request()
    peer.linger()


def credssp(reply: bytes, then_flood: bool = False) -> Behaviour:
    """NLA server: HYBRID for requests offering it (HYBRID_REQUIRED_BY_SERVER otherwise), TLS, then ``reply`` to the
    first TSRequest (and, with ``then_flood``, endless bytes after it)."""

    def behaviour(peer: Peer) -> None:
        requested = peer.request()
        if requested is None or not requested & 0x02:
            peer.conn.sendall(confirm(struct.pack("<BBHI", 3, 0, 8, 5)))
            return
        peer.conn.sendall(neg_rsp(2))
        tls = peer.tls(peer.pki.server)
        tls.settimeout(10)
        tls.recv(4096)
        tls.sendall(reply)
        if then_flood:
            try:
                for _chunk in range(40):
                    tls.sendall(b"\x00" * 4096)
            except (OSError, ssl.SSLError):
                return
        peer.linger(tls)
    return behaviour


# --- the cases -------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    name: str
    behaviour: Behaviour
    failed_step: str | None
    finding_ids: tuple[str, ...]
    answers: dict[str, str] = field(default_factory=dict)  # x224 answers that must be seen (mix -> label)
    options: dict[str, t.Any] = field(default_factory=dict)


NOT_RDP = ("RDP-PROBE-NOT-RDP",)
MALFORMED = ("RDP-PROBE-MALFORMED-ANSWER",)
CERT_OK_TLS = ("RDP-PROBE-NLA-ABSENT",)  # an SSL-only server with a good certificate: no NLA is the only finding
LONG_NAME = "n" * 5000

CASES = [
    Case("silence", silent, "x224", ("RDP-PROBE-NO-ANSWER",), {"0x0b": "NO_ANSWER"}),
    Case("random-bytes", random_bytes, "x224", NOT_RDP, {"0x0b": "NOT_RDP:unknown"}),
    Case("huge-tpkt-length-then-silence", huge_tpkt_then_silence, "x224", MALFORMED, {"0x0b": "TRUNCATED"}),
    Case("huge-tpkt-length-flood", huge_tpkt_flood, "x224", MALFORMED, {"0x0b": "MALFORMED"}),
    Case("tiny-tpkt-length", tiny_tpkt, "x224", MALFORMED, {"0x0b": "MALFORMED"}),
    Case("truncated-x224", truncated_confirm, "x224", MALFORMED, {"0x0b": "TRUNCATED"}),
    Case("x224-zero-length-indicator", zero_length_indicator, "x224", MALFORMED, {"0x0b": "MALFORMED"}),
    Case("x224-unknown-tpdu", unknown_tpdu, "x224", MALFORMED, {"0x0b": "MALFORMED"}),
    Case("x224-bad-negotiation-length", bad_negotiation_length, "x224", MALFORMED, {"0x0b": "MALFORMED"}),
    # protocol violations, one per mix position
    Case("violation-first-mix", selects({0x0B: 0x10}), "x224", ("RDP-PROBE-NEG-PROTOCOL-VIOLATION",), {"0x0b": "RDSAAD"}),
    Case("violation-second-mix", selects({0x01: 0x08}), None,
         ("RDP-PROBE-STANDARD-RDP-ONLY", "RDP-PROBE-NEG-PROTOCOL-VIOLATION", "RDP-PROBE-NLA-ABSENT"), {"0x01": "HYBRID_EX"}),
    Case("violation-third-mix", selects({0x00: 0x01}), None,
         ("RDP-PROBE-STANDARD-RDP-ONLY", "RDP-PROBE-NEG-PROTOCOL-VIOLATION", "RDP-PROBE-NLA-ABSENT"), {"0x00": "SSL"}),
    Case("violation-two-protocols-at-once", selects({0x0B: 0x03, 0x01: 0x03, 0x00: 0x03}), "x224",
         ("RDP-PROBE-NEG-PROTOCOL-VIOLATION",), {"0x0b": "0x3"}),
    Case("tls-garbage", tls_garbage, "tls", ("RDP-PROBE-TLS-FAILED", "RDP-PROBE-NLA-ABSENT"), {"0x0b": "SSL"}),
    Case("tls-silence", tls_silence, "tls", ("RDP-PROBE-TLS-FAILED", "RDP-PROBE-NLA-ABSENT"), {"0x0b": "SSL"}),
    Case("chain-of-21-certificates", serves(lambda pki: pki.chain21), None, ("RDP-CERT-UNTRUSTED", "RDP-PROBE-NLA-ABSENT")),
    Case("5000-character-certificate-names", serves(lambda pki: pki.long_name), "certificate",
         ("RDP-CERT-NAME-MISMATCH", "RDP-PROBE-NLA-ABSENT")),
    Case("invalid-certificate-version", serves(lambda pki: pki.bad_version), "certificate",
         ("RDP-CERT-UNREADABLE", "RDP-PROBE-NLA-ABSENT")),
    Case("good-tls-control", serves(lambda pki: pki.server), None, CERT_OK_TLS),
    Case("trickling-confirm", trickle(neg_rsp(1), 0.3), "x224", MALFORMED, {"0x0b": "TRUNCATED"}),
    Case("trickling-endless", trickle(b"\x03\x00\x40\x00" + b"\x00" * 100, 0.05), "x224", MALFORMED, {"0x0b": "TRUNCATED"}),
    Case("reset-after-request", reset_after_request, "x224", ("RDP-PROBE-CLOSED",), {"0x0b": "RESET"}),
    Case("reset-on-accept", reset_on_accept, "x224", ("RDP-PROBE-CLOSED",)),
    Case("http", http_server, "x224", NOT_RDP, {"0x0b": "NOT_RDP:http"}),
    Case("ssh", ssh_server, "x224", NOT_RDP, {"0x0b": "NOT_RDP:ssh"}),
    Case("credssp-garbage", credssp(b"\x30\x03garbage that is no TSRequest"), "nla",
         ("RDP-PROBE-NLA-REQUIRED", "RDP-PROBE-CREDSSP-FAILED")),
    Case("credssp-huge-der-length", credssp(b"\x30\x84\x7f\xff\xff\xff\xa0\x03\x02\x01\x06"), "nla",
         ("RDP-PROBE-NLA-REQUIRED", "RDP-PROBE-CREDSSP-FAILED")),
    Case("credssp-huge-der-length-flood", credssp(b"\x30\x84\x7f\xff\xff\xff", then_flood=True), "nla",
         ("RDP-PROBE-NLA-REQUIRED", "RDP-PROBE-CREDSSP-FAILED")),
    Case("credssp-der-length-of-nine-octets", credssp(b"\x30\x89" + b"\xff" * 9), "nla",
         ("RDP-PROBE-NLA-REQUIRED", "RDP-PROBE-CREDSSP-FAILED")),
    Case("credssp-timestamp-of-two-bytes", credssp(ts_request_with(ntlm_challenge({2: "CORP", 1: "WIN01", 7: "x"}))),
         None, ("RDP-PROBE-NLA-REQUIRED",)),
    Case("credssp-5000-character-ntlm-names", credssp(ts_request_with(ntlm_challenge({2: LONG_NAME, 1: LONG_NAME[:4000]}))),
         None, ("RDP-PROBE-NLA-REQUIRED",)),
]


@pytest.fixture(scope="module")
def verdicts(pki: Pki) -> dict[str, tuple[Case, HostileServer, dict[str, t.Any] | None]]:
    """Every case probed at once (threads, one server each): the suite costs its slowest case, not the sum."""
    servers = [HostileServer(f"127.0.10.{number}", case.behaviour, pki) for number, case in enumerate(CASES, start=1)]
    try:
        plans = [probe_mod.ProbeOptions(host=server.address, port=server.port, connect_timeout=TIMEOUT, read_timeout=TIMEOUT,
                                        ca_bundle=str(pki.ca), **case.options)
                 for case, server in zip(CASES, servers)]
        box: list[list[dict[str, t.Any]]] = []
        runner = threading.Thread(target=lambda: box.append(probe_mod.probe_many(plans, concurrency=len(plans))), daemon=True)
        runner.start()
        runner.join(HANG_GUARD)
        results = box[0] if box else [None] * len(CASES)
        return {case.name: (case, server, result) for case, server, result in zip(CASES, servers, results)}
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize("name", [case.name for case in CASES])
def test_a_hostile_server_gets_an_exact_verdict(verdicts: dict[str, tuple[Case, HostileServer, dict[str, t.Any] | None]],
                                                name: str) -> None:
    case, server, result = verdicts[name]
    assert result is not None, "the probe did not return a verdict within its own timeouts"
    assert "error" not in result, result.get("error")
    assert server.connections >= 1
    assert result["verdict"]["failed_step"] == case.failed_step, result["verdict"]["explanation"]
    assert tuple(result["verdict"]["finding_ids"]) == case.finding_ids, result["verdict"]["explanation"]
    answers = (result["x224"] or {}).get("answers", {})
    assert {mix: answers.get(mix) for mix in case.answers} == case.answers


def test_five_thousand_character_names_are_reported_whole(verdicts: dict[str, t.Any]) -> None:
    """The long NTLM names and certificate names are data, not a failure: kept as sent."""
    _case, _server, result = verdicts["credssp-5000-character-ntlm-names"]
    ntlm = result["nla"]["credssp"]["ntlm"]
    assert ntlm["netbios_domain"] == LONG_NAME and ntlm["netbios_computer"] == LONG_NAME[:4000]
    _case, _server, result = verdicts["5000-character-certificate-names"]
    assert len(result["certificate"]["san_dns"][0]) == 5000 and result["certificate"]["subject_cn"] == "L" * 5000


def test_a_protocol_violation_is_never_built_upon(verdicts: dict[str, t.Any]) -> None:
    """No TLS on an answer that selected what the client did not offer."""
    for name in ("violation-second-mix", "violation-third-mix", "violation-first-mix", "violation-two-protocols-at-once"):
        _case, _server, result = verdicts[name]
        assert result["tls"] is None, name
