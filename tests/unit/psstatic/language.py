"""Windows PowerShell 5.1 language rules: parse errors, PowerShell 7-only syntax, the preamble, automatic variables."""

from __future__ import annotations

import re

import tree_sitter

from . import data
from .commands import resolve_parameter
from .problem import Problem
from .syntax import Script, line_of, text_of

AUTOMATIC_VARIABLES = {"$_", "$args", "$error", "$event", "$eventargs", "$eventsubscriber", "$executioncontext", "$false",
                       "$home", "$host", "$input", "$lastexitcode", "$matches", "$myinvocation", "$null", "$pid",
                       "$profile", "$psboundparameters", "$pscmdlet", "$pshome", "$psitem", "$psscriptroot",
                       "$psversiontable", "$sender", "$shellid", "$stacktrace", "$this", "$true"}
STRICT_MODE_VERSIONS = {"2", "2.0", "3", "3.0", "latest"}


def syntax_errors(script: Script) -> list[Problem]:
    """tree-sitter ERROR and MISSING nodes."""
    return [Problem(line_of(n), "parse-error", f"{'missing ' + n.type if n.is_missing else 'cannot parse'} {n.text[:60]!r}")
            for n in script.nodes if n.type == "ERROR" or n.is_missing]


def ps7_syntax(script: Script) -> list[Problem]:
    """PowerShell 7-only syntax outside strings and comments."""
    found = []
    for number, line in enumerate(script.code_only.splitlines(), start=1):
        for match in re.finditer(r"\?", line):
            before = line[:match.start()].rstrip()
            if not before.endswith("|"):  # "| ?" is the Where-Object alias (the alias rule reports it)
                found.append(Problem(number, "ps7-syntax", "'?' operator (??, ??=, ?., ?[ or ternary) is PowerShell 7"))
        if re.search(r"&&|\|\|", line):
            found.append(Problem(number, "ps7-syntax", "pipeline chain operator && or || is PowerShell 7"))
        if re.search(r"(?i)(?<![\w-])-parallel\b", line):
            found.append(Problem(number, "ps7-syntax", "-Parallel is PowerShell 7"))
        if re.match(r"(?i)\s*clean\s*\{", line):
            found.append(Problem(number, "ps7-syntax", "a clean {} block is PowerShell 7.3"))
    found += [Problem(line_of(n), "ps7-syntax", "pipeline chain is PowerShell 7")
              for n in script.nodes if n.type == "pipeline_chain_tail"]
    return found


def sets_strict_mode(node: tree_sitter.Node) -> bool:
    """``Set-StrictMode -Version 2.0`` (or a later version), parameter prefixes resolved."""
    words = text_of(node).split()
    if len(words) != 3 or words[0].lower() != "set-strictmode" or not words[1].startswith("-"):
        return False
    params = {**data.cmdlets()["set-strictmode"].parameters, **data.COMMON_PARAMETERS}
    return resolve_parameter(words[1][1:], params)[0] == "Version" and words[2].strip("'\"").lower() in STRICT_MODE_VERSIONS


def sets_stop(node: tree_sitter.Node) -> bool:
    """``$ErrorActionPreference = 'Stop'``."""
    return re.fullmatch(r"(?i)\$ErrorActionPreference\s*=\s*['\"]Stop['\"]", text_of(node).strip()) is not None


def preamble(script: Script) -> list[Problem]:
    """Strict mode and $ErrorActionPreference = 'Stop' at the top level."""
    statements = script.top_level_statements()
    problems = []
    if not any(sets_strict_mode(s) for s in statements):
        problems.append(Problem(1, "strict-mode", "no top-level Set-StrictMode -Version 2.0 (or later)"))
    if not any(sets_stop(s) for s in statements):
        problems.append(Problem(1, "error-action-stop", "no top-level $ErrorActionPreference = 'Stop'"))
    return problems


def assigned_variables(script: Script) -> list[tuple[int, str]]:
    """(line, lower-case variable) for every assignment target and foreach loop variable."""
    out = []
    for node in script.nodes:
        target = None
        if node.type == "left_assignment_expression":
            target = node
        elif node.type == "foreach_statement":
            target = next((c for c in node.children if c.type == "variable"), None)
        if target is not None and re.fullmatch(r"\$[\w:]+", text_of(target).strip()):
            out.append((line_of(node), text_of(target).strip().lower()))
    return out


def automatic_variables(script: Script) -> list[Problem]:
    """No assignment (or foreach variable) to an automatic variable."""
    return [Problem(line, "automatic-variable", f"{name} is an automatic variable") for line, name in assigned_variables(script)
            if name in AUTOMATIC_VARIABLES]


def bare_foreach_assignments(script: Script) -> list[Problem]:
    """``$x = foreach (...)`` assigns $null when nothing is emitted; build lists as @(foreach ...)."""
    return [Problem(number, "foreach-assignment", "assign @(foreach ...) instead")
            for number, line in enumerate(script.code_only.splitlines(), start=1) if re.search(r"(?i)=\s*foreach\s*\(", line)]
