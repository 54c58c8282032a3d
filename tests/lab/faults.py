"""Named faults: each sets the model the way a broken Windows host is, with the events it logs (contracts section 8).

``FAULTS`` holds exactly the faults of contracts section 8. Faults combine: ``apply_faults`` applies a
list in the canonical order of ``FAULTS`` (so the result does not depend on the order given), rejects
unknown names, conflicting pairs and OS releases a fault cannot exist on. ``build_host`` makes a
healthy host and applies faults, picking an OS release the faults can exist on when none is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Callable

from tests.lab import certs
from tests.lab.behaviour import listener_entry
from tests.lab.model import (
    CREDSSP, DEFAULT_OS_VERSION, FIPS, FW_GPO_DOMAIN, FW_GPO_STANDARD, LAB_ACCOUNT, LOG_RCM_ADMIN, LS_NOT_CONNECTABLE, MPSSVC, POL,
    PROVIDER_RCM, PROVIDER_TCPIP, RCM, RCM_LICENSING_CORE, RCM_X509_VALUES, RDP_PROTOCOL_OBJECT, RDS_STORE_KEY,
    TERMSERVICE_LICENSE_SERVERS, WINSTATIONS,
    PROVIDER_SCHANNEL, PROVIDER_SCM, PROVIDER_SECURITY, RDP_FIREWALL_GROUP, RDP_TCP, RIGHT_DENY_RDP, RDS_STORE,
    SCHANNEL_PROTOCOL_NAMES, SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS, SID_USERS, TERMSERVICE, TS, UMRDPSERVICE,
    NETLOGON, Account, CertEntry, DomainPrincipal, FirewallRule, GroupMember, Host, Session, Socket, as_utc, logon_services, resolve_os_version, schannel_key,
)


class FaultError(ValueError):
    """A fault list that cannot be applied (unknown name, conflict, unsupported OS)."""


@dataclass(frozen=True)
class Fault:
    """One named way a Windows host breaks RDP."""

    name: str
    description: str
    finding_ids: tuple[str, ...]
    action: Callable[[Host, dt.datetime], None]
    os_versions: tuple[str, ...] = ()  # releases the fault can exist on; () = any
    conflicts: frozenset[str] = field(default_factory=frozenset)
    path_fault: bool = False  # outside the host: changes nothing in the model

    def apply(self, host: Host, now: dt.datetime) -> None:
        """Break ``host`` (mutates it) and record the fault name."""
        if self.os_versions and host.os.version not in self.os_versions:
            raise FaultError(f"fault {self.name!r} cannot exist on {host.release.caption} ({host.os.version}); "
                             f"use os_version one of {', '.join(self.os_versions)}")
        self.action(host, as_utc(now))
        if self.name not in host.faults:
            host.faults.append(self.name)


# ---- helpers ----
def _days_ago(now: dt.datetime, *days: float) -> list[dt.datetime]:
    """Event times ``days`` before ``now`` (oldest first)."""
    return sorted(now - dt.timedelta(days=d) for d in days)


def _seed(host: Host, purpose: str) -> bytes:
    """Stable bytes per host and purpose."""
    return hashlib.sha256(f"{host.name.lower()}|{purpose}".encode("utf-8")).digest()


def _reissue_self_signed(host: Host, now: dt.datetime, common_name: str | None = None, not_before: dt.datetime | None = None,
                         not_after: dt.datetime | None = None) -> CertEntry:
    """Replace the self-signed cert, keeping key, key flags and the parts not overridden; rebind if it was bound.

    Keeping everything not overridden lets cert faults combine in any order (expired + wrong name, ...).
    """
    old = host.self_signed_entry() or host.install_self_signed(now, log=False)
    was_bound = host.bound_thumbprint() in (None, old.thumbprint)
    cn = common_name or certs.cert_names(old.cert)[0]
    cert = certs.self_signed_rdp_cert(cn, old.key or certs.key_for(host.name), not_before or old.not_before, not_after or old.not_after)
    new = CertEntry(**{**old.__dict__, "cert": cert})
    host.cert_stores[RDS_STORE] = [new if e is old else e for e in host.cert_stores[RDS_STORE]]
    if was_bound:
        host.bind_cert(new)
    return new


def _target_entry(host: Host, now: dt.datetime) -> CertEntry:
    """The listener's certificate, or the self-signed one when the binding names no certificate."""
    return listener_entry(host) or host.self_signed_entry() or host.install_self_signed(now, log=False)


def _next_session_id(host: Host) -> int:
    """Session ids start at 2 on servers (0 services, 1 console)."""
    return max([s.session_id for s in host.sessions] + [1]) + 1


def _lab_account(host: Host) -> Account:
    """The lab's rdpuser (every healthy host has it)."""
    account = host.find_account(LAB_ACCOUNT)
    if account is None:
        raise FaultError(f"host {host.name} has no {LAB_ACCOUNT!r} account")
    return account


def _stop_termservice(host: Host, now: dt.datetime, start_mode: str) -> None:
    """TermService (and its dependent UmRdpService) stopped, with the SCM events [S22]."""
    for name in (UMRDPSERVICE, TERMSERVICE):
        service = host.services[name]
        service.state, service.pid = "Stopped", 0
    service = host.services[TERMSERVICE]
    if start_mode != service.start_mode:
        host.add_event("System", PROVIDER_SCM, 7040, now - dt.timedelta(hours=2),
                       f"The start type of the Remote Desktop Services service was changed from demand start to {start_mode.lower()}.",
                       level="Information")
        service.start_mode = start_mode
    host.add_event("System", PROVIDER_SCM, 7036, now - dt.timedelta(hours=1),
                   "The Remote Desktop Services service entered the stopped state.", level="Information")


MSG_1057 = ("The RD Session Host Server has failed to create a new self signed certificate to be used for RD Session Host Server"
            " authentication on SSL connections. The relevant status code was {status}.")
MSG_1058 = ("The RD Session Host Server has failed to replace the expired self signed certificate used for RD Session Host Server"
            " authentication on SSL connections. The relevant status code was Access is denied.")
MSG_36870 = ("A fatal error occurred when attempting to access the TLS server credential private key. The error code returned from"
             " the cryptographic module is {code}. The internal error state is 10001.")
MSG_36871 = "A fatal error occurred while creating a TLS server credential. The internal error state is 10013."


# ---- the faults, in canonical application order ----
def _rdp_disabled(host: Host, _now: dt.datetime) -> None:
    host.reg_set(TS, "fDenyTSConnections", 1)


def _gpo_denies_connections(host: Host, _now: dt.datetime) -> None:
    host.reg_set(POL, "fDenyTSConnections", 1)


def _listener_disabled(host: Host, _now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "fEnableWinStation", 0)


def _termservice_stopped(host: Host, now: dt.datetime) -> None:
    _stop_termservice(host, now, host.services[TERMSERVICE].start_mode)


def _termservice_disabled(host: Host, now: dt.datetime) -> None:
    _stop_termservice(host, now, "Disabled")


def _port_conflict(host: Host, _now: dt.datetime) -> None:
    port = host.reg_get(RDP_TCP, "PortNumber", 3389)
    host.other_sockets.append(Socket("tcp", "0.0.0.0", int(port) if isinstance(port, int) else 3389, 4242, "nginx"))


def _port_moved(host: Host, _now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "PortNumber", 3390)  # the firewall rules keep 3389


def _firewall_rdp_disabled(host: Host, _now: dt.datetime) -> None:
    for rule in host.firewall_rules:
        if rule.group == RDP_FIREWALL_GROUP:
            rule.enabled = False


def _firewall_gpo_blocks(host: Host, _now: dt.datetime) -> None:
    for key in (FW_GPO_DOMAIN, FW_GPO_STANDARD):
        host.reg_set(key, "Enabled", 0)


def _dns_mismatch(host: Host, _now: dt.datetime) -> None:
    host.path_faults.add("dns_mismatch")


def _cert_expired(host: Host, now: dt.datetime) -> None:
    _reissue_self_signed(host, now, not_before=now - dt.timedelta(days=200), not_after=now - dt.timedelta(days=18))
    host.add_events("System", PROVIDER_RCM, 1058, _days_ago(now, 17, 9, 1), MSG_1058)


def _old_computer_name(host: Host) -> str:
    """A Windows-setup style name (WIN-XXXXXXXXXXX) the host had before it was renamed."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"
    name = "WIN-" + "".join(alphabet[b % len(alphabet)] for b in _seed(host, "old-name")[:11])
    return f"{name}.{host.os.domain}".lower() if host.os.part_of_domain else name


def _cert_wrong_name(host: Host, now: dt.datetime) -> None:
    _reissue_self_signed(host, now, common_name=_old_computer_name(host))


def _cert_key_unreadable(host: Host, now: dt.datetime) -> None:
    entry = _target_entry(host, now)
    entry.key_readable_by_network_service = False
    key_file = host.machinekeys.files.get(entry.key_file or "")
    if key_file is not None:
        key_file.sddl = "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)"  # NETWORK SERVICE's read ACE removed
    host.add_events("System", PROVIDER_SCHANNEL, 36870, _days_ago(now, 2, 1, 0.01), MSG_36870.format(code="0x8009030d"))


def _cert_bound_missing(host: Host, _now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "SSLCertificateSHA1Hash", _seed(host, "missing-cert")[:20])


def _machinekeys_acl_broken(host: Host, now: dt.datetime) -> None:
    host.machinekeys.sddl = "O:SYG:SYD:PAI(A;;FA;;;BA)"  # Everyone's ACE gone [S5]
    host.add_events("System", PROVIDER_RCM, 1057, _days_ago(now, 3, 1), MSG_1057.format(status="Access is denied"))
    host.add_events("System", PROVIDER_SCHANNEL, 36870, _days_ago(now, 1, 0.01), MSG_36870.format(code="0x80090016"))


def _listener_key_missing(host: Host, now: dt.datetime) -> None:
    host.machinekeys.files.pop(host.listener_key_file_name, None)
    entry = host.self_signed_entry()
    if entry is not None:
        entry.key_error = "Keyset does not exist"
    host.add_events("System", PROVIDER_RCM, 1057, _days_ago(now, 2, 0.5), MSG_1057.format(status="Keyset does not exist"))
    host.add_events("System", PROVIDER_SCHANNEL, 36870, _days_ago(now, 0.5, 0.01), MSG_36870.format(code="0x80090016"))


def _credssp_server_unpatched(host: Host, _now: dt.datetime) -> None:
    unpatched = host.release.tspkg_unpatched
    if unpatched is None:  # guarded by os_versions; kept for direct callers
        raise FaultError(f"{host.release.caption} shipped with the CredSSP fix")
    host.os.tspkg_version = unpatched


def _credssp_force_updated(host: Host, _now: dt.datetime) -> None:
    host.reg_set(CREDSSP, "AllowEncryptionOracle", 0)


def _credssp_vulnerable(host: Host, _now: dt.datetime) -> None:
    host.reg_set(CREDSSP, "AllowEncryptionOracle", 2)


def _security_layer_rdp(host: Host, _now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "SecurityLayer", 0)


def _gpo_overrides_security_layer(host: Host, _now: dt.datetime) -> None:
    host.reg_set(POL, "SecurityLayer", 0)  # the local value (2) stays: the policy wins


def _nla_disabled(host: Host, _now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "UserAuthentication", 0)


def _fips_encryption(host: Host, _now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "MinEncryptionLevel", 4)
    host.reg_set(FIPS, "Enabled", 1)


def _tls12_disabled(host: Host, _now: dt.datetime) -> None:
    host.reg_set(schannel_key("TLS 1.2"), "Enabled", 0)
    host.reg_set(schannel_key("TLS 1.2"), "DisabledByDefault", 1)
    host.reg_set(schannel_key("TLS 1.0"), "Enabled", 1)
    host.reg_set(schannel_key("TLS 1.0"), "DisabledByDefault", 0)


def _all_tls_disabled(host: Host, now: dt.datetime) -> None:
    for protocol in SCHANNEL_PROTOCOL_NAMES:
        host.reg_set(schannel_key(protocol), "Enabled", 0)
        host.reg_set(schannel_key(protocol), "DisabledByDefault", 1)
    host.add_events("System", PROVIDER_SCHANNEL, 36871, _days_ago(now, 1, 0.5, 0.01), MSG_36871)


def _session_limit_reached(host: Host, now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "MaxInstanceCount", 2)
    for name in ("Administrator", "operator"):
        account = host.ensure_account(name, (SID_ADMINISTRATORS,))
        host.sessions.append(Session(_next_session_id(host), f"{host.os.computer_name}\\{account.name}", "Active",
                                     logon_time=now - dt.timedelta(hours=5), last_input_time=now - dt.timedelta(minutes=3)))


def _ghost_sessions(host: Host, now: dt.datetime) -> None:
    host.reg_delete(POL, "MaxDisconnectionTime")
    host.reg_set(RDP_TCP, "MaxDisconnectionTime", 0)  # 0 = never end disconnected sessions [S10]
    for name, days in (("alice", 3), ("bob", 12), ("carol", 40)):
        account = host.ensure_account(name, (SID_USERS, SID_REMOTE_DESKTOP_USERS))
        gone = now - dt.timedelta(days=days)
        host.sessions.append(Session(_next_session_id(host), f"{host.os.computer_name}\\{account.name}", "Disconnected",
                                     logon_time=gone - dt.timedelta(hours=6), disconnect_time=gone, last_input_time=gone))


def _licensing_grace_expired(host: Host, now: dt.datetime) -> None:
    host.os.rdsh_installed = True
    host.licensing.grace_period_days = 0
    host.licensing.license_servers = []
    host.licensing.licensing_type = 5  # not configured
    host.reg_delete(POL, "LicenseServers")
    host.reg_delete(POL, "LicensingMode")
    host.add_events(LOG_RCM_ADMIN, PROVIDER_RCM, 1069, _days_ago(now, 2, 1, 0.01),
                    "The RD Licensing grace period has expired and Licensing mode for the Remote Desktop Session Host server has"
                    " not been configured. Licensing mode must be configured for continuous operation.")
    host.add_events(LOG_RCM_ADMIN, PROVIDER_RCM, 1068, _days_ago(now, 20), "The RD Licensing mode has not been configured.",
                    level="Warning")


def _account_disabled(host: Host, _now: dt.datetime) -> None:
    _lab_account(host).disabled = True


def _account_locked_out(host: Host, now: dt.datetime) -> None:
    account = _lab_account(host)
    account.locked_out = True
    host.add_event("Security", PROVIDER_SECURITY, 4740, now - dt.timedelta(minutes=30),
                   f"A user account was locked out. Account That Was Locked Out: Security ID: {account.sid} Account Name: {account.name}",
                   level="Information")


def _account_denied_rdp(host: Host, _now: dt.datetime) -> None:
    sid = _lab_account(host).sid
    denied = host.user_rights.setdefault(RIGHT_DENY_RDP, [])
    if sid not in denied:
        denied.append(sid)


def _account_not_in_rdu(host: Host, _now: dt.datetime) -> None:
    host.remove_from_group(SID_REMOTE_DESKTOP_USERS, _lab_account(host).sid)


# ---- host states that a read must survive (issue 7): each breaks one section of the read, not RDP itself ----
LAB_DOMAIN = "contoso.com"
DOMAIN_USER = "CONTOSO\\alice"
DOMAIN_GROUP = "CONTOSO\\RDP Admins"
MSG_TRUST = "The trust relationship between this workstation and the primary domain failed."


def _join_domain(host: Host) -> str:
    """Join the lab domain (if not yet) and return the domain SID; the active firewall profile becomes Domain."""
    if not host.os.part_of_domain:
        host.os.part_of_domain, host.os.domain, host.os.netbios_domain = True, LAB_DOMAIN, "CONTOSO"
        host.services.update({k: v for k, v in logon_services(True).items() if k == NETLOGON})  # a member's Netlogon runs
    raw = _seed(host, "domain-sid")
    return "S-1-5-21-" + "-".join(str(int.from_bytes(raw[i:i + 4], "little")) for i in (0, 4, 8))


def _add_domain_user(host: Host, member_of: tuple[str, ...] = ()) -> DomainPrincipal:
    """CONTOSO\\alice, checked by diagnose on this host (the lab inventory lists her)."""
    domain_sid = _join_domain(host)
    principal = next((p for p in host.domain_principals if p.name == DOMAIN_USER), None)
    if principal is None:
        principal = DomainPrincipal(DOMAIN_USER, f"{domain_sid}-1104")
        host.domain_principals.append(principal)
    principal.member_of.extend(sid for sid in member_of if sid not in principal.member_of)
    if DOMAIN_USER not in host.inventory_accounts:
        host.inventory_accounts.append(DOMAIN_USER)
    return principal


def _rdp_group_rules_disabled(host: Host) -> None:
    """The Remote Desktop group rules off, so that what opens the port is the rule a fault adds."""
    for rule in host.firewall_rules:
        if rule.group == RDP_FIREWALL_GROUP:
            rule.enabled = False


def _firewall_service_stopped(host: Host, now: dt.datetime) -> None:
    service = host.services[MPSSVC]
    service.state, service.pid = "Stopped", 0
    host.add_event("System", PROVIDER_SCM, 7036, now - dt.timedelta(hours=3),
                   "The Windows Defender Firewall service entered the stopped state.", level="Information")


def _event_unformattable(host: Host, now: dt.datetime) -> None:
    # TermDD 56 whose insertion strings do not fit the provider's message (EventLogException "The data is invalid").
    for index, when in enumerate(_days_ago(now, 2, 1, 0.1)):
        event = host.add_event("System", "TermDD", 56, when, "The Terminal Server security layer detected an error in the protocol "
                               "stream and has disconnected the client.")
        if index == 2:
            event.format_error = "The data is invalid."


def _wmi_terminalservices_broken(host: Host, _now: dt.datetime) -> None:
    host.wmi_error = "Provider load failure "  # WBEM_E_PROVIDER_LOAD_FAILURE (0x80041013), as CIM words it


def _wts_unavailable(host: Host, _now: dt.datetime) -> None:
    host.wts_error = "The RPC server is unavailable"  # WTSEnumerateSessionsW -> RPC_S_SERVER_UNAVAILABLE (1722)


def _key_not_openable_by_admin(host: Host, now: dt.datetime) -> None:
    entry = _target_entry(host, now)
    key_file = host.machinekeys.files.get(entry.key_file or "")
    if key_file is not None:
        key_file.readable = False  # owner Administrators (can read the ACL), no ACE for them: opening the file is denied
        key_file.sddl = "O:BAG:SYD:P(A;;FA;;;SY)(A;;0x120089;;;NS)"


def _netfx_45_only(host: Host, _now: dt.datetime) -> None:
    host.netfx_release = 379893  # .NET Framework 4.5.2: WMF 5.1's minimum; no RSACertificateExtensions, no RSACng


def _accounts_domain_unreachable(host: Host, _now: dt.datetime) -> None:
    _add_domain_user(host)
    host.domain_reachable = False


def _accounts_nested_group(host: Host, _now: dt.datetime) -> None:
    domain_sid = _join_domain(host)
    group_sid = f"{domain_sid}-1105"
    host.domain_principals.append(DomainPrincipal(DOMAIN_GROUP, group_sid))
    host.add_to_group(SID_REMOTE_DESKTOP_USERS, GroupMember(group_sid, DOMAIN_GROUP))
    _add_domain_user(host, member_of=(group_sid,))


def _firewall_rule_program_filtered(host: Host, _now: dt.datetime) -> None:
    _rdp_group_rules_disabled(host)
    host.firewall_rules.append(FirewallRule("Contoso-Agent-In-TCP", "Contoso Agent (TCP-In)", "", True, "TCP", ["3389"],
                                            program="C:\\Program Files\\Contoso\\agent.exe"))


def _firewall_rule_address_filtered(host: Host, _now: dt.datetime) -> None:
    _rdp_group_rules_disabled(host)
    host.firewall_rules.append(FirewallRule("Jump-RDP-In-TCP", "RDP from the jump hosts (TCP-In)", "", True, "TCP", ["3389"],
                                            remote_addresses=["10.99.0.0/255.255.0.0"]))


def _firewall_allow_any_port(host: Host, _now: dt.datetime) -> None:
    _rdp_group_rules_disabled(host)
    host.firewall_rules.append(FirewallRule("Allow-All-In-TCP", "Allow all inbound TCP", "", True, "TCP", ["Any"]))


# ---- issue 12 part B: cipher suites, Schannel events, listener ACL, logon rights by group, logon prerequisites, connections ----
CIPHER_POLICY = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002"
SCHANNEL_CIPHERS = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Ciphers"
MSV1_0 = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\MSV1_0"
LOG_RCM_OPERATIONAL = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"
LOG_RDPCORETS = "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational"
PROVIDER_RDPCORETS = "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS"
MSG_36874 = ("An TLS 1.2 connection request was received from a remote client application, but none of the cipher suites supported"
             " by the client application are supported by the server. The TLS connection request has failed.")
MSG_36888 = ("A fatal alert was generated and sent to the remote endpoint. This may result in termination of the connection. The TLS"
             " protocol defined fatal error code is 40. The Windows SChannel error state is 1205.")
MSG_261 = "Listener RDP-Tcp received a connection"
MSG_1149 = "Remote Desktop Services: User authentication succeeded: User: rdpuser Domain: Source Network Address: 10.20.0.15"
MSG_131 = "The server accepted a new TCP connection from client 10.20.0.15:52113."
MSG_140 = ("A connection from the client computer with an IP address of 10.20.0.15 failed because the user name or password is not"
           " correct.")


def _tls_cipher_policy_no_common(host: Host, now: dt.datetime) -> None:
    """A hardening GPO's "SSL Cipher Suite Order" that keeps only suites no modern client offers; clients fail (36874)."""
    host.reg_set(CIPHER_POLICY, "Functions", "TLS_RSA_WITH_RC4_128_SHA,TLS_RSA_WITH_3DES_EDE_CBC_SHA")
    host.add_events("System", PROVIDER_SCHANNEL, 36874, _days_ago(now, 2, 1, 0.1), MSG_36874)


def _schannel_aes_disabled(host: Host, now: dt.datetime) -> None:
    """SCHANNEL\\Ciphers\\AES 128/128 and AES 256/256 Enabled=0 (a hardening script gone wrong): no AES suite is left."""
    for cipher in ("AES 128/128", "AES 256/256"):
        host.reg_set(f"{SCHANNEL_CIPHERS}\\{cipher}", "Enabled", 0)
    host.add_events("System", PROVIDER_SCHANNEL, 36874, _days_ago(now, 1, 0.2), MSG_36874)


def _schannel_handshake_errors(host: Host, now: dt.datetime) -> None:
    """A healthy listener that logs fatal alerts (36888, alert 40) for some clients: old clients or scanners."""
    host.add_events("System", PROVIDER_SCHANNEL, 36888, _days_ago(now, 3, 2, 1, 0.5), MSG_36888)


def _listener_acl_broken(host: Host, _now: dt.datetime) -> None:
    """The RDP-Tcp ACL lost Administrators and Remote Desktop Users (a hand-edited or imported Security value)."""
    host.listener_acl = [a for a in host.listener_acl if a.sid not in (SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS)]


def _logon_right_groups_denied(host: Host, _now: dt.datetime) -> None:
    """Remote Desktop Users in "Deny log on through Remote Desktop Services" (a baseline applied to the wrong OU)."""
    host.user_rights[RIGHT_DENY_RDP] = list(host.user_rights.get(RIGHT_DENY_RDP, [])) + [SID_REMOTE_DESKTOP_USERS]


def _netlogon_stopped(host: Host, now: dt.datetime) -> None:
    """A domain member whose Netlogon service is stopped: NLA cannot authenticate domain accounts."""
    _join_domain(host)
    host.stop_service(NETLOGON, now)


def _ntlm_incoming_denied(host: Host, _now: dt.datetime) -> None:
    """"Restrict NTLM: Incoming NTLM traffic" = Deny all accounts (RestrictReceivingNTLMTraffic=2)."""
    host.reg_set(MSV1_0, "RestrictReceivingNTLMTraffic", 2)


def _client_connections(host: Host, now: dt.datetime, authenticated: bool) -> None:
    """Clients that reached the listener during the last days (RCM 261, RdpCoreTS 131), authenticated (1149) or not (140)."""
    times = _days_ago(now, 3, 2, 1, 0.2)
    host.add_events(LOG_RCM_OPERATIONAL, PROVIDER_RCM, 261, times, MSG_261, level="Information")
    host.add_events(LOG_RDPCORETS, PROVIDER_RDPCORETS, 131, times, MSG_131, level="Information")
    if authenticated:
        host.add_events(LOG_RCM_OPERATIONAL, PROVIDER_RCM, 1149, times, MSG_1149, level="Information")
    else:
        host.add_events(LOG_RDPCORETS, PROVIDER_RDPCORETS, 140, times, MSG_140, level="Warning")


def _path_blocked_clients_arrive(host: Host, now: dt.datetime) -> None:
    """Path fault: a device between the controller and the host rejects RDP (the lab listener refuses the probe while the
    host model accepts), while the host's logs show other clients arriving and authenticating."""
    host.path_faults.add("path_blocked")
    _client_connections(host, now, authenticated=True)


def _clients_fail_logon(host: Host, now: dt.datetime) -> None:
    """Clients reach the listener and fail with a wrong password; none authenticates."""
    _client_connections(host, now, authenticated=False)


# ---- issue 12, part A: licensing set without Group Policy, listener state and stack, port, caps, port exhaustion ----
LICENSE_SERVER = "ls01.contoso.com"
CITRIX_PROTOCOL_OBJECT = "{bc7fdab0-9a0d-4a3d-9c46-5e0c5c1b0d1a}"  # the stack a removed Citrix VDA left on RDP-Tcp (not installed)


def _licensed_without_gpo(host: Host, now: dt.datetime) -> None:
    """An RD Session Host licensed through Server Manager / Set-RDLicenseConfiguration: SpecifiedLicenseServers and
    RCM\\Licensing Core LicensingMode, no licensing policy; its grace counter reads 0, as on a licensed host it can."""
    host.os.rdsh_installed = True
    host.licensing.grace_period_days = 0
    host.reg_delete(POL, "LicenseServers")
    host.reg_delete(POL, "LicensingMode")
    host.reg_set(TERMSERVICE_LICENSE_SERVERS, "SpecifiedLicenseServers", [LICENSE_SERVER])
    host.licensing.license_servers = [LICENSE_SERVER]  # what GetSpecifiedLicenseServerList answers (the same value)
    host.licensing.licensing_type = 4
    host.reg_set(RCM_LICENSING_CORE, "LicensingMode", 4)  # per user
    host.add_event(LOG_RCM_ADMIN, PROVIDER_RCM, 1143, now - dt.timedelta(days=30),
                   "The Remote Desktop license server has been set to ls01.contoso.com.", level="Information")


def _license_server_unreachable(host: Host, now: dt.datetime) -> None:
    _licensed_without_gpo(host, now)
    host.licensing.server_status[LICENSE_SERVER] = LS_NOT_CONNECTABLE
    host.add_events(LOG_RCM_ADMIN, PROVIDER_RCM, 1128, _days_ago(now, 1, 0.2),
                    "The RD Licensing grace period has expired and the service has not registered with a license server with "
                    "installed licenses. A RD Licensing server is required for continuous operation.")


def _licensing_x509_missing(host: Host, now: dt.datetime) -> None:
    _licensed_without_gpo(host, now)
    for name in RCM_X509_VALUES:
        host.reg_delete(RCM, name)


def _listener_down(host: Host, _now: dt.datetime) -> None:
    host.listener_down = True  # until TermService starts again (no documented event says so)


def _protocol_stack_leftover(host: Host, _now: dt.datetime) -> None:
    # A Citrix VDA replaced the stack and saved Microsoft's; the VDA is gone, its stack with it: the listener cannot start.
    host.reg_set(RDP_TCP, "CitrixBackupRdpTcpLoadableProtocolObject", RDP_PROTOCOL_OBJECT)
    host.reg_set(RDP_TCP, "LoadableProtocol_Object", CITRIX_PROTOCOL_OBJECT)


def _port_number_missing(host: Host, _now: dt.datetime) -> None:
    host.reg_delete(RDP_TCP, "PortNumber")


def _instance_limit_low(host: Host, _now: dt.datetime) -> None:
    host.reg_set(RDP_TCP, "MaxInstanceCount", 1)


def _port_exhaustion(host: Host, now: dt.datetime) -> None:
    host.add_events("System", PROVIDER_TCPIP, 4231, _days_ago(now, 2, 1, 0.3),
                    "A request to allocate an ephemeral port number from the global TCP port space has failed due to all such "
                    "ports being in use.")
    host.add_events("System", PROVIDER_TCPIP, 4227, _days_ago(now, 1), "TCP/IP failed to establish an outgoing connection "
                    "because the selected local endpoint was recently used to connect to the same remote endpoint.", level="Warning")


def _self_signed_store_moved(host: Host, _now: dt.datetime) -> None:
    host.reg_set(WINSTATIONS, "SelfSignedCertStore", "My")


def _cert_store_system_denied(host: Host, now: dt.datetime) -> None:
    # A hardening script denied SYSTEM on the Remote Desktop store: the next renewal fails (1058), the current cert still works.
    host.key_sddl[RDS_STORE_KEY] = "O:SYG:SYD:AI(D;CI;KA;;;SY)(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)"
    host.add_event("System", PROVIDER_RCM, 1057, now - dt.timedelta(days=2), "The RD Session Host Server has failed to create a new "
                   "self signed certificate to be used for RD Session Host Server authentication on SSL connections. The relevant "
                   "status code was Access is denied.")


def _ephemeral_range_narrow(host: Host, _now: dt.datetime) -> None:
    host.dynamic_ports = (60000, 1000)  # netsh int ipv4 set dynamicport tcp start=60000 num=1000


def _idle_limit_short(host: Host, _now: dt.datetime) -> None:
    # The listener overrides user settings with a 1-minute idle limit that logs the session off (fResetBroken=1).
    for name, value in (("MaxIdleTime", 60_000), ("fInheritMaxIdleTime", 0), ("fResetBroken", 1), ("fInheritResetBroken", 0)):
        host.reg_set(RDP_TCP, name, value)


def _session_limits_inherited(host: Host, now: dt.datetime) -> None:
    # MaxDisconnectionTime=1h on RDP-Tcp, but fInheritMaxDisconnectionTime=1 (the default): Windows applies each user's
    # limit ("never"), so the disconnected sessions stay (issue 12).
    _ghost_sessions(host, now)
    host.reg_set(RDP_TCP, "MaxDisconnectionTime", 3_600_000)
    host.reg_set(RDP_TCP, "fInheritMaxDisconnectionTime", 1)


_PRE_FIX_RELEASES = ("6.3.9600", "10.0.14393")

_FAULT_LIST = [
    Fault("rdp_disabled", "Remote Desktop switched off: TS fDenyTSConnections=1", ("RDP-CONNECTIONS-DENIED",), _rdp_disabled),
    Fault("gpo_denies_connections", "policy fDenyTSConnections=1 overrides the local 0", ("RDP-CONNECTIONS-DENIED", "RDP-GPO-OVERRIDE"),
          _gpo_denies_connections),
    Fault("listener_disabled", "RDP-Tcp listener off: fEnableWinStation=0", ("RDP-LISTENER-DISABLED",), _listener_disabled),
    Fault("termservice_stopped", "TermService stopped (start mode unchanged), nothing listens on 3389", ("RDP-SERVICE-STOPPED",),
          _termservice_stopped),
    Fault("termservice_disabled", "TermService stopped and start mode Disabled", ("RDP-SERVICE-DISABLED",), _termservice_disabled),
    Fault("port_conflict", "nginx (pid 4242) owns TCP 3389, TermService runs but cannot listen", ("RDP-PORT-CONFLICT",), _port_conflict),
    Fault("port_moved", "RDP-Tcp PortNumber=3390 while the firewall rules still allow 3389 only", ("RDP-PORT-NOT-ALLOWED",), _port_moved),
    Fault("firewall_rdp_disabled", "the Remote Desktop firewall rule group is disabled", ("RDP-FIREWALL-RULES-DISABLED",),
          _firewall_rdp_disabled),
    Fault("firewall_gpo_blocks", "GPO 'Allow inbound Remote Desktop exceptions' Disabled (Enabled=0, both profiles)",
          ("RDP-FIREWALL-GPO-BLOCKS",), _firewall_gpo_blocks),
    Fault("dns_mismatch", "path fault: the inventory's probe name resolves to another address (localhost)", ("RDP-DNS-MISMATCH",),
          _dns_mismatch, path_fault=True),
    Fault("cert_expired", "the bound self-signed certificate expired 18 days ago; events 1058", ("RDP-CERT-EXPIRED",), _cert_expired),
    Fault("cert_wrong_name", "the self-signed certificate names the computer's old name (renamed host)", ("RDP-CERT-NAME-MISMATCH",),
          _cert_wrong_name),
    Fault("cert_key_unreadable", "NETWORK SERVICE cannot read the bound certificate's private key; Schannel 36870",
          ("RDP-CERT-KEY-UNREADABLE",), _cert_key_unreadable),
    Fault("cert_bound_missing", "SSLCertificateSHA1Hash names a certificate that is in no store", ("RDP-CERT-MISSING",), _cert_bound_missing),
    Fault("machinekeys_acl_broken", "MachineKeys folder ACL without Everyone; events 1057 and 36870", ("RDP-MACHINEKEYS-ACL",),
          _machinekeys_acl_broken),
    Fault("listener_key_missing", "the listener key file f686aace..._<MachineGuid> is gone; events 1057 and 36870",
          ("RDP-LISTENER-KEY-BROKEN",), _listener_key_missing),
    Fault("credssp_server_unpatched", "tspkg.dll older than the CredSSP (CVE-2018-0886) fix; 2012 R2 or 2016 only",
          ("RDP-CREDSSP-UNPATCHED",), _credssp_server_unpatched, os_versions=_PRE_FIX_RELEASES),
    Fault("credssp_force_updated", "AllowEncryptionOracle=0 (Force Updated Clients)", ("RDP-CREDSSP-FORCE-UPDATED",), _credssp_force_updated,
          conflicts=frozenset({"credssp_vulnerable"})),
    Fault("credssp_vulnerable", "AllowEncryptionOracle=2 (Vulnerable)", ("RDP-CREDSSP-VULNERABLE",), _credssp_vulnerable,
          conflicts=frozenset({"credssp_force_updated"})),
    Fault("security_layer_rdp", "RDP-Tcp SecurityLayer=0 (native RDP security)", ("RDP-SECURITY-LAYER-RDP",), _security_layer_rdp),
    Fault("gpo_overrides_security_layer", "policy SecurityLayer=0 overrides the local 2", ("RDP-SECURITY-LAYER-RDP", "RDP-GPO-OVERRIDE"),
          _gpo_overrides_security_layer),
    Fault("nla_disabled", "RDP-Tcp UserAuthentication=0 (NLA off)", ("RDP-NLA-DISABLED",), _nla_disabled),
    Fault("fips_encryption", "MinEncryptionLevel=4 (FIPS) and FIPSAlgorithmPolicy Enabled=1", ("RDP-ENCRYPTION-FIPS",), _fips_encryption),
    Fault("tls12_disabled", "Schannel TLS 1.2 Server disabled, TLS 1.0 Server enabled", ("RDP-TLS12-DISABLED",), _tls12_disabled,
          conflicts=frozenset({"all_tls_disabled"})),
    Fault("all_tls_disabled", "every Schannel Server protocol disabled; Schannel 36871", ("RDP-TLS-ALL-DISABLED",), _all_tls_disabled,
          conflicts=frozenset({"tls12_disabled"})),
    Fault("session_limit_reached", "MaxInstanceCount=2 and two active sessions", ("RDP-SESSION-LIMIT-REACHED",), _session_limit_reached),
    Fault("ghost_sessions", "disconnected sessions 3-40 days old and no MaxDisconnectionTime", ("RDP-GHOST-SESSIONS",), _ghost_sessions),
    Fault("licensing_grace_expired", "RDSH role, licensing grace period over, no license server; events 1069",
          ("RDP-LICENSING-GRACE-EXPIRED",), _licensing_grace_expired),
    Fault("account_disabled", "rdpuser is disabled", ("RDP-ACCOUNT-DISABLED",), _account_disabled),
    Fault("account_locked_out", "rdpuser is locked out; Security 4740", ("RDP-ACCOUNT-LOCKED-OUT",), _account_locked_out),
    Fault("account_denied_rdp", "rdpuser's SID is in SeDenyRemoteInteractiveLogonRight", ("RDP-ACCOUNT-DENIED-LOGON",), _account_denied_rdp),
    Fault("account_not_in_rdu", "rdpuser is not in Remote Desktop Users (S-1-5-32-555)", ("RDP-ACCOUNT-NOT-ALLOWED",), _account_not_in_rdu),
    Fault("firewall_service_stopped", "the firewall service (MpsSvc) is stopped: its rules cannot be read (CIM error 1753)",
          ("RDP-READ-INCOMPLETE",), _firewall_service_stopped),
    Fault("event_unformattable", "TermDD 56 three times, the newest one's message cannot be formatted", ("RDP-READ-INCOMPLETE",),
          _event_unformattable),
    Fault("wmi_terminalservices_broken", "the TerminalServices WMI provider fails to load (Win32_TSGeneralSetting, "
          "Win32_TerminalServiceSetting)", ("RDP-READ-INCOMPLETE",), _wmi_terminalservices_broken),
    Fault("wts_unavailable", "the WTS API cannot enumerate sessions (RPC server unavailable, 1722)", ("RDP-READ-INCOMPLETE",),
          _wts_unavailable),
    Fault("key_not_openable_by_admin", "the listener key file denies the administrator (NETWORK SERVICE can still read it)", (),
          _key_not_openable_by_admin),
    Fault("netfx_45_only", "Server 2012 R2 with .NET Framework 4.5.2 only (no RSACertificateExtensions)", (), _netfx_45_only,
          os_versions=("6.3.9600",)),
    Fault("accounts_domain_unreachable", "domain member whose trust is broken; diagnose checks CONTOSO\\alice as well",
          ("RDP-READ-INCOMPLETE", "RDP-DOMAIN-TRUST-BROKEN"), _accounts_domain_unreachable),
    Fault("accounts_nested_group", "CONTOSO\\alice may log on through CONTOSO\\RDP Admins, a member of Remote Desktop Users",
          ("RDP-ACCOUNT-MEMBERSHIP-UNKNOWN",), _accounts_nested_group),
    Fault("firewall_rule_program_filtered", "Remote Desktop rules off; a rule opens 3389 for another program only",
          ("RDP-FIREWALL-RULES-DISABLED",), _firewall_rule_program_filtered, conflicts=frozenset({"firewall_allow_any_port"})),
    Fault("firewall_rule_address_filtered", "Remote Desktop rules off; a rule opens 3389 from 10.99.0.0/16 only",
          ("RDP-FIREWALL-RULES-DISABLED",), _firewall_rule_address_filtered, conflicts=frozenset({"firewall_allow_any_port"})),
    Fault("firewall_allow_any_port", "Remote Desktop rules off; an allow rule for every TCP port opens 3389", (),
          _firewall_allow_any_port, conflicts=frozenset({"firewall_rule_program_filtered", "firewall_rule_address_filtered"})),
]

_FAULT_LIST += [  # issue 12 part B
    Fault("tls_cipher_policy_no_common", "GPO 'SSL Cipher Suite Order' keeps only RC4/3DES suites; Schannel 36874",
          ("RDP-TLS-NO-COMMON-CIPHER",), _tls_cipher_policy_no_common),
    Fault("schannel_aes_disabled", "SCHANNEL Ciphers AES 128/128 and AES 256/256 Enabled=0; Schannel 36874",
          ("RDP-TLS-NO-COMMON-CIPHER",), _schannel_aes_disabled),
    Fault("schannel_handshake_errors", "a healthy listener logs Schannel 36888 (fatal alert 40) for some clients",
          ("RDP-TLS-SCHANNEL-ERRORS",), _schannel_handshake_errors),
    Fault("listener_acl_broken", "the RDP-Tcp ACL (Win32_TSAccount) without Administrators and Remote Desktop Users",
          ("RDP-LISTENER-ACL-DENIES",), _listener_acl_broken),
    Fault("logon_right_groups_denied", "Remote Desktop Users in SeDenyRemoteInteractiveLogonRight",
          ("RDP-LOGON-RIGHT-GROUPS", "RDP-ACCOUNT-DENIED-LOGON"), _logon_right_groups_denied),
    Fault("netlogon_stopped", "a contoso.com member whose Netlogon service is stopped", ("RDP-LOGON-SERVICE-STOPPED",), _netlogon_stopped),
    Fault("ntlm_incoming_denied", "MSV1_0 RestrictReceivingNTLMTraffic=2 (incoming NTLM denied for all accounts)",
          ("RDP-NTLM-INCOMING-DENIED",), _ntlm_incoming_denied),
    Fault("path_blocked_clients_arrive", "path fault: the probe's route is blocked while RCM 261/1149 and RdpCoreTS 131 show clients "
          "arriving", ("RDP-PATH-BLOCKED",), _path_blocked_clients_arrive, path_fault=True),
    Fault("clients_fail_logon", "RCM 261 and RdpCoreTS 131 show clients arriving, RdpCoreTS 140 wrong passwords, no 1149",
          ("RDP-CLIENTS-FAIL-LOGON",), _clients_fail_logon),
]

_FAULT_LIST += [  # issue 12, part A
    Fault("licensed_without_gpo", "RD Session Host licensed through Server Manager (SpecifiedLicenseServers, RCM LicensingMode), "
          "grace counter 0, no licensing policy: healthy", (), _licensed_without_gpo,
          conflicts=frozenset({"licensing_grace_expired", "license_server_unreachable", "licensing_x509_missing"})),
    Fault("license_server_unreachable", "RD Session Host licensed through Server Manager; its license server is not connectable "
          "(GetTStoLSConnectivityStatus 6); events 1128", ("RDP-LICENSE-SERVER-UNUSABLE",), _license_server_unreachable,
          conflicts=frozenset({"licensing_grace_expired", "licensed_without_gpo", "licensing_x509_missing"})),
    Fault("licensing_x509_missing", "RD Session Host licensed through Server Manager without its RCM X509 Certificate values",
          ("RDP-LICENSING-X509-MISSING",), _licensing_x509_missing,
          conflicts=frozenset({"licensing_grace_expired", "licensed_without_gpo", "license_server_unreachable"})),
    Fault("listener_down", "the RDP-Tcp listener failed to start (WTS state Down) while TermService runs",
          ("RDP-LISTENER-DOWN", "RDP-NOT-LISTENING"), _listener_down),
    Fault("protocol_stack_leftover", "RDP-Tcp LoadableProtocol_Object names a removed Citrix stack (backup value present): "
          "the listener is Down", ("RDP-PROTOCOL-STACK-FOREIGN", "RDP-LISTENER-DOWN", "RDP-NOT-LISTENING"), _protocol_stack_leftover),
    Fault("port_number_missing", "RDP-Tcp has no PortNumber value", ("RDP-PORT-MISSING",), _port_number_missing,
          conflicts=frozenset({"port_moved"})),
    Fault("instance_limit_low", "RDP-Tcp MaxInstanceCount=1, no session yet", ("RDP-INSTANCE-LIMIT-LOW",), _instance_limit_low,
          conflicts=frozenset({"session_limit_reached"})),
    Fault("port_exhaustion", "Tcpip 4231 (no ephemeral port left) three times and 4227", ("RDP-PORT-EXHAUSTION",), _port_exhaustion),
    Fault("self_signed_store_moved", "WinStations SelfSignedCertStore=My", ("RDP-SELF-SIGNED-STORE-MOVED",), _self_signed_store_moved),
    Fault("cert_store_system_denied", "a Deny ACE for SYSTEM on the Remote Desktop store's key; event 1057",
          ("RDP-CERT-STORE-ACL-DENY",), _cert_store_system_denied),
    Fault("ephemeral_range_narrow", "the TCP dynamic port range narrowed to 1000 ports from 60000", ("RDP-EPHEMERAL-RANGE-NARROW",),
          _ephemeral_range_narrow),
    Fault("idle_limit_short", "RDP-Tcp MaxIdleTime=1 minute with fInheritMaxIdleTime=0, fResetBroken=1 (log off)",
          ("RDP-SESSION-TIME-LIMIT-SHORT",), _idle_limit_short),
    Fault("session_limits_inherited", "ghost sessions; RDP-Tcp MaxDisconnectionTime=1h that fInheritMaxDisconnectionTime=1 makes "
          "Windows ignore", ("RDP-GHOST-SESSIONS",), _session_limits_inherited,
          conflicts=frozenset({"ghost_sessions", "session_limit_reached"})),
]

FAULTS: dict[str, Fault] = {fault.name: fault for fault in _FAULT_LIST}


def validate_faults(names: list[str] | tuple[str, ...], os_version: str | None = None) -> list[str]:
    """Check a fault list; return it in canonical order without duplicates, or raise FaultError."""
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise FaultError(f"unknown fault(s) {', '.join(map(repr, unknown))}; known faults: {', '.join(FAULTS)}")
    chosen = set(names)
    for name in sorted(chosen):
        clash = FAULTS[name].conflicts & chosen
        if clash:
            raise FaultError(f"fault {name!r} conflicts with {', '.join(sorted(clash))}")
    if os_version is not None:
        version = resolve_os_version(os_version)
        for name in sorted(chosen):
            allowed = FAULTS[name].os_versions
            if allowed and version not in allowed:
                raise FaultError(f"fault {name!r} cannot exist on os_version {version}; use one of {', '.join(allowed)}")
    return [n for n in FAULTS if n in chosen]


def apply_faults(host: Host, names: list[str] | tuple[str, ...], now: dt.datetime | None = None) -> Host:
    """Apply faults in canonical order (order given does not matter); returns the same host."""
    moment = as_utc(now)
    for name in validate_faults(names, host.os.version):
        FAULTS[name].apply(host, moment)
    return host


def os_version_for(names: list[str] | tuple[str, ...], preferred: str | None = None) -> str:
    """``preferred`` (default Server 2022) unless a fault needs an older release, then the newest it allows."""
    version = resolve_os_version(preferred or DEFAULT_OS_VERSION)
    for name in names:
        allowed = FAULTS[name].os_versions if name in FAULTS else ()
        if allowed and version not in allowed:
            if preferred is not None:
                return version  # let validation report the explicit clash
            version = allowed[-1]
    return version


def build_host(name: str, address: str, faults: list[str] | tuple[str, ...] = (), os_version: str | None = None,
               now: dt.datetime | None = None, domain: str | None = None) -> Host:
    """A healthy host with ``faults`` applied; the OS defaults to one every fault can exist on."""
    validate_faults(faults)
    moment = as_utc(now)
    host = Host.healthy(name, address, os_version_for(faults, os_version), now=moment, domain=domain)
    return apply_faults(host, faults, moment)
