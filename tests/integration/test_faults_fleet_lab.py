"""Issue 10, faults at fleet scale, and issue 11's console: transport faults across the roles, one fleet summary, a true recap.

* 500 hosts, 5 % of them with a transport fault (reset, HTTP 500, 401, slow beyond the timeout, garbled, oversized):
  the diagnose run finishes, prints one fleet summary naming every faulted host with its reason, the recap fails
  exactly the faulted hosts and the ones ``fail_on`` selects, and every other host is green.
* remediate on a small fleet, check mode then apply with faults in the apply (the host gone between read and apply,
  HTTP 500 on the apply, a garbled answer after the host applied, the Nth operation failing, a host never reached):
  those hosts are failed with their reason, nothing is applied that is not reported, the others are fixed, and a
  re-run without the faults converges.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

#: A last play that writes every host's records into one file (a failed host leaves the play, not hostvars).
DUMP_PLAY = """
- name: Write every host's records, for the test
  hosts: "{{ rdp_doctor_hosts | default('windows') }}"
  gather_facts: false
  tasks:
    - name: Dump the records of every host of the run
      ansible.builtin.copy:
        content: >-
          {%- set dump = namespace(hosts={}) -%}
          {%- for host in ansible_play_hosts_all -%}
          {%- set dump.hosts = dump.hosts | combine({host: {'host_state': hostvars[host].rdp_doctor_host_state | default(None),
              'findings': hostvars[host].rdp_doctor_findings | default([]),
              'remediation': hostvars[host].rdp_doctor_remediation | default(None)}}) -%}
          {%- endfor -%}
          {{ dump.hosts | to_json }}
        dest: "{{ rdp_doctor_test_dump }}"
        mode: "0600"
      delegate_to: localhost
      run_once: true
      check_mode: false
      changed_when: false
      tags: [always]
"""

#: Transport faults and what the fleet summary calls them.
REASONS = {"reset": "connection reset", "http500": "HTTP 500", "http401": "credentials rejected", "slow": "timeout",
           "garbled": "garbled answer", "oversized": "oversized answer"}
SLOW_TIMEOUTS = {"ansible_winrm_operation_timeout_sec": 1, "ansible_winrm_read_timeout_sec": 2}


class Run(t.NamedTuple):
    """One playbook run: the process, the PLAY RECAP per host, the fleet summary lines and every host's records."""

    process: subprocess.CompletedProcess
    recap: dict[str, dict[str, int]]
    summary: list[str]
    hosts: dict[str, dict[str, t.Any]]


def run(run_playbook: RunPlaybook, imported: str, inventory: Path, folder: Path, *args: str) -> Run:
    """Run the collection's playbook ``imported`` plus the dump play; parse the recap and the last fleet summary."""
    folder.mkdir(parents=True, exist_ok=True)
    playbook = folder / "playbook.yml"
    playbook.write_text(f"- name: The collection's playbook\n  ansible.builtin.import_playbook: {imported}\n" + DUMP_PLAY, encoding="utf-8")
    dump = folder / "hosts.json"
    process = run_playbook(playbook, inventory, ["-e", f"rdp_doctor_test_dump={dump}", *args])
    recap = {match.group(1): {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(2))}
             for match in re.finditer(r"^(\S+)\s+: (ok=.*)$", process.stdout, re.M)}
    return Run(process, recap, fleet_summaries(process.stdout)[-1] if fleet_summaries(process.stdout) else [],
               json.loads(dump.read_text(encoding="utf-8")) if dump.exists() else {})


def fleet_summaries(stdout: str) -> list[list[str]]:
    """Every fleet summary the run printed (the debug task's msg list)."""
    found = []
    for match in re.finditer(r'"msg": (\[\n\s+"rdp\.doctor: .*?\n\s+\])', stdout, re.S):
        found.append(json.loads(match.group(1)))
    return found


def line_of(summary: list[str], host: str) -> str:
    """The fleet summary line of one host."""
    return next(line for line in summary if re.match(rf"^\S+\s+{re.escape(host)}: ", line))


def write_inventory(lab: t.Any, folder: Path, slow: t.Iterable[str]) -> Path:
    """The lab's inventory with short WinRM timeouts on the hosts that will be slow (the others keep the defaults)."""
    document = yaml.safe_load(lab.inventory.read_text(encoding="utf-8"))
    hosts = document["all"]["children"]["windows"]["hosts"]
    for name in slow:
        hosts[name].update(SLOW_TIMEOUTS)
    path = folder / "inventory.yml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def set_fault(lab: t.Any, host: str, kind: str, after: int = 0) -> None:
    """A persistent transport fault (slow: beyond the host's 2 s read timeout; oversized: just over the controller's bound)."""
    options: dict[str, t.Any] = {"seconds": 4} if kind == "slow" else {"size": 4 * 1024 * 1024 + 4096} if kind == "oversized" else {}
    lab.admin.set_transport_fault(host, kind, persistent=True, after=after, **options)


def test_500_hosts_5_percent_faulted_every_host_reported(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                         tmp_path: Path) -> None:
    """The run finishes; one summary; every faulted host named with its reason and failed; the others right and green."""
    broken = {"b-rdp-disabled": ["rdp_disabled"], "b-cert-expired": ["cert_expired"], "b-nla-disabled": ["nla_disabled"]}
    fleet = {"defaults": {"os_version": "2022"}, "hosts": [{"name": name, "faults": faults} for name, faults in broken.items()],
             "generate": {"count": 500 - len(broken), "prefix": "w"}}
    path = tmp_path / "fleet500.yml"
    path.write_text(yaml.safe_dump(fleet, sort_keys=False), encoding="utf-8")
    lab = lab_fleet(path, fresh=True)
    try:
        names = list(yaml.safe_load(lab.inventory.read_text())["all"]["children"]["windows"]["hosts"])
        assert len(names) == 500
        kinds = list(REASONS)
        every_20th = [name for index, name in enumerate(n for n in names if n.startswith("w")) if index % 20 == 7]
        faulted = {name: kinds[index % len(kinds)] for index, name in enumerate(every_20th)}
        assert len(faulted) == 25 and set(faulted.values()) == set(kinds)  # 5 %, every kind
        for name, kind in faulted.items():
            set_fault(lab, name, kind)
        inventory = write_inventory(lab, tmp_path, [n for n, k in faulted.items() if k == "slow"])
        result = run(run_playbook, "rdp.doctor.diagnose", inventory, tmp_path / "run", "-f", "20",
                     "-e", "rdp_doctor_diagnose_fail_on=critical")
    finally:
        lab_fleet.stop(lab)
    output = result.process.stdout
    assert result.process.returncode == 2, output[-3000:] + result.process.stderr[-2000:]
    assert len(result.recap) == 500 and len(fleet_summaries(output)) == 1  # every host in the recap, one summary
    failed = {host for host, counts in result.recap.items() if counts["failed"] or counts["unreachable"]}
    assert failed == set(faulted) | {"b-rdp-disabled", "b-cert-expired"}  # NLA off is medium: below fail_on=critical
    summary = result.summary
    head = summary[0]
    assert head.startswith("rdp.doctor: 500 hosts - ") and head.endswith("; fail_on=critical fails 27"), head
    states = dict((state, int(count)) for count, state in re.findall(r"(\d+) ([a-z ]+?)(?:,|;|$)", head.split(" - ", 1)[1]))
    assert states == {"failed": 8, "unreachable": 17, "broken": 2, "at risk": 1, "healthy": 472}, head
    assert "causes: " in summary[1] and "RDP-CERT-EXPIRED 1" in summary[1] and "RDP-CONNECTIONS-DENIED 1" in summary[1]
    for name, kind in faulted.items():
        line = line_of(summary, name)
        assert f"({REASONS[kind]})" in line, (kind, line)
        assert line.split()[0] == ("FAILED" if kind in ("garbled", "oversized") else "UNREACHABLE"), line
    for line in summary:
        assert len(line) < 400 and "\n" not in line and not re.search(r"[A-Za-z0-9+/=]{64,}", line), line
    # Every healthy host is right and says nothing; the default certificate is said once, as info.
    said = [line for line in summary if "self-signed" in line]
    assert len(said) == 1 and int(re.match(r"info: (\d+) hosts use Windows' default self-signed", said[0]).group(1)) >= 473
    assert not any(line.split()[1].startswith("w") and line.split()[1].rstrip(":") not in faulted
                   for line in summary[2:] if not line.startswith(("info", "causes", "failed or")))
    assert all(result.hosts[name]["findings"] == [] and result.hosts[name]["host_state"]["state"] == "ok"
               for name in names if name.startswith("w") and name not in faulted)
    assert {f["id"] for f in result.hosts["b-rdp-disabled"]["findings"]} >= {"RDP-CONNECTIONS-DENIED"}
    assert "[WARNING]" not in output or "self-signed" not in output.split("[WARNING]", 1)[1][:300]


REMEDIATE_FLEET = {"defaults": {"os_version": "2022"}, "hosts": [
    {"name": "ok-2022"},
    {"name": "r-fixed", "faults": ["nla_disabled"]},
    {"name": "r-gone", "faults": ["nla_disabled"]},       # answers the read, gone for the apply
    {"name": "r-http500", "faults": ["nla_disabled"]},    # HTTP 500 from the apply on
    {"name": "r-garbled", "faults": ["nla_disabled"]},    # applies, but its answer is garbage
    {"name": "r-nth", "faults": ["nla_disabled", "security_layer_rdp"]},  # the 2nd operation fails: rolled back
    {"name": "r-unreachable", "faults": ["nla_disabled"]},  # never answers
]}
REMEDIATE_ARGS = ("-e", "rdp_doctor_serial=0", "-e", "rdp_doctor_max_fail_percentage=100")


def nla(lab: t.Any, host: str) -> t.Any:
    """UserAuthentication of the host's RDP-Tcp listener in the lab model."""
    registry = lab.admin.model(host)["registry"]
    key = next(k for k in registry if k.lower().endswith("winstations\\rdp-tcp"))
    return registry[key].get("UserAuthentication")


def test_remediate_with_faults_reports_every_host_and_a_rerun_converges(lab_fleet: t.Callable[..., t.Any],
                                                                        run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """Check mode and apply with faults: faulted hosts failed with their reason, nothing unreported, then convergence."""
    path = tmp_path / "remediate.yml"
    path.write_text(yaml.safe_dump(REMEDIATE_FLEET, sort_keys=False), encoding="utf-8")
    lab = lab_fleet(path, fresh=True)
    try:
        set_fault(lab, "r-unreachable", "reset")
        check = run(run_playbook, "rdp.doctor.remediate", lab.inventory, tmp_path / "check", "--check", *REMEDIATE_ARGS)
        assert check.process.returncode == 2, check.process.stdout[-3000:]
        assert {h for h, c in check.recap.items() if c["failed"] or c["unreachable"]} == {"r-unreachable"}
        assert check.summary[0] == "rdp.doctor: 7 hosts - 1 unreachable, 5 would change, 1 healthy", check.summary
        assert "(connection reset)" in line_of(check.summary, "r-unreachable")
        assert all(nla(lab, h) == 0 for h in ("r-fixed", "r-gone", "r-garbled"))  # check mode changed nothing

        lab.admin.reset_counters()  # "after" counts this run's commands: the read is the first
        for host, kind in (("r-gone", "reset"), ("r-http500", "http500"), ("r-garbled", "garbled")):
            set_fault(lab, host, kind, after=1)
        lab.admin.fail_apply_at("r-nth", 2)
        apply = run(run_playbook, "rdp.doctor.remediate", lab.inventory, tmp_path / "apply", *REMEDIATE_ARGS)
        output = apply.process.stdout
        assert apply.process.returncode == 2, output[-3000:]
        assert len(fleet_summaries(output)) == 1
        failing = {"r-gone", "r-http500", "r-garbled", "r-nth", "r-unreachable"}
        assert {h for h, c in apply.recap.items() if c["failed"] or c["unreachable"]} == failing, apply.recap
        assert apply.summary[0] == "rdp.doctor: 7 hosts - 4 failed, 1 unreachable, 1 fixed, 1 healthy", apply.summary
        assert apply.hosts["r-fixed"]["remediation"]["state"] == "changed" and nla(lab, "r-fixed") == 1
        for host in ("r-gone", "r-http500", "r-garbled"):
            record = apply.hosts[host]["remediation"]
            assert record["state"] == "failed" and record["outcome"] == "unknown", record
            line = line_of(apply.summary, host)
            assert line.startswith("FAILED") and "may have applied" in line and len(line) < 400, line
        assert nla(lab, "r-gone") == 0 and nla(lab, "r-http500") == 0  # never reached the host: nothing applied
        assert nla(lab, "r-garbled") == 1  # applied, answer lost: reported as "may have applied", not as unchanged
        assert apply.hosts["r-nth"]["remediation"]["state"] == "rolled_back" and nla(lab, "r-nth") == 0
        assert "every applied operation was undone" in line_of(apply.summary, "r-nth")

        for host in failing:
            lab.admin.clear_transport_faults(host)
        again = run(run_playbook, "rdp.doctor.remediate", lab.inventory, tmp_path / "again", *REMEDIATE_ARGS)
        assert again.process.returncode == 0, again.process.stdout[-3000:]
        assert again.summary[0] == "rdp.doctor: 7 hosts - 4 fixed, 3 healthy" and len(again.summary) == 2, again.summary
        assert {h: r["remediation"]["state"] for h, r in again.hosts.items()} == {
            "ok-2022": "compliant", "r-fixed": "compliant", "r-garbled": "compliant",
            "r-gone": "changed", "r-http500": "changed", "r-nth": "changed", "r-unreachable": "changed"}
    finally:
        lab_fleet.stop(lab)
