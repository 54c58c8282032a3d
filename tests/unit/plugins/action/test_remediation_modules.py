"""The eight thin remediation actions wire their planner, and each doc file (with its fragments) documents exactly the planner's argument spec."""

from __future__ import annotations

import importlib
import typing as t

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from tests.unit.plugins.module_utils.planners import lab_facts as lf

MODULES = ("session_limits", "services", "tls_protocols", "listener_certificate", "machinekeys", "listener_security", "credssp",
           "firewall")
#: Documented in every remediation module: the facts the role passes (handled by the shared remediation action).
SHARED_OPTIONS = {"facts"}
SPEC_KEYS = ("type", "choices", "default", "elements", "required")


def _load(module: str):
    base = "ansible_collections.rdp.doctor.plugins"
    return (importlib.import_module(f"{base}.action.{module}"), importlib.import_module(f"{base}.module_utils.planners.{module}"),
            importlib.import_module(f"{base}.modules.{module}"))


def _documentation(doc: t.Any) -> dict:
    """DOCUMENTATION with the collection's own doc fragments merged in (options and attributes), as ansible-doc shows it."""
    documentation = yaml.safe_load(doc.DOCUMENTATION)
    for fragment in documentation.get("extends_documentation_fragment") or []:
        if not fragment.startswith("rdp.doctor."):
            continue
        module = importlib.import_module(f"ansible_collections.rdp.doctor.plugins.doc_fragments.{fragment.split('.')[-1]}")
        extra = yaml.safe_load(module.ModuleDocFragment.DOCUMENTATION)
        for key in ("options", "attributes"):
            documentation[key] = dict(extra.get(key) or {}, **(documentation.get(key) or {}))
    return documentation


def _compare(documented: dict, spec: dict, where: str) -> None:
    assert set(documented) == set(spec), where
    for name, option in spec.items():
        doc = documented[name]
        for key in SPEC_KEYS:
            wanted = option.get(key, False if key == "required" else None)
            assert doc.get(key, False if key == "required" else None) == wanted, f"{where}.{name}.{key}"
        assert doc.get("description"), f"{where}.{name} has no description"
        if "options" in option:
            _compare(doc.get("suboptions") or {}, option["options"], f"{where}.{name}")


@pytest.mark.parametrize("module", MODULES)
def test_action_wires_its_planner(module: str) -> None:
    action, planner, _doc = _load(module)
    assert action.ActionModule.ARGUMENT_SPEC is planner.ARGUMENT_SPEC
    assert action.ActionModule.planner is planner.plan
    assert action.ActionModule.option_problems is planner.option_problems


@pytest.mark.parametrize("module", MODULES)
def test_documentation_matches_the_argument_spec(module: str) -> None:
    _action, planner, doc = _load(module)
    documentation = _documentation(doc)
    assert documentation["module"] == module
    options = dict(documentation["options"])
    assert SHARED_OPTIONS <= set(options)
    _compare({k: v for k, v in options.items() if k not in SHARED_OPTIONS}, planner.ARGUMENT_SPEC, module)
    assert documentation["attributes"]["check_mode"]["support"] == "full"
    assert documentation["attributes"]["diff_mode"]["support"] == "full"
    assert documentation["attributes"]["platform"]["platforms"] == "windows"
    returned = yaml.safe_load(doc.RETURN)
    assert {"changed", "diff", "operations", "outcome", "reboot_required", "warnings", "manual", "msg"} <= set(returned)
    assert yaml.safe_load(doc.EXAMPLES)


#: Task arguments as a playbook writes them (strings where YAML gives strings), per module.
TASK_ARGS = {
    "session_limits": {"max_disconnection_time": "8h", "max_instance_count": "unlimited", "reset_broken": "yes",
                       "end_disconnected_sessions": ["3"], "logoff_disconnected_older_than": "1d"},
    "services": {"termservice": {"state": "started", "account": "network_service"}, "umrdpservice": {"start_mode": "manual"}},
    "tls_protocols": {"tls12": "enabled", "disable_legacy": ["tls1.0"], "allow_legacy_disable": "true"},
    "listener_certificate": {"state": "self_signed", "min_days_valid": "45"},
    "machinekeys": {"repair": "acl"},
    "listener_security": {"nla": "yes", "security_layer": "tls", "min_encryption_level": "high"},
    "credssp": {"allow_encryption_oracle": "mitigated"},
    "firewall": {"state": "enabled", "port": "3389", "protocols": ["tcp"]},
}


@pytest.mark.parametrize("module", MODULES)
def test_task_arguments_pass_ansible_validation_then_the_planner(module: str) -> None:
    """What Ansible's argument spec validation makes of task arguments is what the planner validates and plans from."""
    _action, planner, _doc = _load(module)
    validated = ArgumentSpecValidator(planner.ARGUMENT_SPEC).validate(TASK_ARGS[module])
    assert validated.error_messages == []
    options = validated.validated_parameters
    assert planner.option_problems(options) == []
    result = planner.plan(lf.facts(), options)
    lf.assert_well_formed(result)
    assert not result.refused
