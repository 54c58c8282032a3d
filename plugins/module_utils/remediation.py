# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The vocabulary of host changes: primitive operations and the plan a planner returns (pure, no I/O).

A remediation module never decides on the host. Its planner (``module_utils/planners/<module>.py``) turns
host facts and the module's options into a :class:`Plan`: an ordered list of primitive operations, each
carrying the state it expects to find (``expect``) and the state it writes (``set``). The host script
``apply_rdp_changes`` checks every ``expect`` before it writes anything, applies the list in order, keeps
what it overwrote, undoes what it applied (in reverse) if one operation fails, and re-reads every target
so the result verifies itself (docs/dev/contracts.md, section 10).

Every operation is a plain dict::

    {"id": "op01", "kind": "registry_value",
     "target": {...},          # what it acts on (kind-specific, below)
     "expect": {...},          # the state the plan was made from; any difference = drift, nothing applied
     "set": {...},             # the state to write
     "reversible": True,       # False: cannot be undone (session logoff, certificate removal of a
                               #   non-exportable key); the planner puts these last
     "why": "..."}             # one line for the diff and the logs

Kinds (``target`` / ``expect`` / ``set``):

``registry_value``
    target ``{path, name}`` (PowerShell provider path ``HKLM:\\...``); expect ``{present, type?, value?}``;
    set ``{present: True, type, value}`` or ``{present: False}``. Types: DWORD, QWORD, String,
    ExpandString, MultiString, Binary (the names of ``Microsoft.Win32.RegistryValueKind``); Binary values
    are lower-case hex strings.
``service_config``
    target ``{name}``; expect ``{start_mode?, account?}``; set ``{start_mode?, account?}``. start_mode is
    Auto | Manual | Disabled (Win32_Service.StartMode spelling); account e.g. ``NT Authority\\NetworkService``.
``service_control``
    target ``{name}``; expect ``{state}``; set ``{action: start | stop | restart}``. Undo of start is stop
    and the reverse; a restart needs no undo.
``firewall_rule``
    an existing rule by its stable ``Name`` (never the localized display name): target ``{name}``;
    expect ``{present: True, enabled?, local_ports?, remote_addresses?}``;
    set ``{enabled?, local_ports?, remote_addresses?}``.
``firewall_rule_owned``
    a rule the collection owns (``name`` starts with :data:`OWNED_RULE_PREFIX`): target ``{name}``;
    expect ``{present}``; set ``{present: True, display_name, protocol, local_ports, profiles,
    remote_addresses, service}`` or ``{present: False}``.
``listener_binding``
    the RDP-Tcp listener certificate (``Win32_TSGeneralSetting.SSLCertificateSHA1Hash``): target
    ``{terminal: "RDP-Tcp"}``; expect ``{thumbprint}`` (upper-case hex, None = default self-signed);
    set ``{thumbprint}`` (None = delete the value so Windows falls back to the self-signed one).
``certificate``
    target ``{store, thumbprint}`` (``Remote Desktop`` or ``My``); expect ``{present: True}``;
    set ``{present: False}``. Reversible only when the host can export the key (the planner cannot
    know: the script backs up a PFX in memory and reports whether it could).
``key_acl``
    the private-key file of a certificate: target ``{store, thumbprint}``; expect ``{sddl}``;
    set ``{grant: [{sid, rights}]}`` (rights: Read | FullControl).
``path_acl``
    one file or folder, never recursive: target ``{path}``; expect ``{sddl}``; set ``{sddl}``. The script
    writes the DACL part (and its protection flag) only; the owner is left as it is.
``path_rename``
    target ``{path}``; expect ``{present: True, destination_present: False}``; set ``{new_name}``.
``file_remove``
    target ``{path}``; expect ``{present: True, sddl?}``; set ``{present: False, backup_dir}``: the script
    copies the file (with its ACL) into ``backup_dir`` first, so it is reversible.
``session_logoff``
    target ``{session_id}``; expect ``{user, state, logon_time}``; set ``{}``; never reversible.
``revert_task``
    a scheduled task that restores values at a deadline even if the controller is gone: target
    ``{name}``; expect ``{present: False}``; set ``{run_at_utc, restore: [operations]}`` where each restore
    operation is a ``registry_value`` or a ``service_control`` restart (e.g. TermService after a port
    revert). The task runs a constant script that reads its list from a JSON file, then deletes itself.

What the script reads back for each kind (``before`` / ``after`` of the result; :func:`verify_problems`
compares ``after`` with ``set``): registry_value ``{present, type?, value?}``; service_config
``{start_mode, account}``; service_control ``{state}``; firewall_rule / firewall_rule_owned ``{present,
enabled, display_name, protocol, local_ports, profiles, remote_addresses, service}`` (service is not read:
null); listener_binding ``{thumbprint}``; certificate ``{present}``; key_acl ``{sddl, grant}`` (``grant``:
the requested grants the ACL gives); path_acl ``{sddl}``; path_rename ``{present, destination_present}``;
file_remove ``{present, sddl}``; session_logoff ``{present, user, state, logon_time}``; revert_task
``{present, run_at_utc}``; host_restart ``{scheduled, last_boot_utc}`` (scheduled: this run asked Windows to
restart). A target that cannot be read at all is ``{error}`` (drift before an apply).

The ``id`` is unique within a plan and stable for the same facts and options (``op01``, ``op02``... in
plan order), so a check-mode plan and the applied plan can be compared.
"""

from __future__ import annotations

import json
import re
import typing as t
from dataclasses import dataclass, field

Operation = t.Dict[str, t.Any]

APPLY_SCRIPT = "apply_rdp_changes"
APPLY_SCHEMA_ID = "rdp.doctor/apply_rdp_changes/1"

#: Names of the firewall rules the collection creates (and the only rules it may delete).
OWNED_RULE_PREFIX = "rdp.doctor-"
#: Where ``file_remove`` keeps its copies and ``revert_task`` its restore list on the host.
HOST_STATE_DIR = "C:\\ProgramData\\rdp.doctor"

REGISTRY_TYPES = ("DWORD", "QWORD", "String", "ExpandString", "MultiString", "Binary")
START_MODES = ("Auto", "Manual", "Disabled")
SERVICE_ACTIONS = ("start", "stop", "restart")
KEY_RIGHTS = ("Read", "FullControl")
#: Seconds ``host_restart`` may wait before Windows restarts (the window in which it can still be cancelled).
RESTART_DELAY_RANGE = (5, 600)

#: kind -> (required target keys, allowed expect keys, allowed set keys)
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "registry_value": (("path", "name"), ("present", "type", "value"), ("present", "type", "value")),
    "service_config": (("name",), ("start_mode", "account"), ("start_mode", "account")),
    "service_control": (("name",), ("state",), ("action",)),
    "firewall_rule": (("name",), ("present", "enabled", "local_ports", "remote_addresses"),
                      ("enabled", "local_ports", "remote_addresses")),
    "firewall_rule_owned": (("name",), ("present",),
                            ("present", "display_name", "protocol", "local_ports", "profiles", "remote_addresses", "service")),
    "listener_binding": (("terminal",), ("thumbprint",), ("thumbprint",)),
    "certificate": (("store", "thumbprint"), ("present",), ("present",)),
    "key_acl": (("store", "thumbprint"), ("sddl",), ("grant",)),
    "path_acl": (("path",), ("sddl",), ("sddl",)),
    "path_rename": (("path",), ("present", "destination_present"), ("new_name",)),
    "file_remove": (("path",), ("present", "sddl"), ("present", "backup_dir")),
    "session_logoff": (("session_id",), ("user", "state", "logon_time"), ()),
    "revert_task": (("name",), ("present",), ("run_at_utc", "restore")),
    "host_restart": ((), ("last_boot_utc",), ("delay_seconds",)),
}

#: Kinds that can never be undone once applied.
IRREVERSIBLE_KINDS = ("session_logoff",)

ABSENT: dict[str, t.Any] = {"present": False}


# ==================================================================================================
# Constructors (the planners use these; each returns a plain dict)
# ==================================================================================================

def _operation(kind: str, target: dict[str, t.Any], expect: dict[str, t.Any], set_: dict[str, t.Any], why: str,
               reversible: bool = True) -> Operation:
    return {"id": "", "kind": kind, "target": target, "expect": expect, "set": set_,
            "reversible": reversible and kind not in IRREVERSIBLE_KINDS, "why": why}


def registry_expect(current: t.Any, value_type: str = "DWORD") -> dict[str, t.Any]:
    """The ``expect`` of a registry value from what the facts read (None = the value does not exist)."""
    if current is None:
        return dict(ABSENT)
    return {"present": True, "type": value_type, "value": current}


def registry_set(path: str, name: str, value: t.Any, current: t.Any, value_type: str = "DWORD", why: str = "") -> Operation:
    """Write ``value`` to ``path\\name``; ``current`` is the value the facts read (None = absent)."""
    return _operation("registry_value", {"path": path, "name": name}, registry_expect(current, value_type),
                      {"present": True, "type": value_type, "value": value}, why)


def registry_remove(path: str, name: str, current: t.Any, value_type: str = "DWORD", why: str = "") -> Operation:
    """Delete ``path\\name`` (which the facts read as ``current``)."""
    return _operation("registry_value", {"path": path, "name": name}, registry_expect(current, value_type), dict(ABSENT), why)


def service_config(name: str, expect: dict[str, t.Any], start_mode: str | None = None, account: str | None = None,
                   why: str = "") -> Operation:
    """Change a service's start mode and/or logon account."""
    wanted = {k: v for k, v in (("start_mode", start_mode), ("account", account)) if v is not None}
    return _operation("service_config", {"name": name}, {k: expect.get(k) for k in wanted}, wanted, why)


def service_control(name: str, state: str, action: str, why: str = "") -> Operation:
    """Start, stop or restart a service found in ``state`` (Running / Stopped)."""
    return _operation("service_control", {"name": name}, {"state": state}, {"action": action}, why)


def firewall_rule(name: str, expect: dict[str, t.Any], why: str = "", **wanted: t.Any) -> Operation:
    """Change an existing rule (by its stable Name): enabled, local_ports, remote_addresses."""
    expect_keys = {"present": True}
    expect_keys.update({k: expect.get(k) for k in wanted})
    return _operation("firewall_rule", {"name": name}, expect_keys, dict(wanted), why)


def owned_rule(name: str, present: bool, current_present: bool, why: str = "", **definition: t.Any) -> Operation:
    """Create or delete a collection-owned firewall rule."""
    if not name.startswith(OWNED_RULE_PREFIX):
        raise ValueError(f"a collection-owned firewall rule name must start with {OWNED_RULE_PREFIX!r}: {name!r}")
    set_ = dict(definition, present=True) if present else dict(ABSENT)
    return _operation("firewall_rule_owned", {"name": name}, {"present": current_present}, set_, why)


def listener_binding(thumbprint: str | None, current: str | None, why: str = "") -> Operation:
    """Bind the RDP-Tcp listener to ``thumbprint`` (None = back to the self-signed default)."""
    return _operation("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": current}, {"thumbprint": thumbprint}, why)


def certificate_remove(store: str, thumbprint: str, why: str = "") -> Operation:
    """Delete a certificate (and its key) from ``Cert:\\LocalMachine\\<store>``."""
    return _operation("certificate", {"store": store, "thumbprint": thumbprint}, {"present": True}, dict(ABSENT), why)


def key_acl_grant(store: str, thumbprint: str, current_sddl: str | None, grants: list[dict[str, str]], why: str = "") -> Operation:
    """Grant ``[{sid, rights}]`` on a certificate's private-key file."""
    return _operation("key_acl", {"store": store, "thumbprint": thumbprint}, {"sddl": current_sddl}, {"grant": grants}, why)


def path_acl(path: str, sddl: str, current_sddl: str | None, why: str = "") -> Operation:
    """Replace the ACL of one file or folder (never its children)."""
    return _operation("path_acl", {"path": path}, {"sddl": current_sddl}, {"sddl": sddl}, why)


def path_rename(path: str, new_name: str, why: str = "") -> Operation:
    """Rename a file or folder to ``new_name`` (a name in the same folder)."""
    return _operation("path_rename", {"path": path}, {"present": True, "destination_present": False}, {"new_name": new_name}, why)


def file_remove(path: str, current_sddl: str | None, backup_dir: str, why: str = "") -> Operation:
    """Delete a file after copying it (with its ACL) into ``backup_dir``."""
    expect = {"present": True}
    if current_sddl is not None:
        expect["sddl"] = current_sddl
    return _operation("file_remove", {"path": path}, expect, {"present": False, "backup_dir": backup_dir}, why)


def session_logoff(session_id: int, user: str, state: str, logon_time: str | None, why: str = "") -> Operation:
    """Log a session off (irreversible)."""
    return _operation("session_logoff", {"session_id": session_id}, {"user": user, "state": state, "logon_time": logon_time}, {},
                      why, reversible=False)


def revert_task(name: str, run_at_utc: str, restore: list[Operation], why: str = "") -> Operation:
    """A scheduled task that applies ``restore`` (registry_value operations) at ``run_at_utc``."""
    return _operation("revert_task", {"name": name}, dict(ABSENT), {"run_at_utc": run_at_utc, "restore": restore}, why)


def host_restart(delay_seconds: int, last_boot_utc: str | None, why: str = "") -> Operation:
    """Restart Windows ``delay_seconds`` after the apply (boot-time values take effect); the last operation of a plan."""
    expect = {"last_boot_utc": last_boot_utc} if last_boot_utc else {}
    return _operation("host_restart", {}, expect, {"delay_seconds": delay_seconds}, why)


def number(operations: list[Operation]) -> list[Operation]:
    """Give each operation its stable id (``op01``...) in plan order; returns the same list."""
    for index, operation in enumerate(operations, start=1):
        operation["id"] = f"op{index:02d}"
    return operations


# ==================================================================================================
# Validation (the action plugin runs it before anything reaches a host)
# ==================================================================================================

_HKLM = re.compile(r"^HKLM:\\[^\x00-\x1f]+$")


def operation_problems(operation: Operation) -> list[str]:
    """Structural problems of one operation (empty when it is well formed)."""
    kind = operation.get("kind")
    if kind not in KINDS:
        return [f"unknown operation kind {kind!r}"]
    need_target, expect_keys, set_keys = KINDS[kind]
    label = f"{operation.get('id') or '?'} ({kind})"
    problems = [f"{label}: target lacks {key!r}" for key in need_target if key not in operation.get("target", {})]
    problems += [f"{label}: unexpected expect key {key!r}" for key in operation.get("expect", {}) if key not in expect_keys]
    problems += [f"{label}: unexpected set key {key!r}" for key in operation.get("set", {}) if key not in set_keys]
    target, set_ = operation.get("target", {}), operation.get("set", {})
    if kind == "registry_value":
        if not _HKLM.match(str(target.get("path", ""))):
            problems.append(f"{label}: only HKLM:\\ paths may be written, not {target.get('path')!r}")
        if set_.get("present") and set_.get("type") not in REGISTRY_TYPES:
            problems.append(f"{label}: registry type must be one of {', '.join(REGISTRY_TYPES)}")
    elif kind == "service_config" and set_.get("start_mode") not in (None,) + START_MODES:
        problems.append(f"{label}: start_mode must be one of {', '.join(START_MODES)}")
    elif kind == "service_control" and set_.get("action") not in SERVICE_ACTIONS:
        problems.append(f"{label}: action must be one of {', '.join(SERVICE_ACTIONS)}")
    elif kind == "firewall_rule_owned" and not str(target.get("name", "")).startswith(OWNED_RULE_PREFIX):
        problems.append(f"{label}: the collection only creates or deletes rules named {OWNED_RULE_PREFIX}*")
    elif kind == "host_restart":
        delay = set_.get("delay_seconds")
        low, high = RESTART_DELAY_RANGE
        if isinstance(delay, bool) or not isinstance(delay, int) or not low <= delay <= high:
            problems.append(f"{label}: delay_seconds must be a whole number of seconds from {low} to {high}, not {delay!r}")
    elif kind == "key_acl":
        for grant in set_.get("grant") or []:
            if grant.get("rights") not in KEY_RIGHTS:
                problems.append(f"{label}: key rights must be one of {', '.join(KEY_RIGHTS)}")
    return problems


def plan_problems(operations: list[Operation]) -> list[str]:
    """Problems of a whole plan: each operation, unique ids, irreversible operations last, a restart the very last."""
    problems = [p for operation in operations for p in operation_problems(operation)]
    restarts = [index for index, operation in enumerate(operations) if operation.get("kind") == "host_restart"]
    if restarts and restarts != [len(operations) - 1]:
        problems.append("a plan restarts the host once, as its last operation (host_restart)")
    ids = [operation.get("id") for operation in operations]
    if len(set(ids)) != len(ids) or not all(ids):
        problems.append("operation ids must be present and unique (call remediation.number)")
    seen_irreversible = False
    for operation in operations:
        if not operation.get("reversible", True):
            seen_irreversible = True
        elif seen_irreversible:
            problems.append(f"{operation.get('id')}: a reversible operation follows an irreversible one; irreversible ones go last")
            break
    return problems


# ==================================================================================================
# Verification (the action compares the script's re-read with what each operation set)
# ==================================================================================================

_SERVICE_STATE_AFTER = {"start": "Running", "restart": "Running", "stop": "Stopped"}


def _same(a: t.Any, b: t.Any) -> bool:
    """Values compared as the script compares them: JSON text, case-insensitive."""
    return json.dumps(a, sort_keys=True, separators=(",", ":")).lower() == json.dumps(b, sort_keys=True, separators=(",", ":")).lower()


def _dacl(sddl: t.Any) -> str | None:
    """The DACL part of an SDDL string (from ``D:`` to the SACL), upper case; None without one."""
    if not isinstance(sddl, str) or "D:" not in sddl:
        return None
    return sddl.split("D:", 1)[1].split("S:", 1)[0].upper()


def verify_problems(operation: Operation, after: dict[str, t.Any] | None) -> list[str]:
    """What the re-read state ``after`` of an applied operation does not show of its ``set`` (empty = verified)."""
    label = f"{operation.get('id')} ({operation.get('kind')})"
    if not isinstance(after, dict):
        return [f"{label}: the host did not re-read the target"]
    if "error" in after:
        return [f"{label}: the target could not be re-read: {after['error']}"]
    kind, set_ = operation.get("kind"), operation.get("set") or {}
    wanted: dict[str, t.Any]
    if kind == "registry_value":
        wanted = dict(set_) if set_.get("present") else {"present": False}
    elif kind == "service_control":
        wanted = {"state": _SERVICE_STATE_AFTER.get(str(set_.get("action")), "?")}
    elif kind == "path_acl":
        # the script writes the DACL only (owner and group need privileges): compare from "D:" on
        return [] if _dacl(after.get("sddl")) == _dacl(set_.get("sddl")) else [
            f"{label}: the DACL is {_dacl(after.get('sddl'))!r} after the change, not {_dacl(set_.get('sddl'))!r}"]
    elif kind == "listener_binding" and set_.get("thumbprint") is None:
        # Back to the self-signed default: when a later SessionEnv/TermService restart in the same plan makes a new
        # self-signed certificate, Windows binds it at once [S2], so any binding but the old one shows the change.
        old = (operation.get("expect") or {}).get("thumbprint")
        return [] if not old or not _same(after.get("thumbprint"), old) else [
            f"{label}: the listener is still bound to {old!r} after the change"]
    elif kind in ("service_config", "firewall_rule", "listener_binding", "certificate"):
        wanted = dict(set_)
    elif kind == "firewall_rule_owned":
        wanted = {k: v for k, v in set_.items() if k in ("present", "protocol", "local_ports", "remote_addresses")}
    elif kind == "key_acl":
        wanted = {"grant": set_.get("grant") or []}
    elif kind == "path_rename":
        wanted = {"present": False, "destination_present": True}
    elif kind == "file_remove":
        wanted = {"present": False}
    elif kind == "session_logoff":
        wanted = {"present": False}
    elif kind == "revert_task":
        wanted = {"present": True, "run_at_utc": set_.get("run_at_utc")}
    elif kind == "host_restart":
        wanted = {"scheduled": True}  # the boot itself is verified by the caller's read after the host is back
    else:
        return [f"{label}: unknown kind"]
    return [f"{label}: {key} is {after.get(key)!r} after the change, not {value!r}"
            for key, value in wanted.items() if not _same(after.get(key), value)]


# ==================================================================================================
# The plan
# ==================================================================================================

@dataclass
class Plan:
    """What a planner decided for one host and one module call.

    ``before`` / ``after``: the module's view of the settings it manages (the ``diff`` Ansible shows),
    only the keys the caller asked about. ``manual``: what the module will not change and why (e.g. a
    value Group Policy owns), as ``{"setting", "reason", "policy_key"?}``. ``refused``: changes the
    options asked for that a safety guard blocks, each naming the option that would allow it; a plan
    with refusals is never applied. ``restart``: services to restart after the writes (already part of
    ``operations`` as ``service_control`` restarts; listed for the summary). ``reboot_required``: the
    change takes effect only after a reboot.
    """

    operations: list[Operation] = field(default_factory=list)
    before: dict[str, t.Any] = field(default_factory=dict)
    after: dict[str, t.Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    manual: list[dict[str, t.Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)
    reboot_required: bool = False

    @property
    def changes(self) -> bool:
        """True when applying the plan would change the host."""
        return bool(self.operations)

    def to_dict(self) -> dict[str, t.Any]:
        """The plan as the module returns it."""
        return {"operations": self.operations, "diff": {"before": self.before, "after": self.after},
                "warnings": list(self.warnings), "manual": list(self.manual), "refused": list(self.refused),
                "restart": list(self.restart), "reboot_required": self.reboot_required}
