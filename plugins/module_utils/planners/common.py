# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Small pieces the planners share: fact lookups, option checks, service steps and the plan's last touch (pure)."""

from __future__ import annotations

import re
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation

Facts = t.Dict[str, t.Any]

#: SDDL of a legacy-CSP key file that SYSTEM and Administrators own and NETWORK SERVICE (TermService) reads
#: [S1][S2][S22]: what Microsoft's MachineKeys fix grants (SYSTEM F, NETWORK SERVICE R, Administrators F) on one file.
KEY_FILE_SDDL = "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x120089;;;NS)"
#: NETWORK SERVICE read on a private key [S1][S27].
NETWORK_SERVICE_READ = {"sid": reg.SID_NETWORK_SERVICE, "rights": "Read"}


def get(facts: t.Any, path: str, default: t.Any = None) -> t.Any:
    """``facts['a']['b']`` for ``'a.b'``, tolerant of missing sections."""
    current = facts
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return default
        current = current[part]
    return current


def read_error_problems(facts: Facts, *sections: str) -> list[str]:
    """Refusals for facts the planner needs but the host could not read (never plan on a blind spot)."""
    if not isinstance(facts, dict) or not facts.get("facts_version"):
        return ["the facts are not rdp.doctor host facts (ansible_facts.rdp_doctor, facts_version 1)"]
    errors = facts.get("read_errors") or {}
    return [f"the host could not read '{name}' ({errors[name]}): nothing is planned on facts that are missing" for name in sections
            if name in errors]


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
