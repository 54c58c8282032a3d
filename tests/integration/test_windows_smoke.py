"""The smoke script for real Windows hosts (tests/windows/) and its validator, checked against the lab.

No Windows here: the smoke script is built from the repository and parsed with tree-sitter-powershell;
the payload it embeds is fed to the lab's bootstrap (what the script does on the host); the lab twins'
answers, written as the smoke script writes them, pass ``tests.windows.validate``; broken answers fail it.
"""

from __future__ import annotations

import base64
import json
import re
import typing as t
from pathlib import Path

import pytest
import tree_sitter
import tree_sitter_powershell

from tests.lab import dispatch, faults
from tests.lab.dispatch import host_protocol
from tests.windows import build_smoke, validate

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
PAYLOAD = re.compile(r"@\{ name = '(\w+)'; payload = '([A-Za-z0-9+/=]+)'; required = @\(([^)]*)\) \}")
# Healthy hosts and hosts broken in ways that change the shape of the answer.
LAB_HOSTS: dict[str, tuple[tuple[str, ...], str]] = {
    "ok-2022": ((), "2022"), "ok-2012r2": ((), "2012r2"), "ok-2016": ((), "2016"),
    "broken": (("termservice_stopped", "cert_bound_missing", "ghost_sessions", "listener_key_missing"), "2019"),
}


def _walk(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


@pytest.fixture(name="smoke_text", scope="module")
def smoke_text_fixture() -> str:
    """The smoke script as ``python -m tests.windows.build_smoke`` writes it (CRLF), decoded."""
    return build_smoke.build().replace("\n", "\r\n")


def embedded_payloads(text: str) -> dict[str, bytes]:
    """script name -> the stdin line the smoke script feeds the bootstrap."""
    return {name: base64.b64decode(payload) for name, payload, _required in PAYLOAD.findall(text)}


def test_smoke_script_parses_and_embeds_the_protocol(smoke_text: str) -> None:
    """PowerShell without parse errors; the bootstrap command line and each read script's exact payload inside."""
    tree = PARSER.parse(smoke_text.encode("utf-8"))
    assert not tree.root_node.has_error
    assert not [node for node in _walk(tree.root_node) if node.is_error or node.is_missing]
    assert f"$rdCommandLine = '{host_protocol.COMMAND_LINE}'" in smoke_text
    payloads = embedded_payloads(smoke_text)
    read_scripts = sorted(path.stem for path in build_smoke.HOST_SCRIPT_DIR.glob("read_*.ps1"))
    assert sorted(payloads) == read_scripts and read_scripts
    for name, payload in payloads.items():
        sent_name, script, params = host_protocol.parse_payload(payload)
        assert (sent_name, script) == (name, host_protocol.load_script(name))
        schema = json.loads((build_smoke.HOST_SCRIPT_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))
        validate.part_validator(schema, "params").validate(params)
    # Only full cmdlet names of Windows PowerShell 5.1 (checked in ps51-cmdlets.json) and its own function: no alias.
    commands = {node.text.decode() for node in _walk(tree.root_node) if node.type == "command_name"}
    assert commands == {"ConvertFrom-Json", "ConvertTo-Json", "ForEach-Object", "Get-CimInstance", "Invoke-RdBootstrap",
                        "Join-Path", "New-Item", "New-Object", "Set-StrictMode", "Where-Object", "Write-Output"}


def write_lab_smoke_folder(folder: Path, smoke_text: str) -> None:
    """Run each embedded payload on a lab host the way the smoke script does, and write its output folder."""
    host_faults, os_version = LAB_HOSTS["ok-2022"]
    host = faults.build_host("ok-2022", "127.0.0.12", list(host_faults), os_version=os_version)
    runs = []
    for name, payload in embedded_payloads(smoke_text).items():
        rc, stdout, stderr = dispatch.dispatch(host, host_protocol.COMMAND_LINE, payload)
        (folder / f"{name}.stdout.txt").write_bytes(stdout)
        (folder / f"{name}.stderr.txt").write_bytes(stderr)
        runs.append({"name": name, "rc": rc, "seconds": 0.5, "stdout_chars": len(stdout), "stderr_chars": len(stderr), "verdict": "ok"})
    manifest = {"smoke": validate.MANIFEST_SCHEMA, "bootstrap_sha256": validate.bootstrap_digest(), "computer": "OK-2022",
                "os_caption": "Microsoft Windows Server 2022 Datacenter", "os_version": "10.0.20348", "powershell": "5.1.20348.2849",
                "administrator": True, "runs": runs[0] if len(runs) == 1 else runs, "skipped": []}
    # PowerShell's ConvertTo-Json and [IO.File]::WriteAllText with UTF8Encoding($false): no BOM, CRLF inside.
    (folder / validate.MANIFEST).write_text(json.dumps(manifest, indent=4).replace("\n", "\r\n"), encoding="utf-8")


def test_validate_accepts_the_lab_twins_answers(tmp_path: Path, smoke_text: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The twins' answers, as the smoke script writes them, pass: exit code 0, one ok line per script."""
    write_lab_smoke_folder(tmp_path, smoke_text)
    assert validate.main([str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "read_rdp_state: ok" in printed and "FAILED" not in printed and "another bootstrap" not in printed


@pytest.mark.parametrize("name", sorted(LAB_HOSTS))
def test_every_lab_host_state_validates(name: str, smoke_text: str) -> None:
    """Healthy and broken hosts on several Windows versions: each twin answer is a valid result."""
    host_faults, os_version = LAB_HOSTS[name]
    host = faults.build_host(name, "127.0.0.13", list(host_faults), os_version=os_version)
    for script, payload in embedded_payloads(smoke_text).items():
        rc, stdout, stderr = dispatch.dispatch(host, host_protocol.COMMAND_LINE, payload)
        schema = json.loads((build_smoke.HOST_SCRIPT_DIR / f"{script}.schema.json").read_text(encoding="utf-8"))
        report = validate.check_run(script, rc, stdout.decode("utf-8"), stderr.decode("utf-8"), schema)
        assert report.ok, report.problems


def _break(folder: Path, how: str) -> None:
    """Damage read_rdp_state's answer in the folder the way a broken host or script would."""
    path = folder / "read_rdp_state.stdout.txt"
    document = json.loads(path.read_text(encoding="utf-8"))
    if how == "missing_key":
        del document["firewall"]
    elif how == "wrong_type":
        document["os"]["build"] = "20348"
    elif how == "error_document":
        document = {"failed": True, "script": "read_rdp_state",
                    "error": {"type": "System.Management.Automation.CommandNotFoundException", "message": "The term 'Get-NetFirewallRule' is not recognized",
                              "line": 120, "category": "ObjectNotFound"}}
    text = json.dumps(document, separators=(",", ":")) + "\r\n"
    if how == "warning_line":
        text = "WARNING: something a module said\r\n" + text
    if how == "non_ascii":
        text = text.replace('"schema"', '"schéma"')
    path.write_text(text, encoding="utf-8")
    if how == "stderr":
        (folder / "read_rdp_state.stderr.txt").write_text("#< CLIXML\r\n<Objs Version=\"1.1.0.1\"></Objs>", encoding="utf-8")


@pytest.mark.parametrize(("how", "needle"), [
    ("missing_key", "'firewall' is a required property"),
    ("wrong_type", "os/build: '20348' is not of type 'integer'"),
    ("error_document", "CommandNotFoundException"),
    ("warning_line", "did not answer with one JSON document"),
    ("non_ascii", "non-ASCII"),
    ("stderr", "stderr is not empty"),
])
def test_validate_rejects_a_broken_answer(tmp_path: Path, smoke_text: str, capsys: pytest.CaptureFixture[str], how: str,
                                          needle: str) -> None:
    """Each way a real host can get it wrong fails the validation with the reason (exit code 1)."""
    write_lab_smoke_folder(tmp_path, smoke_text)
    _break(tmp_path, how)
    assert validate.main([str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "read_rdp_state: FAILED" in printed and needle in printed, printed


def test_validate_refuses_a_folder_that_is_not_a_smoke_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No manifest: exit code 2 and the reason, not a pass."""
    assert validate.main([str(tmp_path)]) == 2
    assert "smoke.json" in capsys.readouterr().err
