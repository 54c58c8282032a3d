"""python -m tests.lab start|status|stop, the state dir, the admin API, and a 200-host start."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.integration.lab.labtools import start_standin_lab
from tests.lab import cli
from tests.lab.fleet import DEFAULT_FLEET, SMALL_FLEET

pytestmark = pytest.mark.lab

REPO_ROOT = Path(__file__).resolve().parents[3]
_BLOCKS = cli.address_blocks(os.getpid(), offset=6)  # clear of the fixtures' blocks (offsets 0 and 4)


def lab_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.lab", *args], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=180, check=False)


def accepts(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def test_start_status_stop(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = next(_BLOCKS)
    started = lab_cli("start", "--fleet", str(SMALL_FLEET), "--state-dir", str(state), "--first-address", first)
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.startswith("lab started in ") and "5 hosts on " in started.stdout
        assert len(started.stdout.strip().splitlines()) == 1
        pid = int((state / "lab.pid").read_text())
        assert accepts(first, 5985)
        again = lab_cli("start", "--fleet", str(SMALL_FLEET), "--state-dir", str(state), "--first-address", first)
        assert again.returncode == 0 and again.stdout.startswith("lab already running") and f"pid {pid}" in again.stdout
        status = lab_cli("status", "--state-dir", str(state))
        assert status.returncode == 0 and "f-cert-expired" in status.stdout and first in status.stdout
        document = json.loads(lab_cli("status", "--state-dir", str(state), "--json").stdout)
        assert document["pid"] == pid and len(document["hosts"]) == 5
        admin = json.loads((state / "admin.json").read_text())
        assert admin["pid"] == pid and admin["url"] == f"http://127.0.0.1:{admin['port']}"
        assert lab_cli("reboot", "--state-dir", str(state)).stdout.strip() == "no host has a reboot pending"
        named = lab_cli("reboot", "--state-dir", str(state), "ok-2022")
        assert named.returncode == 0 and named.stdout.strip() == "rebooted: ok-2022"
    finally:
        stopped = lab_cli("stop", "--state-dir", str(state))
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"lab stopped (pid {pid})"
    assert not (state / "lab.pid").exists() and not cli.process_alive(pid)
    assert not accepts(first, 5985)
    assert lab_cli("status", "--state-dir", str(state)).stdout.strip() == "not running"
    assert lab_cli("status", "--state-dir", str(state)).returncode == 3
    assert lab_cli("stop", "--state-dir", str(state)).stdout.strip() == "lab not running"


def test_start_reports_taken_addresses_and_leaves_nothing_behind(tmp_path: Path) -> None:
    squatter = start_standin_lab(2, tmp_path)
    try:
        state = tmp_path / "state"
        result = lab_cli("start", "--fleet", str(SMALL_FLEET), "--state-dir", str(state), "--first-address",
                         squatter.host.address, "--no-rdp")
        assert result.returncode == 1
        assert f"cannot listen on {squatter.host.address}:5985: address already in use" in result.stderr
        assert "python -m tests.lab status" in result.stderr
        assert not (state / "lab.pid").exists() and not (state / "ready.json").exists()
    finally:
        squatter.thread.stop()


def test_bad_fleet_file_is_a_clear_error(tmp_path: Path) -> None:
    fleet = tmp_path / "bad.yml"
    fleet.write_text("hosts:\n  - name: x1\n    faults: [no_such_fault]\n", encoding="utf-8")
    result = lab_cli("start", "--fleet", str(fleet), "--state-dir", str(tmp_path / "state"), "--first-address", next(_BLOCKS))
    assert result.returncode == 1 and "cannot load fleet" in result.stderr and "no_such_fault" in result.stderr


def test_inventory_of_the_default_fleet(lab_fleet: t.Callable[..., t.Any]) -> None:
    info = lab_fleet(DEFAULT_FLEET)
    winrm_inventory = yaml.safe_load(info.inventory.read_text())["all"]["children"]["windows"]
    psrp_vars = yaml.safe_load(info.inventory_for("psrp").read_text())["all"]["children"]["windows"]["vars"]
    group = winrm_inventory["vars"]
    assert {key: group[key] for key in ("ansible_connection", "ansible_port", "ansible_winrm_transport", "ansible_winrm_scheme",
                                        "ansible_user", "rdp_doctor_accounts")} == {
        "ansible_connection": "winrm", "ansible_port": 5985, "ansible_winrm_transport": "basic",
        "ansible_winrm_scheme": "http", "ansible_user": "labadmin", "rdp_doctor_accounts": ["rdpuser"]}
    assert {key: psrp_vars[key] for key in ("ansible_connection", "ansible_psrp_auth", "ansible_psrp_protocol",
                                            "ansible_psrp_message_encryption")} == {
        "ansible_connection": "psrp", "ansible_psrp_auth": "basic", "ansible_psrp_protocol": "http",
        "ansible_psrp_message_encryption": "never"}
    hosts = winrm_inventory["hosts"]
    assert hosts["f-dns-mismatch"]["rdp_doctor_probe_host"] == "localhost"
    assert hosts["f-cert-expired"]["rdp_doctor_lab_faults"] == ["cert_expired"]
    assert "rdp_doctor_accounts" not in hosts["f-cert-expired"]  # the group's [rdpuser]
    assert hosts["f-accounts-nested-group"]["rdp_doctor_accounts"] == ["rdpuser", "CONTOSO\\alice"]
    assert hosts["ok-2022"]["rdp_doctor_probe_host"] == hosts["ok-2022"]["ansible_host"]
    assert len({entry["ansible_host"] for entry in hosts.values()}) == len(hosts) == info.hosts
    assert all(accepts(entry["ansible_host"], 5985) for entry in hosts.values())


def test_admin_api_changes_a_running_host(lab_fleet: t.Callable[..., t.Any]) -> None:
    info = lab_fleet(SMALL_FLEET, fresh=True)
    admin = info.admin
    address = admin.host("ok-2022")["address"]
    assert accepts(address, 3389)
    assert admin.apply_faults("ok-2022", ["rdp_disabled"]) == ["rdp_disabled"]
    assert not accepts(address, 3389)  # the listener follows the model at once: connection refused
    assert admin.host("ok-2022")["faults"] == ["rdp_disabled"]
    inventory = yaml.safe_load(info.inventory.read_text())["all"]["children"]["windows"]["hosts"]
    assert inventory["ok-2022"]["rdp_doctor_lab_faults"] == ["rdp_disabled"]
    assert admin.set_transport_fault("ok-2022", "slow", seconds=1.5, persistent=True) == [
        {"kind": "slow", "count": None, "persistent": True, "seconds": 1.5, "size": 0, "after": 0, "armed": True}]
    admin.clear_transport_faults("ok-2022")
    admin.set_latency("ok-2022", 25)
    assert admin.host("ok-2022")["latency_ms"] == 25
    admin.reset_counters()
    assert admin.counters("ok-2022") == {"requests": 0, "round_trips": 0, "commands": 0, "refused": 0, "scripts": {}}
    with pytest.raises(cli.LabError, match="HTTP 404"):
        admin.host("no-such-host")
    with pytest.raises(cli.LabError, match="HTTP 400.*unknown transport fault kind"):
        admin.set_transport_fault("ok-2022", "explode")
    with pytest.raises(cli.LabError, match="HTTP 400.*unknown fault"):
        admin.apply_faults("ok-2022", ["no_such_fault"])


def test_two_hundred_hosts_start_and_accept(lab_fleet: t.Callable[..., t.Any], tmp_path: Path) -> None:
    fleet = tmp_path / "fleet200.yml"
    fleet.write_text("defaults:\n  credentials: {user: labadmin, password: \"RdpDoctor-Lab-1!\"}\n"
                     "generate: {count: 200, prefix: win}\n", encoding="utf-8")
    began = time.perf_counter()
    info = lab_fleet(fleet, fresh=True)
    elapsed = time.perf_counter() - began
    print(f"\n200-host lab: ready in {elapsed:.2f} s from the start command "
          f"(server: {info.start_seconds:.2f} s incl. fleet build)")
    assert info.hosts == 200 and len(info.listeners) == 200
    refused = [item["address"] for item in info.listeners
               if not (accepts(item["address"], 5985) and accepts(item["address"], item["rdp_port"] or 3389))]
    lab_fleet.stop(info)
    assert refused == []


class _Admin:
    """An admin client stand-in: two hosts, one with a reboot pending; records what was rebooted."""

    def __init__(self) -> None:
        self.rebooted: list[str] = []

    def status(self) -> dict[str, t.Any]:
        return {"hosts": {"a": {}, "b": {}}}

    def model(self, name: str) -> dict[str, t.Any]:
        return {"reboot_pending": name == "b"}

    def reboot(self, name: str) -> None:
        self.rebooted.append(name)


def test_reboot_picks_the_hosts_with_a_reboot_pending() -> None:
    admin = _Admin()
    assert cli.reboot_hosts(admin) == ["b"] and admin.rebooted == ["b"]  # type: ignore[arg-type]
    assert cli.reboot_hosts(admin, ["a"]) == ["a"] and admin.rebooted == ["b", "a"]  # type: ignore[arg-type]
