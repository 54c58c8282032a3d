"""The host protocol: constant command line, payload on stdin, one JSON document back, clear errors."""

from __future__ import annotations

import base64
import json

import pytest
from ansible.errors import AnsibleConnectionFailure, AnsibleError
from hypothesis import given, strategies as st

from ansible_collections.rdp.doctor.plugins.plugin_utils import host_protocol as hp

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


def test_command_line_is_the_encoded_bootstrap() -> None:
    """The command line decodes to the bootstrap and starts as winrm.py expects (it is not re-encoded)."""
    assert hp.COMMAND_LINE.startswith(hp.COMMAND_PREFIX)
    encoded = hp.COMMAND_LINE[len(hp.COMMAND_PREFIX):]
    assert base64.b64decode(encoded).decode("utf-16-le") == hp.BOOTSTRAP
    assert len(hp.COMMAND_LINE) < hp.CMD_EXE_LIMIT


@given(params=st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=5))
def test_payload_round_trip(params: dict) -> None:
    """Whatever the parameters, they travel as data in the payload and come back unchanged."""
    payload = hp.build_payload("read_rdp_state", "param($Params)\n'x'", params)
    assert payload.endswith(b"\n") and payload.count(b"\n") == 1
    assert hp.parse_payload(payload) == ("read_rdp_state", "param($Params)\n'x'", params)


def test_parse_result_success_and_failure() -> None:
    """One JSON object is the result; the error document becomes HostScriptError with its fields."""
    assert hp.parse_result("s", 0, '{"a": 1}\r\n', "") == {"a": 1}
    error = {"type": "System.UnauthorizedAccessException", "message": "Access is denied", "line": 12, "category": "PermissionDenied"}
    error_doc = {"failed": True, "script": "s", "error": error}
    with pytest.raises(hp.HostScriptError) as info:
        hp.parse_result("s", 1, json.dumps(error_doc), "")
    err = info.value
    assert (err.error_type, err.line, err.rc, err.category) == ("System.UnauthorizedAccessException", 12, 1, "PermissionDenied")
    assert "Access is denied" in str(err) and "line 12" in str(err)
    assert err.to_dict()["type"] == "System.UnauthorizedAccessException"


@pytest.mark.parametrize(
    ("rc", "stdout", "stderr", "needle"),
    [
        (1, "", "The term 'x' is not recognized", "not recognized"),
        (0, "{\"a\": 1} {\"b\": 2}", "", "unexpected data"),
        (0, "[1, 2]", "", "expected an object"),
        (3, "{\"a\": 1}", "boom", "rc=3"),
        (0, "   ", "", "no output"),
    ],
)
def test_parse_result_rejects_what_is_not_the_protocol(rc: int, stdout: str, stderr: str, needle: str) -> None:
    """Anything but exactly one JSON object with rc 0 is a clear HostScriptError."""
    with pytest.raises(hp.HostScriptError, match=needle):
        hp.parse_result("s", rc, stdout, stderr)


def test_run_host_script_is_one_call_with_constant_command_line() -> None:
    """run_host_script sends the constant command line once, with the payload as stdin."""
    calls = []

    def execute(cmd, sudoable=True, in_data=None):
        calls.append((cmd, sudoable, in_data))
        return {"rc": 0, "stdout": '{"schema": "x"}', "stderr": ""}

    result = hp.run_host_script(execute, "read_rdp_state", {"event_days": 7})
    assert result == {"schema": "x"}
    assert len(calls) == 1
    cmd, sudoable, in_data = calls[0]
    assert cmd == hp.COMMAND_LINE and sudoable is False
    name, script, params = hp.parse_payload(in_data)
    assert name == "read_rdp_state" and params == {"event_days": 7}
    assert script == hp.load_script("read_rdp_state")


def test_run_host_script_turns_transport_errors_into_connection_failures() -> None:
    """A requests/pywinrm exception becomes AnsibleConnectionFailure naming the script and host."""

    def execute(cmd, sudoable=True, in_data=None):
        raise ConnectionResetError("Connection reset by peer")

    with pytest.raises(AnsibleConnectionFailure, match="read_rdp_state.*win01.*ConnectionResetError"):
        hp.run_host_script(execute, "read_rdp_state", {}, host="win01")


def test_unknown_or_unsafe_script_names_are_refused() -> None:
    """Only plain names of scripts shipped in the collection can be run."""
    with pytest.raises(AnsibleError, match="invalid host script name"):
        hp.load_script("../../etc/passwd")
    with pytest.raises(AnsibleError, match="not part of this collection"):
        hp.load_script("no_such_script")
