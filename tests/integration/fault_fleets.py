"""One lab fleet of fault hosts, diagnosed in one playbook run per transport: the shape the per-area diagnose tests share.

Each area (host read errors, issue 12's listener / licensing half and its security half) names its faults, the
combinations with a cause of 0x904 that must keep both findings, and a host-name prefix; this module turns them
into hosts, the finding ids the lab contract says each host gives, a started fleet, and the one check they all
make: every host read (state ok) in exactly one round trip, giving exactly its ids.
"""

from __future__ import annotations

import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.integration.test_diagnose_lab import Diagnosis, diagnose, ids
from tests.lab.faults import FAULTS

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]


def host_name(prefix: str, fault: str) -> str:
    """The host of one fault alone: <prefix>-<fault with dashes>."""
    return f"{prefix}-{fault.replace('_', '-')}"


def fault_hosts(prefix: str, faults: t.Iterable[str], combined: dict[str, tuple[str, ...]],
                extra: dict[str, tuple[str, ...]] | None = None) -> dict[str, tuple[str, ...]]:
    """Host name -> faults: ``extra`` first (e.g. a healthy host), one host per fault, then the combinations."""
    return {**(extra or {}), **{host_name(prefix, fault): (fault,) for fault in faults}, **combined}


def expected_ids(hosts: dict[str, tuple[str, ...]]) -> dict[str, set[str]]:
    """The finding ids each host gives by the lab contract (the union over its faults)."""
    return {name: {i for fault in faults for i in FAULTS[fault].finding_ids} for name, faults in hosts.items()}


def start_fleet(lab_fleet: t.Callable[..., t.Any], tmp_path_factory: pytest.TempPathFactory, name: str,
                hosts: dict[str, tuple[str, ...]]) -> t.Any:
    """A lab fleet of these hosts (Server 2022 unless a fault needs another release)."""
    path = tmp_path_factory.mktemp(f"{name}-fleet") / f"{name}.yml"
    document = {"defaults": {"os_version": "2022"}, "hosts": [{"name": host, "faults": list(faults)} for host, faults in hosts.items()]}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return lab_fleet(path)


def diagnose_exactly(lab: t.Any, run_playbook: RunPlaybook, connection: str, tmp_path: Path,
                     expected: dict[str, set[str]]) -> Diagnosis:
    """Diagnose the fleet over ``connection``: the run is green, every host read in one round trip with exactly its ids."""
    lab.admin.reset_counters()
    result = diagnose(run_playbook, lab.inventory_for(connection), tmp_path)
    assert result.run.returncode == 0, result.run.stdout[-3000:] + result.run.stderr[-3000:]
    assert set(result.hosts) == set(expected)
    wrong = {host: {"state": d["host_state"], "wanted": sorted(expected[host]), "found": ids(d)}
             for host, d in result.hosts.items() if d["host_state"]["state"] != "ok" or set(ids(d)) != expected[host]}
    assert wrong == {}
    for host in expected:
        counters = lab.admin.counters(host)
        assert (counters["round_trips"], counters["scripts"]) == (1, {"read_rdp_state": 1}), (host, counters)
    return result
