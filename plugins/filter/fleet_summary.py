# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``rdp.doctor.fleet_summary`` filter: every host's diagnosis (and remediation) -> one short fleet summary."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: fleet_summary
short_description: One short summary of a whole run - counts by state and cause, one line per host that needs a person
version_added: 0.3.0
author:
  - rdp.doctor contributors (!UNKNOWN)
description:
  - Takes one record per host (what the diagnose role and, when it ran, the remediate role concluded) and returns the
    lines printed once at the end of a run - counts by state, counts by cause, then one line per host that is not
    healthy, worst first.
  - "A host's state is one of, worst first: C(failed) (the read failed or was garbled, the probe could not run, or
    remediation failed, was refused or rolled back), C(unreachable), C(broken) (a finding explains 0x904, the
    client's view fails, or a fixable finding is still present after remediation), C(read incomplete) (part of the
    host could not be read), C(manual) (only manual steps are left), C(would change) (check mode), C(at risk)
    (findings that do not explain 0x904), C(skipped) (not read in this run), C(not reached) (its batch never ran),
    C(fixed) (remediation applied and verified), C(healthy)."
  - Every error is cut to one line of at most O(max_error) characters; base64 and CLIXML are never printed.
  - Windows' default self-signed listener certificate (untrusted by clients) is said once, as an info line with the
    number of hosts, instead of a warning on every healthy host.
options:
  _input:
    description:
      - Host name -> record with C(host_state) (the diagnose role's C(rdp_doctor_host_state)), C(findings)
        (C(rdp_doctor_findings)), C(probe) (C(rdp_doctor_probe)) and, after remediation, C(remediation)
        (C(rdp_doctor_remediation)). A host without a record, or with an empty one, is reported as not read.
    type: dict
    required: true
  fail_on:
    description:
      - The findings that fail a host - a severity (C(critical), C(high), C(medium), C(low), C(info)) fails a host with a
        finding that severe or worse; C(cause) fails a host with a finding that explains 0x904; C(none) never fails a
        host for its findings. Shown in the head line, with the number of hosts it fails.
    type: str
    default: none
  max_error:
    description: The longest error text shown for one host.
    type: int
    default: 160
  not_reached:
    description: Hosts of the play that never ran (a batch stopped the run), listed as such.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Print the fleet summary once
  ansible.builtin.debug:
    msg: >-
      {{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars) | list))
         | rdp.doctor.fleet_summary(fail_on='high') }}
  run_once: true
"""

RETURN = r"""
_value:
  description: Summary lines.
  type: list
  elements: str
  sample:
    - "rdp.doctor: 5 hosts - 1 healthy, 2 broken, 1 unreachable, 1 failed; fail_on=high fails 4"
    - "causes: RDP-CERT-EXPIRED 2, RDP-CONNECTIONS-DENIED 1"
    - "not read: connection reset 1, garbled answer 1"
    - "FAILED      web02: read failed (garbled answer): host script 'read_rdp_state' did not answer with one JSON ..."
    - "UNREACHABLE web03: connection reset: could not run host script 'read_rdp_state' on web03: ConnectionError ..."
    - "BROKEN      web01: [critical] RDP-CERT-EXPIRED (explains 0x904) The listener certificate has expired (+1 more)"
    - "info: 1 host uses Windows' default self-signed listener certificate; clients that do not trust it warn (a CA-issued certificate removes the warning)"
"""

import re
import typing as t
from collections.abc import Mapping

from ansible_collections.rdp.doctor.plugins.filter.findings_summary import could_not_read_line
from ansible_collections.rdp.doctor.plugins.module_utils.findings import SEVERITIES, severity_rank
from ansible_collections.rdp.doctor.plugins.module_utils.fleet_report import READ_INCOMPLETE, published_results

FAIL_ON = ("none", "cause") + SEVERITIES
#: Host states, worst first: the order of the per-host lines and of the counts.
STATES = ("failed", "unreachable", "broken", "read incomplete", "manual", "would change", "at risk", "skipped", "not reached",
          "fixed", "healthy")
#: Remediation outcomes that are a failure of the host (the remediate role fails these hosts).
REMEDIATION_FAILED = frozenset({"failed", "refused", "rolled_back"})
#: Certificate problems of Windows' default listener certificate: made by the host, trusted by nobody.
DEFAULT_CERTIFICATE_PROBLEMS = frozenset({"self_signed", "untrusted"})

# Runs of base64 (or hex) long enough to be a payload, not a word.
_BLOB = re.compile(r"[A-Za-z0-9+/=]{64,}")
_SPACE = re.compile(r"\s+")
_MODULE_PREFIX = re.compile(r"^rdp\.doctor\.\w+: ")
#: Error text -> a short reason, first match wins (what the connection plugins and the host protocol say).
_REASONS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("oversized answer", re.compile(r"larger than|too large|oversized", re.I)),
    ("garbled answer", re.compile(r"did not answer with one JSON|not valid JSON|garbled|JSONDecodeError|unexpected data after", re.I)),
    ("credentials rejected", re.compile(r"\b401\b|unauthori[sz]ed|credentials were rejected|InvalidCredentials", re.I)),
    ("HTTP 500", re.compile(r"\b500\b|InternalError|internal error", re.I)),
    ("timeout", re.compile(r"timed? ?out|timeout", re.I)),
    ("connection reset", re.compile(r"reset by peer|ConnectionReset|connection aborted|RemoteDisconnected|reset", re.I)),
    ("connection refused", re.compile(r"refused|Errno 111", re.I)),
    ("name resolution", re.compile(r"Name or service not known|getaddrinfo|nodename nor servname", re.I)),
)


def one_line(text: t.Any, limit: int = 160) -> str:
    """Any error as one short line: CLIXML and base64 dropped, whitespace collapsed, cut at ``limit`` characters."""
    flat = str(text or "")
    if "#< CLIXML" in flat:
        flat = flat.split("#< CLIXML", 1)[0] + " (CLIXML output omitted)"
    flat = _BLOB.sub(lambda match: f"<{len(match.group(0))} encoded characters omitted>", flat)
    flat = "".join(ch if ch.isprintable() else " " for ch in flat)
    flat = _SPACE.sub(" ", flat).strip()
    limit = max(int(limit), 20)
    return flat if len(flat) <= limit else flat[:limit - 3].rstrip() + "..."


def failure_reason(text: t.Any) -> str:
    """A short, countable reason for a host that could not be read or changed ("connection reset", "timeout", ...)."""
    flat = str(text or "")
    for reason, pattern in _REASONS:
        if pattern.search(flat):
            return reason
    return "other error"


def _field(record: Mapping, name: str) -> t.Any:
    """``name`` of a record, or the role's fact ``rdp_doctor_<name>`` when the record is a host's hostvars.

    The diagnose role publishes its results as facts (``ansible_facts.rdp_doctor_<name>``, present whatever
    INJECT_FACTS_AS_VARS says); other results (``rdp_doctor_remediation``) are plain host variables.
    """
    value = record.get(name)
    return published_results(record)[name] if value is None else value


def _findings(record: Mapping) -> list[dict[str, t.Any]]:
    return [f for f in _field(record, "findings") or [] if isinstance(f, Mapping)]


def failing_findings(findings: t.Sequence[dict[str, t.Any]], fail_on: str) -> list[dict[str, t.Any]]:
    """The findings that fail a host under ``fail_on`` (see DOCUMENTATION)."""
    if fail_on == "none":
        return []
    if fail_on == "cause":
        return [f for f in findings if f.get("explains_0x904")]
    return [f for f in findings if severity_rank(f.get("severity")) <= severity_rank(fail_on)]


def _probe_fails(probe: t.Any) -> bool:
    verdict = probe.get("verdict") if isinstance(probe, Mapping) else None
    return isinstance(verdict, Mapping) and verdict.get("ok") is False


def uses_default_certificate(probe: t.Any) -> bool:
    """The probe saw a self-signed certificate whose only problems are that it is self-signed and untrusted."""
    steps = probe.get("steps") if isinstance(probe, Mapping) else None
    for step in steps if isinstance(steps, list) else []:
        if isinstance(step, Mapping) and step.get("step") == "certificate":
            problems = set((step.get("details") or {}).get("problems") or [])
            return "self_signed" in problems and problems <= DEFAULT_CERTIFICATE_PROBLEMS
    return False


def host_verdict(record: t.Any, fail_on: str = "none", max_error: int = 160) -> dict[str, t.Any]:
    """One host's state, the causes that count, the reason it failed and its one-line detail (pure)."""
    record = record if isinstance(record, Mapping) else {}
    read = _field(record, "host_state")
    read = read if isinstance(read, Mapping) else {}
    remediation = _field(record, "remediation")
    remediation = remediation if isinstance(remediation, Mapping) else None
    probe = _field(record, "probe")
    findings = sorted(_findings(record), key=lambda f: (0 if f.get("explains_0x904") else 1, severity_rank(f.get("severity")), str(f.get("id"))))
    causes = [str(f.get("id")) for f in findings if f.get("explains_0x904")]
    read_state = str(read.get("state") or "skipped")
    probe_error = read.get("probe_error")
    verdict: dict[str, t.Any] = {"state": "healthy", "causes": causes, "reason": "", "detail": "", "fails": False,
                                 "severity": findings[0].get("severity") if findings else None,
                                 "default_certificate": uses_default_certificate(probe)}
    if read_state in ("unreachable", "failed"):
        message = read.get("msg") or "no reason given"
        reason = failure_reason(message)
        verdict.update(state=read_state, reason=reason, fails=True,
                       detail=f"{'read failed' if read_state == 'failed' else 'not reached'} ({reason}): {one_line(message, max_error)}")
        return verdict
    if remediation is not None and remediation.get("state") in REMEDIATION_FAILED:
        message = remediation.get("msg") or "; ".join(str(r) for r in remediation.get("refused") or remediation.get("regressions") or [])
        label = {"refused": "refused by a safety guard", "rolled_back": "rolled back"}.get(remediation["state"], "remediation failed")
        if remediation.get("outcome") == "unknown":
            label = f"answer lost ({failure_reason(message)})"
        message = _MODULE_PREFIX.sub("", str(message or "no reason given"))
        verdict.update(state="failed", reason=label, fails=True, detail=f"{label}: {one_line(message, max_error)}")
        return verdict
    if probe_error:
        verdict.update(state="failed", reason="probe failed", fails=True,
                       detail=f"the probe failed, the client's view is unknown: {one_line(probe_error, max_error)}")
        return verdict
    failing = failing_findings(findings, fail_on)
    verdict["fails"] = bool(failing)
    head = findings[0] if findings else None
    if head is not None:
        more = f" (+{len(findings) - 1} more)" if len(findings) > 1 else ""
        cause = " (explains 0x904)" if head.get("explains_0x904") else ""
        verdict["detail"] = one_line(f"[{head.get('severity')}] {head.get('id')}{cause} {head.get('title') or ''}", max_error) + more
    if read_state == "skipped":
        verdict.update(state="skipped", detail=verdict["detail"] or one_line(read.get("msg") or "the host facts were not read", max_error))
    elif causes or _probe_fails(probe):
        verdict["state"] = "broken"
        if not causes:
            explanation = ((probe or {}).get("verdict") or {}).get("explanation")
            verdict["detail"] = verdict["detail"] or one_line(f"client view fails: {explanation or 'no explanation'}", max_error)
    elif any(f.get("id") == READ_INCOMPLETE for f in findings):
        verdict.update(state="read incomplete", detail=one_line(could_not_read_line(findings), max_error) or verdict["detail"])
    elif any(f.get("severity") != "info" for f in findings):
        verdict["state"] = "at risk"
    if remediation is not None and verdict["state"] != "skipped":
        _after_remediation(verdict, remediation, max_error)
    return verdict


def _after_remediation(verdict: dict[str, t.Any], remediation: Mapping, max_error: int) -> None:
    """What the findings said before, updated with what remediation did (or would do) about them."""
    remaining = [str(item) for item in remediation.get("remaining") or []]
    count = len(remediation.get("operations") or [])
    state = remediation.get("state")
    if remaining:
        verdict.update(state="broken", detail=one_line("still present after the change: " + ", ".join(remaining), max_error))
    elif state == "changed":
        verdict.update(state="fixed", detail=f"{count} operation(s) applied and verified" + (
            "; a reboot is required" if remediation.get("reboot_required") and not remediation.get("rebooted") else ""))
    elif state == "would_change":
        before = f"; now: {verdict['detail']}" if verdict["detail"] else ""
        verdict.update(state="would change", detail=f"check mode: {count} change(s) would be made{before}")
    elif state == "manual_only":
        manual = [str(m.get("id") or m.get("setting") or "") for m in remediation.get("manual") or [] if isinstance(m, Mapping)]
        verdict.update(state="manual", detail=one_line("manual steps: " + ", ".join(m for m in manual if m), max_error))


def _counts(values: t.Iterable[str]) -> list[tuple[str, int]]:
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return sorted(counted.items(), key=lambda item: (-item[1], item[0]))


def fleet_verdicts(hosts: t.Any, fail_on: str = "none", max_error: int = 160, not_reached: t.Any = None) -> dict[str, dict[str, t.Any]]:
    """Each host's verdict (``host_verdict``), and the hosts whose batch never ran as not reached (pure)."""
    if fail_on not in FAIL_ON:
        raise ValueError(f"fail_on must be one of {', '.join(FAIL_ON)}, not {fail_on!r}")
    records = hosts if isinstance(hosts, Mapping) else {}
    verdicts = {str(name): host_verdict(record, fail_on, max_error) for name, record in records.items()}
    for name in not_reached or []:
        if str(name) not in verdicts:
            verdicts[str(name)] = {"state": "not reached", "causes": [], "reason": "", "fails": False, "severity": None,
                                   "default_certificate": False, "detail": "the run stopped before this host's batch"}
    return verdicts


def fleet_summary(hosts: t.Any, fail_on: str = "none", max_error: int = 160, not_reached: t.Any = None) -> list[str]:
    """Summary lines; see DOCUMENTATION."""
    return summary_lines(fleet_verdicts(hosts, fail_on, max_error, not_reached), fail_on)


def summary_lines(verdicts: dict[str, dict[str, t.Any]], fail_on: str = "none") -> list[str]:
    """The summary lines of ``fleet_verdicts`` (pure)."""
    by_state = dict(_counts(v["state"] for v in verdicts.values()))
    total = len(verdicts)
    states = ", ".join(f"{by_state[s]} {s}" for s in STATES if s in by_state) or "no hosts"
    head = f"rdp.doctor: {total} host{'s' if total != 1 else ''} - {states}"
    if fail_on != "none":
        head += f"; fail_on={fail_on} fails {sum(1 for v in verdicts.values() if v['fails'])}"
    lines = [head]
    causes = _counts(cause for v in verdicts.values() if v["state"] != "fixed" for cause in v["causes"])
    if causes:
        lines.append("causes: " + ", ".join(f"{cause} {count}" for cause, count in causes))
    reasons = _counts(v["reason"] for v in verdicts.values() if v["state"] in ("failed", "unreachable"))
    if reasons:
        lines.append("failed or not read: " + ", ".join(f"{reason} {count}" for reason, count in reasons))
    width = max((len(s) for s in STATES), default=0)
    shown = [(name, v) for name, v in verdicts.items() if v["state"] not in ("healthy", "fixed")]
    shown.sort(key=lambda item: (STATES.index(item[1]["state"]), severity_rank(item[1]["severity"]), item[0]))
    lines += [f"{v['state'].upper().replace(' ', '_'):<{width}} {name}: {v['detail']}".rstrip(": ") for name, v in shown]
    default_certificate = sum(1 for v in verdicts.values() if v["default_certificate"])
    if default_certificate:
        lines.append(f"info: {default_certificate} host{' uses' if default_certificate == 1 else 's use'} Windows' default "
                     "self-signed listener certificate; clients that do not trust it warn (a CA-issued certificate removes "
                     "the warning: rdp.doctor.listener_certificate)")
    return lines


class FilterModule:
    """rdp.doctor fleet summary filter."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        """Filters this file provides."""
        return {"fleet_summary": fleet_summary}
