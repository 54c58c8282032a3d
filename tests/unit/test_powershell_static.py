"""Static checks of the collection's PowerShell: no Windows host runs here, so the text itself is checked.

Every ``.ps1`` under ``plugins/`` (discovered) and the host-protocol bootstrap pass every rule of
``tests/unit/psstatic`` (the checker; ``python -m tests.unit.psstatic FILE.ps1`` runs it by hand):
they parse with tree-sitter-powershell; set strict mode and ``$ErrorActionPreference = 'Stop'``; use
Windows PowerShell 5.1 syntax only; call only their own functions, cmdlets of Windows PowerShell 5.1
or Windows Server 2016+ modules (Microsoft's reference docs) with parameters those have, and no alias,
``Invoke-Expression`` or ``Write-Host``; name only .NET Framework 4.5 types unless guarded; and their
Add-Type C# compiles as C# 5 with warnings as errors (Mono's mcs). Each rule is shown to fail on a
deliberately broken fixture (``tests/unit/psstatic/fixtures``). The encoded command line is one
constant, whatever the script and parameters. See docs/dev/powershell.md, "Static checks".
"""

from __future__ import annotations

import base64
import importlib
import json
import pathlib
import re
import typing as t

import pytest
import tree_sitter
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.psstatic import check as psstatic
from tests.unit.psstatic import __main__ as psstatic_cli
from tests.unit.psstatic import csharp, data, language
from tests.unit.psstatic.commands import resolve_parameter
from tests.unit.psstatic.syntax import Script

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(psstatic.__file__).resolve().parent / "fixtures"

PS_FILES = sorted((REPO / "plugins").rglob("*.ps1"))
HOST_SCRIPTS = sorted((REPO / "plugins" / "host_scripts").glob("*.ps1"))
FORBIDDEN_COMMANDS = {"invoke-expression": "Invoke-Expression runs text as code", "iex": "iex (Invoke-Expression) runs text as code",
                      "write-host": "Write-Host bypasses the output stream the bootstrap serialises"}
AUTOMATIC_VARIABLES = language.AUTOMATIC_VARIABLES

# Problems the checker finds in the scripts as they are on this branch, to be fixed in the scripts (not here).
# (label, rule, message). Each entry must still occur: a fixed problem fails test_known_problems_are_current
# until it is removed from this list. Keep it empty: a script on main passes every check.
KNOWN_PROBLEMS: list[tuple[str, str, str]] = []


def host_protocol() -> t.Any:
    """The collection's host protocol module, as Ansible imports it."""
    return importlib.import_module("ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol")


def sources() -> list[tuple[str, bytes]]:
    """(label, text) of every PowerShell text the collection runs: the .ps1 files and the bootstrap."""
    items = [(str(path.relative_to(REPO)), path.read_bytes()) for path in PS_FILES]
    return items + [("host_protocol.BOOTSTRAP", host_protocol().BOOTSTRAP.encode("utf-8"))]


def parse(source: bytes) -> tree_sitter.Node:
    """The syntax tree's root."""
    return Script("snippet", source).root


def syntax_errors(source: bytes) -> list[str]:
    """ERROR and MISSING nodes as "line N: ..." (1-based)."""
    return [str(p) for p in language.syntax_errors(Script("snippet", source))]


def code_only(source: bytes) -> str:
    """The text with comments and string literals blanked (newlines kept, so line numbers stay right)."""
    return Script("snippet", source).code_only


def ps7_syntax(source: bytes) -> list[str]:
    """PowerShell 7-only syntax outside strings and comments, as "line N: what"."""
    return [str(p) for p in language.ps7_syntax(Script("snippet", source))]


def command_names(source: bytes) -> list[tuple[int, str]]:
    """(line, lower-case name) of every command invoked by name."""
    return [(c.line, c.name.lower()) for c in Script("snippet", source).commands]


def assigned_variables(source: bytes) -> list[tuple[int, str]]:
    """(line, lower-case variable) for every assignment target and foreach loop variable."""
    return language.assigned_variables(Script("snippet", source))


def top_level_statements(source: bytes) -> list[tree_sitter.Node]:
    """The script's top-level statements, in order (param block and comments excluded)."""
    return Script("snippet", source).top_level_statements()


sets_strict_mode = language.sets_strict_mode
sets_stop = language.sets_stop


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
    return [str(p) for p in language.bare_foreach_assignments(Script("snippet", source))]


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


# ---- every rule of tests/unit/psstatic on every script the collection runs ----
def problems_of(label: str, source: bytes) -> list[tuple[str, str, str]]:
    """(label, rule, message) of every problem the checker reports."""
    return [(label, p.rule, p.message) for p in psstatic.check_source(label, source)]


@pytest.mark.parametrize("label, source", SOURCES, ids=IDS)
def test_script_passes_every_static_check(label: str, source: bytes) -> None:
    """Commands, parameters, aliases, .NET types, Add-Type C#, 5.1 syntax, preamble: no problem beyond KNOWN_PROBLEMS."""
    problems = [p for p in psstatic.check_source(label, source) if (label, p.rule, p.message) not in KNOWN_PROBLEMS]
    assert [str(p) for p in problems] == [], label


def test_known_problems_are_current() -> None:
    """Each KNOWN_PROBLEMS entry still occurs (so a fixed problem is removed from the list, never kept as cover)."""
    reported = {problem for label, source in SOURCES for problem in problems_of(label, source)}
    assert [entry for entry in KNOWN_PROBLEMS if entry not in reported] == []


def test_every_script_is_checked() -> None:
    """Discovery: every .ps1 under plugins/ and the bootstrap, and the bootstrap has commands to check."""
    assert {label for label, _unused in SOURCES} == {str(p.relative_to(REPO)) for p in PS_FILES} | {"host_protocol.BOOTSTRAP"}
    assert all(Script(label, source).commands for label, source in SOURCES)


# ---- each rule fails on a deliberately broken fixture ----
# fixture -> the exact problems (line, rule, message) it must produce, and nothing else.
FIXTURE_PROBLEMS: dict[str, list[tuple[int, str, str]]] = {
    "unknown-command.ps1": [(3, "unknown-command", "'Get-RdpThing' is an unknown command: neither a function of this script "
                                                   "nor a Windows PowerShell 5.1 / Windows Server cmdlet")],
    "unknown-parameter.ps1": [(3, "unknown-parameter", "Get-ChildItem has no parameter -Recursive")],
    "splatted-parameter.ps1": [(5, "unknown-parameter", "Get-CimInstance has no parameter -Filtr")],
    "ambiguous-parameter.ps1": [(3, "ambiguous-parameter", "-F of Get-ChildItem is ambiguous: -File, -Filter, -FollowSymlink, -Force")],
    "alias.ps1": [(3, "alias", "'select' is an alias of Select-Object: write Select-Object")],
    "write-host.ps1": [(3, "forbidden-command", "Write-Host bypasses the output stream the bootstrap serialises")],
    "invoke-expression.ps1": [(3, "forbidden-command", "Invoke-Expression runs text as code")],
    "ternary.ps1": [(4, "ps7-syntax", "'?' operator (??, ??=, ?., ?[ or ternary) is PowerShell 7")],
    "null-coalescing.ps1": [(4, "ps7-syntax", "'?' operator (??, ??=, ?., ?[ or ternary) is PowerShell 7")],
    "pipeline-chain.ps1": [(3, "ps7-syntax", "pipeline chain is PowerShell 7"),
                           (3, "ps7-syntax", "pipeline chain operator && or || is PowerShell 7")],
    "ps7-parameter.ps1": [(3, "unknown-parameter", "ConvertFrom-Json has no parameter -AsHashtable")],
    "newer-cmdlet.ps1": [(4, "newer-cmdlet", "Get-NetFirewallDynamicKeywordAddress (NetSecurity) is documented only for Windows "
                                             "Server 2022, 2025: probe it first with Get-Command Get-NetFirewallDynamicKeywordAddress "
                                             "-ErrorAction SilentlyContinue")],
    "ws2012r2-parameter.ps1": [(3, "ws2012r2-parameter", "New-SelfSignedCertificate -NotAfter does not exist on Windows Server 2012 R2 "
                                                         "(there: -CertStoreLocation, -CloneCert, -DnsName, -Confirm, -WhatIf; "
                                                         "data/ws2012r2-parameters.json)")],
    "csharp6.ps1": [(6, "add-type-compile", "C# 5 (mcs): (3,59): error CS1644: Feature `interpolated strings' cannot be used because "
                                            "it is not part of the C# 5.0 language specification"),
                    (6, "add-type-compile", "C# 5 (mcs): (3,77): error CS1644: Feature `null propagating operator' cannot be used "
                                            "because it is not part of the C# 5.0 language specification")],
    "csharp-warning.ps1": [(7, "add-type-compile", "C# 5 (mcs): (3,42): error CS0219: Warning as Error: The variable `unused' is "
                                                   "assigned but its value is never used")],
    "dotnet46-type.ps1": [(4, "dotnet-newer-type", "[Security.Cryptography.X509Certificates.RSACertificateExtensions] needs .NET "
                                                   "Framework 4.6 (ms: dotnet/api/system.security.cryptography.x509certificates."
                                                   "rsacertificateextensions): test ('System.Security.Cryptography.X509Certificates."
                                                   "RSACertificateExtensions' -as [type]) first (Windows Server 2012 R2 has .NET "
                                                   "Framework 4.5.1)")],
    "no-strict-mode.ps1": [(1, "strict-mode", "no top-level Set-StrictMode -Version 2.0 (or later)")],
    # The same code, guarded as the rules allow: no problem.
    "newer-cmdlet-guarded.ps1": [],
    "dotnet46-type-guarded.ps1": [],
}
# tree-sitter-powershell cannot parse these PowerShell 7 operators at all: parse errors come with them.
ALSO_PARSE_ERRORS = {"ternary.ps1", "null-coalescing.ps1"}


@pytest.mark.parametrize("name", sorted(FIXTURE_PROBLEMS))
def test_fixture_reports_exactly_its_problem(name: str) -> None:
    """Each broken fixture makes its rule fail with the exact message, and no other rule fires."""
    problems = psstatic.check_file(FIXTURES / name)
    other = [p for p in problems if p.rule == "parse-error"] if name in ALSO_PARSE_ERRORS else []
    assert (name not in ALSO_PARSE_ERRORS) or other, "the parse errors that come with it are reported too"
    assert [(p.line, p.rule, p.message) for p in problems if p not in other] == FIXTURE_PROBLEMS[name]


def test_every_fixture_has_an_expectation() -> None:
    """No fixture lies around unchecked, and every rule with a data source has a failing fixture."""
    assert sorted(p.name for p in FIXTURES.glob("*.ps1")) == sorted(FIXTURE_PROBLEMS)
    covered = {rule for problems in FIXTURE_PROBLEMS.values() for _line, rule, _message in problems}
    assert covered >= {"unknown-command", "unknown-parameter", "ambiguous-parameter", "alias", "forbidden-command", "ps7-syntax",
                       "newer-cmdlet", "ws2012r2-parameter", "add-type-compile", "dotnet-newer-type", "strict-mode"}


def rules_of(snippet: str, preamble: bool = True) -> list[tuple[int, str]]:
    """(line, rule) of the problems of a snippet (after a valid preamble of two lines unless told otherwise)."""
    head = "Set-StrictMode -Version 2.0\n$ErrorActionPreference = 'Stop'\n" if preamble else ""
    return [(p.line - (2 if preamble else 0), p.rule) for p in psstatic.check_source("snippet", (head + snippet).encode())]


# ---- commands and parameters, as PowerShell binds them ----
GET_CHILD_ITEM = {**data.cmdlets()["get-childitem"].parameters, **data.COMMON_PARAMETERS}


@pytest.mark.parametrize("written, expected", [
    ("Path", ("Path", [])), ("path", ("Path", [])), ("LiteralP", ("LiteralPath", [])), ("PSPath", ("LiteralPath", [])),
    ("s", ("Recurse", [])), ("Rec", ("Recurse", [])), ("EA", ("ErrorAction", [])), ("ErrorA", ("ErrorAction", [])),
    ("Fi", (None, ["File", "Filter"])), ("Nope", (None, [])), ("h", ("Hidden", [])),
])
def test_parameter_resolution(written: str, expected: tuple[str | None, list[str]]) -> None:
    """Exact names and aliases win; a prefix of exactly one parameter (name or alias) binds; more is ambiguous."""
    assert resolve_parameter(written, GET_CHILD_ITEM) == expected


@pytest.mark.parametrize("snippet, expected", [
    ("$x = @(Get-ChildItem -LiteralPath 'C:\\' -Rec -EA SilentlyContinue)\n", []),
    ("$x = @(Microsoft.PowerShell.Management\\Get-ChildItem -LiteralPath 'C:\\')\n", []),
    ("$x = @(Microsoft.PowerShell.Utility\\Get-ChildItem -LiteralPath 'C:\\')\n", [(1, "unknown-command")]),
    ("$x = @(gci -LiteralPath 'C:\\')\n", [(1, "alias")]),
    ("$x = @(Get-Service | Where-Object { $_.Status -eq 'Running' } | ForEach-Object { $_.Name })\n", []),
    ("$x = @(Get-Service | ? { $_.Status -eq 'Running' } | % { $_.Name })\n", [(1, "alias"), (1, "alias")]),
    ("$x = @(Get-Service | foreach { $_.Name })\n", [(1, "alias")]),
    ("$x = @(foreach ($s in @(Get-Service)) { $s.Name })\n", []),
    ("iex 'x'\n", [(1, "alias"), (1, "forbidden-command")]),
    ("$out = & secedit.exe /export /cfg x\n", []),
    ("$out = & notinwindows.exe /x\n", [(1, "unknown-command")]),
    ("function Get-RdThing([string]$Name) { $Name }\n$x = Get-RdThing -Name 'a'\n", []),
    ("function Get-RdThing([string]$Name) { $Name }\n$x = Get-RdThing -Nam 'a'\n", []),
    ("function Get-RdThing([string]$Name) { $Name }\n$x = Get-RdThing -Other 'a'\n", [(2, "unknown-parameter")]),
    ("function Get-RdThing([string]$Name) { $Name }\n$x = Get-RdThing -Name 'a' -ErrorAction Stop\n", [(2, "unknown-parameter")]),
    ("function Get-RdThing {\n    [CmdletBinding()]\n    param([string]$Name)\n    $Name\n}\n$x = Get-RdThing -Name 'a' -ErrorAction Stop\n", []),
    ("$s = 'Get-Bogus -Nope; Write-Host x'  # Get-Bogus in a comment\n", []),
    ("$s = \"$(Get-Bogus)\"\n", [(1, "unknown-command")]),
    ("$c = New-SelfSignedCertificate -DnsName 'h' -CertStoreLocation 'Cert:\\LocalMachine\\My' -Verbose\n", []),
    ("$c = New-SelfSignedCertificate -DnsName 'h' -KeyLength 2048  # rd-static: allow ws2012r2-parameter OS checked above\n", []),
    ("$c = New-SelfSignedCertificate -DnsName 'h' -KeyLength 2048  # rd-static: allow ws2012r2-parameter\n",
     [(1, "ws2012r2-parameter")]),
    ("$k = @(Get-NetFirewallDynamicKeywordAddress -All)  # rd-static: allow newer-cmdlet only on 2022+, see above\n", []),
    ("$q = @{ LiteralPath = 'C:\\'; 'Rec' = $true }\n$q['EA'] = 'Stop'\n$x = @(Get-ChildItem @q)\n", []),
    ("$q = @{ LiteralPath = 'C:\\'; 'Recursive' = $true }\n$q['F'] = 'Stop'\n$x = @(Get-ChildItem @q)\n",
     [(1, "unknown-parameter"), (2, "ambiguous-parameter")]),
    ("function a { $q = @{ Nope = 1 }; $q }\nfunction b { $q = @{ LiteralPath = 'C:\\' }; $x = @(Get-ChildItem @q); $x }\n", []),
    ("$q = Get-RdQuery\n$x = @(Get-ChildItem @q)\nfunction Get-RdQuery { @{ Nope = 1 } }\n", []),
    ("$g = @(Get-NetVirtualizationGlobal)\n", [(1, "retired-cmdlet")]),
    ("if (Get-Command -Name Get-NetVirtualizationGlobal -EA SilentlyContinue) { $g = @(Get-NetVirtualizationGlobal) }\n", []),
    ("$c = @(Get-MSMQCertificate -ComputerName 'h')\n$d = @(Get-MsmqCertificate -ComputerName 'h')\n", []),
    ("$j = '{}' | ConvertFrom-Json\n$t = ConvertTo-Json -InputObject $j -Depth 3 -Compress\n", []),
    ("$t = ConvertTo-Json -InputObject 1 -EnumsAsStrings\n", [(1, "unknown-parameter")]),
    ("$x = @(1..3 | ForEach-Object { $_ })\n", []),
    ("$x = 1..3 | ForEach-Object -Parallel { $_ }\n", [(1, "ps7-syntax"), (1, "unknown-parameter")]),
    ("function f {\n    process { $_ }\n    clean { $_ }\n}\n", [(2, "parse-error"), (3, "ps7-syntax")]),
])
def test_command_rules(snippet: str, expected: list[tuple[int, str]]) -> None:
    """Functions of the script, cmdlets, module-qualified names, aliases, native commands, guards and pragmas."""
    assert rules_of(snippet) == expected


# ---- .NET types ----
@pytest.mark.parametrize("snippet, expected", [
    ("[string]$a = [int]'1'\n$h = [ordered]@{}\n$o = [pscustomobject]@{ a = 1 }\n$r = [regex]'x'\n", []),
    ("$n = [IO.Path]::GetTempFileName()\n$m = [System.Math]::Floor(1.5)\n", []),
    ("$l = New-Object 'System.Collections.Generic.List[string]'\n$d = [System.Collections.Generic.Dictionary[string, object]]::new()\n", []),
    ("$a = New-Object Security.Principal.NTAccount('x')\n", []),
    ("$a = New-Object -TypeName Security.Principal.NoSuchThing\n", [(1, "dotnet-unknown-type")]),
    ("$a = New-Object -ComObject 'Shell.Application'\n", []),
    ("$a = [Nope.Missing]::Thing\n", [(1, "dotnet-unknown-type")]),
    ("try { $a = 1 } catch [IO.IOException] { $a = 2 }\n", []),
    ("try { $a = 1 } catch [IO.NoSuchException] { $a = 2 }\n", [(1, "dotnet-unknown-type")]),
    ("$v = [Runtime.InteropServices.RuntimeInformation]::OSDescription\n", [(1, "dotnet-newer-type")]),
    ("if ('System.Runtime.InteropServices.RuntimeInformation' -as [type]) {\n"
     "    $v = [Runtime.InteropServices.RuntimeInformation]::OSDescription\n}\n", []),
    ("function f {\n    [CmdletBinding()]\n    [OutputType([string])]\n    param([Parameter(Mandatory = $true)][ValidateNotNull()] $X)\n"
     "    $X\n}\n", []),
])
def test_type_rules(snippet: str, expected: list[tuple[int, str]]) -> None:
    """Accelerators, System. prefixes, generics, New-Object, catch types, attributes, newer types and their guard."""
    assert rules_of(snippet) == expected


def test_types_declared_by_the_scripts_add_type_are_known() -> None:
    """A type of the script's own Add-Type namespace is fine; the same name without the block is unknown."""
    block = "Add-Type -TypeDefinition 'namespace RdSnippet { public static class T { public static int X() { return 1; } } }'\n"
    assert rules_of(block + "$x = [RdSnippet.T]::X()\n") == []
    assert rules_of("$x = [RdSnippet.T]::X()\n") == [(1, "dotnet-unknown-type")]


# ---- Add-Type C#: Mono's mcs as C# 5, warnings as errors ----
def test_add_type_references_like_windows_powershell() -> None:
    """System.dll is referenced by default; System.Core (LINQ) only when the script names it, as on Windows."""
    linq = "using System.Linq;\nnamespace RdSnippet { public static class L { public static int N(int[] a) { return a.Count(); } } }"
    without = f"Add-Type -TypeDefinition @'\n{linq}\n'@\n"
    with_core = f"Add-Type -ReferencedAssemblies System.Core -TypeDefinition @'\n{linq}\n'@\n"
    assert [rule for _line, rule in rules_of(without)] and all(rule == "add-type-compile" for _line, rule in rules_of(without))
    assert rules_of(with_core) == []


def test_add_type_member_definition_and_ignore_warnings() -> None:
    """-MemberDefinition is wrapped as Windows PowerShell does; -IgnoreWarnings lets a warning pass, errors still fail."""
    member = ("Add-Type -Name Kernel -Namespace RdSnippet -MemberDefinition "
              "'[DllImport(\"kernel32.dll\")] public static extern uint GetTickCount();'\n")
    assert rules_of(member) == []
    assert {rule for _line, rule in rules_of(member.replace("GetTickCount();", "GetTickCount() { return 0; }"))} == {"add-type-compile"}
    warning = "namespace RdSnippet { public static class W { public static int A() { int unused = 1; return 2; } } }"
    assert [rule for _line, rule in rules_of(f"Add-Type -TypeDefinition '{warning}'\n")] == ["add-type-compile"]
    assert rules_of(f"Add-Type -TypeDefinition '{warning}' -IgnoreWarnings\n") == []


def test_add_type_source_must_be_findable() -> None:
    """A C# source the checker cannot see (computed, or assigned twice) is a problem, not a silent pass."""
    assert rules_of("$s = 'a' + 'b'\nAdd-Type -TypeDefinition $s\n") == [(2, "add-type-source")]
    assert rules_of("$s = 'x'\n$s = 'y'\nAdd-Type -TypeDefinition $s\n") == [(3, "add-type-source")]
    assert rules_of("Add-Type -AssemblyName System.Web\n") == []


def test_missing_compiler_is_a_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without mcs the C# check fails loudly instead of passing."""
    monkeypatch.setattr(csharp, "MCS", "mcs-that-does-not-exist")
    source = "namespace RdSnippet { public static class Missing { } }"
    expected = ("mcs-that-does-not-exist not found: install Debian's mono-mcs (bindep.txt, profile test)",)
    assert csharp.compile_errors(source, (), True) == expected


# ---- the data ----
def test_cmdlet_table_is_complete_and_compact() -> None:
    """Every cmdlet of the reference is there (5.1 core and the Windows Server modules), in under 1 MB, noise-free."""
    path = pathlib.Path(data.__file__).resolve().parent / "data" / "ps51-cmdlets.json"
    assert path.stat().st_size < 1_000_000
    table = data.cmdlets()
    assert len(table) > 4000 and {"get-childitem", "get-netfirewallrule", "new-selfsignedcertificate", "get-windowsfeature"} <= set(table)
    assert all(" " not in alias and ":" not in alias for c in table.values() for aliases in c.parameters.values() for alias in aliases)
    assert table["get-childitem"].parameters["Recurse"] == ("s",) and table["get-childitem"].parameters["Filter"] == ()
    assert "Parallel" not in table["foreach-object"].parameters and "AsHashtable" not in table["convertfrom-json"].parameters


def test_aliases_accelerators_and_side_tables_are_consistent() -> None:
    """Aliases point at cmdlets of the table; 2012 R2 parameter lists are subsets; known and newer types are disjoint."""
    table = data.cmdlets()
    assert {"%", "?", "select", "where", "foreach", "gci", "iex", "gcim"} <= set(data.command_aliases())
    assert {target.lower() for target in data.command_aliases().values()} - set(table) <= {"clear-host"}
    assert {"pscustomobject", "hashtable", "regex", "adsi", "scriptblock", "type"} <= set(data.type_accelerators())
    for name, parameters in data.ws2012r2_parameters().items():
        assert set(parameters) <= set(table[name].parameters), name
    assert not data.dotnet45_types() & set(data.dotnet_newer_types())
    sources = json.loads((pathlib.Path(data.__file__).resolve().parent / "data" / "ws2012r2-parameters.json").read_text())
    assert all(entry["source"].startswith("ms: ") for entry in sources["cmdlets"].values())


# ---- the CLI ----
def test_cli_prints_problems_and_exit_status(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m tests.unit.psstatic``: one 'file:line: [rule] message' per problem, exit 1; a clean file exits 0."""
    assert psstatic_cli.main([str(FIXTURES / "alias.ps1")]) == 1
    out = capsys.readouterr().out
    assert out == f"{FIXTURES / 'alias.ps1'}:3: [alias] 'select' is an alias of Select-Object: write Select-Object\n"
    assert psstatic_cli.main([str(FIXTURES / "newer-cmdlet-guarded.ps1"), "--bootstrap"]) == 0


def test_dotnet45_list_has_no_typo() -> None:
    """Every type of the .NET 4.5 list exists: mcs resolves it (except Windows-only assemblies Mono lacks: PowerShell's,
    ADSI, event log reading)."""
    arity = {"System.Collections.Generic.List": 1, "System.Collections.Generic.Dictionary": 2, "System.Collections.Generic.HashSet": 1}
    listed = json.loads((pathlib.Path(data.__file__).resolve().parent / "data" / "dotnet45-types.json").read_text())["types"]
    checkable = [name for name in listed
                 if not name.startswith(("System.Management.Automation.", "Microsoft.Management.Infrastructure.", "System.DirectoryServices.",
                                         "System.Diagnostics.Eventing."))]
    assert len(checkable) > 100
    items = [f"typeof({name}<{',' * (arity[name] - 1)}>)" if name in arity else f"typeof({name})" for name in checkable]
    source = "namespace RdProbe { public static class Types { public static readonly System.Type[] All = {\n" + ",\n".join(items) + "\n}; } }"
    assert csharp.compile_errors(source, ("System.Core", "System.Xml"), True) == ()
