"""The five thin remediation actions wire their planner, and each doc file documents exactly the planner's argument spec."""

from __future__ import annotations

import importlib

import pytest
import yaml

MODULES = ("session_limits", "services", "tls_protocols", "listener_certificate", "machinekeys")
#: Documented in every remediation module: the facts the role passes (handled by the shared remediation action).
SHARED_OPTIONS = {"facts"}
SPEC_KEYS = ("type", "choices", "default", "elements", "required")


def _load(module: str):
    base = "ansible_collections.rdp.doctor.plugins"
    return (importlib.import_module(f"{base}.action.{module}"), importlib.import_module(f"{base}.module_utils.planners.{module}"),
            importlib.import_module(f"{base}.modules.{module}"))


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
    documentation = yaml.safe_load(doc.DOCUMENTATION)
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
