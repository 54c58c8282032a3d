# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report, as pure functions over plain data (no I/O).

One document for the whole play: a record per host (healthy, broken, failed, unreachable, unknown), a fleet
summary and the run's metadata. Shape: ``plugins/report_schemas/fleet_report.schema.json`` (``schema`` =
:data:`SCHEMA`), documented in ``docs/reports.md``.

* :func:`published_results` - what diagnose and remediate left for one host, read from wherever it was
  published (``ansible_facts.rdp_doctor_*`` or top-level ``rdp_doctor_*`` variables);
* :func:`host_record` - one host's record; :func:`fleet_summary` - counts by state, cause, severity, drift;
* :func:`build_report` - the document; :func:`merge_reports` - several documents (AWX slices of one run, or an
  older run for a trend) into one; :func:`with_summary` - the summary recomputed after a selection.
"""

from __future__ import annotations

import copy
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils.findings import SEVERITIES, severity_rank

SCHEMA = "rdp.doctor/fleet_report/1"
SCHEMA_VERSION = 1

#: Host states, worst first (the order the summary and the Markdown list hosts in).
STATES = ("unreachable", "failed", "broken", "unknown", "healthy")
_STATE_RANK = {name: rank for rank, name in enumerate(STATES)}
#: Finding areas, each a check of its own in the JUnit report (plus the read, the probe and remediation).
CATEGORIES = ("listener", "network", "certificate", "credssp", "security", "tls", "sessions", "licensing",
              "accounts", "group_policy", "host")
#: The variables diagnose and remediate publish per host (contracts: roles/diagnose, roles/remediate).
PUBLISHED = {"findings": "rdp_doctor_findings", "host_state": "rdp_doctor_host_state", "probe": "rdp_doctor_probe",
             "facts": "rdp_doctor_facts", "remediation": "rdp_doctor_remediation"}
READ_INCOMPLETE = "RDP-READ-INCOMPLETE"
NO_RESULT = "no rdp.doctor result for this host: Ansible could not reach it (or it failed) before diagnose ran"
#: Remediation states that fail a host (the remediate role's assert lets the others pass).
REMEDIATION_FAILED = ("failed", "rolled_back")
_REMEDIATION_KEEP = ("operations", "manual", "remaining", "fixed", "refused", "regressions", "warnings")
_OPERATION_KEEP = ("id", "kind", "target", "expect", "set", "why", "status", "reversible", "error")


def _dict(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def _list(value: t.Any) -> list[t.Any]:
    return value if isinstance(value, list) else []


def published_results(host_vars: t.Mapping[str, t.Any]) -> dict[str, t.Any]:
    """What diagnose / remediate left for a host: ``{findings, host_state, probe, facts, remediation}``.

    Each is read from ``ansible_facts.<name>`` first, then from the top-level variable (set_fact vs. a returned
    fact: both ways exist), else None. The facts may also be ``ansible_facts.rdp_doctor`` (what host_facts returns).
    """
    # Any mapping: templated hostvars hand out their own mapping types.
    facts_ns = host_vars.get("ansible_facts") if isinstance(host_vars.get("ansible_facts"), t.Mapping) else {}
    found: dict[str, t.Any] = {}
    for key, name in PUBLISHED.items():
        value = facts_ns.get(name)
        if value is None:
            value = host_vars.get(name)
        found[key] = value
    if not isinstance(found["facts"], dict) or not found["facts"]:
        found["facts"] = facts_ns.get("rdp_doctor") if isinstance(facts_ns.get("rdp_doctor"), dict) else found["facts"]
    return found


def _finding(finding: dict[str, t.Any], status: str) -> dict[str, t.Any]:
    fix = _dict(finding.get("fix"))
    return {"id": str(finding.get("id") or "RDP-UNKNOWN"), "title": str(finding.get("title") or ""),
            "severity": str(finding.get("severity") or "info"), "category": str(finding.get("category") or "host"),
            "explains_0x904": bool(finding.get("explains_0x904")), "evidence": _dict(finding.get("evidence")),
            "fix": {"module": fix["module"], "params": _dict(fix.get("params"))} if fix.get("module")
            else {"manual": str(fix.get("manual") or "")},
            "status": status}


def _finding_status(finding: dict[str, t.Any], remediation: dict[str, t.Any] | None) -> str:
    """open / fixed (remediation verified it gone) / would_fix (check mode plans a change) / manual."""
    fix = _dict(finding.get("fix"))
    if not fix.get("module"):
        return "manual"
    if not remediation:
        return "open"
    fid = finding.get("id")
    if fid in _list(remediation.get("fixed")):
        return "fixed"
    if remediation.get("state") == "would_change" and fid not in _list(remediation.get("refused")):
        return "would_fix"
    return "open"


def probe_view(probe: t.Any) -> dict[str, t.Any] | None:
    """The client's view, small: target, verdict, first failing step, each step's verdict and summary."""
    if not isinstance(probe, dict) or not isinstance(probe.get("steps"), list):
        return None
    verdict = _dict(probe.get("verdict"))
    return {"target": str(probe.get("target") or ""), "port": probe.get("port") if isinstance(probe.get("port"), int) else None,
            "ok": bool(verdict.get("ok")), "failed_step": verdict.get("failed_step"),
            "explanation": str(verdict.get("explanation") or ""), "client_sees": str(verdict.get("client_sees") or ""),
            "finding_ids": [str(i) for i in _list(verdict.get("finding_ids"))],
            "steps": [{"step": str(s.get("step")), "verdict": str(s.get("verdict")), "summary": str(s.get("summary") or ""),
                       "finding_ids": [str(i) for i in _list(s.get("finding_ids"))]}
                      for s in probe["steps"] if isinstance(s, dict)]}


def remediation_view(record: t.Any) -> dict[str, t.Any] | None:
    """What remediation did, or (check mode) would do: the drift."""
    if not isinstance(record, dict) or not record.get("state"):
        return None
    view: dict[str, t.Any] = {key: _list(record.get(key)) for key in _REMEDIATION_KEEP}
    view["operations"] = [{key: op[key] for key in _OPERATION_KEEP if key in op} for op in view["operations"] if isinstance(op, dict)]
    view.update(state=str(record["state"]), check_mode=record.get("outcome") == "check_mode",
                changed=bool(record.get("changed")), outcome=record.get("outcome"),
                reboot_required=bool(record.get("reboot_required")), rebooted=bool(record.get("rebooted")),
                msg=str(record.get("msg") or ""))
    return view


def _setting_sources(facts: dict[str, t.Any]) -> list[str]:
    """``section.setting`` of every setting whose effective value comes from Group Policy."""
    owned = []
    for section, values in sorted(facts.items()):
        if not isinstance(values, dict):
            continue
        for name, setting in sorted(values.items()):
            if isinstance(setting, dict) and setting.get("source") == "policy" and "effective" in setting:
                owned.append(f"{section}.{name}")
    return owned


def host_traits(facts: t.Any, probe: t.Any) -> dict[str, t.Any]:
    """What hosts may share (fleet correlation): OS, domain, certificate issuer, CredSSP, security layer, GPO-owned settings.

    From the host facts when they were read, else what the probe saw (certificate, OS version from NTLM).
    """
    facts = _dict(facts)
    os_facts = _dict(facts.get("os"))
    cert = _dict(_dict(facts.get("certificate")).get("bound"))
    credssp = _dict(facts.get("credssp"))
    security = _dict(facts.get("security"))
    seen = _dict(_dict(probe).get("certificate"))
    ntlm = _dict(_dict(_dict(_dict(probe).get("nla")).get("credssp")).get("ntlm"))
    issuer = cert.get("issuer") or seen.get("issuer")
    self_signed = cert.get("self_signed") if "self_signed" in cert else seen.get("self_signed")
    return {"os_caption": os_facts.get("caption"), "os_version": os_facts.get("version") or ntlm.get("os_version"),
            "os_build": os_facts.get("build"), "domain": os_facts.get("domain"),
            "part_of_domain": os_facts.get("part_of_domain"),
            "certificate_issuer": issuer, "certificate_self_signed": self_signed,
            "certificate_not_after": cert.get("not_after") or seen.get("not_after"),
            "credssp": credssp.get("allow_encryption_oracle_name"), "credssp_patched": credssp.get("patched"),
            "security_layer": security.get("security_layer_name"), "nla_required": security.get("nla_required"),
            "policy_settings": _setting_sources(facts)}


def _errors(read: dict[str, t.Any], remediation: dict[str, t.Any] | None, probe_error: t.Any) -> list[dict[str, t.Any]]:
    errors = []
    if read.get("state") in ("unreachable", "failed"):
        error = _dict(read.get("error"))
        errors.append({"stage": "read", "msg": str(read.get("msg") or "no reason given"),
                       "type": str(error.get("type") or read["state"])})
    if remediation and remediation["state"] in REMEDIATION_FAILED + ("refused",):
        errors.append({"stage": "remediate", "msg": remediation["msg"] or remediation["state"], "type": remediation["state"]})
    if probe_error:
        errors.append({"stage": "probe", "msg": str(probe_error), "type": "probe"})
    return errors


def host_state(read_state: str, findings: list[dict[str, t.Any]], remediation: dict[str, t.Any] | None,
               broken_severity: str) -> str:
    """unreachable / failed (read or remediation) / broken / unknown (not read, or read in part) / healthy.

    Broken: an open finding (not fixed) explains 0x904 or is at least ``broken_severity``.
    """
    if read_state in ("unreachable", "failed"):
        return read_state
    if remediation and remediation["state"] in REMEDIATION_FAILED:
        return "failed"
    threshold = severity_rank(broken_severity)
    open_findings = [f for f in findings if f["status"] != "fixed"]
    if any(f["explains_0x904"] or severity_rank(f["severity"]) <= threshold for f in open_findings):
        return "broken"
    # Part of the host could not be read: what depends on it is unknown, never healthy (contracts section 4).
    if read_state != "ok" or any(f["id"] == READ_INCOMPLETE for f in open_findings):
        return "unknown"
    return "healthy"


def host_record(name: str, published: t.Mapping[str, t.Any], broken_severity: str = "high",
                address: str | None = None) -> dict[str, t.Any]:
    """One host's record. A host with nothing published is unreachable with :data:`NO_RESULT` as the reason."""
    read = _dict(published.get("host_state"))
    if all(published.get(key) in (None, {}, []) for key in PUBLISHED):
        read = {"state": "unreachable", "msg": NO_RESULT, "error": None}
    elif not read:  # results without the read's state: the facts say whether the host was read
        read = {"state": "ok" if _dict(published.get("facts")) else "skipped", "msg": "", "error": None}
    read_state = str(read.get("state") or "unknown")
    if read_state not in ("ok", "unreachable", "failed"):
        read_state = "skipped"
    remediation = remediation_view(published.get("remediation"))
    raw_findings = [f for f in _list(published.get("findings")) if isinstance(f, dict)]
    findings = [_finding(f, _finding_status(f, remediation)) for f in raw_findings]
    findings.sort(key=lambda f: (0 if f["explains_0x904"] else 1, severity_rank(f["severity"]), f["id"]))
    state = host_state(read_state, findings, remediation, broken_severity)
    open_findings = [f for f in findings if f["status"] != "fixed"]
    worst = min((severity_rank(f["severity"]) for f in open_findings), default=None)
    return {"name": name, "address": address, "state": state,
            "read": {"state": read_state, "msg": str(read.get("msg") or ""), "error": read.get("error") if isinstance(read.get("error"), dict) else None},
            "worst_severity": SEVERITIES[worst] if worst is not None and worst < len(SEVERITIES) else None,
            "explains_0x904": any(f["explains_0x904"] for f in open_findings),
            "causes": [f["id"] for f in open_findings if f["explains_0x904"]],
            "findings": findings, "probe": probe_view(published.get("probe")), "remediation": remediation,
            "errors": _errors(read, remediation, published.get("probe_error")),
            "traits": host_traits(published.get("facts"), published.get("probe"))}


def _host_sort_key(record: dict[str, t.Any]) -> tuple[int, int, str]:
    worst = severity_rank(record.get("worst_severity")) if record.get("worst_severity") else len(SEVERITIES) + 1
    return (_STATE_RANK.get(record.get("state"), len(STATES)), worst, str(record.get("name")))


def fleet_summary(hosts: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    """Counts by state, by cause (hosts per finding id), by severity, and the drift (changes made / that would be made)."""
    states = {state: 0 for state in STATES}
    causes: dict[str, dict[str, t.Any]] = {}
    severities = {severity: 0 for severity in SEVERITIES}
    drift = {"hosts_changed": 0, "hosts_would_change": 0, "operations": 0, "reboot_required": 0, "check_mode": False}
    for record in hosts:
        states[record["state"]] = states.get(record["state"], 0) + 1
        for finding in record.get("findings", []):
            if finding.get("status") == "fixed":
                continue
            severities[finding["severity"]] = severities.get(finding["severity"], 0) + 1
            cause = causes.setdefault(finding["id"], {"id": finding["id"], "title": finding["title"], "severity": finding["severity"],
                                                      "category": finding["category"], "explains_0x904": finding["explains_0x904"],
                                                      "hosts": []})
            if record["name"] not in cause["hosts"]:
                cause["hosts"].append(record["name"])
        remediation = record.get("remediation")
        if remediation:
            drift["check_mode"] = drift["check_mode"] or remediation["check_mode"]
            if remediation["state"] == "would_change":
                drift["hosts_would_change"] += 1
            elif remediation["changed"]:
                drift["hosts_changed"] += 1
            drift["operations"] += len(remediation["operations"])
            drift["reboot_required"] += 1 if remediation["reboot_required"] else 0
    by_cause = sorted(causes.values(), key=lambda c: (0 if c["explains_0x904"] else 1, severity_rank(c["severity"]), -len(c["hosts"]), c["id"]))
    for cause in by_cause:
        cause["hosts"] = sorted(cause["hosts"])
        cause["count"] = len(cause["hosts"])
    ordered = sorted(hosts, key=_host_sort_key)
    return {"hosts": len(hosts), "states": states, "compliant": states["healthy"] == len(hosts),
            "by_cause": by_cause, "by_severity": severities, "drift": drift,
            "worst_hosts": [r["name"] for r in ordered if r["state"] != "healthy"]}


def build_report(hosts: t.Mapping[str, t.Mapping[str, t.Any]], run: t.Mapping[str, t.Any], broken_severity: str = "high",
                 addresses: t.Mapping[str, str | None] | None = None) -> dict[str, t.Any]:
    """The fleet report: ``hosts`` maps each host of the play to what it published (:func:`published_results`).

    ``run``: ``generated_utc``, ``kind`` (diagnose / remediate / drift; derived when absent), ``check_mode``,
    ``run_id``, ``play``, ``ansible_version``, ``collection_version`` - whatever the caller knows.
    """
    addresses = addresses or {}
    records = [host_record(name, published, broken_severity, addresses.get(name)) for name, published in hosts.items()]
    records.sort(key=lambda r: r["name"])
    return {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run": run_metadata(run, records, broken_severity),
            "summary": fleet_summary(records), "hosts": records}


def run_metadata(run: t.Mapping[str, t.Any], records: list[dict[str, t.Any]], broken_severity: str) -> dict[str, t.Any]:
    """The run's metadata; ``kind`` from what the hosts carry when the caller does not say."""
    remediated = [r["remediation"] for r in records if r.get("remediation")]
    check_mode = bool(run.get("check_mode")) or any(r["check_mode"] for r in remediated)
    kind = run.get("kind") or ("drift" if remediated and check_mode else "remediate" if remediated else "diagnose")
    meta = {"generated_utc": str(run.get("generated_utc") or ""), "kind": kind, "check_mode": check_mode,
            "run_id": run.get("run_id"), "play": run.get("play"), "ansible_version": run.get("ansible_version"),
            "collection_version": run.get("collection_version"), "broken_severity": broken_severity,
            "selection": dict(run.get("selection") or {"hosts": None, "findings": None})}
    this_run = {"run_id": meta["run_id"], "generated_utc": meta["generated_utc"], "hosts": len(records)}
    meta["sources"] = list(run.get("sources") or [this_run])
    return meta


def with_summary(report: dict[str, t.Any]) -> dict[str, t.Any]:
    """The report with its summary recomputed from its host records (after a selection or a merge)."""
    report = dict(report)
    report["hosts"] = sorted(report["hosts"], key=lambda r: r["name"])
    report["summary"] = fleet_summary(report["hosts"])
    return report


def merge_reports(reports: t.Sequence[dict[str, t.Any]]) -> dict[str, t.Any]:
    """One fleet report from several (AWX job slices, or an older run and a newer one).

    A host in several reports keeps the record of the newest report (``run.generated_utc``; later in the list
    wins a tie) and, when an older report saw it in another state, ``previous_state``; ``summary.trend`` lists
    those changes. ``run.sources`` lists every input. Raises ValueError for a document that is not a fleet report.
    """
    if not reports:
        raise ValueError("no report to merge")
    for index, report in enumerate(reports):
        problem = report_problem(report)
        if problem:
            raise ValueError(f"report {index + 1} of {len(reports)}: {problem}")
    ordered = sorted(enumerate(reports), key=lambda item: (str(item[1]["run"].get("generated_utc") or ""), item[0]))
    hosts: dict[str, dict[str, t.Any]] = {}
    trend: list[dict[str, t.Any]] = []
    sources: list[dict[str, t.Any]] = []
    for _index, report in ordered:
        sources.extend(report["run"].get("sources") or [])
        for record in report["hosts"]:
            record = copy.deepcopy(record)
            older = hosts.get(record["name"])
            if older is not None and older["state"] != record["state"]:
                record["previous_state"] = older["state"]
            elif older is not None and "previous_state" in older:
                record.setdefault("previous_state", older["previous_state"])
            hosts[record["name"]] = record
    for record in hosts.values():
        if "previous_state" in record:
            trend.append({"host": record["name"], "from": record["previous_state"], "to": record["state"]})
    newest = ordered[-1][1]
    run = dict(newest["run"])
    run.update(sources=sources, kind=run.get("kind"), merged=len(reports))
    merged = with_summary({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "run": run, "summary": {}, "hosts": list(hosts.values())})
    merged["summary"]["trend"] = sorted(trend, key=lambda c: c["host"])
    return merged


def report_problem(report: t.Any) -> str:
    """Why a document is not a fleet report this code can read, or ""."""
    if not isinstance(report, dict):
        return "not a JSON object"
    if report.get("schema") != SCHEMA:
        return f"schema is {report.get('schema')!r}, expected {SCHEMA!r}"
    if not isinstance(report.get("hosts"), list) or not all(isinstance(h, dict) and h.get("name") for h in report["hosts"]):
        return "hosts is not a list of host records"
    if not isinstance(report.get("run"), dict):
        return "run is missing"
    return ""


def headline(summary: dict[str, t.Any]) -> str:
    """``49 hosts: 7 healthy, 5 unknown, 35 broken, 1 failed, 1 unreachable`` (unknown only when there are some)."""
    states = summary["states"]
    counts = [f"{states.get(name, 0)} {name}" for name in reversed(STATES) if states.get(name) or name != "unknown"]
    return f"{summary['hosts']} hosts: " + ", ".join(counts)


def stats(report: dict[str, t.Any]) -> dict[str, t.Any]:
    """What ``set_stats`` keeps for AWX / ansible-runner: the fleet summary and every host's state."""
    summary = report["summary"]
    return {"schema": report["schema"], "generated_utc": report["run"]["generated_utc"], "kind": report["run"]["kind"],
            "hosts": summary["hosts"], "states": summary["states"], "compliant": summary["compliant"],
            "by_cause": {c["id"]: c["count"] for c in summary["by_cause"]},
            "host_states": {r["name"]: r["state"] for r in report["hosts"]}}
