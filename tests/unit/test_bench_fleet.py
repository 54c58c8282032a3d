"""The pure parts of the fleet benchmark (tests/bench/bench_fleet.py): what it runs, how it judges, what it writes.

No benchmark runs here (no timed assertions in tests): only the planning and report functions.
"""

from __future__ import annotations

import importlib.util
import json
import typing as t
import xml.etree.ElementTree as ET
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry
from tests.bench import bench_fleet as bench
from tests.lab.fleet import load_fleet


def test_per_setting_baseline_counts_every_read_of_host_facts() -> None:
    """One read per registry key of the host script, plus one per non-registry section of its answer."""
    reads = bench.settings_read()
    schema = json.loads(bench.HOST_SCRIPT_SCHEMA.read_text(encoding="utf-8"))
    sections = set(schema["properties"]["result"]["properties"]) - {"schema", "host_time_utc", "registry"}
    assert len(reads) == len(rdp_registry.REGISTRY_KEYS) + len(sections) and len(set(reads)) == len(reads)
    playbook = bench.per_setting_playbook(reads)
    assert len(playbook[0]["tasks"]) == len(reads)
    assert all(task["failed_when"] is False for task in playbook[0]["tasks"])


def test_fleets_load_in_the_lab(tmp_path: Path) -> None:
    """The generated fleet files are valid lab fleets: healthy generated hosts, or one broken fault per host."""
    for kind in ("healthy", "broken"):
        path = tmp_path / f"{kind}.yml"
        path.write_text(yaml.safe_dump(bench.fleet_document(12, 300, kind)), encoding="utf-8")
        fleet = load_fleet(path)
        assert len(fleet.hosts) == 12 and all(host.latency_ms == 300 for host in fleet.hosts)
        faults = [tuple(host.faults) for host in fleet.hosts]
        assert all(f == () for f in faults) if kind == "healthy" else {f[0] for f in faults} == set(bench.BROKEN_FAULTS)


def test_remediate_scenarios_wait_for_the_playbook(tmp_path: Path) -> None:
    """The hook: remediate runs as soon as playbooks/remediate.yml exists, and says why not until then."""
    scenario = bench.REMEDIATE_SCENARIOS[0]
    assert "not yet built" in (bench.applicable(scenario, 50, root=tmp_path) or "")
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "remediate.yml").write_text("---\n", encoding="utf-8")
    assert bench.applicable(scenario, 50, root=tmp_path) is None
    assert "50" in (bench.applicable(bench.PER_SETTING, 500, root=tmp_path) or "")
    assert bench.applicable(bench.DIAGNOSE, 500, root=tmp_path) is None


def _run(wall: float, cpu: float, rc: int = 0) -> dict:
    return {"rc": rc, "wall_s": wall, "cpu_s": cpu, "cpu_ms_per_host": cpu * 10, "peak_pss_mib": 100.0, "max_rss_mib": 70.0,
            "lab_cpu_s": 0.5, "round_trips_per_host": 1.0, "commands_per_host": 1.0}


def test_floor_is_the_mean_of_the_good_floor_runs_and_verdicts_use_it() -> None:
    """Ratios against the mean of both floor runs; a failed floor run is left out; the target is 1.5x."""
    assert bench.floor_of({"floor": _run(2.0, 4.0), "floor_again": _run(4.0, 6.0)}) == {"wall_s": 3.0, "cpu_s": 5.0}
    assert bench.floor_of({"floor": _run(2.0, 4.0), "floor_again": _run(9.0, 9.0, rc=1)}) == {"wall_s": 2.0, "cpu_s": 4.0}
    cell = {"hosts": 100, "latency_ms": 0, "forks": 25, "floor": {"wall_s": 2.0, "cpu_s": 4.0},
            "scenarios": {"floor": _run(2.0, 4.0), "diagnose": dict(_run(2.8, 6.4), wall_ratio=1.4, cpu_ratio=1.6)}}
    (verdict,) = bench.verdicts([cell])
    assert verdict["scenario"] == "diagnose" and verdict["met"] is False
    cell["scenarios"]["diagnose"]["cpu_ratio"] = 1.5
    assert bench.verdicts([cell])[0]["met"] is True


def test_round_trips_judged_on_the_busiest_host() -> None:
    """Diagnose 1 round trip per host, remediate 1 on a compliant host, at most 3 on a broken one; a failed run misses."""
    cell = {"hosts": 50, "latency_ms": 0, "scenarios": {
        "diagnose": dict(_run(1.0, 1.0), max_round_trips=1), "remediate_compliant_apply": dict(_run(1.0, 1.0), max_round_trips=2),
        "remediate_broken_apply": dict(_run(1.0, 1.0), max_round_trips=3), "remediate_broken_check": dict(_run(1.0, 1.0, rc=2), max_round_trips=1),
        "per_setting": dict(_run(1.0, 1.0), max_round_trips=34)}}
    judged = {v["scenario"]: v["met"] for v in bench.round_trip_verdicts([cell])}
    assert judged == {"diagnose": True, "remediate_compliant_apply": False, "remediate_broken_apply": True, "remediate_broken_check": False}


def test_report_table_and_plot() -> None:
    """The markdown table has a row per measured scenario; the plot is well-formed SVG with a line per scenario."""
    cells = [{"hosts": hosts, "latency_ms": latency, "forks": 25, "floor": {"wall_s": hosts / 10, "cpu_s": hosts / 5},
              "scenarios": {"floor": _run(hosts / 10, hosts / 5), "diagnose": dict(_run(hosts / 8, hosts / 4), wall_ratio=1.25, cpu_ratio=1.25),
                            "per_setting": {"skipped": "measured at 50 hosts only (time budget)"},
                            "remediate_compliant_check": {"skipped": "not yet built (playbooks/remediate.yml does not exist)"}}}
             for hosts in (50, 200) for latency in (0, 300)]
    table = bench.markdown_table(cells)
    assert table.count("| diagnose |") == 4 and table.count("| floor |") == 4 and "not yet built" not in table
    svg = ET.fromstring(bench.svg_plot(cells))
    polylines = svg.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(polylines) == 4  # floor and diagnose, in each latency panel
    report = {"cells": cells, "verdicts": bench.verdicts(cells), "started_utc": "2026-11-26T13:00:00+00:00", "forks": 25,
              "machine": {"cpus": 2, "python": "3.11.7", "loadavg_start": 1.0}, "per_setting_reads": 34, "total_s": 60.0,
              "round_trip_verdicts": [{"scenario": "remediate_broken_apply", "hosts": 50, "latency_ms": 0, "budget": 3,
                                       "max_round_trips": 3, "met": True}]}
    section = bench.markdown_section(report)
    assert section.startswith(bench.MARK_START) and section.endswith(bench.MARK_END) and "remediate_compliant_check" in section
    assert "remediate_broken_apply 50h/0ms 3 (≤3) met" in section


def test_ansible_share_leaves_the_target_minus_the_facts_floor_for_the_collection() -> None:
    """The facts floor's ratio, the CPU the target leaves for diagnose's own work, and what that work costs."""
    cell = {"hosts": 100, "latency_ms": 0, "forks": 25, "floor": {"wall_s": 2.0, "cpu_s": 4.0},
            "scenarios": {"floor": _run(2.0, 4.0), "facts_floor": dict(_run(2.6, 5.2), wall_ratio=1.3, cpu_ratio=1.3),
                          "diagnose": dict(_run(3.6, 7.2), wall_ratio=1.8, cpu_ratio=1.8)}}
    (share,) = bench.ansible_share([cell])
    assert share == {"hosts": 100, "latency_ms": 0, "cpu_ratio": 1.3, "wall_ratio": 1.3, "floor_ms": 40.0,
                     "facts_floor_ms": 52.0, "budget_ms": 8.0, "own_ms": 20.0}
    failed = dict(cell, scenarios=dict(cell["scenarios"], facts_floor=dict(_run(2.6, 5.2, rc=2), cpu_ratio=1.3)))
    assert not bench.ansible_share([failed])
    report = {"cells": [cell], "verdicts": bench.verdicts([cell]), "started_utc": "2026-11-26T13:00:00+00:00", "forks": 25,
              "machine": {"cpus": 2, "python": "3.11.7", "loadavg_start": 1.0}, "per_setting_reads": 34, "total_s": 60.0,
              "ansible_share": [share]}
    assert "| 100 | 0 ms | 40.0 | 52.0 | 1.30 | 8.0 | 20.0 |" in bench.markdown_section(report)


def test_facts_floor_makes_one_round_trip_and_publishes_a_copy_of_the_captured_facts(tmp_path: Path) -> None:
    """The bench's facts floor does what diagnose must do and nothing more: the host script once, the facts published."""
    published = {"rdp_doctor_facts": {"os": {"fqdn": "win001.lab"}}, "rdp_doctor_probe": None, "rdp_doctor_findings": [],
                 "rdp_doctor_host_state": {"state": "ok", "msg": "", "error": None}}
    plugin_dir = tmp_path / "action_plugins"
    plugin_dir.mkdir()
    (plugin_dir / "published_facts.json").write_text(json.dumps(published), encoding="utf-8")
    source = Path(bench.__file__).with_name("facts_floor") / "rdp_doctor_facts_floor.py"
    (plugin_dir / source.name).write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("bench_facts_floor", plugin_dir / source.name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    task = mock.MagicMock(args={}, check_mode=False, async_val=0, action="rdp_doctor_facts_floor")
    connection = mock.MagicMock()
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    action = module.ActionModule(task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    execute = mock.MagicMock(return_value={"rc": 0, "stdout": '{"schema": "x"}\r\n', "stderr": ""})
    action._low_level_execute_command = execute  # pylint: disable=protected-access
    result = action.run(task_vars={"inventory_hostname": "win001"})
    assert execute.call_count == 1 and b"read_rdp_state" in execute.call_args.kwargs["in_data"]
    assert result["ansible_facts"] == published and result["changed"] is False
    assert result["ansible_facts"]["rdp_doctor_facts"] is not module.PUBLISHED["rdp_doctor_facts"]  # each host its own copy
    playbook = bench.facts_floor_playbook()
    assert playbook[0]["tasks"][0] == {"name": "One round trip publishing diagnose's facts", "rdp_doctor_facts_floor": {}}
    capture = bench.capture_playbook(tmp_path / "out.json")
    assert capture[0]["hosts"] == "windows[0]" and capture[0]["tasks"][1]["delegate_to"] == "localhost"


def test_a_scenario_sets_its_ansible_settings_for_its_run_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """diagnose_no_inject runs the same playbook as diagnose, with inject_facts_as_vars off in its environment only."""
    assert bench.DIAGNOSE_NO_INJECT.playbook == bench.DIAGNOSE.playbook and not bench.DIAGNOSE.env
    seen: list[dict[str, str]] = []

    class Finished:  # what run_playbook needs of the process: it ends at once
        pid = 0
        returncode = 0

    def popen(argv: list[str], **kwargs: t.Any) -> Finished:
        seen.append(kwargs["env"])
        return Finished()

    monkeypatch.setattr(bench.subprocess, "Popen", popen)
    monkeypatch.setattr(bench.os, "wait4", lambda pid, options: (pid, 0, mock.MagicMock(ru_utime=1.0, ru_stime=0.5, ru_maxrss=1024)))
    monkeypatch.setattr(bench, "_PeakSampler", mock.MagicMock(return_value=mock.MagicMock(peak_kib=2048)))
    for scenario in (bench.DIAGNOSE_NO_INJECT, bench.DIAGNOSE):
        run = bench.run_playbook(scenario.playbook, tmp_path / "inventory.yml", scenario.args, 25, tmp_path / "log", env=scenario.env)
        assert run["cpu_s"] == 1.5 and run["rc"] == 0
    assert seen[0]["ANSIBLE_INJECT_FACT_VARS"] == "False" and "ANSIBLE_INJECT_FACT_VARS" not in seen[1]
