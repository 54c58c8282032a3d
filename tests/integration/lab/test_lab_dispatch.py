"""dispatch: the bootstrap answered by twins, anything else failing like PowerShell (no network)."""

from __future__ import annotations

import json

import pytest

from tests.integration.lab.labtools import ECHO_SCRIPT, StandInHost, encoded, payload
from tests.lab import dispatch

HOST = StandInHost("d1", "127.0.0.250")


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    dispatch.counters_for(HOST).reset()


def run(command_line: str, stdin: bytes = b"", encoding: str = "utf-8") -> tuple[int, bytes, bytes]:
    return dispatch.dispatch(HOST, command_line, stdin, encoding)


def test_bootstrap_runs_the_twin_of_a_known_script(test_scripts: dict[str, str]) -> None:
    rc, stdout, stderr = run(dispatch.COMMAND_LINE, payload("lab_echo", test_scripts["lab_echo"], {"n": 1, "s": "é"}))
    assert (rc, stderr) == (0, b"")
    assert stdout.endswith(b"\r\n") and stdout.count(b"\r\n") == 1
    text = stdout.decode("ascii")  # every non-ASCII character is escaped, as the bootstrap does
    assert "\\u00fc" in text and "\\u2713" in text and " " not in text.split('"greeting"', maxsplit=1)[0]
    assert json.loads(text) == {"echo": {"n": 1, "s": "é"}, "host": "d1", "greeting": "Grüße ✓"}


def test_the_script_is_recognised_by_its_text_not_by_the_name_it_is_sent_under(test_scripts: dict[str, str]) -> None:
    rc, stdout, _stderr = run(dispatch.COMMAND_LINE, payload("whatever", test_scripts["lab_echo"], {}))
    assert rc == 0 and json.loads(stdout)["echo"] == {}


def test_twin_error_becomes_the_bootstrap_error_document(test_scripts: dict[str, str]) -> None:
    rc, stdout, stderr = run(dispatch.COMMAND_LINE, payload("lab_fail", test_scripts["lab_fail"], {"b": 2, "a": 1}))
    assert (rc, stderr) == (1, b"")
    assert json.loads(stdout) == {"failed": True, "script": "lab_fail", "error": {
        "type": "System.UnauthorizedAccessException", "message": "no access on d1 (['a', 'b'])", "line": 3,
        "category": "PermissionDenied"}}


def test_a_twin_bug_is_a_script_failure_not_a_lab_crash(test_scripts: dict[str, str]) -> None:
    rc, stdout, _stderr = run(dispatch.COMMAND_LINE, payload("lab_crash", test_scripts["lab_crash"], {}))
    error = json.loads(stdout)["error"]
    assert rc == 1 and error["type"] == dispatch.RUNTIME_EXCEPTION and "ZeroDivisionError" in error["message"]


def test_unknown_script_text_fails_like_an_unknown_command(test_scripts: dict[str, str]) -> None:
    text = "# a comment\n\n$x = 1\nGet-RdpThing -Name x\n"
    rc, stdout, _stderr = run(dispatch.COMMAND_LINE, payload("lab_echo", text, {}))
    document = json.loads(stdout)
    assert rc == 1 and document["failed"] is True and document["script"] == "lab_echo"
    assert document["error"]["type"] == "System.Management.Automation.CommandNotFoundException"
    assert document["error"]["message"].startswith("The term 'Get-RdpThing' is not recognized as the name of a cmdlet")
    assert (document["error"]["line"], document["error"]["category"]) == (4, "ObjectNotFound")
    assert test_scripts  # the folder holds other scripts: an edited copy of one is still unknown


def test_known_script_without_twin_reports_it(test_scripts: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.lab import twins  # pylint: disable=import-outside-toplevel

    monkeypatch.delitem(twins.TWINS, "lab_echo")
    rc, stdout, _stderr = run(dispatch.COMMAND_LINE, payload("lab_echo", test_scripts["lab_echo"], {}))
    assert rc == 1 and json.loads(stdout)["error"]["type"] == "System.NotImplementedException"


def test_script_table_refreshes_when_a_script_appears(test_scripts: dict[str, str]) -> None:
    new_text = ECHO_SCRIPT + "# version 2\n"
    assert dispatch.script_name(new_text) is None
    with open(f"{dispatch.SCRIPT_DIR}/lab_echo2.ps1", "w", encoding="utf-8") as handle:
        handle.write(new_text)
    assert dispatch.script_name(new_text) == "lab_echo2"
    assert dispatch.script_name(test_scripts["lab_echo"]) == "lab_echo"


def test_malformed_payload_fails_inside_the_bootstrap() -> None:
    rc, stdout, _stderr = run(dispatch.COMMAND_LINE, b"this is not json\n")
    error = json.loads(stdout)["error"]
    assert rc == 1 and error["type"] == "System.ArgumentException" and error["line"] == dispatch.PAYLOAD_JSON_LINE


def test_other_powershell_command_lines_fail_like_powershell() -> None:
    line = "PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand " + encoded("Write-Output hi")
    rc, stdout, stderr = run(line)
    assert (rc, stdout) == (1, b"")
    assert stderr.startswith(b"#< CLIXML\r\n")
    assert b"Write-Output : The term 'Write-Output' is not recognized as the name of a cmdlet" in stderr
    assert b"FullyQualifiedErrorId : CommandNotFoundException" in stderr


def test_pywinrm_style_command_line_is_decoded_too() -> None:
    rc, _stdout, stderr = run("powershell -encodedcommand " + encoded("Get-Date; exit 3"))
    assert rc == 1 and b"'Get-Date' is not recognized" in stderr


def test_non_powershell_command_line_is_answered_by_cmd() -> None:
    rc, stdout, stderr = run("ipconfig /all")
    assert (rc, stdout) == (1, b"")
    assert stderr == b"'ipconfig' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"


def test_stderr_follows_the_code_page() -> None:
    line = "powershell -EncodedCommand " + encoded("Grüß-Dich")
    assert "Grüß-Dich".encode("cp437") in run(line, encoding="cp437")[2]
    assert "Grüß-Dich".encode("utf-8") in run(line, encoding="utf-8")[2]


def test_counters_count_commands_round_trips_and_scripts(test_scripts: dict[str, str]) -> None:
    run(dispatch.COMMAND_LINE, payload("lab_echo", test_scripts["lab_echo"], {}))
    run(dispatch.COMMAND_LINE, payload("lab_echo", test_scripts["lab_echo"], {}))
    run("ipconfig")
    counters = dispatch.counters_for(HOST).to_dict()
    assert counters == {"requests": 0, "round_trips": 2, "commands": 3, "refused": 0, "scripts": {"lab_echo": 2}}


def test_first_command_skips_comments_keywords_and_assignments() -> None:
    script = "<#\n help\n#>\nparam($Params)\n# note\nSet-StrictMode -Version 2.0\n[int]$a = 1\ntry {\nInvoke-Thing\n} catch {}\n"
    found = dispatch.first_command(script)
    assert (found.word, found.line) == ("Invoke-Thing", 9)
