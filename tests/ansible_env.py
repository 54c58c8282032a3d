"""The environment every test uses to run an Ansible tool: this venv first, the working tree's collection.

One place for it: the pytest fixtures (tests/conftest.py), the quality-tool wrappers
(tests/quality/helpers.py) and the module tests run Ansible the same way.
"""

from __future__ import annotations

import os
import sys
import typing as t
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = REPO_ROOT / ".cache" / "collections"
BIN_DIR = Path(sys.executable).parent


def ansible_env(extra: t.Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ plus: the collection path, this venv on PATH and as the Python, no colour, no retry files."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "PATH": os.pathsep.join([str(BIN_DIR), env.get("PATH", "")]),
    })
    env.update(extra or {})
    return env
