"""End to end: rdp.doctor.listener_security, credssp and firewall fix lab faults through the real connection plugins.

For every lab fault these modules fix: check mode reports the diff and leaves the model untouched (admin API),
the module fixes it, a second run changes nothing, host facts + findings no longer name the fault's finding and
the lab RDP listener answers the probe cleanly. GPO-owned values stay manual and untouched. Every lockout guard
refuses without touching the host. Drift between the read and the apply is re-planned once; an operation made
to fail (lab hook) is rolled back and reported, and a re-run converges. Round trips: with ``facts`` given a
compliant host costs none, a change one. Over winrm, and psrp for a subset.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.rdp.doctor.plugins.module_utils import findings
from ansible_collections.rdp.doctor.plugins.module_utils.rdp_probe import ProbeOptions, probe

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]
RDP_TCP = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp"
POL = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services"

#: fault -> (module, options, the finding the fault produces, probe port after the fix)
FIXES: dict[str, tuple[str, dict[str, t.Any], str, int]] = {
    "rdp_disabled": ("listener_security", {"allow_connections": True}, "RDP-CONNECTIONS-DENIED", 3389),
    "listener_disabled": ("listener_security", {"listener_enabled": True}, "RDP-LISTENER-DISABLED", 3389),
    "security_layer_rdp": ("listener_security", {"security_layer": "tls"}, "RDP-SECURITY-LAYER-RDP", 3389),
    "nla_disabled": ("listener_security", {"nla": True}, "RDP-NLA-DISABLED", 3389),
    "credssp_force_updated": ("credssp", {"allow_encryption_oracle": "mitigated"}, "RDP-CREDSSP-FORCE-UPDATED", 3389),
    "credssp_vulnerable": ("credssp", {"allow_encryption_oracle": "mitigated"}, "RDP-CREDSSP-VULNERABLE", 3389),
    "firewall_rdp_disabled": ("firewall", {"state": "enabled", "port": 3389}, "RDP-FIREWALL-RULES-DISABLED", 3389),
    "port_moved": ("firewall", {"state": "enabled", "port": 3390}, "RDP-PORT-NOT-ALLOWED", 3390),
}
PSRP_FIXES = ("security_layer_rdp", "firewall_rdp_disabled", "credssp_vulnerable")
#: GPO-owned faults: (module, options, the manual setting reported)
GPO_CASES: dict[str, tuple[str, dict[str, t.Any], str]] = {
    "gpo_denies_connections": ("listener_security", {"allow_connections": True}, "allow_connections"),
    "gpo_overrides_security_layer": ("listener_security", {"security_layer": "tls"}, "security_layer"),
    "firewall_gpo_blocks": ("firewall", {"state": "enabled"}, "firewall_gpo_domain"),
}
#: options that a guard refuses on a healthy host, and the opt-in the message must name
REFUSALS: list[tuple[str, dict[str, t.Any], str]] = [
    ("listener_security", {"allow_connections": False}, "allow_lockout"),
    ("listener_security", {"listener_enabled": False}, "allow_lockout"),
    ("listener_security", {"lan_adapter": 1}, "allow_lockout"),
    ("listener_security", {"security_layer": "rdp"}, "allow_insecure"),
    ("listener_security", {"security_layer": "negotiate"}, "allow_insecure"),
    ("listener_security", {"nla": False}, "allow_insecure"),
    ("listener_security", {"min_encryption_level": "low"}, "allow_insecure"),
    ("listener_security", {"port": 3391}, "allow_port_change"),
    ("credssp", {"allow_encryption_oracle": "vulnerable"}, "allow_insecure"),
    ("firewall", {"state": "disabled"}, "allow_lockout"),
]


def host_name(prefix: str, fault: str) -> str:
    return f"{prefix}-{fault.replace('_', '-')}"


def fleet_document() -> dict[str, t.Any]:
    hosts = [{"name": host_name("w", fault), "faults": [fault]} for fault in FIXES]
    hosts += [{"name": host_name("p", fault), "faults": [fault]} for fault in PSRP_FIXES]
    hosts += [{"name": host_name("g", fault), "faults": [fault]} for fault in GPO_CASES]
    hosts += [{"name": f"ok-{n}"} for n in ("refuse", "port", "revert", "budget", "wlp")]
    hosts += [{"name": "c-drift", "faults": ["security_layer_rdp", "nla_disabled"]},
              {"name": "c-rollback", "faults": ["security_layer_rdp", "nla_disabled"]},
              {"name": "g-wlp", "faults": ["gpo_overrides_security_layer"]},
              {"name": "s-secret", "faults": ["nla_disabled"]}]
    return {"defaults": {"os_version": "2022"}, "hosts": hosts}


@pytest.fixture(scope="module")
def lab(lab_fleet: t.Callable[..., t.Any], tmp_path_factory: pytest.TempPathFactory) -> t.Any:
    """A fresh lab of this module's own: its tests change hosts."""
    path = tmp_path_factory.mktemp("remediate-fleet") / "remediate.yml"
    path.write_text(yaml.safe_dump(fleet_document(), sort_keys=False), encoding="utf-8")
    return lab_fleet(path, fresh=True)


class Runner:
    """Runs one generated playbook per call and returns what each task registered."""

    def __init__(self, lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path) -> None:
        self.lab, self.run_playbook, self.tmp_path = lab, run_playbook, tmp_path
        self.count = 0

    def play(self, host: str, tasks: list[dict[str, t.Any]], connection: str = "winrm", check: bool = False) -> dict[str, t.Any]:
        """Run ``tasks`` (each registers ``r<index>``) on ``host``; returns {"r0": result, ...}."""
        self.count += 1
        dump = self.tmp_path / f"dump{self.count}.json"
        names = [f"r{i}" for i in range(len(tasks))]
        body = []
        for name, task in zip(names, tasks):
            body.append(dict(task, register=name, ignore_errors=True, **({} if "check_mode" in task else {"check_mode": check})))
        body.append({"name": "Dump", "ansible.builtin.copy": {
            "content": "{{ {" + ", ".join(f"'{n}': {n}" for n in names) + "} | to_json }}", "dest": str(dump), "mode": "0600"},
            "delegate_to": "localhost", "check_mode": False})
        playbook = self.tmp_path / f"play{self.count}.yml"
        playbook.write_text(yaml.safe_dump([{"name": "test", "hosts": host, "gather_facts": False, "tasks": body}], sort_keys=False),
                            encoding="utf-8")
        run = self.run_playbook(playbook, self.lab.inventory_for(connection))
        assert dump.exists(), run.stdout[-4000:] + run.stderr[-4000:]
        return json.loads(dump.read_text(encoding="utf-8"))

    def module(self, host: str, module: str, options: dict[str, t.Any], connection: str = "winrm", check: bool = False) -> dict[str, t.Any]:
        """One module call."""
        return self.play(host, [{"name": module, f"rdp.doctor.{module}": options}], connection, check)["r0"]

    def facts_and_findings(self, host: str, port: int = 3389) -> tuple[dict[str, t.Any], dict[str, t.Any], list[str]]:
        """Host facts (host_facts module), the probe (Python API) and the joined finding ids."""
        facts = self.play(host, [{"name": "facts", "rdp.doctor.host_facts": {}}])["r0"]["ansible_facts"]["rdp_doctor"]
        address = self.lab.admin.host(host)["address"]
        seen = probe(ProbeOptions(host=address, port=port, expected_address=address, server_name=host, connect_timeout=3.0))
        return facts, seen, [f["id"] for f in findings.evaluate(facts, seen)]


@pytest.fixture()
def runner(lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path) -> Runner:
    return Runner(lab, run_playbook, tmp_path)


def applies(runner: Runner, connection: str, fault: str, prefix: str) -> None:
    module, options, finding_id, port = FIXES[fault]
    host = host_name(prefix, fault)
    admin = runner.lab.admin
    _facts, _probe, before_ids = runner.facts_and_findings(host)
    assert finding_id in before_ids
    model_before = admin.model(host)

    checked = runner.module(host, module, options, connection, check=True)
    assert checked["changed"] is True and checked["outcome"] == "check_mode", checked
    assert checked["diff"]["before"] != checked["diff"]["after"] and checked["operations"]
    assert all("status" not in op for op in checked["operations"])
    assert admin.model(host) == model_before, "check mode changed the lab model"

    applied = runner.module(host, module, options, connection)
    assert applied["changed"] is True and applied["outcome"] == "applied", applied
    assert applied["diff"] == checked["diff"]  # check mode showed exactly what was applied
    assert [op["status"] for op in applied["operations"]] == ["applied"] * len(checked["operations"])
    # CredSSP is read at boot: the module says so and the lab holds the new value as pending until a reboot
    assert applied["reboot_required"] is (module == "credssp") and admin.model(host)["reboot_pending"] is (module == "credssp")

    again = runner.module(host, module, options, connection)
    assert again["changed"] is False and again["outcome"] == "compliant", again

    _facts, seen, after_ids = runner.facts_and_findings(host, port)
    assert finding_id not in after_ids, after_ids
    assert seen["verdict"]["ok"] is True, seen["verdict"]


@pytest.mark.parametrize("fault", list(FIXES))
def test_fix_over_winrm(runner: Runner, fault: str) -> None:
    """Check mode = exact diff and no change; apply fixes it; second run changed=0; findings and probe clean."""
    applies(runner, "winrm", fault, "w")


@pytest.mark.parametrize("fault", PSRP_FIXES)
def test_fix_over_psrp(runner: Runner, fault: str) -> None:
    """The same over PSRP."""
    applies(runner, "psrp", fault, "p")


@pytest.mark.parametrize("fault", list(GPO_CASES))
def test_gpo_owned_values_stay_manual(runner: Runner, fault: str) -> None:
    """A value Group Policy owns is reported as manual with its policy key; nothing is written."""
    module, options, setting = GPO_CASES[fault]
    host = host_name("g", fault)
    before = runner.lab.admin.model(host)
    result = runner.module(host, module, options)
    assert result["changed"] is False and not result.get("failed"), result
    manual = [item for item in result["manual"] if item["setting"] == setting]
    assert manual and manual[0]["policy_key"].startswith("HKLM:\\SOFTWARE\\Policies\\"), result["manual"]
    assert runner.lab.admin.model(host) == before


def test_write_local_policy_writes_the_policy_key_on_a_workgroup_host(runner: Runner) -> None:
    """The opt-in writes POL\\SecurityLayer (the value Windows uses) and the finding goes."""
    result = runner.module("g-wlp", "listener_security", {"security_layer": "tls", "write_local_policy": True})
    assert result["outcome"] == "applied" and result["operations"][0]["target"]["path"] == POL, result
    assert runner.lab.admin.model("g-wlp")["registry"][POL]["SecurityLayer"] == 2
    assert "RDP-SECURITY-LAYER-RDP" not in runner.facts_and_findings("g-wlp")[2]


@pytest.mark.parametrize("module,options,opt_in", REFUSALS, ids=[f"{m}-{'-'.join(map(str, o))}" for m, o, _opt in REFUSALS])
def test_every_lockout_guard_refuses_without_touching_the_host(runner: Runner, module: str, options: dict[str, t.Any], opt_in: str) -> None:
    """The task fails, names the option that allows it, and no apply reaches the host."""
    admin = runner.lab.admin
    before = admin.model("ok-refuse")
    admin.reset_counters("ok-refuse")
    result = runner.module("ok-refuse", module, options)
    assert result["failed"] is True and result["outcome"] == "refused" and opt_in in result["msg"], result
    assert admin.counters("ok-refuse")["scripts"] == {"read_rdp_state": 1}
    assert admin.model("ok-refuse") == before


def test_invalid_options_fail_before_any_round_trip(runner: Runner) -> None:
    """Validation names the option and what is allowed; the host is not contacted by the module."""
    admin = runner.lab.admin
    admin.reset_counters("ok-refuse")
    bad = runner.module("ok-refuse", "listener_security", {"port": 70000, "allow_port_change": True})
    assert bad["failed"] is True and "port must be a TCP port (1-65535)" in bad["msg"]
    revert = runner.module("ok-refuse", "listener_security", {"nla": False, "allow_insecure": True, "revert_after": "soon"})
    assert revert["failed"] is True and "revert_after: 'soon' is not a duration" in revert["msg"]
    assert admin.counters("ok-refuse")["round_trips"] == 0


def test_port_change_opens_the_new_port_first_and_the_listener_follows(runner: Runner) -> None:
    """Owned firewall rules, PortNumber, TermService restart; the probe connects on 3390; a second run is clean."""
    result = runner.module("ok-port", "listener_security", {"port": 3390, "allow_port_change": True})
    assert result["outcome"] == "applied", result
    assert [op["kind"] for op in result["operations"]] == ["firewall_rule_owned", "firewall_rule_owned", "registry_value", "service_control"]
    assert result["restart"] == ["TermService"] and any("security groups" in w for w in result["warnings"])
    model = runner.lab.admin.model("ok-port")
    assert model["listener_port"] == 3390 and model["bound_port"] is None
    assert {r["name"] for r in model["firewall_rules"]} >= {"rdp.doctor-RemoteDesktop-Custom-TCP", "rdp.doctor-RemoteDesktop-Custom-UDP"}
    _facts, seen, ids = runner.facts_and_findings("ok-port", 3390)
    assert seen["verdict"]["ok"] is True and "RDP-PORT-NOT-ALLOWED" not in ids, (seen["verdict"], ids)
    assert runner.module("ok-port", "listener_security", {"port": 3390, "allow_port_change": True})["changed"] is False


def test_revert_after_restores_the_previous_values_at_the_deadline(runner: Runner) -> None:
    """NLA off for 30 minutes: a revert task on the host model, fired by lab time, puts NLA back and deletes itself."""
    admin = runner.lab.admin
    result = runner.module("ok-revert", "listener_security", {"nla": False, "allow_insecure": True, "revert_after": "30m"})
    assert result["outcome"] == "applied" and result["operations"][-1]["kind"] == "revert_task", result
    model = admin.model("ok-revert")
    assert model["registry"][RDP_TCP]["UserAuthentication"] == 0 and len(model["revert_tasks"]) == 1
    run_at = dt.datetime.strptime(model["revert_tasks"][0]["run_at_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    assert dt.timedelta(minutes=29) < run_at - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=31)
    assert admin.run_due_tasks("ok-revert", 60)["ran"] == []
    ran = admin.run_due_tasks("ok-revert", 31 * 60)["ran"]
    assert ran and ran[0]["results"][0]["status"] == "applied"
    model = admin.model("ok-revert")
    assert model["registry"][RDP_TCP]["UserAuthentication"] == 1 and model["revert_tasks"] == []


def test_drift_between_read_and_apply_is_replanned_once(runner: Runner) -> None:
    """Facts read, then the host changes behind the controller's back: nothing applied blind, re-read, re-plan, apply."""
    admin = runner.lab.admin
    url = admin.url
    tasks = [
        {"name": "facts", "rdp.doctor.host_facts": {}},
        {"name": "change the host", "ansible.builtin.uri": {
            "url": f"{url}/hosts/c-drift/registry", "method": "POST", "body_format": "json",
            "body": {"path": RDP_TCP, "name": "SecurityLayer", "value": 1}}, "delegate_to": "localhost"},
        {"name": "reset counters", "ansible.builtin.uri": {"url": f"{url}/hosts/c-drift/reset_counters", "method": "POST",
                                                           "body_format": "json", "body": {}}, "delegate_to": "localhost"},
        {"name": "fix", "rdp.doctor.listener_security": {"security_layer": "tls", "nla": True, "facts": "{{ ansible_facts.rdp_doctor }}"}},
    ]
    results = runner.play("c-drift", tasks)
    fixed = results["r3"]
    assert fixed["outcome"] == "applied" and fixed["diff"]["before"]["security_layer"] == "negotiate", fixed
    # drifted apply (nothing written), re-read, apply
    assert admin.counters("c-drift")["scripts"] == {"apply_rdp_changes": 2, "read_rdp_state": 1}
    registry = admin.model("c-drift")["registry"][RDP_TCP]
    assert (registry["SecurityLayer"], registry["UserAuthentication"]) == (2, 1)


def test_a_failing_operation_is_rolled_back_and_a_rerun_converges(runner: Runner) -> None:
    """The lab hook fails operation 2: operation 1 is undone, the task fails naming it, the model is as before."""
    admin = runner.lab.admin
    before = admin.model("c-rollback")["registry"]
    admin.fail_apply_at("c-rollback", 2)
    failed = runner.module("c-rollback", "listener_security", {"security_layer": "tls", "nla": True})
    assert failed["failed"] is True and failed["outcome"] == "rolled_back", failed
    assert [op["status"] for op in failed["operations"]] == ["rolled_back", "failed"] and failed["still_applied"] == []
    assert "op02" in failed["msg"] and "every applied operation was undone" in failed["msg"]
    assert admin.model("c-rollback")["registry"] == before
    rerun = runner.module("c-rollback", "listener_security", {"security_layer": "tls", "nla": True})
    assert rerun["outcome"] == "applied" and rerun["changed"] is True


def test_round_trips_with_facts_given(runner: Runner) -> None:
    """With the facts passed in, a compliant host costs no round trip and a change exactly one."""
    admin = runner.lab.admin
    url = admin.url
    reset = {"name": "reset counters", "ansible.builtin.uri": {"url": f"{url}/hosts/ok-budget/reset_counters", "method": "POST",
                                                               "body_format": "json", "body": {}}, "delegate_to": "localhost"}
    compliant = runner.play("ok-budget", [{"name": "facts", "rdp.doctor.host_facts": {}}, reset,
                                          {"name": "fix", "rdp.doctor.listener_security": {"nla": True, "facts": "{{ ansible_facts.rdp_doctor }}"}}])
    assert compliant["r2"]["changed"] is False
    assert admin.counters("ok-budget")["round_trips"] == 0
    change = runner.play("ok-budget", [{"name": "facts", "rdp.doctor.host_facts": {}}, reset,
                                       {"name": "fix", "rdp.doctor.listener_security": {
                                           "min_encryption_level": "high", "facts": "{{ ansible_facts.rdp_doctor }}"}}])
    assert change["r2"]["outcome"] == "applied"
    assert admin.counters("ok-budget")["round_trips"] == 1


def test_no_password_in_the_output_of_an_apply_at_vvvvv(lab: t.Any, run_ansible: t.Callable[..., subprocess.CompletedProcess]) -> None:
    """A remediation that reads, plans and applies at the highest verbosity never prints the connection password."""
    inventory = lab.inventory_for("winrm")
    document = yaml.safe_load(Path(inventory).read_text(encoding="utf-8"))
    password = document["all"]["children"]["windows"]["vars"]["ansible_password"]
    run = run_ansible(["s-secret", "-m", "rdp.doctor.listener_security", "-a", "nla=true", "-vvvvv"], inventory)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "running host script 'apply_rdp_changes'" in run.stdout + run.stderr and '"outcome": "applied"' in run.stdout
    assert password not in run.stdout + run.stderr
