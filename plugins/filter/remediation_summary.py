# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``rdp.doctor.remediation_summary`` filter: a remediation record -> a few readable lines."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: remediation_summary
short_description: A short per-host summary of what remediation did, would do, or could not do
version_added: 0.2.0
author:
  - rdp.doctor contributors (!UNKNOWN)
description:
  - Turns the record of P(rdp.doctor.remediation_record#filter) into lines for a person - the state first, then each
    operation with its status, refusals, regressions, manual steps, what is still present, reboot and warnings.
options:
  _input:
    description: The record of P(rdp.doctor.remediation_record#filter).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Print the summary
  ansible.builtin.debug:
    msg: "{{ rdp_doctor_remediation | rdp.doctor.remediation_summary }}"
"""

RETURN = r"""
_value:
  description: Summary lines.
  type: list
  elements: str
  sample:
    - "changed: 2 operation(s) applied and verified"
    - "       applied registry_value NLA required (UserAuthentication=1)"
"""

import typing as t


def _operation_line(operation: dict[str, t.Any]) -> str:
    status = operation.get("status") or "planned"
    return f"  {status:>12} {operation.get('kind')} {operation.get('why') or operation.get('target')}"


def remediation_summary(record: t.Any) -> list[str]:
    """Short lines for a person: the state, each operation, manual steps, what is left."""
    record = record if isinstance(record, dict) else {}
    state = str(record.get("state") or "unknown")
    operations = [o for o in record.get("operations") or [] if isinstance(o, dict)]
    head = {"compliant": "compliant: nothing to change",
            "manual_only": "nothing a module can change; manual steps below",
            "would_change": f"check mode: {len(operations)} change(s) would be made",
            "changed": f"changed: {len(operations)} operation(s) applied and verified",
            "refused": "refused by a safety guard: nothing applied",
            "rolled_back": "ROLLED BACK",  # why (a failed operation, or the client's view got worse) is in msg
            "failed": "FAILED", "unreachable": "UNREACHABLE", "skipped": "skipped"}.get(state, state.upper())
    lines = [head + (f": {record['msg']}" if record.get("msg") and state not in ("compliant", "changed", "would_change") else "")]
    lines += [_operation_line(o) for o in operations]
    lines += [f"  refused: {text}" for text in record.get("refused") or []]
    lines += [f"  regression: {text}" for text in record.get("regressions") or []]
    lines += [f"  manual {m.get('id') or m.get('setting') or ''}: {m.get('manual') or m.get('reason')}".rstrip()
              for m in record.get("manual") or [] if isinstance(m, dict)]
    if record.get("remaining"):
        lines.append(f"  still present after the change: {', '.join(str(i) for i in record['remaining'])}")
    if record.get("rebooted"):
        seconds = record.get("reboot_seconds")
        lines.append("  rebooted: the host restarted for the change to take effect" + (f" (back after {seconds} s)" if seconds is not None else ""))
    elif record.get("reboot_required"):
        lines.append("  a reboot is required for the change to take effect")
    lines += [f"  warning: {text}" for text in record.get("warnings") or []]
    return lines


class FilterModule:
    """rdp.doctor remediation_summary filter."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        """Filters this file provides."""
        return {"remediation_summary": remediation_summary}
