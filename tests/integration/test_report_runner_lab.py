"""As AWX runs it: one ansible-runner job against the lab - diagnose, its report, two hosts stopped mid-run, then the
drift report (check-mode remediate). The job's artifacts (set_stats, the recap) and the reports in every format list
every host, the unreachable ones included."""

from __future__ import annotations

import ipaddress
import json
import typing as t
from pathlib import Path

import ansible_runner
import jsonschema
import pytest
import yaml
from lxml import etree

from tests.ansible_env import REPO_ROOT, ansible_env

pytestmark = pytest.mark.lab

SCHEMA = json.loads((REPO_ROOT / "plugins/report_schemas/fleet_report.schema.json").read_text(encoding="utf-8"))
JUNIT_XSD = etree.XMLSchema(etree.parse(str(REPO_ROOT / "tests/unit/data/junit.xsd")))
SMALL_FLEET = REPO_ROOT / "tests/lab/fleets/small.yml"
STOPPED = ["ok-2022", "f-cert-expired"]  # reachable for diagnose, stopped before the drift report
GONE = "gone-host"  # never reachable: nothing listens on its address

JOB = """\
- name: Diagnose, and write its report
  ansible.builtin.import_playbook: rdp.doctor.diagnose
  vars:
    rdp_doctor_report_basename: diagnose

- name: Stop hosts mid-run (the lab resets every WinRM connection to them from now on)
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Stop a host
      ansible.builtin.uri:
        url: "{{ lab_admin }}/hosts/{{ item }}/transport_fault"
        method: POST
        body_format: json
        body: {kind: reset, persistent: true}
      loop: "{{ lab_stopped }}"

- name: Drift report
  ansible.builtin.import_playbook: rdp.doctor.drift_report
"""


def test_runner_job_artifacts_and_reports_list_every_host(lab_fleet: t.Any, tmp_path: Path) -> None:
    """set_stats, the recap and the JSON / JUnit / Markdown reports name every host with the state it had."""
    info = lab_fleet(fleet=SMALL_FLEET, fresh=True)
    inventory = yaml.safe_load(info.inventory.read_text(encoding="utf-8"))
    hosts = inventory["all"]["children"]["windows"]["hosts"]
    first = ipaddress.ip_address(next(iter(hosts.values()))["ansible_host"])
    gone_address = str(ipaddress.ip_address(int(first) - int(first) % 256 + 250))
    hosts[GONE] = {"ansible_host": gone_address, "rdp_doctor_probe_host": gone_address}
    names = sorted(hosts)
    inventory_path = tmp_path / "inventory.yml"
    inventory_path.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    playbook = tmp_path / "job.yml"
    playbook.write_text(JOB, encoding="utf-8")
    reports = tmp_path / "reports"
    (tmp_path / "runner").mkdir()

    env = {key: value for key, value in ansible_env().items() if key.startswith(("ANSIBLE_", "PATH", "HOME", "PYTHON"))}
    runner = ansible_runner.run(private_data_dir=str(tmp_path / "runner"), playbook=str(playbook), inventory=str(inventory_path),
                                extravars={"rdp_doctor_report_dir": str(reports), "lab_admin": info.admin_url,
                                           "lab_stopped": STOPPED},
                                envvars=env, quiet=True, timeout=600)
    stdout = runner.stdout.read()
    # The hosts that could not be read fail the job (the truthful recap); every other host passes.
    assert runner.status == "failed" and runner.rc == 2, stdout[-3000:]
    assert sorted(runner.stats["failures"]) == sorted([GONE, *STOPPED]), runner.stats

    stats_events = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    artifact = stats_events[-1]["event_data"]["artifact_data"]["rdp_doctor_report"]
    assert artifact["kind"] == "drift" and artifact["hosts"] == len(names)
    assert sorted(artifact["host_states"]) == names
    assert {artifact["host_states"][h] for h in [GONE, *STOPPED]} == {"unreachable"}
    assert artifact["host_states"]["f-rdp-disabled"] == "broken"

    diagnose = json.loads((reports / "diagnose.json").read_text(encoding="utf-8"))
    drift = json.loads((reports / "rdp-doctor-report.json").read_text(encoding="utf-8"))
    for report in (diagnose, drift):
        jsonschema.Draft202012Validator(SCHEMA).validate(report)
        assert [h["name"] for h in report["hosts"]] == names
    before = {h["name"]: h["state"] for h in diagnose["hosts"]}
    assert before[GONE] == "unreachable" and before["ok-2022"] == "healthy" and before["f-cert-expired"] == "broken"
    assert diagnose["run"]["kind"] == "diagnose" and drift["run"]["kind"] == "drift" and drift["run"]["check_mode"]
    drifted = {h["name"]: h for h in drift["hosts"]}
    assert drifted["ok-2022"]["read"]["state"] == "unreachable" and drifted["ok-2022"]["errors"][0]["stage"] == "read"
    assert drifted["ok-2022"]["remediation"]["state"] == "unreachable"
    assert drifted["f-rdp-disabled"]["remediation"]["state"] == "would_change"
    assert drifted["f-rdp-disabled"]["remediation"]["operations"]

    junit = etree.parse(str(reports / "rdp-doctor-report.junit.xml"))
    assert JUNIT_XSD.validate(junit), JUNIT_XSD.error_log
    suites = {s.get("name"): s for s in junit.getroot().findall("testsuite")}
    assert sorted(suites) == names
    assert all(suites[h].find("testcase[@name='read']/error") is not None for h in [GONE, *STOPPED])
    markdown = (reports / "rdp-doctor-report.md").read_text(encoding="utf-8")
    for name in names:
        assert name in markdown


MERGE = """\
- name: Merge the slices' reports into one fleet report
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Merge
      ansible.builtin.include_role:
        name: rdp.doctor.report
      vars:
        rdp_doctor_report_include_play: false
        rdp_doctor_report_merge: "{{ query('fileglob', slices_dir ~ '/slice-*.json') | sort }}"
        rdp_doctor_report_basename: fleet
"""


def test_job_slices_merge_into_one_fleet_report(lab_fleet: t.Any, run_playbook: t.Any, tmp_path: Path) -> None:
    """As AWX job slicing does: each slice (--limit) diagnoses part of the fleet and writes its report; a last job merges."""
    info = lab_fleet(fleet=SMALL_FLEET)
    names = sorted(yaml.safe_load(info.inventory.read_text(encoding="utf-8"))["all"]["children"]["windows"]["hosts"])
    slices = tmp_path / "slices"
    parts = [names[0::2], names[1::2]]
    for index, part in enumerate(parts):
        run = run_playbook("rdp.doctor.diagnose", info.inventory,
                           ["--limit", ",".join(part), "-e", f"rdp_doctor_report_dir={slices}", "-e", f"rdp_doctor_report_basename=slice-{index}"])
        assert run.returncode == 0, run.stdout[-3000:]
        written = json.loads((slices / f"slice-{index}.json").read_text(encoding="utf-8"))
        assert [h["name"] for h in written["hosts"]] == sorted(part)  # --limit kept: only this slice's hosts
    merge = tmp_path / "merge.yml"
    merge.write_text(MERGE, encoding="utf-8")
    run = run_playbook(merge, info.inventory, ["-e", f"rdp_doctor_report_dir={slices}", "-e", f"slices_dir={slices}"])
    assert run.returncode == 0, run.stdout[-3000:]
    fleet = json.loads((slices / "fleet.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(SCHEMA).validate(fleet)
    assert [h["name"] for h in fleet["hosts"]] == names and fleet["run"]["merged"] == 2
    assert fleet["summary"]["hosts"] == len(names) and len(fleet["run"]["sources"]) == 2
    assert fleet["summary"]["states"]["healthy"] + fleet["summary"]["states"]["broken"] == len(names)
    assert JUNIT_XSD.validate(etree.parse(str(slices / "fleet.junit.xml")))
