"""ansible.builtin.winrm and ansible.builtin.psrp, unmodified, against the lab."""

from __future__ import annotations

import subprocess
import typing as t

import pytest

from tests.integration.lab.labtools import RunningLab

pytestmark = pytest.mark.lab

RunAnsible = t.Callable[..., subprocess.CompletedProcess]


def raw(run_ansible: RunAnsible, inventory: object, command: str = "Get-Service TermService") -> subprocess.CompletedProcess:
    return run_ansible(["windows", "-m", "ansible.builtin.raw", "-a", command], inventory)


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_raw_fails_like_powershell(standin_lab: RunningLab, run_ansible: RunAnsible, connection: str) -> None:
    result = raw(run_ansible, standin_lab.inventory(connection))
    assert result.returncode == 2, result.stdout + result.stderr  # 2: a task failed
    assert "t1 | FAILED | rc=1 >>" in result.stdout
    assert "The term 'Get-Service' is not recognized as the name of a cmdlet" in result.stdout
    assert "CommandNotFoundException" in result.stdout
    # winrm: Create Command Receive Signal Delete; psrp: Create Receive(pool) Command Receive Delete
    assert standin_lab.counters() == {"requests": 5, "round_trips": 0, "commands": 1, "refused": 0, "scripts": {}}


def test_transport_fault_reset_makes_the_host_unreachable(standin_lab: RunningLab, run_ansible: RunAnsible) -> None:
    standin_lab.transport_fault("reset")
    result = raw(run_ansible, standin_lab.inventory("winrm"))
    assert result.returncode == 4, result.stdout + result.stderr  # 4: host unreachable
    assert "t1 | UNREACHABLE!" in result.stdout and "Connection aborted" in result.stdout


def test_transport_fault_http401_is_rejected_credentials_for_ansible(standin_lab: RunningLab, run_ansible: RunAnsible) -> None:
    standin_lab.transport_fault("http401")
    result = raw(run_ansible, standin_lab.inventory("winrm"))
    assert result.returncode == 4 and "the specified credentials were rejected by the server" in result.stdout


def test_transport_fault_http500_over_psrp_is_a_connection_failure(standin_lab: RunningLab, run_ansible: RunAnsible) -> None:
    standin_lab.transport_fault("http500")
    result = raw(run_ansible, standin_lab.inventory("psrp"))
    assert result.returncode == 4 and "psrp connection failure during runspace open" in result.stdout


def test_transport_fault_slow_times_the_connection_out(standin_lab: RunningLab, run_ansible: RunAnsible) -> None:
    standin_lab.transport_fault("slow", seconds=4)
    extra = {"ansible_winrm_operation_timeout_sec": 1, "ansible_winrm_read_timeout_sec": 2}
    result = raw(run_ansible, standin_lab.inventory("winrm", extra))
    assert result.returncode == 4 and "Read timed out" in result.stdout


def test_lab_fleet_fixture_serves_ansible(lab_fleet: t.Callable[..., t.Any], run_ansible: RunAnsible) -> None:
    from tests.lab.fleet import SMALL_FLEET  # pylint: disable=import-outside-toplevel

    info = lab_fleet(SMALL_FLEET)
    result = run_ansible(["ok-2022", "-m", "ansible.builtin.raw", "-a", "Get-Date"], info.inventory_for("psrp"))
    assert result.returncode == 2 and "The term 'Get-Date' is not recognized" in result.stdout
    assert info.admin.counters("ok-2022")["commands"] >= 1
