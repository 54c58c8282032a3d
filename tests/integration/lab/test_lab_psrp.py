"""The PSRP endpoint against the unmodified pypsrp client (as ansible.builtin.psrp drives it)."""

from __future__ import annotations

import json
import typing as t

import pytest
from pypsrp.exceptions import AuthenticationError, WSManFaultError
from pypsrp.host import PSHost, PSHostUserInterface
from pypsrp.powershell import PowerShell, RunspacePool
from pypsrp.wsman import WSMan

from tests.integration.lab.labtools import PASSWORD, USER, RunningLab, payload
from tests.lab import dispatch
from tests.lab.transport_faults import GARBAGE

pytestmark = pytest.mark.lab


def pool(lab: RunningLab, password: str = PASSWORD) -> tuple[RunspacePool, PSHost]:
    """A runspace pool with a host that records SetShouldExit, like Ansible's psrp connection."""
    connection = WSMan(lab.host.address, port=5985, username=USER, password=password, ssl=False, auth="basic",
                       encryption="never")
    host = PSHost(None, None, False, "lab test host", None, PSHostUserInterface(), None)
    return RunspacePool(connection, host=host), host


def invoke(runspace: RunspacePool, script: str, lines: t.Sequence[str] | None = None) -> PowerShell:
    shell = PowerShell(runspace)
    shell.add_script(script)
    shell.invoke(input=list(lines) if lines else None)
    return shell


def test_bootstrap_over_psrp_runs_the_twin(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    runspace, host = pool(standin_lab)
    with runspace:
        lines = payload("lab_echo", test_scripts["lab_echo"], {"a": [1, 2]}).decode().splitlines()
        shell = invoke(runspace, dispatch.BOOTSTRAP, lines)
        assert len(shell.output) == 1 and not shell.streams.error
        assert json.loads(shell.output[0]) == {"echo": {"a": [1, 2]}, "host": "t1", "greeting": "Grüße ✓"}
        assert host.rc == 0  # 'exit 0' -> SetShouldExit(0)
        failing = invoke(runspace, dispatch.BOOTSTRAP, payload("lab_fail", test_scripts["lab_fail"], {}).decode().splitlines())
        assert host.rc == 1 and json.loads(failing.output[0])["error"]["line"] == 3
    assert standin_lab.counters()["round_trips"] == 2


def test_unknown_command_writes_an_error_record(standin_lab: RunningLab) -> None:
    runspace, host = pool(standin_lab)
    with runspace:
        shell = invoke(runspace, "Get-Process\nexit $LASTEXITCODE")
        assert shell.output == []
        [error] = shell.streams.error
        assert error.fq_error == "CommandNotFoundException"
        assert str(error).startswith("The term 'Get-Process' is not recognized as the name of a cmdlet")
        assert host.rc == 1


def test_one_pool_runs_several_pipelines(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    runspace, _host = pool(standin_lab)
    with runspace:
        for number in range(3):
            lines = payload("lab_echo", test_scripts["lab_echo"], {"n": number}).decode().splitlines()
            assert json.loads(invoke(runspace, dispatch.BOOTSTRAP, lines).output[0])["echo"] == {"n": number}
    assert standin_lab.counters()["round_trips"] == 3


def test_bad_credentials_over_psrp(standin_lab: RunningLab) -> None:
    runspace, _host = pool(standin_lab, password="nope")
    with pytest.raises(AuthenticationError):
        runspace.open()


def test_garbled_output_over_psrp(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    standin_lab.transport_fault("garbled")
    runspace, _host = pool(standin_lab)
    with runspace:
        shell = invoke(runspace, dispatch.BOOTSTRAP, payload("lab_echo", test_scripts["lab_echo"], {}).decode().splitlines())
        assert shell.output == [GARBAGE.decode("latin-1")]


def test_http500_over_psrp(standin_lab: RunningLab) -> None:
    standin_lab.transport_fault("http500")
    runspace, _host = pool(standin_lab)
    with pytest.raises(WSManFaultError) as caught:
        runspace.open()
    assert "internal error" in str(caught.value.reason)


def test_large_input_and_output_span_several_fragments(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    blob = "x" * 300_000  # bigger than one Receive (96 KiB) and than one fragment (32 KiB)
    runspace, host = pool(standin_lab)
    with runspace:
        lines = payload("lab_echo", test_scripts["lab_echo"], {"blob": blob}).decode().splitlines()
        shell = invoke(runspace, dispatch.BOOTSTRAP, lines)
    assert host.rc == 0 and json.loads(shell.output[0])["echo"] == {"blob": blob}
    assert standin_lab.counters()["requests"] > 8  # the output came back over several Receives


def test_oversized_output_over_psrp(standin_lab: RunningLab, test_scripts: dict[str, str]) -> None:
    standin_lab.transport_fault("oversized", size=200_000)
    runspace, _host = pool(standin_lab)
    with runspace:
        shell = invoke(runspace, dispatch.BOOTSTRAP, payload("lab_echo", test_scripts["lab_echo"], {"a": 1}).decode().splitlines())
    document = json.loads(shell.output[0])
    assert len(shell.output[0].encode()) == 200_000 and document["echo"] == {"a": 1} and "lab_padding" in document
