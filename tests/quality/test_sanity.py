"""``ansible-test sanity`` on a copy of the collection laid out as ansible-test wants it.

ansible-test needs the collection at ``.../ansible_collections/rdp/doctor`` (physically, not through
a symlink), so the files git knows about (tracked or new, never ignored ones such as tests/output or
.venv) are copied there first.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.quality.helpers import ROOT, run_tool

pytestmark = pytest.mark.quality

COPY_ROOT = os.path.join(ROOT, ".cache", "ansible-test")
COPY = os.path.join(COPY_ROOT, "ansible_collections", "rdp", "doctor")


def collection_files() -> list[str]:
    """Files of the collection as git sees them: tracked and untracked-but-not-ignored."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in out.stdout.decode().split("\0") if name and os.path.isfile(os.path.join(ROOT, name))]


def make_copy() -> str:
    """A fresh physical copy of the collection for ansible-test."""
    shutil.rmtree(COPY_ROOT, ignore_errors=True)
    for name in collection_files():
        target = os.path.join(COPY, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), target)
    return COPY


def test_ansible_test_sanity() -> None:
    """Every sanity test ansible-core 2.19 runs for a collection passes (pslint needs pwsh: see docs)."""
    copy = make_copy()
    proc = run_tool(["ansible-test", "sanity", "--python", "3.11", "--color", "no"], cwd=copy, timeout=1500)
    assert "ERROR" not in proc.stdout, proc.stdout[-4000:]
