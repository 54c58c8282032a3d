"""End to end: diagnose judges what TLS and a logon need (issue 12 part B), over winrm and psrp.

One fleet, one playbook run per transport: the cipher-suite policy and the SCHANNEL algorithm keys (no suite a modern
client offers: the lab listener then fails every TLS handshake, as Schannel does), Schannel events as triggers, the
listener's ACL, group-level logon rights, the domain secure channel, Netlogon, incoming NTLM, and the host's record of
clients reaching the listener (a path block the probe meets while other clients arrive; clients that arrive and fail to
log on). Each host gives exactly its ids, in one round trip; the healthy host's new facts say healthy.
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

SECURITY_FAULTS = ("tls_cipher_policy_no_common", "schannel_aes_disabled", "schannel_handshake_errors", "listener_acl_broken",
                   "logon_right_groups_denied", "netlogon_stopped", "ntlm_incoming_denied", "path_blocked_clients_arrive",
                   "clients_fail_logon")
#: The new findings next to a cause of the first release on the same host, and Schannel events another finding explains.
COMBINED = {
    "s-cipher-nla": ("tls_cipher_policy_no_common", "nla_disabled"),
    "s-alerts-key": ("schannel_handshake_errors", "cert_key_unreadable"),  # 36870 + 36888 are the key finding's: no SCHANNEL-ERRORS
    "s-acl-disabled": ("listener_acl_broken", "account_disabled"),
}
HEALTHY = "s-healthy"


def _name(fault: str) -> str:
    return host_name("s", fault)


HOSTS: dict[str, tuple[str, ...]] = fault_hosts("s", SECURITY_FAULTS, COMBINED, {HEALTHY: ()})
EXPECTED: dict[str, set[str]] = expected_ids(HOSTS)
EXPECTED["s-alerts-key"] = {"RDP-CERT-KEY-UNREADABLE"}  # the key finding explains the Schannel events: no second finding


@pytest.fixture(scope="module")
def security_lab(lab_fleet: t.Callable[..., t.Any], tmp_path_factory: pytest.TempPathFactory) -> t.Any:
    """One host per fault, the combinations and a healthy host (Server 2022)."""
    return start_fleet(lab_fleet, tmp_path_factory, "security", HOSTS)


def _check_healthy(diagnosis: dict[str, t.Any]) -> None:
    """The healthy host: no finding, and each new fact says healthy (not unknown)."""
    facts = diagnosis["facts"]
    assert diagnosis["findings"] == [] and diagnosis["probe"]["verdict"]["ok"]
    suites = facts["tls_cipher_suites"]
    assert suites["modern_client_compatible"] is True and suites["source"] == "default"
    assert "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" in suites["usable_modern_suites"]
    assert facts["listener_acl"]["ok"] is True and "S-1-5-32-555" in facts["listener_acl"]["logon_allowed"]
    assert facts["logon_rights"]["ok"] is True
    assert facts["domain"] == {"read": True, "member": False, "domain": "WORKGROUP", "secure_channel_ok": None}
    assert facts["logon_services"]["services"]["LSM"]["running"] is True and facts["ntlm"]["incoming_denied"] is None
    assert facts["connections"]["read"] is True and facts["connections"]["clients_reached_listener"] is False


def _check_evidence(hosts: dict[str, dict[str, t.Any]]) -> None:
    """What each finding names: the policy, the algorithm keys, the events, the groups, the services."""
    policy = hosts[_name("tls_cipher_policy_no_common")]
    cipher = finding(policy, "RDP-TLS-NO-COMMON-CIPHER")
    assert cipher["evidence"]["source"] == "policy" and cipher["evidence"]["policy_name"].endswith("SSL Cipher Suite Order")
    assert cipher["evidence"]["configured_suites"] == ["TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"]
    assert any(e["id"] == 36874 for e in cipher["evidence"]["events"]) and "manual" in cipher["fix"]
    # the client's eye agrees: negotiation answers, the TLS handshake fails
    assert policy["probe"]["verdict"]["failed_step"] == "tls", policy["probe"]["verdict"]
    aes = finding(hosts[_name("schannel_aes_disabled")], "RDP-TLS-NO-COMMON-CIPHER")
    assert aes["evidence"]["source"] == "default"
    assert aes["evidence"]["disabled_algorithms"] == {"Ciphers": ["AES 128/128", "AES 256/256"]}
    assert "SCHANNEL\\Ciphers\\AES 256/256" in aes["fix"]["manual"]
    alerts = finding(hosts[_name("schannel_handshake_errors")], "RDP-TLS-SCHANNEL-ERRORS")
    assert alerts["severity"] == "medium" and [e["id"] for e in alerts["evidence"]["events"]] == [36888]
    assert alerts["evidence"]["events"][0]["count"] == 4 and alerts["evidence"]["every_client_fails"] is False
    acl = finding(hosts[_name("listener_acl_broken")], "RDP-LISTENER-ACL-DENIES")
    assert acl["evidence"]["groups_without_logon"] == ["Administrators", "Remote Desktop Users"]
    rights = finding(hosts[_name("logon_right_groups_denied")], "RDP-LOGON-RIGHT-GROUPS")
    assert rights["evidence"]["groups_denied"] == ["Remote Desktop Users"] and rights["severity"] == "high"
    netlogon = finding(hosts[_name("netlogon_stopped")], "RDP-LOGON-SERVICE-STOPPED")
    assert list(netlogon["evidence"]["stopped"]) == ["Netlogon"] and netlogon["evidence"]["domain_member"] is True
    assert hosts[_name("netlogon_stopped")]["facts"]["domain"]["secure_channel_ok"] is True
    ntlm = finding(hosts[_name("ntlm_incoming_denied")], "RDP-NTLM-INCOMING-DENIED")
    assert ntlm["evidence"]["RestrictReceivingNTLMTraffic"] == 2 and ntlm["evidence"]["meaning"] == "deny all accounts"
    # the probe is refused on its path while the host's logs show clients arriving: a path problem, said so
    path = hosts[_name("path_blocked_clients_arrive")]
    blocked = finding(path, "RDP-PATH-BLOCKED")
    assert blocked["evidence"]["probe"]["failure"] == "refused" and blocked["evidence"]["host_listening"] is True
    assert blocked["evidence"]["host_connections"]["clients_reached_listener"] is True
    assert blocked["evidence"]["host_connections"]["authenticated"] == 4
    assert blocked["fix"]["manual"].startswith("Other clients reach the listener")
    logons = finding(hosts[_name("clients_fail_logon")], "RDP-CLIENTS-FAIL-LOGON")
    assert (logons["evidence"]["received"], logons["evidence"]["bad_credentials"], logons["evidence"]["authenticated"]) == (4, 4, 0)
    assert hosts[_name("clients_fail_logon")]["probe"]["verdict"]["ok"]  # path and listener fine: the logons fail


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_diagnose_judges_tls_and_logon_prerequisites(security_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path,
                                                     connection: str) -> None:
    """Every host gives exactly its ids in one round trip; evidence and the healthy host's facts as above."""
    result = diagnose_exactly(security_lab, run_playbook, connection, tmp_path, EXPECTED)
    _check_healthy(result.hosts[HEALTHY])
    _check_evidence(result.hosts)
