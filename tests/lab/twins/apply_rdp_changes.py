"""Twin of ``plugins/host_scripts/apply_rdp_changes.ps1``: changes the lab host model as the script changes Windows.

``run(host, params)`` follows the script step by step (docs/dev/contracts.md section 10a): read every target
and compare it with ``expect`` (drift -> nothing written), apply in order keeping each previous state, undo
the applied operations in reverse when one fails, re-read every target. Each kind reads the same keys as the
script's ``Read-Rd*`` function and fails where Windows fails:

* a Disabled service does not start (SCM error 1058); ``Win32_Service.ChangeStartMode`` takes Auto / Manual /
  Disabled; a restart of TermService starts the dependents that were running;
* RDP-Tcp ``PortNumber`` takes effect when TermService starts (``Host.bound_port``); Schannel, CredSSP and
  FIPS values when Windows boots (``Host.boot_registry``, ``reboot``); SecurityLayer, UserAuthentication,
  fDenyTSConnections and fEnableWinStation at once (the lab listener re-reads the model after every run);
* binding a certificate that is not in ``LocalMachine\\My`` fails like the WMI setter ("Invalid Parameter");
  a removed self-signed certificate comes back (new key, new thumbprint, event 1056) only when SessionEnv or
  TermService starts (``Host.start_service``);
* firewall rules are found by their stable name; only ``rdp.doctor-*`` rules are created or deleted;
* ``revert_task`` stores a :class:`~tests.lab.model.RevertTask` that :func:`run_due_tasks` fires when lab time
  reaches its deadline; the lab runs due tasks before every script run and on the admin API's request;
* ``host_restart`` sets ``host.restart_at`` (``shutdown.exe /r /t``; a second one fails like shutdown.exe's 1190);
  the lab's WinRM endpoint restarts the host when that time has passed and refuses connections for
  ``model.RESTART_DOWN_SECONDS``; undo (``shutdown.exe /a``) clears it and fails (1116) when nothing is pending.

Lab hook: ``host.apply_fail_at = N`` makes the Nth operation of the next apply that gets past the drift check
fail (once), so rollback can be tested end to end (admin API ``POST /hosts/<name>/apply_hooks``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import typing as t

from tests.lab import model as m
from tests.lab.twins import TwinError

SCHEMA_ID = "rdp.doctor/apply_rdp_changes/1"
OWNED_RULE_PREFIX = "rdp.doctor-"
REVERT_DIR = "C:\\ProgramData\\rdp.doctor\\revert"
REGISTRY_TYPES = ("DWORD", "QWORD", "String", "ExpandString", "MultiString", "Binary")
# Values Windows reads only at boot: Schannel protocols [S18][S3], CredSSP [S8], FIPS [S20].
BOOT_TIME_PREFIXES = tuple(p.lower() + "\\" for p in (m.SCHANNEL_PROTOCOLS, m.CREDSSP.rsplit("\\", 1)[0], m.FIPS))
# SDDL aliases Get-Acl writes for well-known SIDs.
SDDL_ALIASES = {"S-1-5-18": "SY", "S-1-5-19": "LS", "S-1-5-20": "NS", "S-1-5-32-544": "BA", "S-1-5-32-545": "BU", "S-1-1-0": "WD",
                "S-1-5-11": "AU"}
# FileSystemRights masks (ms: system.security.accesscontrol.filesystemrights); an Allow ACE also gets SYNCHRONIZE.
RIGHTS = {"Read": 0x20089, "FullControl": 0x1F01FF}
SDDL_RIGHTS = {"FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0, "GA": 0x10000000, "GR": 0x80000000}

Operation = t.Dict[str, t.Any]
State = t.Dict[str, t.Any]


class OperationError(Exception):
    """One operation failed as the cmdlet or API would fail (``type`` = the .NET exception's full name)."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


def _now(host: m.Host) -> dt.datetime:
    return host.clock(dt.datetime.now(dt.timezone.utc))


def canonical(value: t.Any) -> str:
    """How the script compares values: compact JSON, case-insensitive (ConvertTo-RdCanonical)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True).lower()


# ---------------------------------------------------------------------------------------------- registry_value

def read_registry(host: m.Host, op: Operation) -> State:
    target = op["target"]
    value = host.registry.get(target["path"], target["name"])
    if value is None:
        return {"present": False}
    kind = host.registry.value_type(target["path"], target["name"])
    return {"present": True, "type": kind, "value": value.hex() if isinstance(value, bytes) else value}


def write_registry(host: m.Host, path: str, name: str, state: State) -> None:
    """Write ``state`` ({present, type, value}) or delete the value; boot-time values keep what was in effect."""
    if not path.startswith("HKLM:\\"):
        raise OperationError("System.Management.Automation.RuntimeException", f"only HKLM:\\ registry paths may be written, not '{path}'")
    if (path.lower() + "\\").startswith(BOOT_TIME_PREFIXES):
        host.remember_boot_value(path, name)
    port_before = m.listener_port(host)
    if not state.get("present"):
        host.registry.delete(path, name)
    else:
        host.registry.set(path, name, registry_data(state.get("type"), state.get("value")))
        host.registry.set_type(path, name, str(state.get("type")))
    if path.lower() == m.RDP_TCP.lower() and name.lower() == "portnumber":
        service = host.services.get(m.TERMSERVICE)
        if service is not None and service.state == "Running" and host.bound_port is None:
            host.bound_port = port_before  # TermService keeps the port it bound at start until it restarts [S4][S14]


def registry_data(kind: t.Any, value: t.Any) -> m.RegValue:
    """The model value for a contract (type, value), failing like PowerShell's cast would."""
    if kind not in REGISTRY_TYPES:
        raise OperationError("System.Management.Automation.RuntimeException", f"unknown registry type '{kind}'")
    try:
        if kind in ("DWORD", "QWORD"):
            number = int(value)
            if isinstance(value, bool) or number < 0 or number > (0xFFFFFFFF if kind == "DWORD" else 0xFFFFFFFFFFFFFFFF):
                raise OverflowError
            return number
        if kind == "MultiString":
            return [str(item) for item in (value if isinstance(value, list) else [value])]
        if kind == "Binary":
            return bytes.fromhex(str(value))
        return str(value)
    except (TypeError, ValueError, OverflowError) as exc:
        raise OperationError("System.Management.Automation.PSInvalidCastException", f"Cannot convert value \"{value}\" to type {kind}.") from exc


def apply_registry(host: m.Host, op: Operation, before: State) -> t.Any:
    write_registry(host, op["target"]["path"], op["target"]["name"], op["set"])
    return None


def undo_registry(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    write_registry(host, op["target"]["path"], op["target"]["name"], before)


# ---------------------------------------------------------------------------------------------- services

SERVICE_EXCEPTION = "Microsoft.PowerShell.Commands.ServiceCommandException"


def _service(host: m.Host, name: str) -> m.Service:
    try:
        return host._service(name)  # pylint: disable=protected-access  # the model's SCM lookup, same error text
    except m.ServiceError as exc:
        raise OperationError(SERVICE_EXCEPTION, str(exc)) from exc


def read_service_config(host: m.Host, op: Operation) -> State:
    service = _service(host, op["target"]["name"])
    return {"start_mode": service.start_mode, "account": service.account}


def set_service_config(host: m.Host, name: str, state: State) -> None:
    service = _service(host, name)
    if state.get("start_mode") is not None:
        if state["start_mode"] not in ("Auto", "Manual", "Disabled"):
            # Win32_Service.ChangeStartMode ReturnValue 21 = invalid parameter
            raise OperationError("System.Management.Automation.RuntimeException",
                                 f"Win32_Service.ChangeStartMode({state['start_mode']}) on {name} returned 21")
        service.start_mode = state["start_mode"]
    if state.get("account") is not None:
        service.account = str(state["account"])


def apply_service_config(host: m.Host, op: Operation, before: State) -> t.Any:
    set_service_config(host, op["target"]["name"], op["set"])
    return None


def undo_service_config(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    set_service_config(host, op["target"]["name"], {key: before.get(key) for key in op["set"]})


def read_service_control(host: m.Host, op: Operation) -> State:
    return {"state": _service(host, op["target"]["name"]).state}


def service_action(host: m.Host, name: str, action: str) -> None:
    """Start-Service / Stop-Service -Force / Restart-Service -Force (+ dependents that were running)."""
    now = _now(host)
    try:
        if action == "start":
            host.start_service(name, now)
        elif action == "stop":
            host.stop_service(name, now)
        elif action == "restart":
            host.restart_service(name, now)
        else:
            raise OperationError("System.Management.Automation.RuntimeException", f"unknown service action '{action}'")
    except m.ServiceError as exc:
        raise OperationError(SERVICE_EXCEPTION, str(exc)) from exc


def apply_service_control(host: m.Host, op: Operation, before: State) -> t.Any:
    service_action(host, op["target"]["name"], op["set"]["action"])
    return None


def undo_service_control(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    if op["set"]["action"] == "restart":
        return
    service_action(host, op["target"]["name"], "start" if before.get("state") == "Running" else "stop")


# ---------------------------------------------------------------------------------------------- firewall rules

FIREWALL_EXCEPTION = "Microsoft.Management.Infrastructure.CimException"


def _rule(host: m.Host, name: str) -> m.FirewallRule | None:
    return next((rule for rule in host.firewall_rules if rule.name.lower() == name.lower()), None)


def _rule_state(host: m.Host, name: str) -> State:
    rule = _rule(host, name)
    if rule is None:
        return {"present": False}
    return {"present": True, "enabled": rule.enabled, "display_name": rule.display_name, "protocol": rule.protocol,
            "local_ports": list(rule.local_ports), "profiles": list(rule.profiles), "remote_addresses": list(rule.remote_addresses),
            "service": None}


def read_firewall_rule(host: m.Host, op: Operation) -> State:
    return _rule_state(host, op["target"]["name"])


def set_firewall_rule(host: m.Host, name: str, state: State) -> None:
    rule = _rule(host, name)
    if rule is None:
        raise OperationError(FIREWALL_EXCEPTION, f"No MSFT_NetFirewallRule objects found with property 'InstanceID' equal to '{name}'.")
    if "enabled" in state:
        rule.enabled = bool(state["enabled"])
    if "local_ports" in state:
        rule.local_ports = [str(port) for port in state["local_ports"]]
    if "remote_addresses" in state:
        rule.remote_addresses = [str(address) for address in state["remote_addresses"]]


def apply_firewall_rule(host: m.Host, op: Operation, before: State) -> t.Any:
    set_firewall_rule(host, op["target"]["name"], op["set"])
    return None


def undo_firewall_rule(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    set_firewall_rule(host, op["target"]["name"], {key: before.get(key) for key in op["set"]})


def _new_owned_rule(host: m.Host, name: str, definition: State) -> None:
    if not name.startswith(OWNED_RULE_PREFIX):
        raise OperationError("System.Management.Automation.RuntimeException", f"rdp.doctor only creates rules named {OWNED_RULE_PREFIX}*, not '{name}'")
    protocol = str(definition.get("protocol") or "").upper()
    if protocol not in ("TCP", "UDP"):
        raise OperationError(FIREWALL_EXCEPTION, f"The parameter Protocol has an invalid value '{definition.get('protocol')}'.")
    host.firewall_rules.append(m.FirewallRule(
        name=name, display_name=str(definition.get("display_name") or name), group="", enabled=True, protocol=protocol,
        local_ports=[str(p) for p in definition.get("local_ports") or ["Any"]],
        profiles=[str(p) for p in definition.get("profiles") or ["Any"]],
        remote_addresses=[str(a) for a in definition.get("remote_addresses") or ["Any"]],
        service=str(definition.get("service") or "Any")))


def _remove_rule(host: m.Host, name: str) -> None:
    host.firewall_rules = [rule for rule in host.firewall_rules if rule.name.lower() != name.lower()]


def apply_owned_rule(host: m.Host, op: Operation, before: State) -> t.Any:
    name = op["target"]["name"]
    if not name.startswith(OWNED_RULE_PREFIX):
        raise OperationError("System.Management.Automation.RuntimeException",
                             f"rdp.doctor only creates or deletes rules named {OWNED_RULE_PREFIX}*, not '{name}'")
    if before.get("present"):
        _remove_rule(host, name)
    if op["set"].get("present"):
        _new_owned_rule(host, name, op["set"])
    return None


def undo_owned_rule(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    name = op["target"]["name"]
    _remove_rule(host, name)
    if before.get("present"):
        _new_owned_rule(host, name, before)


# ---------------------------------------------------------------------------------------------- listener certificate

def read_listener_binding(host: m.Host, op: Operation) -> State:
    return {"thumbprint": host.bound_thumbprint()}


def set_listener_binding(host: m.Host, thumbprint: t.Any) -> None:
    if not thumbprint:
        host.registry.delete(m.RDP_TCP, "SSLCertificateSHA1Hash")
        return
    wanted = re.sub(r"[^0-9A-Fa-f]", "", str(thumbprint)).upper()
    found = host.find_cert(wanted)
    if found is None or found[0] != m.MY_STORE:
        # WMI refuses a hash that names no certificate in LocalMachine\My [S1]
        raise OperationError(FIREWALL_EXCEPTION, "Invalid parameter ")
    if host.wmi_broken:
        raise OperationError(FIREWALL_EXCEPTION, "Invalid namespace ")
    host.bind_cert(found[1])


def apply_listener_binding(host: m.Host, op: Operation, before: State) -> t.Any:
    set_listener_binding(host, op["set"].get("thumbprint"))
    return None


def undo_listener_binding(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    # The previous bytes go back as they were (the self-signed hash is in Remote Desktop, not My, so WMI would refuse it).
    if before.get("thumbprint"):
        host.registry.set(m.RDP_TCP, "SSLCertificateSHA1Hash", bytes.fromhex(before["thumbprint"]))
    else:
        host.registry.delete(m.RDP_TCP, "SSLCertificateSHA1Hash")


# ---------------------------------------------------------------------------------------------- certificates and keys

CRYPTO_EXCEPTION = "System.Security.Cryptography.CryptographicException"


def _store_entry(host: m.Host, store: str, thumbprint: str) -> m.CertEntry | None:
    wanted = re.sub(r"[^0-9A-Fa-f]", "", thumbprint).upper()
    return next((entry for entry in host.cert_stores.get(store, []) if entry.thumbprint == wanted), None)


def read_certificate(host: m.Host, op: Operation) -> State:
    return {"present": _store_entry(host, op["target"]["store"], op["target"]["thumbprint"]) is not None}


def apply_certificate(host: m.Host, op: Operation, before: State) -> t.Any:
    store, thumbprint = op["target"]["store"], op["target"]["thumbprint"]
    entry = _store_entry(host, store, thumbprint)
    if entry is None:
        raise OperationError(CRYPTO_EXCEPTION, f"no certificate {thumbprint} in LocalMachine\\{store}")
    # Export as PFX works when the key can be read and is exportable; otherwise only the certificate could come back.
    reversible = entry.key is None or (entry.has_private_key and entry.key_error is None and getattr(entry, "exportable", True))
    host.cert_stores[store] = [e for e in host.cert_stores[store] if e is not entry]
    return {"entry": entry, "reversible": bool(reversible)}


def undo_certificate(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    store = op["target"]["store"]
    host.cert_stores.setdefault(store, []).append(saved["entry"])
    if not saved["reversible"]:
        raise OperationError(CRYPTO_EXCEPTION, "the certificate is back but its private key was not exportable and is lost")


def _sid_alias(sid: str) -> str:
    return SDDL_ALIASES.get(sid, sid)


def _aces(sddl: str) -> list[tuple[str, str, int, str]]:
    """(type, flags, mask, trustee) of each ACE of an SDDL's DACL."""
    out = []
    for ace in re.findall(r"\(([^)]*)\)", sddl.split("D:", 1)[-1]):
        parts = ace.split(";")
        if len(parts) < 6:
            continue
        rights = parts[2]
        mask = int(rights, 16) if rights.lower().startswith("0x") else sum(SDDL_RIGHTS.get(rights[i:i + 2], 0) for i in range(0, len(rights), 2))
        out.append((parts[0], parts[1], mask, parts[5]))
    return out


def grants_present(sddl: str | None, grants: list[dict[str, t.Any]]) -> list[dict[str, str]]:
    """The requested grants the ACL already gives (an allow ACE for the SID covering the rights), as the script's Get-RdGrantsPresent."""
    present = []
    for grant in grants or []:
        wanted = RIGHTS.get(str(grant.get("rights")), 0)
        trustees = {str(grant.get("sid")).upper(), _sid_alias(str(grant.get("sid"))).upper()}
        if any(kind == "A" and trustee.upper() in trustees and mask & wanted == wanted for kind, _flags, mask, trustee in _aces(sddl or "")):
            present.append({"sid": str(grant.get("sid")), "rights": str(grant.get("rights"))})
    return present


def _key_file(host: m.Host, store: str, thumbprint: str) -> tuple[m.CertEntry, m.KeyFile]:
    entry = _store_entry(host, store, thumbprint)
    if entry is None:
        raise OperationError("System.Management.Automation.RuntimeException", f"no certificate {thumbprint} in LocalMachine\\{store}")
    if entry.key is None or not entry.has_private_key:
        raise OperationError("System.Management.Automation.RuntimeException", f"certificate {thumbprint} has no RSA private key")
    if entry.key_error:
        raise OperationError(CRYPTO_EXCEPTION, entry.key_error)
    files = host.machinekeys.files if host.machinekeys.exists else {}
    found = next((f for name, f in files.items() if entry.key_file and name.lower() == entry.key_file.lower()), None)
    if found is None:
        raise OperationError(CRYPTO_EXCEPTION, "Keyset does not exist")
    return entry, found


def read_key_acl(host: m.Host, op: Operation) -> State:
    _entry, key_file = _key_file(host, op["target"]["store"], op["target"]["thumbprint"])
    return {"sddl": key_file.sddl, "grant": grants_present(key_file.sddl, op["set"].get("grant") or [])}


def _set_key_sddl(entry: m.CertEntry, key_file: m.KeyFile, sddl: str) -> None:
    key_file.sddl = sddl
    entry.key_readable_by_network_service = m.key_file_readable_by_network_service(sddl)


def apply_key_acl(host: m.Host, op: Operation, before: State) -> t.Any:
    entry, key_file = _key_file(host, op["target"]["store"], op["target"]["thumbprint"])
    sddl = key_file.sddl
    for grant in op["set"].get("grant") or []:
        rights = RIGHTS.get(str(grant.get("rights")))
        if rights is None:
            raise OperationError("System.Management.Automation.PSInvalidCastException",
                                 f"Cannot convert value \"{grant.get('rights')}\" to type FileSystemRights.")
        text = "FA" if rights == RIGHTS["FullControl"] else hex(rights | 0x100000)
        sddl += f"(A;;{text};;;{_sid_alias(str(grant.get('sid')))})"
    _set_key_sddl(entry, key_file, sddl)
    return None


def undo_key_acl(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    entry, key_file = _key_file(host, op["target"]["store"], op["target"]["thumbprint"])
    _set_key_sddl(entry, key_file, before["sddl"])


# ---------------------------------------------------------------------------------------------- paths

def _same(a: str, b: str) -> bool:
    return a.rstrip("\\").lower() == b.rstrip("\\").lower()


def _parent(path: str) -> str:
    return path.rstrip("\\").rsplit("\\", 1)[0]


def _leaf(path: str) -> str:
    return path.rstrip("\\").rsplit("\\", 1)[-1]


def _file(host: m.Host, path: str) -> m.KeyFile | None:
    """A key file in MachineKeys, or a backup copy (the only files the lab models)."""
    keys = host.machinekeys
    if keys.exists and _same(_parent(path), keys.path):
        return next((f for name, f in keys.files.items() if name.lower() == _leaf(path).lower()), None)
    return next((f for name, f in host.backups.items() if _same(name, path)), None)


def _exists(host: m.Host, path: str) -> bool:
    return (host.machinekeys.exists and _same(path, host.machinekeys.path)) or _file(host, path) is not None


def _acl_object(host: m.Host, path: str) -> t.Any:
    if host.machinekeys.exists and _same(path, host.machinekeys.path):
        return host.machinekeys
    return _file(host, path)


def read_path_acl(host: m.Host, op: Operation) -> State:
    found = _acl_object(host, op["target"]["path"])
    return {"sddl": found.sddl if found is not None else None}


def _set_path_sddl(host: m.Host, path: str, sddl: str) -> None:
    found = _acl_object(host, path)
    if found is None:
        raise OperationError("System.Management.Automation.ItemNotFoundException", f"Cannot find path '{path}' because it does not exist.")
    if not re.match(r"^(O:[^:]+)?(G:[^:]+)?D:", sddl or "") or "D:" not in found.sddl:
        raise OperationError("System.ArgumentException", "The SDDL form of a security descriptor object is invalid.")
    # SetSecurityDescriptorSddlForm(sddl, Access): the DACL changes, owner and group stay
    owner_group = found.sddl.split("D:", 1)[0]
    found.sddl = owner_group + "D:" + sddl.split("D:", 1)[1].split("S:", 1)[0]
    if isinstance(found, m.KeyFile):
        for entries in host.cert_stores.values():
            for entry in entries:
                if entry.key_file and entry.key_file.lower() == found.name.lower():
                    entry.key_readable_by_network_service = m.key_file_readable_by_network_service(sddl)


def apply_path_acl(host: m.Host, op: Operation, before: State) -> t.Any:
    _set_path_sddl(host, op["target"]["path"], op["set"]["sddl"])
    return None


def undo_path_acl(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    _set_path_sddl(host, op["target"]["path"], before["sddl"])


def _destination(op: Operation) -> str:
    return _parent(op["target"]["path"]) + "\\" + op["set"]["new_name"]


def read_path_rename(host: m.Host, op: Operation) -> State:
    return {"present": _exists(host, op["target"]["path"]), "destination_present": _exists(host, _destination(op))}


def _rename(host: m.Host, path: str, destination: str) -> None:
    keys = host.machinekeys
    if keys.exists and _same(path, keys.path):
        keys.path = destination
        return
    found = _file(host, path)
    if found is None:
        raise OperationError("System.Management.Automation.PSInvalidOperationException", f"Cannot rename because item at '{path}' does not exist.")
    keys.files.pop(found.name, None)
    found.name = _leaf(destination)
    keys.files[found.name] = found


def apply_path_rename(host: m.Host, op: Operation, before: State) -> t.Any:
    _rename(host, op["target"]["path"], _destination(op))
    return None


def undo_path_rename(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    _rename(host, _destination(op), op["target"]["path"])


def read_file_remove(host: m.Host, op: Operation) -> State:
    found = _file(host, op["target"]["path"])
    return {"present": found is not None, "sddl": found.sddl if found is not None else None}


def apply_file_remove(host: m.Host, op: Operation, before: State, run_id: str = "") -> t.Any:
    path = op["target"]["path"]
    found = _file(host, path)
    if found is None:
        raise OperationError("System.Management.Automation.ItemNotFoundException", f"Cannot find path '{path}' because it does not exist.")
    backup = op["set"]["backup_dir"].rstrip("\\") + "\\" + f"{run_id}-{_leaf(path)}"
    host.backups[backup] = m.KeyFile(name=backup, sddl=found.sddl, size=found.size, readable=found.readable)
    host.machinekeys.files.pop(found.name, None)
    return {"backup": backup, "file": found}


def undo_file_remove(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    found = saved["file"]
    found.sddl = before.get("sddl") or found.sddl
    host.machinekeys.files[found.name] = found


# ---------------------------------------------------------------------------------------------- sessions

def read_session(host: m.Host, op: Operation) -> State:
    session = next((s for s in host.sessions if s.session_id == int(op["target"]["session_id"])), None)
    if session is None:
        return {"present": False, "user": None, "state": None, "logon_time": None}
    return {"present": True, "user": session.user, "state": session.state, "logon_time": session.logon_time.strftime("%Y-%m-%dT%H:%M:%SZ")}


def apply_session_logoff(host: m.Host, op: Operation, before: State) -> t.Any:
    session_id = int(op["target"]["session_id"])
    if not any(s.session_id == session_id for s in host.sessions):
        raise OperationError("System.ComponentModel.Win32Exception", "The system cannot find the file specified")
    host.sessions = [s for s in host.sessions if s.session_id != session_id]
    return None


def undo_session_logoff(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    raise OperationError("System.Management.Automation.RuntimeException", "a logged-off session cannot be restored")


# ---------------------------------------------------------------------------------------------- revert task

def read_revert_task(host: m.Host, op: Operation) -> State:
    task = next((task for task in host.revert_tasks if task.name.lower() == op["target"]["name"].lower()), None)
    if task is None:
        return {"present": False, "run_at_utc": None}
    return {"present": True, "run_at_utc": task.run_at.strftime("%Y-%m-%dT%H:%M:%SZ")}


def parse_utc(text: str) -> dt.datetime:
    """An ISO 8601 time as [DateTime]::Parse reads it (UTC assumed when no offset)."""
    value = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def apply_revert_task(host: m.Host, op: Operation, before: State, run_id: str = "") -> t.Any:
    name = op["target"]["name"]
    if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
        raise OperationError("System.Management.Automation.RuntimeException", f"revert task names are letters, digits, '.', '_' and '-', not '{name}'")
    try:
        run_at = parse_utc(op["set"]["run_at_utc"])
    except ValueError as exc:
        raise OperationError("System.FormatException", "String was not recognized as a valid DateTime.") from exc
    host.revert_tasks.append(m.RevertTask(name=name, run_at=run_at, restore=json.loads(json.dumps(op["set"]["restore"])), run_id=run_id))
    return None


def undo_revert_task(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    host.revert_tasks = [task for task in host.revert_tasks if task.name.lower() != op["target"]["name"].lower()]


def run_due_tasks(host: m.Host, now: dt.datetime | None = None) -> list[dict[str, t.Any]]:
    """Fire the revert tasks whose deadline passed (host clock), as Task Scheduler does; each deletes itself.

    Returns what each task did ({task, results: [{id, status, error}]}), the restore script's result file.
    """
    moment = now or _now(host)
    ran = []
    for task in [task for task in host.revert_tasks if task.run_at <= moment]:
        results = []
        for op in task.restore:
            try:
                if op.get("kind") == "registry_value":
                    write_registry(host, op["target"]["path"], op["target"]["name"], op["set"])
                elif op.get("kind") == "service_control" and op.get("set", {}).get("action") == "restart":
                    service_action(host, op["target"]["name"], "restart")
                results.append({"id": op.get("id"), "status": "applied", "error": None})
            except OperationError as exc:
                results.append({"id": op.get("id"), "status": "failed", "error": exc.message})
        host.revert_tasks.remove(task)
        host.add_event("Microsoft-Windows-TaskScheduler/Operational", "Microsoft-Windows-TaskScheduler", 102, moment,
                       f'Task Scheduler successfully finished "\\rdp.doctor\\{task.name}"', level="Information")
        ran.append({"task": task.name, "results": results})
    return ran


# ---------------------------------------------------------------------------------------------- host restart
# shutdown.exe /r /t <n> schedules a restart (``host.restart_at``; the lab restarts the host when that time passed, see
# ``Host.restart_if_due``); /a cancels a pending one and fails (exit 1116) when none is pending.

RESTARTED_IN_RUN = "_restart_scheduled_run"  # the script's $RestartScheduled: set by this run's host_restart


def _utc_text(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_host_restart(host: m.Host, op: Operation) -> State:
    return {"scheduled": bool(op.get(RESTARTED_IN_RUN)), "last_boot_utc": _utc_text(host.booted_at)}


def apply_host_restart(host: m.Host, op: Operation, before: State) -> t.Any:
    delay = op.get("set", {}).get("delay_seconds")
    if isinstance(delay, bool) or not isinstance(delay, int) or not 5 <= delay <= 600:
        raise OperationError("System.Management.Automation.RuntimeException", f"delay_seconds must be from 5 to 600, not {delay}")
    if host.restart_at is not None:  # shutdown.exe: "A system shutdown has already been scheduled.(1190)"
        raise OperationError("System.Management.Automation.RuntimeException", "shutdown.exe /r failed with exit code 1190")
    host.restart_at = _now(host) + dt.timedelta(seconds=delay)
    op[RESTARTED_IN_RUN] = True
    return None


def undo_host_restart(host: m.Host, op: Operation, before: State, saved: t.Any) -> None:
    if host.restart_at is None:  # "Unable to abort the system shutdown because no shutdown was in progress.(1116)"
        raise OperationError("System.Management.Automation.RuntimeException", "shutdown.exe /a failed with exit code 1116")
    host.restart_at = None
    op[RESTARTED_IN_RUN] = False


# ---------------------------------------------------------------------------------------------- dispatcher

Reader = t.Callable[[m.Host, Operation], State]
KINDS: dict[str, tuple[Reader, t.Callable[..., t.Any], t.Callable[..., None]]] = {
    "registry_value": (read_registry, apply_registry, undo_registry),
    "service_config": (read_service_config, apply_service_config, undo_service_config),
    "service_control": (read_service_control, apply_service_control, undo_service_control),
    "firewall_rule": (read_firewall_rule, apply_firewall_rule, undo_firewall_rule),
    "firewall_rule_owned": (read_firewall_rule, apply_owned_rule, undo_owned_rule),
    "listener_binding": (read_listener_binding, apply_listener_binding, undo_listener_binding),
    "certificate": (read_certificate, apply_certificate, undo_certificate),
    "key_acl": (read_key_acl, apply_key_acl, undo_key_acl),
    "path_acl": (read_path_acl, apply_path_acl, undo_path_acl),
    "path_rename": (read_path_rename, apply_path_rename, undo_path_rename),
    "file_remove": (read_file_remove, apply_file_remove, undo_file_remove),
    "session_logoff": (read_session, apply_session_logoff, undo_session_logoff),
    "revert_task": (read_revert_task, apply_revert_task, undo_revert_task),
    "host_restart": (read_host_restart, apply_host_restart, undo_host_restart),
}
NEEDS_RUN_ID = ("file_remove", "revert_task")


def read_target(host: m.Host, op: Operation) -> State:
    """Read-RdTarget: a target that cannot be read is drift ({error}), not a script failure."""
    try:
        return KINDS[op["kind"]][0](host, op)
    except OperationError as exc:
        return {"error": exc.message}


def drift_of(op: Operation, actual: State) -> dict[str, t.Any] | None:
    """Get-RdDrift: compare only the keys ``expect`` names."""
    expected = dict(op.get("expect") or {})
    found = {name: actual.get(name) for name in expected}
    differs = any(canonical(expected[name]) != canonical(found[name]) for name in expected)
    if "error" in actual:
        differs, found["error"] = True, actual["error"]
    return {"id": op["id"], "expected": expected, "actual": found} if differs else None


def _error(exc: OperationError) -> dict[str, str]:
    return {"type": exc.type, "message": exc.message}


def run(host: m.Host, params: dict[str, t.Any]) -> dict[str, t.Any]:
    """Apply ``params.operations`` to the host model (contracts section 10a)."""
    operations = list(params.get("operations") or [])
    run_id = str(params.get("run_id") or "")
    for op in operations:
        if op.get("kind") not in KINDS:
            raise TwinError("System.Management.Automation.RuntimeException", f"unknown operation kind '{op.get('kind')}' in {op.get('id')}",
                            line=0, category="NotSpecified")
    results = [{"id": op["id"], "kind": op["kind"], "status": "not_run", "before": read_target(host, op), "after": None, "error": None,
                "reversible": op.get("reversible") is None or bool(op.get("reversible"))} for op in operations]
    drift = [d for d in (drift_of(op, result["before"]) for op, result in zip(operations, results)) if d is not None]
    outcome = "applied"
    if drift:
        outcome = "drift"
    else:
        saved: dict[int, t.Any] = {}
        failed_at = -1
        fail_at, host.apply_fail_at = host.apply_fail_at, None  # the hook fires once, on an apply that gets this far
        for index, op in enumerate(operations):
            try:
                if fail_at is not None and index + 1 == fail_at:
                    raise OperationError("System.ComponentModel.Win32Exception", f"lab fault hook: operation {index + 1} made to fail (apply_fail_at)")
                apply = KINDS[op["kind"]][1]
                saved[index] = apply(host, op, results[index]["before"], run_id) if op["kind"] in NEEDS_RUN_ID else apply(host, op, results[index]["before"])
                results[index]["status"] = "applied"
                if isinstance(saved[index], dict) and saved[index].get("reversible") is False:
                    results[index]["reversible"] = False
            except OperationError as exc:
                results[index]["status"], results[index]["error"] = "failed", _error(exc)
                failed_at = index
                break
        if failed_at >= 0:
            outcome = "rolled_back"
            for index in range(failed_at - 1, -1, -1):
                op = operations[index]
                if not results[index]["reversible"]:
                    results[index]["status"], outcome = "not_reversible", "partial"
                    continue
                try:
                    KINDS[op["kind"]][2](host, op, results[index]["before"], saved.get(index))
                    results[index]["status"] = "rolled_back"
                except OperationError as exc:
                    results[index]["status"], results[index]["error"] = "rollback_failed", _error(exc)
                    outcome = "partial"
        for op, result in zip(operations, results):
            try:
                result["after"] = KINDS[op["kind"]][0](host, op)
            except OperationError as exc:
                if result["error"] is None:
                    result["error"] = _error(exc)
    return {"schema": SCHEMA_ID, "run_id": run_id, "host_time_utc": _now(host).strftime("%Y-%m-%dT%H:%M:%SZ"), "outcome": outcome,
            "drift": drift, "operations": results}
