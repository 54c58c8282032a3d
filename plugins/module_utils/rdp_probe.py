# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The client's eye: walk the RDP connection sequence up to the first CredSSP message and say which
step fails and why.

Layout ("functional core, imperative shell"):

* ``_Run`` (the shell) opens connections and records raw observations: DNS answers, TCP outcomes per
  address, the X.224 answer per protocol mix, the TLS handshake, the certificate bytes, the first
  CredSSP answer. It never judges.
* ``judge_*`` functions (the core, pure) turn observations into step results and ``compose_verdict``
  into the verdict. They are unit-tested without a network.

Rules the probe keeps (docs/probe.md, reference real-rdp-servers.md):

* read ``selectedProtocol``, never just the message type;
* never lead with RDSTLS/RDSAAD bits (old xrdp disconnects), and never infer TLS support from a
  handshake after a negotiation failure: TLS runs only on a connection where the server *selected* a
  TLS-based protocol;
* observe TLS with a permissive context (TLS 1.0+, ``ALL:@SECLEVEL=0``), then judge the result;
* list every certificate problem, not OpenSSL's first one;
* NLA: the 0x0B and 0x01 answers tell required / offered / absent; the CredSSP step sends only an NTLM
  NEGOTIATE (no credentials, no logon attempt) and reads the CHALLENGE;
* one probe opens at most one connection at a time, and all probes of this process share a
  per-target limit (``max_connections_per_target``): real servers have listen backlogs of 2.

Result shape: docs/dev/contracts.md section 6 and the RETURN block of plugins/modules/probe.py.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import errno
import ipaddress
import math
import socket
import ssl
import threading
import time
import typing as t
import warnings
from dataclasses import dataclass, field

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_wire as wire
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info

SCHEMA = "rdp.doctor/probe/1"
STEPS = ("dns", "tcp", "x224", "tls", "certificate", "nla")
# mstsc's mix first (SSL|HYBRID|HYBRID_EX), then TLS only (tells "NLA required" from "NLA offered"),
# then standard RDP only (tells "TLS required" from "anything goes").
DEFAULT_MIXES: tuple[int | None, ...] = (0x0B, 0x01, 0x00)
DEFAULT_COOKIE = "rdpdoctor"
# Kerberos' default maximum tolerance; NTLM itself does not care, certificates and Kerberos do.
DEFAULT_MAX_CLOCK_SKEW = 300.0
LEGACY_TLS = frozenset({"SSLv2", "SSLv3", "TLSv1", "TLSv1.1"})
WEAK_CIPHER_MARKERS = ("RC4", "DES-CBC3", "3DES", "NULL", "EXP", "ADH", "AECDH", "MD5", "IDEA", "SEED")
_PREREQUISITES: dict[str, tuple[str, ...]] = {
    "dns": (), "tcp": ("dns",), "x224": ("dns", "tcp"), "tls": ("dns", "tcp", "x224"),
    "certificate": ("dns", "tcp", "x224", "tls"), "nla": ("dns", "tcp", "x224"),
}
_HIGHEST_KNOWN_PROTOCOL_BITS = 0x1F
# Bounds of the options (option_errors): a timeout beyond an hour is a typo, not a wish; certificates are not
# issued for more than a century; a name longer than DNS allows (RFC 1035 2.3.4) cannot be typed into a client.
MAX_TIMEOUT = 3600.0
MAX_EXPIRING_DAYS = 36500
MAX_CONNECTIONS_PER_TARGET = 64
MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
# The cookie shares the X.224 Connection Request's length indicator (254) with 6 fixed bytes, "Cookie: mstshash="
# and CRLF (19) and the 8-byte RDP_NEG_REQ.
MAX_COOKIE_LENGTH = 254 - 6 - 19 - 8

# Severity of every id the probe can emit (certificate ids come from x509_info.PROBLEMS).
FINDING_SEVERITY: dict[str, str] = {
    "RDP-DNS-FAILED": "critical",
    "RDP-DNS-MISMATCH": "high",
    "RDP-PROBE-TCP-REFUSED": "critical",
    "RDP-PROBE-TCP-TIMEOUT": "critical",
    "RDP-PROBE-TCP-UNREACHABLE": "critical",
    "RDP-PROBE-TCP-FAILED": "critical",
    "RDP-PROBE-TCP-PARTIAL": "medium",
    "RDP-PROBE-NOT-RDP": "critical",
    "RDP-PROBE-NO-ANSWER": "critical",
    "RDP-PROBE-CLOSED": "critical",
    "RDP-PROBE-MALFORMED-ANSWER": "high",
    "RDP-PROBE-NEG-REJECTED": "high",
    "RDP-PROBE-NEG-PROTOCOL-VIOLATION": "high",
    "RDP-PROBE-STANDARD-RDP-ONLY": "medium",
    "RDP-PROBE-INCONSISTENT": "low",
    "RDP-PROBE-TLS-FAILED": "critical",
    "RDP-PROBE-TLS-LEGACY": "high",
    "RDP-PROBE-TLS-WEAK-CIPHER": "medium",
    "RDP-CERT-UNREADABLE": "high",
    "RDP-PROBE-NLA-REQUIRED": "info",
    "RDP-PROBE-NLA-OPTIONAL": "low",
    "RDP-PROBE-NLA-ABSENT": "medium",
    "RDP-PROBE-CREDSSP-ERROR": "high",
    "RDP-PROBE-CREDSSP-FAILED": "high",
    "RDP-PROBE-CLOCK-SKEW": "medium",
}
FINDING_SEVERITY.update({f"RDP-PROBE-NEG-FAILURE-{name}": "high" for name in wire.NEG_FAILURE_NAMES.values()})
FINDING_SEVERITY.update(dict(x509_info.PROBLEMS.values()))


# --- options ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeOptions:  # pylint: disable=too-many-instance-attributes
    """What to probe and how; the module's options map 1:1 onto these fields."""

    host: str
    port: int = 3389
    expected_address: str | None = None
    connect_timeout: float = 5.0
    read_timeout: float = 5.0
    ca_bundle: str | None = None
    server_name: str | None = None
    steps: tuple[str, ...] = STEPS
    mixes: tuple[int | None, ...] = DEFAULT_MIXES
    nla: bool = True
    trust_check: bool = True
    cookie: str | None = DEFAULT_COOKIE
    max_connections_per_target: int = 2
    max_clock_skew: float = DEFAULT_MAX_CLOCK_SKEW
    expiring_days: int = x509_info.DEFAULT_EXPIRING_DAYS
    # Set by a caller that does not know the name clients use (diagnose, for a host it could not read and
    # probes by IP): the certificate is not compared with any name and the result says why.
    name_check_skip_reason: str | None = None

    @property
    def name_to_check(self) -> str:
        """The name a client compares with the certificate: server_name, else the host as typed."""
        return self.server_name or self.host


def parse_mix(value: t.Any) -> int | None:
    """A protocol mix from an int, ``"0x0b"``, ``"11"`` or ``"none"`` (no RDP_NEG_REQ at all)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "")):
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a protocol mix: {value!r}")
    number = value if isinstance(value, int) else int(str(value).strip(), 0)
    if not 0 <= number <= 0xFFFFFFFF:
        raise ValueError(f"protocol mix out of range: {value!r}")
    return number


def mix_label(mix: int | None) -> str:
    """``0x0b`` style label, ``none`` for a request without RDP_NEG_REQ."""
    return "none" if mix is None else f"0x{mix:02x}"


def _number_error(name: str, value: t.Any, low: float, high: float, low_open: bool = False) -> str | None:
    """Message when ``value`` is not a finite number in the range (``low`` excluded when ``low_open``)."""
    allowed = f"a finite number of seconds greater than {low:g} and at most {high:g}" if low_open else \
        f"a finite number from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{name} must be {allowed}, not {value!r}"
    if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
        return f"{name} must be {allowed}, not {value!r}"
    return None


def _control_character(text: str) -> bool:
    """True when ``text`` holds a NUL or another control character (C0, DEL, C1)."""
    return any(ord(char) < 32 or 127 <= ord(char) < 160 for char in text)


def name_error(option: str, value: t.Any) -> str | None:
    """Message when ``value`` is neither an IP literal nor a host name a client could type (None when usable).

    A host name: at most 253 characters, dot-separated labels of 1 to 63 characters, no spaces or control
    characters (RFC 1035 2.3.4; internationalised names are allowed as typed). Something that looks like a
    dotted IPv4 address but is not one (999.1.1.1) is refused: looking it up as a name would only mislead.
    """
    allowed = (f"{option} must be an IP address or a host name of at most {MAX_NAME_LENGTH} characters "
               f"(labels of 1-{MAX_LABEL_LENGTH} characters, no spaces or control characters)")
    if not isinstance(value, str) or not value.strip():
        return f"{allowed}, not {value!r}"
    if _control_character(value):
        return f"{allowed}; it contains a control character: {value!r}"
    if x509_info.ip_literal(value) is not None:
        return None
    if len(value) > MAX_NAME_LENGTH:
        return f"{allowed}, not a name of {len(value)} characters"
    labels = value[:-1].split(".") if value.endswith(".") else value.split(".")
    if any(not label or len(label) > MAX_LABEL_LENGTH or any(char.isspace() for char in label) for label in labels):
        return f"{allowed}, not {value!r}"
    if all(label.isdigit() for label in labels):
        return f"{option} must be an IP address or a host name: {value!r} looks like an IPv4 address but is not one"
    return None


def address_error(option: str, value: t.Any) -> str | None:
    """Message when ``value`` is not an IPv4 or IPv6 address literal (None when it is)."""
    if isinstance(value, str) and not _control_character(value) and x509_info.ip_literal(value) is not None:
        return None
    return f"{option} must be an IPv4 or IPv6 address (the inventory address; it is never looked up), not {value!r}"


def option_errors(options: ProbeOptions) -> list[str]:
    """Problems with the options, as messages that name the option and what it allows (empty when usable).

    Checked before anything is sent or looked up. ``ca_bundle`` is only ``stat``-ed (a FIFO or a device is
    refused before anything opens it).
    """
    errors = [message for message in (
        name_error("host", options.host),
        name_error("server_name", options.server_name) if options.server_name is not None else None,
        address_error("expected_address", options.expected_address) if options.expected_address is not None else None,
        _number_error("connect_timeout", options.connect_timeout, 0, MAX_TIMEOUT, low_open=True),
        _number_error("read_timeout", options.read_timeout, 0, MAX_TIMEOUT, low_open=True),
        _number_error("max_clock_skew", options.max_clock_skew, 0, 10 * 365 * 86400.0),
    ) if message]
    unknown = [step for step in options.steps if step not in STEPS]
    if unknown:
        errors.append(f"unknown steps {unknown}; choose from {list(STEPS)}")
    if not options.steps:
        errors.append(f"steps must name at least one step of {list(STEPS)}: a probe of nothing proves nothing")
    if isinstance(options.port, bool) or not isinstance(options.port, int) or not 0 < options.port < 65536:
        errors.append(f"port must be a TCP port from 1 to 65535, not {options.port!r} (port out of range)")
    if not options.mixes:
        errors.append("mixes must not be empty")
    elif any(not (mix is None or (isinstance(mix, int) and not isinstance(mix, bool) and 0 <= mix <= 0xFFFFFFFF))
             for mix in options.mixes):
        errors.append(f"mixes must be protocol masks from 0x00 to 0xffffffff or none, not {list(options.mixes)!r}")
    elif options.mixes[0] is not None and options.mixes[0] & ~0x0B:
        errors.append("the first mix must not request RDSTLS/RDSAAD or unknown bits (old xrdp disconnects such "
                      "requests, which would hide every other answer): put it after a 0x0b mix")
    if isinstance(options.max_connections_per_target, bool) or not isinstance(options.max_connections_per_target, int) \
            or not 1 <= options.max_connections_per_target <= MAX_CONNECTIONS_PER_TARGET:
        errors.append(f"max_connections_per_target must be at least 1 and at most {MAX_CONNECTIONS_PER_TARGET}, "
                      f"not {options.max_connections_per_target!r}")
    if isinstance(options.expiring_days, bool) or not isinstance(options.expiring_days, int) \
            or not 0 <= options.expiring_days <= MAX_EXPIRING_DAYS:
        errors.append(f"expiring_days must be a whole number of days from 0 to {MAX_EXPIRING_DAYS}, not {options.expiring_days!r}")
    if options.cookie is not None and (not isinstance(options.cookie, str) or not options.cookie.isascii()
                                       or any(ch in options.cookie for ch in "\r\n ") or _control_character(options.cookie)):
        errors.append("cookie must be ASCII without spaces, line breaks or control characters")
    elif options.cookie is not None and len(options.cookie) > MAX_COOKIE_LENGTH:
        errors.append(f"cookie must be at most {MAX_COOKIE_LENGTH} characters (one X.224 Connection Request), "
                      f"not {len(options.cookie)}")
    reason = options.name_check_skip_reason
    if reason is not None and (not isinstance(reason, str) or not reason.strip() or len(reason) > 200
                               or _control_character(reason)):
        errors.append(f"name_check_skip_reason must be a sentence of 1 to 200 characters without control characters, "
                      f"not {reason!r}")
    if options.ca_bundle is not None and options.trust_check:
        problem = x509_info.bundle_path_problem(options.ca_bundle) if isinstance(options.ca_bundle, str) else repr(options.ca_bundle)
        if problem:
            errors.append(f"ca_bundle must be a directory or a regular readable file of at most "
                          f"{x509_info.MAX_BUNDLE_BYTES} bytes (PEM or DER): {problem}")
    return errors


def steps_to_run(requested: t.Iterable[str]) -> frozenset[str]:
    """Requested steps plus what they need (the certificate needs the TLS handshake, and so on)."""
    out: set[str] = set()
    for step in requested:
        out.add(step)
        out.update(_PREREQUISITES.get(step, ()))
    return frozenset(out)


# --- per-target connection limit (shared by every probe of this process) ----------------------------

_GATES: dict[tuple[str, int, int], threading.BoundedSemaphore] = {}
_GATES_LOCK = threading.Lock()


def _gate(address: str, port: int, limit: int) -> threading.BoundedSemaphore:
    """The semaphore limiting concurrent connections to one address:port."""
    key = (address, port, limit)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = threading.BoundedSemaphore(limit)
        return gate


class _Connection:
    """A TCP connection holding one slot of its target's gate until closed."""

    def __init__(self, sock: socket.socket, gate: threading.BoundedSemaphore, reset: bool = False) -> None:
        self.sock: socket.socket | ssl.SSLSocket = sock
        self._gate: threading.BoundedSemaphore | None = gate
        #: The server reset the connection right after the handshake, before connect() returned (see connect()).
        self.reset = reset

    def close(self) -> None:
        """Close the socket (TLS or not) and give the slot back."""
        with contextlib.suppress(OSError):
            self.sock.close()
        if self._gate is not None:
            self._gate.release()
            self._gate = None


def _ms(start: float) -> float:
    """Milliseconds since ``start`` (perf_counter), rounded for reports."""
    return round((time.perf_counter() - start) * 1000.0, 2)


def _utc_now() -> dt.datetime:
    """This machine's clock, UTC."""
    return dt.datetime.now(dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    """ISO 8601 UTC with Z."""
    return when.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def connect(address: str, family: int, port: int, timeout: float, limit: int) -> tuple[_Connection | None, dict[str, t.Any]]:
    """Open one TCP connection within the target's limit; the attempt record says how it went.

    ``outcome``: connected, refused (RST), timeout (no SYN-ACK: filtered or down), unreachable, error.
    """
    gate = _gate(address, port, limit)
    gate.acquire()  # pylint: disable=consider-using-with  # released by _Connection.close or below, whatever happens
    attempt: dict[str, t.Any] = {"address": address, "family": "ipv6" if family == socket.AF_INET6 else "ipv4"}
    start = time.perf_counter()
    sock: socket.socket | None = None
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect((address, port))
    except (socket.timeout, TimeoutError):
        attempt.update(outcome="timeout", error=f"no answer to SYN within {timeout:g} s")
    except ConnectionResetError as exc:
        # The handshake completed (a SYN-ACK came back: something listens) and the server reset the connection
        # before this thread saw connect() return - a race on a busy client. TCP reached the listener: the reset
        # is the listener's answer, judged at the X.224 step as the same server resetting after accept() would be.
        attempt.update(outcome="connected", elapsed_ms=_ms(start), error=str(exc))
        return _Connection(sock, gate, reset=True), attempt
    except ConnectionRefusedError as exc:
        attempt.update(outcome="refused", errno=exc.errno, error=str(exc))
    except OSError as exc:
        unreachable = exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EADDRNOTAVAIL)
        attempt.update(outcome="unreachable" if unreachable else "error", errno=exc.errno, error=str(exc))
    except Exception as exc:  # pylint: disable=broad-exception-caught  # e.g. ValueError/OverflowError: an attempt record, never a lost slot
        attempt.update(outcome="error", error=f"{type(exc).__name__}: {exc}")
    else:
        attempt.update(outcome="connected", elapsed_ms=_ms(start))
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _Connection(sock, gate), attempt
    finally:
        if attempt.get("outcome") != "connected":
            if sock is not None:
                sock.close()
            gate.release()
    attempt["elapsed_ms"] = _ms(start)
    return None, attempt


def receive(sock: socket.socket | ssl.SSLSocket, timeout: float, needed: t.Callable[[bytes], int | None]) -> tuple[bytes, str]:
    """Read one message framed by ``needed`` (total length, 0 = need more, None = foreign framing).

    Status: complete, foreign (not the expected framing; returned after the first bytes), closed (EOF),
    reset, timeout, too_long, error:<text>.
    """
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return buf, "timeout"
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(16384)
        except (socket.timeout, TimeoutError):
            return buf, "timeout"
        except ConnectionResetError:
            return buf, "reset"
        except (OSError, ssl.SSLError) as exc:
            return buf, f"error:{exc}"
        if not chunk:
            return buf, "closed"
        buf += chunk
        need = needed(buf)
        if need is None:
            return buf, "foreign"
        if need and len(buf) >= need:
            return buf, "complete"
        if len(buf) >= wire.MAX_ANSWER_BYTES:
            return buf, "too_long"


# --- TLS --------------------------------------------------------------------------------------------

_CONTEXT_LOCK = threading.Lock()
_CONTEXT: list[ssl.SSLContext] = []


def permissive_context() -> ssl.SSLContext:
    """A client context that completes a handshake with anything, so the probe can *observe* it.

    TLS 1.0+, every cipher at security level 0, no verification, legacy servers without secure
    renegotiation allowed. The verdict on what it sees comes afterwards (judge_tls, x509_info).
    """
    with _CONTEXT_LOCK:
        if _CONTEXT:
            return _CONTEXT[0]
        with warnings.catch_warnings():
            # ssl.TLSVersion.TLSv1 is deprecated as a *setting*; observing legacy servers needs it.
            warnings.simplefilter("ignore", DeprecationWarning)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("ALL:@SECLEVEL=0")
        context.options |= getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4)
        _CONTEXT.append(context)
        return context


def warm_up() -> None:
    """Build what every probe of this process shares: the TLS context, the system trust store and its path
    validation store.

    Ansible forks a worker per host and task; called in the controller's main process (the action plugin
    module is imported there before the fork), it saves each worker ~12 ms of CPU (docs/performance.md).
    The caches stay correct after a fork; the trust store is re-read when its file changes.
    """
    permissive_context()
    store = x509_info.load_trust_store()
    if store.count:
        store.verification_store()


def _sni(server_name: str) -> str | None:
    """SNI to send: the name, or nothing for an IP literal (TLS forbids IPs in SNI)."""
    return None if x509_info.ip_literal(server_name) is not None else server_name


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes]:
    """DER of every certificate the server sent, leaf first (3.13 API, or the same private call before)."""
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return list(public() or [])
    sslobj = getattr(tls, "_sslobj", None)
    private = getattr(sslobj, "get_unverified_chain", None)
    if private is None:
        return []
    encoding = getattr(ssl, "_ssl").ENCODING_DER
    return [cert.public_bytes(encoding) for cert in private() or []]


def tls_handshake(conn: _Connection, server_name: str, timeout: float) -> dict[str, t.Any]:
    """Run the TLS handshake on ``conn`` (after the Connection Confirm) and record what was negotiated."""
    start = time.perf_counter()
    conn.sock.settimeout(timeout)
    try:
        tls = permissive_context().wrap_socket(conn.sock, server_hostname=_sni(server_name))
    except ssl.SSLError as exc:
        return {"ok": False, "elapsed_ms": _ms(start), "error": str(exc), "reason": exc.reason or type(exc).__name__}
    except (socket.timeout, TimeoutError):
        return {"ok": False, "elapsed_ms": _ms(start), "error": f"no TLS answer within {timeout:g} s", "reason": "TIMEOUT"}
    except (OSError, ValueError) as exc:  # ValueError/UnicodeError: a server_name that is no valid SNI
        return {"ok": False, "elapsed_ms": _ms(start), "error": str(exc), "reason": type(exc).__name__}
    conn.sock = tls  # wrap_socket took the socket over: closing the connection closes it
    try:
        cipher = tls.cipher() or (None, None, None)
        chain = _unverified_chain(tls)
        leaf = tls.getpeercert(binary_form=True)
    except OSError as exc:
        # A server that reset the connection before the handshake: wrap_socket finds the socket unconnected
        # (getpeername: ENOTCONN), skips the handshake and returns; asking for the certificate then fails.
        return {"ok": False, "elapsed_ms": _ms(start), "error": f"the connection was reset before the TLS handshake ({exc})",
                "reason": type(exc).__name__}
    return {"ok": True, "elapsed_ms": _ms(start), "version": tls.version(), "cipher": cipher[0],
            "cipher_protocol": cipher[1], "cipher_bits": cipher[2], "sni": _sni(server_name),
            "leaf_der": leaf, "chain_der": chain[1:] if chain and chain[0] == leaf else chain}


def credssp_first_step(conn: _Connection, timeout: float, clock: t.Callable[[], dt.datetime]) -> dict[str, t.Any]:
    """Send TSRequest(NTLM NEGOTIATE) and read the server's TSRequest: CHALLENGE or errorCode.

    No AUTHENTICATE message is ever sent, so no logon is attempted and nothing is logged as a failure.
    """
    start = time.perf_counter()
    request = wire.encode_ts_request(6, [wire.build_ntlm_negotiate()])
    try:
        conn.sock.sendall(request)
    except OSError as exc:
        return {"ok": False, "elapsed_ms": _ms(start), "status": "send_failed", "error": str(exc)}
    data, status = receive(conn.sock, timeout, wire.der_needed)
    received_at = clock()
    out: dict[str, t.Any] = {"elapsed_ms": _ms(start), "status": status, "received_utc": _iso(received_at),
                             "bytes": len(data)}
    if status != "complete":
        out.update(ok=False, raw=data[:64].hex())
        return out
    ts_request = wire.decode_ts_request(data)
    out["ts_request"] = {key: value for key, value in ts_request.items() if key != "nego_tokens"}
    if not ts_request["ok"]:
        out["ok"] = False
        return out
    ntlm = wire.parse_ntlm_challenge(ts_request["nego_tokens"][0]) if ts_request["nego_tokens"] else None
    out.update(ok=ntlm is not None and ntlm["ok"], ntlm=ntlm)
    if ntlm and ntlm.get("timestamp"):
        with contextlib.suppress(ValueError, TypeError, OverflowError):  # a hostile timestamp is no clock reading
            server_time = dt.datetime.fromisoformat(ntlm["timestamp"].replace("Z", "+00:00"))
            out["clock_skew_seconds"] = round((server_time - received_at).total_seconds(), 3)
    return out


# --- the shell: gather observations -------------------------------------------------------------------

@dataclass
class Observations:  # pylint: disable=too-many-instance-attributes
    """Raw facts gathered by one probe run; input of the pure judges."""

    dns: dict[str, t.Any] | None = None
    tcp: dict[str, t.Any] | None = None
    mixes: list[dict[str, t.Any]] = field(default_factory=list)
    service_check: dict[str, t.Any] | None = None
    tls: dict[str, t.Any] | None = None
    certificate: dict[str, t.Any] | None = None
    certificate_ms: float = 0.0
    credssp: dict[str, t.Any] | None = None


class _Run:
    """One probe of one target: opens connections one at a time and records observations."""

    def __init__(self, options: ProbeOptions, resolver: t.Callable[..., t.Any], clock: t.Callable[[], dt.datetime]) -> None:
        self.opts = options
        self.resolver = resolver
        self.clock = clock
        self.run = steps_to_run(options.steps)
        self.obs = Observations()

    # DNS ---------------------------------------------------------------------------------------------
    def resolve(self) -> list[tuple[str, int]]:
        """Every address the name resolves to, in resolver order (duplicates removed)."""
        host = self.opts.host.strip("[]")
        start = time.perf_counter()
        record: dict[str, t.Any] = {"name": self.opts.host, "literal": False, "addresses": [], "error": None}
        found: list[tuple[str, int]] = []
        try:
            literal = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            literal = None
        if literal is not None:
            record["literal"] = True
            found.append((host, socket.AF_INET6 if literal.version == 6 else socket.AF_INET))
        else:
            try:
                infos = self.resolver(host, self.opts.port, 0, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            except (socket.gaierror, UnicodeError, OSError, ValueError) as exc:
                record["error"] = str(exc)
                record["errno"] = getattr(exc, "errno", None)
                infos = []
            for family, _type, _proto, _canon, sockaddr in infos:
                entry = (str(sockaddr[0]), int(family))
                if entry not in found and family in (socket.AF_INET, socket.AF_INET6):
                    found.append(entry)
        record["addresses"] = [address for address, _family in found]
        record["expected_address"] = self.opts.expected_address
        record["elapsed_ms"] = _ms(start)
        self.obs.dns = record
        return found

    # TCP ---------------------------------------------------------------------------------------------
    def tcp(self, addresses: list[tuple[str, int]]) -> _Connection | None:
        """Try every address (the client tries them in order); keep the first connection for X.224."""
        attempts = []
        kept: _Connection | None = None
        used = None
        for address, family in addresses:
            conn, attempt = connect(address, family, self.opts.port, self.opts.connect_timeout,
                                    self.opts.max_connections_per_target)
            attempt["source"] = "dns"
            attempts.append(attempt)
            if conn is not None:
                if kept is None:
                    kept, used = conn, address
                else:
                    conn.close()
        expected = self.opts.expected_address
        if expected and not _same_address_in(expected, [address for address, _f in addresses]):
            family = socket.AF_INET6 if ":" in expected else socket.AF_INET
            conn, attempt = connect(expected, family, self.opts.port, self.opts.connect_timeout,
                                    self.opts.max_connections_per_target)
            attempt["source"] = "expected_address"
            attempts.append(attempt)
            if conn is not None:
                conn.close()
        self.obs.tcp = {"attempts": attempts, "address": used}
        return kept

    # X.224 and what rides on its connections ----------------------------------------------------------
    def negotiate(self, first: _Connection, address: str, family: int) -> None:
        """One connection per mix; TLS, certificate and CredSSP ride on the first mix that selects them."""
        for index, mix in enumerate(self.opts.mixes):
            conn = first if index == 0 else None
            record: dict[str, t.Any] = {"requested": mix, "requested_hex": mix_label(mix),
                                        "requested_names": wire.protocol_names(mix) if mix is not None else [],
                                        "cookie": bool(self.opts.cookie)}
            start = time.perf_counter()
            if conn is None:
                conn, attempt = connect(address, family, self.opts.port, self.opts.connect_timeout,
                                        self.opts.max_connections_per_target)
                if conn is None:
                    record.update(kind="connect_failed", connect=attempt, elapsed_ms=_ms(start))
                    self.obs.mixes.append(record)
                    continue
            try:
                record.update(self._exchange(conn, mix))
                record["elapsed_ms"] = _ms(start)
                self.obs.mixes.append(record)
                self._ride(conn, record)
            finally:
                conn.close()
            if index == 0 and record["kind"] not in ("negotiation_response", "negotiation_failure", "legacy_confirm",
                                                     "disconnect_ultimatum"):
                break  # not an RDP server answering: other mixes would only repeat (and wait) the same way
        if self.obs.mixes and self.obs.mixes[0]["kind"] in ("closed", "reset"):
            self.obs.service_check = self._tls_service_check(address, family)

    def _exchange(self, conn: _Connection, mix: int | None) -> dict[str, t.Any]:
        """Send one Connection Request and classify the answer."""
        request = wire.build_connection_request(mix, cookie=self.opts.cookie or None)
        if getattr(conn, "reset", False):
            return {"kind": "reset", "status": "reset", "error": "reset by the server right after the TCP handshake", "raw": ""}
        try:
            conn.sock.sendall(request)
        except OSError as exc:
            return {"kind": "reset" if isinstance(exc, ConnectionResetError) else "send_failed", "error": str(exc), "raw": ""}
        data, status = receive(conn.sock, self.opts.read_timeout, wire.tpkt_needed)
        if not data:
            kind = {"timeout": "no_answer", "closed": "closed", "reset": "reset"}.get(status, "receive_failed")
            return {"kind": kind, "status": status, "raw": ""}
        answer = wire.parse_x224_answer(data)
        answer["status"] = status
        return answer

    def _ride(self, conn: _Connection, record: dict[str, t.Any]) -> None:
        """TLS / certificate / CredSSP on this connection when the server selected a TLS-based protocol."""
        if record["kind"] != "negotiation_response" or record["selected_protocol"] not in wire.TLS_PROTOCOLS:
            return
        if protocol_violation(record):
            return  # selected something we did not ask for: a protocol violation, do not build on it
        want_tls = self.obs.tls is None and bool({"tls", "certificate"} & self.run)
        want_credssp = (self.opts.nla and "nla" in self.run and self.obs.credssp is None
                        and record["selected_protocol"] in wire.CREDSSP_PROTOCOLS)
        if not want_tls and not want_credssp:
            return
        handshake = tls_handshake(conn, self.opts.name_to_check, self.opts.read_timeout)
        handshake["mix"] = record["requested_hex"]
        if self.obs.tls is None:
            self.obs.tls = handshake
            if handshake["ok"] and "certificate" in self.run:
                self._analyse_certificate(handshake)
        if want_credssp and handshake["ok"]:
            self.obs.credssp = credssp_first_step(conn, self.opts.read_timeout, self.clock)
            self.obs.credssp["mix"] = record["requested_hex"]

    def _analyse_certificate(self, handshake: dict[str, t.Any]) -> None:
        """Every certificate problem, from the leaf and the chain the server sent."""
        start = time.perf_counter()
        store = x509_info.load_trust_store(self.opts.ca_bundle) if self.opts.trust_check else None
        skip_reason = self.opts.name_check_skip_reason
        self.obs.certificate = x509_info.analyze_certificate(
            handshake["leaf_der"] or b"", server_name=None if skip_reason else self.opts.name_to_check, now=self.clock(),
            trust_store=store, intermediates=handshake["chain_der"], expiring_days=self.opts.expiring_days)
        self.obs.certificate["chain_length"] = 1 + len(handshake["chain_der"])
        if skip_reason:
            self.obs.certificate["name_check"] = f"not checked: {skip_reason}"
        self.obs.certificate_ms = _ms(start)

    def _tls_service_check(self, address: str, family: int) -> dict[str, t.Any]:
        """After a silent close: is this a bare TLS service (HTTPS, ...)? A direct ClientHello tells."""
        conn, attempt = connect(address, family, self.opts.port, self.opts.connect_timeout, self.opts.max_connections_per_target)
        if conn is None:
            return {"tls_service": False, "connect": attempt}
        try:
            handshake = tls_handshake(conn, self.opts.name_to_check, self.opts.read_timeout)
        finally:
            conn.close()
        return {"tls_service": handshake["ok"], "version": handshake.get("version"), "error": handshake.get("error"),
                "elapsed_ms": handshake["elapsed_ms"]}

    # the whole sequence ------------------------------------------------------------------------------
    def execute(self) -> Observations:
        """DNS, TCP, then the negotiation chain; stops where the client would stop."""
        addresses = self.resolve()
        if not addresses or "tcp" not in self.run:
            return self.obs
        first = self.tcp(addresses)
        if first is None:
            return self.obs
        if "x224" not in self.run:
            first.close()
            return self.obs
        used = self.obs.tcp["address"]
        family = next(fam for address, fam in addresses if address == used)
        self.negotiate(first, used, family)
        return self.obs


def _same_address_in(expected: str, addresses: list[str]) -> bool:
    """Is ``expected`` one of ``addresses`` (IP-aware comparison, so ::1 equals 0:0::1)?"""
    try:
        wanted = ipaddress.ip_address(expected)
    except ValueError:
        return expected in addresses
    for address in addresses:
        with contextlib.suppress(ValueError):
            if ipaddress.ip_address(address.split("%", 1)[0]) == wanted:
                return True
    return False


# --- the core: judge observations (pure) ---------------------------------------------------------------

def _step(name: str, verdict: str, summary: str, elapsed_ms: float = 0.0, finding_ids: t.Sequence[str] = (),
          details: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """One step entry of the result."""
    return {"step": name, "verdict": verdict, "elapsed_ms": round(elapsed_ms, 2), "summary": summary,
            "finding_ids": list(dict.fromkeys(finding_ids)), "details": details or {}}


def skipped(name: str, reason: str) -> dict[str, t.Any]:
    """A step that did not run, and why."""
    return _step(name, "skipped", reason, details={"reason": reason})


def judge_dns(dns: dict[str, t.Any]) -> dict[str, t.Any]:
    """Resolution failed / resolves elsewhere than the inventory says / fine."""
    elapsed = dns["elapsed_ms"]
    addresses = dns["addresses"]
    details = {"addresses": addresses, "expected_address": dns.get("expected_address")}
    if dns["error"] or not addresses:
        return _step("dns", "fail", f"{dns['name']} does not resolve: {dns['error'] or 'no address'}", elapsed,
                     ["RDP-DNS-FAILED"], details)
    expected = dns.get("expected_address")
    if expected and not _same_address_in(expected, addresses):
        return _step("dns", "fail", f"{dns['name']} resolves to {', '.join(addresses)}, not to the expected address "
                     f"{expected}: the client connects to another machine", elapsed, ["RDP-DNS-MISMATCH"], details)
    if dns["literal"]:
        return _step("dns", "ok", f"{dns['name']} is an address literal (no lookup)", elapsed, details=details)
    return _step("dns", "ok", f"{dns['name']} resolves to {', '.join(addresses)}", elapsed, details=details)


_TCP_IDS = {"refused": "RDP-PROBE-TCP-REFUSED", "timeout": "RDP-PROBE-TCP-TIMEOUT",
            "unreachable": "RDP-PROBE-TCP-UNREACHABLE", "error": "RDP-PROBE-TCP-FAILED"}
_TCP_WORDS = {"refused": "refused (RST: nothing listening, or a firewall rejecting)",
              "timeout": "timed out (SYN dropped: filtered, or host down)",
              "unreachable": "unreachable (no route)", "error": "failed", "connected": "connected"}


def judge_tcp(tcp: dict[str, t.Any], port: int) -> dict[str, t.Any]:
    """Connected / refused / timed out, per address; the client uses the first that connects."""
    attempts = [attempt for attempt in tcp["attempts"] if attempt["source"] == "dns"]
    extra = [attempt for attempt in tcp["attempts"] if attempt["source"] != "dns"]
    elapsed = sum(attempt.get("elapsed_ms", 0.0) for attempt in tcp["attempts"])
    details = {"address": tcp["address"], "outcomes": {a["address"]: a["outcome"] for a in tcp["attempts"]}}
    parts = [f"{a['address']}:{port} {_TCP_WORDS[a['outcome']]}" for a in attempts]
    parts += [f"expected address {a['address']}:{port} {_TCP_WORDS[a['outcome']]}" for a in extra]
    failed = [a for a in attempts if a["outcome"] != "connected"]
    if tcp["address"] is None:
        return _step("tcp", "fail", "; ".join(parts), elapsed, [_TCP_IDS[a["outcome"]] for a in failed], details)
    if failed:
        return _step("tcp", "warn", "; ".join(parts) + " (the client may wait on the failing addresses first)", elapsed,
                     ["RDP-PROBE-TCP-PARTIAL"], details)
    return _step("tcp", "ok", "; ".join(parts), elapsed, details=details)


def describe_answer(record: dict[str, t.Any]) -> str:
    """One mix's answer in a few words (``0x0b -> SSL``)."""
    kind = record["kind"]
    if kind == "negotiation_response":
        text = record["selected_name"]
    elif kind == "negotiation_failure":
        text = record["failure_name"]
    elif kind == "legacy_confirm":
        text = "Connection Confirm without negotiation data (legacy)"
    elif kind == "disconnect_ultimatum":
        text = f"MCS Disconnect-Provider-Ultimatum ({record['mcs_reason_name']})"
    elif kind == "not_rdp":
        text = "not RDP: " + _service_words(record["service"])
    elif kind == "connect_failed":
        text = f"connection {record['connect']['outcome']}"
    else:
        text = {"no_answer": "no answer", "closed": "closed without answer", "reset": "reset without answer",
                "truncated": "truncated answer", "malformed": "malformed answer"}.get(kind, kind)
    return f"{record['requested_hex']} -> {text}"


def _service_words(service: dict[str, t.Any]) -> str:
    """A recognised non-RDP service in words."""
    kind = service["service"]
    if kind == "ssh":
        return f"SSH server ({service['banner']})"
    if kind == "http":
        return f"HTTP server ({service['status_line']}{', ' + service['server'] if service.get('server') else ''})"
    if kind == "tls":
        return f"a TLS service answering with a TLS {service['record']} record"
    if kind == "text":
        return f"a text protocol ({service['banner']})"
    return f"unknown protocol (first bytes {service['first_bytes']})"


def _primary_outcome(primary: dict[str, t.Any], records: list[dict[str, t.Any]],
                     service_check: dict[str, t.Any] | None) -> tuple[str, list[str], str]:
    """Verdict, finding ids and a sentence for the first mix (the one the client sends)."""
    kind = primary["kind"]
    if kind == "negotiation_response":
        selected = primary["selected_protocol"]
        requested = primary["requested"]
        violation = protocol_violation(primary)
        if violation:
            return "fail", ["RDP-PROBE-NEG-PROTOCOL-VIOLATION"], f"the server {violation}"
        if selected == wire.PROTOCOL_RDP and requested:
            return "warn", ["RDP-PROBE-STANDARD-RDP-ONLY"], (
                "the server chose standard RDP security although TLS was offered: security layer RDP, or Negotiate "
                "without a usable certificate (xrdp downgrades silently); no server authentication")
        return "ok", [], ""
    if kind == "negotiation_failure":
        ids = [f"RDP-PROBE-NEG-FAILURE-{primary['failure_name']}"]
        fallback = any(r["kind"] == "negotiation_response" and r["selected_protocol"] == wire.PROTOCOL_RDP for r in records)
        if primary["failure_code"] == 2 and fallback:
            return "warn", ids + ["RDP-PROBE-STANDARD-RDP-ONLY"], (
                "the server does not allow TLS; clients that may fall back retry with standard RDP security")
        return "fail", ids, f"the server refused the client's protocols: {primary['failure_name']}"
    if kind == "legacy_confirm":
        return "warn", ["RDP-PROBE-STANDARD-RDP-ONLY"], (
            "legacy server: it ignores RDP_NEG_REQ (pre-Vista behaviour), so only standard RDP security is possible")
    if kind == "disconnect_ultimatum":
        return "fail", ["RDP-PROBE-NEG-REJECTED"], "the server rejected the Connection Request outright"
    if kind == "not_rdp":
        return "fail", ["RDP-PROBE-NOT-RDP"], "this port is not an RDP listener"
    if kind in ("closed", "reset") and service_check and service_check.get("tls_service"):
        return "fail", ["RDP-PROBE-NOT-RDP"], (
            f"the port is a bare TLS service ({service_check.get('version')}), not RDP: it closed on the Connection "
            "Request and completed a direct TLS handshake")
    if kind in ("closed", "reset"):
        return "fail", ["RDP-PROBE-CLOSED"], "the server closed the connection without answering the Connection Request"
    if kind == "no_answer":
        return "fail", ["RDP-PROBE-NO-ANSWER"], (
            "no answer to the Connection Request: server hung or overloaded, or a service waiting for something else")
    return "fail", ["RDP-PROBE-MALFORMED-ANSWER"], f"unusable answer ({kind})"


def judge_x224(records: list[dict[str, t.Any]], service_check: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
    """Negotiation, from the first mix (what mstsc sends) plus the others for context."""
    elapsed = sum(record.get("elapsed_ms", 0.0) for record in records)
    answers = {record["requested_hex"]: _short_answer(record) for record in records}
    details = {"answers": answers}
    if service_check:
        details["service_check"] = service_check
    verdict, ids, sentence = _primary_outcome(records[0], records, service_check)
    violations = [(record, protocol_violation(record)) for record in records[1:] if protocol_violation(record)]
    if violations:
        # The client's own mix (the first) may be fine; a client sending one of these mixes is broken.
        ids.append("RDP-PROBE-NEG-PROTOCOL-VIOLATION")
        verdict = "warn" if verdict == "ok" else verdict
        sentence = (sentence + "; " if sentence else "") + "; ".join(
            f"for {record['requested_hex']} the server {why}" for record, why in violations)
    inconsistent = [r for r in records[1:] if r["kind"] in ("connect_failed", "no_answer", "closed", "reset")]
    if inconsistent and verdict != "fail":
        ids.append("RDP-PROBE-INCONSISTENT")
        verdict = "warn" if verdict == "ok" else verdict
        sentence = (sentence + "; " if sentence else "") + "later connections failed (" + ", ".join(
            describe_answer(r) for r in inconsistent) + "): server overloaded or rate-limiting?"
    summary = "; ".join(describe_answer(r) for r in records)
    return _step("x224", verdict, summary + (": " + sentence if sentence else ""), elapsed, ids, details)


_SINGLE_PROTOCOLS = frozenset({wire.PROTOCOL_RDP, *wire.PROTOCOL_NAMES})


def protocol_violation(record: dict[str, t.Any]) -> str | None:
    """How a negotiation answer breaks [MS-RDPBCGR] 2.2.1.2.1 (selectedProtocol is one protocol, and one the
    client requested, or standard RDP), in words; None when it does not. A request without RDP_NEG_REQ
    requested standard RDP only."""
    if record.get("kind") != "negotiation_response":
        return None
    selected = record["selected_protocol"]
    if selected not in _SINGLE_PROTOCOLS:
        return f"selected 0x{selected:x}, which is not a single protocol"
    if selected != wire.PROTOCOL_RDP and selected & ~(record["requested"] or 0):
        return f"selected {record['selected_name']}, which the client did not request"
    return None


def _short_answer(record: dict[str, t.Any]) -> str:
    """Machine-friendly answer label: SSL, HYBRID, RDP, FAILURE:<name>, LEGACY, DPUM, NOT_RDP:<svc>, ..."""
    kind = record["kind"]
    if kind == "negotiation_response":
        return record["selected_name"]
    if kind == "negotiation_failure":
        return "FAILURE:" + record["failure_name"]
    if kind == "not_rdp":
        return "NOT_RDP:" + record["service"]["service"]
    return {"legacy_confirm": "LEGACY", "disconnect_ultimatum": "DPUM"}.get(kind, kind.upper())


def judge_tls(tls: dict[str, t.Any] | None, records: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The handshake as observed with a permissive client, judged against what clients accept."""
    if tls is None:
        selected = [r for r in records if r["kind"] == "negotiation_response"]
        reason = ("no TLS: the server selected standard RDP security" if selected
                  else "no TLS: no mix was answered with a TLS-based protocol")
        return skipped("tls", reason)
    details = {key: tls.get(key) for key in ("mix", "version", "cipher", "cipher_bits", "error", "reason")}
    if not tls["ok"]:
        return _step("tls", "fail", f"TLS handshake failed even with a permissive client: {tls['error']}",
                     tls["elapsed_ms"], ["RDP-PROBE-TLS-FAILED"], details)
    summary = f"{tls['version']} {tls['cipher']} ({tls['cipher_bits']} bits)"
    if tls["version"] in LEGACY_TLS:
        return _step("tls", "fail", f"{summary}: legacy TLS only; clients with TLS 1.0/1.1 disabled (OpenSSL 3 "
                     "defaults, hardened Windows) cannot connect", tls["elapsed_ms"], ["RDP-PROBE-TLS-LEGACY"], details)
    if any(marker in (tls["cipher"] or "") for marker in WEAK_CIPHER_MARKERS):
        return _step("tls", "warn", f"{summary}: weak cipher preferred by the server", tls["elapsed_ms"],
                     ["RDP-PROBE-TLS-WEAK-CIPHER"], details)
    return _step("tls", "ok", summary, tls["elapsed_ms"], details=details)


def judge_certificate(cert: dict[str, t.Any] | None, elapsed_ms: float) -> dict[str, t.Any]:
    """Every problem of the listener certificate; expired / not yet valid / wrong name fail the step."""
    if cert is None:
        return skipped("certificate", "no certificate: no TLS handshake completed")
    if not cert.get("ok"):
        return _step("certificate", "fail", f"the server's certificate cannot be read: {cert.get('error')}",
                     elapsed_ms, ["RDP-CERT-UNREADABLE"], {"error": cert.get("error")})
    problems = cert["problems"]
    details = {"subject": cert["subject"], "issuer": cert["issuer"], "sha1_thumbprint": cert["sha1_thumbprint"],
               "not_after": cert["not_after"], "days_left": cert["validity"]["days_left"],
               "problems": [problem["code"] for problem in problems]}
    codes = {problem["code"] for problem in problems}
    if codes & x509_info.BLOCKING_PROBLEMS:
        verdict = "fail"
    elif any(problem["severity"] != "info" for problem in problems):
        verdict = "warn"
    else:
        verdict = "ok"
    summary = (f"{cert['subject_cn'] or cert['subject']}, issued by {cert['issuer_cn'] or cert['issuer']}, "
               f"valid until {cert['not_after']}")
    if problems:
        summary += ": " + "; ".join(problem["message"] for problem in problems)
    if cert.get("name_check"):
        details["name_check"] = cert["name_check"]
        summary += f" (name {cert['name_check']})"
    return _step("certificate", verdict, summary, elapsed_ms, [problem["id"] for problem in problems], details)


def nla_state(records: list[dict[str, t.Any]]) -> tuple[str, str]:
    """required / offered / absent / unknown, and the evidence, from the negotiation answers alone.

    A TLS-only request answered HYBRID_REQUIRED_BY_SERVER means required; HYBRID selected for a request
    that offered it means offered (and not required when TLS-only got SSL); SSL or RDP selected for a
    request offering HYBRID means absent.
    """
    records = [record for record in records if not protocol_violation(record)]  # a broken answer tells nothing
    for record in records:
        if record["kind"] == "negotiation_failure" and record["failure_code"] == 5:
            return "required", f"{record['requested_hex']} -> HYBRID_REQUIRED_BY_SERVER"
    offered = [r for r in records if r["kind"] == "negotiation_response" and r["selected_protocol"] in wire.CREDSSP_PROTOCOLS]
    if offered:
        tls_only = [r for r in records if r["requested"] == wire.PROTOCOL_SSL and r["kind"] == "negotiation_response"]
        evidence = describe_answer(offered[0]) + ("; " + describe_answer(tls_only[0]) if tls_only else "")
        return "offered", evidence
    asked = [r for r in records if r["requested"] and r["requested"] & (wire.PROTOCOL_HYBRID | wire.PROTOCOL_HYBRID_EX)]
    declined = [r for r in asked if r["kind"] == "negotiation_response"
                or (r["kind"] == "negotiation_failure" and r["failure_code"] == 2)]
    if declined:
        # HYBRID offered and SSL/RDP selected, or TLS refused altogether (SSL_NOT_ALLOWED_BY_SERVER)
        return "absent", describe_answer(declined[0])
    if any(r["kind"] == "legacy_confirm" for r in records):
        return "absent", "legacy server (no negotiation)"
    return "unknown", "no answer tells"


def judge_nla(records: list[dict[str, t.Any]], credssp: dict[str, t.Any] | None, nla: bool,
              max_clock_skew: float) -> dict[str, t.Any]:
    """NLA required / offered / absent, then the first CredSSP step's answer (names, OS, clock)."""
    state, evidence = nla_state(records)
    details: dict[str, t.Any] = {"state": state, "evidence": evidence}
    if state == "unknown":
        return skipped("nla", "NLA state unknown: the negotiation did not get far enough")
    ids = {"required": ["RDP-PROBE-NLA-REQUIRED"], "offered": ["RDP-PROBE-NLA-OPTIONAL"],
           "absent": ["RDP-PROBE-NLA-ABSENT"]}[state]
    words = {"required": "NLA required", "offered": "NLA offered but not required", "absent": "no NLA"}[state]
    verdict = "warn" if state == "absent" else "ok"
    summary = f"{words} ({evidence})"
    elapsed = 0.0
    if state != "absent" and nla:
        if credssp is None:
            summary += "; CredSSP not tried (no TLS channel on a HYBRID answer)"
        else:
            elapsed = credssp["elapsed_ms"]
            verdict, summary, more = _judge_credssp(credssp, summary, verdict, max_clock_skew, details)
            ids += more
    return _step("nla", verdict, summary, elapsed, ids, details)


def _judge_credssp(credssp: dict[str, t.Any], summary: str, verdict: str, max_clock_skew: float,
                   details: dict[str, t.Any]) -> tuple[str, str, list[str]]:
    """The CredSSP part of the NLA step: the CHALLENGE's facts, an errorCode, or no usable answer."""
    ts_request = credssp.get("ts_request") or {}
    if ts_request.get("error_code") is not None:
        details["error_code"] = f"0x{ts_request['error_code']:08X}"
        return "fail", f"{summary}; CredSSP answered errorCode {details['error_code']}", ["RDP-PROBE-CREDSSP-ERROR"]
    ntlm = credssp.get("ntlm")
    if not credssp.get("ok") or not ntlm:
        sentence = f"{summary}; no NTLM CHALLENGE to the first CredSSP message ({credssp.get('status')})"
        return "fail", sentence, ["RDP-PROBE-CREDSSP-FAILED"]
    keys = ("netbios_computer", "netbios_domain", "dns_computer", "dns_domain", "dns_tree", "os_version", "timestamp")
    facts = {key: ntlm.get(key) for key in keys}
    details.update(facts, ts_request_version=ts_request.get("version"), clock_skew_seconds=credssp.get("clock_skew_seconds"))
    summary += f"; CredSSP v{ts_request.get('version')} NTLM CHALLENGE from {facts['netbios_domain']}\\{facts['netbios_computer']}"
    if facts["os_version"]:
        summary += f" (OS {facts['os_version']})"
    skew = credssp.get("clock_skew_seconds")
    if skew is not None and abs(skew) > max_clock_skew:
        sentence = f"{summary}; server clock {'ahead' if skew > 0 else 'behind'} by {abs(skew):.0f} s"
        return "warn", sentence, ["RDP-PROBE-CLOCK-SKEW"]
    return verdict, summary, []


# --- verdict ----------------------------------------------------------------------------------------

# What a client shows, per finding id. The code meanings (0x104, 0x204, 0x904, extended 0x7) are
# documented by Microsoft (IMsTscAxEvents::OnDisconnected, ExtendedDisconnectReasonCode); which code
# mstsc shows for which server behaviour is NOT documented, so every mstsc mapping here is inference.
# The xfreerdp texts were observed with FreeRDP 2.11.7 against xrdp / FreeRDP shadow (reference study).
CLIENT_SEES: dict[str, tuple[str, str]] = {
    "RDP-DNS-FAILED": ("mstsc: \"Remote Desktop can't find the computer\" (disconnect reason 0x104, DNS name lookup failure)",
                       "inference"),
    "RDP-DNS-MISMATCH": ("the client reaches another machine than the inventory names; what it sees is whatever that "
                         "machine answers (see the next steps)", "inference"),
    "RDP-PROBE-TCP-REFUSED": ("mstsc: \"Remote Desktop can't connect to the remote computer\" (0x204, Winsock connect "
                              "failure); xfreerdp 2.11: transport failure, \"Broken pipe\" (observed)", "inference"),
    "RDP-PROBE-TCP-TIMEOUT": ("mstsc: \"Remote Desktop can't connect to the remote computer\" after a long wait "
                              "(0x108 connection timed out or 0x204)", "inference"),
    "RDP-PROBE-TCP-UNREACHABLE": ("mstsc: \"Remote Desktop can't connect to the remote computer\" (0x204)", "inference"),
    "RDP-PROBE-TCP-FAILED": ("mstsc: \"Remote Desktop can't connect to the remote computer\" (0x204)", "inference"),
    "RDP-PROBE-NOT-RDP": ("the connection is closed or reset during setup: mstsc 0x904 (socket closed); xfreerdp 2.11: "
                          "\"Connection reset by peer\" against an SSH service (observed)", "inference"),
    "RDP-PROBE-NO-ANSWER": ("mstsc waits, then gives up (0x108 / 0x704 time-out family)", "inference"),
    "RDP-PROBE-CLOSED": ("mstsc: 0x904 (socket closed) / extended 0x7 (server denied the connection): the server closed "
                         "the socket during connection setup, which is exactly what those codes mean", "inference"),
    "RDP-PROBE-MALFORMED-ANSWER": ("mstsc: protocol error or 0x904 (socket closed)", "inference"),
    "RDP-PROBE-NEG-REJECTED": ("clients sending these request flags see the socket closed (0x904); mstsc's own mix "
                               "is accepted", "inference"),
    "RDP-PROBE-NEG-PROTOCOL-VIOLATION": ("mstsc: protocol error; the connection is dropped (0x904)", "inference"),
    "RDP-PROBE-NEG-FAILURE-SSL_REQUIRED_BY_SERVER": (
        "xfreerdp 2.11: NEGO_FAILURE \"SSL_REQUIRED_BY_SERVER\" (observed); mstsc: \"can't connect\", 0x904-like", "inference"),
    "RDP-PROBE-NEG-FAILURE-SSL_NOT_ALLOWED_BY_SERVER": (
        "clients that insist on TLS/NLA: \"Protocol Security Negotiation Failure\" (xfreerdp 2.11, observed); "
        "mstsc may fall back to standard RDP security", "inference"),
    "RDP-PROBE-NEG-FAILURE-SSL_CERT_NOT_ON_SERVER": (
        "xfreerdp 2.11: \"Error: SSL_CERT_NOT_ON_SERVER\" (observed); mstsc: \"An internal error has occurred\" or "
        "0x904 / extended 0x7 (server denied the connection)", "inference"),
    "RDP-PROBE-NEG-FAILURE-INCONSISTENT_FLAGS": ("mstsc: \"can't connect\" (0x904-like)", "inference"),
    "RDP-PROBE-NEG-FAILURE-HYBRID_REQUIRED_BY_SERVER": (
        "clients without NLA: \"The remote computer requires Network Level Authentication\"; xfreerdp 2.11 /sec:tls: "
        "HYBRID_REQUIRED_BY_SERVER (observed)", "inference"),
    "RDP-PROBE-NEG-FAILURE-SSL_WITH_USER_AUTH_REQUIRED_BY_SERVER": (
        "clients without a client certificate cannot connect (0x904-like)", "inference"),
    "RDP-PROBE-TLS-FAILED": ("mstsc: \"An authentication error has occurred\" or 0x904 during the TLS handshake; "
                             "xfreerdp 2.11: ERRCONNECT_TLS_CONNECT_FAILED (observed)", "inference"),
    "RDP-PROBE-TLS-LEGACY": ("clients with TLS 1.0/1.1 disabled fail during the TLS handshake (xfreerdp 2.11 on "
                             "OpenSSL 3: ERRCONNECT_TLS_CONNECT_FAILED, observed; mstsc: 0x904 / authentication error)",
                             "inference"),
    "RDP-CERT-EXPIRED": ("mstsc: \"The identity of the remote computer cannot be verified\" listing the expiry; the "
                         "user may connect anyway unless the authentication level forbids it; xfreerdp /cert:deny: "
                         "TLS_CONNECT_FAILED with only OpenSSL's first error (observed)", "inference"),
    "RDP-CERT-NOT-YET-VALID": ("mstsc: identity warning (certificate not yet valid); strict clients refuse", "inference"),
    "RDP-CERT-NAME-MISMATCH": ("mstsc: identity warning \"name mismatch\"; xfreerdp: \"CERTIFICATE NAME MISMATCH\" "
                               "(observed for IP targets)", "inference"),
    "RDP-CERT-UNREADABLE": ("the TLS handshake breaks or the client rejects the certificate", "inference"),
    "RDP-PROBE-CREDSSP-ERROR": ("mstsc: \"An authentication error has occurred\" with the server's code", "inference"),
    "RDP-PROBE-CREDSSP-FAILED": ("mstsc: \"An authentication error has occurred\" or 0x904 right after the TLS "
                                 "handshake", "inference"),
}


def compose_verdict(steps: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """The first failing step, every finding id (with severity), and what a client will see."""
    failed = next((step for step in steps if step["verdict"] == "fail"), None)
    findings = []
    for step in steps:
        for finding_id in step["finding_ids"]:
            findings.append({"id": finding_id, "step": step["step"],
                             "severity": FINDING_SEVERITY.get(finding_id, "medium")})
    if failed is None:
        sees, basis = ("the client gets past connection setup to the credential prompt or logon screen (the probe "
                       "stops before authentication: account, licensing and session problems are not visible here)",
                       "inference")
        warnings_seen = [step["step"] for step in steps if step["verdict"] == "warn"]
        explanation = "no step failed" + (f"; warnings at {', '.join(warnings_seen)}" if warnings_seen else "")
    else:
        primary = next((fid for fid in failed["finding_ids"] if fid in CLIENT_SEES), None)
        sees, basis = CLIENT_SEES.get(primary or "", ("the connection fails at this step", "inference"))
        explanation = f"{failed['step']}: {failed['summary']}"
    return {"ok": failed is None, "failed_step": failed["step"] if failed else None,
            "finding_ids": list(dict.fromkeys(item["id"] for item in findings)), "findings": findings,
            "explanation": explanation, "client_sees": sees, "client_sees_basis": basis}


def judge(options: ProbeOptions, obs: Observations) -> list[dict[str, t.Any]]:
    """All six steps, in order, from the observations (pure)."""
    run = steps_to_run(options.steps)
    wanted = set(options.steps)
    steps: list[dict[str, t.Any]] = []
    blocked = ""

    def add(name: str, make: t.Callable[[], dict[str, t.Any]], available: bool, why: str) -> None:
        nonlocal blocked
        if name not in run:
            steps.append(skipped(name, "not requested"))
        elif blocked:
            steps.append(skipped(name, blocked))
        elif not available:
            steps.append(skipped(name, why))
        else:
            step = make()
            steps.append(step)
        if steps[-1]["verdict"] == "fail" and name in ("dns", "tcp", "x224") and not blocked:
            if name != "dns" or not obs.dns or not obs.dns["addresses"]:
                blocked = f"not reached: the {name} step failed"

    add("dns", lambda: judge_dns(obs.dns or {}), obs.dns is not None, "no DNS result")
    add("tcp", lambda: judge_tcp(obs.tcp or {}, options.port), obs.tcp is not None, "no TCP result")
    add("x224", lambda: judge_x224(obs.mixes, obs.service_check), bool(obs.mixes), "no negotiation result")
    add("tls", lambda: judge_tls(obs.tls, obs.mixes), bool(obs.mixes), "no negotiation result")
    add("certificate", lambda: judge_certificate(obs.certificate, obs.certificate_ms), bool(obs.mixes),
        "no negotiation result")
    add("nla", lambda: judge_nla(obs.mixes, obs.credssp, options.nla, options.max_clock_skew), bool(obs.mixes),
        "no negotiation result")
    # a prerequisite that ran only because a later step needed it is still reported: it is evidence
    for step in steps:
        if step["step"] not in wanted and step["step"] in run:
            step["details"]["ran_as_prerequisite"] = True
    return steps


def _public_tls(tls: dict[str, t.Any] | None) -> dict[str, t.Any] | None:
    """The TLS section without raw certificate bytes (those are in ``certificate``)."""
    if tls is None:
        return None
    out = {key: value for key, value in tls.items() if key not in ("leaf_der", "chain_der")}
    out["legacy"] = tls.get("version") in LEGACY_TLS
    out["chain_length"] = (1 + len(tls.get("chain_der") or [])) if tls.get("leaf_der") else 0
    return out


def _nla_section(obs: Observations, steps: list[dict[str, t.Any]]) -> dict[str, t.Any] | None:
    """The nla section: state, evidence and the CredSSP observation."""
    step = next(step for step in steps if step["step"] == "nla")
    if step["verdict"] == "skipped":
        return None
    state = step["details"].get("state")
    credssp = dict(obs.credssp) if obs.credssp else None
    return {"state": state, "evidence": step["details"].get("evidence"), "credssp": credssp,
            "server_time_utc": ((credssp or {}).get("ntlm") or {}).get("timestamp"),
            "clock_skew_seconds": (credssp or {}).get("clock_skew_seconds")}


def build_result(options: ProbeOptions, obs: Observations, started: dt.datetime, elapsed_ms: float) -> dict[str, t.Any]:
    """The full result document (contracts section 6)."""
    steps = judge(options, obs)
    return {
        "schema": SCHEMA,
        "target": options.host,
        "port": options.port,
        "server_name": options.name_to_check,
        "started_utc": _iso(started),
        "elapsed_ms": round(elapsed_ms, 2),
        "steps": steps,
        "verdict": compose_verdict(steps),
        "dns": obs.dns,
        "tcp": obs.tcp,
        "x224": {"mixes": obs.mixes, "service_check": obs.service_check,
                 "answers": {r["requested_hex"]: _short_answer(r) for r in obs.mixes}} if obs.mixes else None,
        "tls": _public_tls(obs.tls),
        "certificate": obs.certificate,
        "nla": _nla_section(obs, steps),
    }


def probe(options: ProbeOptions, resolver: t.Callable[..., t.Any] = socket.getaddrinfo,
          clock: t.Callable[[], dt.datetime] = _utc_now) -> dict[str, t.Any]:
    """Probe one target and return the result document.

    Raises ValueError when the options are unusable (see option_errors). ``resolver`` and ``clock`` are
    injectable for tests (getaddrinfo signature; aware UTC datetime).
    """
    errors = option_errors(options)
    if errors:
        raise ValueError("; ".join(errors))
    started = clock()
    start = time.perf_counter()
    obs = _Run(options, resolver, clock).execute()
    return build_result(options, obs, started, _ms(start))


def probe_many(targets: t.Iterable[ProbeOptions | dict[str, t.Any] | str], concurrency: int = 16,
               defaults: dict[str, t.Any] | None = None) -> list[dict[str, t.Any]]:
    """Probe many targets on ``concurrency`` threads; results in the order of ``targets``.

    A target is a ProbeOptions, a dict of ProbeOptions fields, or a host name. ``defaults`` fills the
    fields a dict or name leaves out. Connections to one address:port stay within each target's
    ``max_connections_per_target`` across all threads (shared gate), so listing a host twice never
    floods it. A probe that raises yields ``{"target": ..., "error": ...}`` instead of a result.
    """
    base = dict(defaults or {})

    def one(target: t.Any) -> dict[str, t.Any]:
        if isinstance(target, ProbeOptions):
            fields: dict[t.Any, t.Any] = {"host": target.host, "port": target.port}
        elif isinstance(target, dict):
            fields = {**base, **target}
        else:
            fields = {**base, "host": target}
        try:
            return probe(target if isinstance(target, ProbeOptions) else ProbeOptions(**fields))
        except Exception as exc:  # pylint: disable=broad-exception-caught  # one bad target must not abort the batch
            message = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
            return {"target": fields.get("host"), "port": fields.get("port", 3389), "error": message}

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(one, list(targets)))
