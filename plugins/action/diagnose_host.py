# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.diagnose_host``: one task per host for the whole diagnosis.

Reads the host once (``host_facts.read_facts``: one round trip), probes its listener from this worker on
the controller (``probe.probe_in_process``: the client's eye, no module process), joins both into findings
and the summary lines with the collection's filters. Everything the diagnose role used to spread over six
per-host tasks, each of which cost Ansible a worker process per host (issue 8).

The results are returned as ``ansible_facts`` (``published_facts``): Ansible publishes them with this task,
no per-host ``set_fact`` (docs/dev/contracts.md section 4a). With ``verdict`` the task itself fails a host that
could not be read or whose findings reach ``fail_on`` (the role's former per-host fail task, one worker per host);
Ansible publishes no facts of a failed task, so that host's results go, with every host's, into this run's records
(``run_records``), from which the run-once ``rdp.doctor.run_summary`` task publishes them and sums up the fleet.

With ``use_role_variables`` the options come from the diagnose role's variables (``ROLE_VARIABLES``), read here:
every templated task argument costs each host's worker a Jinja compilation (~5 ms; Ansible keeps no template cache
across its per-task worker processes), which is why the role's task has no templated argument at all.

Pure parts (``selected_steps``, ``host_state``, ``probe_arguments``, ``published_facts``, ``role_arguments``) are
functions of plain data.
"""

from __future__ import annotations

import typing as t

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.action import ActionBase

from ansible_collections.rdp.doctor.plugins.action.host_facts import ARGUMENT_SPEC as FACTS_SPEC
from ansible_collections.rdp.doctor.plugins.action.host_facts import option_problems as facts_option_problems
from ansible_collections.rdp.doctor.plugins.action.host_facts import read_facts
from ansible_collections.rdp.doctor.plugins.action.probe import probe_in_process
from ansible_collections.rdp.doctor.plugins.filter.findings import findings as findings_filter
from ansible_collections.rdp.doctor.plugins.filter.findings_summary import findings_summary
from ansible_collections.rdp.doctor.plugins.filter.fleet_summary import FAIL_ON, host_verdict
from ansible_collections.rdp.doctor.plugins.module_utils import validation
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info
from ansible_collections.rdp.doctor.plugins.module_utils.findings import CATALOGUE, SEVERITIES
from ansible_collections.rdp.doctor.plugins.modules.probe import argument_spec as probe_argument_spec
from ansible_collections.rdp.doctor.plugins.plugin_utils import role_variables, run_records

STEPS = ("facts", "probe", "findings", "summary")
#: The diagnose role's tags and the steps each selects: a later step's tag also runs what it needs.
STEP_TAGS: dict[str, frozenset[str]] = {
    "facts": frozenset({"rdp_doctor_facts", "rdp_doctor_findings", "rdp_doctor_summary"}),
    "probe": frozenset({"rdp_doctor_probe", "rdp_doctor_findings", "rdp_doctor_summary"}),
    "findings": frozenset({"rdp_doctor_findings", "rdp_doctor_summary"}),
    "summary": frozenset({"rdp_doctor_summary"}),
}
NOT_READ = "the host facts were not read in this run"
#: The remediate role's fix tags (rdp_doctor_fix, rdp_doctor_fix_<module>).
FIX_TAG_PREFIX = "rdp_doctor_fix"

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
    # Deprecated: true is fail_on=cause. Kept so playbooks written for 0.2 keep failing the same hosts.
    "fail_on_findings": {"type": "bool", "default": False},
    "fail_on": {"type": "str", "default": "none", "choices": list(FAIL_ON)},
    "verdict": {"type": "bool", "default": False},
    "use_role_variables": {"type": "bool", "default": False},
}

#: With use_role_variables: the diagnose role's variable of each option (roles/diagnose/meta/argument_specs.yml).
ROLE_VARIABLES: dict[str, str] = {
    "accounts": "rdp_doctor_accounts",
    "event_days": "rdp_doctor_event_days",
    "event_sample_size": "rdp_doctor_event_sample_size",
    "probe": "rdp_doctor_diagnose_probe",
    "probe_host": "rdp_doctor_probe_host",
    "probe_port": "rdp_doctor_probe_port",
    "probe_server_name": "rdp_doctor_probe_server_name",
    "probe_timeout": "rdp_doctor_probe_timeout",
    "min_severity": "rdp_doctor_diagnose_min_severity",
    "fail_on": "rdp_doctor_diagnose_fail_on",
    "fail_on_findings": "rdp_doctor_diagnose_fail_on_findings",
    "verdict": "rdp_doctor_diagnose_verdict",
}
#: With use_role_variables: the role's switch of each finding category (its area); categories = the areas switched on.
AREA_VARIABLES: dict[str, str] = {area: f"rdp_doctor_diagnose_{area}" for area in (
    "listener", "network", "certificate", "credssp", "security", "tls", "sessions", "licensing", "accounts",
    "group_policy", "host")}


#: Probe options diagnose_host sets itself (probe_host, probe_port, probe_timeout ...): they win over probe_options.
PROBE_OPTIONS_SET_HERE = ("host", "port", "connect_timeout", "read_timeout", "expected_address", "server_name")
#: Finding categories the ``categories`` option may name (the catalogue's).
CATEGORIES = tuple(sorted({entry.category for entry in CATALOGUE.values()}))


def option_problems(args: dict[str, t.Any]) -> list[str]:
    """Every problem of the options, checked before the host is read or probed; each names the option and what is allowed."""
    problems = validation.spec_problems({name: spec for name, spec in ARGUMENT_SPEC.items() if name not in FACTS_SPEC}, args,
                                        skip=validation.PROBE_TARGET_OPTIONS)
    problems += facts_option_problems({name: args[name] for name in FACTS_SPEC if name in args})
    if not args["steps"]:
        problems.append(f"steps must name at least one of {', '.join(STEPS)}")
    problems += validation.probe_target_problems(args)
    problems += [f"categories: {c!r} is not a finding category; allowed: {', '.join(CATEGORIES)}"
                 for c in args.get("categories") or [] if c not in CATEGORIES]
    probe_options = args.get("probe_options") or {}
    if not isinstance(probe_options, dict):
        return problems + [f"probe_options must be a dictionary of rdp.doctor.probe options, not {type(probe_options).__name__}"]
    probe_spec = probe_argument_spec()
    problems += validation.unknown_key_problems("probe_options", probe_options, probe_spec)
    known = {key: value for key, value in probe_options.items() if key in probe_spec and key not in PROBE_OPTIONS_SET_HERE}
    values, errors = validation.validated_arguments({key: dict(probe_spec[key], required=False) for key in known}, known,
                                                    prefix="probe_options: ")
    problems += errors
    if not errors:
        problems += validation.spec_problems(probe_spec, values, prefix="probe_options.")
        if "steps" in known and not values.get("steps"):
            problems.append("probe_options.steps must name at least one probe step (an empty list would probe nothing and pass)")
        problems += validation.number_problems("probe_options.max_clock_skew", values.get("max_clock_skew"), 0, 86400, "seconds")
        problems += validation.number_problems("probe_options.expiring_days", values.get("expiring_days"), 0, 3650, "days", integer=True)
        problems += validation.number_problems("probe_options.max_connections_per_target", values.get("max_connections_per_target"),
                                               1, 64, integer=True)
        if known.get("ca_bundle") is not None:
            problems += validation.readable_file_problems("probe_options.ca_bundle", values["ca_bundle"])
    return problems


def selected_steps(steps: t.Sequence[str], run_tags: t.Sequence[str] | None, skip_tags: t.Sequence[str]) -> list[str]:
    """The steps to run: asked for, selected by ``--tags`` (default all) and not removed by ``--skip-tags``.

    Same rule as Ansible's for a task carrying a step's tags (STEP_TAGS), so the role keeps its per-step tags
    while one task does every step.
    """
    run = set(run_tags or ("all",))
    if any(tag.startswith(FIX_TAG_PREFIX) for tag in run):
        # A remediate run limited to some fixes (--tags rdp_doctor_fix_<module>) plans them from the findings:
        # the read, the probe and the findings must run too.
        run.add("rdp_doctor_findings")
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
    mismatches), else the probe host. Without an FQDN (the host was not read) a probe host that is an IP
    address is no name a user would type: the certificate's name is then not checked, and the result says so,
    instead of a certificate FAIL for every unreached host. The expected address is passed only when it is an
    IP address (``ansible_host`` may be a name; the probe compares addresses and never resolves this one).
    """
    listener = facts.get("listener") if isinstance(facts.get("listener"), dict) else {}
    os_facts = facts.get("os") if isinstance(facts.get("os"), dict) else {}
    probe_args = dict(args["probe_options"] or {})
    probe_host = args["probe_host"] or inventory_host
    probe_args.update(host=probe_host,
                      port=args["probe_port"] or listener.get("effective_port") or 3389,
                      connect_timeout=args["probe_timeout"], read_timeout=args["probe_timeout"])
    if args["probe_expected_address"] and x509_info.ip_literal(str(args["probe_expected_address"])) is not None:
        probe_args["expected_address"] = args["probe_expected_address"]
    server_name = args["probe_server_name"] or os_facts.get("fqdn") or probe_args.get("server_name")
    if server_name:
        probe_args["server_name"] = server_name
    elif x509_info.ip_literal(str(probe_host)) is not None:
        probe_args["name_check_skip_reason"] = "host not read" if not facts else "the host's FQDN is unknown"
    return probe_args


def published_facts(facts: dict[str, t.Any], probe: dict[str, t.Any] | None, found: list[dict[str, t.Any]],
                    state: dict[str, t.Any]) -> dict[str, t.Any]:
    """The four collection-wide facts of this run, every one always set (no stale value from an earlier run).

    Returned as ``ansible_facts`` so Ansible publishes them with the task itself (no per-host ``set_fact``,
    issue 8) and keeps them in the fact cache (issue 11). Each value is in the result once: Ansible deep-copies
    a host's facts for every later task, and the registered result copies the whole result.
    """
    return {"rdp_doctor_facts": facts, "rdp_doctor_probe": probe, "rdp_doctor_findings": found, "rdp_doctor_host_state": state}


def role_arguments(task_args: t.Mapping[str, t.Any], variables: t.Mapping[str, t.Any]) -> tuple[dict[str, t.Any], list[str], dict[str, str]]:
    """The task's options with ``use_role_variables``: each option the task leaves out comes from its role variable.

    ``variables`` holds the variables that are defined, templated. Returns the arguments, the problems of the
    variables (each names its variable, as Ansible's role argument validation would) and which variable gave
    which option. The probe connects to ``ansible_host`` (else the inventory name) and expects that address, and
    the run's tags select the steps, as the role's task always passed them.
    """
    args, problems, source = role_variables.options_from_variables(task_args, variables, ROLE_VARIABLES, ARGUMENT_SPEC)
    if "categories" not in args:
        areas, switch_problems = role_variables.switches(variables, AREA_VARIABLES)
        args["categories"] = [area for area, on in areas.items() if on]
        problems += switch_problems
    role_variables.add_target_and_tags(args, variables)
    return args, problems, source


#: The variables ``use_role_variables`` reads (besides the options': the address, the name and the run's tags).
READ_VARIABLES = (*ROLE_VARIABLES.values(), *AREA_VARIABLES.values(), *role_variables.TARGET_AND_TAG_VARIABLES)


class ActionModule(ActionBase):
    """Facts, probe, findings and summary of one host in one task."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """Run the selected steps; fails a host only with ``verdict`` or ``fail_on`` (an unreadable host is reported)."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        task_args = dict(self._task.args)
        source: dict[str, str] = {}
        problems: list[str] = []
        if role_variables.requested(task_args):
            variables = role_variables.templated_variables(self._templar, task_vars, READ_VARIABLES)
            task_args, problems, source = role_arguments(task_args, variables)
        args, spec_errors = validation.validated_arguments(ARGUMENT_SPEC, task_args)
        problems = role_variables.attributed(problems + spec_errors or option_problems(args), source)
        if problems:  # before the host is read or probed
            return dict(result, failed=True, changed=False, msg="; ".join(problems))
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
                # Never hidden (issue 10): the summary and the fleet summary say the client's view is unknown.
                result["probe_error"] = state["probe_error"] = str(probed.get("msg") or "the probe gave no result")

        found = findings_filter(facts, probe, categories=args["categories"], min_severity=args["min_severity"]) \
            if "findings" in steps else []
        summary = findings_summary(found, state, probe) if "summary" in steps else []
        result.update(changed=False, steps=steps, host_state=state, summary=summary)
        fail_on = "cause" if args["fail_on_findings"] and args["fail_on"] == "none" else args["fail_on"]
        verdict = host_verdict({"host_state": state, "findings": found, "probe": probe}, fail_on)
        fails = (args["verdict"] or fail_on != "none") and verdict["fails"]
        results = published_facts(facts, probe, found, state)
        if fails:
            # The verdict says it as the role always did (STATE: why, one line); fail_on alone with the summary.
            # No facts in a failed result: Ansible would not publish them and would print them whole; the run's
            # records keep them for rdp.doctor.run_summary.
            result.update(failed=True, msg=f"{str(verdict['state']).upper()}: {verdict['detail']}" if args["verdict"]
                          else " | ".join(summary or findings_summary(found, state, probe)))
        else:
            result["ansible_facts"] = results
        run_records.keep(self._task, task_vars, run_records.run_record(state, found, probe, results if fails else None), result)
        return result
