"""End to end: ``ansible-playbook rdp.doctor.diagnose`` against the simulated fleet, over winrm and psrp.

Every lab fault alone and in combinations must yield its finding ids (contracts section 8) with the
right evidence, a healthy host none; reading a host costs exactly one round trip; ``--check`` gives the
same answer; an unreachable host or a failing host script is reported, not dropped.
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

#: contracts section 8: fault -> the finding ids it must produce.
CONTRACT: dict[str, tuple[str, ...]] = {
    "rdp_disabled": ("RDP-CONNECTIONS-DENIED",),
    "gpo_denies_connections": ("RDP-CONNECTIONS-DENIED", "RDP-GPO-OVERRIDE"),
    "listener_disabled": ("RDP-LISTENER-DISABLED",),
    "termservice_stopped": ("RDP-SERVICE-STOPPED",),
    "termservice_disabled": ("RDP-SERVICE-DISABLED",),
    "port_conflict": ("RDP-PORT-CONFLICT",),
    "port_moved": ("RDP-PORT-NOT-ALLOWED",),
    "firewall_rdp_disabled": ("RDP-FIREWALL-RULES-DISABLED",),
    "firewall_gpo_blocks": ("RDP-FIREWALL-GPO-BLOCKS",),
    "dns_mismatch": ("RDP-DNS-MISMATCH",),
    "cert_expired": ("RDP-CERT-EXPIRED",),
    "cert_wrong_name": ("RDP-CERT-NAME-MISMATCH",),
    "cert_key_unreadable": ("RDP-CERT-KEY-UNREADABLE",),
    "cert_bound_missing": ("RDP-CERT-MISSING",),
    "machinekeys_acl_broken": ("RDP-MACHINEKEYS-ACL",),
    "listener_key_missing": ("RDP-LISTENER-KEY-BROKEN",),
    "credssp_server_unpatched": ("RDP-CREDSSP-UNPATCHED",),
    "credssp_force_updated": ("RDP-CREDSSP-FORCE-UPDATED",),
    "credssp_vulnerable": ("RDP-CREDSSP-VULNERABLE",),
    "security_layer_rdp": ("RDP-SECURITY-LAYER-RDP",),
    "gpo_overrides_security_layer": ("RDP-SECURITY-LAYER-RDP", "RDP-GPO-OVERRIDE"),
    "nla_disabled": ("RDP-NLA-DISABLED",),
    "fips_encryption": ("RDP-ENCRYPTION-FIPS",),
    "tls12_disabled": ("RDP-TLS12-DISABLED",),
    "all_tls_disabled": ("RDP-TLS-ALL-DISABLED",),
    "session_limit_reached": ("RDP-SESSION-LIMIT-REACHED",),
    "ghost_sessions": ("RDP-GHOST-SESSIONS",),
    "licensing_grace_expired": ("RDP-LICENSING-GRACE-EXPIRED",),
    "account_disabled": ("RDP-ACCOUNT-DISABLED",),
    "account_locked_out": ("RDP-ACCOUNT-LOCKED-OUT",),
    "account_denied_rdp": ("RDP-ACCOUNT-DENIED-LOGON",),
    "account_not_in_rdu": ("RDP-ACCOUNT-NOT-ALLOWED",),
}

#: Faults combined on one host, across areas (the lab refuses conflicting pairs).
COMBINATIONS: list[list[str]] = [
    ["cert_expired", "firewall_rdp_disabled"],
    ["tls12_disabled", "credssp_force_updated"],
    ["gpo_denies_connections", "cert_key_unreadable"],
    ["termservice_stopped", "account_disabled"],
    ["port_moved", "nla_disabled"],
    ["machinekeys_acl_broken", "ghost_sessions"],
    ["listener_key_missing", "security_layer_rdp"],
    ["gpo_overrides_security_layer", "session_limit_reached", "account_denied_rdp"],
    ["firewall_gpo_blocks", "cert_wrong_name", "credssp_vulnerable"],
    ["licensing_grace_expired", "account_not_in_rdu", "fips_encryption"],
    ["dns_mismatch", "cert_expired"],
    ["all_tls_disabled", "listener_disabled"],
    ["credssp_server_unpatched", "account_locked_out", "port_conflict"],
    ["rdp_disabled", "cert_bound_missing"],
    ["termservice_disabled", "firewall_rdp_disabled"],
]

HEALTHY = {"ok-2022": "2022", "ok-2019": "2019", "ok-2016": "2016", "ok-2012r2": "2012r2"}

DUMP_PLAYBOOK = """\
- name: Run the collection's diagnose playbook
  ansible.builtin.import_playbook: rdp.doctor.diagnose

- name: Write what diagnose concluded per host, for the test
  hosts: "{{ rdp_doctor_hosts | default('windows') }}"
  gather_facts: false
  tasks:
    - name: Dump the diagnosis of every host of the run (a host the role failed has left the play, not hostvars)
      ansible.builtin.copy:
        content: >-
          {%- set dump = namespace(hosts={}) -%}
          {%- for host in ansible_play_hosts_all if hostvars[host].rdp_doctor_host_state is defined -%}
          {%- set dump.hosts = dump.hosts | combine({host: {'host_state': hostvars[host].rdp_doctor_host_state,
              'findings': hostvars[host].rdp_doctor_findings, 'probe': hostvars[host].rdp_doctor_probe,
              'facts': hostvars[host].rdp_doctor_facts, 'summary': hostvars[host].rdp_doctor_findings
              | rdp.doctor.findings_summary(hostvars[host].rdp_doctor_host_state, hostvars[host].rdp_doctor_probe)}}) -%}
          {%- endfor -%}
          {{ dump.hosts | to_json }}
        dest: "{{ rdp_doctor_test_dump }}/hosts.json"
        mode: "0600"
      delegate_to: localhost
      run_once: true
      check_mode: false
      changed_when: false  # the test's own bookkeeping on the controller; the recap then shows diagnose alone
      tags: [always]  # runs whatever --tags the test gives diagnose
"""


def _host_name(faults: list[str]) -> str:
    """f-<fault> for one fault, c-<a>-<b> for a combination (DNS-safe, short)."""
    if len(faults) == 1:
        return "f-" + faults[0].replace("_", "-")
    return "c-" + "-".join(f.split("_")[0] + str(len(f)) for f in faults)


def fleet_document() -> dict[str, t.Any]:
    """Healthy hosts on every OS, one host per fault, and the combinations."""
    hosts: list[dict[str, t.Any]] = [{"name": name, "os_version": version} for name, version in HEALTHY.items()]
    hosts += [{"name": _host_name([fault]), "faults": [fault]} for fault in CONTRACT]
    hosts += [{"name": _host_name(combo), "faults": combo} for combo in COMBINATIONS]
    # A firewall that drops SYNs, as Windows Defender Firewall does: the probe times out instead of being refused.
    hosts.append({"name": DROPPING_HOST, "faults": ["firewall_gpo_blocks"], "firewall_blocks": "drop"})
    return {"defaults": {"os_version": "2022"}, "hosts": hosts}


DROPPING_HOST = "d-firewall-gpo-blocks"

EXPECTED: dict[str, set[str]] = {
    **{name: set() for name in HEALTHY},
    DROPPING_HOST: set(CONTRACT["firewall_gpo_blocks"]),
    **{_host_name([f]): set(ids) for f, ids in CONTRACT.items()},
    **{_host_name(c): {i for f in c for i in CONTRACT[f]} for c in COMBINATIONS},
}


@pytest.fixture(scope="module")
def diagnose_lab(lab_fleet: t.Callable[..., t.Any], tmp_path_factory: pytest.TempPathFactory) -> t.Any:
    """The lab fleet of this module (shared by its tests)."""
    path = tmp_path_factory.mktemp("diagnose-fleet") / "diagnose.yml"
    path.write_text(yaml.safe_dump(fleet_document(), sort_keys=False), encoding="utf-8")
    return lab_fleet(path)


class Diagnosis(t.NamedTuple):
    """One playbook run: its process result and what each host concluded."""

    run: subprocess.CompletedProcess
    hosts: dict[str, dict[str, t.Any]]


def diagnose(run_playbook: RunPlaybook, inventory: Path, tmp_path: Path, *args: str) -> Diagnosis:
    """Run the collection's diagnose playbook (plus a dump play) and load every host's diagnosis."""
    dump = tmp_path / "dump"
    dump.mkdir(exist_ok=True)
    playbook = tmp_path / "diagnose_and_dump.yml"
    playbook.write_text(DUMP_PLAYBOOK, encoding="utf-8")
    run = run_playbook(playbook, inventory, ["-e", f"rdp_doctor_test_dump={dump}", *args])
    written = dump / "hosts.json"
    hosts = json.loads(written.read_text(encoding="utf-8")) if written.exists() else {}
    return Diagnosis(run, hosts)


def ids(diagnosis: dict[str, t.Any]) -> list[str]:
    """Finding ids of one host, in order."""
    return [f["id"] for f in diagnosis["findings"]]


def finding(diagnosis: dict[str, t.Any], finding_id: str) -> dict[str, t.Any]:
    """One finding of one host."""
    return next(f for f in diagnosis["findings"] if f["id"] == finding_id)


def _check_evidence(hosts: dict[str, dict[str, t.Any]]) -> None:
    """The evidence says what the host and the probe saw (a sample of the joins)."""
    expired = hosts[_host_name(["cert_expired"])]
    cert = finding(expired, "RDP-CERT-EXPIRED")
    assert cert["evidence"]["days_remaining"] < 0 and cert["evidence"]["probe"]["probe_thumbprint"] == cert["evidence"]["bound_thumbprint"]
    assert any(e["id"] == 1058 for e in cert["evidence"]["events"])
    firewall = finding(hosts[_host_name(["firewall_rdp_disabled"])], "RDP-FIREWALL-RULES-DISABLED")
    assert firewall["evidence"]["probe"]["failure"] == "refused"
    assert firewall["fix"] == {"module": "rdp.doctor.firewall", "params": {"state": "enabled", "port": 3389}}
    # Probe "TCP timeout" + host "listener up, GPO blocks the exception" -> the firewall finding, with both evidences.
    dropped = finding(hosts[DROPPING_HOST], "RDP-FIREWALL-GPO-BLOCKS")
    assert dropped["evidence"]["probe"]["failure"] == "timeout", dropped["evidence"]
    assert hosts[DROPPING_HOST]["probe"]["verdict"]["failed_step"] == "tcp"
    gpo = hosts[_host_name(["gpo_denies_connections"])]
    denied = finding(gpo, "RDP-CONNECTIONS-DENIED")
    assert denied["evidence"]["source"] == "policy" and "manual" in denied["fix"]
    assert finding(gpo, "RDP-GPO-OVERRIDE")["evidence"]["settings"][0]["value_name"] == "fDenyTSConnections"
    dns = finding(hosts[_host_name(["dns_mismatch"])], "RDP-DNS-MISMATCH")
    assert dns["evidence"]["details"]["expected_address"] == hosts[_host_name(["dns_mismatch"])]["probe"]["dns"]["expected_address"]
    key = finding(hosts[_host_name(["listener_key_missing"])], "RDP-LISTENER-KEY-BROKEN")
    assert key["evidence"]["key_file"]["exists"] is False and {1057, 36870} <= {e["id"] for e in key["evidence"]["events"]}
    conflict = finding(hosts[_host_name(["port_conflict"])], "RDP-PORT-CONFLICT")
    assert conflict["evidence"]["owners"][0]["process"] == "nginx"


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_diagnose_every_fault_alone_and_combined(diagnose_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path,
                                                 connection: str) -> None:
    """Healthy hosts: no finding; every fault and combination: its ids, with evidence; one round trip per host."""
    diagnose_lab.admin.reset_counters()
    result = diagnose(run_playbook, diagnose_lab.inventory_for(connection), tmp_path)
    assert result.run.returncode == 0, result.run.stdout[-3000:] + result.run.stderr[-3000:]
    assert set(result.hosts) == set(EXPECTED)
    wrong = {}
    for host, wanted in EXPECTED.items():
        diagnosis = result.hosts[host]
        found = set(ids(diagnosis))
        if diagnosis["host_state"]["state"] != "ok" or not wanted <= found or (not wanted and found):
            wrong[host] = {"state": diagnosis["host_state"], "wanted": sorted(wanted), "found": ids(diagnosis)}
    assert wrong == {}
    _check_evidence(result.hosts)
    for host in EXPECTED:
        counters = diagnose_lab.admin.counters(host)
        assert (counters["round_trips"], counters["scripts"]) == (1, {"read_rdp_state": 1}), (host, counters)
    # The client's view is next to the host's findings: the probe ran from the controller. The run prints one fleet
    # summary (each host's own lines stay in its results).
    assert result.hosts["ok-2022"]["summary"][0] == "no findings: RDP looks healthy from the host's side and the client's"
    assert result.hosts["ok-2022"]["summary"][1].startswith("client view 127.")
    assert result.run.stdout.count(f'"rdp.doctor: {len(EXPECTED)} hosts - ') == 1


def test_check_mode_gives_the_same_answer(diagnose_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """--check: nothing changes, one round trip per host, the same findings as a normal run."""
    chosen = ["ok-2022", _host_name(["cert_expired"]), _host_name(["gpo_denies_connections"]), _host_name(COMBINATIONS[0])]
    limit = ["--limit", ",".join(chosen)]
    (tmp_path / "normal").mkdir()
    normal = diagnose(run_playbook, diagnose_lab.inventory, tmp_path / "normal", *limit)
    diagnose_lab.admin.reset_counters()
    checked = diagnose(run_playbook, diagnose_lab.inventory, tmp_path, "--check", *limit)
    assert normal.run.returncode == 0 and checked.run.returncode == 0, checked.run.stdout[-3000:]
    recap = [line for line in checked.run.stdout.splitlines() if ": ok=" in line]
    assert len(recap) == len(chosen) and all("changed=0" in line for line in recap)
    assert set(checked.hosts) == set(normal.hosts) == set(chosen)
    for host, diagnosis in checked.hosts.items():
        assert ids(diagnosis) == ids(normal.hosts[host]) and (ids(diagnosis) == []) == (host == "ok-2022"), host
        assert diagnose_lab.admin.counters(host)["round_trips"] == 1


def test_unreachable_host_is_reported_not_dropped(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """A host whose WinRM endpoint resets is UNREACHABLE in the summary; the probe still looks at it."""
    from tests.lab.fleet import SMALL_FLEET  # pylint: disable=import-outside-toplevel

    info = lab_fleet(SMALL_FLEET, fresh=True)
    try:
        info.admin.set_transport_fault("f-cert-expired", "reset", persistent=True)
        result = diagnose(run_playbook, info.inventory, tmp_path)
    finally:
        lab_fleet.stop(info)
    assert result.run.returncode == 2, result.run.stdout[-3000:]  # the recap tells the truth: that host fails
    recap = {line.split()[0]: line for line in result.run.stdout.splitlines() if ": ok=" in line}
    assert "failed=1" in recap["f-cert-expired"] and "failed=0" in recap["ok-2022"] and "failed=0" in recap["f-rdp-disabled"]
    assert set(result.hosts) == {"ok-2022", "f-rdp-disabled", "f-cert-expired", "f-tls12-disabled", "c-expired-fw-off"}
    lost = result.hosts["f-cert-expired"]
    assert lost["host_state"]["state"] == "unreachable" and lost["host_state"]["msg"] and lost["facts"] == {}
    assert lost["probe"]["verdict"]["failed_step"] == "certificate"  # the client's eye still sees the expired certificate
    assert ids(lost) == ["RDP-CERT-EXPIRED"] and "probe" in finding(lost, "RDP-CERT-EXPIRED")["evidence"]
    assert "UNREACHABLE: not reached (connection reset): " in result.run.stdout
    assert result.hosts["ok-2022"]["findings"] == [] and ids(result.hosts["f-rdp-disabled"]) == ["RDP-CONNECTIONS-DENIED"]


def test_failing_host_script_is_reported(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """A host answering garbage is FAILED with the reason and the structured error; the others go on."""
    from tests.lab.fleet import SMALL_FLEET  # pylint: disable=import-outside-toplevel

    info = lab_fleet(SMALL_FLEET, fresh=True)
    try:
        info.admin.set_transport_fault("ok-2022", "garbled", persistent=True)
        result = diagnose(run_playbook, info.inventory, tmp_path, "--limit", "ok-2022,f-rdp-disabled")
    finally:
        lab_fleet.stop(info)
    assert result.run.returncode == 2, result.run.stdout[-3000:]  # a host whose read failed is failed, not green
    broken = result.hosts["ok-2022"]
    assert broken["host_state"]["state"] == "failed" and "read_rdp_state" in broken["host_state"]["msg"]
    assert broken["host_state"]["error"]["script"] == "read_rdp_state" and broken["facts"] == {}
    assert "FAILED: read failed (garbled answer): host script 'read_rdp_state'" in result.run.stdout
    assert ids(result.hosts["f-rdp-disabled"]) == ["RDP-CONNECTIONS-DENIED"]


def test_fail_on_findings_fails_only_hosts_with_a_cause(diagnose_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """rdp_doctor_diagnose_fail_on_findings=true fails the hosts with a cause of 0x904, not the healthy ones."""
    result = diagnose(run_playbook, diagnose_lab.inventory, tmp_path, "-e", "rdp_doctor_diagnose_fail_on_findings=true",
                      "--limit", "ok-2022,f-rdp-disabled,f-nla-disabled")
    recap = {line.split()[0]: line for line in result.run.stdout.splitlines() if ": ok=" in line}
    assert result.run.returncode == 2
    assert "failed=0" in recap["ok-2022"] and "failed=0" in recap["f-nla-disabled"]  # NLA off is a risk, not a cause
    assert "failed=1" in recap["f-rdp-disabled"] and "RDP-CONNECTIONS-DENIED" in result.run.stdout
    assert set(result.hosts) == {"ok-2022", "f-rdp-disabled", "f-nla-disabled"}  # failed, yet its diagnosis is published
    (tmp_path / "medium").mkdir()
    medium = diagnose(run_playbook, diagnose_lab.inventory, tmp_path / "medium", "-e", "rdp_doctor_diagnose_fail_on=medium",
                      "--limit", "ok-2022,f-nla-disabled")
    recap = {line.split()[0]: line for line in medium.run.stdout.splitlines() if ": ok=" in line}
    assert medium.run.returncode == 2 and "failed=0" in recap["ok-2022"] and "failed=1" in recap["f-nla-disabled"]
    assert "AT RISK: [medium] RDP-NLA-DISABLED" in medium.run.stdout and "fail_on=medium fails 1" in medium.run.stdout


def test_probe_can_be_switched_off(diagnose_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """rdp_doctor_diagnose_probe=false: no probe, so the path-only DNS finding disappears; host findings stay."""
    result = diagnose(run_playbook, diagnose_lab.inventory, tmp_path, "-e", "rdp_doctor_diagnose_probe=false",
                      "--limit", "f-dns-mismatch,f-rdp-disabled")
    assert result.run.returncode == 0, result.run.stdout[-3000:]
    assert result.hosts["f-dns-mismatch"]["probe"] is None and result.hosts["f-dns-mismatch"]["findings"] == []
    assert ids(result.hosts["f-rdp-disabled"]) == ["RDP-CONNECTIONS-DENIED"]
    assert "probe" not in finding(result.hosts["f-rdp-disabled"], "RDP-CONNECTIONS-DENIED")["evidence"]


def test_step_tags_select_the_steps(diagnose_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """One task does every step, yet --tags / --skip-tags select steps as separate tasks would."""
    limit = ["--limit", "f-cert-expired"]
    (tmp_path / "skip").mkdir()
    diagnose_lab.admin.reset_counters()
    no_probe = diagnose(run_playbook, diagnose_lab.inventory, tmp_path / "skip", "--skip-tags", "rdp_doctor_probe", *limit)
    assert no_probe.run.returncode == 0, no_probe.run.stdout[-3000:]
    host = no_probe.hosts["f-cert-expired"]
    assert host["probe"] is None and host["host_state"]["state"] == "ok" and ids(host) == ["RDP-CERT-EXPIRED"]
    assert diagnose_lab.admin.counters("f-cert-expired")["round_trips"] == 1
    diagnose_lab.admin.reset_counters()
    probe_only = diagnose(run_playbook, diagnose_lab.inventory, tmp_path, "--tags", "rdp_doctor_probe", *limit)
    assert probe_only.run.returncode == 0, probe_only.run.stdout[-3000:]
    host = probe_only.hosts["f-cert-expired"]
    assert host["host_state"]["state"] == "skipped" and host["facts"] == {} and host["findings"] == []
    assert host["probe"]["verdict"]["failed_step"] == "certificate"  # the client's eye, without reading the host
    assert diagnose_lab.admin.counters("f-cert-expired")["round_trips"] == 0
    assert "Summarise the fleet" not in probe_only.run.stdout
