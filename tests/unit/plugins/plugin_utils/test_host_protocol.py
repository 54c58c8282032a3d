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


@pytest.mark.parametrize(
    ("transport", "version", "expected"),
    [
        ("winrm", "2.16.19", "bootstrap"), ("winrm", "2.17.14", "bootstrap"), ("winrm", "2.18.19", "bootstrap"),
        ("winrm", "2.19.14", "command line"), ("winrm", "2.20.0", "command line"),
        ("ansible.builtin.winrm", "2.16.0", "bootstrap"),
        ("ssh", "2.16.19", "bootstrap"), ("ssh", "2.17.14", "bootstrap"), ("ssh", "2.18.0", "command line"),
        ("psrp", "2.16.19", "command line"), ("psrp", "2.19.14", "command line"),
        ("local", "2.16.19", "command line"), ("", "", "command line"),
    ],
)
def test_command_for_each_connection_and_version(transport: str, version: str, expected: str) -> None:
    """Connections that encode every command themselves get the bootstrap text, the others the command line."""
    wanted = hp.BOOTSTRAP if expected == "bootstrap" else hp.COMMAND_LINE
    assert hp.command_for(transport, version) == wanted


def test_old_connections_encode_the_bootstrap_into_exactly_the_command_line() -> None:
    """winrm 2.16-2.18 and ssh 2.16-2.17 call _encode_script(cmd, strict_mode=False, preserve_rc=False): that is COMMAND_LINE."""
    from ansible.plugins.loader import shell_loader  # pylint: disable=import-outside-toplevel

    shell = shell_loader.get("powershell")
    wrapped = shell._encode_script(hp.BOOTSTRAP, strict_mode=False, preserve_rc=False)  # pylint: disable=protected-access
    assert wrapped == hp.COMMAND_LINE
    # Their encoder strips every line and drops empty ones: the bootstrap has nothing for it to change.
    assert all(line == line.strip() and line for line in hp.BOOTSTRAP.splitlines())


def test_bootstrap_silences_warnings_and_information() -> None:
    """powershell.exe writes warnings to stdout: the bootstrap silences them before anything runs (review item 15)."""
    lines = hp.BOOTSTRAP.splitlines()
    assert "$WarningPreference = 'SilentlyContinue'" in lines[:5]
    assert "$InformationPreference = 'SilentlyContinue'" in lines[:5]


class _Connection:
    def __init__(self, transport: str) -> None:
        self.transport = transport


class _Action:
    """The part of an action plugin run_host_script looks at: its bound executor and connection."""

    def __init__(self, transport: str) -> None:
        self._connection = _Connection(transport)
        self.calls: list[str] = []

    def _low_level_execute_command(self, cmd, sudoable=True, in_data=None):
        self.calls.append(cmd)
        return {"rc": 0, "stdout": '{"ok": true}', "stderr": ""}


@pytest.mark.parametrize(("transport", "version", "expected"),
                         [("winrm", "2.16.19", "bootstrap"), ("winrm", "2.19.14", "command line"), ("psrp", "2.16.19", "command line")])
def test_run_host_script_asks_the_action_plugins_connection(monkeypatch: pytest.MonkeyPatch, transport: str,
                                                            version: str, expected: str) -> None:
    """The connection comes from the bound _low_level_execute_command, the version from the running ansible-core."""
    monkeypatch.setattr(hp, "ANSIBLE_CORE_VERSION", version)
    action = _Action(transport)
    assert hp.run_host_script(action._low_level_execute_command, "read_rdp_state", {}) == {"ok": True}
    assert action.calls == [hp.BOOTSTRAP if expected == "bootstrap" else hp.COMMAND_LINE]
    # An explicit connection wins over the bound one.
    explicit = _Action("winrm")
    hp.run_host_script(explicit._low_level_execute_command, "read_rdp_state", {}, connection=_Connection("psrp"))
    assert explicit.calls == [hp.COMMAND_LINE]
