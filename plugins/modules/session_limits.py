# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/session_limits.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: session_limits
short_description: Session time limits, connection limits and ghost sessions of the RDP listener
version_added: 0.1.0
description:
  - Sets the Remote Desktop session limits - MaxDisconnectionTime, MaxIdleTime, MaxConnectionTime,
    fResetBroken, fSingleSessionPerUser and MaxInstanceCount - and lists or logs off sessions that stayed
    disconnected too long (ghost sessions that hold the two administrative sessions).
  - Compares with the effective value (Group Policy, local or default) and writes only what differs.
  - Where it writes - a value not set by policy is written to the listener,
    C(HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp) (fSingleSessionPerUser to
    C(...\Terminal Server)). Windows uses RDP-Tcp's time limits and fResetBroken only when the listener
    overrides the user settings, so each of them is written together with its C(fInherit*) value set to 0 -
    C(fInheritMaxDisconnectionTime), C(fInheritMaxIdleTime), C(fInheritMaxSessionTime) (for
    MaxConnectionTime), C(fInheritResetBroken). With the default C(fInherit*=1) the RDP-Tcp value has no
    effect.
  - A value Group Policy sets (C(HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services)) wins over
    the local one, so it is never written locally - the module reports it under RV(manual) with the policy
    key and changes nothing for it. O(write_local_policy=true) writes the policy value itself, on hosts that
    are not domain members only.
  - Sessions - O(logoff_disconnected_older_than) and O(end_disconnected_sessions) choose disconnected user
    sessions and list them in the diff; only O(logoff_sessions=true) logs them off (irreversible, applied
    last). Active sessions, the console, session 0 and the listener are never logged off.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  max_disconnection_time:
    description:
      - How long a disconnected session is kept (MaxDisconnectionTime). A duration - C(15m), C(2h), C(1d), C(30s),
        C(500ms), combined like C(1h30m) - or whole milliseconds; C(0) means never. At most 4294967295 ms (about 49 days).
      - CIS recommends 1 minute (C(60000)); diagnose proposes 8 hours for ghost sessions.
    type: raw
  max_idle_time:
    description:
      - How long an active session may stay idle before it is disconnected (MaxIdleTime). Same format as
        O(max_disconnection_time). CIS recommends at most C(15m), not C(0).
    type: raw
  max_connection_time:
    description:
      - How long an active session may last (MaxConnectionTime). Same format as O(max_disconnection_time).
    type: raw
  reset_broken:
    description:
      - End (log off) a session when a limit is reached instead of disconnecting it (fResetBroken).
    type: bool
  single_session_per_user:
    description:
      - Restrict each user to one session (fSingleSessionPerUser); a reconnect takes over the existing session.
    type: bool
  max_instance_count:
    description:
      - Maximum number of concurrent connections (MaxInstanceCount), C(1) to C(999999), or C(unlimited)
        (the local value 4294967295, which is also accepted as a number; Group Policy spells it 999999).
      - Remote Desktop for Administration allows two sessions whatever this says.
    type: raw
  write_local_policy:
    description:
      - When Group Policy sets a value, write the policy value under C(...\Policies\Microsoft\Windows NT\Terminal Services)
        instead of reporting it as manual. Only on hosts that are not domain members (a domain GPO would overwrite it).
    type: bool
    default: false
  logoff_disconnected_older_than:
    description:
      - Choose the user sessions disconnected for at least this long (same format as O(max_disconnection_time)).
      - They are listed in the diff; they are logged off only with O(logoff_sessions=true).
    type: raw
  end_disconnected_sessions:
    description:
      - Choose disconnected sessions by id (what the RDP-GHOST-SESSIONS finding proposes). An id that is not a
        disconnected user session (active, console, 0, 65536, gone) is skipped with a warning.
    type: list
    elements: int
  logoff_sessions:
    description:
      - Log off the sessions chosen by O(logoff_disconnected_older_than) or O(end_disconnected_sessions). Irreversible -
        unsaved work in those sessions is lost.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
notes:
  - The values take effect for new sessions; nothing is restarted and no reboot is needed.
  - Sources - TerminalServer.admx (policy names, units in milliseconds, 999999 = unlimited), MSRD-Collect
    (which reads each RDP-Tcp limit with its fInherit* flag); see docs/remediation.md.
  - A second run with the same options changes nothing.
seealso:
  - module: rdp.doctor.host_facts
  - plugin: rdp.doctor.findings
    plugin_type: filter
    description: Findings name this module, with parameters, as their fix.
"""

EXAMPLES = r"""
- name: End ghost sessions - disconnected sessions are kept 8 hours, the older ones are listed
  rdp.doctor.session_limits:
    max_disconnection_time: 8h
    logoff_disconnected_older_than: 1d

- name: ...and logged off
  rdp.doctor.session_limits:
    max_disconnection_time: 8h
    logoff_disconnected_older_than: 1d
    logoff_sessions: true

- name: CIS-style limits
  rdp.doctor.session_limits:
    max_idle_time: 15m
    max_disconnection_time: 1m
    single_session_per_user: true

- name: No connection limit; on a workgroup host whose local policy sets one, write the policy value
  rdp.doctor.session_limits:
    max_instance_count: unlimited
    write_local_policy: true
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
    before: {max_disconnection_time: 0, disconnected_sessions: [{id: 3, user: WIN01\\bob, state: Disconnected}]}
    after: {max_disconnection_time: 28800000, disconnected_sessions: []}
operations:
  description:
    - The plan - primitive operations in the order they are applied, each with C(id), C(kind), C(target),
      C(expect) (the state it must find), C(set) (the state it writes), C(reversible) and C(why); after an
      apply also C(status), C(before), C(after) and C(error). See docs/dev/contracts.md section 10.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: op01, kind: registry_value, target: {path: "HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server\\WinStations\\RDP-Tcp",
       name: MaxDisconnectionTime}, expect: {present: true, type: DWORD, value: 0}, set: {present: true, type: DWORD, value: 28800000},
       reversible: true, why: "MaxDisconnectionTime: 0 -> 28800000"}
    - {id: op03, kind: session_logoff, target: {session_id: 3}, expect: {user: WIN01\\bob, state: Disconnected,
       logon_time: "2026-11-09T01:00:00Z"}, set: {}, reversible: false, why: "disconnected for 1036800 s"}
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
