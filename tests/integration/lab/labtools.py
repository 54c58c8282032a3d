"""Helpers of the transport tests: stand-in hosts, an in-process lab, test-only twins, payloads.

The transport does not need the host model: a stand-in host has ``name``, ``address`` and ``latency_ms``.
Running the lab in-process (``LabThread``) lets a test replace the twin table and the host-script folder
with ``monkeypatch``: the twin ``lab_echo`` answers its params back; ``lab_fail`` raises a TwinError.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import typing as t
from pathlib import Path

from tests.lab import twins
from tests.lab.cli import address_block, address_blocks
from tests.lab.dispatch import COMMAND_LINE, host_protocol
from tests.lab.inventory import InventoryHost, render_inventory, write_inventory
from tests.lab.server import Lab, LabStartError, LabThread

USER = "labadmin"
PASSWORD = "Lab-Transport-1!"
ECHO_SCRIPT = "param([Parameter(Mandatory = $true)] $Params)\nSet-StrictMode -Version 2.0\n# lab transport test script\n@{ echo = $Params }\n"
FAIL_SCRIPT = "param([Parameter(Mandatory = $true)] $Params)\nSet-StrictMode -Version 2.0\nthrow 'no access'\n"


@dataclasses.dataclass
class StandInHost:
    """What the transport needs from a host."""

    name: str
    address: str
    latency_ms: int = 0
    faults: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class RunningLab:
    """An in-process lab and what tests need to talk to it."""

    thread: LabThread
    hosts: list[StandInHost]
    inventory_dir: Path

    @property
    def lab(self) -> Lab:
        """The Lab (call its methods through ``thread.call``)."""
        return self.thread.lab

    @property
    def host(self) -> StandInHost:
        """The first host."""
        return self.hosts[0]

    def endpoint(self, index: int = 0) -> str:
        """WS-Management URL of host ``index``."""
        return f"http://{self.hosts[index].address}:5985/wsman"

    def inventory(self, connection: str, extra: dict[str, t.Any] | None = None) -> Path:
        """An inventory for the hosts over ``connection`` (winrm or psrp)."""
        path = self.inventory_dir / f"inventory.{connection}.yml"
        entries = [InventoryHost(host.name, host.address) for host in self.hosts]
        write_inventory(str(path), render_inventory(entries, USER, PASSWORD, connection, extra_vars=extra))
        return path

    def counters(self, index: int = 0) -> dict[str, t.Any]:
        """Counters of host ``index``."""
        return self.thread.call(self.lab.host_status, self.hosts[index].name)["counters"]

    def transport_fault(self, kind: str, index: int = 0, **options: t.Any) -> None:
        """Queue a transport fault through the same code as the admin API."""
        self.thread.call(self.lab.set_transport_fault, self.hosts[index].name, {"kind": kind, **options})


def echo_twin(host: t.Any, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Test twin: answers the params and the host name (non-ASCII included, to check the escaping)."""
    return {"echo": params, "host": host.name, "greeting": "Grüße ✓"}


def failing_twin(host: t.Any, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Test twin: fails like a script that hits an access denied at line 3."""
    raise twins.TwinError("System.UnauthorizedAccessException", f"no access on {host.name} ({sorted(params)})", 3,
                          "PermissionDenied")


def crashing_twin(host: t.Any, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Test twin with a bug."""
    return {"value": 1 / len(params or {}), "host": host.name}


def _standin_blocks() -> t.Iterator[str]:
    # Offset 4 inside each /21: never the blocks the lab_fleet fixture takes (offset 0).
    return address_blocks(os.getpid(), offset=4)


_BLOCKS = _standin_blocks()


def start_standin_lab(count: int, inventory_dir: Path, latency_ms: int = 0) -> RunningLab:
    """A LabThread with ``count`` stand-in hosts on a free loopback block (no RDP listeners)."""
    last: Exception | None = None
    for _attempt in range(5):
        addresses = address_block(next(_BLOCKS), count)
        hosts = [StandInHost(f"t{index + 1}", address, latency_ms) for index, address in enumerate(addresses)]
        thread = LabThread(Lab(hosts, USER, PASSWORD, rdp=False))
        try:
            thread.start()
        except LabStartError as exc:
            last = exc
            continue
        return RunningLab(thread, hosts, inventory_dir)
    raise RuntimeError(f"no free loopback block for a stand-in lab: {last}")


def bootstrap_command() -> tuple[str, list[str]]:
    """The collection's command line split as Ansible's winrm connection splits it."""
    parts = COMMAND_LINE.split(" ")
    return parts[0], parts[1:]


def payload(name: str, script: str, params: dict[str, t.Any]) -> bytes:
    """The stdin document of the host protocol."""
    return host_protocol.build_payload(name, script, params)


def encoded(script: str) -> str:
    """-EncodedCommand value of a PowerShell script."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")
