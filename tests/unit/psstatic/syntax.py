"""The parsed script: tree-sitter-powershell tree plus the small queries every rule needs."""

from __future__ import annotations

import dataclasses
import functools
import re
import typing as t

import tree_sitter
import tree_sitter_powershell

PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def walk(node: tree_sitter.Node) -> t.Iterator[tree_sitter.Node]:
    """Every node below ``node``, depth first, in source order."""
    yield node
    for child in node.children:
        yield from walk(child)


def line_of(node: tree_sitter.Node) -> int:
    """1-based line of a node."""
    return node.start_point[0] + 1


def text_of(node: tree_sitter.Node) -> str:
    """A node's source text."""
    return node.text.decode("utf-8") if node.text is not None else ""


def string_value(node: tree_sitter.Node) -> str | None:
    """The value of a string literal node (or a bare word), without expanding variables; None if not a string."""
    text = text_of(node).strip()
    if node.type == "generic_token":
        return text
    if node.type not in ("string_literal", "array_literal_expression", "unary_expression"):
        return None
    if re.fullmatch(r"@(['\"])\r?\n.*\r?\n\1@", text, re.DOTALL):  # here-string: the lines between the markers
        return re.sub(r"\A@['\"]\r?\n", "", re.sub(r"\r?\n['\"]@\Z", "", text))
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1]
    return None


@dataclasses.dataclass(frozen=True)
class Command:
    """One command invocation: its name as written, its elements, and the node."""

    name: str
    node: tree_sitter.Node
    elements: tuple[tree_sitter.Node, ...]

    @property
    def line(self) -> int:
        return line_of(self.node)

    def parameters(self) -> list[tree_sitter.Node]:
        """The ``-Name`` nodes passed to this command (not those of nested commands)."""
        return [e for e in self.elements if e.type == "command_parameter" and re.match(r"-[A-Za-z_?]", text_of(e))]

    def arguments(self) -> list[tuple[str | None, tree_sitter.Node | None]]:
        """(parameter as written without '-', or None when positional; value node, or None for a switch).

        A parameter takes the next element as its value: the checker only reads the values of parameters
        that take one (Add-Type, Get-Command, New-Object), so switches followed by a value never matter."""
        out: list[tuple[str | None, tree_sitter.Node | None]] = []
        pending: str | None = None
        for element in self.elements:
            if element.type in ("command_argument_sep", "comment"):
                continue
            if element.type == "command_parameter" and re.match(r"-[A-Za-z_?]", text_of(element)):
                if pending is not None:
                    out.append((pending, None))
                pending = text_of(element)[1:].rstrip(":")
                continue
            if element.type == "argument_list" and out:  # New-Object Type(args): belongs to the type
                continue
            out.append((pending, element))
            pending = None
        if pending is not None:
            out.append((pending, None))
        return out


@dataclasses.dataclass(frozen=True)
class Function:
    """A function the script defines: its parameters and whether it is advanced (takes common parameters)."""

    name: str
    line: int
    parameters: tuple[str, ...]
    advanced: bool


class Script:
    """A PowerShell text, parsed once; the rules query it."""

    def __init__(self, label: str, source: bytes) -> None:
        self.label = label
        self.source = source
        self.root = PARSER.parse(source).root_node
        self.nodes = list(walk(self.root))
        self.lines = source.decode("utf-8", errors="replace").splitlines()

    @functools.cached_property
    def code_only(self) -> str:
        """The text with comments and string literals blanked (newlines kept, so line numbers stay right)."""
        text = bytearray(self.source)
        for node in self.nodes:
            if node.type in ("comment", "string_literal"):
                for index in range(node.start_byte, node.end_byte):
                    if text[index] not in (0x0A, 0x0D):
                        text[index] = 0x20
        return text.decode("utf-8", errors="replace")

    @functools.cached_property
    def commands(self) -> list[Command]:
        """Every command invoked by name (``& $var`` and ``& (expr)`` have no name and are skipped)."""
        found = []
        for node in self.nodes:
            if node.type != "command":
                continue
            name_node = next((c for c in node.children if c.type == "command_name"), None)
            if name_node is None:
                expr = next((c for c in node.children if c.type == "command_name_expr"), None)
                name_node = next((c for c in expr.children if c.type == "command_name"), None) if expr else None
            if name_node is None:
                continue
            elements = next((c for c in node.children if c.type == "command_elements"), None)
            found.append(Command(text_of(name_node), node, tuple(elements.children) if elements else ()))
        return found

    @functools.cached_property
    def functions(self) -> dict[str, Function]:
        """Functions (and filters) defined anywhere in the script, by lower-case name."""
        out = {}
        for node in self.nodes:
            if node.type != "function_statement":
                continue
            name = next((text_of(c) for c in node.children if c.type == "function_name"), "")
            declared = next((c for c in node.children if c.type == "function_parameter_declaration"), None)
            body = next((c for c in node.children if c.type == "script_block"), None)
            block = declared or (next((c for c in body.children if c.type == "param_block"), None) if body else None)
            params: list[str] = []
            advanced = False
            if block is not None:
                for sub in walk(block):
                    if sub.type == "script_parameter":
                        variable = next((c for c in sub.children if c.type == "variable"), None)
                        if variable is not None:
                            params.append(text_of(variable).lstrip("$"))
                    if sub.type == "attribute_name" and text_of(sub).lower() in ("cmdletbinding", "parameter"):
                        advanced = True
            out[name.lower()] = Function(name, line_of(node), tuple(params), advanced)
        return out

    def top_level_statements(self) -> list[tree_sitter.Node]:
        """The script's top-level statements, in order (param block and comments excluded)."""
        body = next((c for c in self.root.children if c.type == "statement_list"), None)
        return [] if body is None else [c for c in body.children if c.type not in ("comment", "empty_statement")]

    def line_has_pragma(self, line: int, rule: str) -> bool:
        """``# rd-static: allow <rule> <reason>`` on the line or the line above (a reason is required)."""
        pattern = re.compile(rf"#\s*rd-static:\s*allow\s+{re.escape(rule)}\s+\S", re.IGNORECASE)
        return any(0 < n <= len(self.lines) and pattern.search(self.lines[n - 1]) for n in (line, line - 1))
