"""``python -m tests.unit.psstatic FILE.ps1 ...``: print each file's problems; exit 1 if any.

``--bootstrap`` also checks host_protocol.BOOTSTRAP (needs the collection importable: run from the repo root
after ``make collection``).
"""

from __future__ import annotations

import argparse
import importlib
import pathlib
import sys

from .check import check_file, check_source


def bootstrap_source() -> bytes:
    """The host-protocol bootstrap text, imported the way Ansible imports it."""
    root = pathlib.Path(__file__).resolve().parents[3]
    sys.path[:0] = [str(root / ".cache" / "collections"), str(root)]
    module = importlib.import_module("ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol")
    return str(module.BOOTSTRAP).encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Check the files named; print 'file:line: [rule] message' per problem."""
    parser = argparse.ArgumentParser(prog="python -m tests.unit.psstatic", description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=pathlib.Path)
    parser.add_argument("--bootstrap", action="store_true", help="also check host_protocol.BOOTSTRAP")
    args = parser.parse_args(argv)
    results = [(str(path), check_file(path)) for path in args.files]
    if args.bootstrap:
        results.append(("host_protocol.BOOTSTRAP", check_source("host_protocol.BOOTSTRAP", bootstrap_source())))
    count = 0
    for label, problems in results:
        for problem in problems:
            print(f"{label}:{problem.line}: [{problem.rule}] {problem.message}")
        count += len(problems)
    print(f"{count} problem(s) in {len(results)} script(s)", file=sys.stderr)
    return 1 if count else 0


if __name__ == "__main__":
    sys.exit(main())
