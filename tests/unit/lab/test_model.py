"""The lab host model: healthy-host invariants (contracts section 3a), registry semantics, derived WMI views, certs."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.lab import certs
from tests.lab.model import (
    CREDSSP, CRYPTOGRAPHY, FIPS, MACHINEKEYS_DEFAULT_SDDL, OS_RELEASES, POL, RDP_FIREWALL_GROUP, RDP_TCP, RDS_STORE,
    RIGHT_ALLOW_RDP, RIGHT_DENY_RDP, SCHANNEL_PROTOCOLS, SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS, TERMSERVICE, TS,
    CertEntry, Host, Registry, ServiceError, Socket, listening_sockets, machinekeys_acl_ok, resolve_os_version, ts_general_setting, ts_setting,
    version_tuple,
)

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
ALL_OS = sorted(OS_RELEASES)


@pytest.fixture(name="host")
def fixture_host() -> Host:
    """A healthy Server 2022 host."""
    return Host.healthy("win01", "127.0.0.2", now=NOW)


@pytest.mark.parametrize("version", ALL_OS)
def test_healthy_registry_matches_contract(version: str) -> None:
    host = Host.healthy("win01", "127.0.0.2", version, now=NOW)
    reg = host.registry
    assert reg.get(TS, "fDenyTSConnections") == 0
    expected = {"PortNumber": 3389, "fEnableWinStation": 1, "SecurityLayer": 2, "UserAuthentication": 1,
                "MinEncryptionLevel": 2, "MaxInstanceCount": 4294967295}
    assert {k: reg.get(RDP_TCP, k) for k in expected} == expected
    assert reg.get_key(POL) is None
    assert reg.get_key(CREDSSP) is None
    assert not reg.key_exists(SCHANNEL_PROTOCOLS)
    assert reg.get(FIPS, "Enabled") == 0
    assert reg.get(CRYPTOGRAPHY, "MachineGuid") == host.os.machine_guid


@pytest.mark.parametrize("version", ALL_OS)
def test_healthy_os_and_patched_tspkg(version: str) -> None:
    host = Host.healthy("win01", "127.0.0.2", version, now=NOW)
    release = OS_RELEASES[version]
    assert host.os.version == version and host.os.caption == release.caption
    assert host.os.build == version_tuple(version)[2]
    assert version_tuple(host.os.tspkg_version) >= version_tuple(release.credssp_fix)
    assert host.os.computer_name == "WIN01" and host.os.domain == "WORKGROUP" and not host.os.part_of_domain


def test_listener_cert_is_bound_self_signed(host: Host) -> None:
    raw = host.registry.get(RDP_TCP, "SSLCertificateSHA1Hash")
    assert isinstance(raw, bytes) and len(raw) == 20
    entry = host.self_signed_entry()
    assert entry is not None and entry in host.cert_stores[RDS_STORE]
    assert raw == entry.cert.fingerprint(hashes.SHA1())  # thumbprint = SHA-1 of the DER
    assert entry.thumbprint == raw.hex().upper()
    assert entry.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "win01"
    assert entry.cert.issuer == entry.cert.subject
    eku = entry.cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert entry.not_before < NOW < entry.not_after
    assert 170 <= (entry.not_after - entry.not_before).days <= 190
    assert entry.key is not None and entry.key.public_key().public_numbers() == entry.cert.public_key().public_numbers()
    assert entry.has_private_key and entry.key_readable_by_network_service and entry.key_error is None
    assert entry.key_container == "TSSecKeySet1" and entry.key_file == host.listener_key_file_name
    assert host.listener_key_file_name == f"f686aace6942fb7f7ceb231212eef4a4_{host.os.machine_guid}"
    assert host.listener_key_file_name in host.machinekeys.files


def test_healthy_services_sockets_firewall(host: Host) -> None:
    for name in ("TermService", "SessionEnv", "UmRdpService"):
        assert (host.services[name].state, host.services[name].start_mode) == ("Running", "Manual")
    assert host.services[TERMSERVICE].account == "NT Authority\\NetworkService"
    rdp = [s for s in listening_sockets(host) if s.port == 3389]
    assert {s.protocol for s in rdp} == {"tcp", "udp"}
    assert all(s.pid == host.services[TERMSERVICE].pid for s in rdp)
    rules = {r.name: r for r in host.firewall_rules}
    assert rules["RemoteDesktop-UserMode-In-TCP"].local_ports == ["3389"]
    assert rules["RemoteDesktop-UserMode-In-UDP"].protocol == "UDP"
    assert all(rules[n].group == RDP_FIREWALL_GROUP and rules[n].enabled
               for n in ("RemoteDesktop-UserMode-In-TCP", "RemoteDesktop-UserMode-In-UDP", "RemoteDesktop-Shadow-In-TCP"))
    assert rules["WINRM-HTTP-In-TCP"].local_ports == ["5985"]
    assert [p.name for p in host.firewall_profiles] == ["Domain", "Private", "Public"]


def test_healthy_accounts_and_machinekeys(host: Host) -> None:
    rdpuser = host.find_account("rdpuser")
    assert rdpuser is not None and not rdpuser.disabled and not rdpuser.locked_out
    assert SID_REMOTE_DESKTOP_USERS in host.groups_of(rdpuser.sid)
    assert [m.name for m in host.group_members(SID_REMOTE_DESKTOP_USERS)] == ["WIN01\\rdpuser"]
    assert host.user_rights[RIGHT_ALLOW_RDP] == [SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS]
    assert host.user_rights[RIGHT_DENY_RDP] == []
    assert host.find_account(".\\RDPUSER") is rdpuser
    assert host.machinekeys.exists and host.machinekeys.sddl == MACHINEKEYS_DEFAULT_SDDL
    assert host.sessions == [] and host.events == []


def test_wmi_views_follow_registry(host: Host) -> None:
    general = ts_general_setting(host)
    assert general is not None
    assert general["SSLCertificateSHA1Hash"] == host.self_signed_entry().thumbprint
    assert general["SSLCertificateSHA1HashType"] == 1
    assert (general["SecurityLayer"], general["PolicySourceSecurityLayer"]) == (2, 0)
    host.reg_set(POL, "SecurityLayer", 0)
    host.reg_delete(RDP_TCP, "UserAuthentication")
    general = ts_general_setting(host)
    assert (general["SecurityLayer"], general["PolicySourceSecurityLayer"]) == (0, 1)
    assert general["PolicySourceUserAuthenticationRequired"] == 2
    host.wmi_broken = True
    assert ts_general_setting(host) is None


def test_ts_setting_allow_connections_and_licensing(host: Host) -> None:
    assert ts_setting(host) == {"AllowTSConnections": 1, "PolicySourceAllowTSConnections": 0, "LicensingType": 5, "GracePeriodDays": None}
    host.reg_set(POL, "fDenyTSConnections", 1)
    assert ts_setting(host)["AllowTSConnections"] == 0 and ts_setting(host)["PolicySourceAllowTSConnections"] == 1


def test_wmi_hash_type_custom_and_invalid(host: Host) -> None:
    ca = certs.lab_ca()
    key = certs.key_for("custom")
    cert = certs.issue_server_cert(ca, "win01", ["win01"], key, NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=90))
    entry = CertEntry(cert=cert, key=key, key_container="{X}", key_file=None)
    host.cert_stores["My"].append(entry)
    host.bind_cert(entry)
    assert ts_general_setting(host)["SSLCertificateSHA1HashType"] == 3
    host.reg_set(RDP_TCP, "SSLCertificateSHA1Hash", b"\x01" * 20)
    assert ts_general_setting(host)["SSLCertificateSHA1HashType"] == 0


def test_registry_is_case_insensitive_and_typed() -> None:
    reg = Registry()
    reg.set("HKLM:\\SOFTWARE\\A\\B", "Value", 1)
    assert reg.get("hklm:\\software\\a\\b\\", "VALUE") == 1
    reg.set("HKLM:\\software\\a\\b", "value", 2)
    assert reg.get_key("HKLM:\\SOFTWARE\\A\\B") == {"Value": 2}  # spelling of first write kept
    assert reg.key_exists("HKLM:\\SOFTWARE\\A") and reg.get_key("HKLM:\\SOFTWARE\\A") == {}
    assert reg.get_key("HKLM:\\SOFTWARE\\C") is None
    assert reg.delete("HKLM:\\SOFTWARE\\A\\B", "VALUE") and not reg.delete("HKLM:\\SOFTWARE\\A\\B", "VALUE")
    reg.set("HKLM:\\SOFTWARE\\A\\B", "Multi", ["a", "b"])
    assert reg.delete_key("HKLM:\\SOFTWARE\\A") and not reg.key_exists("HKLM:\\SOFTWARE\\A\\B")
    for bad in (True, 1.5, None):
        with pytest.raises(TypeError):
            reg.set("HKLM:\\X", "v", bad)  # type: ignore[arg-type]


def test_get_key_returns_a_copy(host: Host) -> None:
    values = host.registry.get_key(RDP_TCP)
    values["PortNumber"] = 1
    assert host.registry.get(RDP_TCP, "PortNumber") == 3389


def test_termservice_sockets_are_derived(host: Host) -> None:
    host.services[TERMSERVICE].state = "Stopped"
    assert not [s for s in listening_sockets(host) if s.port == 3389]
    host.services[TERMSERVICE].state = "Running"
    host.other_sockets.append(Socket("tcp", "0.0.0.0", 3389, 4242, "nginx"))
    assert {s.process for s in listening_sockets(host) if s.port == 3389} == {"nginx"}


def test_copy_is_independent(host: Host) -> None:
    clone = host.copy()
    clone.reg_set(TS, "fDenyTSConnections", 1)
    clone.cert_stores[RDS_STORE][0].key_readable_by_network_service = False
    clone.groups[SID_REMOTE_DESKTOP_USERS].members.clear()
    assert host.reg_get(TS, "fDenyTSConnections") == 0
    assert host.cert_stores[RDS_STORE][0].key_readable_by_network_service
    assert host.group_members(SID_REMOTE_DESKTOP_USERS)


def test_same_name_same_identity_different_cert() -> None:
    one, two = Host.healthy("win01", "127.0.0.2", now=NOW), Host.healthy("WIN01", "127.0.0.3", now=NOW)
    assert one.os.machine_guid == two.os.machine_guid
    assert one.find_account("rdpuser").sid == two.find_account("rdpuser").sid
    assert Host.healthy("win02", "127.0.0.4", now=NOW).os.machine_guid != one.os.machine_guid


def test_domain_joined_host() -> None:
    host = Host.healthy("web01", "127.0.0.5", now=NOW, domain="contoso.com")
    assert host.os.part_of_domain and host.os.fqdn == "web01.contoso.com" and host.os.netbios_domain == "CONTOSO"
    assert certs.cert_names(host.self_signed_entry().cert) == ["web01.contoso.com"]
    assert host.active_profile == "Domain"


def test_os_version_aliases_and_errors() -> None:
    assert resolve_os_version("2019") == "10.0.17763" and resolve_os_version("2012R2") == "6.3.9600"
    with pytest.raises(ValueError, match="known"):
        resolve_os_version("2008")


def test_machinekeys_acl_check() -> None:
    assert machinekeys_acl_ok(MACHINEKEYS_DEFAULT_SDDL)
    assert machinekeys_acl_ok("O:SYG:SYD:P(A;;FA;;;SY)(A;;0x1200a9;;;NS)(A;;FA;;;BA)")
    assert not machinekeys_acl_ok("O:SYG:SYD:PAI(A;;FA;;;BA)")
    assert not machinekeys_acl_ok("O:SYG:SYD:PAI(D;;FA;;;WD)(A;;FA;;;BA)")


def test_pool_keys_are_cached_on_disk() -> None:
    key = certs.pool_key(0)
    assert (certs.KEY_DIR / "rsa2048-0.pem").exists()
    assert certs.pool_key(0) is key
    assert certs.key_for("a").key_size == 2048


def test_ca_issued_cert_verifies_and_has_sans() -> None:
    ca = certs.lab_ca()
    assert ca.cert.subject == certs.lab_ca().cert.subject
    key = certs.key_for("srv")
    cert = certs.issue_server_cert(ca, "srv.contoso.com", ["srv.contoso.com", "srv"], key, NOW, NOW + dt.timedelta(days=30),
                                   remote_desktop_eku=True)
    ca.cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm)
    assert certs.cert_names(cert) == ["srv.contoso.com", "srv.contoso.com", "srv"]
    assert cert.issuer == ca.cert.subject
    assert len(certs.thumbprint(cert)) == 40 and certs.thumbprint(cert) == certs.thumbprint(cert).upper()


def test_subkeys(host: Host) -> None:
    host.reg_set(SCHANNEL_PROTOCOLS + "\\TLS 1.2\\Server", "Enabled", 1)
    host.reg_set(SCHANNEL_PROTOCOLS + "\\TLS 1.0\\Client", "Enabled", 0)
    assert host.registry.subkeys(SCHANNEL_PROTOCOLS) == ["TLS 1.0", "TLS 1.2"]
    assert host.registry.subkeys(SCHANNEL_PROTOCOLS.lower() + "\\tls 1.2") == ["Server"]
    assert "RDP-Tcp" in host.registry.subkeys(TS + "\\WinStations")


def test_service_control(host: Host) -> None:
    host.stop_service("termservice", NOW)
    assert host.services["UmRdpService"].state == "Stopped" and host.services[TERMSERVICE].pid == 0
    host.start_service("UmRdpService", NOW)  # starts TermService first
    assert host.services[TERMSERVICE].state == "Running" and host.services[TERMSERVICE].pid > 0
    host.services[TERMSERVICE].start_mode = "Disabled"
    host.stop_service(TERMSERVICE, NOW)
    with pytest.raises(ServiceError, match="disabled"):
        host.start_service(TERMSERVICE, NOW)
    with pytest.raises(ServiceError, match="Cannot find any service"):
        host.start_service("NoSuchService", NOW)
    assert [e.event_id for e in host.events] == [7036] * 6


def test_restart_renews_an_expired_self_signed_cert(host: Host) -> None:
    later = NOW + dt.timedelta(days=400)
    old = host.self_signed_entry()
    host.restart_service(TERMSERVICE, later)
    new = host.self_signed_entry()
    assert new is not old and new.not_after > later and host.bound_thumbprint() == new.thumbprint
    assert len(host.cert_stores[RDS_STORE]) == 1 and any(e.event_id == 1056 for e in host.events)
    assert host.services["UmRdpService"].state == "Running"
    host.restart_service("SessionEnv", later)  # valid now: nothing to renew
    assert host.self_signed_entry() is new


def test_broken_machinekeys_prevents_renewal(host: Host) -> None:
    later = NOW + dt.timedelta(days=400)
    host.machinekeys.sddl = "O:SYG:SYD:PAI(A;;FA;;;BA)"
    old = host.self_signed_entry()
    host.restart_service("SessionEnv", later)
    assert host.self_signed_entry() is old and 1058 in [e.event_id for e in host.events]
    host.cert_stores[RDS_STORE].clear()
    host.restart_service("SessionEnv", later)
    assert host.self_signed_entry() is None and 1057 in [e.event_id for e in host.events]
