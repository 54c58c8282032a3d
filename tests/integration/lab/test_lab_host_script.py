"""A real collection host script (read_rdp_state) through the real clients, the lab process and the real twin."""

from __future__ import annotations

import typing as t

import pytest
import winrm
from pypsrp.host import PSHost, PSHostUserInterface
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from tests.lab.dispatch import BOOTSTRAP, COMMAND_LINE, host_protocol
from tests.lab.fleet import SMALL_FLEET

pytestmark = pytest.mark.lab

SCRIPT = "read_rdp_state"
PARAMS = {"registry_keys": ["HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server"], "event_days": 7,
          "event_sample_size": 3, "accounts": ["rdpuser"], "port_hint": None}


def _host(info: t.Any, name: str) -> str:
    return next(item["address"] for item in info.listeners if item["host"] == name)


def test_read_rdp_state_over_winrm(lab_fleet: t.Callable[..., t.Any]) -> None:
    info = lab_fleet(SMALL_FLEET)
    info.admin.reset_counters("f-cert-expired")
    proto = winrm.Protocol(f"http://{_host(info, 'f-cert-expired')}:5985/wsman", transport="basic", username="labadmin",
                           password="RdpDoctor-Lab-1!")
    shell_id = proto.open_shell(codepage=65001)
    command, *arguments = COMMAND_LINE.split(" ")
    command_id = proto.run_command(shell_id, command, arguments, console_mode_stdin=False)
    proto.send_command_input(shell_id, command_id, host_protocol.build_payload(SCRIPT, host_protocol.load_script(SCRIPT), PARAMS),
                             end=True)
    stdout, stderr, rc = proto.get_command_output(shell_id, command_id)
    proto.cleanup_command(shell_id, command_id)
    proto.close_shell(shell_id)
    result = host_protocol.parse_result(SCRIPT, rc, stdout.decode(), stderr.decode())
    assert result["os"]["computer_name"].lower() == "f-cert-expired"
    assert info.admin.counters("f-cert-expired") == {"requests": 6, "round_trips": 1, "commands": 1, "refused": 0, "scripts": {SCRIPT: 1}}


def test_read_rdp_state_over_psrp(lab_fleet: t.Callable[..., t.Any]) -> None:
    info = lab_fleet(SMALL_FLEET)
    connection = WSMan(_host(info, "ok-2022"), port=5985, username="labadmin", password="RdpDoctor-Lab-1!", ssl=False,
                       auth="basic", encryption="never")
    host = PSHost(None, None, False, "lab test host", None, PSHostUserInterface(), None)
    with RunspacePool(connection, host=host) as runspace:
        shell = PowerShell(runspace)
        shell.add_script(BOOTSTRAP)
        shell.invoke(input=host_protocol.build_payload(SCRIPT, host_protocol.load_script(SCRIPT), PARAMS).decode().splitlines())
    assert host.rc == 0 and len(shell.output) == 1
    result = host_protocol.parse_result(SCRIPT, host.rc, shell.output[0], "")
    assert result["os"]["computer_name"].lower() == "ok-2022"
