"""Issue 12, part A on hand-written documents: licensing set without Group Policy (the false critical), license-server
connectivity, the RCM licensing certificate, the WTS listener state, the protocol stack, PortNumber, a low
MaxInstanceCount, port exhaustion and SelfSignedCertStore."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

X509_PRESENT = {"X509 Certificate": 1386, "X509 Certificate ID": 86, "X509 Certificate2": 2510}


def facts_of(raw: dict) -> dict:
    return hf.normalize(raw, samples.NOW, ["rdpuser"])


def ids(raw: dict) -> list[str]:
    return [f["id"] for f in fd.evaluate(facts_of(raw))]


def by_id(raw: dict, finding_id: str) -> dict:
    return next(f for f in fd.evaluate(facts_of(raw)) if f["id"] == finding_id)


def expired_rdsh(**rd_licensing: object) -> dict:
    """An RD Session Host whose grace period is over and whose licensing Group Policy is silent."""
    raw = samples.raw_with("licensing_grace_expired")
    raw["rd_licensing"] = {"specified_license_servers": [], "connectivity": [], "x509_certificates": dict(X509_PRESENT),
                           **rd_licensing}
    return raw


# --------------------------------------------------------------------------------------------------
# licensing: the false critical
# --------------------------------------------------------------------------------------------------

def test_license_server_set_by_server_manager_is_not_a_grace_expiry() -> None:
    """Regression (issue 12): SpecifiedLicenseServers (Server Manager, Set-RDLicenseConfiguration, WMI) names the server;
    the grace counter at 0 is then normal, not RDP-LICENSING-GRACE-EXPIRED."""
    raw = expired_rdsh()
    assert ids(raw) == ["RDP-LICENSING-GRACE-EXPIRED"]  # nothing names a server: the finding stands
    raw["registry"][reg.TERMSERVICE_LICENSE_SERVERS] = {"SpecifiedLicenseServers": ["ls01.contoso.com"]}
    raw["registry"][reg.RCM_LICENSING_CORE] = {"LicensingMode": 4}
    facts = facts_of(raw)
    assert facts["licensing"]["license_server_list"] == ["ls01.contoso.com"]
    assert facts["licensing"]["rcm_licensing_mode"]["effective"] == 4
    assert fd.evaluate(facts) == []


def test_license_server_from_wmi_only() -> None:
    """GetSpecifiedLicenseServerList answers what the registry read did not give: still configured, no finding."""
    raw = expired_rdsh(specified_license_servers=["LS02"], connectivity=[{"server": "LS02", "status": 11, "error": None}])
    facts = facts_of(raw)
    assert facts["licensing"]["license_server_list"] == ["LS02"]
    assert facts["licensing"]["license_server_status"] == [
        {"server": "LS02", "status": 11, "status_name": "valid license server", "usable": True, "error": None}]
    assert fd.evaluate(facts) == []


@pytest.mark.parametrize("grace, severity, explains", [(0, "critical", True), (45, "high", False)])
def test_unreachable_license_server(grace: int, severity: str, explains: bool) -> None:
    """Every named server is LS_NOT_CONNECTABLE: critical once the grace period is over, a warning while it runs."""
    raw = expired_rdsh(specified_license_servers=["ls01"], connectivity=[{"server": "ls01", "status": 6, "error": None}])
    raw["ts_setting"]["GracePeriodDays"] = grace
    finding = by_id(raw, "RDP-LICENSE-SERVER-UNUSABLE")
    assert (finding["severity"], finding["explains_0x904"]) == (severity, explains)
    assert finding["evidence"]["license_server_status"][0]["status_name"] == "not connectable"
    assert "SetSpecifiedLicenseServerList" in finding["fix"]["manual"]
    assert "RDP-LICENSING-GRACE-EXPIRED" not in ids(raw)


def test_one_usable_server_is_enough_and_unknown_status_is_not_judged() -> None:
    statuses = [{"server": "a", "status": 6, "error": None}, {"server": "b", "status": 1, "error": None}]
    raw = expired_rdsh(specified_license_servers=["a", "b"], connectivity=statuses)
    assert ids(raw) == []
    raw = expired_rdsh(specified_license_servers=["a"], connectivity=[{"server": "a", "status": 0, "error": None}])
    assert ids(raw) == []


def test_licensing_read_errors_are_reported_part_by_part() -> None:
    error = {"error": {"type": "Microsoft.Management.Infrastructure.CimException", "message": "Generic failure "}}
    raw = expired_rdsh(connectivity=[{"server": "ls01", "status": None, "error": error["error"]}], x509_certificates=error)
    raw["rd_licensing"]["specified_license_servers"] = ["ls01"]
    facts = facts_of(raw)
    sections = [e["section"] for e in facts["read_errors"]]
    assert sections == ["rd_licensing: connectivity ls01", "rd_licensing: x509_certificates"]
    assert facts["licensing"]["x509_certificate_present"] is None
    assert ids(raw) == ["RDP-READ-INCOMPLETE"]  # nothing concluded from what could not be read


def test_licensing_certificate_missing_on_a_session_host_only() -> None:
    raw = expired_rdsh(specified_license_servers=["ls01"], x509_certificates={name: None for name in reg.RCM_X509_VALUES})
    finding = by_id(raw, "RDP-LICENSING-X509-MISSING")
    assert finding["evidence"]["key"] == reg.RCM and "X509 Certificate2" in finding["fix"]["manual"]
    healthy = samples.healthy_raw()  # not an RD Session Host: the certificate is not needed
    healthy["rd_licensing"] = None
    assert ids(healthy) == []


# --------------------------------------------------------------------------------------------------
# listener: WTS state, protocol stack, PortNumber
# --------------------------------------------------------------------------------------------------

def with_listener(state: str) -> dict:
    """The healthy document with the listener WinStation as WTSEnumerateSessions lists it (id 65536, no user)."""
    raw = samples.healthy_raw()
    raw["sessions"] = [{"id": 0, "station": "Services", "user": None, "state": "Disconnected", "logon_time": None,
                        "disconnect_time": None, "idle_seconds": None, "disconnected_seconds": None},
                       {"id": 65536, "station": "RDP-Tcp", "user": None, "state": state, "logon_time": None,
                        "disconnect_time": None, "idle_seconds": None, "disconnected_seconds": None}]
    return raw


def test_healthy_listener_facts() -> None:
    """The explicit healthy facts: the listener listens, Microsoft's stack, PortNumber present."""
    raw = with_listener("Listen")
    listener = facts_of(raw)["listener"]
    assert listener["wts_state"] == "Listen" and listener["port_missing"] is False
    assert listener["protocol_stack"]["foreign"] is False and listener["protocol_stack"]["microsoft"] is True
    assert ids(raw) == []
    assert facts_of(samples.healthy_raw())["listener"]["wts_state"] == "absent"  # no listener WinStation listed: not judged


def test_listener_down() -> None:
    raw = with_listener("Down")
    finding = by_id(raw, "RDP-LISTENER-DOWN")
    assert finding["evidence"]["wts_state"] == "Down" and finding["fix"] == {
        "module": "rdp.doctor.services", "params": {"termservice": {"state": "restarted"}}}


def test_listener_state_unknown_without_sessions() -> None:
    raw = samples.healthy_raw()
    raw["sessions"] = {"error": {"type": "System.ComponentModel.Win32Exception", "message": "The RPC server is unavailable"}}
    assert facts_of(raw)["listener"]["wts_state"] is None
    assert "RDP-LISTENER-DOWN" not in ids(raw)


@pytest.mark.parametrize("value, backup, wanted", [
    ("{BC7FDAB0-9A0D-4A3D-9C46-5E0C5C1B0D1A}", "{5828227c-20cf-4408-b73f-73ab70b8849f}", "{5828227c-20cf-4408-b73f-73ab70b8849f}"),
    ("{5828227C-20CF-4408-B73F-73AB70B8849F}", "{5828227c-20cf-4408-b73f-73ab70b8849f}", "{5828227c-20cf-4408-b73f-73ab70b8849f}"),
    ("{0e3b1e5c-1111-2222-3333-444455556666}", None, "{5828227c-20cf-4408-b73f-73ab70b8849f}"),
])
def test_foreign_protocol_stack(value: str, backup: str | None, wanted: str) -> None:
    """A foreign CLSID, or Microsoft's back with Citrix's backup still there (a leftover VDA)."""
    raw = samples.healthy_raw()
    raw["registry"][reg.RDP_TCP]["LoadableProtocol_Object"] = value
    if backup:
        raw["registry"][reg.RDP_TCP]["CitrixBackupRdpTcpLoadableProtocolObject"] = backup
    finding = by_id(raw, "RDP-PROTOCOL-STACK-FOREIGN")
    assert finding["evidence"]["LoadableProtocol_Object"] == value and wanted in finding["fix"]["manual"]
    down = with_listener("Down")
    down["registry"] = raw["registry"]
    assert "RDP-PROTOCOL-STACK-FOREIGN" in by_id(down, "RDP-LISTENER-DOWN")["fix"]["manual"]  # a restart alone cannot help


def test_microsoft_stacks_are_fine() -> None:
    for clsid in sorted(reg.MICROSOFT_PROTOCOL_OBJECTS):
        raw = samples.healthy_raw()
        raw["registry"][reg.RDP_TCP]["LoadableProtocol_Object"] = clsid.upper()
        assert ids(raw) == []


def test_port_number_missing() -> None:
    raw = samples.healthy_raw()
    del raw["registry"][reg.RDP_TCP]["PortNumber"]
    finding = by_id(raw, "RDP-PORT-MISSING")
    assert "PortNumber" in finding["fix"]["manual"]
    unreadable = samples.healthy_raw()
    unreadable["registry"][reg.RDP_TCP] = {"error": {"type": "System.Security.SecurityException", "message": "denied"}}
    assert facts_of(unreadable)["listener"]["port_missing"] is False  # unknown is not missing


# --------------------------------------------------------------------------------------------------
# MaxInstanceCount, port exhaustion, SelfSignedCertStore
# --------------------------------------------------------------------------------------------------

def test_low_instance_limit_not_reached() -> None:
    raw = samples.healthy_raw()
    raw["registry"][reg.RDP_TCP]["MaxInstanceCount"] = 1
    finding = by_id(raw, "RDP-INSTANCE-LIMIT-LOW")
    assert finding["evidence"]["instance_limit"] == 1 and finding["fix"]["params"] == {"max_instance_count": 4294967295}
    raw["registry"][reg.RDP_TCP]["MaxInstanceCount"] = 2  # Remote Desktop for Administration allows 2 anyway
    assert ids(raw) == []
    raw["os"]["rdsh_installed"] = True
    raw["ts_setting"]["TerminalServerMode"] = 1
    raw["rd_licensing"] = {"specified_license_servers": ["ls01"], "connectivity": [], "x509_certificates": dict(X509_PRESENT)}
    raw["ts_setting"]["GracePeriodDays"] = 0
    assert ids(raw) == ["RDP-INSTANCE-LIMIT-LOW"]  # an RD Session Host capped at two


def test_port_exhaustion_events() -> None:
    raw = samples.healthy_raw()
    raw["events"].append({"log": "System", "provider": "Tcpip", "id": 4231, "count": 4, "last": samples.iso(samples.NOW),
                          "samples": [{"time": samples.iso(samples.NOW), "message": "A request to allocate an ephemeral port "
                                       "number from the global TCP port space has failed due to all such ports being in use."}],
                          "error": None})
    raw["events"].append({"log": "System", "provider": "Tcpip", "id": 4227, "count": 0, "last": None, "samples": [], "error": None})
    finding = by_id(raw, "RDP-PORT-EXHAUSTION")
    assert [(e["id"], e["count"]) for e in finding["evidence"]["events"]] == [(4231, 4)]


def test_cert_store_deny_for_system() -> None:
    """A Deny ACE for SYSTEM on the Remote Desktop store's key (or NETWORK SERVICE on RCM); Deny for others is not judged."""
    raw = samples.healthy_raw()
    raw["cert_store_acls"]["Remote Desktop"] = "O:SYG:SYD:AI(D;CI;KA;;;SY)(A;CIID;KA;;;SY)(A;CIID;KA;;;BA)"
    finding = by_id(raw, "RDP-CERT-STORE-ACL-DENY")
    assert finding["evidence"]["keys"]["Remote Desktop"]["deny_aces"] == [{"sid": "S-1-5-18", "rights": "KA", "flags": "CI"}]
    assert reg.REMOTE_DESKTOP_STORE_KEY in finding["fix"]["manual"]
    raw = samples.healthy_raw()
    raw["cert_store_acls"]["RCM"] = "O:SYG:SYD:(D;;KR;;;S-1-5-20)(A;;KA;;;SY)"
    assert ids(raw) == ["RDP-CERT-STORE-ACL-DENY"]
    raw["cert_store_acls"]["RCM"] = "O:SYG:SYD:(D;;KA;;;BG)(A;;KA;;;SY)"  # Guests denied: fine
    assert ids(raw) == []
    raw["cert_store_acls"] = {"error": {"type": "System.UnauthorizedAccessException", "message": "denied"}}
    facts = facts_of(raw)
    assert facts["certificate_store_acls"] == {"read": False, "keys": {}, "denied": None}
    assert ids(raw) == ["RDP-READ-INCOMPLETE"]


def test_short_time_limits_only_when_windows_applies_them() -> None:
    """MaxIdleTime=1 min on RDP-Tcp is ignored with fInheritMaxIdleTime=1 (healthy fact: source user); with 0 it applies."""
    raw = samples.healthy_raw()
    raw["registry"][reg.RDP_TCP].update(MaxIdleTime=60000, MaxConnectionTime=120000)
    facts = facts_of(raw)
    assert facts["session_limits"]["max_idle_time"]["source"] == "user" and ids(raw) == []
    raw["registry"][reg.RDP_TCP].update(fInheritMaxIdleTime=0, fInheritMaxSessionTime=0, fResetBroken=1, fInheritResetBroken=0)
    finding = by_id(raw, "RDP-SESSION-TIME-LIMIT-SHORT")
    assert finding["evidence"]["logs_off"] is True and set(finding["evidence"]) >= {"max_idle_time", "max_connection_time"}
    assert finding["fix"] == {"module": "rdp.doctor.session_limits", "params": {"max_idle_time": 900000, "max_connection_time": 0}}
    raw["registry"][reg.POL] = {"MaxIdleTime": 30000}
    policy = by_id(raw, "RDP-SESSION-TIME-LIMIT-SHORT")
    assert "manual" in policy["fix"] and policy["evidence"]["enforced_by_group_policy"] is True
    assert "RDP-GPO-OVERRIDE" in ids(raw)


def test_ephemeral_range() -> None:
    raw = samples.healthy_raw()
    assert facts_of(raw)["ephemeral_ports"]["count"] == 16384 and ids(raw) == []
    raw["ephemeral_ports"][1]["count"] = 1000
    finding = by_id(raw, "RDP-EPHEMERAL-RANGE-NARROW")
    assert finding["evidence"]["count"] == 1000 and "start=49152 num=16384" in finding["fix"]["manual"]
    raw["ephemeral_ports"] = {"error": {"type": "ModuleNotAvailable", "message": "Get-NetTCPSetting is not available"}}
    assert facts_of(raw)["ephemeral_ports"]["read"] is False and ids(raw) == ["RDP-READ-INCOMPLETE"]


def test_self_signed_store_moved() -> None:
    raw = samples.healthy_raw()
    raw["registry"][reg.WINSTATIONS] = {"SelfSignedCertStore": "My"}
    assert by_id(raw, "RDP-SELF-SIGNED-STORE-MOVED")["evidence"]["effective"] == "My"
    raw["registry"][reg.WINSTATIONS] = {"SelfSignedCertStore": "REMOTE DESKTOP"}
    assert ids(raw) == []
