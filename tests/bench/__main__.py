"""``make bench``: run every benchmark module (tests/bench/bench_*.py) in turn, each in its own process.

Benchmarks are never part of ``make test``. Each prints a table with its measurements as ratios
against a baseline measured in the same run, and writes JSON under tests/output/bench/.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def main(argv: list[str]) -> int:
    """Run the benchmarks named on the command line (default: all); non-zero if any failed."""
    names = argv or sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(HERE, "bench_*.py")))
    failed = []
    for name in names:
        print(f"=== {name}", flush=True)
        proc = subprocess.run([sys.executable, "-m", f"tests.bench.{name}"], cwd=ROOT, check=False)
        if proc.returncode != 0:
            failed.append(name)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
