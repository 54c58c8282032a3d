# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report as one self-contained HTML page: ``render_html(report) -> str``, pure.

The input is the JSON fleet report the report role writes: schema ``rdp.doctor/fleet_report/1``
(``plugins/report_schemas/fleet_report.schema.json``, built by ``module_utils/fleet_report.py``; one record per
host with its state, read result, findings with their status, probe view, remediation and traits). The page
needs nothing else: inline CSS, an inline SVG chart, a few lines of inline JavaScript, and a Content Security
Policy that forbids every fetch, so it opens offline from a file share. Everything a host sent (names,
messages, evidence) is hostile text: every value passes through ``html.escape`` and no host string ever
becomes an attribute name, a URL, a tag or script; anchors use the host's position, never its name.

Sections: fleet summary (states, causes), a chart of causes, the host x check table, fleet correlation
(hosts grouped by shared cause and by what they share: OS build, a Group Policy owned setting, the
certificate issuer, the CredSSP state), then one section per host with each finding expandable to its
evidence and fix, and the drift (what remediation changed or check mode would change).

The reader is tolerant (a report from a newer version, a hand-edited file): a missing or malformed part is shown
as unknown, never as healthy, and never stops the page.
"""

from __future__ import annotations

import html
import json
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils.findings import SEVERITIES, severity_rank

Report = t.Dict[str, t.Any]
Host = t.Dict[str, t.Any]

# The host x check table's columns after the probe, in the catalogue's order of categories (findings.py).
CHECK_COLUMNS = ("network", "listener", "certificate", "security", "tls", "credssp", "sessions", "licensing",
                 "accounts", "group_policy", "host")
# The schema's host states, worst first (the order of the summary and of the hosts).
STATES = ("unreachable", "failed", "broken", "unknown", "healthy")
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
.st-healthy{background:var(--ok)}.st-broken{background:var(--crit)}.st-unknown{background:var(--unk)}
.st-unreachable,.st-failed{background:#4a148c}.fs{display:inline-block;border:1px solid #90a4ae;border-radius:4px;padding:0 5px;font-size:12px}
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
    """The host records (each a dict with a string ``name``), worst state first, then by name."""
    hosts = []
    for index, record in enumerate(_list(report.get("hosts"))):
        record = _dict(record)
        hosts.append(dict(record, name=str(record.get("name") or f"host #{index + 1}")))
    return sorted(hosts, key=lambda host: (_STATE_RANK.get(state_of(host), len(STATES)), host["name"]))


def state_of(host: Host) -> str:
    """The record's state; ``unknown`` when it carries none the schema knows (never healthy by default)."""
    state = str(host.get("state") or "")
    return state if state in _STATE_RANK else "unknown"


def findings_of(host: Host) -> list[dict[str, t.Any]]:
    """The host's findings, worst first, then by id (a stable order for the page)."""
    items = [f for f in _list(host.get("findings")) if isinstance(f, dict)]
    return sorted(items, key=lambda f: (severity_rank(f.get("severity")), str(f.get("id"))))


def open_findings(host: Host) -> list[dict[str, t.Any]]:
    """Findings still there: every status but ``fixed`` (``would_fix`` is still open: check mode changed nothing)."""
    return [f for f in findings_of(host) if f.get("status") != "fixed"]


def causes_of(host: Host) -> list[str]:
    """Ids of the open findings that explain 0x904: the record's ``causes``, else derived from its findings."""
    causes = host.get("causes")
    if isinstance(causes, list):
        return [str(cause) for cause in causes]
    return [str(f.get("id")) for f in open_findings(host) if f.get("explains_0x904")]


def worst_severity(findings: list[dict[str, t.Any]]) -> str | None:
    """The worst severity among ``findings``; None when there are none."""
    ranks = [min(severity_rank(f.get("severity")), len(SEVERITIES) - 1) for f in findings]  # an unknown severity counts as info
    return SEVERITIES[min(ranks)] if ranks else None


def was_read(host: Host) -> bool:
    """Whether the host's state was read this run (a host not read has unknown checks, never healthy ones)."""
    return dig(host, "read.state") == "ok" and state_of(host) not in ("unreachable",)


def host_traits(host: Host) -> dict[str, list[str]]:
    """What a host shares with others, each trait as a list of values (empty: unknown), from the record's ``traits``.

    OS build (caption and build), the Group Policy owned settings (``section.setting``), the certificate issuer
    (``self-signed`` for a self-signed certificate: its issuer is the host itself, so that is what hosts share),
    and the CredSSP state (AllowEncryptionOracle, and whether tspkg.dll lacks the fix).
    """
    traits = _dict(host.get("traits"))
    build, caption = traits.get("os_build"), traits.get("os_caption")
    if build is not None:
        os_build = [f"{caption} (build {build})" if caption else f"build {build}"]
    else:
        os_build = [str(traits["os_version"])] if traits.get("os_version") else []
    issuer = "self-signed" if traits.get("certificate_self_signed") else traits.get("certificate_issuer")
    credssp = traits.get("credssp")
    if credssp and traits.get("credssp_patched") is False:
        credssp = f"{credssp}, tspkg.dll unpatched"
    return {"os_build": os_build, "gpo_settings": sorted(str(item) for item in _list(traits.get("policy_settings"))),
            "certificate_issuer": [str(issuer)] if issuer else [], "credssp": [str(credssp)] if credssp else []}


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
    """Counts by state, open findings by severity, and causes: ``[(id, {hosts, severity, title})]``, most hosts first."""
    states = {state: 0 for state in STATES}
    severities = {severity: 0 for severity in SEVERITIES}
    causes: dict[str, dict[str, t.Any]] = {}
    for host in hosts:
        states[state_of(host)] += 1
        counted: set[str] = set()  # a cause counts a host once
        for finding in open_findings(host):
            severity = str(finding.get("severity"))
            severities[severity if severity in severities else "info"] += 1
            if str(finding.get("id")) not in causes_of(host) or str(finding.get("id")) in counted:
                continue
            counted.add(str(finding.get("id")))
            entry = causes.setdefault(str(finding.get("id")), {"hosts": 0, "severity": "info", "title": finding.get("title")})
            entry["hosts"] += 1
            entry["severity"] = worst_severity([finding, {"severity": entry["severity"]}])
    ordered = sorted(causes.items(), key=lambda item: (-item[1]["hosts"], severity_rank(item[1]["severity"]), item[0]))
    return {"hosts": len(hosts), "states": states, "severities": severities, "causes": ordered}


def _state_badge(state: str) -> str:
    return f'<span class="st st-{esc(state)}">{esc(state)}</span>'


def _severity_badge(severity: t.Any) -> str:
    name = severity if isinstance(severity, str) and severity in SEVERITIES else "unknown"
    return f'<span class="sev s-{name}">{esc(severity or "unknown")}</span>'


def _json_block(value: t.Any) -> str:
    text = json.dumps(value, indent=2, sort_keys=True, default=str, ensure_ascii=False)
    if len(text) > _EVIDENCE_LIMIT:
        text = text[:_EVIDENCE_LIMIT] + f"\n... ({len(text) - _EVIDENCE_LIMIT} more characters in the JSON report)"
    return f"<pre>{esc(text)}</pre>"


def render_summary(summary: dict[str, t.Any], drift: dict[str, t.Any]) -> str:
    """The fleet summary: hosts and each state, open findings by severity, the drift, the causes of 0x904."""
    cards = [f'<div class="card" data-state="all"><b>{summary["hosts"]}</b>hosts</div>']
    cards += [f'<div class="card" data-state="{esc(state)}"><b>{count}</b>{_state_badge(state)}</div>'
              for state, count in summary["states"].items()]
    severities = " ".join(f'{_severity_badge(severity)} {count}' for severity, count in summary["severities"].items() if count)
    parts = [f'<section id="summary"><h2>Fleet summary</h2><div class="cards">{"".join(cards)}</div>',
             f'<p id="severities">Open findings by severity: {severities or "none"}</p>']
    if drift:
        verb = "would change" if drift.get("check_mode") else "changed"
        hosts = drift.get("hosts_would_change") if drift.get("check_mode") else drift.get("hosts_changed")
        parts.append(f'<p id="drift-summary">Remediation {esc(verb)} {esc(hosts)} host(s), {esc(drift.get("operations"))} '
                     f'operation(s); {esc(drift.get("reboot_required"))} host(s) need a reboot.</p>')
    rows = "".join(f'<tr><td>{_severity_badge(entry["severity"])} {esc(cause)}</td><td>{esc(entry["title"])}</td>'
                   f'<td class="n">{entry["hosts"]}</td></tr>' for cause, entry in summary["causes"])
    parts.append(f'<h3>Counts by cause</h3><table id="causes"><tr><th>cause of 0x904</th><th>what</th><th>hosts</th></tr>{rows}</table>'
                 if rows else '<p class="muted">No host has a cause of 0x904.</p>')
    parts.append("</section>")
    return "".join(parts)


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
    still = [f for f in items if f.get("status") != "fixed"]
    if not still:
        return '<td class="c-ok">fixed</td>' if items else '<td class="c-ok">ok</td>'
    severity = worst_severity(still) or "info"
    count = f" ×{len(still)}" if len(still) > 1 else ""
    planned = " (would fix)" if all(f.get("status") == "would_fix" for f in still) else ""
    ids = ", ".join(str(f.get("id")) for f in still)
    return f'<td class="c-{severity}" title="{esc(ids)}">{esc(severity)}{count}{planned}</td>'


def _probe_cell(host: Host) -> str:
    probe = host.get("probe")
    if not isinstance(probe, dict):
        return '<td class="c-unknown">not probed</td>'
    if probe.get("ok"):
        return '<td class="c-ok">ok</td>'
    return f'<td class="c-critical" title="{esc(probe.get("explanation"))}">{esc(probe.get("failed_step") or "failed")}</td>'


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
    legend = " ".join(f'<span class="sev s-{severity}">{severity}</span>' for severity in SEVERITIES)
    note = (f'<p class="muted">Columns are the checks with a finding on some host; a cell shows the worst open finding: {legend} '
            '<span class="sev s-ok">ok</span> the check ran and found nothing (or its finding was fixed), '
            '<span class="sev s-unknown">not read</span> the host could not be read.</p>')
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
    status = f' <span class="fs">{esc(finding.get("status"))}</span>' if finding.get("status") else ""
    return (f'<details class="finding" data-id="{esc(finding.get("id"))}"><summary>{_severity_badge(finding.get("severity"))} '
            f'<b>{esc(finding.get("id"))}</b> {esc(finding.get("title"))}{cause}{status}</summary>'
            f'<p class="muted">category: {esc(finding.get("category"))}</p><h4>Evidence</h4>{_json_block(finding.get("evidence"))}'
            f"<h4>Fix</h4>{_fix_html(finding.get('fix'))}</details>")


def drift_of(host: Host) -> list[dict[str, t.Any]]:
    """The operations remediation applied on the host or, in check mode, would apply (contracts section 10)."""
    return [op for op in _list(dig(host, "remediation.operations")) if isinstance(op, dict)]


def _drift_html(host: Host) -> str:
    remediation = host.get("remediation")
    if not isinstance(remediation, dict):
        return ""
    head = f'<h4>Drift ({esc(remediation.get("state"))})</h4>'
    rows = []
    for item in drift_of(host):
        rows.append(f"<tr><td>{esc(item.get('id'))}</td><td>{esc(item.get('kind'))}</td>"
                    f"<td>{esc(json.dumps(item.get('target'), default=str, ensure_ascii=False))}</td>"
                    f"<td>{esc(json.dumps(item.get('expect'), default=str, ensure_ascii=False))}</td>"
                    f"<td>{esc(json.dumps(item.get('set'), default=str, ensure_ascii=False))}</td>"
                    f"<td>{esc(item.get('status') or ('planned' if remediation.get('check_mode') else ''))}</td>"
                    f"<td>{esc(item.get('why') or '')}</td></tr>")
    manual = "".join(f"<li>{esc(json.dumps(item, default=str, ensure_ascii=False) if not isinstance(item, str) else item)}</li>"
                     for item in _list(remediation.get("manual")))
    body = ('<table class="drift"><tr><th>op</th><th>kind</th><th>target</th><th>before (expected)</th><th>after (set)</th>'
            f'<th>status</th><th>why</th></tr>{"".join(rows)}</table>') if rows else '<p class="muted">No change made or proposed.</p>'
    reboot = "<p>A reboot is needed for a change to take effect.</p>" if remediation.get("reboot_required") else ""
    return head + body + reboot + (f"<p>Left to a person:</p><ul class=\"manual\">{manual}</ul>" if manual else "")


def render_host(index: int, host: Host) -> str:
    """One host: state, errors, the client's view, findings (expandable to evidence and fix), drift."""
    state = state_of(host)
    previous = f' <span class="muted">(was {esc(host["previous_state"])})</span>' if host.get("previous_state") else ""
    address = f' <span class="muted">{esc(host["address"])}</span>' if host.get("address") else ""
    parts = [f'<div class="host" id="h{index}" data-host="{esc(host["name"])}"><h3>{esc(host["name"])} {_state_badge(state)}'
             f"{previous}{address}</h3>"]
    if not was_read(host):
        parts.append(f'<p class="err">Not read: {esc(dig(host, "read.msg") or "no reason given")}</p>')
    # The read error is the "Not read" line already; list the others (probe, remediation).
    errors = [e for e in _list(host.get("errors")) if isinstance(e, dict)
              and not (e.get("stage") == "read" and e.get("msg") == dig(host, "read.msg") and not was_read(host))]
    if errors:
        items = "".join(f'<li class="err">{esc(e.get("stage"))} ({esc(e.get("type"))}): {esc(e.get("msg"))}</li>' for e in errors)
        parts.append(f'<ul class="errors">{items}</ul>')
    probe = host.get("probe")
    if isinstance(probe, dict):
        steps = " → ".join(f'{esc(step.get("step"))} {esc(step.get("verdict"))}' for step in _list(probe.get("steps")) if isinstance(step, dict))
        parts.append(f'<p>Client\'s view: {esc(probe.get("explanation") or ("ok" if probe.get("ok") else ""))}</p>'
                     f'<p class="muted">{steps}</p><p class="muted">{esc(probe.get("client_sees"))}</p>')
    found = findings_of(host)
    if found:
        parts.append(f'<h4>Findings ({len(found)})</h4>' + "".join(_finding_html(finding) for finding in found))
    elif was_read(host):
        parts.append('<p class="muted">No findings.</p>')
    parts.append(_drift_html(host))
    parts.append("</div>")
    return "".join(parts)


def render_trend(trend: t.Any) -> str:
    """After a merge with an older report: the hosts whose state changed."""
    rows = "".join(f'<tr><td>{esc(item.get("host"))}</td><td>{_state_badge(str(item.get("from")))}</td>'
                   f'<td>{_state_badge(str(item.get("to")))}</td></tr>' for item in _list(trend) if isinstance(item, dict))
    return (f'<section id="trend"><h2>Since the older report</h2><table><tr><th>host</th><th>was</th><th>now</th></tr>{rows}</table></section>'
            if rows else "")


def render_html(report: Report) -> str:
    """The whole page for ``report``; see the module docstring."""
    report = _dict(report)
    run = _dict(report.get("run"))
    hosts = hosts_of(report)
    summary = fleet_summary(hosts)
    kind = {"drift": "drift (check mode)", "remediate": "remediation", "diagnose": "diagnosis"}.get(str(run.get("kind")), "")
    title = "rdp.doctor fleet report" + (f": {kind}" if kind else "")
    sources = [s for s in _list(run.get("sources")) if isinstance(s, dict)]
    merged = f" · merged from {len(sources)} reports" if len(sources) > 1 else ""
    about = (f'{summary["hosts"]} hosts · generated {esc(run.get("generated_utc") or "?")} · run {esc(run.get("run_id") or "-")}{merged} · '
             f'rdp.doctor {esc(run.get("collection_version") or "?")}, ansible-core {esc(run.get("ansible_version") or "?")} · '
             f'schema {esc(report.get("schema") or "unknown")}')
    body = "".join([
        render_summary(summary, _dict(dig(report, "summary.drift"))), render_chart(summary),
        render_trend(dig(report, "summary.trend")), render_matrix(hosts), render_correlation(hosts),
        '<section id="hosts"><h2>Hosts</h2><button type="button" id="expand">Expand all findings</button>',
        "".join(render_host(index, host) for index, host in enumerate(hosts)), "</section>",
    ])
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{esc(title)}</title>'
            f"<style>{STYLE}</style></head><body><header><h1>{esc(title)}</h1><div>{about}</div></header>"
            f"<main>{body}</main><script>{SCRIPT}</script></body></html>\n")
