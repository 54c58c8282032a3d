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
# Sanity tests that must actually run (not be skipped as "not applicable") for the suite to count.
EXPECTED_TESTS = ("action-plugin-docs", "ansible-doc", "compile", "import", "pep8", "pylint", "validate-modules", "yamllint", "changelog")


def collection_files() -> list[str]:
    """Files of the collection as git sees them: tracked and untracked-but-not-ignored."""
    out = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in out.stdout.decode().split("\0") if name and os.path.isfile(os.path.join(ROOT, name))]


def make_copy() -> str:
    """A fresh physical copy of the collection for ansible-test, as a git repository of its own.

    ansible-test lists a collection's files with git when it finds a repository above the working
    directory; without one of its own the copy would be seen through the outer repository, which
    ignores .cache/, and every target would be skipped.
    """
    shutil.rmtree(COPY_ROOT, ignore_errors=True)
    for name in collection_files():
        target = os.path.join(COPY, name)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), target)
    subprocess.run(["git", "init", "-q"], cwd=COPY, check=True)
    subprocess.run(["git", "add", "-A"], cwd=COPY, check=True)
    return COPY


def test_ansible_test_sanity() -> None:
    """Every sanity test ansible-core 2.19 runs for a collection passes (pslint needs pwsh: see docs)."""
    copy = make_copy()
    proc = run_tool(["ansible-test", "sanity", "--python", "3.11", "--color", "no"], cwd=copy, timeout=1500)
    output = proc.stdout + proc.stderr
    assert "ERROR" not in output, output[-4000:]
    assert "All targets skipped" not in output
    for test in EXPECTED_TESTS:
        assert f'Running sanity test "{test}"' in output, f"sanity test {test} did not run:\n{output[-3000:]}"
