# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/tls_protocols.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tls_protocols
short_description: Schannel TLS protocol versions the RDP listener can use
version_added: 0.1.0
description:
  - Sets the Schannel protocol state under
    C(HKLM\SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL\Protocols\<protocol>\Server)
    (C(Enabled) and C(DisabledByDefault), REG_DWORD). The RDP listener uses the Server side; O(client=true)
    sets the Client side too.
  - O(tls12=enabled) writes C(Enabled=1) and C(DisabledByDefault=0) under TLS 1.2 when TLS 1.2 is not
    enabled (only the values that differ). A host whose OS default already enables TLS 1.2 is left alone.
  - O(disable_legacy) writes C(Enabled=0) and C(DisabledByDefault=1) under each named legacy protocol, only
    with O(allow_legacy_disable=true) - a client that speaks only that protocol can no longer connect - and
    never when the listener would be left with no TLS version it can use (TLS 1.0, 1.1 or 1.2).
  - Schannel reads these values when it starts - every change returns RV(reboot_required=true). Rebooting is
    up to the playbook.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  tls12:
    description: C(enabled) - make sure TLS 1.2 is enabled (the fix for legacy-only hosts and for hosts with every TLS version off).
    type: str
    choices: [enabled]
  disable_legacy:
    description:
      - Legacy versions to disable. Needs O(allow_legacy_disable=true).
    type: list
    elements: str
    choices: [ssl3.0, tls1.0, tls1.1]
  allow_legacy_disable:
    description:
      - Allow O(disable_legacy). Clients (and tools) that need the disabled versions fail to connect after the reboot.
    type: bool
    default: false
  client:
    description: Also set the Client side of each protocol (the host's outgoing TLS).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
notes:
  - Sources - Microsoft's TLS registry settings reference (values and their meaning), KB3080079 (TLS 1.1/1.2
    for RDP on Server 2008 R2), the Azure RDP troubleshooting articles (Schannel event 36871 when every
    protocol is disabled); see docs/remediation.md.
  - TLS 1.3 is not used by the RDP listener as far as Microsoft documents; the module does not manage it.
seealso:
  - module: rdp.doctor.host_facts
  - plugin: rdp.doctor.findings
    plugin_type: filter
    description: Findings name this module, with parameters, as their fix.
"""

EXAMPLES = r"""
- name: TLS 1.2 on (a legacy host that only has TLS 1.0)
  rdp.doctor.tls_protocols:
    tls12: enabled
  register: tls

- name: Legacy versions off once every client speaks TLS 1.2
  rdp.doctor.tls_protocols:
    tls12: enabled
    disable_legacy: [tls1.0, tls1.1, ssl3.0]
    allow_legacy_disable: true

- name: Reboot when Schannel changed
  ansible.windows.win_reboot:
  when: tls.reboot_required
"""

RETURN = r"""
changed:
  description: Whether the host was (or, in check mode, would be) changed.
  returned: always
  type: bool
outcome:
  description:
    - C(compliant) (nothing to do), C(check_mode) (planned, nothing sent), or the apply outcome - C(applied),
      C(drift) (the host changed since it was read; nothing applied), C(rolled_back) (an operation failed and
      every applied one was undone) or C(partial) (an undo failed; RV(msg) names what is still applied).
  returned: always
  type: str
  sample: applied
diff:
  description: The managed settings before and after (only those the task asked about).
  returned: always
  type: dict
  contains:
    before: {description: "Before the change.", type: dict, returned: always}
    after: {description: "After the change (as planned in check mode).", type: dict, returned: always}
  sample:
    before: {"TLS 1.2 Server": disabled}
    after: {"TLS 1.2 Server": enabled}
operations:
  description:
    - The plan - primitive operations in the order they are applied, each with C(id), C(kind), C(target),
      C(expect) (the state it must find), C(set) (the state it writes), C(reversible) and C(why); after an
      apply also C(status), C(before), C(after) and C(error). See docs/dev/contracts.md section 10.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: op01, kind: registry_value, target: {path: "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\SecurityProviders\\SCHANNEL\\Protocols\\TLS 1.2\\Server",
       name: Enabled}, expect: {present: true, type: DWORD, value: 0}, set: {present: true, type: DWORD, value: 1}, reversible: true,
       why: "TLS 1.2 Server: Enabled=1"}
reboot_required:
  description: The change takes effect only after a reboot.
  returned: always
  type: bool
warnings:
  description: What the user should know about the plan (sessions that will drop, backups kept, ...).
  returned: always
  type: list
  elements: str
manual:
  description:
    - What the module will not change and why, each C(setting), C(reason) and C(policy_key) - for example a value
      Group Policy owns, which a local write could not fix.
  returned: always
  type: list
  elements: dict
refused:
  description: Changes a safety guard refused, each naming the option that allows it. A task with refusals fails and changes nothing.
  returned: always
  type: list
  elements: str
restart:
  description: Services the plan restarts (already part of RV(operations)).
  returned: always
  type: list
  elements: str
msg:
  description: A one-line summary, or why the task failed.
  returned: always
  type: str
"""
