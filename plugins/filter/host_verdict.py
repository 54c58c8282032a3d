# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``rdp.doctor.host_verdict`` filter: one host's record -> its fleet state and whether it fails the run."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: host_verdict
short_description: One host's state in the fleet summary, and whether the run must fail it
version_added: 0.3.0
author:
  - rdp.doctor contributors (!UNKNOWN)
description:
  - The per-host half of P(rdp.doctor.fleet_summary#filter) - the state (C(failed), C(unreachable), C(broken),
    C(read incomplete), C(at risk), C(skipped), C(healthy)), the causes, a short reason and a one-line detail.
  - C(fails) is true for a host that could not be read or changed, whose probe could not run, or that has a finding
    O(fail_on) selects. The diagnose and remediate roles fail such a host at the end, after the fleet summary.
options:
  _input:
    description:
      - The host's record - C(host_state), C(findings), C(probe) and optionally C(remediation), or the host's
        hostvars (C(rdp_doctor_host_state), C(rdp_doctor_findings), ...).
    type: dict
    required: true
  fail_on:
    description: C(none), C(cause) or a severity (C(critical), C(high), C(medium), C(low), C(info)).
    type: str
    default: none
  max_error:
    description: The longest error text kept.
    type: int
    default: 160
"""

EXAMPLES = r"""
- name: Fail a host that is not compliant
  ansible.builtin.fail:
    msg: "{{ (hostvars[inventory_hostname] | rdp.doctor.host_verdict('high')).detail }}"
  when: (hostvars[inventory_hostname] | rdp.doctor.host_verdict('high')).fails
"""

RETURN = r"""
_value:
  description: C(state), C(causes), C(reason), C(detail), C(fails), C(severity), C(default_certificate).
  type: dict
"""

import typing as t

from ansible_collections.rdp.doctor.plugins.filter.fleet_summary import host_verdict


class FilterModule:
    """rdp.doctor host verdict filter."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        """Filters this file provides."""
        return {"host_verdict": host_verdict}
