"""Every finding whose fix names one of these five modules proposes parameters the module accepts and that plan a change."""

from __future__ import annotations

import importlib

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from tests.lab.model import POL, RDP_TCP, SCHANNEL_PROTOCOLS
from tests.unit.plugins.module_utils.planners import lab_facts as lf

MODULES = ("session_limits", "services", "tls_protocols", "listener_certificate", "machinekeys")
FAULTS = ("termservice_stopped", "termservice_disabled", "ghost_sessions", "session_limit_reached", "tls12_disabled",
          "all_tls_disabled", "cert_expired", "cert_wrong_name", "cert_key_unreadable", "cert_bound_missing",
          "machinekeys_acl_broken", "listener_key_missing",
          # issue 12, part A
          "listener_down", "instance_limit_low", "idle_limit_short", "session_limits_inherited")


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


@pytest.mark.parametrize("module, section, options", [
    ("session_limits", "registry", {"max_idle_time": "15m"}),
    ("services", "services", {"termservice": {"state": "started"}}),
    ("tls_protocols", "registry", {"tls12": "enabled"}),
    ("listener_certificate", "certificates", {"state": "self_signed"}),
    ("machinekeys", "machinekeys", {"repair": "acl"}),
])
def test_a_section_the_host_could_not_read_is_refused(module: str, section: str, options: dict) -> None:
    """Never plan on a blind spot: the refusal names the section and why it is missing."""
    facts = lf.facts("cert_expired", "machinekeys_acl_broken", "tls12_disabled", "termservice_stopped")
    if section == "registry":  # a registry key the planner reads (host_facts names each unreadable key)
        section = "registry: " + (RDP_TCP if module == "session_limits" else SCHANNEL_PROTOCOLS + "\\TLS 1.2\\Server")
    facts["read_errors"] = [{"section": section, "type": "System.UnauthorizedAccessException", "message": "Access is denied"}]
    planner_module = planner(module)
    full = {name: spec.get("default") for name, spec in planner_module.ARGUMENT_SPEC.items()}
    full.update(options)
    result = planner_module.plan(facts, full)
    lf.assert_well_formed(result)
    assert result.operations == [] and result.refused == [
        f"the host could not read '{section}' (Access is denied): nothing is planned on facts that are missing"]


def test_an_unread_registry_key_elsewhere_still_refuses_a_registry_planner() -> None:
    """Conservative: 'registry' covers every key, so a planner never plans beside a key it could not read."""
    facts = lf.facts("tls12_disabled")
    facts["read_errors"] = [{"section": "registry: " + POL, "type": "System.Security.SecurityException", "message": "denied"}]
    options = {"tls12": "enabled", "disable_legacy": None, "allow_legacy_disable": False, "client": False}
    assert planner("tls_protocols").plan(facts, options).refused


def test_facts_that_are_not_host_facts_are_refused() -> None:
    options = {"tls12": "enabled", "repair": "acl", "state": "self_signed", "max_idle_time": 0, "termservice": {"state": "started"}}
    for module in MODULES:
        result = planner(module).plan({"something": 1}, options)
        assert any(r.startswith("the facts are not rdp.doctor host facts") for r in result.refused), module
