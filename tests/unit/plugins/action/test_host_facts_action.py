"""The host_facts action plugin with a fake connection: one round trip, check mode, clean failures."""

from __future__ import annotations

import json
import typing as t
from unittest import mock

import pytest
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.action.host_facts import ActionModule
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from ansible_collections.rdp.doctor.plugins.plugin_utils import host_protocol as hp
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples


def make_action(args: dict[str, t.Any], answer: dict[str, t.Any] | Exception, check_mode: bool = False) -> ActionModule:
    """An ActionModule whose only way to the host is a mocked ``_low_level_execute_command``."""
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.action = "rdp.doctor.host_facts"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    action = ActionModule(task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    execute = mock.MagicMock(side_effect=answer) if isinstance(answer, Exception) else mock.MagicMock(return_value=answer)
    action._low_level_execute_command = execute  # type: ignore[method-assign]  # pylint: disable=protected-access
    return action


def answered(document: t.Any, rc: int = 0, stderr: str = "") -> dict[str, t.Any]:
    """What _low_level_execute_command returns for a host script that wrote ``document``."""
    return {"rc": rc, "stdout": json.dumps(document) + "\r\n", "stderr": stderr, "stdout_lines": []}


def calls(action: ActionModule) -> list[t.Any]:
    """The calls made to the host."""
    return action._low_level_execute_command.call_args_list  # type: ignore[attr-defined]  # pylint: disable=protected-access


@pytest.mark.parametrize("check_mode", [False, True])
def test_one_round_trip_returns_facts(check_mode: bool) -> None:
    """Exactly one call: the constant bootstrap, the script and its parameters on stdin; facts back; never changed."""
    action = make_action({"accounts": ["rdpuser"]}, answered(samples.healthy_raw()), check_mode=check_mode)
    result = action.run(task_vars={"inventory_hostname": "win01"})
    assert len(calls(action)) == 1
    (command,), kwargs = calls(action)[0]
    assert command == hp.COMMAND_LINE and kwargs["sudoable"] is False
    name, script, params = hp.parse_payload(kwargs["in_data"])
    assert name == "read_rdp_state" and script == hp.load_script("read_rdp_state")
    assert params == hf.build_params({"accounts": ["rdpuser"]})
    assert result["changed"] is False and not result.get("failed")
    facts = result["ansible_facts"]["rdp_doctor"]
    assert facts["facts_version"] == 1 and facts["accounts"]["expected"] == ["rdpuser"] and "raw" not in result


def test_options_reach_the_script_and_raw_on_request() -> None:
    """event_days, event_sample_size and port_hint are parameters; include_raw returns the document."""
    raw = samples.healthy_raw()
    action = make_action({"event_days": 30, "event_sample_size": 0, "port_hint": 3390, "include_raw": True}, answered(raw))
    result = action.run(task_vars={})
    params = hp.parse_payload(calls(action)[0][1]["in_data"])[2]
    assert (params["event_days"], params["event_sample_size"], params["port_hint"], params["accounts"]) == (30, 0, 3390, [])
    assert result["raw"] == raw


def test_script_error_becomes_a_clean_failed_result() -> None:
    """The bootstrap's error document -> failed, a message naming the script, the structured error."""
    error = {"failed": True, "script": "read_rdp_state",
             "error": {"type": "System.UnauthorizedAccessException", "message": "Access is denied", "line": 42, "category": "PermissionDenied"}}
    result = make_action({}, answered(error, rc=1)).run(task_vars={})
    assert result["failed"] is True and result["changed"] is False and "ansible_facts" not in result
    assert "read_rdp_state" in result["msg"] and "Access is denied" in result["msg"]
    assert result["error"] == {"script": "read_rdp_state", "type": "System.UnauthorizedAccessException", "message": result["msg"],
                               "line": 42, "rc": 1, "category": "PermissionDenied"}


def test_unknown_command_and_garbage_fail_cleanly() -> None:
    """A host that does not run the bootstrap (stderr, rc 1) or answers non-JSON is a failed result, not a traceback."""
    result = make_action({}, {"rc": 1, "stdout": "", "stderr": "The term 'x' is not recognized"}).run(task_vars={})
    assert result["failed"] and "not recognized" in result["msg"] and result["error"]["rc"] == 1
    result = make_action({}, answered(["not", "an", "object"])).run(task_vars={})
    assert result["failed"] and "JSON list" in result["msg"]


def test_connection_failure_propagates_as_unreachable() -> None:
    """Connection problems stay AnsibleConnectionFailure: Ansible marks the host unreachable."""
    action = make_action({}, AnsibleConnectionFailure("winrm: connection refused"))
    with pytest.raises(AnsibleConnectionFailure, match="connection refused"):
        action.run(task_vars={})
    action = make_action({}, OSError("socket closed"))
    with pytest.raises(AnsibleConnectionFailure, match="read_rdp_state"):
        action.run(task_vars={})


@pytest.mark.parametrize(("args", "message"), [
    ({"event_days": 0}, "event_days"),
    ({"event_sample_size": 51}, "event_sample_size"),
    ({"port_hint": 70000}, "port_hint"),
    ({"accounts": [f"u{i}" for i in range(51)]}, "at most 50"),
])
def test_option_ranges_fail_before_any_round_trip(args: dict[str, t.Any], message: str) -> None:
    """Values the script's schema refuses are refused on the controller, with no call to the host."""
    action = make_action(args, answered(samples.healthy_raw()))
    result = action.run(task_vars={})
    assert result["failed"] and message in result["msg"] and calls(action) == []


def test_unknown_option_is_refused() -> None:
    """The argument spec rejects options it does not know (a failed result naming them, as Ansible reports a spec error)."""
    action = make_action({"acounts": ["x"]}, answered(samples.healthy_raw()))
    result = action.run(task_vars={})
    assert result["failed"] is True and "Unsupported parameters: acounts" in result["msg"]
    assert calls(action) == []
