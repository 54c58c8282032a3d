# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small pieces the planners share: fact lookups, option checks, service steps and the plan's last touch (pure)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import typing as t
from dataclasses import dataclass

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.findings import fact as get

Facts = t.Dict[str, t.Any]

#: SDDL of a legacy-CSP key file that SYSTEM and Administrators own and NETWORK SERVICE (TermService) reads
#: [S1][S2][S22]: what Microsoft's MachineKeys fix grants (SYSTEM F, NETWORK SERVICE R, Administrators F) on one file.
KEY_FILE_SDDL = "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x120089;;;NS)"
#: NETWORK SERVICE read on a private key [S1][S27].
NETWORK_SERVICE_READ = {"sid": reg.SID_NETWORK_SERVICE, "rights": "Read"}


def unread(facts: Facts, *parts: str) -> list[dict[str, t.Any]]:
    """The host's read errors (``read_errors``, contracts section 4) that concern ``parts``.

    A part is a top-level section (``firewall``: that section), ``registry`` (any registry key) or a registry key
    path prefix (``registry: HKLM:\\SYSTEM\\...\\SCHANNEL``: that key and its subkeys).
    """
    wanted = [part.lower() for part in parts]
    found = []
    for error in facts.get("read_errors") or [] if isinstance(facts, dict) else []:
        section = str(error.get("section", "") if isinstance(error, dict) else "").lower()
        if any(section == w or section.startswith(w + ":") or (w.startswith("registry: ") and section.startswith(w)) for w in wanted):
            found.append(error)
    return found


def read_error_problems(facts: Facts, *parts: str) -> list[str]:
    """Refusals for facts the planner needs but the host could not read (never plan on a blind spot)."""
    if not isinstance(facts, dict) or not facts.get("facts_version"):
        return ["the facts are not rdp.doctor host facts (ansible_facts.rdp_doctor, facts_version 1)"]
    return [f"the host could not read '{error.get('section')}' ({error.get('message')}): nothing is planned on facts that are missing"
            for error in unread(facts, *parts)]


def is_bool(value: t.Any) -> bool:
    """A real boolean (the argument spec converts 'yes'/'true'; a planner called directly must not guess)."""
    return isinstance(value, bool)


def bool_problems(options: dict[str, t.Any], *names: str) -> list[str]:
    """Messages for options that must be booleans."""
    return [f"{name} must be true or false, not {options[name]!r}" for name in names
            if options.get(name) is not None and not is_bool(options[name])]


def choice_problem(name: str, value: t.Any, allowed: t.Sequence[str]) -> list[str]:
    """A message when ``value`` is set and not one of ``allowed``."""
    if value is None or value in allowed:
        return []
    return [f"{name} must be one of {', '.join(allowed)}, not {value!r}"]


def service_fact(facts: Facts, name: str) -> dict[str, t.Any]:
    """One RDP service from ``listener.services`` (``{}`` when the facts lack it)."""
    return get(facts, f"listener.services.{name}") or {}


def start_service_steps(facts: Facts, name: str, why: str, restart: bool = True) -> list[remediation.Operation]:
    """Run ``name`` (again): Manual first when Disabled (Windows refuses to start a disabled service, error
    1058 [S22]), then restart a running service or start a stopped one."""
    service = service_fact(facts, name)
    operations = []
    if service.get("disabled"):
        operations.append(remediation.service_config(name, service, start_mode=reg.SERVICE_DEFAULT_START_MODE,
                                                     why=f"{name} is Disabled; Windows starts only an enabled service [S21][S22]"))
    if service.get("running") and restart:
        operations.append(remediation.service_control(name, "Running", "restart", why))
    elif not service.get("running"):
        operations.append(remediation.service_control(name, service.get("state") or "Stopped", "start", why))
    return operations


def finish(plan: remediation.Plan) -> remediation.Plan:
    """Irreversible operations last (stable order otherwise), ids numbered; a refused plan carries no operations."""
    if plan.refused:
        plan.operations = []
        plan.restart = []
        plan.reboot_required = False
        plan.after = dict(plan.before)
        return plan
    plan.operations = [op for op in plan.operations if op.get("reversible", True)] + \
                      [op for op in plan.operations if not op.get("reversible", True)]
    remediation.number(plan.operations)
    plan.restart = [op["target"]["name"] for op in plan.operations
                    if op["kind"] == "service_control" and op["set"].get("action") == "restart"]
    return plan


_UTC_STAMP = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})")


def utc_stamp(facts: Facts) -> str:
    """``yyyyMMddTHHmmssZ`` of the moment the facts were collected (a pure planner has no clock of its own)."""
    match = _UTC_STAMP.match(str(facts.get("collected_at") or ""))
    if not match:
        raise ValueError("the facts have no collected_at time")
    return "{}{}{}T{}{}{}Z".format(*match.groups())


# ==================================================================================================
# Durations (one syntax for every option: session limits, revert_after)
# ==================================================================================================

#: Largest value a REG_DWORD holds: the longest time limit Windows can store (about 49.7 days).
MAX_DWORD = 0xFFFFFFFF
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^(?:\d+(?:ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+)(ms|s|m|h|d)")
_DURATION_HELP = "use a number with a unit (500ms, 30s, 15m, 2h, 1d; combined like 1h30m) or whole milliseconds; 0 = never"


def parse_duration(name: str, value: t.Any) -> tuple[int | None, str | None]:
    """(milliseconds, None) for ``15m`` / ``2h`` / ``1d`` / ``1h30m`` / an integer of milliseconds, or (None, message).

    Strict: a bare number is milliseconds (as Windows stores it), no fractions, no negatives, no booleans,
    nothing above what a REG_DWORD holds.
    """
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None, f"{name}: {value!r} is not a duration: {_DURATION_HELP}"
    if isinstance(value, int):
        milliseconds = value
    else:
        text = str(value).strip().lower().replace(" ", "")
        if text.isdigit():
            milliseconds = int(text)
        elif _DURATION.match(text):
            milliseconds = sum(int(number) * _UNITS_MS[unit] for number, unit in _DURATION_PART.findall(text))
        else:
            return None, f"{name}: {value!r} is not a duration: {_DURATION_HELP}"
    if milliseconds < 0:
        return None, f"{name}: {value!r} is negative: {_DURATION_HELP}"
    if milliseconds > MAX_DWORD:
        return None, f"{name}: {value!r} is longer than Windows can store ({MAX_DWORD} ms, about 49 days)"
    return milliseconds, None


# ==================================================================================================
# Registry-backed settings: Group Policy awareness, self-reverting changes
# ==================================================================================================


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
