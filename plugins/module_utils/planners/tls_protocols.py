# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.tls_protocols``: Schannel protocol state for the RDP listener (pure).

Keys: ``HKLM\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\<protocol>\\{Server|Client}``,
values ``Enabled`` and ``DisabledByDefault`` (REG_DWORD) [S18]. The listener uses the Server side [S2].

* ``tls12: enabled`` writes ``Enabled=1`` and ``DisabledByDefault=0`` under TLS 1.2 (only the values that
  differ) when TLS 1.2 is not enabled; a host where the OS default already enables it is left alone.
* ``disable_legacy`` writes ``Enabled=0`` and ``DisabledByDefault=1`` under each named legacy protocol, only
  with ``allow_legacy_disable: true`` (a client that speaks only that protocol can no longer connect), and
  never when no TLS protocol the listener can use would be left.
* ``client: true`` applies the same to the Client side (outgoing TLS of the host).
* Schannel reads these values when it starts: every change needs a reboot [S18][S3].
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners import common

LEGACY_CHOICES = {"ssl3.0": "SSL 3.0", "tls1.0": "TLS 1.0", "tls1.1": "TLS 1.1"}
#: TLS versions the RDP listener negotiates; TLS 1.3 for RDP is not documented (windows-rdp-facts.md section 7).
LISTENER_TLS = ("TLS 1.0", "TLS 1.1", "TLS 1.2")

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "tls12": {"type": "str", "choices": ["enabled"]},
    "disable_legacy": {"type": "list", "elements": "str", "choices": list(LEGACY_CHOICES)},
    "allow_legacy_disable": {"type": "bool", "default": False},
    "client": {"type": "bool", "default": False},
}


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Every problem of the options, each naming the option and what is allowed."""
    problems = common.bool_problems(options, "allow_legacy_disable", "client")
    problems += common.choice_problem("tls12", options.get("tls12"), ("enabled",))
    legacy = options.get("disable_legacy")
    if legacy is not None:
        if not isinstance(legacy, list):
            problems.append(f"disable_legacy must be a list of {', '.join(LEGACY_CHOICES)}, not {legacy!r}")
        else:
            problems += [f"disable_legacy: {item!r} is not one of {', '.join(LEGACY_CHOICES)}" for item in legacy if item not in LEGACY_CHOICES]
    if options.get("tls12") is None and not legacy:
        problems.append("nothing to do: set tls12: enabled and/or disable_legacy")
    return problems


def _side(facts: common.Facts, protocol: str, side: str) -> dict[str, t.Any]:
    """One protocol/side of ``schannel.protocols`` (``{}`` when absent)."""
    protocols = common.get(facts, "schannel.protocols") or {}
    return (protocols.get(protocol) or {}).get(side.lower()) or {}


def _write(path: str, name: str, value: int, current: t.Any, why: str) -> list[remediation.Operation]:
    """A registry write when the current value differs."""
    if current == value:
        return []
    return [remediation.registry_set(path, name, value, current, why=why)]


def _enable(facts: common.Facts, protocol: str, side: str) -> list[remediation.Operation]:
    """Enabled=1, DisabledByDefault=0 where they differ, when the protocol is not enabled [S18]."""
    state = _side(facts, protocol, side)
    if state.get("state") == "enabled":
        return []
    path = reg.schannel_key(protocol, side)
    enabled = state.get("enabled_value")
    operations = []
    if enabled is None or enabled == 0:
        operations += _write(path, "Enabled", 1, enabled, f"{protocol} {side}: Enabled=1 [S18]")
    operations += _write(path, "DisabledByDefault", 0, state.get("disabled_by_default_value"), f"{protocol} {side}: DisabledByDefault=0 [S18]")
    return operations


def _disable(facts: common.Facts, protocol: str, side: str) -> list[remediation.Operation]:
    """Enabled=0, DisabledByDefault=1 when the protocol is not disabled yet [S18]."""
    state = _side(facts, protocol, side)
    if state.get("state") == "disabled" and state.get("enabled_value") == 0:
        return []
    if state.get("state") == "disabled" and state.get("source") == "default":
        return []  # the OS default already disables it (SSL 3.0 from Server 2016): nothing to write
    path = reg.schannel_key(protocol, side)
    return (_write(path, "Enabled", 0, state.get("enabled_value"), f"{protocol} {side}: Enabled=0 [S18]")
            + _write(path, "DisabledByDefault", 1, state.get("disabled_by_default_value"), f"{protocol} {side}: DisabledByDefault=1 [S18]"))


def plan(facts: common.Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """The plan for the Schannel protocol state the options ask for."""
    result = remediation.Plan()
    result.refused = common.read_error_problems(facts, "registry") + option_problems(options)
    if not result.refused and not common.get(facts, "schannel.protocols"):
        result.refused.append("the facts carry no Schannel protocol state (schannel.protocols)")
    if result.refused:
        return common.finish(result)
    sides = ("Server", "Client") if options.get("client") else ("Server",)
    legacy = [LEGACY_CHOICES[item] for item in options.get("disable_legacy") or []]
    asked = (["TLS 1.2"] if options.get("tls12") else []) + legacy
    for protocol in asked:
        for side in sides:
            key = f"{protocol} {side}"
            result.before[key] = _side(facts, protocol, side).get("state")
            result.after[key] = result.before[key]
    if options.get("tls12"):
        for side in sides:
            operations = _enable(facts, "TLS 1.2", side)
            if operations or _side(facts, "TLS 1.2", side).get("state") != "enabled":
                result.after[f"TLS 1.2 {side}"] = "enabled"
            result.operations += operations
    disabling = []
    for protocol in legacy:
        for side in sides:
            operations = _disable(facts, protocol, side)
            if operations:
                disabling.append(f"{protocol} {side}")
                result.after[f"{protocol} {side}"] = "disabled"
            result.operations += operations
    if disabling:
        _guard_legacy(result, facts, options, legacy, disabling)
    if result.operations:
        result.reboot_required = True
        result.warnings.append("Schannel reads protocol settings at start: the change takes effect after a reboot [S18]")
    return common.finish(result)


def _guard_legacy(result: remediation.Plan, facts: common.Facts, options: dict[str, t.Any], legacy: list[str], disabling: list[str]) -> None:
    """Refuse disabling legacy protocols without the opt-in, or when the listener would keep no TLS version."""
    if not options.get("allow_legacy_disable"):
        result.refused.append(f"disable_legacy: turning off {', '.join(disabling)} cuts every client that speaks only that protocol; "
                              "set allow_legacy_disable: true if no such client remains")
        return
    server_after = [p for p in LISTENER_TLS
                    if (p == "TLS 1.2" and options.get("tls12")) or (p not in legacy and _side(facts, p, "Server").get("enabled"))]
    if not server_after:
        result.refused.append(f"disable_legacy: turning off {', '.join(legacy)} leaves the RDP listener no TLS version it can use "
                              "(TLS 1.2 is disabled too); add tls12: enabled")
        return
    result.warnings.append(f"{', '.join(disabling)} off: clients (and connected tools) that need them fail to connect after the reboot")
