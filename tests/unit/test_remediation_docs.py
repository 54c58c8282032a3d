"""docs/remediation.md says, for every finding id of the catalogue, what remediate does, and has a section per module."""

from __future__ import annotations

import pathlib
import re

from ansible_collections.rdp.doctor.plugins.module_utils import findings
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "remediation.md"


def _table_ids() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index("## Every finding"):text.index("## Guards")]
    return set(re.findall(r"RDP-[A-Z0-9-]+[A-Z0-9]", section))


def test_every_finding_id_has_a_row() -> None:
    assert set(findings.CATALOGUE) - _table_ids() == set()
    assert _table_ids() - set(findings.CATALOGUE) == set()


def test_every_module_has_a_section() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert [m for m in remediation_plan.MODULES if f"## rdp.doctor.{m}\n" not in text] == []
