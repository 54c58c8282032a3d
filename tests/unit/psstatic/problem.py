"""What a rule reports."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, order=True)
class Problem:
    """One problem: the 1-based line, the rule's id (docs/dev/powershell.md "Static checks") and what is wrong."""

    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: [{self.rule}] {self.message}"
