# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.firewall`` (pure): the Windows Defender Firewall rules that let RDP in.

Rules are matched by the group's resource string ``@FirewallAPI.dll,-28752`` and their stable names, never by
the localized display name (community.windows issue 495) [S13]. The plan touches only the Remote Desktop
group's user-mode rules (TCP, UDP) and the collection's own ``rdp.doctor-*`` rules, which open a non-default
port [S14]. A Group Policy "Allow inbound Remote Desktop exceptions" set to Disabled blocks RDP whatever the
local rules say [S37]: the plan reports it as manual. Rules delivered by Group Policy are reported, not
changed. MpsSvc and BFE are never stopped. Closing RDP (``state: disabled``) needs ``allow_lockout``; a remote
address scope on the built-in rules needs ``scope_builtin_rules``.
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners.listener_security import CUSTOM_RULE_NAMES, CUSTOM_RULES
from ansible_collections.rdp.doctor.plugins.module_utils.planners.common import Facts, get, unread

BUILTIN_RULES = {"TCP": "RemoteDesktop-UserMode-In-TCP", "UDP": "RemoteDesktop-UserMode-In-UDP"}
PROFILES = ("Domain", "Private", "Public")


#: The module's options (Ansible argument spec); the action plugin and rdp.doctor.remediate_host validate with it.
ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "state": {"type": "str", "default": "enabled", "choices": ["enabled", "disabled"]},
    "profiles": {"type": "list", "elements": "str", "default": ["domain", "private", "public"],
                 "choices": ["domain", "private", "public"]},
    "protocols": {"type": "list", "elements": "str", "default": ["tcp", "udp"], "choices": ["tcp", "udp"]},
    "port": {"type": "int"},
    "remote_addresses": {"type": "list", "elements": "str"},
    "scope_builtin_rules": {"type": "bool", "default": False},
    "allow_lockout": {"type": "bool", "default": False},
}


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Checks before any host is touched."""
    problems = []
    if options.get("port") is not None and not 1 <= options["port"] <= 65535:
        problems.append(f"port must be a TCP port (1-65535), not {options['port']}")
    if not options.get("protocols"):
        problems.append("protocols must name tcp, udp or both")
    if not options.get("profiles"):
        problems.append(f"profiles must name at least one of {', '.join(p.lower() for p in PROFILES)}")
    for address in options.get("remote_addresses") or []:
        if not str(address).strip() or any(c in str(address) for c in "\"'`;|&$"):
            problems.append(f"remote_addresses: {address!r} is not an address, range, subnet or keyword (Any, LocalSubnet, ...)")
    if options.get("scope_builtin_rules") and not options.get("remote_addresses"):
        problems.append("scope_builtin_rules needs remote_addresses")
    return problems


def _rules(facts: Facts) -> dict[str, dict[str, t.Any]]:
    return {r["name"]: r for r in get(facts, "firewall.rules", []) or [] if isinstance(r, dict) and r.get("name")}


def _gpo_manual(facts: Facts, result: remediation.Plan) -> None:
    for scope, item in (get(facts, "firewall.gpo", {}) or {}).items():
        if isinstance(item, dict) and item.get("blocks"):
            result.manual.append({
                "setting": f"firewall_gpo_{scope}",
                "reason": (f"Group Policy '{reg.POLICY_FIREWALL}' is Disabled for the {'/'.join(item.get('profiles') or [])} profile(s): "
                           "Windows blocks inbound RDP and ignores local rules; set the policy to Enabled (or Not configured) "
                           "in the GPO that sets it"),
                "policy_key": f"{reg.FW_GPO_KEYS.get(scope, scope)}\\Enabled"})


def plan(facts: Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """Plan the Remote Desktop firewall rules for ``options``."""
    result = remediation.Plan()
    if unread(facts, "firewall") or get(facts, "firewall.rules") is None:
        result.refused.append("the host's firewall rules could not be read (NetSecurity module missing?); nothing can be planned")
        return result
    state = options.get("state") or "enabled"
    protocols = [p.upper() for p in options.get("protocols") or ["tcp", "udp"]]
    profiles = [p.capitalize() for p in options.get("profiles") or [p.lower() for p in PROFILES]]
    port = int(options.get("port") or get(facts, "listener.effective_port") or reg.DEFAULT_PORT)
    addresses = [str(a) for a in options.get("remote_addresses") or []]
    rules = _rules(facts)
    operations: list[remediation.Operation] = []
    _gpo_manual(facts, result)
    result.before = {"state": _state(rules, protocols, port), "port": port}

    if state == "disabled":
        enabled = [r for r in rules.values() if r.get("group") == reg.FIREWALL_RDP_GROUP and r.get("enabled")]
        owned = [r for r in rules.values() if str(r.get("name", "")).startswith(remediation.OWNED_RULE_PREFIX)]
        if (enabled or owned) and not options.get("allow_lockout"):
            result.refused.append("state=disabled closes the firewall to RDP; pass allow_lockout=true to allow it")
            result.after = dict(result.before)
            return result
        for rule in enabled:
            if _policy_rule(rule):
                result.manual.append(_policy_manual(rule))
                continue
            operations.append(remediation.firewall_rule(rule["name"], rule, why=f"disable {rule['name']}", enabled=False))
        for rule in owned:
            operations.append(remediation.owned_rule(rule["name"], False, True, why=f"delete {rule['name']}"))
        result.after = {"state": "disabled", "port": port}
        result.operations = remediation.number(operations)
        return result

    for protocol in protocols:
        if port == reg.DEFAULT_PORT:
            operations += _builtin_ops(rules, protocol, addresses, options, result)
        else:
            operations += _owned_ops(rules, protocol, port, profiles, addresses, result)
    result.after = {"state": "enabled", "port": port}
    if addresses:
        result.before["remote_addresses"] = _addresses(rules, protocols, port)
        result.after["remote_addresses"] = addresses
    result.operations = remediation.number(operations)
    if not result.operations and not result.manual:
        result.after = dict(result.before)
    return result


def _policy_rule(rule: dict[str, t.Any]) -> bool:
    return str(rule.get("policy_store_source") or "PersistentStore") not in ("PersistentStore", "")


def _policy_manual(rule: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"setting": f"firewall_rule:{rule.get('name')}",
            "reason": f"the rule comes from {rule.get('policy_store_source')} (Group Policy): change it in the GPO", "policy_key": None}


def _builtin_ops(rules: dict[str, dict[str, t.Any]], protocol: str, addresses: list[str], options: dict[str, t.Any],
                 result: remediation.Plan) -> list[remediation.Operation]:
    name = BUILTIN_RULES[protocol]
    rule = rules.get(name)
    if rule is None or rule.get("group") != reg.FIREWALL_RDP_GROUP:
        result.warnings.append(f"the built-in rule {name} does not exist on this host: nothing enables {protocol} 3389 "
                               "(rdp.doctor never creates rules outside its own rdp.doctor-* names for the default port)")
        return []
    if _policy_rule(rule):
        if not rule.get("enabled"):
            result.manual.append(_policy_manual(rule))
        return []
    wanted: dict[str, t.Any] = {}
    if not rule.get("enabled"):
        wanted["enabled"] = True
    if addresses and options.get("scope_builtin_rules") and _same_addresses(rule.get("remote_addresses"), addresses) is not True:
        wanted["remote_addresses"] = addresses
    elif addresses:
        result.warnings.append(f"remote_addresses is not applied to the built-in rule {name}; pass scope_builtin_rules=true to scope it")
    if not wanted:
        return []
    expect = dict(rule)
    if "remote_addresses" in wanted:
        expect["remote_addresses"] = rule.get("remote_addresses")
        if expect["remote_addresses"] is None:
            # the facts do not carry a rule's scope: the plan cannot state what it expects, so it refuses rather than guess
            result.refused.append(f"the host facts do not say {name}'s current remote addresses; scope it with the GPO or by hand")
            return []
    return [remediation.firewall_rule(name, expect, why=f"{name}: " + ", ".join(f"{k}={v}" for k, v in wanted.items()), **wanted)]


def _owned_ops(rules: dict[str, dict[str, t.Any]], protocol: str, port: int, profiles: list[str], addresses: list[str],
               result: remediation.Plan) -> list[remediation.Operation]:
    name = CUSTOM_RULES[protocol]
    existing = rules.get(name)
    wanted_addresses = addresses or ["Any"]
    if existing is not None and existing.get("enabled") and [str(p) for p in existing.get("local_ports") or []] == [str(port)] \
            and (not addresses or existing.get("remote_addresses") in (None, wanted_addresses)) \
            and sorted(existing.get("profiles") or []) in (sorted(profiles), ["Any"]):
        return []
    return [remediation.owned_rule(name, True, existing is not None, why=f"allow {protocol} {port} (custom RDP port)",
                                   display_name=CUSTOM_RULE_NAMES[protocol], protocol=protocol, local_ports=[str(port)],
                                   profiles=profiles, remote_addresses=wanted_addresses, service="termservice")]


def _state(rules: dict[str, dict[str, t.Any]], protocols: list[str], port: int) -> str:
    names = [BUILTIN_RULES[p] for p in protocols] if port == reg.DEFAULT_PORT else [CUSTOM_RULES[p] for p in protocols]
    found = [rules.get(name) for name in names]
    if all(rule is not None and rule.get("enabled") for rule in found):
        return "enabled"
    return "disabled" if all(rule is None or not rule.get("enabled") for rule in found) else "partial"


def _addresses(rules: dict[str, dict[str, t.Any]], protocols: list[str], port: int) -> t.Any:
    names = [BUILTIN_RULES[p] for p in protocols] if port == reg.DEFAULT_PORT else [CUSTOM_RULES[p] for p in protocols]
    return {name: (rules.get(name) or {}).get("remote_addresses") for name in names}


def _same_addresses(current: t.Any, wanted: list[str]) -> bool | None:
    """Whether a rule's scope already is ``wanted`` (order and case do not matter); None when the facts lack it."""
    if current is None:
        return None
    return sorted(str(a).strip().lower() for a in current) == sorted(str(a).strip().lower() for a in wanted)
