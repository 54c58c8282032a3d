# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/run_summary.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: run_summary
short_description: Sum up the per-host results of a play once - fleet summary and the results to publish
version_added: 0.3.0
description:
  - Runs once (C(run_once)) after P(rdp.doctor.diagnose_host#module) or P(rdp.doctor.remediate_host#module) (with
    O(rdp.doctor.remediate_host#module:verdict=true)), in the same block of tasks (consecutive tasks of a play are one
    block; the P(rdp.doctor.diagnose#role) and P(rdp.doctor.remediate#role) roles put it in the C(always) section of
    their block).
  - Reads what each host's task of this run left in the run's records (files in Ansible's per-run local temporary
    directory, removed when ansible-playbook exits), not the hosts' variables, so its cost does not grow with each
    host's facts.
  - Returns the fleet summary lines (see P(rdp.doctor.fleet_summary#filter)), each remediated host's own lines (see
    P(rdp.doctor.remediation_summary#filter); none for a compliant host), and the results Ansible did not publish -
    those of hosts whose task failed (Ansible drops a failed task's facts) and of hosts Ansible lost before the task
    ran - for one C(ansible.builtin.set_fact) loop with C(delegate_facts) to publish.
  - Never contacts a host.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  hosts:
    description: The hosts to sum up. Default C(ansible_play_hosts_all); hosts whose diagnose task ran are always included.
    type: list
    elements: str
  fail_on:
    description: Which findings fail a host, shown in the summary's head line (see P(rdp.doctor.diagnose_host#module)).
    type: str
    choices: [none, cause, critical, high, medium, low, info]
    default: none
  fail_on_findings:
    description: Deprecated, use O(fail_on=cause).
    type: bool
    default: false
  batches:
    description:
      - The play runs in batches (C(serial)) - a host whose batch has not run is listed as not reached, and RV(print_now)
        is true only at the last batch or at a batch where a host failed.
    type: bool
    default: false
  kind:
    description:
      - Whose records these are - C(diagnose) (P(rdp.doctor.diagnose_host#module)) or C(remediate)
        (P(rdp.doctor.remediate_host#module)); decides what a host Ansible lost before its task ran gets published
        (the four diagnose facts, or C(rdp_doctor_remediation)).
    type: str
    choices: [diagnose, remediate]
    default: diagnose
  use_role_variables:
    description:
      - Take O(fail_on) and O(fail_on_findings), when not given, from the P(rdp.doctor.diagnose#role) role's variables
        C(rdp_doctor_diagnose_fail_on) and C(rdp_doctor_diagnose_fail_on_findings).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Only reads the run's records.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
    details: Runs in the controller's worker; never contacts a host.
notes:
  - Needs the C(linear) strategy (Ansible's default) - it must run after every host of the batch finished its task; with
    C(free), a host still running would be summed up as lost.
  - The records hold what the hosts' facts hold (never a credential) and are removed with Ansible's per-run temporary
    directory when ansible-playbook exits.
seealso:
  - module: rdp.doctor.diagnose_host
  - plugin: rdp.doctor.fleet_summary
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Diagnose, then sum up the fleet even when hosts fail
  block:
    - name: Diagnose each host (fails the hosts that could not be read)
      rdp.doctor.diagnose_host:
        verdict: true
  always:
    - name: Collect the fleet's results
      rdp.doctor.run_summary:
        fail_on: none
      register: fleet
      run_once: true

    - name: Publish the results of the hosts that failed
      ansible.builtin.set_fact:
        rdp_doctor_host_state: "{{ item.results.rdp_doctor_host_state }}"
        rdp_doctor_facts: "{{ item.results.rdp_doctor_facts }}"
        rdp_doctor_probe: "{{ item.results.rdp_doctor_probe }}"
        rdp_doctor_findings: "{{ item.results.rdp_doctor_findings }}"
        cacheable: true
      loop: "{{ fleet.unpublished }}"
      loop_control:
        label: "{{ item.host }}"
      delegate_to: "{{ item.host }}"
      delegate_facts: true
      run_once: true

    - name: Print the fleet summary
      ansible.builtin.debug:
        msg: "{{ fleet.summary }}"
      run_once: true
"""

RETURN = r"""
summary:
  description: The fleet summary lines (see P(rdp.doctor.fleet_summary#filter)).
  returned: always
  type: list
  elements: str
  sample: ["rdp.doctor: 3 hosts - 2 healthy, 1 unreachable", "  win03  unreachable  not reached (timeout): ..."]
states:
  description: Each host's state in the summary (C(healthy), C(broken), C(unreachable), C(failed), C(skipped) ...).
  returned: always
  type: dict
  sample: {"win01": "healthy", "win03": "unreachable"}
details:
  description: Each remediated host's own lines, prefixed with its name (what changed, what is manual, what is left); none for a compliant host.
  returned: always
  type: list
  elements: str
  sample: ["win01: changed: 1 operation(s) applied and verified", "win01:   applied registry_value nla: False -> True"]
print_now:
  description: Whether to print the summary at this batch (always true without O(batches)).
  returned: always
  type: bool
unpublished:
  description:
    - The results Ansible did not publish, one item per host - C(host) and C(results) (C(rdp_doctor_host_state),
      C(rdp_doctor_facts), C(rdp_doctor_probe), C(rdp_doctor_findings)). Empty on a run where no diagnose task failed.
  returned: always
  type: list
  elements: dict
  sample: [{"host": "win03", "results": {"rdp_doctor_host_state": {"state": "unreachable", "msg": "...", "error": null},
           "rdp_doctor_facts": {}, "rdp_doctor_probe": null, "rdp_doctor_findings": []}}]
"""
