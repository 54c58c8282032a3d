# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the remediate role asks of each host, as pure functions over plain data (no I/O).

The role reads a host once (diagnose), then one action (``rdp.doctor.remediate_host``) plans every fix
with the modules' own planners, applies them together in one round trip, reads once more and probes
again. This module holds the decisions of that flow:

* :func:`fixes_from_findings` / :func:`fixes_from_baseline` - which modules to call with which options;
* :func:`select_fixes` - the per-fix switches and tags (``rdp_doctor_fix_<module>``);
* :func:`combine` - one plan out of several modules' plans (services restarted once, irreversible
  operations last, two modules writing one target refused);
* :func:`inverse_operations` - the operations that undo an applied plan (rollback);
* :func:`probe_regressions` - whether the client's view got worse after a change.
"""

from __future__ import annotations

import copy
import importlib
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import remediation as ops
from ansible_collections.rdp.doctor.plugins.module_utils.remediation import Operation, Plan

COLLECTION = "rdp.doctor"

#: Remediation modules in the order their operations are applied (the listener's prerequisites first:
#: keys and certificates before the binding, the binding before the security layer, the firewall last
#: so the port it opens is the one the listener uses).
MODULES = (
    "services",
    "machinekeys",
    "listener_certificate",
    "tls_protocols",
    "credssp",
    "listener_security",
    "session_limits",
    "firewall",
)

#: Option values a finding's fix may not choose by itself: they lower security or cut access, so the
#: role applies them only from a declared baseline or explicit options, never from a finding.
_FIX_OPT_INS = ("allow_lockout", "allow_insecure", "rename_folder", "force", "logoff_sessions", "allow_legacy_disable")


class FixConflict(ValueError):
    """Two sources ask one module for different values of the same option."""


def module_name(fqcn_or_short: str) -> str:
    """``rdp.doctor.credssp`` or ``credssp`` -> ``credssp``; ValueError for anything else."""
    name = str(fqcn_or_short)
    if name.startswith(COLLECTION + "."):
        name = name[len(COLLECTION) + 1:]
    if name not in MODULES:
        raise ValueError(f"{fqcn_or_short!r} is not a remediation module of {COLLECTION} ({', '.join(MODULES)})")
    return name


def planner(name: str) -> t.Any:
    """The planner module of remediation module ``name`` (``ARGUMENT_SPEC``, ``option_problems``, ``plan``)."""
    return importlib.import_module(f"ansible_collections.rdp.doctor.plugins.module_utils.planners.{module_name(name)}")


def _merge(fixes: dict[str, dict[str, t.Any]], module: str, params: dict[str, t.Any], source: str) -> None:
    current = fixes.setdefault(module, {})
    for key, value in params.items():
        if key in current and current[key] != value:
            raise FixConflict(f"{COLLECTION}.{module}: {source} asks {key}={value!r}, another fix asks {key}={current[key]!r}")
        current[key] = value


def fixes_from_findings(findings: list[dict[str, t.Any]]) -> tuple[dict[str, dict[str, t.Any]], list[dict[str, t.Any]]]:
    """(module -> options, manual findings) from the findings' ``fix`` entries.

    A fix that names a module contributes its ``params``; two findings asking one module for different
    values of one option raise :class:`FixConflict`. A finding whose fix is manual is returned as
    ``{"id", "title", "manual"}`` so the role lists it and changes nothing for it. Opt-in options never
    come from a finding.
    """
    fixes: dict[str, dict[str, t.Any]] = {}
    manual: list[dict[str, t.Any]] = []
    for finding in findings or []:
        fix = finding.get("fix") or {}
        if fix.get("module"):
            params = {k: v for k, v in (fix.get("params") or {}).items() if k not in _FIX_OPT_INS}
            _merge(fixes, module_name(fix["module"]), params, f"finding {finding.get('id')}")
        elif fix.get("manual"):
            manual.append({"id": finding.get("id"), "title": finding.get("title"), "manual": fix["manual"]})
    return fixes, manual


#: Baseline keys (``rdp_doctor_baseline``) -> (module, option). A key holding a dict passes it whole.
BASELINE_KEYS: dict[str, tuple[str, str | None]] = {
    "allow_connections": ("listener_security", "allow_connections"),
    "listener_enabled": ("listener_security", "listener_enabled"),
    "security_layer": ("listener_security", "security_layer"),
    "nla": ("listener_security", "nla"),
    "min_encryption_level": ("listener_security", "min_encryption_level"),
    "port": ("listener_security", "port"),
    "credssp": ("credssp", "allow_encryption_oracle"),
    "tls12": ("tls_protocols", "tls12"),
    "disable_legacy_tls": ("tls_protocols", "disable_legacy"),
    "firewall": ("firewall", None),
    "session_limits": ("session_limits", None),
    "services": ("services", None),
}


def fixes_from_baseline(baseline: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """module -> options for a declared baseline; unknown keys raise ValueError naming the allowed ones."""
    if not isinstance(baseline, dict):
        raise ValueError(f"rdp_doctor_baseline must be a dict, not {type(baseline).__name__}")
    fixes: dict[str, dict[str, t.Any]] = {}
    for key, value in baseline.items():
        if key not in BASELINE_KEYS:
            raise ValueError(f"rdp_doctor_baseline: unknown key {key!r}; allowed: {', '.join(sorted(BASELINE_KEYS))}")
        module, option = BASELINE_KEYS[key]
        if option is None:
            if not isinstance(value, dict):
                raise ValueError(f"rdp_doctor_baseline.{key} must be a dict of {COLLECTION}.{module} options")
            _merge(fixes, module, dict(value), f"baseline {key}")
        else:
            _merge(fixes, module, {option: value}, f"baseline {key}")
    return fixes


def fix_tag(module: str) -> str:
    """The tag that selects one fix: ``rdp_doctor_fix_<module>``."""
    return f"rdp_doctor_fix_{module_name(module)}"


def select_fixes(fixes: dict[str, dict[str, t.Any]], enabled: dict[str, t.Any] | None = None,
                 run_tags: t.Iterable[str] = ("all",), skip_tags: t.Iterable[str] = ()) -> dict[str, dict[str, t.Any]]:
    """Keep the fixes whose switch is on (``enabled[module]``, default on) and whose tag is selected.

    Tags follow Ansible's rules for ``ansible_run_tags`` / ``ansible_skip_tags``: a fix runs when "all"
    is run (or its own tag is) and its tag is not skipped.
    """
    run, skip = set(run_tags or ("all",)), set(skip_tags or ())
    kept = {}
    for module, params in fixes.items():
        tag = fix_tag(module)
        switched_on = bool((enabled or {}).get(module, True))
        tagged = ("all" in run or tag in run or "rdp_doctor_fix" in run) and tag not in skip and "rdp_doctor_fix" not in skip
        if switched_on and tagged:
            kept[module] = params
    return kept


# ==================================================================================================
# One plan from several modules
# ==================================================================================================

def _target_key(operation: Operation) -> tuple[str, str]:
    kind = operation["kind"]
    target = operation.get("target", {})
    if kind == "registry_value":
        return kind, f"{str(target.get('path', '')).lower()}\\{str(target.get('name', '')).lower()}"
    return kind, repr(sorted((k, str(v).lower()) for k, v in target.items()))


def combine(plans: list[tuple[str, Plan]]) -> Plan:
    """One plan applying every module's operations in one round trip.

    Order: each module's writes in :data:`MODULES` order, then the service restarts (each service once,
    in the order first asked), then the irreversible operations. Two modules writing different values to
    one target are refused; the same write asked twice is kept once. ``before``/``after`` are keyed by
    module; warnings, manual entries and refusals are prefixed with the module's name.
    """
    writes: list[Operation] = []
    controls: dict[str, Operation] = {}
    last: list[Operation] = []
    seen: dict[tuple[str, str], tuple[str, Operation]] = {}
    combined = Plan()
    order = {name: index for index, name in enumerate(MODULES)}
    for name, plan in sorted(plans, key=lambda item: order.get(module_name(item[0]), len(order))):
        name = module_name(name)
        if plan.before or plan.after:
            combined.before[name] = plan.before
            combined.after[name] = plan.after
        combined.warnings += [f"{name}: {text}" for text in plan.warnings]
        combined.manual += [dict(entry, module=f"{COLLECTION}.{name}") for entry in plan.manual]
        combined.refused += [f"{COLLECTION}.{name}: {text}" for text in plan.refused]
        combined.reboot_required = combined.reboot_required or plan.reboot_required
        combined.restart += [s for s in plan.restart if s not in combined.restart]
        for operation in plan.operations:
            operation = copy.deepcopy(operation)
            if operation["kind"] == "service_control":
                service = str(operation["target"]["name"]).lower()
                previous = controls.get(service)
                if previous is None or operation["set"].get("action") == "restart":
                    # A restart subsumes a start asked by another module; each service is controlled once.
                    controls[service] = operation if previous is None else dict(previous, set={"action": "restart"})
                continue
            key = _target_key(operation)
            if key in seen:
                other_name, other = seen[key]
                if other["set"] != operation["set"]:
                    combined.refused.append(f"{COLLECTION}.{name} and {COLLECTION}.{other_name} both change "
                                            f"{operation['kind']} {operation['target']} to different values")
                continue
            seen[key] = (name, operation)
            (writes if operation.get("reversible", True) else last).append(operation)
    combined.operations = ops.number(writes + list(controls.values()) + last)
    return combined


# ==================================================================================================
# Rollback
# ==================================================================================================

def _inverse(operation: dict[str, t.Any]) -> Operation | None:
    """The operation that restores ``operation``'s ``before`` state, or None when it cannot be undone here."""
    kind, target = operation["kind"], dict(operation["target"])
    before, after = dict(operation.get("before") or {}), dict(operation.get("after") or {})
    inverse = {"id": "", "kind": kind, "target": target, "reversible": True, "why": f"roll back {operation.get('id')}"}
    if kind == "registry_value":
        inverse.update(expect=after, set=before if before.get("present") else dict(ops.ABSENT))
    elif kind in ("service_config", "firewall_rule", "listener_binding", "path_acl"):
        keys = [k for k in operation.get("set", {}) if k != "present"] or list(before)
        inverse.update(expect={k: after.get(k) for k in keys if k in after}, set={k: before.get(k) for k in keys})
    elif kind == "service_control":
        action = operation.get("set", {}).get("action")
        if action == "restart":
            return None  # nothing to undo: the service runs as before
        inverse.update(expect={"state": after.get("state")},
                       set={"action": "stop" if str(before.get("state")).lower() != "running" else "start"})
    elif kind == "firewall_rule_owned":
        inverse.update(expect={"present": bool(after.get("present"))},
                       set=dict(before, present=True) if before.get("present") else dict(ops.ABSENT))
    elif kind == "path_rename":
        path = str(target["path"])
        parent, _sep, leaf = path.rstrip("\\").rpartition("\\")
        inverse.update(target={"path": f"{parent}\\{operation['set']['new_name']}"},
                       expect={"present": True, "destination_present": False}, set={"new_name": leaf})
    else:
        return None
    return inverse


def inverse_operations(applied: list[dict[str, t.Any]]) -> tuple[list[Operation], list[dict[str, t.Any]]]:
    """(operations undoing the applied ones in reverse order, the ones that cannot be undone).

    ``applied`` is the ``operations`` list of an ``apply_rdp_changes`` result; only those with status
    ``applied`` are undone. Irreversible kinds (a session logoff) and kinds whose previous state the
    script does not return (a removed certificate, a removed file) are listed for the user instead.
    """
    undo: list[Operation] = []
    cannot: list[dict[str, t.Any]] = []
    for operation in reversed([o for o in applied or [] if o.get("status") == "applied"]):
        inverse = _inverse(operation)
        if inverse is None:
            if not (operation["kind"] == "service_control" and operation.get("set", {}).get("action") == "restart"):
                cannot.append({"id": operation.get("id"), "kind": operation["kind"], "target": operation.get("target")})
            continue
        undo.append(inverse)
    return ops.number(undo), cannot


# ==================================================================================================
# Did the client's view get worse?
# ==================================================================================================

_RANK = {"ok": 0, "warn": 1, "skipped": 2, "fail": 3}


def probe_regressions(before: dict[str, t.Any] | None, after: dict[str, t.Any] | None) -> list[str]:
    """Steps of the probe that got worse between two probe results, as "tcp: ok -> fail" lines.

    Only steps that ran before count: a step that was ``ok`` or ``warn`` and is now ``fail`` (or no
    longer runs because an earlier step fails) is a regression. A probe that did not run on either side
    cannot show one (empty list).
    """
    if not isinstance(before, dict) or not isinstance(after, dict):
        return []
    old = {s.get("step"): s.get("verdict") for s in before.get("steps") or [] if isinstance(s, dict)}
    new = {s.get("step"): s.get("verdict") for s in after.get("steps") or [] if isinstance(s, dict)}
    worse = []
    for step, verdict in old.items():
        if verdict not in ("ok", "warn"):
            continue
        now = new.get(step, "skipped")
        if _RANK.get(now, 3) > _RANK[verdict] and now in ("fail", "skipped"):
            worse.append(f"{step}: {verdict} -> {now}")
    return worse
