"""Open an HTML report in headless Chromium: the DOM after load, the console messages, a screenshot.

Used by the HTML report's tests and by ``make demo`` (``tools/screenshot-report.sh``)::

    python -m tests.report_browser screenshot reports/report.html [reports/report.png]
    python -m tests.report_browser check reports/report.html      # exit 1 on any console message

Chromium (Debian's ``chromium``, bindep test profile) runs as a child in its own process group with a
throw-away profile; on a timeout that group (and only it) is killed by its id. As root it needs
``--no-sandbox``. ``--enable-logging=stderr`` writes every console message of the page as a
``CONSOLE`` line (errors, warnings, Content Security Policy violations, uncaught exceptions).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# `[pid:tid:time:INFO:CONSOLE:12] "message", source: file:///... (12)` (older builds: `INFO:CONSOLE(12)]`).
CONSOLE_LINE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)$")
TIMEOUT_SECONDS = 90


@dataclasses.dataclass(frozen=True)
class PageLoad:
    """What Chromium saw: the serialised DOM after load (and after the page's scripts ran) and the console."""

    dom: str
    console: list[str]


def chromium_binary() -> str:
    """The Chromium executable on PATH; a clear error when there is none."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium; bindep.txt, profile test)")


def _run(extra: list[str], page: Path, cwd: Path) -> subprocess.CompletedProcess:
    """Run headless Chromium once on ``page`` with a temporary profile; kill its process group on a timeout."""
    with tempfile.TemporaryDirectory(prefix="rdp-doctor-chromium-") as profile:
        args = [chromium_binary(), "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        proc = subprocess.Popen(args + extra + [page.resolve().as_uri()], cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise RuntimeError(f"chromium did not finish within {TIMEOUT_SECONDS}s on {page}") from None
        finally:
            # Helpers (zygote, GPU, utility processes) left in the group end with the browser; be sure.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def console_messages(stderr: str) -> list[str]:
    """The page's console messages from Chromium's log."""
    return [match.group(1) for match in map(CONSOLE_LINE.search, stderr.splitlines()) if match]


def load(page: Path) -> PageLoad:
    """Load ``page`` and return its DOM after load and its console messages."""
    proc = _run(["--dump-dom"], page, page.parent)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"chromium --dump-dom failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    return PageLoad(dom=proc.stdout, console=console_messages(proc.stderr))


def screenshot(page: Path, png: Path, width: int = 1400, height: int = 2400) -> Path:
    """Write a PNG of ``page`` (the first ``height`` pixels at ``width``) and return its path."""
    png = png.resolve()
    proc = _run([f"--screenshot={png}", f"--window-size={width},{height}", "--hide-scrollbars"], page, png.parent)
    if proc.returncode != 0 or not png.is_file():
        raise RuntimeError(f"chromium --screenshot failed (rc {proc.returncode}): {proc.stderr[-2000:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    """Command line: ``screenshot HTML [PNG]`` or ``check HTML``."""
    parser = argparse.ArgumentParser(prog="python -m tests.report_browser", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    shot = sub.add_parser("screenshot", help="write a PNG of the report (default: next to it, .png)")
    shot.add_argument("html", type=Path)
    shot.add_argument("png", type=Path, nargs="?")
    check = sub.add_parser("check", help="load the report; fail on any console message")
    check.add_argument("html", type=Path)
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: {args.html} does not exist", file=sys.stderr)
        return 2
    if args.command == "screenshot":
        print(f"screenshot: {screenshot(args.html, args.png or args.html.with_suffix('.png'))}")
        return 0
    loaded = load(args.html)
    for message in loaded.console:
        print(f"console: {message}", file=sys.stderr)
    return 1 if loaded.console else 0


if __name__ == "__main__":
    sys.exit(main())
