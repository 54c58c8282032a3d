"""Static checks of the collection's PowerShell: no Windows host runs here, so the text itself is checked.

Every ``.ps1`` under ``plugins/`` and the host-protocol bootstrap parse with tree-sitter-powershell
without error nodes; they set strict mode and ``$ErrorActionPreference = 'Stop'``; they use Windows
PowerShell 5.1 syntax only; they never call ``Invoke-Expression`` or ``Write-Host`` and never assign
automatic variables. The encoded command line is one constant, whatever the script and parameters.
See docs/dev/powershell.md.
"""

from __future__ import annotations

import base64
import importlib
import pathlib
import re
import typing as t

import pytest
import tree_sitter
import tree_sitter_powershell
from hypothesis import given, settings
from hypothesis import strategies as st

REPO = pathlib.Path(__file__).resolve().parents[2]


PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
PS_FILES = sorted((REPO / "plugins").rglob("*.ps1"))
HOST_SCRIPTS = sorted((REPO / "plugins" / "host_scripts").glob("*.ps1"))
FORBIDDEN_COMMANDS = {"invoke-expression": "Invoke-Expression runs text as code", "iex": "iex (Invoke-Expression) runs text as code",
                      "write-host": "Write-Host bypasses the output stream the bootstrap serialises"}
AUTOMATIC_VARIABLES = {"$_", "$args", "$error", "$event", "$eventargs", "$eventsubscriber", "$executioncontext", "$false", "$home",
                       "$host", "$input", "$lastexitcode", "$matches", "$myinvocation", "$null", "$pid", "$profile",
                       "$psboundparameters", "$pscmdlet", "$pshome", "$psitem", "$psscriptroot", "$psversiontable", "$sender",
                       "$shellid", "$stacktrace", "$this", "$true"}
STRICT_MODE_VERSIONS = {"2.0", "3.0", "latest"}


def host_protocol() -> t.Any:
    """The collection's host protocol module, as Ansible imports it."""
    return importlib.import_module("ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol")


def sources() -> list[tuple[str, bytes]]:
    """(label, text) of every PowerShell text the collection runs: the .ps1 files and the bootstrap."""
    items = [(str(path.relative_to(REPO)), path.read_bytes()) for path in PS_FILES]
    return items + [("host_protocol.BOOTSTRAP", host_protocol().BOOTSTRAP.encode("utf-8"))]


def walk(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    """Every node below ``node``, depth first."""
    yield node
    for child in node.children:
        yield from walk(child)


def parse(source: bytes) -> tree_sitter.Node:
    """The syntax tree's root."""
    return PARSER.parse(source).root_node


def syntax_errors(source: bytes) -> list[str]:
    """ERROR and MISSING nodes as "line N: ..." (1-based)."""
    return [f"line {n.start_point[0] + 1}: {'missing ' + n.type if n.is_missing else 'cannot parse'} {n.text[:60]!r}"
            for n in walk(parse(source)) if n.type == "ERROR" or n.is_missing]


def code_only(source: bytes) -> str:
    """The text with comments and string literals blanked (newlines kept, so line numbers stay right)."""
    text = bytearray(source)
    for node in walk(parse(source)):
        if node.type in ("comment", "string_literal"):
            for index in range(node.start_byte, node.end_byte):
                if text[index] not in (0x0A, 0x0D):
                    text[index] = 0x20
    return text.decode("utf-8")


def ps7_syntax(source: bytes) -> list[str]:
    """PowerShell 7-only syntax outside strings and comments, as "line N: what"."""
    code = code_only(source)
    found = []
    for number, line in enumerate(code.splitlines(), start=1):
        for match in re.finditer(r"\?", line):
            before = line[:match.start()].rstrip()
            if not before.endswith("|"):  # "| ?" is the Where-Object alias; any other ? is ??, ?., ?[ or a ternary
                found.append(f"line {number}: '?' operator (??, ?., ?[ or ternary)")
        if re.search(r"&&|\|\|", line):
            found.append(f"line {number}: pipeline chain operator && or ||")
        if re.search(r"(?i)-parallel\b", line):
            found.append(f"line {number}: -Parallel")
    found += [f"line {n.start_point[0] + 1}: pipeline chain" for n in walk(parse(source)) if n.type == "pipeline_chain_tail"]
    return found


def command_names(source: bytes) -> list[tuple[int, str]]:
    """(line, lower-case name) of every command invoked by name."""
    return [(n.start_point[0] + 1, n.text.decode().lower()) for n in walk(parse(source)) if n.type == "command_name"]


def assigned_variables(source: bytes) -> list[tuple[int, str]]:
    """(line, lower-case variable) for every assignment target and foreach loop variable."""
    out = []
    for node in walk(parse(source)):
        target = None
        if node.type == "left_assignment_expression":
            target = node
        elif node.type == "foreach_statement":
            target = next((c for c in node.children if c.type == "variable"), None)
        if target is not None and re.fullmatch(r"\$[\w:]+", target.text.decode().strip()):
            out.append((node.start_point[0] + 1, target.text.decode().strip().lower()))
    return out


def top_level_statements(source: bytes) -> list[tree_sitter.Node]:
    """The script's top-level statements, in order (param block and comments excluded)."""
    root = parse(source)
    body = next((c for c in root.children if c.type == "statement_list"), None)
    return [] if body is None else [c for c in body.children if c.type not in ("comment", "empty_statement")]


def sets_strict_mode(node: tree_sitter.Node) -> bool:
    """``Set-StrictMode -Version 2.0`` (or a later version)."""
    words = node.text.decode().split()
    return (len(words) == 3 and words[0].lower() == "set-strictmode" and words[1].lower() == "-version"
            and words[2].lower() in STRICT_MODE_VERSIONS)


def sets_stop(node: tree_sitter.Node) -> bool:
    """``$ErrorActionPreference = 'Stop'``."""
    return re.fullmatch(r"(?i)\$ErrorActionPreference\s*=\s*['\"]Stop['\"]", node.text.decode().strip()) is not None


SOURCES = sources()
IDS = [label for label, _unused in SOURCES]


def test_sources_found() -> None:
    """The glob sees the host scripts (otherwise every parametrized test would be vacuous)."""
    assert HOST_SCRIPTS and all(path in PS_FILES for path in HOST_SCRIPTS)


@pytest.mark.parametrize("label, source", SOURCES, ids=IDS)
def test_parses_without_error_nodes(label: str, source: bytes) -> None:
    """tree-sitter-powershell finds no ERROR or MISSING node."""
    assert syntax_errors(source) == [], label


@pytest.mark.parametrize("label, source", SOURCES, ids=IDS)
def test_strict_mode_and_stop(label: str, source: bytes) -> None:
    """Strict mode and $ErrorActionPreference = 'Stop' are set at the top level."""
    statements = top_level_statements(source)
    assert any(sets_strict_mode(s) for s in statements), f"{label}: no top-level Set-StrictMode -Version 2.0"
    assert any(sets_stop(s) for s in statements), f"{label}: no top-level $ErrorActionPreference = 'Stop'"


@pytest.mark.parametrize("path", HOST_SCRIPTS, ids=lambda p: p.name)
def test_host_script_preamble(path: pathlib.Path) -> None:
    """contracts section 2: param([Parameter(Mandatory = $true)] $Params), then strict mode and Stop, before anything else."""
    source = path.read_bytes()
    root = parse(source)
    first = next(c for c in root.children if c.type != "comment")
    assert first.type == "param_block", f"{path.name}: the first statement must be the param block"
    assert re.fullmatch(r"param\(\[Parameter\(Mandatory\s*=\s*\$true\)\]\s*\$Params\)", first.text.decode(), re.IGNORECASE)
    statements = top_level_statements(source)[:2]
    assert len(statements) == 2 and any(sets_strict_mode(s) for s in statements) and any(sets_stop(s) for s in statements)


@pytest.mark.parametrize("label, source", SOURCES, ids=IDS)
def test_windows_powershell_51_syntax_only(label: str, source: bytes) -> None:
    """No ??, ?., ternary, && / || chains or ForEach-Object -Parallel."""
    assert ps7_syntax(source) == [], label


@pytest.mark.parametrize("label, source", SOURCES, ids=IDS)
def test_no_forbidden_commands(label: str, source: bytes) -> None:
    """No Invoke-Expression (iex) and no Write-Host."""
    found = [f"line {line}: {FORBIDDEN_COMMANDS[name]}" for line, name in command_names(source) if name in FORBIDDEN_COMMANDS]
    assert found == [], label


@pytest.mark.parametrize("label, source", SOURCES, ids=IDS)
def test_no_assignment_to_automatic_variables(label: str, source: bytes) -> None:
    """$input, $host, $event, $profile... belong to PowerShell; reusing them breaks the bootstrap or confuses readers."""
    found = [f"line {line}: {name}" for line, name in assigned_variables(source) if name in AUTOMATIC_VARIABLES]
    assert found == [], label


def bare_foreach_assignments(source: bytes) -> list[str]:
    """``$x = foreach (...)``: assigns $null when nothing is emitted, and a later @($x) is then [$null]."""
    return [f"line {number}: assign @(foreach ...) instead" for number, line in enumerate(code_only(source).splitlines(), start=1)
            if re.search(r"(?i)=\s*foreach\s*\(", line)]


@pytest.mark.parametrize("label, source", SOURCES, ids=IDS)
def test_lists_are_built_with_array_subexpressions(label: str, source: bytes) -> None:
    """docs/dev/powershell.md: lists are ``@(foreach ...)`` so an empty one serialises as [] and not [null]."""
    assert bare_foreach_assignments(source) == [], label


# ---- the checkers themselves catch what they must ----
@pytest.mark.parametrize("snippet", [
    b"if ($a) { $b = 1\n",
    b"$x = @(1, 2\n",
    b"function f( { }\n",
])
def test_parser_reports_broken_syntax(snippet: bytes) -> None:
    """Unbalanced brackets are reported with a line number."""
    errors = syntax_errors(snippet)
    assert errors and all(e.startswith("line ") for e in errors)


@pytest.mark.parametrize("snippet", [
    b"$a = $b ?? 1\n", b"$a = $b ? 1 : 2\n", b"$a = $b?.Name\n", b"Get-Item x && Get-Item y\n", b"Get-Item x || exit 1\n",
    b"1..3 | ForEach-Object -Parallel { $_ }\n", b"$a ??= 1\n",
])
def test_ps7_syntax_is_detected(snippet: bytes) -> None:
    """Each PowerShell 7 construct is reported."""
    assert ps7_syntax(snippet)


@pytest.mark.parametrize("snippet", [
    b"$a = 'what? && || ?? -Parallel'\n", b"# is it? && ||\n$a = 1\n", b"Get-Process | ? { $_.Id -gt 4 }\n",
    b"$a = \"$($b) ?\"\n",
])
def test_ps51_text_is_not_flagged(snippet: bytes) -> None:
    """Question marks and operators inside strings and comments, and the Where-Object alias, are fine."""
    assert ps7_syntax(snippet) == []


def test_forbidden_commands_and_automatic_variables_are_detected() -> None:
    """The command and assignment checks see through case and aliases."""
    source = b"IEX 'x'\nwrite-host 'y'\n$Input = 1\nforeach ($event in $list) { }\n$fine = 2\n"
    assert {name for _unused, name in command_names(source)} >= {"iex", "write-host"}
    assert {name for _unused, name in assigned_variables(source) if name in AUTOMATIC_VARIABLES} == {"$input", "$event"}


def test_bare_foreach_assignment_is_detected() -> None:
    """The list-building check flags the trap and accepts the fix."""
    assert bare_foreach_assignments(b"$x = foreach ($a in $b) { $a }\n")
    assert bare_foreach_assignments(b"$x = @(foreach ($a in $b) { $a })\n") == []


def test_strict_mode_detection() -> None:
    """Set-StrictMode inside a function does not count; at the top level it does."""
    assert not any(sets_strict_mode(s) for s in top_level_statements(b"function f { Set-StrictMode -Version 2.0 }\n"))
    assert any(sets_strict_mode(s) for s in top_level_statements(b"Set-StrictMode -Version Latest\n"))


# ---- the command line is one constant ----
def test_command_line_is_the_encoded_bootstrap() -> None:
    """COMMAND_LINE = prefix + base64(UTF-16-LE(BOOTSTRAP)), under cmd.exe's 8191 characters."""
    protocol = host_protocol()
    prefix = "PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand "
    assert protocol.COMMAND_LINE.startswith(prefix)
    assert base64.b64decode(protocol.COMMAND_LINE[len(prefix):]).decode("utf-16-le") == protocol.BOOTSTRAP
    assert protocol.CMD_EXE_LIMIT == 8191 and len(protocol.COMMAND_LINE) < 8191


def run_and_capture(name: str, params: dict[str, t.Any]) -> tuple[str, bytes]:
    """Run a host script through a fake connection; return (command line, stdin) it was given."""
    seen: dict[str, t.Any] = {}

    def execute(cmd: str, sudoable: bool = True, in_data: bytes | None = None) -> dict[str, t.Any]:
        seen.update(cmd=cmd, sudoable=sudoable, in_data=in_data)
        return {"rc": 0, "stdout": '{"ok": true}', "stderr": ""}

    assert host_protocol().run_host_script(execute, name, params) == {"ok": True}
    return seen["cmd"], seen["in_data"]


PARAM_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(min_size=1, max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=40, deadline=None)
@given(params=st.dictionaries(st.text(min_size=1, max_size=12), PARAM_VALUES, max_size=5), marker=st.uuids())
def test_command_line_never_changes_and_never_carries_params(params: dict[str, t.Any], marker: t.Any) -> None:
    """Whatever the parameters, the command line is byte-identical and holds none of them; they travel on stdin."""
    protocol = host_protocol()
    params = {**params, "marker": f"M{marker.hex}"}
    for path in HOST_SCRIPTS:
        cmd, stdin = run_and_capture(path.stem, params)
        assert cmd == protocol.COMMAND_LINE
        decoded = base64.b64decode(cmd.rsplit(" ", 1)[1]).decode("utf-16-le")
        assert params["marker"] not in cmd and params["marker"] not in decoded
        assert params["marker"].encode() in stdin
        assert protocol.parse_payload(stdin) == (path.stem, path.read_text(encoding="utf-8"), params)
