""".NET types: each one a script names exists in .NET Framework 4.5, or the script tests for it first."""

from __future__ import annotations

import re

from . import data
from .commands import resolve_parameter
from .csharp import blocks, namespaces
from .problem import Problem
from .syntax import Script, line_of, string_value, text_of

# Not types: [ordered] is syntax for an ordered dictionary literal.
SYNTAX_WORDS = {"ordered"}


def guarded_types(script: Script) -> set[str]:
    """Lower-case type names the script tests with ``'<name>' -as [type]``."""
    return {m.lower() for m in re.findall(r"""['"]([\w.+`]+)['"]\s*-as\s*\[type\]""", script.source.decode("utf-8", "replace"),
                                          re.IGNORECASE)}


def named_types(script: Script) -> list[tuple[int, str, bool]]:
    """(line, type name as written, is an attribute) of every type literal, attribute, cast, catch type and New-Object."""
    found = []
    for node in script.nodes:
        if node.type == "type_name" and (node.parent is None or node.parent.type != "type_name"):
            in_attribute = node.parent is not None and node.parent.parent is not None and node.parent.parent.type == "attribute_name"
            found.append((line_of(node), text_of(node), in_attribute))
    new_object = data.cmdlets()["new-object"]
    params = {**new_object.parameters, **data.COMMON_PARAMETERS}
    for command in script.commands:
        if re.sub(r".*\\", "", command.name).lower() != "new-object":
            continue
        arguments = [(resolve_parameter(w, params)[0] if w is not None else None, v) for w, v in command.arguments()]
        if any(p == "ComObject" for p, _v in arguments):
            continue
        value = next((v for p, v in arguments if p == "TypeName" and v is not None), None)
        value = value or next((v for p, v in arguments if p is None and v is not None), None)
        name = string_value(value) if value is not None else None
        if name:
            found.append((command.line, re.sub(r"\[.*", "", name), False))
    return found


def type_problems(script: Script) -> list[Problem]:
    """Unknown types (not in data/dotnet45-types.json) and types of a later .NET Framework, unless guarded."""
    accelerators = data.type_accelerators()
    known = data.dotnet45_types()
    newer = data.dotnet_newer_types()
    guarded = guarded_types(script)
    own = {ns.lower() for block in blocks(script)[0] for ns in namespaces(block.source)}
    problems = []
    for line, written, attribute in named_types(script):
        lower = written.lower()
        names = [lower] + ([lower + "attribute"] if attribute else [])
        if any(n in accelerators or n in SYNTAX_WORDS for n in names):
            continue
        candidates = [c for n in names for c in (n, "system." + n)]
        if any(c.split("+")[0] in known for c in candidates):
            continue
        if any(c.startswith(ns + ".") for c in candidates for ns in own):
            continue  # declared by the script's own Add-Type block
        if any(c in guarded for c in candidates):
            continue
        late = next((c for c in candidates if c in newer), None)
        if late is not None:
            full = next(n for n in data.dotnet_full_names() if n.lower() == late)
            problems.append(Problem(line, "dotnet-newer-type", f"[{written}] needs {newer[late]}: test "
                                    f"('{full}' -as [type]) first (Windows Server 2012 R2 has .NET Framework 4.5.1)"))
        else:
            problems.append(Problem(line, "dotnet-unknown-type", f"[{written}] is not a known .NET Framework 4.5 type: check its "
                                    "'Applies to' on learn.microsoft.com and add it to data/dotnet45-types.json"))
    return problems
