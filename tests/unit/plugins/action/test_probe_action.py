"""The probe action: in the controller's worker when the task runs on the controller, the real module elsewhere."""

from __future__ import annotations

import socket
import typing as t
from unittest import mock

import pytest
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.action import probe as probe_action
from ansible_collections.rdp.doctor.plugins.action.probe import ActionModule, probe_in_process, runs_on_controller


@pytest.mark.parametrize(("transport", "become", "expected"), [
    ("local", False, True),
    ("local", True, False),   # become needs the module process (another user)
    ("ssh", False, False),    # a jump host: the module runs there
    ("winrm", False, False),
    ("psrp", False, False),
])
def test_runs_on_controller_only_for_local_without_become(transport: str, become: bool, expected: bool) -> None:
    """Only the local connection without become is this process."""
    assert runs_on_controller(transport, become) is expected


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_in_process_result_is_the_module_result() -> None:
    """A refused port: the module's result shape (schema, six steps, verdict), never changed."""
    result = probe_in_process({"host": "127.0.0.1", "port": closed_port(), "connect_timeout": 2.0})
    assert result["schema"] == "rdp.doctor/probe/1" and result["changed"] is False and not result.get("failed")
    assert [step["step"] for step in result["steps"]] == ["dns", "tcp", "x224", "tls", "certificate", "nla"]
    assert result["verdict"]["failed_step"] == "tcp" and "RDP-PROBE-TCP-REFUSED" in result["verdict"]["finding_ids"]


@pytest.mark.parametrize(("args", "message"), [
    ({}, "host"),
    ({"host": "127.0.0.1", "bogus": 1}, "bogus"),
    ({"host": "127.0.0.1", "steps": ["teleport"]}, "teleport"),
    ({"host": "127.0.0.1", "mixes": ["zz"]}, "zz"),
    ({"host": "127.0.0.1", "ca_bundle": "/nonexistent/ca.pem"}, "ca_bundle not found"),
])
def test_in_process_refuses_what_the_module_refuses(args: dict[str, t.Any], message: str) -> None:
    """Validation by the module's own argument spec: a failed result naming the problem, no connection."""
    result = probe_in_process(args)
    assert result["failed"] is True and message in result["msg"]


def make_action(transport: str, args: dict[str, t.Any]) -> ActionModule:
    """An ActionModule on a connection of ``transport``."""
    task = mock.MagicMock()
    task.args = args
    task.check_mode = True
    task.async_val = 0
    task.action = "rdp.doctor.probe"
    connection = mock.MagicMock()
    connection.transport = transport
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    return ActionModule(task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)


def test_controller_task_probes_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """delegate_to localhost (local connection): no module is executed."""
    in_process = mock.MagicMock(return_value={"changed": False, "schema": "rdp.doctor/probe/1"})
    monkeypatch.setattr(probe_action, "probe_in_process", in_process)
    action = make_action("local", {"host": "10.0.0.5"})
    action._execute_module = mock.MagicMock()  # type: ignore[method-assign]  # pylint: disable=protected-access
    result = action.run(task_vars={})
    assert result["schema"] == "rdp.doctor/probe/1" and in_process.call_args.args == ({"host": "10.0.0.5"},)
    action._execute_module.assert_not_called()  # type: ignore[attr-defined]  # pylint: disable=protected-access


def test_jump_host_task_runs_the_module_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """delegate_to a jump host (ssh): the real module runs on it with the task's options, not this process."""
    in_process = mock.MagicMock()
    monkeypatch.setattr(probe_action, "probe_in_process", in_process)
    action = make_action("ssh", {"host": "10.0.0.5", "port": 3390})
    action._execute_module = mock.MagicMock(return_value={"changed": False, "schema": "rdp.doctor/probe/1"})  # type: ignore[method-assign]
    result = action.run(task_vars={"inventory_hostname": "jump01"})
    assert result["schema"] == "rdp.doctor/probe/1"
    kwargs = action._execute_module.call_args.kwargs  # type: ignore[attr-defined]  # pylint: disable=protected-access
    assert kwargs["module_name"] == "rdp.doctor.probe" and kwargs["module_args"] == {"host": "10.0.0.5", "port": 3390}
    in_process.assert_not_called()
