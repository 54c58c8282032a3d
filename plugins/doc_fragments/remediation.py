# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options and attributes every rdp.doctor remediation module shares (plugin_utils/remediation_action.py)."""

from __future__ import annotations


class ModuleDocFragment:  # pylint: disable=too-few-public-methods
    """The ``rdp.doctor.remediation`` documentation fragment."""

    DOCUMENTATION = r"""
options:
  facts:
    description:
      - The host's C(ansible_facts.rdp_doctor) as M(rdp.doctor.host_facts) returned it (the P(rdp.doctor.diagnose#role)
        role passes what it read). Saves the read - a compliant host then costs no round trip, a change exactly one.
      - Without it the module reads the host first (one round trip).
      - Stale facts are safe - every operation carries the value it expects to find; if the host changed since,
        nothing is applied, the module reads the host again, plans again and applies once more.
    type: dict
attributes:
  check_mode:
    support: full
    details: Check mode returns the exact plan (RV(operations)) and diff and sends nothing to the host.
  diff_mode:
    support: full
    details: The diff shows the settings the module manages, before and after.
  platform:
    platforms: windows
    support: full
notes:
  - Needs Windows PowerShell 5.1 and an administrator account on the host. Runs over C(ansible.builtin.winrm),
    C(ansible.builtin.psrp) or C(ssh) with the PowerShell shell.
  - All changes go in one run of the C(apply_rdp_changes) host script - every precondition is checked before anything is
    written, a failing operation undoes the ones applied before it, and the script re-reads every target so the module
    verifies the change without another round trip.
"""
