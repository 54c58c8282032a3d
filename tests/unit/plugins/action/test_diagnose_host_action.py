"""The diagnose_host action with a fake connection and a recorded probe: one round trip, the steps the tags select,
unreachable and failing hosts reported, fail_on_findings."""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from unittest import mock

import pytest
from ansible.errors import AnsibleConnectionFailure
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.action import diagnose_host as dh
from ansible_collections.rdp.doctor.plugins.action.diagnose_host import ActionModule, host_state, probe_arguments, selected_steps
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

ALL = ["facts", "probe", "findings", "summary"]


@pytest.mark.parametrize(("run_tags", "skip_tags", "expected"), [
    (None, [], ALL),
    (["all"], [], ALL),
    (["tagged"], [], ALL),
    (["rdp_doctor_summary"], [], ALL),
    (["rdp_doctor_findings"], [], ["facts", "probe", "findings"]),
    (["rdp_doctor_facts"], [], ["facts"]),
    (["rdp_doctor_probe"], [], ["probe"]),
    (["rdp_doctor_facts", "rdp_doctor_probe"], [], ["facts", "probe"]),
    (["some_other_role"], [], []),
    (["untagged"], [], []),
    (["all"], ["rdp_doctor_probe"], ["facts", "findings", "summary"]),
    (["all"], ["rdp_doctor_facts"], ["probe", "findings", "summary"]),
    (["all"], ["rdp_doctor_findings"], ["summary"]),
    (["all"], ["rdp_doctor_summary"], []),
    # remediate --tags rdp_doctor_fix[_<module>]: the fixes are planned from the findings, so everything they need runs
    (["rdp_doctor_fix_firewall"], [], ["facts", "probe", "findings"]),
    (["rdp_doctor_fix"], [], ["facts", "probe", "findings"]),
    (["rdp_doctor_fix_firewall"], ["rdp_doctor_probe"], ["facts", "findings"]),
])
def test_steps_follow_the_role_tags(run_tags: list[str] | None, skip_tags: list[str], expected: list[str]) -> None:
    """Each step runs when Ansible would run a task carrying its tags (a later step's tag selects what it needs)."""
    assert selected_steps(ALL, run_tags, skip_tags) == expected


def test_steps_option_limits_the_selection() -> None:
    """steps narrows what the tags select, never widens it."""
    assert selected_steps(["facts", "findings"], None, []) == ["facts", "findings"]
    assert selected_steps(["facts", "findings"], ["rdp_doctor_probe"], []) == []


def test_host_state_says_how_reading_went() -> None:
    """skipped / unreachable / failed / ok, with the reason and the structured error."""
    assert host_state(None) == {"state": "skipped", "msg": dh.NOT_READ, "error": None}
    assert host_state({"unreachable": True, "msg": "refused"})["state"] == "unreachable"
    failed = host_state({"failed": True, "msg": "boom", "error": {"script": "read_rdp_state"}})
    assert failed == {"state": "failed", "msg": "boom", "error": {"script": "read_rdp_state"}}
    assert host_state({"changed": False, "ansible_facts": {"rdp_doctor": {}}})["state"] == "ok"


def _args(**extra: t.Any) -> dict[str, t.Any]:
    base = {"probe_host": None, "probe_port": None, "probe_expected_address": None, "probe_server_name": None,
            "probe_timeout": 5.0, "probe_options": {}}
    base.update(extra)
    return base


def test_probe_arguments_default_from_the_facts() -> None:
    """Port: the listener's effective port; name: the host's FQDN; host: the inventory name."""
    facts = {"listener": {"effective_port": 3390}, "os": {"fqdn": "win01.corp.example.com"}}
    assert probe_arguments(_args(), facts, "win01") == {
        "host": "win01", "port": 3390, "server_name": "win01.corp.example.com", "connect_timeout": 5.0, "read_timeout": 5.0}
    chosen = probe_arguments(_args(probe_host="10.0.0.5", probe_port=3389, probe_server_name="rdp.example.com",
                                   probe_expected_address="10.0.0.5", probe_timeout=2.0, probe_options={"nla": False, "port": 1}),
                             facts, "win01")
    assert chosen == {"host": "10.0.0.5", "port": 3389, "server_name": "rdp.example.com", "expected_address": "10.0.0.5",
                      "connect_timeout": 2.0, "read_timeout": 2.0, "nla": False}
    assert probe_arguments(_args(), {}, "win01")["port"] == 3389 and "server_name" not in probe_arguments(_args(), {}, "win01")


def probe_document(ok: bool = True) -> dict[str, t.Any]:
    """A probe result shaped like rdp_probe.probe's (only what findings and the summary read)."""
    steps = [{"step": name, "verdict": "ok", "summary": f"{name} fine", "finding_ids": [], "details": {}, "elapsed_ms": 0.1}
             for name in ("dns", "tcp", "x224", "tls", "certificate", "nla")]
    if not ok:
        steps[1].update(verdict="fail", summary="refused", finding_ids=["RDP-PROBE-TCP-REFUSED"])
    return {"schema": "rdp.doctor/probe/1", "target": "127.0.0.9", "port": 3389, "server_name": "win01", "steps": steps,
            "verdict": {"ok": ok, "failed_step": None if ok else "tcp", "finding_ids": [] if ok else ["RDP-PROBE-TCP-REFUSED"],
                        "findings": [] if ok else [{"id": "RDP-PROBE-TCP-REFUSED", "step": "tcp", "severity": "critical"}],
                        "explanation": "" if ok else "tcp: refused", "client_sees": None if ok else "0x204"},
            "dns": {"name": "127.0.0.9", "literal": True, "addresses": ["127.0.0.9"], "expected_address": None, "error": None},
            "tcp": {"address": "127.0.0.9" if ok else None, "attempts": []}, "x224": None, "tls": None, "certificate": None, "nla": None}


def make_action(args: dict[str, t.Any], answer: dict[str, t.Any] | Exception) -> ActionModule:
    """An ActionModule whose only way to the host is a mocked ``_low_level_execute_command``."""
    task = mock.MagicMock()
    task.args = args
    task.check_mode = False
    task.async_val = 0
    task.action = "rdp.doctor.diagnose_host"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    action = ActionModule(task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    execute = mock.MagicMock(side_effect=answer) if isinstance(answer, Exception) else mock.MagicMock(return_value=answer)
    action._low_level_execute_command = execute  # type: ignore[method-assign]  # pylint: disable=protected-access
    return action


def answered(document: t.Any) -> dict[str, t.Any]:
    """What _low_level_execute_command returns for a host script that wrote ``document`` (read now, no clock skew)."""
    if isinstance(document, dict) and "host_time_utc" in document:
        document = dict(document, host_time_utc=samples.iso(dt.datetime.now(dt.timezone.utc)))
    return {"rc": 0, "stdout": json.dumps(document) + "\r\n", "stderr": "", "stdout_lines": []}


@pytest.fixture(name="probed")
def fixture_probed(monkeypatch: pytest.MonkeyPatch) -> mock.MagicMock:
    """The in-process probe, recorded; answers a healthy client view."""
    recorder = mock.MagicMock(return_value=dict(probe_document(), changed=False))
    monkeypatch.setattr(dh, "probe_in_process", recorder)
    return recorder


def test_healthy_host_in_one_round_trip(probed: mock.MagicMock) -> None:
    """One host call, the four facts published as ansible_facts, the probe asked with the facts' port, no findings."""
    action = make_action({"probe_host": "127.0.0.9"}, answered(samples.healthy_raw()))
    result = action.run(task_vars={"inventory_hostname": "win01"})
    assert action._low_level_execute_command.call_count == 1  # type: ignore[attr-defined]  # pylint: disable=protected-access
    assert result["steps"] == ALL and result["host_state"]["state"] == "ok" and not result.get("failed")
    published = result["ansible_facts"]
    assert set(published) == {"rdp_doctor_facts", "rdp_doctor_probe", "rdp_doctor_findings", "rdp_doctor_host_state"}
    facts = published["rdp_doctor_facts"]
    (probe_args,), _kwargs = probed.call_args
    assert probe_args["host"] == "127.0.0.9" and probe_args["port"] == facts["listener"]["effective_port"]
    assert facts["facts_version"] == 1 and published["rdp_doctor_host_state"] == result["host_state"]
    assert published["rdp_doctor_probe"]["verdict"]["ok"] is True and published["rdp_doctor_probe"]["failed"] is False
    assert published["rdp_doctor_findings"] == [] and result["summary"][0].startswith("no findings")
    # Each big value once in the result (the registered copy and the callback walk all of it).
    assert "findings" not in result and "probe" not in result
    assert result["changed"] is False


def test_broken_host_findings_and_fail_on_findings(probed: mock.MagicMock) -> None:
    """Findings join both views; fail_on_findings fails the task with the summary as its message."""
    raw = samples.healthy_raw()
    samples.rdp_disabled(raw)
    probed.return_value = dict(probe_document(ok=False), changed=False)
    result = make_action({"probe_host": "127.0.0.9"}, answered(raw)).run(task_vars={})
    assert [f["id"] for f in result["ansible_facts"]["rdp_doctor_findings"]][:1] == ["RDP-CONNECTIONS-DENIED"] and not result.get("failed")
    failed = make_action({"probe_host": "127.0.0.9", "fail_on_findings": True}, answered(raw)).run(task_vars={})
    assert failed["failed"] is True and "RDP-CONNECTIONS-DENIED" in failed["msg"] and failed["msg"] == " | ".join(failed["summary"])
    probed.return_value = dict(probe_document(), changed=False)
    healthy = make_action({"fail_on_findings": True}, answered(samples.healthy_raw())).run(task_vars={})
    assert not healthy.get("failed")


def test_unreachable_host_is_reported_and_still_probed(probed: mock.MagicMock) -> None:
    """A connection failure is not an unreachable task: the state says so, the probe still runs."""
    result = make_action({}, AnsibleConnectionFailure("winrm: connection refused")).run(task_vars={"inventory_hostname": "win01"})
    assert result["host_state"] == {"state": "unreachable", "msg": "winrm: connection refused", "error": None}
    assert probed.call_count == 1 and not result.get("failed") and not result.get("unreachable")
    # Published all the same, so no stale value of an earlier run survives: no facts, the state says why.
    assert result["ansible_facts"]["rdp_doctor_facts"] == {} and result["ansible_facts"]["rdp_doctor_host_state"]["state"] == "unreachable"
    assert result["ansible_facts"]["rdp_doctor_probe"] is not None
    assert result["summary"][0] == "UNREACHABLE: winrm: connection refused"
    failed = make_action({"fail_on_findings": True}, AnsibleConnectionFailure("refused")).run(task_vars={})
    assert failed["failed"] is True and "UNREACHABLE" in failed["msg"]


def test_failing_script_is_reported(probed: mock.MagicMock) -> None:
    """The host script's error document: state failed with the structured error, findings from the probe alone."""
    error = {"failed": True, "script": "read_rdp_state",
             "error": {"type": "System.UnauthorizedAccessException", "message": "Access is denied", "line": 4, "category": "PermissionDenied"}}
    action = make_action({}, {"rc": 1, "stdout": json.dumps(error), "stderr": "", "stdout_lines": []})
    result = action.run(task_vars={})
    assert result["host_state"]["state"] == "failed" and result["host_state"]["error"]["script"] == "read_rdp_state"
    assert result["summary"][0].startswith("FAILED: ") and probed.call_count == 1


def test_probe_switched_off_and_tags(probed: mock.MagicMock) -> None:
    """probe: false leaves the probe out; --tags rdp_doctor_probe reads nothing from the host."""
    result = make_action({"probe": False}, answered(samples.healthy_raw())).run(task_vars={})
    assert probed.call_count == 0 and result["ansible_facts"]["rdp_doctor_probe"] is None
    assert result["steps"] == ["facts", "findings", "summary"]
    action = make_action({"probe_host": "127.0.0.9", "run_tags": ["rdp_doctor_probe"]}, answered(samples.healthy_raw()))
    result = action.run(task_vars={})
    assert action._low_level_execute_command.call_count == 0  # type: ignore[attr-defined]  # pylint: disable=protected-access
    assert result["steps"] == ["probe"] and result["host_state"]["state"] == "skipped"
    assert result["ansible_facts"]["rdp_doctor_probe"] is not None and result["ansible_facts"]["rdp_doctor_facts"] == {}
    assert result["ansible_facts"]["rdp_doctor_findings"] == [] and result["summary"] == []


def test_probe_that_cannot_start_is_reported(probed: mock.MagicMock) -> None:
    """A probe that cannot start (its library refuses): no probe, the reason in probe_error, the host findings stay.
    (Options diagnose_host can check itself fail the task before the host is touched: tests/unit/test_bad_input_corpus.py.)"""
    probed.return_value = {"failed": True, "changed": False, "msg": "cookie too long"}
    result = make_action({"probe_options": {"cookie": "x" * 100}}, answered(samples.healthy_raw())).run(task_vars={})
    assert result["ansible_facts"]["rdp_doctor_probe"] is None and result["probe_error"] == "cookie too long" and result["host_state"]["state"] == "ok"


def test_filters_options_reach_the_findings(probed: mock.MagicMock) -> None:
    """categories and min_severity filter the findings as the filter does."""
    raw = samples.healthy_raw()
    samples.rdp_disabled(raw)
    result = make_action({"categories": ["certificate"]}, answered(raw)).run(task_vars={})
    assert result["ansible_facts"]["rdp_doctor_findings"] == [] and probed.call_count == 1


def test_a_probe_that_failed_is_never_called_healthy(probed: mock.MagicMock) -> None:
    """Issue 10: a probe with no result shows in the summary and the state, never as "RDP looks healthy"."""
    probed.return_value = {"failed": True, "changed": False, "msg": "probe crashed: 3 is not a valid X509 version"}
    result = make_action({}, answered(samples.healthy_raw())).run(task_vars={})
    assert result["host_state"]["probe_error"] == "probe crashed: 3 is not a valid X509 version"
    assert not any("looks healthy" in line for line in result["summary"])
    assert result["summary"][-1] == "PROBE FAILED: probe crashed: 3 is not a valid X509 version"
    failed = make_action({"fail_on": "high"}, answered(samples.healthy_raw())).run(task_vars={})
    assert failed["failed"] is True and "PROBE FAILED" in failed["msg"]


@pytest.mark.parametrize(("fail_on", "fails_disabled", "fails_nla_off"), [
    ("none", False, False), ("cause", True, False), ("critical", True, False), ("high", True, False), ("medium", True, True),
    ("info", True, True),
])
def test_fail_on_threshold_by_severity(probed: mock.MagicMock, fail_on: str, fails_disabled: bool, fails_nla_off: bool) -> None:
    """fail_on picks which findings fail the task: a cause of 0x904 (RDP off) and a medium risk (NLA off) apart."""
    probed.return_value = dict(probe_document(), changed=False)
    disabled, nla_off = samples.healthy_raw(), samples.healthy_raw()
    samples.rdp_disabled(disabled)
    samples.nla_disabled(nla_off)
    results = [make_action({"fail_on": fail_on}, answered(raw)).run(task_vars={}) for raw in (disabled, nla_off)]
    assert [bool(r.get("failed")) for r in results] == [fails_disabled, fails_nla_off], [r["ansible_facts"]["rdp_doctor_findings"] for r in results]
    healthy = make_action({"fail_on": "info"}, answered(samples.healthy_raw())).run(task_vars={})
    assert not healthy.get("failed")
    unreachable = make_action({"fail_on": "critical"}, AnsibleConnectionFailure("reset")).run(task_vars={})
    assert unreachable["failed"] is True and unreachable["msg"].startswith("UNREACHABLE: reset")
