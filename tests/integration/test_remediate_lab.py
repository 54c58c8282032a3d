"""End to end: ``ansible-playbook rdp.doctor.remediate`` against the simulated fleet, over winrm and psrp.

For every lab fault whose findings name a module: check mode reports the exact operations and leaves the lab
model untouched (admin API); remediate fixes it; a second run changes nothing; diagnose then reports none of
that fault's findings and the lab's RDP listener answers the probe cleanly. Faults whose fix is manual are left
untouched and listed as manual. Round trips: a compliant host 1 for the whole role, a host with fixes 3. A
change that makes the client's view worse is rolled back and fails the host.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

#: Faults the role fixes by itself, and whether the fix needs a reboot to reach the listener.
FIXED: dict[str, bool] = {
    "rdp_disabled": False,
    "listener_disabled": False,
    "termservice_stopped": False,
    "termservice_disabled": False,
    "port_moved": False,
    "firewall_rdp_disabled": False,
    "cert_expired": False,
    "cert_wrong_name": False,
    "cert_key_unreadable": False,
    "cert_bound_missing": False,
    "machinekeys_acl_broken": False,
    "listener_key_missing": False,
    "credssp_force_updated": True,
    "credssp_vulnerable": True,
    "security_layer_rdp": False,
    "nla_disabled": False,
    "tls12_disabled": True,
    "all_tls_disabled": True,
    "ghost_sessions": False,
}
#: Faults only a person can fix: the role changes nothing and lists them as manual.
MANUAL = ("gpo_denies_connections", "gpo_overrides_security_layer", "firewall_gpo_blocks", "port_conflict",
          "credssp_server_unpatched", "licensing_grace_expired", "account_disabled", "account_locked_out",
          "account_denied_rdp", "account_not_in_rdu", "session_limit_reached")
COMBINATIONS = [["cert_expired", "firewall_rdp_disabled"], ["tls12_disabled", "credssp_force_updated"],
                ["port_moved", "nla_disabled"], ["machinekeys_acl_broken", "ghost_sessions"],
                ["termservice_disabled", "firewall_rdp_disabled"], ["listener_key_missing", "security_layer_rdp"]]

DUMP_PLAYBOOK = """\
- name: Run the collection's remediate playbook
  ansible.builtin.import_playbook: rdp.doctor.remediate

- name: Write what remediate did per host, for the test
  hosts: "{{ rdp_doctor_hosts | default('windows') }}"
  gather_facts: false
  tasks:
    - name: Dump the remediation record
      ansible.builtin.copy:
        content: "{{ {'remediation': rdp_doctor_remediation, 'findings': rdp_doctor_findings} | to_json }}"
        dest: "{{ rdp_doctor_test_dump }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false
      tags: [always]  # runs with --tags of one fix too
"""

DIAGNOSE_DUMP = """\
- name: Run the collection's diagnose playbook
  ansible.builtin.import_playbook: rdp.doctor.diagnose

- name: Write the findings per host, for the test
  hosts: "{{ rdp_doctor_hosts | default('windows') }}"
  gather_facts: false
  tasks:
    - name: Dump the findings
      ansible.builtin.copy:
        content: "{{ {'findings': rdp_doctor_findings, 'probe': rdp_doctor_probe} | to_json }}"
        dest: "{{ rdp_doctor_test_dump }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false
"""


def host_name(faults: list[str]) -> str:
    """r-<fault> for one fault, rc-<a>-<b> for a combination (DNS-safe, short)."""
    if len(faults) == 1:
        return "r-" + faults[0].replace("_", "-")
    return "rc-" + "-".join(f.split("_")[0] + str(len(f)) for f in faults)


def fleet_document(faults: t.Iterable[str], combinations: list[list[str]]) -> dict[str, t.Any]:
    """A healthy host, one host per fault, and the combinations."""
    hosts: list[dict[str, t.Any]] = [{"name": "ok-2022"}]
    for fault in faults:
        entry: dict[str, t.Any] = {"name": host_name([fault]), "faults": [fault]}
        if fault == "credssp_server_unpatched":
            entry["os_version"] = "2016"
        hosts.append(entry)
    hosts += [{"name": host_name(combo), "faults": combo} for combo in combinations]
    return {"defaults": {"os_version": "2022"}, "hosts": hosts}


class Run(t.NamedTuple):
    """One playbook run and what each host wrote."""

    process: subprocess.CompletedProcess
    hosts: dict[str, dict[str, t.Any]]

    def recap(self) -> dict[str, str]:
        """PLAY RECAP line per host."""
        return {line.split()[0]: line for line in self.process.stdout.splitlines() if ": ok=" in line}


def run_dumping(run_playbook: RunPlaybook, template: str, inventory: Path, folder: Path, *args: str) -> Run:
    """Run a playbook that imports the collection's and dumps per-host results into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / "dump"
    dump.mkdir(exist_ok=True)
    playbook = folder / "playbook.yml"
    playbook.write_text(template, encoding="utf-8")
    # One batch, no stop on failure: every host runs and is dumped (the canary test covers the batches).
    batches = ["-e", "rdp_doctor_serial=0", "-e", "rdp_doctor_max_fail_percentage=100"]
    process = run_playbook(playbook, inventory, ["-e", f"rdp_doctor_test_dump={dump}", *batches, *args])
    return Run(process, {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in dump.glob("*.json")})


def fault_findings(faults: list[str]) -> set[str]:
    """The finding ids the lab contract says these faults produce (the diagnose test's table)."""
    from tests.integration.test_diagnose_lab import CONTRACT  # pylint: disable=import-outside-toplevel

    return {i for f in faults for i in CONTRACT[f]}


#: psrp runs the same loop on the combinations and two manual faults (winrm covers every fault alone).
PSRP_FAULTS: tuple[list[str], list[str]] = ([], ["gpo_overrides_security_layer", "account_disabled"])


def write_fleet(folder: Path, connection: str) -> tuple[Path, list[str], list[str]]:
    """The fleet file for one connection, with its fixable and manual host names."""
    fixed, manual = (list(FIXED), list(MANUAL)) if connection == "winrm" else PSRP_FAULTS
    path = folder / f"remediate-{connection}.yml"
    path.write_text(yaml.safe_dump(fleet_document(fixed + manual, COMBINATIONS), sort_keys=False), encoding="utf-8")
    return path, [host_name([f]) for f in fixed] + [host_name(c) for c in COMBINATIONS], [host_name([f]) for f in manual]


def _models(lab: t.Any, hosts: t.Iterable[str]) -> dict[str, t.Any]:
    return {host: lab.admin.model(host) for host in hosts}


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_check_then_fix_then_idempotent_then_clean(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                   tmp_path: Path, connection: str) -> None:
    """The whole loop on every fixable fault and combination; manual faults untouched and listed."""
    fleet, fixable, manual = write_fleet(tmp_path, connection)
    lab = lab_fleet(fleet, fresh=True)
    try:
        inventory = lab.inventory_for(connection)
        everyone = ["ok-2022", *fixable, *manual]

        # 1. Check mode: the exact plan per host, the lab model unchanged, one round trip per host.
        before = _models(lab, everyone)
        lab.admin.reset_counters()
        check = run_dumping(run_playbook, DUMP_PLAYBOOK, inventory, tmp_path / "check", "--check", "--diff")
        assert set(check.hosts) == set(everyone), check.process.stdout[-4000:]
        assert _models(lab, everyone) == before
        wrong = {h: check.hosts[h]["remediation"] for h in fixable if check.hosts[h]["remediation"]["state"] != "would_change"}
        assert wrong == {}
        assert check.hosts["ok-2022"]["remediation"]["state"] == "compliant"
        for host in manual:
            record = check.hosts[host]["remediation"]
            assert record["state"] in ("manual_only", "compliant") and not record["operations"], (host, record)
            assert record["manual"], (host, record)
        assert all(lab.admin.counters(h)["round_trips"] == 1 for h in everyone)

        # 2. Apply: every fixable host changed and verified, three round trips; compliant and manual hosts one.
        lab.admin.reset_counters()
        fixed = run_dumping(run_playbook, DUMP_PLAYBOOK, inventory, tmp_path / "apply")
        records = {h: fixed.hosts[h]["remediation"] for h in fixed.hosts}
        wrong = {h: records[h] for h in fixable if records[h]["state"] != "changed" or records[h]["remaining"]}
        assert wrong == {}, fixed.process.stdout[-4000:]
        assert _models(lab, manual) == {h: before[h] for h in manual}
        for host in everyone:
            assert lab.admin.counters(host)["round_trips"] == (3 if host in fixable else 1), (host, lab.admin.counters(host))
        for host in fixable:
            if records[host]["reboot_required"]:
                lab.admin.reboot(host)

        # 3. Again: nothing to change anywhere.
        again = run_dumping(run_playbook, DUMP_PLAYBOOK, inventory, tmp_path / "again")
        assert all("changed=0" in line for line in again.recap().values()), again.process.stdout[-3000:]
        assert {h: r["remediation"]["state"] for h, r in again.hosts.items() if r["remediation"]["state"] not in ("compliant", "manual_only")} == {}

        # 4. Diagnose: none of the fixed faults' findings, and the probe passes on every fixed host.
        clean = run_dumping(run_playbook, DIAGNOSE_DUMP, inventory, tmp_path / "diagnose")
        left = {}
        for faults in [[f] for f in FIXED if host_name([f]) in fixable] + COMBINATIONS:
            host = host_name(faults)
            ids = {f["id"] for f in clean.hosts[host]["findings"]}
            probe = clean.hosts[host]["probe"]
            if ids & fault_findings(faults) or not probe["verdict"]["ok"]:
                left[host] = {"ids": sorted(ids), "probe": probe["verdict"]}
        assert left == {}
    finally:
        lab_fleet.stop(lab)


def test_a_change_that_cuts_the_client_off_is_rolled_back(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                          tmp_path: Path) -> None:
    """A baseline that closes the firewall (opted in) makes the probe's TCP step fail: the host is rolled back and fails."""
    path = tmp_path / "rollback.yml"
    path.write_text(yaml.safe_dump({"hosts": [{"name": "ok-2022"}, {"name": "ok-2019", "os_version": "2019"}]}), encoding="utf-8")
    lab = lab_fleet(path, fresh=True)
    try:
        before = lab.admin.model("ok-2022")
        result = run_dumping(run_playbook, DUMP_PLAYBOOK, lab.inventory, tmp_path / "run", "--limit", "ok-2022",
                             "-e", json.dumps({"rdp_doctor_baseline": {"firewall": {"state": "disabled"}},
                                               "rdp_doctor_allow_lockout": True}))
        assert result.process.returncode != 0
        assert "ROLLED BACK" in result.process.stdout and "tcp: ok -> fail" in result.process.stdout
        assert "failed=1" in result.recap()["ok-2022"]
        after = lab.admin.model("ok-2022")
        assert [r for r in after["firewall_rules"] if r["enabled"]] == [r for r in before["firewall_rules"] if r["enabled"]]
    finally:
        lab_fleet.stop(lab)


def test_canary_batch_stops_the_run_when_its_host_fails(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                        tmp_path: Path) -> None:
    """serial [1, 25%] with max_fail_percentage 0: a failing canary stops the run before the other hosts are touched."""
    path = tmp_path / "canary.yml"
    path.write_text(yaml.safe_dump({"hosts": [{"name": "canary", "faults": ["nla_disabled"]},
                                              {"name": "later", "faults": ["nla_disabled"]}]}), encoding="utf-8")
    lab = lab_fleet(path, fresh=True)
    try:
        lab.admin.fail_apply_at("canary", 1)
        playbook = tmp_path / "run.yml"
        playbook.write_text("- name: Remediate\n  ansible.builtin.import_playbook: rdp.doctor.remediate\n", encoding="utf-8")
        process = run_playbook(playbook, lab.inventory, [])
        recap = {line.split()[0]: line for line in process.stdout.splitlines() if ": ok=" in line}
        assert process.returncode != 0 and "failed=1" in recap["canary"], process.stdout[-3000:]
        assert "later" not in recap
        assert lab.admin.counters("later")["round_trips"] == 0
        # One fleet summary, at the batch that stopped the run: the canary failed, the other host never reached.
        assert process.stdout.count('"rdp.doctor: 2 hosts - 1 failed, 1 not reached"') == 1, process.stdout[-3000:]
        assert "NOT_REACHED     later: the run stopped before this host's batch" in process.stdout
    finally:
        lab_fleet.stop(lab)


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_reboot_opt_in_restarts_the_host_and_the_fix_takes_effect(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                                  tmp_path: Path, connection: str) -> None:
    """rdp_doctor_remediate_reboot: check mode restarts nothing; the run restarts the host through the collection's own
    apply (shutdown.exe), waits while WinRM refuses connections, and diagnose then finds TLS 1.2 in effect, with no
    admin-API reboot."""
    path = tmp_path / "reboot.yml"
    path.write_text(yaml.safe_dump({"hosts": [{"name": "r-tls12", "faults": ["tls12_disabled"]}]}), encoding="utf-8")
    lab = lab_fleet(path, fresh=True)
    opt_in = ["-e", "rdp_doctor_remediate_reboot=true", "-e", "rdp_doctor_remediate_reboot_timeout=120",
              "-e", "rdp_doctor_remediate_reboot_delay=5"]
    try:
        inventory = lab.inventory_for(connection)
        before = lab.admin.model("r-tls12")
        assert before["reboot_pending"] is False and before["restart_at"] is None
        check = run_dumping(run_playbook, DUMP_PLAYBOOK, inventory, tmp_path / "check", "--check", *opt_in)
        record = check.hosts["r-tls12"]["remediation"]
        assert record["state"] == "would_change" and record["operations"][-1]["kind"] == "host_restart", check.process.stdout[-3000:]
        assert record["rebooted"] is False
        assert lab.admin.model("r-tls12") == before

        lab.admin.reset_counters()
        fixed = run_dumping(run_playbook, DUMP_PLAYBOOK, inventory, tmp_path / "apply", *opt_in)
        record = fixed.hosts["r-tls12"]["remediation"]
        assert record["state"] == "changed" and record["rebooted"] is True and not record["remaining"], fixed.process.stdout[-4000:]
        assert record["reboot_required"] is False and record["reboot_seconds"] >= 5
        assert "rebooted: the host restarted" in fixed.process.stdout
        counters = lab.admin.counters("r-tls12")
        assert counters["refused"] >= 1 and counters["scripts"].get("apply_rdp_changes") == 1, counters  # read while it restarted
        after = lab.admin.model("r-tls12")
        assert after["booted_at"] != before["booted_at"] and after["reboot_pending"] is False and after["restart_at"] is None

        clean = run_dumping(run_playbook, DIAGNOSE_DUMP, inventory, tmp_path / "diagnose")
        ids = {f["id"] for f in clean.hosts["r-tls12"]["findings"]}
        steps = {s["step"]: s["verdict"] for s in clean.hosts["r-tls12"]["probe"]["steps"]}
        assert "RDP-TLS12-DISABLED" not in ids and steps["tls"] == "ok", (ids, steps)
        assert lab.admin.model("r-tls12")["booted_at"] == after["booted_at"]  # diagnose did not restart it again
    finally:
        lab_fleet.stop(lab)


def test_fix_tags_and_switches_select_fixes_one_by_one(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                       tmp_path: Path) -> None:
    """--skip-tags / --tags of one fix and a switch given as the string "false" (an AWX survey) leave the other fixes.

    Check mode on a host needing a certificate fix and a firewall fix: each selection plans exactly its part.
    """
    path = tmp_path / "tags.yml"
    path.write_text(yaml.safe_dump({"hosts": [{"name": "both", "faults": ["cert_expired", "firewall_rdp_disabled"]}]}),
                    encoding="utf-8")
    lab = lab_fleet(path, fresh=True)
    try:
        before = lab.admin.model("both")

        def planned_kinds(name: str, *args: str) -> set[str]:
            run = run_dumping(run_playbook, DUMP_PLAYBOOK, lab.inventory, tmp_path / name, "--check", *args)
            assert run.process.returncode == 0, run.process.stdout[-3000:]
            return {op["kind"] for op in run.hosts["both"]["remediation"]["operations"]}

        everything = planned_kinds("all")
        assert "firewall_rule" in everything and "listener_binding" in everything
        for name, args in (("skip", ("--skip-tags", "rdp_doctor_fix_firewall")),
                           ("switch", ("-e", "rdp_doctor_fix_firewall=false"))):
            kinds = planned_kinds(name, *args)
            assert "firewall_rule" not in kinds and "listener_binding" in kinds, (name, kinds)
        only = planned_kinds("only", "--tags", "rdp_doctor_fix_firewall")
        assert "firewall_rule" in only and "listener_binding" not in only, only
        assert lab.admin.model("both") == before  # check mode, every time
    finally:
        lab_fleet.stop(lab)
