# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A role's variables as an action's options (``use_role_variables``), read in the action instead of templated
task arguments.

Why (issue 8, docs/performance.md): Ansible runs every task of every host in a fresh worker process and keeps no
template cache across them, so each templated argument of a per-host task costs every host's worker a Jinja
compilation, a few milliseconds each - more than the host's whole read for a role task with twenty arguments. A
variable read here is templated only when it holds a template (the roles' defaults do not).

Pure helpers, except ``templated_variables`` (which templates through the action's templar).
"""

from __future__ import annotations

import typing as t

from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.rdp.doctor.plugins.module_utils import validation


def requested(task_args: t.Mapping[str, t.Any]) -> bool:
    """Whether the task asks for its role's variables (``use_role_variables``; checked as a boolean with the rest)."""
    return boolean(task_args.get("use_role_variables", False), strict=False)


def templated_variables(templar: t.Any, task_vars: t.Mapping[str, t.Any], names: t.Iterable[str]) -> dict[str, t.Any]:
    """The variables of ``names`` that are defined, each templated (a value without a template comes back as is)."""
    return {name: templar.template(task_vars[name]) for name in names if name in task_vars}


def options_from_variables(task_args: t.Mapping[str, t.Any], variables: t.Mapping[str, t.Any], mapping: t.Mapping[str, str],
                           spec: t.Mapping[str, dict[str, t.Any]]) -> tuple[dict[str, t.Any], list[str], dict[str, str]]:
    """(arguments, problems, option -> variable): each option of ``mapping`` the task leaves out, from its variable.

    A value is converted and checked by its option's ``spec`` under the variable's name, so a message names what the
    user set ("argument 'rdp_doctor_event_days' is of type str ..."), as Ansible's role argument validation does.
    """
    args = dict(task_args)
    source: dict[str, str] = {}
    variable_spec: dict[str, dict[str, t.Any]] = {}
    values: dict[str, t.Any] = {}
    for option, variable in mapping.items():
        if option not in args and variable in variables:
            variable_spec[variable] = {key: value for key, value in spec[option].items() if key not in ("default", "required")}
            values[variable] = variables[variable]
            source[option] = variable
    converted, problems = validation.validated_arguments(variable_spec, values)
    args.update({option: converted[variable] for option, variable in source.items() if variable in converted})
    return args, problems, source


def switches(variables: t.Mapping[str, t.Any], named: t.Mapping[str, str], default: bool = True) -> tuple[dict[str, bool], list[str]]:
    """(key -> on/off, problems) of boolean switch variables, ``default`` when unset: "false" (an AWX survey,
    ``-e x=false``) is off, as YAML false is; anything that is not a boolean is a problem naming the variable."""
    given = {variable: variables[variable] for variable in named.values() if variable in variables}
    converted, problems = validation.validated_arguments({variable: {"type": "bool"} for variable in given}, given)
    return {key: bool(converted.get(variable, default)) for key, variable in named.items()}, problems


def add_target_and_tags(args: dict[str, t.Any], variables: t.Mapping[str, t.Any]) -> None:
    """In place, what the roles' tasks always passed: the probe connects to ``ansible_host`` (else the inventory name)
    and expects that address; the run's ``--tags`` / ``--skip-tags`` (the actions select their steps or fixes by them)."""
    address = variables.get("ansible_host")
    if args.get("probe_host") is None:
        args["probe_host"] = address or variables.get("inventory_hostname")
    if "probe_expected_address" not in args and address:
        args["probe_expected_address"] = address
    args.setdefault("run_tags", list(variables.get("ansible_run_tags") or ["all"]))
    args.setdefault("skip_tags", list(variables.get("ansible_skip_tags") or []))


#: The play's variables add_target_and_tags reads.
TARGET_AND_TAG_VARIABLES = ("ansible_host", "inventory_hostname", "ansible_run_tags", "ansible_skip_tags")


def attributed(problems: t.Iterable[str], source: t.Mapping[str, str]) -> list[str]:
    """Each problem about an option that came from a variable, prefixed with that variable's name."""
    named = []
    for problem in problems:
        option = next((name for name in sorted(source, key=len, reverse=True)
                       if problem.startswith(name) and problem[len(name):len(name) + 1] in (" ", ":", "[", ".")), None)
        named.append(f"{source[option]}: {problem}" if option else problem)
    return named
