"""Run an external quality tool and fail with its own output, trimmed to what matters."""

from __future__ import annotations

import subprocess

from tests.ansible_env import REPO_ROOT, ansible_env

ROOT = str(REPO_ROOT)


def run_tool(args: list[str], cwd: str = ROOT, timeout: int = 900, **extra: str) -> subprocess.CompletedProcess:
    """Run ``args``; on a non-zero exit, fail the calling test with the tool's last output lines."""
    proc = subprocess.run(args, cwd=cwd, env=ansible_env(extra), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        lines = (proc.stdout + "\n" + proc.stderr).strip().splitlines()
        errors = [line for line in lines if "ERROR" in line or "FATAL" in line][:120]
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n" + "\n".join(errors + ["..."] + lines[-40:]))
    return proc
