"""Issue 12 part B, pure: cipher suites, Schannel events as triggers, listener ACL, group logon rights, secure channel,
logon services, incoming NTLM and the host's record of clients (security_facts + their findings rules)."""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import security_facts as sf
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

Raw = t.Dict[str, t.Any]
RCM = "Microsoft-Windows-TerminalServices-RemoteConnectionManager"


def facts_of(raw: Raw) -> dict[str, t.Any]:
    return hf.normalize(raw, samples.NOW, ["rdpuser"])


def ids(raw: Raw, probe: dict[str, t.Any] | None = None) -> list[str]:
    return [f["id"] for f in fd.evaluate(facts_of(raw), probe)]


def by_id(raw: Raw, finding_id: str) -> dict[str, t.Any]:
    return next(f for f in fd.evaluate(facts_of(raw)) if f["id"] == finding_id)


def _algorithm(raw: Raw, kind: str, name: str, enabled: int) -> None:
    raw["schannel_algorithms"][kind] = dict(raw["schannel_algorithms"][kind] or {}, **{name: {"Enabled": enabled}})


def _event(raw: Raw, provider: str, event_id: int, count: int = 2, log: str = "System") -> None:
    raw["events"].append(samples._event(provider, event_id, f"event {event_id}", count=count, log=log))  # pylint: disable=protected-access


# ---- cipher suites ----

def test_healthy_host_keeps_every_modern_suite() -> None:
    suites = facts_of(samples.healthy_raw())["tls_cipher_suites"]
    assert suites["modern_client_compatible"] is True and suites["source"] == "default"
    assert suites["usable_modern_suites"] == [s.name for s in reg.MODERN_CLIENT_SUITES]


@pytest.mark.parametrize("value,expected", [
    ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256_P256, tls_rsa_with_aes_128_cbc_sha,",
     ["TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_128_CBC_SHA"]),
    (["TLS_AES_256_GCM_SHA384", "TLS_AES_256_GCM_SHA384"], ["TLS_AES_256_GCM_SHA384"]),
    (None, []),
])
def test_suite_names_from_either_value_type(value: t.Any, expected: list[str]) -> None:
    """REG_SZ (policy, comma-separated) and REG_MULTI_SZ (local); 2012 R2 curve suffixes dropped; duplicates once."""
    assert sf.suite_names(value) == expected


def test_policy_list_wins_over_the_local_list() -> None:
    raw = samples.healthy_raw()
    raw["registry"][reg.CIPHER_SUITE_LOCAL] = {"Functions": ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]}
    raw["registry"][reg.CIPHER_SUITE_POLICY] = {"Functions": "TLS_RSA_WITH_RC4_128_SHA"}
    found = by_id(raw, "RDP-TLS-NO-COMMON-CIPHER")
    assert found["evidence"]["source"] == "policy" and found["evidence"]["policy_name"] == reg.POLICY_CIPHER_SUITE_ORDER
    assert reg.POLICY_CIPHER_SUITE_ORDER in found["fix"]["manual"] and found["explains_0x904"]
    del raw["registry"][reg.CIPHER_SUITE_POLICY]
    assert facts_of(raw)["tls_cipher_suites"]["usable_modern_suites"] == ["TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"]
    assert "RDP-TLS-NO-COMMON-CIPHER" not in ids(raw)


def test_one_modern_suite_left_is_enough() -> None:
    """Everything but ECDHE disabled by key exchange, SHA384 hash off: the ECDHE AES-128 suites remain."""
    raw = samples.healthy_raw()
    for kex in ("PKCS", "Diffie-Hellman"):
        _algorithm(raw, "KeyExchangeAlgorithms", kex, 0)
    _algorithm(raw, "Hashes", "SHA384", 0)
    suites = facts_of(raw)["tls_cipher_suites"]
    assert "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" in suites["usable_modern_suites"] and suites["modern_client_compatible"]
    assert suites["unusable_modern_suites"]["TLS_RSA_WITH_AES_256_CBC_SHA"] == "SCHANNEL\\KeyExchangeAlgorithms\\PKCS Enabled=0"
    assert ids(raw) == []


def test_enabled_ffffffff_is_not_disabled() -> None:
    raw = samples.healthy_raw()
    _algorithm(raw, "Ciphers", "AES 128/128", 0xFFFFFFFF)
    _algorithm(raw, "Ciphers", "AES 256/256", 0xFFFFFFFF)
    assert facts_of(raw)["tls_cipher_suites"]["disabled_algorithms"]["Ciphers"] == [] and ids(raw) == []


def test_aes_off_names_the_schannel_keys() -> None:
    raw = samples.healthy_raw()
    _algorithm(raw, "Ciphers", "AES 128/128", 0)
    _algorithm(raw, "Ciphers", "AES 256/256", 0)
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_NO_CIPHER)
    found = by_id(raw, "RDP-TLS-NO-COMMON-CIPHER")
    assert found["evidence"]["source"] == "default" and [e["id"] for e in found["evidence"]["events"]] == [36874]
    assert "SCHANNEL\\Ciphers\\AES 128/128, SCHANNEL\\Ciphers\\AES 256/256" in found["fix"]["manual"]
    assert "RDP-TLS-SCHANNEL-ERRORS" not in ids(raw)  # the cipher finding explains 36874


def test_suites_lost_only_to_protocols_are_the_protocol_findings() -> None:
    """Every TLS protocol off: no suite is usable, but that is RDP-TLS-ALL-DISABLED's, not a cipher finding."""
    raw = samples.healthy_raw()
    samples.all_tls_disabled(raw)
    assert facts_of(raw)["tls_cipher_suites"]["modern_client_compatible"] is False
    assert "RDP-TLS-ALL-DISABLED" in ids(raw) and "RDP-TLS-NO-COMMON-CIPHER" not in ids(raw)


def test_unreadable_cipher_parts_are_unknown() -> None:
    raw = samples.healthy_raw()
    raw["schannel_algorithms"] = {"error": {"type": "System.Security.SecurityException", "message": "denied"}}
    suites = facts_of(raw)["tls_cipher_suites"]
    assert (suites["read"], suites["source"], suites["modern_client_compatible"]) == (False, "unknown", None)
    assert ids(raw) == ["RDP-READ-INCOMPLETE"]


# ---- Schannel events as triggers ----

@pytest.mark.parametrize("event_id,severity,every", [(36871, "high", True), (36886, "high", True), (36874, "medium", False),
                                                     (36888, "medium", False)])
def test_schannel_events_raise_a_finding(event_id: int, severity: str, every: bool) -> None:
    raw = samples.healthy_raw()
    _event(raw, "Schannel", event_id)
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_ALERT_RECEIVED)  # context only
    found = by_id(raw, "RDP-TLS-SCHANNEL-ERRORS")
    assert found["severity"] == severity and found["evidence"]["every_client_fails"] is every
    assert [e["id"] for e in found["evidence"]["events"]] == [event_id]
    assert [e["id"] for e in found["evidence"]["context_events"]] == [36887] and str(event_id) in found["fix"]["manual"]


def test_client_side_schannel_events_alone_raise_nothing() -> None:
    raw = samples.healthy_raw()
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_ALERT_RECEIVED)
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_CA_LIST)
    assert ids(raw) == []


def test_schannel_events_explained_by_the_key_finding() -> None:
    raw = samples.healthy_raw()
    samples.cert_key_unreadable(raw)
    assert "RDP-CERT-KEY-UNREADABLE" in ids(raw) and "RDP-TLS-SCHANNEL-ERRORS" not in ids(raw)


def test_schannel_events_say_nothing_when_the_certificates_were_not_read() -> None:
    """The finding that would explain them might be hidden: no conclusion from an unread part."""
    raw = samples.healthy_raw()
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_KEY_ACCESS)
    raw["certificates"] = {"error": {"type": "System.Exception", "message": "store"}}
    assert ids(raw) == ["RDP-READ-INCOMPLETE"]


# ---- listener ACL and group-level logon rights ----

def _acl(raw: Raw, *entries: tuple[str, int, int]) -> None:
    raw["listener_acl"] = [{"sid": sid, "account": sid, "allowed": allowed, "denied": denied} for sid, allowed, denied in entries]


def test_listener_acl_without_the_rdp_groups() -> None:
    raw = samples.healthy_raw()
    _acl(raw, ("S-1-5-18", 0xF03BF, 0), (reg.SID_ADMINISTRATORS, 0x1, 0))  # Administrators may query, not log on
    found = by_id(raw, "RDP-LISTENER-ACL-DENIES")
    assert found["evidence"]["groups_without_logon"] == ["Administrators", "Remote Desktop Users"]
    assert "RestoreDefaults" in found["fix"]["manual"]


def test_listener_acl_broad_allow_and_explicit_deny() -> None:
    raw = samples.healthy_raw()
    _acl(raw, (reg.SID_EVERYONE, 0x121, 0))
    assert facts_of(raw)["listener_acl"]["ok"] is True
    _acl(raw, (reg.SID_EVERYONE, 0x121, 0), (reg.SID_REMOTE_DESKTOP_USERS, 0, reg.WINSTATION_LOGON))
    assert by_id(raw, "RDP-LISTENER-ACL-DENIES")["evidence"]["groups_without_logon_sids"] == [reg.SID_REMOTE_DESKTOP_USERS]


def test_listener_acl_absent_or_unread_is_not_judged() -> None:
    raw = samples.healthy_raw()
    raw["listener_acl"] = None  # no RDP-Tcp in WMI
    assert facts_of(raw)["listener_acl"]["ok"] is None and ids(raw) == []


@pytest.mark.parametrize("allow,deny,product_type,expected", [
    ([reg.SID_ADMINISTRATORS], [], 3, ("medium", ["Remote Desktop Users"], [])),
    ([reg.SID_ADMINISTRATORS, reg.SID_REMOTE_DESKTOP_USERS], [reg.SID_ADMINISTRATORS], 3, ("high", [], ["Administrators"])),
    ([reg.SID_ADMINISTRATORS, reg.SID_REMOTE_DESKTOP_USERS], [reg.SID_EVERYONE], 3, ("high", [], ["Everyone"])),
    ([reg.SID_ADMINISTRATORS], [], 2, None),  # a domain controller: Administrators only, by default
    ([reg.SID_USERS], [reg.SID_LOCAL_ACCOUNT], 3, None),  # Users cover both groups; the CIS local-account deny is a fact
])
def test_logon_right_groups(allow: list[str], deny: list[str], product_type: int, expected: tuple | None) -> None:
    raw = samples.healthy_raw()
    raw["accounts"]["rights"] = {reg.RIGHT_ALLOW_RDP: allow, reg.RIGHT_DENY_RDP: deny}
    raw["accounts"]["checked"] = []
    raw["os"]["product_type"] = product_type
    found = [f for f in fd.evaluate(hf.normalize(raw, samples.NOW, [])) if f["id"] == "RDP-LOGON-RIGHT-GROUPS"]
    if expected is None:
        assert found == []
        return
    severity, missing, denied = expected
    assert (found[0]["severity"], found[0]["evidence"]["groups_not_allowed"], found[0]["evidence"]["groups_denied"]) == (severity, missing, denied)


# ---- secure channel, logon services, NTLM ----

def _member(raw: Raw, ok: bool | None) -> None:
    raw["os"].update(part_of_domain=True, domain="corp.example.com")
    raw["secure_channel"] = {"checked": True, "ok": ok, "domain": "corp.example.com"}
    raw["logon_services"][1].update(state="Running", start_mode="Auto")


def test_broken_secure_channel() -> None:
    raw = samples.healthy_raw()
    _member(raw, False)
    found = by_id(raw, "RDP-DOMAIN-TRUST-BROKEN")
    assert found["evidence"] == {"domain": "corp.example.com", "secure_channel_ok": False} and "-Repair" in found["fix"]["manual"]
    _member(raw, True)
    assert "RDP-DOMAIN-TRUST-BROKEN" not in ids(raw)


@pytest.mark.parametrize("service,member,severity,explains", [
    ("LSM", False, "critical", True), ("Netlogon", True, "high", False), ("BFE", False, "medium", False),
])
def test_stopped_logon_service(service: str, member: bool, severity: str, explains: bool) -> None:
    raw = samples.healthy_raw()
    if member:
        _member(raw, True)
    next(s for s in raw["logon_services"] if s["name"] == service)["state"] = "Stopped"
    found = by_id(raw, "RDP-LOGON-SERVICE-STOPPED")
    assert (list(found["evidence"]["stopped"]), found["severity"], found["explains_0x904"]) == ([service], severity, explains)


def test_workgroup_netlogon_and_stopped_firewall_service_are_not_this_finding() -> None:
    """Netlogon is Manual and stopped on a workgroup host; MpsSvc stopped is RDP-READ-INCOMPLETE's (firewall unread)."""
    raw = samples.healthy_raw()
    raw["logon_services"][3]["state"] = "Stopped"
    assert ids(raw) == []


@pytest.mark.parametrize("value,severity", [(2, "high"), (1, "medium"), (0, None)])
def test_incoming_ntlm_restriction(value: int, severity: str | None) -> None:
    raw = samples.healthy_raw()
    raw["registry"][reg.MSV1_0] = {"RestrictReceivingNTLMTraffic": value, "RestrictSendingNTLMTraffic": 2}
    found = [f for f in fd.evaluate(facts_of(raw)) if f["id"] == "RDP-NTLM-INCOMING-DENIED"]
    assert [f["severity"] for f in found] == ([severity] if severity else [])
    assert facts_of(raw)["ntlm"]["restrict_sending"] == 2  # a fact, not judged (the host's outgoing NTLM)


# ---- connections: the host's record of clients ----

TCP_REFUSED = {"verdict": {"ok": False, "failed_step": "tcp"},
               "steps": [{"step": "tcp", "verdict": "fail", "finding_ids": ["RDP-PROBE-TCP-REFUSED"], "summary": "refused"}]}


def test_path_blocked_says_whether_other_clients_arrive() -> None:
    raw = samples.healthy_raw()
    assert fd.evaluate(facts_of(raw), TCP_REFUSED)[0]["fix"]["manual"].startswith("The host listens")
    _event(raw, RCM, reg.EVENT_RCM_CONNECTION_RECEIVED, 5, reg.LOG_RCM_OPERATIONAL)
    _event(raw, RCM, reg.EVENT_RCM_AUTHENTICATED, 3, reg.LOG_RCM_OPERATIONAL)
    blocked = next(f for f in fd.evaluate(facts_of(raw), TCP_REFUSED) if f["id"] == "RDP-PATH-BLOCKED")
    assert blocked["evidence"]["host_connections"]["clients_reached_listener"] is True
    assert (blocked["evidence"]["host_connections"]["received"], blocked["evidence"]["host_connections"]["authenticated"]) == (5, 3)
    assert blocked["fix"]["manual"].startswith("Other clients reach the listener")


def test_clients_that_arrive_and_never_authenticate() -> None:
    raw = samples.healthy_raw()
    _event(raw, reg.PROVIDER_RDPCORETS, reg.EVENT_RDPCORETS_TCP_ACCEPTED, 6, reg.LOG_RDPCORETS_OPERATIONAL)
    _event(raw, reg.PROVIDER_RDPCORETS, reg.EVENT_RDPCORETS_BAD_CREDENTIALS, 6, reg.LOG_RDPCORETS_OPERATIONAL)
    assert by_id(raw, "RDP-CLIENTS-FAIL-LOGON")["evidence"]["tcp_accepted"] == 6
    _event(raw, RCM, reg.EVENT_RCM_AUTHENTICATED, 1, reg.LOG_RCM_OPERATIONAL)  # one logon succeeded: not this finding
    assert ids(raw) == []


def test_connection_log_that_cannot_be_read_is_unknown() -> None:
    raw = samples.healthy_raw()
    raw["events"].append({"log": reg.LOG_RCM_OPERATIONAL, "provider": RCM, "ids": [261, 1149],
                          "error": {"type": "System.UnauthorizedAccessException", "message": "denied"}})
    conn = facts_of(raw)["connections"]
    assert (conn["read"], conn["clients_reached_listener"], conn["clients_authenticated"]) == (False, None, None)


def test_schannel_events_before_the_last_boot_do_not_count() -> None:
    """Schannel reads its settings at boot: events logged before the last restart are about a configuration gone
    (the lab's demo: TLS 1.2 re-enabled, host rebooted, the old 36871s still in the log)."""
    raw = samples.healthy_raw()
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_CREDENTIAL)  # last logged an hour before samples.NOW
    raw["os"]["last_boot_utc"] = samples.iso(samples.NOW - dt.timedelta(minutes=5))
    assert "RDP-TLS-SCHANNEL-ERRORS" not in ids(raw)
    raw["os"]["last_boot_utc"] = samples.iso(samples.NOW - dt.timedelta(days=3))
    assert "RDP-TLS-SCHANNEL-ERRORS" in ids(raw)


def test_credential_events_do_not_count_when_the_probe_just_completed_tls() -> None:
    """"Every client fails" is contradicted by a client of this run: the events are from before a fix that needed no
    reboot (a key ACL, a new certificate). Handshake events (some clients) still count."""
    tls_ok = {"steps": [{"step": "tcp", "verdict": "ok"}, {"step": "tls", "verdict": "ok"}]}
    tls_failed = {"steps": [{"step": "tcp", "verdict": "ok"}, {"step": "tls", "verdict": "fail"}]}
    raw = samples.healthy_raw()
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_KEY_ACCESS)
    assert "RDP-TLS-SCHANNEL-ERRORS" not in ids(raw, tls_ok)
    assert "RDP-TLS-SCHANNEL-ERRORS" in ids(raw, tls_failed) and "RDP-TLS-SCHANNEL-ERRORS" in ids(raw)
    _event(raw, "Schannel", reg.EVENT_SCHANNEL_ALERT)
    assert "RDP-TLS-SCHANNEL-ERRORS" in ids(raw, tls_ok)
