"""remediation_record / remediation_summary: every outcome of remediate_host gets one state and honest lines."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.filter.remediation_record import remediation_record
from ansible_collections.rdp.doctor.plugins.filter.remediation_summary import remediation_summary

OK = {"state": "ok", "msg": ""}
OPERATION = {"id": "op01", "kind": "registry_value", "status": "applied", "why": "NLA required (UserAuthentication=1)"}


@pytest.mark.parametrize("result, host_state, state", [
    ({"changed": False, "outcome": "compliant"}, OK, "compliant"),
    ({"changed": False, "outcome": "compliant", "manual": [{"id": "RDP-GPO-OVERRIDE", "manual": "Fix the GPO"}]}, OK, "manual_only"),
    ({"changed": True, "outcome": "check_mode", "operations": [dict(OPERATION, status=None)]}, OK, "would_change"),
    ({"changed": False, "outcome": "check_mode", "operations": []}, OK, "compliant"),
    ({"changed": True, "outcome": "applied", "operations": [OPERATION]}, OK, "changed"),
    ({"failed": True, "outcome": "refused", "refused": ["nla=false needs allow_insecure"]}, OK, "refused"),
    ({"failed": True, "changed": True, "outcome": "rolled_back", "regressions": ["tcp: ok -> fail"]}, OK, "rolled_back"),
    ({"failed": True, "outcome": "partial", "msg": "op02 is still applied"}, OK, "failed"),
    ({"skipped": True}, OK, "skipped"),
    ({"skipped": True}, {"state": "unreachable", "msg": "timed out"}, "unreachable"),
    ({}, {"state": "failed", "msg": "script failed"}, "failed"),
])
def test_every_outcome_has_one_state(result: dict, host_state: dict, state: str) -> None:
    assert remediation_record(result, host_state)["state"] == state


def test_summary_lines_name_operations_manual_steps_what_is_left_and_the_reboot() -> None:
    record = remediation_record({"changed": True, "outcome": "applied", "operations": [OPERATION], "reboot_required": True,
                                 "manual": [{"id": "RDP-LICENSING-GRACE-EXPIRED", "manual": "Install a license server."}],
                                 "remaining": ["RDP-TLS12-DISABLED"], "warnings": ["a GPO refresh may revert it"]}, OK)
    assert remediation_summary(record) == [
        "changed: 1 operation(s) applied and verified",
        "       applied registry_value NLA required (UserAuthentication=1)",
        "  manual RDP-LICENSING-GRACE-EXPIRED: Install a license server.",
        "  still present after the change: RDP-TLS12-DISABLED",
        "  a reboot is required for the change to take effect",
        "  warning: a GPO refresh may revert it",
    ]


def test_summary_of_a_failed_read_says_why_and_never_compliant() -> None:
    lines = remediation_summary(remediation_record({"skipped": True}, {"state": "unreachable", "msg": "connection refused"}))
    assert lines == ["UNREACHABLE: connection refused"]


def test_rolled_back_summary_names_the_regression() -> None:
    lines = remediation_summary(remediation_record({"failed": True, "outcome": "rolled_back", "regressions": ["tcp: ok -> fail"],
                                                    "msg": "rolled back"}, OK))
    assert lines[0].startswith("ROLLED BACK") and "  regression: tcp: ok -> fail" in lines


def test_a_rebooted_host_says_rebooted_not_that_a_reboot_is_required() -> None:
    restart = {"id": "op02", "kind": "host_restart", "status": "applied", "why": "restart Windows"}
    record = remediation_record({"changed": True, "outcome": "applied", "operations": [OPERATION, restart], "reboot_required": False,
                                 "rebooted": True, "reboot_seconds": 42}, OK)
    assert record["rebooted"] is True and record["reboot_seconds"] == 42
    lines = remediation_summary(record)
    assert "  rebooted: the host restarted for the change to take effect (back after 42 s)" in lines
    assert not any("a reboot is required" in line for line in lines)
    assert remediation_record({"changed": True, "outcome": "applied", "reboot_required": True}, OK)["rebooted"] is False
