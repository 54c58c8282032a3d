"""The remediate role's decisions: fixes from findings and baselines, switches and tags, one combined plan,
rollback operations and probe regressions (module_utils/remediation_plan.py)."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import remediation as ops
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan as rp

TS = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server"
RDP_TCP = TS + "\\WinStations\\RDP-Tcp"


def finding(fid: str, fix: dict) -> dict:
    return {"id": fid, "title": fid.lower(), "fix": fix}


def test_fixes_merge_findings_of_one_module_and_list_manual_ones() -> None:
    fixes, manual = rp.fixes_from_findings([
        finding("RDP-CONNECTIONS-DENIED", {"module": "rdp.doctor.listener_security", "params": {"allow_connections": True}}),
        finding("RDP-NLA-DISABLED", {"module": "rdp.doctor.listener_security", "params": {"nla": True}}),
        finding("RDP-GPO-OVERRIDE", {"manual": "Fix the GPO."}),
    ])
    assert fixes == {"listener_security": {"allow_connections": True, "nla": True}}
    assert manual == [{"id": "RDP-GPO-OVERRIDE", "title": "rdp-gpo-override", "manual": "Fix the GPO."}]


def test_two_findings_asking_different_values_conflict() -> None:
    with pytest.raises(rp.FixConflict, match="security_layer"):
        rp.fixes_from_findings([
            finding("A", {"module": "rdp.doctor.listener_security", "params": {"security_layer": "tls"}}),
            finding("B", {"module": "rdp.doctor.listener_security", "params": {"security_layer": "negotiate"}}),
        ])


def test_a_finding_never_carries_an_opt_in() -> None:
    fixes, manual = rp.fixes_from_findings([finding("A", {"module": "rdp.doctor.credssp",
                                                          "params": {"allow_encryption_oracle": "vulnerable", "allow_insecure": True}})])
    assert manual == []
    assert fixes == {"credssp": {"allow_encryption_oracle": "vulnerable"}}


def test_unknown_module_in_a_fix_is_an_error() -> None:
    with pytest.raises(ValueError, match="not a remediation module"):
        rp.fixes_from_findings([finding("A", {"module": "ansible.windows.win_regedit", "params": {}})])


def test_baseline_maps_keys_to_module_options() -> None:
    fixes = rp.fixes_from_baseline({"security_layer": "tls", "nla": True, "credssp": "mitigated",
                                    "session_limits": {"max_disconnection_time": "8h"}})
    assert fixes == {"listener_security": {"security_layer": "tls", "nla": True},
                     "credssp": {"allow_encryption_oracle": "mitigated"},
                     "session_limits": {"max_disconnection_time": "8h"}}


@pytest.mark.parametrize("baseline, message", [
    ({"securitylayer": "tls"}, "unknown key 'securitylayer'"),
    ({"session_limits": "8h"}, "must be a dict"),
    (["tls"], "must be a dict"),
])
def test_bad_baseline_is_refused_with_the_allowed_keys(baseline: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rp.fixes_from_baseline(baseline)  # type: ignore[arg-type]


def test_switches_and_tags_select_fixes() -> None:
    fixes = {"credssp": {"allow_encryption_oracle": "mitigated"}, "firewall": {"state": "enabled"}}
    assert rp.select_fixes(fixes) == fixes
    assert rp.select_fixes(fixes, enabled={"credssp": False}) == {"firewall": {"state": "enabled"}}
    assert rp.select_fixes(fixes, run_tags=["rdp_doctor_fix_firewall"]) == {"firewall": {"state": "enabled"}}
    assert rp.select_fixes(fixes, skip_tags=["rdp_doctor_fix_firewall"]) == {"credssp": {"allow_encryption_oracle": "mitigated"}}
    assert rp.select_fixes(fixes, run_tags=["rdp_doctor_fix"]) == fixes
    assert rp.select_fixes(fixes, skip_tags=["rdp_doctor_fix"]) == {}


def _plan(*operations: ops.Operation, **fields: object) -> ops.Plan:
    return ops.Plan(operations=list(operations), **fields)  # type: ignore[arg-type]


def test_combine_orders_modules_restarts_services_once_and_puts_irreversible_last() -> None:
    logoff = ops.session_logoff(3, "LAB\\bob", "Disconnected", "2026-11-01T00:00:00Z")
    combined = rp.combine([
        ("rdp.doctor.session_limits", _plan(ops.registry_set(RDP_TCP, "MaxDisconnectionTime", 28800000, None), logoff)),
        ("listener_security", _plan(ops.registry_set(RDP_TCP, "SecurityLayer", 2, 0),
                                    ops.service_control("TermService", "Running", "restart"), restart=["TermService"])),
        ("services", _plan(ops.service_config("TermService", {"start_mode": "Disabled"}, start_mode="Manual"),
                           ops.service_control("TermService", "Running", "start"))),
    ])
    kinds = [(o["id"], o["kind"], o["target"].get("name")) for o in combined.operations]
    assert kinds == [("op01", "service_config", "TermService"), ("op02", "registry_value", "SecurityLayer"),
                     ("op03", "registry_value", "MaxDisconnectionTime"), ("op04", "service_control", "TermService"),
                     ("op05", "session_logoff", None)]
    assert combined.operations[3]["set"] == {"action": "restart"}
    assert not ops.plan_problems(combined.operations)
    assert combined.restart == ["TermService"]


def test_combine_refuses_two_modules_writing_one_value_differently_and_keeps_a_repeat_once() -> None:
    same = ops.registry_set(RDP_TCP, "PortNumber", 3390, 3389)
    combined = rp.combine([("listener_security", _plan(same)), ("firewall", _plan(dict(same)))])
    assert len(combined.operations) == 1 and not combined.refused
    other = ops.registry_set(RDP_TCP, "PortNumber", 3391, 3389)
    combined = rp.combine([("listener_security", _plan(same)), ("firewall", _plan(other))])
    assert combined.refused and "both change" in combined.refused[0]


def test_combine_keys_diff_by_module_and_prefixes_messages() -> None:
    credssp = _plan(before={"allow_encryption_oracle": "force_updated_clients"}, after={"allow_encryption_oracle": "mitigated"},
                    warnings=["lowers CIS 18.9.4.1"], reboot_required=True)
    combined = rp.combine([("credssp", credssp)])
    assert combined.before == {"credssp": {"allow_encryption_oracle": "force_updated_clients"}}
    assert combined.warnings == ["credssp: lowers CIS 18.9.4.1"]
    assert combined.reboot_required


def _applied(operation: ops.Operation, before: dict, after: dict, status: str = "applied") -> dict:
    return dict(operation, status=status, before=before, after=after)


def test_inverse_operations_restore_before_states_in_reverse() -> None:
    ops.number(applied := [
        _applied(ops.registry_set(RDP_TCP, "SecurityLayer", 2, 0), {"present": True, "type": "DWORD", "value": 0},
                 {"present": True, "type": "DWORD", "value": 2}),
        _applied(ops.registry_set(TS, "fNew", 1, None), {"present": False}, {"present": True, "type": "DWORD", "value": 1}),
        _applied(ops.service_control("TermService", "Stopped", "start"), {"state": "Stopped"}, {"state": "Running"}),
        _applied(ops.service_control("SessionEnv", "Running", "restart"), {"state": "Running"}, {"state": "Running"}),
        _applied(ops.firewall_rule("RemoteDesktop-UserMode-In-TCP", {"enabled": False}, enabled=True),
                 {"present": True, "enabled": False}, {"present": True, "enabled": True}),
        _applied(ops.registry_set(TS, "never", 1, None), {}, {}, status="not_run"),
    ])
    undo, cannot = rp.inverse_operations(applied)
    assert [(o["id"], o["kind"], o["set"]) for o in undo] == [
        ("op01", "firewall_rule", {"enabled": False}),
        ("op02", "service_control", {"action": "stop"}),
        ("op03", "registry_value", {"present": False}),
        ("op04", "registry_value", {"present": True, "type": "DWORD", "value": 0}),
    ]
    assert undo[3]["expect"] == {"present": True, "type": "DWORD", "value": 2}
    assert cannot == []
    assert not ops.plan_problems(undo)


def test_inverse_of_a_rename_renames_back_and_a_logoff_cannot_be_undone() -> None:
    rename = _applied(ops.path_rename("C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys", "MachineKeys.rdpdoctor-20261126T130000Z"),
                      {"present": True, "destination_present": False}, {"present": False, "destination_present": True})
    logoff = _applied(ops.session_logoff(3, "LAB\\bob", "Disconnected", None), {}, {})
    undo, cannot = rp.inverse_operations(ops.number([rename, logoff]))
    assert undo[0]["target"] == {"path": "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys.rdpdoctor-20261126T130000Z"}
    assert undo[0]["set"] == {"new_name": "MachineKeys"}
    assert cannot == [{"id": "op02", "kind": "session_logoff", "target": {"session_id": 3}}]


def _probe(**verdicts: str) -> dict:
    return {"steps": [{"step": step, "verdict": verdict} for step, verdict in verdicts.items()]}


def test_probe_regressions_name_steps_that_got_worse() -> None:
    before = _probe(dns="ok", tcp="ok", x224="ok", tls="fail", certificate="skipped", nla="skipped")
    assert rp.probe_regressions(before, _probe(dns="ok", tcp="ok", x224="ok", tls="ok", certificate="ok", nla="ok")) == []
    assert rp.probe_regressions(before, _probe(dns="ok", tcp="fail", x224="skipped", tls="skipped", certificate="skipped",
                                               nla="skipped")) == ["tcp: ok -> fail", "x224: ok -> skipped"]
    assert rp.probe_regressions(None, before) == []
    assert rp.probe_regressions(_probe(tcp="warn"), _probe(tcp="ok")) == []
