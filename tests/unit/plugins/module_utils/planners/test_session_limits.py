"""session_limits planner on lab-built facts: durations, GPO, fInherit, instance count, ghost sessions, option errors."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils.planners import common
from ansible_collections.rdp.doctor.plugins.module_utils.planners import session_limits as sl
from tests.lab.model import POL, RDP_TCP
from tests.unit.plugins.module_utils.planners import lab_facts as lf

DWORD = "DWORD"


def plan(facts: dict, **options: object):
    """Plan with the argument spec's defaults filled in, checked against the contract."""
    full = {name: spec.get("default") for name, spec in sl.ARGUMENT_SPEC.items()}
    full.update(options)
    result = sl.plan(facts, full)
    lf.assert_well_formed(result)
    return result


# --------------------------------------------------------------------------------------------------
# durations
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("15m", 900_000), ("2h", 7_200_000), ("1d", 86_400_000), ("30s", 30_000), ("500ms", 500), ("1h30m", 5_400_000),
    ("0", 0), (0, 0), (60000, 60000), ("60000", 60000), (" 8H ", 28_800_000), (4294967295, 4294967295),
])
def test_parse_duration_accepts(value: object, expected: int) -> None:
    assert common.parse_duration("max_idle_time", value) == (expected, None)


@pytest.mark.parametrize("value, fragment", [
    ("15x", "is not a duration"), ("1.5h", "is not a duration"), (1.5, "is not a duration"), (True, "is not a duration"),
    ("", "is not a duration"), ("-5m", "is not a duration"), (-1, "is negative"), ("m", "is not a duration"),
    ("50d", "longer than Windows can store"), (4294967296, "longer than Windows can store"), (None, "is not a duration"),
])
def test_parse_duration_rejects(value: object, fragment: str) -> None:
    milliseconds, problem = common.parse_duration("max_idle_time", value)
    assert milliseconds is None and problem is not None
    assert problem.startswith("max_idle_time: ") and fragment in problem


# --------------------------------------------------------------------------------------------------
# bad options corpus: every message names the option and what is allowed
# --------------------------------------------------------------------------------------------------

BAD_OPTIONS = [
    ({"max_idle_time": "soon"}, "max_idle_time: 'soon' is not a duration: use a number with a unit"),
    ({"max_connection_time": -3}, "max_connection_time: -3 is negative"),
    ({"max_disconnection_time": "60d"}, "max_disconnection_time: '60d' is longer than Windows can store"),
    ({"logoff_disconnected_older_than": "a week"}, "logoff_disconnected_older_than: 'a week' is not a duration"),
    ({"max_instance_count": 0}, "max_instance_count must be a whole number from 1 to 999999 or 'unlimited', not 0"),
    ({"max_instance_count": 1000000}, "max_instance_count must be a whole number from 1 to 999999 or 'unlimited', not 1000000"),
    ({"max_instance_count": "lots"}, "max_instance_count must be a whole number from 1 to 999999 or 'unlimited', not 'lots'"),
    ({"max_instance_count": True}, "max_instance_count must be a whole number from 1 to 999999 or 'unlimited', not True"),
    ({"reset_broken": "yes"}, "reset_broken must be true or false, not 'yes'"),
    ({"max_idle_time": "15m", "write_local_policy": 1}, "write_local_policy must be true or false, not 1"),
    ({"end_disconnected_sessions": [0]}, "end_disconnected_sessions: sessions 0 (services) and 65536 (the listener) are never logged off"),
    ({"end_disconnected_sessions": ["a"]}, "end_disconnected_sessions must be a list of session ids (whole numbers), not ['a']"),
    ({"logoff_sessions": True}, "logoff_sessions: true needs logoff_disconnected_older_than or end_disconnected_sessions"),
    ({}, "nothing to do: set at least one of max_disconnection_time"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_bad_options(options: dict, message: str) -> None:
    problems = sl.option_problems(options)
    assert any(p.startswith(message) for p in problems), problems
    refused = plan(lf.facts(), **options)
    assert refused.operations == [] and any(p.startswith(message) for p in refused.refused)


def test_findings_proposals_are_accepted() -> None:
    """What findings.py proposes today (RDP-SESSION-LIMIT-REACHED, RDP-GHOST-SESSIONS) passes validation."""
    assert sl.option_problems({"max_instance_count": reg.SETTINGS["max_instance_count"].default}) == []
    assert sl.option_problems({"max_disconnection_time": 8 * 3600 * 1000, "end_disconnected_sessions": [2, 3, 4]}) == []


# --------------------------------------------------------------------------------------------------
# healthy host, idempotence
# --------------------------------------------------------------------------------------------------

def test_healthy_host_with_its_own_values_is_empty() -> None:
    """Asking for what the host already has plans nothing (the second run of a fix)."""
    host = lf.host_of()
    for value_name in ("fInheritMaxSessionTime", "fInheritMaxDisconnectionTime", "fInheritMaxIdleTime", "fInheritResetBroken"):
        host.reg_set(RDP_TCP, value_name, 0)  # the listener's own limits count
    result = plan(lf.facts_of_host(host), max_idle_time=0, max_connection_time="0", max_disconnection_time=0, reset_broken=False,
                  single_session_per_user=True, max_instance_count="unlimited")
    assert result.operations == [] and not result.refused and result.before == result.after
    assert result.before == {"max_disconnection_time": 0, "max_idle_time": 0, "max_connection_time": 0, "reset_broken": 0,
                             "single_session_per_user": 1, "max_instance_count": 4294967295}


def test_limits_windows_ignores_get_only_their_inherit_flag() -> None:
    """fInherit*=1 (the default): RDP-Tcp already holds the wanted 0, but Windows applies each user's limit instead
    (issue 12): only fInherit*=0 is written, and the limit was not known before (the user's)."""
    result = plan(lf.facts(), max_idle_time=0, max_disconnection_time=0)
    assert [(op["target"]["name"], op["set"]["value"]) for op in result.operations] == [
        ("fInheritMaxDisconnectionTime", 0), ("fInheritMaxIdleTime", 0)]
    assert result.before == {"max_disconnection_time": None, "max_idle_time": None}
    assert result.after == {"max_disconnection_time": 0, "max_idle_time": 0}


def test_applied_values_make_the_next_plan_empty() -> None:
    """After the writes land (the lab model changed as apply would), the same options plan nothing."""
    host = lf.host_of("ghost_sessions")
    host.reg_set(RDP_TCP, "MaxDisconnectionTime", 28_800_000)
    host.reg_set(RDP_TCP, "fInheritMaxDisconnectionTime", 0)
    assert plan(lf.facts_of_host(host), max_disconnection_time="8h").operations == []


# --------------------------------------------------------------------------------------------------
# exact operations
# --------------------------------------------------------------------------------------------------

def test_ghost_sessions_fix_writes_the_value_and_its_inherit_flag() -> None:
    facts = lf.facts("ghost_sessions")
    result = plan(facts, max_disconnection_time="8h")
    assert lf.shape(result) == [
        ("op01", "registry_value", {"path": RDP_TCP, "name": "MaxDisconnectionTime"},
         {"present": True, "type": DWORD, "value": 0}, {"present": True, "type": DWORD, "value": 28_800_000}),
        ("op02", "registry_value", {"path": RDP_TCP, "name": "fInheritMaxDisconnectionTime"},
         {"present": True, "type": DWORD, "value": 1}, {"present": True, "type": DWORD, "value": 0}),
    ]
    # fInheritMaxDisconnectionTime=1 (Windows' default): Windows applied each user's limit, not RDP-Tcp's 0 (issue 12)
    assert result.before == {"max_disconnection_time": None} and result.after == {"max_disconnection_time": 28_800_000}
    assert not result.reboot_required and not result.manual


@pytest.mark.parametrize("option, value_name, inherit", [
    ("max_idle_time", "MaxIdleTime", "fInheritMaxIdleTime"),
    ("max_connection_time", "MaxConnectionTime", "fInheritMaxSessionTime"),
])
def test_each_time_limit_has_its_inherit_flag(option: str, value_name: str, inherit: str) -> None:
    result = plan(lf.facts(), **{option: "15m"})
    assert [(op["target"]["name"], op["set"]["value"]) for op in result.operations] == [(value_name, 900_000), (inherit, 0)]


def test_booleans_and_single_session_key() -> None:
    result = plan(lf.facts(), reset_broken=True, single_session_per_user=False)
    assert [(op["target"]["path"], op["target"]["name"], op["expect"], op["set"]["value"]) for op in result.operations] == [
        (RDP_TCP, "fResetBroken", {"present": True, "type": DWORD, "value": 0}, 1),
        (RDP_TCP, "fInheritResetBroken", {"present": True, "type": DWORD, "value": 1}, 0),
        (reg.TS, "fSingleSessionPerUser", {"present": True, "type": DWORD, "value": 1}, 0),
    ]


def test_session_limit_reached_fix() -> None:
    facts = lf.facts("session_limit_reached")
    result = plan(facts, max_instance_count="unlimited")
    assert lf.shape(result) == [("op01", "registry_value", {"path": RDP_TCP, "name": "MaxInstanceCount"},
                                 {"present": True, "type": DWORD, "value": 2}, {"present": True, "type": DWORD, "value": 4294967295})]
    # the finding's literal proposal (the local default) is the same plan
    assert lf.shape(plan(facts, max_instance_count=4294967295)) == lf.shape(result)


def test_lowering_the_instance_count_below_active_sessions_warns() -> None:
    result = plan(lf.facts("session_limit_reached"), max_instance_count=1)
    assert result.operations[0]["set"]["value"] == 1
    assert any("not above the 2 active session(s)" in w for w in result.warnings)


# --------------------------------------------------------------------------------------------------
# Group Policy
# --------------------------------------------------------------------------------------------------

def _policy_host(domain: str | None = None, value: int = 0):
    host = lf.host_of("ghost_sessions", domain=domain)
    host.reg_set(POL, "MaxDisconnectionTime", value)
    return host


def test_policy_value_is_manual_with_its_key() -> None:
    result = plan(lf.facts_of_host(_policy_host()), max_disconnection_time="8h")
    assert result.operations == []
    assert result.manual == [{"setting": "max_disconnection_time", "policy_key": POL + "\\MaxDisconnectionTime",
                              "reason": result.manual[0]["reason"]}]
    assert "Group Policy sets MaxDisconnectionTime=0" in result.manual[0]["reason"]
    assert "write_local_policy: true" in result.manual[0]["reason"]
    assert result.before == result.after == {"max_disconnection_time": 0}


def test_write_local_policy_writes_the_policy_value_outside_a_domain() -> None:
    result = plan(lf.facts_of_host(_policy_host()), max_disconnection_time="8h", write_local_policy=True)
    assert lf.shape(result) == [("op01", "registry_value", {"path": POL, "name": "MaxDisconnectionTime"},
                                 {"present": True, "type": DWORD, "value": 0}, {"present": True, "type": DWORD, "value": 28_800_000})]
    assert result.manual == [] and result.after == {"max_disconnection_time": 28_800_000}


def test_write_local_policy_is_ignored_on_a_domain_member() -> None:
    result = plan(lf.facts_of_host(_policy_host(domain="contoso.com")), max_disconnection_time="8h", write_local_policy=True)
    assert result.operations == [] and len(result.manual) == 1
    assert "domain GPO" in result.manual[0]["reason"]
    assert any(w.startswith("write_local_policy is ignored for max_disconnection_time") for w in result.warnings)


def test_policy_unlimited_instances_matches_unlimited() -> None:
    host = lf.host_of()
    host.reg_set(POL, "MaxInstanceCount", 999999)
    assert plan(lf.facts_of_host(host), max_instance_count="unlimited").operations == []
    host.reg_set(POL, "MaxInstanceCount", 2)
    result = plan(lf.facts_of_host(host), max_instance_count="unlimited", write_local_policy=True)
    assert [(op["target"]["path"], op["set"]["value"]) for op in result.operations] == [(POL, 999999)]


def test_policy_with_the_wanted_value_is_compliant() -> None:
    result = plan(lf.facts_of_host(_policy_host(value=28_800_000)), max_disconnection_time="8h")
    assert result.operations == [] and result.manual == []


# --------------------------------------------------------------------------------------------------
# ghost sessions
# --------------------------------------------------------------------------------------------------

def test_listing_without_logoff_changes_nothing() -> None:
    facts = lf.facts("ghost_sessions")
    result = plan(facts, logoff_disconnected_older_than="7d")
    assert result.operations == []
    listed = result.before["disconnected_sessions"]
    assert [s["user"].split("\\")[-1] for s in listed] == ["bob", "carol"]
    assert result.after["disconnected_sessions"] == listed
    assert any("set logoff_sessions: true" in w for w in result.warnings)


def test_logoff_sessions_logs_them_off_last() -> None:
    facts = lf.facts("ghost_sessions")
    sessions = {s["user"].split("\\")[-1]: s for s in facts["session_limits"]["sessions"] if s["user"]}
    result = plan(facts, max_disconnection_time="8h", logoff_disconnected_older_than="1d", logoff_sessions=True)
    kinds = [op["kind"] for op in result.operations]
    assert kinds == ["registry_value", "registry_value", "session_logoff", "session_logoff", "session_logoff"]
    logoffs = [(op["target"], op["expect"], op["reversible"]) for op in result.operations[2:]]
    assert logoffs == [({"session_id": sessions[n]["id"]}, {"user": sessions[n]["user"], "state": "Disconnected",
                                                            "logon_time": sessions[n]["logon_time"]}, False)
                       for n in ("alice", "bob", "carol")]
    assert result.after["disconnected_sessions"] == []


def test_end_disconnected_sessions_never_touches_active_or_unknown_sessions() -> None:
    host = lf.host_of("session_limit_reached")
    facts = lf.facts_of_host(host)
    active = [s["id"] for s in facts["session_limits"]["sessions"] if s["state"] == "Active"]
    result = plan(facts, end_disconnected_sessions=active + [99], logoff_sessions=True)
    assert result.operations == []
    assert any(f"session {active[0]}" in w and "is Active, not disconnected" in w for w in result.warnings)
    assert any("session 99 does not exist" in w for w in result.warnings)


def test_findings_ghost_proposal_with_ids() -> None:
    facts = lf.facts("ghost_sessions")
    ids = [s["id"] for s in facts["session_limits"]["sessions"] if s["state"] == "Disconnected" and s["user"]]
    result = plan(facts, max_disconnection_time=28_800_000, end_disconnected_sessions=ids, logoff_sessions=True)
    assert [op["target"]["session_id"] for op in result.operations if op["kind"] == "session_logoff"] == ids


def test_console_and_services_sessions_are_never_chosen() -> None:
    facts = lf.facts("ghost_sessions")
    result = plan(facts, logoff_disconnected_older_than=0, logoff_sessions=True)
    chosen = [op["target"]["session_id"] for op in result.operations]
    assert 0 not in chosen and 65536 not in chosen and 1 not in chosen and len(chosen) == 3


def test_missing_session_read_is_refused() -> None:
    facts = lf.facts()
    facts["read_errors"] = [{"section": "sessions", "type": "System.ComponentModel.Win32Exception", "message": "Access is denied"}]
    result = plan(facts, max_idle_time="15m")
    assert result.operations == [] and result.refused and "could not read 'sessions'" in result.refused[0]
