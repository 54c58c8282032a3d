# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/firewall.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: firewall
short_description: The Windows Defender Firewall rules that let Remote Desktop in
version_added: 0.1.0
description:
  - Enables (or, with O(allow_lockout=true), disables) the Remote Desktop rule group, matched by its resource string
    C(@FirewallAPI.dll,-28752) and the rules' stable names (C(RemoteDesktop-UserMode-In-TCP), C(-UDP)), never by the
    localized display name.
  - For a non-default port it creates collection-owned rules C(rdp.doctor-RemoteDesktop-Custom-TCP) and C(-UDP) (the
    built-in rules only cover 3389), optionally scoped to O(remote_addresses).
  - Never touches a rule outside the Remote Desktop group or its own, and never stops the firewall service (MpsSvc)
    or the Base Filtering Engine (BFE).
  - A Group Policy C(Allow inbound Remote Desktop exceptions) set to Disabled blocks RDP whatever the local rules say;
    it is reported in RV(manual) with its policy key. Rules delivered by Group Policy are reported, not changed.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  state:
    description:
      - V(enabled) - the rules for O(protocols) on O(port) let RDP in. V(disabled) - every Remote Desktop group rule is
        disabled and the collection's own rules are deleted; needs O(allow_lockout=true).
    type: str
    choices: [enabled, disabled]
    default: enabled
  profiles:
    description: Firewall profiles of the collection-owned custom-port rules.
    type: list
    elements: str
    choices: [domain, private, public]
    default: [domain, private, public]
  protocols:
    description: Which of the user-mode rules (TCP, UDP) to manage.
    type: list
    elements: str
    choices: [tcp, udp]
    default: [tcp, udp]
  port:
    description:
      - The RDP port the rules must open. Defaults to the host's effective C(PortNumber). 3389 uses the built-in rules;
        any other port the collection-owned ones.
    type: int
  remote_addresses:
    description:
      - Scope of the collection-owned rules (addresses, ranges, subnets or keywords such as C(LocalSubnet)).
      - The built-in rules are scoped only with O(scope_builtin_rules=true).
    type: list
    elements: str
  scope_builtin_rules:
    description: Also apply O(remote_addresses) to the built-in Remote Desktop rules.
    type: bool
    default: false
  allow_lockout:
    description: Allow O(state=disabled), which closes the firewall to RDP.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
seealso:
  - module: rdp.doctor.listener_security
  - module: rdp.doctor.host_facts
"""

EXAMPLES = r"""
- name: Enable the Remote Desktop rules (fixes RDP-FIREWALL-RULES-DISABLED)
  rdp.doctor.firewall:
    state: enabled

- name: Open the custom RDP port for the admin subnet only (fixes RDP-PORT-NOT-ALLOWED)
  rdp.doctor.firewall:
    port: 3390
    remote_addresses: [10.0.0.0/24]
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
