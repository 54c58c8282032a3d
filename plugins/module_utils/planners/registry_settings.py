# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared planning of registry-backed settings (pure): Group Policy awareness, durations, self-reverting changes.

A setting in the facts (contracts section 4) is ``{effective, source, local, policy, default}``. Windows
uses a policy value over the local one [S10], so a setting that Group Policy owns is never "fixed" by
writing the local value: the plan lists it as manual with the policy key, unless the caller opted in to
write the local policy key on a host that is not a domain member (contracts section 10b).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation

Facts = t.Dict[str, t.Any]


def get(facts: t.Any, path: str, default: t.Any = None) -> t.Any:
    """``get(facts, "security.security_layer.effective")``; ``default`` when any step is missing."""
    node = facts
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


@dataclass(frozen=True)
class RegistrySetting:
    """Where one setting lives: its local key and value name, and the policy key that overrides it (or None)."""

    option: str  # the module option that sets it
    local_path: str
    value_name: str
    policy_path: str | None = reg.POL
    policy_name: str = ""  # the Group Policy display name, for the manual step


@dataclass
class SettingChange:
    """The outcome for one setting: operations to run, or a manual step; ``changed`` = the host value differs."""

    operations: list[remediation.Operation]
    manual: dict[str, t.Any] | None
    changed: bool


def domain_member(facts: Facts) -> bool:
    """The host is joined to a domain (a GPO refresh may rewrite what is written locally)."""
    return bool(get(facts, "os.part_of_domain"))


def plan_setting(facts: Facts, setting: dict[str, t.Any], spec: RegistrySetting, wanted: int, write_local_policy: bool,
                 why: str) -> SettingChange:
    """Write ``wanted`` where Windows will use it, or say why not (Group Policy owns the value)."""
    effective = setting.get("effective")
    if effective == wanted:
        return SettingChange([], None, False)
    if setting.get("source") == "policy" and spec.policy_path is not None:
        key = f"{spec.policy_path}\\{spec.value_name}"
        if write_local_policy and not domain_member(facts):
            return SettingChange([remediation.registry_set(spec.policy_path, spec.value_name, wanted, setting.get("policy"),
                                                           why=f"{why} (local policy key: Group Policy sets it)")], None, True)
        reason = ("Group Policy sets this value (the policy wins over the local value); change the policy"
                  + (" in the domain GPO" if domain_member(facts) else ", or pass write_local_policy=true to write the local policy key"))
        return SettingChange([], {"setting": spec.option, "reason": reason, "policy_key": key, "policy_name": spec.policy_name,
                                  "effective": effective, "wanted": wanted}, False)
    return SettingChange([remediation.registry_set(spec.local_path, spec.value_name, wanted, setting.get("local"), why=why)], None, True)


_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: t.Any) -> dt.timedelta | None:
    """``30m`` / ``2h`` / ``90s`` / ``1d`` / ``1500ms`` / a bare number of minutes; None when not a duration."""
    if isinstance(text, bool):
        return None
    match = _DURATION.match(str(text))
    if not match:
        return None
    return dt.timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2) or "m"])


def revert_task_for(module: str, facts: Facts, operations: list[remediation.Operation], after: dt.timedelta) -> remediation.Operation:
    """A revert_task that restores, at host time + ``after``, every registry value ``operations`` change.

    The restore list puts back each previous state (value and type, or absence); its own ``expect`` is the
    value the change wrote. The task's name is stable for the same facts (host time) and changes.
    """
    restore = []
    for op in operations:
        if op["kind"] != "registry_value":
            continue
        previous, written = op["expect"], op["set"]
        restore.append({"id": "", "kind": "registry_value", "target": dict(op["target"]), "expect": dict(written),
                        "set": dict(previous), "reversible": True, "why": f"revert: {op.get('why', '')}"})
    remediation.number(restore)
    host_time = _host_time(facts)
    run_at = (host_time + after).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hashlib.sha256(repr([(r["target"], r["set"]) for r in restore]).encode("utf-8")).hexdigest()[:8]
    name = f"rdp.doctor-revert-{module}-{host_time.strftime('%Y%m%dT%H%M%SZ')}-{digest}"
    return remediation.revert_task(name, run_at, restore, why=f"restore the previous values at {run_at} (revert_after)")


def _host_time(facts: Facts) -> dt.datetime:
    """The host's clock when the facts were read (the revert deadline is on the host's clock); ValueError if unknown."""
    text = get(facts, "os.host_time_utc")
    try:
        value = dt.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as exc:
        raise ValueError(f"the facts carry no usable os.host_time_utc ({text!r})") from exc
    return value.replace(tzinfo=dt.timezone.utc)
