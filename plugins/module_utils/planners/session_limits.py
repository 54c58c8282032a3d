# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.session_limits``: session time limits, instance count, single session, ghost sessions (pure).

Where each value is written [S10][S26] (``windows-rdp-facts.md`` section 5):

* not set by policy: the listener's own value under ``RDP-Tcp`` (``fSingleSessionPerUser`` under
  ``Terminal Server``). For the three time limits and fResetBroken the listener's value counts only
  when the matching ``fInherit*`` value of RDP-Tcp is 0 ("override user settings"): with the default 1
  Windows takes the limit from the user's account and ignores RDP-Tcp's Max*Time (issue 12; MSRD-Collect
  reads the pairs together [S26]). So a time limit is written as the value **and** its ``fInherit*=0``.
* set by policy (``POL``, which wins [S10]): never written locally (Windows would ignore it). The plan
  lists it as manual with the policy key; ``write_local_policy: true`` writes the policy value itself,
  on hosts that are not domain members only (a domain GPO would overwrite it at the next refresh).

Ghost sessions: ``logoff_disconnected_older_than`` / ``end_disconnected_sessions`` choose disconnected
user sessions and list them; only ``logoff_sessions: true`` logs them off (irreversible, last). Active
sessions, session 0 and the listener are never logged off.
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners import common

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "max_disconnection_time": {"type": "raw"},
    "max_idle_time": {"type": "raw"},
    "max_connection_time": {"type": "raw"},
    "reset_broken": {"type": "bool"},
    "single_session_per_user": {"type": "bool"},
    "max_instance_count": {"type": "raw"},
    "write_local_policy": {"type": "bool", "default": False},
    "logoff_disconnected_older_than": {"type": "raw"},
    "end_disconnected_sessions": {"type": "list", "elements": "int"},
    "logoff_sessions": {"type": "bool", "default": False},
}

MAX_DWORD = common.MAX_DWORD
#: Local MaxInstanceCount meaning "no limit" (the installed default) [S10][S26].
LOCAL_UNLIMITED_INSTANCES = 4294967295
#: Policy "Limit number of connections" range; 999999 = unlimited [S10].
POLICY_MAX_INSTANCES = reg.POLICY_UNLIMITED_INSTANCES
#: Sessions that are never user sessions: services (0) and the RDP-Tcp listener (65536).
SYSTEM_SESSION_IDS = (0, 65536)

DURATION_OPTIONS = ("max_disconnection_time", "max_idle_time", "max_connection_time")
#: option -> RDP-Tcp fInherit* value that must be 0 for the listener's own value to count (issue 12, MSRD [S26]).
INHERIT_VALUES = {
    "max_connection_time": "fInheritMaxSessionTime",
    "max_disconnection_time": "fInheritMaxDisconnectionTime",
    "max_idle_time": "fInheritMaxIdleTime",
    "reset_broken": "fInheritResetBroken",
}
#: Settings this module manages, in plan order.
SETTING_OPTIONS = ("max_disconnection_time", "max_idle_time", "max_connection_time", "reset_broken", "single_session_per_user",
                   "max_instance_count")


def parse_instance_count(value: t.Any) -> tuple[int | None, str | None]:
    """(count, None) with ``unlimited`` -> :data:`LOCAL_UNLIMITED_INSTANCES`, or (None, message).

    1 to 999999, ``unlimited``, or 4294967295 (the local "no limit" value that diagnose proposes).
    """
    message = f"max_instance_count must be a whole number from 1 to {POLICY_MAX_INSTANCES} or 'unlimited', not {value!r}"
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return None, message
    text = str(value).strip().lower()
    if text == "unlimited":
        return LOCAL_UNLIMITED_INSTANCES, None
    if not text.isdigit():
        return None, message
    count = int(text)
    if count == LOCAL_UNLIMITED_INSTANCES:
        return count, None
    if not 1 <= count <= POLICY_MAX_INSTANCES:
        return None, message
    return count, None


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Every problem of the options, each naming the option and what is allowed."""
    problems = []
    for name in DURATION_OPTIONS + ("logoff_disconnected_older_than",):
        if options.get(name) is not None:
            problems += [p for p in (common.parse_duration(name, options[name])[1],) if p]
    if options.get("max_instance_count") is not None:
        problems += [p for p in (parse_instance_count(options["max_instance_count"])[1],) if p]
    problems += common.bool_problems(options, "reset_broken", "single_session_per_user", "write_local_policy", "logoff_sessions")
    ids = options.get("end_disconnected_sessions")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            problems.append(f"end_disconnected_sessions must be a list of session ids (whole numbers), not {ids!r}")
        elif any(i in SYSTEM_SESSION_IDS or i < 0 for i in ids):
            problems.append("end_disconnected_sessions: sessions 0 (services) and 65536 (the listener) are never logged off")
    if options.get("logoff_sessions") and options.get("logoff_disconnected_older_than") is None and not ids:
        problems.append("logoff_sessions: true needs logoff_disconnected_older_than or end_disconnected_sessions to choose the "
                        "disconnected sessions to log off")
    asked = [n for n in SETTING_OPTIONS if options.get(n) is not None]
    if not asked and options.get("logoff_disconnected_older_than") is None and ids is None:
        problems.append(f"nothing to do: set at least one of {', '.join(SETTING_OPTIONS)}, logoff_disconnected_older_than "
                        "or end_disconnected_sessions")
    return problems


def _wanted(name: str, value: t.Any) -> int:
    """The registry value (REG_DWORD) an option asks for."""
    if name in DURATION_OPTIONS:
        return t.cast(int, common.parse_duration(name, value)[0])
    if name == "max_instance_count":
        return t.cast(int, parse_instance_count(value)[0])
    return 1 if value else 0


def _policy_value(name: str, wanted: int) -> int:
    """The value to write under POL: the policy spells "unlimited connections" 999999 [S10]."""
    if name == "max_instance_count" and wanted == LOCAL_UNLIMITED_INSTANCES:
        return POLICY_MAX_INSTANCES
    return wanted


def _effective_matches(name: str, item: dict[str, t.Any], wanted: int) -> bool:
    """Whether the effective value already is what the option asks for (unlimited has two spellings)."""
    effective = item.get("effective")
    if name == "max_instance_count" and wanted == LOCAL_UNLIMITED_INSTANCES:
        return effective in (LOCAL_UNLIMITED_INSTANCES, POLICY_MAX_INSTANCES) if item.get("source") == "policy" \
            else effective == LOCAL_UNLIMITED_INSTANCES
    return effective == wanted


def _unchecked_registry_set(path: str, name: str, value: int, why: str) -> remediation.Operation:
    """A registry write whose current value the facts do not carry: no precondition (``expect`` empty)."""
    operation = remediation.registry_set(path, name, value, None, why=why)
    operation["expect"] = {}
    return operation


def _inherit_operation(limits: dict[str, t.Any], name: str) -> remediation.Operation | None:
    """``fInherit*=0`` for a listener time limit, unless the facts show it is 0 already."""
    value_name = INHERIT_VALUES.get(name)
    if value_name is None:
        return None
    why = f"{value_name}=0: Windows uses RDP-Tcp's {reg.SETTINGS[name].value} only when the listener overrides user settings"
    # host_facts may carry the fInherit* values as settings named inherit_<option> (issue 12); without them the
    # write has no precondition (its undo still restores what the script read).
    item = limits.get(f"inherit_{name}")
    if isinstance(item, dict) and "local" in item:
        if item.get("effective") == 0:
            return None
        return remediation.registry_set(reg.RDP_TCP, value_name, 0, item.get("local"), why=why)
    return _unchecked_registry_set(reg.RDP_TCP, value_name, 0, why)


def _setting_steps(plan: remediation.Plan, facts: common.Facts, options: dict[str, t.Any], name: str) -> list[remediation.Operation]:
    """Operations (or a manual entry) for one setting the caller asked about."""
    limits = common.get(facts, "session_limits") or {}
    item = limits.get(name) or {}
    spec = reg.SETTINGS[name]
    wanted = _wanted(name, options[name])
    plan.before[name] = item.get("effective")
    plan.after[name] = item.get("effective")
    if _effective_matches(name, item, wanted):
        return []
    policy_key = f"{spec.policy_key}\\{spec.value}"
    if item.get("source") == "policy":
        domain_member = bool(common.get(facts, "os.part_of_domain"))
        if options.get("write_local_policy") and not domain_member:
            plan.after[name] = _policy_value(name, wanted)
            return [remediation.registry_set(t.cast(str, spec.policy_key), spec.value, _policy_value(name, wanted), item.get("policy"),
                                             why=f"local policy {spec.value}: write_local_policy on a host outside a domain")]
        reason = (f"Group Policy sets {spec.value}={item.get('policy', item.get('effective'))}; a local value would be ignored. "
                  f"Change '{reg.GPO_RDS_PATH} > {reg.POLICY_NAMES.get(name, spec.value)}'")
        if domain_member:
            reason += " in the domain GPO (gpresult /H names it)"
            if options.get("write_local_policy"):
                plan.warnings.append(f"write_local_policy is ignored for {name}: the host is a domain member and a domain GPO "
                                     "would overwrite the local policy at the next refresh")
        else:
            reason += " (local policy: gpedit.msc), or set write_local_policy: true"
        plan.manual.append({"setting": name, "reason": reason, "policy_key": policy_key})
        return []
    plan.after[name] = wanted
    operations = []
    # With fInherit*=1 (source "user") RDP-Tcp may already hold the wanted value that Windows ignores: only fInherit*=0 is due.
    if not (item.get("source") == "user" and item.get("local") == wanted):
        operations.append(remediation.registry_set(t.cast(str, spec.local_key), spec.value, wanted, item.get("local"),
                                                   why=f"{spec.value}: {item.get('effective')} -> {wanted} ({spec.meaning})"))
    inherit = _inherit_operation(limits, name)
    if inherit is not None:
        operations.append(inherit)
    return operations


def _session_summary(session: dict[str, t.Any]) -> dict[str, t.Any]:
    """What the diff shows of a session."""
    return {key: session.get(key) for key in ("id", "user", "state", "logon_time", "disconnect_time", "disconnected_seconds")}


def _chosen_sessions(plan: remediation.Plan, facts: common.Facts, options: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Disconnected user sessions the options choose (never active ones, session 0 or the listener)."""
    sessions = common.get(facts, "session_limits.sessions") or []
    older_than = options.get("logoff_disconnected_older_than")
    min_seconds = common.parse_duration("logoff_disconnected_older_than", older_than)[0] // 1000 if older_than is not None else None  # type: ignore[operator]
    ids = options.get("end_disconnected_sessions") or []
    chosen = []
    for session in sessions:
        user_session = session.get("user") and session.get("id") not in SYSTEM_SESSION_IDS
        disconnected = str(session.get("state") or "").lower() == "disconnected"
        by_age = min_seconds is not None and (session.get("disconnected_seconds") or 0) >= min_seconds
        by_id = session.get("id") in ids
        if not (by_age or by_id):
            continue
        if user_session and disconnected:
            chosen.append(session)
        elif by_id:
            plan.warnings.append(f"end_disconnected_sessions: session {session.get('id')} ({session.get('user') or 'no user'}) is "
                                 f"{session.get('state')}, not disconnected; it is left alone")
    known = {s.get("id") for s in sessions}
    for missing in [i for i in ids if i not in known]:
        plan.warnings.append(f"end_disconnected_sessions: session {missing} does not exist on the host (any more)")
    return chosen


def _session_steps(plan: remediation.Plan, facts: common.Facts, options: dict[str, t.Any]) -> list[remediation.Operation]:
    """List the chosen disconnected sessions; log them off only with logoff_sessions: true."""
    if options.get("logoff_disconnected_older_than") is None and options.get("end_disconnected_sessions") is None:
        return []
    chosen = _chosen_sessions(plan, facts, options)
    listed = [_session_summary(s) for s in chosen]
    plan.before["disconnected_sessions"] = listed
    if not chosen:
        plan.after["disconnected_sessions"] = []
        return []
    if not options.get("logoff_sessions"):
        plan.after["disconnected_sessions"] = listed
        names = ", ".join(f"{s.get('id')} ({s.get('user')})" for s in chosen)
        plan.warnings.append(f"{len(chosen)} disconnected session(s) chosen: {names}; set logoff_sessions: true to log them off "
                             "(their unsaved work is lost)")
        return []
    plan.after["disconnected_sessions"] = []
    return [remediation.session_logoff(t.cast(int, s.get("id")), str(s.get("user")), str(s.get("state")), s.get("logon_time"),
                                       why=f"disconnected for {s.get('disconnected_seconds')} s") for s in chosen]


def plan(facts: common.Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """The plan for the session limits and ghost sessions the options ask for."""
    result = remediation.Plan()
    result.refused = common.read_error_problems(facts, "registry", "sessions") + option_problems(options)
    if result.refused:
        return common.finish(result)
    for name in SETTING_OPTIONS:
        if options.get(name) is not None:
            result.operations += _setting_steps(result, facts, options, name)
    wanted_count = options.get("max_instance_count")
    active = common.get(facts, "session_limits.active_count") or 0
    if wanted_count is not None and result.after.get("max_instance_count") != result.before.get("max_instance_count") \
            and active >= _wanted("max_instance_count", wanted_count):
        result.warnings.append(f"max_instance_count {wanted_count} is not above the {active} active session(s): new connections "
                               "are refused until one ends")
    result.operations += _session_steps(result, facts, options)
    return common.finish(result)
