"""The listener_security, credssp and firewall planners (pure) on hand-written facts (contracts sections 4, 10b).

Only what differs is written; Group Policy owned values are manual (or written to the local policy key with the
opt-in on a workgroup host); every guard refuses with the option that allows it; plans are valid and stable.
"""

from __future__ import annotations

import copy
import typing as t

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners import credssp, firewall, listener_security
from ansible_collections.rdp.doctor.plugins.module_utils.planners.common import parse_duration


def setting(effective: t.Any, source: str = "local", policy: t.Any = None, local: t.Any = "same", default: t.Any = None) -> dict[str, t.Any]:
    return {"effective": effective, "source": source, "local": effective if local == "same" else local, "policy": policy, "default": default}


def rule(name: str, protocol: str, enabled: bool = True, ports: tuple[str, ...] = ("3389",), group: str = reg.FIREWALL_RDP_GROUP,
         store: str = "PersistentStore") -> dict[str, t.Any]:
    return {"name": name, "group": group, "enabled": enabled, "protocol": protocol, "local_ports": list(ports), "profiles": ["Domain", "Private", "Public"],
            "direction": "Inbound", "action": "Allow", "policy_store_source": store}


def healthy_facts(**changes: t.Any) -> dict[str, t.Any]:
    facts = {
        "facts_version": 1,
        "os": {"part_of_domain": False, "host_time_utc": "2026-11-26T13:00:00Z"},
        "listener": {"deny_ts_connections": setting(0), "enable_winstation": setting(1), "port": setting(3389), "lan_adapter": setting(0),
                     "effective_port": 3389, "services": {"TermService": {"present": True, "state": "Running", "start_mode": "Manual"}}},
        "security": {"security_layer": setting(2), "user_authentication": setting(1), "min_encryption_level": setting(2)},
        "credssp": {"allow_encryption_oracle": setting(1, source="default", local=None), "patched": True, "tspkg_version": "10.0.20348.2849",
                    "required_tspkg_version": None},
        "firewall": {"rules": [rule("RemoteDesktop-UserMode-In-TCP", "TCP"), rule("RemoteDesktop-UserMode-In-UDP", "UDP"),
                               rule("RemoteDesktop-Shadow-In-TCP", "TCP", ports=("Any",))],
                     "gpo": {"domain": {"blocks": False, "profiles": ["Domain"]}, "standard": {"blocks": False, "profiles": ["Private", "Public"]}}},
    }
    for path, value in changes.items():
        node = facts
        parts = path.split("__")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return facts


def ls_plan(facts: dict[str, t.Any], **options: t.Any) -> remediation.Plan:
    base = {"write_local_policy": False, "allow_lockout": False, "allow_insecure": False, "allow_port_change": False}
    return listener_security.plan(facts, dict(base, **options))


def fw_plan(facts: dict[str, t.Any], **options: t.Any) -> remediation.Plan:
    base = {"state": "enabled", "profiles": ["domain", "private", "public"], "protocols": ["tcp", "udp"], "port": None,
            "remote_addresses": None, "scope_builtin_rules": False, "allow_lockout": False}
    return firewall.plan(facts, dict(base, **options))


def valid(plan: remediation.Plan) -> remediation.Plan:
    assert remediation.plan_problems(plan.operations) == []
    return plan


# ---------------------------------------------------------------------------------------------- listener_security

def test_compliant_host_plans_nothing() -> None:
    plan = ls_plan(healthy_facts(), allow_connections=True, listener_enabled=True, security_layer="tls", nla=True,
                   min_encryption_level="client_compatible", lan_adapter=0, port=3389)
    assert plan.operations == [] and plan.refused == [] and plan.before == plan.after


def test_only_what_differs_is_written_with_the_value_it_expects() -> None:
    facts = healthy_facts(security__security_layer=setting(0), security__user_authentication=setting(0))
    plan = valid(ls_plan(facts, security_layer="tls", nla=True, allow_connections=True))
    assert [(op["target"]["name"], op["expect"], op["set"]["value"]) for op in plan.operations] == [
        ("SecurityLayer", {"present": True, "type": "DWORD", "value": 0}, 2),
        ("UserAuthentication", {"present": True, "type": "DWORD", "value": 0}, 1)]
    assert [op["id"] for op in plan.operations] == ["op01", "op02"]
    assert plan.before == {"allow_connections": True, "security_layer": "rdp", "nla": False}
    assert plan.after == {"allow_connections": True, "security_layer": "tls", "nla": True}


def test_an_absent_local_value_is_expected_absent() -> None:
    facts = healthy_facts(security__security_layer=setting(1, source="default", local=None))
    op = valid(ls_plan(facts, security_layer="tls")).operations[0]
    assert op["expect"] == {"present": False} and op["target"]["path"] == reg.RDP_TCP


def test_a_policy_owned_value_is_manual_and_never_written_locally() -> None:
    facts = healthy_facts(listener__deny_ts_connections=setting(1, source="policy", policy=1, local=0))
    plan = ls_plan(facts, allow_connections=True)
    assert plan.operations == [] and plan.after == plan.before == {"allow_connections": False}
    assert plan.manual[0]["policy_key"] == reg.POL + "\\fDenyTSConnections" and "write_local_policy" in plan.manual[0]["reason"]


def test_write_local_policy_writes_the_policy_key_only_off_domain() -> None:
    facts = healthy_facts(security__security_layer=setting(0, source="policy", policy=0, local=2))
    plan = valid(ls_plan(facts, security_layer="tls", write_local_policy=True))
    assert plan.operations[0]["target"] == {"path": reg.POL, "name": "SecurityLayer"} and plan.operations[0]["expect"]["value"] == 0
    facts["os"]["part_of_domain"] = True
    joined = ls_plan(facts, security_layer="tls", write_local_policy=True)
    assert joined.operations == [] and "domain GPO" in joined.manual[0]["reason"]


@pytest.mark.parametrize("options,opt_in", [
    ({"allow_connections": False}, "allow_lockout"),
    ({"listener_enabled": False}, "allow_lockout"),
    ({"lan_adapter": 2}, "allow_lockout"),
    ({"security_layer": "negotiate"}, "allow_insecure"),
    ({"security_layer": "rdp"}, "allow_insecure"),
    ({"nla": False}, "allow_insecure"),
    ({"min_encryption_level": "low"}, "allow_insecure"),
    ({"port": 3390}, "allow_port_change"),
])
def test_guards_refuse_and_name_the_opt_in(options: dict[str, t.Any], opt_in: str) -> None:
    plan = ls_plan(healthy_facts(), **options)
    assert plan.operations == [] and len(plan.refused) == 1 and opt_in in plan.refused[0]
    allowed = valid(ls_plan(healthy_facts(), **options, **{opt_in: True}))
    assert allowed.refused == [] or "invalid combination" in allowed.refused[0]


def test_raising_security_needs_no_opt_in() -> None:
    facts = healthy_facts(security__security_layer=setting(0), security__min_encryption_level=setting(1))
    assert valid(ls_plan(facts, security_layer="negotiate", min_encryption_level="high")).refused == []


def test_tls_with_low_encryption_is_refused_as_invalid_even_with_the_opt_in() -> None:
    plan = ls_plan(healthy_facts(), min_encryption_level="low", allow_insecure=True)
    assert plan.operations == [] and "invalid combination" in plan.refused[0]
    assert "invalid combination" in listener_security.option_problems({"security_layer": "tls", "min_encryption_level": "low"})[0]


def test_port_change_opens_the_port_first_then_moves_and_restarts() -> None:
    plan = valid(ls_plan(healthy_facts(), port=3390, allow_port_change=True))
    assert [(op["kind"], op["target"].get("name")) for op in plan.operations] == [
        ("firewall_rule_owned", "rdp.doctor-RemoteDesktop-Custom-TCP"), ("firewall_rule_owned", "rdp.doctor-RemoteDesktop-Custom-UDP"),
        ("registry_value", "PortNumber"), ("service_control", "TermService")]
    assert plan.operations[0]["set"]["local_ports"] == ["3390"] and plan.restart == ["TermService"]
    assert any("security groups" in w for w in plan.warnings)


def test_port_back_to_default_removes_the_owned_rules() -> None:
    facts = healthy_facts(listener__port=setting(3390), listener__effective_port=3390)
    facts["firewall"]["rules"].append(rule("rdp.doctor-RemoteDesktop-Custom-TCP", "TCP", ports=("3390",), group=""))
    plan = valid(ls_plan(facts, port=3389, allow_port_change=True))
    assert plan.operations[0]["kind"] == "firewall_rule_owned" and plan.operations[0]["set"] == {"present": False}
    assert [op["target"].get("name") for op in plan.operations][1:] == ["PortNumber", "TermService"]


def test_revert_after_schedules_the_previous_values_on_the_host_clock() -> None:
    plan = valid(ls_plan(healthy_facts(), nla=False, allow_insecure=True, revert_after="30m"))
    task = plan.operations[-1]
    assert task["kind"] == "revert_task" and task["set"]["run_at_utc"] == "2026-11-26T13:30:00Z"
    restore = task["set"]["restore"]
    assert restore == [{"id": "op01", "kind": "registry_value", "target": {"path": reg.RDP_TCP, "name": "UserAuthentication"},
                        "expect": {"present": True, "type": "DWORD", "value": 0}, "set": {"present": True, "type": "DWORD", "value": 1},
                        "reversible": True, "why": "revert: nla: True -> False"}]
    assert task["target"]["name"] == ls_plan(healthy_facts(), nla=False, allow_insecure=True, revert_after="30m").operations[-1]["target"]["name"]


@pytest.mark.parametrize("options,fragment", [
    ({}, "give at least one of"),
    ({"port": 0}, "port must be a TCP port"),
    ({"lan_adapter": -1}, "lan_adapter must be 0"),
    ({"nla": False, "revert_after": "later"}, "revert_after: 'later' is not a duration"),
    ({"nla": False, "revert_after": "10s"}, "between 1m and 7d"),
    ({"port": 3390, "revert_after": "30m"}, "cannot undo a port change"),
])
def test_option_problems(options: dict[str, t.Any], fragment: str) -> None:
    assert any(fragment in p for p in listener_security.option_problems(options))


def test_durations() -> None:
    # One syntax for every duration option: a unit, or whole milliseconds as Windows stores them.
    assert [parse_duration("revert_after", x)[0] for x in ("30m", "2h", "90s", "1d", "15", "1h30m")] == [
        1_800_000, 7_200_000, 90_000, 86_400_000, 15, 5_400_000]
    assert parse_duration("revert_after", "soon")[0] is None and parse_duration("revert_after", True)[0] is None


# ---------------------------------------------------------------------------------------------- credssp

def cs_plan(facts: dict[str, t.Any], value: str, **options: t.Any) -> remediation.Plan:
    return credssp.plan(facts, dict({"allow_encryption_oracle": value, "allow_insecure": False}, **options))


def test_credssp_writes_the_value_and_needs_a_reboot() -> None:
    facts = healthy_facts(credssp__allow_encryption_oracle=setting(2))
    plan = valid(cs_plan(facts, "force_updated_clients"))
    assert plan.operations[0]["target"] == {"path": reg.CREDSSP, "name": "AllowEncryptionOracle"}
    assert plan.operations[0]["set"]["value"] == 0 and plan.reboot_required
    assert plan.before == {"allow_encryption_oracle": "vulnerable"} and plan.after == {"allow_encryption_oracle": "force_updated_clients"}
    assert cs_plan(healthy_facts(), "mitigated").operations == []


def test_credssp_vulnerable_needs_allow_insecure_and_warns() -> None:
    assert "allow_insecure" in cs_plan(healthy_facts(), "vulnerable").refused[0]
    plan = valid(cs_plan(healthy_facts(), "vulnerable", allow_insecure=True))
    assert any("CIS baseline 18.9.4.1" in w for w in plan.warnings)


def test_credssp_warns_unpatched_hosts_and_domain_members() -> None:
    facts = healthy_facts(credssp__patched=False, credssp__allow_encryption_oracle=setting(0))
    facts["os"]["part_of_domain"] = True
    plan = cs_plan(facts, "mitigated")
    assert any("lacks the CredSSP update" in w for w in plan.warnings)
    assert any("domain member" in w and "Encryption Oracle Remediation" in w for w in plan.warnings)


# ---------------------------------------------------------------------------------------------- firewall

def test_firewall_enables_the_builtin_rules_by_name() -> None:
    facts = healthy_facts()
    for item in facts["firewall"]["rules"]:
        item["enabled"] = False
    plan = valid(fw_plan(facts))
    assert [(op["kind"], op["target"]["name"], op["expect"], op["set"]) for op in plan.operations] == [
        ("firewall_rule", "RemoteDesktop-UserMode-In-TCP", {"present": True, "enabled": False}, {"enabled": True}),
        ("firewall_rule", "RemoteDesktop-UserMode-In-UDP", {"present": True, "enabled": False}, {"enabled": True})]
    assert plan.before["state"] == "disabled" and plan.after["state"] == "enabled"
    assert fw_plan(healthy_facts()).operations == []


def test_firewall_custom_port_uses_owned_rules_with_scope() -> None:
    plan = valid(fw_plan(healthy_facts(), port=3390, protocols=["tcp"], remote_addresses=["10.0.0.0/24"], profiles=["domain"]))
    (op,) = plan.operations
    assert op["target"]["name"] == "rdp.doctor-RemoteDesktop-Custom-TCP"
    assert op["set"]["local_ports"] == ["3390"] and op["set"]["remote_addresses"] == ["10.0.0.0/24"] and op["set"]["profiles"] == ["Domain"]


def test_firewall_scope_on_builtin_rules_needs_the_opt_in() -> None:
    plan = fw_plan(healthy_facts(), remote_addresses=["10.0.0.0/24"])
    assert plan.operations == [] and any("scope_builtin_rules" in w for w in plan.warnings)


def test_firewall_disable_needs_allow_lockout_and_never_touches_other_rules() -> None:
    facts = healthy_facts()
    facts["firewall"]["rules"].append(rule("WINRM-HTTP-In-TCP", "TCP", ports=("5985",), group="@FirewallAPI.dll,-30267"))
    assert "allow_lockout" in fw_plan(facts, state="disabled").refused[0]
    plan = valid(fw_plan(facts, state="disabled", allow_lockout=True))
    expected = {"RemoteDesktop-UserMode-In-TCP", "RemoteDesktop-UserMode-In-UDP", "RemoteDesktop-Shadow-In-TCP"}
    assert {op["target"]["name"] for op in plan.operations} == expected


def test_firewall_gpo_block_and_gpo_rules_are_manual() -> None:
    facts = healthy_facts()
    facts["firewall"]["gpo"]["domain"]["blocks"] = True
    facts["firewall"]["rules"][0].update(enabled=False, policy_store_source="GroupPolicy")
    plan = fw_plan(facts, protocols=["tcp"])
    assert plan.operations == []
    assert {m["setting"] for m in plan.manual} == {"firewall_gpo_domain", "firewall_rule:RemoteDesktop-UserMode-In-TCP"}
    assert plan.manual[0]["policy_key"] == reg.FW_GPO_DOMAIN + "\\Enabled"


@pytest.mark.parametrize("options,fragment", [
    ({"port": 70000, "protocols": ["tcp"], "profiles": ["domain"]}, "port must be a TCP port"),
    ({"protocols": [], "profiles": ["domain"]}, "protocols must name"),
    ({"protocols": ["tcp"], "profiles": ["domain"], "remote_addresses": ["1.2.3.4; rm"]}, "is not an address"),
    ({"protocols": ["tcp"], "profiles": ["domain"], "scope_builtin_rules": True}, "scope_builtin_rules needs remote_addresses"),
])
def test_firewall_option_problems(options: dict[str, t.Any], fragment: str) -> None:
    assert any(fragment in p for p in firewall.option_problems(options))


def test_plans_are_pure_and_stable() -> None:
    facts = healthy_facts(security__security_layer=setting(0))
    snapshot = copy.deepcopy(facts)
    first = ls_plan(facts, security_layer="tls", port=3390, allow_port_change=True)
    assert facts == snapshot and ls_plan(facts, security_layer="tls", port=3390, allow_port_change=True).to_dict() == first.to_dict()


def test_an_unreadable_firewall_refuses_firewall_and_port_plans() -> None:
    facts = healthy_facts(read_errors=[{"section": "firewall", "type": "System.Management.Automation.CommandNotFoundException",
                                        "message": "The term 'Get-NetFirewallRule' is not recognized"}])
    facts["firewall"]["rules"] = []
    assert "could not be read" in fw_plan(facts).refused[0]
    assert "could not be read" in ls_plan(facts, port=3390, allow_port_change=True).refused[0]


def test_firewall_scope_on_builtin_rules_is_planned_once() -> None:
    """With the opt-in, the built-in rule gets the scope; a rule already scoped so plans nothing (idempotent)."""
    from tests.unit.plugins.module_utils.planners import lab_facts  # pylint: disable=import-outside-toplevel

    facts = lab_facts.facts()
    plan = valid(fw_plan(facts, protocols=["tcp"], remote_addresses=["10.0.0.0/24"], scope_builtin_rules=True))
    (op,) = plan.operations
    assert op["target"]["name"] == "RemoteDesktop-UserMode-In-TCP" and op["set"] == {"remote_addresses": ["10.0.0.0/24"]}
    assert op["expect"]["remote_addresses"] == ["Any"]
    rule = next(r for r in facts["firewall"]["rules"] if r["name"] == "RemoteDesktop-UserMode-In-TCP")
    rule["remote_addresses"] = ["10.0.0.0/24"]
    assert fw_plan(facts, protocols=["tcp"], remote_addresses=["10.0.0.0/24"], scope_builtin_rules=True).operations == []
