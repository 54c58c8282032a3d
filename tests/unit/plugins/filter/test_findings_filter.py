"""The findings and findings_summary filters, as the diagnose role uses them."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.rdp.doctor.plugins.filter.findings import FilterModule as FindingsFilters
from ansible_collections.rdp.doctor.plugins.filter.findings_summary import FilterModule as SummaryFilters
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

findings = FindingsFilters().filters()["findings"]
summary = SummaryFilters().filters()["findings_summary"]


def facts_with(*faults: str) -> dict:
    """Facts of a sample host with faults."""
    return hf.normalize(samples.raw_with(*faults), samples.NOW, ["rdpuser"])


def test_findings_from_facts_and_a_registered_probe_result() -> None:
    """A registered probe task result (changed/failed keys around the document) is joined; a skipped one ignored."""
    registered = dict(samples.probe_result(tcp="refused"), changed=False, failed=False)
    result = findings(facts_with("firewall_rdp_disabled"), registered)
    assert [f["id"] for f in result] == ["RDP-FIREWALL-RULES-DISABLED"] and result[0]["evidence"]["probe"]["failure"] == "refused"
    assert findings(facts_with("firewall_rdp_disabled"), {"skipped": True, "changed": False})[0]["evidence"].get("probe") is None
    assert findings(facts_with(), {"probe": samples.probe_result(tcp="timeout")})[0]["id"] == "RDP-PATH-BLOCKED"


def test_filter_by_category_and_severity() -> None:
    """categories keeps some areas; min_severity drops the less severe."""
    facts = facts_with("cert_expired", "nla_disabled", "tls12_disabled")
    assert {f["category"] for f in findings(facts, categories=["certificate"])} == {"certificate"}
    assert [f["id"] for f in findings(facts, min_severity="high")] == ["RDP-CERT-EXPIRED", "RDP-TLS12-DISABLED"]
    with pytest.raises(AnsibleFilterError, match="min_severity"):
        findings(facts, min_severity="urgent")
    with pytest.raises(AnsibleFilterError, match="host facts"):
        findings(["not", "facts"])


def test_unreachable_host() -> None:
    """No facts (unreachable) and no probe: no findings; the summary says UNREACHABLE with the reason."""
    assert findings(None) == [] and findings({}, None) == []
    lines = summary([], {"state": "unreachable", "msg": "ntlm: connection refused"})
    assert lines == ["UNREACHABLE: ntlm: connection refused"]
    lines = summary(findings(None, samples.probe_result(tcp="refused")), {"state": "unreachable", "msg": "timed out"})
    assert lines[0] == "UNREACHABLE: timed out" and lines[2].startswith("[high] RDP-PROBE-FAILED (explains 0x904)")


def test_summary_lines_cause_first() -> None:
    """A count line, then one line per finding with its fix; healthy hosts say so."""
    lines = summary(list(reversed(findings(facts_with("rdp_disabled", "nla_disabled")))))
    assert lines[0] == "2 findings, 1 explains 0x904"
    assert lines[1] == ("[critical] RDP-CONNECTIONS-DENIED (explains 0x904): Remote Desktop connections are not allowed "
                        "(fDenyTSConnections=1) -> rdp.doctor.listener_security allow_connections=True")
    assert lines[2].startswith("[medium] RDP-NLA-DISABLED: ")
    assert summary([]) == ["no findings: RDP looks healthy from the host's side"]
    manual = summary(findings(facts_with("gpo_denies_connections")))
    assert "-> manual: Group Policy sets fDenyTSConnections=1" in manual[1]
    assert summary([], {"state": "failed", "msg": "Access is denied"}) == ["FAILED: Access is denied"]
    assert summary([], {"state": "skipped", "msg": "not read"}) == ["SKIPPED: not read"]


def test_summary_shows_the_clients_view_next_to_the_findings() -> None:
    """With a probe result, one more line gives every step's verdict and the first failing step."""
    probe = samples.probe_result(tcp="refused")
    lines = summary(findings(facts_with("firewall_rdp_disabled")), {"state": "ok"}, probe)
    client = lines[-1]
    assert client.startswith("client view 127.0.0.2:3389: dns ok, tcp FAIL")
    assert "-> tcp:" in client and "(client sees: " in client
    healthy = summary([], {"state": "ok"}, samples.probe_result())
    assert healthy[0] == "no findings: RDP looks healthy from the host's side and the client's"
    assert healthy[1].startswith("client view 127.0.0.2:3389: dns ok, tcp ok, x224 ok")
    assert summary([], {"state": "ok"}, {"no": "steps"}) == ["no findings: RDP looks healthy from the host's side"]
    warned = samples.probe_result()
    warned["steps"][4].update(verdict="warn", summary="win01, issued by win01: self-signed")
    assert summary([], {"state": "ok"}, warned)[1].endswith("-> a client can connect, with warnings - certificate: win01, issued by win01: self-signed")


def test_summary_names_what_could_not_be_read() -> None:
    """A section error: the other findings as usual, plus one "could not read" line with each part and its reason."""
    raw = samples.raw_with("rdp_disabled")
    raw["firewall"] = {"error": {"type": "ServiceNotRunning", "message": "the Windows Defender Firewall service (MpsSvc) is Stopped"}}
    raw["events"] = [{"log": "System", "provider": "Schannel", "ids": [36870], "error": {"type": "System.Diagnostics.Eventing.Reader"
                                                                                         ".EventLogException", "message": "The data is invalid."}}]
    lines = summary(findings(hf.normalize(raw, samples.NOW, ["rdpuser"])))
    assert lines[0] == "2 findings, 1 explains 0x904"
    assert lines[1] == ("could not read: firewall (the Windows Defender Firewall service (MpsSvc) is Stopped); "
                        "events: System Schannel (The data is invalid.)")
    assert lines[2].startswith("[critical] RDP-CONNECTIONS-DENIED") and lines[3].startswith("[medium] RDP-READ-INCOMPLETE: ")
    assert not any("could not read" in line for line in summary(findings(facts_with("rdp_disabled"))))
