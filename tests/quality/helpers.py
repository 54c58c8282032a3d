"""Run an external quality tool and fail with its own output, trimmed to what matters."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for tools: the venv first on PATH, the collection on ANSIBLE_COLLECTIONS_PATH."""
    env = dict(os.environ)
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(ROOT, ".cache", "collections")
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env.update(extra)
    return env


def run_tool(args: list[str], cwd: str = ROOT, timeout: int = 900, **extra: str) -> subprocess.CompletedProcess:
    """Run ``args``; on a non-zero exit, fail the calling test with the tool's last output lines."""
    proc = subprocess.run(args, cwd=cwd, env=tool_env(**extra), capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        lines = (proc.stdout + "\n" + proc.stderr).strip().splitlines()
        errors = [line for line in lines if "ERROR" in line or "FATAL" in line][:120]
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}:\n" + "\n".join(errors + ["..."] + lines[-40:]))
    return proc
