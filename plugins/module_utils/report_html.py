# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report as one self-contained HTML page: ``render_html(report) -> str``, pure.

The input is the JSON fleet report the report role writes (one record per host; docs/reports.md). The page
needs nothing else: inline CSS, an inline SVG chart, a few lines of inline JavaScript, and a Content Security
Policy that forbids every fetch, so it opens offline from a file share. Everything a host sent (names,
messages, evidence) is hostile text: every value passes through ``html.escape`` and no host string ever
becomes an attribute name, a URL, a tag or script; anchors use the host's position, never its name.

Sections: fleet summary (states, causes), a chart of causes, the host x check table, fleet correlation
(hosts grouped by shared cause and by what they share: OS build, a Group Policy owned setting, the
certificate issuer, the CredSSP state), then one section per host with each finding expandable to its
evidence and fix, and the drift (what remediation changed or check mode would change).

The reader is tolerant: a host record may be a healthy host with no findings, an unreachable host with only
an error, or a record from an older report; a missing part is shown as unknown, never as healthy.
"""

from __future__ import annotations

import html
import json
import typing as t

Report = t.Dict[str, t.Any]
Host = t.Dict[str, t.Any]

SEVERITIES = ("critical", "high", "medium", "low", "info")
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}
# The host x check table's columns after the probe, in the catalogue's order of categories (findings.py).
CHECK_COLUMNS = ("network", "listener", "certificate", "security", "tls", "credssp", "sessions", "licensing",
                 "accounts", "group_policy", "host")
# States a host record may carry, worst first (the report schema's vocabulary), and the order of the summary.
STATES = ("unreachable", "failed", "broken", "degraded", "healthy", "skipped")
_STATE_RANK = {name: rank for rank, name in enumerate(STATES)}
# Traits hosts are grouped by in the correlation section (label, key of host_traits()).
TRAITS = (("OS build", "os_build"), ("Group Policy owned setting", "gpo_settings"),
          ("Certificate issuer", "certificate_issuer"), ("CredSSP state", "credssp"))
_EVIDENCE_LIMIT = 20000  # characters of one finding's evidence shown (a 2000-character event sample fits many times)

STYLE = """
:root{--crit:#b71c1c;--high:#e65100;--med:#f9a825;--low:#1565c0;--info:#607d8b;--ok:#2e7d32;--unk:#9e9e9e}
body{font:14px/1.45 "DejaVu Sans",Arial,sans-serif;margin:0;color:#212121;background:#fafafa}
header{background:#263238;color:#fff;padding:12px 24px}header h1{margin:0;font-size:20px}
main{padding:12px 24px}section{margin:0 0 28px}h2{border-bottom:2px solid #cfd8dc;padding-bottom:4px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{background:#fff;border:1px solid #cfd8dc;border-radius:6px;
padding:8px 14px;min-width:110px}.card b{display:block;font-size:24px}
table{border-collapse:collapse;background:#fff}th,td{border:1px solid #cfd8dc;padding:4px 8px;text-align:left;
vertical-align:top}th{background:#eceff1;position:sticky;top:0}
.sev,.st{display:inline-block;border-radius:4px;padding:0 6px;color:#fff;font-weight:bold;font-size:12px}
.s-critical{background:var(--crit)}.s-high{background:var(--high)}.s-medium{background:var(--med);color:#212121}
.s-low{background:var(--low)}.s-info{background:var(--info)}.s-ok{background:var(--ok)}.s-unknown{background:var(--unk)}
td.c-critical{background:#ffcdd2}td.c-high{background:#ffe0b2}td.c-medium{background:#fff9c4}td.c-low{background:#bbdefb}
td.c-info{background:#eceff1}td.c-ok{background:#c8e6c9}td.c-unknown{background:#e0e0e0;color:#616161}
.st-healthy{background:var(--ok)}.st-broken{background:var(--crit)}.st-degraded{background:var(--med);color:#212121}
.st-unreachable,.st-failed{background:#4a148c}.st-skipped{background:var(--unk)}
details{background:#fff;border:1px solid #cfd8dc;border-radius:4px;margin:4px 0;padding:2px 8px}
summary{cursor:pointer}pre{white-space:pre-wrap;word-break:break-all;background:#f5f5f5;padding:6px;margin:4px 0}
.host{background:#fff;border:1px solid #cfd8dc;border-radius:6px;padding:4px 14px;margin:10px 0}
.muted{color:#616161}.err{color:#b71c1c}ul.hosts{margin:2px 0}
"""

# Static: no host string ever reaches the script; it only opens or closes every <details>.
SCRIPT = """
document.getElementById('expand').addEventListener('click', function () {
  var all = document.querySelectorAll('details'), open = this.getAttribute('data-open') !== '1';
  for (var i = 0; i < all.length; i++) { all[i].open = open; }
  this.setAttribute('data-open', open ? '1' : '0');
  this.textContent = open ? 'Collapse all findings' : 'Expand all findings';
});
document.body.setAttribute('data-ready', '1');
"""

# No fetch of any kind: inline styles and the inline script only (the page must work offline).
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def esc(value: t.Any) -> str:
    """Any value as escaped HTML text (quotes too, so it is safe inside an attribute value as well)."""
    return html.escape("" if value is None else str(value), quote=True)


def _dict(value: t.Any) -> dict[str, t.Any]:
    return value if isinstance(value, dict) else {}


def _list(value: t.Any) -> list[t.Any]:
    return value if isinstance(value, list) else []


def dig(data: t.Any, path: str, default: t.Any = None) -> t.Any:
    """``data`` followed along a dotted path; ``default`` when a step is missing."""
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return default
        data = data[part]
    return data


def hosts_of(report: Report) -> list[Host]:
    """The host records, each with its ``name``: the report's ``hosts`` as a list, or as a mapping name -> record."""
    hosts = report.get("hosts")
    if isinstance(hosts, dict):
        return [dict(_dict(record), name=str(_dict(record).get("name") or name)) for name, record in hosts.items()]
    records = []
    for index, record in enumerate(_list(hosts)):
        record = _dict(record)
        records.append(dict(record, name=str(record.get("name") or record.get("host") or f"host #{index + 1}")))
    return records


def findings_of(host: Host) -> list[dict[str, t.Any]]:
    """The host's findings, worst first, then by id (a stable order for the page)."""
    items = [f for f in _list(host.get("findings")) if isinstance(f, dict)]
    return sorted(items, key=lambda f: (_SEVERITY_RANK.get(str(f.get("severity")), len(SEVERITIES)), str(f.get("id"))))


def causes_of(host: Host) -> list[str]:
    """Ids of the findings that explain 0x904 on this host (its causes), in page order."""
    return [str(f.get("id")) for f in findings_of(host) if f.get("explains_0x904")]


def state_of(host: Host) -> str:
    """The host's state: the record's own when it is one of ``STATES``, else derived.

    A record with the diagnose role's ``ok`` (or no state) is broken when a finding explains 0x904, else
    healthy; a record without a state and without findings was never read (unreachable); any other state
    (an error, a rolled back or partial remediation) is failed.
    """
    state = host.get("state")
    if isinstance(state, dict):  # the diagnose role's host_state {state, msg, error}
        state = state.get("state")
    state = str(state or "").lower()
    if state in _STATE_RANK:
        return state
    if state == "ok" or (not state and isinstance(host.get("findings"), list)):
        return "broken" if causes_of(host) else "healthy"
    return "unreachable" if not state else "failed"


def worst_severity(findings: list[dict[str, t.Any]]) -> str | None:
    """The worst severity among ``findings``; None when there are none."""
    ranks = [_SEVERITY_RANK.get(str(f.get("severity")), len(SEVERITIES) - 1) for f in findings]
    return SEVERITIES[min(ranks)] if ranks else None


def was_read(host: Host) -> bool:
    """Whether the host's state was read (a host not read has unknown checks, never healthy ones)."""
    return state_of(host) not in ("unreachable", "failed", "skipped")


def host_traits(host: Host) -> dict[str, list[str]]:
    """What a host shares with others: OS build, Group Policy owned settings, certificate issuer, CredSSP state.

    Read from the record's ``facts`` (``ansible_facts.rdp_doctor``) when the report keeps them, else from the
    record's ``os`` summary and the findings' evidence. Each trait is a list of values (a host may have several
    Group Policy owned settings); an unknown trait is an empty list.
    """
    facts = _dict(host.get("facts"))
    found = findings_of(host)
    os_info = _dict(facts.get("os")) or _dict(host.get("os"))
    build = os_info.get("build")
    caption = os_info.get("caption")
    os_build = [f"{caption} (build {build})" if caption else f"build {build}"] if build is not None else []

    # Setting names as the facts name them (host_facts / rdp_registry.SETTINGS), from the facts when the report
    # keeps them, else from RDP-GPO-OVERRIDE, which lists every setting a policy forces to a bad value.
    gpo: set[str] = set()
    for section in facts.values() if facts else ():
        for name, setting in _dict(section).items():
            if isinstance(setting, dict) and setting.get("source") == "policy":
                gpo.add(str(name))
    if not facts:
        for finding in found:
            if finding.get("id") == "RDP-GPO-OVERRIDE":
                gpo.update(str(item.get("setting")) for item in _list(dig(finding, "evidence.settings")) if isinstance(item, dict))

    # A self-signed certificate's issuer is the host itself: what hosts share then is being self-signed.
    issuer = dig(facts, "certificate.bound.issuer") or dig(host, "certificate.issuer")
    self_signed = dig(facts, "certificate.bound.self_signed", dig(host, "certificate.self_signed"))
    if not facts and not issuer:
        evidence = next((_dict(f.get("evidence")) for f in found if dig(f, "evidence.issuer")), {})
        issuer, self_signed = evidence.get("issuer"), evidence.get("self_signed")
    if issuer and self_signed:
        issuer = "self-signed"

    credssp = dig(facts, "credssp.allow_encryption_oracle_name") or dig(host, "credssp.state")
    if credssp:
        credssp_values = [f"{credssp}, tspkg.dll unpatched" if dig(facts, "credssp.patched") is False else str(credssp)]
    else:  # no facts: what the CredSSP findings say
        credssp_values = sorted(str(f.get("id")) for f in found if str(f.get("id")).startswith("RDP-CREDSSP-"))
    return {"os_build": os_build, "gpo_settings": sorted(gpo), "certificate_issuer": [str(issuer)] if issuer else [],
            "credssp": credssp_values}


def group_hosts(hosts: list[Host], values_of: t.Callable[[Host], list[str]]) -> list[tuple[str, list[str]]]:
    """(value, host names) for every value ``values_of`` gives, the largest group first, then by value."""
    groups: dict[str, list[str]] = {}
    for host in hosts:
        for value in values_of(host):
            groups.setdefault(value, [])
            if host["name"] not in groups[value]:
                groups[value].append(host["name"])
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))


def fleet_summary(hosts: list[Host]) -> dict[str, t.Any]:
    """Counts by state and by cause (a cause counts each host once), and the worst severity of each cause."""
    states = {state: 0 for state in STATES}
    causes: dict[str, dict[str, t.Any]] = {}
    for host in hosts:
        states[state_of(host)] = states.get(state_of(host), 0) + 1
        for finding in findings_of(host):
            if not finding.get("explains_0x904"):
                continue
            entry = causes.setdefault(str(finding.get("id")), {"hosts": 0, "severity": "info", "title": finding.get("title")})
            entry["hosts"] += 1
            entry["severity"] = worst_severity([finding, {"severity": entry["severity"]}])
    ordered = sorted(causes.items(), key=lambda item: (-item[1]["hosts"], _SEVERITY_RANK.get(item[1]["severity"], 9), item[0]))
    return {"hosts": len(hosts), "states": states, "causes": ordered}


def _state_badge(state: str) -> str:
    return f'<span class="st st-{esc(state)}">{esc(state)}</span>'


def _severity_badge(severity: t.Any) -> str:
    name = str(severity) if severity in _SEVERITY_RANK else "unknown"
    return f'<span class="sev s-{name}">{esc(severity or "unknown")}</span>'


def _json_block(value: t.Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    if len(text) > _EVIDENCE_LIMIT:
        text = text[:_EVIDENCE_LIMIT] + f"\n... ({len(text) - _EVIDENCE_LIMIT} more characters in the JSON report)"
    return f"<pre>{esc(text)}</pre>"


def render_summary(summary: dict[str, t.Any]) -> str:
    """The fleet summary cards: hosts, each state, causes."""
    cards = [f'<div class="card" data-state="all"><b>{summary["hosts"]}</b>hosts</div>']
    for state, count in summary["states"].items():
        if count or state in ("healthy", "broken", "unreachable"):
            cards.append(f'<div class="card" data-state="{esc(state)}"><b>{count}</b>{_state_badge(state)}</div>')
    rows = "".join(f'<tr><td>{_severity_badge(entry["severity"])} {esc(cause)}</td><td>{esc(entry["title"])}</td>'
                   f'<td class="n">{entry["hosts"]}</td></tr>' for cause, entry in summary["causes"])
    causes = (f'<table id="causes"><tr><th>cause of 0x904</th><th>what</th><th>hosts</th></tr>{rows}</table>'
              if rows else '<p class="muted">No host has a cause of 0x904.</p>')
    return f'<section id="summary"><h2>Fleet summary</h2><div class="cards">{"".join(cards)}</div><h3>Counts by cause</h3>{causes}</section>'


def render_chart(summary: dict[str, t.Any]) -> str:
    """A horizontal bar chart of causes (hosts per cause) in inline SVG."""
    causes = summary["causes"]
    if not causes:
        return ""
    width, label_width, bar_height = 720, 300, 22
    most = max(entry["hosts"] for _cause, entry in causes)
    height = bar_height * len(causes) + 10
    colours = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825", "low": "#1565c0", "info": "#607d8b"}
    bars = []
    for row, (cause, entry) in enumerate(causes):
        y = 5 + row * bar_height
        length = max(2, int((width - label_width - 50) * entry["hosts"] / most))
        bars.append(
            f'<text x="{label_width - 6}" y="{y + 15}" text-anchor="end" font-size="12">{esc(cause)}</text>'
            f'<rect x="{label_width}" y="{y + 3}" width="{length}" height="{bar_height - 6}" '
            f'fill="{colours.get(entry["severity"], "#607d8b")}"><title>{esc(cause)}: {entry["hosts"]} host(s)</title></rect>'
            f'<text x="{label_width + length + 6}" y="{y + 15}" font-size="12">{entry["hosts"]}</text>')
    return (f'<section id="chart"><h2>Causes across the fleet</h2><svg xmlns="http://www.w3.org/2000/svg" role="img" '
            f'aria-label="hosts per cause" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
            f'{"".join(bars)}</svg></section>')


def _check_cell(host: Host, column: str) -> str:
    if not was_read(host):
        return '<td class="c-unknown">not read</td>'
    items = [f for f in findings_of(host) if f.get("category") == column]
    if not items:
        return '<td class="c-ok">ok</td>'
    severity = worst_severity(items) or "info"
    ids = ", ".join(str(f.get("id")) for f in items)
    return f'<td class="c-{severity}" title="{esc(ids)}">{esc(severity)}{" ×" + str(len(items)) if len(items) > 1 else ""}</td>'


def _probe_cell(host: Host) -> str:
    verdict = _dict(dig(host, "probe.verdict")) or _dict(host.get("probe_verdict"))
    if not verdict:
        return '<td class="c-unknown">not probed</td>'
    if verdict.get("ok"):
        return '<td class="c-ok">ok</td>'
    failed = verdict.get("failed_step") or "warn"
    return f'<td class="c-critical" title="{esc(verdict.get("explanation"))}">{esc(failed)}</td>'


def render_matrix(hosts: list[Host]) -> str:
    """The host x check table: one row per host, the probe and each category of checks, coloured by severity."""
    columns = [c for c in CHECK_COLUMNS if any(f.get("category") == c for h in hosts for f in findings_of(h))]
    columns += sorted({str(f.get("category")) for h in hosts for f in findings_of(h)} - set(CHECK_COLUMNS) - {"None"})
    head = "".join(f"<th>{esc(column)}</th>" for column in ["host", "state", "probe"] + columns)
    rows = []
    for index, host in enumerate(hosts):
        cells = "".join(_check_cell(host, column) for column in columns)
        rows.append(f'<tr class="host-row" data-state="{esc(state_of(host))}"><td><a href="#h{index}">{esc(host["name"])}</a></td>'
                    f"<td>{_state_badge(state_of(host))}</td>{_probe_cell(host)}{cells}</tr>")
    note = '<p class="muted">Columns are the checks with a finding on some host; "ok" means the check ran and found nothing.</p>'
    return f'<section id="matrix"><h2>Hosts × checks</h2>{note}<table id="host-matrix"><tr>{head}</tr>{"".join(rows)}</table></section>'


def _host_links(names: list[str], anchors: dict[str, int]) -> str:
    return ", ".join(f'<a href="#h{anchors[name]}">{esc(name)}</a>' for name in names)


def correlate(hosts: list[Host]) -> list[dict[str, t.Any]]:
    """Hosts grouped by shared cause, each group with what sets it apart: ``[{cause, hosts, shared}]``.

    ``shared`` lists ``{trait, value, hosts}`` for each trait value that at least two hosts and at least half of
    the group have, and that the group has more often than the read hosts of the fleet (Windows' defaults,
    shared by nearly every host, explain nothing). Largest group first.
    """
    traits = {host["name"]: host_traits(host) for host in hosts}
    read = [host for host in hosts if was_read(host)]
    by_name = {host["name"]: host for host in hosts}
    groups = []
    for cause, names in group_hosts(hosts, causes_of):
        shared = []
        for label, key in TRAITS:
            fleet = {value: len(members) for value, members in group_hosts(read, lambda host, key=key: traits[host["name"]][key])}
            for value, members in group_hosts([by_name[name] for name in names], lambda host, key=key: traits[host["name"]][key]):
                over_represented = len(members) * len(read) > fleet.get(value, 0) * len(names)
                if len(members) >= 2 and 2 * len(members) >= len(names) and over_represented:
                    shared.append({"trait": label, "value": value, "hosts": len(members)})
        groups.append({"cause": cause, "hosts": names, "shared": shared})
    return groups


def render_correlation(hosts: list[Host]) -> str:
    """Fleet correlation: the groups of ``correlate``, then the hosts grouped by each trait."""
    anchors = {host["name"]: index for index, host in enumerate(hosts)}
    traits = {host["name"]: host_traits(host) for host in hosts}
    parts = ['<section id="correlation"><h2>Fleet correlation</h2>']
    rows = []
    for group in correlate(hosts):
        names = group["hosts"]
        shared = "".join(f'<li>{esc(item["trait"])}: <b>{esc(item["value"])}</b> '
                         f'({"all" if item["hosts"] == len(names) else str(item["hosts"]) + " of " + str(len(names))})</li>'
                         for item in group["shared"])
        shared_html = f"<ul>{shared}</ul>" if shared else '<span class="muted">-</span>'
        rows.append(f'<tr><td>{esc(group["cause"])}</td><td>{len(names)}</td><td>{_host_links(names, anchors)}</td>'
                    f"<td>{shared_html}</td></tr>")
    if rows:
        parts.append('<h3>By shared cause</h3><table id="by-cause"><tr><th>cause</th><th>hosts</th><th>which</th>'
                     f'<th>what most of them share, more than the fleet</th></tr>{"".join(rows)}</table>')
    else:
        parts.append('<p class="muted">No cause of 0x904 on any host.</p>')
    for label, key in TRAITS:
        groups = group_hosts(hosts, lambda host, key=key: traits[host["name"]][key])
        if not groups:
            continue
        rows = []
        for value, names in groups:
            with_cause = [name for name in names if causes_of(hosts[anchors[name]])]
            rows.append(f"<tr><td>{esc(value)}</td><td>{len(names)}</td><td>{len(with_cause)}</td>"
                        f"<td>{_host_links(names, anchors)}</td></tr>")
        parts.append(f'<h3>By {esc(label.lower())}</h3><table class="by-trait" data-trait="{esc(key)}"><tr><th>{esc(label)}</th>'
                     f'<th>hosts</th><th>with a cause</th><th>which</th></tr>{"".join(rows)}</table>')
    parts.append("</section>")
    return "".join(parts)


def _fix_html(fix: t.Any) -> str:
    fix = _dict(fix)
    if fix.get("module"):
        return f'<p>Fix: <code>{esc(fix["module"])}</code></p>{_json_block(fix.get("params") or {})}'
    if fix.get("manual"):
        return f'<p>Fix (manual): {esc(fix["manual"])}</p>'
    return '<p class="muted">No fix given.</p>'


def _finding_html(finding: dict[str, t.Any]) -> str:
    cause = ' <span class="sev s-critical">explains 0x904</span>' if finding.get("explains_0x904") else ""
    return (f'<details class="finding" data-id="{esc(finding.get("id"))}"><summary>{_severity_badge(finding.get("severity"))} '
            f'<b>{esc(finding.get("id"))}</b> {esc(finding.get("title"))}{cause}</summary>'
            f'<p class="muted">category: {esc(finding.get("category"))}</p><h4>Evidence</h4>{_json_block(finding.get("evidence"))}'
            f"<h4>Fix</h4>{_fix_html(finding.get('fix'))}</details>")


def drift_of(host: Host) -> list[dict[str, t.Any]]:
    """What remediation changed on the host or check mode would change: its operations (contracts 10c)."""
    for path in ("drift", "changes", "remediation.operations", "remediation.changes"):
        items = dig(host, path)
        if isinstance(items, list):
            return [item for item in items if isinstance(item, dict)]
    return []


def _drift_html(host: Host) -> str:
    items = drift_of(host)
    remediation = _dict(host.get("remediation"))
    outcome = remediation.get("state") or remediation.get("outcome")
    head = f"<h4>Drift{' (' + esc(outcome) + ')' if outcome else ''}</h4>"
    if not items:
        remediated = remediation or "drift" in host or "changes" in host
        return (head + '<p class="muted">No change made or proposed.</p>') if remediated else ""
    rows = []
    for item in items:
        target = item.get("target")
        before = item.get("before", item.get("expect"))
        after = item.get("after", item.get("set"))
        rows.append(f"<tr><td>{esc(item.get('id'))}</td><td>{esc(item.get('kind') or item.get('module'))}</td>"
                    f"<td>{esc(json.dumps(target, default=str, ensure_ascii=False))}</td>"
                    f"<td>{esc(json.dumps(before, default=str, ensure_ascii=False))}</td>"
                    f"<td>{esc(json.dumps(after, default=str, ensure_ascii=False))}</td>"
                    f"<td>{esc(item.get('status') or '')}</td><td>{esc(item.get('why') or '')}</td></tr>")
    return (head + '<table class="drift"><tr><th>op</th><th>kind</th><th>target</th><th>before</th><th>after</th>'
            f'<th>status</th><th>why</th></tr>{"".join(rows)}</table>')


def render_host(index: int, host: Host) -> str:
    """One host: state, the error of a host not read, the client's view, findings (expandable), drift."""
    state = state_of(host)
    parts = [f'<div class="host" id="h{index}" data-host="{esc(host["name"])}"><h3>{esc(host["name"])} {_state_badge(state)}</h3>']
    message = host.get("msg") or dig(host, "state.msg") or dig(host, "error.message") or (host.get("error") if isinstance(host.get("error"), str) else None)
    if not was_read(host):
        parts.append(f'<p class="err">Not read: {esc(message or "no reason given")}</p>')
    explanation = dig(host, "probe.verdict.explanation")
    if explanation:
        parts.append(f'<p>Client\'s view: {esc(explanation)}</p>')
    found = findings_of(host)
    if found:
        parts.append(f'<h4>Findings ({len(found)})</h4>' + "".join(_finding_html(finding) for finding in found))
    elif was_read(host):
        parts.append('<p class="muted">No findings.</p>')
    parts.append(_drift_html(host))
    parts.append("</div>")
    return "".join(parts)


def render_html(report: Report) -> str:
    """The whole page for ``report``; see the module docstring."""
    report = _dict(report)
    hosts = hosts_of(report)
    hosts.sort(key=lambda host: (_STATE_RANK.get(state_of(host), len(STATES)), host["name"]))
    summary = fleet_summary(hosts)
    generated = report.get("generated_utc") or report.get("generated") or dig(report, "run.finished_utc") or ""
    mode = " (check mode)" if dig(report, "run.check_mode") or report.get("check_mode") else ""
    title = f"rdp.doctor fleet report{mode}"
    body = "".join([
        render_summary(summary), render_chart(summary), render_matrix(hosts), render_correlation(hosts),
        '<section id="hosts"><h2>Hosts</h2><button type="button" id="expand">Expand all findings</button>',
        "".join(render_host(index, host) for index, host in enumerate(hosts)), "</section>",
    ])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><header><h1>{esc(title)}</h1>"
            f'<div>{esc(summary["hosts"])} hosts · schema {esc(report.get("schema") or "unknown")} · generated {esc(generated)}</div></header>'
            f"<main>{body}</main><script>{SCRIPT}</script></body></html>\n")
