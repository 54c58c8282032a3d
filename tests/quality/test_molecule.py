"""The molecule ``lab`` scenario: create (start the lab), converge, idempotence, verify, destroy."""

from __future__ import annotations

import pytest

import re

from tests.quality.helpers import run_tool

pytestmark = [pytest.mark.quality, pytest.mark.lab]


def test_molecule_lab_scenario() -> None:
    """Every step succeeds: converge remediates the faulty hosts, idempotence re-runs it with nothing left to change, verify diagnoses clean."""
    proc = run_tool(["molecule", "test", "-s", "lab"], timeout=900, NO_COLOR="1", PY_COLORS="0")
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    for step in ("syntax", "create", "converge", "idempotence", "verify", "destroy"):
        assert re.search(rf"\[lab > {step}\] Executed: Successful", output), f"step {step} did not succeed:\n{output[-3000:]}"
