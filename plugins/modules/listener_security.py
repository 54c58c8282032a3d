# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/listener_security.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: listener_security
short_description: Remote Desktop on/off, the RDP-Tcp listener, security layer, NLA, encryption level and port
version_added: 0.1.0
description:
  - Sets the Remote Desktop settings that decide whether a client gets in and how it must authenticate -
    C(fDenyTSConnections), C(RDP-Tcp) C(fEnableWinStation), C(SecurityLayer), C(UserAuthentication) (NLA),
    C(MinEncryptionLevel), C(LanAdapter) and C(PortNumber) - writing only what differs from what is asked.
  - Group Policy aware - a setting whose effective value comes from Group Policy is not written locally (Windows would
    ignore it); it is reported in RV(manual) with its policy key. O(write_local_policy=true) writes the local policy
    key instead, on hosts that are not domain members.
  - Safe by default - turning Remote Desktop or the listener off needs O(allow_lockout=true), lowering the security
    layer, turning NLA off or choosing the C(low) encryption level needs O(allow_insecure=true), moving the port needs
    O(allow_port_change=true). A refused change fails the task and nothing is sent to the host.
  - A port change opens the new port first with collection-owned firewall rules (C(rdp.doctor-RemoteDesktop-Custom-TCP),
    C(-UDP)), then writes C(PortNumber) and restarts TermService so it listens there; it never edits the built-in rules.
    Cloud security groups, network firewalls and saved C(.rdp) files must follow (the module warns).
  - O(revert_after) makes a change temporary - a scheduled task on the host puts the previous values back at the
    deadline, even if the controller is gone (for "downgrade, connect once, then revert").
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  allow_connections:
    description:
      - Allow remote connections (C(fDenyTSConnections=0)); V(false) turns Remote Desktop off and needs O(allow_lockout=true).
    type: bool
  listener_enabled:
    description:
      - The RDP-Tcp listener on (C(fEnableWinStation=1)); V(false) needs O(allow_lockout=true).
    type: bool
  security_layer:
    description:
      - C(SecurityLayer) - V(rdp) (0, native RDP security), V(negotiate) (1) or V(tls) (2).
      - Lowering it (V(tls) to V(negotiate) or V(rdp)) needs O(allow_insecure=true).
    type: str
    choices: [rdp, negotiate, tls]
  nla:
    description:
      - Require Network Level Authentication (C(UserAuthentication=1)); V(false) needs O(allow_insecure=true).
    type: bool
  min_encryption_level:
    description:
      - C(MinEncryptionLevel) - V(low) (1), V(client_compatible) (2), V(high) (3) or V(fips) (4). It only affects the
        native RDP security layer. V(low) needs O(allow_insecure=true) and is invalid with the TLS security layer.
    type: str
    choices: [low, client_compatible, high, fips]
  lan_adapter:
    description:
      - C(LanAdapter) - V(0) listens on every network adapter; another value binds RDP to one adapter and needs
        O(allow_lockout=true).
    type: int
  port:
    description:
      - The TCP/UDP port RDP listens on (C(PortNumber)), 1-65535. A change needs O(allow_port_change=true); it adds
        collection-owned firewall rules for a non-default port (and removes them when the port goes back to 3389) and
        restarts TermService.
    type: int
  write_local_policy:
    description:
      - When Group Policy sets a value, write the local policy key (C(HKLM\SOFTWARE\Policies\...)) instead of
        reporting it as manual. Only on hosts that are not domain members (a domain GPO would overwrite it).
    type: bool
    default: false
  revert_after:
    description:
      - Make the change temporary - after this long (V(30m), V(2h), V(90s), V(1d); 1m to 7d) a scheduled task on the host
        restores the previous values, then deletes itself. Not with O(port).
    type: str
  allow_lockout:
    description: Allow changes that can cut remote access (Remote Desktop off, listener off, one adapter only).
    type: bool
    default: false
  allow_insecure:
    description: Allow changes that weaken security (lower security layer, NLA off, C(low) encryption).
    type: bool
    default: false
  allow_port_change:
    description: Allow moving RDP to another port.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
seealso:
  - module: rdp.doctor.host_facts
  - module: rdp.doctor.firewall
  - module: rdp.doctor.credssp
"""

EXAMPLES = r"""
- name: Require TLS and NLA (fixes RDP-SECURITY-LAYER-RDP and RDP-NLA-DISABLED)
  rdp.doctor.listener_security:
    security_layer: tls
    nla: true

- name: Allow Remote Desktop and turn the listener on, reusing the facts diagnose read (no extra read)
  rdp.doctor.listener_security:
    allow_connections: true
    listener_enabled: true
    facts: "{{ ansible_facts.rdp_doctor }}"

- name: Let an old client in once - NLA off for 30 minutes, then back on by itself
  rdp.doctor.listener_security:
    nla: false
    allow_insecure: true
    revert_after: 30m

- name: Move RDP to 3390 (opens 3390 in Windows Firewall first; update cloud security groups too)
  rdp.doctor.listener_security:
    port: 3390
    allow_port_change: true
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
