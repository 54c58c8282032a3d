"""How a host's RDP listener behaves, computed from the model the way Windows would (contracts section 9).

Pure: ``listener_behaviour(host, now)`` reads the model and returns a frozen ``ListenerBehaviour``. The
lab RDP listener calls it on every new connection, so changing the model changes the answers at once.

A host that does not accept is either refused (RST: nothing listens, or the firewall blocks and the host's
``firewall_blocks`` is "refuse", the lab's default) or ``filtered`` (only the firewall blocks and
``firewall_blocks`` is "drop": the SYN is dropped, as Windows Defender Firewall does, and the client times out).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from tests.lab import certs  # first: it makes the collection importable when the lab runs from the repository
from ansible_collections.rdp.doctor.plugins.module_utils.rdp_registry import MODERN_CLIENT_SUITES  # Windows' suite table
from tests.lab.model import (
    DEFAULT_DENY_TS_CONNECTIONS, DEFAULT_SECURITY_LAYER, DEFAULT_USER_AUTHENTICATION, FW_GPO_DOMAIN, FW_GPO_STANDARD,
    MACHINEKEYS_PATH, RDP_TCP, SCHANNEL_PROTOCOL_NAMES, TERMSERVICE, TS, CertEntry, FirewallRule, Host, effective, listener_port,
    machinekeys_acl_ok, port_owner, schannel_key, version_tuple,
)
from tests.lab.model import listener_is_down, protocol_stack_loads

# Schannel registry protocol name -> the name the RDP listener / Python ssl uses.
TLS_NAMES = {"TLS 1.0": "TLSv1", "TLS 1.1": "TLSv1.1", "TLS 1.2": "TLSv1.2", "TLS 1.3": "TLSv1.3"}


@dataclass(frozen=True)
class ListenerBehaviour:  # pylint: disable=too-many-instance-attributes  # mirrors contracts section 9
    """What the listener does for the next connection (contracts section 9)."""

    listening: bool
    refuse_reason: str
    port: int
    security_layer: int
    nla_required: bool
    certificate_pem: bytes | None
    private_key_pem: bytes | None
    tls_versions: frozenset[str]
    netbios_name: str
    dns_name: str
    domain: str
    dns_domain: str
    os_version: tuple[int, int, int]
    clock_offset_seconds: float
    # With listening False: True when only the firewall blocks the port and the host's ``firewall_blocks``
    # is "drop" -> the client's SYN is dropped (timeout) instead of refused (RST).
    filtered: bool = False
    # True when the cipher-suite policy / SCHANNEL algorithm keys leave no suite a modern client offers: the
    # credential builds, every handshake ends with a fatal alert (Schannel 36874) (issue 12 part B).
    no_common_cipher: bool = False


def schannel_enabled(host: Host, protocol: str, side: str = "Server") -> bool:
    """Is a Schannel protocol on for new credentials? [S18]

    Enabled=0 -> off; DisabledByDefault!=0 -> off for callers that take the defaults (TermService);
    Enabled!=0 -> on; otherwise the OS default. TLS 1.3 exists only where the OS implements it.
    """
    if protocol == "TLS 1.3" and not host.release.tls13_supported:
        return False
    path = schannel_key(protocol, side)
    # Schannel reads its protocol keys at boot (new credential handles; a reboot per [S3]): the values since boot count.
    enabled = host.boot_value(path, "Enabled")
    disabled_by_default = host.boot_value(path, "DisabledByDefault")
    if enabled == 0:
        return False
    if isinstance(disabled_by_default, int) and disabled_by_default != 0:
        return False
    if isinstance(enabled, int):
        return True
    return bool(host.release.tls_defaults.get(protocol, False))


def tls_versions(host: Host) -> frozenset[str]:
    """TLS versions the listener can negotiate (Server side keys); SSL 3.0 is never offered by the lab."""
    return frozenset(TLS_NAMES[p] for p in SCHANNEL_PROTOCOL_NAMES if p in TLS_NAMES and schannel_enabled(host, p))


# Cipher suites (issue 12 part B): the suite list Schannel uses, the SCHANNEL algorithm keys that remove suites, and the
# suites a modern client offers (the same table as rdp_registry.MODERN_CLIENT_SUITES: Windows' constants, not a decision).
CIPHER_POLICY = "HKLM:\\SOFTWARE\\Policies\\Microsoft\\Cryptography\\Configuration\\SSL\\00010002"
CIPHER_LOCAL = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Cryptography\\Configuration\\Local\\SSL\\00010002"
SCHANNEL_ROOT = "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL"


def _suite_list(value: object) -> set[str] | None:
    """Suite names of a Functions value (REG_SZ comma list or REG_MULTI_SZ), curve suffixes dropped; None when unset."""
    if value in (None, "", []):
        return None
    parts = value if isinstance(value, list) else str(value).split(",")
    return {str(p).strip().upper().removesuffix("_P256").removesuffix("_P384").removesuffix("_P521") for p in parts if str(p).strip()}


def modern_suites(host: Host) -> list[str]:
    """Suites a modern client offers that the listener negotiates, as Schannel reads its settings at boot [S18]."""
    configured = _suite_list(host.boot_value(CIPHER_POLICY, "Functions"))
    if configured is None:
        configured = _suite_list(host.boot_value(CIPHER_LOCAL, "Functions"))
    protocols = {p for p in SCHANNEL_PROTOCOL_NAMES if schannel_enabled(host, p)}
    usable = []
    for suite in MODERN_CLIENT_SUITES:
        if configured is not None and suite.name not in configured:
            continue
        if not protocols & set(suite.protocols):
            continue
        keys = [("Ciphers", suite.cipher), ("Hashes", suite.hash)] + ([] if "TLS 1.3" in suite.protocols else [("KeyExchangeAlgorithms", suite.key_exchange)])
        if any(host.boot_value(f"{SCHANNEL_ROOT}\\{kind}\\{name}", "Enabled") == 0 for kind, name in keys):
            continue
        usable.append(suite.name)
    return usable


def listener_entry(host: Host) -> CertEntry | None:
    """The certificate TermService uses: SSLCertificateSHA1Hash in My or Remote Desktop [S1 S2].

    With no hash configured Windows falls back to the self-signed certificate; a hash naming a
    certificate in no store leaves the listener without a certificate.
    """
    bound = host.bound_thumbprint()
    if bound is None:
        return host.self_signed_entry()
    found = host.find_cert(bound)
    return found[1] if found else None


def usable_key_pem(host: Host, entry: CertEntry) -> bytes | None:
    """The private key PEM if NETWORK SERVICE can use it, else None (-> SSL_CERT_NOT_ON_SERVER) [S1 S2 S5]."""
    if entry.key is None or not entry.has_private_key or not entry.key_readable_by_network_service:
        return None
    if entry.key_file is not None:
        keys = host.machinekeys
        # a legacy-CSP key lives in MachineKeys: folder gone, folder ACL broken or file missing -> unusable
        if keys.path != MACHINEKEYS_PATH or not keys.exists or not machinekeys_acl_ok(keys.sddl):
            return None
        if entry.key_file not in keys.files:
            return None
    return certs.key_pem(entry.key)


def refuse_reason(host: Host) -> str:
    """Why no connection gets through, or "" (Windows checks, then the firewall) [S4 S13 S26 S37]."""
    return not_listening_reason(host) or firewall_block_reason(host, listener_port(host))


def not_listening_reason(host: Host) -> str:
    """Why TermService has no socket on the RDP port, or "": a client gets a RST whatever the firewall says [S4 S26]."""
    deny, source = effective(host, "fDenyTSConnections", TS, DEFAULT_DENY_TS_CONNECTIONS)
    if deny:
        return f"remote connections denied (fDenyTSConnections=1, {source})"
    if host.registry.get(RDP_TCP, "fEnableWinStation", 1) == 0:
        return "RDP-Tcp listener disabled (fEnableWinStation=0)"
    service = host.services.get(TERMSERVICE)
    if service is None or service.state != "Running":
        return f"TermService not running ({service.state if service else 'missing'}, {service.start_mode if service else '-'})"
    port = listener_port(host)
    owner = port_owner(host, port)
    if owner is not None:
        return f"port {port} owned by {owner.process} (pid {owner.pid})"
    if listener_is_down(host):  # qwinsta: rdp-tcp Down (issue 12)
        why = "its protocol stack (LoadableProtocol_Object) cannot load" if not protocol_stack_loads(host) else "it failed to start"
        return f"RDP-Tcp listener Down: {why}"
    return ""


def admits_termservice(rule: FirewallRule) -> bool:
    """Whether an allow rule lets a client reach the listener: TermService runs in svchost.exe, and a rule limited to
    another program, another service or some remote addresses does not admit a client from anywhere [S13]."""
    program = rule.program.lower()
    return ((program == "any" or program.endswith("\\svchost.exe")) and rule.service.lower() in ("any", "termservice")
            and [a.lower() for a in rule.remote_addresses] == ["any"])


def firewall_block_reason(host: Host, port: int) -> str:
    """Why the firewall drops inbound TCP to ``port`` in the active profile, or ""."""
    profile = host.active_profile
    fw_profile = next((p for p in host.firewall_profiles if p.name.lower() == profile.lower()), None)
    if fw_profile is not None and not fw_profile.enabled:
        return ""
    gpo_key = FW_GPO_DOMAIN if profile == "Domain" else FW_GPO_STANDARD
    if host.registry.get(gpo_key, "Enabled") == 0:
        # ADMX: Disabled -> RDP blocked, local port exceptions not honoured [S37]
        return f"GPO 'Allow inbound Remote Desktop exceptions' disabled ({profile} profile)"
    inbound = [r for r in host.firewall_rules
               if r.enabled and r.direction == "Inbound" and r.protocol.upper() == "TCP" and r.applies_to(profile) and r.covers_port(port)]
    if any(r.action == "Block" for r in inbound):
        return f"an enabled inbound block rule covers TCP {port}"
    if any(r.action == "Allow" and admits_termservice(r) for r in inbound):
        return ""
    if fw_profile is not None and fw_profile.default_inbound_action == "Allow":
        return ""
    return f"no enabled inbound firewall rule allows TCP {port} ({profile} profile)"


def listener_behaviour(host: Host, now: dt.datetime) -> ListenerBehaviour:  # pylint: disable=unused-argument
    """Compute the listener's behaviour for a connection arriving at ``now``.

    ``now`` is part of the contract so time-dependent behaviour (e.g. expiry-driven regeneration) can be
    added without changing callers; the served certificate is returned even when expired, as Windows does.
    """
    port = listener_port(host)  # a PortNumber change takes effect when TermService restarts [S4][S14]
    not_listening = not_listening_reason(host)
    blocked = "" if not_listening else firewall_block_reason(host, port)
    # a path fault: the host accepts, a device between client and host rejects the connection (RST, whatever firewall_blocks says)
    path = "path fault: a device between client and host rejects the connection" \
        if not not_listening and not blocked and "path_blocked" in host.path_faults else ""
    security_layer = effective(host, "SecurityLayer", default=DEFAULT_SECURITY_LAYER)[0]
    nla = effective(host, "UserAuthentication", default=DEFAULT_USER_AUTHENTICATION)[0]
    entry = listener_entry(host)
    workgroup = not host.os.part_of_domain
    build = version_tuple(host.os.version)
    return ListenerBehaviour(
        listening=not (not_listening or blocked or path),
        refuse_reason=not_listening or blocked or path,
        port=port,
        security_layer=int(security_layer) if isinstance(security_layer, int) else DEFAULT_SECURITY_LAYER,
        nla_required=nla == 1,
        certificate_pem=entry.pem if entry else None,
        private_key_pem=usable_key_pem(host, entry) if entry else None,
        tls_versions=tls_versions(host),
        netbios_name=host.os.computer_name,
        dns_name=host.os.fqdn,
        # NTLM target info of a workgroup server names the computer itself as its domain
        domain=host.os.computer_name if workgroup else host.os.netbios_domain,
        dns_domain=host.os.dns_host_name if workgroup else host.os.domain,
        os_version=(build[0], build[1], build[2]),
        clock_offset_seconds=float(host.clock_offset_seconds),
        # only a firewall-only block can be a drop: with nothing listening the lab answers RST (contracts section 9)
        filtered=bool(blocked) and host.firewall_blocks == "drop",
        no_common_cipher=bool(tls_versions(host)) and not modern_suites(host),
    )
