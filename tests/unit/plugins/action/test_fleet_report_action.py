"""The fleet_report action in-process: hostvars of every play host (published either way), files written, secrets left
out, merge, selection errors before anything is written, the HTML hook."""

from __future__ import annotations

import json
import typing as t
from pathlib import Path
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.action import fleet_report as action_module
from ansible_collections.rdp.doctor.plugins.action.fleet_report import ActionModule
from ansible_collections.rdp.doctor.plugins.module_utils import fleet_report as fr
from tests.unit.plugins.module_utils.test_fleet_report import FACTS, OK, finding, schema_errors

SECRET = "S3cret-Passw0rd!"


def make_action(args: dict[str, t.Any], check_mode: bool = False) -> ActionModule:
    """An ActionModule with a mocked task (no connection is ever used)."""
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.async_val = 0
    task.action = "rdp.doctor.fleet_report"
    context = PlayContext()
    context.check_mode = check_mode
    return ActionModule(task, mock.MagicMock(), context, loader=None, templar=None, shared_loader_obj=None)


def play_vars() -> dict[str, t.Any]:
    """task_vars of a play of four hosts: one publishing as variables, one as facts, one failed read, one with nothing."""
    hostvars = {
        "win01": {"ansible_host": "10.0.0.1", "ansible_password": SECRET, "rdp_doctor_host_state": OK,
                  "rdp_doctor_findings": [finding("RDP-CERT-EXPIRED")], "rdp_doctor_facts": FACTS},
        "win02": {"ansible_host": "10.0.0.2", "ansible_password": SECRET,
                  "ansible_facts": {"rdp_doctor_host_state": OK, "rdp_doctor_findings": [], "rdp_doctor": FACTS,
                                    "secret_fact": SECRET}},
        "win03": {"ansible_host": "10.0.0.3", "rdp_doctor_host_state": {"state": "failed", "msg": "script failed", "error": None}},
        "win04": {"ansible_host": "10.0.0.4", "ansible_password": SECRET},
    }
    return {"hostvars": hostvars, "ansible_play_hosts_all": list(hostvars), "ansible_play_name": "Diagnose", "awx_job_id": 42}


def test_every_play_host_is_reported_in_every_format(tmp_path: Path) -> None:
    """Four hosts, four states, in JSON (valid), JUnit, Markdown; the password of the inventory appears nowhere."""
    with mock.patch.object(action_module, "render_html", None):
        result = make_action({"dest": str(tmp_path / "out")}).run(task_vars=play_vars())
    assert not result.get("failed"), result
    assert set(result["files"]) == {"json", "junit", "markdown"}
    assert result["warnings"][0].startswith("html: this version of rdp.doctor has no HTML renderer")
    report = json.loads(Path(result["files"]["json"]).read_text(encoding="utf-8"))
    assert schema_errors(report) == []
    assert {h["name"]: h["state"] for h in report["hosts"]} == {"win01": "broken", "win02": "healthy", "win03": "failed",
                                                                "win04": "unreachable"}
    assert report["hosts"][0]["address"] == "10.0.0.1" and report["run"]["run_id"] == "42" and report["run"]["play"] == "Diagnose"
    assert report["run"]["kind"] == "diagnose" and report["run"]["collection_version"]
    for path in result["files"].values():
        text = Path(path).read_text(encoding="utf-8")
        assert SECRET not in text
        for host in ("win01", "win02", "win03", "win04"):
            assert host in text, (path, host)
    assert result["stats"]["host_states"]["win04"] == "unreachable"
    assert result["headline"] == "4 hosts: 1 healthy, 1 broken, 1 failed, 1 unreachable"
    assert result["changed"] is False


def test_the_html_renderer_is_called_when_present(tmp_path: Path) -> None:
    """The hook: render_html(report) -> str is written as <basename>.html."""
    renderer = mock.MagicMock(return_value="<html>fleet</html>")
    with mock.patch.object(action_module, "render_html", renderer):
        result = make_action({"dest": str(tmp_path), "formats": ["html"], "basename": "r"}).run(task_vars=play_vars())
    assert Path(result["files"]["html"]).read_text(encoding="utf-8") == "<html>fleet</html>"
    assert renderer.call_args.args[0]["schema"] == fr.SCHEMA


def test_a_failing_html_renderer_does_not_lose_the_other_formats(tmp_path: Path) -> None:
    """The renderer's exception becomes a warning; JSON is written."""
    with mock.patch.object(action_module, "render_html", mock.MagicMock(side_effect=KeyError("summary"))):
        result = make_action({"dest": str(tmp_path), "formats": ["json", "html"]}).run(task_vars=play_vars())
    assert set(result["files"]) == {"json"}
    assert result["warnings"] == ["html: the HTML renderer failed (KeyError: 'summary'); the other formats are written"]


def test_check_mode_still_writes_the_report(tmp_path: Path) -> None:
    """A check-mode run is the drift report: written, and marked check mode."""
    result = make_action({"dest": str(tmp_path), "formats": ["json"]}, check_mode=True).run(task_vars=play_vars())
    report = json.loads(Path(result["files"]["json"]).read_text(encoding="utf-8"))
    assert report["run"]["check_mode"] is True


def test_a_bad_expression_fails_before_anything_is_written(tmp_path: Path) -> None:
    """The option and the parser's reason are named; the folder is not even created."""
    dest = tmp_path / "never"
    with pytest.raises(AnsibleActionFail, match="select_findings: .* is not a valid JMESPath expression"):
        make_action({"dest": str(dest), "select_findings": "[?severity=="}).run(task_vars=play_vars())
    assert not dest.exists()


def test_selection_and_hosts_option(tmp_path: Path) -> None:
    """hosts limits the records; select_hosts keeps the broken ones."""
    result = make_action({"dest": str(tmp_path), "formats": ["json"], "hosts": ["win01", "win02", "win09"],
                          "select_hosts": "[?state!='healthy']"}).run(task_vars=play_vars())
    report = json.loads(Path(result["files"]["json"]).read_text(encoding="utf-8"))
    assert [h["name"] for h in report["hosts"]] == ["win01", "win09"]
    assert report["hosts"][1]["read"]["msg"] == fr.NO_RESULT


def test_merge_slices_written_by_earlier_runs(tmp_path: Path) -> None:
    """Two slices written by two runs merge into one report, alone (include_play false) or with this play."""
    first = make_action({"dest": str(tmp_path), "basename": "s1", "formats": ["json"], "hosts": ["win01", "win02"]}).run(task_vars=play_vars())
    second = make_action({"dest": str(tmp_path), "basename": "s2", "formats": ["json"], "hosts": ["win03", "win04"]}).run(task_vars=play_vars())
    merged = make_action({"dest": str(tmp_path), "basename": "all", "formats": ["json", "junit"], "include_play": False,
                          "merge": [first["files"]["json"], second["files"]["json"]]}).run(task_vars=play_vars())
    report = json.loads(Path(merged["files"]["json"]).read_text(encoding="utf-8"))
    assert schema_errors(report) == []
    assert [h["name"] for h in report["hosts"]] == ["win01", "win02", "win03", "win04"] and report["run"]["merged"] == 2
    assert merged["stats"]["states"]["unreachable"] == 1


def test_merge_names_a_file_that_is_not_a_report(tmp_path: Path) -> None:
    """Unreadable, not JSON, or another schema: the file is named."""
    other = tmp_path / "other.json"
    other.write_text('{"schema": "x"}', encoding="utf-8")
    with pytest.raises(AnsibleActionFail, match=f"merge: {other} is not an rdp.doctor fleet report"):
        make_action({"dest": str(tmp_path), "merge": [str(other)]}).run(task_vars=play_vars())
    with pytest.raises(AnsibleActionFail, match="merge: cannot read"):
        make_action({"dest": str(tmp_path), "merge": [str(tmp_path / "missing.json")]}).run(task_vars=play_vars())
    with pytest.raises(AnsibleActionFail, match="nothing to report"):
        make_action({"dest": str(tmp_path), "include_play": False}).run(task_vars=play_vars())


def test_plain_copies_tagged_values_and_escapes_lone_surrogates() -> None:
    """Hostvars values become plain JSON-able data; garbled text stays writable."""
    class Tagged(str):
        """A str subclass, as ansible-core's tagged strings are."""

    value = action_module.plain({Tagged("k"): (Tagged("bad \udcff"), 1, 2.5, True, None)})
    assert value == {"k": ["bad \\udcff", 1, 2.5, True, None]} and next(iter(value)).__class__ is str
    json.dumps(value).encode("utf-8")
