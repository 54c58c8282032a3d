"""The normaliser: raw read_rdp_state documents -> versioned facts (effective value + source, decisions)."""

from __future__ import annotations

import copy
import datetime as dt
import json

import jsonschema
import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol import HOST_SCRIPT_DIR
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

NOW = samples.NOW


def facts_of(raw: dict, accounts: tuple[str, ...] = ("rdpuser",)) -> dict:
    """Normalise at the samples' fixed time."""
    return hf.normalize(raw, NOW, list(accounts))


def _schema(part: str) -> dict:
    """One half (params or result) of the read_rdp_state schema, with its definitions."""
    with open(f"{HOST_SCRIPT_DIR}/read_rdp_state.schema.json", encoding="utf-8") as handle:
        document = json.load(handle)
    schema = dict(document["properties"][part])
    schema["$defs"] = document.get("$defs", {})
    return schema


# --------------------------------------------------------------------------------------------------
# parameters and the samples themselves
# --------------------------------------------------------------------------------------------------

def test_build_params_defaults_match_the_script_schema() -> None:
    """The controller decides the keys; the parameters validate against the script's params schema."""
    params = hf.build_params({"accounts": ["rdpuser", "CONTOSO\\alice", " "], "port_hint": 3390})
    assert params == {"registry_keys": list(reg.REGISTRY_KEYS), "event_days": 7, "event_sample_size": 3,
                      "accounts": ["rdpuser", "CONTOSO\\alice"], "port_hint": 3390}
    jsonschema.Draft202012Validator(_schema("params")).validate(params)
    assert hf.build_params({})["port_hint"] is None


@pytest.mark.parametrize("fault", [None, *samples.FAULTS])
def test_sample_documents_follow_the_result_schema(fault: str | None) -> None:
    """The hand-written raw documents are ones the real script may answer (so the rules are tested on real shapes)."""
    raw = samples.raw_with(fault) if fault else samples.healthy_raw()
    jsonschema.Draft202012Validator(_schema("result")).validate(raw)


def test_healthy_host_facts() -> None:
    """A healthy Server 2022: local values win, TLS on, certificate usable, firewall open, account allowed."""
    facts = facts_of(samples.healthy_raw())
    json.dumps(facts)  # ansible_facts must be JSON-serialisable
    assert facts["facts_version"] == 1 and facts["read_errors"] == []
    assert facts["os"]["role"] == "server" and facts["os"]["fqdn"] == "win01" and facts["os"]["clock_skew_seconds"] == 0
    assert facts["listener"]["deny_ts_connections"] == {"effective": 0, "source": "local", "local": 0, "policy": None, "default": 1}
    assert facts["listener"]["connections_allowed"] and facts["listener"]["effective_port"] == 3389
    assert facts["listener"]["tcp"]["termservice_listening"] and not facts["listener"]["tcp"]["other_owners"]
    assert facts["security"]["security_layer_name"] == "TLS" and facts["security"]["nla_required"]
    cert = facts["certificate"]
    assert cert["bound_source"] == "registry" and cert["found"] and cert["usable"]
    assert cert["bound"]["name_match"] == "win01" and cert["bound"]["eku_ok"] and not cert["bound"]["expired"]
    assert cert["bound"]["days_remaining"] == 152
    assert facts["credssp"]["allow_encryption_oracle"]["source"] == "default" and facts["credssp"]["patched"] is True
    assert facts["schannel"]["server_enabled"] == ["TLS 1.0", "TLS 1.1", "TLS 1.2", "TLS 1.3"]
    assert facts["schannel"]["legacy_server_enabled_explicitly"] == []
    assert facts["firewall"]["tcp"]["open_in_all_profiles"] and facts["firewall"]["gpo_blocked_profiles"] == []
    assert facts["machinekeys"]["acl_ok"] and facts["machinekeys"]["listener_key_file"]["network_service_read"]
    assert facts["accounts"]["checked"][0]["can_logon_remotely"]
    assert facts["accounts"]["checked"][0]["allowed_by"] == [reg.SID_REMOTE_DESKTOP_USERS]


def test_normalize_refuses_a_non_object() -> None:
    """A document that is not an object is a contract breach, reported as ValueError."""
    with pytest.raises(ValueError, match="list"):
        hf.normalize([], NOW, [])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# settings: policy > local > default, WMI PolicySource
# --------------------------------------------------------------------------------------------------

def test_policy_value_wins_over_local() -> None:
    """A value under the policy key overrides the local one, whatever WMI says [S10]."""
    raw = samples.healthy_raw()
    raw["registry"][reg.POL] = {"SecurityLayer": 0}
    layer = facts_of(raw)["security"]["security_layer"]
    assert layer == {"effective": 0, "source": "policy", "local": 2, "policy": 0, "default": 1}


def test_wmi_policy_source_marks_policy_even_without_the_machine_policy_key() -> None:
    """WMI PolicySource 1 (Group Policy) wins; its value is the effective one."""
    raw = samples.healthy_raw()
    raw["ts_general_setting"].update(UserAuthenticationRequired=0, PolicySourceUserAuthenticationRequired=1)
    nla = facts_of(raw)["security"]["user_authentication"]
    assert nla["source"] == "policy" and nla["effective"] == 0 and nla["local"] == 1 and nla["policy"] is None


def test_wmi_default_source_is_used_when_the_registry_is_silent() -> None:
    """No registry value: WMI's value and its PolicySource 2 (default) are reported."""
    raw = samples.healthy_raw()
    del raw["registry"][reg.RDP_TCP]["MinEncryptionLevel"]
    raw["ts_general_setting"].update(MinEncryptionLevel=3, PolicySourceMinEncryptionLevel=2)
    level = facts_of(raw)["security"]["min_encryption_level"]
    assert level["source"] == "default" and level["effective"] == 3 and level["local"] is None


def test_allow_ts_connections_is_inverted_into_deny() -> None:
    """Win32_TerminalServiceSetting.AllowTSConnections=0 from policy means fDenyTSConnections=1 from policy."""
    raw = samples.healthy_raw()
    raw["registry"][reg.TS] = None
    raw["ts_setting"].update(AllowTSConnections=0, PolicySourceAllowTSConnections=1)
    deny = facts_of(raw)["listener"]["deny_ts_connections"]
    assert deny["effective"] == 1 and deny["source"] == "policy"


def test_defaults_when_keys_are_absent() -> None:
    """Missing keys and no WMI: every setting falls back to the Windows default with source 'default'."""
    raw = samples.healthy_raw()
    for key in (reg.TS, reg.RDP_TCP, reg.FIPS, reg.LSA, reg.SETUP):
        raw["registry"][key] = None
    raw["ts_general_setting"] = None
    raw["ts_setting"] = None
    facts = facts_of(raw)
    assert facts["listener"]["deny_ts_connections"]["effective"] == 1
    assert facts["listener"]["deny_ts_connections"]["source"] == "default"
    assert facts["listener"]["port"] == {"effective": 3389, "source": "default", "local": None, "policy": None, "default": 3389}
    assert facts["security"]["security_layer"]["effective"] == 1 and facts["security"]["security_layer_name"] == "Negotiate"
    assert facts["session_limits"]["max_instance_count"]["effective"] == 4294967295
    # the certificate binding falls back to the newest self-signed certificate of the Remote Desktop store
    assert facts["certificate"]["bound_source"] == "self_signed_store" and facts["certificate"]["found"]


def test_registry_lookups_ignore_case() -> None:
    """Paths and value names are case-insensitive on Windows."""
    raw = samples.healthy_raw()
    values = raw["registry"].pop(reg.RDP_TCP)
    raw["registry"][reg.RDP_TCP.upper()] = {name.lower(): value for name, value in values.items()}
    raw["registry"][reg.RDP_TCP.upper()]["portnumber"] = 3390
    assert facts_of(raw)["listener"]["effective_port"] == 3390


def test_policy_unlimited_instance_count() -> None:
    """Policy MaxInstanceCount 999999 means unlimited [S10]."""
    raw = samples.healthy_raw()
    raw["registry"][reg.POL] = {"MaxInstanceCount": 999999}
    limits = facts_of(raw)["session_limits"]
    assert limits["max_instance_count"]["source"] == "policy" and limits["instance_limit"] is None


# --------------------------------------------------------------------------------------------------
# certificates
# --------------------------------------------------------------------------------------------------

def _bind(raw: dict, der: str, thumbprint: str, store: str = "Remote Desktop", **extra: object) -> None:
    """Put a certificate in a store and bind it."""
    entry = samples.self_signed_entry(der, thumbprint, **extra)
    raw["certificates"][store] = [entry]
    if store != "Remote Desktop":
        raw["certificates"]["Remote Desktop"] = []
    raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"] = thumbprint.lower()


def test_expired_certificate() -> None:
    """Validity is judged with the controller's clock; days_remaining is negative once expired."""
    facts = facts_of(samples.raw_with("cert_expired"))
    bound = facts["certificate"]["bound"]
    assert bound["expired"] and bound["days_remaining"] == -18 and not facts["certificate"]["usable"]


def test_certificate_names_san_and_wildcard() -> None:
    """With a DNS SAN the CN is ignored; a wildcard covers one label; the short name matches the computer."""
    raw = samples.healthy_raw()
    der, thumb = samples.make_cert("ignored-cn", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=90),
                                   dns_names=["*.corp.example.com"])
    _bind(raw, der, thumb, store="My", key_container="{GUID}", key_file="abc_guid")
    raw["os"].update(part_of_domain=True, domain="corp.example.com")
    bound = facts_of(raw)["certificate"]["bound"]
    assert bound["names"] == ["*.corp.example.com"] and bound["name_matches_host"] and bound["store"] == "My"
    assert not bound["self_signed_container"]


def test_certificate_for_another_host() -> None:
    """A renamed host keeps a certificate for its old name [S34]."""
    bound = facts_of(samples.raw_with("cert_wrong_name"))["certificate"]["bound"]
    assert bound["names"] == ["oldname"] and bound["name_matches_host"] is False and bound["name_match"] is None


@pytest.mark.parametrize(("ekus", "ok"), [
    ((ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string,), False),
    ((reg.EKU_REMOTE_DESKTOP_AUTH,), True),
    (None, True),
])
def test_certificate_eku(ekus: tuple[str, ...] | None, ok: bool) -> None:
    """Server Authentication or Remote Desktop Authentication, or no EKU at all (any purpose) [S27]."""
    raw = samples.healthy_raw()
    der, thumb = samples.make_cert("win01", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=90), ekus=ekus)
    _bind(raw, der, thumb)
    assert facts_of(raw)["certificate"]["bound"]["eku_ok"] is ok


def test_unreadable_der_and_foreign_thumbprint() -> None:
    """Bad bytes are reported, not raised; a DER that hashes to another thumbprint is flagged."""
    raw = samples.healthy_raw()
    raw["certificates"]["Remote Desktop"][0]["der"] = "AAAA"
    bound = facts_of(raw)["certificate"]["bound"]
    assert bound["parse_error"] and bound["expired"] is None and not facts_of(raw)["certificate"]["usable"]
    raw = samples.healthy_raw()
    der, _thumb = samples.make_cert("win01", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=9))
    raw["certificates"]["Remote Desktop"][0]["der"] = der
    assert "hashes to" in facts_of(raw)["certificate"]["bound"]["parse_error"]


def test_bound_thumbprint_from_wmi_and_missing_certificate() -> None:
    """Without the registry value WMI names the certificate; a thumbprint in no store is not found."""
    raw = samples.healthy_raw()
    del raw["registry"][reg.RDP_TCP]["SSLCertificateSHA1Hash"]
    assert facts_of(raw)["certificate"]["bound_source"] == "wmi"
    cert = facts_of(samples.raw_with("cert_bound_missing"))["certificate"]
    assert cert["bound_thumbprint"] == "AB" * 20 and not cert["found"] and cert["bound"] is None and cert["hash_type_name"] == "not valid"


def test_candidates_in_my_store() -> None:
    """A valid CA certificate for the host in My is offered as a replacement."""
    raw = samples.raw_with("cert_expired")
    der, thumb = samples.make_cert("win01", NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=300), issuer_cn="Corp CA")
    raw["certificates"]["My"] = [dict(samples.self_signed_entry(der, thumb), key_container="{X}", key_file="k_guid")]
    assert facts_of(raw)["certificate"]["candidates"] == [thumb]


# --------------------------------------------------------------------------------------------------
# CredSSP and Schannel
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("build", "version", "patched"), [
    (14393, "10.0.14393.2189", False),
    (14393, "10.0.14393.2248", True),
    (9600, "6.3.9600.18999", True),
    (7601, "6.1.7601.24000", False),
    (17763, "10.0.17763.1", True),
    (20348, None, True),
    (10240, "10.0.10240.17000", None),
    (14393, None, None),
])
def test_credssp_patch_table(build: int, version: str | None, patched: bool | None) -> None:
    """tspkg.dll FileVersion against the first fixed version per build [S7]."""
    assert hf.credssp_patched(build, version) is patched


@pytest.mark.parametrize(("enabled", "dbd", "default", "state"), [
    (None, None, True, "enabled"),
    (None, None, False, "disabled"),
    (0, None, True, "disabled"),
    (1, None, False, "disabled_by_default"),  # an off-by-default protocol needs DisabledByDefault=0 as well (2008 R2 TLS 1.2)
    (1, 0, False, "enabled"),
    (1, 1, True, "disabled_by_default"),
    (0xFFFFFFFF, 0, False, "enabled"),
    (None, 1, True, "disabled_by_default"),
    (None, 0, False, "disabled"),
])
def test_schannel_state_rules(enabled: int | None, dbd: int | None, default: bool, state: str) -> None:
    """Enabled/DisabledByDefault with the OS default for absent values [S18]."""
    assert hf.schannel_state(enabled, dbd, default) == state


def test_schannel_os_defaults_by_build() -> None:
    """TLS 1.3 from Server 2022, SSL 3.0 off from 2016, TLS 1.1/1.2 off on 2008 R2."""
    assert reg.schannel_default_enabled("TLS 1.3", 20348, 3) and not reg.schannel_default_enabled("TLS 1.3", 17763, 3)
    assert reg.schannel_default_enabled("TLS 1.3", 22621, 1) and not reg.schannel_default_enabled("TLS 1.3", 20348, 1)
    assert reg.schannel_default_enabled("SSL 3.0", 9600) and not reg.schannel_default_enabled("SSL 3.0", 14393)
    assert not reg.schannel_default_enabled("TLS 1.2", 7601) and reg.schannel_default_enabled("TLS 1.2", 9200)


def test_schannel_facts_for_disabled_tls12() -> None:
    """Explicit values decide; the explicitly enabled legacy protocol is listed."""
    schannel = facts_of(samples.raw_with("tls12_disabled"))["schannel"]
    assert schannel["server_enabled"] == ["TLS 1.0", "TLS 1.1"] and not schannel["tls12_server_enabled"]
    assert schannel["legacy_server_enabled_explicitly"] == ["TLS 1.0"]
    assert schannel["protocols"]["TLS 1.2"]["server"] == {"enabled_value": 0, "disabled_by_default_value": None, "os_default": True,
                                                          "state": "disabled", "enabled": False, "source": "registry"}
    assert schannel["protocols"]["TLS 1.2"]["client"]["source"] == "default"


# --------------------------------------------------------------------------------------------------
# firewall
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("specs", "covered"), [
    (["3389"], True), (["3390"], False), (["3000-4000"], True), (["Any"], True), ([], True), (["RPC"], False),
    (["80", "3389"], True),
])
def test_port_in_spec(specs: list[str], covered: bool) -> None:
    """Single ports, ranges and Any, as Get-NetFirewallPortFilter reports them."""
    assert hf.port_in_spec(3389, specs) is covered


def test_moved_port_is_not_covered_by_the_shadow_rule() -> None:
    """The Shadow rule lists every port but admits RdpSa.exe only; the moved port stays closed."""
    fw = facts_of(samples.raw_with("port_moved"))["firewall"]
    assert fw["tcp"]["port"] == 3390 and fw["tcp"]["allowed_by_rules_in_any_profile"] is False
    assert fw["rdp_tcp_rules"] == [{"name": reg.FIREWALL_RULE_TCP, "enabled": True, "local_ports": ["3389"], "covers_port": False,
                                    "policy_store_source": "PersistentStore"}]


def test_block_rule_gpo_and_disabled_profiles() -> None:
    """Block wins over allow; the GPO exception closes its profiles; a disabled profile is open."""
    raw = samples.raw_with("firewall_gpo_blocks")
    raw["firewall"]["rules"].append({"name": "Block RDP", "display_name": "Block RDP", "group": None, "enabled": True,
                                     "direction": "Inbound", "action": "Block", "profiles": ["Public"], "protocol": "6",
                                     "local_ports": ["3389"], "policy_store_source": "PersistentStore"})
    raw["firewall"]["profiles"][1]["enabled"] = False  # Private
    tcp = facts_of(raw)["firewall"]["tcp"]
    assert tcp["profiles"]["Domain"]["gpo_blocked"] and not tcp["profiles"]["Domain"]["open"]
    assert tcp["profiles"]["Private"]["open"]
    assert tcp["profiles"]["Public"]["block_rules"] == ["Block RDP"] and not tcp["profiles"]["Public"]["open"]
    assert tcp["open_in_any_profile"] and not tcp["blocked_by_rule_in_all_profiles"]


def _error(message: str, error_type: str = "Microsoft.Management.Infrastructure.CimException") -> dict:
    """A section error as read_rdp_state writes it."""
    return {"error": {"type": error_type, "message": message}}


def test_section_errors_are_reported() -> None:
    """A section the host could not read becomes a read_errors entry, not a crash or a false state."""
    raw = samples.healthy_raw()
    raw["firewall"] = _error("the Windows Defender Firewall service (MpsSvc) is Stopped: ...", "ServiceNotRunning")
    raw["listening"] = {"error": "Get-NetTCPConnection: not supported"}  # the first release's plain-text form
    facts = facts_of(raw)
    assert facts["read_errors"] == [
        {"section": "listening", "type": "Error", "message": "Get-NetTCPConnection: not supported"},
        {"section": "firewall", "type": "ServiceNotRunning", "message": "the Windows Defender Firewall service (MpsSvc) is Stopped: ..."},
    ]
    firewall = facts["firewall"]
    assert firewall["read"] is False and firewall["profiles"] == [] and not facts["listener"]["sockets_read"]
    assert firewall["tcp"]["open_in_any_profile"] is None and firewall["tcp"]["allowed_by_rules_in_any_profile"] is None


@pytest.mark.parametrize("section", ["os", "ts_general_setting", "ts_setting", "services", "listening", "certificates", "tspkg_version",
                                     "firewall", "sessions", "machinekeys", "winrm_listeners", "accounts", "events", "registry"])
def test_any_section_may_fail(section: str) -> None:
    """Every section's error form is valid for the schema, named in read_errors, and normalize still builds every fact."""
    raw = samples.healthy_raw()
    raw[section] = _error(f"{section} could not be read")
    jsonschema.Draft202012Validator(_schema("result")).validate(raw)
    facts = facts_of(raw)
    assert facts["read_errors"] == [{"section": section, "type": "Microsoft.Management.Infrastructure.CimException",
                                     "message": f"{section} could not be read"}]
    assert set(facts) >= {"os", "listener", "security", "certificate", "firewall", "session_limits", "accounts", "events"}


def test_services_unreadable_leaves_the_port_owner_unknown() -> None:
    """Without TermService's pid, svchost on 3389 is nobody's: not "another process", and TermService is not "stopped"."""
    raw = samples.healthy_raw()
    raw["services"] = _error("Invalid class")
    listener = facts_of(raw)["listener"]
    assert listener["services_read"] is False and listener["services"]["TermService"]["running"] is None
    assert listener["tcp"]["listening"] and listener["tcp"]["other_owners"] == [] and listener["tcp"]["termservice_listening"] is None


def test_unreadable_registry_key_makes_its_settings_unknown() -> None:
    """A key that could not be read is not an absent key: no default is assumed (fDenyTSConnections defaults to 1)."""
    raw = samples.healthy_raw()
    denied = _error("Requested registry access is not allowed.", "System.Security.SecurityException")
    raw["registry"][reg.TS] = denied
    raw["registry"][reg.schannel_key("TLS 1.2", "Server")] = denied
    raw["ts_setting"] = None  # and WMI does not say either
    facts = facts_of(raw)
    deny = facts["listener"]["deny_ts_connections"]
    assert (deny["effective"], deny["source"]) == (None, "unknown") and facts["listener"]["connections_allowed"] is False
    assert facts["schannel"]["tls12_server_enabled"] is None and facts["schannel"]["server_unknown"] == ["TLS 1.2"]
    assert {e["section"] for e in facts["read_errors"]} == {f"registry: {reg.TS}", f"registry: {reg.schannel_key('TLS 1.2', 'Server')}"}
    # WMI knows the effective value: it is used, with its source
    raw["ts_setting"] = samples.healthy_raw()["ts_setting"]
    assert facts_of(raw)["listener"]["deny_ts_connections"]["effective"] == 0


def test_unreadable_rdp_tcp_key_leaves_the_bound_certificate_unknown() -> None:
    """Without RDP-Tcp and WMI the binding is unknown: no certificate is called "the listener's"."""
    raw = samples.healthy_raw()
    raw["registry"][reg.RDP_TCP] = _error("Requested registry access is not allowed.", "System.Security.SecurityException")
    raw["ts_general_setting"] = _error("Provider load failure ")
    cert = facts_of(raw)["certificate"]
    assert (cert["bound_thumbprint"], cert["bound_source"], cert["bound_known"]) == (None, "unknown", False)


def test_partial_errors_name_their_part() -> None:
    """An event query, a sample's message, an account lookup and the grace period fail alone, named in read_errors."""
    raw = samples.healthy_raw()
    raw["events"] = [
        {"log": "System", "provider": "TermDD", "id": 56, "count": 3, "last": samples.iso(samples.NOW), "error":
         {"type": "System.Diagnostics.Eventing.Reader.EventLogException", "message": "The data is invalid."},
         "samples": [{"time": samples.iso(samples.NOW), "message": None}]},
        {"log": "Microsoft-Windows-TerminalServices-Licensing/Admin", "provider": None, "ids": [],
         "error": {"type": "System.UnauthorizedAccessException", "message": "Attempted to perform an unauthorized operation."}},
    ]
    trust = {"type": "System.SystemException", "message": "The trust relationship between this workstation and the primary domain failed."}
    raw["accounts"]["checked"].append({"name": "CONTOSO\\alice", "exists": None, "sid": None, "disabled": None, "locked_out": None,
                                       "groups": [], "groups_complete": False, "error": trust})
    raw["ts_setting"].update(TerminalServerMode=1, GracePeriodDays=_error("Generic failure "))
    jsonschema.Draft202012Validator(_schema("result")).validate(raw)
    facts = facts_of(raw, ("rdpuser", "CONTOSO\\alice"))
    assert [e["section"] for e in facts["read_errors"]] == [
        "ts_setting: GracePeriodDays", "events: System TermDD 56 (a sample's message)",
        "events: Microsoft-Windows-TerminalServices-Licensing/Admin", "accounts: CONTOSO\\alice"]
    assert [g["id"] for g in facts["events"]["groups"]] == [56] and facts["events"]["groups"][0]["error"]["message"] == "The data is invalid."
    alice = facts["accounts"]["checked"][1]
    assert alice["exists"] is None and alice["can_logon_remotely"] is None and alice["error"]["type"] == "System.SystemException"
    assert facts["licensing"]["grace_period_days"] is None


def test_domain_account_membership_not_evaluated() -> None:
    """A domain account not directly allowed may be allowed through a domain group: unknown, never "cannot log on"."""
    raw = samples.healthy_raw()
    raw["accounts"]["checked"] = [{"name": "CONTOSO\\alice", "exists": True, "sid": "S-1-5-21-1-2-3-1104", "disabled": None,
                                   "locked_out": None, "groups": [], "groups_complete": False, "error": None}]
    alice = facts_of(raw, ("CONTOSO\\alice",))["accounts"]["checked"][0]
    assert (alice["can_logon_remotely"], alice["groups_complete"], alice["disabled"], alice["local"]) == (None, False, None, False)
    raw["accounts"]["checked"][0]["groups"] = [reg.SID_REMOTE_DESKTOP_USERS]  # directly in Remote Desktop Users: known
    assert facts_of(raw, ("CONTOSO\\alice",))["accounts"]["checked"][0]["can_logon_remotely"] is True


@pytest.mark.parametrize("limit", [{"program": "C:\\agent.exe"}, {"service": "WinRM"}, {"remote_addresses": ["10.99.0.0/255.255.0.0"]}])
def test_rules_for_another_program_service_or_address_do_not_open_the_port(limit: dict) -> None:
    """Review item 9: an allow rule limited to another program, service or remote address does not count as open."""
    raw = samples.healthy_raw()
    for rule in raw["firewall"]["rules"]:
        rule["enabled"] = rule["group"] != reg.FIREWALL_RDP_GROUP
    raw["firewall"]["rules"].append(dict(raw["firewall"]["rules"][0], name="Narrow", group=None, enabled=True, **limit))
    tcp = facts_of(raw)["firewall"]["tcp"]
    assert tcp["allowed_by_rules_in_any_profile"] is False and tcp["allow_rules"] == []
    assert tcp["address_limited_rules"] == ([{"name": "Narrow", "remote_addresses": ["10.99.0.0/255.255.0.0"]}]
                                            if "remote_addresses" in limit else [])


def test_allow_rule_on_any_port_opens_it() -> None:
    """Review item 8: a broad allow rule (LocalPort Any, any program) really opens the port."""
    raw = samples.healthy_raw()
    for rule in raw["firewall"]["rules"]:
        rule["enabled"] = False
    raw["firewall"]["rules"].append(dict(raw["firewall"]["rules"][0], name="Allow-All-In-TCP", group=None, enabled=True,
                                         local_ports=["Any"], program="Any", service="Any"))
    tcp = facts_of(raw)["firewall"]["tcp"]
    assert tcp["allow_rules"] == ["Allow-All-In-TCP"] and tcp["open_in_all_profiles"]


# --------------------------------------------------------------------------------------------------
# sessions, licensing, MachineKeys, accounts, events, time
# --------------------------------------------------------------------------------------------------

def test_session_ages() -> None:
    """Ages come from the controller's clock; the listener and session 0 are not user sessions."""
    raw = samples.raw_with("ghost_sessions")
    raw["sessions"].append({"id": 65536, "station": "RDP-Tcp", "user": None, "state": "Listen", "logon_time": None,
                            "disconnect_time": None, "idle_seconds": None, "disconnected_seconds": None})
    limits = facts_of(raw)["session_limits"]
    assert [s["disconnected_seconds"] for s in limits["sessions"][:2]] == [3 * 86400, 40 * 86400]
    assert limits["sessions"][0]["age_seconds"] == 4 * 86400
    assert limits["disconnected_count"] == 2 and limits["active_count"] == 0 and limits["admin_mode_limit"] == 2


def test_licensing_from_terminal_server_mode() -> None:
    """TerminalServerMode 1 means an RD Session Host even when the OS section does not say so."""
    raw = samples.raw_with("licensing_grace_expired")
    raw["os"]["rdsh_installed"] = None
    lic = facts_of(raw)["licensing"]
    assert lic["rdsh_installed"] and lic["grace_period_days"] == 0 and lic["license_server_list"] == []
    raw["registry"][reg.POL] = {"LicenseServers": "ls1.corp, ls2.corp", "LicensingMode": 4}
    lic = facts_of(raw)["licensing"]
    assert lic["license_server_list"] == ["ls1.corp", "ls2.corp"] and lic["licensing_mode"]["source"] == "policy"


@pytest.mark.parametrize(("sddl", "everyone", "admins"), [
    (reg.MACHINEKEYS_DEFAULT_SDDL, True, True),
    ("O:SYG:SYD:PAI(A;;FA;;;BA)", False, True),
    ("O:SYG:SYD:PAI(A;;0x12019f;;;S-1-1-0)(A;;GA;;;S-1-5-32-544)", True, True),
    ("O:SYG:SYD:PAI(A;;FR;;;WD)(A;;FA;;;BA)", False, True),
    ("O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FR;;;BA)", True, False),
])
def test_machinekeys_acl(sddl: str, everyone: bool, admins: bool) -> None:
    """Everyone needs the KB278381 rights (0x12019f), Administrators full control [S5]."""
    raw = samples.healthy_raw()
    raw["machinekeys"]["sddl"] = sddl
    mk = facts_of(raw)["machinekeys"]
    assert mk["everyone_access_ok"] is everyone and mk["administrators_full"] is admins
    assert mk["acl_ok"] is (everyone and admins) and mk["is_default"] is (sddl == reg.MACHINEKEYS_DEFAULT_SDDL)


def test_listener_key_file_missing() -> None:
    """The f686aace..._<MachineGuid> file is checked against the expected name."""
    key_file = facts_of(samples.raw_with("listener_key_missing"))["machinekeys"]["listener_key_file"]
    assert key_file["exists"] is False and key_file["expected_name"] == samples.LISTENER_KEY and key_file["network_service_read"] is None


def test_accounts_rights_through_groups_and_implicit_sids() -> None:
    """Deny through a group or 'Local account' wins; Administrators are allowed without Remote Desktop Users."""
    raw = samples.healthy_raw()
    raw["accounts"]["rights"][reg.RIGHT_DENY_RDP] = ["*" + reg.SID_LOCAL_ACCOUNT]
    account = facts_of(raw)["accounts"]["checked"][0]
    assert account["local"] and account["denied_by"] == [reg.SID_LOCAL_ACCOUNT] and not account["can_logon_remotely"]
    raw = samples.raw_with("account_not_in_rdu")
    raw["accounts"]["checked"][0]["groups"] = [reg.SID_ADMINISTRATORS]
    account = facts_of(raw)["accounts"]["checked"][0]
    assert account["allowed_by"] == [reg.SID_ADMINISTRATORS] and account["can_logon_remotely"]
    raw["accounts"]["checked"][0]["name"] = "CONTOSO\\rdpuser"
    assert facts_of(raw)["accounts"]["checked"][0]["local"] is False


def test_accounts_not_reported() -> None:
    """An account asked for that the host did not report is listed."""
    accounts = facts_of(samples.healthy_raw(), ("rdpuser", "WIN01\\alice"))["accounts"]
    assert accounts["not_reported"] == ["WIN01\\alice"] and accounts["expected"] == ["rdpuser", "WIN01\\alice"]


def test_events_grouped_with_meaning() -> None:
    """Known events are named; groups are newest first."""
    raw = samples.raw_with("listener_key_missing")
    raw["events"][0]["last"] = samples.iso(NOW - dt.timedelta(days=2))
    events = facts_of(raw)["events"]
    assert [(g["provider"], g["id"]) for g in events["groups"]] == [("Schannel", 36870), (reg.PROVIDER_RCM, 1057)]
    assert events["groups"][0]["meaning"].startswith("fatal error accessing") and events["total"] == 6
    assert hf.event_meaning("TerminalServices-RemoteConnectionManager", 1058).startswith("failed to replace")
    assert hf.event_meaning("Microsoft-Windows-TerminalServices-Licensing", 1128) == "RDS licensing problem"
    assert hf.event_meaning("Other", 1) is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-21T07:00:00Z", dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)),
    ("2026-11-21T07:00:00.1234567Z", dt.datetime(2026, 11, 21, 7, 0, 0, 123456, tzinfo=dt.timezone.utc)),
    ("2026-11-21T08:00:00+01:00", dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)),
    ("/Date(1795244400000)/", dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)),
    ("2026-11-21T07:00:00", dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)),
    ("yesterday", None), (None, None), ("", None),
])
def test_parse_time(text: str | None, expected: dt.datetime | None) -> None:
    """ISO 8601 with Z, 7 fractional digits, offsets, /Date(ms)/; garbage is None."""
    assert hf.parse_time(text) == expected


def test_clock_skew_and_naive_now() -> None:
    """Skew is host minus controller; a naive 'now' is UTC."""
    raw = samples.healthy_raw()
    raw["host_time_utc"] = samples.iso(NOW + dt.timedelta(minutes=10))
    facts = hf.normalize(copy.deepcopy(raw), NOW.replace(tzinfo=None), [])
    assert facts["os"]["clock_skew_seconds"] == 600.0 and facts["collected_at"] == "2026-11-21T07:00:00Z"


def test_thumbprint_normalisation() -> None:
    """Spaces, invisible characters and case never matter [S1]."""
    assert hf.normalize_thumbprint("\u200e0a 1b:2c") == "0A1B2C"
    assert hf.normalize_thumbprint(bytes.fromhex("0a1b")) == "0A1B"
    assert hf.normalize_thumbprint("") is None and hf.normalize_thumbprint(None) is None


def test_last_boot_is_normalized_and_optional() -> None:
    raw = samples.healthy_raw()
    assert facts_of(raw)["os"]["last_boot_utc"] is None  # a reader that does not send it
    raw["os"]["last_boot_utc"] = "2026-11-20T06:30:00Z"
    jsonschema.Draft202012Validator(_schema("result")).validate(raw)
    assert facts_of(raw)["os"]["last_boot_utc"] == "2026-11-20T06:30:00Z"
    raw["os"]["last_boot_utc"] = "yesterday"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(_schema("result")).validate(raw)
