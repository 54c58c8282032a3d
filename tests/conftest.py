"""Shared pytest fixtures: the lab fleet and Ansible command runners.

* ``lab_fleet`` (session): a factory ``lab_fleet(fleet=..., hosts_limit=None, rdp=True, fresh=False) ->
  tests.lab.cli.LabInfo``. It starts the fleet with the same code as ``python -m tests.lab start``, in a
  temporary state dir and on a loopback block of its own (127.<100-199>.N.2 onwards, so a developer's
  lab and other test sessions keep running), and stops it at the end of the session. The same fleet
  file and options give the same shared lab; ``fresh=True`` gives a lab of the caller's own (use it when
  a test changes hosts; ``lab_fleet.stop(info)`` stops it early).
  ``info.inventory`` (winrm) / ``info.inventory_for("psrp")`` are the inventories, ``info.admin`` the
  admin API client (counters, transport faults, model faults).
* ``run_ansible`` / ``run_playbook``: run ``ansible`` / ``ansible-playbook`` from this venv with the
  collection on ``ANSIBLE_COLLECTIONS_PATH`` (``<repo>/.cache/collections``); they return the
  ``subprocess.CompletedProcess`` (text mode).

Nothing here imports the lab at module level, so this file stays importable while the lab is built.
"""

from __future__ import annotations

import os
import subprocess
import typing as t
from pathlib import Path

import pytest

from tests.ansible_env import BIN_DIR, REPO_ROOT, ansible_env


def _tool(name: str) -> str:
    """The ansible executable next to this interpreter (the project venv), else the one on PATH."""
    candidate = BIN_DIR / name
    return str(candidate) if candidate.exists() else name


def run_ansible_command(args: t.Sequence[str], inventory: str | Path, env: t.Mapping[str, str] | None = None,
                        timeout: float = 300.0) -> subprocess.CompletedProcess:
    """``ansible -i <inventory> <args...>``."""
    return subprocess.run([_tool("ansible"), "-i", str(inventory), *args], env=ansible_env(env), capture_output=True,
                          text=True, timeout=timeout, check=False, cwd=REPO_ROOT)


def run_playbook_command(playbook: str | Path, inventory: str | Path, args: t.Sequence[str] = (),
                         env: t.Mapping[str, str] | None = None, timeout: float = 600.0) -> subprocess.CompletedProcess:
    """``ansible-playbook -i <inventory> <playbook> <args...>``."""
    return subprocess.run([_tool("ansible-playbook"), "-i", str(inventory), str(playbook), *args], env=ansible_env(env),
                          capture_output=True, text=True, timeout=timeout, check=False, cwd=REPO_ROOT)


@pytest.fixture(scope="session")
def run_ansible() -> t.Callable[..., subprocess.CompletedProcess]:
    """``run_ansible(args, inventory, env=None, timeout=300)``."""
    return run_ansible_command


@pytest.fixture(scope="session")
def run_playbook() -> t.Callable[..., subprocess.CompletedProcess]:
    """``run_playbook(playbook, inventory, args=(), env=None, timeout=600)``."""
    return run_playbook_command


class LabFleetFactory:
    """Starts labs for a test session and stops them all at its end."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.labs: dict[tuple[t.Any, ...], t.Any] = {}
        self.state_dirs: list[Path] = []
        from tests.lab.cli import address_blocks  # pylint: disable=import-outside-toplevel

        self._blocks = address_blocks(os.getpid())

    def __call__(self, fleet: str | Path | None = None, hosts_limit: int | None = None, rdp: bool = True,
                 fresh: bool = False, timeout: float = 120.0) -> t.Any:
        from tests.lab import cli  # pylint: disable=import-outside-toplevel

        fleet_path = Path(fleet or cli.DEFAULT_FLEET).resolve()
        key = (fleet_path, hosts_limit, rdp)
        if key in self.labs and not fresh:
            return self.labs[key]
        info = self._start(fleet_path, hosts_limit, rdp, timeout)
        if not fresh:
            self.labs[key] = info  # a fresh lab is the caller's alone: never handed to another test
        return info

    def _start(self, fleet_path: Path, hosts_limit: int | None, rdp: bool, timeout: float) -> t.Any:
        from tests.lab import cli  # pylint: disable=import-outside-toplevel

        last: Exception | None = None
        for _attempt in range(5):
            state_dir = self.base_dir / f"lab{len(self.state_dirs)}"
            self.state_dirs.append(state_dir)
            try:
                info = cli.start_lab(fleet_path, state_dir, hosts_limit=hosts_limit, first_address=next(self._blocks),
                                     watch_pid=os.getpid(), rdp=rdp, timeout=timeout)
            except cli.LabError as exc:
                if "already in use" not in str(exc):
                    raise
                last = exc  # another session holds that block: take the next one
                continue
            return info
        raise RuntimeError(f"could not find a free loopback block for the lab: {last}")

    def stop(self, info: t.Any) -> None:
        """Stop one lab early (e.g. a big fresh one); the factory forgets it."""
        from tests.lab import cli  # pylint: disable=import-outside-toplevel

        cli.stop_lab(info.state_dir)
        self.labs = {key: value for key, value in self.labs.items() if value.state_dir != info.state_dir}

    def stop_all(self) -> None:
        """Stop every lab this factory started."""
        from tests.lab import cli  # pylint: disable=import-outside-toplevel

        for state_dir in self.state_dirs:
            cli.stop_lab(state_dir)
        self.labs.clear()


@pytest.fixture(scope="session")
def lab_fleet(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[LabFleetFactory]:
    """Factory of running lab fleets (see the module docstring); every lab is stopped at session end."""
    factory = LabFleetFactory(tmp_path_factory.mktemp("lab"))
    try:
        yield factory
    finally:
        factory.stop_all()
