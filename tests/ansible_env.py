"""The environment every test uses to run an Ansible tool: this venv first, the working tree's collection.

One place for it: the pytest fixtures (tests/conftest.py), the quality-tool wrappers
(tests/quality/helpers.py) and the module tests run Ansible the same way. ``controller="2.16"`` runs the
tool from the older ansible-core that ``make test`` installs in ``.cache/venvs/ansible-2.16`` instead
(tests/ansible-versions/<version>.txt); the lab itself always runs in this venv.
"""

from __future__ import annotations

import os
import sys
import typing as t
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
COLLECTIONS_PATH = REPO_ROOT / ".cache" / "collections"
BIN_DIR = Path(sys.executable).parent
CONTROLLER_VENVS = REPO_ROOT / ".cache" / "venvs"
# The ansible-core versions besides this venv's that the protocol, host_facts and diagnose tests run on
# (meta/runtime.yml requires_ansible; one tests/ansible-versions/<version>.txt each).
OLDER_CONTROLLERS = ("2.16", "2.17", "2.18")


def controller_bin(controller: str | None = None) -> Path:
    """The bin folder of the venv that runs Ansible: this one, or ``.cache/venvs/ansible-<controller>``."""
    if controller is None:
        return BIN_DIR
    if controller not in OLDER_CONTROLLERS:
        raise ValueError(f"no controller venv for ansible-core {controller!r}; known: {OLDER_CONTROLLERS}")
    return CONTROLLER_VENVS / f"ansible-{controller}" / "bin"


def ansible_env(extra: t.Mapping[str, str] | None = None, controller: str | None = None) -> dict[str, str]:
    """os.environ plus: the collection path, the controller's venv on PATH and as the Python, no colour, no retry files."""
    bin_dir = controller_bin(controller)
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS_PATH),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable if controller is None else str(bin_dir / "python"),
        "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
    })
    env.update(extra or {})
    return env
