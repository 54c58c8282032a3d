"""remediation.py: constructors, validation and verification of primitive operations (contracts section 10)."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import remediation as r

RDP_TCP = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp"


def test_constructors_make_valid_numbered_plans() -> None:
    ops = r.number([
        r.registry_set(RDP_TCP, "SecurityLayer", 2, 0),
        r.registry_remove(RDP_TCP, "SSLCertificateSHA1Hash", "ab" * 20, "Binary"),
        r.service_config("TermService", {"start_mode": "Disabled"}, start_mode="Manual"),
        r.service_control("TermService", "Running", "restart"),
        r.firewall_rule("RemoteDesktop-UserMode-In-TCP", {"enabled": False}, enabled=True),
        r.owned_rule("rdp.doctor-RemoteDesktop-Custom-TCP", True, False, protocol="TCP", local_ports=["3390"]),
        r.listener_binding(None, "AB" * 20),
        r.key_acl_grant("Remote Desktop", "AB" * 20, "O:SYG:SYD:P(A;;FA;;;SY)", [{"sid": "S-1-5-20", "rights": "Read"}]),
        r.path_acl("C:\\x", "O:SYG:SYD:PAI(A;;FA;;;BA)", None),
        r.revert_task("rdp.doctor-revert-x", "2026-11-26T13:30:00Z", []),
        r.certificate_remove("Remote Desktop", "AB" * 20),
        r.session_logoff(3, "WIN01\\alice", "Disconnected", None),
    ])
    assert r.plan_problems(ops) == []
    assert [op["id"] for op in ops][:3] == ["op01", "op02", "op03"]
    assert ops[0]["expect"] == {"present": True, "type": "DWORD", "value": 0} and ops[1]["set"] == {"present": False}
    assert ops[-1]["reversible"] is False


@pytest.mark.parametrize("operation,fragment", [
    ({"id": "op01", "kind": "nope"}, "unknown operation kind"),
    (dict(r.registry_set("HKCU:\\X", "a", 1, 0), id="op01"), "only HKLM"),
    (dict(r.registry_set(RDP_TCP, "a", 1, 0, value_type="REG_DWORD"), id="op01"), "registry type"),
    (dict(r.service_control("TermService", "Running", "kill"), id="op01"), "action must be"),
    ({"id": "op01", "kind": "firewall_rule_owned", "target": {"name": "RemoteDesktop-UserMode-In-TCP"}, "expect": {}, "set": {}},
     "only creates or deletes rules named"),
    (dict(r.key_acl_grant("My", "AB", None, [{"sid": "S-1-5-20", "rights": "Write"}]), id="op01"), "key rights"),
    ({"id": "op01", "kind": "path_acl", "target": {}, "expect": {"bogus": 1}, "set": {}}, "target lacks"),
])
def test_operation_problems(operation: dict, fragment: str) -> None:
    assert any(fragment in p for p in r.operation_problems(operation))


def test_owned_rule_constructor_refuses_foreign_names() -> None:
    with pytest.raises(ValueError):
        r.owned_rule("RemoteDesktop-UserMode-In-TCP", False, True)


def test_plan_problems_ids_and_irreversible_last() -> None:
    ops = [r.session_logoff(3, "u", "Disconnected", None), r.registry_set(RDP_TCP, "a", 1, 0)]
    assert any("ids must be present" in p for p in r.plan_problems(ops))
    assert any("irreversible ones go last" in p for p in r.plan_problems(r.number(ops)))


@pytest.mark.parametrize("operation,after,ok", [
    (r.registry_set(RDP_TCP, "a", 2, 0), {"present": True, "type": "DWORD", "value": 2}, True),
    (r.registry_set(RDP_TCP, "a", 2, 0), {"present": True, "type": "DWORD", "value": 0}, False),
    (r.registry_remove(RDP_TCP, "a", 1), {"present": False}, True),
    (r.service_control("TermService", "Stopped", "start"), {"state": "Running"}, True),
    (r.service_control("TermService", "Running", "stop"), {"state": "Running"}, False),
    (r.service_config("TermService", {}, account="NT Authority\\NetworkService"), {"start_mode": "Manual", "account": "NT AUTHORITY\\NetworkService"}, True),
    (r.firewall_rule("X", {}, enabled=True), {"present": True, "enabled": True}, True),
    (r.owned_rule("rdp.doctor-x", True, False, protocol="TCP", local_ports=["3390"], service="termservice"),
     {"present": True, "protocol": "TCP", "local_ports": ["3390"], "service": None}, True),
    (r.key_acl_grant("My", "AB", None, [{"sid": "S-1-5-20", "rights": "Read"}]), {"sddl": "x", "grant": []}, False),
    (r.revert_task("n", "2026-11-26T13:30:00Z", []), {"present": True, "run_at_utc": "2026-11-26T13:30:00Z"}, True),
    (r.registry_set(RDP_TCP, "a", 2, 0), {"error": "Access is denied"}, False),
    (r.registry_set(RDP_TCP, "a", 2, 0), None, False),
])
def test_verify_problems(operation: dict, after: dict | None, ok: bool) -> None:
    assert (r.verify_problems(dict(operation, id="op01"), after) == []) is ok


def test_plan_to_dict() -> None:
    plan = r.Plan(operations=[], before={"a": 1}, after={"a": 2}, warnings=["w"], reboot_required=True)
    assert not plan.changes
    assert plan.to_dict()["diff"] == {"before": {"a": 1}, "after": {"a": 2}} and plan.to_dict()["reboot_required"] is True


def test_a_binding_back_to_the_default_is_verified_by_the_old_one_being_gone() -> None:
    """Windows binds the new self-signed certificate when SessionEnv restarts later in the same plan."""
    op = r.number([r.listener_binding(None, "AB" * 20)])[0]
    assert r.verify_problems(op, {"thumbprint": None}) == []
    assert r.verify_problems(op, {"thumbprint": "CD" * 20}) == []
    assert r.verify_problems(op, {"thumbprint": "ab" * 20}) == [f"op01 (listener_binding): the listener is still bound to {'AB' * 20!r} after the change"]
    bind = r.number([r.listener_binding("CD" * 20, "AB" * 20)])[0]
    assert r.verify_problems(bind, {"thumbprint": "EF" * 20}) != []


def test_host_restart_expects_the_boot_it_was_planned_from_and_goes_last() -> None:
    restart = r.host_restart(10, "2026-11-23T08:00:00Z", why="boot-time values")
    assert restart["target"] == {} and restart["set"] == {"delay_seconds": 10} and restart["reversible"] is True
    assert restart["expect"] == {"last_boot_utc": "2026-11-23T08:00:00Z"}
    assert r.host_restart(10, None)["expect"] == {}  # unknown boot: nothing to compare
    plan = r.number([r.registry_set(RDP_TCP, "SecurityLayer", 2, 0), restart])
    assert r.plan_problems(plan) == []
    misplaced = r.number([r.host_restart(10, None), r.registry_set(RDP_TCP, "SecurityLayer", 2, 0)])
    assert any("last operation (host_restart)" in p for p in r.plan_problems(misplaced))
    twice = r.number([r.host_restart(10, None), r.host_restart(10, None)])
    assert any("host_restart" in p for p in r.plan_problems(twice))


@pytest.mark.parametrize("delay,ok", [(5, True), (600, True), (4, False), (601, False), (True, False), ("10", False), (None, False)])
def test_host_restart_delay_range(delay: object, ok: bool) -> None:
    operation = dict(r.host_restart(10, None), id="op01")
    operation["set"] = {"delay_seconds": delay}
    problems = r.operation_problems(operation)
    assert (problems == []) is ok
    if not ok:
        assert "delay_seconds must be a whole number of seconds from 5 to 600" in problems[0]


def test_host_restart_verifies_that_the_restart_was_scheduled() -> None:
    restart = dict(r.host_restart(10, "2026-11-23T08:00:00Z"), id="op02")
    assert r.verify_problems(restart, {"scheduled": True, "last_boot_utc": "2026-11-23T08:00:00Z"}) == []
    assert r.verify_problems(restart, {"scheduled": False, "last_boot_utc": "2026-11-23T08:00:00Z"}) == [
        "op02 (host_restart): scheduled is False after the change, not True"]
    bad = dict(restart, expect={"boot": "x"})
    assert "unexpected expect key 'boot'" in r.operation_problems(bad)[0]
