# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Findings: why RDP to a host fails (or will), from its facts and, when given, the probe's view.

``evaluate(facts, probe=None)`` is pure. Each rule reads the versioned facts built by
``host_facts.normalize`` and returns findings (docs/dev/contracts.md section 5); the probe joins add
the client's evidence to the host's (section 6). Every id is documented in ``docs/findings.md``.

Group Policy precedence: when the bad effective value comes from policy, the finding says so in its
evidence, its fix is manual (the domain GPO must change; a local write would be reverted) and an
``RDP-GPO-OVERRIDE`` finding lists every setting a policy forces.
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils.host_facts import parse_time

Finding = t.Dict[str, t.Any]
Facts = t.Dict[str, t.Any]

SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def severity_rank(severity: t.Any) -> int:
    """0 for critical ... 4 for info; an unknown severity ranks after info."""
    return _SEVERITY_RANK.get(str(severity), len(SEVERITIES))


class Entry(t.NamedTuple):
    """A catalogue entry: what does not change from one host to the next."""

    title: str
    severity: str
    category: str
    explains_0x904: bool


#: Every finding id this module can produce (docs/findings.md has one section per id).
CATALOGUE: dict[str, Entry] = {
    # enablement / listener
    "RDP-CONNECTIONS-DENIED": Entry("Remote Desktop connections are not allowed (fDenyTSConnections=1)", "critical", "listener", True),
    "RDP-LISTENER-DISABLED": Entry("The RDP-Tcp listener is disabled (fEnableWinStation=0)", "critical", "listener", True),
    "RDP-SERVICE-STOPPED": Entry("Remote Desktop Services (TermService) is not running", "critical", "listener", True),
    "RDP-SERVICE-DISABLED": Entry("Remote Desktop Services (TermService) is disabled", "critical", "listener", True),
    "RDP-SERVICE-ACCOUNT": Entry("TermService does not run as NETWORK SERVICE", "high", "listener", True),
    "RDP-SUPPORT-SERVICE-DISABLED": Entry("A Remote Desktop support service is disabled", "medium", "listener", False),
    "RDP-PORT-CONFLICT": Entry("Another process owns the RDP port", "critical", "listener", True),
    "RDP-NOT-LISTENING": Entry("Nothing listens on the RDP port although TermService runs", "critical", "listener", True),
    "RDP-UDP-PORT-CONFLICT": Entry("Another process owns the RDP UDP port", "low", "listener", False),
    "RDP-LAN-ADAPTER": Entry("The listener is bound to one network adapter (LanAdapter)", "medium", "listener", True),
    "RDP-PORT-NON-DEFAULT": Entry("The listener uses a non-default port", "info", "listener", False),
    "RDP-DRAIN-MODE": Entry("New logons are drained (TSServerDrainMode)", "high", "listener", True),
    "RDP-SETUP-IN-PROGRESS": Entry("Windows setup / OOBE is still in progress", "high", "listener", True),
    # network path
    "RDP-FIREWALL-RULES-DISABLED": Entry("The Remote Desktop firewall rules are disabled", "critical", "network", True),
    "RDP-PORT-NOT-ALLOWED": Entry("No firewall rule allows the RDP port", "critical", "network", True),
    "RDP-FIREWALL-BLOCK-RULE": Entry("A firewall rule blocks the RDP port", "critical", "network", True),
    "RDP-FIREWALL-GPO-BLOCKS": Entry("Group Policy disables the inbound Remote Desktop exception", "critical", "network", True),
    "RDP-PATH-BLOCKED": Entry("The RDP port is unreachable from the client although the host allows it", "high", "network", True),
    "RDP-DNS-MISMATCH": Entry("The host name resolves to another address than the host's", "high", "network", True),
    # certificate / keys
    "RDP-CERT-MISSING": Entry("The bound listener certificate does not exist", "critical", "certificate", True),
    "RDP-CERT-NO-PRIVATE-KEY": Entry("The listener certificate has no private key", "critical", "certificate", True),
    "RDP-CERT-EXPIRED": Entry("The listener certificate has expired", "critical", "certificate", True),
    "RDP-CERT-NOT-YET-VALID": Entry("The listener certificate is not valid yet", "high", "certificate", True),
    "RDP-CERT-EXPIRING-SOON": Entry("The listener certificate expires soon", "medium", "certificate", False),
    "RDP-CERT-NAME-MISMATCH": Entry("The listener certificate is issued for another name", "high", "certificate", True),
    "RDP-CERT-WRONG-EKU": Entry("The listener certificate is not for server authentication", "high", "certificate", True),
    "RDP-CERT-KEY-UNREADABLE": Entry("NETWORK SERVICE cannot read the listener certificate's private key", "critical", "certificate", True),
    "RDP-LISTENER-KEY-BROKEN": Entry("The self-signed listener key file in MachineKeys is missing or empty", "critical", "certificate", True),
    "RDP-MACHINEKEYS-ACL": Entry("The MachineKeys folder permissions are broken", "high", "certificate", True),
    "RDP-PATH-CERT-MISMATCH": Entry("The client receives another certificate than the host's listener certificate", "high", "network", True),
    # CredSSP / security layer / TLS
    "RDP-CREDSSP-UNPATCHED": Entry("The host lacks the CredSSP (CVE-2018-0886) update", "high", "credssp", True),
    "RDP-CREDSSP-FORCE-UPDATED": Entry("CredSSP accepts only updated clients (AllowEncryptionOracle=0)", "medium", "credssp", True),
    "RDP-CREDSSP-VULNERABLE": Entry("CredSSP allows vulnerable clients (AllowEncryptionOracle=2)", "high", "credssp", False),
    "RDP-SECURITY-LAYER-RDP": Entry("The listener uses the legacy RDP security layer (no TLS)", "high", "security", True),
    "RDP-NLA-DISABLED": Entry("Network Level Authentication is not required", "medium", "security", False),
    "RDP-ENCRYPTION-FIPS": Entry("The listener requires FIPS encryption", "medium", "security", True),
    "RDP-DOMAIN-CREDS-DISABLED": Entry("Domain credentials are disabled on a domain member (disabledomaincreds)", "medium", "security", False),
    "RDP-TLS-ALL-DISABLED": Entry("Every TLS protocol is disabled for servers in Schannel", "critical", "tls", True),
    "RDP-TLS12-DISABLED": Entry("TLS 1.2 is disabled for servers in Schannel", "high", "tls", True),
    "RDP-TLS-LEGACY-ENABLED": Entry("Deprecated SSL/TLS versions are explicitly enabled", "low", "tls", False),
    # issue 12 part B: cipher suites, Schannel events, listener ACL, logon rights by group, logon prerequisites, connections
    "RDP-TLS-NO-COMMON-CIPHER": Entry("No TLS cipher suite a modern client offers is left on the listener", "critical", "tls", True),
    "RDP-TLS-SCHANNEL-ERRORS": Entry("Schannel logs TLS failures on the listener that no other finding explains", "high", "tls", True),
    "RDP-LISTENER-ACL-DENIES": Entry("The RDP-Tcp listener's permissions shut out Administrators or Remote Desktop Users", "high",
                                     "accounts", False),
    "RDP-LOGON-RIGHT-GROUPS": Entry("Remote Desktop Users or Administrators lack, or are denied, the RDP logon right", "high", "accounts", False),
    "RDP-DOMAIN-TRUST-BROKEN": Entry("The domain secure channel is broken: NLA fails for domain accounts", "high", "accounts", False),
    "RDP-LOGON-SERVICE-STOPPED": Entry("A service RDP logons need is not running (LSM, Netlogon, BFE)", "high", "listener", False),
    "RDP-NTLM-INCOMING-DENIED": Entry("Incoming NTLM is denied: NLA fails where Kerberos cannot be used", "high", "security", False),
    "RDP-CLIENTS-FAIL-LOGON": Entry("Clients reach the listener but none authenticates", "medium", "accounts", False),
    # sessions / licensing
    "RDP-SESSION-LIMIT-REACHED": Entry("The session limit is reached", "high", "sessions", True),
    "RDP-GHOST-SESSIONS": Entry("Old disconnected sessions pile up (no disconnected-session limit)", "medium", "sessions", True),
    "RDP-LICENSING-GRACE-EXPIRED": Entry("The RDS licensing grace period is over and no license server is set", "critical", "licensing", True),
    "RDP-LICENSING-NOT-CONFIGURED": Entry("The RD Session Host has no license server (grace period running)", "medium", "licensing", False),
    # issue 12, part A: listener state, protocol stack, port, caps, licensing without GPO, port exhaustion
    "RDP-LICENSE-SERVER-UNUSABLE": Entry("The configured RD license server cannot be used (unreachable or refused)", "high",
                                         "licensing", True),
    "RDP-LICENSING-X509-MISSING": Entry("The RD Session Host has no licensing certificate (RCM X509 Certificate)", "high", "licensing",
                                        False),
    "RDP-LISTENER-DOWN": Entry("The RDP-Tcp listener is Down (WTS state)", "critical", "listener", True),
    "RDP-PROTOCOL-STACK-FOREIGN": Entry("RDP-Tcp loads a foreign or leftover protocol stack (LoadableProtocol_Object)", "critical",
                                        "listener", True),
    "RDP-PORT-MISSING": Entry("RDP-Tcp has no PortNumber value", "high", "listener", False),
    "RDP-INSTANCE-LIMIT-LOW": Entry("MaxInstanceCount caps connections very low (not reached yet)", "low", "sessions", False),
    "RDP-PORT-EXHAUSTION": Entry("The host ran out of ephemeral TCP ports (Tcpip 4227/4231)", "high", "host", False),
    "RDP-SELF-SIGNED-STORE-MOVED": Entry("SelfSignedCertStore names another store than Remote Desktop", "low", "certificate", False),
    "RDP-EPHEMERAL-RANGE-NARROW": Entry("The TCP dynamic (ephemeral) port range is narrower than Windows' default", "low", "host",
                                        False),
    "RDP-SESSION-TIME-LIMIT-SHORT": Entry("An idle or active-session time limit shorter than 5 minutes applies", "medium", "sessions",
                                          False),
    "RDP-CERT-STORE-ACL-DENY": Entry("A Deny ACE for SYSTEM or NETWORK SERVICE on the Remote Desktop certificate store or RCM",
                                     "high", "certificate", False),
    # accounts
    "RDP-ACCOUNT-NOT-FOUND": Entry("An expected account does not exist", "high", "accounts", False),
    "RDP-ACCOUNT-DISABLED": Entry("An expected account is disabled", "high", "accounts", False),
    "RDP-ACCOUNT-LOCKED-OUT": Entry("An expected account is locked out", "high", "accounts", False),
    "RDP-ACCOUNT-DENIED-LOGON": Entry("An expected account is denied logon through Remote Desktop Services", "high", "accounts", False),
    "RDP-ACCOUNT-NOT-ALLOWED": Entry("An expected account is not allowed to log on through Remote Desktop Services", "high", "accounts", False),
    # meta
    "RDP-GPO-OVERRIDE": Entry("Group Policy forces a setting that breaks RDP (a local fix would be reverted)", "high", "group_policy", False),
    "RDP-CLOCK-SKEW": Entry("The host clock differs from the controller's", "medium", "host", False),
    "RDP-READ-INCOMPLETE": Entry("Part of the host could not be read: the checks that need it did not run", "medium", "host", False),
    "RDP-ACCOUNT-MEMBERSHIP-UNKNOWN": Entry("An expected account may be allowed through a domain group: not evaluated", "info",
                                            "accounts", False),
    "RDP-PROBE-FAILED": Entry("The client-side probe fails and the host facts do not explain it", "high", "network", True),
}

#: Clock difference that breaks Kerberos (5 minutes by default) and so NLA for domain accounts.
CLOCK_SKEW_SECONDS = 300
#: A disconnected session older than this counts as a ghost.
GHOST_SESSION_SECONDS = 86400
#: Disconnected-session limit the fix proposes (8 hours, in milliseconds as Windows stores it).
PROPOSED_MAX_DISCONNECTION_MS = 8 * 3600 * 1000

MODULE_LISTENER_SECURITY = "rdp.doctor.listener_security"
MODULE_LISTENER_CERTIFICATE = "rdp.doctor.listener_certificate"
MODULE_CREDSSP = "rdp.doctor.credssp"
MODULE_FIREWALL = "rdp.doctor.firewall"
MODULE_SESSION_LIMITS = "rdp.doctor.session_limits"
MODULE_MACHINEKEYS = "rdp.doctor.machinekeys"
MODULE_SERVICES = "rdp.doctor.services"
MODULE_TLS_PROTOCOLS = "rdp.doctor.tls_protocols"


# ==================================================================================================
# Building blocks
# ==================================================================================================

def make_finding(finding_id: str, evidence: dict[str, t.Any], fix: dict[str, t.Any], **overrides: t.Any) -> Finding:
    """A finding with the catalogue's title, severity, category and explains_0x904 (overridable)."""
    entry = CATALOGUE[finding_id]
    finding = {"id": finding_id, "title": entry.title, "severity": entry.severity, "category": entry.category,
               "explains_0x904": entry.explains_0x904, "evidence": evidence, "fix": fix}
    finding.update(overrides)
    return finding


def module_fix(module: str, **params: t.Any) -> dict[str, t.Any]:
    """A fix that a collection module applies."""
    return {"module": module, "params": params}


def manual_fix(text: str) -> dict[str, t.Any]:
    """A fix a person must apply (domain GPO, DISM/SFC, license server...)."""
    return {"manual": text}


def fact(facts: t.Any, path: str, default: t.Any = None) -> t.Any:
    """``facts['a']['b']`` for ``'a.b'``, tolerant of missing sections (the findings rules and the planners read facts so)."""
    current = facts
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return default
        current = current[part]
    return current


def _int(value: t.Any) -> int | None:
    """An int or None."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _setting_evidence(name: str, item: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """The exact values behind a setting: registry value name, effective value and where it comes from."""
    spec = reg.SETTINGS[name]
    item = item or {}
    evidence = {"value_name": spec.value, "effective": item.get("effective"), "source": item.get("source"),
                "local": item.get("local"), "policy": item.get("policy"), "default": item.get("default")}
    if spec.local_key:
        evidence["local_key"] = spec.local_key
    if item.get("source") == "policy":
        evidence["policy_key"] = spec.policy_key
        evidence["policy_name"] = reg.POLICY_NAMES.get(name)
    if item.get("source") == "user":  # RDP-Tcp fInherit*=1: Windows ignores the listener's value (issue 12)
        evidence["ignored_local"] = item.get("ignored_local")
        evidence["ignored_because"] = f"{reg.SETTINGS['inherit_' + name].value}=1: each user's own limit applies"
    return evidence


def _from_policy(item: dict[str, t.Any] | None) -> bool:
    """True when a setting's effective value is forced by Group Policy."""
    return bool(item) and item.get("source") == "policy"


def _gpo_manual(name: str, item: dict[str, t.Any], wanted: str) -> dict[str, t.Any]:
    """The manual fix for a bad value a GPO enforces."""
    spec = reg.SETTINGS[name]
    policy = reg.POLICY_NAMES.get(name, spec.value)
    return manual_fix(
        f"Group Policy sets {spec.value}={item.get('policy', item.get('effective'))} ({spec.policy_key}). Change the GPO "
        f"'{reg.GPO_RDS_PATH} > {policy}' to {wanted} in the domain (gpresult /H on the host names the GPO), then "
        "run gpupdate /force; a local change would be reverted at the next policy refresh."
    )


def _setting_fix(name: str, item: dict[str, t.Any], wanted: str, module: str, **params: t.Any) -> dict[str, t.Any]:
    """Module fix for a local value, manual GPO fix for a policy value."""
    return _gpo_manual(name, item, wanted) if _from_policy(item) else module_fix(module, **params)


def _gpo_marker(name: str, item: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """The internal note a finding carries when a policy forces the bad value (collected into RDP-GPO-OVERRIDE)."""
    if not _from_policy(item):
        return []
    spec = reg.SETTINGS[name]
    return [{"setting": name, "value_name": spec.value, "policy_key": spec.policy_key, "policy": item.get("policy"),
             "local": item.get("local"), "effective": item.get("effective"), "policy_name": reg.POLICY_NAMES.get(name)}]


def _with_gpo(finding: Finding, markers: list[dict[str, t.Any]]) -> Finding:
    """Attach GPO markers to a finding (private key, removed by ``evaluate``)."""
    if markers:
        finding["_gpo"] = markers
        finding["evidence"]["enforced_by_group_policy"] = True
    return finding


def _events(facts: Facts, *event_ids: int) -> list[dict[str, t.Any]]:
    """Event groups with one of ``event_ids`` (compact: provider, id, count, last, meaning, one sample)."""
    found = []
    for group in fact(facts, "events.groups", []) or []:
        if group.get("id") in event_ids:
            samples = group.get("samples") or []
            found.append({"log": group.get("log"), "provider": group.get("provider"), "id": group.get("id"),
                          "count": group.get("count"), "last": group.get("last"), "meaning": group.get("meaning"),
                          "sample": samples[0].get("message") if samples else None})
    return found


def _licensing_events(facts: Facts) -> list[dict[str, t.Any]]:
    """TerminalServices-Licensing events (MSRD #57)."""
    return [{"provider": g.get("provider"), "id": g.get("id"), "count": g.get("count"), "last": g.get("last"),
             "sample": (g.get("samples") or [{}])[0].get("message")}
            for g in fact(facts, "events.groups", []) or [] if "licensing" in str(g.get("provider", "")).lower()]


def _add_events(evidence: dict[str, t.Any], events: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Evidence with an ``events`` list when there are any."""
    if events:
        evidence["events"] = events
    return evidence


# ==================================================================================================
# Host rules: each takes the facts and returns a list of findings
# ==================================================================================================

def rule_connections(facts: Facts) -> list[Finding]:
    """fDenyTSConnections, fEnableWinStation, drain mode, OOBE [S4][S10] MSRD #1 #2 #11 #13."""
    found = []
    deny = fact(facts, "listener.deny_ts_connections")
    if deny and _int(deny.get("effective")) == 1:
        found.append(_with_gpo(make_finding(
            "RDP-CONNECTIONS-DENIED", _setting_evidence("deny_ts_connections", deny),
            _setting_fix("deny_ts_connections", deny, "Enabled", MODULE_LISTENER_SECURITY, allow_connections=True)),
            _gpo_marker("deny_ts_connections", deny)))
    enable = fact(facts, "listener.enable_winstation")
    if enable and _int(enable.get("effective")) == 0:
        found.append(make_finding("RDP-LISTENER-DISABLED", _setting_evidence("enable_winstation", enable),
                                  module_fix(MODULE_LISTENER_SECURITY, listener_enabled=True)))
    drain = fact(facts, "listener.drain_mode")
    if drain and _int(drain.get("effective")) in (1, 2):
        evidence = _setting_evidence("drain_mode", drain)
        evidence["meaning"] = reg.DRAIN_MODES.get(_int(drain.get("effective")))
        found.append(make_finding("RDP-DRAIN-MODE", evidence, manual_fix(
            "Allow new logons: run 'change logon /enable' on the host (or set TSServerDrainMode=0 and restart "
            "TermService); on an RDS farm, check the Connection Broker's drain setting for this host.")))
    setup = fact(facts, "os.setup") or {}
    if setup.get("in_progress"):
        found.append(make_finding("RDP-SETUP-IN-PROGRESS", {
            "OOBEInProgress": fact(setup, "oobe_in_progress.effective"),
            "SystemSetupInProgress": fact(setup, "system_setup_in_progress.effective"),
            "key": reg.SETUP}, manual_fix(
            "Finish Windows setup (OOBE / sysprep specialize) on the console, or fix the image that left "
            "HKLM\\SYSTEM\\Setup OOBEInProgress/SystemSetupInProgress at 1, then reboot.")))
    return found


def _service_account_ok(account: t.Any) -> bool:
    """NETWORK SERVICE in any of its spellings [S22]."""
    text = str(account or "").replace(" ", "").lower()
    return text in ("ntauthority\\networkservice", "networkservice", "nt authority\\networkservice", reg.SID_NETWORK_SERVICE.lower())


def rule_services(facts: Facts) -> list[Finding]:
    """TermService stopped/disabled/wrong account; SessionEnv, UmRdpService disabled [S21][S22] MSRD #14 #15."""
    services = fact(facts, "listener.services") or {}
    term = services.get(reg.TERMSERVICE) or {}
    found = []
    if term.get("present"):
        evidence = {"service": reg.TERMSERVICE, "state": term.get("state"), "start_mode": term.get("start_mode"),
                    "account": term.get("account")}
        if term.get("disabled"):
            found.append(make_finding("RDP-SERVICE-DISABLED", evidence, module_fix(
                MODULE_SERVICES, termservice={"start_mode": "manual", "state": "started"})))
        elif not term.get("running"):
            found.append(make_finding("RDP-SERVICE-STOPPED", evidence, module_fix(MODULE_SERVICES, termservice={"state": "started"})))
        if term.get("account") and not _service_account_ok(term.get("account")):
            found.append(make_finding("RDP-SERVICE-ACCOUNT", dict(evidence, expected_account=reg.TERMSERVICE_ACCOUNT), module_fix(
                MODULE_SERVICES, termservice={"account": "network_service", "state": "restarted"})))
    support = [{"service": name, "state": services[name].get("state"), "start_mode": services[name].get("start_mode")}
               for name in (reg.SESSIONENV, reg.UMRDPSERVICE) if (services.get(name) or {}).get("disabled")]
    if support:
        found.append(make_finding("RDP-SUPPORT-SERVICE-DISABLED", {"services": support}, module_fix(
            MODULE_SERVICES, **{s["service"].lower(): {"start_mode": "manual"} for s in support})))
    return found


def _host_accepts(facts: Facts) -> bool:
    """TermService runs, connections allowed, listener on: the state in which the port must be listening."""
    return bool(fact(facts, f"listener.services.{reg.TERMSERVICE}.running") and fact(facts, "listener.connections_allowed")
                and fact(facts, "listener.enabled"))


def rule_sockets(facts: Facts) -> list[Finding]:
    """Who owns the RDP port (TCP and UDP) [S3][S4] MSRD #16 #17 #20."""
    if (not fact(facts, "listener.sockets_read") or fact(facts, "listener.services_read") is False
            or fact(facts, "listener.port_known") is False):
        return []  # without the sockets, TermService's pid or the port, no owner can be named
    found = []
    tcp = fact(facts, "listener.tcp") or {}
    port = fact(facts, "listener.effective_port")
    pid = fact(facts, f"listener.services.{reg.TERMSERVICE}.pid")
    # Another owner blocks the listener whether or not TermService runs now: it cannot bind when it starts.
    if tcp.get("other_owners") and not tcp.get("termservice_listening"):
        owner = tcp["other_owners"][0]
        found.append(make_finding("RDP-PORT-CONFLICT", {"port": port, "owners": tcp["other_owners"], "termservice_pid": pid},
                                  manual_fix(f"Stop or reconfigure '{owner.get('process')}' (pid {owner.get('pid')}) so that it "
                                             f"releases TCP {port}, then restart TermService; or move RDP to a free port "
                                             f"({MODULE_LISTENER_SECURITY} port=<n>, then {MODULE_FIREWALL}).")))
    elif not tcp.get("listening") and _host_accepts(facts):
        found.append(make_finding("RDP-NOT-LISTENING", {"port": port, "termservice_pid": pid, "tcp_listeners_on_port": []},
                                  manual_fix("Restart TermService and check 'qwinsta' shows rdp-tcp in state Listen; read "
                                             "TermDD / RemoteConnectionManager events for the reason the listener failed.")))
    udp = fact(facts, "listener.udp") or {}
    if udp.get("other_owners") and not udp.get("termservice_listening"):
        found.append(make_finding("RDP-UDP-PORT-CONFLICT", {"port": port, "owners": udp["other_owners"]},
                                  manual_fix(f"Free UDP {port} for TermService (RDP falls back to TCP meanwhile).")))
    return found


def rule_listener_options(facts: Facts) -> list[Finding]:
    """LanAdapter (MSRD #4) and a non-default port (MSRD #3)."""
    found = []
    lan = fact(facts, "listener.lan_adapter")
    if lan and _int(lan.get("effective")) not in (0, None):
        found.append(make_finding("RDP-LAN-ADAPTER", _setting_evidence("lan_adapter", lan),
                                  module_fix(MODULE_LISTENER_SECURITY, lan_adapter=0)))
    port = fact(facts, "listener.port")
    if port and _int(port.get("effective")) not in (reg.DEFAULT_PORT, None):
        found.append(make_finding("RDP-PORT-NON-DEFAULT", _setting_evidence("port", port), manual_fix(
            f"Nothing to do if intended: clients must connect to <host>:{port.get('effective')} and the firewall must allow it. "
            f"To go back: {MODULE_LISTENER_SECURITY} port={reg.DEFAULT_PORT}.")))
    return found


def rule_firewall(facts: Facts) -> list[Finding]:
    """Remote Desktop rule group, custom port coverage, block rules, GPO exception [S13][S37] MSRD #47."""
    firewall = fact(facts, "firewall") or {}
    tcp = firewall.get("tcp") or {}
    if not firewall.get("profiles") or fact(facts, "listener.port_known") is False:
        return []  # profiles or the listener's port unknown: nothing can be concluded
    port = tcp.get("port")
    found = []
    gpo = firewall.get("gpo") or {}
    blocking = {name: item for name, item in gpo.items() if item.get("blocks")}
    if blocking:
        found.append(make_finding("RDP-FIREWALL-GPO-BLOCKS", {
            "policy": {name: {"key": reg.FW_GPO_KEYS[name], "Enabled": item.get("enabled"), "profiles": item.get("profiles")}
                       for name, item in blocking.items()},
            "blocked_profiles": firewall.get("gpo_blocked_profiles"), "port": port,
        }, manual_fix(f"Group Policy disables the inbound Remote Desktop exception. Set '{reg.POLICY_FIREWALL}' to Enabled "
                      "(or Not Configured) in the domain GPO; while it is Disabled, local firewall rules for RDP are not honoured.")))
    block_rules = tcp.get("block_rules") or []
    if block_rules and tcp.get("blocked_by_rule_in_all_profiles"):
        found.append(make_finding("RDP-FIREWALL-BLOCK-RULE", {"port": port, "block_rules": block_rules}, manual_fix(
            f"Remove or narrow the inbound Block rule(s) {', '.join(block_rules)} (a Block rule wins over every Allow rule). "
            "rdp.doctor does not change rules outside the Remote Desktop group.")))
    if tcp.get("allowed_by_rules_in_any_profile") is False:
        found.extend(_firewall_rule_findings(firewall, port))
    return found


def _firewall_rule_findings(firewall: dict[str, t.Any], port: t.Any) -> list[Finding]:
    """No allow rule for the listener port in any profile: rules disabled, or rules for another port."""
    rdp_tcp = firewall.get("rdp_tcp_rules") or []
    enabled = [r for r in rdp_tcp if r.get("enabled")]
    covering = [r for r in rdp_tcp if r.get("covers_port")]
    from_gpo = [r["name"] for r in rdp_tcp if str(r.get("policy_store_source") or "").lower() == "grouppolicy"]
    evidence = {"port": port, "rdp_tcp_rules": rdp_tcp, "rdp_rules_disabled": firewall.get("rdp_rules_disabled"),
                "profiles": {name: {"allow_rules": p.get("allow_rules"), "enabled": p.get("enabled")}
                             for name, p in ((firewall.get("tcp") or {}).get("profiles") or {}).items()}}
    limited = (firewall.get("tcp") or {}).get("address_limited_rules") or []
    if limited:
        evidence["allowed_only_from"] = limited  # these admit some clients, not every client
    if from_gpo:
        evidence["rules_from_group_policy"] = from_gpo
    found = []
    if not enabled:
        fix = (manual_fix("The Remote Desktop rules come from Group Policy: enable them in the domain GPO.") if from_gpo
               else module_fix(MODULE_FIREWALL, state="enabled", port=port))
        found.append(make_finding("RDP-FIREWALL-RULES-DISABLED", dict(evidence), fix))
    if enabled or not covering:
        found.append(make_finding("RDP-PORT-NOT-ALLOWED", dict(evidence, rule_ports=sorted({p for r in rdp_tcp for p in r.get("local_ports", [])})),
                                  module_fix(MODULE_FIREWALL, state="enabled", port=port)))
    return found


def _cert_fix(cert: dict[str, t.Any], bound: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """How to get a usable listener certificate: renew the self-signed one, bind a valid one, or enroll."""
    template = fact(cert, "cert_template_name.effective")
    if template:
        return manual_fix(f"A GPO enforces the certificate template '{template}': check autoenrollment from the enterprise CA "
                          "(event 1063 when a template certificate is installed) and that the template allows Server Authentication.")
    if bound is None or bound.get("self_signed_container") or bound.get("store") == reg.STORE_REMOTE_DESKTOP:
        return module_fix(MODULE_LISTENER_CERTIFICATE, state="self_signed")
    if cert.get("candidates"):
        return module_fix(MODULE_LISTENER_CERTIFICATE, state="bound", thumbprint=cert["candidates"][0])
    return manual_fix("Enroll a new certificate (Server Authentication EKU, the host's FQDN in the SAN, private key) in "
                      f"Cert:\\LocalMachine\\My, then bind it: {MODULE_LISTENER_CERTIFICATE} state=bound thumbprint=<new>; "
                      f"or fall back to a self-signed one: {MODULE_LISTENER_CERTIFICATE} state=self_signed.")


def _cert_evidence(cert: dict[str, t.Any], bound: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """What the listener certificate is."""
    evidence = {"bound_thumbprint": cert.get("bound_thumbprint"), "bound_source": cert.get("bound_source"),
                "hash_type": cert.get("hash_type_name")}
    if bound:
        keys = ("store", "subject", "issuer", "self_signed", "not_before", "not_after", "days_remaining", "names", "ekus")
        evidence.update({key: bound.get(key) for key in keys})
    return evidence


def rule_certificate(facts: Facts) -> list[Finding]:
    """The listener certificate: present, key, validity, name, EKU, key readability [S1][S2][S27]."""
    cert = fact(facts, "certificate") or {}
    if not cert:
        return []
    if cert.get("stores_read") is False or cert.get("bound_known") is False:
        return []  # the host did not report its stores, or which certificate is bound: nothing to conclude
    bound = cert.get("bound")
    evidence = _cert_evidence(cert, bound)
    fix = _cert_fix(cert, bound)
    cert_events = _events(facts, reg.EVENT_CERT_CREATE_FAILED, reg.EVENT_CERT_REPLACE_FAILED)
    if bound is None:
        evidence["stores_searched"] = list(reg.CERT_STORES)
        evidence["candidates"] = cert.get("candidates")
        return [make_finding("RDP-CERT-MISSING", _add_events(evidence, cert_events), fix)]
    if bound.get("parse_error"):
        evidence["parse_error"] = bound["parse_error"]
    found = []
    if not bound.get("has_private_key"):
        found.append(make_finding("RDP-CERT-NO-PRIVATE-KEY", dict(evidence, has_private_key=False), fix))
    if bound.get("expired"):
        found.append(make_finding("RDP-CERT-EXPIRED", _add_events(dict(evidence), cert_events), fix))
    elif bound.get("not_yet_valid"):
        found.append(make_finding("RDP-CERT-NOT-YET-VALID", dict(evidence, host_clock_skew_seconds=fact(facts, "os.clock_skew_seconds")),
                                  manual_fix("Check the clocks of the host and the client (w32tm /query /status); "
                                             "renew the certificate if it was issued with a wrong date.")))
    elif bound.get("days_remaining") is not None and bound["days_remaining"] < reg.CERT_EXPIRY_WARNING_DAYS:
        found.append(make_finding("RDP-CERT-EXPIRING-SOON", dict(evidence, warn_days=reg.CERT_EXPIRY_WARNING_DAYS), fix))
    if bound.get("name_matches_host") is False:
        found.append(make_finding("RDP-CERT-NAME-MISMATCH", dict(evidence, host_names=cert.get("expected_names")), fix))
    if bound.get("eku_ok") is False:
        found.append(make_finding("RDP-CERT-WRONG-EKU", dict(evidence, eku_names=bound.get("eku_names"),
                                                             accepted=[reg.EKU_SERVER_AUTH, reg.EKU_REMOTE_DESKTOP_AUTH]), fix))
    found.extend(_key_findings(facts, cert, bound, evidence))
    return found


def _listener_key_broken(facts: Facts, bound: dict[str, t.Any]) -> dict[str, t.Any] | None:
    """The self-signed listener's key file when the bound certificate uses it and it is missing or empty [S2][S26]."""
    key_file = fact(facts, "machinekeys.listener_key_file")
    if not key_file:
        return None
    uses_it = bound.get("self_signed_container") or (
        bound.get("key_file") and str(bound["key_file"]).lower().startswith(reg.LISTENER_KEY_PREFIX))
    if uses_it and (key_file.get("exists") is False or key_file.get("empty")):
        return key_file
    return None


def _key_findings(facts: Facts, cert: dict[str, t.Any], bound: dict[str, t.Any], evidence: dict[str, t.Any]) -> list[Finding]:
    """Listener key file broken, or the key unreadable for NETWORK SERVICE [S1][S2][S22]."""
    key_events = _events(facts, reg.EVENT_CERT_CREATE_FAILED, reg.EVENT_CERT_REPLACE_FAILED, reg.EVENT_SCHANNEL_KEY_ACCESS)
    broken = _listener_key_broken(facts, bound)
    if broken is not None:
        broken_evidence = _add_events(dict(evidence, key_file=broken, key_error=bound.get("key_error")), key_events)
        return [make_finding("RDP-LISTENER-KEY-BROKEN", broken_evidence, module_fix(MODULE_MACHINEKEYS, repair="listener_key"))]
    if bound.get("has_private_key") and (bound.get("key_readable_by_network_service") is False or bound.get("key_error")):
        return [make_finding("RDP-CERT-KEY-UNREADABLE", _add_events(dict(
            evidence, key_container=bound.get("key_container"), key_file=bound.get("key_file"),
            key_readable_by_network_service=bound.get("key_readable_by_network_service"), key_error=bound.get("key_error")),
            key_events), module_fix(MODULE_LISTENER_CERTIFICATE, state="key_permissions", thumbprint=cert.get("bound_thumbprint")))]
    return []


def rule_machinekeys(facts: Facts) -> list[Finding]:
    """MachineKeys folder ACL against KB278381 [S5] (vmassist check, MSRD #37)."""
    mk = fact(facts, "machinekeys") or {}
    if mk.get("exists") is None and mk.get("acl_ok") is None:
        return []
    if mk.get("exists") is not False and mk.get("acl_ok") is not False:
        return []
    missing = []
    if mk.get("everyone_access_ok") is False:
        missing.append("Everyone: list/read/write data, attributes, read permissions (0x12019f)")
    if mk.get("administrators_full") is False:
        missing.append("Administrators: full control")
    evidence = {"path": mk.get("path"), "exists": mk.get("exists"), "sddl": mk.get("sddl"), "default_sddl": mk.get("default_sddl"),
                "missing": missing}
    events = _events(facts, reg.EVENT_CERT_CREATE_FAILED, reg.EVENT_SCHANNEL_KEY_ACCESS)
    return [make_finding("RDP-MACHINEKEYS-ACL", _add_events(evidence, events), module_fix(MODULE_MACHINEKEYS, repair="acl"))]


def rule_credssp(facts: Facts) -> list[Finding]:
    """CredSSP patch level and AllowEncryptionOracle [S7][S8][S9]."""
    credssp = fact(facts, "credssp") or {}
    item = credssp.get("allow_encryption_oracle") or {}
    value = _int(item.get("effective"))
    found = []
    base = {"AllowEncryptionOracle": value, "meaning": credssp.get("allow_encryption_oracle_name"), "source": item.get("source"),
            "key": reg.CREDSSP, "policy_name": reg.POLICY_CREDSSP,
            "note": "the Encryption Oracle Remediation GPO writes this same key: if the value comes back, a GPO sets it"}
    if credssp.get("patched") is False:
        found.append(make_finding("RDP-CREDSSP-UNPATCHED", {
            "tspkg_version": credssp.get("tspkg_version"), "required_tspkg_version": credssp.get("required_tspkg_version"),
            "os_build": fact(facts, "os.build"), "AllowEncryptionOracle": value},
            manual_fix("Install the latest cumulative update for this OS (the May 2018 CredSSP update or any later one), then "
                       "reboot. Updated clients refuse an unpatched server under their default 'Mitigated' setting.")))
    if value == reg.ORACLE_FORCE_UPDATED:
        found.append(make_finding("RDP-CREDSSP-FORCE-UPDATED", dict(base), module_fix(MODULE_CREDSSP, allow_encryption_oracle="mitigated")))
    elif value == reg.ORACLE_VULNERABLE:
        found.append(make_finding("RDP-CREDSSP-VULNERABLE", dict(base), module_fix(MODULE_CREDSSP, allow_encryption_oracle="mitigated")))
    return found


def rule_security(facts: Facts) -> list[Finding]:
    """SecurityLayer, NLA, MinEncryptionLevel/FIPS, disabledomaincreds [S6][S10][S20] MSRD #24 #25."""
    security = fact(facts, "security") or {}
    found = []
    layer = security.get("security_layer")
    if layer and _int(layer.get("effective")) == 0:
        found.append(_with_gpo(make_finding(
            "RDP-SECURITY-LAYER-RDP", dict(_setting_evidence("security_layer", layer), meaning=security.get("security_layer_name")),
            _setting_fix("security_layer", layer, "Enabled with 'SSL'", MODULE_LISTENER_SECURITY, security_layer="tls")),
            _gpo_marker("security_layer", layer)))
    nla = security.get("user_authentication")
    if nla and _int(nla.get("effective")) == 0:
        found.append(_with_gpo(make_finding(
            "RDP-NLA-DISABLED", _setting_evidence("user_authentication", nla),
            _setting_fix("user_authentication", nla, "Enabled", MODULE_LISTENER_SECURITY, nla=True)),
            _gpo_marker("user_authentication", nla)))
    level = security.get("min_encryption_level")
    level_value = _int((level or {}).get("effective"))
    if level_value == reg.ENCRYPTION_LEVEL_FIPS or (security.get("fips_enabled") and layer and _int(layer.get("effective")) == 0):
        evidence = dict(_setting_evidence("min_encryption_level", level), meaning=security.get("min_encryption_level_name"),
                        fips_algorithm_policy=fact(security, "fips_algorithm_policy.effective"), fips_key=reg.FIPS)
        fix = (_setting_fix("min_encryption_level", level, "'Client Compatible' or 'High'", MODULE_LISTENER_SECURITY,
                            min_encryption_level="client_compatible")
               if level_value == reg.ENCRYPTION_LEVEL_FIPS else
               manual_fix("The FIPS policy restricts the legacy RDP security layer: use the TLS security layer "
                          f"({MODULE_LISTENER_SECURITY} security_layer=tls) or disable 'System cryptography: Use FIPS compliant algorithms'."))
        found.append(_with_gpo(make_finding("RDP-ENCRYPTION-FIPS", evidence, fix),
                               _gpo_marker("min_encryption_level", level) if level_value == reg.ENCRYPTION_LEVEL_FIPS else []))
    if security.get("domain_creds_disabled") and fact(facts, "os.part_of_domain"):
        found.append(make_finding("RDP-DOMAIN-CREDS-DISABLED", _setting_evidence("disable_domain_creds", security.get("disable_domain_creds")),
                                  manual_fix("Set 'Network access: Do not allow storage of passwords and credentials for network "
                                             "authentication' to Disabled (Lsa\\disabledomaincreds=0) if domain users must log on.")))
    return found


def rule_schannel(facts: Facts) -> list[Finding]:
    """Schannel Server protocols usable by the listener [S18][S2] MSRD #41."""
    schannel = fact(facts, "schannel") or {}
    protocols = schannel.get("protocols") or {}
    if not protocols:
        return []
    server = {name: {"state": sides["server"]["state"], "Enabled": sides["server"]["enabled_value"],
                     "DisabledByDefault": sides["server"]["disabled_by_default_value"], "source": sides["server"]["source"]}
              for name, sides in protocols.items()}
    evidence = {"server_protocols": server, "server_enabled": schannel.get("server_enabled"), "key": reg.SCHANNEL_ROOT}
    found = []
    if schannel.get("any_tls_server_enabled") is False:
        found.append(make_finding("RDP-TLS-ALL-DISABLED", _add_events(evidence, _events(facts, reg.EVENT_SCHANNEL_CREDENTIAL)),
                                  module_fix(MODULE_TLS_PROTOCOLS, tls12="enabled")))
    elif schannel.get("tls12_server_enabled") is False:
        found.append(make_finding("RDP-TLS12-DISABLED", evidence, module_fix(MODULE_TLS_PROTOCOLS, tls12="enabled")))
    legacy = schannel.get("legacy_server_enabled_explicitly") or []
    if legacy:
        found.append(make_finding("RDP-TLS-LEGACY-ENABLED", {"protocols": legacy, "server_protocols": {p: server[p] for p in legacy}},
                                  manual_fix(f"Delete or set Enabled=0 under SCHANNEL\\Protocols\\<{', '.join(legacy)}>\\Server once "
                                             "every client speaks TLS 1.2 (deprecated protocols; Windows 11 disables them).")))
    return found


# ---- issue 12 part B: TLS cipher suites, Schannel events, listener ACL, logon rights by group, logon prerequisites ----

def rule_cipher_suites(facts: Facts) -> list[Finding]:
    """No suite a modern client offers survives the cipher-suite policy / local list and the SCHANNEL algorithm keys
    (MSRD #42). Suites lost only to disabled protocols are RDP-TLS-ALL-DISABLED's / RDP-TLS12-DISABLED's."""
    suites = fact(facts, "tls_cipher_suites") or {}
    unusable = suites.get("unusable_modern_suites") or {}
    if suites.get("modern_client_compatible") is not False or all(r.startswith("needs ") for r in unusable.values()):
        return []
    source = suites.get("source")
    evidence = {"source": source, "key": suites.get("key"), "configured_suites": suites.get("configured"),
                "disabled_algorithms": {k: v for k, v in (suites.get("disabled_algorithms") or {}).items() if v},
                "modern_client_suites": unusable, "server_protocols": fact(facts, "schannel.server_enabled")}
    if source == "policy":
        evidence["policy_name"] = reg.POLICY_CIPHER_SUITE_ORDER
        fix = manual_fix(f"Group Policy '{reg.POLICY_CIPHER_SUITE_ORDER}' ({reg.CIPHER_SUITE_POLICY} Functions) leaves no suite a "
                         "modern client offers: add TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 and TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 "
                         "(or set the policy to Not Configured) in the domain GPO, gpupdate /force, then restart the host.")
    elif source == "local":
        fix = manual_fix("The local cipher suite list leaves no suite a modern client offers: Enable-TlsCipherSuite -Name "
                         "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 (and _AES_128_GCM_SHA256), or delete the Functions value under "
                         f"{reg.CIPHER_SUITE_LOCAL} to return to the OS default, then restart the host.")
    else:
        keys = sorted({r.split(" Enabled=0")[0] for r in unusable.values() if r.startswith("SCHANNEL\\")})
        fix = manual_fix(f"Delete the Enabled=0 values (or set Enabled=0xffffffff) under {', '.join(keys)} in "
                         f"{reg.SCHANNEL_KEY}, then restart the host (Schannel reads them at boot).")
    return [make_finding("RDP-TLS-NO-COMMON-CIPHER", _add_events(evidence, _events(facts, *reg.SCHANNEL_HANDSHAKE_EVENTS)), fix)]


#: Findings that already explain Schannel's TLS failure events (their evidence carries the events).
_SCHANNEL_EXPLAINED_BY = ("RDP-CERT-KEY-UNREADABLE", "RDP-LISTENER-KEY-BROKEN", "RDP-MACHINEKEYS-ACL", "RDP-CERT-MISSING",
                          "RDP-CERT-NO-PRIVATE-KEY", "RDP-TLS-ALL-DISABLED", "RDP-TLS12-DISABLED", "RDP-TLS-NO-COMMON-CIPHER")
_SCHANNEL_EVENT_FIXES = {
    reg.EVENT_SCHANNEL_KEY_ACCESS: "36870: the listener cannot use its certificate's private key: check the key's ACL "
                                   "(NETWORK SERVICE read) and MachineKeys (rdp.doctor.machinekeys / listener_certificate)",
    reg.EVENT_SCHANNEL_CREDENTIAL: "36871: the TLS credential cannot be created: check SCHANNEL\\Protocols and FIPS policy",
    reg.EVENT_SCHANNEL_NO_CREDENTIAL: "36886: no server certificate is usable: bind a valid one (rdp.doctor.listener_certificate)",
    reg.EVENT_SCHANNEL_NO_CIPHER: "36874: some clients share no cipher suite or protocol with the listener: compare their TLS "
                                  "settings with SCHANNEL and the cipher suite policy (old clients need TLS 1.0/1.1 or CBC suites)",
    reg.EVENT_SCHANNEL_ALERT: "36888: the listener sent fatal TLS alerts: the event's alert code says why (40 handshake failure, "
                              "70 protocol version, 80 internal error)",
}


#: Parts of the read whose loss could hide the finding that explains Schannel's events (then the events prove nothing new).
_TLS_SECTIONS = ("registry", "certificates", "machinekeys", "schannel_algorithms", "ts_general_setting")


def _tls_parts_read(facts: Facts) -> bool:
    """Whether everything an explaining finding rests on was read (the certificate, its key, protocols, cipher suites)."""
    for error in facts.get("read_errors") or []:
        section = str((error or {}).get("section") or "")
        if section.split(":", 1)[0].strip() in _TLS_SECTIONS:
            return False
    return fact(facts, "tls_cipher_suites.read") is not False and not fact(facts, "schannel.server_unknown")


def _since_last_boot(event: dict[str, t.Any], facts: Facts) -> bool:
    """Whether the event was last logged after the host's last boot (unknown times count as recent).

    Schannel reads its protocol and algorithm settings at boot: an event logged before the last boot is about a
    configuration the host no longer runs (e.g. TLS 1.2 re-enabled, then the host restarted)."""
    last, boot = parse_time(event.get("last")), parse_time(fact(facts, "os.last_boot_utc"))
    return last is None or boot is None or last >= boot


def _probe_completed_tls(probe: t.Any) -> bool:
    """Whether the probe, a client of this run, completed a TLS handshake with the listener."""
    steps = probe.get("steps") if isinstance(probe, dict) else None
    return any(isinstance(step, dict) and step.get("step") == "tls" and step.get("verdict") in ("ok", "warn")
               for step in steps or [])


def schannel_event_findings(findings: list[Finding], facts: Facts, probe: t.Any = None) -> list[Finding]:
    """Schannel events as triggers (MSRD #44): the host's own record of TLS failures raises a finding when no other finding
    already explains them. Credential events (36870/36871/36886) stop every client (high); handshake events
    (36874/36888) some clients (medium). 36885/36887 (client side, CA list) are evidence only.

    Events outlive their cause: the log keeps them for the whole event window after a fix. So events logged before
    the last boot do not count, and credential events ("every client fails") do not count when the probe has just
    completed a TLS handshake - they are from before a fix that needed no reboot (a key ACL, a new certificate)."""
    if any(f["id"] in _SCHANNEL_EXPLAINED_BY for f in findings) or not _tls_parts_read(facts):
        return []
    handshake_now = _probe_completed_tls(probe)
    triggers = [e for e in _events(facts, *reg.SCHANNEL_CREDENTIAL_EVENTS, *reg.SCHANNEL_HANDSHAKE_EVENTS)
                if e.get("count") and "schannel" in str(e.get("provider") or "").lower() and _since_last_boot(e, facts)
                and not (handshake_now and e["id"] in reg.SCHANNEL_CREDENTIAL_EVENTS)]
    if not triggers:
        return []
    context = [e for e in _events(facts, reg.EVENT_SCHANNEL_CA_LIST, reg.EVENT_SCHANNEL_ALERT_RECEIVED) if e.get("count")]
    credential = any(e["id"] in reg.SCHANNEL_CREDENTIAL_EVENTS for e in triggers)
    steps = "; ".join(_SCHANNEL_EVENT_FIXES[i] for i in sorted({e["id"] for e in triggers}))
    evidence = {"events": triggers, "context_events": context, "every_client_fails": credential}
    return [make_finding("RDP-TLS-SCHANNEL-ERRORS", evidence, manual_fix(steps), **({} if credential else {"severity": "medium"}))]


def rule_listener_acl(facts: Facts) -> list[Finding]:
    """The RDP-Tcp ACL (Win32_TSAccount) without logon+connect for Administrators or Remote Desktop Users (MSRD #31)."""
    acl = fact(facts, "listener_acl") or {}
    if acl.get("ok") is not False:
        return []
    entries = [{k: e.get(k) for k in ("sid", "account", "allowed", "denied", "logon_allowed", "logon_denied")} for e in acl.get("entries") or []]
    evidence = {"groups_without_logon": acl.get("groups_without_logon_named"), "groups_without_logon_sids": acl.get("groups_without_logon"),
                "entries": entries}
    return [make_finding("RDP-LISTENER-ACL-DENIES", evidence,
                         manual_fix("Restore the RDP-Tcp permissions (Administrators full control, Remote Desktop Users user access): "
                                    "Invoke-CimMethod on Win32_TSPermissionsSetting (namespace root\\cimv2\\TerminalServices, "
                                    "TerminalName='RDP-Tcp') -MethodName RestoreDefaults, or AddAccount for the missing group; remove "
                                    "deny entries with Win32_TSAccount.Delete; then restart TermService."))]


def rule_logon_right_groups(facts: Facts) -> list[Finding]:
    """Group level of the RDP logon rights, without naming accounts (MSRD #30) [S23][S24]."""
    rights = fact(facts, "logon_rights") or {}
    if rights.get("ok") is not False:
        return []
    return [make_finding("RDP-LOGON-RIGHT-GROUPS", {
        "groups_not_allowed": rights.get("groups_not_allowed_named"), "groups_denied": rights.get("groups_denied_named"),
        reg.RIGHT_ALLOW_RDP: fact(facts, f"accounts.rights_named.{reg.RIGHT_ALLOW_RDP}"),
        reg.RIGHT_DENY_RDP: fact(facts, f"accounts.rights_named.{reg.RIGHT_DENY_RDP}")},
        manual_fix(f"Add Remote Desktop Users and Administrators to '{reg.POLICY_ALLOW_RDP_RIGHT}' and remove them (and Everyone, "
                   f"Users, Authenticated Users) from '{reg.POLICY_DENY_RDP_RIGHT}' - in the domain GPO when gpresult /H names one, "
                   "else with secpol.msc; gpupdate /force."),
        **({} if rights.get("groups_denied") else {"severity": "medium"}))]


def rule_domain_trust(facts: Facts) -> list[Finding]:
    """A domain member whose secure channel fails (Test-ComputerSecureChannel false) (MSRD #32) [S20]."""
    domain = fact(facts, "domain") or {}
    if not domain.get("member") or domain.get("secure_channel_ok") is not False:
        return []
    return [make_finding("RDP-DOMAIN-TRUST-BROKEN", {"domain": domain.get("domain"), "secure_channel_ok": False},
                         manual_fix("Repair the computer account's secure channel: Test-ComputerSecureChannel -Repair -Credential "
                                    "<domain admin> (or Reset-ComputerMachinePassword), check the host reaches a domain controller "
                                    "(nltest /sc_query:<domain>); rejoin the domain if the repair fails. Until then domain users "
                                    "get 'The Local Security Authority cannot be contacted'; a local account still works."))]


def rule_logon_services(facts: Facts) -> list[Finding]:
    """LSM (every session), Netlogon (domain logons), BFE (the firewall's engine) not running (MSRD #21 #45). MpsSvc stopped
    is RDP-READ-INCOMPLETE's (the firewall cannot be read then)."""
    services = fact(facts, "logon_services.services") or {}
    member = bool(fact(facts, "domain.member") if fact(facts, "domain.read") else fact(facts, "os.part_of_domain"))
    wanted = [reg.SERVICE_LSM, reg.SERVICE_BFE] + ([reg.SERVICE_NETLOGON] if member else [])
    stopped = {name: services[name] for name in wanted if (services.get(name) or {}).get("running") is False}
    if not stopped:
        return []
    lsm = reg.SERVICE_LSM in stopped
    evidence = {"stopped": {n: {"state": v.get("state"), "start_mode": v.get("start_mode"), "present": v.get("present")} for n, v in stopped.items()},
                "domain_member": member}
    names = ", ".join(f"{n} ({reg.LOGON_SERVICE_DISPLAY_NAMES[n]})" for n in stopped)
    overrides: dict[str, t.Any] = {"severity": "critical", "explains_0x904": True} if lsm else (
        {} if reg.SERVICE_NETLOGON in stopped else {"severity": "medium"})
    return [make_finding("RDP-LOGON-SERVICE-STOPPED", evidence, manual_fix(
        f"Start {names}: Set-Service -Name <name> -StartupType Automatic; Start-Service -Name <name>; its System log (Service Control "
        "Manager 7000-7043) says why it stopped. LSM hosts every session, Netlogon authenticates domain accounts for NLA, BFE runs "
        "the firewall."), **overrides)]


def rule_ntlm(facts: Facts) -> list[Finding]:
    """RestrictReceivingNTLMTraffic denies NLA's NTLM step (connections by IP address, workgroup clients, local accounts)
    (MSRD #29; ms: network-security-restrict-ntlm-incoming-ntlm-traffic)."""
    ntlm = fact(facts, "ntlm") or {}
    if not ntlm.get("incoming_denied"):
        return []
    all_accounts = ntlm.get("restrict_receiving") == reg.NTLM_INCOMING_DENY_ALL
    evidence = {"key": ntlm.get("key"), "RestrictReceivingNTLMTraffic": ntlm.get("restrict_receiving"),
                "meaning": ntlm.get("restrict_receiving_meaning"), "LmCompatibilityLevel": ntlm.get("lm_compatibility_level"),
                "domain_member": fact(facts, "domain.member"), "policy_name": reg.POLICY_NTLM_INCOMING}
    return [make_finding("RDP-NTLM-INCOMING-DENIED", evidence, manual_fix(
        f"'{reg.POLICY_NTLM_INCOMING}' denies {ntlm.get('incoming_denied')}: NLA falls back to NTLM when Kerberos cannot be used "
        "(a connection by IP address or alias, a workgroup client, a local account). Connect by the host's Kerberos name, or set the "
        "policy to 'Allow all' (RestrictReceivingNTLMTraffic=0), or add exceptions, in the GPO that sets it."),
        **({} if all_accounts else {"severity": "medium"}))]


def rule_client_logons(facts: Facts) -> list[Finding]:
    """Clients reach the listener (RCM 261 / RdpCoreTS 131) and fail with a wrong password (RdpCoreTS 140), and not one
    authenticates (no RCM 1149) over the event window: the path and the listener work, the logon does not."""
    conn = fact(facts, "connections") or {}
    if not conn.get("clients_reached_listener") or conn.get("clients_authenticated") is not False or not conn.get("bad_credentials"):
        return []
    return [make_finding("RDP-CLIENTS-FAIL-LOGON", {k: conn.get(k) for k in (
        "received", "tcp_accepted", "authenticated", "bad_credentials", "last_received", "last_bad_credentials")},
        manual_fix("The network path and the listener work (the host logged the connections): the logons fail. Check the user "
                   "names and passwords, account lockout (Security 4625/4740), and the accounts' logon rights "
                   "(rdp_doctor_accounts lets diagnose check them)."))]


def rule_sessions(facts: Facts) -> list[Finding]:
    """Session cap reached; ghost disconnected sessions without a limit [S10][S15] MSRD #5 #50."""
    limits = fact(facts, "session_limits") or {}
    found = []
    active = limits.get("active_count") or 0
    instance_limit = limits.get("instance_limit")
    admin_limit = limits.get("admin_mode_limit")
    reasons = []
    if instance_limit is not None and active >= instance_limit:
        reasons.append("MaxInstanceCount")
    if admin_limit is not None and active >= admin_limit:
        reasons.append("Remote Desktop for Administration (2 sessions)")
    if reasons:
        item = limits.get("max_instance_count") or {}
        sessions = [s for s in limits.get("sessions") or [] if str(s.get("state", "")).lower() in ("active", "connected")]
        evidence = dict(_setting_evidence("max_instance_count", item), active_sessions=sessions, active_count=active,
                        admin_mode_limit=admin_limit, limited_by=reasons)
        if reasons == ["MaxInstanceCount"] and not _from_policy(item):
            fix = module_fix(MODULE_SESSION_LIMITS, max_instance_count=reg.SETTINGS["max_instance_count"].default)
        elif reasons == ["MaxInstanceCount"]:
            fix = _gpo_manual("max_instance_count", item, "Not Configured or a higher limit")
        else:
            # Remote Desktop for Administration allows two sessions whatever MaxInstanceCount says [S10]: raising
            # MaxInstanceCount alone would change nothing the client sees.
            fix = manual_fix("Log off a session ('logoff <id>' / quser; rdp.doctor.session_limits logoff_disconnected_older_than "
                             "for old disconnected ones) or install the RD Session Host role with RDS CALs for more than two "
                             "concurrent sessions.")
        found.append(_with_gpo(make_finding("RDP-SESSION-LIMIT-REACHED", evidence, fix),
                               _gpo_marker("max_instance_count", item) if "MaxInstanceCount" in reasons else []))
    found.extend(_ghost_sessions(limits))
    return found


def _ghost_sessions(limits: dict[str, t.Any]) -> list[Finding]:
    """Disconnected sessions older than a day while MaxDisconnectionTime is 0 (never)."""
    item = limits.get("max_disconnection_time") or {}
    if _int(item.get("effective")) not in (0, None):
        return []
    ghosts = [s for s in limits.get("sessions") or []
              if str(s.get("state", "")).lower() == "disconnected" and (s.get("disconnected_seconds") or 0) >= GHOST_SESSION_SECONDS]
    if not ghosts:
        return []
    evidence = dict(_setting_evidence("max_disconnection_time", item),
                    sessions=[{k: s.get(k) for k in ("id", "user", "disconnect_time", "disconnected_seconds")} for s in ghosts])
    fix = _setting_fix("max_disconnection_time", item, f"Enabled with a limit (e.g. {PROPOSED_MAX_DISCONNECTION_MS // 3600000} hours)",
                       MODULE_SESSION_LIMITS, max_disconnection_time=PROPOSED_MAX_DISCONNECTION_MS,
                       logoff_disconnected_older_than=f"{GHOST_SESSION_SECONDS // 3600}h")
    return [_with_gpo(make_finding("RDP-GHOST-SESSIONS", evidence, fix), _gpo_marker("max_disconnection_time", item))]


def rule_licensing(facts: Facts) -> list[Finding]:
    """RD Session Host licensing: grace period and license servers [S16][S38][S39] MSRD #51-#57."""
    lic = fact(facts, "licensing") or {}
    if not lic.get("rdsh_installed"):
        return []
    servers = lic.get("license_server_list") or []
    grace = lic.get("grace_period_days")
    evidence = _add_events({"rdsh_installed": True, "grace_period_days": grace, "license_servers": servers,
                            "licensing_mode": fact(lic, "licensing_mode.effective"), "licensing_type": lic.get("licensing_type_name"),
                            "specified_license_servers": fact(lic, "specified_license_servers.local"),
                            "specified_license_servers_wmi": fact(lic, "specified_license_servers.wmi"),
                            "rcm_licensing_mode": fact(lic, "rcm_licensing_mode.local")},
                           _licensing_events(facts))
    if servers:
        return _license_server_findings(lic, evidence)
    if grace == 0:
        return [make_finding("RDP-LICENSING-GRACE-EXPIRED", evidence, manual_fix(
            "Point the host at an activated RD License Server with CALs ('Use the specified Remote Desktop license servers' and "
            "'Set the Remote Desktop licensing mode'), or remove the RD Session Host role if only administration is needed."))]
    if grace is not None:
        return [make_finding("RDP-LICENSING-NOT-CONFIGURED", evidence, manual_fix(
            f"Configure a license server before the grace period ends (in {grace} days)."))]
    return []


# --------------------------------------------------------------------------------------------------
# Issue 12, part A: licensing set without Group Policy, listener state and stack, port, caps, port exhaustion
# --------------------------------------------------------------------------------------------------

def _license_server_findings(lic: dict[str, t.Any], evidence: dict[str, t.Any]) -> list[Finding]:
    """A license server is named (by policy, Server Manager, Set-RDLicenseConfiguration or WMI): no grace-period finding;
    but when Windows says every named server is unusable (GetTStoLSConnectivityStatus 3-6) the host refuses logons once
    the grace period is over (MSRD #53, SDP DC_RDSSH)."""
    status = lic.get("license_server_status") or []
    bad = [s for s in status if s.get("usable") is False]
    if not bad or any(s.get("usable") for s in status):
        return []
    grace = lic.get("grace_period_days")
    fix = manual_fix(
        "Make the license server usable: check it runs 'Remote Desktop Licensing' (TermServLicensing) and is activated with "
        "RDS CALs of this host's mode (RD Licensing Manager), that this host can reach it (TCP 135 and the RPC ports), that "
        "it accepts this host (the 'Terminal Server Computers' group when 'License server security group' is on), or "
        "point the host at a working server: Set-RDLicenseConfiguration, or WMI "
        "Win32_TerminalServiceSetting.SetSpecifiedLicenseServerList; the RD Licensing Diagnoser (lsdiag.msc) shows the same status.")
    overrides = {"severity": "critical"} if grace == 0 else {"explains_0x904": False}
    return [make_finding("RDP-LICENSE-SERVER-UNUSABLE", dict(evidence, license_server_status=status), fix, **overrides)]


def rule_licensing_certificate(facts: Facts) -> list[Finding]:
    """An RD Session Host without its RCM licensing certificate (X509 Certificate) (MSRD #52, SDP RC_RDSx509Cert)."""
    lic = fact(facts, "licensing") or {}
    if not lic.get("rdsh_installed") or lic.get("x509_certificate_present") is not False:
        return []
    return [make_finding("RDP-LICENSING-X509-MISSING", {"key": reg.RCM, "values": lic.get("x509_certificates")}, manual_fix(
        f"Restart the host (TermService recreates the licensing certificate at start). If clients keep failing with a "
        f"licensing protocol error, export {reg.RCM}, delete its values 'X509 Certificate', 'X509 Certificate ID' and "
        "'X509 Certificate2' and restart again."))]


def rule_listener_state(facts: Facts) -> list[Finding]:
    """The WTS listener Down, a foreign protocol stack on RDP-Tcp, a missing PortNumber (MSRD #3 #7 #19)."""
    listener = fact(facts, "listener") or {}
    found = []
    stack = listener.get("protocol_stack") or {}
    if listener.get("wts_state") == reg.WTS_DOWN:
        # A restart starts a listener that failed once; a stack that cannot load fails again (RDP-PROTOCOL-STACK-FOREIGN).
        fix = manual_fix("Fix the protocol stack first (RDP-PROTOCOL-STACK-FOREIGN), then restart the host.") if stack.get("foreign") \
            else module_fix(MODULE_SERVICES, termservice={"state": "restarted"})
        # No event id is documented for a listener that fails to start: the WTS state is the evidence.
        found.append(make_finding("RDP-LISTENER-DOWN", {
            "wts_state": reg.WTS_DOWN, "station": "RDP-Tcp", "port": listener.get("effective_port"),
            "termservice_running": fact(listener, f"services.{reg.TERMSERVICE}.running"),
            "tcp_listening": fact(listener, "tcp.listening")}, fix))
    if stack.get("foreign"):
        backup = fact(stack, "citrix_backup_protocol_object.local")
        wanted = backup or reg.MICROSOFT_PROTOCOL_OBJECT
        found.append(make_finding("RDP-PROTOCOL-STACK-FOREIGN", {
            "key": reg.RDP_TCP, "LoadableProtocol_Object": fact(stack, "loadable_protocol_object.local"),
            "CitrixBackupRdpTcpLoadableProtocolObject": backup, "microsoft_protocol_objects": sorted(reg.MICROSOFT_PROTOCOL_OBJECTS)},
            manual_fix(f"Set {reg.RDP_TCP} LoadableProtocol_Object back to {wanted} (the Microsoft RDP stack"
                       f"{', as CitrixBackupRdpTcpLoadableProtocolObject saved it' if backup else ''}); when the Citrix VDA is "
                       "gone, delete CitrixBackupRdpTcpLoadableProtocolObject; then restart the host (TermService loads the "
                       "stack at start). While a Citrix VDA is installed, change it with the VDA's own tools instead.")))
    if listener.get("port_missing"):
        found.append(make_finding("RDP-PORT-MISSING", {"key": reg.RDP_TCP, "value_name": "PortNumber", "local": None}, manual_fix(
            f"Create the DWORD PortNumber under {reg.RDP_TCP} with the port clients use (3389 unless changed on purpose: "
            "New-ItemProperty -Name PortNumber -PropertyType DWord -Value 3389), then restart TermService.")))
    return found


def rule_instance_limit_low(facts: Facts) -> list[Finding]:
    """A MaxInstanceCount so low that a second connection would be refused, not reached yet (MSRD #5)."""
    limits = fact(facts, "session_limits") or {}
    limit = limits.get("instance_limit")
    active = limits.get("active_count") or 0
    admin_limit = limits.get("admin_mode_limit")
    # Remote Desktop for Administration allows 2 anyway: a cap of 2 there changes nothing [S10].
    low = limit is not None and limit < (admin_limit if admin_limit is not None else reg.LOW_INSTANCE_LIMIT + 1)
    if not low or active >= limit:  # reached: RDP-SESSION-LIMIT-REACHED says it
        return []
    item = limits.get("max_instance_count") or {}
    evidence = dict(_setting_evidence("max_instance_count", item), instance_limit=limit, active_count=active,
                    admin_mode_limit=admin_limit)
    fix = _setting_fix("max_instance_count", item, "Not Configured or a higher limit", MODULE_SESSION_LIMITS,
                       max_instance_count=reg.SETTINGS["max_instance_count"].default)
    return [_with_gpo(make_finding("RDP-INSTANCE-LIMIT-LOW", evidence, fix), _gpo_marker("max_instance_count", item))]


def rule_port_exhaustion(facts: Facts) -> list[Finding]:
    """Tcpip 4227 / 4231: the host could not open outgoing TCP connections (to a domain controller for NLA, to the
    license server) (MSRD #22 #65)."""
    events = [e for e in _events(facts, reg.EVENT_TCPIP_ENDPOINT_REUSE, reg.EVENT_TCPIP_PORTS_EXHAUSTED)
              if str(e.get("provider") or "").lower().endswith(reg.PROVIDER_TCPIP.lower()) and e.get("count")]
    if not events:
        return []
    evidence = {"events": events, "dynamic_port_ranges": fact(facts, "ephemeral_ports.ranges")}
    return [make_finding("RDP-PORT-EXHAUSTION", evidence, manual_fix(
        "Find the process that holds the ports (Get-NetTCPConnection | Group-Object OwningProcess | Sort-Object Count) and fix "
        "or restart it; check the dynamic range (netsh int ipv4 show dynamicport tcp: the default is 16384 ports from 49152) "
        "and widen it only if it was narrowed (netsh int ipv4 set dynamicport tcp start=49152 num=16384)."))]


def rule_ephemeral_range(facts: Facts) -> list[Finding]:
    """A dynamic port range narrower than Windows' 16384 ports (MSRD #22): outgoing connections run out sooner."""
    ports = fact(facts, "ephemeral_ports") or {}
    count = ports.get("count")
    if count is None or count >= reg.DEFAULT_DYNAMIC_PORTS:
        return []
    evidence = {"ranges": ports.get("ranges"), "count": count, "start": ports.get("start"), "default_count": reg.DEFAULT_DYNAMIC_PORTS}
    return [make_finding("RDP-EPHEMERAL-RANGE-NARROW", evidence, manual_fix(
        "Restore the dynamic port range unless an application needs it narrowed: netsh int ipv4 set dynamicport tcp start=49152 "
        "num=16384 (and ipv6), then reboot."))]


def rule_short_time_limits(facts: Facts) -> list[Finding]:
    """MaxIdleTime / MaxConnectionTime in effect (policy, or RDP-Tcp with fInherit*=0) and under 5 minutes: sessions are
    disconnected - or logged off with fResetBroken - in ordinary work (extended reasons 3 and 1) (MSRD #50)."""
    limits = fact(facts, "session_limits") or {}
    short = {name: limits.get(name) or {} for name in ("max_idle_time", "max_connection_time")
             if 0 < (_int((limits.get(name) or {}).get("effective")) or 0) < reg.SHORT_TIME_LIMIT_MS}
    if not short:
        return []
    reset = limits.get("reset_broken") or {}
    evidence = {name: _setting_evidence(name, item) for name, item in short.items()}
    evidence.update(reset_broken=_setting_evidence("reset_broken", reset), logs_off=_int(reset.get("effective")) == 1,
                    short_limit_ms=reg.SHORT_TIME_LIMIT_MS)
    wanted = {"max_idle_time": reg.PROPOSED_MAX_IDLE_MS, "max_connection_time": 0}
    policy = [name for name, item in short.items() if _from_policy(item)]
    if policy:
        fix = _gpo_manual(policy[0], short[policy[0]], "a longer limit (e.g. 15 minutes idle) or Not Configured")
    else:
        fix = module_fix(MODULE_SESSION_LIMITS, **{name: wanted[name] for name in short})
    markers = [m for name, item in short.items() for m in _gpo_marker(name, item)]
    return [_with_gpo(make_finding("RDP-SESSION-TIME-LIMIT-SHORT", evidence, fix), markers)]


def rule_self_signed_store(facts: Facts) -> list[Finding]:
    """SelfSignedCertStore names another store than "Remote Desktop" (MSRD #34): the self-signed certificate is created
    and renewed there, while rdp.doctor (and MSRD) look for it in Remote Desktop."""
    item = fact(facts, "certificate.self_signed_cert_store") or {}
    value = item.get("effective")
    if item.get("source") != "local" or value is None or str(value).lower() == reg.STORE_REMOTE_DESKTOP.lower():
        return []
    return [make_finding("RDP-SELF-SIGNED-STORE-MOVED", _setting_evidence("self_signed_cert_store", item), manual_fix(
        f"Delete SelfSignedCertStore under {reg.WINSTATIONS} (the default store is Remote Desktop) unless a product set it on "
        "purpose, then restart SessionEnv so that the self-signed certificate is made in Remote Desktop."))]


def rule_cert_store_acl(facts: Facts) -> list[Finding]:
    """Deny entries for SYSTEM / NETWORK SERVICE on SystemCertificates\\Remote Desktop or TS\\RCM (MSRD #38): SessionEnv cannot
    make or renew the self-signed certificate (1057/1058), TermService cannot read it."""
    acls = fact(facts, "certificate_store_acls") or {}
    if not acls.get("denied"):
        return []
    keys = {name: item for name, item in (acls.get("keys") or {}).items() if item.get("deny_aces")}
    evidence = _add_events({"keys": keys}, [e for e in _events(facts, reg.EVENT_CERT_CREATE_FAILED, reg.EVENT_CERT_REPLACE_FAILED)
                                            if e.get("count")])
    paths = ", ".join(item["path"] for item in keys.values())
    return [make_finding("RDP-CERT-STORE-ACL-DENY", evidence, manual_fix(
        f"Remove the Deny entries for SYSTEM / NETWORK SERVICE from {paths} (regedit > Permissions, or Get-Acl / "
        "RemoveAccessRule / Set-Acl), then restart SessionEnv so that the self-signed certificate can be made or renewed."))]


_ACCOUNT_FIXES = {
    "RDP-ACCOUNT-NOT-FOUND": "Create the account or correct rdp_doctor_accounts.",
    "RDP-ACCOUNT-DISABLED": "Enable the account (Enable-LocalUser / Enable-ADAccount) if it must log on.",
    "RDP-ACCOUNT-LOCKED-OUT": "Unlock the account (Unlock-ADAccount, or clear Lockout on the local account) and find the source "
                              "of bad passwords (Security 4740/4625).",
    "RDP-ACCOUNT-DENIED-LOGON": "Remove the account or its group from 'Deny log on through Remote Desktop Services' "
                                "(SeDenyRemoteInteractiveLogonRight; CIS sets Guests and Local account) - usually a GPO.",
    "RDP-ACCOUNT-NOT-ALLOWED": "Add the account to Remote Desktop Users (Add-LocalGroupMember -SID S-1-5-32-555 -Member <name>) "
                               "and keep that group in 'Allow log on through Remote Desktop Services'.",
    "RDP-ACCOUNT-MEMBERSHIP-UNKNOWN": "Check the account's domain groups against Remote Desktop Users and the logon right: "
                                      "'whoami /groups' in the user's session, or Get-ADPrincipalGroupMembership <user>; rdp.doctor "
                                      "reads the host's local groups only, and a domain group that is a member of them may grant it.",
}


def _account_flags(account: dict[str, t.Any]) -> list[str]:
    """Every problem of an account (an account can be disabled and denied at once)."""
    flags = []
    if account.get("exists") is False:
        return ["RDP-ACCOUNT-NOT-FOUND"]
    for key, finding_id in (("disabled", "RDP-ACCOUNT-DISABLED"), ("locked_out", "RDP-ACCOUNT-LOCKED-OUT"),
                            ("denied_by", "RDP-ACCOUNT-DENIED-LOGON")):
        if account.get(key):
            flags.append(finding_id)
    if account.get("exists") and not account.get("allowed_by"):
        # Without the account's domain groups (groups_complete false) one of them may grant the right: not evaluated,
        # never "not allowed" (a denied account is denied whatever its groups allow).
        unknown = account.get("groups_complete") is False and not account.get("denied_by")
        flags.append("RDP-ACCOUNT-MEMBERSHIP-UNKNOWN" if unknown else "RDP-ACCOUNT-NOT-ALLOWED")
    return flags


def rule_accounts(facts: Facts) -> list[Finding]:
    """The accounts the user asked about: exist, enabled, unlocked, allowed and not denied [S23][S24][S32]."""
    accounts = fact(facts, "accounts") or {}
    rights = accounts.get("rights") or {}
    by_id: dict[str, list[dict[str, t.Any]]] = {}
    for account in accounts.get("checked") or []:
        for finding_id in _account_flags(account):
            by_id.setdefault(finding_id, []).append({k: account.get(k) for k in (
                "name", "sid", "exists", "disabled", "locked_out", "groups", "groups_complete", "in_remote_desktop_users", "allowed_by",
                "denied_by")})
    found = []
    for finding_id, items in by_id.items():
        evidence = {"accounts": items, reg.RIGHT_ALLOW_RDP: rights.get(reg.RIGHT_ALLOW_RDP),
                    reg.RIGHT_DENY_RDP: rights.get(reg.RIGHT_DENY_RDP)}
        found.append(make_finding(finding_id, evidence, manual_fix(_ACCOUNT_FIXES[finding_id])))
    return found


def rule_clock(facts: Facts) -> list[Finding]:
    """Host clock far from the controller's: Kerberos/NLA and certificate validity suffer."""
    skew = fact(facts, "os.clock_skew_seconds")
    if skew is None or abs(skew) <= CLOCK_SKEW_SECONDS:
        return []
    return [make_finding("RDP-CLOCK-SKEW", {"clock_skew_seconds": skew, "host_time_utc": fact(facts, "os.host_time_utc"),
                                            "controller_time_utc": facts.get("collected_at"), "limit_seconds": CLOCK_SKEW_SECONDS},
                         manual_fix("Fix time synchronisation (w32tm /resync; domain members follow the domain hierarchy)."))]


#: What could not be checked when a part of the raw document could not be read (section name -> checks).
UNCHECKED_BY_SECTION: dict[str, str] = {
    "os": "host names for the certificate name check",
    "registry": "the settings stored under that key",
    "ts_general_setting": "WMI's view of the listener's security settings (the registry values are used)",
    "ts_setting": "RD Session Host role and licensing",
    "rd_licensing": "the license servers set without Group Policy, their connectivity and the licensing certificate",
    "cert_store_acls": "Deny entries on the Remote Desktop certificate store and RCM",
    "ephemeral_ports": "the TCP dynamic port range",
    "services": "Remote Desktop services and who owns the RDP port",
    "listening": "who listens on the RDP port",
    "certificates": "the listener certificate and its private key",
    "tspkg_version": "the CredSSP update level",
    "firewall": "the firewall rules and profiles for the RDP port",
    "sessions": "the session limit and disconnected sessions",
    "machinekeys": "the MachineKeys folder and the listener key file",
    "winrm_listeners": "WinRM listeners (informational)",
    "accounts": "the accounts' right to log on through Remote Desktop Services",
    "events": "the events that back the findings (evidence only)",
    "schannel_algorithms": "the TLS cipher suites left by the SCHANNEL algorithm keys",
    "listener_acl": "the RDP-Tcp listener's permissions",
    "secure_channel": "the domain secure channel",
    "logon_services": "the services a logon needs (LSM, Netlogon, BFE)",
}


def rule_read_errors(facts: Facts) -> list[Finding]:
    """Sections the host could not read: the checks that need them did not run; say so instead of "healthy".

    No other rule concludes anything from an unread section (its facts are None / "unknown"), so this finding is
    the only trace of the hole, with the host's own error messages as evidence.
    """
    errors = [e for e in facts.get("read_errors") or [] if isinstance(e, dict)]
    if not errors:
        return []
    not_checked = []
    for error in errors:
        section = str(error.get("section") or "")
        text = UNCHECKED_BY_SECTION.get(section.split(":", 1)[0].strip(), "")
        line = f"{section}: {text}" if text else ""
        if line and line not in not_checked:
            not_checked.append(line)
    return [make_finding("RDP-READ-INCOMPLETE", {"read_errors": errors, "not_checked": not_checked}, manual_fix(
        "Fix what stopped the read (each error names it: start the Windows Defender Firewall service, repair the WMI "
        "provider, restore the domain trust...), then run diagnose again. Until then the checks listed under not_checked "
        "did not run on this host; every other finding stands."))]


HOST_RULES: tuple[t.Callable[[Facts], list[Finding]], ...] = (
    rule_connections, rule_services, rule_sockets, rule_listener_options, rule_firewall, rule_certificate,
    rule_machinekeys, rule_credssp, rule_security, rule_schannel, rule_sessions, rule_licensing, rule_accounts,
    rule_clock,
    rule_cipher_suites, rule_listener_acl, rule_logon_right_groups, rule_domain_trust, rule_logon_services, rule_ntlm,
    rule_client_logons,
    rule_licensing_certificate, rule_listener_state, rule_instance_limit_low, rule_port_exhaustion, rule_self_signed_store,
    rule_cert_store_acl, rule_ephemeral_range, rule_short_time_limits,
    rule_read_errors,
)


# ==================================================================================================
# Probe joins (contracts section 6)
# ==================================================================================================

#: Probe steps whose failure stops every client (contracts section 6).
PROBE_BLOCKING_STEPS = ("dns", "tcp", "x224", "tls", "nla")


def probe_step(probe: dict[str, t.Any] | None, name: str) -> dict[str, t.Any]:
    """One step of a probe result, ``{}`` when absent."""
    for step in (probe or {}).get("steps") or []:
        if isinstance(step, dict) and step.get("step") == name:
            return step
    return {}


def _probe_section(probe: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    """A probe section (``dns``, ``tcp``, ``certificate``...), ``{}`` when absent."""
    section = probe.get(name)
    return section if isinstance(section, dict) else {}


def _probe_step_evidence(probe: dict[str, t.Any], name: str) -> dict[str, t.Any]:
    """What the probe saw at one step, compact."""
    step = probe_step(probe, name)
    return {"target": probe.get("target"), "port": probe.get("port"), "step": name, "verdict": step.get("verdict"),
            "summary": step.get("summary"), "details": step.get("details")}


def _step_ids(probe: dict[str, t.Any], name: str) -> list[str]:
    """Finding ids the probe attached to one step."""
    return [str(i) for i in probe_step(probe, name).get("finding_ids") or []]


def probe_tcp_failed(probe: dict[str, t.Any]) -> str | None:
    """'refused', 'timeout' or 'failed' when the probe could not open TCP to the target; None otherwise."""
    step = probe_step(probe, "tcp")
    if step.get("verdict") != "fail":
        return None
    ids = _step_ids(probe, "tcp")
    if "RDP-PROBE-TCP-REFUSED" in ids:
        return "refused"
    if "RDP-PROBE-TCP-TIMEOUT" in ids:
        return "timeout"
    return "failed"


def probe_thumbprint(probe: dict[str, t.Any]) -> str | None:
    """SHA-1 thumbprint of the certificate the probe received (upper hex), or None."""
    section = _probe_section(probe, "certificate")
    leaf = section.get("leaf") if isinstance(section.get("leaf"), dict) else section
    for key in ("sha1_thumbprint", "thumbprint", "sha1"):
        value = leaf.get(key) or section.get(key)
        if value:
            return "".join(ch for ch in str(value) if ch.isalnum()).upper()
    return None


def probe_cert_expired(probe: dict[str, t.Any]) -> bool:
    """Whether the probe saw an expired certificate."""
    section = _probe_section(probe, "certificate")
    leaf = section.get("leaf") if isinstance(section.get("leaf"), dict) else section
    validity = leaf.get("validity") if isinstance(leaf.get("validity"), dict) else {}
    ids = list(leaf.get("problem_ids") or []) + list(section.get("problem_ids") or [])
    return bool(validity.get("expired") or leaf.get("expired") or "RDP-CERT-EXPIRED" in ids)


def probe_dns_mismatch(probe: dict[str, t.Any]) -> bool:
    """Whether the probe found the name resolving elsewhere than the inventory address."""
    return "RDP-DNS-MISMATCH" in _step_ids(probe, "dns")


def _network_blockers(findings: list[Finding]) -> list[Finding]:
    """Host findings that explain a refused or timed-out TCP connection."""
    network = {"RDP-FIREWALL-RULES-DISABLED", "RDP-PORT-NOT-ALLOWED", "RDP-FIREWALL-BLOCK-RULE", "RDP-FIREWALL-GPO-BLOCKS",
               "RDP-CONNECTIONS-DENIED", "RDP-LISTENER-DISABLED", "RDP-SERVICE-STOPPED", "RDP-SERVICE-DISABLED",
               "RDP-PORT-CONFLICT", "RDP-NOT-LISTENING", "RDP-LAN-ADAPTER", "RDP-SERVICE-ACCOUNT", "RDP-DNS-MISMATCH"}
    return [f for f in findings if f["id"] in network]


def _host_connections(facts: Facts) -> dict[str, t.Any]:
    """The host's record of clients reaching the listener (RCM 261 / 1149, RdpCoreTS 131): when other clients arrive
    while the probe cannot, the block is on the probe's path, not on the host."""
    conn = fact(facts, "connections") or {}
    keys = ("clients_reached_listener", "received", "tcp_accepted", "authenticated", "last_received", "last_authenticated")
    return {k: conn.get(k) for k in keys}


def join_probe(findings: list[Finding], facts: Facts, probe: dict[str, t.Any]) -> list[Finding]:
    """Add the probe's evidence to host findings, and the findings only the client's eye can see."""
    by_id = {f["id"]: f for f in findings}
    added: list[Finding] = []
    if probe_dns_mismatch(probe):
        added.append(make_finding("RDP-DNS-MISMATCH", dict(_probe_step_evidence(probe, "dns"), dns=_probe_section(probe, "dns")),
                                  manual_fix("Fix the DNS record (or the client's hosts file / stale cache: ipconfig /flushdns) so "
                                             "the name resolves to the host; connecting by IP address confirms it.")))
    tcp_failure = probe_tcp_failed(probe)
    if tcp_failure:
        tcp_evidence = dict(_probe_step_evidence(probe, "tcp"), failure=tcp_failure)
        blockers = _network_blockers(findings + added)
        for finding in blockers:
            finding["evidence"]["probe"] = tcp_evidence
        if not blockers and facts:
            added.append(make_finding("RDP-PATH-BLOCKED", {"probe": tcp_evidence, "host_listening": fact(facts, "listener.tcp.listening"),
                                                           "host_firewall_open": fact(facts, "firewall.tcp.open_in_any_profile"),
                                                           "host_connections": _host_connections(facts)},
                                      manual_fix(("Other clients reach the listener (the host logged their connections): the block "
                                                  "is on the path from where the probe ran. " if fact(facts, "connections.clients_reached_listener")
                                                  else "") +
                                                 "The host listens and its firewall allows the port: look between client and host "
                                                 "(network ACL / NSG / security group, NAT or port forwarding, a VPN, a proxy).")))
    _join_certificate(by_id, facts, probe, added)
    result = findings + added
    _probe_unexplained(result, facts, probe)
    return result


def _join_certificate(by_id: dict[str, Finding], facts: Facts, probe: dict[str, t.Any], added: list[Finding]) -> None:
    """Probe certificate vs the host's bound certificate: same and expired, or another one on the path."""
    seen = probe_thumbprint(probe)
    if not seen:
        return
    host_thumbprint = fact(facts, "certificate.bound_thumbprint")
    evidence = {"probe_thumbprint": seen, "host_bound_thumbprint": host_thumbprint,
                "probe_certificate": {k: v for k, v in _probe_section(probe, "certificate").items()
                                      if k in ("subject", "issuer", "not_after", "san_dns", "problem_ids")}}
    if host_thumbprint and seen != host_thumbprint:
        added.append(make_finding("RDP-PATH-CERT-MISMATCH", evidence, manual_fix(
            "The client is not talking to this host's listener: a TLS-inspecting proxy/firewall, a load balancer or RD Gateway "
            "terminating TLS, or a name that resolves to another host. Compare the thumbprints and fix the path or the DNS record.")))
        return
    if probe_cert_expired(probe):
        if "RDP-CERT-EXPIRED" in by_id:
            by_id["RDP-CERT-EXPIRED"]["evidence"]["probe"] = evidence
        elif not facts:
            added.append(make_finding("RDP-CERT-EXPIRED", {"probe": evidence}, module_fix(MODULE_LISTENER_CERTIFICATE, state="self_signed")))


def _probe_unexplained(findings: list[Finding], facts: Facts, probe: dict[str, t.Any]) -> None:
    """The probe fails, yet nothing found explains it: say so rather than stay silent."""
    verdict = probe.get("verdict") or {}
    # A certificate the user can click through (name, trust) is not a connection failure; host rules judge validity.
    if verdict.get("ok") is not False or verdict.get("failed_step") not in PROBE_BLOCKING_STEPS:
        return
    if any(f["explains_0x904"] for f in findings):
        return
    findings.append(make_finding("RDP-PROBE-FAILED", {
        "failed_step": verdict.get("failed_step"), "client_sees": verdict.get("client_sees"),
        "probe_finding_ids": verdict.get("finding_ids"), "step": _probe_step_evidence(probe, str(verdict.get("failed_step") or "")),
        "host_facts": bool(facts)},
        manual_fix("Read the probe's failed step; when the host facts are missing (unreachable over WinRM), fix that first "
                   "and run diagnose again.")))


# ==================================================================================================
# Entry point
# ==================================================================================================

def _gpo_override(findings: list[Finding]) -> list[Finding]:
    """One RDP-GPO-OVERRIDE listing every setting a policy forces, from the markers of the other findings."""
    settings = []
    for finding in findings:
        for marker in finding.pop("_gpo", []):
            settings.append(dict(marker, finding=finding["id"]))
    if any(f["id"] == "RDP-FIREWALL-GPO-BLOCKS" for f in findings):
        settings.append({"setting": "firewall_remote_desktop_exception", "policy_name": reg.POLICY_FIREWALL,
                         "finding": "RDP-FIREWALL-GPO-BLOCKS"})
    if not settings:
        return []
    return [make_finding("RDP-GPO-OVERRIDE", {"settings": settings}, manual_fix(
        "Change the listed policies in the domain GPO that sets them (gpresult /H on the host names it), then gpupdate /force. "
        "rdp.doctor writes local values only; a GPO puts its value back at the next refresh."))]


def sort_key(finding: Finding) -> tuple[int, int, str]:
    """Causes that explain 0x904 first, then by severity, then by id (stable)."""
    return (0 if finding.get("explains_0x904") else 1, severity_rank(finding.get("severity", "info")),
            finding.get("id", ""))


def evaluate(facts: Facts | None, probe: dict[str, t.Any] | None = None) -> list[Finding]:
    """Findings for one host from its facts (``ansible_facts.rdp_doctor``) and an optional probe result.

    ``facts`` may be empty or None (host unreachable): only the probe's findings are returned then.
    Each id appears at most once; findings are ordered causes of 0x904 first, then by severity.
    """
    facts = facts if isinstance(facts, dict) else {}
    findings: list[Finding] = []
    if facts:
        for rule in HOST_RULES:
            findings.extend(rule(facts))
        findings.extend(schannel_event_findings(findings, facts, probe))
    if isinstance(probe, dict) and probe:
        findings = join_probe(findings, facts, probe)
    findings.extend(_gpo_override(findings))
    unique: dict[str, Finding] = {}
    for finding in findings:
        finding.pop("_gpo", None)
        unique.setdefault(finding["id"], finding)
    return sorted(unique.values(), key=sort_key)
