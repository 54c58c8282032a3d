"""Hand-written ``read_rdp_state`` raw documents (contracts section 3) and the faults of section 8, as data.

The unit tests of the normaliser, the findings rules, the filter and the action plugin use these
instead of the lab, so that each rule is proven on a document a person can read. Each fault function
mutates a raw document the way the named lab fault mutates a Windows host.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import functools
import typing as t

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)
MACHINE_GUID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
HOST_SID = "S-1-5-21-1111-2222-3333"
RDPUSER_SID = HOST_SID + "-1001"
TERMSERVICE_PID = 1208
LISTENER_KEY = reg.listener_key_file_name(MACHINE_GUID)


SVCHOST = "%SystemRoot%\\system32\\svchost.exe"


def iso(when: dt.datetime) -> str:
    """ISO 8601 UTC with Z, as the host script writes times."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@functools.lru_cache(maxsize=None)
def _key(name: str) -> ec.EllipticCurvePrivateKey:
    """A fast EC key per name (RSA generation is slow and irrelevant here)."""
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(common_name: str, not_before: dt.datetime, not_after: dt.datetime, dns_names: t.Sequence[str] = (),
              ekus: t.Sequence[str] | None = (ExtendedKeyUsageOID.SERVER_AUTH.dotted_string,), issuer_cn: str | None = None) -> tuple[str, str]:
    """(base64 DER, upper-case SHA-1 thumbprint) of a certificate; ``ekus=None`` omits the extension."""
    key = _key(issuer_cn or common_name)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]) if issuer_cn else subject
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(_key(common_name).public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after))
    if ekus is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.ObjectIdentifier(o) for o in ekus]), critical=False)
    if dns_names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in dns_names]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    der = cert.public_bytes(Encoding.DER)
    return base64.b64encode(der).decode("ascii"), cert.fingerprint(hashes.SHA1()).hex().upper()


@functools.lru_cache(maxsize=None)
def _healthy_cert() -> tuple[str, str]:
    """The healthy host's self-signed listener certificate (cached: same bytes for every test)."""
    return make_cert("win01", NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=152))


def self_signed_entry(der: str, thumbprint: str, **extra: t.Any) -> dict[str, t.Any]:
    """A Remote Desktop store entry as the host script reports the self-signed certificate."""
    entry = {"thumbprint": thumbprint, "der": der, "has_private_key": True, "key_container": reg.SELF_SIGNED_KEY_CONTAINER,
             "key_file": LISTENER_KEY, "key_readable_by_network_service": True, "key_readable_by_admin": True, "key_error": None}
    entry.update(extra)
    return entry


def _rule(name: str, display: str, protocol: str, ports: list[str], enabled: bool = True, group: str = reg.FIREWALL_RDP_GROUP,
          profiles: list[str] | None = None, action: str = "Allow", program: str = "Any", service: str = "Any",
          remote_addresses: list[str] | None = None) -> dict[str, t.Any]:
    """A firewall rule as the host script reports it."""
    return {"name": name, "display_name": display, "group": group, "enabled": enabled, "direction": "Inbound", "action": action,
            "profiles": profiles or ["Domain", "Private", "Public"], "protocol": protocol, "local_ports": ports,
            "policy_store_source": "PersistentStore", "program": program, "service": service,
            "remote_addresses": remote_addresses or ["Any"]}


def healthy_raw() -> dict[str, t.Any]:
    """A healthy Windows Server 2022 workgroup host (contracts 3a), with rdpuser in Remote Desktop Users."""
    der, thumbprint = _healthy_cert()
    registry: dict[str, t.Any] = {key: None for key in reg.REGISTRY_KEYS}
    registry.update({
        reg.TS: {"fDenyTSConnections": 0, "fSingleSessionPerUser": 1, "TSServerDrainMode": 0},
        reg.WINSTATIONS: {},
        reg.RDP_TCP: {"PortNumber": 3389, "fEnableWinStation": 1, "SecurityLayer": 2, "UserAuthentication": 1,
                      "MinEncryptionLevel": 2, "MaxInstanceCount": 4294967295, "MaxIdleTime": 0, "MaxConnectionTime": 0,
                      "MaxDisconnectionTime": 0, "fResetBroken": 0, "LanAdapter": 0, "SSLCertificateSHA1Hash": thumbprint.lower()},
        reg.FIPS: {"Enabled": 0},
        reg.LSA: {"disabledomaincreds": 0},
        reg.CRYPTOGRAPHY: {"MachineGuid": MACHINE_GUID},
        reg.SETUP: {"OOBEInProgress": 0, "SystemSetupInProgress": 0},
    })
    return {
        "schema": "rdp.doctor/read_rdp_state/1",
        "host_time_utc": iso(NOW),
        "os": {"caption": "Microsoft Windows Server 2022 Datacenter", "version": "10.0.20348", "build": 20348, "product_type": 3,
               "computer_name": "WIN01", "dns_host_name": "win01", "domain": "WORKGROUP", "part_of_domain": False,
               "machine_guid": MACHINE_GUID, "rdsh_installed": False},
        "registry": registry,
        "ts_general_setting": {"SSLCertificateSHA1Hash": thumbprint, "SSLCertificateSHA1HashType": 1, "SecurityLayer": 2,
                               "UserAuthenticationRequired": 1, "MinEncryptionLevel": 2, "PolicySourceSecurityLayer": 0,
                               "PolicySourceUserAuthenticationRequired": 0, "PolicySourceMinEncryptionLevel": 0},
        "ts_setting": {"AllowTSConnections": 1, "PolicySourceAllowTSConnections": 0, "LicensingType": 5, "TerminalServerMode": 0,
                       "GracePeriodDays": None},
        "services": [
            {"name": "TermService", "state": "Running", "start_mode": "Manual", "pid": TERMSERVICE_PID, "account": "NT Authority\\NetworkService"},
            {"name": "SessionEnv", "state": "Running", "start_mode": "Manual", "pid": 1164, "account": "LocalSystem"},
            {"name": "UmRdpService", "state": "Running", "start_mode": "Manual", "pid": 2304, "account": "LocalSystem"},
            {"name": "MpsSvc", "state": "Running", "start_mode": "Auto", "pid": 2620, "account": "NT Authority\\LocalService"},
        ],
        "listening": {
            "tcp": [{"address": "0.0.0.0", "port": 135, "pid": 912, "process": "svchost"},
                    {"address": "0.0.0.0", "port": 3389, "pid": TERMSERVICE_PID, "process": "svchost"},
                    {"address": "::", "port": 3389, "pid": TERMSERVICE_PID, "process": "svchost"},
                    {"address": "0.0.0.0", "port": 5985, "pid": 4, "process": "System"}],
            "udp": [{"address": "0.0.0.0", "port": 3389, "pid": TERMSERVICE_PID, "process": "svchost"}],
        },
        "certificates": {"Remote Desktop": [self_signed_entry(der, thumbprint)], "My": []},
        "rd_licensing": None,  # not an RD Session Host
        "ephemeral_ports": [{"setting": "Internet", "start": 49152, "count": 16384},
                            {"setting": "Datacenter", "start": 49152, "count": 16384}],
        "cert_store_acls": {"Remote Desktop": "O:SYG:SYD:AI(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)",
                            "RCM": "O:SYG:SYD:AI(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)(A;CIID;KR;;;NS)"},
        "tspkg_version": "10.0.20348.2849",
        # issue 12 part B: no SCHANNEL algorithm keys, the default RDP-Tcp ACL, a workgroup host, the logon services
        "schannel_algorithms": {"Ciphers": None, "Hashes": None, "KeyExchangeAlgorithms": None},
        "listener_acl": [{"sid": "S-1-5-18", "account": "NT AUTHORITY\\SYSTEM", "allowed": 0xF03BF, "denied": 0},
                         {"sid": reg.SID_ADMINISTRATORS, "account": "BUILTIN\\Administrators", "allowed": 0xF03BF, "denied": 0},
                         {"sid": reg.SID_REMOTE_DESKTOP_USERS, "account": "BUILTIN\\Remote Desktop Users", "allowed": 0x121, "denied": 0}],
        "secure_channel": {"checked": False, "ok": None, "domain": "WORKGROUP"},
        "logon_services": [{"name": "LSM", "state": "Running", "start_mode": "Auto"},
                           {"name": "Netlogon", "state": "Stopped", "start_mode": "Manual"},
                           {"name": "BFE", "state": "Running", "start_mode": "Auto"},
                           {"name": "MpsSvc", "state": "Running", "start_mode": "Auto"}],
        "firewall": {
            "rules": [
                _rule(reg.FIREWALL_RULE_TCP, "Remote Desktop - User Mode (TCP-In)", "TCP", ["3389"], program=SVCHOST, service="termservice"),
                _rule(reg.FIREWALL_RULE_UDP, "Remote Desktop - User Mode (UDP-In)", "UDP", ["3389"], program=SVCHOST, service="termservice"),
                _rule(reg.FIREWALL_RULE_SHADOW, "Remote Desktop - Shadow (TCP-In)", "TCP", ["Any"], program="%SystemRoot%\\system32\\RdpSa.exe"),
                _rule("WINRM-HTTP-In-TCP", "Windows Remote Management (HTTP-In)", "TCP", ["5985"], group="@FirewallAPI.dll,-30267",
                      profiles=["Domain", "Private"], program="System"),
            ],
            "profiles": [{"name": p, "enabled": True, "default_inbound_action": "Block"} for p in reg.FIREWALL_PROFILES],
        },
        "sessions": [],
        "machinekeys": {"path": reg.MACHINEKEYS_PATH, "exists": True, "sddl": reg.MACHINEKEYS_DEFAULT_SDDL,
                        "listener_key_file": {"name": LISTENER_KEY, "exists": True,
                                              "sddl": "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x120089;;;NS)", "size": 2, "readable": True}},
        "winrm_listeners": [{"transport": "HTTP", "address": "*", "port": 5985, "thumbprint": None, "enabled": True}],
        "accounts": {
            "remote_desktop_users": [{"sid": RDPUSER_SID, "name": "WIN01\\rdpuser"}],
            "rights": {reg.RIGHT_ALLOW_RDP: [reg.SID_ADMINISTRATORS, reg.SID_REMOTE_DESKTOP_USERS], reg.RIGHT_DENY_RDP: []},
            "checked": [{"name": "rdpuser", "exists": True, "sid": RDPUSER_SID, "disabled": False, "locked_out": False,
                         "groups": [reg.SID_USERS, reg.SID_REMOTE_DESKTOP_USERS], "groups_complete": True, "error": None}],
        },
        "events": [],
    }


# --------------------------------------------------------------------------------------------------
# Faults (contracts section 8), as raw-document mutations
# --------------------------------------------------------------------------------------------------

def _event(provider: str, event_id: int, message: str, count: int = 3, log: str = "System") -> dict[str, t.Any]:
    """An event group."""
    last = NOW - dt.timedelta(hours=1)
    return {"log": log, "provider": provider, "id": event_id, "count": count, "last": iso(last),
            "samples": [{"time": iso(last), "message": message}], "error": None}


def _policy(raw: dict[str, t.Any], name: str, value: t.Any) -> None:
    """Set a value under the Terminal Services policy key (creating it)."""
    raw["registry"][reg.POL] = dict(raw["registry"].get(reg.POL) or {}, **{name: value})


def _bound(raw: dict[str, t.Any]) -> dict[str, t.Any]:
    """The bound certificate's store entry."""
    return raw["certificates"]["Remote Desktop"][0]


def _not_listening(raw: dict[str, t.Any]) -> None:
    """TermService has no socket on the RDP port."""
    raw["listening"]["tcp"] = [s for s in raw["listening"]["tcp"] if s["pid"] != TERMSERVICE_PID]
    raw["listening"]["udp"] = [s for s in raw["listening"]["udp"] if s["pid"] != TERMSERVICE_PID]


def rdp_disabled(raw: dict[str, t.Any]) -> None:
    """TS fDenyTSConnections=1."""
    raw["registry"][reg.TS]["fDenyTSConnections"] = 1
    raw["ts_setting"]["AllowTSConnections"] = 0
    _not_listening(raw)


def gpo_denies_connections(raw: dict[str, t.Any]) -> None:
    """POL fDenyTSConnections=1, local 0."""
    _policy(raw, "fDenyTSConnections", 1)
    raw["ts_setting"].update(AllowTSConnections=0, PolicySourceAllowTSConnections=1)
    _not_listening(raw)


def listener_disabled(raw: dict[str, t.Any]) -> None:
    """RDP-Tcp fEnableWinStation=0."""
    raw["registry"][reg.RDP_TCP]["fEnableWinStation"] = 0
    _not_listening(raw)


def termservice_stopped(raw: dict[str, t.Any]) -> None:
    """TermService Stopped (Manual)."""
    raw["services"][0].update(state="Stopped", pid=0)
    _not_listening(raw)


def termservice_disabled(raw: dict[str, t.Any]) -> None:
    """TermService Stopped + Disabled."""
    raw["services"][0].update(state="Stopped", start_mode="Disabled", pid=0)
    _not_listening(raw)


def port_conflict(raw: dict[str, t.Any]) -> None:
    """nginx (pid 4242) listens on 3389; TermService running but not listening."""
    _not_listening(raw)
    raw["listening"]["tcp"].append({"address": "0.0.0.0", "port": 3389, "pid": 4242, "process": "nginx"})


def port_moved(raw: dict[str, t.Any]) -> None:
    """PortNumber=3390, firewall rules still 3389."""
    raw["registry"][reg.RDP_TCP]["PortNumber"] = 3390
    for proto in ("tcp", "udp"):
        for sock in raw["listening"][proto]:
            if sock["pid"] == TERMSERVICE_PID:
                sock["port"] = 3390


def firewall_rdp_disabled(raw: dict[str, t.Any]) -> None:
    """Remote Desktop group rules disabled."""
    for rule in raw["firewall"]["rules"]:
        if rule["group"] == reg.FIREWALL_RDP_GROUP:
            rule["enabled"] = False


def firewall_gpo_blocks(raw: dict[str, t.Any]) -> None:
    """FW_GPO_DOMAIN and FW_GPO_STANDARD Enabled=0."""
    raw["registry"][reg.FW_GPO_DOMAIN] = {"Enabled": 0}
    raw["registry"][reg.FW_GPO_STANDARD] = {"Enabled": 0}


def cert_expired(raw: dict[str, t.Any]) -> None:
    """The bound self-signed certificate expired; events 1058."""
    der, thumbprint = make_cert("win01", NOW - dt.timedelta(days=200), NOW - dt.timedelta(days=18))
    _rebind(raw, der, thumbprint)
    message = ("The RD Session Host Server has failed to replace the expired self signed certificate ... "
               "The relevant status code was Access is denied.")
    raw["events"].append(_event(reg.PROVIDER_RCM, 1058, message))


def cert_wrong_name(raw: dict[str, t.Any]) -> None:
    """The certificate is for the old computer name."""
    der, thumbprint = make_cert("oldname", NOW - dt.timedelta(days=30), NOW + dt.timedelta(days=152))
    _rebind(raw, der, thumbprint)


def cert_key_unreadable(raw: dict[str, t.Any]) -> None:
    """NETWORK SERVICE cannot read the bound certificate's key; Schannel 36870."""
    _bound(raw).update(key_readable_by_network_service=False)
    raw["machinekeys"]["listener_key_file"]["sddl"] = "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)"
    raw["events"].append(_event("Schannel", 36870, "A fatal error occurred when attempting to access the TLS server credential "
                                                   "private key. The error code returned from the cryptographic module is 0x8009030D."))


def cert_bound_missing(raw: dict[str, t.Any]) -> None:
    """SSLCertificateSHA1Hash names a certificate in no store."""
    raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"] = "ab" * 20
    raw["ts_general_setting"].update(SSLCertificateSHA1Hash="AB" * 20, SSLCertificateSHA1HashType=0)


def machinekeys_acl_broken(raw: dict[str, t.Any]) -> None:
    """MachineKeys SDDL without Everyone; events 1057."""
    raw["machinekeys"]["sddl"] = "O:SYG:SYD:PAI(A;;FA;;;BA)"
    message = "The RD Session Host Server has failed to create a new self signed certificate ... Keyset does not exist"
    raw["events"].append(_event(reg.PROVIDER_RCM, 1057, message))


def listener_key_missing(raw: dict[str, t.Any]) -> None:
    """Listener key file missing; 1057 + 36870."""
    raw["machinekeys"]["listener_key_file"].update(exists=False, sddl=None, size=None, readable=None)
    _bound(raw).update(key_file=None, key_readable_by_network_service=None, key_readable_by_admin=None,
                       key_error=f"no key file {LISTENER_KEY} in MachineKeys or Keys")
    raw["events"].append(_event(reg.PROVIDER_RCM, 1057, "... Keyset does not exist"))
    raw["events"].append(_event("Schannel", 36870, "A fatal error occurred when attempting to access the TLS server credential private key."))


def credssp_server_unpatched(raw: dict[str, t.Any]) -> None:
    """A Server 2016 host with a pre-fix tspkg.dll."""
    raw["os"].update(caption="Microsoft Windows Server 2016 Datacenter", version="10.0.14393", build=14393)
    raw["tspkg_version"] = "10.0.14393.2189"


def credssp_force_updated(raw: dict[str, t.Any]) -> None:
    """AllowEncryptionOracle=0."""
    raw["registry"][reg.CREDSSP] = {"AllowEncryptionOracle": 0}


def credssp_vulnerable(raw: dict[str, t.Any]) -> None:
    """AllowEncryptionOracle=2."""
    raw["registry"][reg.CREDSSP] = {"AllowEncryptionOracle": 2}


def security_layer_rdp(raw: dict[str, t.Any]) -> None:
    """RDP-Tcp SecurityLayer=0."""
    raw["registry"][reg.RDP_TCP]["SecurityLayer"] = 0
    raw["ts_general_setting"]["SecurityLayer"] = 0


def gpo_overrides_security_layer(raw: dict[str, t.Any]) -> None:
    """POL SecurityLayer=0, local 2."""
    _policy(raw, "SecurityLayer", 0)
    raw["ts_general_setting"].update(SecurityLayer=0, PolicySourceSecurityLayer=1)


def nla_disabled(raw: dict[str, t.Any]) -> None:
    """RDP-Tcp UserAuthentication=0."""
    raw["registry"][reg.RDP_TCP]["UserAuthentication"] = 0
    raw["ts_general_setting"]["UserAuthenticationRequired"] = 0


def fips_encryption(raw: dict[str, t.Any]) -> None:
    """MinEncryptionLevel=4 and FIPS Enabled=1."""
    raw["registry"][reg.RDP_TCP]["MinEncryptionLevel"] = 4
    raw["registry"][reg.FIPS]["Enabled"] = 1
    raw["ts_general_setting"]["MinEncryptionLevel"] = 4


def tls12_disabled(raw: dict[str, t.Any]) -> None:
    """TLS 1.2 Server Enabled=0, TLS 1.0 Server Enabled=1."""
    raw["registry"][reg.schannel_key("TLS 1.2", "Server")] = {"Enabled": 0}
    raw["registry"][reg.schannel_key("TLS 1.0", "Server")] = {"Enabled": 1}
    raw["registry"][reg.schannel_key("TLS 1.3", "Server")] = {"Enabled": 0}


def all_tls_disabled(raw: dict[str, t.Any]) -> None:
    """Every Schannel Server protocol Enabled=0; Schannel 36871."""
    for protocol in reg.SCHANNEL_PROTOCOLS:
        raw["registry"][reg.schannel_key(protocol, "Server")] = {"Enabled": 0}
    raw["events"].append(_event("Schannel", 36871, "A fatal error occurred while creating a TLS server credential. "
                                                   "The internal error state is 10013."))


def session_limit_reached(raw: dict[str, t.Any]) -> None:
    """MaxInstanceCount=2 and two active sessions."""
    raw["registry"][reg.RDP_TCP]["MaxInstanceCount"] = 2
    raw["sessions"] = [{"id": n, "station": f"RDP-Tcp#{n}", "user": f"WIN01\\user{n}", "state": "Active",
                        "logon_time": iso(NOW - dt.timedelta(hours=n)), "disconnect_time": None, "idle_seconds": 60,
                        "disconnected_seconds": None} for n in (2, 3)]


def ghost_sessions(raw: dict[str, t.Any]) -> None:
    """Disconnected sessions 3-40 days old, no MaxDisconnectionTime."""
    raw["sessions"] = [{"id": n, "station": None, "user": f"WIN01\\old{n}", "state": "Disconnected",
                        "logon_time": iso(NOW - dt.timedelta(days=days + 1)), "disconnect_time": iso(NOW - dt.timedelta(days=days)),
                        "idle_seconds": days * 86400, "disconnected_seconds": days * 86400} for n, days in ((4, 3), (5, 40))]


def licensing_grace_expired(raw: dict[str, t.Any]) -> None:
    """RDSH role, grace 0 days, no license server; TS-Licensing events."""
    raw["os"]["rdsh_installed"] = True
    raw["ts_setting"].update(GracePeriodDays=0, TerminalServerMode=1)
    raw["rd_licensing"] = {"specified_license_servers": [], "connectivity": [],
                           "x509_certificates": {"X509 Certificate": 1386, "X509 Certificate ID": 86, "X509 Certificate2": 2510}}
    raw["events"].append(_event("Microsoft-Windows-TerminalServices-Licensing", 1128, "The RD Licensing grace period has expired "
                                                                                      "and the service has not registered with a license server"))


def account_disabled(raw: dict[str, t.Any]) -> None:
    """rdpuser disabled."""
    raw["accounts"]["checked"][0]["disabled"] = True


def account_locked_out(raw: dict[str, t.Any]) -> None:
    """rdpuser locked out."""
    raw["accounts"]["checked"][0]["locked_out"] = True


def account_denied_rdp(raw: dict[str, t.Any]) -> None:
    """SeDenyRemoteInteractiveLogonRight contains rdpuser's SID."""
    raw["accounts"]["rights"][reg.RIGHT_DENY_RDP] = [RDPUSER_SID]


def account_not_in_rdu(raw: dict[str, t.Any]) -> None:
    """rdpuser not in Remote Desktop Users."""
    raw["accounts"]["checked"][0]["groups"] = [reg.SID_USERS]
    raw["accounts"]["remote_desktop_users"] = []


def _rebind(raw: dict[str, t.Any], der: str, thumbprint: str) -> None:
    """Replace the self-signed certificate and bind the new one."""
    raw["certificates"]["Remote Desktop"] = [self_signed_entry(der, thumbprint)]
    raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"] = thumbprint.lower()
    raw["ts_general_setting"]["SSLCertificateSHA1Hash"] = thumbprint


#: fault name -> (mutation, finding ids it must produce) - contracts section 8 (dns_mismatch is a probe-only fault).
FAULTS: dict[str, tuple[t.Callable[[dict[str, t.Any]], None], tuple[str, ...]]] = {
    "rdp_disabled": (rdp_disabled, ("RDP-CONNECTIONS-DENIED",)),
    "gpo_denies_connections": (gpo_denies_connections, ("RDP-CONNECTIONS-DENIED", "RDP-GPO-OVERRIDE")),
    "listener_disabled": (listener_disabled, ("RDP-LISTENER-DISABLED",)),
    "termservice_stopped": (termservice_stopped, ("RDP-SERVICE-STOPPED",)),
    "termservice_disabled": (termservice_disabled, ("RDP-SERVICE-DISABLED",)),
    "port_conflict": (port_conflict, ("RDP-PORT-CONFLICT",)),
    "port_moved": (port_moved, ("RDP-PORT-NOT-ALLOWED",)),
    "firewall_rdp_disabled": (firewall_rdp_disabled, ("RDP-FIREWALL-RULES-DISABLED",)),
    "firewall_gpo_blocks": (firewall_gpo_blocks, ("RDP-FIREWALL-GPO-BLOCKS",)),
    "cert_expired": (cert_expired, ("RDP-CERT-EXPIRED",)),
    "cert_wrong_name": (cert_wrong_name, ("RDP-CERT-NAME-MISMATCH",)),
    "cert_key_unreadable": (cert_key_unreadable, ("RDP-CERT-KEY-UNREADABLE",)),
    "cert_bound_missing": (cert_bound_missing, ("RDP-CERT-MISSING",)),
    "machinekeys_acl_broken": (machinekeys_acl_broken, ("RDP-MACHINEKEYS-ACL",)),
    "listener_key_missing": (listener_key_missing, ("RDP-LISTENER-KEY-BROKEN",)),
    "credssp_server_unpatched": (credssp_server_unpatched, ("RDP-CREDSSP-UNPATCHED",)),
    "credssp_force_updated": (credssp_force_updated, ("RDP-CREDSSP-FORCE-UPDATED",)),
    "credssp_vulnerable": (credssp_vulnerable, ("RDP-CREDSSP-VULNERABLE",)),
    "security_layer_rdp": (security_layer_rdp, ("RDP-SECURITY-LAYER-RDP",)),
    "gpo_overrides_security_layer": (gpo_overrides_security_layer, ("RDP-SECURITY-LAYER-RDP", "RDP-GPO-OVERRIDE")),
    "nla_disabled": (nla_disabled, ("RDP-NLA-DISABLED",)),
    "fips_encryption": (fips_encryption, ("RDP-ENCRYPTION-FIPS",)),
    "tls12_disabled": (tls12_disabled, ("RDP-TLS12-DISABLED",)),
    "all_tls_disabled": (all_tls_disabled, ("RDP-TLS-ALL-DISABLED",)),
    "session_limit_reached": (session_limit_reached, ("RDP-SESSION-LIMIT-REACHED",)),
    "ghost_sessions": (ghost_sessions, ("RDP-GHOST-SESSIONS",)),
    "licensing_grace_expired": (licensing_grace_expired, ("RDP-LICENSING-GRACE-EXPIRED",)),
    "account_disabled": (account_disabled, ("RDP-ACCOUNT-DISABLED",)),
    "account_locked_out": (account_locked_out, ("RDP-ACCOUNT-LOCKED-OUT",)),
    "account_denied_rdp": (account_denied_rdp, ("RDP-ACCOUNT-DENIED-LOGON",)),
    "account_not_in_rdu": (account_not_in_rdu, ("RDP-ACCOUNT-NOT-ALLOWED",)),
}


def raw_with(*faults: str) -> dict[str, t.Any]:
    """A healthy raw document with the named faults applied, in order."""
    raw = copy.deepcopy(healthy_raw())
    for name in faults:
        FAULTS[name][0](raw)
    return raw


# --------------------------------------------------------------------------------------------------
# Probe results (contracts section 6), in the shape plugins/module_utils/rdp_probe.py builds
# --------------------------------------------------------------------------------------------------

def _step(name: str, verdict: str, summary: str = "", finding_ids: t.Sequence[str] = (), details: dict | None = None) -> dict[str, t.Any]:
    """One probe step."""
    return {"step": name, "verdict": verdict, "elapsed_ms": 1.0, "summary": summary, "finding_ids": list(finding_ids),
            "details": details or {}}


def probe_result(target: str = "127.0.0.2", tcp: str = "connected", dns_mismatch: bool = False, cert_der: str | None = None,
                 cert_thumbprint: str | None = None, cert_problems: t.Sequence[str] = ()) -> dict[str, t.Any]:
    """A probe result: DNS (optionally resolving elsewhere), TCP outcome, TLS and the certificate seen."""
    from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe, x509_info  # pylint: disable=import-outside-toplevel

    steps = [_step("dns", "fail", f"{target} resolves to 127.0.0.1, not to the expected address 127.0.0.2", ["RDP-DNS-MISMATCH"],
                   {"addresses": ["127.0.0.1"], "expected_address": "127.0.0.2"}) if dns_mismatch
             else _step("dns", "ok", f"{target} is an address literal (no lookup)", details={"addresses": [target]})]
    tcp_ids = {"refused": ["RDP-PROBE-TCP-REFUSED"], "timeout": ["RDP-PROBE-TCP-TIMEOUT"]}.get(tcp, [])
    steps.append(_step("tcp", "ok" if tcp == "connected" else "fail", f"{target}:3389 {tcp}", tcp_ids,
                       {"address": target if tcp == "connected" else None, "outcomes": {target: tcp}}))
    certificate = None
    if tcp != "connected":
        steps += [_step(name, "skipped", "not reached: the tcp step failed") for name in ("x224", "tls", "certificate", "nla")]
    else:
        steps += [_step("x224", "ok", "0x0b -> HYBRID"), _step("tls", "ok", "TLSv1.2 ECDHE-RSA-AES256-GCM-SHA384 (256 bits)")]
        if cert_der:
            certificate = x509_info.analyze_certificate(cert_der, server_name=target, now=NOW)
            ids = [p for p in certificate["problem_ids"] if not cert_problems or p in cert_problems]
            blocking = any(p["code"] in x509_info.BLOCKING_PROBLEMS and p["id"] in ids for p in certificate["problems"])
            steps.append(_step("certificate", "fail" if blocking else "ok", "certificate", ids,
                               {"sha1_thumbprint": cert_thumbprint or certificate["sha1_thumbprint"]}))
            if cert_thumbprint:
                certificate["sha1_thumbprint"] = cert_thumbprint
        else:
            steps.append(_step("certificate", "skipped", "not requested"))
        steps.append(_step("nla", "ok", "NLA required", ["RDP-PROBE-NLA-REQUIRED"]))
    return {"schema": "rdp.doctor/probe/1", "target": target, "port": 3389, "steps": steps,
            "verdict": rdp_probe.compose_verdict(steps), "dns": {"name": target}, "tcp": {"address": target},
            "certificate": certificate}
