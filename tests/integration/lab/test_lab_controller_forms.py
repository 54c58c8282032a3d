"""The lab runs what older controllers send as powershell.exe runs it (docs/dev/contracts.md, section 1).

ansible-core 2.16-2.18's winrm connection encodes every command as PowerShell code itself, and 2.16-2.17's
ssh connection prefixes ``chcp.com 65001 > $null ;``. The wrappers here are made by the real PowerShell
shell plugin (``_encode_script(cmd, strict_mode=False, preserve_rc=False)``, the call those connections
make; its code is the same from 2.16 to 2.19). A ``PowerShell -EncodedCommand`` line inside PowerShell
code starts a child powershell.exe that inherits the parent's standard input.
"""

from __future__ import annotations

import json

import pytest
import winrm
from ansible.plugins.loader import shell_loader

from tests.integration.lab.labtools import PASSWORD, USER, RunningLab, StandInHost, payload
from tests.lab import dispatch

pytestmark = pytest.mark.lab

HOST = StandInHost("n1", "127.0.0.251")
SHELL = shell_loader.get("powershell")


def wrapped_by_connection(cmd: str) -> str:
    """What ansible.builtin.winrm 2.16-2.18 puts on the wire for ``cmd`` (exec_command)."""
    return SHELL._encode_script(cmd, strict_mode=False, preserve_rc=False)  # pylint: disable=protected-access


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    dispatch.counters_for(HOST).reset()


def test_bootstrap_text_wrapped_by_an_old_winrm_connection_is_the_command_line() -> None:
    """What the collection hands 2.16-2.18's winrm reaches the host byte for byte as COMMAND_LINE."""
    assert wrapped_by_connection(dispatch.BOOTSTRAP) == dispatch.COMMAND_LINE


def test_command_line_run_as_powershell_code_starts_a_child_that_reads_the_parents_stdin(test_scripts: dict[str, str]) -> None:
    """COMMAND_LINE as PowerShell code (an old connection wrapping it): the child powershell.exe gets stdin."""
    stdin = payload("lab_echo", test_scripts["lab_echo"], {"n": 7})
    rc, stdout, stderr = dispatch.dispatch(HOST, wrapped_by_connection(dispatch.COMMAND_LINE), stdin)
    assert (rc, stderr) == (0, b"")
    assert json.loads(stdout) == {"echo": {"n": 7}, "host": "n1", "greeting": "Grüße ✓"}
    assert dispatch.counters_for(HOST).to_dict() == {"requests": 0, "round_trips": 1, "commands": 1, "refused": 0, "scripts": {"lab_echo": 1}}


def test_ssh_chcp_prefix_then_child_powershell(test_scripts: dict[str, str]) -> None:
    """2.16-2.17 ssh: ``chcp.com 65001 > $null ; PowerShell ... -EncodedCommand`` run by the PowerShell default shell."""
    line = "chcp.com 65001 > $null ; " + wrapped_by_connection(dispatch.BOOTSTRAP)
    stdin = payload("lab_echo", test_scripts["lab_echo"], {"n": 1})
    rc, stdout, stderr = dispatch.dispatch(HOST, wrapped_by_connection(line), stdin)
    assert (rc, stderr) == (0, b"")
    assert json.loads(stdout)["echo"] == {"n": 1}  # chcp's "Active code page" line went to $null


def test_chcp_output_is_on_stdout_unless_discarded(test_scripts: dict[str, str]) -> None:
    """Without ``> $null`` chcp.com's line is output too, and the answer is no longer one JSON document."""
    line = "chcp.com 65001; " + dispatch.COMMAND_LINE
    rc, stdout, _stderr = dispatch.dispatch(HOST, wrapped_by_connection(line), payload("lab_echo", test_scripts["lab_echo"], {}))
    assert rc == 0 and stdout.startswith(b"Active code page: 65001\r\n{")


def test_child_failure_exits_1_with_its_error_document(test_scripts: dict[str, str]) -> None:
    """powershell.exe -EncodedCommand exits 1 when its last program failed; the child's JSON error passes through."""
    stdin = payload("lab_fail", test_scripts["lab_fail"], {})
    rc, stdout, _stderr = dispatch.dispatch(HOST, wrapped_by_connection(dispatch.COMMAND_LINE), stdin)
    assert rc == 1 and json.loads(stdout)["error"]["type"] == "System.UnauthorizedAccessException"


def test_second_child_finds_stdin_already_read(test_scripts: dict[str, str]) -> None:
    """Two children in a row: the first reads the inherited stdin to its end, the second gets nothing."""
    line = f"{dispatch.COMMAND_LINE}; {dispatch.COMMAND_LINE}"
    rc, stdout, _stderr = dispatch.dispatch(HOST, wrapped_by_connection(line), payload("lab_echo", test_scripts["lab_echo"], {}))
    first, second = stdout.decode().splitlines()
    assert json.loads(first)["host"] == "n1"
    assert json.loads(second)["failed"] is True and rc == 1


def test_other_powershell_code_still_fails_like_an_unknown_command() -> None:
    """Code that is not only program calls is not run: its first command is not recognized (CLIXML on stderr)."""
    line = f"Get-Date; {dispatch.COMMAND_LINE}"
    rc, stdout, stderr = dispatch.dispatch(HOST, wrapped_by_connection(line), b"")
    assert (rc, stdout) == (1, b"") and b"The term 'Get-Date' is not recognized" in stderr
    assert dispatch.counters_for(HOST).to_dict()["round_trips"] == 0


def test_command_line_wrapped_again_does_not_fit_cmd_exe(standin_lab: RunningLab) -> None:
    """Why the collection hands old winrm connections the bootstrap text: COMMAND_LINE encoded twice is too long."""
    assert len(wrapped_by_connection(dispatch.COMMAND_LINE)) > 8191
    proto = winrm.Protocol(standin_lab.endpoint(), transport="basic", username=USER, password=PASSWORD)
    shell_id = proto.open_shell(codepage=65001)
    command, *arguments = wrapped_by_connection(dispatch.COMMAND_LINE).split(" ")
    command_id = proto.run_command(shell_id, command, arguments)
    stdout, stderr, rc = proto.get_command_output(shell_id, command_id)
    proto.cleanup_command(shell_id, command_id)
    proto.close_shell(shell_id)
    assert (rc, stdout, stderr) == (1, b"", b"The command line is too long.\r\n")
    # Started without cmd.exe (WINRS_SKIP_CMD_SHELL, what sshd's default shell amounts to) the same line runs.
    shell_id = proto.open_shell(codepage=65001)
    command_id = proto.run_command(shell_id, command, arguments, skip_cmd_shell=True)
    stdout, stderr, rc = proto.get_command_output(shell_id, command_id)
    proto.cleanup_command(shell_id, command_id)
    proto.close_shell(shell_id)
    assert rc == 1 and b"The command line is too long" not in stderr and b"Invalid JSON primitive" in stdout
