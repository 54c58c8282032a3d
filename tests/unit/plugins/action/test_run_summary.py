"""The diagnose role's one-task-per-host shape (issue 8): diagnose_host reads the role's variables itself, fails the hosts
the verdict fails while keeping their results in the run's records, and run_summary sums the fleet up from the records
(the end-to-end runs are in tests/integration/test_diagnose_lab.py)."""

from __future__ import annotations

import os
import typing as t
from pathlib import Path
from unittest import mock

import pytest
import yaml
from ansible import constants as C
from ansible.parsing.dataloader import DataLoader
from ansible.playbook.play_context import PlayContext
from ansible.template import Templar, trust_as_template

from ansible_collections.rdp.doctor.plugins.action import diagnose_host, run_summary
from ansible_collections.rdp.doctor.plugins.action.run_summary import collect
from ansible_collections.rdp.doctor.plugins.action.diagnose_host import AREA_VARIABLES, ARGUMENT_SPEC, CATEGORIES, ROLE_VARIABLES, role_arguments
from ansible_collections.rdp.doctor.plugins.plugin_utils import role_variables, run_records
from tests.unit.plugins.action.test_diagnose_host_action import answered, probe_document
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

ROLE = Path(__file__).resolve().parents[4] / "roles" / "diagnose"


@pytest.fixture(name="local_tmp", autouse=True)
def fixture_local_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This run's local temporary directory (ansible-playbook makes one per run)."""
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(tmp_path))
    return tmp_path


@pytest.fixture(name="probed")
def fixture_probed(monkeypatch: pytest.MonkeyPatch) -> mock.MagicMock:
    recorder = mock.MagicMock(return_value=dict(probe_document(), changed=False))
    monkeypatch.setattr(diagnose_host, "probe_in_process", recorder)
    return recorder


class Block:  # pylint: disable=too-few-public-methods
    """What a task's parent block offers the records: its id."""

    def __init__(self, uuid: str) -> None:
        self._uuid = uuid


def make(action_class: type, args: dict[str, t.Any], block: str = "block-1", answer: t.Any = None,
         variables: dict[str, t.Any] | None = None) -> t.Any:
    task = mock.MagicMock()
    task.args = args
    task.check_mode = False
    task.async_val = 0
    task._parent = Block(block)  # pylint: disable=protected-access
    connection = mock.MagicMock()
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    action = action_class(task, connection, PlayContext(), loader=DataLoader(), templar=Templar(loader=DataLoader(), variables=variables or {}),
                          shared_loader_obj=None)
    action._low_level_execute_command = mock.MagicMock(return_value=answer)  # pylint: disable=protected-access
    return action


# --- the role's variables ----------------------------------------------------------------------------------------

def test_every_role_variable_is_the_role_argument_spec() -> None:
    """ROLE_VARIABLES and AREA_VARIABLES name exactly the role's documented variables, with the option's type and default:
    the action's check is the role's (the playbooks skip Ansible's per-host copy of it: rolespec_validate false)."""
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))["argument_specs"]["main"]["options"]
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    assert set(spec) == set(ROLE_VARIABLES.values()) | set(AREA_VARIABLES.values())
    assert sorted(AREA_VARIABLES) == sorted(CATEGORIES)
    for option, variable in ROLE_VARIABLES.items():
        assert spec[variable]["type"] == ARGUMENT_SPEC[option]["type"], variable
        assert spec[variable].get("choices") == ARGUMENT_SPEC[option].get("choices"), variable
        if "default" in spec[variable]:
            assert defaults[variable] == spec[variable]["default"], variable
    for variable in AREA_VARIABLES.values():
        assert spec[variable]["type"] == "bool" and defaults[variable] is True


def test_role_arguments_come_from_the_variables() -> None:
    variables = {"rdp_doctor_event_days": "14", "rdp_doctor_diagnose_probe": "no", "rdp_doctor_diagnose_tls": "false",
                 "rdp_doctor_diagnose_host": False, "ansible_host": "10.0.0.5", "inventory_hostname": "win01",
                 "ansible_run_tags": ["rdp_doctor_facts"], "ansible_skip_tags": [], "rdp_doctor_diagnose_fail_on": "high"}
    args, problems, source = role_arguments({"use_role_variables": True, "accounts": ["CONTOSO\\a"]}, variables)
    assert problems == []
    assert args["event_days"] == 14 and args["probe"] is False and args["fail_on"] == "high" and args["accounts"] == ["CONTOSO\\a"]
    # An AWX survey's "false" switches an area off, as a YAML false does.
    assert "tls" not in args["categories"] and "host" not in args["categories"] and "listener" in args["categories"]
    assert args["probe_host"] == "10.0.0.5" and args["probe_expected_address"] == "10.0.0.5"
    assert args["run_tags"] == ["rdp_doctor_facts"] and source["event_days"] == "rdp_doctor_event_days" and "accounts" not in source
    bare, _problems, _source = role_arguments({}, {"inventory_hostname": "win01"})
    assert bare["probe_host"] == "win01" and "probe_expected_address" not in bare and bare["run_tags"] == ["all"]
    assert sorted(bare["categories"]) == sorted(CATEGORIES)


def test_bad_role_variables_are_named() -> None:
    """The message names the variable the user set, not the option it feeds."""
    _args, problems, _source = role_arguments({}, {"rdp_doctor_event_days": "a week", "rdp_doctor_diagnose_tls": "perhaps",
                                                   "rdp_doctor_diagnose_min_severity": "urgent"})
    text = "; ".join(problems)
    assert "argument 'rdp_doctor_event_days' is of type str and we were unable to convert to int" in text
    assert "argument 'rdp_doctor_diagnose_tls' is of type str and we were unable to convert to bool" in text
    assert "value of rdp_doctor_diagnose_min_severity must be one of" in text
    named = role_variables.attributed(["event_days must be between 1 and 365, not 0", "steps must name a step"],
                                      {"event_days": "rdp_doctor_event_days"})
    assert named == ["rdp_doctor_event_days: event_days must be between 1 and 365, not 0", "steps must name a step"]


def test_bad_role_variable_fails_before_the_host_is_touched(probed: mock.MagicMock) -> None:
    action = make(diagnose_host.ActionModule, {"use_role_variables": True}, answer=answered(samples.healthy_raw()))
    result = action.run(task_vars={"inventory_hostname": "win01", "rdp_doctor_event_days": 0})
    assert result["failed"] is True and result["msg"] == "rdp_doctor_event_days: event_days must be between 1 and 365, not 0"
    assert action._low_level_execute_command.call_count == 0 and probed.call_count == 0  # pylint: disable=protected-access


def test_templated_role_variable_is_templated(probed: mock.MagicMock) -> None:
    """A variable that holds a template is templated by the action (the role's task passes no template itself)."""
    task_vars = {"inventory_hostname": "win01", "rdp_doctor_probe_host": trust_as_template("{{ inventory_hostname }}.corp.example.com")}
    action = make(diagnose_host.ActionModule, {"use_role_variables": True}, answer=answered(samples.healthy_raw()), variables=task_vars)
    action.run(task_vars=task_vars)
    (probe_args,), _kwargs = probed.call_args
    assert probe_args["host"] == "win01.corp.example.com"


# --- the verdict and the records ---------------------------------------------------------------------------------

def test_verdict_fails_an_unreadable_host_with_one_line_and_keeps_its_results(probed: mock.MagicMock, local_tmp: Path) -> None:
    """The failed result is short (Ansible prints it whole) and has no facts (Ansible drops them); the records keep them."""
    action = make(diagnose_host.ActionModule, {"verdict": True}, answer=None)
    action._low_level_execute_command.side_effect = diagnose_host.AnsibleConnectionFailure("winrm: connection refused")  # pylint: disable=protected-access
    result = action.run(task_vars={"inventory_hostname": "win03", "ansible_play_batch": ["win01", "win03"]})
    assert result["failed"] is True and result["msg"].startswith("UNREACHABLE: not reached (")
    assert "ansible_facts" not in result and probed.call_count == 1
    records, batches = run_records.read_records(run_records.records_dir("block-1"))
    assert run_records.started_hosts(records, batches) == {"win01", "win03"} and records["win03"]["published"] is False
    kept = records["win03"]["results"]
    assert kept["rdp_doctor_host_state"]["state"] == "unreachable" and kept["rdp_doctor_facts"] == {}
    assert kept["rdp_doctor_probe"]["verdict"]["ok"] is True
    assert str(local_tmp) in run_records.records_dir("block-1")


def test_verdict_passes_a_healthy_host_and_publishes_its_facts(probed: mock.MagicMock) -> None:
    action = make(diagnose_host.ActionModule, {"verdict": True, "fail_on": "cause"}, answer=answered(samples.healthy_raw()))
    result = action.run(task_vars={"inventory_hostname": "win01", "ansible_play_batch": ["win01"]})
    assert not result.get("failed") and result["ansible_facts"]["rdp_doctor_host_state"]["state"] == "ok"
    records, _started = run_records.read_records(run_records.records_dir("block-1"))
    assert records["win01"]["published"] is True and "results" not in records["win01"]
    assert records["win01"]["probe"]["verdict"]["ok"] is True and probed.call_count == 1


def test_verdict_fails_on_a_cause_with_the_roles_message(probed: mock.MagicMock) -> None:
    raw = samples.healthy_raw()
    samples.rdp_disabled(raw)
    action = make(diagnose_host.ActionModule, {"verdict": True, "fail_on": "cause"}, answer=answered(raw))
    result = action.run(task_vars={"inventory_hostname": "win02"})
    assert result["failed"] is True and result["msg"].startswith("BROKEN: [critical] RDP-CONNECTIONS-DENIED (explains 0x904)")
    assert probed.call_count == 1


def test_records_survive_garbage_and_keep_scopes_apart(tmp_path: Path) -> None:
    first, second = run_records.records_dir("a", base=str(tmp_path)), run_records.records_dir("b", base=str(tmp_path))
    run_records.write_record(first, "win01", {"host_state": {"state": "ok"}}, ["win01", "win02"])
    run_records.write_record(first, "win02", {"host_state": {"state": "ok"}}, ["win01", "win02"])
    run_records.write_record(second, "win01", {"host_state": {"state": "failed"}}, ["win01"])
    Path(first, "garbage" + run_records.RECORD_SUFFIX).write_text("{not json", encoding="utf-8")
    Path(first, "x.record.json.123.partial").write_text("{}", encoding="utf-8")
    records, batches = run_records.read_records(first)
    assert sorted(records) == ["win01", "win02"] and batches == [["win01", "win02"]]
    assert run_records.read_records(second)[0]["win01"]["host_state"]["state"] == "failed"
    assert run_records.read_records(os.path.join(str(tmp_path), "missing")) == ({}, [])
    assert len([n for n in os.listdir(first) if n.startswith(run_records.BATCH_PREFIX)]) == 1  # one batch file per batch
    assert run_records.scope_of(mock.MagicMock(_parent=Block("0a-b"))) == "0a-b" and run_records.scope_of(object()) == "play"


# --- the fleet ---------------------------------------------------------------------------------------------------

def test_collect_reports_failed_lost_and_unrun_hosts() -> None:
    records = {
        "win01": {"host": "win01", "host_state": {"state": "ok"}, "findings": [], "probe": None, "published": True},
        "win02": {"host": "win02", "host_state": {"state": "unreachable", "msg": "refused"}, "findings": [], "probe": None,
                  "published": False, "results": {"rdp_doctor_host_state": {"state": "unreachable"}}},
    }
    summary_input, to_publish, not_reached = collect(["win01", "win02", "win03", "win04"], records, {"win01", "win02", "win03", "win05"})
    assert summary_input["win01"]["host_state"] == {"state": "ok"} and summary_input["win04"] == {} and not_reached == []
    assert summary_input["win03"]["host_state"]["state"] == "unreachable" and "win05" in summary_input
    assert [item["host"] for item in to_publish] == ["win02", "win03", "win05"]
    assert to_publish[1]["results"] == run_summary.lost_results()


def test_fleet_action_sums_up_from_the_records_only(probed: mock.MagicMock) -> None:
    """Two hosts diagnosed (one unreachable), one lost; the summary counts all three, no host variable is read."""
    batch = ["win01", "win02", "win03"]
    healthy = make(diagnose_host.ActionModule, {"verdict": True}, answer=answered(samples.healthy_raw()))
    healthy.run(task_vars={"inventory_hostname": "win01", "ansible_play_batch": batch})
    lost_read = make(diagnose_host.ActionModule, {"verdict": True})
    lost_read._low_level_execute_command.side_effect = diagnose_host.AnsibleConnectionFailure("timed out")  # pylint: disable=protected-access
    lost_read.run(task_vars={"inventory_hostname": "win02", "ansible_play_batch": batch})
    fleet = make(run_summary.ActionModule, {"use_role_variables": True})
    result = fleet.run(task_vars={"ansible_play_hosts_all": batch, "rdp_doctor_diagnose_fail_on": "high"})
    assert result["summary"][0].startswith("rdp.doctor: 3 hosts") and "fail_on=high" in result["summary"][0]
    assert result["states"] == {"win01": "healthy", "win02": "unreachable", "win03": "unreachable"}
    assert [item["host"] for item in result["unpublished"]] == ["win02", "win03"]
    other_block = make(run_summary.ActionModule, {}, block="block-2").run(task_vars={"ansible_play_hosts_all": batch})
    assert set(other_block["states"].values()) == {"skipped"} and other_block["unpublished"] == []
    bad = make(run_summary.ActionModule, {"fail_on": "sometimes"}).run(task_vars={})
    assert bad["failed"] is True and "fail_on" in bad["msg"]


def test_collect_with_batches_and_remediation() -> None:
    """Remediate's view: hosts of later batches are not reached; a remediated host's own lines follow the summary."""
    remediation = {"state": "changed", "operations": [], "manual": [], "remaining": [], "refused": [], "regressions": []}
    records = {"win01": {"host": "win01", "host_state": {"state": "ok"}, "findings": [], "probe": None, "published": True,
                         "remediation": remediation},
               "win02": {"host": "win02", "host_state": {"state": "ok"}, "findings": [], "probe": None, "published": False,
                         "remediation": dict(remediation, state="refused", msg="guard"),
                         "results": {"rdp_doctor_remediation": dict(remediation, state="refused")}}}
    summary_input, to_publish, not_reached = collect(["win01", "win02", "win03"], records, {"win01", "win02"}, batches=True)
    assert not_reached == ["win03"] and "win03" not in summary_input and [i["host"] for i in to_publish] == ["win02"]
    assert run_summary.detail_lines(summary_input)[0] == "win01: changed: 0 operation(s) applied and verified"
    assert any(line.startswith("win02: refused by a safety guard") for line in run_summary.detail_lines(summary_input))
    # Printed at the last batch, or at a batch that fails a host; never before otherwise.
    assert run_summary.print_now(True, "win03", {"win01", "win02"}, ["win02"], records) is True
    assert run_summary.print_now(True, "win03", {"win01"}, ["win01"], records) is False
    assert run_summary.print_now(True, "win03", {"win01", "win03"}, ["win03"], records) is True
    assert run_summary.print_now(False, "win03", set(), [], {}) is True


def test_a_host_lost_at_the_remediate_task_gets_a_remediation_record() -> None:
    """What the remediate role's publishing task sets for a lost host is a remediation record (the diagnose facts would
    leave item.results.rdp_doctor_remediation undefined and fail the run-once task, so every host)."""
    _summary_input, to_publish, _not_reached = collect(["win01"], {}, {"win01"}, batches=True, kind="remediate")
    (item,) = to_publish
    record = item["results"]["rdp_doctor_remediation"]
    assert record["state"] == "unreachable" and "before rdp.doctor.remediate_host ran" in record["msg"]
    assert set(item["results"]) == {"rdp_doctor_remediation"}


def test_a_record_that_cannot_be_written_is_a_warning(probed: mock.MagicMock, local_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local temporary directory that cannot hold the records: the diagnosis stands, the result says why the fleet
    summary will miss this host."""
    blocker = local_tmp / "not-a-directory"
    blocker.write_text("", encoding="utf-8")
    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(blocker))
    action = make(diagnose_host.ActionModule, {"verdict": True}, answer=answered(samples.healthy_raw()))
    result = action.run(task_vars={"inventory_hostname": "win01"})
    assert not result.get("failed") and result["ansible_facts"]["rdp_doctor_host_state"]["state"] == "ok"
    assert any("could not keep this host's results for the fleet summary" in w for w in result["warnings"]), result.get("warnings")
    assert probed.call_count == 1


def test_fleet_reads_and_checks_the_roles_fail_on() -> None:
    """With use_role_variables the summary's fail_on is the role's; a bad one is named as the variable."""
    good = make(run_summary.ActionModule, {"use_role_variables": True}).run(
        task_vars={"ansible_play_hosts_all": [], "rdp_doctor_diagnose_fail_on_findings": "yes"})
    assert not good.get("failed") and good["summary"][0].endswith("fail_on=cause fails 0")
    bad = make(run_summary.ActionModule, {"use_role_variables": True}).run(
        task_vars={"ansible_play_hosts_all": [], "rdp_doctor_diagnose_fail_on": "sometimes"})
    assert bad["failed"] is True and "rdp_doctor_diagnose_fail_on must be one of" in bad["msg"], bad["msg"]
