"""Issue 10, probe half: bad options are refused before anything is looked up or opened, with a message naming
the option and what it allows; the library never loses a connection slot or a batch to one bad target; a
later protocol mix that breaks the negotiation is flagged."""

from __future__ import annotations

import errno
import os
import socket
import threading
import typing as t
from pathlib import Path

import pytest

from ansible_collections.rdp.doctor.plugins.action.probe import probe_in_process
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe as probe_mod
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def finished(work: t.Callable[[], t.Any], bound: float = 60.0) -> tuple[bool, t.Any]:
    """(whether ``work`` returned at all, its result): a hang guard, not a timing assertion."""
    box: list[t.Any] = []
    thread = threading.Thread(target=lambda: box.append(work()), daemon=True)
    thread.start()
    thread.join(bound)
    return not thread.is_alive(), box[0] if box else None


# --- bad options: refused up front, the message names the option -------------------------------------------

BAD_ARGUMENTS: list[tuple[dict[str, t.Any], str]] = [
    ({"connect_timeout": "inf"}, "connect_timeout must be a finite number of seconds greater than 0 and at most 3600"),
    ({"read_timeout": 1e308}, "read_timeout must be a finite number of seconds greater than 0 and at most 3600"),
    ({"read_timeout": "nan"}, "read_timeout must be a finite number"),
    ({"connect_timeout": -1}, "connect_timeout must be a finite number"),
    ({"expiring_days": 1e20}, "expiring_days must be a whole number of days from 0 to 36500"),
    ({"expiring_days": -3}, "expiring_days must be a whole number of days"),
    ({"max_clock_skew": -1}, "max_clock_skew must be a finite number from 0"),
    ({"max_clock_skew": "inf"}, "max_clock_skew must be a finite number from 0"),
    ({"server_name": "rdp\x00.example.com"}, "server_name must be an IP address or a host name"),
    ({"server_name": "a" * 5000}, "server_name must be an IP address or a host name of at most 253 characters"),
    ({"server_name": ("b" * 64) + ".example.com"}, "labels of 1-63 characters"),
    ({"server_name": "two words"}, "server_name must be an IP address or a host name"),
    ({"expected_address": "127.0.0.1\x00"}, "expected_address must be an IPv4 or IPv6 address"),
    ({"expected_address": "999.1.1.1"}, "expected_address must be an IPv4 or IPv6 address (the inventory address"),
    ({"expected_address": "win01.corp.test"}, "expected_address must be an IPv4 or IPv6 address"),
    ({"host": "999.1.1.1"}, "host must be an IP address or a host name: '999.1.1.1' looks like an IPv4 address"),
    ({"host": "win\x0001"}, "host must be an IP address or a host name"),
    ({"host": "x" * 300}, "host must be an IP address or a host name of at most 253 characters"),
    ({"steps": []}, "steps must name at least one step"),
    ({"port": 0}, "port must be a TCP port from 1 to 65535"),
    ({"max_connections_per_target": 10000}, "max_connections_per_target must be at least 1 and at most 64"),
    ({"cookie": "c" * 300}, "cookie must be at most 221 characters"),
    ({"cookie": "a\x00b"}, "cookie must be ASCII without spaces, line breaks or control characters"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_ARGUMENTS)
def test_bad_options_are_refused_with_the_option_named(overrides: dict[str, t.Any], message: str) -> None:
    """As the module sees them: a failed result naming the option, no traceback, no probe result."""
    result = probe_in_process({"host": "127.0.0.1", "port": closed_port(), **overrides})
    assert result["failed"] is True, result
    assert message in result["msg"]
    assert "exception" not in result and "steps" not in result


def test_a_malformed_expected_address_is_never_looked_up() -> None:
    """999.1.1.1 was resolved as a name (and then reported as a DNS mismatch): now nothing is resolved."""
    asked: list[str] = []

    def resolver(host: str, *_args: t.Any) -> list[t.Any]:
        asked.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 3389))]

    options = probe_mod.ProbeOptions(host="localhost", expected_address="999.1.1.1", connect_timeout=1, read_timeout=1)
    with pytest.raises(ValueError, match="expected_address must be an IPv4 or IPv6 address"):
        probe_mod.probe(options, resolver=resolver)
    assert asked == []


@pytest.mark.parametrize("name", ["localhost", "rdp-valid.test", "WIN01", "win01.corp.test.", "127.0.0.1", "::1", "[::1]",
                                  "fe80::1%eth0", "bücher.example", "a" * 63 + ".test"])
def test_usable_names_pass(name: str) -> None:
    assert probe_mod.name_error("host", name) is None


def test_good_numbers_at_the_bounds_pass() -> None:
    options = probe_mod.ProbeOptions(host="127.0.0.1", connect_timeout=3600, read_timeout=0.001, max_clock_skew=0,
                                     expiring_days=36500, max_connections_per_target=64, cookie="c" * 221,
                                     expected_address="::1")
    assert probe_mod.option_errors(options) == []


# --- ca_bundle: a regular readable file of bounded size, checked before any read -----------------------------

def test_a_fifo_as_ca_bundle_is_refused_without_opening_it(tmp_path: Path) -> None:
    """It used to block the probe forever (open() of a FIFO waits for a writer)."""
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    returned, result = finished(lambda: probe_in_process({"host": "127.0.0.1", "port": closed_port(), "ca_bundle": str(fifo)}))
    assert returned
    assert result["failed"] is True
    assert "ca_bundle must be a directory or a regular readable file" in result["msg"] and "is a FIFO (named pipe)" in result["msg"]
    returned, store = finished(lambda: x509_info.load_trust_store(str(fifo)))
    assert returned and store.count == 0 and "is a FIFO (named pipe), not a regular file" in store.error


def test_dev_zero_as_ca_bundle_is_refused_without_reading_it() -> None:
    """It used to be read without limit."""
    result = probe_in_process({"host": "127.0.0.1", "port": closed_port(), "ca_bundle": "/dev/zero"})
    assert result["failed"] is True and "/dev/zero is a character device, not a regular file" in result["msg"]
    store = x509_info.load_trust_store("/dev/zero")
    assert store.count == 0 and "character device" in store.error


def test_an_oversized_ca_bundle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.pem"
    big.write_bytes(b"x" * 2048)
    monkeypatch.setattr(x509_info, "MAX_BUNDLE_BYTES", 1024)
    assert "is 2048 bytes, more than the 1024 bytes" in x509_info.bundle_path_problem(str(big))
    store = x509_info.load_trust_store(str(big))
    assert store.count == 0 and "more than the 1024 bytes" in store.error


def test_a_fifo_in_a_ca_directory_is_skipped(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "trap.pem")
    returned, store = finished(lambda: x509_info.load_trust_store(str(tmp_path)))
    assert returned and store.count == 0 and store.error is None


def test_a_ca_bundle_swapped_for_a_fifo_after_the_check_is_not_read(tmp_path: Path) -> None:
    """The open descriptor is checked again (non-blocking open), not only the path."""
    fifo = tmp_path / "swapped.pem"
    os.mkfifo(fifo)
    returned, outcome = finished(lambda: pytest.raises(ValueError, x509_info._read_bounded, str(fifo)))  # pylint: disable=protected-access
    assert returned and "FIFO" in str(outcome.value)


# --- the library: gate slots, batches ------------------------------------------------------------------------

def test_connect_never_loses_a_gate_slot() -> None:
    """A failing settimeout (nan) or connect (NUL in the address) used to raise with the slot taken: after two,
    every later probe of that target in the process blocked forever."""
    port = closed_port()
    for timeout, address in ((float("nan"), "127.0.0.1"), (float("inf"), "127.0.0.1"), (1.0, "127.0.0.\x001")):
        conn, attempt = probe_mod.connect(address, socket.AF_INET, port, timeout, 2)
        assert conn is None and attempt["outcome"] == "error" and attempt["error"]
    gate = probe_mod._gate("127.0.0.1", port, 2)  # pylint: disable=protected-access
    assert gate.acquire(blocking=False) and gate.acquire(blocking=False)
    gate.release()
    gate.release()


def test_probe_many_survives_any_bad_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """A target that is not even a valid set of options, or whose probe raises something unexpected, yields an
    error entry; every other target still gets its result, in order."""
    real_probe = probe_mod.probe

    def probe(options: probe_mod.ProbeOptions, **kwargs: t.Any) -> dict[str, t.Any]:
        if options.host == "crash.test":
            raise RuntimeError("boom")
        return real_probe(options, **kwargs)

    monkeypatch.setattr(probe_mod, "probe", probe)
    port = closed_port()
    results = probe_mod.probe_many(
        [{"host": "127.0.0.1", "bogus": 1}, "crash.test", {"host": "127.0.0.1", "read_timeout": float("nan")},
         None, {"host": "127.0.0.1"}],
        concurrency=2, defaults={"port": port, "connect_timeout": 1.0})
    assert "unexpected keyword argument 'bogus'" in results[0]["error"] and results[0]["target"] == "127.0.0.1"
    assert results[1] == {"target": "crash.test", "port": port, "error": "RuntimeError: boom"}
    assert "read_timeout must be a finite number" in results[2]["error"]
    assert "host must be an IP address or a host name" in results[3]["error"]
    assert results[4]["verdict"]["failed_step"] == "tcp"


# --- a later mix selecting a protocol the client did not offer -------------------------------------------------

def answer(requested: int | None, selected: int) -> dict[str, t.Any]:
    return {"requested": requested, "requested_hex": probe_mod.mix_label(requested), "kind": "negotiation_response",
            "selected_protocol": selected, "selected_name": probe_mod.wire.selected_protocol_name(selected),
            "flags": 0, "elapsed_ms": 1.0}


@pytest.mark.parametrize(("records", "verdict", "words"), [
    # the client's mix is fine, a TLS-only client is handed HYBRID: flagged, the step warns
    ([answer(0x0B, 0x02), answer(0x01, 0x02), answer(0x00, 0x00)], "warn", "for 0x01 the server selected HYBRID"),
    # a standard-RDP-only client is handed TLS
    ([answer(0x0B, 0x01), answer(0x01, 0x01), answer(0x00, 0x01)], "warn", "for 0x00 the server selected SSL"),
    # a request without RDP_NEG_REQ asked for standard RDP only
    ([answer(0x0B, 0x01), answer(None, 0x01)], "warn", "for none the server selected SSL"),
    # selectedProtocol must be one protocol, even when every bit was requested
    ([answer(0x0B, 0x03)], "fail", "selected 0x3, which is not a single protocol"),
    ([answer(0x0B, 0x01), answer(0x0B, 0x0A)], "warn", "selected 0xa, which is not a single protocol"),
])
def test_a_protocol_violation_in_any_mix_is_flagged(records: list[dict[str, t.Any]], verdict: str, words: str) -> None:
    step = probe_mod.judge_x224(records)
    assert step["verdict"] == verdict
    assert "RDP-PROBE-NEG-PROTOCOL-VIOLATION" in step["finding_ids"]
    assert words in step["summary"]


def test_a_clean_negotiation_is_not_flagged() -> None:
    step = probe_mod.judge_x224([answer(0x0B, 0x02), answer(0x01, 0x01), answer(0x00, 0x00)])
    assert step["verdict"] == "ok" and step["finding_ids"] == []


def test_a_timestamp_av_pair_of_the_wrong_length_is_no_time() -> None:
    """MsvAvTimestamp with 1 byte used to come back as the hex string '00', which the CredSSP step then parsed as an
    ISO time and crashed on (found by test_parser_fuzz)."""
    pairs = probe_mod.wire.parse_av_pairs(bytes.fromhex("0700010000") + bytes.fromhex("0600020001") + b"\x00\x00\x00\x00")
    assert pairs["timestamp"] is None and pairs["av_flags"] is None


def test_a_reset_that_beats_connect_returning_is_the_listener_closing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The handshake completes, the server resets at once, and a busy client sees connect() fail with ECONNRESET.

    Something listens (it answered the SYN): the verdict is the same as when the reset comes after connect()
    returned - TCP ok, the X.224 step reports the closed connection - not a TCP failure (a race seen under load).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]

    class ResetOnConnect(socket.socket):
        def connect(self, address: t.Any) -> None:
            super().connect(address)
            raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr(probe_mod.socket, "socket", ResetOnConnect)
    try:
        result = probe_mod.probe(probe_mod.ProbeOptions(host="127.0.0.1", port=port, connect_timeout=1.0, read_timeout=1.0))
    finally:
        listener.close()
    steps = {step["step"]: step for step in result["steps"]}
    assert steps["tcp"]["verdict"] == "ok"
    assert result["verdict"]["failed_step"] == "x224", result["verdict"]
    assert "RDP-PROBE-CLOSED" in result["verdict"]["finding_ids"], result["verdict"]


def test_tls_on_a_connection_the_server_already_reset_is_a_failed_handshake() -> None:
    """A server that resets right after accept(), seen late (a loaded client): wrap_socket finds the socket unconnected,
    skips the handshake and returns; the probe said 'OSError: [Errno 107] Transport endpoint is not connected' instead
    of a verdict (found by tests/integration/test_probe_hostile.py's reset-on-accept under load). An unconnected socket
    is the same state, deterministically."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    gate = threading.BoundedSemaphore(1)
    gate.acquire()  # pylint: disable=consider-using-with  # the connection gives it back on close
    conn = probe_mod._Connection(sock, gate)  # pylint: disable=protected-access
    try:
        result = probe_mod.tls_handshake(conn, "win01", 1.0)
    finally:
        conn.close()
    assert result["ok"] is False and "reset before the TLS handshake" in result["error"], result
    assert str(errno.ENOTCONN) in result["error"] or "not connected" in result["error"]
    assert gate.acquire(blocking=False)  # the slot came back
