"""machinekeys planner on lab-built facts: listener key ACL, regenerate, folder ACL, guarded rename, restore, option errors."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils.planners import common
from ansible_collections.rdp.doctor.plugins.module_utils.planners import machinekeys as mk
from tests.lab.model import WinRMListener
from tests.unit.plugins.module_utils.planners import lab_facts as lf
from tests.unit.plugins.module_utils.planners.lab_facts import add_my_cert

FOLDER = reg.MACHINEKEYS_PATH
STAMP = "MachineKeys.rdpdoctor-20261121T070000Z"  # lab_facts.NOW


def plan(facts: dict, **options: object):
    full = {name: spec.get("default") for name, spec in mk.ARGUMENT_SPEC.items()}
    full.update(options)
    result = mk.plan(facts, full)
    lf.assert_well_formed(result)
    return result


def kinds(result) -> list[tuple[str, dict, dict, dict]]:
    return [(op["kind"], op["target"], op["expect"], op["set"]) for op in result.operations]


def key_path(facts: dict) -> str:
    return FOLDER + "\\" + facts["machinekeys"]["listener_key_file"]["name"]


BAD_OPTIONS = [
    ({}, "repair is required with state=repaired: one of listener_key, regenerate, acl, rename_folder"),
    ({"repair": "reset"}, "repair must be one of listener_key, regenerate, acl, rename_folder, not 'reset'"),
    ({"state": "absent", "repair": "acl"}, "state must be one of repaired, restored, not 'absent'"),
    ({"state": "restored"}, "state=restored needs restore_from"),
    ({"state": "restored", "restore_from": "C:\\Temp\\x"}, "restore_from: 'C:\\\\Temp\\\\x' is not a folder this module renamed"),
    ({"state": "restored", "restore_from": STAMP, "repair": "acl"}, "state=restored takes no repair"),
    ({"repair": "acl", "restore_from": STAMP}, "restore_from is only for state=restored"),
    ({"repair": "rename_folder", "force": "yes"}, "force must be true or false, not 'yes'"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_bad_options(options: dict, message: str) -> None:
    problems = mk.option_problems(options)
    assert any(p.startswith(message) for p in problems), problems
    assert any(p.startswith(message) for p in plan(lf.facts(), **options).refused)


def test_findings_proposals_are_accepted() -> None:
    for repair in ("listener_key", "acl"):
        assert mk.option_problems({"repair": repair, "state": "repaired"}) == []


@pytest.mark.parametrize("repair", ["listener_key", "regenerate", "acl", "rename_folder"])
def test_healthy_host_is_left_alone(repair: str) -> None:
    result = plan(lf.facts(), repair=repair, rename_folder=True)
    assert result.operations == [] and not result.refused and result.before == result.after and not result.reboot_required


# --------------------------------------------------------------------------------------------------
# listener_key
# --------------------------------------------------------------------------------------------------

def test_listener_key_acl_is_repaired_on_that_file_only() -> None:
    facts = lf.facts("cert_key_unreadable")
    result = plan(facts, repair="listener_key")
    assert kinds(result) == [("path_acl", {"path": key_path(facts)}, {"sddl": "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)"},
                              {"sddl": common.KEY_FILE_SDDL})]
    assert result.after == {"listener_key_file_sddl": common.KEY_FILE_SDDL}


def test_repaired_key_file_plans_nothing() -> None:
    host = lf.host_of("cert_key_unreadable")
    host.machinekeys.files[host.listener_key_file_name].sddl = common.KEY_FILE_SDDL
    assert plan(lf.facts_of_host(host), repair="listener_key").operations == []


def test_missing_listener_key_regenerates() -> None:
    facts = lf.facts("listener_key_missing")
    old = facts["certificate"]["bound_thumbprint"]
    result = plan(facts, repair="listener_key")
    assert kinds(result) == [
        ("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": old}, {"thumbprint": None}),
        ("certificate", {"store": reg.STORE_REMOTE_DESKTOP, "thumbprint": old}, {"present": True}, {"present": False}),
        ("service_control", {"name": "SessionEnv"}, {"state": "Running"}, {"action": "restart"}),
    ]  # no file_remove: there is no file
    assert any("no ACL can bring a key back" in w for w in result.warnings)


# --------------------------------------------------------------------------------------------------
# regenerate
# --------------------------------------------------------------------------------------------------

def test_regenerate_backs_up_the_key_file_before_removing_it() -> None:
    facts = lf.facts("cert_key_unreadable")
    old = facts["certificate"]["bound_thumbprint"]
    sddl = facts["machinekeys"]["listener_key_file"]["sddl"]
    result = plan(facts, repair="regenerate")
    assert kinds(result) == [
        ("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": old}, {"thumbprint": None}),
        ("certificate", {"store": reg.STORE_REMOTE_DESKTOP, "thumbprint": old}, {"present": True}, {"present": False}),
        ("file_remove", {"path": key_path(facts)}, {"present": True, "sddl": sddl}, {"present": False, "backup_dir": mk.BACKUP_DIR}),
        ("service_control", {"name": "SessionEnv"}, {"state": "Running"}, {"action": "restart"}),
    ]
    assert mk.BACKUP_DIR.startswith("C:\\ProgramData\\rdp.doctor\\")
    assert all(op["reversible"] for op in result.operations)
    assert any(mk.BACKUP_DIR in w for w in result.warnings)


def test_regenerate_an_expired_pair() -> None:
    result = plan(lf.facts("cert_expired"), repair="regenerate")
    assert [op["kind"] for op in result.operations] == ["listener_binding", "certificate", "file_remove", "service_control"]


# --------------------------------------------------------------------------------------------------
# acl
# --------------------------------------------------------------------------------------------------

def test_folder_acl_back_to_kb278381() -> None:
    result = plan(lf.facts("machinekeys_acl_broken"), repair="acl")
    assert kinds(result) == [("path_acl", {"path": FOLDER}, {"sddl": "O:SYG:SYD:PAI(A;;FA;;;BA)"},
                              {"sddl": "O:SYG:SYD:PAI(A;;0x12019f;;;WD)(A;;FA;;;BA)"})]
    assert result.before == {"folder_sddl": "O:SYG:SYD:PAI(A;;FA;;;BA)"}


# --------------------------------------------------------------------------------------------------
# rename_folder and restore
# --------------------------------------------------------------------------------------------------

def test_rename_needs_its_opt_in() -> None:
    result = plan(lf.facts("machinekeys_acl_broken"), repair="rename_folder")
    assert result.operations == [] and result.refused == [
        "repair=rename_folder detaches the private key of every legacy-CSP machine certificate; set rename_folder: true to allow the rename"]


def test_rename_with_opt_in_is_time_stamped_and_needs_a_reboot() -> None:
    facts = lf.facts("machinekeys_acl_broken")
    old = facts["certificate"]["bound_thumbprint"]
    result = plan(facts, repair="rename_folder", rename_folder=True)
    assert kinds(result) == [
        ("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": old}, {"thumbprint": None}),
        ("certificate", {"store": reg.STORE_REMOTE_DESKTOP, "thumbprint": old}, {"present": True}, {"present": False}),
        ("path_rename", {"path": FOLDER}, {"present": True, "destination_present": False}, {"new_name": STAMP}),
    ]
    assert result.reboot_required and any(f"restore_from={STAMP}" in w for w in result.warnings)


def test_rename_is_refused_while_other_certificates_depend_on_the_folder() -> None:
    host = lf.host_of("machinekeys_acl_broken")
    iis = add_my_cert(host, names=["www.contoso.com"])
    winrm = add_my_cert(host)
    host.winrm_listeners.append(WinRMListener("HTTPS", "*", 5986, thumbprint=winrm.thumbprint))
    facts = lf.facts_of_host(host)
    refused = plan(facts, repair="rename_folder", rename_folder=True)
    assert refused.operations == [] and len(refused.refused) == 1
    message = refused.refused[0]
    assert message.startswith("rename_folder: other machine certificates keep their keys in MachineKeys")
    assert iis.thumbprint in message and f"{winrm.thumbprint} (WinRM HTTPS listener" in message and message.endswith("or set force: true")
    forced = plan(facts, repair="rename_folder", rename_folder=True, force=True)
    assert forced.operations[-1]["kind"] == "path_rename"
    assert any(w.startswith("force: these certificates lose their private key") for w in forced.warnings)


def test_restore_renames_back_when_machinekeys_is_gone() -> None:
    host = lf.host_of()
    host.machinekeys.exists = False
    result = plan(lf.facts_of_host(host), state="restored", restore_from=STAMP)
    assert kinds(result) == [("path_rename", {"path": "C:\\ProgramData\\Microsoft\\Crypto\\RSA\\" + STAMP},
                              {"present": True, "destination_present": False}, {"new_name": "MachineKeys"})]
    assert result.after == {"folder": FOLDER} and result.reboot_required


def test_restore_is_refused_while_a_new_machinekeys_exists() -> None:
    result = plan(lf.facts(), state="restored", restore_from=STAMP)
    assert result.operations == [] and result.refused[0].startswith(f"restore_from: {FOLDER} exists again")
