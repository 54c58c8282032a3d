"""Twin of ``plugins/host_scripts/read_rdp_state.ps1``: reads the lab host model as the script reads Windows.

``run(host, params)`` returns the raw document of docs/dev/contracts.md section 3 (validated against
``read_rdp_state.schema.json`` ``result`` by the contract tests). Every choice the script makes (which
services, which ports, which firewall rules, which events, what Windows lists as sessions) is made
here the same way, so the controller cannot tell the lab from a real host by the document's shape.
A part the script cannot read on such a host is the same section error (``section_error``: the firewall with
MpsSvc stopped, the TerminalServices classes with ``Host.wmi_error``, an event sample with ``Event.format_error``,
an account lookup through a broken trust); a failure the script would raise (a bad parameter) is a
:class:`~tests.lab.twins.TwinError` with the script's line.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import typing as t
from dataclasses import dataclass

from tests.lab import model as m
from tests.lab.twins import TwinError

SCHEMA_ID = "rdp.doctor/read_rdp_state/1"
SCRIPT_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "plugins", "host_scripts", "read_rdp_state.ps1")

# Same lists as the script's constants.
SERVICE_NAMES = ("TermService", "SessionEnv", "UmRdpService", "MpsSvc")
USER_RIGHTS = (m.RIGHT_ALLOW_RDP, m.RIGHT_DENY_RDP)
SID_REMOTE_DESKTOP_USERS = m.SID_REMOTE_DESKTOP_USERS
LISTENER_SESSION_ID = 65536  # the RDP-Tcp listener's WTS session id, as qwinsta shows it
MESSAGE_LIMIT = 2000
# The section error types the script writes when it does not even try (the others are .NET exception names).
SERVICE_NOT_RUNNING = "ServiceNotRunning"
CIM_EXCEPTION = "Microsoft.Management.Infrastructure.CimException"
TRUST_FAILURE = ("System.SystemException", "The trust relationship between this workstation and the primary domain failed.")
FIREWALL_STOPPED = ("the Windows Defender Firewall service (MpsSvc) is {state}: its ActiveStore cannot be read"
                    " (the NetSecurity cmdlets would fail with CIM error 1753)")
EVENT_FORMAT_ERROR = "System.Diagnostics.Eventing.Reader.EventLogException"
WIN32_EXCEPTION = "System.ComponentModel.Win32Exception"
SVCHOST = "%SystemRoot%\\system32\\svchost.exe"
# Win32_Service.State spells the pending states with a space; the model may not.
SERVICE_STATES = {"startpending": "Start Pending", "stoppending": "Stop Pending", "continuepending": "Continue Pending",
                  "pausepending": "Pause Pending"}


@dataclass(frozen=True)
class EventQuery:
    """One Get-WinEvent query of the script: ``ids`` empty = every id of the log, grouped by provider and id."""

    log: str
    provider: str | None
    ids: tuple[int, ...]


EVENT_QUERIES = (
    EventQuery("System", "Schannel", (36870, 36871, 36874, 36885, 36886, 36887, 36888)),
    EventQuery("System", "Microsoft-Windows-TerminalServices-RemoteConnectionManager", (1056, 1057, 1058, 1028)),
    EventQuery("System", "TermDD", (50, 56)),
    EventQuery("System", "Tcpip", (4227, 4231)),
    EventQuery("System", "Microsoft-Windows-TerminalServices-Licensing", ()),
    EventQuery("Microsoft-Windows-TerminalServices-Licensing/Admin", None, ()),
    EventQuery("Microsoft-Windows-TerminalServices-Licensing/Operational", None, ()),
    EventQuery("Microsoft-Windows-TerminalServices-RemoteConnectionManager/Admin", None, ()),
    EventQuery("Microsoft-Windows-TerminalServices-LocalSessionManager/Operational", None, ()),
    EventQuery("Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational",
               "Microsoft-Windows-TerminalServices-RemoteConnectionManager", (261, 1149)),
    EventQuery("Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational", "Microsoft-Windows-RemoteDesktopServices-RdpCoreTS", (131, 140)),
)


# ---- pure helpers ----
def utc_text(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with second precision, as the script writes times."""
    if value is None:
        return None
    aware = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    return aware.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def registry_value(value: m.RegValue) -> t.Any:
    """A model value in the script's JSON form: bytes -> lower-case hex, lists copied, the rest as is."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [str(item) for item in value]
    return value


def registry_key(host: m.Host, path: str) -> dict[str, t.Any] | None:
    """Read-RdRegistryKey: None for an absent key; the unnamed default value is skipped."""
    values = host.registry.get_key(path)
    if values is None:
        return None
    return {name: registry_value(value) for name, value in values.items() if name != ""}


def section_error(error_type: str, message: str) -> dict[str, t.Any]:
    """What Invoke-RdSection writes for a section (or part of one) that could not be read."""
    return {"error": {"type": error_type, "message": message}}


def admits_svchost(program: str) -> bool:
    """Test-RdSvchost: an application filter that admits TermService (svchost.exe): Any or svchost.exe."""
    lowered = program.lower()
    return lowered in ("any", "svchost.exe") or lowered.endswith("\\svchost.exe")


def rule_matches_port(rule: m.FirewallRule, ports: t.Sequence[int]) -> bool:
    """Test-RdRulePort: inbound rules naming one of the ports (single or range); inbound rules on Any port that can carry
    RDP (TCP, UDP or Any) and either block or may admit TermService: a broad Allow rule opens the port as surely as a
    Block rule closes it."""
    if rule.direction != "Inbound":
        return False
    for spec in rule.local_ports:
        if spec.lower() == "any":
            if rule.protocol.upper() in ("TCP", "UDP", "ANY") and (rule.action == "Block" or admits_svchost(rule.program)):
                return True
            continue
        match = re.fullmatch(r"(\d+)(-(\d+))?", spec)
        if match is None:
            continue
        low = int(match.group(1))
        high = int(match.group(3)) if match.group(3) else low
        if any(low <= port <= high for port in ports):
            return True
    return False


def seconds_between(later: dt.datetime, earlier: dt.datetime) -> int:
    """Whole seconds, floored like the script's [Math]::Floor."""
    return int((later - earlier).total_seconds() // 1)


# ---- script errors ----
def _script_line(needle: str) -> int:
    """Line of the first occurrence of ``needle`` in the script (what InvocationInfo.ScriptLineNumber reports)."""
    with open(SCRIPT_PATH, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if needle in line:
                return number
    return 0


def _param(params: dict[str, t.Any], name: str) -> t.Any:
    """``$Params.<name>`` under Set-StrictMode 2.0: a missing property is a PropertyNotFoundException."""
    if name not in params:
        raise TwinError("System.Management.Automation.PropertyNotFoundException",
                        f"The property '{name}' cannot be found on this object. Verify that the property exists.",
                        line=_script_line(f"$Params.{name}"), category="NotSpecified")
    return params[name]


def _check_registry_path(path: str) -> None:
    """The script refuses anything but HKLM:\\ paths (it would read files or other hives otherwise)."""
    if not path.upper().startswith("HKLM:\\"):
        raise TwinError("System.Management.Automation.RuntimeException", f"registry_keys holds HKLM:\\ paths only, not '{path}'",
                        line=_script_line("registry_keys holds HKLM"), category="OperationStopped")


# ---- sections ----
def read_os(host: m.Host, machine_guid: str | None) -> dict[str, t.Any]:
    """Win32_OperatingSystem, Win32_ComputerSystem, MachineGuid (registry), RDSH role from Win32_TerminalServiceSetting
    TerminalServerMode (null when that class cannot be read)."""
    info = host.os
    rdsh = None if host.wmi_broken or host.wmi_error is not None else info.rdsh_installed
    return {"caption": info.caption, "version": info.version, "build": info.build, "product_type": info.product_type,
            "computer_name": info.computer_name, "dns_host_name": info.dns_host_name, "domain": info.domain,
            "part_of_domain": info.part_of_domain, "machine_guid": machine_guid, "rdsh_installed": rdsh,
            "last_boot_utc": host.booted_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def read_ts_general_setting(host: m.Host) -> dict[str, t.Any] | None:
    """Win32_TSGeneralSetting: null without the namespace, a section error when its provider fails."""
    if host.wmi_error is not None and not host.wmi_broken:
        return section_error(CIM_EXCEPTION, host.wmi_error)
    return m.ts_general_setting(host)


def read_ts_setting(host: m.Host) -> dict[str, t.Any] | None:
    """Win32_TerminalServiceSetting: same namespace and provider as Win32_TSGeneralSetting, so gone or failing with it."""
    if host.wmi_broken:
        return None
    if host.wmi_error is not None:
        return section_error(CIM_EXCEPTION, host.wmi_error)
    setting = m.ts_setting(host)
    return {"AllowTSConnections": setting["AllowTSConnections"], "PolicySourceAllowTSConnections": setting["PolicySourceAllowTSConnections"],
            "LicensingType": setting["LicensingType"], "TerminalServerMode": 1 if host.os.rdsh_installed else 0,
            "GracePeriodDays": setting["GracePeriodDays"] if host.os.rdsh_installed else None}


def read_rd_licensing(host: m.Host) -> dict[str, t.Any] | None:
    """Licensing set without Group Policy (issue 12), read on an RD Session Host only: GetSpecifiedLicenseServerList
    (``Licensing.license_servers``, which faults keep equal to SpecifiedLicenseServers), GetTStoLSConnectivityStatus for each of those and of the policy's
    LicenseServers, the byte counts of the RCM licensing certificates. Null when the script never learnt the host is an
    RD Session Host (the TerminalServices namespace missing or failing: ts_setting unread)."""
    if host.wmi_broken or host.wmi_error is not None or not host.os.rdsh_installed:
        return None
    specified_list = [str(name) for name in host.licensing.license_servers if name]  # GetSpecifiedLicenseServerList
    servers = list(specified_list)
    policy = host.registry.get(m.POL, "LicenseServers")
    for name in re.split(r"[,; ]", str(policy)) if policy is not None else []:
        if name and name not in servers:
            servers.append(name)
    connectivity = [{"server": name, "status": host.licensing.server_status.get(name.lower(), m.LS_VALID), "error": None}
                    for name in servers]
    x509 = {}
    for name in m.RCM_X509_VALUES:
        value = host.registry.get(m.RCM, name)
        x509[name] = len(value) if isinstance(value, (bytes, list, str)) else (None if value is None else 4)
    return {"specified_license_servers": specified_list, "connectivity": connectivity, "x509_certificates": x509}


def read_services(host: m.Host) -> list[dict[str, t.Any]]:
    """Win32_Service for the script's service names, in that order; services the host lacks are absent."""
    out = []
    for name in SERVICE_NAMES:
        service = host.services.get(name)
        if service is None:
            continue
        state = SERVICE_STATES.get(service.state.replace(" ", "").lower(), service.state)
        out.append({"name": service.name, "state": state, "start_mode": service.start_mode,
                    "pid": service.pid if state != "Stopped" else 0, "account": service.account})
    return out


def read_listening(host: m.Host, ports: t.Sequence[int]) -> dict[str, list[dict[str, t.Any]]]:
    """Get-NetTCPConnection -State Listen / Get-NetUDPEndpoint on each port, with the owner's process name."""
    sockets = m.listening_sockets(host)
    out: dict[str, list[dict[str, t.Any]]] = {"tcp": [], "udp": []}
    for protocol in ("tcp", "udp"):
        for port in ports:
            out[protocol].extend({"address": s.address, "port": s.port, "pid": s.pid, "process": s.process}
                                 for s in sockets if s.protocol == protocol and s.port == port)
    return out


def read_certificate(host: m.Host, entry: m.CertEntry, machine_guid: str | None) -> dict[str, t.Any]:
    """One certificate. The container comes from the certificate (known even when the key is gone); the key file name is
    computed from it (never by opening the key) and looked up in MachineKeys, then Keys. The model's CNG keys
    (``key_file`` None, no ``key_error``) live in Keys, which the lab does not model file by file: found, readable."""
    out: dict[str, t.Any] = {"thumbprint": entry.thumbprint, "der": base64.b64encode(entry.der).decode("ascii"),
                             "has_private_key": entry.has_private_key, "key_container": None, "key_file": None,
                             "key_readable_by_network_service": None, "key_readable_by_admin": None, "key_error": None}
    if not entry.has_private_key:
        return out
    out["key_container"] = entry.key_container
    if entry.key_container is None:
        out["key_error"] = "the certificate has no key provider information (CERT_KEY_PROV_INFO_PROP_ID)"
        return out
    name = m.capi_key_file_name(entry.key_container, machine_guid or "")
    found = _key_file(host, name)
    cng = entry.key_file is None and entry.key_error is None
    if found is None and not cng:
        out["key_error"] = f"no key file {name} in MachineKeys or Keys"
        return out
    out["key_file"] = name
    out["key_readable_by_network_service"] = entry.key_readable_by_network_service
    out["key_readable_by_admin"] = found.readable if found is not None else True
    return out


def _key_file(host: m.Host, name: str) -> m.KeyFile | None:
    """A MachineKeys file by name (Windows file names are case-insensitive)."""
    if not host.machinekeys.exists:
        return None
    return next((f for n, f in host.machinekeys.files.items() if n.lower() == name.lower()), None)


def read_firewall(host: m.Host, ports: t.Sequence[int]) -> dict[str, t.Any]:
    """Remote Desktop group rules and inbound rules on the ports or on Any port (ActiveStore) with their application,
    service and address filters, and the profiles. MpsSvc not running: a section error, the cmdlets are not called."""
    service = host.services.get(m.MPSSVC)
    if service is None or service.state != "Running":
        return section_error(SERVICE_NOT_RUNNING, FIREWALL_STOPPED.format(state=service.state if service else "not installed"))
    rules = [{"name": r.name, "display_name": r.display_name, "group": r.group, "enabled": r.enabled, "direction": r.direction,
              "action": r.action, "profiles": list(r.profiles), "protocol": r.protocol, "local_ports": list(r.local_ports),
              "policy_store_source": r.policy_store_source, "program": r.program, "service": r.service,
              "remote_addresses": list(r.remote_addresses)}
             for r in host.firewall_rules if r.group == m.RDP_FIREWALL_GROUP or rule_matches_port(r, ports)]
    profiles = [{"name": p.name, "enabled": p.enabled, "default_inbound_action": p.default_inbound_action} for p in host.firewall_profiles]
    return {"rules": rules, "profiles": profiles}


def read_sessions(host: m.Host, now: dt.datetime) -> list[dict[str, t.Any]]:
    """What WTSEnumerateSessions lists: session 0 (Services), the console, user sessions and the listening RDP-Tcp."""
    def system(session_id: int, station: str, state: str) -> dict[str, t.Any]:
        """A session without a user (services, console, listener): no times."""
        return {"id": session_id, "station": station, "user": None, "state": state, "logon_time": None, "disconnect_time": None,
                "idle_seconds": None, "disconnected_seconds": None}

    out = {0: system(0, "Services", "Disconnected"), 1: system(1, "Console", "Connected")}
    for session in host.sessions:
        disconnected = session.state == "Disconnected"
        out[session.session_id] = {
            "id": session.session_id, "station": "" if disconnected else f"RDP-Tcp#{session.session_id}", "user": session.user,
            "state": session.state, "logon_time": utc_text(session.logon_time), "disconnect_time": utc_text(session.disconnect_time),
            "idle_seconds": session.idle_seconds(now),
            "disconnected_seconds": seconds_between(now, session.disconnect_time) if disconnected and session.disconnect_time else None,
        }
    if m.termservice_listens(host):
        out[LISTENER_SESSION_ID] = system(LISTENER_SESSION_ID, "RDP-Tcp", "Listen")
    elif m.listener_is_down(host):
        out[LISTENER_SESSION_ID] = system(LISTENER_SESSION_ID, "RDP-Tcp", "Down")  # qwinsta: rdp-tcp 65536 Down [S4]
    return [out[key] for key in sorted(out)]


def read_machinekeys(host: m.Host, machine_guid: str | None) -> dict[str, t.Any]:
    """The MachineKeys folder and the self-signed listener's key file f686aace…_<MachineGuid>."""
    folder = host.machinekeys
    name = f"{m.LISTENER_KEY_PREFIX}_{machine_guid or ''}"
    found = next((f for n, f in folder.files.items() if n.lower() == name.lower()), None) if folder.exists else None
    key_file: dict[str, t.Any] = {"name": name, "exists": found is not None, "sddl": None, "size": None, "readable": None}
    if found is not None:
        key_file.update(sddl=found.sddl, size=found.size, readable=found.readable)
    return {"path": folder.path, "exists": folder.exists, "sddl": folder.sddl if folder.exists else None,
            "listener_key_file": key_file}


def _is_local_name(host: m.Host, name: str) -> bool:
    """"name", ".\\name" and "COMPUTER\\name" are local accounts; "DOMAIN\\name" and UPNs are not."""
    if "\\" not in name:
        return "@" not in name
    domain = name.split("\\", 1)[0]
    return domain == "." or domain.lower() == host.os.computer_name.lower()


def read_account(host: m.Host, name: str) -> dict[str, t.Any]:
    """Get-RdAccount: a local account from the SAM (Win32_UserAccount LocalAccount=True: disabled, locked out); any other
    name resolved with NTAccount.Translate through the machine's domain (no double hop): SID and direct local groups only,
    membership through domain groups not evaluated. A failing lookup (broken trust) is the account's error."""
    empty = {"name": name, "exists": False, "sid": None, "disabled": None, "locked_out": None, "groups": [], "groups_complete": True,
             "error": None}
    if _is_local_name(host, name):
        account = next((a for a in host.accounts if a.name.lower() == name.rpartition("\\")[2].lower()), None)
        if account is None:
            return empty
        return {**empty, "exists": True, "sid": account.sid, "disabled": account.disabled, "locked_out": account.locked_out,
                "groups": host.groups_of(account.sid)}
    if not host.os.part_of_domain:
        return {**empty, "groups_complete": False}  # IdentityNotMappedException: nothing to ask
    if not host.domain_reachable:
        return {**empty, "exists": None, "groups_complete": False, "error": {"type": TRUST_FAILURE[0], "message": TRUST_FAILURE[1]}}
    principal = next((p for p in host.domain_principals if p.name.lower() == name.lower()), None)
    if principal is None:
        return {**empty, "groups_complete": False}
    return {**empty, "exists": True, "sid": principal.sid, "groups": host.groups_of(principal.sid), "groups_complete": False}


def read_accounts(host: m.Host, names: t.Sequence[str]) -> dict[str, t.Any]:
    """Remote Desktop Users members, the RDP logon rights (secedit), the accounts asked for."""
    members = [{"sid": member.sid, "name": member.name} for member in host.group_members(SID_REMOTE_DESKTOP_USERS)]
    rights = {right: list(host.user_rights.get(right, [])) for right in USER_RIGHTS}
    return {"remote_desktop_users": members, "rights": rights, "checked": [read_account(host, str(n)) for n in names]}


def _matches(query: EventQuery, event: m.Event, since: dt.datetime) -> bool:
    """Get-WinEvent -FilterHashtable: log, provider and id compare case-insensitively; StartTime inclusive."""
    return (event.log.lower() == query.log.lower() and event.time >= since
            and (query.provider is None or event.provider.lower() == query.provider.lower())
            and (not query.ids or event.event_id in query.ids))


def read_events(host: m.Host, since: dt.datetime, sample_size: int) -> list[dict[str, t.Any]]:
    """Each query's events counted per (provider, id) without formatting, newest first; only the first ``sample_size``
    of a group are formatted, each on its own: one that cannot be formatted has a null message and sets the group's
    error (the first such error)."""
    out: list[dict[str, t.Any]] = []
    for query in EVENT_QUERIES:
        groups: dict[tuple[str, int], dict[str, t.Any]] = {}
        for event_id in query.ids:
            groups[("", event_id)] = {"log": query.log, "provider": query.provider, "id": event_id, "count": 0, "last": None, "samples": [],
                                      "error": None}
        found = sorted((e for e in host.events if _matches(query, e, since)), key=lambda e: e.time, reverse=True)
        for event in found:
            key = ("", event.event_id) if query.ids else (event.provider.lower(), event.event_id)
            entry = groups.setdefault(key, {"log": query.log, "provider": event.provider, "id": event.event_id, "count": 0, "last": None,
                                            "samples": [], "error": None})
            entry["count"] += 1
            entry["last"] = entry["last"] or utc_text(event.time)
            if len(entry["samples"]) < sample_size:
                message = None if event.format_error else event.message[:MESSAGE_LIMIT]
                if event.format_error and entry["error"] is None:
                    entry["error"] = {"type": EVENT_FORMAT_ERROR, "message": event.format_error}
                entry["samples"].append({"time": utc_text(event.time), "message": message})
        out.extend(groups.values())
    return out


# ---- issue 12 part B: TLS algorithms, listener ACL, secure channel, logon services ----
SCHANNEL_KEY = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL"
SCHANNEL_ALGORITHM_KINDS = ("Ciphers", "Hashes", "KeyExchangeAlgorithms")
LOGON_SERVICE_NAMES = (m.LSM, m.NETLOGON, m.BFE, m.MPSSVC)


def read_schannel_algorithms(host: m.Host) -> dict[str, t.Any]:
    """SCHANNEL Ciphers / Hashes / KeyExchangeAlgorithms, each algorithm subkey with its values; a kind without a key is None."""
    out: dict[str, t.Any] = {}
    for kind in SCHANNEL_ALGORITHM_KINDS:
        root = f"{SCHANNEL_KEY}\\{kind}"
        if not host.registry.key_exists(root):
            out[kind] = None
            continue
        out[kind] = {name: registry_key(host, f"{root}\\{name}") or {} for name in host.registry.subkeys(root)}
    return out


def read_listener_acl(host: m.Host) -> t.Any:
    """Win32_TSAccount of RDP-Tcp: gone with the TerminalServices namespace, failing with its provider."""
    if host.wmi_broken:
        return None
    if host.wmi_error is not None:
        return section_error(CIM_EXCEPTION, host.wmi_error)
    return [{"sid": a.sid, "account": a.account, "allowed": a.allowed, "denied": a.denied} for a in host.listener_acl]


def read_secure_channel(host: m.Host) -> dict[str, t.Any]:
    """Test-ComputerSecureChannel on a domain member: false when the trust is broken or no domain controller answers."""
    if not host.os.part_of_domain:
        return {"checked": False, "ok": None, "domain": host.os.domain}
    return {"checked": True, "ok": host.secure_channel_ok and host.domain_reachable, "domain": host.os.domain}


def read_logon_services(host: m.Host) -> list[dict[str, t.Any]]:
    """Win32_Service for LSM, Netlogon, BFE, MpsSvc (those the host has), in the order Windows returns them (the script's)."""
    out = []
    for name in LOGON_SERVICE_NAMES:
        service = host.services.get(name)
        if service is not None:
            out.append({"name": service.name, "state": SERVICE_STATES.get(service.state.replace(" ", "").lower(), service.state),
                        "start_mode": service.start_mode})
    return out


# ---- the twin ----
def run(host: m.Host, params: dict[str, t.Any], now: dt.datetime | None = None) -> dict[str, t.Any]:
    """Read the host model as read_rdp_state.ps1 reads Windows. ``now``: real time (default: the current UTC time)."""
    host_now = host.clock(now or dt.datetime.now(dt.timezone.utc))
    machine_guid = host.registry.get(m.CRYPTOGRAPHY, "MachineGuid")
    machine_guid = str(machine_guid) if machine_guid is not None else None
    # Parameters are read, and fail, in the order the script reads them.
    port = m.effective_port(host)
    port_hint = _param(params, "port_hint")
    ports = [port] + ([int(port_hint)] if port_hint is not None and int(port_hint) != port else [])
    registry: dict[str, t.Any] = {}
    for path in _param(params, "registry_keys"):
        _check_registry_path(str(path))
        registry[str(path)] = registry_key(host, str(path))
    accounts = read_accounts(host, _param(params, "accounts"))
    since = host_now - dt.timedelta(days=int(_param(params, "event_days")))
    events = read_events(host, since, int(_param(params, "event_sample_size")))
    return {
        "schema": SCHEMA_ID,
        "host_time_utc": utc_text(host_now),
        "os": read_os(host, machine_guid),
        "registry": registry,
        "ts_general_setting": read_ts_general_setting(host),
        "ts_setting": read_ts_setting(host),
        "rd_licensing": read_rd_licensing(host),
        "cert_store_acls": {"Remote Desktop": host.key_sddl.get(m.RDS_STORE_KEY), "RCM": host.key_sddl.get(m.RCM)},
        # Get-NetTCPSetting: every setting but Automatic carries the (one) dynamic range netsh sets.
        "ephemeral_ports": [{"setting": name, "start": host.dynamic_ports[0], "count": host.dynamic_ports[1]}
                            for name in ("Internet", "Datacenter", "Compat", "DatacenterCustom", "InternetCustom")],
        "services": read_services(host),
        "listening": read_listening(host, ports),
        "certificates": {store: [read_certificate(host, e, machine_guid) for e in host.cert_stores.get(store, [])]
                         for store in (m.RDS_STORE, m.MY_STORE)},
        "tspkg_version": host.os.tspkg_version,
        "schannel_algorithms": read_schannel_algorithms(host),
        "listener_acl": read_listener_acl(host),
        "secure_channel": read_secure_channel(host),
        "logon_services": read_logon_services(host),
        "firewall": read_firewall(host, ports),
        "sessions": section_error(WIN32_EXCEPTION, host.wts_error) if host.wts_error else read_sessions(host, host_now),
        "machinekeys": read_machinekeys(host, machine_guid),
        "winrm_listeners": [{"transport": w.transport, "address": w.address, "port": w.port, "thumbprint": w.thumbprint or None,
                             "enabled": w.enabled} for w in host.winrm_listeners],
        "accounts": accounts,
        "events": events,
    }
