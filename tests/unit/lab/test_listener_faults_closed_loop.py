"""Issue 12, part A, closed loop in-process: the module fix a new finding proposes, planned on the lab's facts and applied
by the apply_rdp_changes twin, clears the finding on the next read - and where Windows would not let it, the lab does
not either (a Deny for SYSTEM on the Remote Desktop store keeps SessionEnv from making a certificate; a leftover
protocol stack keeps the listener Down after a restart)."""

from __future__ import annotations

import importlib
import typing as t

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan as rp
from tests.lab import behaviour
from tests.lab import model as m
from tests.lab.twins import apply_rdp_changes
from tests.unit.plugins.module_utils.planners import lab_facts as lf


def _ids(host: m.Host) -> set[str]:
    """Finding ids of the host read now; the lab facts are judged at lf.NOW, not the read's wall clock: no clock skew."""
    return {f["id"] for f in fd.evaluate(lf.facts_of_host(host))} - {"RDP-CLOCK-SKEW"}


def _apply_fixes(host: m.Host, finding_id: str) -> dict[str, t.Any]:
    """Plan the fix of ``finding_id`` with its module's defaults and apply it with the twin; the twin's result."""
    facts = lf.facts_of_host(host)
    found = next(f for f in fd.evaluate(facts) if f["id"] == finding_id)
    fixes, manual = rp.fixes_from_findings([found])
    assert manual == [] and len(fixes) == 1, found["fix"]
    module_name, params = next(iter(fixes.items()))
    module = importlib.import_module(f"ansible_collections.rdp.doctor.plugins.module_utils.planners.{module_name}")
    options = {name: spec.get("default") for name, spec in module.ARGUMENT_SPEC.items()}
    options.update(params)
    plan = module.plan(facts, options)
    assert not plan.refused and plan.operations, plan.to_dict()
    return apply_rdp_changes.run(host, {"operations": plan.operations, "run_id": "closed-loop"})


@pytest.mark.parametrize("fault, finding_id", [
    ("listener_down", "RDP-LISTENER-DOWN"),
    ("instance_limit_low", "RDP-INSTANCE-LIMIT-LOW"),
    ("idle_limit_short", "RDP-SESSION-TIME-LIMIT-SHORT"),
    ("session_limits_inherited", "RDP-GHOST-SESSIONS"),
])
def test_module_fix_clears_the_finding(fault: str, finding_id: str) -> None:
    host = lf.host_of(fault)
    assert finding_id in _ids(host)
    result = _apply_fixes(host, finding_id)
    assert result["outcome"] == "applied", result
    assert finding_id not in _ids(host)


def test_restarting_termservice_brings_the_listener_back() -> None:
    host = lf.host_of("listener_down")
    assert not behaviour.listener_behaviour(host, lf.NOW).listening
    _apply_fixes(host, "RDP-LISTENER-DOWN")
    assert behaviour.listener_behaviour(host, lf.NOW).listening
    assert lf.facts_of_host(host)["listener"]["wts_state"] == "Listen" and _ids(host) == set()


def test_inherited_limit_fix_writes_the_inherit_flag() -> None:
    """The ghost-session fix on a host whose RDP-Tcp limit Windows ignored turns fInheritMaxDisconnectionTime to 0."""
    host = lf.host_of("session_limits_inherited")
    _apply_fixes(host, "RDP-GHOST-SESSIONS")
    assert host.reg_get(m.RDP_TCP, "fInheritMaxDisconnectionTime") == 0
    limit = lf.facts_of_host(host)["session_limits"]["max_disconnection_time"]
    assert (limit["source"], limit["effective"]) == ("local", 8 * 3600 * 1000)


def test_leftover_stack_stays_down_after_a_restart() -> None:
    host = lf.host_of("protocol_stack_leftover")
    host.restart_service(m.TERMSERVICE, lf.NOW)
    assert {"RDP-LISTENER-DOWN", "RDP-PROTOCOL-STACK-FOREIGN"} <= _ids(host)
    host.reg_set(m.RDP_TCP, "LoadableProtocol_Object", m.RDP_PROTOCOL_OBJECT)  # the manual fix
    host.reg_delete(m.RDP_TCP, "CitrixBackupRdpTcpLoadableProtocolObject")
    assert _ids(host) == set() and behaviour.listener_behaviour(host, lf.NOW).listening


def test_a_system_deny_on_the_store_blocks_certificate_renewal() -> None:
    """With the store denying SYSTEM an expired self-signed certificate is not renewed when SessionEnv restarts (1058)."""
    host = lf.host_of("cert_store_system_denied", "cert_expired")
    before = host.self_signed_entry()
    host.restart_service(m.SESSIONENV, lf.NOW)
    assert host.self_signed_entry() is before and {"RDP-CERT-EXPIRED", "RDP-CERT-STORE-ACL-DENY"} <= _ids(host)
    host.key_sddl[m.RDS_STORE_KEY] = m.DEFAULT_KEY_SDDL[m.RDS_STORE_KEY]  # the manual fix
    host.restart_service(m.SESSIONENV, lf.NOW)
    assert host.self_signed_entry() is not before and "RDP-CERT-EXPIRED" not in _ids(host)
