# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report (``fleet_report.build_report``) as JUnit XML and as Markdown: pure functions, text out.

* :func:`junit_xml` - one ``testsuite`` per host, one ``testcase`` per check (the read, the client's view, each
  finding area, remediation); a check fails with the findings at or above the report's ``broken_severity`` (or that
  explain 0x904), an unreachable or failed host is an ``error``. The Jenkins / Ant JUnit format: CI systems show
  the fleet as tests (``tests/unit/data/junit.xsd`` validates it).
* :func:`markdown` - a short summary for a ticket or a chat message.
"""

from __future__ import annotations

import json
import re
import typing as t
import xml.etree.ElementTree as ET

from ansible_collections.rdp.doctor.plugins.module_utils.findings import severity_rank
from ansible_collections.rdp.doctor.plugins.module_utils.fleet_report import CATEGORIES

#: Checks every host suite has, in this order: then one per finding area (fleet_report.CATEGORIES).
FIXED_CHECKS = ("read", "probe")
#: Characters XML 1.0 cannot hold (control characters, lone surrogates, U+FFFE/U+FFFF): garbled host output has them.
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: t.Any) -> str:
    """``text`` with every character XML cannot hold replaced by U+FFFD."""
    return _NOT_XML.sub("\ufffd", str(text))


def _fix_text(fix: dict[str, t.Any]) -> str:
    if fix.get("module"):
        params = " ".join(f"{key}={value}" for key, value in sorted((fix.get("params") or {}).items()))
        return f"{fix['module']} {params}".strip()
    return "manual: " + str(fix.get("manual") or "")


def _finding_text(finding: dict[str, t.Any]) -> str:
    cause = " (explains 0x904)" if finding.get("explains_0x904") else ""
    return (f"[{finding['severity']}] {finding['id']}{cause}: {finding['title']}\n"
            f"  status: {finding['status']}\n  fix: {_fix_text(finding['fix'])}\n"
            f"  evidence: {json.dumps(finding.get('evidence') or {}, sort_keys=True, default=str)}")


def _fails(finding: dict[str, t.Any], threshold: int) -> bool:
    return finding["status"] != "fixed" and (finding["explains_0x904"] or severity_rank(finding["severity"]) <= threshold)


def _case(suite: ET.Element, host: str, check: str) -> ET.Element:
    return ET.SubElement(suite, "testcase", {"name": check, "classname": f"rdp.doctor.{host}", "time": "0"})


def _host_suite(suites: ET.Element, record: dict[str, t.Any], threshold: int, timestamp: str, index: int) -> dict[str, int]:
    name = record["name"]
    attributes = {"name": name, "id": str(index), "package": "rdp.doctor", "hostname": record.get("address") or name,
                  "timestamp": timestamp, "time": "0"}
    suite = ET.SubElement(suites, "testsuite", attributes)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    properties = ET.SubElement(suite, "properties")
    for key in ("state", "worst_severity"):
        ET.SubElement(properties, "property", {"name": key, "value": str(record.get(key) or "")})
    reached = record["read"]["state"] == "ok"
    by_area: dict[str, list[dict[str, t.Any]]] = {}
    for finding in record["findings"]:
        by_area.setdefault(finding["category"], []).append(finding)
    areas = list(CATEGORIES) + sorted(set(by_area) - set(CATEGORIES))
    checks = list(FIXED_CHECKS) + areas + (["remediation"] if record.get("remediation") else [])
    for check in checks:
        case = _case(suite, name, check)
        counts["tests"] += 1
        if check == "read":
            if record["read"]["state"] in ("unreachable", "failed"):
                ET.SubElement(case, "error", {"message": f"{record['read']['state']}: {record['read']['msg']}",
                                              "type": record["read"]["state"]}).text = record["read"]["msg"]
                counts["errors"] += 1
            elif not reached:
                ET.SubElement(case, "skipped", {"message": record["read"]["msg"] or "not read in this run"})
                counts["skipped"] += 1
            continue
        if check == "probe":
            probe = record.get("probe")
            if probe is None:
                ET.SubElement(case, "skipped", {"message": "not probed"})
                counts["skipped"] += 1
            elif not probe["ok"]:
                ET.SubElement(case, "failure", {"message": f"{probe['failed_step']}: {probe['explanation']}", "type": "probe"}).text = \
                    "\n".join(f"{s['step']}: {s['verdict']} - {s['summary']}" for s in probe["steps"])
                counts["failures"] += 1
            continue
        if check == "remediation":
            remediation = record["remediation"]
            if remediation["state"] in ("failed", "rolled_back", "refused"):
                ET.SubElement(case, "failure", {"message": f"{remediation['state']}: {remediation['msg']}", "type": "remediation"}).text = \
                    json.dumps(remediation["operations"], sort_keys=True, default=str)
                counts["failures"] += 1
            elif remediation["operations"]:
                ET.SubElement(case, "system-out").text = "\n".join(
                    f"{'would apply' if remediation['check_mode'] else remediation['state']}: {op.get('id')} {op.get('kind')} "
                    f"{op.get('why') or ''}".rstrip() for op in remediation["operations"])
            continue
        findings = by_area.get(check, [])
        failing = [f for f in findings if _fails(f, threshold)]
        if failing:
            worst = failing[0]
            ET.SubElement(case, "failure", {"message": "; ".join(f"{f['id']}: {f['title']}" for f in failing),
                                            "type": worst["id"]}).text = "\n".join(_finding_text(f) for f in failing)
            counts["failures"] += 1
        elif not reached:
            ET.SubElement(case, "skipped", {"message": "host not read: this area was not checked"})
            counts["skipped"] += 1
        others = [f for f in findings if f not in failing]
        if others:
            ET.SubElement(case, "system-out").text = "\n".join(_finding_text(f) for f in others)
    ET.SubElement(suite, "system-out").text = "\n".join(f"{e['stage']}: {e['msg']}" for e in record.get("errors", []))
    ET.SubElement(suite, "system-err").text = ""
    for key, value in counts.items():
        suite.set(key, str(value))
    return counts


def junit_xml(report: dict[str, t.Any]) -> str:
    """The report as JUnit XML (``testsuites`` root)."""
    threshold = severity_rank(report["run"].get("broken_severity") or "high")
    timestamp = str(report["run"].get("generated_utc") or "").rstrip("Z")[:19] or "1970-01-01T00:00:00"
    suites = ET.Element("testsuites", {"name": f"rdp.doctor {report['run'].get('kind')}"})
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for index, record in enumerate(report["hosts"]):
        counts = _host_suite(suites, record, threshold, timestamp, index)
        for key in totals:
            totals[key] += counts[key]
    for key, value in totals.items():
        suites.set(key, str(value))
    suites.set("time", "0")
    for element in suites.iter():
        element.text = xml_text(element.text) if element.text else element.text
        for key, value in element.attrib.items():
            element.set(key, xml_text(value))
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def _cell(text: t.Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, t.Any], max_hosts: int = 20) -> str:
    """A short summary: the counts, causes by host count, the hosts that are not healthy (worst first), the drift."""
    summary = report["summary"]
    run = report["run"]
    states = summary["states"]
    lines = [f"## rdp.doctor {run['kind']} report - {summary['hosts']} hosts",
             "",
             f"**{states['healthy']} healthy, {states['broken']} broken, {states['failed']} failed, "
             f"{states['unreachable']} unreachable" + (f", {states['unknown']} unknown" if states["unknown"] else "") + "**"
             + f" ({run['generated_utc']}{', check mode' if run['check_mode'] else ''})", ""]
    if summary["by_cause"]:
        lines += ["| cause | severity | hosts |", "|---|---|---|"]
        for cause in summary["by_cause"]:
            mark = " (0x904)" if cause["explains_0x904"] else ""
            lines.append(f"| `{cause['id']}`{mark} {_cell(cause['title'])} | {cause['severity']} | {cause['count']} |")
        lines.append("")
    by_name = {r["name"]: r for r in report["hosts"]}
    worst = summary["worst_hosts"]
    if worst:
        lines.append("Hosts that need attention, worst first:")
        for name in worst[:max_hosts]:
            record = by_name[name]
            if record["state"] in ("unreachable", "failed"):
                reason = "; ".join(e["msg"] for e in record["errors"]) or record["read"]["msg"]
                detail = _cell(reason)[:200]
            else:
                detail = ", ".join(record["causes"] or [f["id"] for f in record["findings"] if f["status"] != "fixed"][:3])
            lines.append(f"- **{name}** {record['state']}: {detail}")
        if len(worst) > max_hosts:
            lines.append(f"- ... and {len(worst) - max_hosts} more (see the JSON or HTML report)")
        lines.append("")
    healthy = [r["name"] for r in report["hosts"] if r["state"] == "healthy"]
    if healthy:
        more = f" and {len(healthy) - max_hosts} more" if len(healthy) > max_hosts else ""
        lines += [f"Healthy: {', '.join(healthy[:max_hosts])}{more}.", ""]
    drift = summary["drift"]
    if drift["operations"] or drift["hosts_changed"] or drift["hosts_would_change"]:
        verb = "would change" if drift["check_mode"] else "changed"
        count = drift["hosts_would_change"] if drift["check_mode"] else drift["hosts_changed"]
        lines.append(f"{'Drift' if drift['check_mode'] else 'Changes'}: {count} hosts {verb}, {drift['operations']} operations, "
                     f"{drift['reboot_required']} need a reboot.")
        reboot = [r["name"] for r in report["hosts"] if (r.get("remediation") or {}).get("reboot_required")
                  and not (r.get("remediation") or {}).get("rebooted")]
        if reboot:
            more = f" and {len(reboot) - max_hosts} more" if len(reboot) > max_hosts else ""
            lines.append(f"A reboot makes the change take effect on: {', '.join(reboot[:max_hosts])}{more}.")
        lines.append("")
    trend = summary.get("trend") or []
    if trend:
        lines.append("Since the earlier report: " + ", ".join(f"{c['host']} {c['from']} -> {c['to']}" for c in trend[:max_hosts]))
        lines.append("")
    if summary["compliant"]:
        lines.append("Every host is healthy.")
    return "\n".join(lines).rstrip() + "\n"
