"""``python -m tests.lab start|stop|status``: run the lab fleet as one detached process, by PID.

``start`` spawns ``python -m tests.lab serve`` in its own session (it survives the shell), waits until
every WinRM listener accepts, and leaves in the state dir: ``lab.pid``, ``inventory.yml`` (plus
``inventory.winrm.yml`` and ``inventory.psrp.yml``), ``admin.json`` (the admin API) and ``lab.log``.
``stop`` sends SIGTERM, then SIGKILL after 5 s, and removes the pid file. ``status`` prints the hosts and
their counters, or "not running". The same functions (:func:`start_lab`, :func:`stop_lab`) back the
pytest fixture ``lab_fleet``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import time
import typing as t
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_FLEET = REPO_ROOT / "tests" / "lab" / "fleets" / "default.yml"
DEFAULT_STATE_DIR = REPO_ROOT / ".lab"
STOP_GRACE_SECONDS = 5.0


class LabError(RuntimeError):
    """The lab could not be started or reached; the message is meant for the user."""


# --------------------------------------------------------------------------------------------- admin client


class AdminClient:
    """The lab's admin API (JSON over HTTP on 127.0.0.1)."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def request(self, method: str, path: str, document: t.Any = None) -> t.Any:
        """Call the API; raises LabError with the server's message on an HTTP error."""
        data = json.dumps(document).encode("utf-8") if document is not None else None
        request = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # nosec B310 - loopback admin API
                return json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise LabError(f"lab admin API {method} {path}: HTTP {exc.code}: {detail}") from exc
        except OSError as exc:
            raise LabError(f"lab admin API {self.url} unreachable: {exc}") from exc

    def status(self) -> dict[str, t.Any]:
        """Every host's counters, faults and listeners."""
        return self.request("GET", "/status")

    def host(self, name: str) -> dict[str, t.Any]:
        """One host's status."""
        return self.request("GET", f"/hosts/{name}")

    def counters(self, name: str) -> dict[str, t.Any]:
        """One host's counters (requests, round_trips, commands, scripts)."""
        return self.host(name)["counters"]

    def set_transport_fault(self, name: str, kind: str, count: int = 1, persistent: bool = False, seconds: float | None = None,
                            size: int | None = None, after: int = 0) -> list:
        """Queue a transport fault (reset, http500, http401, slow, garbled, oversized) on host ``name``, armed after
        ``after`` commands (at the next shell opened)."""
        document: dict[str, t.Any] = {"kind": kind, "count": count, "persistent": persistent, "after": after}
        if seconds is not None:
            document["seconds"] = seconds
        if size is not None:
            document["size"] = size
        return self.request("POST", f"/hosts/{name}/transport_fault", document)["transport_faults"]

    def clear_transport_faults(self, name: str) -> None:
        """Drop every queued transport fault of host ``name``."""
        self.request("DELETE", f"/hosts/{name}/transport_fault")

    def apply_faults(self, name: str, faults: list[str]) -> list[str]:
        """Apply model faults to a running host; returns the host's fault list."""
        return self.request("POST", f"/hosts/{name}/faults", {"faults": faults})["faults"]

    def set_latency(self, name: str, latency_ms: float) -> None:
        """Change the per-host latency."""
        self.request("POST", f"/hosts/{name}/latency", {"latency_ms": latency_ms})

    def model(self, name: str) -> dict[str, t.Any]:
        """What the host model holds (registry, services, firewall, certificates, pending values, revert tasks)."""
        return self.request("GET", f"/hosts/{name}/model")

    def set_registry(self, name: str, path: str, value_name: str, value: t.Any = None, delete: bool = False) -> dict[str, t.Any]:
        """Change (or delete) one registry value behind the controller's back; bytes as ``"hex:..."``."""
        return self.request("POST", f"/hosts/{name}/registry", {"path": path, "name": value_name, "value": value, "delete": delete})

    def fail_apply_at(self, name: str, operation: int | None) -> None:
        """Make the Nth operation of the host's next apply fail (once); None clears the hook."""
        self.request("POST", f"/hosts/{name}/apply_hooks", {"fail_apply_at": operation})

    def reboot(self, name: str) -> dict[str, t.Any]:
        """Restart the host: boot-time values apply, due revert tasks run."""
        return self.request("POST", f"/hosts/{name}/reboot", {})

    def run_due_tasks(self, name: str, advance_seconds: float = 0) -> dict[str, t.Any]:
        """Fire the host's revert tasks due ``advance_seconds`` from now."""
        return self.request("POST", f"/hosts/{name}/run_due_tasks", {"advance_seconds": advance_seconds})

    def reset_counters(self, name: str | None = None) -> None:
        """Zero the counters of one host, or of all."""
        self.request("POST", f"/hosts/{name}/reset_counters" if name else "/reset_counters", {})


# --------------------------------------------------------------------------------------------- state dir


@dataclasses.dataclass
class LabInfo:
    """A running lab as its state dir describes it."""

    state_dir: Path
    pid: int
    hosts: int
    admin_url: str
    listeners: list[dict[str, t.Any]]
    start_seconds: float = 0.0
    already_running: bool = False

    @property
    def inventory(self) -> Path:
        """inventory.yml (the connection chosen at start)."""
        return self.state_dir / "inventory.yml"

    def inventory_for(self, connection: str) -> Path:
        """inventory.winrm.yml or inventory.psrp.yml."""
        return self.state_dir / f"inventory.{connection}.yml"

    @property
    def admin(self) -> AdminClient:
        """Client of this lab's admin API."""
        return AdminClient(self.admin_url)

    def summary(self) -> str:
        """The one-line summary ``start`` prints."""
        addresses = [item["address"] for item in self.listeners]
        span = f"{addresses[0]}-{addresses[-1]}" if len(addresses) > 1 else (addresses[0] if addresses else "-")
        verb = "already running" if self.already_running else f"started in {self.start_seconds:.2f} s"
        return (f"lab {verb}: {self.hosts} hosts on {span} (WinRM/PSRP :5985, RDP :3389), pid {self.pid}, "
                f"admin {self.admin_url}, inventory {self.inventory}")


def _read_json(path: Path) -> t.Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_lab_process(pid: int) -> bool:
    """Whether ``pid`` is alive and is a lab server (guards against a recycled PID)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"tests.lab" in cmdline and b"serve" in cmdline


def running_pid(state_dir: str | Path) -> int | None:
    """PID of the lab serving ``state_dir``, None if none runs (a stale pid file is removed)."""
    pid_file = Path(state_dir) / "lab.pid"
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    if _is_lab_process(pid):
        return pid
    with contextlib.suppress(OSError):
        pid_file.unlink()
    return None


def lab_info(state_dir: str | Path) -> LabInfo | None:
    """The running lab of ``state_dir`` (None when not running or not ready)."""
    state = Path(state_dir)
    pid = running_pid(state)
    ready = _read_json(state / "ready.json")
    if pid is None or not isinstance(ready, dict) or ready.get("pid") != pid:
        return None
    return LabInfo(state, pid, int(ready.get("hosts", 0)), str(ready.get("admin_url", "")), list(ready.get("listeners", [])),
                   float(ready.get("start_seconds", 0.0)))


# --------------------------------------------------------------------------------------------- start / stop


def address_block(first: str, count: int) -> list[str]:
    """``count`` consecutive loopback addresses from ``first``, skipping .0 and .255 last octets."""
    current = ipaddress.IPv4Address(first)
    loopback = ipaddress.IPv4Network("127.0.0.0/8")
    result: list[str] = []
    while len(result) < count:
        if current not in loopback:
            raise LabError(f"the address block from {first} leaves 127.0.0.0/8 after {len(result)} hosts")
        if str(current).rsplit(".", 1)[1] not in ("0", "255") and str(current) != "127.0.0.1":
            result.append(str(current))
        current += 1
    return result


def address_blocks(seed: int, offset: int = 0) -> t.Iterator[str]:
    """First addresses of loopback blocks for test labs: 127.<100 + seed % 100>.<8k + offset>.2, then the next.

    Each block holds 8 x 254 addresses; a test session seeds with its PID so that parallel sessions and a
    developer's lab (127.0.x.y) do not collide.
    """
    second = seed % 100
    for step in range(100):
        for third in range(0, 256, 8):
            yield f"127.{100 + (second + step) % 100}.{third + offset}.2"


def _listeners_accept(listeners: list[dict[str, t.Any]], deadline: float) -> list[str]:
    """Addresses whose WinRM listener does not accept a TCP connection (empty when all do)."""
    missing = list(listeners)
    while missing and time.monotonic() < deadline:
        still = []
        for item in missing:
            try:
                with socket.create_connection((item["address"], item["winrm_port"]), timeout=2.0):
                    pass
            except OSError:
                still.append(item)
        missing = still
        if missing:
            time.sleep(0.1)
    return [f"{item['address']}:{item['winrm_port']}" for item in missing]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in text if line.startswith("lab: error:")]
    return "\n".join(errors[-3:] if errors else text[-lines:])


def _terminate(pid: int, grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds; returns once the process is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    _reap(pid)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not process_alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + grace
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
        _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status when the lab is our own child (started by start_lab in this process)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def process_alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def serve_command(fleet: str | Path, state_dir: str | Path, hosts_limit: int | None, connection: str,
                  admin_port: int | None, first_address: str | None, watch_pid: int | None, rdp: bool) -> list[str]:
    """argv of the lab server process."""
    argv = [sys.executable, "-m", "tests.lab", "serve", "--fleet", str(fleet), "--state-dir", str(state_dir),
            "--connection", connection]
    if hosts_limit is not None:
        argv += ["--hosts-limit", str(hosts_limit)]
    if admin_port is not None:
        argv += ["--admin-port", str(admin_port)]
    if first_address:
        argv += ["--first-address", first_address]
    if watch_pid:
        argv += ["--watch-pid", str(watch_pid)]
    if not rdp:
        argv.append("--no-rdp")
    return argv


def start_lab(fleet: str | Path = DEFAULT_FLEET, state_dir: str | Path = DEFAULT_STATE_DIR, hosts_limit: int | None = None,
              connection: str = "winrm", admin_port: int | None = None, first_address: str | None = None,
              watch_pid: int | None = None, rdp: bool = True, timeout: float = 120.0) -> LabInfo:
    """Start the lab in the background and wait until it serves; idempotent (a running lab is returned as is)."""
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    info = lab_info(state)
    if info is not None:
        info.already_running = True
        return info
    if running_pid(state) is not None:
        raise LabError(f"a lab process runs for {state} but is not ready; run 'python -m tests.lab stop --state-dir {state}'")
    for name in ("ready.json", "error.json", "admin.json"):
        with contextlib.suppress(FileNotFoundError):
            (state / name).unlink()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    argv = serve_command(Path(fleet).resolve(), state, hosts_limit, connection, admin_port, first_address, watch_pid, rdp)
    with open(state / "lab.log", "ab") as log_file:
        process = subprocess.Popen(argv, cwd=REPO_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log_file,  # pylint: disable=consider-using-with
                                   stderr=subprocess.STDOUT, start_new_session=True)
    (state / "lab.pid").write_text(f"{process.pid}\n", encoding="ascii")
    try:
        return _wait_ready(process, state, time.monotonic() + timeout)
    except BaseException:
        if process.poll() is None:
            _terminate(process.pid)
        process.wait(5)
        with contextlib.suppress(FileNotFoundError):
            (state / "lab.pid").unlink()
        raise


def _wait_ready(process: subprocess.Popen, state: Path, deadline: float) -> LabInfo:
    while True:
        ready = _read_json(state / "ready.json")
        if isinstance(ready, dict) and ready.get("pid") == process.pid:
            break
        if process.poll() is not None:
            raise LabError(f"the lab exited with status {process.returncode}:\n{_tail(state / 'lab.log')}")
        if time.monotonic() > deadline:
            raise LabError(f"the lab did not become ready in time; see {state / 'lab.log'}:\n{_tail(state / 'lab.log')}")
        time.sleep(0.05)
    listeners = list(ready.get("listeners", []))
    missing = _listeners_accept(listeners, deadline)
    if missing:
        raise LabError(f"lab listeners do not accept connections: {', '.join(missing[:10])}")
    # The server outlives this call on purpose (detached); forget the Popen without a ResourceWarning.
    process.returncode = 0
    return LabInfo(state, process.pid, int(ready.get("hosts", 0)), str(ready.get("admin_url", "")), listeners,
                   float(ready.get("start_seconds", 0.0)))


def stop_lab(state_dir: str | Path = DEFAULT_STATE_DIR) -> int | None:
    """Stop the lab of ``state_dir``; returns the PID stopped, None if none ran."""
    state = Path(state_dir).resolve()
    pid = running_pid(state)
    if pid is not None:
        _terminate(pid)
    for name in ("lab.pid", "ready.json", "admin.json"):
        with contextlib.suppress(FileNotFoundError):
            (state / name).unlink()
    return pid


# --------------------------------------------------------------------------------------------- CLI


def _format_status(status: dict[str, t.Any]) -> str:
    hosts = status.get("hosts", {})
    lines = [f"lab running: pid {status.get('pid')}, {len(hosts)} hosts, up {status.get('uptime_s', 0):.0f} s, "
             f"admin http://{status['admin']['address']}:{status['admin']['port']}",
             f"{'host':32} {'address':15} {'requests':>8} {'scripts':>7} {'commands':>8} {'rdp':>5}  faults"]
    for name, host in sorted(hosts.items()):
        counters = host["counters"]
        rdp = host.get("rdp") or {}
        # on: accepting; drop: firewall drops SYNs (clients time out); off: nothing listens (refused).
        listening = "on" if rdp.get("port") else ("drop" if rdp.get("filtered_port") else ("off" if rdp else "-"))
        faults = ",".join(host.get("faults", [])) or "-"
        transport = ",".join(item["kind"] for item in host.get("transport_faults", []))
        lines.append(f"{name:32} {host['address']:15} {counters['requests']:>8} {counters['round_trips']:>7} "
                     f"{counters['commands']:>8} {listening:>5}  {faults}{' [' + transport + ']' if transport else ''}")
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description="Run the rdp.doctor lab fleet.")
    sub = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=str(DEFAULT_STATE_DIR), help="where pid, inventory and logs go (default .lab)")
    for name in ("start", "serve"):
        cmd = sub.add_parser(name, parents=[common], help="start the lab in the background" if name == "start" else argparse.SUPPRESS)
        cmd.add_argument("--fleet", default=str(DEFAULT_FLEET), help="fleet file (default tests/lab/fleets/default.yml)")
        cmd.add_argument("--hosts-limit", type=int, default=None, help="only the first N hosts of the fleet")
        cmd.add_argument("--connection", choices=("winrm", "psrp"), default="winrm", help="connection vars of inventory.yml")
        cmd.add_argument("--admin-port", type=int, default=None, help="admin API port on 127.0.0.1 (default: first free of 5984..5960)")
        cmd.add_argument("--first-address", default=None, help="re-address the fleet from this 127.x.y.z address")
        cmd.add_argument("--no-rdp", action="store_true", help="no RDP listeners (WinRM only)")
        cmd.add_argument("--watch-pid", type=int, default=None, help="stop when this process ends")
        if name == "start":
            cmd.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the lab to be ready")
    sub.add_parser("stop", parents=[common], help="stop the lab (SIGTERM, then SIGKILL after 5 s)")
    status = sub.add_parser("status", parents=[common], help="hosts and counters, or 'not running'")
    status.add_argument("--json", action="store_true", help="print the admin API's JSON")
    reboot = sub.add_parser("reboot", parents=[common], help="restart hosts as an operator would (boot-time values apply)")
    reboot.add_argument("hosts", nargs="*", help="host names (default: every host with a reboot pending)")
    return parser


def reboot_hosts(admin: AdminClient, names: t.Sequence[str] = ()) -> list[str]:
    """Reboot ``names``, or every host whose model has a reboot pending; returns the hosts rebooted."""
    chosen = list(names) or [name for name in admin.status()["hosts"] if admin.model(name).get("reboot_pending")]
    for name in chosen:
        admin.reboot(name)
    return chosen


def main(argv: t.Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit code (status: 0 running, 3 not running)."""
    args = _parser().parse_args(argv)
    if args.command == "serve":
        from tests.lab.server import serve  # pylint: disable=import-outside-toplevel

        return serve(args.fleet, args.state_dir, args.hosts_limit, args.connection, args.admin_port, args.watch_pid,
                     rdp=not args.no_rdp, first_address=args.first_address)
    try:
        if args.command == "start":
            info = start_lab(args.fleet, args.state_dir, args.hosts_limit, args.connection, args.admin_port,
                             args.first_address, args.watch_pid, not args.no_rdp, args.timeout)
            print(info.summary())
            return 0
        if args.command == "stop":
            pid = stop_lab(args.state_dir)
            print(f"lab stopped (pid {pid})" if pid else "lab not running")
            return 0
        info = lab_info(args.state_dir)
        if info is None:
            print("not running")
            return 3
        if args.command == "reboot":
            rebooted = reboot_hosts(info.admin, args.hosts)
            print(f"rebooted: {', '.join(rebooted)}" if rebooted else "no host has a reboot pending")
            return 0
        status_doc = info.admin.status()
        print(json.dumps(status_doc, indent=2, sort_keys=True) if args.json else _format_status(status_doc))
        return 0
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 1
