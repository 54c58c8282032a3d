# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn the raw ``read_rdp_state`` document into versioned RDP facts (pure functions, no I/O).

The host script returns raw values only (docs/dev/contracts.md, section 3). Every decision about what
those values mean is made here, on the controller: which of the local, policy and default values wins
(and says so), what the listener certificate is and whether it is usable, whether CredSSP is patched,
which TLS protocols the listener can use, whether the firewall lets the listener's port in, how old the
sessions are, whether the accounts may log on. The findings rules (``findings.py``) only read these
facts. Windows constants come from ``rdp_registry.py``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg

from ansible_collections.rdp.doctor.plugins.module_utils import security_facts
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info

FACTS_VERSION = 1
RAW_SCHEMA = "rdp.doctor/read_rdp_state/1"
SCRIPT_NAME = "read_rdp_state"

#: Option defaults of ``rdp.doctor.host_facts`` (and of ``build_params``).
DEFAULT_EVENT_DAYS = 7
DEFAULT_EVENT_SAMPLE_SIZE = 3

Raw = t.Dict[str, t.Any]


# ==================================================================================================
# Parameters
# ==================================================================================================

def build_params(options: dict[str, t.Any]) -> dict[str, t.Any]:
    """The ``read_rdp_state`` parameters for the module options (contracts section 3).

    The controller decides what the script reads: the registry keys come from ``rdp_registry``; the
    accounts, event window and port hint from the options.
    """
    accounts = [str(a) for a in (options.get("accounts") or []) if str(a).strip()]
    port_hint = options.get("port_hint")
    return {
        "registry_keys": list(reg.REGISTRY_KEYS),
        "event_days": int(options.get("event_days") if options.get("event_days") is not None else DEFAULT_EVENT_DAYS),
        "event_sample_size": int(options.get("event_sample_size") if options.get("event_sample_size") is not None
                                 else DEFAULT_EVENT_SAMPLE_SIZE),
        "accounts": accounts,
        "port_hint": int(port_hint) if port_hint is not None else None,
    }


# ==================================================================================================
# Small helpers
# ==================================================================================================

_MS_DATE = re.compile(r"^\\?/Date\((-?\d+)(?:[+-]\d{4})?\)\\?/$")
_FRACTION = re.compile(r"\.(\d+)")


def parse_time(value: t.Any) -> dt.datetime | None:
    """A timezone-aware UTC datetime from an ISO 8601 string (``Z`` or offset), ``/Date(ms)/`` or None.

    Windows PowerShell 5.1 serialises DateTime as ``/Date(ms)/`` unless the script formats it; .NET's
    round-trip format has 7 fractional digits, which Python before 3.11 does not parse.
    """
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    text = str(value).strip()
    match = _MS_DATE.match(text)
    if match:
        return dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=int(match.group(1)))
    text = text.replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text, count=1)
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def format_time(value: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a ``Z`` suffix (seconds precision), or None."""
    if value is None:
        return None
    return value.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def normalize_thumbprint(value: t.Any) -> str | None:
    """Upper-case hex thumbprint without separators or invisible characters [S1], or None when empty."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        text = bytes(value).hex()
    else:
        text = str(value)
    cleaned = re.sub(r"[^0-9A-Fa-f]", "", text).upper()
    return cleaned or None


def version_tuple(version: t.Any) -> tuple[int, ...] | None:
    """'10.0.20348.2849' -> (10, 0, 20348, 2849); None when not a dotted version."""
    if not version:
        return None
    parts = str(version).strip().split(".")
    if not all(p.isdigit() for p in parts):
        return None
    return tuple(int(p) for p in parts)


def _as_int(value: t.Any) -> int | None:
    """An int from an int, a numeric string or a bool; None otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    return None


def _as_bool(value: t.Any) -> bool | None:
    """A bool from bool/int/'True'/'False' (PowerShell serialises enums and bools in both ways)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    return None


def _as_list(value: t.Any) -> list[t.Any]:
    """A list from a list, a single value (PowerShell unrolls one-element arrays) or None."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _lower_map(mapping: t.Any) -> dict[str, t.Any]:
    """Keys lower-cased (registry paths and value names are case-insensitive)."""
    if not isinstance(mapping, dict):
        return {}
    return {str(k).rstrip("\\").lower(): v for k, v in mapping.items()}


def is_section_error(value: t.Any) -> bool:
    """A section (or part of one) the host could not read: ``{"error": {"type", "message"}}`` (or an older
    ``{"error": "text"}``)."""
    return isinstance(value, dict) and set(value) == {"error"} and isinstance(value["error"], (dict, str))


def _section(raw: Raw, name: str) -> dict[str, t.Any]:
    """A dict section of the raw document; ``{}`` when absent, null or a section error."""
    value = raw.get(name)
    if not isinstance(value, dict) or is_section_error(value):
        return {}
    return value


def _read_error(section: str, error: t.Any) -> dict[str, t.Any]:
    """One ``read_errors`` entry from an error detail (``{"type", "message"}``) or an older plain text."""
    if isinstance(error, dict):
        return {"section": section, "type": str(error.get("type") or "Error"), "message": str(error.get("message") or "")}
    return {"section": section, "type": "Error", "message": str(error)}


def read_errors(raw: Raw) -> list[dict[str, t.Any]]:
    """What the host could not read, in document order: ``[{"section", "type", "message"}]``.

    ``section`` names the part: a top-level section (``firewall``), a registry key (``registry: HKLM:\\...``), the
    grace period (``ts_setting: GracePeriodDays``), an event query or a sample's message (``events: System TermDD 56``),
    an account lookup (``accounts: CONTOSO\\alice``).
    """
    errors = []
    for name, value in raw.items():
        if is_section_error(value):
            errors.append(_read_error(name, value["error"]))
    registry = raw.get("registry")
    if isinstance(registry, dict) and not is_section_error(registry):
        errors.extend(_read_error(f"registry: {path}", value["error"]) for path, value in registry.items() if is_section_error(value))
    grace = _section(raw, "ts_setting").get("GracePeriodDays")
    if is_section_error(grace):
        errors.append(_read_error("ts_setting: GracePeriodDays", grace["error"]))
    for part, value in _section(raw, "rd_licensing").items():  # each WMI method / key of the section fails alone
        if is_section_error(value):
            errors.append(_read_error(f"rd_licensing: {part}", value["error"]))
        elif part == "connectivity":
            errors.extend(_read_error(f"rd_licensing: connectivity {item.get('server')}", item["error"])
                          for item in _as_list(value) if isinstance(item, dict) and item.get("error"))
    events = raw.get("events")
    for item in events if isinstance(events, list) else []:
        if not isinstance(item, dict) or not item.get("error"):
            continue
        where = " ".join(str(part) for part in (item.get("log"), item.get("provider"), item.get("id")) if part not in (None, ""))
        suffix = "" if "ids" in item else " (a sample's message)"
        errors.append(_read_error(f"events: {where}{suffix}", item["error"]))
    for account in _as_list(_section(raw, "accounts").get("checked")):
        if isinstance(account, dict) and account.get("error"):
            errors.append(_read_error(f"accounts: {account.get('name')}", account["error"]))
    return errors


class RegistryView:
    """Case-insensitive access to the raw ``registry`` section."""

    def __init__(self, registry: t.Any) -> None:
        keys = {} if is_section_error(registry) else _lower_map(registry)
        self._unreadable = {path for path, values in keys.items() if is_section_error(values)}
        self._keys = {path: _lower_map(values) if isinstance(values, dict) and path not in self._unreadable else None
                      for path, values in keys.items()}
        self._all_unreadable = is_section_error(registry)

    def key(self, path: str | None) -> dict[str, t.Any] | None:
        """The key's values (lower-case names), or None when the key does not exist or was not read."""
        if path is None:
            return None
        return self._keys.get(path.rstrip("\\").lower())

    def readable(self, path: str | None) -> bool:
        """False when the host could not read the key (a section error): its values are unknown, not absent."""
        if path is None:
            return True
        return not self._all_unreadable and path.rstrip("\\").lower() not in self._unreadable

    def exists(self, path: str) -> bool:
        """True when the key exists."""
        return self.key(path) is not None

    def get(self, path: str | None, name: str) -> t.Any:
        """One value, or None when the key or the value is absent."""
        values = self.key(path)
        if values is None:
            return None
        return values.get(name.lower())

    def has(self, path: str | None, name: str) -> bool:
        """True when the value exists."""
        values = self.key(path)
        return values is not None and name.lower() in values


# ==================================================================================================
# Settings: effective value and its source (policy > local > default, WMI PolicySource when given)
# ==================================================================================================

def _wmi_value(raw: Raw, spec: reg.Setting) -> tuple[t.Any, str | None]:
    """(value, source) that WMI reports for a setting, when the raw document has them [S6][S15]."""
    if spec.wmi is None:
        return None, None
    section = raw.get(spec.wmi.section)
    if not isinstance(section, dict):
        return None, None
    value = section.get(spec.wmi.value)
    if spec.wmi.inverted and _as_int(value) is not None:
        value = 0 if _as_int(value) else 1
    source = reg.POLICY_SOURCES.get(_as_int(section.get(spec.wmi.policy_source)))  # type: ignore[arg-type]
    return value, source


def setting(raw: Raw, registry: RegistryView, spec: reg.Setting) -> dict[str, t.Any]:
    """A setting as contracts section 4 defines it: effective, source, local, policy, default.

    A value under the policy key always wins [S10]. Otherwise WMI's PolicySource decides where it is
    given (1 = Group Policy even when the machine policy key is silent, e.g. a policy WMI sees
    elsewhere); without WMI a local value wins over the default. ``source`` is "unknown" (effective None)
    when a key that could decide was not readable and WMI does not say.
    """
    local = registry.get(spec.local_key, spec.value) if spec.local_key else None
    policy = registry.get(spec.policy_key, spec.value) if spec.policy_key else None
    wmi_value, wmi_source = _wmi_value(raw, spec)
    # A key the host could not read hides a value that may decide: "unknown", never the default (a false finding).
    unknown = not registry.readable(spec.policy_key) or (local is None and not registry.readable(spec.local_key))
    if policy is not None:
        source, effective = "policy", policy
    elif wmi_source == "policy":
        source, effective = "policy", wmi_value if wmi_value is not None else (local if local is not None else spec.default)
    elif unknown and wmi_value is not None and wmi_source is not None:
        source, effective = wmi_source, wmi_value
    elif unknown:
        source, effective = "unknown", None
    elif local is not None:
        source, effective = wmi_source or "local", local
    elif wmi_value is not None and wmi_source is not None:
        source, effective = wmi_source, wmi_value
    else:
        source, effective = "default", spec.default
    return {"effective": effective, "source": source, "local": local, "policy": policy, "default": spec.default}


def _settings(raw: Raw, registry: RegistryView, *names: str) -> dict[str, dict[str, t.Any]]:
    """Several settings by name."""
    return {name: setting(raw, registry, reg.SETTINGS[name]) for name in names}


def _effective_int(item: dict[str, t.Any]) -> int | None:
    """The effective value of a setting as an int (None when not numeric)."""
    return _as_int(item.get("effective"))


# ==================================================================================================
# OS
# ==================================================================================================

def _os_facts(raw: Raw, registry: RegistryView, now: dt.datetime) -> dict[str, t.Any]:
    """Operating system, names, setup state and clock skew."""
    os_raw = _section(raw, "os")
    build = _as_int(os_raw.get("build"))
    if build is None:
        parts = version_tuple(os_raw.get("version"))
        build = parts[2] if parts and len(parts) > 2 else None
    product_type = _as_int(os_raw.get("product_type"))
    dns_host_name = str(os_raw.get("dns_host_name") or os_raw.get("computer_name") or "")
    domain = str(os_raw.get("domain") or "")
    part_of_domain = bool(_as_bool(os_raw.get("part_of_domain")))
    host_time = parse_time(raw.get("host_time_utc"))
    machine_guid = os_raw.get("machine_guid") or registry.get(reg.CRYPTOGRAPHY, "MachineGuid")
    setup = _settings(raw, registry, "oobe_in_progress", "system_setup_in_progress")
    return {
        "caption": os_raw.get("caption"),
        "version": os_raw.get("version"),
        "build": build,
        "product_type": product_type,
        "role": reg.PRODUCT_TYPES.get(product_type, "unknown") if product_type is not None else "unknown",
        "computer_name": os_raw.get("computer_name"),
        "dns_host_name": dns_host_name or None,
        "domain": domain or None,
        "part_of_domain": part_of_domain,
        "fqdn": f"{dns_host_name}.{domain}".lower() if part_of_domain and dns_host_name and domain else (dns_host_name.lower() or None),
        "machine_guid": machine_guid,
        # Win32_TerminalServiceSetting.TerminalServerMode 1 = RD Session Host, 0 = remote administration.
        "rdsh_installed": bool(_as_bool(os_raw.get("rdsh_installed"))) or _as_int(_section(raw, "ts_setting").get("TerminalServerMode")) == 1,
        "host_time_utc": format_time(host_time),
        # Win32_OperatingSystem.LastBootUpTime: a restart is done when it changes (remediate_host's reboot opt-in).
        "last_boot_utc": format_time(parse_time(os_raw.get("last_boot_utc"))),
        "clock_skew_seconds": round((host_time - now).total_seconds(), 1) if host_time else None,
        "setup": {
            "oobe_in_progress": setup["oobe_in_progress"],
            "system_setup_in_progress": setup["system_setup_in_progress"],
            "in_progress": any(_effective_int(item) for item in setup.values()),
        },
    }


# ==================================================================================================
# Listener: enablement, port, services, sockets
# ==================================================================================================

def _services(raw: Raw) -> dict[str, dict[str, t.Any]]:
    """The RDP services by name; a service the host does not have is ``{"present": false}``, and every field is None
    when the services could not be read."""
    if is_section_error(raw.get("services")):
        return {name: {"present": None, "state": None, "start_mode": None, "pid": None, "account": None, "running": None,
                       "disabled": None} for name in reg.SERVICES}
    found = {str(s.get("name", "")).lower(): s for s in _as_list(raw.get("services")) if isinstance(s, dict)}
    result = {}
    for name in reg.SERVICES:
        item = found.get(name.lower())
        if item is None:
            result[name] = {"present": False, "state": None, "start_mode": None, "pid": None, "account": None,
                            "running": False, "disabled": False}
            continue
        state = str(item.get("state") or "")
        start_mode = str(item.get("start_mode") or "")
        result[name] = {
            "present": True, "state": state, "start_mode": start_mode, "pid": _as_int(item.get("pid")) or None,
            "account": item.get("account"), "running": state.lower() == "running",
            "disabled": start_mode.lower() == "disabled",
        }
    return result


def _sockets(raw: Raw, protocol: str, port: int | None, termservice_pid: int | None, services_read: bool = True) -> dict[str, t.Any]:
    """Who listens on the RDP port: TermService, another process, or nobody [S3][S4] MSRD #16 #17. Without the services
    TermService's process id is unknown: whose socket it is stays unknown (None), never "another process"."""
    listening = _section(raw, "listening")
    owners = []
    for sock in _as_list(listening.get(protocol)):
        if not isinstance(sock, dict) or _as_int(sock.get("port")) != port:
            continue
        pid = _as_int(sock.get("pid"))
        owners.append({"address": sock.get("address"), "port": port, "pid": pid, "process": sock.get("process"),
                       "termservice": (bool(termservice_pid) and pid == termservice_pid) if services_read else None})
    others = [o for o in owners if o["termservice"] is False]
    return {
        "port": port,
        "owners": owners,
        "listening": bool(owners),
        "termservice_listening": any(o["termservice"] for o in owners) if services_read else None,
        "other_owners": others,
    }


def _listener_facts(raw: Raw, registry: RegistryView) -> dict[str, t.Any]:
    """Enablement (fDenyTSConnections, fEnableWinStation), port, drain mode, services and sockets."""
    items = _settings(raw, registry, "deny_ts_connections", "enable_winstation", "port", "lan_adapter", "drain_mode")
    services = _services(raw)
    port = _effective_int(items["port"]) or reg.DEFAULT_PORT
    termservice_pid = services[reg.TERMSERVICE]["pid"] if services[reg.TERMSERVICE]["running"] else None
    listening = _section(raw, "listening")
    services_read = not is_section_error(raw.get("services"))
    return {
        **items,
        "sockets_read": isinstance(listening.get("tcp"), list),
        "services_read": services_read,
        "connections_allowed": _effective_int(items["deny_ts_connections"]) == 0,
        # None when the value could not be read: the listener is then neither "on" nor "off".
        "enabled": None if items["enable_winstation"]["source"] == "unknown" else _effective_int(items["enable_winstation"]) != 0,
        "effective_port": port,
        "port_known": items["port"]["source"] != "unknown",
        "services": services,
        "tcp": _sockets(raw, "tcp", port, termservice_pid, services_read),
        "udp": _sockets(raw, "udp", port, termservice_pid, services_read),
        **_listener_extra(raw, registry, items["port"]),
    }


# ==================================================================================================
# Security layer, NLA, encryption
# ==================================================================================================

def _security_facts(raw: Raw, registry: RegistryView) -> dict[str, t.Any]:
    """SecurityLayer, NLA, MinEncryptionLevel, FIPS, disabledomaincreds with their meanings [S6][S10][S20]."""
    items = _settings(raw, registry, "security_layer", "user_authentication", "min_encryption_level",
                      "fips_algorithm_policy", "disable_domain_creds")
    layer = _effective_int(items["security_layer"])
    level = _effective_int(items["min_encryption_level"])
    return {
        **items,
        "security_layer_name": reg.SECURITY_LAYERS.get(layer, "unknown") if layer is not None else "unknown",
        "nla_required": _effective_int(items["user_authentication"]) == 1,
        "min_encryption_level_name": reg.ENCRYPTION_LEVELS.get(level, "unknown") if level is not None else "unknown",
        "fips_enabled": bool(_effective_int(items["fips_algorithm_policy"])),
        "domain_creds_disabled": bool(_effective_int(items["disable_domain_creds"])),
    }


# ==================================================================================================
# Certificates
# ==================================================================================================

def _name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 match of one certificate name against a host name (x509_info's rule)."""
    return x509_info.dns_name_matches(pattern, name)


def expected_names(os_facts: dict[str, t.Any]) -> list[str]:
    """Names a client may use for the host: computer name, DNS host name and FQDN (lower case)."""
    names = []
    for value in (os_facts.get("fqdn"), os_facts.get("dns_host_name"), os_facts.get("computer_name")):
        if value and str(value).lower() not in names:
            names.append(str(value).lower())
    return names


def certificate_name_match(cert_names: list[str], host_names: list[str]) -> str | None:
    """The certificate name that matches the host, or None.

    A name matches when it equals a host name, or when its first label equals the host's first label
    (the DNS suffix a client appends is not knowable on the host; the renamed-host case is a different
    first label [S34]).
    """
    short_names = {h.split(".")[0] for h in host_names}
    for cert_name in cert_names:
        if any(_name_matches(cert_name, host) for host in host_names):
            return cert_name
        if not cert_name.startswith("*.") and cert_name.lower().split(".")[0] in short_names:
            return cert_name
    return None


def _describe_certificate(entry: dict[str, t.Any], store: str, now: dt.datetime, host_names: list[str]) -> dict[str, t.Any]:
    """One certificate from a store: identity, validity, EKU, name match and private key state."""
    thumbprint = normalize_thumbprint(entry.get("thumbprint"))
    result: dict[str, t.Any] = {
        "store": store, "thumbprint": thumbprint, "friendly_name": entry.get("friendly_name"),
        "has_private_key": bool(_as_bool(entry.get("has_private_key"))),
        "key_container": entry.get("key_container"), "key_file": entry.get("key_file"),
        "key_readable_by_network_service": _as_bool(entry.get("key_readable_by_network_service")),
        "key_readable_by_admin": _as_bool(entry.get("key_readable_by_admin")),
        "key_error": entry.get("key_error") or None,
        "self_signed_container": str(entry.get("key_container") or "").lower() == reg.SELF_SIGNED_KEY_CONTAINER.lower(),
        "parse_error": None,
    }
    empty = {"subject": None, "subject_cn": None, "issuer": None, "issuer_cn": None, "self_signed": None, "serial_number": None,
             "not_before": None, "not_after": None, "days_remaining": None, "expired": None, "not_yet_valid": None,
             "dns_names": [], "ekus": None, "eku_names": None, "eku_ok": None, "signature_hash": None,
             "public_key_type": None, "public_key_bits": None, "names": [], "name_match": None, "name_matches_host": None,
             "template": None}
    der = str(entry.get("der") or "")
    info = x509_info.analyze_certificate(der, server_name=None, now=now) if der else {"ok": False, "error": "no DER in the raw document"}
    if not info.get("ok"):
        result.update(empty, parse_error=info.get("error") or "unreadable certificate")
        return result
    # Windows matches the subject CN only when the certificate has no DNS SAN (x509_info.name_check).
    names = list(info["san_dns"]) or ([info["subject_cn"]] if info.get("subject_cn") else [])
    match = certificate_name_match(names, host_names)
    ekus = [item["oid"] for item in info["eku"]] if info["eku"] is not None else None
    not_after = parse_time(info["not_after"])
    remaining = (not_after - now).total_seconds() / 86400.0 if not_after else None
    result.update({
        "subject": info["subject"], "subject_cn": info["subject_cn"], "issuer": info["issuer"], "issuer_cn": info["issuer_cn"],
        "self_signed": info["self_signed"], "serial_number": info["serial"],
        "not_before": info["not_before"], "not_after": info["not_after"],
        "days_remaining": math.floor(remaining) if remaining is not None else None,
        "expired": info["validity"]["expired"], "not_yet_valid": info["validity"]["not_yet_valid"],
        "dns_names": list(info["san_dns"]), "ekus": ekus,
        "eku_names": [item["name"] for item in info["eku"]] if info["eku"] is not None else None,
        # No EKU extension = any purpose; otherwise Server Authentication or Remote Desktop Authentication [S27].
        "eku_ok": info["eku_ok_for_rdp"], "signature_hash": info["signature_hash"],
        "public_key_type": info["public_key"].get("type"), "public_key_bits": info["public_key"].get("bits"),
        "names": names, "name_match": match, "name_matches_host": match is not None if host_names else None,
        # The Microsoft template it was issued from (v1 name and/or v2 OID and versions), None without one.
        "template": info.get("template"),
    })
    if thumbprint and info["sha1_thumbprint"] != thumbprint:
        result["parse_error"] = f"the DER hashes to {info['sha1_thumbprint']}, not to the reported thumbprint"
    return result


def _store_entries(raw: Raw, now: dt.datetime, host_names: list[str]) -> dict[str, list[dict[str, t.Any]]]:
    """Every certificate of the Remote Desktop and My stores, described."""
    stores = _lower_map(raw.get("certificates"))
    return {store: [_describe_certificate(e, store, now, host_names) for e in _as_list(stores.get(store.lower())) if isinstance(e, dict)]
            for store in reg.CERT_STORES}


def _bound_thumbprint(raw: Raw, registry: RegistryView, stores: dict[str, list[dict[str, t.Any]]]) -> tuple[str | None, str]:
    """The thumbprint the listener uses and where it comes from [S1][S2][S6].

    RDP-Tcp ``SSLCertificateSHA1Hash`` (REG_BINARY) wins; WMI mirrors it; with neither, TermService
    uses the newest self-signed certificate of the Remote Desktop store.
    """
    from_registry = normalize_thumbprint(registry.get(reg.RDP_TCP, "SSLCertificateSHA1Hash"))
    if from_registry:
        return from_registry, "registry"
    general = _section(raw, "ts_general_setting")
    from_wmi = normalize_thumbprint(general.get("SSLCertificateSHA1Hash"))
    if from_wmi:
        return from_wmi, "wmi"
    if not registry.readable(reg.RDP_TCP):
        return None, "unknown"  # the binding is in a key the host could not read
    self_signed = [e for e in stores[reg.STORE_REMOTE_DESKTOP] if e["self_signed_container"]]
    if self_signed:
        newest = max(self_signed, key=lambda e: e.get("not_after") or "")
        return newest["thumbprint"], "self_signed_store"
    return None, "none"


def _usable(entry: dict[str, t.Any]) -> bool:
    """A certificate the listener could use as it is: valid now, right EKU, private key readable."""
    return bool(entry.get("has_private_key") and entry.get("expired") is False and entry.get("not_yet_valid") is False
                and entry.get("eku_ok") and entry.get("key_readable_by_network_service") is not False
                and not entry.get("key_error"))


def _certificate_facts(raw: Raw, registry: RegistryView, os_facts: dict[str, t.Any], now: dt.datetime) -> dict[str, t.Any]:
    """The listener certificate and the candidates to replace it."""
    host_names = expected_names(os_facts)
    stores = _store_entries(raw, now, host_names)
    thumbprint, source = _bound_thumbprint(raw, registry, stores)
    bound = next((e for store in reg.CERT_STORES for e in stores[store] if thumbprint and e["thumbprint"] == thumbprint), None)
    general = _section(raw, "ts_general_setting")
    hash_type = _as_int(general.get("SSLCertificateSHA1HashType"))
    items = _settings(raw, registry, "ssl_certificate_sha1_hash", "self_signed_cert_store", "cert_template_name")
    items["ssl_certificate_sha1_hash"] = {**items["ssl_certificate_sha1_hash"],
                                          "effective": normalize_thumbprint(items["ssl_certificate_sha1_hash"]["effective"]),
                                          "local": normalize_thumbprint(items["ssl_certificate_sha1_hash"]["local"])}
    candidates = [e["thumbprint"] for e in stores[reg.STORE_MY]
                  if e["thumbprint"] != thumbprint and _usable(e) and e.get("name_matches_host")]
    return {
        **items,
        "bound_thumbprint": thumbprint,
        "bound_source": source,
        "wmi_thumbprint": normalize_thumbprint(general.get("SSLCertificateSHA1Hash")),
        "hash_type": hash_type,
        "hash_type_name": reg.CERT_HASH_TYPES.get(hash_type) if hash_type is not None else None,
        "stores_read": isinstance(raw.get("certificates"), dict) and not is_section_error(raw.get("certificates")),
        "bound_known": source != "unknown",
        "found": bound is not None,
        "bound": bound,
        "usable": bool(bound and _usable(bound)),
        "expected_names": host_names,
        "stores": stores,
        "candidates": candidates,
    }


# ==================================================================================================
# CredSSP [S7][S8][S9]
# ==================================================================================================

def credssp_required_version(build: int | None) -> str | None:
    """First tspkg.dll version with the CVE-2018-0886 fix for an OS build; None when unknown or built in."""
    if build is None:
        return None
    return reg.CREDSSP_FIXED_TSPKG.get(build)


def credssp_patched(build: int | None, tspkg_version: str | None) -> bool | None:
    """Whether the host has the CredSSP fix: True, False, or None when it cannot be told."""
    if build is not None and build >= reg.CREDSSP_FIXED_FROM_BUILD:
        return True
    required = version_tuple(credssp_required_version(build))
    actual = version_tuple(tspkg_version)
    if required is None or actual is None:
        return None
    return actual >= required


def _credssp_facts(raw: Raw, registry: RegistryView, build: int | None) -> dict[str, t.Any]:
    """AllowEncryptionOracle (effective, with its meaning) and the patch state."""
    item = setting(raw, registry, reg.SETTINGS["allow_encryption_oracle"])
    value = _as_int(item["effective"])
    tspkg = raw.get("tspkg_version")
    return {
        "allow_encryption_oracle": item,
        "allow_encryption_oracle_name": reg.ENCRYPTION_ORACLE.get(value, "unknown") if value is not None else "unknown",
        "tspkg_version": tspkg,
        "required_tspkg_version": credssp_required_version(build),
        "fixed_in_release": build is not None and build >= reg.CREDSSP_FIXED_FROM_BUILD,
        "patched": credssp_patched(build, tspkg),
    }


# ==================================================================================================
# Schannel [S18]
# ==================================================================================================

def schannel_state(enabled: t.Any, disabled_by_default: t.Any, os_default: bool) -> str:
    """'enabled', 'disabled' or 'disabled_by_default' from the two values and the OS default [S18].

    Enabled=0 disables; Enabled!=0 with DisabledByDefault!=0 is off unless an application asks for
    it (the listener does not); absent values take the OS default.
    """
    enabled_value = _as_int(enabled)
    dbd_value = _as_int(disabled_by_default)
    is_enabled = os_default if enabled_value is None else enabled_value != 0
    is_dbd = (not os_default) if dbd_value is None else dbd_value != 0
    if not is_enabled:
        return "disabled"
    return "disabled_by_default" if is_dbd else "enabled"


def _schannel_side(registry: RegistryView, protocol: str, side: str, os_default: bool) -> dict[str, t.Any]:
    """One protocol/side: raw values, state and whether the registry or the OS default decided."""
    path = reg.schannel_key(protocol, side)
    enabled = registry.get(path, "Enabled")
    dbd = registry.get(path, "DisabledByDefault")
    if not registry.readable(path):
        return {"enabled_value": None, "disabled_by_default_value": None, "os_default": os_default, "state": "unknown",
                "enabled": None, "source": "unknown"}
    state = schannel_state(enabled, dbd, os_default)
    return {"enabled_value": enabled, "disabled_by_default_value": dbd, "os_default": os_default, "state": state,
            "enabled": state == "enabled", "source": "registry" if enabled is not None or dbd is not None else "default"}


def _schannel_facts(registry: RegistryView, build: int | None, product_type: int | None) -> dict[str, t.Any]:
    """Per protocol and side; which protocols the listener (Server side) can use."""
    protocols = {
        protocol: {side.lower(): _schannel_side(registry, protocol, side, reg.schannel_default_enabled(protocol, build, product_type))
                   for side in reg.SCHANNEL_SIDES}
        for protocol in reg.SCHANNEL_PROTOCOLS
    }
    server_enabled = [p for p in reg.SCHANNEL_PROTOCOLS if protocols[p]["server"]["enabled"]]
    unknown = [p for p in reg.SCHANNEL_PROTOCOLS if protocols[p]["server"]["state"] == "unknown"]
    any_tls = any(p.startswith("TLS") for p in server_enabled)
    return {
        "protocols": protocols,
        "server_enabled": server_enabled,
        "server_unknown": unknown,
        "tls12_server_enabled": None if "TLS 1.2" in unknown else "TLS 1.2" in server_enabled,
        "any_tls_server_enabled": True if any_tls else (None if any(p.startswith("TLS") for p in unknown) else False),
        "legacy_server_enabled_explicitly": [p for p in reg.LEGACY_PROTOCOLS
                                             if protocols[p]["server"]["enabled"] and protocols[p]["server"]["source"] == "registry"],
    }


# ==================================================================================================
# Firewall [S13][S37]
# ==================================================================================================

def port_in_spec(port: int, specs: list[t.Any]) -> bool:
    """Whether a rule's LocalPort list covers ``port`` (single ports, ``a-b`` ranges, ``Any``/empty)."""
    if not specs:
        return True
    for spec in specs:
        text = str(spec).strip()
        if text.lower() in ("any", "*"):
            return True
        low, _dash, high = text.partition("-")
        if low.strip().isdigit() and (high.strip().isdigit() or not high):
            if int(low) <= port <= int(high or low):
                return True
    return False


def _protocol_matches(rule_protocol: t.Any, protocol: str) -> bool:
    """TCP is 6 and UDP 17 in Get-NetFirewallPortFilter; Any matches both."""
    text = str(rule_protocol or "Any").strip().lower()
    numbers = {"tcp": "6", "udp": "17"}
    return text in ("any", protocol.lower(), numbers[protocol.lower()])


def _rule(item: dict[str, t.Any]) -> dict[str, t.Any]:
    """A firewall rule with types normalised."""
    profiles = [str(p) for p in _as_list(item.get("profiles"))] or ["Any"]
    return {
        "name": item.get("name"), "display_name": item.get("display_name"), "group": item.get("group"),
        "enabled": bool(_as_bool(item.get("enabled"))), "direction": str(item.get("direction") or "Inbound"),
        "action": str(item.get("action") or "Allow"), "profiles": profiles, "protocol": str(item.get("protocol") or "Any"),
        "local_ports": [str(p) for p in _as_list(item.get("local_ports"))],
        "policy_store_source": item.get("policy_store_source"),
        "program": item.get("program"),
        "service": item.get("service"),
        "remote_addresses": [str(a) for a in _as_list(item.get("remote_addresses"))] or ["Any"],
        "rdp_group": str(item.get("group") or "").lower() == reg.FIREWALL_RDP_GROUP.lower()
        or str(item.get("name") or "") in reg.FIREWALL_RDP_RULES,
    }


def _applies(rule: dict[str, t.Any], profile: str) -> bool:
    """Whether a rule is active in a profile."""
    return any(p.lower() in ("any", "all", profile.lower()) for p in rule["profiles"])


def _admits_termservice(rule: dict[str, t.Any]) -> bool:
    """Whether an allow rule lets any client reach the listener (TermService, in svchost.exe) [S13].

    The Shadow rule admits only RdpSa.exe [S34]; a rule limited to another program or another service does not open
    the listener's port even when it lists every port, and a rule limited to some remote addresses does not open it
    for a client from anywhere (``address_limited`` in the coverage says which rules would admit some clients).
    """
    return _admits_termservice_program(rule) and _remote_any(rule)


def _admits_termservice_program(rule: dict[str, t.Any]) -> bool:
    """The application and service filters admit TermService."""
    if rule["name"] == reg.FIREWALL_RULE_SHADOW:
        return False
    program = str(rule.get("program") or "any").strip().lower()
    service = str(rule.get("service") or "any").strip().lower()
    return ((program in ("any", "") or program.endswith("\\svchost.exe") or program == "svchost.exe")
            and service in ("any", "", reg.TERMSERVICE.lower()))


def _remote_any(rule: dict[str, t.Any]) -> bool:
    """The address filter admits every remote address."""
    return [str(a).strip().lower() for a in rule.get("remote_addresses") or ["Any"]] in (["any"], ["*"])


def _covering(rules: list[dict[str, t.Any]], protocol: str, port: int, action: str) -> list[dict[str, t.Any]]:
    """Enabled inbound rules with this action that cover protocol/port for the listener."""
    return [r for r in rules if r["enabled"] and r["direction"].lower() == "inbound" and r["action"].lower() == action
            and _protocol_matches(r["protocol"], protocol) and port_in_spec(port, r["local_ports"])
            and (action == "block" or _admits_termservice(r))]


def _port_coverage(rules: list[dict[str, t.Any]], profiles: list[dict[str, t.Any]], protocol: str, port: int,
                   gpo_blocked: list[str]) -> dict[str, t.Any]:
    """Per firewall profile: is ``protocol``/``port`` let in? A block rule wins over allow rules."""
    allow = _covering(rules, protocol, port, "allow")
    block = _covering(rules, protocol, port, "block")
    limited = [r for r in rules if r["enabled"] and r["direction"].lower() == "inbound" and r["action"].lower() == "allow"
               and _protocol_matches(r["protocol"], protocol) and port_in_spec(port, r["local_ports"])
               and _admits_termservice_program(r) and not _remote_any(r)]
    per_profile = {}
    for profile in profiles:
        name = profile["name"]
        allow_names = [r["name"] for r in allow if _applies(r, name)]
        block_names = [r["name"] for r in block if _applies(r, name)]
        default_allows = profile["default_inbound_action"].lower() == "allow"
        gpo = name in gpo_blocked
        by_rules = not profile["enabled"] or (not block_names and (bool(allow_names) or default_allows))
        allowed = not profile["enabled"] or (bool(allow_names) or default_allows)
        per_profile[name] = {"enabled": profile["enabled"], "open": by_rules and (not gpo or not profile["enabled"]),
                             "allowed_by_rules": allowed, "allow_rules": allow_names, "block_rules": block_names,
                             "gpo_blocked": gpo}
    values = list(per_profile.values())
    return {
        "protocol": protocol, "port": port, "profiles": per_profile,
        "open_in_any_profile": any(p["open"] for p in values) if values else None,
        "open_in_all_profiles": all(p["open"] for p in values) if values else None,
        "allowed_by_rules_in_any_profile": any(p["allowed_by_rules"] for p in values) if values else None,
        # A firewall with every profile off blocks nothing, whatever its rules say.
        "blocked_by_rule_in_all_profiles": (any(p["enabled"] for p in values) and all(p["block_rules"] for p in values if p["enabled"]))
        if values else None,
        "allow_rules": [r["name"] for r in allow], "block_rules": [r["name"] for r in block],
        "address_limited_rules": [{"name": r["name"], "remote_addresses": r["remote_addresses"]} for r in limited],
    }


def _firewall_gpo(registry: RegistryView) -> dict[str, dict[str, t.Any]]:
    """"Allow inbound Remote Desktop exceptions" per GPO profile key [S37]."""
    result = {}
    for name, path in reg.FW_GPO_KEYS.items():
        enabled = _as_int(registry.get(path, "Enabled"))
        result[name] = {"key_present": registry.exists(path) if registry.readable(path) else None, "enabled": enabled,
                        "remote_addresses": registry.get(path, "RemoteAddresses"),
                        "blocks": enabled == 0, "profiles": list(reg.FW_GPO_PROFILES[name])}
    return result


def _firewall_facts(raw: Raw, registry: RegistryView, port: int) -> dict[str, t.Any]:
    """Rules of the Remote Desktop group, per-profile coverage of the listener port, GPO exception state."""
    firewall = _section(raw, "firewall")
    read = not is_section_error(raw.get("firewall")) and isinstance(firewall.get("profiles"), list)
    rules = [_rule(r) for r in _as_list(firewall.get("rules")) if isinstance(r, dict)]
    profiles = [{"name": str(p.get("name")), "enabled": bool(_as_bool(p.get("enabled"))),
                 "default_inbound_action": str(p.get("default_inbound_action") or "Block")}
                for p in _as_list(firewall.get("profiles")) if isinstance(p, dict)]
    gpo = _firewall_gpo(registry)
    gpo_blocked = sorted({profile for item in gpo.values() if item["blocks"] for profile in item["profiles"]})
    rdp_rules = [r for r in rules if r["rdp_group"]]
    rdp_tcp = [r for r in rdp_rules if r["direction"].lower() == "inbound" and r["action"].lower() == "allow"
               and _protocol_matches(r["protocol"], "tcp") and r["protocol"].lower() != "any" and r["name"] != reg.FIREWALL_RULE_SHADOW]
    return {
        "read": read,
        "rdp_group": reg.FIREWALL_RDP_GROUP,
        "rules": rules,
        "profiles": profiles,
        "rdp_rules": [r["name"] for r in rdp_rules],
        "rdp_rules_enabled": [r["name"] for r in rdp_rules if r["enabled"]],
        "rdp_rules_disabled": [r["name"] for r in rdp_rules if not r["enabled"]],
        "rdp_tcp_rules": [{"name": r["name"], "enabled": r["enabled"], "local_ports": r["local_ports"],
                           "covers_port": port_in_spec(port, r["local_ports"]), "policy_store_source": r["policy_store_source"]}
                          for r in rdp_tcp],
        "gpo": gpo,
        "gpo_blocked_profiles": gpo_blocked,
        "tcp": _port_coverage(rules, profiles, "tcp", port, gpo_blocked),
        "udp": _port_coverage(rules, profiles, "udp", port, gpo_blocked),
    }


# ==================================================================================================
# Sessions and limits [S10][S15]
# ==================================================================================================

def _session(item: dict[str, t.Any], now: dt.datetime) -> dict[str, t.Any]:
    """A session with its ages in seconds."""
    logon = parse_time(item.get("logon_time"))
    disconnect = parse_time(item.get("disconnect_time"))
    state = str(item.get("state") or "")
    disconnected = None
    if state.lower() == "disconnected":
        disconnected = int((now - disconnect).total_seconds()) if disconnect else _as_int(item.get("disconnected_seconds"))
    return {
        "id": _as_int(item.get("id")), "station": item.get("station"), "user": item.get("user"), "state": state,
        "logon_time": format_time(logon), "disconnect_time": format_time(disconnect),
        "idle_seconds": _as_int(item.get("idle_seconds")),
        "age_seconds": int((now - logon).total_seconds()) if logon else None,
        "disconnected_seconds": disconnected,
    }


def _session_facts(raw: Raw, registry: RegistryView, rdsh_installed: bool, now: dt.datetime) -> dict[str, t.Any]:
    """Session limits (effective + source) and the user sessions with their ages."""
    items = _settings(raw, registry, "max_instance_count", "single_session_per_user", "max_idle_time", "max_connection_time",
                      "max_disconnection_time", "reset_broken")
    items.update(_inherited_time_limits(raw, registry, items))
    sessions_read = not is_section_error(raw.get("sessions"))
    sessions = [_session(s, now) for s in _as_list(raw.get("sessions")) if isinstance(s, dict)] if sessions_read else []
    # Session 0 (services) and the listener (65536, state Listen) are not user sessions.
    user_sessions = [s for s in sessions if s["user"] and s["id"] not in (0, 65536) and s["state"].lower() != "listen"]
    active = [s for s in user_sessions if s["state"].lower() in ("active", "connected")]
    disconnected = [s for s in user_sessions if s["state"].lower() == "disconnected"]
    instance_limit = _effective_int(items["max_instance_count"])
    if items["max_instance_count"]["source"] == "policy" and instance_limit == reg.POLICY_UNLIMITED_INSTANCES:
        instance_limit = None  # policy 999999 = unlimited [S10]
    return {
        **items,
        "sessions_read": sessions_read,
        "sessions": sessions,
        "active_count": len(active),
        "disconnected_count": len(disconnected),
        "admin_mode": not rdsh_installed,
        # Remote Desktop for Administration allows two concurrent sessions [S10].
        "admin_mode_limit": None if rdsh_installed else reg.ADMIN_MODE_SESSION_LIMIT,
        "instance_limit": instance_limit,
    }


def _licensing_facts(raw: Raw, registry: RegistryView, rdsh_installed: bool) -> dict[str, t.Any]:
    """RDSH licensing: mode, license servers, grace period [S16][S39]; the servers and mode set without Group Policy and
    what Windows says of each server (issue 12, see _licensing_extra)."""
    ts = _section(raw, "ts_setting")
    items = _settings(raw, registry, "licensing_mode", "license_servers")
    servers = [s for s in re.split(r"[,;\s]+", " ".join(str(v) for v in _as_list(items["license_servers"]["effective"]))) if s]
    licensing_type = _as_int(ts.get("LicensingType"))
    extra = _licensing_extra(raw, registry, servers)
    return {
        **items,
        "rdsh_installed": rdsh_installed,
        "licensing_type": licensing_type,
        "licensing_type_name": reg.LICENSING_TYPES.get(licensing_type) if licensing_type is not None else None,
        "grace_period_days": _as_int(ts.get("GracePeriodDays")),
        **extra,
    }


# ==================================================================================================
# MachineKeys [S2][S5][S26]
# ==================================================================================================

_ACE = re.compile(r"\(([^)]*)\)")
_RIGHTS = {"FA": 0x1F01FF, "GA": 0x10000000, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0, "GR": 0x80000000,
           "GW": 0x40000000, "GX": 0x20000000}
_TRUSTEES = {"WD": reg.SID_EVERYONE, "BA": reg.SID_ADMINISTRATORS, "SY": "S-1-5-18", "NS": reg.SID_NETWORK_SERVICE,
             "BU": reg.SID_USERS, "AU": reg.SID_AUTHENTICATED_USERS, "CO": "S-1-3-0", "OW": "S-1-3-4"}


def _mask(rights: str) -> int:
    """Access mask of an SDDL rights string (hex or two-letter codes)."""
    if rights.lower().startswith("0x"):
        try:
            return int(rights, 16)
        except ValueError:
            return 0
    mask = 0
    for index in range(0, len(rights) - 1, 2):
        mask |= _RIGHTS.get(rights[index:index + 2].upper(), 0)
    return mask


def parse_dacl(sddl: t.Any) -> list[dict[str, t.Any]]:
    """The ACEs of an SDDL string's DACL: type, flags, mask and trustee SID."""
    if not sddl:
        return []
    text = str(sddl)
    dacl = text[text.find("D:"):] if "D:" in text else text
    dacl = dacl.split("S:", 1)[0]
    aces = []
    for ace in _ACE.findall(dacl):
        parts = ace.split(";")
        if len(parts) < 6:
            continue
        trustee = parts[5].upper() if len(parts[5]) == 2 else parts[5]
        aces.append({"type": parts[0], "flags": parts[1], "rights": parts[2], "mask": _mask(parts[2]),
                     "sid": _TRUSTEES.get(trustee, parts[5])})
    return aces


def _grants(aces: list[dict[str, t.Any]], sids: t.Iterable[str], mask: int) -> bool:
    """Whether allow ACEs for any of ``sids`` give every bit of ``mask`` (deny ACEs are ignored)."""
    wanted = set(sids)
    granted = 0
    for ace in aces:
        if ace["type"].upper() == "A" and ace["sid"] in wanted:
            granted |= ace["mask"]
    if granted & _RIGHTS["GA"]:  # GENERIC_ALL maps to every file right
        granted |= _RIGHTS["FA"]
    return granted & mask == mask


def _machinekeys_facts(raw: Raw, machine_guid: t.Any) -> dict[str, t.Any]:
    """MachineKeys folder ACL against KB278381 and the self-signed listener's key file."""
    mk = _section(raw, "machinekeys")
    sddl = mk.get("sddl")
    aces = parse_dacl(sddl)
    everyone_ok = _grants(aces, (reg.SID_EVERYONE,), reg.MACHINEKEYS_EVERYONE_MASK)
    admins_ok = _grants(aces, (reg.SID_ADMINISTRATORS,), 0x1F01FF)
    key_file = mk.get("listener_key_file") if isinstance(mk.get("listener_key_file"), dict) else None
    expected = reg.listener_key_file_name(str(machine_guid)) if machine_guid else None
    listener = None
    if key_file is not None or expected:
        key_file = key_file or {}
        size = _as_int(key_file.get("size"))
        listener = {
            "name": key_file.get("name") or expected, "expected_name": expected,
            "exists": _as_bool(key_file.get("exists")), "sddl": key_file.get("sddl"), "size": size,
            "readable": _as_bool(key_file.get("readable")),
            "empty": size == 0 if size is not None else None,
            "network_service_read": _grants(parse_dacl(key_file.get("sddl")), (reg.SID_NETWORK_SERVICE, reg.SID_EVERYONE), 0x120089)
            if key_file.get("sddl") else None,
        }
    exists = _as_bool(mk.get("exists"))
    return {
        "path": mk.get("path") or reg.MACHINEKEYS_PATH,
        "exists": exists,
        "sddl": sddl,
        "default_sddl": reg.MACHINEKEYS_DEFAULT_SDDL,
        "is_default": bool(sddl) and str(sddl).upper() == reg.MACHINEKEYS_DEFAULT_SDDL.upper(),
        "aces": aces,
        "everyone_access_ok": everyone_ok if sddl else None,
        "administrators_full": admins_ok if sddl else None,
        "acl_ok": (everyone_ok and admins_ok) if sddl else None,
        "listener_key_file": listener,
    }


# ==================================================================================================
# Accounts [S23][S24]
# ==================================================================================================

def _sid_list(values: t.Any) -> list[str]:
    """SIDs of a user-right list; secedit writes ``*S-1-...``."""
    return [str(v).lstrip("*") for v in _as_list(values) if v]


def _is_local_account(name: str, computer_name: t.Any) -> bool:
    """A name without a domain part, ``.\\x`` or ``COMPUTER\\x`` is a local account."""
    if "\\" not in name:
        return "@" not in name
    prefix = name.split("\\", 1)[0].lower()
    return prefix in (".", str(computer_name or "").lower())


def _account(item: dict[str, t.Any], rights: dict[str, list[str]], computer_name: t.Any) -> dict[str, t.Any]:
    """One checked account with its effective right to log on through Remote Desktop Services.

    The user needs the group and the right [S23]: SeRemoteInteractiveLogonRight through its own SID or
    one of its groups (including the implicit Everyone / Authenticated Users / Local account ones), and
    no SeDenyRemoteInteractiveLogonRight through any of them (deny wins).
    """
    name = str(item.get("name") or "")
    sid = item.get("sid")
    groups = [str(g) for g in _as_list(item.get("groups")) if g]
    local = _is_local_account(name, computer_name)
    identity = {s for s in [sid, *groups, reg.SID_EVERYONE, reg.SID_AUTHENTICATED_USERS] if s}
    if local:
        identity.add(reg.SID_LOCAL_ACCOUNT)
        if reg.SID_ADMINISTRATORS in groups:
            identity.add(reg.SID_LOCAL_ADMIN_ACCOUNT)
    allowed_by = sorted(identity & set(rights.get(reg.RIGHT_ALLOW_RDP, [])))
    denied_by = sorted(identity & set(rights.get(reg.RIGHT_DENY_RDP, [])))
    exists = _as_bool(item.get("exists"))
    # A domain account's Disabled/Lockout are not read (no second hop): None = unknown, not "enabled".
    disabled = _as_bool(item.get("disabled")) if item.get("disabled") is not None or not local else False
    locked = _as_bool(item.get("locked_out")) if item.get("locked_out") is not None or not local else False
    groups_complete = _as_bool(item.get("groups_complete")) is not False
    error = item.get("error") or None
    in_rdu = reg.SID_REMOTE_DESKTOP_USERS in groups
    in_admins = reg.SID_ADMINISTRATORS in groups
    can_logon: bool | None = bool(exists) and not disabled and not locked and bool(allowed_by) and not denied_by
    if error is not None or exists is None or (exists and not allowed_by and not denied_by and not groups_complete):
        can_logon = None  # the lookup failed, or a domain group may grant the right: not evaluated, never "cannot"
    return {
        "name": name, "exists": exists, "sid": sid, "local": local, "disabled": disabled, "locked_out": locked,
        "groups": groups, "groups_complete": groups_complete, "in_remote_desktop_users": in_rdu, "in_administrators": in_admins,
        "allowed_by": allowed_by, "denied_by": denied_by, "error": error,
        "can_logon_remotely": can_logon,
    }


def _account_facts(raw: Raw, expected_accounts: list[str], computer_name: t.Any) -> dict[str, t.Any]:
    """Remote Desktop Users members, the two logon rights, and each requested account."""
    accounts = _section(raw, "accounts")
    rights_raw = accounts.get("rights") if isinstance(accounts.get("rights"), dict) else {}
    rights = {reg.RIGHT_ALLOW_RDP: _sid_list(rights_raw.get(reg.RIGHT_ALLOW_RDP)),
              reg.RIGHT_DENY_RDP: _sid_list(rights_raw.get(reg.RIGHT_DENY_RDP))}
    checked = [_account(a, rights, computer_name) for a in _as_list(accounts.get("checked")) if isinstance(a, dict)]
    reported = {c["name"].lower() for c in checked} | {c["name"].split("\\")[-1].lower() for c in checked}
    # the same names build_params sends to the host: a blank entry (rdp_doctor_accounts: "" is [""]) is no account
    expected_accounts = [str(name) for name in expected_accounts if str(name).strip()]
    missing = [name for name in expected_accounts if name.lower() not in reported and name.split("\\")[-1].lower() not in reported]
    return {
        "expected": list(expected_accounts),
        "remote_desktop_users": [{"sid": m.get("sid"), "name": m.get("name")}
                                 for m in _as_list(accounts.get("remote_desktop_users")) if isinstance(m, dict)],
        "rights": rights,
        "rights_named": {right: [reg.WELL_KNOWN_SIDS.get(s, s) for s in sids] for right, sids in rights.items()},
        "checked": checked,
        "not_reported": missing,
    }


# ==================================================================================================
# Events
# ==================================================================================================

def _provider_matches(provider: str, wanted: str) -> bool:
    """Case-insensitive provider match that tolerates the short forms some tools log."""
    provider, wanted = provider.lower(), wanted.lower()
    return provider == wanted or provider.endswith(wanted.split("-")[-1]) or wanted.endswith(provider)


def event_meaning(provider: str, event_id: int | None) -> str | None:
    """What an event means for RDP, when it is one rdp.doctor knows."""
    for (known_provider, known_id), meaning in reg.EVENT_MEANINGS.items():
        if known_id == event_id and _provider_matches(provider, known_provider):
            return meaning
    if "licensing" in provider.lower():
        return "RDS licensing problem"
    return None


def _event_facts(raw: Raw) -> dict[str, t.Any]:
    """Event groups (one per log/provider/id) with counts, last time, samples and meaning."""
    groups = []
    for item in _as_list(raw.get("events")):
        if not isinstance(item, dict) or "ids" in item:
            continue  # a query that could not be counted is a read error, not a group
        provider = str(item.get("provider") or "")
        event_id = _as_int(item.get("id"))
        groups.append({
            "log": item.get("log"), "provider": provider, "id": event_id, "count": _as_int(item.get("count")) or 0,
            "last": format_time(parse_time(item.get("last"))),
            "samples": [{"time": format_time(parse_time(s.get("time"))), "message": s.get("message")}
                        for s in _as_list(item.get("samples")) if isinstance(s, dict)],
            "meaning": event_meaning(provider, event_id),
            "error": item.get("error") or None,
        })
    groups.sort(key=lambda g: (g["last"] or ""), reverse=True)
    return {"groups": groups, "total": sum(g["count"] for g in groups)}


# ==================================================================================================
# Listener state, protocol stack, inherited time limits, licensing without GPO (issue 12, part A)
# ==================================================================================================

#: Listener time limits and the RDP-Tcp fInherit* value that decides whether Windows uses them (MSRD #50).
INHERITED_LIMITS = {"max_connection_time": "inherit_max_connection_time", "max_disconnection_time": "inherit_max_disconnection_time",
                    "max_idle_time": "inherit_max_idle_time", "reset_broken": "inherit_reset_broken"}


def _inherited_time_limits(raw: Raw, registry: RegistryView, items: dict[str, dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    """The time limits as Windows applies them, with their ``inherit_*`` settings.

    With RDP-Tcp fInheritMax*=1 (the default) Windows ignores RDP-Tcp's own Max*Time and applies each user's setting
    (the account's Sessions tab, "never" unless set): the limit is then ``source: "user"``, ``effective: None`` (rdp.doctor
    does not read per-user settings) and ``ignored_local`` keeps the RDP-Tcp value that has no effect. A policy value
    wins over both [S10]. An unreadable fInherit* leaves the limit unknown.
    """
    out: dict[str, dict[str, t.Any]] = {}
    for name, inherit_name in INHERITED_LIMITS.items():
        inherit = setting(raw, registry, reg.SETTINGS[inherit_name])
        out[inherit_name] = inherit
        item = items[name]
        if item["source"] in ("policy", "unknown"):
            continue
        if inherit["source"] == "unknown":
            out[name] = dict(item, effective=None, source="unknown")
        elif _effective_int(inherit) != 0:
            out[name] = dict(item, effective=None, source="user", ignored_local=item["local"])
    return out


def _wts_listener_state(raw: Raw) -> str | None:
    """The RDP-Tcp listener's WTS state (Listen, Down...) as WTSEnumerateSessions lists it; "absent" when Windows lists no
    RDP-Tcp station (no listener), None when the sessions could not be read [S4] MSRD #19."""
    if is_section_error(raw.get("sessions")) or not isinstance(raw.get("sessions"), list):
        return None
    for item in raw["sessions"]:
        if isinstance(item, dict) and not item.get("user") and str(item.get("station") or "").lower() == "rdp-tcp":
            return str(item.get("state") or "")
    return "absent"


def _listener_extra(raw: Raw, registry: RegistryView, port: dict[str, t.Any]) -> dict[str, t.Any]:
    """WTS listener state, the protocol stack TermService loads for RDP-Tcp, whether PortNumber exists (MSRD #3 #7 #19)."""
    stack = _settings(raw, registry, "loadable_protocol_object", "citrix_backup_protocol_object")
    clsid = stack["loadable_protocol_object"]["local"]
    backup = stack["citrix_backup_protocol_object"]["local"]
    rdp_tcp_read = registry.readable(reg.RDP_TCP) and registry.exists(reg.RDP_TCP)
    foreign = None
    if rdp_tcp_read:
        foreign = (clsid is not None and str(clsid).lower() not in reg.MICROSOFT_PROTOCOL_OBJECTS) or backup is not None
    return {
        "wts_state": _wts_listener_state(raw),
        "protocol_stack": {**stack, "microsoft": None if not rdp_tcp_read else not foreign, "foreign": foreign},
        # PortNumber absent from a readable RDP-Tcp: Windows has no value to listen on (MSRD #3, SDP RC_RDSPort).
        "port_missing": rdp_tcp_read and port["local"] is None,
    }


def _rd_licensing(raw: Raw) -> dict[str, t.Any]:
    """The rd_licensing section ({} when absent, null or a section error)."""
    return _section(raw, "rd_licensing")


def _licensing_extra(raw: Raw, registry: RegistryView, policy_servers: list[str]) -> dict[str, t.Any]:
    """License servers from every source, what Windows says of each, the licensing mode set without GPO and the RCM
    licensing certificates (MSRD #51-#53).

    Group Policy (LicenseServers) is one way to name a license server; Server Manager, Set-RDLicenseConfiguration and WMI
    SetSpecifiedLicenseServerList write SpecifiedLicenseServers instead (ms: troubleshoot cannot-connect-rds-no-license-server),
    which WMI's GetSpecifiedLicenseServerList returns. ``license_server_list`` joins them (policy first).
    """
    lic = _rd_licensing(raw)
    specified_setting = setting(raw, registry, reg.SETTINGS["specified_license_servers"])
    wmi_list = lic.get("specified_license_servers")
    wmi_servers = [str(s) for s in _as_list(wmi_list) if s] if not is_section_error(wmi_list) else []
    registry_servers = [str(s) for s in _as_list(specified_setting["local"]) if s]
    servers = list(policy_servers)
    for name in wmi_servers + registry_servers:
        if name.lower() not in (s.lower() for s in servers):
            servers.append(name)
    status = []
    connectivity = lic.get("connectivity")
    for item in _as_list(connectivity) if not is_section_error(connectivity) else []:
        if not isinstance(item, dict):
            continue
        code = _as_int(item.get("status"))
        usable = None if code is None else (True if code in reg.LS_CONNECTIVITY_USABLE else
                                            False if code in reg.LS_CONNECTIVITY_UNUSABLE else None)
        status.append({"server": item.get("server"), "status": code, "status_name": reg.LS_CONNECTIVITY.get(code) if code is not None
                       else None, "usable": usable, "error": item.get("error") or None})
    x509 = lic.get("x509_certificates")
    x509_known = isinstance(x509, dict) and not is_section_error(x509)
    return {
        "specified_license_servers": {**specified_setting, "wmi": wmi_servers if not is_section_error(wmi_list) else None},
        "rcm_licensing_mode": setting(raw, registry, reg.SETTINGS["rcm_licensing_mode"]),
        "license_server_list": servers,
        "license_servers_configured": bool(servers),
        "license_server_status": status,
        "license_server_usable": any(s["usable"] for s in status) if status else None,
        # RCM X509 Certificate (+ ID, 2): value sizes in bytes, None when absent (MSRD #52).
        "x509_certificates": {name: _as_int(x509.get(name)) for name in reg.RCM_X509_VALUES} if x509_known else None,
        "x509_certificate_present": bool(_as_int(x509.get(reg.RCM_X509_VALUES[0]))) if x509_known else None,
    }


def _cert_store_acl_facts(raw: Raw) -> dict[str, t.Any]:
    """Deny ACEs for SYSTEM or NETWORK SERVICE on the Remote Desktop store's and RCM's keys (MSRD #38); ``read`` false and
    ``denied`` null when the section could not be read."""
    section = raw.get("cert_store_acls")
    if not isinstance(section, dict) or is_section_error(section):
        return {"read": False, "keys": {}, "denied": None}
    keys = {}
    for name, path in reg.CERT_STORE_ACL_KEYS.items():
        sddl = section.get(name)
        deny = [{"sid": ace["sid"], "rights": ace["rights"], "flags": ace["flags"]} for ace in parse_dacl(sddl)
                if ace["type"] == "D" and ace["sid"] in (reg.SID_SYSTEM, reg.SID_NETWORK_SERVICE)]
        keys[name] = {"path": path, "sddl": sddl, "deny_aces": deny}
    return {"read": True, "keys": keys, "denied": any(k["deny_aces"] for k in keys.values())}


def _ephemeral_port_facts(raw: Raw) -> dict[str, t.Any]:
    """The TCP dynamic port ranges (Get-NetTCPSetting) and the narrowest one (MSRD #22); ``read`` false when not read."""
    section = raw.get("ephemeral_ports")
    if not isinstance(section, list):
        return {"read": False, "ranges": [], "count": None, "start": None}
    ranges = [{"setting": r.get("setting"), "start": _as_int(r.get("start")), "count": _as_int(r.get("count"))}
              for r in section if isinstance(r, dict) and _as_int(r.get("count")) is not None]
    narrowest = min(ranges, key=lambda r: r["count"]) if ranges else None
    return {"read": True, "ranges": ranges, "count": narrowest["count"] if narrowest else None,
            "start": narrowest["start"] if narrowest else None}


# ==================================================================================================
# Entry point
# ==================================================================================================

def normalize(raw: dict[str, t.Any], now: dt.datetime, expected_accounts: list[str] | None = None) -> dict[str, t.Any]:
    """The versioned facts (``ansible_facts.rdp_doctor``) for a raw ``read_rdp_state`` document.

    ``now`` is the controller's time (timezone-aware; naive is taken as UTC): certificate validity and
    session ages are judged on it, as a client judges them. ``expected_accounts`` are the accounts the
    user asked to check.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"read_rdp_state answered a {type(raw).__name__}, expected an object")
    now = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
    registry = RegistryView(raw.get("registry"))
    os_facts = _os_facts(raw, registry, now)
    listener = _listener_facts(raw, registry)
    schannel = _schannel_facts(registry, os_facts["build"], os_facts["product_type"])
    accounts = _account_facts(raw, list(expected_accounts or []), os_facts["computer_name"])
    return {
        "facts_version": FACTS_VERSION,
        "raw_schema": raw.get("schema"),
        "collected_at": format_time(now),
        "read_errors": read_errors(raw),  # what could not be read: the facts built from it say "unknown" (None)
        "os": os_facts,
        "listener": listener,
        "security": _security_facts(raw, registry),
        "certificate": _certificate_facts(raw, registry, os_facts, now),
        "credssp": _credssp_facts(raw, registry, os_facts["build"]),
        "schannel": schannel,
        "firewall": _firewall_facts(raw, registry, listener["effective_port"]),
        "session_limits": _session_facts(raw, registry, os_facts["rdsh_installed"], now),
        "licensing": _licensing_facts(raw, registry, os_facts["rdsh_installed"]),
        "machinekeys": _machinekeys_facts(raw, os_facts["machine_guid"]),
        "certificate_store_acls": _cert_store_acl_facts(raw),
        "ephemeral_ports": _ephemeral_port_facts(raw),
        "winrm": {"listeners": [w for w in _as_list(raw.get("winrm_listeners")) if isinstance(w, dict) and set(w) != {"error"}]},
        "accounts": accounts,
        "events": _event_facts(raw),
        # issue 12 part B: cipher suites, listener ACL, logon rights by group, secure channel, logon services, NTLM, connections
        **security_facts.security_facts(raw, registry, os_facts, schannel, accounts),
    }
