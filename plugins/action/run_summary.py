# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.run_summary``: run once after the per-host task of a role, sum up the fleet.

Reads the run's records that every host's ``rdp.doctor.diagnose_host`` or ``rdp.doctor.remediate_host`` task left
(``plugin_utils.run_records``), instead of every host's variables (issue 8: a run-once task reading ``hostvars``
makes Ansible compute each host's variables). Returns the fleet summary lines, each host's state, and the results
Ansible did not publish: those of the hosts whose task failed (Ansible drops a failed task's facts) and of the hosts
Ansible lost before the task could run. The roles publish those with one run-once ``set_fact`` loop over them only
(none on a healthy run).

Pure parts: ``collect`` (records -> summary input and the results to publish), ``detail_lines``, ``print_now``.
"""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase

from ansible_collections.rdp.doctor.plugins.action.diagnose_host import ROLE_VARIABLES
from ansible_collections.rdp.doctor.plugins.filter.fleet_summary import FAIL_ON, fleet_verdicts, summary_lines
from ansible_collections.rdp.doctor.plugins.filter.remediation_record import remediation_record
from ansible_collections.rdp.doctor.plugins.filter.remediation_summary import remediation_summary
from ansible_collections.rdp.doctor.plugins.module_utils import validation
from ansible_collections.rdp.doctor.plugins.plugin_utils import role_variables, run_records

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "hosts": {"type": "list", "elements": "str"},
    "fail_on": {"type": "str", "default": "none", "choices": list(FAIL_ON)},
    "fail_on_findings": {"type": "bool", "default": False},
    "batches": {"type": "bool", "default": False},
    "kind": {"type": "str", "default": "diagnose", "choices": ["diagnose", "remediate"]},
    "use_role_variables": {"type": "bool", "default": False},
}
#: The state of a host Ansible lost before its task ran (a failed connection plugin, a bad connection variable):
#: Ansible printed why; no result of this run exists.
LOST_MSG = "Ansible lost the host before rdp.doctor.{kind}_host ran (its error is shown above)"
#: A remediation that needs no person: no line for it under the summary.
QUIET_REMEDIATION = ("compliant",)


def lost_state(kind: str = "diagnose") -> dict[str, t.Any]:
    """How a host Ansible lost before its ``rdp.doctor.<kind>_host`` task ran stands."""
    return {"state": "unreachable", "msg": LOST_MSG.format(kind=kind), "error": None}


def lost_results(kind: str = "diagnose") -> dict[str, t.Any]:
    """The facts a lost host gets (what the role's publishing task sets), so no value of an earlier run stays."""
    if kind == "remediate":
        return {"rdp_doctor_remediation": remediation_record({}, lost_state(kind))}
    return {"rdp_doctor_host_state": lost_state(kind), "rdp_doctor_facts": {}, "rdp_doctor_probe": None, "rdp_doctor_findings": []}


def collect(hosts: t.Sequence[str], records: dict[str, dict[str, t.Any]], started: set[str], batches: bool = False,
            kind: str = "diagnose") -> tuple[dict[str, dict[str, t.Any]], list[dict[str, t.Any]], list[str]]:
    """(summary input: host -> record, the results to publish: [{host, results}], hosts not reached) of ``hosts`` (pure).

    A host with a record is summed up from it; a host that started the task without leaving a record was lost. Any
    other host did not run the task in this scope: with ``batches`` its batch has not run (not reached), else it is
    reported as not read (an earlier failure took it out of the play). Hosts that started but are not in ``hosts``
    are added (their task ran, they belong to the summary).
    """
    summary_input: dict[str, dict[str, t.Any]] = {}
    to_publish: list[dict[str, t.Any]] = []
    not_reached: list[str] = []
    for host in list(hosts) + sorted(started - set(hosts)):
        record = records.get(host)
        if record is not None:
            summary_input[host] = {key: record.get(key) for key in ("host_state", "findings", "probe")}
            summary_input[host]["findings"] = summary_input[host]["findings"] or []
            if isinstance(record.get("remediation"), dict):
                summary_input[host]["remediation"] = record["remediation"]
            if not record.get("published", True) and isinstance(record.get("results"), dict):
                to_publish.append({"host": host, "results": record["results"]})
        elif host in started:
            results = lost_results(kind)
            summary_input[host] = {"host_state": lost_state(kind), "findings": [], "probe": None}
            if kind == "remediate":
                summary_input[host]["remediation"] = results["rdp_doctor_remediation"]
            to_publish.append({"host": host, "results": results})
        elif batches:
            not_reached.append(host)
        else:
            summary_input[host] = {}
    return summary_input, to_publish, not_reached


def detail_lines(summary_input: dict[str, dict[str, t.Any]]) -> list[str]:
    """Each remediated host's own lines (what changed, what is manual, what is left), but a compliant host's."""
    lines: list[str] = []
    for host, record in summary_input.items():
        remediation = record.get("remediation")
        if isinstance(remediation, dict) and remediation.get("state") not in QUIET_REMEDIATION:
            lines += [f"{host}: {line}" for line in remediation_summary(remediation)]
    return lines


def print_now(batched: bool, last_host: str | None, started: set[str], this_batch: t.Sequence[str],
              records: dict[str, dict[str, t.Any]]) -> bool:
    """Whether the summary is printed at this batch: always without batches; else at the last batch, or at a batch
    that fails a host (max_fail_percentage may end the run there)."""
    if not batched or last_host is None or last_host in started:
        return True
    return any(not records.get(host, {}).get("published", False) for host in this_batch)


class ActionModule(ActionBase):
    """Sum up the per-host results of the play, once."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """Read the records of this block, return the summary lines and the results to publish."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        task_args = dict(self._task.args)
        problems: list[str] = []
        if role_variables.requested(task_args):
            mapping = {option: ROLE_VARIABLES[option] for option in ("fail_on", "fail_on_findings")}
            variables = role_variables.templated_variables(self._templar, task_vars, mapping.values())
            task_args, problems, _source = role_variables.options_from_variables(task_args, variables, mapping, ARGUMENT_SPEC)
        args, spec_errors = validation.validated_arguments(ARGUMENT_SPEC, task_args)
        problems += spec_errors
        if problems:
            return dict(result, failed=True, changed=False, msg="; ".join(problems))
        play_hosts = [str(host) for host in task_vars.get("ansible_play_hosts_all") or []]
        hosts = args["hosts"] if args["hosts"] is not None else play_hosts
        fail_on = "cause" if args["fail_on_findings"] and args["fail_on"] == "none" else args["fail_on"]
        records, batches = run_records.read_records(run_records.records_dir(run_records.scope_of(self._task)))
        started = run_records.started_hosts(records, batches)
        summary_input, to_publish, not_reached = collect(hosts, records, started, batches=args["batches"], kind=args["kind"])
        this_host = str(task_vars.get("inventory_hostname") or "")
        this_batch = next((batch for batch in reversed(batches) if this_host in batch), [this_host])
        verdicts = fleet_verdicts(summary_input, fail_on=fail_on, not_reached=not_reached)
        states = {host: verdict["state"] for host, verdict in verdicts.items()}
        summary = summary_lines(verdicts, fail_on)
        result.update(changed=False, summary=summary, details=detail_lines(summary_input), unpublished=to_publish, states=states,
                      print_now=print_now(args["batches"], play_hosts[-1] if play_hosts else None, started, this_batch, records))
        return result
