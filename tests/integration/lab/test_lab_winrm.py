"""The WinRM (WinRS) endpoint against the unmodified pywinrm client, in-process lab with a stand-in host."""

from __future__ import annotations

import json
import time

import pytest
import requests
import winrm
from winrm.exceptions import InvalidCredentialsError, WinRMOperationTimeoutError, WSManFaultError

from tests.integration.lab.labtools import PASSWORD, USER, RunningLab, bootstrap_command, payload
from tests.lab import dispatch
from tests.lab.dispatch import host_protocol
from tests.lab.transport_faults import GARBAGE

pytestmark = pytest.mark.lab


def protocol(lab: RunningLab, password: str = PASSWORD, **kwargs: object) -> winrm.Protocol:
    return winrm.Protocol(lab.endpoint(), transport="basic", username=USER, password=password, **kwargs)  # type: ignore[arg-type]


def run_bootstrap(proto: winrm.Protocol, stdin: bytes, codepage: int = 65001) -> tuple[bytes, bytes, int]:
    """What ansible.builtin.winrm does for one host script: Create, Command, Send, Receive, Signal, Delete."""
    shell_id = proto.open_shell(codepage=codepage)
    command, arguments = bootstrap_command()
    command_id = proto.run_command(shell_id, command, arguments, console_mode_stdin=False)
    proto.send_command_input(shell_id, command_id, stdin, end=True)
    try:
        return proto.get_command_output(shell_id, command_id)
    finally:
        proto.cleanup_command(shell_id, command_id)
        proto.close_shell(shell_id)


def test_run_ps_fails_like_powershell(standin_lab: RunningLab) -> None:
    result = winrm.Session(standin_lab.endpoint(), auth=(USER, PASSWORD), transport="basic").run_ps("Get-Service WinRM")
    assert result.status_code == 1 and result.std_out == b""
    # Session.run_ps cleans the CLIXML stderr: what is left is PowerShell's error text.
    assert b"Get-Service : The term 'Get-Service' is not recognized as the name of a cmdlet" in result.std_err
    assert standin_lab.counters() == {"requests": 5, "round_trips": 0, "commands": 1, "refused": 0, "scripts": {}}


def test_bad_credentials_are_rejected(standin_lab: RunningLab) -> None:
    with pytest.raises(InvalidCredentialsError, match="credentials were rejected"):
        protocol(standin_lab, password="wrong").open_shell()
    assert standin_lab.counters()["requests"] == 1


def test_bootstrap_end_to_end_with_a_twin(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    stdout, stderr, rc = run_bootstrap(protocol(standin_lab), payload("lab_echo", test_scripts["lab_echo"], {"port_hint": 3389}))
    assert (rc, stderr) == (0, b"")
    result = host_protocol.parse_result("lab_echo", rc, stdout.decode(), stderr.decode())
    assert result == {"echo": {"port_hint": 3389}, "host": "t1", "greeting": "Grüße ✓"}
    assert standin_lab.counters() == {"requests": 6, "round_trips": 1, "commands": 1, "refused": 0, "scripts": {"lab_echo": 1}}


def test_bootstrap_twin_failure_reaches_the_controller_as_host_script_error(standin_lab: RunningLab,
                                                                            test_scripts: dict[str, str]) -> None:
    stdout, stderr, rc = run_bootstrap(protocol(standin_lab), payload("lab_fail", test_scripts["lab_fail"], {}))
    with pytest.raises(host_protocol.HostScriptError) as caught:
        host_protocol.parse_result("lab_fail", rc, stdout.decode(), stderr.decode())
    assert (caught.value.rc, caught.value.line, caught.value.error_type) == (1, 3, "System.UnauthorizedAccessException")


def test_output_is_the_same_in_code_page_437(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    stdin = payload("lab_echo", test_scripts["lab_echo"], {"name": "Jürgen"})
    assert run_bootstrap(protocol(standin_lab), stdin, codepage=437) == run_bootstrap(protocol(standin_lab), stdin)


def test_receive_before_stdin_ends_answers_operation_timeout(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    proto = protocol(standin_lab, operation_timeout_sec=1, read_timeout_sec=5)
    shell_id = proto.open_shell(codepage=65001)
    command, arguments = bootstrap_command()
    command_id = proto.run_command(shell_id, command, arguments, console_mode_stdin=False)
    data = payload("lab_echo", test_scripts["lab_echo"], {"x": 1})
    proto.send_command_input(shell_id, command_id, data[:10], end=False)
    with pytest.raises(WinRMOperationTimeoutError):
        proto.get_command_output_raw(shell_id, command_id)
    proto.send_command_input(shell_id, command_id, data[10:], end=True)
    stdout, _stderr, rc = proto.get_command_output(shell_id, command_id)
    assert rc == 0 and json.loads(stdout)["echo"] == {"x": 1}
    proto.cleanup_command(shell_id, command_id)
    proto.close_shell(shell_id)


def test_command_line_longer_than_cmd_exe_accepts_is_refused(standin_lab: RunningLab) -> None:
    proto = protocol(standin_lab)
    shell_id = proto.open_shell(codepage=65001)
    command_id = proto.run_command(shell_id, "PowerShell", ["-Command", "x" * 8200])
    stdout, stderr, rc = proto.get_command_output(shell_id, command_id)
    assert (rc, stdout, stderr) == (1, b"", b"The command line is too long.\r\n")
    assert len(dispatch.COMMAND_LINE) < 8191  # the collection's bootstrap is far below it


def test_unknown_shell_is_a_soap_fault(standin_lab: RunningLab) -> None:
    with pytest.raises(WSManFaultError) as caught:
        protocol(standin_lab).run_command("5C1E6B5F-0000-0000-0000-000000000000", "ipconfig")
    assert (caught.value.code, caught.value.wsman_fault_code) == (500, 2150858843)
    assert "shell was not found" in caught.value.reason


def test_latency_knob_delays_each_command(standin_lab: RunningLab) -> None:
    standin_lab.thread.call(standin_lab.lab.set_latency, "t1", 400)
    session = winrm.Session(standin_lab.endpoint(), auth=(USER, PASSWORD), transport="basic")
    began = time.perf_counter()
    assert session.run_ps("foo").status_code == 1
    # A lower bound only: the knob adds at least its value (no upper bound: the machine is shared).
    assert time.perf_counter() - began >= 0.4
    assert standin_lab.thread.call(standin_lab.lab.host_status, "t1")["latency_ms"] == 400


# --------------------------------------------------------------------------------------------- transport faults


def test_transport_fault_reset_drops_the_connection_once(standin_lab: RunningLab) -> None:
    standin_lab.transport_fault("reset")
    with pytest.raises(requests.exceptions.ConnectionError):
        protocol(standin_lab).open_shell()
    protocol(standin_lab).close_shell(protocol(standin_lab).open_shell())  # one-shot: the next requests work


def test_transport_fault_http500_is_a_wsman_fault(standin_lab: RunningLab) -> None:
    standin_lab.transport_fault("http500")
    with pytest.raises(WSManFaultError) as caught:
        protocol(standin_lab).open_shell()
    assert (caught.value.code, caught.value.fault_subcode) == (500, "w:InternalError")
    assert "internal error" in caught.value.reason


def test_transport_fault_http401_looks_like_rejected_credentials(standin_lab: RunningLab) -> None:
    standin_lab.transport_fault("http401", persistent=True)
    for _attempt in range(2):  # persistent: every request
        with pytest.raises(InvalidCredentialsError):
            protocol(standin_lab).open_shell()
    standin_lab.thread.call(standin_lab.lab.set_transport_fault, "t1", {"clear": True})
    protocol(standin_lab).close_shell(protocol(standin_lab).open_shell())


def test_transport_fault_slow_makes_the_client_time_out(standin_lab: RunningLab) -> None:
    standin_lab.transport_fault("slow", seconds=3)
    with pytest.raises(requests.exceptions.ReadTimeout):
        protocol(standin_lab, operation_timeout_sec=1, read_timeout_sec=2).open_shell()


def test_transport_fault_garbled_breaks_the_host_protocol(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    standin_lab.transport_fault("garbled")
    stdout, stderr, rc = run_bootstrap(protocol(standin_lab), payload("lab_echo", test_scripts["lab_echo"], {}))
    assert stdout == GARBAGE
    with pytest.raises(host_protocol.HostScriptError, match="did not answer with one JSON document"):
        host_protocol.parse_result("lab_echo", rc, stdout.decode("latin-1"), stderr.decode())
    stdout, _stderr, rc = run_bootstrap(protocol(standin_lab), payload("lab_echo", test_scripts["lab_echo"], {}))
    assert rc == 0 and json.loads(stdout)["host"] == "t1"


def test_transport_fault_oversized_pads_a_valid_answer(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    """oversized: still one JSON document, with the script's members, but of the size asked for."""
    standin_lab.transport_fault("oversized", size=400_000)
    stdout, _stderr, rc = run_bootstrap(protocol(standin_lab), payload("lab_echo", test_scripts["lab_echo"], {"a": 1}))
    document = json.loads(stdout)
    assert rc == 0 and len(stdout) == 400_000 and document["echo"] == {"a": 1} and set(document["lab_padding"]) == {"x"}
    stdout, _stderr, rc = run_bootstrap(protocol(standin_lab), payload("lab_echo", test_scripts["lab_echo"], {}))
    assert "lab_padding" not in json.loads(stdout)  # one-shot


def test_transport_fault_after_arms_at_the_next_shell(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    """after=1: the first command and its shell's cleanup work; the next shell a client opens is reset (the host is gone)."""
    standin_lab.transport_fault("reset", persistent=True, after=1)
    stdout, _stderr, rc = run_bootstrap(protocol(standin_lab), payload("lab_echo", test_scripts["lab_echo"], {}))
    assert rc == 0 and json.loads(stdout)["host"] == "t1"
    for _attempt in range(2):
        with pytest.raises(requests.exceptions.ConnectionError):
            protocol(standin_lab).open_shell()
    assert standin_lab.counters()["round_trips"] == 1
