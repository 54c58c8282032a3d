# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.remediate_host``: every fix a host needs, planned together, applied in one round trip.

The remediate role's one task per host. The decisions are pure (``module_utils/remediation_plan.py``): which
modules to call with which options (findings or a baseline, switches, tags), one combined plan, rollback
operations, probe regressions. The shell is the shared remediation action (validate, plan, refuse, check
mode, apply, drift re-plan, verify); this plugin adds the final read and the probe after the change, and
rolls the host back when the client's view got worse.

Round trips: none when the plan is empty (the role passes the facts diagnose read); a change costs the
apply and the final read.
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.utils.display import Display

from ansible_collections.rdp.doctor.plugins.module_utils import findings as rules
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan as rp
from ansible_collections.rdp.doctor.plugins.plugin_utils.facts_reader import read_host_facts
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction, RemediationFailure

display = Display()

#: Role-wide opt-ins, handed to every module whose options have them.
OPT_INS = ("allow_lockout", "allow_insecure", "write_local_policy")


class ActionModule(RemediationAction):
    """``rdp.doctor.remediate_host``."""

    MODULE = "rdp.doctor.remediate_host"
    ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
        "findings": {"type": "list", "elements": "dict", "default": []},
        "baseline": {"type": "dict", "default": {}},
        "enabled": {"type": "dict", "default": {}},
        "run_tags": {"type": "list", "elements": "str", "default": ["all"]},
        "skip_tags": {"type": "list", "elements": "str", "default": []},
        "allow_lockout": {"type": "bool", "default": False},
        "allow_insecure": {"type": "bool", "default": False},
        "write_local_policy": {"type": "bool", "default": False},
        "verify": {"type": "bool", "default": True},
        "accounts": {"type": "list", "elements": "str", "default": []},
        "probe_before": {"type": "raw"},
        "probe_host": {"type": "str"},
        "probe_port": {"type": "int"},
        "probe_server_name": {"type": "str"},
        "probe_timeout": {"type": "float", "default": 5.0},
        "rollback_on_regression": {"type": "bool", "default": True},
    }

    def option_problems(self, options: dict[str, t.Any]) -> list[str]:
        """Every module's options, validated before the host is touched; names the module and the option."""
        try:
            self._module_options = self._fix_options(options)
        except ValueError as exc:
            return [str(exc)]
        problems = []
        if not 0 < options["probe_timeout"] <= 300:
            problems.append(f"probe_timeout must be a number of seconds in (0, 300], not {options['probe_timeout']}")
        if options.get("probe_port") is not None and not 1 <= options["probe_port"] <= 65535:
            problems.append(f"probe_port must be a TCP port (1-65535), not {options['probe_port']}")
        return problems

    def _fix_options(self, options: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
        """module -> validated options; raises ValueError with every problem."""
        fixes, self._manual_findings = rp.fixes_from_findings(options["findings"])
        for module, params in rp.fixes_from_baseline(options["baseline"]).items():
            fixes[module] = dict(fixes.get(module, {}), **params)  # a declared baseline wins over a finding's proposal
        fixes = rp.select_fixes(fixes, options["enabled"], options["run_tags"], options["skip_tags"])
        validated: dict[str, dict[str, t.Any]] = {}
        problems: list[str] = []
        for module, params in fixes.items():
            planner = rp.planner(module)
            spec = planner.ARGUMENT_SPEC
            params = dict(params, **{k: options[k] for k in OPT_INS if k in spec and k not in params})
            outcome = ArgumentSpecValidator(spec).validate(params)
            errors = [f"{rp.COLLECTION}.{module}: {error}" for error in outcome.error_messages]
            if not errors:
                errors = [f"{rp.COLLECTION}.{module}: {p}" for p in planner.option_problems(outcome.validated_parameters)]
            problems += errors
            validated[module] = outcome.validated_parameters
        if problems:
            raise ValueError("; ".join(problems))
        return validated

    def planner(self, facts: dict[str, t.Any], options: dict[str, t.Any]) -> remediation.Plan:
        """Each selected module's plan, combined; manual fixes of the findings listed."""
        plans = [(module, rp.planner(module).plan(facts, params)) for module, params in self._module_options.items()]
        combined = rp.combine(plans)
        combined.manual = [dict(entry) for entry in self._manual_findings] + combined.manual
        return combined

    def _remediate(self, host: str, given_facts: dict[str, t.Any] | None, options: dict[str, t.Any]) -> dict[str, t.Any]:
        result = super()._remediate(host, given_facts, options)
        result["fixes"] = {f"{rp.COLLECTION}.{module}": params for module, params in self._module_options.items()}
        if result.get("outcome") != "applied" or not options["verify"]:
            return result
        return self._verify(host, options, result)

    def _verify(self, host: str, options: dict[str, t.Any], result: dict[str, t.Any]) -> dict[str, t.Any]:
        """The final read and probe; roll back when the client's view got worse."""
        facts, _raw = self._read_after(host, options)
        probe_before = options.get("probe_before") if isinstance(options.get("probe_before"), dict) else None
        probe_after = self._probe(options, facts) if probe_before is not None else None
        before_ids = {f["id"] for f in options["findings"] if (f.get("fix") or {}).get("module")}
        after = rules.evaluate(facts, probe_after)
        after_ids = {f["id"] for f in after}
        result.update(fixed=sorted(before_ids - after_ids), remaining=sorted(before_ids & after_ids),
                      findings_after=[f["id"] for f in after], ansible_facts={"rdp_doctor": facts})
        if probe_after is not None:
            result["probe_after"] = {"verdict": probe_after.get("verdict"),
                                     "steps": [{"step": s.get("step"), "verdict": s.get("verdict")} for s in probe_after.get("steps", [])]}
        regressions = rp.probe_regressions(probe_before, probe_after)
        result["regressions"] = regressions
        if not regressions:
            return result
        if not options["rollback_on_regression"]:
            result["warnings"] = list(result.get("warnings", [])) + [f"the client's view got worse: {'; '.join(regressions)}"]
            return result
        return self._roll_back(host, result, regressions)

    def _read_after(self, host: str, options: dict[str, t.Any]) -> tuple[dict[str, t.Any], dict[str, t.Any]]:
        display.vvv(f"{self.MODULE}: reading the host again to verify", host=host)
        return read_host_facts(self._low_level_execute_command, {"accounts": options["accounts"]}, host=host)

    def _probe(self, options: dict[str, t.Any], facts: dict[str, t.Any]) -> dict[str, t.Any] | None:
        """The client's view after the change, from the controller (same target as diagnose's probe)."""
        target = options.get("probe_host")
        if not target:
            return None
        port = options.get("probe_port") or (facts.get("listener") or {}).get("effective_port") or 3389
        probe_options = rdp_probe.ProbeOptions(host=target, port=int(port), server_name=options.get("probe_server_name") or None,
                                               connect_timeout=options["probe_timeout"], read_timeout=options["probe_timeout"])
        try:
            return rdp_probe.probe(probe_options)
        except ValueError as exc:
            display.warning(f"{self.MODULE}: the probe after the change could not run: {exc}")
            return None

    def _roll_back(self, host: str, result: dict[str, t.Any], regressions: list[str]) -> dict[str, t.Any]:
        undo, cannot = rp.inverse_operations(result.get("operations", []))
        display.vvv(f"{self.MODULE}: rolling back {len(undo)} operation(s): {'; '.join(regressions)}", host=host)
        answer = self._apply(remediation.Plan(operations=undo), host) if undo else {"outcome": "applied", "operations": []}
        left = [f"{c['id']} {c['kind']}" for c in cannot]
        if answer.get("outcome") != "applied":
            left.append(f"the rollback itself ended '{answer.get('outcome')}'")
        if answer.get("outcome") == "applied":
            kept = {c["id"] for c in cannot}
            result["operations"] = [dict(op, status="rolled_back") if op.get("status") == "applied" and op.get("id") not in kept else op
                                    for op in result.get("operations", [])]
        extra = {key: value for key, value in result.items() if key not in ("msg", "ansible_facts")}
        extra.update(changed=True, outcome="rolled_back",
                     rollback={"outcome": answer.get("outcome"), "operations": answer.get("operations", []), "not_undone": cannot})
        raise RemediationFailure(
            f"{self.MODULE}: the change made the client's view worse ({'; '.join(regressions)}); "
            + ("rolled back" if not left else f"rolled back except: {', '.join(left)}"), **extra)
