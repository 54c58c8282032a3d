"""Findings rules on hand-written facts: every fault of contracts section 8, alone and combined, GPO, probe joins."""

from __future__ import annotations

import copy
import datetime as dt
import itertools

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan as rp
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

NOW = samples.NOW
DESIGN_MODULES = {f"{rp.COLLECTION}.{name}" for name in rp.MODULES}
# Faults that change the same part of the model: applying both keeps only one of them (not a rules question).
EXCLUSIVE = [
    {"cert_expired", "cert_wrong_name", "cert_bound_missing"},
    {"cert_bound_missing", "cert_key_unreadable", "listener_key_missing"},
    {"cert_key_unreadable", "listener_key_missing"},
    {"credssp_force_updated", "credssp_vulnerable"},
    {"tls12_disabled", "all_tls_disabled"},
    {"session_limit_reached", "ghost_sessions"},
    {"port_moved", "port_conflict"},
    {"termservice_stopped", "termservice_disabled"},
]


def facts_of(raw: dict) -> dict:
    """Normalise a raw document at the samples' time, checking rdpuser."""
    return hf.normalize(raw, NOW, ["rdpuser"])


def evaluate(*faults: str, probe: dict | None = None) -> list[dict]:
    """Findings for a healthy host with the faults applied."""
    return fd.evaluate(facts_of(samples.raw_with(*faults)), probe)


def ids(findings: list[dict]) -> list[str]:
    """The ids, in order."""
    return [f["id"] for f in findings]


def by_id(findings: list[dict], finding_id: str) -> dict:
    """One finding."""
    return next(f for f in findings if f["id"] == finding_id)


def _compatible(names: tuple[str, ...]) -> bool:
    """No two faults of the same exclusive set."""
    return all(len(group & set(names)) <= 1 for group in EXCLUSIVE)


# --------------------------------------------------------------------------------------------------
# shape, catalogue, healthy host
# --------------------------------------------------------------------------------------------------

def test_healthy_host_has_no_findings() -> None:
    """A healthy host yields nothing at all (not even info)."""
    assert evaluate() == []


def test_unreachable_host_without_probe_has_no_findings() -> None:
    """No facts and no probe: nothing to say (the role reports the host as unreachable)."""
    assert not fd.evaluate(None) and not fd.evaluate({}, None)


def assert_module_accepts(fix: dict) -> None:
    """A fix that names a module passes that module's argument spec and option checks (what the role would send)."""
    planner = rp.planner(fix["module"])
    outcome = ArgumentSpecValidator(planner.ARGUMENT_SPEC).validate(dict(fix["params"]))
    assert outcome.error_messages == [], fix
    assert planner.option_problems(outcome.validated_parameters) == [], fix


@pytest.mark.parametrize("fault", sorted(samples.FAULTS))
def test_each_fault_alone(fault: str) -> None:
    """Each lab fault yields at least its finding ids (contracts section 8), well formed."""
    found = evaluate(fault)
    assert set(samples.FAULTS[fault][1]) <= set(ids(found)), ids(found)
    for finding in found:
        entry = fd.CATALOGUE[finding["id"]]
        assert set(finding) == {"id", "title", "severity", "category", "explains_0x904", "evidence", "fix"}
        assert (finding["title"], finding["category"], finding["explains_0x904"]) == (entry.title, entry.category, entry.explains_0x904)
        assert finding["severity"] in fd.SEVERITIES and finding["evidence"]
        assert set(finding["fix"]) in ({"module", "params"}, {"manual"})
        if "module" in finding["fix"]:
            assert finding["fix"]["module"] in DESIGN_MODULES and isinstance(finding["fix"]["params"], dict)
            assert_module_accepts(finding["fix"])
    assert len(set(ids(found))) == len(found)


def test_faults_combined_in_pairs() -> None:
    """Every compatible pair of faults yields the ids of both faults."""
    missing = []
    for pair in itertools.combinations(samples.FAULTS, 2):
        if not _compatible(pair):
            continue
        found = set(ids(evaluate(*pair)))
        wanted = set(samples.FAULTS[pair[0]][1]) | set(samples.FAULTS[pair[1]][1])
        if not wanted <= found:
            missing.append((pair, sorted(wanted - found)))
    assert missing == []


def test_many_faults_at_once() -> None:
    """A host with one fault of each kind: every id, causes of 0x904 first, then by severity."""
    chosen: list[str] = []
    for name in samples.FAULTS:
        if _compatible(tuple(chosen + [name])):
            chosen.append(name)
    found = evaluate(*chosen)
    for name in chosen:
        assert set(samples.FAULTS[name][1]) <= set(ids(found)), name
    keys = [(not f["explains_0x904"], fd.SEVERITIES.index(f["severity"])) for f in found]
    assert keys == sorted(keys)
    assert found[0]["explains_0x904"] and found[0]["severity"] == "critical" and not found[-1]["explains_0x904"]


def test_catalogue_covers_the_contract_ids() -> None:
    """Every id contracts section 8 names exists in the catalogue (the probe's DNS id included)."""
    contract_ids = {i for _fn, wanted in samples.FAULTS.values() for i in wanted} | {"RDP-DNS-MISMATCH"}
    assert contract_ids <= set(fd.CATALOGUE)


def test_catalogue_is_documented() -> None:
    """docs/findings.md has one section per id."""
    with open(f"{hf.__file__.rsplit('/plugins/', 1)[0]}/docs/findings.md", encoding="utf-8") as handle:
        text = handle.read()
    headings = {line[3:].strip() for line in text.splitlines() if line.startswith("## ")}
    assert set(fd.CATALOGUE) <= headings
    assert {h for h in headings if h.startswith("RDP-")} <= set(fd.CATALOGUE)
    for finding_id, entry in fd.CATALOGUE.items():
        section = text.split(f"## {finding_id}\n", 1)[1].split("\n## ", 1)[0]
        assert (f"severity `{entry.severity}`, category `{entry.category}`, explains 0x904: "
                f"{'yes' if entry.explains_0x904 else 'no'}") in section, finding_id
        for part in ("What it means", "Evidence", "Why it breaks RDP", "Fix", "Sources"):
            assert f"**{part}:**" in section, (finding_id, part)


# --------------------------------------------------------------------------------------------------
# evidence and fixes of the contract faults
# --------------------------------------------------------------------------------------------------

def test_local_value_gets_a_module_fix() -> None:
    """fDenyTSConnections=1 set locally: listener_security can fix it; no GPO finding."""
    found = evaluate("rdp_disabled")
    denied = by_id(found, "RDP-CONNECTIONS-DENIED")
    assert denied["evidence"]["source"] == "local" and denied["evidence"]["effective"] == 1
    assert denied["fix"] == {"module": "rdp.doctor.listener_security", "params": {"allow_connections": True}}
    assert "RDP-GPO-OVERRIDE" not in ids(found)


@pytest.mark.parametrize(("fault", "finding_id", "value_name"), [
    ("gpo_denies_connections", "RDP-CONNECTIONS-DENIED", "fDenyTSConnections"),
    ("gpo_overrides_security_layer", "RDP-SECURITY-LAYER-RDP", "SecurityLayer"),
])
def test_policy_value_gets_a_manual_fix_and_gpo_override(fault: str, finding_id: str, value_name: str) -> None:
    """The bad value comes from policy: evidence says so, the fix is manual (domain GPO), RDP-GPO-OVERRIDE lists it."""
    found = evaluate(fault)
    finding = by_id(found, finding_id)
    assert finding["evidence"]["source"] == "policy" and finding["evidence"]["enforced_by_group_policy"]
    assert finding["evidence"]["policy_key"] == reg.POL and finding["evidence"]["local"] != finding["evidence"]["policy"]
    assert "manual" in finding["fix"] and value_name in finding["fix"]["manual"] and "gpresult" in finding["fix"]["manual"]
    override = by_id(found, "RDP-GPO-OVERRIDE")
    assert override["evidence"]["settings"][0]["value_name"] == value_name
    assert override["evidence"]["settings"][0]["finding"] == finding_id and "manual" in override["fix"]


def test_gpo_on_nla_and_session_limits() -> None:
    """Policy-forced NLA off and a policy connection cap are GPO overrides too."""
    raw = samples.raw_with("session_limit_reached")
    raw["registry"][reg.POL] = {"UserAuthentication": 0, "MaxInstanceCount": 2}
    found = fd.evaluate(facts_of(raw))
    assert "manual" in by_id(found, "RDP-NLA-DISABLED")["fix"]
    assert "manual" in by_id(found, "RDP-SESSION-LIMIT-REACHED")["fix"]
    settings = {s["setting"] for s in by_id(found, "RDP-GPO-OVERRIDE")["evidence"]["settings"]}
    assert settings == {"user_authentication", "max_instance_count"}


def test_good_policy_value_is_no_finding() -> None:
    """A policy that forces a good value over a bad local one is fine."""
    raw = samples.raw_with("security_layer_rdp")
    raw["registry"][reg.POL] = {"SecurityLayer": 2}
    assert fd.evaluate(facts_of(raw)) == []


def test_service_findings() -> None:
    """Stopped vs disabled TermService, its account, and the support services."""
    stopped = by_id(evaluate("termservice_stopped"), "RDP-SERVICE-STOPPED")
    assert stopped["evidence"] == {"service": "TermService", "state": "Stopped", "start_mode": "Manual",
                                   "account": "NT Authority\\NetworkService"}
    assert ids(evaluate("termservice_disabled")) == ["RDP-SERVICE-DISABLED"]
    raw = samples.healthy_raw()
    raw["services"][0]["account"] = "LocalSystem"
    raw["services"][1]["start_mode"] = "Disabled"
    found = fd.evaluate(facts_of(raw))
    assert ids(found) == ["RDP-SERVICE-ACCOUNT", "RDP-SUPPORT-SERVICE-DISABLED"]
    assert by_id(found, "RDP-SUPPORT-SERVICE-DISABLED")["evidence"]["services"][0]["service"] == "SessionEnv"


def test_port_conflict_names_the_owner() -> None:
    """The other process and pid are in the evidence and the fix."""
    finding = by_id(evaluate("port_conflict"), "RDP-PORT-CONFLICT")
    assert finding["evidence"]["owners"][0]["process"] == "nginx" and finding["evidence"]["owners"][0]["pid"] == 4242
    assert "nginx" in finding["fix"]["manual"] and "4242" in finding["fix"]["manual"]


def test_not_listening_only_when_the_host_should_listen() -> None:
    """Nothing on the port with TermService running and RDP allowed; not when RDP is off (no double report)."""
    raw = samples.healthy_raw()
    raw["listening"]["tcp"] = [s for s in raw["listening"]["tcp"] if s["port"] != 3389]
    assert ids(fd.evaluate(facts_of(raw))) == ["RDP-NOT-LISTENING"]
    assert "RDP-NOT-LISTENING" not in ids(evaluate("rdp_disabled")) + ids(evaluate("termservice_stopped"))


def test_udp_conflict_is_low() -> None:
    """Another owner of UDP 3389 is a low finding (RDP falls back to TCP)."""
    raw = samples.healthy_raw()
    raw["listening"]["udp"] = [{"address": "0.0.0.0", "port": 3389, "pid": 77, "process": "game"}]
    finding = fd.evaluate(facts_of(raw))[0]
    assert finding["id"] == "RDP-UDP-PORT-CONFLICT" and finding["severity"] == "low" and not finding["explains_0x904"]


def test_moved_port_firewall_fix() -> None:
    """The rule group is on but covers 3389 only: the firewall module opens the moved port; the port itself is info."""
    found = evaluate("port_moved")
    finding = by_id(found, "RDP-PORT-NOT-ALLOWED")
    assert finding["fix"] == {"module": "rdp.doctor.firewall", "params": {"state": "enabled", "port": 3390}}
    assert finding["evidence"]["rule_ports"] == ["3389"] and by_id(found, "RDP-PORT-NON-DEFAULT")["severity"] == "info"
    assert "RDP-FIREWALL-RULES-DISABLED" not in ids(found)


def test_disabled_rules_and_moved_port_together() -> None:
    """Both the disabled group and the uncovered port are reported."""
    assert {"RDP-FIREWALL-RULES-DISABLED", "RDP-PORT-NOT-ALLOWED"} <= set(ids(evaluate("firewall_rdp_disabled", "port_moved")))


def test_firewall_rule_findings() -> None:
    """Disabled group -> firewall module; a block rule in every profile -> manual."""
    finding = by_id(evaluate("firewall_rdp_disabled"), "RDP-FIREWALL-RULES-DISABLED")
    assert finding["fix"] == {"module": "rdp.doctor.firewall", "params": {"state": "enabled", "port": 3389}}
    assert set(finding["evidence"]["rdp_rules_disabled"]) == set(reg.FIREWALL_RDP_RULES)
    raw = samples.healthy_raw()
    raw["firewall"]["rules"].append({"name": "Deny RDP", "display_name": None, "group": None, "enabled": True, "direction": "Inbound",
                                     "action": "Block", "profiles": ["Any"], "protocol": "TCP", "local_ports": ["3389"],
                                     "policy_store_source": "GroupPolicy"})
    found = fd.evaluate(facts_of(raw))
    assert ids(found) == ["RDP-FIREWALL-BLOCK-RULE"] and "Deny RDP" in found[0]["fix"]["manual"]
    for profile in raw["firewall"]["profiles"]:
        profile["enabled"] = False  # the firewall is off: its rules block nothing
    assert fd.evaluate(facts_of(raw)) == []


def test_firewall_gpo_blocks_evidence() -> None:
    """Both GPO keys with Enabled=0, the profiles they close, and RDP-GPO-OVERRIDE."""
    found = evaluate("firewall_gpo_blocks")
    finding = by_id(found, "RDP-FIREWALL-GPO-BLOCKS")
    assert finding["evidence"]["policy"]["domain"] == {"key": reg.FW_GPO_DOMAIN, "Enabled": 0, "profiles": ["Domain"]}
    assert finding["evidence"]["blocked_profiles"] == ["Domain", "Private", "Public"] and "manual" in finding["fix"]
    assert by_id(found, "RDP-GPO-OVERRIDE")["evidence"]["settings"][0]["finding"] == "RDP-FIREWALL-GPO-BLOCKS"


def test_firewall_unknown_gives_nothing_but_says_so() -> None:
    """A firewall section the host could not read is no evidence of a block: only the read is reported incomplete."""
    raw = samples.raw_with("firewall_rdp_disabled")
    raw["firewall"] = {"error": {"type": "ServiceNotRunning", "message": "the Windows Defender Firewall service (MpsSvc) is Stopped"}}
    found = fd.evaluate(facts_of(raw))
    assert ids(found) == ["RDP-READ-INCOMPLETE"]
    assert found[0]["evidence"] == {
        "read_errors": [{"section": "firewall", "type": "ServiceNotRunning", "message": "the Windows Defender Firewall service (MpsSvc) is Stopped"}],
        "not_checked": ["firewall: the firewall rules and profiles for the RDP port"]}
    assert found[0]["explains_0x904"] is False and "manual" in found[0]["fix"]


def test_certificate_findings_evidence() -> None:
    """Expired: dates, thumbprint, events 1058, renew fix; wrong name: names vs host names."""
    expired = by_id(evaluate("cert_expired"), "RDP-CERT-EXPIRED")
    assert expired["evidence"]["days_remaining"] == -18 and expired["evidence"]["self_signed"]
    assert expired["evidence"]["events"][0]["id"] == 1058
    assert expired["fix"] == {"module": "rdp.doctor.listener_certificate", "params": {"state": "self_signed"}}
    wrong = by_id(evaluate("cert_wrong_name"), "RDP-CERT-NAME-MISMATCH")
    assert wrong["evidence"]["names"] == ["oldname"] and wrong["evidence"]["host_names"] == ["win01"]


def test_certificate_missing_and_keys() -> None:
    """Missing bound certificate; unreadable key (NETWORK SERVICE); missing listener key file (no double report)."""
    missing = by_id(evaluate("cert_bound_missing"), "RDP-CERT-MISSING")
    assert missing["evidence"]["bound_thumbprint"] == "AB" * 20 and missing["fix"]["params"] == {"state": "self_signed"}
    unreadable = by_id(evaluate("cert_key_unreadable"), "RDP-CERT-KEY-UNREADABLE")
    assert unreadable["evidence"]["key_readable_by_network_service"] is False and unreadable["evidence"]["events"][0]["id"] == 36870
    assert unreadable["fix"]["params"]["state"] == "key_permissions"
    found = evaluate("listener_key_missing")
    assert "RDP-CERT-KEY-UNREADABLE" not in ids(found)
    broken = by_id(found, "RDP-LISTENER-KEY-BROKEN")
    assert broken["evidence"]["key_file"]["exists"] is False and {e["id"] for e in broken["evidence"]["events"]} == {1057, 36870}
    assert broken["fix"] == {"module": "rdp.doctor.machinekeys", "params": {"repair": "listener_key"}}


def test_certificate_soon_not_yet_eku_and_private_key() -> None:
    """Expiring within 30 days (not a cause), not yet valid, wrong EKU, no private key."""
    raw = samples.healthy_raw()
    der, thumb = samples.make_cert("win01", NOW - dt.timedelta(days=100), NOW + dt.timedelta(days=10),
                                   ekus=("1.3.6.1.5.5.7.3.2",))
    raw["certificates"]["Remote Desktop"] = [samples.self_signed_entry(der, thumb, has_private_key=False)]
    raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"] = thumb
    found = fd.evaluate(facts_of(raw))
    assert ids(found) == ["RDP-CERT-NO-PRIVATE-KEY", "RDP-CERT-WRONG-EKU", "RDP-CERT-EXPIRING-SOON"]
    assert not by_id(found, "RDP-CERT-EXPIRING-SOON")["explains_0x904"]
    der, thumb = samples.make_cert("win01", NOW + dt.timedelta(days=2), NOW + dt.timedelta(days=200))
    raw = samples.healthy_raw()
    raw["certificates"]["Remote Desktop"] = [samples.self_signed_entry(der, thumb)]
    raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"] = thumb
    assert ids(fd.evaluate(facts_of(raw))) == ["RDP-CERT-NOT-YET-VALID"]


def test_ca_certificate_fix_binds_a_candidate_or_is_manual() -> None:
    """An expired CA certificate: bind a valid one from My when there is one, else enroll (manual)."""
    raw = samples.healthy_raw()
    old_der, old = samples.make_cert("win01", NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=1), issuer_cn="Corp CA")
    raw["certificates"]["My"] = [dict(samples.self_signed_entry(old_der, old), key_container="{A}", key_file="a_guid")]
    raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"] = old
    assert "manual" in by_id(fd.evaluate(facts_of(raw)), "RDP-CERT-EXPIRED")["fix"]
    new_der, new = samples.make_cert("win01", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=400), issuer_cn="Corp CA")
    raw["certificates"]["My"].append(dict(samples.self_signed_entry(new_der, new), key_container="{B}", key_file="b_guid"))
    assert by_id(fd.evaluate(facts_of(raw)), "RDP-CERT-EXPIRED")["fix"] == {
        "module": "rdp.doctor.listener_certificate", "params": {"state": "bound", "thumbprint": new}}


def test_certificate_template_policy_makes_the_fix_manual() -> None:
    """A GPO template means autoenrollment, not a self-signed renewal."""
    raw = samples.raw_with("cert_expired")
    raw["registry"][reg.POL] = {"CertTemplateName": "RDPServer"}
    assert "RDPServer" in by_id(fd.evaluate(facts_of(raw)), "RDP-CERT-EXPIRED")["fix"]["manual"]


def test_certificate_stores_unread_gives_nothing() -> None:
    """No certificates section: no claim that the certificate is missing."""
    raw = samples.healthy_raw()
    del raw["certificates"]
    assert fd.evaluate(facts_of(raw)) == []


def test_machinekeys_evidence() -> None:
    """SDDL vs default, what is missing, events 1057."""
    finding = by_id(evaluate("machinekeys_acl_broken"), "RDP-MACHINEKEYS-ACL")
    assert finding["evidence"]["sddl"] == "O:SYG:SYD:PAI(A;;FA;;;BA)" and finding["evidence"]["default_sddl"] == reg.MACHINEKEYS_DEFAULT_SDDL
    assert finding["evidence"]["missing"][0].startswith("Everyone") and finding["evidence"]["events"][0]["id"] == 1057
    raw = samples.healthy_raw()
    raw["machinekeys"].update(exists=False, sddl=None)
    assert ids(fd.evaluate(facts_of(raw))) == ["RDP-MACHINEKEYS-ACL"]


def test_credssp_findings() -> None:
    """Unpatched server (version evidence), Force Updated (explains), Vulnerable (security, not a cause)."""
    unpatched = by_id(evaluate("credssp_server_unpatched"), "RDP-CREDSSP-UNPATCHED")
    assert unpatched["evidence"]["tspkg_version"] == "10.0.14393.2189" and unpatched["evidence"]["required_tspkg_version"] == "10.0.14393.2248"
    force = by_id(evaluate("credssp_force_updated"), "RDP-CREDSSP-FORCE-UPDATED")
    assert force["explains_0x904"] and force["fix"]["params"] == {"allow_encryption_oracle": "mitigated"}
    vulnerable = by_id(evaluate("credssp_vulnerable"), "RDP-CREDSSP-VULNERABLE")
    assert not vulnerable["explains_0x904"] and vulnerable["evidence"]["meaning"] == "Vulnerable"


def test_security_findings() -> None:
    """NLA off, FIPS encryption; FIPS policy alone with TLS is fine; domain creds only on members."""
    nla = by_id(evaluate("nla_disabled"), "RDP-NLA-DISABLED")
    assert nla["fix"] == {"module": "rdp.doctor.listener_security", "params": {"nla": True}}
    fips = by_id(evaluate("fips_encryption"), "RDP-ENCRYPTION-FIPS")
    assert fips["evidence"]["effective"] == 4 and fips["evidence"]["fips_algorithm_policy"] == 1
    raw = samples.healthy_raw()
    raw["registry"][reg.FIPS]["Enabled"] = 1
    raw["registry"][reg.LSA]["disabledomaincreds"] = 1
    assert fd.evaluate(facts_of(raw)) == []
    raw["os"].update(part_of_domain=True, domain="corp.example.com")
    raw["certificates"]["Remote Desktop"][0]["der"], thumb = samples.make_cert(
        "win01.corp.example.com", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=100))
    raw["certificates"]["Remote Desktop"][0]["thumbprint"] = thumb
    raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"] = thumb
    assert ids(fd.evaluate(facts_of(raw))) == ["RDP-DOMAIN-CREDS-DISABLED"]


def test_tls_findings() -> None:
    """All TLS off (36871 evidence) is one finding, not two; legacy enabled explicitly is low."""
    found = evaluate("all_tls_disabled")
    assert ids(found) == ["RDP-TLS-ALL-DISABLED"] and found[0]["evidence"]["events"][0]["id"] == 36871
    legacy = by_id(evaluate("tls12_disabled"), "RDP-TLS-LEGACY-ENABLED")
    assert legacy["severity"] == "low" and legacy["evidence"]["protocols"] == ["TLS 1.0"]


def test_session_findings() -> None:
    """Cap reached (MaxInstanceCount and admin mode), ghosts with their ages and ids to end."""
    limit = by_id(evaluate("session_limit_reached"), "RDP-SESSION-LIMIT-REACHED")
    assert limit["evidence"]["active_count"] == 2 and "MaxInstanceCount" in limit["evidence"]["limited_by"]
    # Two sessions is also the cap of Remote Desktop for Administration: raising MaxInstanceCount alone cannot help.
    assert limit["evidence"]["limited_by"] == ["MaxInstanceCount", "Remote Desktop for Administration (2 sessions)"]
    assert "RD Session Host role" in limit["fix"]["manual"]
    rdsh = samples.raw_with("session_limit_reached")
    rdsh["os"]["rdsh_installed"] = True
    rdsh["ts_setting"]["TerminalServerMode"] = 1
    only_instances = by_id(fd.evaluate(facts_of(rdsh)), "RDP-SESSION-LIMIT-REACHED")
    assert only_instances["fix"] == {"module": "rdp.doctor.session_limits", "params": {"max_instance_count": 4294967295}}
    ghosts = by_id(evaluate("ghost_sessions"), "RDP-GHOST-SESSIONS")
    assert [s["id"] for s in ghosts["evidence"]["sessions"]] == [4, 5]
    assert ghosts["fix"]["params"] == {"max_disconnection_time": 28800000, "logoff_disconnected_older_than": "24h"}
    raw = samples.raw_with("ghost_sessions")
    raw["registry"][reg.RDP_TCP]["MaxDisconnectionTime"] = 3600000
    raw["registry"][reg.RDP_TCP]["fInheritMaxDisconnectionTime"] = 0  # the listener's limit counts
    assert fd.evaluate(facts_of(raw)) == []


def test_listener_limit_windows_ignores_does_not_hide_ghosts() -> None:
    """Regression (issue 12): RDP-Tcp MaxDisconnectionTime=1h with fInheritMaxDisconnectionTime=1 (the default, absent or
    set) has no effect - Windows applies each user's limit - so the ghosts are still reported, and the evidence says why."""
    for inherit in (None, 1):
        raw = samples.raw_with("ghost_sessions")
        raw["registry"][reg.RDP_TCP]["MaxDisconnectionTime"] = 3600000
        if inherit is not None:
            raw["registry"][reg.RDP_TCP]["fInheritMaxDisconnectionTime"] = inherit
        facts = facts_of(raw)
        limit = facts["session_limits"]["max_disconnection_time"]
        assert (limit["source"], limit["effective"], limit["ignored_local"]) == ("user", None, 3600000)
        assert facts["session_limits"]["inherit_max_disconnection_time"]["effective"] == 1
        ghosts = by_id(fd.evaluate(facts), "RDP-GHOST-SESSIONS")
        assert ghosts["evidence"]["source"] == "user" and ghosts["evidence"]["ignored_local"] == 3600000
        assert ghosts["fix"]["module"] == "rdp.doctor.session_limits"


def test_licensing_findings() -> None:
    """Grace over without license server: critical with the licensing events; grace running: medium; servers: fine."""
    expired = by_id(evaluate("licensing_grace_expired"), "RDP-LICENSING-GRACE-EXPIRED")
    assert expired["evidence"]["grace_period_days"] == 0 and expired["evidence"]["events"][0]["id"] == 1128
    raw = samples.raw_with("licensing_grace_expired")
    raw["ts_setting"]["GracePeriodDays"] = 45
    assert ids(fd.evaluate(facts_of(raw))) == ["RDP-LICENSING-NOT-CONFIGURED"]
    raw["registry"][reg.POL] = {"LicenseServers": "ls1.corp"}
    assert fd.evaluate(facts_of(raw)) == []


@pytest.mark.parametrize(("fault", "finding_id"), [
    ("account_disabled", "RDP-ACCOUNT-DISABLED"), ("account_locked_out", "RDP-ACCOUNT-LOCKED-OUT"),
    ("account_denied_rdp", "RDP-ACCOUNT-DENIED-LOGON"), ("account_not_in_rdu", "RDP-ACCOUNT-NOT-ALLOWED"),
])
def test_account_findings(fault: str, finding_id: str) -> None:
    """One finding per problem, naming the account and the rights."""
    found = evaluate(fault)
    assert ids(found) == [finding_id]
    assert found[0]["evidence"]["accounts"][0]["name"] == "rdpuser" and reg.RIGHT_ALLOW_RDP in found[0]["evidence"]


def test_account_not_found_and_several_problems() -> None:
    """A missing account; an account both disabled and denied gets both findings."""
    raw = samples.healthy_raw()
    raw["accounts"]["checked"].append({"name": "ghost", "exists": False, "sid": None, "disabled": None, "locked_out": None, "groups": []})
    assert ids(fd.evaluate(facts_of(raw))) == ["RDP-ACCOUNT-NOT-FOUND"]
    assert {"RDP-ACCOUNT-DISABLED", "RDP-ACCOUNT-DENIED-LOGON"} <= set(ids(evaluate("account_disabled", "account_denied_rdp")))


def test_listener_options_drain_setup_lan_clock() -> None:
    """Drain mode, OOBE in progress, LanAdapter, clock skew; zero values are silent."""
    raw = samples.healthy_raw()
    raw["registry"][reg.TS]["TSServerDrainMode"] = 2
    raw["registry"][reg.SETUP]["OOBEInProgress"] = 1
    raw["registry"][reg.RDP_TCP]["LanAdapter"] = 3
    raw["host_time_utc"] = samples.iso(NOW - dt.timedelta(minutes=20))
    found = fd.evaluate(facts_of(raw))
    assert ids(found) == ["RDP-DRAIN-MODE", "RDP-SETUP-IN-PROGRESS", "RDP-LAN-ADAPTER", "RDP-CLOCK-SKEW"]
    assert by_id(found, "RDP-DRAIN-MODE")["evidence"]["meaning"] == "logons drained until restart"
    assert by_id(found, "RDP-CLOCK-SKEW")["evidence"]["clock_skew_seconds"] == -1200.0


def test_findings_do_not_change_the_facts() -> None:
    """evaluate is pure: the facts are unchanged afterwards."""
    facts = facts_of(samples.raw_with("cert_expired", "gpo_denies_connections"))
    before = copy.deepcopy(facts)
    fd.evaluate(facts, samples.probe_result(tcp="refused"))
    assert facts == before


# --------------------------------------------------------------------------------------------------
# probe joins (contracts section 6)
# --------------------------------------------------------------------------------------------------

def test_healthy_probe_adds_nothing() -> None:
    """A probe that connects, with the host's own certificate (a name warning for an IP target), adds nothing."""
    der, _thumb = samples._healthy_cert()  # pylint: disable=protected-access
    probe = samples.probe_result(cert_der=der)
    assert probe["verdict"]["failed_step"] == "certificate"  # name mismatch: the client connects by address
    assert evaluate(probe=probe) == []


def test_tcp_refused_joins_the_firewall_finding() -> None:
    """Probe refused + firewall group disabled -> the firewall finding carries both evidences; no path finding."""
    found = evaluate("firewall_rdp_disabled", probe=samples.probe_result(tcp="refused"))
    finding = by_id(found, "RDP-FIREWALL-RULES-DISABLED")
    assert finding["evidence"]["probe"]["failure"] == "refused" and finding["evidence"]["rdp_rules_disabled"]
    assert "RDP-PATH-BLOCKED" not in ids(found) and "RDP-PROBE-FAILED" not in ids(found)


def test_tcp_timeout_with_a_healthy_host_is_the_path() -> None:
    """The host listens and allows the port, the client times out: something between them blocks."""
    found = evaluate(probe=samples.probe_result(tcp="timeout"))
    assert ids(found) == ["RDP-PATH-BLOCKED"]
    assert found[0]["evidence"]["probe"]["failure"] == "timeout" and found[0]["evidence"]["host_listening"]


def test_expired_certificate_seen_by_both() -> None:
    """Probe expired certificate with the host's bound thumbprint -> RDP-CERT-EXPIRED with both evidences."""
    raw = samples.raw_with("cert_expired")
    der = raw["certificates"]["Remote Desktop"][0]["der"]
    found = fd.evaluate(facts_of(raw), samples.probe_result(cert_der=der))
    finding = by_id(found, "RDP-CERT-EXPIRED")
    assert finding["evidence"]["probe"]["probe_thumbprint"] == finding["evidence"]["bound_thumbprint"]
    assert "RDP-CERT-EXPIRED" in finding["evidence"]["probe"]["probe_certificate"]["problem_ids"]
    assert "RDP-PATH-CERT-MISMATCH" not in ids(found)


def test_other_certificate_on_the_path() -> None:
    """The client receives another certificate than the host binds: TLS inspection, wrong host, DNS."""
    der, thumb = samples.make_cert("proxy.corp", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=100))
    found = evaluate(probe=samples.probe_result(cert_der=der))
    finding = by_id(found, "RDP-PATH-CERT-MISMATCH")
    assert finding["evidence"]["probe_thumbprint"] == thumb and finding["evidence"]["host_bound_thumbprint"] != thumb


def test_dns_mismatch_from_the_probe() -> None:
    """The probe resolved the name elsewhere: RDP-DNS-MISMATCH with the addresses."""
    finding = by_id(evaluate(probe=samples.probe_result(dns_mismatch=True)), "RDP-DNS-MISMATCH")
    assert finding["evidence"]["details"]["addresses"] == ["127.0.0.1"] and finding["explains_0x904"]


def test_probe_only_for_an_unreachable_host() -> None:
    """No facts: a refused probe is reported as unexplained; an expired certificate seen by the probe is reported."""
    found = fd.evaluate(None, samples.probe_result(tcp="refused"))
    assert ids(found) == ["RDP-PROBE-FAILED"] and found[0]["evidence"]["failed_step"] == "tcp" and not found[0]["evidence"]["host_facts"]
    der, _thumb = samples.make_cert("win01", NOW - dt.timedelta(days=100), NOW - dt.timedelta(days=1))
    assert ids(fd.evaluate({}, samples.probe_result(cert_der=der))) == ["RDP-CERT-EXPIRED"]


def test_probe_failure_explained_by_the_host_adds_no_probe_finding() -> None:
    """A refused probe on a host with RDP disabled is explained: no RDP-PROBE-FAILED."""
    found = evaluate("rdp_disabled", probe=samples.probe_result(tcp="refused"))
    assert ids(found) == ["RDP-CONNECTIONS-DENIED"] and found[0]["evidence"]["probe"]["failure"] == "refused"


def test_sort_key_orders_causes_then_severity() -> None:
    """explains_0x904 first, then critical..info, then id."""
    items = [{"id": "B", "severity": "info", "explains_0x904": False}, {"id": "A", "severity": "low", "explains_0x904": True},
             {"id": "C", "severity": "critical", "explains_0x904": False}, {"id": "D", "severity": "critical", "explains_0x904": True}]
    assert [i["id"] for i in sorted(items, key=fd.sort_key)] == ["D", "A", "C", "B"]


# --------------------------------------------------------------------------------------------------
# a part the host could not read: never a false finding, never a false "healthy"
# --------------------------------------------------------------------------------------------------

UNREADABLE_PARTS = [*(f"section:{name}" for name in ("os", "ts_general_setting", "ts_setting", "services", "listening", "certificates",
                                                     "tspkg_version", "firewall", "sessions", "machinekeys", "winrm_listeners",
                                                     "accounts", "events", "registry", "schannel_algorithms", "listener_acl",
                                                     "secure_channel", "logon_services")),
                    *(f"registry:{key}" for key in reg.REGISTRY_KEYS)]


def _unreadable(raw: dict, part: str) -> dict:
    """``raw`` with one part replaced by a section error."""
    kind, _sep, name = part.partition(":")
    error = {"error": {"type": "System.Exception", "message": f"{name} could not be read"}}
    if kind == "section":
        raw[name] = error
    else:
        raw["registry"][name] = error
    return raw


@pytest.mark.parametrize("part", UNREADABLE_PARTS)
def test_unreadable_part_of_a_healthy_host_is_only_reported(part: str) -> None:
    """Every section and every registry key: the healthy host's only finding is RDP-READ-INCOMPLETE, naming the part."""
    found = fd.evaluate(facts_of(_unreadable(samples.healthy_raw(), part)))
    assert ids(found) == ["RDP-READ-INCOMPLETE"]
    assert found[0]["evidence"]["read_errors"][0]["message"] == f"{part.partition(':')[2]} could not be read"


#: A finding that, with part of the host unread, may show as a weaker one that is still true of the host.
WEAKER = {"RDP-TLS-ALL-DISABLED": {"RDP-TLS12-DISABLED"},  # TLS 1.2 is off; whether another TLS is on is unknown
          "RDP-LISTENER-KEY-BROKEN": {"RDP-CERT-KEY-UNREADABLE"}}  # the key file is gone; MachineKeys unread


@pytest.mark.parametrize("fault", sorted(samples.FAULTS))
def test_unreadable_parts_never_add_a_false_finding(fault: str) -> None:
    """For every fault and every unreadable part: nothing beyond the fault's own findings and RDP-READ-INCOMPLETE."""
    own = set(ids(evaluate(fault)))
    allowed = own | {"RDP-READ-INCOMPLETE"} | {weaker for finding in own for weaker in WEAKER.get(finding, ())}
    extra = {part: sorted(set(ids(fd.evaluate(facts_of(_unreadable(samples.raw_with(fault), part))))) - allowed)
             for part in UNREADABLE_PARTS}
    assert {part: found for part, found in extra.items() if found} == {}
