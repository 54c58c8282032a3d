# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Windows constants behind RDP: registry keys, value names, defaults and what the values mean.

This is the ONE place in the collection that knows Windows constants (docs/dev/contracts.md, 3a).
Everything else (the facts normaliser, the findings rules, the lab model, the remediation planners)
imports them from here. ``[Sn]`` cites ``windows-rdp-facts.md``; ``MSRD #n`` cites the check number in
``msrd-coverage.md``.

Paths are written in PowerShell provider form (``HKLM:\\...``), exactly as ``read_rdp_state`` reads
them and the lab model stores them; Windows compares them case-insensitively.
"""

from __future__ import annotations

import typing as t

# --------------------------------------------------------------------------------------------------
# Registry keys (contracts 3a)
# --------------------------------------------------------------------------------------------------

#: Terminal Server root: fDenyTSConnections, fSingleSessionPerUser, TSServerDrainMode [S4][S10] MSRD #1 #6 #11.
TS = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server"
#: WinStations: SelfSignedCertStore [S26] MSRD #34.
WINSTATIONS = TS + "\\WinStations"
#: The RDP-Tcp listener: port, security layer, NLA, encryption, bound certificate, limits [S1][S6][S10][S14].
RDP_TCP = WINSTATIONS + "\\RDP-Tcp"
#: Machine Group Policy for RDS; a value here overrides the local one [S10].
POL = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services"
#: CredSSP Encryption Oracle Remediation; the ADMX writes this same key (no separate policy key) [S7][S9].
CREDSSP = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\CredSSP\\Parameters"
#: Schannel protocols root; one subkey per protocol and side [S18].
SCHANNEL_ROOT = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols"
#: FIPS algorithm policy [S20].
FIPS = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\FIPSAlgorithmPolicy"
#: LSA: disabledomaincreds [S20].
LSA = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Lsa"
#: "Windows Defender Firewall: Allow inbound Remote Desktop exceptions", domain profile [S37].
FW_GPO_DOMAIN = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\DomainProfile\\Services\\RemoteDesktop"
#: Same policy, standard (private/public) profile [S37].
FW_GPO_STANDARD = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\StandardProfile\\Services\\RemoteDesktop"
#: MachineGuid names the listener key file [S2].
CRYPTOGRAPHY = "HKLM:\\SOFTWARE\\Microsoft\\Cryptography"
#: OS setup state: OOBEInProgress, SystemSetupInProgress (MSRD #13).
SETUP = "HKLM:\\SYSTEM\\Setup"
#: "SSL Cipher Suite Order" Group Policy: Functions (REG_SZ, comma-separated), EccCurves (MSRD #42; ms: tls/manage-tls).
CIPHER_SUITE_POLICY = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002"
#: Local cipher suite list (Enable-/Disable-TlsCipherSuite write it): Functions (REG_MULTI_SZ) (ms: tls/manage-tls).
CIPHER_SUITE_LOCAL = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Cryptography\\Configuration\\Local\\SSL\\00010002"
#: NTLM restrictions: RestrictReceivingNTLMTraffic, RestrictSendingNTLMTraffic, NtlmMinServerSec (MSRD #29;
#: ms: security-policy-settings/network-security-restrict-ntlm-incoming-ntlm-traffic).
MSV1_0 = LSA + "\\MSV1_0"
#: Remote Connection Manager: the RD Session Host's licensing certificates "X509 Certificate" (+ "ID", "2") (MSRD #52),
#: read by read_rdp_state's rd_licensing section (sizes only, never the blobs).
RCM = TS + "\\RCM"
#: RCM\Licensing Core: LicensingMode written by Server Manager / Set-RDLicenseConfiguration / WMI ChangeMode (MSRD #51;
#: learn.microsoft.com troubleshoot "cannot-connect-rds-no-license-server").
RCM_LICENSING_CORE = RCM + "\\Licensing Core"
#: SpecifiedLicenseServers (MULTI_SZ): the license servers set without Group Policy (Server Manager, WMI
#: SetSpecifiedLicenseServerList) (MSRD #51; same troubleshoot article).
TERMSERVICE_LICENSE_SERVERS = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\TermService\\Parameters\\LicenseServers"

#: Schannel protocols read, oldest first [S18].
SCHANNEL_PROTOCOLS = ("SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")
#: Schannel sides; the RDP listener uses the Server side [S18][S2].
SCHANNEL_SIDES = ("Server", "Client")


def schannel_key(protocol: str, side: str) -> str:
    """Registry path of one Schannel protocol/side key, e.g. ``schannel_key('TLS 1.2', 'Server')``."""
    if protocol not in SCHANNEL_PROTOCOLS or side not in SCHANNEL_SIDES:
        raise ValueError(f"unknown Schannel protocol/side {protocol!r}/{side!r}")
    return f"{SCHANNEL_ROOT}\\{protocol}\\{side}"


#: Every key ``read_rdp_state`` reads, in a stable order (its ``params.registry_keys``).
REGISTRY_KEYS = (
    TS, WINSTATIONS, RDP_TCP, POL, CREDSSP,
    *(schannel_key(protocol, side) for protocol in SCHANNEL_PROTOCOLS for side in SCHANNEL_SIDES),
    FIPS, LSA, FW_GPO_DOMAIN, FW_GPO_STANDARD, CRYPTOGRAPHY, SETUP,
    CIPHER_SUITE_POLICY, CIPHER_SUITE_LOCAL, MSV1_0,  # issue 12 part B: TLS cipher suites, NTLM
    RCM_LICENSING_CORE, TERMSERVICE_LICENSE_SERVERS,
)


# --------------------------------------------------------------------------------------------------
# Settings: where each one lives locally and in policy, and its default
# --------------------------------------------------------------------------------------------------

class WmiSource(t.NamedTuple):
    """A WMI property that mirrors a setting, and the property that says which source wins [S6][S15]."""

    section: str          # raw document section: ts_general_setting or ts_setting
    value: str            # property holding the effective value
    policy_source: str    # PolicySource* property: 0 local, 1 Group Policy, 2 default
    inverted: bool = False  # True when the WMI value is 1 - registry value (AllowTSConnections)


class Setting(t.NamedTuple):
    """One RDS setting: its local value, its policy value (which wins) and its default."""

    name: str
    local_key: str | None
    policy_key: str | None
    value: str
    default: t.Any
    wmi: WmiSource | None = None
    meaning: str = ""


SETTINGS = {
    s.name: s
    for s in (
        # [S4][S10] policy "Allow users to connect remotely" writes 0 (enabled) or 1 (disabled); OS default 1 (denied).
        Setting("deny_ts_connections", TS, POL, "fDenyTSConnections", 1,
                WmiSource("ts_setting", "AllowTSConnections", "PolicySourceAllowTSConnections", inverted=True),
                "1 = remote connections are refused"),
        # [S26] MSRD #2 expects 1; no policy.
        Setting("enable_winstation", RDP_TCP, None, "fEnableWinStation", 1, meaning="0 = the RDP-Tcp listener is off"),
        # [S14] no ADMX policy for the port.
        Setting("port", RDP_TCP, None, "PortNumber", 3389, meaning="TCP and UDP listening port"),
        # MSRD #4 (FK, AZ RDPSettings): 0 = all network adapters.
        Setting("lan_adapter", RDP_TCP, None, "LanAdapter", 0, meaning="0 = listen on every adapter"),
        # MSRD #11: drain mode 1/2 refuses new logons.
        Setting("drain_mode", TS, None, "TSServerDrainMode", 0, meaning="0 allow logons, 1 drain, 2 drain until restart"),
        # [S10][S31] default 1 (Negotiate) per the unattend reference; MSRD expects 2.
        Setting("security_layer", RDP_TCP, POL, "SecurityLayer", 1,
                WmiSource("ts_general_setting", "SecurityLayer", "PolicySourceSecurityLayer"),
                "0 RDP, 1 Negotiate, 2 TLS"),
        # [S6][S10] NLA required by default since Windows Server 2012 (ADMX text; the unattend doc says 0).
        Setting("user_authentication", RDP_TCP, POL, "UserAuthentication", 1,
                WmiSource("ts_general_setting", "UserAuthenticationRequired", "PolicySourceUserAuthenticationRequired"),
                "1 = Network Level Authentication required"),
        # [S6][S31] installed value 2 (Client compatible); the ADMX text calls High the default.
        Setting("min_encryption_level", RDP_TCP, POL, "MinEncryptionLevel", 2,
                WmiSource("ts_general_setting", "MinEncryptionLevel", "PolicySourceMinEncryptionLevel"),
                "1 Low, 2 Client compatible, 3 High, 4 FIPS"),
        # [S20]
        Setting("fips_algorithm_policy", FIPS, None, "Enabled", 0, meaning="1 = FIPS-compliant algorithms only"),
        # [S20]
        Setting("disable_domain_creds", LSA, None, "disabledomaincreds", 0, meaning="1 = domain credentials not stored/used"),
        # [S1][S2] REG_BINARY, 20 bytes; absent = the self-signed certificate.
        Setting("ssl_certificate_sha1_hash", RDP_TCP, None, "SSLCertificateSHA1Hash", None,
                meaning="thumbprint of the bound listener certificate"),
        # [S26] MSRD #34
        Setting("self_signed_cert_store", WINSTATIONS, None, "SelfSignedCertStore", "Remote Desktop",
                meaning="store of the self-signed listener certificate"),
        # [S10][S27]
        Setting("cert_template_name", None, POL, "CertTemplateName", None, meaning="certificate template enforced by GPO"),
        # [S7][S8][S9] default Mitigated since the May 2018 update; the GPO writes the same key.
        Setting("allow_encryption_oracle", CREDSSP, None, "AllowEncryptionOracle", 1,
                meaning="0 Force Updated Clients, 1 Mitigated, 2 Vulnerable"),
        # [S10][S26] local default 4294967295 (unlimited); policy 1-999999.
        Setting("max_instance_count", RDP_TCP, POL, "MaxInstanceCount", 4294967295, meaning="maximum concurrent connections"),
        # [S10][S26]
        Setting("single_session_per_user", TS, POL, "fSingleSessionPerUser", 1, meaning="1 = one session per user"),
        # [S10] milliseconds, 0 = never.
        Setting("max_idle_time", RDP_TCP, POL, "MaxIdleTime", 0, meaning="idle session limit (ms, 0 never)"),
        Setting("max_connection_time", RDP_TCP, POL, "MaxConnectionTime", 0, meaning="active session limit (ms, 0 never)"),
        Setting("max_disconnection_time", RDP_TCP, POL, "MaxDisconnectionTime", 0,
                meaning="disconnected session limit (ms, 0 never)"),
        Setting("reset_broken", RDP_TCP, POL, "fResetBroken", 0, meaning="1 = log off (not disconnect) when a limit is reached"),
        # MSRD #50 (AZ RDPSettings expects fInheritMax*=1 with Max*=0): 1 (the default) = RDP-Tcp's own limit is ignored and
        # each user's setting applies; the listener's value counts only with 0 ("override user settings").
        Setting("inherit_max_connection_time", RDP_TCP, None, "fInheritMaxSessionTime", 1,
                meaning="1 = RDP-Tcp MaxConnectionTime ignored, the user's limit applies"),
        Setting("inherit_max_disconnection_time", RDP_TCP, None, "fInheritMaxDisconnectionTime", 1,
                meaning="1 = RDP-Tcp MaxDisconnectionTime ignored, the user's limit applies"),
        Setting("inherit_max_idle_time", RDP_TCP, None, "fInheritMaxIdleTime", 1,
                meaning="1 = RDP-Tcp MaxIdleTime ignored, the user's limit applies"),
        Setting("inherit_reset_broken", RDP_TCP, None, "fInheritResetBroken", 1,
                meaning="1 = RDP-Tcp fResetBroken ignored, the user's setting applies"),
        # MSRD #7: the protocol manager TermService loads for RDP-Tcp (absent = the built-in one).
        Setting("loadable_protocol_object", RDP_TCP, None, "LoadableProtocol_Object", None,
                meaning="CLSID of the protocol stack behind the RDP-Tcp listener"),
        Setting("citrix_backup_protocol_object", RDP_TCP, None, "CitrixBackupRdpTcpLoadableProtocolObject", None,
                meaning="the Microsoft stack a Citrix VDA replaced (present = the stack was swapped)"),
        # [S10][S16]
        Setting("licensing_mode", None, POL, "LicensingMode", None, meaning="2 per device, 4 per user"),
        Setting("license_servers", None, POL, "LicenseServers", None, meaning="license servers to use"),
        # MSRD #51: licensing configured without Group Policy (Server Manager, Set-RDLicenseConfiguration, WMI).
        Setting("specified_license_servers", TERMSERVICE_LICENSE_SERVERS, None, "SpecifiedLicenseServers", None,
                meaning="license servers set without Group Policy"),
        Setting("rcm_licensing_mode", RCM_LICENSING_CORE, None, "LicensingMode", None,
                meaning="licensing mode set without Group Policy: 2 per device, 4 per user, 5 not configured"),
        # MSRD #13
        Setting("oobe_in_progress", SETUP, None, "OOBEInProgress", 0, meaning="1 = OOBE running, logons refused"),
        Setting("system_setup_in_progress", SETUP, None, "SystemSetupInProgress", 0, meaning="1 = setup running"),
        # [S2] names the listener key file.
        Setting("machine_guid", CRYPTOGRAPHY, None, "MachineGuid", None, meaning="machine GUID"),
    )
}

#: Group Policy display names (TerminalServer.admx [S10], CredSsp.admx [S9], WindowsFirewall.admx [S37]),
#: so that a finding can name the policy a domain administrator must change.
GPO_RDS_PATH = ("Computer Configuration > Administrative Templates > Windows Components > Remote Desktop Services > "
                "Remote Desktop Session Host")
POLICY_NAMES = {
    "deny_ts_connections": "Connections > Allow users to connect remotely by using Remote Desktop Services",
    "security_layer": "Security > Require use of specific security layer for remote (RDP) connections",
    "user_authentication": "Security > Require user authentication for remote connections by using Network Level Authentication",
    "min_encryption_level": "Security > Set client connection encryption level",
    "cert_template_name": "Security > Server authentication certificate template",
    "max_instance_count": "Connections > Limit number of connections",
    "single_session_per_user": "Connections > Restrict Remote Desktop Services users to a single Remote Desktop Services session",
    "max_idle_time": "Session Time Limits > Set time limit for active but idle Remote Desktop Services sessions",
    "max_connection_time": "Session Time Limits > Set time limit for active Remote Desktop Services sessions",
    "max_disconnection_time": "Session Time Limits > Set time limit for disconnected sessions",
    "reset_broken": "Session Time Limits > End session when time limits are reached",
    "licensing_mode": "Licensing > Set the Remote Desktop licensing mode",
    "license_servers": "Licensing > Use the specified Remote Desktop license servers",
}
POLICY_CREDSSP = ("Computer Configuration > Administrative Templates > System > Credentials Delegation > "
                  "Encryption Oracle Remediation")
POLICY_FIREWALL = ("Computer Configuration > Administrative Templates > Network > Network Connections > "
                   "Windows Defender Firewall > {Domain|Standard} Profile > "
                   "Windows Defender Firewall: Allow inbound Remote Desktop exceptions")

#: Firewall GPO "Allow inbound Remote Desktop exceptions" values [S37].
FW_GPO_KEYS = {"domain": FW_GPO_DOMAIN, "standard": FW_GPO_STANDARD}
#: Windows Firewall profiles each GPO key applies to [S37]: Standard = the non-domain profiles.
FW_GPO_PROFILES = {"domain": ("Domain",), "standard": ("Private", "Public")}

# --------------------------------------------------------------------------------------------------
# Meanings
# --------------------------------------------------------------------------------------------------

#: Win32_TSGeneralSetting PolicySource* [S6][S15].
POLICY_SOURCES = {0: "local", 1: "policy", 2: "default"}
#: SecurityLayer [S10][S6] (the WMI property page's 1/2/3 numbering is wrong; registry/ADMX use 0/1/2).
SECURITY_LAYERS = {0: "RDP", 1: "Negotiate", 2: "TLS"}
#: MinEncryptionLevel [S6][S10].
ENCRYPTION_LEVELS = {1: "Low", 2: "Client Compatible", 3: "High", 4: "FIPS Compliant"}
#: MinEncryptionLevel value that requires FIPS [S20].
ENCRYPTION_LEVEL_FIPS = 4
#: AllowEncryptionOracle [S9].
ENCRYPTION_ORACLE = {0: "Force Updated Clients", 1: "Mitigated", 2: "Vulnerable"}
ORACLE_FORCE_UPDATED, ORACLE_MITIGATED, ORACLE_VULNERABLE = 0, 1, 2
#: Win32_TSGeneralSetting.SSLCertificateSHA1HashType [S6].
CERT_HASH_TYPES = {0: "not valid", 1: "self-signed", 2: "GPO template", 3: "custom"}
#: TSServerDrainMode (MSRD #11, `change logon`).
DRAIN_MODES = {0: "logons allowed", 1: "logons drained", 2: "logons drained until restart"}
#: Win32_OperatingSystem.ProductType.
PRODUCT_TYPES = {1: "workstation", 2: "domain_controller", 3: "server"}
#: LicensingMode [S10].
LICENSING_MODES = {2: "per device", 4: "per user"}
#: Win32_TerminalServiceSetting.LicensingType.
LICENSING_TYPES = {1: "personal terminal server", 2: "remote desktop for administration", 4: "per device", 5: "per user",
                   6: "not configured"}
#: Win32_TerminalServiceSetting.GetTStoLSConnectivityStatus TStoLSConnectivityStatus (ms: termserv/
#: gettstolsconnectivitystatus-win32-terminalservicesetting) MSRD #53.
LS_CONNECTIVITY = {0: "unknown", 1: "valid (Windows Server 2008 R2 license server)", 2: "valid (Windows Server 2008 license server)",
                   3: "beta/RTM mismatch", 4: "license server of a lower version", 5: "not in the license server's security group",
                   6: "not connectable", 7: "connectable, validity unknown", 8: "connectable, access denied to the reading account",
                   9: "valid (VDI)", 10: "feature not supported", 11: "valid license server"}
#: Statuses with which the RD Session Host gets licenses (MSRD SDP accepts 1, 2, 11; 9 is the VDI form of 1).
LS_CONNECTIVITY_USABLE = frozenset({1, 2, 9, 11})
#: Statuses with which it does not: unreachable or refused. 0, 7, 8 and 10 say nothing about the host: not judged.
LS_CONNECTIVITY_UNUSABLE = frozenset({3, 4, 5, 6})
#: The RCM values of the RD Session Host's licensing certificates (MSRD #52, SDP RC_RDSx509Cert).
RCM_X509_VALUES = ("X509 Certificate", "X509 Certificate ID", "X509 Certificate2")
#: LoadableProtocol_Object of Microsoft's own RDP stacks (user-mode, kernel-mode), as Windows Admin Center's RDP tool
#: recognises them; anything else on RDP-Tcp is a foreign protocol manager (MSRD #7).
MICROSOFT_PROTOCOL_OBJECT = "{5828227c-20cf-4408-b73f-73ab70b8849f}"  # user-mode RDP stack, the one of current releases
MICROSOFT_PROTOCOL_OBJECTS = frozenset({MICROSOFT_PROTOCOL_OBJECT, "{18b726bb-6fe6-4fb9-9276-ed57ce7c7cb2}"})
#: WTS state of a listener that accepts connections; "Down" = the listener failed (qwinsta shows it) [S4] MSRD #19.
WTS_LISTEN, WTS_DOWN = "Listen", "Down"
#: MaxInstanceCount at or below which a cap that is not reached yet is reported (one administrator plus one more).
LOW_INSTANCE_LIMIT = 2
#: Registry keys whose ACL read_rdp_state returns (cert_store_acls): the Remote Desktop store [S2] and RCM (MSRD #38).
REMOTE_DESKTOP_STORE_KEY = "HKLM:\\SOFTWARE\\Microsoft\\SystemCertificates\\Remote Desktop"
CERT_STORE_ACL_KEYS = {"Remote Desktop": REMOTE_DESKTOP_STORE_KEY, "RCM": RCM}
#: Accounts a Deny ACE must not name there: SYSTEM (SessionEnv makes and renews the certificate), NETWORK SERVICE (TermService).
SID_SYSTEM = "S-1-5-18"
#: Windows' TCP dynamic port range since Vista / Server 2008: 16384 ports from 49152 (ms: troubleshoot
#: tcp-ip-port-exhaustion-troubleshooting); MSRD's PR #126 wants at least that many.
DEFAULT_DYNAMIC_PORTS = 16384
#: An idle or active-session time limit below this (ms) cuts users off in ordinary work: the idle warning alone comes two
#: minutes before the end [S10]. CIS proposes 15 minutes idle [S24].
SHORT_TIME_LIMIT_MS = 5 * 60 * 1000
PROPOSED_MAX_IDLE_MS = 15 * 60 * 1000
#: Remote Desktop for Administration (no RDSH role) allows two concurrent sessions [S10].
ADMIN_MODE_SESSION_LIMIT = 2
#: Policy MaxInstanceCount that means unlimited [S10].
POLICY_UNLIMITED_INSTANCES = 999999
#: Default TCP port [S14].
DEFAULT_PORT = 3389
#: RDSH licensing grace period in days [S16].
LICENSING_GRACE_DAYS = 120

# --------------------------------------------------------------------------------------------------
# Services [S21][S22]
# --------------------------------------------------------------------------------------------------

TERMSERVICE = "TermService"
SESSIONENV = "SessionEnv"
UMRDPSERVICE = "UmRdpService"
SERVICES = (TERMSERVICE, SESSIONENV, UMRDPSERVICE)
#: Default start mode of every RDP service: Manual ("Do not disable") [S21].
SERVICE_DEFAULT_START_MODE = "Manual"
#: TermService logon account [S22]; start error 1069 otherwise.
TERMSERVICE_ACCOUNT = "NT Authority\\NetworkService"
SERVICE_DISPLAY_NAMES = {
    TERMSERVICE: "Remote Desktop Services",
    SESSIONENV: "Remote Desktop Configuration",
    UMRDPSERVICE: "Remote Desktop Services UserMode Port Redirector",
}

# --------------------------------------------------------------------------------------------------
# Certificates [S1][S2][S27][S36]
# --------------------------------------------------------------------------------------------------

#: Store of the self-signed listener certificate (``Cert:\\LocalMachine\\Remote Desktop``) [S2].
STORE_REMOTE_DESKTOP = "Remote Desktop"
#: Store of a custom listener certificate (``Cert:\\LocalMachine\\My``) [S1].
STORE_MY = "My"
CERT_STORES = (STORE_REMOTE_DESKTOP, STORE_MY)
#: Key container of the self-signed certificate [S2].
SELF_SIGNED_KEY_CONTAINER = "TSSecKeySet1"
#: EKU Server Authentication.
EKU_SERVER_AUTH = "1.3.6.1.5.5.7.3.1"
#: EKU Remote Desktop Authentication (szOID_TS_KP_TS_SERVER_AUTH) [S27][S36].
EKU_REMOTE_DESKTOP_AUTH = "1.3.6.1.4.1.311.54.1.2"
#: anyExtendedKeyUsage (RFC 5280).
EKU_ANY = "2.5.29.37.0"
#: EKUs Schannel accepts for the RDP listener.
LISTENER_EKUS = (EKU_SERVER_AUTH, EKU_REMOTE_DESKTOP_AUTH, EKU_ANY)
#: Warn when the listener certificate expires within this many days (MSRD PR warns at 14, RDS at ~60).
CERT_EXPIRY_WARNING_DAYS = 30

# --------------------------------------------------------------------------------------------------
# MachineKeys [S2][S5][S17][S26]
# --------------------------------------------------------------------------------------------------

MACHINEKEYS_PATH = "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys"
#: Default folder SDDL (KB278381 as vmassist checks it): Everyone special (0x12019f), Administrators full.
MACHINEKEYS_DEFAULT_SDDL = "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"
#: Access mask Everyone needs on the folder: list/read/write data, attributes, read permissions [S5].
MACHINEKEYS_EVERYONE_MASK = 0x12019F
#: The self-signed listener key file is ``<prefix>_<MachineGuid>`` [S2][S26].
LISTENER_KEY_PREFIX = "f686aace6942fb7f7ceb231212eef4a4"


def listener_key_file_name(machine_guid: str) -> str:
    """Name of the self-signed listener's key file in MachineKeys for ``machine_guid`` [S2]."""
    return f"{LISTENER_KEY_PREFIX}_{machine_guid}"


# --------------------------------------------------------------------------------------------------
# Firewall [S13][S34][S37]
# --------------------------------------------------------------------------------------------------

#: The "Remote Desktop" rule group, locale-independent [S13].
FIREWALL_RDP_GROUP = "@FirewallAPI.dll,-28752"
FIREWALL_RULE_TCP = "RemoteDesktop-UserMode-In-TCP"
FIREWALL_RULE_UDP = "RemoteDesktop-UserMode-In-UDP"
FIREWALL_RULE_SHADOW = "RemoteDesktop-Shadow-In-TCP"
FIREWALL_RDP_RULES = (FIREWALL_RULE_TCP, FIREWALL_RULE_UDP, FIREWALL_RULE_SHADOW)
FIREWALL_PROFILES = ("Domain", "Private", "Public")

# --------------------------------------------------------------------------------------------------
# Accounts [S23][S24]
# --------------------------------------------------------------------------------------------------

SID_EVERYONE = "S-1-1-0"
SID_AUTHENTICATED_USERS = "S-1-5-11"
SID_NETWORK_SERVICE = "S-1-5-20"
SID_LOCAL_ACCOUNT = "S-1-5-113"
SID_LOCAL_ADMIN_ACCOUNT = "S-1-5-114"
SID_ADMINISTRATORS = "S-1-5-32-544"
SID_USERS = "S-1-5-32-545"
SID_GUESTS = "S-1-5-32-546"
SID_REMOTE_DESKTOP_USERS = "S-1-5-32-555"
RIGHT_ALLOW_RDP = "SeRemoteInteractiveLogonRight"
RIGHT_DENY_RDP = "SeDenyRemoteInteractiveLogonRight"
WELL_KNOWN_SIDS = {
    SID_EVERYONE: "Everyone", SID_AUTHENTICATED_USERS: "Authenticated Users", SID_NETWORK_SERVICE: "NETWORK SERVICE",
    SID_LOCAL_ACCOUNT: "Local account", SID_LOCAL_ADMIN_ACCOUNT: "Local account and member of Administrators group",
    SID_ADMINISTRATORS: "Administrators", SID_USERS: "Users", SID_GUESTS: "Guests",
    SID_REMOTE_DESKTOP_USERS: "Remote Desktop Users",
}

# --------------------------------------------------------------------------------------------------
# CredSSP patch level [S7]: first tspkg.dll FileVersion carrying the CVE-2018-0886 fix, per OS build
# --------------------------------------------------------------------------------------------------

CREDSSP_FIXED_TSPKG = {
    7601: "6.1.7601.24117",     # 2008 R2 / 7 (KB4103718/KB4103712)
    9200: "6.2.9200.22432",     # 2012 (KB4103730/KB4103726)
    9600: "6.3.9600.18999",     # 2012 R2 / 8.1 (KB4103725/KB4103715)
    14393: "10.0.14393.2248",   # 2016 / 1607 (KB4103723)
    15063: "10.0.15063.1088",   # 1703
    16299: "10.0.16299.431",    # 1709
}
#: Builds released after March 2018 ship the fix (inference: 1803 and later were built after the fix).
CREDSSP_FIXED_FROM_BUILD = 17134

# --------------------------------------------------------------------------------------------------
# Schannel OS defaults [S18][S19][S40] and contracts 3a
# --------------------------------------------------------------------------------------------------

BUILD_2008R2, BUILD_2012, BUILD_2016, BUILD_2022 = 7601, 9200, 14393, 20348
BUILD_WINDOWS_11 = 22000


def schannel_default_enabled(protocol: str, build: int | None, product_type: int | None = None) -> bool:
    """Whether ``protocol`` is enabled when its Schannel keys are absent, for an OS build [S18].

    TLS 1.2 is on from Windows 8 / Server 2012 (2008 R2 needs keys, KB3080079 [S19]); TLS 1.3 from
    Server 2022 / Windows 11; TLS 1.0/1.1 stay on in every build this collection targets; SSL 3.0 is off
    from Windows 10 1607 / Server 2016. An unknown build is treated as a current one.
    """
    current = build if build else BUILD_2022
    if protocol == "SSL 3.0":
        return current < BUILD_2016
    if protocol in ("TLS 1.0",):
        return True
    if protocol == "TLS 1.1":
        return current >= BUILD_2012
    if protocol == "TLS 1.2":
        return current >= BUILD_2012
    if protocol == "TLS 1.3":
        is_server = product_type in (2, 3)
        return current >= BUILD_2022 if is_server or product_type is None else current >= BUILD_WINDOWS_11
    raise ValueError(f"unknown Schannel protocol {protocol!r}")


#: Protocols considered legacy (deprecated): enabled explicitly = low finding (MSRD #41, AZ TLS).
LEGACY_PROTOCOLS = ("SSL 3.0", "TLS 1.0", "TLS 1.1")

# --------------------------------------------------------------------------------------------------
# Events [S2][S30][S16] MSRD #44 #57
# --------------------------------------------------------------------------------------------------

PROVIDER_RCM = "Microsoft-Windows-TerminalServices-RemoteConnectionManager"
PROVIDER_SCHANNEL = "Schannel"
PROVIDER_LICENSING = "Microsoft-Windows-TerminalServices-Licensing"
PROVIDER_TERMDD = "TermDD"

EVENT_CERT_CREATED = 1056
EVENT_CERT_CREATE_FAILED = 1057
EVENT_CERT_REPLACE_FAILED = 1058
EVENT_SCHANNEL_KEY_ACCESS = 36870
EVENT_SCHANNEL_CREDENTIAL = 36871
EVENT_SCHANNEL_NO_CIPHER = 36874
EVENT_SCHANNEL_ALERT = 36888

#: (provider, id) -> meaning. Providers are matched case-insensitively on their last dash-separated parts.
EVENT_MEANINGS = {
    (PROVIDER_RCM, EVENT_CERT_CREATED): "new self-signed listener certificate generated",
    (PROVIDER_RCM, EVENT_CERT_CREATE_FAILED): "failed to create a new self-signed listener certificate",
    (PROVIDER_RCM, EVENT_CERT_REPLACE_FAILED): "failed to replace the expired self-signed listener certificate",
    (PROVIDER_RCM, 1149): "user authentication succeeded (RDP logon)",
    (PROVIDER_RCM, 261): "listener received a connection",
    (PROVIDER_SCHANNEL, EVENT_SCHANNEL_KEY_ACCESS): "fatal error accessing the TLS server credential private key",
    (PROVIDER_SCHANNEL, EVENT_SCHANNEL_CREDENTIAL): "fatal error creating the TLS server credential (protocols disabled)",
    (PROVIDER_SCHANNEL, EVENT_SCHANNEL_NO_CIPHER): "no common cipher suite with the client",
    (PROVIDER_SCHANNEL, EVENT_SCHANNEL_ALERT): "fatal TLS alert generated",
    (PROVIDER_TERMDD, 56): "protocol error on an RDP connection",
    (PROVIDER_TERMDD, 50): "RDP protocol component detected an error",
}

# --------------------------------------------------------------------------------------------------
# Issue 12 part B: TLS cipher suites, listener ACL, logon prerequisites, connection events
# --------------------------------------------------------------------------------------------------

#: SCHANNEL algorithm roots read by ``read_rdp_state`` (section ``schannel_algorithms``): one subkey per algorithm
#: ("AES 128/128", "SHA256", "ECDH", ...) with ``Enabled`` (0 = off) (ms: windows-server/security/tls/tls-registry-settings).
SCHANNEL_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL"
SCHANNEL_ALGORITHM_KINDS = ("Ciphers", "Hashes", "KeyExchangeAlgorithms")
POLICY_CIPHER_SUITE_ORDER = ("Computer Configuration > Administrative Templates > Network > SSL Configuration Settings > "
                             "SSL Cipher Suite Order")


class CipherSuite(t.NamedTuple):
    """A TLS cipher suite as Schannel names it, and the SCHANNEL algorithm subkeys that can switch it off."""

    name: str
    protocols: tuple[str, ...]  # Schannel protocol names (SCHANNEL_PROTOCOLS) the suite can be negotiated with
    key_exchange: str           # KeyExchangeAlgorithms subkey: PKCS (RSA), Diffie-Hellman, ECDH
    cipher: str                 # Ciphers subkey
    hash: str                   # Hashes subkey (the suite's MAC / PRF hash)


_TLS12 = ("TLS 1.2",)
_TLS10_12 = ("TLS 1.0", "TLS 1.1", "TLS 1.2")
#: Suites a modern client offers that an RSA listener certificate can serve: mstsc on Windows 10/11 (Schannel's default
#: client list, ms: tls/tls-cipher-suites-in-windows-10-v1903 and later pages) and FreeRDP 2/3 (OpenSSL's DEFAULT list).
#: Suites for ECDSA certificates are left out: the listener's self-signed certificate is RSA [S2]. The TLS 1.3 suites use
#: ECDHE whatever KeyExchangeAlgorithms says (inference: the ms page lists no key-exchange key for TLS 1.3).
MODERN_CLIENT_SUITES = (
    CipherSuite("TLS_AES_256_GCM_SHA384", ("TLS 1.3",), "ECDH", "AES 256/256", "SHA384"),
    CipherSuite("TLS_AES_128_GCM_SHA256", ("TLS 1.3",), "ECDH", "AES 128/128", "SHA256"),
    CipherSuite("TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", _TLS12, "ECDH", "AES 256/256", "SHA384"),
    CipherSuite("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", _TLS12, "ECDH", "AES 128/128", "SHA256"),
    CipherSuite("TLS_DHE_RSA_WITH_AES_256_GCM_SHA384", _TLS12, "Diffie-Hellman", "AES 256/256", "SHA384"),
    CipherSuite("TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", _TLS12, "Diffie-Hellman", "AES 128/128", "SHA256"),
    CipherSuite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384", _TLS12, "ECDH", "AES 256/256", "SHA384"),
    CipherSuite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", _TLS12, "ECDH", "AES 128/128", "SHA256"),
    CipherSuite("TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", _TLS10_12, "ECDH", "AES 256/256", "SHA"),
    CipherSuite("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", _TLS10_12, "ECDH", "AES 128/128", "SHA"),
    CipherSuite("TLS_RSA_WITH_AES_256_GCM_SHA384", _TLS12, "PKCS", "AES 256/256", "SHA384"),
    CipherSuite("TLS_RSA_WITH_AES_128_GCM_SHA256", _TLS12, "PKCS", "AES 128/128", "SHA256"),
    CipherSuite("TLS_RSA_WITH_AES_256_CBC_SHA256", _TLS12, "PKCS", "AES 256/256", "SHA256"),
    CipherSuite("TLS_RSA_WITH_AES_128_CBC_SHA256", _TLS12, "PKCS", "AES 128/128", "SHA256"),
    CipherSuite("TLS_RSA_WITH_AES_256_CBC_SHA", _TLS10_12, "PKCS", "AES 256/256", "SHA"),
    CipherSuite("TLS_RSA_WITH_AES_128_CBC_SHA", _TLS10_12, "PKCS", "AES 128/128", "SHA"),
)
#: Windows 8.1 / 2012 R2 and older append the curve to ECDHE suite names in Functions (``..._SHA256_P256``).
CIPHER_SUITE_CURVE_SUFFIXES = ("_P256", "_P384", "_P521")

#: Schannel events read (System log) [S2][S30]: 36885-36887 added by issue 12.
EVENT_SCHANNEL_CA_LIST = 36885       # the trusted CA list sent for client authentication is too long (warning)
EVENT_SCHANNEL_NO_CREDENTIAL = 36886  # no suitable default server credential exists
EVENT_SCHANNEL_ALERT_RECEIVED = 36887  # a fatal alert was received from the client
SCHANNEL_EVENT_IDS = (EVENT_SCHANNEL_KEY_ACCESS, EVENT_SCHANNEL_CREDENTIAL, EVENT_SCHANNEL_NO_CIPHER, EVENT_SCHANNEL_CA_LIST,
                      EVENT_SCHANNEL_NO_CREDENTIAL, EVENT_SCHANNEL_ALERT_RECEIVED, EVENT_SCHANNEL_ALERT)
#: Schannel events that show the listener could not build its TLS credential (every client fails).
SCHANNEL_CREDENTIAL_EVENTS = (EVENT_SCHANNEL_KEY_ACCESS, EVENT_SCHANNEL_CREDENTIAL, EVENT_SCHANNEL_NO_CREDENTIAL)
#: Schannel events that show handshakes failing with some clients.
SCHANNEL_HANDSHAKE_EVENTS = (EVENT_SCHANNEL_NO_CIPHER, EVENT_SCHANNEL_ALERT)

#: The host's record of clients reaching the listener (msrd-coverage "checked by none"; ms: remote/rdp-client-connection-events
#: as quoted by MSRD-Collect, which collects these logs without evaluating them).
LOG_RCM_OPERATIONAL = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"
LOG_RDPCORETS_OPERATIONAL = "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational"
PROVIDER_RDPCORETS = "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS"
EVENT_RCM_CONNECTION_RECEIVED = 261   # "Listener RDP-Tcp received a connection"
EVENT_RCM_AUTHENTICATED = 1149        # "Remote Desktop Services: User authentication succeeded" (network-level)
EVENT_RDPCORETS_TCP_ACCEPTED = 131    # "The server accepted a new TCP connection from client <ip>:<port>"
EVENT_RDPCORETS_BAD_CREDENTIALS = 140  # "A connection from the client computer ... failed because the user name or password is not correct"
EVENT_MEANINGS.update({
    (PROVIDER_SCHANNEL, EVENT_SCHANNEL_CA_LIST): "the trusted CA list for client authentication is too long",
    (PROVIDER_SCHANNEL, EVENT_SCHANNEL_NO_CREDENTIAL): "no suitable default TLS server credential",
    (PROVIDER_SCHANNEL, EVENT_SCHANNEL_ALERT_RECEIVED): "fatal TLS alert received from the client",
    (PROVIDER_RDPCORETS, EVENT_RDPCORETS_TCP_ACCEPTED): "the listener accepted a TCP connection",
    (PROVIDER_RDPCORETS, EVENT_RDPCORETS_BAD_CREDENTIALS): "a client's logon failed: wrong user name or password",
})

#: Win32_TSAccount PermissionsAllowed / PermissionsDenied bits (ms: termserv/win32-tsaccount).
WINSTATION_LOGON = 0x20
WINSTATION_CONNECT = 0x100
#: Groups that let ordinary RDP users through the listener ACL or the logon right (direct SIDs, language-neutral).
BROAD_GROUP_SIDS = (SID_EVERYONE, SID_AUTHENTICATED_USERS, SID_USERS)
#: Groups whose loss (from the listener ACL or the allow right) or denial stops the usual RDP users.
RDP_GROUP_SIDS = (SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS)
POLICY_ALLOW_RDP_RIGHT = ("Computer Configuration > Windows Settings > Security Settings > Local Policies > User Rights Assignment > "
                          "Allow log on through Remote Desktop Services")
POLICY_DENY_RDP_RIGHT = ("Computer Configuration > Windows Settings > Security Settings > Local Policies > User Rights Assignment > "
                         "Deny log on through Remote Desktop Services")

#: Services an RDP logon needs besides the RDS services (MSRD #21 #45): LSM hosts sessions, Netlogon authenticates
#: domain accounts (NLA), BFE and MpsSvc run the firewall (ms: security-guidelines-for-disabling-system-services) [S21].
SERVICE_LSM = "LSM"
SERVICE_NETLOGON = "Netlogon"
SERVICE_BFE = "BFE"
SERVICE_MPSSVC = "MpsSvc"
LOGON_SERVICES = (SERVICE_LSM, SERVICE_NETLOGON, SERVICE_BFE, SERVICE_MPSSVC)
LOGON_SERVICE_DISPLAY_NAMES = {SERVICE_LSM: "Local Session Manager", SERVICE_NETLOGON: "Netlogon", SERVICE_BFE: "Base Filtering Engine",
                               SERVICE_MPSSVC: "Windows Defender Firewall"}

#: RestrictReceivingNTLMTraffic (ms: network-security-restrict-ntlm-incoming-ntlm-traffic).
NTLM_INCOMING = {0: "allow all", 1: "deny all domain accounts", 2: "deny all accounts"}
NTLM_INCOMING_DENY_DOMAIN, NTLM_INCOMING_DENY_ALL = 1, 2
POLICY_NTLM_INCOMING = ("Computer Configuration > Windows Settings > Security Settings > Local Policies > Security Options > "
                        "Network security: Restrict NTLM: Incoming NTLM traffic")
#: LmCompatibilityLevel (ms: network-security-lan-manager-authentication-level): 0-5; absent = 3 from Windows Vista on.
LM_COMPATIBILITY_DEFAULT = 3
#: Tcpip port exhaustion (MSRD #22 #65; ms: troubleshoot windows-server/networking/tcp-ip-port-exhaustion-troubleshooting):
#: 4227 a local endpoint recently used could not be reused, 4231 no ephemeral port left to allocate.
PROVIDER_TCPIP = "Tcpip"
EVENT_TCPIP_ENDPOINT_REUSE = 4227
EVENT_TCPIP_PORTS_EXHAUSTED = 4231
EVENT_MEANINGS.update({
    (PROVIDER_TCPIP, EVENT_TCPIP_ENDPOINT_REUSE): "outgoing TCP connection failed: the local endpoint was recently used",
    (PROVIDER_TCPIP, EVENT_TCPIP_PORTS_EXHAUSTED): "no ephemeral TCP port left: every port of the dynamic range is in use",
})
