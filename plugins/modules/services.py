# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/services.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: services
short_description: Start mode, state and account of the Remote Desktop services
version_added: 0.1.0
description:
  - >-
      Manages C(TermService) (Remote Desktop Services), C(SessionEnv) (Remote Desktop Configuration, which
      makes and renews the self-signed listener certificate) and C(UmRdpService) (UserMode Port Redirector):
      start mode, state and TermService's logon account.
  - All three are Manual by default ("Do not disable"). A Disabled service is set to Manual before it is
    started - Windows refuses to start a disabled service (error 1058).
  - TermService runs as C(NT Authority\NetworkService) (start error 1069 otherwise);
    O(termservice.account=network_service) restores it, and a running TermService is restarted once so the
    account takes effect.
  - Order - UmRdpService depends on TermService. Stopping TermService stops UmRdpService first; a
    TermService restart is one C(Restart-Service), which brings back the dependents it stopped; starting
    UmRdpService while TermService is stopped starts TermService first.
  - >-
      Stopping or disabling TermService ends every RDP connection: refused unless O(allow_lockout=true). A
      TermService restart drops the connected RDP sessions into the disconnected state (a warning says so).
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  termservice:
    description: TermService (Remote Desktop Services).
    type: dict
    suboptions:
      start_mode:
        description: Start mode; leave out to keep it. C(disabled) needs O(allow_lockout=true).
        type: str
        choices: [auto, manual, disabled]
      state:
        description:
          - C(started), C(stopped) (needs O(allow_lockout=true)) or C(restarted) (always restarts - not idempotent).
        type: str
        choices: [started, stopped, restarted]
      account:
        description: The logon account; C(network_service) = C(NT Authority\NetworkService).
        type: str
        choices: [network_service]
  sessionenv:
    description: SessionEnv (Remote Desktop Configuration).
    type: dict
    suboptions:
      start_mode:
        description: Start mode; leave out to keep it.
        type: str
        choices: [auto, manual, disabled]
      state:
        description: C(started), C(stopped) or C(restarted).
        type: str
        choices: [started, stopped, restarted]
  umrdpservice:
    description: UmRdpService (Remote Desktop Services UserMode Port Redirector).
    type: dict
    suboptions:
      start_mode:
        description: Start mode; leave out to keep it.
        type: str
        choices: [auto, manual, disabled]
      state:
        description: C(started), C(stopped) or C(restarted). Starting it starts TermService first.
        type: str
        choices: [started, stopped, restarted]
  allow_lockout:
    description: Allow stopping or disabling TermService, which ends every RDP connection to the host.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
notes:
  - Sources - Microsoft's service guidelines for Windows Server (default start modes), the Azure article on
    Remote Desktop Services not starting (account, errors 1058/1069, SCM events); see docs/remediation.md.
  - The module never touches MpsSvc or BFE (the firewall services).
seealso:
  - module: rdp.doctor.host_facts
  - plugin: rdp.doctor.findings
    plugin_type: filter
    description: Findings name this module, with parameters, as their fix.
"""

EXAMPLES = r"""
- name: TermService back to its defaults and running (the RDP-SERVICE-DISABLED fix)
  rdp.doctor.services:
    termservice:
      start_mode: manual
      state: started
      account: network_service

- name: Restart the Remote Desktop Configuration service
  rdp.doctor.services:
    sessionenv:
      state: restarted

- name: Stop RDP on purpose (maintenance)
  rdp.doctor.services:
    termservice:
      state: stopped
    allow_lockout: true
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
    before: {TermService: {start_mode: Disabled, state: Stopped}}
    after: {TermService: {start_mode: Manual, state: Running}}
operations:
  description:
    - The plan - primitive operations in the order they are applied, each with C(id), C(kind), C(target),
      C(expect) (the state it must find), C(set) (the state it writes), C(reversible) and C(why); after an
      apply also C(status), C(before), C(after) and C(error). See docs/dev/contracts.md section 10.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: op01, kind: service_config, target: {name: TermService}, expect: {start_mode: Disabled}, set: {start_mode: Manual},
       reversible: true, why: "start mode Disabled -> Manual"}
    - {id: op02, kind: service_control, target: {name: TermService}, expect: {state: Stopped}, set: {action: start},
       reversible: true, why: "TermService: start"}
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
