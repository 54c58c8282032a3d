"""Commands and their parameters: defined in the script, or a cmdlet of Windows PowerShell 5.1 / Windows Server 2016+."""

from __future__ import annotations

import re
import typing as t

import tree_sitter

from . import data
from .problem import Problem
from .syntax import Command, Script, line_of, string_value, text_of, walk

NOT_A_COMMAND = re.compile(r"\d[\d.]*")
FORBIDDEN = {"invoke-expression": "Invoke-Expression runs text as code",
             "write-host": "Write-Host bypasses the output stream the bootstrap serialises"}


def resolve_parameter(written: str, parameters: t.Mapping[str, t.Sequence[str]]) -> tuple[str | None, list[str]]:
    """Resolve ``written`` (without '-') as PowerShell binds it: an exact name or alias wins; otherwise every
    parameter whose name or alias starts with it. Returns (parameter, []) when unique, (None, candidates) else."""
    lower = written.lower()
    for name, aliases in parameters.items():
        if lower == name.lower() or lower in (a.lower() for a in aliases):
            return name, []
    candidates = sorted(name for name, aliases in parameters.items()
                        if name.lower().startswith(lower) or any(a.lower().startswith(lower) for a in aliases))
    return (candidates[0], []) if len(candidates) == 1 else (None, candidates)


def guarded_commands(script: Script) -> set[str]:
    """Lower-case names the script probes with ``Get-Command <name> -ErrorAction SilentlyContinue`` (or Ignore)."""
    guarded: set[str] = set()
    get_command = data.cmdlets()["get-command"]
    params = {**get_command.parameters, **data.COMMON_PARAMETERS}
    for command in script.commands:
        if command.name.lower() != "get-command":
            continue
        names, quiet = [], False
        for written, value in command.arguments():
            resolved = resolve_parameter(written, params)[0] if written is not None else "Name"
            text = string_value(value) if value is not None else None
            if resolved == "ErrorAction" and text is not None and text.lower() in ("silentlycontinue", "ignore"):
                quiet = True
            elif resolved == "Name" and text is not None:
                names += [n.strip().strip("'\"") for n in text.split(",")]
            elif resolved == "Name" and value is not None:
                names += [n.strip().strip("'\"") for n in text_of(value).split(",")]
        if quiet:
            guarded.update(n.lower() for n in names if n)
    return guarded


def _scope(node: tree_sitter.Node) -> tree_sitter.Node:
    """The function a node is in, or the script's root."""
    while node.parent is not None and node.type != "function_statement":
        node = node.parent
    return node


def _key_text(key: tree_sitter.Node) -> str:
    """A hashtable key as written: a bare word, or a quoted string's value."""
    literal = next((n for n in walk(key) if n.type == "string_literal"), None)
    return (string_value(literal) if literal is not None else None) or text_of(key).strip()


def splatted_keys(command: Command, splat: tree_sitter.Node) -> list[tuple[int, str]] | None:
    """(line, key) of the hashtable ``@name`` splats: keys of ``$name = @{...}`` literals and ``$name.Key =`` /
    ``$name['Key'] =`` assignments in the same function; None when no hashtable literal is assigned there."""
    variable = "$" + text_of(splat)[1:].lower()
    keys: list[tuple[int, str]] = []
    literal = False
    for node in walk(_scope(command.node)):
        if node.type != "assignment_expression" or len(node.children) < 3:
            continue
        # The outermost variable, member or element access of the target: $name, $name.Key or $name['Key'].
        access = next((n for n in walk(node.children[0]) if n.type in ("member_access", "element_access", "variable")), None)
        if access is None:
            continue
        if access.type == "variable" and text_of(access).lower() == variable:
            table = next((n for n in walk(node.children[-1]) if n.type == "hash_literal_expression"), None)
            if table is not None and text_of(table).strip() == text_of(node.children[-1]).strip():
                literal = True
                keys += [(line_of(k), _key_text(k)) for k in walk(table) if k.type == "key_expression"]
        elif access.type in ("member_access", "element_access") and access.children and \
                text_of(access.children[0]).lower() == variable:
            key = access.children[-1] if access.type == "member_access" else next(
                (n for n in walk(access) if n.type == "string_literal"), None)
            if key is not None:
                keys.append((line_of(key), string_value(key) if key.type == "string_literal" else text_of(key)))
    return keys if literal else None


def check_parameters(script: Script, command: Command, owner: str, parameters: t.Mapping[str, t.Sequence[str]],
                     ws2012r2: tuple[str, ...] | None = None) -> list[Problem]:
    """Each ``-Name`` (and each key of a splatted hashtable literal) resolves to exactly one parameter of ``owner``;
    on a 2012 R2-limited cmdlet, to one it has there."""
    problems = []
    passed = [(text_of(node)[1:].rstrip(":"), line_of(node)) for node in command.parameters()]
    for element in command.elements:
        if element.type in ("array_literal_expression", "unary_expression", "variable"):
            splat = next((n for n in walk(element) if n.type == "variable" and text_of(n).startswith("@")), None)
            if splat is not None and text_of(splat).strip() == text_of(element).strip():
                passed += [(key, line) for line, key in splatted_keys(command, splat) or []]
    for written, line in passed:
        resolved, candidates = resolve_parameter(written, parameters)
        if resolved is None and candidates:
            problems.append(Problem(line, "ambiguous-parameter",
                                    f"-{written} of {owner} is ambiguous: {', '.join('-' + c for c in candidates)}"))
        elif resolved is None:
            problems.append(Problem(line, "unknown-parameter", f"{owner} has no parameter -{written}"))
        elif (ws2012r2 is not None and resolved not in ws2012r2 and resolved not in data.COMMON_PARAMETERS
              and not script.line_has_pragma(line, "ws2012r2-parameter")):
            problems.append(Problem(line, "ws2012r2-parameter",
                                    f"{owner} -{resolved} does not exist on Windows Server 2012 R2 (there: "
                                    f"{', '.join('-' + p for p in ws2012r2)}; data/ws2012r2-parameters.json)"))
    return problems


def check_command(script: Script, command: Command, guarded: set[str]) -> list[Problem]:
    """One command: known, not an alias, not forbidden, old enough, and its parameters exist."""
    written = command.name
    module, _sep, name = written.rpartition("\\")
    lower = name.lower()
    line = command.line
    if not module and lower in script.functions:
        function = script.functions[lower]
        params = {p: () for p in function.parameters}
        if function.advanced:
            params.update(data.COMMON_PARAMETERS)
        return check_parameters(script, command, f"function {function.name}", params)
    if lower in data.native_commands():
        return []
    if not module and lower in data.command_aliases():
        target = data.command_aliases()[lower]
        extra = [Problem(line, "forbidden-command", FORBIDDEN[target.lower()])] if target.lower() in FORBIDDEN else []
        return [Problem(line, "alias", f"'{name}' is an alias of {target}: write {target}")] + extra
    if lower in FORBIDDEN and lower not in data.cmdlets():  # Write-Host: missing from the extracted table
        return [Problem(line, "forbidden-command", FORBIDDEN[lower])]
    cmdlet = data.cmdlets().get(lower)
    if cmdlet is None or (module and module.lower() != cmdlet.module.lower()):
        what = "native command (call it with its .exe name, listed in data/windows-commands.json)" if "." in name else \
            "command: neither a function of this script nor a Windows PowerShell 5.1 / Windows Server cmdlet"
        return [Problem(line, "unknown-command", f"'{written}' is an unknown {what}")]
    problems = []
    if lower in FORBIDDEN:
        problems.append(Problem(line, "forbidden-command", FORBIDDEN[lower]))
    if not cmdlet.in_server_2016 and lower not in guarded and not script.line_has_pragma(line, "newer-cmdlet"):
        problems.append(Problem(line, "newer-cmdlet",
                                f"{cmdlet.name} ({cmdlet.module}) is documented only for Windows Server "
                                f"{', '.join(cmdlet.docsets)}: probe it first with "
                                f"Get-Command {cmdlet.name} -ErrorAction SilentlyContinue"))
    if not cmdlet.in_newest_server and lower not in guarded and not script.line_has_pragma(line, "retired-cmdlet"):
        problems.append(Problem(line, "retired-cmdlet",
                                f"{cmdlet.name} ({cmdlet.module}) is documented only for Windows Server "
                                f"{', '.join(cmdlet.docsets)}, not for {data.NEWEST_DOCSET}: probe it first with "
                                f"Get-Command {cmdlet.name} -ErrorAction SilentlyContinue"))
    params = {**cmdlet.parameters, **data.COMMON_PARAMETERS}
    problems += check_parameters(script, command, cmdlet.name, params, data.ws2012r2_parameters().get(lower))
    return problems


def command_problems(script: Script) -> list[Problem]:
    """Every command of the script checked against the script's functions and the cmdlet table."""
    guarded = guarded_commands(script)
    problems = []
    for command in script.commands:
        if NOT_A_COMMAND.fullmatch(command.name):
            continue  # tree-sitter reads "1..3 | ..." as a command named 1..3; PowerShell reads a number there
        problems += check_command(script, command, guarded)
    return problems
