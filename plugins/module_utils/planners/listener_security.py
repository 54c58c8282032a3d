# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.listener_security`` (pure): the RDP-Tcp listener's security and reachability settings.

Settings and where they live (windows-rdp-facts.md section 3, contracts 3a): ``TS\\fDenyTSConnections``,
``RDP-Tcp\\{fEnableWinStation, SecurityLayer, UserAuthentication, MinEncryptionLevel, LanAdapter, PortNumber}``;
the policy copies under ``POL`` win over the local values [S10]. Guards (design principle 4): turning Remote
Desktop or the listener off needs ``allow_lockout``; lowering the security layer or turning NLA off needs
``allow_insecure``; moving the port needs ``allow_port_change`` (it also opens the new port with collection-owned
firewall rules before the move, restarts TermService, and warns that cloud security groups must follow).
``revert_after`` schedules a task on the host that puts the previous values back at the deadline.
"""

from __future__ import annotations

import datetime as dt
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners.common import (
    Facts, RegistrySetting, get, parse_duration, plan_setting, revert_task_for, unread,
)

MODULE = "listener_security"
SECURITY_LAYERS = {"rdp": 0, "negotiate": 1, "tls": 2}
ENCRYPTION_LEVELS = {"low": 1, "client_compatible": 2, "high": 3, "fips": 4}
#: Collection-owned rules that open a non-default port (Azure's SetRDPPort adds a rule the same way).
CUSTOM_RULES = {"TCP": "rdp.doctor-RemoteDesktop-Custom-TCP", "UDP": "rdp.doctor-RemoteDesktop-Custom-UDP"}
CUSTOM_RULE_NAMES = {"TCP": "Remote Desktop - Custom Port (TCP-In) [rdp.doctor]", "UDP": "Remote Desktop - Custom Port (UDP-In) [rdp.doctor]"}

_RDS = reg.POLICY_NAMES
SETTINGS = {
    "allow_connections": RegistrySetting("allow_connections", reg.TS, "fDenyTSConnections", reg.POL, _RDS["deny_ts_connections"]),
    "listener_enabled": RegistrySetting("listener_enabled", reg.RDP_TCP, "fEnableWinStation", None),
    "security_layer": RegistrySetting("security_layer", reg.RDP_TCP, "SecurityLayer", reg.POL, _RDS["security_layer"]),
    "nla": RegistrySetting("nla", reg.RDP_TCP, "UserAuthentication", reg.POL, _RDS["user_authentication"]),
    "min_encryption_level": RegistrySetting("min_encryption_level", reg.RDP_TCP, "MinEncryptionLevel", reg.POL, _RDS["min_encryption_level"]),
    "lan_adapter": RegistrySetting("lan_adapter", reg.RDP_TCP, "LanAdapter", None),
}
FACT_PATHS = {
    "allow_connections": "listener.deny_ts_connections", "listener_enabled": "listener.enable_winstation",
    "security_layer": "security.security_layer", "nla": "security.user_authentication",
    "min_encryption_level": "security.min_encryption_level", "lan_adapter": "listener.lan_adapter",
}
OPTIONS = tuple(SETTINGS) + ("port",)


def to_registry(option: str, value: t.Any) -> int:
    """The registry value for an option value."""
    if option == "allow_connections":
        return 0 if value else 1
    if option in ("listener_enabled", "nla"):
        return 1 if value else 0
    if option == "security_layer":
        return SECURITY_LAYERS[value]
    if option == "min_encryption_level":
        return ENCRYPTION_LEVELS[value]
    return int(value)


def from_registry(option: str, value: t.Any) -> t.Any:
    """The option value for a registry value (None stays None; an unknown number is kept as a number)."""
    if value is None:
        return None
    if option == "allow_connections":
        return value == 0
    if option in ("listener_enabled", "nla"):
        return value == 1
    names = {"security_layer": SECURITY_LAYERS, "min_encryption_level": ENCRYPTION_LEVELS}.get(option)
    if names is not None:
        return next((name for name, number in names.items() if number == value), value)
    return value


#: The module's options (Ansible argument spec); the action plugin and rdp.doctor.remediate_host validate with it.
ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "allow_connections": {"type": "bool"},
    "listener_enabled": {"type": "bool"},
    "security_layer": {"type": "str", "choices": list(SECURITY_LAYERS)},
    "nla": {"type": "bool"},
    "min_encryption_level": {"type": "str", "choices": list(ENCRYPTION_LEVELS)},
    "lan_adapter": {"type": "int"},
    "port": {"type": "int"},
    "write_local_policy": {"type": "bool", "default": False},
    "revert_after": {"type": "str"},
    "allow_lockout": {"type": "bool", "default": False},
    "allow_insecure": {"type": "bool", "default": False},
    "allow_port_change": {"type": "bool", "default": False},
}


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Checks before any host is touched (the argument spec already checks types and choices)."""
    problems = []
    if all(options.get(name) is None for name in OPTIONS):
        problems.append(f"give at least one of {', '.join(OPTIONS)}")
    port = options.get("port")
    if port is not None and not 1 <= port <= 65535:
        problems.append(f"port must be a TCP port (1-65535), not {port}")
    lan = options.get("lan_adapter")
    if lan is not None and lan < 0:
        problems.append(f"lan_adapter must be 0 (every network adapter) or an adapter's LanaId, not {lan}")
    if options.get("revert_after") is not None:
        after, problem = parse_duration("revert_after", options["revert_after"])
        if problem:
            problems.append(problem)
        elif not 60_000 <= t.cast(int, after) <= 7 * 86_400_000:
            problems.append(f"revert_after must be between 1m and 7d, not {options['revert_after']!r}")
        if port is not None:
            problems.append("revert_after cannot undo a port change (firewall rules and a service restart); move the port without revert_after")
    if (options.get("security_layer") == "tls" and options.get("min_encryption_level") == "low"):
        problems.append("security_layer=tls with min_encryption_level=low is an invalid combination (WMI rejects it); use client_compatible or higher")
    return problems


def _guard(option: str, before: t.Any, after: t.Any, options: dict[str, t.Any]) -> str | None:
    """The opt-in a change needs, as a refusal message, or None."""
    if option == "allow_connections" and before is not False and after is False and not options.get("allow_lockout"):
        return "allow_connections=false turns Remote Desktop off (fDenyTSConnections=1); pass allow_lockout=true to allow it"
    if option == "listener_enabled" and before is not False and after is False and not options.get("allow_lockout"):
        return "listener_enabled=false turns the RDP-Tcp listener off; pass allow_lockout=true to allow it"
    if option == "lan_adapter" and after != 0 and not options.get("allow_lockout"):
        return f"lan_adapter={after} binds RDP to one network adapter and can cut access; pass allow_lockout=true to allow it"
    if option == "security_layer" and isinstance(before, str) and SECURITY_LAYERS[after] < SECURITY_LAYERS.get(before, 0) \
            and not options.get("allow_insecure"):
        return f"security_layer={after} lowers the security layer from {before}; pass allow_insecure=true to allow it"
    if option == "nla" and before is not False and after is False and not options.get("allow_insecure"):
        return "nla=false turns Network Level Authentication off; pass allow_insecure=true to allow it"
    if option == "min_encryption_level" and after == "low" and before != "low" and not options.get("allow_insecure"):
        return "min_encryption_level=low lowers the RDP encryption level; pass allow_insecure=true to allow it"
    return None


def _port_operations(facts: Facts, port: int, options: dict[str, t.Any], plan: remediation.Plan) -> list[remediation.Operation]:
    """Open the new port with owned rules first, then move it, then restart TermService so it listens there."""
    current = get(facts, "listener.port", {}) or {}
    if current.get("effective") == port:
        return []
    if not options.get("allow_port_change"):
        plan.refused.append(f"port={port} moves RDP from port {current.get('effective')}; clients, firewalls and cloud security groups "
                            "must follow: pass allow_port_change=true to allow it")
        return []
    if unread(facts, "firewall"):
        plan.refused.append(f"port={port}: the host's firewall rules could not be read, so the new port cannot be opened first")
        return []
    rules = {r.get("name"): r for r in get(facts, "firewall.rules", []) or [] if isinstance(r, dict)}
    operations: list[remediation.Operation] = []
    for protocol, name in CUSTOM_RULES.items():
        existing = rules.get(name)
        if port == reg.DEFAULT_PORT:
            if existing is not None:  # back on 3389: the built-in rules cover it, the custom rule goes
                operations.append(remediation.owned_rule(name, False, True, why=f"port back to {port}: remove the custom {protocol} rule"))
            continue
        if existing is not None and [str(p) for p in existing.get("local_ports") or []] == [str(port)] and existing.get("enabled"):
            continue
        operations.append(remediation.owned_rule(
            name, True, existing is not None, why=f"open {protocol} {port} before RDP moves there",
            display_name=CUSTOM_RULE_NAMES[protocol], protocol=protocol, local_ports=[str(port)], profiles=["Domain", "Private", "Public"],
            remote_addresses=["Any"], service="termservice"))
    operations.append(remediation.registry_set(reg.RDP_TCP, "PortNumber", port, current.get("local"),
                                               why=f"PortNumber {current.get('effective')} -> {port}"))
    termservice = get(facts, f"listener.services.{reg.TERMSERVICE}", {}) or {}
    if termservice.get("state") == "Running":
        operations.append(remediation.service_control(reg.TERMSERVICE, "Running", "restart", why="TermService binds the new port when it starts [S14]"))
        plan.restart.append(reg.TERMSERVICE)
    else:
        plan.warnings.append(f"TermService is {termservice.get('state') or 'not running'}: RDP listens on {port} once it starts")
    plan.warnings.append(f"RDP moves to port {port}: cloud security groups (AWS security groups, Azure NSGs), network firewalls and "
                         f"saved .rdp files must allow and name TCP/UDP {port}; the built-in Remote Desktop rules only cover 3389")
    return operations


def plan(facts: Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """Plan the changes ``options`` ask for on the host ``facts`` describe."""
    result = remediation.Plan()
    settings_ops: list[remediation.Operation] = []
    for option, spec in SETTINGS.items():
        wanted = options.get(option)
        if wanted is None:
            continue
        setting = get(facts, FACT_PATHS[option], {}) or {}
        before = from_registry(option, setting.get("effective"))
        result.before[option] = before
        refusal = _guard(option, before, wanted, options)
        if refusal and before != wanted:
            result.refused.append(refusal)
            result.after[option] = before
            continue
        change = plan_setting(facts, setting, spec, to_registry(option, wanted), bool(options.get("write_local_policy")),
                              why=f"{option}: {before} -> {wanted}")
        settings_ops += change.operations
        if change.manual is not None:
            result.manual.append(change.manual)
        result.after[option] = wanted if change.changed else before
    layer = result.after.get("security_layer", from_registry("security_layer", get(facts, "security.security_layer.effective")))
    level = result.after.get("min_encryption_level", from_registry("min_encryption_level", get(facts, "security.min_encryption_level.effective")))
    if layer == "tls" and level == "low" and (settings_ops or result.refused):
        result.refused.append("SecurityLayer=2 (TLS) with MinEncryptionLevel=1 (low) is an invalid combination (WMI rejects it); "
                              "use min_encryption_level=client_compatible or higher")
    if options.get("min_encryption_level") == "fips" and result.after.get("min_encryption_level") == "fips" \
            and result.before.get("min_encryption_level") != "fips":
        result.warnings.append("min_encryption_level=fips: clients without FIPS-compliant RDP encryption cannot connect [S20]")
    port_ops: list[remediation.Operation] = []
    if options.get("port") is not None:
        result.before["port"] = get(facts, "listener.port.effective")
        port_ops = _port_operations(facts, int(options["port"]), options, result)
        result.after["port"] = options["port"] if port_ops else result.before["port"]
    if settings_ops and any(op["target"]["path"] == reg.POL for op in settings_ops):
        result.warnings.append("wrote the local policy key (write_local_policy): a later Group Policy change on this host overrides it")
    operations = settings_ops + port_ops
    if options.get("revert_after") and settings_ops and not result.refused:
        milliseconds = parse_duration("revert_after", options["revert_after"])[0]
        if milliseconds is not None:
            duration = dt.timedelta(milliseconds=milliseconds)
            try:
                operations.append(revert_task_for(MODULE, facts, settings_ops, duration))
            except ValueError as exc:
                result.refused.append(f"revert_after needs the host's clock: {exc}")
            else:
                result.warnings.append(f"the previous values come back in {options['revert_after']} (a scheduled task on the host)")
    if result.refused:
        operations = []
    result.operations = remediation.number(operations)
    return result
