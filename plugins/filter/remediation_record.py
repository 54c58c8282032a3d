# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``rdp.doctor.remediation_record`` filter: a remediate_host result -> one record per host."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: remediation_record
short_description: What remediation did to one host, as a small record the summary and the report read
version_added: 0.2.0
author:
  - rdp.doctor contributors (!UNKNOWN)
description:
  - Turns the registered result of P(rdp.doctor.remediate_host#module) (skipped, failed, check mode or applied) and
    the diagnose role's C(rdp_doctor_host_state) into one record with a C(state).
  - C(state) is C(compliant) (nothing to change), C(manual_only) (nothing the modules can change, manual steps
    listed), C(would_change) (check mode), C(changed), C(refused) (a safety guard blocked a change; nothing applied),
    C(rolled_back) (applied, then undone), C(failed), or the read state (C(unreachable), C(failed), C(skipped)).
options:
  _input:
    description: The registered result of P(rdp.doctor.remediate_host#module).
    type: dict
    required: true
  host_state:
    description: The diagnose role's C(rdp_doctor_host_state).
    type: dict
"""

EXAMPLES = r"""
- name: Record and print
  ansible.builtin.debug:
    msg: "{{ remediate_result | rdp.doctor.remediation_record(rdp_doctor_host_state) | rdp.doctor.remediation_summary }}"
"""

RETURN = r"""
_value:
  description: C(state), C(changed), C(operations), C(manual), C(remaining), C(fixed), C(reboot_required), C(rebooted),
    C(reboot_seconds), C(warnings), C(msg).
  type: dict
"""

import typing as t

_KEEP = ("operations", "manual", "remaining", "fixed", "warnings", "regressions", "refused")


def remediation_record(result: t.Any, host_state: t.Any = None) -> dict[str, t.Any]:
    """See DOCUMENTATION."""
    result = result if isinstance(result, dict) else {}
    read = host_state if isinstance(host_state, dict) else {}
    record: dict[str, t.Any] = {key: list(result.get(key) or []) for key in _KEEP}
    record.update(changed=bool(result.get("changed")), reboot_required=bool(result.get("reboot_required")),
                  rebooted=bool(result.get("rebooted")), reboot_seconds=result.get("reboot_seconds"),
                  outcome=result.get("outcome"), msg=str(result.get("msg") or ""))
    if read.get("state") not in (None, "ok"):
        record.update(state=read["state"], msg=str(read.get("msg") or ""))
    elif not result or result.get("skipped"):
        record.update(state="skipped", msg=record["msg"] or "remediation did not run on this host")
    elif result.get("outcome") == "refused":
        record["state"] = "refused"
    elif result.get("outcome") == "rolled_back":
        record["state"] = "rolled_back"
    elif result.get("failed"):
        record["state"] = "failed"
    elif result.get("outcome") == "check_mode":
        record["state"] = "would_change" if result.get("operations") else ("manual_only" if record["manual"] else "compliant")
    elif result.get("changed"):
        record["state"] = "changed"
    else:
        record["state"] = "manual_only" if record["manual"] else "compliant"
    return record


class FilterModule:
    """rdp.doctor remediation_record filter."""

    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        """Filters this file provides."""
        return {"remediation_record": remediation_record}
