# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``rdp.doctor.findings_summary`` filter: findings -> a few readable lines, cause first."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: findings_summary
short_description: A short per-host summary of rdp.doctor findings, cause first
version_added: 0.1.0
author:
  - rdp.doctor contributors (!UNKNOWN)
description:
  - Turns the list returned by P(rdp.doctor.findings#filter) into lines for a person - one line per finding with its
    severity, id, title and fix, causes that explain 0x904 first.
  - A host that could not be read is reported as C(UNREACHABLE) or C(FAILED) with the reason, never dropped.
  - Without host facts (tags, unreachable host) the summary never claims the host is healthy.
  - When part of the host could not be read (finding C(RDP-READ-INCOMPLETE)), a C(could not read:) line names each part
    with the host's reason, right after the count.
options:
  _input:
    description: The findings.
    type: list
    elements: dict
    required: true
  state:
    description:
      - How reading the host went - a dict with C(state) (C(ok), C(unreachable), C(failed), or C(skipped) when the facts
        were not read in this run) and C(msg).
      - C(probe_error), when the probe was asked for and gave no result - the summary then says so (C(PROBE FAILED))
        and never that RDP looks healthy.
    type: dict
  probe:
    description:
      - The result of P(rdp.doctor.probe#module) for the host, when it was probed. The summary then shows the client's
        view next to the findings - one line with each step's verdict, and the verdict of the first failing step.
    type: dict
"""

EXAMPLES = r"""
- name: Print the summary
  ansible.builtin.debug:
    msg: "{{ rdp_doctor_findings | rdp.doctor.findings_summary(rdp_doctor_host_state, rdp_doctor_probe) }}"
"""

RETURN = r"""
_value:
  description: Summary lines.
  type: list
  elements: str
  sample:
    - "2 findings, 1 explains 0x904"
    - "could not read: firewall (the Windows Defender Firewall service (MpsSvc) is Stopped: its ActiveStore cannot be read ...)"
    - "[critical] RDP-CERT-EXPIRED (explains 0x904): The listener certificate has expired -> rdp.doctor.listener_certificate state=self_signed"
    - "client view 127.0.0.15:3389: dns ok, tcp ok, x224 ok, tls ok, certificate FAIL, nla ok -> certificate: ... has expired"
"""

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils.findings import sort_key


def _fix_text(fix: t.Any) -> str:
    """``module key=value ...`` or the first sentence of a manual fix."""
    if not isinstance(fix, dict):
        return ""
    if fix.get("module"):
        params = " ".join(f"{key}={value}" for key, value in sorted((fix.get("params") or {}).items()))
        return f"{fix['module']} {params}".strip()
    manual = str(fix.get("manual") or "")
    return "manual: " + manual.split(". ", maxsplit=1)[0].rstrip(".")


def _line(finding: dict[str, t.Any]) -> str:
    """One finding as one line."""
    cause = " (explains 0x904)" if finding.get("explains_0x904") else ""
    fix = _fix_text(finding.get("fix"))
    return f"[{finding.get('severity')}] {finding.get('id')}{cause}: {finding.get('title')}" + (f" -> {fix}" if fix else "")


READ_INCOMPLETE = "RDP-READ-INCOMPLETE"


def could_not_read_line(findings: list[dict[str, t.Any]]) -> str:
    """``could not read: <part> (<reason>); ...`` from the RDP-READ-INCOMPLETE finding, or "" when all was read."""
    incomplete = next((f for f in findings if f.get("id") == READ_INCOMPLETE), None)
    errors = ((incomplete or {}).get("evidence") or {}).get("read_errors") or []
    parts = [f"{e.get('section')} ({e.get('message') or e.get('type')})" for e in errors if isinstance(e, dict)]
    return "could not read: " + "; ".join(parts) if parts else ""


def probe_line(probe: t.Any) -> str:
    """The client's view in one line: every step's verdict, then the first failing step and why."""
    if not isinstance(probe, dict) or not isinstance(probe.get("steps"), list):
        return ""
    marks = ", ".join(f"{step.get('step')} {_VERDICT_MARK.get(step.get('verdict'), step.get('verdict'))}"
                      for step in probe["steps"] if isinstance(step, dict))
    verdict = probe.get("verdict") or {}
    outcome = str(verdict.get("explanation") or "")
    if verdict.get("ok") and not outcome:
        outcome = "a client can negotiate"
    if verdict.get("ok"):
        # No step failed: say what the warnings are, not only where (e.g. the self-signed certificate).
        warned = [f"{step.get('step')}: {step.get('summary')}" for step in probe["steps"]
                  if isinstance(step, dict) and step.get("verdict") == "warn"]
        if warned:
            outcome = "a client can connect, with warnings - " + "; ".join(warned)
    client = verdict.get("client_sees")
    tail = f" -> {outcome}" if outcome else ""
    if client and not verdict.get("ok"):
        tail += f" (client sees: {client})"
    return f"client view {probe.get('target')}:{probe.get('port')}: {marks}{tail}"


_VERDICT_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skipped": "-"}


def findings_summary(findings: t.Any, state: t.Any = None, probe: t.Any = None) -> list[str]:
    """Summary lines; see DOCUMENTATION."""
    items = sorted((f for f in (findings or []) if isinstance(f, dict)), key=sort_key)
    lines = []
    state = state if isinstance(state, dict) else {}
    kind = str(state.get("state") or "ok").lower()
    if kind in ("unreachable", "failed", "skipped"):
        lines.append(f"{kind.upper()}: {state.get('msg') or 'no reason given'}")
    causes = sum(1 for f in items if f.get("explains_0x904"))
    if items:
        plural = "finding" if len(items) == 1 else "findings"
        lines.append(f"{len(items)} {plural}, {causes} explain{'s' if causes == 1 else ''} 0x904")
        missing = could_not_read_line(items)
        if missing:
            lines.append(missing)
    elif kind == "ok" and state.get("probe_error"):
        lines.append("no findings from the host's side; the client's view is unknown")
    elif kind == "ok":
        side = "the host's side and the client's" if probe_line(probe) else "the host's side"
        lines.append(f"no findings: RDP looks healthy from {side}")
    lines.extend(_line(f) for f in items)
    client = probe_line(probe)
    if client:
        lines.append(client)
    elif state.get("probe_error"):
        lines.append(f"PROBE FAILED: {state['probe_error']}")
    return lines


class FilterModule:
    """rdp.doctor findings summary filter."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        """Filters this file provides."""
        return {"findings_summary": findings_summary}
