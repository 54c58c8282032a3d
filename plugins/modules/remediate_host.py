#!/usr/bin/python
# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Documentation of ``rdp.doctor.remediate_host`` (an action plugin: plugins/action/remediate_host.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: remediate_host
short_description: Plan every RDP fix a host needs with the collection's modules, apply them in one round trip, verify
version_added: 0.2.0
author:
  - rdp.doctor contributors (!UNKNOWN)
description:
  - The task of the P(rdp.doctor.remediate#role) role. Takes the host's facts and findings (what
    P(rdp.doctor.diagnose#role) read) and/or a declared baseline, and plans the fixes with the planners of
    M(rdp.doctor.services), M(rdp.doctor.machinekeys), M(rdp.doctor.listener_certificate), M(rdp.doctor.tls_protocols),
    M(rdp.doctor.credssp), M(rdp.doctor.listener_security), M(rdp.doctor.session_limits) and M(rdp.doctor.firewall) -
    exactly as each module would plan them alone.
  - The plans are combined into one (services restarted once, irreversible operations last, two modules asking for
    different values of one setting refused) and applied in one run of the C(apply_rdp_changes) host script.
  - After the change the host is read again and probed again from the controller. When a probe step that passed
    before fails now (the client's view got worse), the applied operations are undone and the task fails.
  - A change Windows reads only at boot (Schannel, CredSSP) is reported with RV(reboot_required); the host keeps running.
    With O(reboot=true) a C(host_restart) operation (C(shutdown.exe /r) after O(reboot_delay) seconds) goes last into the
    same apply, and the task waits until the host reports a new boot (Win32_OperatingSystem LastBootUpTime) before it
    verifies; a host that does not answer within O(reboot_timeout) seconds fails.
  - A finding's fix never carries an opt-in - changes that lower security or can cut access need the role-wide
    O(allow_lockout) / O(allow_insecure), and O(write_local_policy) for values Group Policy owns.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
options:
  findings:
    description:
      - Findings of P(rdp.doctor.findings#filter) for this host. Each finding whose C(fix) names a module contributes
        that module's options; manual fixes are returned in RV(manual) and never applied.
    type: list
    elements: dict
    default: []
  baseline:
    description:
      - Settings to enforce whatever the findings say. Keys C(allow_connections), C(listener_enabled), C(security_layer),
        C(nla), C(min_encryption_level), C(port) (M(rdp.doctor.listener_security)), C(credssp)
        (M(rdp.doctor.credssp) C(allow_encryption_oracle)), C(tls12), C(disable_legacy_tls) (M(rdp.doctor.tls_protocols)),
        and C(firewall), C(session_limits), C(services) (a dict of that module's options).
    type: dict
    default: {}
  enabled:
    description: Switch per module (short name, for example C(credssp)); a module switched off is not planned. Default on.
    type: dict
    default: {}
  run_tags:
    description: The play's C(ansible_run_tags); a fix runs when C(all), C(rdp_doctor_fix) or C(rdp_doctor_fix_<module>) is selected.
    type: list
    elements: str
    default: [all]
  skip_tags:
    description: The play's C(ansible_skip_tags); C(rdp_doctor_fix_<module>) skips that fix.
    type: list
    elements: str
    default: []
  allow_lockout:
    description: Handed to every module that has it - RDP off, the Remote Desktop firewall group off, TermService stopped.
    type: bool
    default: false
  allow_insecure:
    description: Handed to every module that has it - NLA off, a weaker security layer, AllowEncryptionOracle vulnerable.
    type: bool
    default: false
  write_local_policy:
    description: Handed to every module that has it - write the local policy key when Group Policy owns a value (non-domain hosts).
    type: bool
    default: false
  verify:
    description: After applying, read the host again (one round trip) and probe it again; report RV(fixed) and RV(remaining).
    type: bool
    default: true
  accounts:
    description: Accounts the final read checks (as M(rdp.doctor.host_facts) O(rdp.doctor.host_facts#module:accounts)).
    type: list
    elements: str
    default: []
  probe_before:
    description: The probe result diagnose got before the change. Without it the change is verified by the read alone.
    type: raw
  probe_host:
    description: Name or address to probe after the change (what diagnose probed).
    type: str
  probe_port:
    description: Port to probe after the change. Default the listener's effective port from the final read.
    type: int
  probe_expected_address:
    description: The address the probe host must resolve to (what diagnose's probe compared).
    type: str
  probe_server_name:
    description: Name the listener certificate must be issued for.
    type: str
  probe_timeout:
    description: Connect and read timeout of the probe after the change, in seconds (0-300).
    type: float
    default: 5
  rollback_on_regression:
    description: Undo the applied operations and fail when a probe step that passed before fails after the change.
    type: bool
    default: true
  reboot:
    description:
      - Restart the host when the combined plan needs a reboot to take effect, in the same apply, and wait until it is back
        before verifying. Off, a needed reboot is only reported (RV(reboot_required)).
      - Ignored when nothing needs a reboot; never restarts in check mode (the plan then lists the C(host_restart) operation).
    type: bool
    default: false
  reboot_delay:
    description: Seconds between the apply and the restart (5-600); until then the restart can be cancelled on the host (C(shutdown.exe /a)).
    type: int
    default: 10
  reboot_timeout:
    description: Seconds to wait for the restarted host to answer with a new boot time (30-7200); the host fails when it does not.
    type: int
    default: 600
  validate_only:
    description:
      - Only check the options (every module's, from O(findings) and O(baseline)) and return; the host is neither read nor
        changed. The P(rdp.doctor.remediate#role) role runs this first, so a bad baseline fails before the host is read.
    type: bool
    default: false
  verdict:
    description:
      - Judge the host as the P(rdp.doctor.remediate#role) role does - publish its remediation record as the fact
        C(rdp_doctor_remediation) (see P(rdp.doctor.remediation_record#filter)) and fail the task, with the record's
        summary as the message, when a fix did not take, was refused or rolled back, the host could not be read, or
        (O(fail_on_remaining)) a finding a module should have fixed is still present.
      - Every host's record also goes into the run's records, for P(rdp.doctor.run_summary#module) (a failed task's
        facts are not published by Ansible; that module returns them for publishing).
    type: bool
    default: false
  fail_on_remaining:
    description: With O(verdict), fail a host that still has a finding a module should have fixed after the change.
    type: bool
    default: true
  use_role_variables:
    description:
      - Take every option the task does not set from the P(rdp.doctor.remediate#role) role's variables (C(rdp_doctor_baseline),
        the C(rdp_doctor_fix_<module>) switches as O(enabled), C(rdp_doctor_allow_lockout), C(rdp_doctor_allow_insecure),
        C(rdp_doctor_write_local_policy), C(rdp_doctor_remediate_verify), C(rdp_doctor_remediate_rollback_on_regression),
        C(rdp_doctor_remediate_fail_on_remaining), C(rdp_doctor_remediate_reboot), C(rdp_doctor_remediate_reboot_delay),
        C(rdp_doctor_remediate_reboot_timeout), and the diagnose role's C(rdp_doctor_accounts), C(rdp_doctor_probe_host),
        C(rdp_doctor_probe_server_name), C(rdp_doctor_probe_timeout)), the run's tags, and - unless O(validate_only) -
        what P(rdp.doctor.diagnose#role) published for the host as O(facts), O(findings) (when
        C(rdp_doctor_remediate_from_findings)) and O(probe_before) (when C(rdp_doctor_diagnose_probe)).
      - A host diagnose could not read in this run is then left alone (the task is skipped, or with O(verdict) failed).
      - "Why: every templated argument of a per-host task costs each host's worker process a Jinja compilation."
    type: bool
    default: false
seealso:
  - module: rdp.doctor.host_facts
  - module: rdp.doctor.probe
"""

EXAMPLES = r"""
- name: Fix what diagnose found, verify, roll back on regression
  rdp.doctor.remediate_host:
    facts: "{{ rdp_doctor_facts }}"
    findings: "{{ rdp_doctor_findings }}"
    probe_before: "{{ rdp_doctor_probe }}"
    probe_host: "{{ ansible_host }}"

- name: Enforce a baseline, NLA and TLS only
  rdp.doctor.remediate_host:
    baseline:
      security_layer: tls
      nla: true
      session_limits:
        max_disconnection_time: 8h
"""

RETURN = r"""
changed:
  description: Whether the host was changed (in check mode, whether it would be).
  returned: always
  type: bool
outcome:
  description: >-
    C(compliant), C(check_mode), C(applied), C(refused), C(drift), C(rolled_back) (an operation failed, or the client's
    view got worse, and the change was undone), C(partial) (some operations are still applied, see RV(still_applied)),
    C(unverified); C(validated) with O(validate_only=true).
  returned: always
  type: str
fixes:
  description: The modules planned and the options each got (after switches and tags).
  returned: when the options were valid
  type: dict
operations:
  description: The combined plan; after an apply each operation also has its C(status), C(before), C(after) and C(error).
  returned: always
  type: list
  elements: dict
diff:
  description: Before and after, keyed by module.
  returned: always
  type: dict
manual:
  description: What no module changes - the findings' manual fixes and the settings Group Policy owns.
  returned: always
  type: list
  elements: dict
fixed:
  description: Ids of the findings (with a module fix) that the final read no longer shows.
  returned: when applied and verified
  type: list
  elements: str
remaining:
  description: Ids of the findings (with a module fix) that the final read still shows.
  returned: when applied and verified
  type: list
  elements: str
findings_after:
  description: Every finding id of the final read and probe.
  returned: when applied and verified
  type: list
  elements: str
probe_after:
  description: The probe's verdict and step verdicts after the change.
  returned: when applied, verified and probed
  type: dict
regressions:
  description: Probe steps that passed before and fail after, as C(step - before -> after).
  returned: when applied and verified
  type: list
  elements: str
still_applied:
  description: Ids of the operations a failed apply left in place (empty when everything was undone).
  returned: when RV(outcome) is C(rolled_back) or C(partial)
  type: list
  elements: str
rollback:
  description: The rollback's outcome, its operations, and the operations that could not be undone (C(not_undone)).
  returned: when RV(outcome) is C(rolled_back) after a regression
  type: dict
reboot_required:
  description: A change takes effect only after Windows restarts (false once O(reboot=true) restarted the host).
  returned: always
  type: bool
rebooted:
  description: The task restarted the host (O(reboot=true)) and saw it back with a new boot time.
  returned: when the host was planned
  type: bool
reboot_seconds:
  description: Seconds from the apply until the restarted host answered again.
  returned: when rebooted
  type: int
  sample: 48
warnings:
  description: Warnings of the modules' planners, prefixed with the module.
  returned: always
  type: list
  elements: str
msg:
  description: One line saying what was (or would be) changed, or why not.
  returned: always
  type: str
"""
