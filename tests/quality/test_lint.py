"""ansible-lint with the production profile over roles, playbooks and the molecule scenarios."""

from __future__ import annotations

import pytest

from tests.quality.helpers import run_tool

pytestmark = pytest.mark.quality


def test_ansible_lint_production_profile() -> None:
    """No violation at the production profile (configured in .ansible-lint)."""
    proc = run_tool(["ansible-lint", "--offline", "--profile", "production", "--nocolor"], timeout=900)
    assert "Failed" not in proc.stdout
