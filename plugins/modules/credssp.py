# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/credssp.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: credssp
short_description: CredSSP Encryption Oracle Remediation (AllowEncryptionOracle), patch-aware
version_added: 0.1.0
description:
  - Sets C(AllowEncryptionOracle) (CVE-2018-0886) under
    C(HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Policies\System\CredSSP\Parameters) - V(force_updated_clients)
    (0), V(mitigated) (1) or V(vulnerable) (2). Windows reads it at boot - RV(reboot_required) is true after a change.
  - V(vulnerable) needs O(allow_insecure=true).
  - Warns when the host itself lacks the CredSSP update (the real fix is patching both sides), when the value is above
    the CIS baseline 18.9.4.1 (V(force_updated_clients)), and on domain members - the C(Encryption Oracle Remediation)
    GPO writes the same key and its next refresh may overwrite the value.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  allow_encryption_oracle:
    description:
      - V(force_updated_clients) blocks unpatched clients; V(mitigated) (the Windows default since May 2018) lets them
        connect to this host but not this host's outgoing connections to unpatched servers; V(vulnerable) allows both.
    type: str
    required: true
    choices: [force_updated_clients, mitigated, vulnerable]
  allow_insecure:
    description: Allow V(vulnerable).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
seealso:
  - module: rdp.doctor.host_facts
"""

EXAMPLES = r"""
- name: Back to the Windows default (fixes RDP-CREDSSP-FORCE-UPDATED / RDP-CREDSSP-VULNERABLE)
  rdp.doctor.credssp:
    allow_encryption_oracle: mitigated
  register: credssp

- name: Reboot when Windows needs it for the change
  ansible.windows.win_reboot:
  when: credssp.reboot_required
"""

RETURN = r"""
changed:
  description: Whether the host was changed (in check mode, whether it would be).
  returned: always
  type: bool
outcome:
  description: >-
    C(compliant) (nothing to do), C(check_mode) (the plan, nothing sent), C(applied) (changed and verified),
    C(refused) (a safety guard blocked it, nothing sent), C(drift) (the host kept changing, nothing applied),
    C(rolled_back) / C(partial) (an operation failed; partial = some are still applied, see RV(still_applied)),
    C(unverified) (applied, but the re-read does not show it).
  returned: always
  type: str
  sample: applied
diff:
  description: The settings the module manages, before and after (in the module's option vocabulary).
  returned: always
  type: dict
  contains:
    before:
      description: The host's values before.
      type: dict
      returned: always
    after:
      description: The values after the change (equal to before for what was not changed).
      type: dict
      returned: always
operations:
  description:
    - The plan - primitive operations in order, each with C(id), C(kind), C(target), C(expect) (the value it expected to
      find), C(set) (what it writes), C(reversible) and C(why).
    - After an apply each also has C(status) (C(applied), C(failed), C(rolled_back), C(rollback_failed), C(not_run),
      C(not_reversible)), C(before), C(after) (the host's re-read) and C(error).
  returned: always
  type: list
  elements: dict
  sample:
    - id: op01
      kind: registry_value
      target: {path: 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp', name: SecurityLayer}
      expect: {present: true, type: DWORD, value: 0}
      set: {present: true, type: DWORD, value: 2}
      reversible: true
      why: "security_layer: rdp -> tls"
      status: applied
manual:
  description: What the module will not change and why, for example a value Group Policy owns (with its policy key).
  returned: always
  type: list
  elements: dict
  sample:
    - setting: security_layer
      reason: Group Policy sets this value (the policy wins over the local value); change the policy in the domain GPO
      policy_key: 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services\SecurityLayer'
warnings:
  description: What the user should know about the plan (a GPO that may revert it, a lowered baseline, a reboot).
  returned: always
  type: list
  elements: str
restart:
  description: Services the plan restarts (already part of RV(operations)).
  returned: always
  type: list
  elements: str
reboot_required:
  description: The change takes effect only after Windows restarts.
  returned: always
  type: bool
still_applied:
  description: Ids of the operations a failed apply left in place (empty when everything was undone).
  returned: when RV(outcome) is C(rolled_back) or C(partial)
  type: list
  elements: str
msg:
  description: One line saying what was (or would be) changed, or why not.
  returned: always
  type: str
"""
