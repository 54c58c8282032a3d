"""remediate_host with use_role_variables (issue 8): the remediate role's task passes no templated argument; the action
reads the role's variables and what diagnose published, with the same checks and messages as before."""

from __future__ import annotations

import typing as t
from pathlib import Path
from unittest import mock

import yaml
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.action import remediate_host
from ansible_collections.rdp.doctor.plugins.action.remediate_host import FIX_SWITCHES, ROLE_VARIABLES, role_arguments
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan as rp

ROLE = Path(__file__).resolve().parents[4] / "roles" / "remediate"
SPEC = remediate_host.ActionModule.ARGUMENT_SPEC


def test_every_role_variable_is_in_the_role_argument_spec() -> None:
    """The variables the action reads are the ones the role documents, with the option's type and default."""
    documented = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    read = set(ROLE_VARIABLES.values()) | set(FIX_SWITCHES.values()) | {remediate_host.FROM_FINDINGS, remediate_host.PROBE_SWITCH}
    assert read == set(documented)
    assert sorted(FIX_SWITCHES) == sorted(rp.MODULES)
    for option, variable in ROLE_VARIABLES.items():
        assert documented[variable]["type"] == SPEC[option]["type"], variable
        if variable in defaults and "default" in SPEC[option]:
            assert defaults[variable] == SPEC[option]["default"], variable


def published(state: str = "ok") -> dict[str, t.Any]:
    return {"rdp_doctor_facts": {"facts_version": 1}, "rdp_doctor_findings": [{"id": "RDP-X", "fix": {"manual": "do it"}}],
            "rdp_doctor_probe": {"verdict": {"ok": True}}, "rdp_doctor_host_state": {"state": state}}


def test_role_arguments_as_the_role_task_passed_them() -> None:
    variables = {"rdp_doctor_baseline": {"credssp": {"oracle": "mitigated"}}, "rdp_doctor_fix_firewall": "false",
                 "rdp_doctor_remediate_reboot_delay": "30", "ansible_host": "10.0.0.5", "inventory_hostname": "win01",
                 "ansible_run_tags": ["rdp_doctor_fix_credssp"], "ansible_skip_tags": []}
    args, problems, source = role_arguments({"use_role_variables": True}, variables, published())
    assert problems == [] and args["reboot_delay"] == 30 and source["reboot_delay"] == "rdp_doctor_remediate_reboot_delay"
    assert args["enabled"]["firewall"] is False and args["enabled"]["credssp"] is True
    assert args["facts"] == {"facts_version": 1} and args["findings"][0]["id"] == "RDP-X" and args["probe_before"]["verdict"]["ok"]
    assert args["probe_host"] == "10.0.0.5" and args["probe_expected_address"] == "10.0.0.5"
    assert args["run_tags"] == ["rdp_doctor_fix_credssp"] and args["baseline"] == {"credssp": {"oracle": "mitigated"}}
    # Switched off: no findings (the baseline alone), no probe to compare with.
    off, _problems, _source = role_arguments({}, {"rdp_doctor_remediate_from_findings": False, "rdp_doctor_diagnose_probe": "no"}, published())
    assert off["findings"] == [] and off["probe_before"] is None
    # Before diagnose ran (validate_only) nothing of the fact cache is taken.
    early, _problems, _source = role_arguments({"validate_only": True}, {}, published())
    assert "facts" not in early and "findings" not in early and "probe_before" not in early


def test_bad_role_variables_are_named() -> None:
    _args, problems, _source = role_arguments({}, {"rdp_doctor_fix_credssp": "perhaps", "rdp_doctor_remediate_reboot_delay": "soon",
                                                   "rdp_doctor_remediate_fail_on_remaining": "maybe"}, {})
    text = "; ".join(problems)
    assert "argument 'rdp_doctor_fix_credssp' is of type str and we were unable to convert to bool" in text
    assert "argument 'rdp_doctor_remediate_reboot_delay' is of type str and we were unable to convert to int" in text
    assert "argument 'rdp_doctor_remediate_fail_on_remaining' is of type str and we were unable to convert to bool" in text


def test_message_names_manual_steps_of_findings_and_planners() -> None:
    """A manual step from a finding has an id, one from a planner a setting: the message names both (it said None)."""
    task = mock.MagicMock(args={}, check_mode=False, async_val=0)
    action = remediate_host.ActionModule(task, mock.MagicMock(), PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    plan = remediation.Plan(manual=[{"id": "RDP-PORT-CONFLICT", "title": "t", "manual": "stop nginx"},
                                    {"setting": "firewall_gpo_domain", "reason": "a GPO owns it"}])
    assert action._message(plan, "compliant").endswith("nothing to change; manual: RDP-PORT-CONFLICT, firewall_gpo_domain")  # pylint: disable=protected-access
