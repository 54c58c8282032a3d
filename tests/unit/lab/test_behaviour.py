"""The lab listener's behaviour, computed from the model as Windows would (contracts section 9)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.lab import certs
from tests.lab.behaviour import ListenerBehaviour, listener_behaviour, schannel_enabled
from tests.lab.faults import FAULTS, build_host
from tests.lab.model import (
    FW_GPO_DOMAIN, FW_GPO_STANDARD, POL, RDP_TCP, TERMSERVICE, TS, CertEntry, FirewallRule, Host, schannel_key,
)

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
ALL_TLS = frozenset({"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"})


def _behaviour(faults: list[str], os_version: str | None = None, firewall_blocks: str = "refuse") -> ListenerBehaviour:
    host = build_host("win01", "127.0.0.2", faults, os_version=os_version, now=NOW)
    host.firewall_blocks = firewall_blocks
    return listener_behaviour(host, NOW)


def _cert(b: ListenerBehaviour) -> x509.Certificate:
    assert b.certificate_pem is not None
    return x509.load_pem_x509_certificate(b.certificate_pem)


def test_contract_fields() -> None:
    names = [f.name for f in dataclasses.fields(ListenerBehaviour)]
    assert names == ["listening", "refuse_reason", "port", "security_layer", "nla_required", "certificate_pem", "private_key_pem",
                     "tls_versions", "netbios_name", "dns_name", "domain", "dns_domain", "os_version", "clock_offset_seconds",
                     "filtered", "no_common_cipher"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        _behaviour([]).listening = False  # type: ignore[misc]


def test_healthy_host() -> None:
    b = _behaviour([])
    assert b.listening and b.refuse_reason == "" and b.port == 3389
    assert b.security_layer == 2 and b.nla_required
    assert b.tls_versions == ALL_TLS
    key = serialization.load_pem_private_key(b.private_key_pem, None)
    assert key.public_key().public_numbers() == _cert(b).public_key().public_numbers()
    assert (b.netbios_name, b.dns_name, b.domain, b.dns_domain) == ("WIN01", "win01", "WIN01", "win01")
    assert b.os_version == (10, 0, 20348) and b.clock_offset_seconds == 0.0


@pytest.mark.parametrize("version,expected", [
    ("2022", ALL_TLS), ("2019", ALL_TLS - {"TLSv1.3"}), ("2016", ALL_TLS - {"TLSv1.3"}), ("2012r2", ALL_TLS - {"TLSv1.3"}),
])
def test_tls_defaults_per_os(version: str, expected: frozenset) -> None:
    b = _behaviour([], version)
    assert b.tls_versions == expected and b.listening


REFUSED = ["rdp_disabled", "gpo_denies_connections", "listener_disabled", "termservice_stopped", "termservice_disabled",
           "port_conflict", "port_moved", "firewall_rdp_disabled", "firewall_gpo_blocks", "firewall_rule_program_filtered",
           "firewall_rule_address_filtered", "listener_down", "protocol_stack_leftover",
           "path_blocked_clients_arrive"]  # path_blocked: the host accepts, a device on the path refuses the client


@pytest.mark.parametrize("name", REFUSED)
def test_refusing_faults(name: str) -> None:
    b = _behaviour([name])
    assert not b.listening and b.refuse_reason


FIREWALL_ONLY = ["firewall_rdp_disabled", "firewall_gpo_blocks", "port_moved", "firewall_rule_program_filtered",
                 "firewall_rule_address_filtered"]
NOTHING_LISTENS = ["rdp_disabled", "gpo_denies_connections", "listener_disabled", "termservice_stopped", "termservice_disabled",
                   "port_conflict", "listener_down", "protocol_stack_leftover"]


def test_hosts_refuse_firewall_blocks_by_default() -> None:
    """Every non-listening fault is refused (RST) unless the host says drop."""
    assert sorted(REFUSED) == sorted(FIREWALL_ONLY + NOTHING_LISTENS + ["path_blocked_clients_arrive"])
    assert Host.healthy("win01", "127.0.0.2", now=NOW).firewall_blocks == "refuse"
    assert not any(_behaviour([name]).filtered for name in REFUSED)
    assert not _behaviour(["path_blocked_clients_arrive"], firewall_blocks="drop").filtered  # a path device, not the firewall


@pytest.mark.parametrize("name", FIREWALL_ONLY)
def test_firewall_only_block_is_filtered_in_drop_mode(name: str) -> None:
    """Firewall-only reasons with firewall_blocks drop: not listening, filtered, same reason as in refuse mode."""
    b = _behaviour([name], firewall_blocks="drop")
    assert (b.listening, b.filtered) == (False, True)
    assert b.refuse_reason == _behaviour([name]).refuse_reason != ""


@pytest.mark.parametrize("name", NOTHING_LISTENS)
def test_nothing_listening_is_refused_even_in_drop_mode(name: str) -> None:
    """With nothing listening the answer is RST, also when the firewall blocks as well."""
    alone = _behaviour([name], firewall_blocks="drop")
    assert (alone.listening, alone.filtered) == (False, False)
    # the firewall blocks too, but TermService has no socket: still RST, and the reason names the listener side
    both = _behaviour([name, "firewall_rdp_disabled"], firewall_blocks="drop")
    assert (both.listening, both.filtered, both.refuse_reason) == (False, False, alone.refuse_reason)


def test_block_rule_is_a_firewall_reason_and_healthy_drop_host_listens() -> None:
    """drop changes nothing for a healthy host; an inbound block rule is a firewall-only reason."""
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    host.firewall_blocks = "drop"
    assert (listener_behaviour(host, NOW).listening, listener_behaviour(host, NOW).filtered) == (True, False)
    host.firewall_rules.append(FirewallRule("Block-RDP", "Block RDP", "", True, "TCP", ["3389"], action="Block"))
    b = listener_behaviour(host, NOW)
    assert (b.listening, b.filtered) == (False, True) and "block rule" in b.refuse_reason
    host.firewall_blocks = "refuse"
    assert listener_behaviour(host, NOW).filtered is False


@pytest.mark.parametrize("limit", [{"program": "C:\\agent.exe"}, {"service": "WinRM"}, {"remote_addresses": ["10.0.0.0/8"]}])
def test_allow_rule_limited_to_another_program_service_or_address_does_not_open(limit: dict) -> None:
    """The listener is svchost.exe hosting TermService; clients come from anywhere: a narrower allow rule leaves it closed."""
    host = build_host("win01", "127.0.0.2", ["firewall_rdp_disabled"], now=NOW)
    host.firewall_rules.append(FirewallRule("Narrow", "Narrow", "", True, "TCP", ["3389"], **limit))
    assert not listener_behaviour(host, NOW).listening
    host.firewall_rules.append(FirewallRule("Wide", "Wide", "", True, "TCP", ["3389"], program="%SystemRoot%\\system32\\svchost.exe",
                                            service="TermService"))
    assert listener_behaviour(host, NOW).listening


def test_refuse_reasons_name_the_cause() -> None:
    assert "policy" in _behaviour(["gpo_denies_connections"]).refuse_reason
    assert "nginx" in _behaviour(["port_conflict"]).refuse_reason
    assert "3390" in _behaviour(["port_moved"]).refuse_reason and _behaviour(["port_moved"]).port == 3390
    assert "GPO" in _behaviour(["firewall_gpo_blocks"]).refuse_reason


# Faults that leave the listener up but change what it answers.
ANSWERS: dict[str, Callable[[ListenerBehaviour], bool]] = {
    "dns_mismatch": lambda b: b.listening and b.private_key_pem is not None,
    "cert_expired": lambda b: b.listening and _cert(b).not_valid_after_utc < NOW and b.private_key_pem is not None,
    "cert_wrong_name": lambda b: certs.cert_names(_cert(b))[0].startswith("WIN-") and b.private_key_pem is not None,
    "cert_key_unreadable": lambda b: b.certificate_pem is not None and b.private_key_pem is None,
    "cert_bound_missing": lambda b: b.certificate_pem is None and b.private_key_pem is None,
    "machinekeys_acl_broken": lambda b: b.certificate_pem is not None and b.private_key_pem is None,
    "listener_key_missing": lambda b: b.certificate_pem is not None and b.private_key_pem is None,
    "credssp_server_unpatched": lambda b: b.listening and b.os_version == (10, 0, 14393),
    "credssp_force_updated": lambda b: b.listening and b.nla_required,
    "credssp_vulnerable": lambda b: b.listening and b.nla_required,
    "security_layer_rdp": lambda b: b.security_layer == 0,
    "gpo_overrides_security_layer": lambda b: b.security_layer == 0,
    "nla_disabled": lambda b: not b.nla_required and b.security_layer == 2,
    "fips_encryption": lambda b: b.listening and b.private_key_pem is not None,
    "tls12_disabled": lambda b: "TLSv1.2" not in b.tls_versions and "TLSv1" in b.tls_versions,
    "all_tls_disabled": lambda b: b.tls_versions == frozenset(),
    "session_limit_reached": lambda b: b.listening,
    "ghost_sessions": lambda b: b.listening,
    "licensing_grace_expired": lambda b: b.listening,
    "account_disabled": lambda b: b.listening,
    "account_locked_out": lambda b: b.listening,
    "account_denied_rdp": lambda b: b.listening,
    "account_not_in_rdu": lambda b: b.listening,
    # host states a read must survive: the listener is as healthy as the rest of the host
    "firewall_service_stopped": lambda b: b.listening,
    "event_unformattable": lambda b: b.listening,
    "wmi_terminalservices_broken": lambda b: b.listening and b.security_layer == 2,
    "wts_unavailable": lambda b: b.listening,
    "key_not_openable_by_admin": lambda b: b.listening and b.private_key_pem is not None,
    "netfx_45_only": lambda b: b.listening and b.private_key_pem is not None and b.os_version == (6, 3, 9600),
    "accounts_domain_unreachable": lambda b: b.listening and b.domain == "CONTOSO",
    "accounts_nested_group": lambda b: b.listening,
    "firewall_allow_any_port": lambda b: b.listening,  # the Remote Desktop rules are off, the broad rule opens the port
    # issue 12 part B: the cipher faults leave the credential ready and fail every handshake; the others change no answer
    "tls_cipher_policy_no_common": lambda b: b.listening and b.no_common_cipher and b.private_key_pem is not None,
    "schannel_aes_disabled": lambda b: b.listening and b.no_common_cipher and b.tls_versions == ALL_TLS,
    "schannel_handshake_errors": lambda b: b.listening and not b.no_common_cipher,
    "listener_acl_broken": lambda b: b.listening and not b.no_common_cipher,
    "logon_right_groups_denied": lambda b: b.listening,
    "netlogon_stopped": lambda b: b.listening and b.domain == "CONTOSO",
    "ntlm_incoming_denied": lambda b: b.listening and b.nla_required,

    "clients_fail_logon": lambda b: b.listening,
    # issue 12, part A: the listener answers; PortNumber missing = Windows' 3389 (what Windows does then is not documented)
    "licensed_without_gpo": lambda b: b.listening,
    "license_server_unreachable": lambda b: b.listening,
    "licensing_x509_missing": lambda b: b.listening,
    "port_number_missing": lambda b: b.listening and b.port == 3389,
    "instance_limit_low": lambda b: b.listening,
    "port_exhaustion": lambda b: b.listening,
    "self_signed_store_moved": lambda b: b.listening,
    "ephemeral_range_narrow": lambda b: b.listening,
    "idle_limit_short": lambda b: b.listening,
    "cert_store_system_denied": lambda b: b.listening and b.private_key_pem is not None,  # the current certificate still serves
    "session_limits_inherited": lambda b: b.listening,
}


def test_listener_down_comes_back_with_termservice_but_a_leftover_stack_does_not() -> None:
    """A listener that failed to start listens after a TermService restart; one whose stack cannot load stays Down."""
    for fault, listens_after in (("listener_down", True), ("protocol_stack_leftover", False)):
        host = build_host("win01", "127.0.0.2", [fault], now=NOW)
        assert "Down" in listener_behaviour(host, NOW).refuse_reason
        host.restart_service(TERMSERVICE, NOW)
        assert listener_behaviour(host, NOW).listening is listens_after, fault


def test_every_fault_has_a_behaviour_test() -> None:
    assert set(REFUSED) | set(ANSWERS) == set(FAULTS) and not set(REFUSED) & set(ANSWERS)


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_answering_faults(name: str) -> None:
    b = _behaviour([name])
    assert b.listening
    assert ANSWERS[name](b)


def test_model_changes_apply_at_once() -> None:
    host = build_host("win01", "127.0.0.2", ["rdp_disabled", "cert_key_unreadable"], now=NOW)
    assert not listener_behaviour(host, NOW).listening
    host.reg_set(TS, "fDenyTSConnections", 0)
    assert listener_behaviour(host, NOW).listening
    assert listener_behaviour(host, NOW).private_key_pem is None
    host.install_self_signed(NOW)  # what renewing the self-signed cert does
    b = listener_behaviour(host, NOW)
    assert b.private_key_pem is not None and _cert(b).not_valid_before_utc <= NOW
    assert any(e.event_id == 1056 for e in host.events)


def test_policy_beats_local_beats_default() -> None:
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    host.reg_set(RDP_TCP, "SecurityLayer", 1)
    assert listener_behaviour(host, NOW).security_layer == 1
    host.reg_set(POL, "SecurityLayer", 2)
    assert listener_behaviour(host, NOW).security_layer == 2
    host.reg_delete(POL, "SecurityLayer")
    host.reg_delete(RDP_TCP, "SecurityLayer")
    host.reg_delete(RDP_TCP, "UserAuthentication")
    b = listener_behaviour(host, NOW)
    assert b.security_layer == 1 and b.nla_required  # defaults: Negotiate, NLA on
    host.reg_set(POL, "UserAuthentication", 0)
    assert not listener_behaviour(host, NOW).nla_required
    host.reg_set(POL, "fDenyTSConnections", 0)
    host.reg_set(TS, "fDenyTSConnections", 1)
    assert listener_behaviour(host, NOW).listening  # the policy allows, whatever the local value


def test_deny_default_when_no_value_exists() -> None:
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    host.reg_delete(TS, "fDenyTSConnections")
    assert not listener_behaviour(host, NOW).listening


@pytest.mark.parametrize("values,expected", [
    ({}, True), ({"Enabled": 0}, False), ({"Enabled": 1}, True), ({"Enabled": 1, "DisabledByDefault": 1}, False),
    ({"DisabledByDefault": 1}, False), ({"Enabled": 0xFFFFFFFF, "DisabledByDefault": 0}, True), ({"DisabledByDefault": 0}, True),
])
def test_schannel_rules(values: dict, expected: bool) -> None:
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    for name, value in values.items():
        host.reg_set(schannel_key("TLS 1.2"), name, value)
    assert schannel_enabled(host, "TLS 1.2") is expected
    host.reg_set(schannel_key("TLS 1.2", "Client"), "Enabled", 0)  # the Client side does not matter to the listener
    assert schannel_enabled(host, "TLS 1.2") is expected


def test_tls13_needs_server_2022() -> None:
    host = build_host("win01", "127.0.0.2", [], os_version="2019", now=NOW)
    host.reg_set(schannel_key("TLS 1.3"), "Enabled", 1)
    assert "TLSv1.3" not in listener_behaviour(host, NOW).tls_versions


def test_custom_port_with_a_custom_rule_listens() -> None:
    host = build_host("win01", "127.0.0.2", ["port_moved"], now=NOW)
    host.firewall_rules.append(FirewallRule("RDP-3390", "RDP 3390", "", True, "TCP", ["3390"]))
    assert listener_behaviour(host, NOW).listening


def test_block_rule_and_disabled_profile() -> None:
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    host.firewall_rules.append(FirewallRule("Block-RDP", "Block RDP", "", True, "TCP", ["3380-3399"], action="Block"))
    assert "block" in listener_behaviour(host, NOW).refuse_reason
    for profile in host.firewall_profiles:
        profile.enabled = False
    assert listener_behaviour(host, NOW).listening


def test_shadow_rule_alone_does_not_open_rdp() -> None:
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    for rule in host.firewall_rules:
        rule.enabled = rule.name == "RemoteDesktop-Shadow-In-TCP"
    assert not listener_behaviour(host, NOW).listening


def test_gpo_exception_applies_to_the_active_profile_only() -> None:
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    host.reg_set(FW_GPO_DOMAIN, "Enabled", 0)
    assert listener_behaviour(host, NOW).listening  # workgroup host: Standard profile in force
    host.reg_set(FW_GPO_STANDARD, "Enabled", 0)
    assert not listener_behaviour(host, NOW).listening


def test_stopped_termservice_with_other_port_owner() -> None:
    host = build_host("win01", "127.0.0.2", ["port_conflict"], now=NOW)
    host.services[TERMSERVICE].state = "Stopped"
    assert "TermService" in listener_behaviour(host, NOW).refuse_reason


def test_unbound_hash_falls_back_to_self_signed() -> None:
    host = build_host("win01", "127.0.0.2", [], now=NOW)
    host.reg_delete(RDP_TCP, "SSLCertificateSHA1Hash")
    b = listener_behaviour(host, NOW)
    assert b.certificate_pem == host.self_signed_entry().pem and b.private_key_pem is not None


def test_ca_cert_in_my_is_served() -> None:
    host = build_host("win01", "127.0.0.2", ["machinekeys_acl_broken"], now=NOW)
    key = certs.key_for("ca-issued")
    cert = certs.issue_server_cert(certs.lab_ca(), "win01", ["win01"], key, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=365))
    entry = CertEntry(cert=cert, key=key, key_container="{CNG}", key_file=None)  # a CNG key: not in MachineKeys
    host.cert_stores["My"].append(entry)
    host.bind_cert(entry)
    b = listener_behaviour(host, NOW)
    assert b.certificate_pem == entry.pem and b.private_key_pem is not None


def test_domain_host_names() -> None:
    host = Host.healthy("web01", "127.0.0.3", now=NOW, domain="contoso.com")
    host.clock_offset_seconds = -90.0
    b = listener_behaviour(host, NOW)
    assert (b.netbios_name, b.dns_name, b.domain, b.dns_domain) == ("WEB01", "web01.contoso.com", "CONTOSO", "contoso.com")
    assert b.clock_offset_seconds == -90.0
