"""Fixtures of the transport tests (helpers live in labtools.py)."""

from __future__ import annotations

import typing as t
from pathlib import Path

import pytest

from tests.integration.lab.labtools import (
    ECHO_SCRIPT, FAIL_SCRIPT, RunningLab, crashing_twin, echo_twin, failing_twin, start_standin_lab,
)
from tests.lab import dispatch, twins


@pytest.fixture
def test_scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A host-script folder with lab_echo.ps1, lab_fail.ps1 and lab_crash.ps1, and their twins registered."""
    folder = tmp_path / "host_scripts"
    folder.mkdir()
    scripts = {"lab_echo": ECHO_SCRIPT, "lab_fail": FAIL_SCRIPT, "lab_crash": ECHO_SCRIPT.replace("test script", "crash")}
    for name, text in scripts.items():
        (folder / f"{name}.ps1").write_text(text, encoding="utf-8")
    monkeypatch.setattr(dispatch, "SCRIPT_DIR", str(folder))
    monkeypatch.setitem(twins.TWINS, "lab_echo", echo_twin)
    monkeypatch.setitem(twins.TWINS, "lab_fail", failing_twin)
    monkeypatch.setitem(twins.TWINS, "lab_crash", crashing_twin)
    return scripts


@pytest.fixture
def standin_lab(tmp_path: Path) -> t.Iterator[RunningLab]:
    """One stand-in host served in-process."""
    running = start_standin_lab(1, tmp_path)
    try:
        yield running
    finally:
        running.thread.stop()
