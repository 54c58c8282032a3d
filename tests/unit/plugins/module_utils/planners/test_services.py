"""services planner on lab-built facts: start mode, state, account, dependents, lockout guard, option errors."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils.planners import services as sv
from tests.unit.plugins.module_utils.planners import lab_facts as lf


def plan(facts: dict, **options: object):
    full = {name: spec.get("default") for name, spec in sv.ARGUMENT_SPEC.items()}
    full.update(options)
    result = sv.plan(facts, full)
    lf.assert_well_formed(result)
    return result


def steps(result) -> list[tuple[str, str, dict, dict]]:
    return [(op["kind"], op["target"]["name"], op["expect"], op["set"]) for op in result.operations]


BAD_OPTIONS = [
    ({}, "nothing to do: set start_mode, state"),
    ({"termservice": {"state": "running"}}, "termservice.state must be one of started, stopped, restarted, not 'running'"),
    ({"sessionenv": {"start_mode": "automatic"}}, "sessionenv.start_mode must be one of auto, manual, disabled, not 'automatic'"),
    ({"termservice": {"account": "LocalSystem"}}, "termservice.account must be one of network_service, not 'LocalSystem'"),
    ({"umrdpservice": {"account": "network_service"}}, "umrdpservice.account is not an option; allowed: start_mode, state"),
    ({"sessionenv": {"start_mode": "disabled", "state": "started"}}, "sessionenv: a disabled service cannot be started"),
    ({"umrdpservice": {"state": "started"}, "termservice": {"state": "stopped"}},
     "umrdpservice.state: UmRdpService needs TermService running"),
    ({"termservice": "started"}, "termservice must be a dictionary with start_mode and/or state"),
    ({"termservice": {"state": "started"}, "allow_lockout": "yes"}, "allow_lockout must be true or false, not 'yes'"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_bad_options(options: dict, message: str) -> None:
    problems = sv.option_problems(options)
    assert any(p.startswith(message) for p in problems), problems
    assert any(p.startswith(message) for p in plan(lf.facts(), **options).refused)


def test_healthy_host_is_compliant() -> None:
    result = plan(lf.facts(), termservice={"start_mode": "manual", "state": "started", "account": "network_service"},
                  sessionenv={"start_mode": "manual", "state": "started"}, umrdpservice={"state": "started"})
    assert result.operations == [] and result.before == result.after and not result.refused


def test_termservice_stopped_is_started() -> None:
    result = plan(lf.facts("termservice_stopped"), termservice={"state": "started"})
    assert steps(result) == [("service_control", "TermService", {"state": "Stopped"}, {"action": "start"})]
    assert result.before == {"TermService": {"state": "Stopped"}} and result.after == {"TermService": {"state": "Running"}}


def test_termservice_disabled_is_set_to_manual_before_it_starts() -> None:
    result = plan(lf.facts("termservice_disabled"), termservice={"state": "started"}, umrdpservice={"state": "started"})
    assert steps(result) == [
        ("service_config", "TermService", {"start_mode": "Disabled"}, {"start_mode": "Manual"}),
        ("service_control", "TermService", {"state": "Stopped"}, {"action": "start"}),
        ("service_control", "UmRdpService", {"state": "Stopped"}, {"action": "start"}),
    ]
    assert result.after["TermService"] == {"start_mode": "Manual", "state": "Running"}


def test_explicit_start_mode_wins_over_the_default_manual() -> None:
    result = plan(lf.facts("termservice_disabled"), termservice={"start_mode": "auto", "state": "started"})
    assert steps(result)[0] == ("service_config", "TermService", {"start_mode": "Disabled"}, {"start_mode": "Auto"})


def test_umrdpservice_alone_starts_termservice_first() -> None:
    result = plan(lf.facts("termservice_stopped"), umrdpservice={"state": "started"})
    assert [(s[1], s[3]["action"]) for s in steps(result)] == [("TermService", "start"), ("UmRdpService", "start")]


def test_umrdpservice_with_termservice_disabled_is_refused() -> None:
    result = plan(lf.facts("termservice_disabled"), umrdpservice={"state": "started"})
    assert result.operations == [] and any("set termservice.start_mode manual" in r for r in result.refused)


def test_stopping_termservice_needs_allow_lockout() -> None:
    refused = plan(lf.facts(), termservice={"state": "stopped"})
    assert refused.operations == [] and refused.refused == [
        "termservice: stopping TermService ends every RDP connection to the host; set allow_lockout: true if that is intended"]
    disabled = plan(lf.facts(), termservice={"start_mode": "disabled"})
    assert disabled.refused == [
        "termservice: disabling TermService ends every RDP connection to the host; set allow_lockout: true if that is intended"]
    allowed = plan(lf.facts(), termservice={"state": "stopped"}, allow_lockout=True)
    assert [(s[1], s[2], s[3]) for s in steps(allowed)] == [
        ("UmRdpService", {"state": "Running"}, {"action": "stop"}),  # the dependent goes first
        ("TermService", {"state": "Running"}, {"action": "stop"}),
    ]
    assert allowed.after == {"TermService": {"state": "Stopped"}, "UmRdpService": {"state": "Stopped"}}


def test_restart_termservice_once_for_account_and_restart() -> None:
    host = lf.host_of()
    host.services["TermService"].account = "LocalSystem"
    result = plan(lf.facts_of_host(host), termservice={"account": "network_service", "state": "restarted"},
                  umrdpservice={"state": "restarted"})
    assert steps(result) == [
        ("service_config", "TermService", {"account": "LocalSystem"}, {"account": "NT Authority\\NetworkService"}),
        ("service_control", "TermService", {"state": "Running"}, {"action": "restart"}),  # brings UmRdpService back with it
    ]
    assert result.restart == ["TermService"]
    assert any("connected RDP sessions are dropped" in w for w in result.warnings)


def test_account_change_on_a_running_service_restarts_it() -> None:
    host = lf.host_of()
    host.services["TermService"].account = "LocalSystem"
    result = plan(lf.facts_of_host(host), termservice={"account": "network_service"})
    assert [s[3] for s in steps(result)] == [{"account": "NT Authority\\NetworkService"}, {"action": "restart"}]
    assert result.before == {"TermService": {"account": "LocalSystem"}}


def test_sessionenv_restart_is_not_guarded() -> None:
    result = plan(lf.facts(), sessionenv={"state": "restarted"})
    assert steps(result) == [("service_control", "SessionEnv", {"state": "Running"}, {"action": "restart"})]
    assert result.warnings == [] and result.refused == []


def test_a_missing_service_is_refused() -> None:
    facts = lf.facts()
    facts["listener"]["services"]["SessionEnv"] = {"present": False, "state": None, "start_mode": None, "running": False}
    result = plan(facts, sessionenv={"state": "started"})
    assert result.refused == ["sessionenv: the service SessionEnv is not installed on the host"]


def test_disabling_sessionenv_warns_about_certificate_renewal() -> None:
    result = plan(lf.facts(), sessionenv={"start_mode": "disabled"})
    assert steps(result) == [("service_config", "SessionEnv", {"start_mode": "Manual"}, {"start_mode": "Disabled"})]
    assert any("no longer renews the self-signed listener certificate" in w for w in result.warnings)
