"""The fleet report: host records and states, summary, schema, merge of slices and of an older run, JMESPath selection,
JUnit (validated against the JUnit XSD) and Markdown."""

from __future__ import annotations

import copy
import json
import typing as t
from pathlib import Path

import jsonschema
import pytest
from lxml import etree

from ansible_collections.rdp.doctor.plugins.module_utils import fleet_report as fr
from ansible_collections.rdp.doctor.plugins.module_utils import report_formats
from ansible_collections.rdp.doctor.plugins.plugin_utils.report_query import SelectionError, apply_selection, compile_selection

ROOT = Path(__file__).resolve().parents[4]
SCHEMA = json.loads((ROOT / "plugins/report_schemas/fleet_report.schema.json").read_text(encoding="utf-8"))
FIXTURE = ROOT / "tests/fixtures/fleet_report/drift-default-fleet.json"
#: A real remediation of the small lab fleet: changed and fixed hosts, one rolled back (apply_fail_at).
REMEDIATED = ROOT / "tests/fixtures/fleet_report/remediate-small-fleet.json"
JUNIT_XSD = etree.XMLSchema(etree.parse(str(ROOT / "tests/unit/data/junit.xsd")))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def schema_errors(report: dict[str, t.Any]) -> list[str]:
    """Every schema violation, with its path."""
    return [f"{list(e.absolute_path)}: {e.message}" for e in VALIDATOR.iter_errors(report)]


def finding(fid: str, severity: str = "critical", category: str = "certificate", explains: bool = True,
            module: str | None = "rdp.doctor.listener_certificate") -> dict[str, t.Any]:
    """A finding as diagnose publishes it."""
    return {"id": fid, "title": f"{fid} title", "severity": severity, "category": category, "explains_0x904": explains,
            "evidence": {"value": 1}, "fix": {"module": module, "params": {"state": "self_signed"}} if module else {"manual": "Ask GPO owners."}}


OK = {"state": "ok", "msg": "read", "error": None}
FACTS = {"os": {"caption": "Microsoft Windows Server 2022 Datacenter", "version": "10.0.20348", "build": 20348,
                "domain": "WORKGROUP", "part_of_domain": False},
         "certificate": {"bound": {"issuer": "CN=win", "self_signed": True, "not_after": "2027-01-01T00:00:00Z"}},
         "credssp": {"allow_encryption_oracle_name": "Mitigated", "patched": True},
         "security": {"security_layer_name": "TLS", "nla_required": True,
                      "security_layer": {"effective": 2, "source": "policy", "local": 1, "policy": 2, "default": 1}}}
PROBE = {"target": "10.0.0.5", "port": 3389, "steps": [{"step": "tcp", "verdict": "ok", "summary": "connected", "finding_ids": []}],
         "verdict": {"ok": True, "failed_step": None, "finding_ids": [], "explanation": "", "client_sees": "logon screen"}}


def published(**values: t.Any) -> dict[str, t.Any]:
    """What a host published, with every key present."""
    base: dict[str, t.Any] = {key: None for key in fr.PUBLISHED}
    base.update(values)
    return base


def sample_fleet() -> dict[str, dict[str, t.Any]]:
    """One host per state, plus a remediated and a check-mode host."""
    would = {"state": "would_change", "outcome": "check_mode", "changed": True, "operations": [
        {"id": "op01", "kind": "registry_value", "target": {"path": "HKLM:\\X", "name": "Y"}, "expect": {"value": 0},
         "set": {"value": 1}, "why": "because", "reversible": True}], "reboot_required": True}
    return {
        "healthy": published(host_state=OK, findings=[finding("RDP-CERT-SELF-SIGNED", "info", explains=False)],
                             facts=FACTS, probe=PROBE),
        "broken": published(host_state=OK, findings=[finding("RDP-CERT-EXPIRED")], facts=FACTS, probe=PROBE),
        "medium-only": published(host_state=OK, findings=[finding("RDP-NLA-DISABLED", "medium", "security", False)], facts=FACTS),
        "partly-read": published(host_state=OK, findings=[finding("RDP-READ-INCOMPLETE", "medium", "host", False, None)], facts=FACTS),
        "read-failed": published(host_state={"state": "failed", "msg": "script failed",
                                             "error": {"type": "System.Management.Automation.RuntimeException"}}),
        "unreachable": published(host_state={"state": "unreachable", "msg": "connection refused", "error": None}),
        "never-ran": published(),
        "drifted": published(host_state=OK, findings=[finding("RDP-TLS12-DISABLED", "high", "tls")], facts=FACTS, remediation=would),
        "fixed": published(host_state=OK, findings=[finding("RDP-CERT-EXPIRED")], facts=FACTS,
                           remediation={"state": "changed", "outcome": "applied", "changed": True, "fixed": ["RDP-CERT-EXPIRED"]}),
        "rolled-back": published(host_state=OK, findings=[finding("RDP-CERT-EXPIRED")], facts=FACTS,
                                 remediation={"state": "rolled_back", "outcome": "rolled_back", "msg": "probe got worse"}),
    }


def sample_report(**run: t.Any) -> dict[str, t.Any]:
    """The sample fleet as a report."""
    return fr.build_report(sample_fleet(), {"generated_utc": "2026-11-26T12:00:00Z", "run_id": "r1", **run},
                           addresses={"broken": "10.0.0.5"})


def by_name(report: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    """Host records by name."""
    return {record["name"]: record for record in report["hosts"]}


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    """The shipped schema itself is valid."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["schema"]["const"] == fr.SCHEMA


def test_published_results_read_facts_first_then_top_level_variables() -> None:
    """Both ways diagnose may publish are read; ansible_facts wins; the facts may be ansible_facts.rdp_doctor."""
    top = fr.published_results({"rdp_doctor_findings": [finding("RDP-A")], "rdp_doctor_host_state": OK})
    assert top["findings"][0]["id"] == "RDP-A" and top["host_state"] == OK and top["remediation"] is None
    both = fr.published_results({"rdp_doctor_findings": [finding("RDP-OLD")],
                                 "ansible_facts": {"rdp_doctor_findings": [finding("RDP-NEW")], "rdp_doctor": {"os": {}}}})
    assert [f["id"] for f in both["findings"]] == ["RDP-NEW"]
    assert both["facts"] == {"os": {}}
    assert fr.published_results({}) == {key: None for key in fr.PUBLISHED}


def test_every_host_gets_the_state_its_results_say() -> None:
    """healthy / broken / unknown / failed / unreachable, fixed findings no longer count, a rollback fails the host."""
    states = {name: record["state"] for name, record in by_name(sample_report()).items()}
    assert states == {"healthy": "healthy", "broken": "broken", "medium-only": "healthy", "partly-read": "unknown",
                      "read-failed": "failed", "unreachable": "unreachable", "never-ran": "unreachable",
                      "drifted": "broken", "fixed": "healthy", "rolled-back": "failed"}
    medium = fr.build_report({"m": sample_fleet()["medium-only"]}, {}, broken_severity="medium")
    assert medium["hosts"][0]["state"] == "broken"
    # Results without rdp_doctor_host_state: read when there are facts, else not known to be read.
    no_state = {"facts": published(facts=FACTS), "findings": published(findings=[finding("RDP-NLA-DISABLED", "medium", "security", False)])}
    assert {r["name"]: (r["state"], r["read"]["state"]) for r in fr.build_report(no_state, {})["hosts"]} == {
        "facts": ("healthy", "ok"), "findings": ("unknown", "skipped")}


def test_host_records_carry_reasons_drift_and_traits() -> None:
    """Errors of unreachable and failed hosts, a reason for a host with no result, the planned operations, traits."""
    hosts = by_name(sample_report())
    assert hosts["never-ran"]["read"]["msg"] == fr.NO_RESULT
    assert hosts["unreachable"]["errors"] == [{"stage": "read", "msg": "connection refused", "type": "unreachable"}]
    assert hosts["read-failed"]["errors"][0]["type"] == "System.Management.Automation.RuntimeException"
    assert hosts["rolled-back"]["errors"] == [{"stage": "remediate", "msg": "probe got worse", "type": "rolled_back"}]
    drift = hosts["drifted"]["remediation"]
    assert drift["check_mode"] and drift["operations"][0]["set"] == {"value": 1}
    assert hosts["drifted"]["findings"][0]["status"] == "would_fix"
    assert hosts["fixed"]["findings"][0]["status"] == "fixed" and hosts["fixed"]["causes"] == []
    assert hosts["broken"]["causes"] == ["RDP-CERT-EXPIRED"] and hosts["broken"]["address"] == "10.0.0.5"
    traits = hosts["broken"]["traits"]
    assert traits["os_build"] == 20348 and traits["certificate_issuer"] == "CN=win" and traits["credssp"] == "Mitigated"
    assert traits["policy_settings"] == ["security.security_layer"]
    assert hosts["unreachable"]["traits"]["os_build"] is None


def test_summary_counts_states_causes_and_drift() -> None:
    """Counts by state, hosts per cause (fixed findings left out), worst hosts first, drift."""
    report = sample_report()
    summary = report["summary"]
    assert summary["hosts"] == 10 and not summary["compliant"]
    assert summary["states"] == {"unreachable": 2, "failed": 2, "broken": 2, "unknown": 1, "healthy": 3}
    expired = next(c for c in summary["by_cause"] if c["id"] == "RDP-CERT-EXPIRED")
    assert expired["hosts"] == ["broken", "rolled-back"] and expired["count"] == 2
    assert summary["by_cause"][0]["explains_0x904"]
    assert summary["worst_hosts"][:2] == ["never-ran", "unreachable"] and "healthy" not in summary["worst_hosts"]
    assert summary["drift"] == {"hosts_changed": 1, "hosts_would_change": 1, "operations": 1, "reboot_required": 1, "check_mode": True}
    assert report["run"]["kind"] == "drift" and report["run"]["check_mode"]


def test_built_reports_and_the_example_fixture_match_the_schema() -> None:
    """The builder's output and the committed example (lab data) validate against the shipped schema."""
    assert schema_errors(sample_report()) == []
    assert schema_errors(fr.build_report({}, {"generated_utc": "2026-11-26T12:00:00Z"})) == []
    example = json.loads(FIXTURE.read_text(encoding="utf-8"))
    assert schema_errors(example) == []
    assert {"healthy", "broken", "failed", "unreachable", "unknown"} <= {h["state"] for h in example["hosts"]}
    remediated = json.loads(REMEDIATED.read_text(encoding="utf-8"))
    assert schema_errors(remediated) == []
    assert remediated["run"]["kind"] == "remediate" and {"fixed", "open"} <= {f["status"] for h in remediated["hosts"] for f in h["findings"]}


def test_the_schema_rejects_what_is_not_a_report() -> None:
    """A wrong state, a missing host field or an unknown top-level key fail validation."""
    report = sample_report()
    bad_state = copy.deepcopy(report)
    bad_state["hosts"][0]["state"] = "green"
    missing = copy.deepcopy(report)
    del missing["hosts"][0]["errors"]
    extra = dict(copy.deepcopy(report), colour="red")
    for broken in (bad_state, missing, extra):
        assert schema_errors(broken)


def slices(report: dict[str, t.Any], parts: int) -> list[dict[str, t.Any]]:
    """The report cut into ``parts`` reports of its own (what AWX job slices write)."""
    out = []
    for index in range(parts):
        part = copy.deepcopy(report)
        part["hosts"] = report["hosts"][index::parts]
        part["run"] = dict(part["run"], run_id=f"slice-{index}",
                           sources=[{"run_id": f"slice-{index}", "generated_utc": part["run"]["generated_utc"], "hosts": len(part["hosts"])}])
        out.append(fr.with_summary(part))
    return out


def test_merging_the_slices_of_a_run_gives_the_whole_fleet() -> None:
    """A fleet split in three parts merges back to the same hosts and summary; sources list the slices."""
    whole = json.loads(FIXTURE.read_text(encoding="utf-8"))
    parts = slices(whole, 3)
    assert sum(p["summary"]["hosts"] for p in parts) == whole["summary"]["hosts"]
    merged = fr.merge_reports(parts)
    assert schema_errors(merged) == []
    assert [h["name"] for h in merged["hosts"]] == sorted(h["name"] for h in whole["hosts"])
    assert merged["hosts"] == sorted(whole["hosts"], key=lambda h: h["name"])
    summary = {k: v for k, v in merged["summary"].items() if k != "trend"}
    assert summary == whole["summary"] and merged["summary"]["trend"] == []
    assert [s["run_id"] for s in merged["run"]["sources"]] == ["slice-0", "slice-1", "slice-2"] and merged["run"]["merged"] == 3


def test_merging_an_older_run_keeps_the_newest_record_and_the_trend() -> None:
    """Yesterday's healthy host that is broken today: today's record, previous_state and a trend entry."""
    today = sample_report(generated_utc="2026-11-26T12:00:00Z", run_id="today")
    yesterday = copy.deepcopy(today)
    yesterday["run"] = dict(yesterday["run"], generated_utc="2026-11-25T12:00:00Z", run_id="yesterday",
                            sources=[{"run_id": "yesterday", "generated_utc": "2026-11-25T12:00:00Z", "hosts": 11}])
    for record in yesterday["hosts"]:
        if record["name"] == "broken":
            record.update(state="healthy", findings=[])
    yesterday["hosts"].append(dict(copy.deepcopy(yesterday["hosts"][0]), name="retired"))
    merged = fr.merge_reports([today, yesterday])  # order given does not matter: the newest wins
    assert schema_errors(merged) == []
    hosts = by_name(merged)
    assert hosts["broken"]["state"] == "broken" and hosts["broken"]["previous_state"] == "healthy"
    assert "retired" in hosts and merged["summary"]["hosts"] == 11
    assert merged["summary"]["trend"] == [{"host": "broken", "from": "healthy", "to": "broken"}]
    assert merged["run"]["run_id"] == "today"


def test_merge_refuses_what_is_not_a_fleet_report() -> None:
    """A document of another schema is named."""
    with pytest.raises(ValueError, match="report 2 of 2: schema is 'other/1'"):
        fr.merge_reports([sample_report(), {"schema": "other/1", "hosts": []}])
    with pytest.raises(ValueError, match="no report"):
        fr.merge_reports([])


def test_select_hosts_and_findings_with_jmespath() -> None:
    """Only one OS build; only critical findings; the summary follows the selection; run.selection records it."""
    report = sample_report()
    only_read = apply_selection(report, "[?traits.os_build==`20348`]", None)
    assert {h["name"] for h in only_read["hosts"]} == {"healthy", "broken", "medium-only", "partly-read", "drifted", "fixed", "rolled-back"}
    assert only_read["summary"]["hosts"] == 7 and only_read["run"]["selection"]["hosts"] == "[?traits.os_build==`20348`]"
    critical = apply_selection(report, None, "[?severity=='critical']")
    assert all(f["severity"] == "critical" for h in critical["hosts"] for f in h["findings"])
    assert {c["id"] for c in critical["summary"]["by_cause"]} == {"RDP-CERT-EXPIRED"}
    assert schema_errors(only_read) == [] and schema_errors(critical) == []
    assert apply_selection(report, "[?state=='nothing-like-this']", None)["hosts"] == []


@pytest.mark.parametrize(("hosts", "findings", "message"), [
    ("[?state=='broken'", None, "select_hosts: .* is not a valid JMESPath expression"),
    (None, "[?severity=", "select_findings: .* is not a valid JMESPath expression"),
])
def test_a_bad_expression_is_named_before_anything_runs(hosts: str | None, findings: str | None, message: str) -> None:
    """compile_selection fails with the option's name and the parser's reason."""
    with pytest.raises(SelectionError, match=message):
        compile_selection(hosts, findings)


def test_an_expression_must_return_records() -> None:
    """A projection to names is refused: the formats need host records and findings."""
    with pytest.raises(SelectionError, match="select_hosts: .* must return a list of host records, not str"):
        apply_selection(sample_report(), "[0].name", None)
    with pytest.raises(SelectionError, match="must return host records"):
        apply_selection(sample_report(), "[].{n: name}", None)
    with pytest.raises(SelectionError, match="must return findings"):
        apply_selection(sample_report(), None, "[].{i: id}")


def junit_tree(report: dict[str, t.Any]) -> etree._ElementTree:
    """The JUnit text parsed, after checking it against the JUnit XSD."""
    text = report_formats.junit_xml(report)
    tree = etree.ElementTree(etree.fromstring(text.encode("utf-8")))
    assert JUNIT_XSD.validate(tree), JUNIT_XSD.error_log
    return tree


def test_junit_has_a_suite_per_host_and_a_case_per_check() -> None:
    """Broken checks fail with the finding, unreachable and failed hosts are errors, healthy hosts pass."""
    tree = junit_tree(sample_report())
    suites = {s.get("name"): s for s in tree.getroot().findall("testsuite")}
    assert set(suites) == {h["name"] for h in sample_report()["hosts"]}
    broken = suites["broken"]
    failure = broken.find("testcase[@name='certificate']/failure")
    assert failure is not None and failure.get("type") == "RDP-CERT-EXPIRED" and "evidence" in failure.text
    assert broken.get("failures") == "1" and broken.get("errors") == "0"
    assert [c.get("name") for c in broken.findall("testcase")][:3] == ["read", "probe", "listener"]
    assert suites["unreachable"].find("testcase[@name='read']/error").get("message") == "unreachable: connection refused"
    assert suites["never-ran"].get("errors") == "1" and suites["never-ran"].find("testcase[@name='tls']/skipped") is not None
    assert suites["healthy"].get("failures") == "0" and suites["healthy"].get("errors") == "0"
    assert suites["drifted"].find("testcase[@name='remediation']/system-out").text.startswith("would apply: op01")
    assert suites["rolled-back"].find("testcase[@name='remediation']/failure") is not None
    assert suites["fixed"].find("testcase[@name='certificate']/failure") is None
    root = tree.getroot()
    assert int(root.get("failures")) == sum(int(s.get("failures")) for s in suites.values())


def test_junit_of_the_lab_example_is_valid_and_survives_garbled_text() -> None:
    """The example fleet (with a host whose output was garbled) and control characters give valid XML."""
    example = json.loads(FIXTURE.read_text(encoding="utf-8"))
    tree = junit_tree(example)
    assert len(tree.getroot().findall("testsuite")) == example["summary"]["hosts"]
    nasty = sample_report()
    by_name(nasty)["unreachable"]["read"]["msg"] = "bad \x00\x1b[31m \udcff bytes"
    error = junit_tree(nasty).getroot().find("testsuite[@name='unreachable']/testcase[@name='read']/error")
    assert error.text == "bad \ufffd\ufffd[31m \ufffd bytes"


def test_markdown_is_short_and_names_every_host_that_needs_attention() -> None:
    """Counts, causes, each non-healthy host worst first with its reason, the drift; a cut list says how many more."""
    report = sample_report()
    text = report_formats.markdown(report)
    assert "**3 healthy, 2 broken, 2 failed, 2 unreachable, 1 unknown**" in text
    assert "| `RDP-CERT-EXPIRED` (0x904) RDP-CERT-EXPIRED title | critical | 2 |" in text
    assert "- **unreachable** unreachable: connection refused" in text
    assert "- **broken** broken: RDP-CERT-EXPIRED" in text
    assert "Drift: 1 hosts would change, 1 operations, 1 need a reboot." in text
    assert "A reboot makes the change take effect on: drifted." in text
    assert "- **healthy**" not in text and "Healthy: fixed, healthy, medium-only." in text
    short = report_formats.markdown(report, max_hosts=2)
    assert "... and 5 more" in short and short.count("\n- **") == 2 and "Healthy: fixed, healthy and 1 more." in short
    clean = report_formats.markdown(fr.build_report({"a": sample_fleet()["healthy"]}, {"generated_utc": "x"}))
    assert "Every host is healthy." in clean


def test_stats_keep_the_summary_and_every_host_state() -> None:
    """What set_stats hands AWX: counts, causes and one state per host."""
    stats = fr.stats(sample_report())
    assert stats["host_states"]["never-ran"] == "unreachable" and len(stats["host_states"]) == 10
    assert stats["by_cause"]["RDP-CERT-EXPIRED"] == 2 and stats["states"]["healthy"] == 3
    json.dumps(stats)
    assert fr.headline(sample_report()["summary"]) == "10 hosts: 3 healthy, 1 unknown, 2 broken, 2 failed, 2 unreachable"
