"""End to end: diagnose on hosts whose read breaks in part (issue 7), over winrm and psrp.

Each host state the read must survive (a stopped firewall service, an event that cannot be formatted, a failing WMI
provider, a key the administrator cannot open, .NET 4.5 only, a broken domain trust, nested groups, narrow or broad
firewall rules) alone and combined with a cause of 0x904: diagnose still gives every other finding, says in one
"could not read" line what it could not read, reads each host in one round trip, and concludes nothing false.
"""

from __future__ import annotations

import subprocess
import typing as t
from pathlib import Path

import pytest

from tests.integration.fault_fleets import diagnose_exactly, expected_ids, fault_hosts, host_name, start_fleet
from tests.integration.test_diagnose_lab import finding

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

READ_FAULTS = ("firewall_service_stopped", "event_unformattable", "wmi_terminalservices_broken", "wts_unavailable", "key_not_openable_by_admin",
               "netfx_45_only", "accounts_domain_unreachable", "accounts_nested_group", "firewall_rule_program_filtered",
               "firewall_rule_address_filtered", "firewall_allow_any_port")
#: A host state with a cause of 0x904 (or a risk) on the same host: the cause's finding must stay.
COMBINED = {
    "r-fw-stopped-expired": ("firewall_service_stopped", "cert_expired"),
    "r-wmi-nla": ("wmi_terminalservices_broken", "nla_disabled"),
    "r-trust-disabled": ("accounts_domain_unreachable", "account_disabled"),
    "r-event-tls12": ("event_unformattable", "tls12_disabled"),
    "r-admin-key-forced": ("key_not_openable_by_admin", "credssp_force_updated"),
    "r-netfx-unpatched": ("netfx_45_only", "credssp_server_unpatched"),
    "r-wts-termservice-stopped": ("wts_unavailable", "termservice_stopped"),
}


def _name(fault: str) -> str:
    return host_name("r", fault)


HOSTS: dict[str, tuple[str, ...]] = fault_hosts("r", READ_FAULTS, COMBINED)
EXPECTED: dict[str, set[str]] = expected_ids(HOSTS)
EXPECTED["r-event-tls12"].add("RDP-TLS-LEGACY-ENABLED")  # tls12_disabled switches TLS 1.0 on explicitly
#: What each host's "could not read" line must name (a host without a read error has no such line).
COULD_NOT_READ: dict[str, str] = {
    _name("firewall_service_stopped"): "could not read: firewall (the Windows Defender Firewall service (MpsSvc) is Stopped",
    "r-fw-stopped-expired": "could not read: firewall (the Windows Defender Firewall service (MpsSvc) is Stopped",
    _name("event_unformattable"): "could not read: events: System TermDD 56 (a sample's message) (The data is invalid.)",
    "r-event-tls12": "could not read: events: System TermDD 56 (a sample's message) (The data is invalid.)",
    _name("wmi_terminalservices_broken"): "could not read: ts_general_setting (Provider load failure ); ts_setting (Provider load failure )",
    "r-wmi-nla": "could not read: ts_general_setting (Provider load failure ); ts_setting (Provider load failure )",
    _name("wts_unavailable"): "could not read: sessions (The RPC server is unavailable)",
    "r-wts-termservice-stopped": "could not read: sessions (The RPC server is unavailable)",
    _name("accounts_domain_unreachable"): "could not read: accounts: CONTOSO\\alice (The trust relationship between this workstation",
    "r-trust-disabled": "could not read: accounts: CONTOSO\\alice (The trust relationship between this workstation",
}


@pytest.fixture(scope="module")
def read_errors_lab(lab_fleet: t.Callable[..., t.Any], tmp_path_factory: pytest.TempPathFactory) -> t.Any:
    """One host per host state and the combinations (the lab picks 2012 R2 where a fault needs it)."""
    return start_fleet(lab_fleet, tmp_path_factory, "read-errors", HOSTS)


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_diagnose_survives_partial_reads(read_errors_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path, connection: str) -> None:
    """Every host is read (state ok, one round trip) and gives exactly its findings; the summary names what was not read."""
    result = diagnose_exactly(read_errors_lab, run_playbook, connection, tmp_path, EXPECTED)
    for host, line in COULD_NOT_READ.items():  # each host's own summary lines
        assert any(printed.startswith(line) for printed in result.hosts[host]["summary"]), (host, line, result.hosts[host]["summary"])
    printed = result.run.stdout.replace("\\\\", "\\")  # the debug output escapes a backslash as in JSON
    assert f"READ_INCOMPLETE {_name('wts_unavailable')}: could not read: sessions (The RPC server is unavailable)" in printed
    stopped = result.hosts["r-fw-stopped-expired"]
    assert stopped["facts"]["read_errors"][0]["section"] == "firewall" and stopped["facts"]["firewall"]["read"] is False
    assert finding(stopped, "RDP-CERT-EXPIRED")["evidence"]["probe"]["probe_thumbprint"]  # the probe's join still happens
    # narrow rules: the client is refused, and the host finding carries that evidence
    narrow = finding(result.hosts[_name("firewall_rule_address_filtered")], "RDP-FIREWALL-RULES-DISABLED")
    assert narrow["evidence"]["probe"]["failure"] == "refused"
    assert narrow["evidence"]["allowed_only_from"] == [{"name": "Jump-RDP-In-TCP", "remote_addresses": ["10.99.0.0/255.255.0.0"]}]
    # hosts whose read is complete and whose listener is fine: no finding, and the usual healthy line
    for fault in ("key_not_openable_by_admin", "netfx_45_only", "firewall_allow_any_port"):
        assert result.hosts[_name(fault)]["findings"] == [] and result.hosts[_name(fault)]["probe"]["verdict"]["ok"], fault
    assert result.hosts[_name("netfx_45_only")]["facts"]["os"]["version"] == "6.3.9600"
    nested = finding(result.hosts[_name("accounts_nested_group")], "RDP-ACCOUNT-MEMBERSHIP-UNKNOWN")
    assert [a["name"] for a in nested["evidence"]["accounts"]] == ["CONTOSO\\alice"]
