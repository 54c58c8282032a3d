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

Reboot (opt-in ``reboot``): when the combined plan needs a reboot, a ``host_restart`` operation goes last into the
same apply (``shutdown.exe /r`` after ``reboot_delay`` seconds). The action then polls ``read_rdp_state`` until
``os.last_boot_utc`` changes (connection failures while Windows restarts are expected) and uses that read as the
final read: read, apply, polls until the host is back.
"""

from __future__ import annotations

import time
import typing as t

from ansible.errors import AnsibleError
from ansible.utils.display import Display

from ansible_collections.rdp.doctor.plugins.action.diagnose_host import probe_arguments
from ansible_collections.rdp.doctor.plugins.action.host_facts import MAX_ACCOUNT_LENGTH
from ansible_collections.rdp.doctor.plugins.action.probe import probe_in_process
from ansible_collections.rdp.doctor.plugins.filter.remediation_record import remediation_record
from ansible_collections.rdp.doctor.plugins.filter.remediation_summary import remediation_summary
from ansible_collections.rdp.doctor.plugins.module_utils import findings as rules
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan as rp
from ansible_collections.rdp.doctor.plugins.module_utils import validation
from ansible_collections.rdp.doctor.plugins.plugin_utils import role_variables, run_records
from ansible_collections.rdp.doctor.plugins.plugin_utils.facts_reader import FactsDocumentError, read_host_facts
from ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol import HostScriptError
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction, RemediationFailure

display = Display()

#: What a read may raise while Windows restarts (requests' errors are OSErrors) ...
RESTART_READ_ERRORS = (AnsibleError, HostScriptError, FactsDocumentError, OSError)
#: ... and the transport libraries' own errors, which can escape the connection plugins (pywinrm's WinRMError on a
#: "shell not found" fault, pypsrp's); matched by module so the action does not import libraries it may not have.
TRANSPORT_LIBRARIES = ("winrm", "pypsrp", "requests", "urllib3", "spnego")
#: Seconds between two reads while waiting for the host to come back.
RESTART_POLL_SECONDS = 2.0


def expected_while_restarting(exc: BaseException) -> bool:
    """Whether ``exc`` is what a read of a restarting host raises (anything else is a real failure)."""
    return isinstance(exc, RESTART_READ_ERRORS) or type(exc).__module__.split(".", 1)[0] in TRANSPORT_LIBRARIES


def findings_problems(findings: t.Any) -> list[str]:
    """The findings option: diagnose's findings, each a dict whose ``fix`` (if any) is a dict with a module name and a
    dict of ``params``, or a manual step. Checked before anything is derived from them."""
    problems: list[str] = []
    for index, finding in enumerate(findings or []):
        label = f"findings[{index}]"
        if not isinstance(finding, dict):
            problems.append(f"{label} must be a finding (a dictionary with id and fix), not {type(finding).__name__}")
            continue
        problems += validation.text_problems(f"{label}.id", finding.get("id"), max_length=128)
        fix = finding.get("fix")
        if fix is None:
            continue
        if not isinstance(fix, dict):
            problems.append(f"{label}.fix must be a dictionary (module and params, or manual), not {type(fix).__name__}")
            continue
        problems += validation.unknown_key_problems(f"{label}.fix", fix, ("module", "params", "manual"))
        if fix.get("module") is not None and not isinstance(fix["module"], str):
            problems.append(f"{label}.fix.module must be a module name such as rdp.doctor.credssp, not {type(fix['module']).__name__}")
        if fix.get("params") is not None and not isinstance(fix["params"], dict):
            problems.append(f"{label}.fix.params must be a dictionary of the module's options, not {type(fix['params']).__name__}")
    return problems


#: The remediation states that pass the verdict (the role's assert since 0.2).
PASSING_STATES = ("compliant", "changed", "would_change", "manual_only")

#: Role-wide opt-ins, handed to every module whose options have them.
OPT_INS = ("allow_lockout", "allow_insecure", "write_local_policy")

#: With use_role_variables: the remediate role's variable of each option (roles/remediate/meta/argument_specs.yml);
#: the last four are the diagnose role's, which the remediate role reads with.
ROLE_VARIABLES: dict[str, str] = {
    "baseline": "rdp_doctor_baseline",
    "allow_lockout": "rdp_doctor_allow_lockout",
    "allow_insecure": "rdp_doctor_allow_insecure",
    "write_local_policy": "rdp_doctor_write_local_policy",
    "verify": "rdp_doctor_remediate_verify",
    "rollback_on_regression": "rdp_doctor_remediate_rollback_on_regression",
    "reboot": "rdp_doctor_remediate_reboot",
    "reboot_delay": "rdp_doctor_remediate_reboot_delay",
    "reboot_timeout": "rdp_doctor_remediate_reboot_timeout",
    "accounts": "rdp_doctor_accounts",
    "probe_host": "rdp_doctor_probe_host",
    "probe_server_name": "rdp_doctor_probe_server_name",
    "probe_timeout": "rdp_doctor_probe_timeout",
    "fail_on_remaining": "rdp_doctor_remediate_fail_on_remaining",
}
#: With use_role_variables: each fix's switch (enabled).
FIX_SWITCHES: dict[str, str] = {module: f"rdp_doctor_fix_{module}" for module in rp.MODULES}
#: With use_role_variables: plan from diagnose's findings (else from the baseline alone); compare the probe after.
FROM_FINDINGS, PROBE_SWITCH = "rdp_doctor_remediate_from_findings", "rdp_doctor_diagnose_probe"
#: The variables use_role_variables reads (besides the facts diagnose published, read as they are).
READ_VARIABLES = (*ROLE_VARIABLES.values(), *FIX_SWITCHES.values(), FROM_FINDINGS, PROBE_SWITCH,
                  *role_variables.TARGET_AND_TAG_VARIABLES)


def published_by_diagnose(task_vars: t.Mapping[str, t.Any]) -> t.Mapping[str, t.Any]:
    """The host's facts, where the diagnose role published its ``rdp_doctor_*`` results (read as they are)."""
    facts = task_vars.get("ansible_facts")
    return facts if isinstance(facts, dict) else {}


def role_arguments(task_args: t.Mapping[str, t.Any], variables: t.Mapping[str, t.Any],
                   published: t.Mapping[str, t.Any]) -> tuple[dict[str, t.Any], list[str], dict[str, str]]:
    """The task's options with ``use_role_variables`` (pure): each option the task leaves out from its role variable,
    the switches as ``enabled``, the run's tags, and - unless ``validate_only`` - what the diagnose role published
    for this host (``published``: the host's ``ansible_facts``) as ``facts``, ``findings`` and ``probe_before``,
    as the role's task always passed them."""
    args, problems, source = role_variables.options_from_variables(task_args, variables, ROLE_VARIABLES, ActionModule.ARGUMENT_SPEC)
    flags, flag_problems = role_variables.switches(variables, {"findings": FROM_FINDINGS, "probe": PROBE_SWITCH})
    problems += flag_problems
    if "enabled" not in args:
        args["enabled"], switch_problems = role_variables.switches(variables, FIX_SWITCHES)
        problems += switch_problems
    role_variables.add_target_and_tags(args, variables)
    if not args.get("validate_only"):  # the checks before diagnose ran read no facts (the fact cache's are stale)
        if "facts" not in args and isinstance(published.get("rdp_doctor_facts"), dict) and published["rdp_doctor_facts"]:
            args["facts"] = published["rdp_doctor_facts"]
        if "findings" not in args:
            args["findings"] = list(published.get("rdp_doctor_findings") or []) if flags["findings"] else []
        if "probe_before" not in args:
            args["probe_before"] = published.get("rdp_doctor_probe") if flags["probe"] else None
    return args, problems, source


class ActionModule(RemediationAction):
    """``rdp.doctor.remediate_host``."""

    MODULE = "rdp.doctor.remediate_host"
    CHECKED_BY_MODULE = validation.PROBE_TARGET_OPTIONS
    TEXT_LENGTHS = {"accounts": MAX_ACCOUNT_LENGTH}  # the final read checks them as host_facts does
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
        "probe_expected_address": {"type": "str"},
        "probe_server_name": {"type": "str"},
        "probe_timeout": {"type": "float", "default": 5.0},
        "rollback_on_regression": {"type": "bool", "default": True},
        "reboot": {"type": "bool", "default": False},
        "reboot_delay": {"type": "int", "default": 10},
        "reboot_timeout": {"type": "int", "default": 600},
        "validate_only": {"type": "bool", "default": False},
        "use_role_variables": {"type": "bool", "default": False},
        "verdict": {"type": "bool", "default": False},
        "fail_on_remaining": {"type": "bool", "default": True},
    }

    def task_arguments(self, task_vars: dict[str, t.Any]) -> tuple[dict[str, t.Any], list[str], dict[str, str]]:
        """With use_role_variables, the role's variables and what diagnose published (see ``role_arguments``)."""
        task_args = dict(self._task.args)
        if not role_variables.requested(task_args):
            return task_args, [], {}
        variables = role_variables.templated_variables(self._templar, task_vars, READ_VARIABLES)
        return role_arguments(task_args, variables, published_by_diagnose(task_vars))

    def conclude(self, result: dict[str, t.Any], options: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        """With ``verdict`` (the remediate role): the host's remediation record, published as the fact
        ``rdp_doctor_remediation``, and the task fails a host whose fixes did not take, were refused or rolled back,
        that could not be read, or (``fail_on_remaining``) that still has a finding a module should have fixed - the
        role's former record, summary and assert tasks, one worker per host each. Every host's record also goes into
        the run's records, from which ``rdp.doctor.run_summary`` sums up the fleet and publishes a failed host's."""
        if not options["verdict"] or options["validate_only"]:
            return result
        published = published_by_diagnose(task_vars)
        record = remediation_record(result, published.get("rdp_doctor_host_state"))
        fails = record["state"] not in PASSING_STATES or (options["fail_on_remaining"] and bool(record["remaining"]))
        if fails:
            # One line for a person, as the role's assert said it; no facts (Ansible drops a failed task's facts and
            # prints the result whole): the record keeps what the fleet summary and the report need.
            result = {key: value for key, value in result.items() if key != "ansible_facts"}
            result.update(failed=True, msg=" | ".join(remediation_summary(record)))
            result.pop("skipped", None)
        else:
            result["ansible_facts"] = dict(result.get("ansible_facts") or {}, rdp_doctor_remediation=record)
        entry = run_records.run_record(published.get("rdp_doctor_host_state"), published.get("rdp_doctor_findings") or [],
                                       published.get("rdp_doctor_probe"), {"rdp_doctor_remediation": record} if fails else None,
                                       remediation=record)
        run_records.keep(self._task, task_vars, entry, result)
        return result

    def skip_reason(self, options: dict[str, t.Any], task_vars: dict[str, t.Any]) -> str | None:
        """With use_role_variables, a host diagnose could not read in this run is left alone (the role's former
        ``when``): nothing can be planned without its facts."""
        if not options["use_role_variables"] or options["validate_only"]:
            return None
        state = (published_by_diagnose(task_vars).get("rdp_doctor_host_state") or {}).get("state")
        return None if state == "ok" else f"the host was not read in this run ({state or 'no diagnosis'})"

    def option_problems(self, options: dict[str, t.Any]) -> list[str]:
        """Every module's options, validated before the host is touched; names the module and the option."""
        problems = findings_problems(options["findings"])
        problems += validation.bool_map_problems("enabled", options["enabled"], rp.MODULES)
        if options.get("probe_before") is not None and not isinstance(options["probe_before"], dict):
            problems.append(f"probe_before must be the probe result diagnose returned (a dictionary) or null, "
                            f"not {type(options['probe_before']).__name__}")
        if problems:  # the fixes cannot be derived from malformed findings or switches
            return problems
        try:
            self._module_options = self._fix_options(options)
        except ValueError as exc:
            return [str(exc)]
        problems = validation.probe_target_problems(options)
        low, high = remediation.RESTART_DELAY_RANGE
        if not low <= options["reboot_delay"] <= high:
            problems.append(f"reboot_delay must be a number of seconds from {low} to {high}, not {options['reboot_delay']}")
        if not 30 <= options["reboot_timeout"] <= 7200:
            problems.append(f"reboot_timeout must be a number of seconds from 30 to 7200, not {options['reboot_timeout']}")
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
            checked, errors = validation.validated_arguments(spec, params, prefix=f"{rp.COLLECTION}.{module}: ")
            if not errors:
                errors = [f"{rp.COLLECTION}.{module}: {p}" for p in validation.spec_problems(spec, checked) + planner.option_problems(checked)]
            problems += errors
            validated[module] = checked
        if problems:
            raise ValueError("; ".join(problems))
        return validated

    def planner(self, facts: dict[str, t.Any], options: dict[str, t.Any]) -> remediation.Plan:
        """Each selected module's plan, combined; manual fixes of the findings listed."""
        plans = [(module, rp.planner(module).plan(facts, params)) for module, params in self._module_options.items()]
        combined = rp.combine(plans)
        combined.manual = [dict(entry) for entry in self._manual_findings] + combined.manual
        if options["reboot"] and combined.reboot_required and combined.operations and not combined.refused:
            last_boot = (facts.get("os") or {}).get("last_boot_utc")
            combined.operations.append(remediation.host_restart(options["reboot_delay"], last_boot,
                                                                why="restart Windows: a changed value takes effect at boot (reboot: true)"))
            remediation.number(combined.operations)
        return combined

    def _message(self, plan: remediation.Plan, outcome: str) -> str:
        text = super()._message(plan, outcome)
        if any(op.get("kind") == "host_restart" for op in plan.operations):
            text = text.replace(" (a reboot is required for it to take effect)",
                                " and restarted the host" if outcome == "applied" else " and would restart the host")
        return text

    def _remediate(self, host: str, given_facts: dict[str, t.Any] | None, options: dict[str, t.Any]) -> dict[str, t.Any]:
        if options["validate_only"]:  # the options were checked in run(); the host is neither read nor changed
            fixes = {f"{rp.COLLECTION}.{module}": params for module, params in self._module_options.items()}
            return {"changed": False, "outcome": "validated", "fixes": fixes,
                    "msg": f"{self.MODULE}: the options are valid ({len(fixes)} module(s) would be planned)"}
        result = super()._remediate(host, given_facts, options)
        result["fixes"] = {f"{rp.COLLECTION}.{module}": params for module, params in self._module_options.items()}
        result["rebooted"] = False
        restart = next((op for op in result.get("operations") or [] if op.get("kind") == "host_restart" and op.get("status") == "applied"), None)
        facts_after = None
        if result.get("outcome") == "applied" and restart is not None:
            facts_after, seconds = self._wait_for_restart(host, options, result, (restart.get("before") or {}).get("last_boot_utc"))
            result.update(rebooted=True, reboot_seconds=seconds, reboot_required=False)
        if result.get("outcome") != "applied" or not options["verify"]:
            if facts_after is not None:
                result["ansible_facts"] = {"rdp_doctor": facts_after}
            return result
        return self._verify(host, options, result, facts_after)

    def _wait_for_restart(self, host: str, options: dict[str, t.Any], result: dict[str, t.Any],
                          boot_before: str | None) -> tuple[dict[str, t.Any], int]:
        """Read the host until it reports a new boot; (that read's facts, seconds it took). Fails the host on timeout."""
        started = time.monotonic()
        deadline = started + options["reboot_timeout"]
        display.vvv(f"{self.MODULE}: waiting for the host to restart (booted {boot_before}, restart in {options['reboot_delay']} s)", host=host)
        time.sleep(min(options["reboot_delay"], options["reboot_timeout"]))  # nothing changes before the delay passes
        while True:
            try:
                facts, _raw = self._read_after(host, options)
                boot_now = (facts.get("os") or {}).get("last_boot_utc")
                if boot_now and boot_now != boot_before:
                    seconds = int(round(time.monotonic() - started))
                    display.vvv(f"{self.MODULE}: the host is back (booted {boot_now}) after {seconds} s", host=host)
                    return facts, seconds
                display.vvv(f"{self.MODULE}: the host has not restarted yet (booted {boot_now})", host=host)
            except Exception as exc:  # pylint: disable=broad-exception-caught  # filtered just below
                if not expected_while_restarting(exc):
                    raise
                # expected while Windows restarts; the type only (messages may carry URLs)
                display.vvv(f"{self.MODULE}: the host does not answer yet ({type(exc).__name__})", host=host)
                self._reset_connection()
            if time.monotonic() + RESTART_POLL_SECONDS > deadline:
                extra = {key: value for key, value in result.items() if key not in ("msg", "ansible_facts")}
                extra.update(changed=True, rebooted=False, outcome="unverified")
                raise RemediationFailure(f"{self.MODULE}: the change was applied and the host was told to restart, but it did not come back "
                                         f"within {options['reboot_timeout']} s (reboot_timeout)", **extra)
            time.sleep(RESTART_POLL_SECONDS)

    def _reset_connection(self) -> None:
        """A restart ends the connection's shell: the next read opens a new one."""
        try:
            self._connection.reset()
        except Exception as exc:  # pylint: disable=broad-exception-caught  # filtered just below
            if not expected_while_restarting(exc):
                raise
            display.vvv(f"{self.MODULE}: reconnect failed ({type(exc).__name__}); trying again")

    def _verify(self, host: str, options: dict[str, t.Any], result: dict[str, t.Any],
                facts_after: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """The final read (or the read that saw the host back after a restart) and probe; roll back when the client's view got worse."""
        facts = facts_after if facts_after is not None else self._read_after(host, options)[0]
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
        """The client's view after the change, from the controller: diagnose's probe (same target and options)."""
        target = options.get("probe_host")
        if not target:
            return None
        args = {key: options.get(key) for key in ("probe_host", "probe_port", "probe_timeout", "probe_expected_address",
                                                  "probe_server_name")}
        answer = probe_in_process(probe_arguments(dict(args, probe_options={}), facts, target))
        if answer.get("failed"):
            display.warning(f"{self.MODULE}: the probe after the change could not run: {answer.get('msg')}")
            return None
        return answer

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
