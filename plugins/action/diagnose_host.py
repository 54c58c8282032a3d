# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.diagnose_host``: one task per host for the whole diagnosis.

Reads the host once (``host_facts.read_facts``: one round trip), probes its listener from this worker on
the controller (``probe.probe_in_process``: the client's eye, no module process), joins both into findings
and the summary lines with the collection's filters. Everything the diagnose role used to spread over six
per-host tasks, each of which cost Ansible a worker process per host (issue 8).

The results are returned as ``ansible_facts`` (``published_facts``): Ansible publishes them with this task,
no per-host ``set_fact`` (docs/dev/contracts.md section 4a).

Pure parts (``selected_steps``, ``host_state``, ``probe_arguments``, ``published_facts``) are functions of plain data.
"""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

from ansible_collections.rdp.doctor.plugins.action.host_facts import ARGUMENT_SPEC as FACTS_SPEC
from ansible_collections.rdp.doctor.plugins.action.host_facts import read_facts
from ansible_collections.rdp.doctor.plugins.action.probe import probe_in_process
from ansible_collections.rdp.doctor.plugins.filter.findings import findings as findings_filter
from ansible_collections.rdp.doctor.plugins.filter.findings_summary import findings_summary
from ansible_collections.rdp.doctor.plugins.module_utils.findings import SEVERITIES

STEPS = ("facts", "probe", "findings", "summary")
#: The diagnose role's tags and the steps each selects: a later step's tag also runs what it needs.
STEP_TAGS: dict[str, frozenset[str]] = {
    "facts": frozenset({"rdp_doctor_facts", "rdp_doctor_findings", "rdp_doctor_summary"}),
    "probe": frozenset({"rdp_doctor_probe", "rdp_doctor_findings", "rdp_doctor_summary"}),
    "findings": frozenset({"rdp_doctor_findings", "rdp_doctor_summary"}),
    "summary": frozenset({"rdp_doctor_summary"}),
}
NOT_READ = "the host facts were not read in this run"

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    **{name: spec for name, spec in FACTS_SPEC.items() if name != "include_raw"},
    "steps": {"type": "list", "elements": "str", "choices": list(STEPS), "default": list(STEPS)},
    "run_tags": {"type": "list", "elements": "str"},
    "skip_tags": {"type": "list", "elements": "str", "default": []},
    "probe": {"type": "bool", "default": True},
    "probe_host": {"type": "str"},
    "probe_port": {"type": "int"},
    "probe_expected_address": {"type": "str"},
    "probe_server_name": {"type": "str"},
    "probe_timeout": {"type": "float", "default": 5.0},
    "probe_options": {"type": "dict", "default": {}},
    "categories": {"type": "list", "elements": "str"},
    "min_severity": {"type": "str", "default": "info", "choices": list(SEVERITIES)},
    "fail_on_findings": {"type": "bool", "default": False},
}


def selected_steps(steps: t.Sequence[str], run_tags: t.Sequence[str] | None, skip_tags: t.Sequence[str]) -> list[str]:
    """The steps to run: asked for, selected by ``--tags`` (default all) and not removed by ``--skip-tags``.

    Same rule as Ansible's for a task carrying a step's tags (STEP_TAGS), so the role keeps its per-step tags
    while one task does every step.
    """
    run = set(run_tags or ("all",))
    skip = set(skip_tags or ())
    everything = bool(run & {"all", "tagged"})
    return [step for step in STEPS if step in steps and (everything or run & STEP_TAGS[step]) and not skip & STEP_TAGS[step]]


def host_state(read: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """How reading the host went: ok / unreachable / failed / skipped, with the reason and the structured error."""
    if read is None:
        return {"state": "skipped", "msg": NOT_READ, "error": None}
    if read.get("unreachable"):
        state = "unreachable"
    elif isinstance(read.get("ansible_facts"), dict) and "rdp_doctor" in read["ansible_facts"]:
        state = "ok"
    else:
        state = "failed"
    return {"state": state, "msg": read.get("msg") or NOT_READ, "error": read.get("error")}


def probe_arguments(args: dict[str, t.Any], facts: dict[str, t.Any], inventory_host: str) -> dict[str, t.Any]:
    """The probe's options: what a client types, the port the listener uses, the name clients expect on the certificate.

    Defaults as the diagnose role always had them: host = inventory address; port = the listener's effective
    port from the facts, else 3389; server name = the host's FQDN from the facts (a connection by IP always
    mismatches), else the probe host.
    """
    listener = facts.get("listener") if isinstance(facts.get("listener"), dict) else {}
    os_facts = facts.get("os") if isinstance(facts.get("os"), dict) else {}
    probe_args = dict(args["probe_options"] or {})
    probe_args.update(host=args["probe_host"] or inventory_host,
                      port=args["probe_port"] or listener.get("effective_port") or 3389,
                      connect_timeout=args["probe_timeout"], read_timeout=args["probe_timeout"])
    if args["probe_expected_address"]:
        probe_args["expected_address"] = args["probe_expected_address"]
    server_name = args["probe_server_name"] or os_facts.get("fqdn")
    if server_name:
        probe_args["server_name"] = server_name
    return probe_args


def published_facts(facts: dict[str, t.Any], probe: dict[str, t.Any] | None, found: list[dict[str, t.Any]],
                    state: dict[str, t.Any]) -> dict[str, t.Any]:
    """The four collection-wide facts of this run, every one always set (no stale value from an earlier run).

    Returned as ``ansible_facts`` so Ansible publishes them with the task itself (no per-host ``set_fact``,
    issue 8) and keeps them in the fact cache (issue 11). Each value is in the result once: Ansible deep-copies
    a host's facts for every later task, and the registered result copies the whole result.
    """
    return {"rdp_doctor_facts": facts, "rdp_doctor_probe": probe, "rdp_doctor_findings": found, "rdp_doctor_host_state": state}


class ActionModule(ActionBase):
    """Facts, probe, findings and summary of one host in one task."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """Run the selected steps; never fails for a host that cannot be read (it is reported), unless fail_on_findings."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        inventory_host = str(task_vars.get("inventory_hostname") or "")
        steps = selected_steps(args["steps"], args["run_tags"], args["skip_tags"])
        if not args["probe"] and "probe" in steps:
            steps.remove("probe")

        read: dict[str, t.Any] | None = None
        if "facts" in steps:
            facts_args = {name: args[name] for name in FACTS_SPEC if name in args}
            try:
                read = read_facts(self._low_level_execute_command, facts_args, inventory_host)
            except AnsibleConnectionFailure as exc:
                # Reported like the role always did (UNREACHABLE: <reason>); the probe still looks at the host.
                read = {"unreachable": True, "msg": str(exc)}
        state = host_state(read)
        facts = read["ansible_facts"]["rdp_doctor"] if state["state"] == "ok" and read else {}

        probe = None
        if "probe" in steps:
            probed = probe_in_process(probe_arguments(args, facts, inventory_host))
            if isinstance(probed.get("steps"), list):
                probe = dict(probed, failed=False)
            else:
                result["probe_error"] = probed.get("msg")

        found = findings_filter(facts, probe, categories=args["categories"], min_severity=args["min_severity"]) \
            if "findings" in steps else []
        summary = findings_summary(found, state, probe) if "summary" in steps else []
        result.update(changed=False, steps=steps, host_state=state, summary=summary,
                      ansible_facts=published_facts(facts, probe, found, state))
        if args["fail_on_findings"] and (state["state"] != "ok" or any(f.get("explains_0x904") for f in found)):
            result.update(failed=True, msg=" | ".join(summary or findings_summary(found, state, probe)))
        return result
