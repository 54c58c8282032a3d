"""ansible-lint with the production profile over roles, playbooks and the molecule scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.quality.helpers import run_tool

pytestmark = pytest.mark.quality


def test_ansible_lint_production_profile(tmp_path: Path) -> None:
    """No violation at the production profile (configured in .ansible-lint).

    ansible-lint installs the collection it lints into ``~/.ansible/collections`` and keeps an earlier copy of the
    same version there; a home of its own makes it lint this working tree, not a copy an earlier run left behind.
    """
    home = tmp_path / "home"
    home.mkdir()
    proc = run_tool(["ansible-lint", "--offline", "--profile", "production", "--nocolor"], timeout=900, HOME=str(home))
    output = proc.stdout + proc.stderr
    assert "Failed" not in output and "Passed: 0 failure(s)" in output, output[-2000:]
