# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.machinekeys``: the RSA MachineKeys folder and the listener's key file (pure).

The safer procedure of ``windows-rdp-facts.md`` section 6, one step per ``repair`` value, smallest first:

``listener_key``
    The self-signed listener's key file ``MachineKeys\\f686aace6942fb7f7ceb231212eef4a4_<MachineGuid>``
    [S2][S26]: its ACL back to SYSTEM Full / Administrators Full / NETWORK SERVICE Read on that one file
    (Microsoft's grants [S2][S3], without the recursive rewrite). A key file that is missing or empty has
    nothing left to repair: the plan regenerates instead (below) and says so.
``regenerate``
    Remove the listener's self-signed certificate from ``Cert:\\LocalMachine\\Remote Desktop`` and its key
    file (copied with its ACL to :data:`BACKUP_DIR` first, so the removal can be undone), delete a binding
    that names it, and restart SessionEnv, which makes a new pair [S2][S3][S27]. Only when the pair is
    broken (key missing, empty, unreadable, certificate expired): a healthy pair is left alone.
``acl``
    The folder's own ACL back to the documented default ``O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)``
    (KB278381 [S5]): this folder only, never its files (Microsoft's ``icacls /t`` rewrites every key's
    ACL [S2]; KB278381 deliberately leaves administrators without full control of key files).
``rename_folder``
    The community fix [S34], last resort: rename the folder to ``MachineKeys.rdpdoctor-<UTC
    yyyyMMddTHHmmssZ>``, only with ``rename_folder: true``, and refused while other machine certificates
    keep legacy-CSP keys there (a WinRM HTTPS listener, IIS, RD Gateway...: every certificate of My with
    a key file) unless ``force: true``. Windows recreates the folder at the next boot: reboot required.

``state: restored`` renames a folder renamed by this module (``restore_from``) back to MachineKeys.
"""

from __future__ import annotations

import re
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners import common

REPAIRS = ("listener_key", "regenerate", "acl", "rename_folder")
STATES = ("repaired", "restored")
#: Where ``file_remove`` keeps the key file it deletes (with its ACL).
BACKUP_DIR = remediation.HOST_STATE_DIR + "\\backup\\machinekeys"
#: Name of a folder this module renamed.
RENAMED_PREFIX = "MachineKeys.rdpdoctor-"
_RENAMED = re.compile(r"^MachineKeys\.rdpdoctor-\d{8}T\d{6}Z$")

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "repair": {"type": "str", "choices": list(REPAIRS)},
    "state": {"type": "str", "default": "repaired", "choices": list(STATES)},
    "rename_folder": {"type": "bool", "default": False},
    "force": {"type": "bool", "default": False},
    "restore_from": {"type": "str"},
}


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Every problem of the options, each naming the option and what is allowed."""
    problems = common.bool_problems(options, "rename_folder", "force")
    problems += common.choice_problem("repair", options.get("repair"), REPAIRS)
    state = options.get("state") or "repaired"
    problems += common.choice_problem("state", state, STATES)
    if state == "repaired" and options.get("repair") is None:
        problems.append(f"repair is required with state=repaired: one of {', '.join(REPAIRS)}")
    if state == "restored":
        if options.get("repair") is not None:
            problems.append("state=restored takes no repair (it renames a renamed folder back)")
        source = options.get("restore_from")
        if not source:
            problems.append(f"state=restored needs restore_from: the folder name this module gave ({RENAMED_PREFIX}<yyyyMMddTHHmmssZ>)")
        elif not _RENAMED.match(str(source)):
            problems.append(f"restore_from: {source!r} is not a folder this module renamed ({RENAMED_PREFIX}<yyyyMMddTHHmmssZ>, "
                            "a name only, no path)")
    elif options.get("restore_from"):
        problems.append("restore_from is only for state=restored")
    return problems


def _folder(facts: common.Facts) -> dict[str, t.Any]:
    """The machinekeys section."""
    return common.get(facts, "machinekeys") or {}


def _key_path(facts: common.Facts, key_file: dict[str, t.Any]) -> str:
    """Full path of the listener's key file."""
    return f"{_folder(facts).get('path') or reg.MACHINEKEYS_PATH}\\{key_file.get('name')}"


def _listener_key_ok(key_file: dict[str, t.Any]) -> bool:
    """SYSTEM Full, Administrators Full and NETWORK SERVICE Read, or exactly the repaired SDDL."""
    sddl = str(key_file.get("sddl") or "")
    if sddl.upper() == common.KEY_FILE_SDDL.upper():
        return True
    text = sddl.upper()
    return bool(key_file.get("network_service_read")) and "(A;;FA;;;SY)" in text and "(A;;FA;;;BA)" in text


def _self_signed_entries(facts: common.Facts) -> list[dict[str, t.Any]]:
    """Self-signed listener certificates of the Remote Desktop store (key container TSSecKeySet1 [S2])."""
    return [e for e in common.get(facts, f"certificate.stores.{reg.STORE_REMOTE_DESKTOP}", []) or [] if e.get("self_signed_container")]


def _pair_broken(facts: common.Facts) -> list[str]:
    """Why the self-signed certificate and its key file need regenerating (empty = healthy)."""
    key_file = _folder(facts).get("listener_key_file") or {}
    reasons = []
    if key_file.get("exists") is False:
        reasons.append(f"the key file {key_file.get('name')} is missing")
    elif key_file.get("empty"):
        reasons.append(f"the key file {key_file.get('name')} is empty")
    for entry in _self_signed_entries(facts):
        if entry.get("key_error"):
            reasons.append(f"certificate {entry['thumbprint']}: {entry['key_error']}")
        elif entry.get("key_readable_by_network_service") is False:
            reasons.append(f"certificate {entry['thumbprint']}: NETWORK SERVICE cannot read its key")
        if entry.get("expired"):
            reasons.append(f"certificate {entry['thumbprint']} expired on {entry.get('not_after')}")
    if not _self_signed_entries(facts):
        reasons.append("the Remote Desktop store holds no self-signed certificate")
    return reasons


def _unbind_self_signed(facts: common.Facts, thumbprints: list[str]) -> list[remediation.Operation]:
    """Delete a registry binding that names a self-signed certificate about to go [S1][S2]."""
    binding = common.get(facts, "certificate.ssl_certificate_sha1_hash.local")
    if binding and (binding in thumbprints or not common.get(facts, "certificate.found")):
        return [remediation.listener_binding(None, binding, why="the bound self-signed certificate is removed; Windows binds the new one")]
    return []


def _regenerate_steps(plan: remediation.Plan, facts: common.Facts) -> None:
    """Remove the broken self-signed pair (key file backed up) and let SessionEnv make a new one."""
    reasons = _pair_broken(facts)
    key_file = _folder(facts).get("listener_key_file") or {}
    plan.before["listener_key_file"] = {k: key_file.get(k) for k in ("name", "exists", "sddl")}
    plan.after["listener_key_file"] = dict(plan.before["listener_key_file"])
    if not reasons:
        return
    entries = _self_signed_entries(facts)
    thumbprints = [e["thumbprint"] for e in entries]
    operations = _unbind_self_signed(facts, thumbprints)
    operations += [remediation.certificate_remove(reg.STORE_REMOTE_DESKTOP, thumbprint, why="regenerate the self-signed pair [S2][S34]")
                   for thumbprint in thumbprints]
    if key_file.get("exists"):
        operations.append(remediation.file_remove(_key_path(facts, key_file), key_file.get("sddl"), BACKUP_DIR,
                                                  why=f"the listener key file, copied to {BACKUP_DIR} first [S2][S34]"))
    operations += common.start_service_steps(facts, reg.SESSIONENV, "SessionEnv creates a new self-signed certificate and key [S2][S3][S27]")
    plan.operations += operations
    plan.warnings.append(f"regenerating the listener's self-signed certificate: {'; '.join(reasons)}")
    if key_file.get("exists"):
        plan.warnings.append(f"the removed key file is kept in {BACKUP_DIR} on the host (the apply result names the copy)")
    plan.before["self_signed_certificates"] = thumbprints
    plan.after["self_signed_certificates"] = ["(new, made by SessionEnv)"]
    plan.after["listener_key_file"] = {"name": key_file.get("name"), "exists": True, "sddl": "(new)"}


def _listener_key_steps(plan: remediation.Plan, facts: common.Facts) -> None:
    """The listener key file's ACL; regenerate when the file itself is gone or empty."""
    key_file = _folder(facts).get("listener_key_file")
    if not key_file:
        plan.refused.append("repair=listener_key: the facts name no listener key file (no MachineGuid read)")
        return
    if key_file.get("exists") is False or key_file.get("empty"):
        plan.warnings.append(f"repair=listener_key: {key_file.get('name')} is {'missing' if key_file.get('exists') is False else 'empty'}; "
                             "no ACL can bring a key back, so the self-signed certificate and its key are regenerated")
        _regenerate_steps(plan, facts)
        return
    plan.before["listener_key_file_sddl"] = key_file.get("sddl")
    plan.after["listener_key_file_sddl"] = key_file.get("sddl")
    if _listener_key_ok(key_file):
        return
    plan.operations.append(remediation.path_acl(_key_path(facts, key_file), common.KEY_FILE_SDDL, key_file.get("sddl"),
                                                why="SYSTEM Full, Administrators Full, NETWORK SERVICE Read on the listener key file only [S2][S3]"))
    plan.after["listener_key_file_sddl"] = common.KEY_FILE_SDDL


def _acl_steps(plan: remediation.Plan, facts: common.Facts) -> None:
    """The folder ACL back to KB278381's default, this folder only [S5]."""
    folder = _folder(facts)
    if folder.get("exists") is False:
        plan.refused.append("repair=acl: the MachineKeys folder does not exist; see state=restored")
        return
    plan.before["folder_sddl"] = folder.get("sddl")
    plan.after["folder_sddl"] = folder.get("sddl")
    if folder.get("is_default"):
        return
    plan.operations.append(remediation.path_acl(folder.get("path") or reg.MACHINEKEYS_PATH, reg.MACHINEKEYS_DEFAULT_SDDL, folder.get("sddl"),
                                                why="KB278381 default ACL on the folder itself, never its files [S5]"))
    plan.after["folder_sddl"] = reg.MACHINEKEYS_DEFAULT_SDDL


def _dependents(facts: common.Facts) -> list[str]:
    """Other machine certificates whose legacy-CSP key lives in MachineKeys (what a rename would detach) [S34]."""
    found = []
    winrm = {str(w.get("thumbprint") or "").upper() for w in common.get(facts, "winrm.listeners", []) or [] if w.get("thumbprint")}
    for entry in common.get(facts, f"certificate.stores.{reg.STORE_MY}", []) or []:
        if not entry.get("has_private_key"):
            continue
        thumbprint = str(entry.get("thumbprint") or "")
        if thumbprint in winrm:
            found.append(f"{thumbprint} (WinRM HTTPS listener: renaming can cut this very connection)")
        elif entry.get("key_file"):
            found.append(f"{thumbprint} ({entry.get('subject') or 'no subject'}, key file {entry['key_file']})")
    return found


def _rename_steps(plan: remediation.Plan, facts: common.Facts, options: dict[str, t.Any]) -> None:
    """Rename the folder aside (guarded); Windows makes a new one at boot."""
    folder = _folder(facts)
    if not options.get("rename_folder"):
        plan.refused.append("repair=rename_folder detaches the private key of every legacy-CSP machine certificate; set "
                            "rename_folder: true to allow the rename")
        return
    if folder.get("exists") is False:
        plan.refused.append("repair=rename_folder: the MachineKeys folder does not exist (already renamed?)")
        return
    problems = list(_pair_broken(facts))
    if folder.get("acl_ok") is False:
        problems.append("the folder ACL is not the documented default")
    if not problems:
        plan.warnings.append("repair=rename_folder: the folder and the listener key are healthy; nothing is renamed")
        return
    dependents = _dependents(facts)
    if dependents and not options.get("force"):
        plan.refused.append(f"rename_folder: other machine certificates keep their keys in MachineKeys: {'; '.join(dependents)}; "
                            "re-import them (PFX) after the rename, or set force: true")
        return
    if dependents:
        plan.warnings.append(f"force: these certificates lose their private key until re-imported: {'; '.join(dependents)}")
    new_name = RENAMED_PREFIX + common.utc_stamp(facts)
    path = folder.get("path") or reg.MACHINEKEYS_PATH
    entries = _self_signed_entries(facts)
    thumbprints = [e["thumbprint"] for e in entries]
    plan.operations += _unbind_self_signed(facts, thumbprints)
    plan.operations += [remediation.certificate_remove(reg.STORE_REMOTE_DESKTOP, tp, why="its key goes with the renamed folder [S34]")
                        for tp in thumbprints]
    plan.operations.append(remediation.path_rename(path, new_name, why="community MachineKeys fix, last resort [S34]"))
    plan.reboot_required = True
    plan.before["folder"] = path
    plan.after["folder"] = f"{path.rsplit(chr(92), 1)[0]}\\{new_name} (renamed; Windows creates a new MachineKeys at boot)"
    plan.warnings.append(f"MachineKeys renamed to {new_name}: reboot so that Windows recreates the folder and a new listener "
                         f"certificate; undo with state=restored restore_from={new_name}")


def _restore_steps(plan: remediation.Plan, facts: common.Facts, options: dict[str, t.Any]) -> None:
    """Rename a renamed folder back (only when MachineKeys itself is absent)."""
    folder = _folder(facts)
    path = folder.get("path") or reg.MACHINEKEYS_PATH
    parent = path.rsplit("\\", 1)[0]
    source = f"{parent}\\{options['restore_from']}"
    plan.before["folder"] = source
    plan.after["folder"] = source
    if folder.get("exists") is not False:
        plan.refused.append(f"restore_from: {path} exists again, and apply cannot swap two folders in one run (every precondition is "
                            "checked before any write); move the new folder aside by hand, then run state=restored again")
        return
    plan.operations.append(remediation.path_rename(source, "MachineKeys", why="undo the rename of this module"))
    plan.after["folder"] = path
    plan.reboot_required = True
    plan.warnings.append("the host facts do not list renamed folders: the apply checks that restore_from exists before it writes")


def plan(facts: common.Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """The plan for the MachineKeys repair the options ask for."""
    result = remediation.Plan()
    result.refused = common.read_error_problems(facts, "machinekeys", "certificates") + option_problems(options)
    if result.refused:
        return common.finish(result)
    if (options.get("state") or "repaired") == "restored":
        _restore_steps(result, facts, options)
    elif options["repair"] == "listener_key":
        _listener_key_steps(result, facts)
    elif options["repair"] == "regenerate":
        _regenerate_steps(result, facts)
    elif options["repair"] == "acl":
        _acl_steps(result, facts)
    else:
        _rename_steps(result, facts, options)
    return common.finish(result)
