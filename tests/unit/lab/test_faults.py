"""Lab faults: exactly the contract's list, each changes what it should (with its events), and they combine."""

from __future__ import annotations

import datetime as dt
from typing import Callable

import pytest

from tests.lab import certs
from tests.lab.behaviour import listener_entry
from tests.lab.faults import (
    CIPHER_POLICY, FAULTS, MSV1_0, SCHANNEL_CIPHERS, FaultError, apply_faults, build_host, os_version_for, validate_faults,
)
from tests.lab.model import (
    CREDSSP, FIPS, FW_GPO_DOMAIN, FW_GPO_STANDARD, POL, RDP_FIREWALL_GROUP, RDP_TCP, RIGHT_DENY_RDP, SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS,
    TERMSERVICE, TS, Host, machinekeys_acl_ok, schannel_key, version_tuple,
)
from tests.lab.model import LS_NOT_CONNECTABLE, RCM, TERMSERVICE_LICENSE_SERVERS, WINSTATIONS, protocol_stack_loads, store_denies_system

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)

# contracts section 8, in its order
CONTRACT_FAULTS = [
    "rdp_disabled", "gpo_denies_connections", "listener_disabled", "termservice_stopped", "termservice_disabled",
    "port_conflict", "port_moved", "firewall_rdp_disabled", "firewall_gpo_blocks", "dns_mismatch", "cert_expired",
    "cert_wrong_name", "cert_key_unreadable", "cert_bound_missing", "machinekeys_acl_broken", "listener_key_missing",
    "credssp_server_unpatched", "credssp_force_updated", "credssp_vulnerable", "security_layer_rdp",
    "gpo_overrides_security_layer", "nla_disabled", "fips_encryption", "tls12_disabled", "all_tls_disabled",
    "session_limit_reached", "ghost_sessions", "licensing_grace_expired", "account_disabled", "account_locked_out",
    "account_denied_rdp", "account_not_in_rdu",
]
# Host states a read must survive (issue 7), after the causes in the contract's table.
READ_FAULTS = [
    "firewall_service_stopped", "event_unformattable", "wmi_terminalservices_broken", "wts_unavailable", "key_not_openable_by_admin",
    "netfx_45_only",
    "accounts_domain_unreachable", "accounts_nested_group", "firewall_rule_program_filtered", "firewall_rule_address_filtered",
    "firewall_allow_any_port",
]
# Issue 12 part B: TLS cipher suites, Schannel events, listener ACL, logon rights by group, logon prerequisites, connections.
SECURITY_FAULTS = [
    "tls_cipher_policy_no_common", "schannel_aes_disabled", "schannel_handshake_errors", "listener_acl_broken",
    "logon_right_groups_denied", "netlogon_stopped", "ntlm_incoming_denied", "path_blocked_clients_arrive", "clients_fail_logon",
]
CAUSE_FAULTS = list(CONTRACT_FAULTS)
CONTRACT_FAULTS += READ_FAULTS + SECURITY_FAULTS
# Issue 12, part A: licensing without Group Policy, listener state and stack, port, caps, port exhaustion.
LISTENER_FAULTS = [
    "licensed_without_gpo", "license_server_unreachable", "licensing_x509_missing", "listener_down", "protocol_stack_leftover",
    "port_number_missing", "instance_limit_low", "port_exhaustion", "self_signed_store_moved", "cert_store_system_denied",
    "ephemeral_range_narrow", "idle_limit_short", "session_limits_inherited",
]
CONTRACT_FAULTS += LISTENER_FAULTS


def _rdpuser(host: Host):
    account = host.find_account("rdpuser")
    assert account is not None
    return account


def _rdp_rules(host: Host):
    return [r for r in host.firewall_rules if r.group == RDP_FIREWALL_GROUP]


def _listener_or_self_signed(host: Host):
    return listener_entry(host) or host.self_signed_entry()


def _cn(host: Host) -> str:
    return certs.cert_names(host.self_signed_entry().cert)[0]


def _event_ids(host: Host, provider_part: str) -> set[int]:
    return {e.event_id for e in host.events if provider_part in e.provider}


# What each fault must have done to the model. Each check is False on a healthy host (tested below).
CHECKS: dict[str, Callable[[Host], bool]] = {
    "rdp_disabled": lambda h: h.reg_get(TS, "fDenyTSConnections") == 1,
    "gpo_denies_connections": lambda h: h.reg_get(POL, "fDenyTSConnections") == 1 and h.reg_get(TS, "fDenyTSConnections") in (0, 1),
    "listener_disabled": lambda h: h.reg_get(RDP_TCP, "fEnableWinStation") == 0,
    "termservice_stopped": lambda h: h.services[TERMSERVICE].state == "Stopped" and h.services[TERMSERVICE].pid == 0,
    "termservice_disabled": lambda h: (h.services[TERMSERVICE].state, h.services[TERMSERVICE].start_mode) == ("Stopped", "Disabled")
    and 7040 in _event_ids(h, "Service Control Manager"),
    "port_conflict": lambda h: any(s.process == "nginx" and s.pid == 4242 and s.port == 3389 for s in h.other_sockets)
    and h.services[TERMSERVICE].state == "Running",
    "port_moved": lambda h: h.reg_get(RDP_TCP, "PortNumber") == 3390 and all(r.local_ports in (["3389"], ["Any"]) for r in _rdp_rules(h)),
    "firewall_rdp_disabled": lambda h: not any(r.enabled for r in _rdp_rules(h)),
    "firewall_gpo_blocks": lambda h: h.reg_get(FW_GPO_DOMAIN, "Enabled") == 0 and h.reg_get(FW_GPO_STANDARD, "Enabled") == 0,
    "dns_mismatch": lambda h: "dns_mismatch" in h.path_faults and h.probe_name == "localhost",
    "cert_expired": lambda h: h.self_signed_entry().not_after < NOW and 1058 in _event_ids(h, "RemoteConnectionManager"),
    "cert_wrong_name": lambda h: _cn(h).startswith(("WIN-", "win-")) and h.os.dns_host_name not in _cn(h).lower(),
    "cert_key_unreadable": lambda h: not _listener_or_self_signed(h).key_readable_by_network_service and 36870 in _event_ids(h, "Schannel"),
    "cert_bound_missing": lambda h: h.bound_thumbprint() is not None and h.find_cert(h.bound_thumbprint()) is None,
    "machinekeys_acl_broken": lambda h: not machinekeys_acl_ok(h.machinekeys.sddl) and 1057 in _event_ids(h, "RemoteConnectionManager"),
    "listener_key_missing": lambda h: h.listener_key_file_name not in h.machinekeys.files
    and {1057} <= _event_ids(h, "RemoteConnectionManager") and 36870 in _event_ids(h, "Schannel"),
    "credssp_server_unpatched": lambda h: version_tuple(h.os.tspkg_version) < version_tuple(h.release.credssp_fix),
    "credssp_force_updated": lambda h: h.reg_get(CREDSSP, "AllowEncryptionOracle") == 0,
    "credssp_vulnerable": lambda h: h.reg_get(CREDSSP, "AllowEncryptionOracle") == 2,
    "security_layer_rdp": lambda h: h.reg_get(RDP_TCP, "SecurityLayer") == 0,
    "gpo_overrides_security_layer": lambda h: h.reg_get(POL, "SecurityLayer") == 0,
    "nla_disabled": lambda h: h.reg_get(RDP_TCP, "UserAuthentication") == 0,
    "fips_encryption": lambda h: h.reg_get(RDP_TCP, "MinEncryptionLevel") == 4 and h.reg_get(FIPS, "Enabled") == 1,
    "tls12_disabled": lambda h: h.reg_get(schannel_key("TLS 1.2"), "Enabled") == 0 and h.reg_get(schannel_key("TLS 1.0"), "Enabled") == 1,
    "all_tls_disabled": lambda h: all(h.reg_get(schannel_key(p), "Enabled") == 0 for p in ("SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"))
    and 36871 in _event_ids(h, "Schannel"),
    "session_limit_reached": lambda h: h.reg_get(RDP_TCP, "MaxInstanceCount") == 2 and sum(s.state == "Active" for s in h.sessions) >= 2,
    "ghost_sessions": lambda h: h.reg_get(POL, "MaxDisconnectionTime") is None and h.reg_get(RDP_TCP, "MaxDisconnectionTime") in (0, None)
    and sorted(round((NOW - s.disconnect_time).days) for s in h.sessions if s.state == "Disconnected") == [3, 12, 40],
    "licensing_grace_expired": lambda h: h.os.rdsh_installed and h.licensing.grace_period_days == 0 and not h.licensing.license_servers
    and 1069 in _event_ids(h, "RemoteConnectionManager"),
    "account_disabled": lambda h: _rdpuser(h).disabled,
    "account_locked_out": lambda h: _rdpuser(h).locked_out and any(e.event_id == 4740 and e.log == "Security" for e in h.events),
    "account_denied_rdp": lambda h: _rdpuser(h).sid in h.user_rights[RIGHT_DENY_RDP],
    "account_not_in_rdu": lambda h: SID_REMOTE_DESKTOP_USERS not in h.groups_of(_rdpuser(h).sid),
    "firewall_service_stopped": lambda h: h.services["MpsSvc"].state == "Stopped" and h.services["MpsSvc"].pid == 0,
    "event_unformattable": lambda h: any(e.format_error for e in h.events),
    "wmi_terminalservices_broken": lambda h: h.wmi_error is not None,
    "wts_unavailable": lambda h: h.wts_error is not None,
    "key_not_openable_by_admin": lambda h: h.listener_key_file_name in h.machinekeys.files
    and not h.machinekeys.files[h.listener_key_file_name].readable
    and _listener_or_self_signed(h).key_readable_by_network_service,
    "netfx_45_only": lambda h: h.netfx_release < 393295,  # 393295 = .NET Framework 4.6
    "accounts_domain_unreachable": lambda h: h.os.part_of_domain and not h.domain_reachable and "CONTOSO\\alice" in h.inventory_accounts,
    "accounts_nested_group": lambda h: any(set(p.member_of) & {m.sid for m in h.group_members(SID_REMOTE_DESKTOP_USERS)}
                                           for p in h.domain_principals) and "CONTOSO\\alice" in h.inventory_accounts,
    "firewall_rule_program_filtered": lambda h: any(r.enabled and r.program != "Any" and r.local_ports == ["3389"] and not r.group
                                                    for r in h.firewall_rules),
    "firewall_rule_address_filtered": lambda h: any(r.enabled and r.remote_addresses != ["Any"] and r.local_ports == ["3389"]
                                                    and not r.group for r in h.firewall_rules),
    "firewall_allow_any_port": lambda h: any(r.enabled and r.action == "Allow" and r.local_ports == ["Any"] and r.program == "Any"
                                             and not r.group for r in h.firewall_rules),
    "tls_cipher_policy_no_common": lambda h: "RC4" in str(h.reg_get(CIPHER_POLICY, "Functions")) and 36874 in _event_ids(h, "Schannel"),
    "schannel_aes_disabled": lambda h: all(h.reg_get(f"{SCHANNEL_CIPHERS}\\{c}", "Enabled") == 0 for c in ("AES 128/128", "AES 256/256")),
    "schannel_handshake_errors": lambda h: 36888 in _event_ids(h, "Schannel"),
    "listener_acl_broken": lambda h: not {a.sid for a in h.listener_acl} & {SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS},
    "logon_right_groups_denied": lambda h: SID_REMOTE_DESKTOP_USERS in h.user_rights[RIGHT_DENY_RDP],
    "netlogon_stopped": lambda h: h.os.part_of_domain and h.services["Netlogon"].state == "Stopped",
    "ntlm_incoming_denied": lambda h: h.reg_get(MSV1_0, "RestrictReceivingNTLMTraffic") == 2,
    "path_blocked_clients_arrive": lambda h: "path_blocked" in h.path_faults and 1149 in _event_ids(h, "RemoteConnectionManager"),
    "clients_fail_logon": lambda h: 140 in _event_ids(h, "RdpCoreTS") and 1149 not in _event_ids(h, "RemoteConnectionManager"),
    "licensed_without_gpo": lambda h: h.os.rdsh_installed and h.licensing.grace_period_days == 0 and bool(h.licensing.license_servers)
    and h.reg_get(TERMSERVICE_LICENSE_SERVERS, "SpecifiedLicenseServers") == h.licensing.license_servers
    and not h.licensing.server_status and h.reg_get(RCM, "X509 Certificate") is not None,
    "license_server_unreachable": lambda h: LS_NOT_CONNECTABLE in h.licensing.server_status.values(),
    "licensing_x509_missing": lambda h: h.os.rdsh_installed and h.reg_get(RCM, "X509 Certificate") is None,
    "listener_down": lambda h: h.listener_down,
    "protocol_stack_leftover": lambda h: not protocol_stack_loads(h)
    and h.reg_get(RDP_TCP, "CitrixBackupRdpTcpLoadableProtocolObject") is not None,
    "port_number_missing": lambda h: h.reg_get(RDP_TCP, "PortNumber") is None,
    "instance_limit_low": lambda h: h.reg_get(RDP_TCP, "MaxInstanceCount") == 1 and not h.sessions,
    "port_exhaustion": lambda h: any(e.provider == "Tcpip" and e.event_id == 4231 for e in h.events),
    "self_signed_store_moved": lambda h: h.reg_get(WINSTATIONS, "SelfSignedCertStore") not in (None, "Remote Desktop"),
    "cert_store_system_denied": store_denies_system,
    "ephemeral_range_narrow": lambda h: h.dynamic_ports[1] < 16384,
    "idle_limit_short": lambda h: h.reg_get(RDP_TCP, "MaxIdleTime") == 60_000 and h.reg_get(RDP_TCP, "fInheritMaxIdleTime") == 0,
    "session_limits_inherited": lambda h: h.reg_get(RDP_TCP, "MaxDisconnectionTime") == 3_600_000
    and h.reg_get(RDP_TCP, "fInheritMaxDisconnectionTime") == 1 and any(s.state == "Disconnected" for s in h.sessions),
}


# A disabled service is also a stopped one.
IMPLIES = {"termservice_disabled": ["termservice_stopped"],
           # what opens (or does not open) the port is the rule the fault adds, with the Remote Desktop rules off
           **{name: ["firewall_rdp_disabled"] for name in ("firewall_rule_program_filtered", "firewall_rule_address_filtered",
                                                           "firewall_allow_any_port")}}


def _healthy(os_version: str = "2022") -> Host:
    return Host.healthy("f-test", "127.0.0.9", os_version, now=NOW)


def _snapshot(host: Host) -> dict:
    """Everything a fault could change, without the random parts (certificate serials)."""
    entries = [(s, certs.cert_names(e.cert), e.not_before, e.not_after, e.has_private_key, e.key_readable_by_network_service, e.key_error)
               for s, es in host.cert_stores.items() for e in es]
    registry = {k.lower(): {n: v for n, v in vals.items() if n != "SSLCertificateSHA1Hash"} for k, vals in host.registry.keys.items()}
    bound_is_self_signed = host.bound_thumbprint() == (host.self_signed_entry().thumbprint if host.self_signed_entry() else None)
    return {
        "registry": registry, "bound_is_self_signed": bound_is_self_signed, "certs": entries, "os": host.os,
        "services": host.services, "sockets": host.other_sockets, "rules": host.firewall_rules, "accounts": host.accounts,
        "groups": host.groups, "rights": host.user_rights, "machinekeys": host.machinekeys, "licensing": host.licensing,
        "sessions": host.sessions, "events": sorted((e.log, e.provider, e.event_id, e.time) for e in host.events),
        "path_faults": host.path_faults,
    }


def test_fault_names_are_exactly_the_contract() -> None:
    assert list(FAULTS) == CONTRACT_FAULTS
    assert set(CHECKS) == set(FAULTS)
    for fault in FAULTS.values():
        assert fault.description and "\n" not in fault.description
        assert all(i.startswith("RDP-") for i in fault.finding_ids)


@pytest.mark.parametrize("name", CONTRACT_FAULTS)
def test_each_fault_changes_what_it_should(name: str) -> None:
    healthy = _healthy(os_version_for([name]))
    assert not CHECKS[name](healthy), "the check must fail on a healthy host"
    host = apply_faults(healthy.copy(), [name], NOW)
    assert CHECKS[name](host)
    assert host.faults == [name]


@pytest.mark.parametrize("name", CONTRACT_FAULTS)
def test_no_fault_trips_another_check(name: str) -> None:
    """A single fault is what its host shows: no other fault's check fires (keeps findings attributable)."""
    host = build_host("f-test", "127.0.0.9", [name], now=NOW)
    tripped = [other for other, check in CHECKS.items() if other != name and check(host)]
    assert tripped == IMPLIES.get(name, [])


def test_dns_mismatch_changes_nothing_in_the_model() -> None:
    healthy = _healthy()
    host = apply_faults(healthy.copy(), ["dns_mismatch"], NOW)
    after, before = _snapshot(host), _snapshot(healthy)
    assert after.pop("path_faults") == {"dns_mismatch"} and before.pop("path_faults") == set()
    assert after == before
    assert healthy.probe_name == "127.0.0.9" and FAULTS["dns_mismatch"].path_fault


def test_all_compatible_faults_combine() -> None:
    names = [n for n in CAUSE_FAULTS if n not in ("credssp_vulnerable", "all_tls_disabled")]
    host = build_host("f-all", "127.0.0.9", names, now=NOW)
    assert host.os.version == "10.0.14393"  # chosen for credssp_server_unpatched
    assert sorted(host.faults) == sorted(names)
    failing = [n for n in names if not CHECKS[n](host)]
    # the only check that cannot hold: port_conflict wants TermService running, the termservice faults stop it
    assert failing == ["port_conflict"]
    assert any(s.process == "nginx" and s.port == 3389 for s in host.other_sockets)


@pytest.mark.parametrize("pair", [
    ("cert_expired", "cert_wrong_name"), ("cert_expired", "cert_key_unreadable"), ("cert_bound_missing", "cert_expired"),
    ("session_limit_reached", "ghost_sessions"), ("termservice_disabled", "termservice_stopped"), ("rdp_disabled", "gpo_denies_connections"),
    ("listener_key_missing", "machinekeys_acl_broken"), ("account_disabled", "account_not_in_rdu"), ("tls12_disabled", "credssp_force_updated"),
])
def test_order_does_not_matter(pair: tuple[str, str]) -> None:
    one = apply_faults(_healthy(), list(pair), NOW)
    two = apply_faults(_healthy(), list(reversed(pair)), NOW)
    assert _snapshot(one) == _snapshot(two)
    assert all(CHECKS[n](one) for n in pair)


def test_session_ids_do_not_collide() -> None:
    host = build_host("f-test", "127.0.0.9", ["session_limit_reached", "ghost_sessions"], now=NOW)
    ids = [s.session_id for s in host.sessions]
    assert len(ids) == 5 and len(set(ids)) == 5 and min(ids) == 2


def test_unknown_fault_lists_known_ones() -> None:
    with pytest.raises(FaultError, match="unknown fault.*'nope'.*known faults: rdp_disabled, gpo_denies_connections"):
        apply_faults(_healthy(), ["rdp_disabled", "nope"], NOW)


@pytest.mark.parametrize("pair", [("credssp_force_updated", "credssp_vulnerable"), ("tls12_disabled", "all_tls_disabled")])
def test_conflicting_faults_are_rejected(pair: tuple[str, str]) -> None:
    with pytest.raises(FaultError, match="conflicts"):
        validate_faults(list(pair))


def test_unpatched_credssp_needs_an_old_release() -> None:
    with pytest.raises(FaultError, match="cannot exist"):
        apply_faults(_healthy("2022"), ["credssp_server_unpatched"], NOW)
    with pytest.raises(FaultError, match="cannot exist"):
        build_host("x", "127.0.0.9", ["credssp_server_unpatched"], os_version="2019", now=NOW)
    for version in ("2016", "2012r2"):
        host = build_host("x", "127.0.0.9", ["credssp_server_unpatched"], os_version=version, now=NOW)
        assert CHECKS["credssp_server_unpatched"](host)


def test_validate_returns_canonical_order_without_duplicates() -> None:
    assert validate_faults(["nla_disabled", "rdp_disabled", "nla_disabled"]) == ["rdp_disabled", "nla_disabled"]


def test_event_times_are_in_the_past_and_utc() -> None:
    names = ["cert_expired", "cert_key_unreadable", "machinekeys_acl_broken", "all_tls_disabled", "licensing_grace_expired", "termservice_disabled"]
    host = build_host("x", "127.0.0.9", names, now=NOW)
    assert host.events
    assert all(e.time <= NOW and e.time.tzinfo is not None and e.message for e in host.events)


def test_cert_expired_keeps_serving_key_and_name() -> None:
    host = build_host("f-cert-expired", "127.0.0.9", ["cert_expired"], now=NOW)
    entry = host.self_signed_entry()
    assert _cn(host) == "f-cert-expired" and entry.key is not None
    assert entry.not_after == NOW - dt.timedelta(days=18)
    assert len(host.cert_stores["Remote Desktop"]) == 1


def test_read_faults_combine() -> None:
    """The host states a read must survive combine with each other (allow-any conflicts with the narrow rules it would open)."""
    names = [n for n in READ_FAULTS if n != "firewall_allow_any_port"]
    host = build_host("f-all", "127.0.0.9", names, now=NOW)
    assert host.os.version == "6.3.9600" and [n for n in names if not CHECKS[n](host)] == []
    assert host.inventory_accounts == ["CONTOSO\\alice"]
