"""A simulated Windows host, as plain data (no I/O): everything RDP-related the collection reads or changes.

Paths, values, event ids and defaults follow ``/work/shared/reference/windows-rdp-facts.md`` ([Sn]
below) and ``docs/dev/contracts.md`` sections 3, 3a and 7. The lab's twins read and change this model
exactly as the host scripts read and change Windows; the lab's RDP listener derives its answers from
it (``tests/lab/behaviour.py``).

Attribute map for the ``read_rdp_state`` twin (contracts section 3 -> model):

================== ==================================================================================
raw document key   model
================== ==================================================================================
host_time_utc      ``host.clock(now)`` (real time plus ``host.clock_offset_seconds``)
os                 ``host.os`` (``OSInfo``: caption, version, build, product_type, computer_name,
                   dns_host_name, domain, part_of_domain, machine_guid, rdsh_installed)
registry           ``host.registry.get_key(path)`` -> dict of values or None (case-insensitive paths)
ts_general_setting ``ts_general_setting(host)`` (None when ``host.wmi_broken``)
ts_setting         ``ts_setting(host)``
services           ``host.services`` (name -> ``Service``: state, start_mode, pid, account)
listening          ``listening_sockets(host)`` -> ``Socket`` list (TermService's sockets are derived)
certificates       ``host.cert_stores`` ("Remote Desktop", "My" -> ``CertEntry`` list; ``.thumbprint``,
                   ``.der``, has_private_key, key_container, key_file, key_readable_by_network_service,
                   key_error)
tspkg_version      ``host.os.tspkg_version``
firewall           ``host.firewall_rules`` (``FirewallRule``), ``host.firewall_profiles``
sessions           ``host.sessions`` (``Session``; ``idle_seconds(now)``)
machinekeys        ``host.machinekeys`` (path, exists, sddl, files name -> ``KeyFile``);
                   listener key file name: ``host.listener_key_file_name``
winrm_listeners    ``host.winrm_listeners``
accounts           ``host.accounts`` (``Account``), ``host.group_members(sid)``, ``host.groups_of(sid)``,
                   ``host.user_rights`` (right -> SID list), ``host.find_account(name)``
events             ``host.events`` (``Event``: log, provider, event_id, time, message, level)
================== ==================================================================================
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass, field
from typing import Union

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.lab import certs

RegValue = Union[int, str, list, bytes]  # DWORD/QWORD, SZ/EXPAND_SZ, MULTI_SZ (list of str), BINARY

# ---- registry paths (contracts section 3a; PowerShell provider form) ----
TS = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server"
WINSTATIONS = TS + "\\WinStations"
RDP_TCP = WINSTATIONS + "\\RDP-Tcp"
POL = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Windows NT\\Terminal Services"
CREDSSP = "HKLM:\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\CredSSP\\Parameters"
SCHANNEL_PROTOCOLS = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols"
LSA = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Lsa"
FIPS = LSA + "\\FIPSAlgorithmPolicy"
FW_GPO_DOMAIN = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\DomainProfile\\Services\\RemoteDesktop"
FW_GPO_STANDARD = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\StandardProfile\\Services\\RemoteDesktop"
CRYPTOGRAPHY = "HKLM:\\SOFTWARE\\Microsoft\\Cryptography"
SETUP = "HKLM:\\SYSTEM\\Setup"
# Licensing set without Group Policy and the RD Session Host's licensing certificates (issue 12; rdp_registry names them).
RCM = TS + "\\RCM"
RCM_LICENSING_CORE = RCM + "\\Licensing Core"
TERMSERVICE_LICENSE_SERVERS = "HKLM:\\SYSTEM\\CurrentControlSet\\Services\\TermService\\Parameters\\LicenseServers"
RCM_X509_VALUES = ("X509 Certificate", "X509 Certificate ID", "X509 Certificate2")
# The protocol managers TermService can load for RDP-Tcp (LoadableProtocol_Object): Microsoft's user- and kernel-mode stacks.
RDP_PROTOCOL_OBJECT = "{5828227c-20cf-4408-b73f-73ab70b8849f}"
MICROSOFT_PROTOCOL_OBJECTS = (RDP_PROTOCOL_OBJECT, "{18b726bb-6fe6-4fb9-9276-ed57ce7c7cb2}")
# The Remote Desktop store's registry key [S2] and the default ACLs of it and of RCM (SYSTEM and Administrators full
# control, read for users / NETWORK SERVICE); a Deny for SYSTEM stops SessionEnv making the certificate (MSRD #38).
RDS_STORE_KEY = "HKLM:\\SOFTWARE\\Microsoft\\SystemCertificates\\Remote Desktop"
DEFAULT_KEY_SDDL = {RDS_STORE_KEY: "O:SYG:SYD:AI(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)",
                    RCM: "O:SYG:SYD:AI(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)(A;CIID;KR;;;BU)(A;CIID;KR;;;NS)"}
# GetTStoLSConnectivityStatus: 11 = LS_CONNECTABLE_VALID_LS, 6 = LS_NOT_CONNECTABLE.
LS_VALID, LS_NOT_CONNECTABLE = 11, 6

SCHANNEL_PROTOCOL_NAMES = ("SSL 3.0", "TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3")


def schannel_key(protocol: str, side: str = "Server") -> str:
    """Registry path of one Schannel protocol side, e.g. ``schannel_key("TLS 1.2")`` [S18]."""
    if protocol not in SCHANNEL_PROTOCOL_NAMES or side not in ("Server", "Client"):
        raise ValueError(f"unknown Schannel protocol/side: {protocol!r}/{side!r}")
    return f"{SCHANNEL_PROTOCOLS}\\{protocol}\\{side}"


# ---- well-known names [S1 S2 S13 S21 S23 S34] ----
RDS_STORE = "Remote Desktop"
MY_STORE = "My"
#: Seconds a restarting lab host refuses WinRM connections after its restart time (a scheduled ``shutdown.exe /r``).
RESTART_DOWN_SECONDS = 3.0
SELF_SIGNED_CONTAINER = "TSSecKeySet1"
LISTENER_KEY_PREFIX = "f686aace6942fb7f7ceb231212eef4a4"
MACHINEKEYS_PATH = "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys"
MACHINEKEYS_DEFAULT_SDDL = "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"  # KB278381 [S5]
# A legacy-CSP machine key file as Windows creates it: SYSTEM and Administrators full, NETWORK SERVICE read.
KEY_FILE_DEFAULT_SDDL = "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;0x120089;;;NS)"
RDP_FIREWALL_GROUP = "@FirewallAPI.dll,-28752"
WINRM_FIREWALL_GROUP = "@FirewallAPI.dll,-30267"
SID_ADMINISTRATORS = "S-1-5-32-544"
SID_USERS = "S-1-5-32-545"
SID_GUESTS = "S-1-5-32-546"
SID_REMOTE_DESKTOP_USERS = "S-1-5-32-555"
SID_NETWORK_SERVICE = "S-1-5-20"
RIGHT_ALLOW_RDP = "SeRemoteInteractiveLogonRight"
RIGHT_DENY_RDP = "SeDenyRemoteInteractiveLogonRight"
TERMSERVICE = "TermService"
SESSIONENV = "SessionEnv"
UMRDPSERVICE = "UmRdpService"
LSM = "LSM"  # Local Session Manager
BFE = "BFE"  # Base Filtering Engine
NETLOGON = "Netlogon"
MPSSVC = "MpsSvc"  # Windows Defender Firewall: its ActiveStore answers only while it runs (CIM error 1753 otherwise)
LAB_ACCOUNT = "rdpuser"  # every healthy lab host has it, in Remote Desktop Users (contracts section 8)
# How the lab shows a client a port the firewall blocks (contracts section 9): "refuse" closes the socket
# (RST, fast; the lab's default), "drop" swallows the SYN as Windows Defender Firewall does (client timeout).
FIREWALL_BLOCK_MODES = ("refuse", "drop")
DEFAULT_FIREWALL_BLOCKS = "refuse"

# Event providers (System log unless noted) [S2 S22 S30]
PROVIDER_RCM = "Microsoft-Windows-TerminalServices-RemoteConnectionManager"
PROVIDER_SCHANNEL = "Schannel"
PROVIDER_SCM = "Service Control Manager"
PROVIDER_TCPIP = "Tcpip"  # port exhaustion 4227 / 4231 (issue 12)
PROVIDER_SECURITY = "Microsoft-Windows-Security-Auditing"
LOG_RCM_ADMIN = "Microsoft-Windows-TerminalServices-RemoteConnectionManager/Admin"


def capi_key_hash(container: str) -> str:
    """The first part of a machine key's file name: MD5 of the lower-case container name plus its NUL, as four
    little-endian DWORDs in hex (how the legacy CSPs and CNG name the files in MachineKeys / Keys) [S2][S26].

    ``capi_key_hash("TSSecKeySet1") == LISTENER_KEY_PREFIX``. The script computes the same (Get-RdKeyFileName).
    """
    digest = hashlib.md5((container.lower() + "\0").encode("utf-8"), usedforsecurity=False).digest()
    return "".join(f"{int.from_bytes(digest[i:i + 4], 'little'):08x}" for i in range(0, 16, 4))


def capi_key_file_name(container: str, machine_guid: str) -> str:
    """``<capi_key_hash(container)>_<MachineGuid>``."""
    return f"{capi_key_hash(container)}_{machine_guid}"


# ---- operating systems ----
@dataclass(frozen=True)
class OSRelease:
    """A Windows Server release the lab can simulate.

    ``tspkg_patched`` is a tspkg.dll FileVersion that includes the CredSSP fix (CVE-2018-0886);
    ``credssp_fix`` the first fixed version [S7]; ``tspkg_unpatched`` a pre-fix version, or None for
    releases that shipped with the fix. ``tls_defaults``: Schannel Server protocols on when no registry
    key exists [S18 S40]; ``tls13_supported``: only Server 2022 implements TLS 1.3.
    """

    version: str
    caption: str
    tspkg_patched: str
    credssp_fix: str
    tspkg_unpatched: str | None
    tls_defaults: dict
    tls13_supported: bool


_TLS_LEGACY_ON = {"SSL 3.0": False, "TLS 1.0": True, "TLS 1.1": True, "TLS 1.2": True, "TLS 1.3": False}

OS_RELEASES: dict[str, OSRelease] = {
    "6.3.9600": OSRelease("6.3.9600", "Microsoft Windows Server 2012 R2 Datacenter", "6.3.9600.20821", "6.3.9600.18999",
                          "6.3.9600.18895", dict(_TLS_LEGACY_ON, **{"SSL 3.0": True}), False),
    "10.0.14393": OSRelease("10.0.14393", "Microsoft Windows Server 2016 Datacenter", "10.0.14393.7428", "10.0.14393.2248",
                            "10.0.14393.2189", dict(_TLS_LEGACY_ON), False),
    "10.0.17763": OSRelease("10.0.17763", "Microsoft Windows Server 2019 Datacenter", "10.0.17763.6414", "10.0.17763.1",
                            None, dict(_TLS_LEGACY_ON), False),
    "10.0.20348": OSRelease("10.0.20348", "Microsoft Windows Server 2022 Datacenter", "10.0.20348.2849", "10.0.20348.1",
                            None, dict(_TLS_LEGACY_ON, **{"TLS 1.3": True}), True),
}
OS_ALIASES = {"2012r2": "6.3.9600", "2012 r2": "6.3.9600", "2016": "10.0.14393", "2019": "10.0.17763", "2022": "10.0.20348"}
DEFAULT_OS_VERSION = "10.0.20348"


def resolve_os_version(value: str | int) -> str:
    """Map "2022" / "10.0.20348" (any case) to the canonical version string, or raise ValueError."""
    text = str(value).strip().lower()
    version = OS_ALIASES.get(text, text)
    if version not in OS_RELEASES:
        known = ", ".join(sorted(set(OS_RELEASES) | set(OS_ALIASES)))
        raise ValueError(f"unknown os_version {value!r}; known: {known}")
    return version


def version_tuple(version: str) -> tuple[int, ...]:
    """'10.0.20348.2849' -> (10, 0, 20348, 2849)."""
    return tuple(int(part) for part in version.split("."))


# ---- registry ----
def _norm_path(path: str) -> str:
    """Case-insensitive registry key identity; trailing separators ignored."""
    return path.rstrip("\\").lower()


@dataclass
class Registry:
    """Registry keys by PowerShell provider path (``HKLM:\\...``); key and value names are case-insensitive.

    ``keys`` maps a key path (as first written) to its values (name as first written -> value). A key
    exists when it was created or a subkey exists (Windows creates parents).
    """

    keys: dict[str, dict[str, RegValue]] = field(default_factory=dict)
    # Value types the model cannot tell from the Python value (QWORD, ExpandString): "path|name" lower case -> type.
    types: dict[str, str] = field(default_factory=dict)

    def value_type(self, path: str, name: str) -> str | None:
        """The contract type name of a value (DWORD, QWORD, String, ExpandString, MultiString, Binary), None if absent."""
        value = self.get(path, name)
        if value is None:
            return None
        recorded = self.types.get(f"{_norm_path(path)}|{name.lower()}")
        if isinstance(value, bytes):
            return "Binary"
        if isinstance(value, list):
            return "MultiString"
        if isinstance(value, str):
            return recorded if recorded in ("String", "ExpandString") else "String"
        return recorded if recorded in ("DWORD", "QWORD") else ("QWORD" if value > 0xFFFFFFFF else "DWORD")

    def set_type(self, path: str, name: str, value_type: str) -> None:
        """Remember the type a value was written with."""
        self.types[f"{_norm_path(path)}|{name.lower()}"] = value_type

    def _find(self, path: str) -> str | None:
        wanted = _norm_path(path)
        for existing in self.keys:
            if _norm_path(existing) == wanted:
                return existing
        return None

    def key_exists(self, path: str) -> bool:
        """True if the key or any subkey exists."""
        wanted = _norm_path(path)
        return any(_norm_path(k) == wanted or _norm_path(k).startswith(wanted + "\\") for k in self.keys)

    def get_key(self, path: str) -> dict[str, RegValue] | None:
        """A copy of the key's values, ``{}`` for an existing key without values, None if absent."""
        found = self._find(path)
        if found is not None:
            return copy.deepcopy(self.keys[found])
        return {} if self.key_exists(path) else None

    def create_key(self, path: str) -> None:
        """Create a key (no-op if present)."""
        if self._find(path) is None:
            self.keys[path.rstrip("\\")] = {}

    def get(self, path: str, name: str, default: RegValue | None = None) -> RegValue | None:
        """One value, or ``default`` if the key or the value is absent."""
        found = self._find(path)
        if found is None:
            return default
        for value_name, value in self.keys[found].items():
            if value_name.lower() == name.lower():
                return value
        return default

    def set(self, path: str, name: str, value: RegValue) -> None:
        """Set a value, creating the key; keeps the existing spelling of the value name."""
        if isinstance(value, bool) or not isinstance(value, (int, str, list, bytes)):
            raise TypeError(f"registry values are int, str, list of str or bytes, not {type(value).__name__}")
        self.create_key(path)
        values = self.keys[self._find(path) or path]
        existing = next((n for n in values if n.lower() == name.lower()), name)
        values[existing] = value

    def delete(self, path: str, name: str) -> bool:
        """Delete a value; True if it existed."""
        found = self._find(path)
        if found is None:
            return False
        for value_name in list(self.keys[found]):
            if value_name.lower() == name.lower():
                del self.keys[found][value_name]
                return True
        return False

    def delete_key(self, path: str) -> bool:
        """Delete a key and its subkeys; True if anything existed."""
        wanted = _norm_path(path)
        doomed = [k for k in self.keys if _norm_path(k) == wanted or _norm_path(k).startswith(wanted + "\\")]
        for key in doomed:
            del self.keys[key]
        return bool(doomed)

    def subkeys(self, path: str) -> list[str]:
        """Names of the direct subkeys of a key (Get-ChildItem), sorted case-insensitively."""
        wanted = _norm_path(path) + "\\"
        names = {k.rstrip("\\")[len(wanted):].split("\\")[0] for k in self.keys if _norm_path(k).startswith(wanted)}
        return sorted(names, key=str.lower)


class ServiceError(RuntimeError):
    """A Service Control Manager failure (disabled service, unknown service)."""


# ---- the rest of the host ----
@dataclass
class OSInfo:
    """Win32_OperatingSystem / Win32_ComputerSystem facts. ``domain`` is "WORKGROUP" when not joined."""

    caption: str
    version: str
    build: int
    product_type: int  # 1 workstation, 2 domain controller, 3 server
    computer_name: str  # NetBIOS name, upper case, at most 15 characters
    dns_host_name: str
    domain: str
    part_of_domain: bool
    machine_guid: str
    rdsh_installed: bool
    tspkg_version: str
    netbios_domain: str = ""  # e.g. CONTOSO; empty in a workgroup

    @property
    def fqdn(self) -> str:
        """dns_host_name.domain when joined, else dns_host_name."""
        return f"{self.dns_host_name}.{self.domain}" if self.part_of_domain else self.dns_host_name


@dataclass
class CertEntry:
    """A certificate in a LocalMachine store, with what Windows knows about its private key.

    ``key`` is the real private key (None when the certificate has none). ``key_file`` is the key's
    file name in MachineKeys (legacy CSP) or None. ``key_error`` is what reading the key reports on the
    host, e.g. "Keyset does not exist".
    """

    cert: x509.Certificate
    key: rsa.RSAPrivateKey | None
    has_private_key: bool = True
    key_readable_by_network_service: bool = True
    key_container: str | None = None
    key_file: str | None = None
    key_error: str | None = None
    friendly_name: str = ""

    @property
    def thumbprint(self) -> str:
        """Upper-case SHA-1 hex, as Windows shows it."""
        return certs.thumbprint(self.cert)

    @property
    def der(self) -> bytes:
        """DER bytes (the raw document carries them base64-encoded)."""
        return certs.cert_der(self.cert)

    @property
    def pem(self) -> bytes:
        """PEM of the certificate."""
        return certs.cert_pem(self.cert)

    @property
    def not_after(self) -> dt.datetime:
        """Expiry, timezone-aware UTC."""
        return self.cert.not_valid_after_utc

    @property
    def not_before(self) -> dt.datetime:
        """Start of validity, timezone-aware UTC."""
        return self.cert.not_valid_before_utc


@dataclass
class Service:
    """A Windows service (Win32_Service). ``pid`` is 0 when not running."""

    name: str
    display_name: str
    state: str = "Running"  # Running | Stopped | StartPending | StopPending
    start_mode: str = "Manual"  # Auto | Manual | Disabled
    pid: int = 0
    account: str = "LocalSystem"


@dataclass
class ListenerAce:
    """One entry of the RDP-Tcp listener's ACL as Win32_TSAccount reports it (ms: termserv/win32-tsaccount)."""

    sid: str
    account: str
    allowed: int  # PermissionsAllowed bit mask: WINSTATION_LOGON 0x20, WINSTATION_CONNECT 0x100
    denied: int = 0


def default_listener_acl() -> list[ListenerAce]:
    """RDP-Tcp's default permissions: SYSTEM and Administrators full control, Remote Desktop Users user access (query,
    logon, connect), LOCAL SERVICE and NETWORK SERVICE message (ms: termserv/win32-tspermissionssetting)."""
    return [ListenerAce("S-1-5-18", "NT AUTHORITY\\SYSTEM", 0xF03BF), ListenerAce("S-1-5-19", "NT AUTHORITY\\LOCAL SERVICE", 0x80),
            ListenerAce(SID_NETWORK_SERVICE, "NT AUTHORITY\\NETWORK SERVICE", 0x80),
            ListenerAce(SID_ADMINISTRATORS, "BUILTIN\\Administrators", 0xF03BF),
            ListenerAce(SID_REMOTE_DESKTOP_USERS, "BUILTIN\\Remote Desktop Users", 0x121)]


@dataclass
class Socket:
    """A listening socket (Get-NetTCPConnection -State Listen / Get-NetUDPEndpoint)."""

    protocol: str  # "tcp" | "udp"
    address: str
    port: int
    pid: int
    process: str


@dataclass
class FirewallRule:
    """A Windows Defender Firewall rule (Get-NetFirewallRule + port filter) [S13 S34]."""

    name: str
    display_name: str
    group: str
    enabled: bool
    protocol: str  # "TCP" | "UDP"
    local_ports: list[str]  # ["3389"] or ["Any"]
    direction: str = "Inbound"
    action: str = "Allow"
    profiles: list[str] = field(default_factory=lambda: ["Domain", "Private", "Public"])  # or ["Any"]
    remote_addresses: list[str] = field(default_factory=lambda: ["Any"])
    program: str = "Any"
    service: str = "Any"
    policy_store_source: str = "PersistentStore"

    def covers_port(self, port: int) -> bool:
        """True when the rule's local ports include ``port`` (single ports, ranges "a-b" or Any)."""
        for spec in self.local_ports:
            if spec.lower() == "any":
                return True
            low, high = (spec.split("-", 1) + [spec])[:2]
            if low.strip().isdigit() and high.strip().isdigit() and int(low) <= port <= int(high):
                return True
        return False

    def applies_to(self, profile: str) -> bool:
        """True when the rule is active in the given profile (Domain, Private, Public)."""
        return any(p.lower() in ("any", profile.lower()) for p in self.profiles)


@dataclass
class FirewallProfile:
    """Get-NetFirewallProfile."""

    name: str  # Domain | Private | Public
    enabled: bool = True
    default_inbound_action: str = "Block"


@dataclass
class Session:
    """A user session (qwinsta / WTS). Times are timezone-aware UTC."""

    session_id: int
    user: str  # DOMAIN\\user or COMPUTER\\user
    state: str  # Active | Disconnected
    logon_time: dt.datetime
    disconnect_time: dt.datetime | None = None
    last_input_time: dt.datetime | None = None

    def idle_seconds(self, now: dt.datetime) -> int:
        """Seconds since last input (disconnected sessions: since disconnect)."""
        since = self.last_input_time or self.disconnect_time or self.logon_time
        return max(0, int((now - since).total_seconds()))


@dataclass
class Account:
    """A local user (Get-LocalUser / Win32_UserAccount). Group membership lives in ``Host.groups``."""

    name: str
    sid: str
    disabled: bool = False
    locked_out: bool = False
    full_name: str = ""


@dataclass
class GroupMember:
    """A member of a local group: a local or domain principal."""

    sid: str
    name: str  # COMPUTER\\user or DOMAIN\\group


@dataclass
class LocalGroup:
    """A local group by SID (names are localized, SIDs are not) [S23]."""

    sid: str
    name: str
    members: list[GroupMember] = field(default_factory=list)


@dataclass
class KeyFile:
    """A file in MachineKeys. ``readable``: the reading script (an administrator) can open it."""

    name: str
    sddl: str = KEY_FILE_DEFAULT_SDDL
    size: int = 2
    readable: bool = True


@dataclass
class MachineKeys:
    """The legacy CSP machine key folder [S5 S17]. ``files`` maps file name -> KeyFile."""

    path: str = MACHINEKEYS_PATH
    exists: bool = True
    sddl: str = MACHINEKEYS_DEFAULT_SDDL
    files: dict[str, KeyFile] = field(default_factory=dict)


@dataclass
class WinRMListener:
    """A WS-Management listener (winrm enumerate winrm/config/listener)."""

    transport: str  # HTTP | HTTPS
    address: str = "*"
    port: int = 5985
    thumbprint: str | None = None
    enabled: bool = True


@dataclass
class Licensing:
    """RDS licensing as Win32_TerminalServiceSetting reports it [S16 S39].

    ``licensing_type``: 2 per device, 4 per user, 5 not configured. ``grace_period_days`` is None when
    GetGracePeriodDays() fails (no RDSH role).
    """

    licensing_type: int = 5
    grace_period_days: int | None = None
    license_servers: list[str] = field(default_factory=list)
    # GetTStoLSConnectivityStatus per server name (lower case); a server not listed answers LS_VALID (11).
    server_status: dict[str, int] = field(default_factory=dict)


@dataclass
class Event:
    """One event log record."""

    log: str
    provider: str
    event_id: int
    time: dt.datetime
    message: str
    level: str = "Error"  # Error | Warning | Information
    format_error: str | None = None  # the message cannot be formatted (provider metadata missing or broken)


@dataclass
class DomainPrincipal:
    """A domain user or group the host can look up through its domain (NTAccount.Translate)."""

    name: str  # NETBIOS\\name
    sid: str
    member_of: list[str] = field(default_factory=list)  # domain group SIDs (what token groups would add)


@dataclass
class RevertTask:
    """A scheduled task of the revert_task operation: at ``run_at`` it applies ``restore`` then deletes itself."""

    name: str
    run_at: dt.datetime
    restore: list[dict]
    run_id: str = ""


@dataclass
class Host:  # pylint: disable=too-many-instance-attributes  # it models a whole machine
    """A simulated Windows host. See the module docstring for how each part maps to the raw document."""

    name: str
    address: str
    os: OSInfo
    registry: Registry
    cert_stores: dict[str, list[CertEntry]]
    services: dict[str, Service]
    other_sockets: list[Socket]
    firewall_rules: list[FirewallRule]
    firewall_profiles: list[FirewallProfile]
    accounts: list[Account]
    groups: dict[str, LocalGroup]
    user_rights: dict[str, list[str]]
    machinekeys: MachineKeys
    winrm_listeners: list[WinRMListener]
    licensing: Licensing = field(default_factory=Licensing)
    sessions: list[Session] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    network_category: str = "Private"  # active firewall profile: Domain when joined, else Private/Public
    clock_offset_seconds: float = 0.0
    wmi_broken: bool = False  # root\cimv2\TerminalServices unavailable -> ts_general_setting None
    wmi_error: str | None = None  # the TerminalServices WMI provider fails: a CimException with this message
    wts_error: str | None = None  # the WTS API fails to enumerate sessions: a Win32Exception with this message
    listener_down: bool = False  # the RDP-Tcp listener failed to start (WTS state Down) until TermService starts again
    protocol_objects: tuple[str, ...] = MICROSOFT_PROTOCOL_OBJECTS  # protocol managers installed (CLSIDs, lower case)
    key_sddl: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_KEY_SDDL))  # registry key ACLs that matter
    dynamic_ports: tuple[int, int] = (49152, 16384)  # TCP dynamic port range (start, number of ports): Windows' default
    domain_reachable: bool = True  # False: the trust with the domain is broken, lookups through it fail
    domain_principals: list[DomainPrincipal] = field(default_factory=list)
    listener_acl: list[ListenerAce] = field(default_factory=default_listener_acl)  # Win32_TSAccount of RDP-Tcp
    secure_channel_ok: bool = True  # Test-ComputerSecureChannel on a domain member (False: broken trust)
    netfx_release: int = 528040  # NDP\v4\Full Release: 528040 = .NET Framework 4.8, 379893 = 4.5.2 (no RSACng)
    path_faults: set[str] = field(default_factory=set)  # faults outside the host (e.g. dns_mismatch)
    faults: list[str] = field(default_factory=list)  # names of the faults applied, for logs and tests
    latency_ms: int = 0  # lab transport hook (WinRM), not Windows state
    inventory_accounts: list[str] = field(default_factory=list)  # lab inventory hook: accounts diagnose checks besides rdpuser
    firewall_blocks: str = DEFAULT_FIREWALL_BLOCKS  # lab RDP listener hook (FIREWALL_BLOCK_MODES), not Windows state
    # What Windows applies later than the registry write (tests/lab/twins/apply_rdp_changes.py writes them):
    # the port TermService bound when it last started (None = follows RDP-Tcp PortNumber: a host as after a reboot)
    # [S4][S14], and the values read only at boot (Schannel [S18], CredSSP [S8], FIPS) as they were at boot:
    # "path|name" (lower case) -> value, None = absent at boot. A reboot clears both.
    bound_port: int | None = None
    boot_registry: dict[str, RegValue | None] = field(default_factory=dict)
    revert_tasks: list[RevertTask] = field(default_factory=list)  # scheduled by the revert_task operation
    backups: dict[str, KeyFile] = field(default_factory=dict)  # file_remove copies: backup path -> file
    apply_fail_at: int | None = None  # lab hook, not Windows state: the Nth operation of the next apply fails (once)
    # Win32_OperatingSystem.LastBootUpTime (host clock); set at build time and by reboot().
    booted_at: dt.datetime = field(default_factory=lambda: dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    restart_at: dt.datetime | None = None  # a pending shutdown.exe /r (host clock); shutdown.exe /a clears it
    down_until: dt.datetime | None = None  # lab transport: WinRM refuses connections until then (a restart in progress)

    # -- construction --
    @classmethod
    def healthy(cls, name: str, address: str, os_version: str = DEFAULT_OS_VERSION, now: dt.datetime | None = None,
                domain: str | None = None) -> "Host":
        """A healthy host per contracts section 3a (Remote Desktop enabled, valid self-signed cert).

        ``os_version``: "10.0.20348" (2022), "10.0.17763" (2019), "10.0.14393" (2016), "6.3.9600"
        (2012 R2) or the year aliases. ``domain``: a DNS domain to join (e.g. "contoso.com"), else a
        workgroup host.
        """
        return _build_healthy(name, address, resolve_os_version(os_version), as_utc(now), domain)

    # -- derived names --
    @property
    def release(self) -> OSRelease:
        """The OS release record."""
        return OS_RELEASES[self.os.version]

    @property
    def listener_key_file_name(self) -> str:
        """MachineKeys file of the self-signed listener key: f686aace…_<MachineGuid> [S2 S26]."""
        return f"{LISTENER_KEY_PREFIX}_{self.os.machine_guid}"

    @property
    def probe_name(self) -> str:
        """The name an inventory should give the probe: the address, or "localhost" under dns_mismatch.

        "localhost" resolves to 127.0.0.1, which is never a lab host address.
        """
        return "localhost" if "dns_mismatch" in self.path_faults else self.address

    @property
    def active_profile(self) -> str:
        """The firewall profile in force (Domain when joined to a domain)."""
        return "Domain" if self.os.part_of_domain else self.network_category

    def clock(self, now: dt.datetime) -> dt.datetime:
        """The host's wall clock for real time ``now``."""
        return now + dt.timedelta(seconds=self.clock_offset_seconds)

    # -- registry shortcuts --
    def reg_get(self, path: str, name: str, default: RegValue | None = None) -> RegValue | None:
        """``self.registry.get``."""
        return self.registry.get(path, name, default)

    def reg_set(self, path: str, name: str, value: RegValue) -> None:
        """``self.registry.set``."""
        self.registry.set(path, name, value)

    def reg_delete(self, path: str, name: str) -> bool:
        """``self.registry.delete``."""
        return self.registry.delete(path, name)

    # -- certificates --
    def find_cert(self, thumb: str) -> tuple[str, CertEntry] | None:
        """(store, entry) for a thumbprint in My or Remote Desktop (spaces and case ignored)."""
        wanted = re.sub(r"[^0-9A-Fa-f]", "", thumb).upper()
        for store in (MY_STORE, RDS_STORE):
            for entry in self.cert_stores.get(store, []):
                if entry.thumbprint == wanted:
                    return store, entry
        return None

    def bound_thumbprint(self) -> str | None:
        """RDP-Tcp SSLCertificateSHA1Hash as upper hex, or None when the value is absent [S1 S2]."""
        raw = self.registry.get(RDP_TCP, "SSLCertificateSHA1Hash")
        if isinstance(raw, bytes):
            return raw.hex().upper()
        if isinstance(raw, str):  # tolerate a REG_SZ written by a careless tool
            return re.sub(r"[^0-9A-Fa-f]", "", raw).upper()
        return None

    def self_signed_entry(self) -> CertEntry | None:
        """The TermService self-signed cert in the Remote Desktop store (latest expiry wins)."""
        entries = [e for e in self.cert_stores.get(RDS_STORE, []) if e.key_container == SELF_SIGNED_CONTAINER]
        return max(entries, key=lambda e: e.not_after, default=None)

    def bind_cert(self, entry: CertEntry) -> None:
        """Write the thumbprint as REG_BINARY, as the WMI setter does."""
        self.registry.set(RDP_TCP, "SSLCertificateSHA1Hash", bytes.fromhex(entry.thumbprint))

    def install_self_signed(self, now: dt.datetime, common_name: str | None = None, not_before: dt.datetime | None = None,
                            not_after: dt.datetime | None = None, bind: bool = True, log: bool = True) -> CertEntry:
        """What SessionEnv/TermService do when no usable self-signed cert exists [S2 S34].

        Replaces any self-signed cert in the Remote Desktop store with a new one (CN = FQDN), recreates
        the listener key file, binds it (``bind``) and logs event 1056 (``log``).
        """
        start = not_before or (as_utc(now) - dt.timedelta(minutes=10))
        key = certs.key_for(self.name)
        cert = certs.self_signed_rdp_cert(common_name or self.os.fqdn, key, start, not_after)
        entry = CertEntry(cert=cert, key=key, key_container=SELF_SIGNED_CONTAINER, key_file=self.listener_key_file_name)
        store = [e for e in self.cert_stores.get(RDS_STORE, []) if e.key_container != SELF_SIGNED_CONTAINER]
        self.cert_stores[RDS_STORE] = store + [entry]
        self.machinekeys.files[entry.key_file] = KeyFile(name=entry.key_file)
        if bind:
            self.bind_cert(entry)
        if log:
            self.add_event("System", PROVIDER_RCM, 1056, now,
                           "A new self signed certificate to be used for RD Session Host Server authentication on SSL connections has been generated."
                           f" The name of this certificate is {cert.subject.rfc4514_string()}. The SHA1 hash of the certificate is in the"
                           " event data.", level="Information")
        return entry

    # -- values Windows applies later than the write --
    @property
    def reboot_pending(self) -> bool:
        """A value read only at boot was changed since the last boot."""
        return bool(self.boot_registry)

    def boot_value(self, path: str, name: str, default: RegValue | None = None) -> RegValue | None:
        """The value in effect since boot: the one at boot when it changed since, else the registry's."""
        key = f"{_norm_path(path)}|{name.lower()}"
        if key in self.boot_registry:
            value = self.boot_registry[key]
            return default if value is None else value
        return self.registry.get(path, name, default)

    def remember_boot_value(self, path: str, name: str) -> None:
        """Before a write to a boot-time value: keep what was in effect (the first write since boot wins)."""
        key = f"{_norm_path(path)}|{name.lower()}"
        if key not in self.boot_registry:
            self.boot_registry[key] = self.registry.get(path, name)

    def reboot(self, now: dt.datetime) -> None:
        """Restart Windows: boot-time values take effect, services that are not Disabled come back as they were."""
        running = [s.name for s in self.services.values() if s.state == "Running" and s.start_mode != "Disabled"]
        auto = [s.name for s in self.services.values() if s.start_mode == "Auto"]
        for service in self.services.values():
            service.state, service.pid = "Stopped", 0
        self.boot_registry.clear()
        self.bound_port = None
        self.booted_at = now
        self.restart_at = None
        self.add_event("System", "EventLog", 6005, now, "The Event log service was started.", level="Information")
        for name in [n for n in (TERMSERVICE, SESSIONENV, UMRDPSERVICE) if n in running or n in auto] + \
                [n for n in running + auto if n not in (TERMSERVICE, SESSIONENV, UMRDPSERVICE)]:
            if self._service(name).state != "Running":
                self.start_service(name, now)

    def restart_if_due(self, now: dt.datetime) -> bool:
        """A pending ``shutdown.exe /r`` whose time passed restarts Windows, booted at the restart time; WinRM is down
        for :data:`RESTART_DOWN_SECONDS` after it. ``now`` is the host clock. True when it restarted now."""
        if self.restart_at is None or self.restart_at > now:
            return False
        restart_time = self.restart_at
        self.reboot(restart_time)
        self.down_until = restart_time + dt.timedelta(seconds=RESTART_DOWN_SECONDS)
        return True

    def winrm_down(self, now: dt.datetime) -> bool:
        """Whether the host is still restarting at host time ``now`` (WinRM refuses connections)."""
        return self.down_until is not None and now < self.down_until

    # -- accounts --
    def find_account(self, name: str) -> Account | None:
        """A local account by name, "COMPUTER\\name" or ".\\name" (case-insensitive)."""
        short = name.split("\\")[-1].lower()
        return next((a for a in self.accounts if a.name.lower() == short), None)

    def group_members(self, sid: str) -> list[GroupMember]:
        """Members of a local group (empty if the group does not exist)."""
        group = self.groups.get(sid)
        return list(group.members) if group else []

    def groups_of(self, sid: str) -> list[str]:
        """SIDs of the local groups a principal is a direct member of."""
        return [g.sid for g in self.groups.values() if any(m.sid == sid for m in g.members)]

    def add_to_group(self, group_sid: str, member: GroupMember) -> None:
        """Add a member (no-op if present)."""
        group = self.groups[group_sid]
        if all(m.sid != member.sid for m in group.members):
            group.members.append(member)

    def remove_from_group(self, group_sid: str, member_sid: str) -> None:
        """Remove a member (no-op if absent)."""
        group = self.groups[group_sid]
        group.members = [m for m in group.members if m.sid != member_sid]

    def ensure_account(self, name: str, group_sids: tuple[str, ...] = ()) -> Account:
        """A local account (created with the next free RID if missing), added to the given groups."""
        account = self.find_account(name)
        if account is None:
            admin = self.find_account("Administrator")
            domain_sid = admin.sid.rsplit("-", 1)[0] if admin else "S-1-5-21-0-0-0"
            rids = [int(a.sid.rsplit("-", 1)[1]) for a in self.accounts if a.sid.startswith(domain_sid + "-")]
            account = Account(name, f"{domain_sid}-{max(rids + [1000]) + 1}")
            self.accounts.append(account)
        for sid in group_sids:
            self.add_to_group(sid, self.account_member(account))
        return account

    def account_member(self, account: Account) -> GroupMember:
        """The GroupMember form of a local account."""
        return GroupMember(sid=account.sid, name=f"{self.os.computer_name}\\{account.name}")

    # -- events --
    def add_event(self, log: str, provider: str, event_id: int, time: dt.datetime, message: str, level: str = "Error") -> Event:
        """Append one event and return it."""
        event = Event(log=log, provider=provider, event_id=event_id, time=as_utc(time), message=message, level=level)
        self.events.append(event)
        return event

    def add_events(self, log: str, provider: str, event_id: int, times: list[dt.datetime], message: str, level: str = "Error") -> None:
        """Append the same event at several times (services log the same failure repeatedly)."""
        for time in times:
            self.add_event(log, provider, event_id, time, message, level)

    # -- services (Service Control Manager) --
    def stop_service(self, name: str, now: dt.datetime) -> None:
        """Stop a service and, for TermService, its dependent UmRdpService; logs SCM 7036 [S22]."""
        names = [UMRDPSERVICE, TERMSERVICE] if name.lower() == TERMSERVICE.lower() else [name]
        for service in (self._service(n) for n in names):
            if service.state != "Stopped":
                service.state, service.pid = "Stopped", 0
                self.add_event("System", PROVIDER_SCM, 7036, now, f"The {service.display_name} service entered the stopped state.",
                               level="Information")

    def start_service(self, name: str, now: dt.datetime) -> None:
        """Start a service (UmRdpService starts TermService first); a Disabled one raises ServiceError (1058).

        Starting TermService or SessionEnv renews a missing or expired self-signed certificate when the
        MachineKeys folder lets it, else logs 1057/1058 [S2 S3 S22].
        """
        service = self._service(name)
        if service.start_mode == "Disabled":
            raise ServiceError(f"Service '{service.display_name} ({service.name})' cannot be started due to the following error: "
                               f"Cannot start service {service.name} on computer '.'. (1058: the service is disabled)")
        if service.name == UMRDPSERVICE:
            try:
                self.start_service(TERMSERVICE, now)  # UmRdpService depends on TermService [S21]
            except ServiceError as exc:
                raise ServiceError(f"Service '{service.display_name} ({service.name})' cannot be started due to the following error: "
                                   f"Cannot start service {service.name} on computer '.'. (1068: the dependency service or group "
                                   "failed to start)") from exc
        if service.state != "Running":
            service.state = "Running"
            if service.name == TERMSERVICE:
                self.bound_port = None  # TermService binds the PortNumber it reads at start [S4][S14]
                self.listener_down = False  # a listener that failed once is started again with the service
            service.pid = max([s.pid for s in self.services.values()] + [1000]) + 4  # a fresh process id
            self.add_event("System", PROVIDER_SCM, 7036, now, f"The {service.display_name} service entered the running state.",
                           level="Information")
        if service.name in (TERMSERVICE, SESSIONENV):
            self.renew_self_signed_if_needed(now)

    def restart_service(self, name: str, now: dt.datetime) -> None:
        """Restart-Service: stop then start (TermService's dependents come back too)."""
        was_running = [n for n in (UMRDPSERVICE,) if self._service(n).state == "Running"] if name.lower() == TERMSERVICE.lower() else []
        self.stop_service(name, now)
        self.start_service(name, now)
        for dependent in was_running:
            self.start_service(dependent, now)

    def renew_self_signed_if_needed(self, now: dt.datetime) -> CertEntry | None:
        """Create a new self-signed cert when none exists or it expired; None if nothing was (or could be) done."""
        current = self.self_signed_entry()
        if current is not None and current.not_after > as_utc(now):
            return None
        keys = self.machinekeys
        if not keys.exists or not machinekeys_acl_ok(keys.sddl) or store_denies_system(self):
            if current is None:
                self.add_event("System", PROVIDER_RCM, 1057, now, "The RD Session Host Server has failed to create a new self signed certificate"
                               " to be used for RD Session Host Server authentication on SSL connections. The relevant status code was Access is denied.")
            else:
                self.add_event("System", PROVIDER_RCM, 1058, now, "The RD Session Host Server has failed to replace the expired self signed"
                               " certificate used for RD Session Host Server authentication on SSL connections. The relevant status code was Access is denied.")
            return None
        bound = self.bound_thumbprint()
        rebind = bound is None or (current is not None and bound == current.thumbprint)
        if current is not None:
            self.machinekeys.files.pop(current.key_file or "", None)
        return self.install_self_signed(now, bind=rebind)

    def _service(self, name: str) -> Service:
        """A service by name (case-insensitive); ServiceError like Get-Service when absent."""
        for service in self.services.values():
            if service.name.lower() == name.lower():
                return service
        raise ServiceError(f"Cannot find any service with service name '{name}'.")

    def copy(self) -> "Host":
        """A deep copy (certificates and keys are immutable and shared)."""
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict) -> "Host":
        """Deep copy without copying cryptography objects (immutable, and not deep-copyable)."""
        stores = {store: [CertEntry(**{**e.__dict__}) for e in entries] for store, entries in self.cert_stores.items()}
        clone = Host.__new__(Host)
        for name, value in self.__dict__.items():
            clone.__dict__[name] = stores if name == "cert_stores" else copy.deepcopy(value, memo)
        return clone


# ---- derived views: what Windows computes from the state above ----
def effective(host: Host, name: str, local_path: str = RDP_TCP, default: RegValue | None = None) -> tuple[RegValue | None, str]:
    """(value, source) with policy > local > default; source is "policy", "local" or "default" [S10]."""
    policy = host.registry.get(POL, name)
    if policy is not None:
        return policy, "policy"
    local = host.registry.get(local_path, name)
    if local is not None:
        return local, "local"
    return default, "default"


# Values Windows uses when neither policy nor local value exists (windows-rdp-facts.md section 3).
DEFAULT_SECURITY_LAYER = 1  # Negotiate [S31]
DEFAULT_USER_AUTHENTICATION = 1  # NLA required by default since 2012 [S10]
DEFAULT_MIN_ENCRYPTION_LEVEL = 2  # client compatible [S31]
DEFAULT_DENY_TS_CONNECTIONS = 1  # remote connections not allowed [S4 S10]
DEFAULT_PORT = 3389

_POLICY_SOURCE = {"local": 0, "policy": 1, "default": 2}


def ts_general_setting(host: Host) -> dict | None:
    """Win32_TSGeneralSetting for RDP-Tcp as WMI derives it from the registry and stores [S6]."""
    if host.wmi_broken:
        return None
    sec, sec_src = effective(host, "SecurityLayer", default=DEFAULT_SECURITY_LAYER)
    nla, nla_src = effective(host, "UserAuthentication", default=DEFAULT_USER_AUTHENTICATION)
    enc, enc_src = effective(host, "MinEncryptionLevel", default=DEFAULT_MIN_ENCRYPTION_LEVEL)
    thumb, hash_type = _wmi_certificate(host)
    return {
        "SSLCertificateSHA1Hash": thumb,
        "SSLCertificateSHA1HashType": hash_type,
        "SecurityLayer": sec,
        "UserAuthenticationRequired": nla,
        "MinEncryptionLevel": enc,
        "PolicySourceSecurityLayer": _POLICY_SOURCE[sec_src],
        "PolicySourceUserAuthenticationRequired": _POLICY_SOURCE[nla_src],
        "PolicySourceMinEncryptionLevel": _POLICY_SOURCE[enc_src],
    }


def _wmi_certificate(host: Host) -> tuple[str, int]:
    """(thumbprint, SSLCertificateSHA1HashType): 0 not valid, 1 self-signed, 2 GP template, 3 custom [S6]."""
    bound = host.bound_thumbprint()
    if bound is None:
        entry = host.self_signed_entry()
        return (entry.thumbprint, 1) if entry else ("", 0)
    found = host.find_cert(bound)
    if found is None:
        return bound, 0
    store, entry = found
    if store == RDS_STORE and entry.key_container == SELF_SIGNED_CONTAINER:
        return bound, 1
    return bound, 2 if host.registry.get(POL, "CertTemplateName") else 3


def ts_setting(host: Host) -> dict:
    """Win32_TerminalServiceSetting: AllowTSConnections and licensing [S6 S39]."""
    deny, source = effective(host, "fDenyTSConnections", TS, DEFAULT_DENY_TS_CONNECTIONS)
    mode = host.registry.get(POL, "LicensingMode")
    if not isinstance(mode, int):
        mode = host.registry.get(RCM_LICENSING_CORE, "LicensingMode")  # set by Server Manager / WMI ChangeMode
    return {
        "AllowTSConnections": 0 if deny else 1,
        "PolicySourceAllowTSConnections": _POLICY_SOURCE[source],
        "LicensingType": mode if isinstance(mode, int) else host.licensing.licensing_type,
        "GracePeriodDays": host.licensing.grace_period_days if host.os.rdsh_installed else None,
    }


def effective_port(host: Host) -> int:
    """RDP-Tcp PortNumber (no policy exists for it) [S14]."""
    port = host.registry.get(RDP_TCP, "PortNumber")
    return port if isinstance(port, int) else DEFAULT_PORT


def listener_port(host: Host) -> int:
    """The port TermService listens on: the one it bound at its last start, else RDP-Tcp PortNumber [S4][S14]."""
    return host.bound_port if host.bound_port is not None else effective_port(host)


def port_owner(host: Host, port: int, protocol: str = "tcp") -> Socket | None:
    """Another process's socket on the port, if any (TermService's own sockets are derived)."""
    return next((s for s in host.other_sockets if s.port == port and s.protocol == protocol), None)


def termservice_listens(host: Host) -> bool:
    """Whether TermService has the RDP-Tcp listener bound (independent of the firewall) [S4 S26]."""
    service = host.services.get(TERMSERVICE)
    deny = effective(host, "fDenyTSConnections", TS, DEFAULT_DENY_TS_CONNECTIONS)[0]
    return (
        service is not None and service.state == "Running" and not deny
        and host.registry.get(RDP_TCP, "fEnableWinStation", 1) != 0
        and port_owner(host, listener_port(host)) is None
        and not listener_is_down(host)
    )


def store_denies_system(host: Host) -> bool:
    """A Deny ACE for SYSTEM on the Remote Desktop store's key: SessionEnv (LocalSystem) cannot write the certificate."""
    sddl = host.key_sddl.get(RDS_STORE_KEY) or ""
    return any(re.fullmatch(r"D;[^;]*;[^;]+;;;(SY|S-1-5-18)", ace) for ace in re.findall(r"\(([^)]*)\)", sddl))


def protocol_stack_loads(host: Host) -> bool:
    """Whether TermService can load RDP-Tcp's protocol manager: absent (the built-in one) or an installed CLSID (MSRD #7)."""
    clsid = host.registry.get(RDP_TCP, "LoadableProtocol_Object")
    return clsid is None or str(clsid).lower() in host.protocol_objects


def listener_is_down(host: Host) -> bool:
    """The RDP-Tcp WinStation exists but does not listen (qwinsta: Down): it failed to start, or its stack cannot load."""
    service = host.services.get(TERMSERVICE)
    return service is not None and service.state == "Running" and (host.listener_down or not protocol_stack_loads(host))


def listening_sockets(host: Host) -> list[Socket]:
    """All listening sockets: other processes' plus TermService's TCP/UDP on the RDP port when it listens."""
    sockets = list(host.other_sockets)
    service = host.services.get(TERMSERVICE)
    if service is not None and termservice_listens(host):
        port = listener_port(host)
        for proto in ("tcp", "udp"):
            for address in ("0.0.0.0", "::"):
                sockets.append(Socket(proto, address, port, service.pid, "svchost"))
    return sockets


def machinekeys_acl_ok(sddl: str) -> bool:
    """NETWORK SERVICE can reach keys in the folder: an allow ACE for Everyone (WD) or NETWORK SERVICE (NS)."""
    return any(re.fullmatch(r"A;[^;]*;[^;]+;;;(WD|NS|S-1-1-0|S-1-5-20)", ace) for ace in re.findall(r"\(([^)]*)\)", sddl))


def key_file_readable_by_network_service(sddl: str) -> bool:
    """A key file ACL with an allow ACE for NETWORK SERVICE, Everyone or Users-like broad principals."""
    return machinekeys_acl_ok(sddl)


# ---- building a healthy host ----
def as_utc(now: dt.datetime | None) -> dt.datetime:
    """Timezone-aware UTC ``now`` (naive values are taken as UTC)."""
    if now is None:
        return dt.datetime.now(dt.timezone.utc)
    return now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)


def _seeded(name: str, purpose: str) -> bytes:
    """Stable pseudo-random bytes for a host (same fleet file, same GUIDs and SIDs)."""
    return hashlib.sha256(f"{name.lower()}|{purpose}".encode("utf-8")).digest()


def _machine_sid(name: str) -> str:
    """A stable S-1-5-21-a-b-c machine SID."""
    raw = _seeded(name, "sid")
    parts = [int.from_bytes(raw[i:i + 4], "little") for i in (0, 4, 8)]
    return "S-1-5-21-" + "-".join(str(p) for p in parts)


def _base_registry(machine_guid: str) -> Registry:
    """Registry of a Server 2022-style host with Remote Desktop allowed (contracts section 3a)."""
    reg = Registry()
    reg.set(TS, "fDenyTSConnections", 0)
    reg.set(TS, "fSingleSessionPerUser", 1)
    reg.set(TS, "TSServerDrainMode", 0)
    reg.create_key(WINSTATIONS)
    for name, value in (("PortNumber", 3389), ("fEnableWinStation", 1), ("SecurityLayer", 2), ("UserAuthentication", 1),
                        ("MinEncryptionLevel", 2), ("MaxInstanceCount", 4294967295), ("MaxIdleTime", 0),
                        ("MaxConnectionTime", 0), ("MaxDisconnectionTime", 0), ("fResetBroken", 0), ("LanAdapter", 0)):
        reg.set(RDP_TCP, name, value)
    # Windows' RDP-Tcp defaults (issue 12): the Microsoft stack, and the time limits inherited from each user (fInherit*=1).
    reg.set(RDP_TCP, "LoadableProtocol_Object", RDP_PROTOCOL_OBJECT)
    for name in ("fInheritMaxSessionTime", "fInheritMaxDisconnectionTime", "fInheritMaxIdleTime", "fInheritResetBroken"):
        reg.set(RDP_TCP, name, 1)
    # The licensing certificates TermService keeps under RCM (MSRD #52); contents stand-ins of their usual sizes.
    for name, size in zip(RCM_X509_VALUES, (1386, 86, 2510)):
        reg.set(RCM, name, bytes(size))
    reg.set(FIPS, "Enabled", 0)
    reg.set(LSA, "disabledomaincreds", 0)
    reg.set(CRYPTOGRAPHY, "MachineGuid", machine_guid)
    reg.set(SETUP, "OOBEInProgress", 0)
    reg.set(SETUP, "SystemSetupInProgress", 0)
    return reg


def _services() -> dict[str, Service]:
    """The three RDS services, defaults from [S21 S22]."""
    return {
        TERMSERVICE: Service(TERMSERVICE, "Remote Desktop Services", "Running", "Manual", 1208, "NT Authority\\NetworkService"),
        SESSIONENV: Service(SESSIONENV, "Remote Desktop Configuration", "Running", "Manual", 1164, "LocalSystem"),
        UMRDPSERVICE: Service(UMRDPSERVICE, "Remote Desktop Services UserMode Port Redirector", "Running", "Manual", 2304, "LocalSystem"),
        MPSSVC: Service(MPSSVC, "Windows Defender Firewall", "Running", "Auto", 2620, "NT Authority\\LocalService"),
    }


def logon_services(domain_member: bool) -> dict[str, Service]:
    """Services a logon needs besides the RDS ones (MSRD #21 #45): LSM and BFE always run; Netlogon runs on a domain
    member and is Manual and stopped in a workgroup (ms: security-guidelines-for-disabling-system-services)."""
    netlogon = Service(NETLOGON, "Netlogon", "Running", "Auto", 688, "LocalSystem") if domain_member else \
        Service(NETLOGON, "Netlogon", "Stopped", "Manual", 0, "LocalSystem")
    return {LSM: Service(LSM, "Local Session Manager", "Running", "Auto", 640, "LocalSystem"),
            BFE: Service(BFE, "Base Filtering Engine", "Running", "Auto", 2580, "NT AUTHORITY\\LocalService"), NETLOGON: netlogon}


def _other_sockets() -> list[Socket]:
    """Baseline listeners of a Windows server: RPC, SMB, WinRM (HTTP.sys runs in System, pid 4)."""
    return [Socket("tcp", "0.0.0.0", 135, 912, "svchost"), Socket("tcp", "0.0.0.0", 445, 4, "System"),
            Socket("tcp", "0.0.0.0", 5985, 4, "System"), Socket("tcp", "0.0.0.0", 47001, 4, "System")]


def default_firewall_rules() -> list[FirewallRule]:
    """Remote Desktop group rules [S13 S34] (enabled, as after "Allow remote connections") and WinRM rules."""
    svchost = "%SystemRoot%\\system32\\svchost.exe"
    return [
        FirewallRule("RemoteDesktop-UserMode-In-TCP", "Remote Desktop - User Mode (TCP-In)", RDP_FIREWALL_GROUP, True, "TCP", ["3389"],
                     program=svchost, service="termservice"),
        FirewallRule("RemoteDesktop-UserMode-In-UDP", "Remote Desktop - User Mode (UDP-In)", RDP_FIREWALL_GROUP, True, "UDP", ["3389"],
                     program=svchost, service="termservice"),
        FirewallRule("RemoteDesktop-Shadow-In-TCP", "Remote Desktop - Shadow (TCP-In)", RDP_FIREWALL_GROUP, True, "TCP", ["Any"],
                     program="%SystemRoot%\\system32\\RdpSa.exe"),
        FirewallRule("WINRM-HTTP-In-TCP", "Windows Remote Management (HTTP-In)", WINRM_FIREWALL_GROUP, True, "TCP", ["5985"],
                     profiles=["Domain", "Private"], program="System"),
        FirewallRule("WINRM-HTTP-In-TCP-PUBLIC", "Windows Remote Management (HTTP-In)", WINRM_FIREWALL_GROUP, True, "TCP", ["5985"],
                     profiles=["Public"], remote_addresses=["LocalSubnet"], program="System"),
    ]


def _accounts(host_sid: str) -> list[Account]:
    """Built-in accounts plus the lab's rdpuser."""
    return [
        Account("Administrator", f"{host_sid}-500", full_name="Built-in account for administering the computer/domain"),
        Account("Guest", f"{host_sid}-501", disabled=True),
        Account("DefaultAccount", f"{host_sid}-503", disabled=True),
        Account(LAB_ACCOUNT, f"{host_sid}-1001", full_name="rdp.doctor lab user"),
    ]


def _groups(computer: str, accounts: list[Account]) -> dict[str, LocalGroup]:
    """Administrators, Users, Guests and Remote Desktop Users with their default members."""
    by_name = {a.name: GroupMember(a.sid, f"{computer}\\{a.name}") for a in accounts}
    return {
        SID_ADMINISTRATORS: LocalGroup(SID_ADMINISTRATORS, "Administrators", [by_name["Administrator"]]),
        SID_USERS: LocalGroup(SID_USERS, "Users", [GroupMember("S-1-5-4", "NT AUTHORITY\\INTERACTIVE"),
                                                   GroupMember("S-1-5-11", "NT AUTHORITY\\Authenticated Users"),
                                                   by_name[LAB_ACCOUNT]]),
        SID_GUESTS: LocalGroup(SID_GUESTS, "Guests", [by_name["Guest"]]),
        SID_REMOTE_DESKTOP_USERS: LocalGroup(SID_REMOTE_DESKTOP_USERS, "Remote Desktop Users", [by_name[LAB_ACCOUNT]]),
    }


def _build_healthy(name: str, address: str, version: str, now: dt.datetime, domain: str | None) -> Host:
    """Assemble a healthy host (see Host.healthy)."""
    release = OS_RELEASES[version]
    machine_guid = str(uuid.UUID(bytes=_seeded(name, "machine-guid")[:16], version=4))
    computer = name.upper()[:15]
    host_sid = _machine_sid(name)
    accounts = _accounts(host_sid)
    os_info = OSInfo(
        caption=release.caption, version=version, build=version_tuple(version)[2], product_type=3,
        computer_name=computer, dns_host_name=name.lower(), domain=domain or "WORKGROUP", part_of_domain=bool(domain),
        machine_guid=machine_guid, rdsh_installed=False, tspkg_version=release.tspkg_patched,
        netbios_domain=(domain.split(".")[0].upper()[:15] if domain else ""),
    )
    host = Host(
        name=name, address=address, os=os_info, registry=_base_registry(machine_guid),
        cert_stores={RDS_STORE: [], MY_STORE: []}, services=_services(), other_sockets=_other_sockets(),
        firewall_rules=default_firewall_rules(),
        firewall_profiles=[FirewallProfile("Domain"), FirewallProfile("Private"), FirewallProfile("Public")],
        accounts=accounts, groups=_groups(computer, accounts),
        user_rights={RIGHT_ALLOW_RDP: [SID_ADMINISTRATORS, SID_REMOTE_DESKTOP_USERS], RIGHT_DENY_RDP: []},
        machinekeys=MachineKeys(), winrm_listeners=[WinRMListener("HTTP", "*", 5985)],
        network_category="Domain" if domain else "Private", booted_at=now - dt.timedelta(days=3),
    )
    host.services.update(logon_services(bool(domain)))
    # A self-signed cert generated a month ago, valid ~6 months, bound via SSLCertificateSHA1Hash.
    host.install_self_signed(now, not_before=now - dt.timedelta(days=30), log=False)
    return host
