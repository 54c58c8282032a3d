"""The apply_rdp_changes twin changes the lab model as the script changes Windows, and is as unforgiving.

Drift leaves the model untouched; a failing operation rolls back the applied ones; a Disabled service does not
start; a PortNumber change waits for a TermService restart; Schannel and CredSSP values wait for a reboot; a
removed self-signed certificate comes back (new thumbprint, event 1056) when SessionEnv restarts; revert tasks
fire when lab time reaches their deadline; only rdp.doctor-* firewall rules are created.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from tests.lab import behaviour, faults
from tests.lab import model as m
from tests.lab.server import change_model, model_snapshot
from tests.lab.twins import apply_rdp_changes as twin

NOW = dt.datetime.now(dt.timezone.utc)


def host(*fault_names: str) -> m.Host:
    return faults.build_host("win01", "127.0.0.9", list(fault_names), now=NOW)


def reg(path: str, name: str, value: t.Any, current: t.Any, value_type: str = "DWORD") -> dict[str, t.Any]:
    return {"id": "", "kind": "registry_value", "target": {"path": path, "name": name},
            "expect": {"present": False} if current is None else {"present": True, "type": value_type, "value": current},
            "set": {"present": True, "type": value_type, "value": value}, "reversible": True, "why": ""}


def svc(name: str, state: str, action: str) -> dict[str, t.Any]:
    return {"id": "", "kind": "service_control", "target": {"name": name}, "expect": {"state": state}, "set": {"action": action},
            "reversible": True, "why": ""}


def apply(target: m.Host, *ops: dict[str, t.Any]) -> dict[str, t.Any]:
    for index, op in enumerate(ops, start=1):
        op["id"] = f"op{index:02d}"
    return twin.run(target, {"operations": list(ops), "run_id": "test-run"})


def test_applies_in_order_and_rereads_every_target() -> None:
    target = host("security_layer_rdp", "nla_disabled")
    result = apply(target, reg(m.RDP_TCP, "SecurityLayer", 2, 0), reg(m.RDP_TCP, "UserAuthentication", 1, 0))
    assert result["outcome"] == "applied" and result["drift"] == []
    assert [op["status"] for op in result["operations"]] == ["applied", "applied"]
    assert result["operations"][0]["before"] == {"present": True, "type": "DWORD", "value": 0}
    assert result["operations"][0]["after"] == {"present": True, "type": "DWORD", "value": 2}
    listener = behaviour.listener_behaviour(target, NOW)
    assert listener.security_layer == 2 and listener.nla_required  # new connections see it at once


def test_drift_writes_nothing_and_names_what_differs() -> None:
    target = host("security_layer_rdp")
    before = model_snapshot(target)
    result = apply(target, reg(m.RDP_TCP, "UserAuthentication", 1, 0), reg(m.RDP_TCP, "SecurityLayer", 2, 1))
    assert result["outcome"] == "drift"
    assert [d["id"] for d in result["drift"]] == ["op01", "op02"]
    assert result["drift"][1] == {"id": "op02", "expected": {"present": True, "type": "DWORD", "value": 1},
                                  "actual": {"present": True, "type": "DWORD", "value": 0}}
    assert all(op["status"] == "not_run" for op in result["operations"])
    assert model_snapshot(target) == before


def test_the_fault_hook_fails_the_nth_operation_and_everything_before_is_rolled_back() -> None:
    target = host("security_layer_rdp", "nla_disabled")
    before = model_snapshot(target)["registry"]
    change_model(target, "apply_hooks", {"fail_apply_at": 2})
    result = apply(target, reg(m.RDP_TCP, "SecurityLayer", 2, 0), reg(m.RDP_TCP, "UserAuthentication", 1, 0))
    assert result["outcome"] == "rolled_back"
    assert [op["status"] for op in result["operations"]] == ["rolled_back", "failed"]
    assert "apply_fail_at" in result["operations"][1]["error"]["message"]
    assert model_snapshot(target)["registry"] == before
    again = apply(target, reg(m.RDP_TCP, "SecurityLayer", 2, 0), reg(m.RDP_TCP, "UserAuthentication", 1, 0))
    assert again["outcome"] == "applied"  # the hook fires once: a re-run converges


def test_a_disabled_service_does_not_start_and_the_earlier_write_is_undone() -> None:
    target = host("termservice_disabled")
    result = apply(target, reg(m.RDP_TCP, "SecurityLayer", 1, 2), svc("TermService", "Stopped", "start"))
    assert result["outcome"] == "rolled_back"
    assert "1058" in result["operations"][1]["error"]["message"]
    assert target.registry.get(m.RDP_TCP, "SecurityLayer") == 2


def test_a_port_change_takes_effect_only_when_termservice_restarts() -> None:
    target = host()
    apply(target, reg(m.RDP_TCP, "PortNumber", 3390, 3389))
    assert m.listener_port(target) == 3389 and behaviour.listener_behaviour(target, NOW).port == 3389
    apply(target, svc("TermService", "Running", "restart"))
    assert m.listener_port(target) == 3390 and target.bound_port is None
    assert target.services["UmRdpService"].state == "Running"  # the dependent came back


def test_schannel_values_wait_for_a_reboot() -> None:
    target = host("tls12_disabled")
    path = m.schannel_key("TLS 1.2")
    result = apply(target, reg(path, "Enabled", 1, 0), reg(path, "DisabledByDefault", 0, 1))
    assert result["operations"][0]["after"]["value"] == 1
    assert "TLSv1.2" not in behaviour.tls_versions(target) and target.reboot_pending
    change_model(target, "reboot", {})
    assert "TLSv1.2" in behaviour.tls_versions(target) and not target.reboot_pending


def test_a_removed_self_signed_certificate_is_regenerated_when_sessionenv_restarts() -> None:
    target = host("cert_expired")
    old = target.self_signed_entry()
    assert old is not None
    op = {"id": "", "kind": "certificate", "target": {"store": m.RDS_STORE, "thumbprint": old.thumbprint}, "expect": {"present": True},
          "set": {"present": False}, "reversible": True, "why": ""}
    result = apply(target, op, svc("SessionEnv", "Running", "restart"))
    assert result["outcome"] == "applied"
    new = target.self_signed_entry()
    assert new is not None and new.thumbprint != old.thumbprint and new.not_after > NOW
    assert any(e.event_id == 1056 for e in target.events)


def test_only_owned_rules_are_created_and_a_rule_is_found_by_name() -> None:
    target = host("firewall_rdp_disabled")
    foreign = {"id": "", "kind": "firewall_rule_owned", "target": {"name": "RemoteDesktop-UserMode-In-TCP"}, "expect": {"present": True},
               "set": {"present": False}, "reversible": True, "why": ""}
    assert apply(target, foreign)["operations"][0]["status"] == "failed"
    enable = {"id": "", "kind": "firewall_rule", "target": {"name": "RemoteDesktop-UserMode-In-TCP"},
              "expect": {"present": True, "enabled": False}, "set": {"enabled": True}, "reversible": True, "why": ""}
    owned = {"id": "", "kind": "firewall_rule_owned", "target": {"name": "rdp.doctor-RemoteDesktop-Custom-TCP"}, "expect": {"present": False},
             "set": {"present": True, "display_name": "RDP custom", "protocol": "TCP", "local_ports": ["3390"],
                     "profiles": ["Domain", "Private", "Public"], "remote_addresses": ["Any"], "service": "termservice"},
             "reversible": True, "why": ""}
    result = apply(target, enable, owned)
    assert result["outcome"] == "applied"
    assert result["operations"][1]["after"]["local_ports"] == ["3390"]
    assert any(r.name == "rdp.doctor-RemoteDesktop-Custom-TCP" and r.covers_port(3390) for r in target.firewall_rules)


def test_a_revert_task_restores_the_values_at_its_deadline_and_deletes_itself() -> None:
    target = host()
    restore = [dict(reg(m.RDP_TCP, "UserAuthentication", 1, 0), id="op01")]
    task = {"id": "", "kind": "revert_task", "target": {"name": "rdp.doctor-revert-test"}, "expect": {"present": False},
            "set": {"run_at_utc": (NOW + dt.timedelta(minutes=30)).strftime("%Y-%m-%dT%H:%M:%SZ"), "restore": restore},
            "reversible": True, "why": ""}
    result = apply(target, reg(m.RDP_TCP, "UserAuthentication", 0, 1), task)
    assert result["outcome"] == "applied" and result["operations"][1]["after"]["present"] is True
    assert change_model(target, "run_due_tasks", {"advance_seconds": 60})["ran"] == []
    assert target.registry.get(m.RDP_TCP, "UserAuthentication") == 0
    ran = change_model(target, "run_due_tasks", {"advance_seconds": 3600})["ran"]
    assert ran == [{"task": "rdp.doctor-revert-test", "results": [{"id": "op01", "status": "applied", "error": None}]}]
    assert target.registry.get(m.RDP_TCP, "UserAuthentication") == 1 and target.revert_tasks == []


def test_key_acl_grant_makes_the_key_readable_and_undo_restores_the_sddl() -> None:
    target = host("cert_key_unreadable")
    entry = target.self_signed_entry()
    assert entry is not None and not entry.key_readable_by_network_service
    sddl = target.machinekeys.files[entry.key_file].sddl
    op = {"id": "", "kind": "key_acl", "target": {"store": m.RDS_STORE, "thumbprint": entry.thumbprint}, "expect": {"sddl": sddl},
          "set": {"grant": [{"sid": m.SID_NETWORK_SERVICE, "rights": "Read"}]}, "reversible": True, "why": ""}
    result = apply(target, op)
    assert result["operations"][0]["after"]["grant"] == [{"sid": "S-1-5-20", "rights": "Read"}]
    assert entry.key_readable_by_network_service
    assert behaviour.listener_behaviour(target, NOW).private_key_pem is not None


@pytest.mark.parametrize("fault", ["rdp_disabled", "listener_disabled", "nla_disabled"])
def test_drift_for_a_target_that_cannot_be_read(fault: str) -> None:
    target = host(fault)
    result = apply(target, svc("NoSuchService", "Running", "restart"))
    assert result["outcome"] == "drift" and "error" in result["drift"][0]["actual"]


def test_a_dependent_does_not_start_when_termservice_is_disabled() -> None:
    target = host("termservice_disabled")
    target.services["UmRdpService"].state = "Stopped"
    result = apply(target, svc("UmRdpService", "Stopped", "start"))
    assert result["outcome"] == "rolled_back" and "1068" in result["operations"][0]["error"]["message"]


def test_path_acl_writes_the_dacl_only_and_verifies() -> None:
    from ansible_collections.rdp.doctor.plugins.module_utils import remediation

    target = host("machinekeys_acl_broken")
    target.machinekeys.sddl = "O:BAG:SYD:PAI(A;;FA;;;BA)"  # an administrator took ownership
    op = remediation.number([remediation.path_acl(m.MACHINEKEYS_PATH, m.MACHINEKEYS_DEFAULT_SDDL, target.machinekeys.sddl)])[0]
    result = twin.run(target, {"operations": [op], "run_id": "t"})
    assert result["outcome"] == "applied"
    assert target.machinekeys.sddl == "O:BAG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"
    assert remediation.verify_problems(op, result["operations"][0]["after"]) == []
    assert m.machinekeys_acl_ok(target.machinekeys.sddl)


def restart_op(delay: int, last_boot: str | None) -> dict[str, t.Any]:
    return {"id": "", "kind": "host_restart", "target": {}, "expect": {} if last_boot is None else {"last_boot_utc": last_boot},
            "set": {"delay_seconds": delay}, "reversible": True, "why": ""}


def boot_text(target: m.Host) -> str:
    return target.booted_at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_host_restart_schedules_a_restart_that_applies_boot_time_values_and_takes_winrm_down() -> None:
    target = host("tls12_disabled")
    path = m.schannel_key("TLS 1.2")
    old_boot = boot_text(target)
    result = apply(target, reg(path, "Enabled", 1, 0), reg(path, "DisabledByDefault", 0, 1), restart_op(5, old_boot))
    assert result["outcome"] == "applied"
    restart = result["operations"][2]
    assert restart["before"] == {"scheduled": False, "last_boot_utc": old_boot}
    assert restart["after"] == {"scheduled": True, "last_boot_utc": old_boot}  # Windows has not restarted yet
    assert target.restart_at is not None and target.reboot_pending
    restart_at = target.restart_at
    assert not target.restart_if_due(restart_at - dt.timedelta(seconds=1)) and target.reboot_pending
    assert not target.winrm_down(restart_at - dt.timedelta(seconds=1))
    assert target.restart_if_due(restart_at)
    assert target.booted_at == restart_at and target.restart_at is None and not target.reboot_pending
    assert "TLSv1.2" in behaviour.tls_versions(target)
    assert target.winrm_down(restart_at + dt.timedelta(seconds=m.RESTART_DOWN_SECONDS - 0.5))
    assert not target.winrm_down(restart_at + dt.timedelta(seconds=m.RESTART_DOWN_SECONDS))
    assert not target.restart_if_due(restart_at + dt.timedelta(seconds=60))  # once


def test_host_restart_is_cancelled_when_a_later_operation_fails() -> None:
    # plan_problems keeps a restart last; the twin still undoes it as shutdown.exe /a does, should anything follow it
    target = host("nla_disabled")
    target.apply_fail_at = 2
    result = apply(target, restart_op(30, boot_text(target)), reg(m.RDP_TCP, "UserAuthentication", 1, 0))
    assert result["outcome"] == "rolled_back"
    assert result["operations"][0]["status"] == "rolled_back" and result["operations"][0]["after"]["scheduled"] is False
    assert target.restart_at is None
    with pytest.raises(twin.OperationError, match="1116"):  # nothing pending to abort
        twin.undo_host_restart(target, restart_op(30, None), {}, None)


def test_host_restart_drift_and_bad_delays_schedule_nothing() -> None:
    target = host()
    drift = apply(target, restart_op(10, "2020-01-01T00:00:00Z"))
    assert drift["outcome"] == "drift" and drift["drift"][0]["actual"] == {"last_boot_utc": boot_text(target)}
    failed = apply(target, restart_op(4, None))
    assert failed["outcome"] == "rolled_back" and failed["operations"][0]["status"] == "failed"
    assert "delay_seconds" in failed["operations"][0]["error"]["message"]
    assert target.restart_at is None


def test_read_rdp_state_reports_the_last_boot() -> None:
    from tests.lab.twins import read_rdp_state  # pylint: disable=import-outside-toplevel

    target = host()
    assert read_rdp_state.read_os(target, None)["last_boot_utc"] == boot_text(target)
    change_model(target, "reboot", {})
    assert read_rdp_state.read_os(target, None)["last_boot_utc"] == boot_text(target)
    assert target.booted_at > NOW
