"""End to end: diagnose on hosts of issue 12, part A (licensing without Group Policy, the WTS listener state, the
protocol stack, PortNumber, a low MaxInstanceCount, port exhaustion, SelfSignedCertStore, inherited time limits), over
winrm and psrp.

One fleet, one playbook run per transport: each host gives exactly its findings, in one round trip; the host licensed
through Server Manager (grace counter 0, no licensing policy) gives none - the false critical of issue 12 - and the
facts say why; the evidence carries what the host script read.
"""

from __future__ import annotations

import subprocess
import typing as t
from pathlib import Path

import pytest

from tests.integration.fault_fleets import diagnose_exactly, expected_ids, fault_hosts, host_name, start_fleet
from tests.integration.test_diagnose_lab import finding

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

LISTENER_FAULTS = ("licensed_without_gpo", "license_server_unreachable", "licensing_x509_missing", "listener_down",
                   "protocol_stack_leftover", "port_number_missing", "instance_limit_low", "port_exhaustion",
                   "self_signed_store_moved", "cert_store_system_denied", "ephemeral_range_narrow",
                   "idle_limit_short", "session_limits_inherited")
#: With a cause of 0x904 on the same host: both stay.
COMBINED = {
    "l-down-expired": ("listener_down", "cert_expired"),
    "l-stack-fw-off": ("protocol_stack_leftover", "firewall_rdp_disabled"),
    "l-ls-unusable-cap": ("license_server_unreachable", "instance_limit_low"),
    "l-inherited-nla": ("session_limits_inherited", "nla_disabled"),
    "l-store-denied-expired": ("cert_store_system_denied", "cert_expired"),
    "l-narrow-exhausted": ("ephemeral_range_narrow", "port_exhaustion"),
}


def _name(fault: str) -> str:
    return host_name("l", fault)


HOSTS: dict[str, tuple[str, ...]] = fault_hosts("l", LISTENER_FAULTS, COMBINED)
EXPECTED: dict[str, set[str]] = expected_ids(HOSTS)


@pytest.fixture(scope="module")
def listener_lab(lab_fleet: t.Callable[..., t.Any], tmp_path_factory: pytest.TempPathFactory) -> t.Any:
    return start_fleet(lab_fleet, tmp_path_factory, "listener", HOSTS)


def _check_evidence(hosts: dict[str, dict[str, t.Any]]) -> None:
    """What the script read reaches the facts and the findings."""
    licensed = hosts[_name("licensed_without_gpo")]
    lic = licensed["facts"]["licensing"]
    assert licensed["findings"] == [] and licensed["probe"]["verdict"]["ok"]
    assert lic["grace_period_days"] == 0 and lic["license_servers"]["effective"] is None  # no licensing policy
    assert lic["license_server_list"] == ["ls01.contoso.com"] and lic["specified_license_servers"]["wmi"] == ["ls01.contoso.com"]
    assert lic["license_server_status"][0]["usable"] is True and lic["x509_certificate_present"] is True
    assert lic["rcm_licensing_mode"]["effective"] == 4

    unusable = finding(hosts[_name("license_server_unreachable")], "RDP-LICENSE-SERVER-UNUSABLE")
    assert (unusable["severity"], unusable["explains_0x904"]) == ("critical", True)
    assert unusable["evidence"]["license_server_status"][0]["status_name"] == "not connectable"
    assert finding(hosts[_name("licensing_x509_missing")], "RDP-LICENSING-X509-MISSING")["evidence"]["values"] == {
        "X509 Certificate": None, "X509 Certificate ID": None, "X509 Certificate2": None}

    down = hosts[_name("listener_down")]
    assert down["facts"]["listener"]["wts_state"] == "Down" and not down["probe"]["verdict"]["ok"]
    assert finding(down, "RDP-LISTENER-DOWN")["fix"] == {"module": "rdp.doctor.services", "params": {"termservice": {"state": "restarted"}}}
    assert finding(down, "RDP-LISTENER-DOWN")["evidence"]["termservice_running"] is True
    stack = finding(hosts[_name("protocol_stack_leftover")], "RDP-PROTOCOL-STACK-FOREIGN")
    assert stack["evidence"]["CitrixBackupRdpTcpLoadableProtocolObject"] == "{5828227c-20cf-4408-b73f-73ab70b8849f}"
    assert "manual" in finding(hosts[_name("protocol_stack_leftover")], "RDP-LISTENER-DOWN")["fix"]

    missing = hosts[_name("port_number_missing")]
    assert missing["facts"]["listener"]["port_missing"] is True and missing["facts"]["listener"]["port"]["source"] == "default"
    assert finding(hosts[_name("instance_limit_low")], "RDP-INSTANCE-LIMIT-LOW")["fix"] == {
        "module": "rdp.doctor.session_limits", "params": {"max_instance_count": 4294967295}}
    exhaustion = finding(hosts[_name("port_exhaustion")], "RDP-PORT-EXHAUSTION")
    assert {(e["id"], e["count"]) for e in exhaustion["evidence"]["events"]} == {(4231, 3), (4227, 1)}
    assert finding(hosts[_name("self_signed_store_moved")], "RDP-SELF-SIGNED-STORE-MOVED")["evidence"]["local"] == "My"

    denied = finding(hosts[_name("cert_store_system_denied")], "RDP-CERT-STORE-ACL-DENY")
    assert denied["evidence"]["keys"]["Remote Desktop"]["deny_aces"] == [{"sid": "S-1-5-18", "rights": "KA", "flags": "CI"}]
    assert [e["id"] for e in denied["evidence"]["events"]] == [1057]

    narrow = finding(hosts["l-narrow-exhausted"], "RDP-EPHEMERAL-RANGE-NARROW")
    assert (narrow["evidence"]["start"], narrow["evidence"]["count"]) == (60000, 1000)
    assert finding(hosts["l-narrow-exhausted"], "RDP-PORT-EXHAUSTION")["evidence"]["dynamic_port_ranges"][0]["count"] == 1000

    idle = finding(hosts[_name("idle_limit_short")], "RDP-SESSION-TIME-LIMIT-SHORT")
    assert idle["evidence"]["max_idle_time"]["effective"] == 60000 and idle["evidence"]["logs_off"] is True
    assert idle["fix"] == {"module": "rdp.doctor.session_limits", "params": {"max_idle_time": 900000}}

    ghosts = finding(hosts[_name("session_limits_inherited")], "RDP-GHOST-SESSIONS")
    assert (ghosts["evidence"]["source"], ghosts["evidence"]["ignored_local"]) == ("user", 3600000)
    assert hosts[_name("session_limits_inherited")]["facts"]["session_limits"]["inherit_max_disconnection_time"]["local"] == 1


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_diagnose_listener_and_licensing_faults(listener_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path,
                                                connection: str) -> None:
    """Every host is read in one round trip and gives exactly its findings, with the evidence the script read."""
    result = diagnose_exactly(listener_lab, run_playbook, connection, tmp_path, EXPECTED)
    _check_evidence(result.hosts)
