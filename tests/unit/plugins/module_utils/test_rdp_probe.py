"""rdp_probe: the pure judges on synthetic observations, and the I/O shell against scripted listeners
on 127.0.0.1 (answers that xrdp/FreeRDP cannot be made to give: a Windows-like NLA server with a skewed
clock, CredSSP errors, protocol violations, the FreeRDP "TLS after failure" quirk, overload)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import struct
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe as probe_mod
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire as wire
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info
from tests.integration.realservers import certs as testcerts

# --- builders -------------------------------------------------------------------------------------


def cc(neg_type: int | None = None, value: int = 0, flags: int = 0x1F) -> bytes:
    """An X.224 Connection Confirm (Windows-like flags), with RSP/FAILURE data or none (legacy)."""
    neg = struct.pack("<BBHI", neg_type, flags if neg_type == 2 else 0, 8, value) if neg_type else b""
    tpdu = struct.pack(">BHHB", 0xD0, 0, 0x1234, 0) + neg
    tpdu = bytes([len(tpdu)]) + tpdu
    return struct.pack(">BBH", 3, 0, 4 + len(tpdu)) + tpdu


def rsp(protocol: int) -> bytes:
    return cc(2, protocol)


def fail(code: int) -> bytes:
    return cc(3, code)


DPUM = bytes.fromhex("0300000902f0802180")


def challenge(timestamp: dt.datetime) -> bytes:
    """A Windows Server 2022-like NTLM CHALLENGE."""
    ticks = int((timestamp - dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)).total_seconds() * 10_000_000)
    pairs = [(2, "CORP"), (1, "WIN01"), (4, "corp.test"), (3, "win01.corp.test"), (5, "corp.test")]
    info = b"".join(struct.pack("<HH", i, len(v.encode("utf-16-le"))) + v.encode("utf-16-le") for i, v in pairs)
    info += struct.pack("<HH", 7, 8) + struct.pack("<Q", ticks) + b"\x00\x00\x00\x00"
    target = "CORP".encode("utf-16-le")
    head = wire.NTLM_SIGNATURE + struct.pack("<I", 2) + struct.pack("<HHI", len(target), len(target), 56)
    head += struct.pack("<I", 0xE28A8215) + b"\x11" * 8 + b"\x00" * 8
    head += struct.pack("<HHI", len(info), len(info), 56 + len(target)) + struct.pack("<BBH3xB", 10, 0, 20348, 15)
    return head + target + info


def requested_of(request: bytes) -> int | None:
    """requestedProtocols of a Connection Request (None without RDP_NEG_REQ)."""
    if len(request) >= 19 and request[-8] == 1 and request[-6:-4] == b"\x08\x00":
        return struct.unpack("<I", request[-4:])[0]
    return None


class FakeRdp:  # pylint: disable=too-many-instance-attributes
    """A scripted listener: ``answer(requested, index)`` gives the bytes for the index-th connection
    (None: close without answering); TLS and a CredSSP reply follow when the answer selects them."""

    def __init__(self, answer: Callable[[int | None, int], bytes | None], context: ssl.SSLContext | None = None,
                 credssp_reply: bytes | None = None, delay: float = 0.0, tls_after_anything: bool = False) -> None:
        self.answer = answer
        self.context = context
        self.credssp_reply = credssp_reply
        self.delay = delay
        self.tls_after_anything = tls_after_anything
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(32)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.tls_attempts = 0
        self.credssp_requests: list[bytes] = []
        self.stopped = False
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while not self.stopped:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            with self.lock:
                index = self.connections
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            self._talk(conn, index)
        except (OSError, ssl.SSLError):
            pass
        finally:
            conn.close()

    def _talk(self, conn: socket.socket, index: int) -> None:
        conn.settimeout(5)
        request = conn.recv(1024)
        # "active" = requests between arrival and answer: a client-side limit of N connections can
        # never have more than N of those (counting open sockets would lag behind the client's close)
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        if self.delay:
            time.sleep(self.delay)
        reply = self.answer(requested_of(request), index)
        with self.lock:
            self.active -= 1
        if reply is None:
            return
        conn.sendall(reply)
        first = conn.recv(1, socket.MSG_PEEK)
        if first[:1] != b"\x16":
            return
        self.tls_attempts += 1
        selected = struct.unpack("<I", reply[-4:])[0] if reply[11] == 2 else None
        if self.context is None or (selected not in (1, 2, 8) and not self.tls_after_anything):
            return
        tls = self.context.wrap_socket(conn, server_side=True)
        if self.credssp_reply is None:
            tls.recv(1)
            return
        data = tls.recv(4096)
        if not data:
            return
        self.credssp_requests.append(data)
        if self.credssp_reply:
            tls.sendall(self.credssp_reply)
        tls.recv(1)

    def stop(self) -> None:
        self.stopped = True
        self.sock.close()


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Server context with the CA-issued 'valid' certificate, and the CA bundle path."""
    made = testcerts.generate_set(tmp_path_factory.mktemp("certs"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(made["valid"].cert, made["valid"].key)
    return {"context": context, "ca": str(made["ca"].cert), "now": dt.datetime.now(dt.timezone.utc)}


@pytest.fixture
def servers():
    started: list[FakeRdp] = []

    def start(*args, **kwargs) -> FakeRdp:
        server = FakeRdp(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def run(port: int, clock: Callable[[], dt.datetime] | None = None, **overrides) -> dict:
    options = probe_mod.ProbeOptions(**{"host": "127.0.0.1", "port": port, "connect_timeout": 2.0, "read_timeout": 2.0,
                                        **overrides})
    return probe_mod.probe(options, clock=clock or probe_mod._utc_now)  # pylint: disable=protected-access


def verdicts(result: dict) -> dict[str, str]:
    return {step["step"]: step["verdict"] for step in result["steps"]}


def ids(result: dict, step: str) -> list[str]:
    return next(s["finding_ids"] for s in result["steps"] if s["step"] == step)


def windows_nla(requested: int | None, _index: int) -> bytes:
    """Windows with SecurityLayer 2 and NLA required."""
    if requested is not None and requested & 0x0A:
        return rsp(2)
    return fail(5)


# --- the shell against scripted listeners -------------------------------------------------------------

def test_windows_like_nla_server_with_a_fast_clock(servers, tls_material: dict) -> None:
    now = tls_material["now"]
    reply = wire.encode_ts_request(6, [challenge(now + dt.timedelta(hours=1))])
    server = servers(windows_nla, tls_material["context"], credssp_reply=reply)
    result = run(server.port, clock=lambda: now, ca_bundle=tls_material["ca"])
    assert verdicts(result) == {"dns": "ok", "tcp": "ok", "x224": "ok", "tls": "ok", "certificate": "ok", "nla": "warn"}
    assert ids(result, "nla") == ["RDP-PROBE-NLA-REQUIRED", "RDP-PROBE-CLOCK-SKEW"]
    assert result["x224"]["answers"] == {"0x0b": "HYBRID", "0x01": "FAILURE:HYBRID_REQUIRED_BY_SERVER",
                                         "0x00": "FAILURE:HYBRID_REQUIRED_BY_SERVER"}
    assert result["nla"]["state"] == "required"
    assert result["nla"]["clock_skew_seconds"] == 3600.0
    ntlm = result["nla"]["credssp"]["ntlm"]
    assert (ntlm["netbios_computer"], ntlm["dns_computer"], ntlm["os_version"]) == ("WIN01", "win01.corp.test", "10.0.20348")
    assert result["verdict"]["ok"] is True and result["verdict"]["failed_step"] is None
    # exactly one CredSSP message was sent, an NTLM NEGOTIATE: no credentials, no logon attempt
    assert len(server.credssp_requests) == 1
    sent = wire.decode_ts_request(server.credssp_requests[0])
    assert sent["nego_tokens"][0][8:12] == b"\x01\x00\x00\x00"
    assert result["x224"]["mixes"][0]["flag_names"][-1] == "REDIRECTED_AUTHENTICATION_MODE_SUPPORTED"


def test_credssp_error_code_fails_the_nla_step(servers, tls_material: dict) -> None:
    body = wire.der_tlv(0xA0, wire.der_integer(6)) + wire.der_tlv(0xA4, wire.der_integer(-2146893054))
    server = servers(windows_nla, tls_material["context"], credssp_reply=wire.der_tlv(0x30, body))
    result = run(server.port, ca_bundle=tls_material["ca"])
    assert verdicts(result)["nla"] == "fail"
    assert ids(result, "nla") == ["RDP-PROBE-NLA-REQUIRED", "RDP-PROBE-CREDSSP-ERROR"]
    assert result["verdict"]["failed_step"] == "nla"
    assert "0x80090302" in result["steps"][5]["summary"]


def test_credssp_silence_fails_the_nla_step(servers, tls_material: dict) -> None:
    server = servers(windows_nla, tls_material["context"], credssp_reply=b"")
    result = run(server.port, ca_bundle=tls_material["ca"], read_timeout=0.3)
    assert ids(result, "nla") == ["RDP-PROBE-NLA-REQUIRED", "RDP-PROBE-CREDSSP-FAILED"]
    assert result["nla"]["credssp"]["status"] == "timeout"


def test_nla_false_sends_no_credssp_message(servers, tls_material: dict) -> None:
    server = servers(windows_nla, tls_material["context"], credssp_reply=b"")
    result = run(server.port, ca_bundle=tls_material["ca"], nla=False)
    assert verdicts(result)["nla"] == "ok" and ids(result, "nla") == ["RDP-PROBE-NLA-REQUIRED"]
    assert server.credssp_requests == [] and result["nla"]["credssp"] is None


def test_legacy_server_without_negotiation(servers) -> None:
    server = servers(lambda requested, index: cc())
    result = run(server.port, mixes=(0x0B, None))
    assert verdicts(result) == {"dns": "ok", "tcp": "ok", "x224": "warn", "tls": "skipped", "certificate": "skipped",
                                "nla": "warn"}
    assert ids(result, "x224") == ["RDP-PROBE-STANDARD-RDP-ONLY"]
    assert result["x224"]["answers"] == {"0x0b": "LEGACY", "none": "LEGACY"}
    assert result["nla"]["state"] == "absent"


def test_disconnect_provider_ultimatum_is_a_rejection(servers) -> None:
    server = servers(lambda requested, index: DPUM)
    result = run(server.port)
    assert verdicts(result)["x224"] == "fail"
    assert ids(result, "x224") == ["RDP-PROBE-NEG-REJECTED"]
    assert verdicts(result)["tls"] == "skipped"


def test_a_protocol_the_client_did_not_request_is_a_violation_and_never_used(servers, tls_material: dict) -> None:
    server = servers(lambda requested, index: rsp(4), tls_material["context"])
    result = run(server.port)
    assert ids(result, "x224") == ["RDP-PROBE-NEG-PROTOCOL-VIOLATION"]
    assert server.tls_attempts == 0 and result["tls"] is None


def test_no_tls_after_a_negotiation_failure_even_if_the_server_would_accept_it(servers, tls_material: dict) -> None:
    # FreeRDP 2.11 keeps the connection after RDP_NEG_FAILURE and still accepts TLS (pitfall 5)
    server = servers(lambda requested, index: fail(2) if requested else rsp(0), tls_material["context"],
                     tls_after_anything=True)
    result = run(server.port)
    assert server.tls_attempts == 0
    assert result["x224"]["answers"] == {"0x0b": "FAILURE:SSL_NOT_ALLOWED_BY_SERVER", "0x01": "FAILURE:SSL_NOT_ALLOWED_BY_SERVER",
                                         "0x00": "RDP"}
    assert verdicts(result) == {"dns": "ok", "tcp": "ok", "x224": "warn", "tls": "skipped", "certificate": "skipped",
                                "nla": "warn"}
    assert ids(result, "x224") == ["RDP-PROBE-NEG-FAILURE-SSL_NOT_ALLOWED_BY_SERVER", "RDP-PROBE-STANDARD-RDP-ONLY"]


def test_later_connections_failing_are_reported_as_inconsistent(servers, tls_material: dict) -> None:
    server = servers(lambda requested, index: rsp(1) if index == 0 else None, tls_material["context"])
    result = run(server.port, ca_bundle=tls_material["ca"], server_name="localhost")
    assert verdicts(result)["x224"] == "warn"
    assert ids(result, "x224") == ["RDP-PROBE-INCONSISTENT"]
    assert result["x224"]["answers"] == {"0x0b": "SSL", "0x01": "CLOSED", "0x00": "CLOSED"}
    assert verdicts(result)["certificate"] == "ok"


def test_server_closing_without_answer(servers) -> None:
    server = servers(lambda requested, index: None)
    result = run(server.port)
    assert ids(result, "x224") == ["RDP-PROBE-CLOSED"]
    assert result["x224"]["service_check"]["tls_service"] is False
    assert "0x904" in result["verdict"]["client_sees"] and result["verdict"]["client_sees_basis"] == "inference"
    assert len(result["x224"]["mixes"]) == 1  # no point repeating the other mixes


def test_tls_handshake_failure(servers) -> None:
    broken = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # no certificate: the handshake fails server-side
    server = servers(lambda requested, index: rsp(1), broken)
    result = run(server.port)
    assert verdicts(result)["tls"] == "fail" and ids(result, "tls") == ["RDP-PROBE-TLS-FAILED"]
    assert verdicts(result)["certificate"] == "skipped"
    assert result["verdict"]["failed_step"] == "tls"


def test_dns_addresses_are_all_tried_and_the_first_that_connects_is_used(servers) -> None:
    server = servers(lambda requested, index: rsp(0))

    def resolver(host, port, *args):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.3", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    options = probe_mod.ProbeOptions(host="win01.corp.test", port=server.port, expected_address="127.0.0.1")
    result = probe_mod.probe(options, resolver=resolver)
    assert result["dns"]["addresses"] == ["127.0.0.3", "127.0.0.1"]
    assert verdicts(result)["dns"] == "ok" and verdicts(result)["tcp"] == "warn"
    assert ids(result, "tcp") == ["RDP-PROBE-TCP-PARTIAL"]
    assert result["tcp"]["address"] == "127.0.0.1"
    assert [a["outcome"] for a in result["tcp"]["attempts"]] == ["refused", "connected"]


def test_dns_mismatch_fails_dns_but_the_probe_goes_on(servers) -> None:
    server = servers(lambda requested, index: rsp(0))

    def resolver(host, port, *args):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    options = probe_mod.ProbeOptions(host="win01.corp.test", port=server.port, expected_address="127.0.0.4")
    result = probe_mod.probe(options, resolver=resolver)
    assert verdicts(result)["dns"] == "fail" and ids(result, "dns") == ["RDP-DNS-MISMATCH"]
    assert verdicts(result)["x224"] == "warn"  # the probe still looked at what the client reaches
    assert [(a["address"], a["source"], a["outcome"]) for a in result["tcp"]["attempts"]] == [
        ("127.0.0.1", "dns", "connected"), ("127.0.0.4", "expected_address", "refused")]
    assert result["verdict"]["failed_step"] == "dns"
    assert result["verdict"]["finding_ids"][0] == "RDP-DNS-MISMATCH"


def test_dns_failure_stops_everything() -> None:
    def resolver(*args):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    result = probe_mod.probe(probe_mod.ProbeOptions(host="nowhere.invalid"), resolver=resolver)
    assert verdicts(result) == {"dns": "fail", "tcp": "skipped", "x224": "skipped", "tls": "skipped",
                                "certificate": "skipped", "nla": "skipped"}
    assert result["steps"][1]["summary"] == "not reached: the dns step failed"
    assert result["verdict"]["finding_ids"] == ["RDP-DNS-FAILED"]
    assert "0x104" in result["verdict"]["client_sees"]


def test_only_requested_steps_and_their_prerequisites_run(servers, tls_material: dict) -> None:
    server = servers(windows_nla, tls_material["context"], credssp_reply=b"")
    dns_only = run(server.port, steps=("dns",))
    assert verdicts(dns_only) == {"dns": "ok", "tcp": "skipped", "x224": "skipped", "tls": "skipped",
                                  "certificate": "skipped", "nla": "skipped"}
    assert server.connections == 0
    cert_only = run(server.port, steps=("certificate",), ca_bundle=tls_material["ca"])
    assert verdicts(cert_only) == {"dns": "ok", "tcp": "ok", "x224": "ok", "tls": "ok", "certificate": "ok", "nla": "skipped"}
    assert cert_only["steps"][3]["details"]["ran_as_prerequisite"] is True
    assert server.credssp_requests == []


def test_probe_many_respects_the_per_target_limit(servers) -> None:
    server = servers(lambda requested, index: rsp(0), delay=0.05)
    plans = [probe_mod.ProbeOptions(host="127.0.0.1", port=server.port, max_connections_per_target=2) for _i in range(6)]
    results = probe_mod.probe_many(plans, concurrency=6)
    assert [r["x224"]["answers"]["0x0b"] for r in results] == ["RDP"] * 6
    assert server.max_active == 2
    single = servers(lambda requested, index: rsp(0), delay=0.02)
    probe_mod.probe_many([{"host": "127.0.0.1", "port": single.port}] * 4, concurrency=4,
                         defaults={"max_connections_per_target": 1, "mixes": (0x0B,)})
    assert single.max_active == 1 and single.connections == 4


def test_probe_many_keeps_order_and_reports_bad_options(servers) -> None:
    first = servers(lambda requested, index: rsp(0))
    second = servers(lambda requested, index: DPUM)
    results = probe_mod.probe_many([{"port": first.port}, {"port": second.port}, {"port": 0}], concurrency=3,
                                   defaults={"host": "127.0.0.1"})
    assert results[0]["x224"]["answers"]["0x0b"] == "RDP"
    assert results[1]["x224"]["answers"]["0x0b"] == "DPUM"
    assert "port out of range" in results[2]["error"]


# --- options ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    ({"steps": ("dns", "ping")}, "unknown steps"),
    ({"mixes": (0x0F, 0x0B)}, "first mix must not request RDSTLS"),
    ({"mixes": ()}, "mixes must not be empty"),
    ({"max_connections_per_target": 0}, "at least 1"),
    ({"read_timeout": 0}, "read_timeout must be a finite number of seconds greater than 0"),
    ({"cookie": "a b"}, "cookie must be ASCII"),
    ({"port": 70000}, "port out of range"),
])
def test_option_errors(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        probe_mod.probe(probe_mod.ProbeOptions(host="127.0.0.1", **overrides))


@pytest.mark.parametrize("value, expected", [("0x0b", 11), ("11", 11), (3, 3), ("none", None), (None, None), ("", None)])
def test_parse_mix(value, expected) -> None:
    assert probe_mod.parse_mix(value) == expected


@pytest.mark.parametrize("value", ["0x1ffffffff", "tls", True, -1])
def test_parse_mix_rejects(value) -> None:
    with pytest.raises(ValueError):
        probe_mod.parse_mix(value)


def test_steps_to_run_adds_prerequisites() -> None:
    assert probe_mod.steps_to_run(["certificate"]) == {"dns", "tcp", "x224", "tls", "certificate"}
    assert probe_mod.steps_to_run(["nla"]) == {"dns", "tcp", "x224", "nla"}


# --- pure judges -------------------------------------------------------------------------------------

def mix(requested: int | None, answer: bytes | str) -> dict:
    """A mix record as the shell records it."""
    record = {"requested": requested, "requested_hex": probe_mod.mix_label(requested), "elapsed_ms": 1.0}
    record.update({"kind": answer} if isinstance(answer, str) else wire.parse_x224_answer(answer))
    if record["kind"] == "connect_failed":
        record["connect"] = {"outcome": "refused"}
    return record


# The negotiation matrix of real-rdp-servers.md for the default mixes, with the NLA state it implies.
@pytest.mark.parametrize("answers, state", [
    ((rsp(2), fail(5), fail(5)), "required"),        # shadow-nla
    ((rsp(2), rsp(1), fail(1)), "offered"),          # shadow-nla-optional
    ((rsp(1), rsp(1), rsp(0)), "absent"),            # xrdp-neg-valid
    ((rsp(0), rsp(0), rsp(0)), "absent"),            # xrdp-rdp
    ((fail(2), fail(2), rsp(0)), "absent"),          # shadow-rdp
    ((fail(3), fail(3), fail(3)), "unknown"),        # xrdp-tls-nocert
    ((fail(1), fail(1), fail(1)), "unknown"),        # shadow-ext
    ((rsp(8), rsp(1), rsp(1)), "offered"),           # HYBRID_EX
])
def test_nla_state_from_the_matrix(answers: tuple, state: str) -> None:
    records = [mix(m, a) for m, a in zip((0x0B, 0x01, 0x00), answers)]
    assert probe_mod.nla_state(records)[0] == state


@pytest.mark.parametrize("first, verdict, finding", [
    (rsp(1), "ok", None),
    (rsp(0), "warn", "RDP-PROBE-STANDARD-RDP-ONLY"),
    (fail(3), "fail", "RDP-PROBE-NEG-FAILURE-SSL_CERT_NOT_ON_SERVER"),
    (fail(1), "fail", "RDP-PROBE-NEG-FAILURE-SSL_REQUIRED_BY_SERVER"),
    (fail(2), "fail", "RDP-PROBE-NEG-FAILURE-SSL_NOT_ALLOWED_BY_SERVER"),  # no RDP fallback in the other answers
    (cc(), "warn", "RDP-PROBE-STANDARD-RDP-ONLY"),
    (DPUM, "fail", "RDP-PROBE-NEG-REJECTED"),
    (b"SSH-2.0-x\r\n", "fail", "RDP-PROBE-NOT-RDP"),
    ("no_answer", "fail", "RDP-PROBE-NO-ANSWER"),
    ("closed", "fail", "RDP-PROBE-CLOSED"),
    ("reset", "fail", "RDP-PROBE-CLOSED"),
    (b"\x03\x00\x00\x13\x0e", "fail", "RDP-PROBE-MALFORMED-ANSWER"),
])
def test_judge_x224_first_mix(first, verdict: str, finding: str | None) -> None:
    step = probe_mod.judge_x224([mix(0x0B, first), mix(0x01, fail(3))])
    assert step["verdict"] == verdict
    assert step["finding_ids"] == ([finding] if finding else [])


def test_judge_x224_bare_tls_service() -> None:
    step = probe_mod.judge_x224([mix(0x0B, "reset")], {"tls_service": True, "version": "TLSv1.3"})
    assert step["finding_ids"] == ["RDP-PROBE-NOT-RDP"] and "bare TLS service (TLSv1.3)" in step["summary"]


@pytest.mark.parametrize("tls, verdict, finding", [
    ({"ok": True, "version": "TLSv1.3", "cipher": "TLS_AES_256_GCM_SHA384", "cipher_bits": 256}, "ok", None),
    ({"ok": True, "version": "TLSv1.2", "cipher": "ECDHE-RSA-AES128-GCM-SHA256", "cipher_bits": 128}, "ok", None),
    ({"ok": True, "version": "TLSv1", "cipher": "ECDHE-RSA-AES256-SHA", "cipher_bits": 256}, "fail", "RDP-PROBE-TLS-LEGACY"),
    ({"ok": True, "version": "TLSv1.1", "cipher": "AES256-SHA", "cipher_bits": 256}, "fail", "RDP-PROBE-TLS-LEGACY"),
    ({"ok": True, "version": "TLSv1.2", "cipher": "DES-CBC3-SHA", "cipher_bits": 112}, "warn", "RDP-PROBE-TLS-WEAK-CIPHER"),
    ({"ok": True, "version": "TLSv1.2", "cipher": "RC4-SHA", "cipher_bits": 128}, "warn", "RDP-PROBE-TLS-WEAK-CIPHER"),
    ({"ok": False, "error": "tlsv1 alert protocol version", "reason": "TLSV1_ALERT_PROTOCOL_VERSION"}, "fail",
     "RDP-PROBE-TLS-FAILED"),
])
def test_judge_tls(tls: dict, verdict: str, finding: str | None) -> None:
    step = probe_mod.judge_tls(dict(tls, elapsed_ms=1.0, mix="0x0b"), [])
    assert step["verdict"] == verdict
    assert step["finding_ids"] == ([finding] if finding else [])


def test_judge_tls_skipped_says_why() -> None:
    assert probe_mod.judge_tls(None, [mix(0x0B, rsp(0))])["summary"] == "no TLS: the server selected standard RDP security"


def _cert(*problems: tuple[str, str]) -> dict:
    return {"ok": True, "subject": "CN=x", "subject_cn": "x", "issuer": "CN=y", "issuer_cn": "y", "sha1_thumbprint": "AB",
            "not_after": "2027-01-01T00:00:00Z", "validity": {"days_left": 40},
            "problems": [{"code": c, "id": "RDP-CERT-" + c.upper().replace("_", "-"), "severity": s, "message": c}
                         for c, s in problems]}


@pytest.mark.parametrize("problems, verdict", [
    ((), "ok"),
    ((("self_signed", "info"),), "ok"),
    ((("self_signed", "info"), ("untrusted", "medium")), "warn"),
    ((("expiring_soon", "low"),), "warn"),
    ((("expired", "high"), ("self_signed", "info")), "fail"),
    ((("name_mismatch", "high"),), "fail"),
    ((("not_yet_valid", "high"),), "fail"),
])
def test_judge_certificate(problems: tuple, verdict: str) -> None:
    step = probe_mod.judge_certificate(_cert(*problems), 0.5)
    assert step["verdict"] == verdict
    assert step["details"]["problems"] == [c for c, _s in problems]


def test_judge_certificate_unreadable() -> None:
    step = probe_mod.judge_certificate({"ok": False, "error": "not a DER X.509 certificate"}, 0.1)
    assert step["verdict"] == "fail" and step["finding_ids"] == ["RDP-CERT-UNREADABLE"]


def test_judge_tcp_outcomes() -> None:
    attempts = [{"address": "10.0.0.5", "source": "dns", "outcome": "refused", "elapsed_ms": 0.2},
                {"address": "10.0.0.6", "source": "dns", "outcome": "timeout", "elapsed_ms": 5000.0}]
    refused = {"address": None, "attempts": attempts}
    step = probe_mod.judge_tcp(refused, 3389)
    assert step["verdict"] == "fail"
    assert step["finding_ids"] == ["RDP-PROBE-TCP-REFUSED", "RDP-PROBE-TCP-TIMEOUT"]
    assert step["elapsed_ms"] == 5000.2


def test_judge_dns_ipv6_literal_equality() -> None:
    record = {"name": "h", "literal": False, "addresses": ["::1"], "error": None, "expected_address": "0:0::1", "elapsed_ms": 1}
    assert probe_mod.judge_dns(record)["verdict"] == "ok"


def test_compose_verdict_takes_the_first_failure_and_every_id() -> None:
    steps = [probe_mod._step("dns", "ok", "fine"),  # pylint: disable=protected-access
             probe_mod._step("x224", "warn", "w", finding_ids=["RDP-PROBE-STANDARD-RDP-ONLY"]),  # pylint: disable=protected-access
             probe_mod._step("certificate", "fail", "bad", finding_ids=["RDP-CERT-EXPIRED", "RDP-CERT-SELF-SIGNED"]),  # pylint: disable=protected-access
             probe_mod._step("nla", "fail", "worse", finding_ids=["RDP-PROBE-CREDSSP-FAILED", "RDP-CERT-EXPIRED"])]  # pylint: disable=protected-access
    verdict = probe_mod.compose_verdict(steps)
    assert verdict["ok"] is False and verdict["failed_step"] == "certificate"
    assert verdict["finding_ids"] == ["RDP-PROBE-STANDARD-RDP-ONLY", "RDP-CERT-EXPIRED", "RDP-CERT-SELF-SIGNED",
                                      "RDP-PROBE-CREDSSP-FAILED"]
    assert verdict["findings"][1] == {"id": "RDP-CERT-EXPIRED", "step": "certificate", "severity": "high"}
    assert verdict["client_sees"].startswith("mstsc: \"The identity of the remote computer cannot be verified\"")
    assert verdict["explanation"] == "certificate: bad"


def test_every_emitted_id_has_a_severity_and_client_text_where_it_can_fail() -> None:
    for finding_id in probe_mod.CLIENT_SEES:
        assert finding_id in probe_mod.FINDING_SEVERITY, finding_id
    assert set(probe_mod.FINDING_SEVERITY.values()) <= {"critical", "high", "medium", "low", "info"}


def test_documentation_lists_every_finding_id() -> None:
    doc = (Path(__file__).resolve().parents[4] / "docs" / "probe.md").read_text(encoding="utf-8")
    missing = [finding_id for finding_id in probe_mod.FINDING_SEVERITY if f"`{finding_id}`" not in doc]
    assert not missing, missing


def test_warm_up_builds_what_every_forked_probe_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller's main process builds the TLS context, the trust store and its path validation store once:
    a worker forked after it finds them built (each would otherwise build its own for every host)."""
    monkeypatch.setattr(x509_info, "_STORE_CACHE", {})  # as in a fresh ansible-playbook
    probe_mod.warm_up()
    store = x509_info.load_trust_store()
    assert store.count > 0, store.error  # the system store of the controller (ca-certificates is a project package)
    assert store._verification_store is not None  # pylint: disable=protected-access
    assert probe_mod.permissive_context() is probe_mod.permissive_context()
