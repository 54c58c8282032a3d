# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Facts about what TLS and a logon need on the host (issue 12 part B), from the raw ``read_rdp_state`` document.

Pure functions called by ``host_facts.normalize``; the findings rules (``findings.py``) only read what they return.
Each part is *unknown* (``read: False``, verdicts None) when the host could not read what it rests on, never healthy:

* ``tls_cipher_suites``: the suites a modern client offers (mstsc on Windows 10/11, FreeRDP 2/3) that this listener
  can still negotiate after the cipher-suite policy (or the local list) and the SCHANNEL Ciphers / Hashes /
  KeyExchangeAlgorithms keys (MSRD #42);
* ``listener_acl``: the RDP-Tcp ACL (Win32_TSAccount): which groups may log on and connect through it (MSRD #31);
* ``logon_rights``: the group-level "Allow / Deny log on through Remote Desktop Services" rights (MSRD #30);
* ``domain``: the secure channel of a domain member (MSRD #32);
* ``logon_services``: LSM, Netlogon, BFE, MpsSvc (MSRD #21 #45);
* ``ntlm``: LmCompatibilityLevel and the MSV1_0 NTLM restrictions NLA's NTLM step meets (MSRD #29);
* ``connections``: the host's record of clients reaching the listener (RCM 261 / 1149, RdpCoreTS 131 / 140).
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg

Raw = t.Dict[str, t.Any]


def _is_error(value: t.Any) -> bool:
    """A section error ``{"error": ...}`` (host_facts.is_section_error, repeated to keep this module standalone)."""
    return isinstance(value, dict) and set(value) == {"error"}


def _int(value: t.Any) -> int | None:
    """An int from an int or a numeric string; None otherwise."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _list(value: t.Any) -> list[t.Any]:
    """A list from a list, one value (PowerShell unrolls one-element arrays) or None."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


# ==================================================================================================
# TLS cipher suites (MSRD #42)
# ==================================================================================================

def suite_names(value: t.Any) -> list[str]:
    """Cipher suite names from a Functions value: REG_SZ comma-separated (policy) or REG_MULTI_SZ (local); the curve
    suffix of Windows 8.1 / 2012 R2 names (``_P256``) is dropped."""
    items: list[str] = []
    for part in _list(value):
        items.extend(str(part).split(","))
    names = []
    for item in items:
        name = item.strip().upper()
        for suffix in reg.CIPHER_SUITE_CURVE_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        if name and name not in names:
            names.append(name)
    return names


def disabled_algorithms(section: t.Any) -> dict[str, list[str]]:
    """SCHANNEL algorithm subkeys with Enabled=0, per kind (ms: tls-registry-settings: 0 disables, 0xffffffff enables)."""
    disabled: dict[str, list[str]] = {}
    for kind in reg.SCHANNEL_ALGORITHM_KINDS:
        algorithms = section.get(kind) if isinstance(section, dict) else None
        names = []
        for name, values in (algorithms or {}).items():
            lowered = {str(k).lower(): v for k, v in (values or {}).items()} if isinstance(values, dict) else {}
            if _int(lowered.get("enabled")) == 0:
                names.append(str(name))
        disabled[kind] = sorted(names, key=str.lower)
    return disabled


def _suite_blocker(suite: reg.CipherSuite, disabled: dict[str, list[str]], server_protocols: list[str]) -> str | None:
    """Why the listener cannot negotiate ``suite``, or None when it can."""
    lowered = {kind: {n.lower() for n in names} for kind, names in disabled.items()}
    if not any(p in server_protocols for p in suite.protocols):
        return f"needs {' or '.join(suite.protocols)}, disabled for servers"
    if suite.cipher.lower() in lowered.get("Ciphers", set()):
        return f"SCHANNEL\\Ciphers\\{suite.cipher} Enabled=0"
    if suite.hash.lower() in lowered.get("Hashes", set()):
        return f"SCHANNEL\\Hashes\\{suite.hash} Enabled=0"
    if "TLS 1.3" not in suite.protocols and suite.key_exchange.lower() in lowered.get("KeyExchangeAlgorithms", set()):
        return f"SCHANNEL\\KeyExchangeAlgorithms\\{suite.key_exchange} Enabled=0"
    return None


def cipher_suite_facts(raw: Raw, registry: t.Any, schannel: dict[str, t.Any]) -> dict[str, t.Any]:
    """Which modern-client suites the listener can still negotiate, and what removed the others.

    The suite list is the policy's Functions when set (it wins), else the local Functions, else the OS default
    (which holds every suite of ``MODERN_CLIENT_SUITES`` on the Windows releases the collection supports).
    """
    algorithms = raw.get("schannel_algorithms")
    readable = (registry.readable(reg.CIPHER_SUITE_POLICY) and registry.readable(reg.CIPHER_SUITE_LOCAL)
                and isinstance(algorithms, dict) and not _is_error(algorithms) and not schannel.get("server_unknown"))
    policy = registry.get(reg.CIPHER_SUITE_POLICY, "Functions")
    local = registry.get(reg.CIPHER_SUITE_LOCAL, "Functions")
    if policy not in (None, "", []):
        source, configured, key = "policy", suite_names(policy), reg.CIPHER_SUITE_POLICY
    elif local not in (None, "", []):
        source, configured, key = "local", suite_names(local), reg.CIPHER_SUITE_LOCAL
    else:
        source, configured, key = "default", None, None
    disabled = disabled_algorithms(algorithms if isinstance(algorithms, dict) else {})
    server_protocols = list(schannel.get("server_enabled") or [])
    unusable: dict[str, str] = {}
    usable: list[str] = []
    for suite in reg.MODERN_CLIENT_SUITES:
        blocker = "not in the configured suite list" if configured is not None and suite.name not in configured else \
            _suite_blocker(suite, disabled, server_protocols)
        if blocker:
            unusable[suite.name] = blocker
        else:
            usable.append(suite.name)
    return {
        "read": bool(readable),
        "source": source if readable else "unknown",
        "key": key,
        "configured": configured,
        "disabled_algorithms": disabled,
        "usable_modern_suites": usable if readable else None,
        "unusable_modern_suites": unusable if readable else None,
        "modern_client_compatible": bool(usable) if readable else None,
    }


# ==================================================================================================
# Listener ACL (MSRD #31) and group-level logon rights (MSRD #30)
# ==================================================================================================

def _can_logon(mask: int) -> bool:
    """A Win32_TSAccount mask that holds both WINSTATION_LOGON and WINSTATION_CONNECT (ms: termserv/win32-tsaccount)."""
    return mask & reg.WINSTATION_LOGON == reg.WINSTATION_LOGON and mask & reg.WINSTATION_CONNECT == reg.WINSTATION_CONNECT


def listener_acl_facts(raw: Raw) -> dict[str, t.Any]:
    """Which groups the RDP-Tcp ACL lets log on and connect, which it denies; ``ok`` False when Administrators or Remote
    Desktop Users cannot get through it (and no broad group lets everybody in)."""
    section = raw.get("listener_acl")
    if not isinstance(section, list):
        # None: no RDP-Tcp in WMI (an edition without an RDP server), read but nothing to judge; else not read
        absent = section is None and "listener_acl" in raw
        return {"read": absent, "present": False if absent else None, "entries": [], "logon_allowed": [], "logon_denied": [],
                "groups_without_logon": [], "groups_without_logon_named": [], "ok": None}
    entries = []
    for item in section:
        if not isinstance(item, dict):
            continue
        allowed, denied = _int(item.get("allowed")) or 0, _int(item.get("denied")) or 0
        entries.append({"sid": str(item.get("sid") or ""), "account": item.get("account"), "allowed": allowed, "denied": denied,
                        "logon_allowed": _can_logon(allowed),
                        "logon_denied": bool(denied & (reg.WINSTATION_LOGON | reg.WINSTATION_CONNECT))})
    allowed_sids = {e["sid"] for e in entries if e["logon_allowed"]}
    denied_sids = {e["sid"] for e in entries if e["logon_denied"]}
    broad_denied = [s for s in reg.BROAD_GROUP_SIDS if s in denied_sids]
    broad_allowed = any(s in allowed_sids for s in reg.BROAD_GROUP_SIDS)
    without = [s for s in reg.RDP_GROUP_SIDS if s in denied_sids or (s not in allowed_sids and not broad_allowed)]
    without.extend(broad_denied)
    return {"read": True, "present": True, "entries": entries,
            "logon_allowed": sorted(allowed_sids - denied_sids), "logon_denied": sorted(denied_sids),
            "groups_without_logon": without,
            "groups_without_logon_named": [reg.WELL_KNOWN_SIDS.get(s, s) for s in without],
            "ok": not without}


def logon_right_facts(accounts: dict[str, t.Any], accounts_read: bool, domain_controller: bool) -> dict[str, t.Any]:
    """The group level of "Allow / Deny log on through Remote Desktop Services" [S23]: Remote Desktop Users and
    Administrators allowed (or a broad group), none of them nor a broad group denied. On a domain controller only
    Administrators hold the allow right by default [S23], so a missing Remote Desktop Users is not judged there."""
    if not accounts_read:
        return {"read": False, "groups_not_allowed": [], "groups_denied": [], "ok": None}
    rights = accounts.get("rights") or {}
    allow = set(rights.get(reg.RIGHT_ALLOW_RDP) or [])
    deny = set(rights.get(reg.RIGHT_DENY_RDP) or [])
    broad_allowed = any(s in allow for s in reg.BROAD_GROUP_SIDS)
    wanted = (reg.SID_ADMINISTRATORS,) if domain_controller else reg.RDP_GROUP_SIDS
    not_allowed = [s for s in wanted if s not in allow and not broad_allowed]
    denied = [s for s in reg.RDP_GROUP_SIDS + reg.BROAD_GROUP_SIDS if s in deny]
    return {"read": True, "groups_not_allowed": not_allowed, "groups_denied": denied,
            "groups_not_allowed_named": [reg.WELL_KNOWN_SIDS.get(s, s) for s in not_allowed],
            "groups_denied_named": [reg.WELL_KNOWN_SIDS.get(s, s) for s in denied],
            "local_accounts_denied": reg.SID_LOCAL_ACCOUNT in deny or reg.SID_LOCAL_ADMIN_ACCOUNT in deny,
            "ok": not not_allowed and not denied}


# ==================================================================================================
# Domain secure channel (MSRD #32), logon services (MSRD #21 #45), NTLM (MSRD #29)
# ==================================================================================================

def domain_facts(raw: Raw) -> dict[str, t.Any]:
    """The secure channel a domain member needs for NLA with domain accounts."""
    section = raw.get("secure_channel")
    if not isinstance(section, dict) or _is_error(section):
        return {"read": False, "member": None, "domain": None, "secure_channel_ok": None}
    checked = bool(section.get("checked"))
    ok = section.get("ok")
    return {"read": True, "member": checked, "domain": section.get("domain"),
            "secure_channel_ok": (bool(ok) if ok is not None else None) if checked else None}


def logon_service_facts(raw: Raw) -> dict[str, t.Any]:
    """LSM, Netlogon, BFE, MpsSvc: present, state, start mode, running (None for each when the section failed)."""
    section = raw.get("logon_services")
    read = isinstance(section, list)
    found = {str(s.get("name", "")).lower(): s for s in (section if read else []) if isinstance(s, dict)}
    services: dict[str, t.Any] = {}
    for name in reg.LOGON_SERVICES:
        item = found.get(name.lower())
        if not read:
            services[name] = {"present": None, "state": None, "start_mode": None, "running": None}
        elif item is None:
            services[name] = {"present": False, "state": None, "start_mode": None, "running": False}
        else:
            state = str(item.get("state") or "")
            services[name] = {"present": True, "state": state, "start_mode": item.get("start_mode"), "running": state.lower() == "running"}
    return {"read": read, "services": services}


def ntlm_facts(registry: t.Any) -> dict[str, t.Any]:
    """LmCompatibilityLevel and the MSV1_0 NTLM restrictions (absent = the OS default: NTLM allowed)."""
    readable = registry.readable(reg.LSA) and registry.readable(reg.MSV1_0)
    level = _int(registry.get(reg.LSA, "LmCompatibilityLevel"))
    receiving = _int(registry.get(reg.MSV1_0, "RestrictReceivingNTLMTraffic"))
    sending = _int(registry.get(reg.MSV1_0, "RestrictSendingNTLMTraffic"))
    effective_receiving = receiving if receiving is not None else 0
    return {
        "read": readable,
        "lm_compatibility_level": (level if level is not None else reg.LM_COMPATIBILITY_DEFAULT) if readable else None,
        "lm_compatibility_level_source": ("local" if level is not None else "default") if readable else "unknown",
        "restrict_receiving": effective_receiving if readable else None,
        "restrict_receiving_meaning": reg.NTLM_INCOMING.get(effective_receiving) if readable else None,
        "restrict_sending": sending,
        "ntlm_min_server_sec": _int(registry.get(reg.MSV1_0, "NtlmMinServerSec")),
        "incoming_denied": (None if effective_receiving == 0 else
                            "all accounts" if effective_receiving == reg.NTLM_INCOMING_DENY_ALL else "domain accounts") if readable else None,
        "key": reg.MSV1_0,
    }


# ==================================================================================================
# Connections: the host's proof that clients reach the listener (RCM 261 / 1149, RdpCoreTS 131 / 140)
# ==================================================================================================

_CONNECTION_EVENTS = {
    "received": (reg.LOG_RCM_OPERATIONAL, reg.EVENT_RCM_CONNECTION_RECEIVED),
    "authenticated": (reg.LOG_RCM_OPERATIONAL, reg.EVENT_RCM_AUTHENTICATED),
    "tcp_accepted": (reg.LOG_RDPCORETS_OPERATIONAL, reg.EVENT_RDPCORETS_TCP_ACCEPTED),
    "bad_credentials": (reg.LOG_RDPCORETS_OPERATIONAL, reg.EVENT_RDPCORETS_BAD_CREDENTIALS),
}


def connection_facts(raw: Raw) -> dict[str, t.Any]:
    """Counts and last times of the connection events over the event window; ``clients_reached_listener`` True when any
    client reached the listener (261 or 131), None when those logs could not be read."""
    events = raw.get("events")
    items = [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []
    logs = {reg.LOG_RCM_OPERATIONAL.lower(), reg.LOG_RDPCORETS_OPERATIONAL.lower()}
    failed = _is_error(events) or not isinstance(events, list) or any(
        "ids" in e and e.get("error") and str(e.get("log", "")).lower() in logs for e in items)
    counts: dict[str, t.Any] = {}
    for name, (log, event_id) in _CONNECTION_EVENTS.items():
        groups = [e for e in items if "ids" not in e and str(e.get("log", "")).lower() == log.lower() and _int(e.get("id")) == event_id]
        counts[name] = sum(_int(g.get("count")) or 0 for g in groups)
        counts[f"last_{name}"] = max((str(g["last"]) for g in groups if g.get("last")), default=None)
    reached = counts["received"] > 0 or counts["tcp_accepted"] > 0
    return dict(counts, read=not failed, clients_reached_listener=None if failed else reached,
                clients_authenticated=None if failed else counts["authenticated"] > 0)


def security_facts(raw: Raw, registry: t.Any, os_facts: dict[str, t.Any], schannel: dict[str, t.Any],
                   accounts: dict[str, t.Any]) -> dict[str, t.Any]:
    """Every part above, keyed as ``host_facts.normalize`` publishes them."""
    return {
        "tls_cipher_suites": cipher_suite_facts(raw, registry, schannel),
        "listener_acl": listener_acl_facts(raw),
        "logon_rights": logon_right_facts(accounts, not _is_error(raw.get("accounts")) and isinstance(raw.get("accounts"), dict),
                                          os_facts.get("product_type") == 2),
        "domain": domain_facts(raw),
        "logon_services": logon_service_facts(raw),
        "ntlm": ntlm_facts(registry),
        "connections": connection_facts(raw),
    }
