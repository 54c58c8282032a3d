"""Static checks of Windows PowerShell 5.1 scripts (no Windows host runs here, so the text itself is checked).

The package's entry points (its ``__init__.py`` stays empty, as ansible-test requires under tests/unit).
``check_source(label, source)`` returns the problems of one script; ``python -m tests.unit.psstatic FILE...``
prints them. The rules and their data sources: docs/dev/powershell.md, section "Static checks".
"""

from __future__ import annotations

import pathlib

from .commands import command_problems
from .csharp import add_type_problems
from .dotnet import type_problems
from .language import automatic_variables, bare_foreach_assignments, preamble, ps7_syntax, syntax_errors
from .problem import Problem
from .syntax import Script

RULES = (syntax_errors, ps7_syntax, preamble, command_problems, type_problems, add_type_problems,
         automatic_variables, bare_foreach_assignments)


def check_source(label: str, source: bytes) -> list[Problem]:
    """Every problem of one PowerShell text, sorted by line."""
    script = Script(label, source)
    return sorted({problem for rule in RULES for problem in rule(script)})


def check_file(path: pathlib.Path) -> list[Problem]:
    """Every problem of one .ps1 file."""
    return check_source(str(path), path.read_bytes())


__all__ = ["Problem", "Script", "RULES", "check_source", "check_file"]
