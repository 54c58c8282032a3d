# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``rdp.doctor.findings`` filter: host facts (+ probe result) -> findings."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: findings
short_description: Findings that explain why RDP to a host fails, from its facts and the probe's view
version_added: 0.1.0
author:
  - rdp.doctor contributors (!UNKNOWN)
description:
  - Evaluates the rules of the rdp.doctor findings catalogue on the facts that P(rdp.doctor.host_facts#module) returned
    (C(ansible_facts.rdp_doctor)) and, when given, joins the result of P(rdp.doctor.probe#module) (the client's view).
  - Each finding has a stable C(id), a C(title), a C(severity), a C(category), C(explains_0x904), the C(evidence)
    (exact values, events, probe answers) and a C(fix) - a collection module with parameters, or a manual step.
  - Findings are ordered causes that explain error 0x904 / extended 0x7 first, then by severity.
  - Pure and local, it runs on the controller and never contacts the host.
options:
  _input:
    description:
      - The host facts (C(ansible_facts.rdp_doctor)). An undefined value or an empty dict (unreachable host) gives only
        the probe's findings.
    type: dict
    required: true
  probe:
    description:
      - The probe result (the registered result of P(rdp.doctor.probe#module), or its C(probe) value). Skipped or failed
        probe tasks are ignored.
    type: dict
  categories:
    description:
      - Keep only findings of these categories (C(listener), C(network), C(certificate), C(credssp), C(security), C(tls),
        C(sessions), C(licensing), C(accounts), C(group_policy), C(host)). Default keeps all.
    type: list
    elements: str
  min_severity:
    description: Drop findings less severe than this.
    type: str
    choices: [critical, high, medium, low, info]
    default: info
"""

EXAMPLES = r"""
- name: Findings from the facts alone
  ansible.builtin.set_fact:
    rdp_doctor_findings: "{{ ansible_facts.rdp_doctor | rdp.doctor.findings }}"

- name: Findings from the facts and the probe, certificate and network only
  ansible.builtin.set_fact:
    rdp_doctor_findings: >-
      {{ ansible_facts.rdp_doctor | default({}) | rdp.doctor.findings(probe_result, categories=['certificate', 'network']) }}
"""

RETURN = r"""
_value:
  description: The findings, causes of 0x904 first.
  type: list
  elements: dict
  contains:
    id:
      description: Stable id, documented in docs/findings.md.
      type: str
      sample: RDP-CERT-EXPIRED
    title:
      description: One-line title.
      type: str
    severity:
      description: C(critical), C(high), C(medium), C(low) or C(info).
      type: str
    category:
      description: Area of the finding.
      type: str
    explains_0x904:
      description: Whether this cause explains client error 0x904 / extended 0x7.
      type: bool
    evidence:
      description: The exact values, events and probe answers behind the finding.
      type: dict
    fix:
      description: C(module) and C(params) of an rdp.doctor module that fixes it, or C(manual) text.
      type: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.rdp.doctor.plugins.module_utils import findings as rules


def _probe_document(probe: t.Any) -> dict[str, t.Any] | None:
    """The probe result inside whatever was passed: the result itself, a registered task result, or nothing."""
    if not isinstance(probe, dict) or probe.get("skipped"):
        return None
    if isinstance(probe.get("steps"), list):
        return probe
    inner = probe.get("probe")
    if isinstance(inner, dict) and isinstance(inner.get("steps"), list):
        return inner
    return None


def findings(facts: t.Any, probe: t.Any = None, categories: list[str] | None = None, min_severity: str = "info") -> list[dict[str, t.Any]]:
    """Evaluate the findings rules; see DOCUMENTATION."""
    if min_severity not in rules.SEVERITIES:
        raise AnsibleFilterError(f"rdp.doctor.findings: min_severity must be one of {', '.join(rules.SEVERITIES)}, not {min_severity!r}")
    if facts is not None and not isinstance(facts, dict):
        raise AnsibleFilterError(f"rdp.doctor.findings expects the host facts (a dict), got {type(facts).__name__}")
    result = rules.evaluate(dict(facts or {}), _probe_document(probe))
    limit = rules.SEVERITIES.index(min_severity)
    wanted = set(categories) if categories else None
    return [f for f in result if rules.SEVERITIES.index(f["severity"]) <= limit and (wanted is None or f["category"] in wanted)]


class FilterModule:
    """rdp.doctor findings filter."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        """Filters this file provides."""
        return {"findings": findings}
