# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.diagnose_fleet``: run once after ``rdp.doctor.diagnose_host``, sum up the fleet.

Reads the run's records that every host's ``diagnose_host`` task left (``plugin_utils.run_records``), instead of
every host's variables (issue 8: a run-once task reading ``hostvars`` makes Ansible compute each host's variables).
Returns the fleet summary lines and the results Ansible did not publish: those of the hosts whose diagnose task
failed (Ansible drops a failed task's facts) and of the hosts Ansible lost before the task could run. The role
publishes those with one run-once ``set_fact`` loop over them only (none on a healthy run).

Pure part: ``collect`` (records -> summary input and the hosts to publish).
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.rdp.doctor.plugins.action.diagnose_host import ROLE_VARIABLES
from ansible_collections.rdp.doctor.plugins.filter.fleet_summary import FAIL_ON, fleet_summary, host_verdict
from ansible_collections.rdp.doctor.plugins.module_utils import validation
from ansible_collections.rdp.doctor.plugins.plugin_utils import run_records

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "hosts": {"type": "list", "elements": "str"},
    "fail_on": {"type": "str", "default": "none", "choices": list(FAIL_ON)},
    "fail_on_findings": {"type": "bool", "default": False},
    "use_role_variables": {"type": "bool", "default": False},
}
#: The state of a host Ansible lost before its diagnose task ran (a failed connection plugin, a bad connection
#: variable): Ansible printed why; no result of this run exists.
LOST_MSG = "Ansible lost the host before rdp.doctor.diagnose_host ran (its error is shown above)"


def lost_results() -> dict[str, t.Any]:
    """The facts a lost host gets, so no value of an earlier run (a fact cache) stays."""
    return {"rdp_doctor_host_state": {"state": "unreachable", "msg": LOST_MSG, "error": None},
            "rdp_doctor_facts": {}, "rdp_doctor_probe": None, "rdp_doctor_findings": []}


def collect(hosts: t.Sequence[str], records: dict[str, dict[str, t.Any]], started: set[str]) -> tuple[dict[str, dict[str, t.Any]], list[dict[str, t.Any]]]:
    """(summary input: host -> record, the results to publish: [{host, results}]) of ``hosts`` (pure).

    A host with a record is summed up from it; a host that started the diagnose task without leaving a record
    was lost; any other host did not run it in this scope (an earlier failure, a later batch) and is reported as
    not read. Hosts that started but are not in ``hosts`` are added (their task ran, they belong to the summary).
    """
    summary_input: dict[str, dict[str, t.Any]] = {}
    to_publish: list[dict[str, t.Any]] = []
    for host in list(hosts) + sorted(started - set(hosts)):
        record = records.get(host)
        if record is not None:
            summary_input[host] = {"host_state": record.get("host_state"), "findings": record.get("findings") or [],
                                   "probe": record.get("probe")}
            if not record.get("published", True) and isinstance(record.get("results"), dict):
                to_publish.append({"host": host, "results": record["results"]})
        elif host in started:
            results = lost_results()
            summary_input[host] = {"host_state": results["rdp_doctor_host_state"], "findings": [], "probe": None}
            to_publish.append({"host": host, "results": results})
        else:
            summary_input[host] = {}
    return summary_input, to_publish


class ActionModule(ActionBase):
    """Sum up the diagnose_host results of the play, once."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """Read the records of this block, return the summary lines and the results to publish."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        task_args = dict(self._task.args)
        if boolean(task_args.get("use_role_variables", False), strict=False):
            for option in ("fail_on", "fail_on_findings"):
                variable = ROLE_VARIABLES[option]
                if option not in task_args and variable in task_vars:
                    task_args[option] = self._templar.template(task_vars[variable])
        args, problems = validation.validated_arguments(ARGUMENT_SPEC, task_args)
        if problems:
            return dict(result, failed=True, changed=False, msg="; ".join(problems))
        hosts = args["hosts"] if args["hosts"] is not None else [str(host) for host in task_vars.get("ansible_play_hosts_all") or []]
        fail_on = "cause" if args["fail_on_findings"] and args["fail_on"] == "none" else args["fail_on"]
        records, started = run_records.read_records(run_records.records_dir(run_records.scope_of(self._task)))
        summary_input, to_publish = collect(hosts, records, started)
        states = {host: host_verdict(record, fail_on)["state"] for host, record in summary_input.items()}
        result.update(changed=False, summary=fleet_summary(summary_input, fail_on=fail_on), unpublished=to_publish,
                      states=states)
        return result
