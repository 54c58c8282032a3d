"""Benchmark: how long the lab takes to start a 200-host fleet (target: under 10 s on 2 cores).

Baseline, measured in the same run: a bare Python process that binds the same 600 listening sockets
(WinRM + RDP per host) and exits — the floor any lab start-up has to pay for interpreter start and
sockets. The report gives the lab's start time and its ratio to that floor, and the cost of one
host-script round trip over WinRM against a started host.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import winrm

from tests.lab.cli import start_lab, stop_lab

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "tests" / "output" / "bench"
HOSTS = 200
FIRST_ADDRESS = "127.150.0.2"
RUNS = 3

BASELINE = r"""
import ipaddress, socket, sys
first = ipaddress.ip_address(sys.argv[1]); count = int(sys.argv[2])
socks = []
for i in range(count):
    address = str(first + i)
    for port in (5985, 3389):
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((address, port)); s.listen(16); socks.append(s)
"""


def baseline_seconds() -> float:
    """Interpreter start + binding the same listening sockets, nothing else."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", BASELINE, FIRST_ADDRESS, str(HOSTS)], check=True)
    return time.perf_counter() - start


def lab_start_seconds(fleet: Path, state: Path) -> float:
    """Wall time of start_lab() for the fleet until every listener accepts; the lab is stopped after."""
    start = time.perf_counter()
    start_lab(fleet, state, first_address=FIRST_ADDRESS)
    elapsed = time.perf_counter() - start
    stop_lab(state)
    return elapsed


def round_trip_ms(fleet: Path, state: Path, samples: int = 50) -> float:
    """Median wall time of one pywinrm run_ps (five WS-Man messages) against a started lab host."""
    info = start_lab(fleet, state, first_address=FIRST_ADDRESS, hosts_limit=1)
    try:
        session = winrm.Session(f"http://{FIRST_ADDRESS}:5985/wsman", auth=("labadmin", "RdpDoctor-Lab-1!"), transport="basic")
        times = []
        for _unused in range(samples):
            start = time.perf_counter()
            session.run_ps("Write-Output hi")
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times)
    finally:
        del info
        stop_lab(state)


def main() -> int:
    """Measure, print a table, write tests/output/bench/lab.json."""
    with tempfile.TemporaryDirectory(prefix="rdp-doctor-bench-") as tmp:
        fleet = Path(tmp) / "fleet.yml"
        fleet.write_text(f"generate: {{count: {HOSTS}, prefix: win}}\n", encoding="utf-8")
        base = statistics.median(baseline_seconds() for _unused in range(RUNS))
        lab = statistics.median(lab_start_seconds(fleet, Path(tmp) / f"state{i}") for i in range(RUNS))
        trip = round_trip_ms(fleet, Path(tmp) / "state-rt")
    result = {"hosts": HOSTS, "baseline_bind_s": round(base, 3), "lab_start_s": round(lab, 3),
              "ratio_to_baseline": round(lab / base, 1), "target_s": 10, "within_target": lab < 10,
              "winrm_run_ps_median_ms": round(trip, 2)}
    print(f"{'measure':<34}{'value':>12}")
    print(f"{'baseline: bind 2x' + str(HOSTS) + ' sockets (s)':<34}{base:>12.3f}")
    print(f"{'lab start, ' + str(HOSTS) + ' hosts (s)':<34}{lab:>12.3f}")
    print(f"{'ratio lab / baseline':<34}{lab / base:>12.1f}")
    print(f"{'target < 10 s':<34}{'met' if lab < 10 else 'MISSED':>12}")
    print(f"{'pywinrm run_ps round trip (ms)':<34}{trip:>12.2f}")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "lab.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0 if lab < 10 else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
