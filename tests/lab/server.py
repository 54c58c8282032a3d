"""The lab process: every host's WS-Management endpoint and RDP listener on one asyncio loop, plus an admin API.

One process serves the whole fleet (hundreds of hosts): per host one ``asyncio`` server on
``address:5985`` (WinRM and PSRP, :mod:`tests.lab.winrm`) and, when :mod:`tests.lab.rdp` is present, one
RDP listener on ``address:3389`` created by ``rdp.start_rdp_listener(host, behaviour_fn)``. Twin code
runs on a small thread pool so a slow twin never stalls the other hosts.

The admin API (JSON over HTTP on ``127.0.0.1:<admin port>``, see ``admin.json`` in the state dir):

* ``GET /status``                         every host: counters, latency, transport faults, model faults, RDP stats
* ``GET /hosts/<name>``                   one host
* ``POST /hosts/<name>/transport_fault``  ``{"kind": "reset|http500|http401|slow|garbled", "count": 1 |
  "persistent": true, "seconds": 5}`` queues a transport fault; ``{"clear": true}`` or DELETE clears them
* ``POST /hosts/<name>/faults``           ``{"faults": ["cert_expired", ...]}`` applies model faults
* ``POST /hosts/<name>/latency``          ``{"latency_ms": 20}``
* ``GET /hosts/<name>/model``             what the host model holds (registry, services, firewall, certificates,
  pending port / reboot values, revert tasks): tests compare it before and after a check-mode run
* ``POST /hosts/<name>/registry``         ``{"path": "HKLM:\\...", "name": "X", "value": 1}`` or ``{..., "delete": true}``:
  change a value behind the controller's back (drift tests)
* ``POST /hosts/<name>/apply_hooks``      ``{"fail_apply_at": N}`` (or null): the Nth operation of the next apply fails
* ``POST /hosts/<name>/reboot``           restart Windows: boot-time values (Schannel, CredSSP) and the RDP port apply
* ``POST /hosts/<name>/run_due_tasks``    ``{"advance_seconds": 1800}``: fire the revert tasks due that much later
* ``POST /hosts/<name>/reset_counters``   and ``POST /reset_counters`` for every host

:func:`serve` is the process entry point (``python -m tests.lab serve``, started detached by
``python -m tests.lab start``); :class:`LabThread` runs a :class:`Lab` inside the current process (tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import errno
import inspect
import json
import logging
import os
import signal
import sys
import threading
import time
import typing as t

from tests.lab import dispatch, winrm
from tests.lab.inventory import InventoryHost, render_inventory, write_inventory
from tests.lab.transport_faults import TransportFaultError, parse_fault

log = logging.getLogger("tests.lab")

ADMIN_ADDRESS = "127.0.0.1"
# Admin API ports tried in order (below the ephemeral range, next to WinRM's 5985).
ADMIN_PORTS = tuple(range(5984, 5959, -1))
RDP_PORT = 3389
STATE_FILES = ("lab.pid", "ready.json", "admin.json", "error.json")


class LabStartError(RuntimeError):
    """The lab cannot start (address or port taken, bad fleet); the message says what to do."""


# --------------------------------------------------------------------------------------------- RDP hook


def rdp_starter() -> t.Callable[..., t.Awaitable[t.Any]] | None:
    """``tests.lab.rdp.start_rdp_listener`` when the RDP listener module exists, else None."""
    try:
        from tests.lab import rdp  # pylint: disable=import-outside-toplevel
    except ImportError:
        return None
    return getattr(rdp, "start_rdp_listener", None)


def behaviour_fn(host: t.Any) -> t.Callable[[], t.Any]:
    """The listener's view of ``host``: ``behaviour.listener_behaviour(host, now)``, re-evaluated per call."""
    from tests.lab.behaviour import listener_behaviour  # pylint: disable=import-outside-toplevel

    return lambda: listener_behaviour(host, dt.datetime.now(dt.timezone.utc))


def _bind_error(what: str, address: str, port: int, exc: OSError) -> LabStartError:
    if exc.errno == errno.EADDRINUSE:
        hint = "address already in use - is another lab running? (python -m tests.lab status / stop)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = "address not available on this machine (lab addresses must be in 127.0.0.0/8)"
    elif exc.errno == errno.EACCES:
        hint = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
    else:
        hint = exc.strerror or str(exc)
    return LabStartError(f"{what}: cannot listen on {address}:{port}: {hint}")


# --------------------------------------------------------------------------------------------- the lab


class Lab:  # pylint: disable=too-many-instance-attributes
    """A running fleet: endpoints, RDP listeners, admin API. All methods run on the lab's event loop."""

    def __init__(self, hosts: t.Sequence[t.Any], username: str, password: str, *,
                 credentials: t.Mapping[str, tuple[str, str]] | None = None, rdp: bool = True,
                 admin_port: int | None = None, winrm_port: int = winrm.WINRM_PORT, workers: int = 4) -> None:
        self.hosts = {host.name: host for host in hosts}
        if len(self.hosts) != len(hosts):
            raise LabStartError("host names in the fleet are not unique")
        self.username = username
        self.password = password
        self.credentials = dict(credentials or {})
        self.use_rdp = rdp
        self.requested_admin_port = admin_port
        self.admin_port: int | None = None
        self.winrm_port = winrm_port
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lab-twin")
        self.endpoints: dict[str, winrm.HostEndpoint] = {}
        self.rdp_listeners: dict[str, t.Any] = {}
        self._admin_server: asyncio.base_events.Server | None = None
        self.started_at = time.time()
        self.start_seconds = 0.0
        self.state: tuple[str, str] | None = None  # (state dir, connection) once write_state() ran

    # -------------------------------------------------------------------------------------- start / stop

    async def start(self) -> None:
        """Bind every listener; on any failure close what was opened and raise LabStartError."""
        began = time.perf_counter()
        try:
            await self._start_endpoints()
            if self.use_rdp:
                await self._start_rdp()
            await self._start_admin()
        except BaseException:
            await self.close()
            raise
        self.started_at = time.time()
        self.start_seconds = time.perf_counter() - began
        log.info("lab: %d hosts listening in %.2f s, admin on %s:%s", len(self.endpoints), self.start_seconds,
                 ADMIN_ADDRESS, self.admin_port)

    async def _start_endpoints(self) -> None:
        for name, host in self.hosts.items():
            username, password = self.credentials.get(name, (self.username, self.password))
            endpoint = winrm.HostEndpoint(host, username, password, latency_ms=getattr(host, "latency_ms", 0) or 0,
                                          port=self.winrm_port, executor=self.executor)
            try:
                await endpoint.start()
            except OSError as exc:
                raise _bind_error(f"host {name} (WinRM)", endpoint.address, self.winrm_port, exc) from exc
            self.endpoints[name] = endpoint

    async def _start_rdp(self) -> None:
        start = rdp_starter()
        if start is None:
            log.warning("lab: tests/lab/rdp.py has no start_rdp_listener: no RDP listeners")
            return
        takes_behaviour = len(inspect.signature(start).parameters) > 1
        for name, host in self.hosts.items():
            listener = await (start(host, behaviour_fn(host)) if takes_behaviour else start(host))
            self.rdp_listeners[name] = listener
            error = getattr(listener, "last_error", "")
            if error:
                raise LabStartError(f"host {name} (RDP): cannot listen on {host.address}:{RDP_PORT}: {error}")
            sync = getattr(listener, "sync", None)
            if sync is not None:
                # A twin may change what the listener does (firewall, service, port): re-evaluate after each run.
                self.endpoints[name].model_changed = sync

    async def _start_admin(self) -> None:
        ports = (self.requested_admin_port,) if self.requested_admin_port is not None else ADMIN_PORTS
        last: OSError | None = None
        for port in ports:
            try:
                self._admin_server = await asyncio.start_server(self._admin_connection, ADMIN_ADDRESS, port,
                                                                reuse_address=True)
            except OSError as exc:
                last = exc
                continue
            self.admin_port = self._admin_server.sockets[0].getsockname()[1]
            return
        assert last is not None
        raise _bind_error("admin API", ADMIN_ADDRESS, ports[-1], last)

    async def close(self) -> None:
        """Close every listener (idempotent)."""
        if self._admin_server is not None:
            self._admin_server.close()
            self._admin_server = None
        for listener in list(self.rdp_listeners.values()):
            with contextlib.suppress(Exception):
                await listener.close()
        self.rdp_listeners.clear()
        for endpoint in list(self.endpoints.values()):
            await endpoint.close()
        self.endpoints.clear()
        dispatch.forget_counters(self.hosts.values())
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -------------------------------------------------------------------------------------- views

    def listeners(self) -> list[dict[str, t.Any]]:
        """What listens where (for ready.json and start-up checks)."""
        return [{"host": name, "address": endpoint.address, "winrm_port": endpoint.port,
                 "rdp_port": getattr(self.rdp_listeners.get(name), "port", None)}
                for name, endpoint in self.endpoints.items()]

    def host_status(self, name: str) -> dict[str, t.Any]:
        """One host for the admin API."""
        status = self.endpoints[name].status()
        host = self.hosts[name]
        status["faults"] = list(getattr(host, "faults", []) or [])
        listener = self.rdp_listeners.get(name)
        status["rdp"] = listener.stats() if listener is not None and hasattr(listener, "stats") else None
        return status

    def status(self) -> dict[str, t.Any]:
        """The whole lab for the admin API."""
        return {"pid": os.getpid(), "started_at": self.started_at, "uptime_s": round(time.time() - self.started_at, 3),
                "start_seconds": round(self.start_seconds, 3), "admin": {"address": ADMIN_ADDRESS, "port": self.admin_port},
                "hosts": {name: self.host_status(name) for name in self.endpoints}}

    def inventory_hosts(self) -> list[InventoryHost]:
        """Inventory entries for every host."""
        entries = []
        for name, host in self.hosts.items():
            endpoint = self.endpoints.get(name)
            entries.append(InventoryHost(
                name=name, address=host.address, faults=tuple(getattr(host, "faults", ()) or ()),
                probe_host=str(getattr(host, "probe_name", "") or host.address),
                accounts=tuple(getattr(host, "inventory_accounts", ()) or ()),
                username=endpoint.username if endpoint else self.username,
                password=endpoint.password if endpoint else self.password))
        return entries

    def write_state(self, state_dir: str, connection: str = "winrm") -> None:
        """admin.json and the inventories (inventory.yml uses ``connection``; both flavours are written)."""
        self.state = (state_dir, connection)
        admin = {"address": ADMIN_ADDRESS, "port": self.admin_port, "pid": os.getpid(), "url": self.admin_url}
        _write_json(os.path.join(state_dir, "admin.json"), admin)
        extra = {"rdp_doctor_lab_admin_url": self.admin_url}
        for flavour in ("winrm", "psrp"):
            document = render_inventory(self.inventory_hosts(), self.username, self.password, flavour, self.winrm_port, extra)
            write_inventory(os.path.join(state_dir, f"inventory.{flavour}.yml"), document)
            if flavour == connection:
                write_inventory(os.path.join(state_dir, "inventory.yml"), document)

    @property
    def admin_url(self) -> str:
        """Base URL of the admin API."""
        return f"http://{ADMIN_ADDRESS}:{self.admin_port}"

    # -------------------------------------------------------------------------------------- admin actions

    def _host(self, name: str) -> winrm.HostEndpoint:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise KeyError(name)
        return endpoint

    async def apply_faults(self, name: str, faults: list[str]) -> list[str]:
        """Apply model faults (tests.lab.faults) to a running host; the RDP listener follows at once."""
        from tests.lab.faults import apply_faults  # pylint: disable=import-outside-toplevel

        endpoint = self._host(name)
        await asyncio.get_running_loop().run_in_executor(self.executor, apply_faults, endpoint.host, faults)
        await endpoint.model_changed()
        if self.state is not None:
            self.write_state(*self.state)  # the inventory's rdp_doctor_lab_faults / probe host follow
        return list(getattr(endpoint.host, "faults", faults))

    async def change_host(self, name: str, action: str, document: dict[str, t.Any]) -> dict[str, t.Any]:
        """The admin API's model changes (registry, apply_hooks, reboot, run_due_tasks); the RDP listener follows."""
        endpoint = self._host(name)
        answer = await asyncio.get_running_loop().run_in_executor(self.executor, change_model, endpoint.host, action, document)
        await endpoint.model_changed()
        return answer

    def set_transport_fault(self, name: str, document: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        """Queue (or with ``{"clear": true}`` drop) transport faults of host ``name``."""
        endpoint = self._host(name)
        if document.get("clear") or document.get("kind") in (None, "none"):
            endpoint.transport_faults.clear()
        else:
            endpoint.transport_faults.add(parse_fault(document))
        return endpoint.transport_faults.describe()

    def set_latency(self, name: str, latency_ms: float) -> float:
        """Change the per-host latency knob."""
        if not isinstance(latency_ms, (int, float)) or isinstance(latency_ms, bool) or not 0 <= latency_ms <= 600_000:
            raise ValueError(f"latency_ms must be a number of milliseconds, not {latency_ms!r}")
        endpoint = self._host(name)
        endpoint.latency_ms = float(latency_ms)
        return endpoint.latency_ms

    def reset_counters(self, name: str | None = None) -> None:
        """Zero the counters of one host or of every host."""
        for endpoint in ([self._host(name)] if name else self.endpoints.values()):
            endpoint.counters.reset()

    # -------------------------------------------------------------------------------------- admin HTTP

    async def _admin_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await winrm.read_request(reader)) is not None:
                status, document = await self._admin_route(request.method, request.path.split("?", 1)[0], request.body)
                body = json.dumps(document, sort_keys=True).encode("utf-8")
                writer.write(winrm.http_response(status, body, "application/json", keep_alive=request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError, winrm.BadHttpRequest):
            pass
        finally:
            writer.close()

    async def _admin_route(self, method: str, path: str, body: bytes) -> tuple[int, t.Any]:
        parts = [part for part in path.split("/") if part]
        try:
            document = json.loads(body.decode("utf-8")) if body.strip() else {}
            if not isinstance(document, dict):
                raise ValueError("the request body must be a JSON object")
            return 200, await self._admin_action(method, parts, document)
        except KeyError as exc:
            return 404, {"error": f"no such host or route: {exc.args[0] if exc.args else path}"}
        except (ValueError, TransportFaultError) as exc:
            return 400, {"error": str(exc)}
        except Exception as exc:  # pylint: disable=broad-except
            log.exception("admin %s %s failed", method, path)
            return 500, {"error": f"{type(exc).__name__}: {exc}"}

    async def _admin_action(self, method: str, parts: list[str], document: dict[str, t.Any]) -> t.Any:
        if method == "GET" and parts == ["status"]:
            return self.status()
        if method == "POST" and parts == ["reset_counters"]:
            self.reset_counters()
            return {"reset": sorted(self.endpoints)}
        if len(parts) < 2 or parts[0] != "hosts":
            raise KeyError("/".join(parts))
        name = parts[1]
        self._host(name)
        action = parts[2] if len(parts) > 2 else ""
        if method == "GET" and not action:
            return self.host_status(name)
        if action == "transport_fault" and method in ("POST", "DELETE"):
            return {"transport_faults": self.set_transport_fault(name, {"clear": True} if method == "DELETE" else document)}
        if action == "faults" and method == "POST":
            faults = document.get("faults")
            if not isinstance(faults, list) or not all(isinstance(item, str) for item in faults):
                raise ValueError('expected {"faults": ["name", ...]}')
            return {"faults": await self.apply_faults(name, faults)}
        if action == "model" and method == "GET":
            return model_snapshot(self._host(name).host)
        if action in ("registry", "apply_hooks", "reboot", "run_due_tasks") and method == "POST":
            return await self.change_host(name, action, document)
        if action == "latency" and method == "POST":
            return {"latency_ms": self.set_latency(name, document.get("latency_ms"))}
        if action == "reset_counters" and method == "POST":
            self.reset_counters(name)
            return {"reset": [name]}
        raise KeyError(f"{method} /{'/'.join(parts)}")


# --------------------------------------------------------------------------------------------- model admin


def model_snapshot(host: t.Any) -> dict[str, t.Any]:
    """What a host model holds, as JSON (bytes as lower-case hex): a test compares two snapshots."""
    from tests.lab import model  # pylint: disable=import-outside-toplevel

    def value(item: t.Any) -> t.Any:
        return item.hex() if isinstance(item, bytes) else item

    return {
        "registry": {path: {k: value(v) for k, v in values.items()} for path, values in sorted(host.registry.keys.items())},
        "services": {s.name: {"state": s.state, "start_mode": s.start_mode, "account": s.account} for s in host.services.values()},
        "firewall_rules": [{"name": r.name, "group": r.group, "enabled": r.enabled, "protocol": r.protocol, "local_ports": r.local_ports,
                            "profiles": r.profiles, "remote_addresses": r.remote_addresses} for r in host.firewall_rules],
        "certificates": {store: [e.thumbprint for e in entries] for store, entries in host.cert_stores.items()},
        "bound_thumbprint": host.bound_thumbprint(),
        "machinekeys": {"path": host.machinekeys.path, "exists": host.machinekeys.exists, "sddl": host.machinekeys.sddl,
                        "files": {n: f.sddl for n, f in sorted(host.machinekeys.files.items())}},
        "sessions": [s.session_id for s in host.sessions],
        "listener_port": model.listener_port(host),
        "bound_port": host.bound_port,
        "reboot_pending": host.reboot_pending,
        "boot_registry": dict(host.boot_registry),
        "revert_tasks": [{"name": task.name, "run_at_utc": task.run_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "restore": task.restore}
                         for task in host.revert_tasks],
        "apply_fail_at": host.apply_fail_at,
        "booted_at": host.booted_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "restart_at": host.restart_at.strftime("%Y-%m-%dT%H:%M:%SZ") if host.restart_at else None,
    }


def change_model(host: t.Any, action: str, document: dict[str, t.Any]) -> dict[str, t.Any]:
    """One admin change of a host model (runs on the lab's executor)."""
    from tests.lab.twins import apply_rdp_changes  # pylint: disable=import-outside-toplevel

    now = host.clock(dt.datetime.now(dt.timezone.utc))
    if action == "registry":
        path, name = document.get("path"), document.get("name")
        if not isinstance(path, str) or not path.startswith("HKLM:\\") or not isinstance(name, str):
            raise ValueError('expected {"path": "HKLM:\\...", "name": "...", "value": ...} or {..., "delete": true}')
        if document.get("delete"):
            host.registry.delete(path, name)
        else:
            item = document.get("value")
            host.registry.set(path, name, bytes.fromhex(item[4:]) if isinstance(item, str) and item.startswith("hex:") else item)
        return {"registry": {"path": path, "name": name, "value": host.registry.get(path, name)}}
    if action == "apply_hooks":
        fail_at = document.get("fail_apply_at")
        if fail_at is not None and (not isinstance(fail_at, int) or isinstance(fail_at, bool) or fail_at < 1):
            raise ValueError(f"fail_apply_at must be a positive operation number or null, not {fail_at!r}")
        host.apply_fail_at = fail_at
        return {"fail_apply_at": fail_at}
    if action == "reboot":
        host.reboot(now)
        return {"ran": apply_rdp_changes.run_due_tasks(host, now), "reboot_pending": host.reboot_pending}
    seconds = document.get("advance_seconds", 0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise ValueError(f"advance_seconds must be a number of seconds >= 0, not {seconds!r}")
    return {"ran": apply_rdp_changes.run_due_tasks(host, now + dt.timedelta(seconds=seconds))}


# --------------------------------------------------------------------------------------------- in-process


async def _cancel_pending() -> None:
    """Cancel the connection handlers still running so the loop closes cleanly."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class LabThread:
    """Run a :class:`Lab` on its own event loop in a daemon thread (tests that need the lab in-process)."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="lab-loop", daemon=True)
        self._started = threading.Event()
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.lab.start())
        except BaseException as exc:  # pylint: disable=broad-except
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.lab.close())
        self.loop.run_until_complete(_cancel_pending())
        self.loop.close()

    def start(self, timeout: float = 120.0) -> "LabThread":
        """Start the lab; raises what Lab.start raised."""
        self._thread.start()
        if not self._started.wait(timeout):
            raise LabStartError(f"the lab did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def call(self, func: t.Callable[..., t.Any], *args: t.Any) -> t.Any:
        """Run ``func(*args)`` on the lab loop (awaiting it if it is a coroutine function) and return its result."""
        async def runner() -> t.Any:
            result = func(*args)
            return await result if inspect.isawaitable(result) else result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(60)

    def stop(self) -> None:
        """Close every listener and end the thread."""
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(30)

    def __enter__(self) -> "LabThread":
        return self.start()

    def __exit__(self, *exc: t.Any) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------- fleet


def _credentials(value: t.Any) -> tuple[str, str] | None:
    """(user, password) from the shapes a fleet may use: tuple, mapping or object."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return str(value[0]), str(value[1])
    getter = value.get if isinstance(value, dict) else (lambda key, default=None: getattr(value, key, default))
    user = getter("username") or getter("user")
    password = getter("password")
    return (str(user), str(password)) if user is not None and password is not None else None


def lab_from_fleet(fleet: t.Any, hosts_limit: int | None = None, admin_port: int | None = None, rdp: bool = True,
                   first_address: str | None = None) -> Lab:
    """A Lab for a ``tests.lab.fleet.Fleet`` (its hosts, credentials and per-host latency).

    ``first_address`` moves the fleet to another loopback block (e.g. ``127.0.90.2``) so that test runs
    and a developer's lab can run side by side.
    """
    hosts = list(fleet.hosts.values() if isinstance(fleet.hosts, dict) else fleet.hosts)
    if hosts_limit is not None:
        hosts = hosts[:max(hosts_limit, 0)]
    if first_address:
        from tests.lab.cli import address_block  # pylint: disable=import-outside-toplevel

        for host, address in zip(hosts, address_block(first_address, len(hosts))):
            host.address = address
    credentials = _credentials(getattr(fleet, "credentials", None)) or ("Administrator", "Passw0rd!")
    per_host: dict[str, tuple[str, str]] = {}
    for host in hosts:
        own = _credentials(getattr(host, "credentials", None))
        if own is not None:
            per_host[host.name] = own
        latency = (getattr(fleet, "latency_ms", None) or {})
        if isinstance(latency, dict) and host.name in latency and not getattr(host, "latency_ms", 0):
            host.latency_ms = latency[host.name]
    return Lab(hosts, credentials[0], credentials[1], credentials=per_host, rdp=rdp, admin_port=admin_port)


def load_fleet(path: str) -> t.Any:
    """``tests.lab.fleet.load_fleet(path)``."""
    from tests.lab.fleet import load_fleet as load  # pylint: disable=import-outside-toplevel

    return load(path)


# --------------------------------------------------------------------------------------------- process


def _write_json(path: str, document: t.Any) -> None:
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(temporary, path)


def _remove_state(state_dir: str, names: t.Iterable[str]) -> None:
    for name in names:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(state_dir, name))


async def _watch_parent(pid: int, stop: asyncio.Event) -> None:
    """End the lab when the process that asked for it is gone (a killed pytest must not leave a lab behind)."""
    while not stop.is_set():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            log.warning("lab: watched process %d is gone, stopping", pid)
            stop.set()
            return
        except PermissionError:
            pass
        await asyncio.sleep(1.0)


async def _serve(lab: Lab, state_dir: str, connection: str, watch_pid: int | None, began: float) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await lab.start()
    except LabStartError as exc:
        print(f"lab: error: {exc}", file=sys.stderr, flush=True)
        _write_json(os.path.join(state_dir, "error.json"), {"error": str(exc)})
        return 2
    watcher = asyncio.create_task(_watch_parent(watch_pid, stop)) if watch_pid else None
    try:
        lab.write_state(state_dir, connection)
        total = time.perf_counter() - began
        _write_json(os.path.join(state_dir, "ready.json"), {
            "pid": os.getpid(), "hosts": len(lab.endpoints), "admin_port": lab.admin_port, "admin_url": lab.admin_url,
            "connection": connection, "listeners": lab.listeners(), "listen_seconds": round(lab.start_seconds, 3),
            "start_seconds": round(total, 3), "rdp": bool(lab.rdp_listeners)})
        print(f"lab: ready: {len(lab.endpoints)} hosts in {total:.2f} s (listeners {lab.start_seconds:.2f} s), "
              f"admin {lab.admin_url}", file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await lab.close()
        await _cancel_pending()
        _remove_state(state_dir, ("ready.json", "admin.json"))
        pid_file = os.path.join(state_dir, "lab.pid")
        with contextlib.suppress(OSError, ValueError):
            with open(pid_file, encoding="ascii") as handle:
                if int(handle.read().strip() or 0) == os.getpid():
                    os.unlink(pid_file)
    return 0


def serve(fleet_path: str, state_dir: str, hosts_limit: int | None = None, connection: str = "winrm",  # pylint: disable=too-many-arguments
          admin_port: int | None = None, watch_pid: int | None = None, rdp: bool = True, first_address: str | None = None) -> int:
    """Process entry point: load the fleet, listen, write the state files, run until SIGTERM. Returns the exit code."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    began = time.perf_counter()
    os.makedirs(state_dir, exist_ok=True)
    try:
        fleet = load_fleet(fleet_path)
        lab = lab_from_fleet(fleet, hosts_limit, admin_port, rdp=rdp, first_address=first_address)
    except Exception as exc:  # pylint: disable=broad-except
        # A bad fleet file is a user error: say which and why, in one line.
        print(f"lab: error: cannot load fleet {fleet_path}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        _write_json(os.path.join(state_dir, "error.json"), {"error": f"cannot load fleet {fleet_path}: {exc}"})
        return 2
    log.info("lab: fleet %s loaded: %d hosts in %.2f s", fleet_path, len(lab.hosts), time.perf_counter() - began)
    return asyncio.run(_serve(lab, state_dir, connection, watch_pid, began))
