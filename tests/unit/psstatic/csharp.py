"""Add-Type C#: every -TypeDefinition / -MemberDefinition block compiles as C# 5 with warnings as errors.

Windows PowerShell 5.1 compiles Add-Type with the .NET Framework's C# 5 compiler, references ``System.dll``
and ``System.Management.Automation.dll`` by default (Add-Type docs, -ReferencedAssemblies) and treats
warnings as errors unless -IgnoreWarnings. Here Mono's ``mcs -langversion:5 -noconfig`` stands in:
``-noconfig`` drops mcs's own default references so a missing ``System.Core`` fails here as on Windows.
System.Management.Automation has no Mono equivalent; C# using it cannot be checked (it fails to compile).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import pathlib
import re
import shutil
import subprocess
import tempfile
import typing as t

import tree_sitter

from . import data
from .commands import resolve_parameter
from .problem import Problem
from .syntax import Command, Script, line_of, string_value, text_of, walk

MCS = "mcs"
MEMBER_TEMPLATE = ("using System;\nusing System.Runtime.InteropServices;\n{usings}namespace {namespace}\n{{\n"
                   "public class {name}\n{{\n{members}\n}}\n}}\n")


@dataclasses.dataclass(frozen=True)
class Block:
    """One Add-Type C# source: where, the C# text, the extra references and whether warnings fail."""

    line: int
    source: str
    first_line: int | None  # the script line of the C# text's line 1, when the text is one literal of the script
    references: tuple[str, ...]
    warnings_fail: bool


def assigned_strings(script: Script, variable: str) -> list[tuple[str, int]]:
    """Literal string values assigned to ``$variable`` anywhere in the script."""
    values = []
    for node in script.nodes:
        if node.type != "assignment_expression" or len(node.children) < 3:
            continue
        target, value = node.children[0], node.children[-1]
        if text_of(target).strip().lower() != variable.lower():
            continue
        literal = next((n for n in walk(value) if n.type == "string_literal"), None)
        if literal is not None and text_of(literal).strip() == text_of(value).strip():
            text = string_value(literal)
            if text is not None:
                values.append((text, _first_line(literal)))
    return values


def value_text(script: Script, node: tree_sitter.Node) -> tuple[str | None, int | None, str]:
    """(the string an argument stands for, the script line of its first line, why not) — a literal, or a
    variable assigned one literal."""
    literal = next((n for n in walk(node) if n.type == "string_literal"), None)
    if literal is not None and text_of(literal).strip() == text_of(node).strip():
        return string_value(literal), _first_line(literal), ""
    text = text_of(node).strip()
    if re.fullmatch(r"\$[\w:]+", text):
        values = assigned_strings(script, text)
        if len(values) == 1:
            return values[0][0], values[0][1], ""
        return None, None, f"{text} is assigned {len(values)} literal strings (need exactly one)"
    return None, None, f"{text[:40]!r} is neither a string literal nor a variable holding one"


def _first_line(literal: tree_sitter.Node) -> int:
    """A here-string's text starts on the line after its @' marker; a quoted string on its own line."""
    return line_of(literal) + (1 if text_of(literal).startswith("@") else 0)


def blocks(script: Script) -> tuple[list[Block], list[Problem]]:
    """The C# blocks of the script's Add-Type commands, and problems finding them."""
    found, problems = [], []
    add_type = data.cmdlets()["add-type"]
    params = {**add_type.parameters, **data.COMMON_PARAMETERS}
    for command in script.commands:
        if re.sub(r".*\\", "", command.name).lower() != "add-type":
            continue
        named: dict[str, t.Optional[tree_sitter.Node]] = {}
        positional: list[t.Optional[tree_sitter.Node]] = []
        for written, value in command.arguments():
            if written is None:
                positional.append(value)
            else:
                resolved = resolve_parameter(written, params)[0]
                if resolved is not None:
                    named[resolved] = value
        if any(k in named for k in ("AssemblyName", "Path", "LiteralPath")):
            continue
        if "MemberDefinition" not in named and "TypeDefinition" not in named:
            if len(positional) == 1:
                named["TypeDefinition"] = positional[0]
            elif len(positional) == 2:
                named["Name"], named["MemberDefinition"] = positional
        block = _block(script, command, named)
        if isinstance(block, Problem):
            problems.append(block)
        elif block is not None:
            found.append(block)
    return found, problems


def _block(script: Script, command: Command, named: dict[str, t.Optional[tree_sitter.Node]]) -> Block | Problem | None:
    """The C# block of one Add-Type command (None when it compiles another language)."""

    def word(key: str) -> str | None:
        node = named.get(key)
        return string_value(node) if node is not None else None

    def words(key: str) -> list[str]:
        node = named.get(key)
        return [w.strip().strip("'\"") for w in text_of(node).split(",") if w.strip()] if node is not None else []

    if (word("Language") or "csharp").lower() != "csharp":
        return None
    source_node = named.get("TypeDefinition") or named.get("MemberDefinition")
    if source_node is None:
        return Problem(command.line, "add-type-source", "Add-Type without -TypeDefinition, -MemberDefinition or an assembly")
    source, first_line, why = value_text(script, source_node)
    if source is None:
        return Problem(command.line, "add-type-source", f"cannot find the C# source of Add-Type: {why}")
    if "TypeDefinition" not in named:  # -MemberDefinition: the class Add-Type generates around the members
        usings = "".join(f"using {u};\n" for u in words("UsingNamespace"))
        namespace = word("Namespace") or "Microsoft.PowerShell.Commands.AddType.AutoGeneratedTypes"
        source = MEMBER_TEMPLATE.format(usings=usings, namespace=namespace, name=word("Name") or "Generated", members=source)
        first_line = None
    return Block(line_of(source_node), source, first_line, tuple(words("ReferencedAssemblies")), "IgnoreWarnings" not in named)


def mono_reference(name: str) -> str:
    """An assembly name as Add-Type takes it ('System.Core', 'System.Core.dll', a path) as mcs's -r: value."""
    base = pathlib.PureWindowsPath(name).name
    return base if base.lower().endswith(".dll") else base + ".dll"


def namespaces(source: str) -> set[str]:
    """Namespaces a C# block declares (types the script may then name)."""
    return set(re.findall(r"\bnamespace\s+([\w.]+)", source))


@functools.cache
def compile_errors(source: str, references: tuple[str, ...], warnings_fail: bool) -> tuple[str, ...]:
    """mcs's error and warning lines for one block (empty = it compiles); cached per block."""
    if shutil.which(MCS) is None:
        return (f"{MCS} not found: install Debian's mono-mcs (bindep.txt, profile test)",)
    refs = ["System.dll"] + [mono_reference(r) for r in references if mono_reference(r).lower() != "system.management.automation.dll"]
    with tempfile.TemporaryDirectory(prefix="psstatic-") as tmp:
        digest = hashlib.sha256(source.encode()).hexdigest()[:12]
        cs = pathlib.Path(tmp) / f"addtype-{digest}.cs"
        cs.write_text(source, encoding="utf-8")
        command = [MCS, "-noconfig", "-langversion:5", "-target:library", "-nologo", f"-out:{tmp}/out.dll",
                   *(f"-r:{r}" for r in dict.fromkeys(refs))]
        if warnings_fail:
            command.append("-warnaserror+")
        command.append(str(cs))
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    lines = [re.sub(r"^.*?addtype-\w+\.cs", "", line).strip() for line in (result.stdout + result.stderr).splitlines()
             if re.search(r"\berror CS\d+", line)]
    if result.returncode != 0 and not lines:
        lines = [f"mcs exited {result.returncode}: {(result.stdout + result.stderr).strip()[:300]}"]
    return tuple(lines)


def add_type_problems(script: Script) -> list[Problem]:
    """Each Add-Type C# block compiles as C# 5 (warnings as errors unless -IgnoreWarnings)."""
    found, problems = blocks(script)
    for block in found:
        for error in compile_errors(block.source, block.references, block.warnings_fail):
            position = re.match(r"\((\d+),\d+\):?\s*", error)
            line = block.line
            if position and block.first_line is not None:
                line = block.first_line + int(position.group(1)) - 1
            problems.append(Problem(line, "add-type-compile", f"C# 5 (mcs): {error}"))
    return problems
