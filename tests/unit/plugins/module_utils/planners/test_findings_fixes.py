"""Every finding whose fix names one of these five modules proposes parameters the module accepts and that plan a change."""

from __future__ import annotations

import importlib

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from tests.unit.plugins.module_utils.planners import lab_facts as lf

MODULES = ("session_limits", "services", "tls_protocols", "listener_certificate", "machinekeys")
FAULTS = ("termservice_stopped", "termservice_disabled", "ghost_sessions", "session_limit_reached", "tls12_disabled",
          "all_tls_disabled", "cert_expired", "cert_wrong_name", "cert_key_unreadable", "cert_bound_missing",
          "machinekeys_acl_broken", "listener_key_missing")


def planner(module: str):
    return importlib.import_module(f"ansible_collections.rdp.doctor.plugins.module_utils.planners.{module}")


@pytest.mark.parametrize("fault", FAULTS)
def test_proposed_fixes_are_accepted_and_plan_a_change(fault: str) -> None:
    facts = lf.facts(fault)
    fixes = [f["fix"] for f in fd.evaluate(facts) if f["fix"].get("module", "").split(".")[-1] in MODULES]
    for fix in fixes:
        module = planner(fix["module"].split(".")[-1])
        options = {name: spec.get("default") for name, spec in module.ARGUMENT_SPEC.items()}
        options.update(fix["params"])
        assert module.option_problems(options) == [], (fix, module.option_problems(options))
        result = module.plan(facts, options)
        lf.assert_well_formed(result)
        assert not result.refused and result.operations, (fault, fix, result.to_dict())
