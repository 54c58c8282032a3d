# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one imperative shell every remediation module shares (docs/dev/contracts.md section 10).

A remediation action plugin (``plugins/action/<module>.py``) is a thin subclass::

    class ActionModule(RemediationAction):
        MODULE = "rdp.doctor.credssp"              # optional: defaults to the task's action name
        ARGUMENT_SPEC = credssp.ARGUMENT_SPEC      # the module's own options (``facts`` is added here)
        planner = staticmethod(credssp.plan)       # plan(facts, options) -> remediation.Plan, pure
        option_problems = staticmethod(credssp.option_problems)  # optional: checks the spec cannot express

        def facts_options(self, options):          # optional: host_facts options for the read, e.g. port_hint
            return {}

``run`` then: validates the options before any host is touched; takes the ``facts`` option (what the role's
diagnose already read) or reads them (``read_rdp_state``, one round trip); plans; fails on a refusal without
sending anything; returns the plan and diff in check mode; applies with ``apply_rdp_changes`` (one round
trip, verified by the script's re-read); on drift re-reads, re-plans and applies once more. Round trips: with
``facts`` given a compliant host costs none and a change exactly one.
"""

from __future__ import annotations

import datetime as dt
import secrets
import typing as t

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils import validation
from ansible_collections.rdp.doctor.plugins.plugin_utils import role_variables
from ansible_collections.rdp.doctor.plugins.plugin_utils.facts_reader import FactsDocumentError, read_host_facts
from ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol import HostScriptError, run_host_script

display = Display()

#: Options every remediation module has (merged into the module's ARGUMENT_SPEC).
COMMON_ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "facts": {"type": "dict"},
}


class RemediationFailure(Exception):
    """A failure the task reports with ``msg`` (and extra result keys)."""

    def __init__(self, msg: str, **extra: t.Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def new_run_id(now: dt.datetime | None = None) -> str:
    """``20261126T130000Z-ab12``: names the host-side backups and revert tasks of one apply."""
    moment = now or dt.datetime.now(dt.timezone.utc)
    return moment.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def still_applied(operations: list[dict[str, t.Any]]) -> list[str]:
    """Ids of the operations an apply left in place (applied, not undone)."""
    return [op["id"] for op in operations if op.get("status") in ("applied", "rollback_failed", "not_reversible")]


def merge_statuses(planned: list[dict[str, t.Any]], applied: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """The plan's operations with each one's status, before, after and error from the script's answer."""
    by_id = {op.get("id"): op for op in applied}
    merged = []
    for op in planned:
        answer = by_id.get(op["id"], {})
        merged.append(dict(op, status=answer.get("status", "not_run"), before=answer.get("before"), after=answer.get("after"),
                           error=answer.get("error"), reversible=answer.get("reversible", op.get("reversible", True))))
    return merged


class RemediationAction(ActionBase):
    """Validate -> facts -> plan -> (check mode: report) -> apply -> verify; see the module docstring."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    #: Fully qualified module name, for messages ("rdp.doctor.credssp"); empty = the task's action name.
    MODULE: str = ""
    #: The module's own options (Ansible argument spec); ``facts`` is added.
    ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {}
    #: Options the module's ``option_problems`` checks more strictly than the generic checks (no message twice).
    CHECKED_BY_MODULE: tuple[str, ...] = ()
    #: Longest value of a string option (or of each element of a list option), where shorter than the generic limit.
    TEXT_LENGTHS: dict[str, int] = {}

    # ------------------------------------------------------------------------------------------ hooks

    def option_problems(self, options: dict[str, t.Any]) -> list[str]:  # pylint: disable=unused-argument
        """Checks the argument spec cannot express; each message names the option and what is allowed."""
        return []

    def task_arguments(self, task_vars: dict[str, t.Any]) -> tuple[dict[str, t.Any], list[str], dict[str, str]]:
        """(arguments, problems, option -> variable it came from): the task's arguments; a subclass may add its
        role's variables (``rdp.doctor.remediate_host``'s ``use_role_variables``). Problems come before any other check."""
        del task_vars
        return dict(self._task.args), [], {}

    def skip_reason(self, options: dict[str, t.Any], task_vars: dict[str, t.Any]) -> str | None:  # pylint: disable=unused-argument
        """Why this host is skipped without being touched (None: it is not); checked after the options."""
        return None

    def facts_options(self, options: dict[str, t.Any]) -> dict[str, t.Any]:  # pylint: disable=unused-argument
        """``rdp.doctor.host_facts`` options for the read this module needs (e.g. a ``port_hint``)."""
        return {}

    def planner(self, facts: dict[str, t.Any], options: dict[str, t.Any]) -> remediation.Plan:
        """The module's plan: a subclass sets ``planner = staticmethod(<planner module>.plan)`` (pure)."""
        raise NotImplementedError(f"{type(self).__name__} defines no planner")

    # ------------------------------------------------------------------------------------------ run

    @property
    def module_name(self) -> str:
        """``MODULE``, else the task's action (``rdp.doctor.services``)."""
        return self.MODULE or str(getattr(self._task, "action", "") or type(self).__module__.rsplit(".", 1)[-1])

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """One module call: at most one read and one apply (plus one re-read and re-apply on drift)."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        spec = dict(self.ARGUMENT_SPEC, **COMMON_ARGUMENT_SPEC)
        task_args, problems, source = self.task_arguments(task_vars)
        options, spec_errors = validation.validated_arguments(spec, task_args)
        problems += spec_errors
        if problems:
            return dict(result, failed=True, changed=False, msg="; ".join(role_variables.attributed(problems, source)))
        host = str(task_vars.get("inventory_hostname") or "")
        # The generic checks (control characters, lengths, finite numbers, keys inside dict options) first, then
        # the module's own (ranges, combinations): all before any host is touched.
        problems = validation.spec_problems(spec, options, lengths=self.TEXT_LENGTHS, skip=self.CHECKED_BY_MODULE) + self.option_problems(options)
        if problems:
            return dict(result, failed=True, changed=False, msg="; ".join(role_variables.attributed(problems, source)))
        skip = self.skip_reason(options, task_vars)
        if skip:
            return self.conclude(dict(result, changed=False, skipped=True, skip_reason=skip), options, task_vars)
        given_facts = options.pop("facts", None)
        try:
            outcome = dict(result, **self._remediate(host, given_facts, options))
        except RemediationFailure as exc:
            outcome = dict(result, failed=True, changed=False, msg=exc.msg)
            outcome.update(exc.extra)  # an unverified apply did change the host: extra says changed=True
        except HostScriptError as exc:
            outcome = dict(result, failed=True, changed=False, msg=str(exc), error=exc.to_dict())
        except FactsDocumentError as exc:
            outcome = dict(result, failed=True, changed=False, msg=str(exc))
        return self.conclude(outcome, options, task_vars)

    def conclude(self, result: dict[str, t.Any], options: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:  # pylint: disable=unused-argument
        """The task's result from the remediation's (a subclass may judge it: ``rdp.doctor.remediate_host``'s verdict)."""
        return result

    def _read_facts(self, host: str, options: dict[str, t.Any]) -> dict[str, t.Any]:
        display.vvv(f"{self.module_name}: reading the host's RDP state (read_rdp_state)", host=host)
        facts, _raw = read_host_facts(self._low_level_execute_command, self.facts_options(options), host=host)
        return facts

    def _plan(self, facts: dict[str, t.Any], options: dict[str, t.Any], host: str) -> remediation.Plan:
        plan = self.planner(facts, options)
        broken = remediation.plan_problems(plan.operations)
        if broken:  # a planner bug: never send a malformed plan to a host
            raise RemediationFailure(f"{self.module_name}: internal error, the planner made an invalid plan: {'; '.join(broken)}")
        display.vvv(f"{self.module_name}: plan of {len(plan.operations)} operation(s): "
                    + ", ".join(f"{op['id']} {op['kind']} ({op.get('why', '')})" for op in plan.operations), host=host)
        return plan

    def _remediate(self, host: str, given_facts: dict[str, t.Any] | None, options: dict[str, t.Any]) -> dict[str, t.Any]:
        if given_facts is not None and not isinstance(given_facts.get("facts_version"), int):
            raise RemediationFailure("facts must be the host's ansible_facts.rdp_doctor (as rdp.doctor.host_facts returns it); "
                                     "this dict has no facts_version")
        facts = given_facts if given_facts is not None else self._read_facts(host, options)
        plan = self._plan(facts, options, host)
        summary = self._summary(plan)
        if plan.refused:
            raise RemediationFailure(f"{self.module_name} refused, nothing was changed: " + "; ".join(plan.refused), **summary,
                                     outcome="refused")
        if not plan.operations:
            return dict(summary, changed=False, outcome="compliant", msg=self._message(plan, "compliant"))
        if self._task.check_mode:
            return dict(summary, changed=True, outcome="check_mode", msg=self._message(plan, "check_mode"))
        answer = self._apply(plan, host)
        if answer["outcome"] == "drift":
            display.vvv(f"{self.module_name}: the host changed since it was read ({answer['drift']}); reading it again", host=host)
            facts = self._read_facts(host, options)
            plan = self._plan(facts, options, host)
            summary = self._summary(plan)
            if plan.refused:
                raise RemediationFailure(f"{self.module_name} refused after the host changed, nothing was changed: " + "; ".join(plan.refused),
                                         **summary, outcome="refused")
            if not plan.operations:
                return dict(summary, changed=False, outcome="compliant", msg=self._message(plan, "compliant"))
            answer = self._apply(plan, host)
            if answer["outcome"] == "drift":
                raise RemediationFailure(f"{self.module_name}: the host kept changing while rdp.doctor applied its plan; nothing was applied "
                                         f"(drift: {', '.join(d['id'] for d in answer['drift'])})", **summary, outcome="drift",
                                         drift=answer["drift"])
        operations = merge_statuses(plan.operations, answer["operations"])
        summary["operations"] = operations
        if answer["outcome"] in ("rolled_back", "partial"):
            failed = [f"{op['id']} {op['kind']}: {(op.get('error') or {}).get('message')}" for op in operations if op["status"] == "failed"]
            left = still_applied(operations)
            left_text = (f"STILL APPLIED on the host: {', '.join(left)}" if left else "every applied operation was undone")
            raise RemediationFailure(f"{self.module_name}: the change failed ({'; '.join(failed)}); {left_text}", **summary,
                                     outcome=answer["outcome"], still_applied=left)
        problems = [p for op in operations for p in remediation.verify_problems(op, op.get("after"))]
        if problems:
            raise RemediationFailure(f"{self.module_name}: applied, but the host does not show the change: {'; '.join(problems)}",
                                     **dict(summary, changed=True), outcome="unverified")
        return dict(summary, changed=True, outcome="applied", msg=self._message(plan, "applied"))

    def _apply(self, plan: remediation.Plan, host: str) -> dict[str, t.Any]:
        params = {"operations": plan.operations, "run_id": new_run_id()}
        try:
            answer = run_host_script(self._low_level_execute_command, remediation.APPLY_SCRIPT, params, host=host)
        except (AnsibleConnectionFailure, HostScriptError) as exc:
            # The plan was sent and no outcome came back (connection gone, garbled or oversized answer, the script itself
            # failed): the host may have applied any part of it. Never reported as "nothing changed": the next run reads the host again and converges.
            raise RemediationFailure(
                f"{self.module_name}: the host may have applied some or all of {', '.join(op['id'] for op in plan.operations)}: "
                f"the answer to the change was lost; run again to read the host and converge ({exc})",
                **dict(self._summary(plan), changed=True), outcome="unknown") from exc
        display.vvv(f"{self.module_name}: apply outcome {answer.get('outcome')}: "
                    + ", ".join(f"{op.get('id')} {op.get('status')}" for op in answer.get("operations", [])), host=host)
        return answer

    def _summary(self, plan: remediation.Plan) -> dict[str, t.Any]:
        """The result keys every outcome carries (contracts section 10c)."""
        return {"diff": {"before": plan.before, "after": plan.after}, "operations": plan.operations, "warnings": list(plan.warnings),
                "manual": list(plan.manual), "restart": list(plan.restart), "reboot_required": plan.reboot_required}

    def _message(self, plan: remediation.Plan, outcome: str) -> str:
        changed = sorted(key for key in plan.after if plan.before.get(key) != plan.after.get(key))
        manual = f"; manual: {', '.join(str(item.get('setting') or item.get('id')) for item in plan.manual)}" if plan.manual else ""
        if outcome == "compliant":
            return f"{self.module_name}: nothing to change{manual}"
        verb = "would change" if outcome == "check_mode" else "changed"
        reboot = " (a reboot is required for it to take effect)" if plan.reboot_required else ""
        return f"{self.module_name}: {verb} {', '.join(changed) or 'the host'} in {len(plan.operations)} operation(s){reboot}{manual}"
