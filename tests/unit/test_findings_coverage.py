"""docs/findings.md ends with the coverage table of Microsoft's checks (issue 12): one row per check of the audit, each
naming the findings or facts that cover it, or why it is left out."""

from __future__ import annotations

import pathlib
import re

from ansible_collections.rdp.doctor.plugins.module_utils import findings
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "findings.md"
#: The audit's check ids: the 68 host-listener checks of msrd-coverage.md and the 8 none of Microsoft's tools make.
AUDIT_IDS = [str(n) for n in range(1, 69)] + [f"M{n}" for n in range(1, 9)]


def _rows() -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("\n## Coverage of Microsoft's checks\n", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| check ")]
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows if not set(row) <= set("|- ")]


def test_every_check_of_the_audit_has_exactly_one_row() -> None:
    ids = [row[0] for row in _rows()]
    assert sorted(ids, key=AUDIT_IDS.index) == AUDIT_IDS  # each once, none unknown
    assert ids == AUDIT_IDS  # in the audit's order


def test_every_row_is_covered_or_explained() -> None:
    for check, what, covered, notes in _rows():
        assert what and covered, check
        if covered in ("left out", "N/A"):
            assert notes, f"check {check} is {covered} without a reason"


def test_named_findings_and_facts_exist() -> None:
    facts = hf.normalize(samples.healthy_raw(), samples.NOW, [])
    for check, _what, covered, notes in _rows():
        for finding_id in re.findall(r"RDP-[A-Z0-9]+(?:-[A-Z0-9]+)*(?![A-Za-z0-9])", covered + " " + notes):
            assert finding_id in findings.CATALOGUE, (check, finding_id)
        for name in re.findall(r"fact `([a-z_]+)`", covered + " " + notes):
            assert name in facts, (check, name)
