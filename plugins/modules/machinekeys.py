# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/machinekeys.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: machinekeys
short_description: Repair the RSA MachineKeys folder and the RDP listener's key file, smallest step first
version_added: 0.1.0
description:
  - Follows the safer procedure of the fact sheet, one step per O(repair) value, the targeted ones first.
  - >-
      O(repair=listener_key) - the ACL of the self-signed listener's key file
      (C(MachineKeys\f686aace6942fb7f7ceb231212eef4a4_<MachineGuid>)) back to SYSTEM Full, Administrators
      Full, NETWORK SERVICE Read, on that one file. A key file that is missing or empty cannot be repaired:
      the module regenerates instead (as O(repair=regenerate)) and says so.
  - >-
      O(repair=regenerate) - when the self-signed certificate or its key is broken (key file missing, empty or
      unreadable, certificate expired): remove the certificate from C(Cert:\LocalMachine\Remote Desktop) and
      its key file (copied with its ACL to C(C:\ProgramData\rdp.doctor\backup\machinekeys) first, so it can be
      put back), delete a binding that names it, restart SessionEnv, which makes a new pair. A healthy pair is
      left alone.
  - O(repair=acl) - the folder's own ACL back to its documented default
    C(O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)) (KB278381) - this folder only, never a recursive rewrite
    of the key files.
  - >-
      O(repair=rename_folder) - the last resort: rename the folder to C(MachineKeys.rdpdoctor-<UTC
      yyyyMMddTHHmmssZ>), only with O(rename_folder=true) and only when the folder or the listener key is
      broken; refused while other machine certificates keep their keys there (a WinRM HTTPS listener, IIS, RD
      Gateway... - every certificate of My with a legacy key file) unless O(force=true). Windows creates a new
      folder at the next boot - RV(reboot_required=true).
  - O(state=restored) with O(restore_from) renames a folder this module renamed back to MachineKeys.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  repair:
    description:
      - C(listener_key), C(regenerate), C(acl) or C(rename_folder) (see the description). Required with O(state=repaired).
    type: str
    choices: [listener_key, regenerate, acl, rename_folder]
  state:
    description:
      - C(repaired) applies O(repair); C(restored) undoes a rename (O(restore_from)).
    type: str
    default: repaired
    choices: [repaired, restored]
  rename_folder:
    description:
      - Allow O(repair=rename_folder). Renaming detaches the private key of every legacy-CSP machine certificate.
    type: bool
    default: false
  force:
    description:
      - Rename even though other machine certificates keep their keys in the folder (they need a PFX re-import afterwards).
        Over a WinRM HTTPS connection this can cut the connection the module runs on.
    type: bool
    default: false
  restore_from:
    description:
      - For O(state=restored) - the name this module gave the folder, C(MachineKeys.rdpdoctor-<yyyyMMddTHHmmssZ>) (a name,
        not a path). Only while no new MachineKeys folder exists - apply checks every precondition before it writes, so it
        cannot swap two folders in one run.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
notes:
  - Backups - a removed key file is kept in C(C:\ProgramData\rdp.doctor\backup\machinekeys) with its ACL;
    the apply result names the copy. A renamed folder keeps every key; RV(warnings) names the
    O(restore_from) value that undoes it.
  - Sources - KB278381 (default MachineKeys permissions), the Azure event-id and internal-error articles
    (the listener key file, NETWORK SERVICE read, restart SessionEnv), MSRD-Collect (the f686aace... file
    name); the folder rename is a community fix no Microsoft document describes. See docs/remediation.md.
seealso:
  - module: rdp.doctor.host_facts
  - plugin: rdp.doctor.findings
    plugin_type: filter
    description: Findings name this module, with parameters, as their fix.
  - module: rdp.doctor.listener_certificate
"""

EXAMPLES = r"""
- name: Let NETWORK SERVICE read the listener key again (RDP-CERT-KEY-UNREADABLE, RDP-LISTENER-KEY-BROKEN)
  rdp.doctor.machinekeys:
    repair: listener_key

- name: Restore the folder's default permissions (RDP-MACHINEKEYS-ACL)
  rdp.doctor.machinekeys:
    repair: acl

- name: Last resort - rename the folder aside
  rdp.doctor.machinekeys:
    repair: rename_folder
    rename_folder: true
  register: renamed

- name: Undo the rename
  rdp.doctor.machinekeys:
    state: restored
    restore_from: MachineKeys.rdpdoctor-20261121T070000Z
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
    before: {folder_sddl: "O:SYG:SYD:PAI(A;;FA;;;BA)"}
    after: {folder_sddl: "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"}
operations:
  description:
    - The plan - primitive operations in the order they are applied, each with C(id), C(kind), C(target),
      C(expect) (the state it must find), C(set) (the state it writes), C(reversible) and C(why); after an
      apply also C(status), C(before), C(after) and C(error). See docs/dev/contracts.md section 10.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: op01, kind: path_acl, target: {path: "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\MachineKeys"},
       expect: {sddl: "O:SYG:SYD:PAI(A;;FA;;;BA)"}, set: {sddl: "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"}, reversible: true,
       why: "KB278381 default ACL on the folder itself, never its files"}
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
