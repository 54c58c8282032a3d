"""RemediationAction with a fake connection whose host is a lab model run by the real twins.

The host answers exactly what the lab would (read_rdp_state and apply_rdp_changes twins on a model), so the
tests count round trips and see the model change: compliant with facts = 0 calls; change with facts = 1;
without facts one more; check mode sends nothing; refusals send nothing; drift re-reads and re-plans once;
a failed apply fails the task naming what is still applied; no secret reaches the result.
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from unittest import mock

import pytest
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.action.credssp import ActionModule as CredsspAction
from ansible_collections.rdp.doctor.plugins.action.listener_security import ActionModule as ListenerSecurityAction
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts
from ansible_collections.rdp.doctor.plugins.plugin_utils import host_protocol as hp
from tests.lab import faults
from tests.lab import model as m
from tests.lab.twins import TWINS


class FakeHost:
    """``_low_level_execute_command`` answered by the lab twins on a host model; ``before_apply`` runs before an apply."""

    def __init__(self, host: m.Host) -> None:
        self.host = host
        self.calls: list[str] = []
        self.before_apply: t.Callable[[m.Host], None] | None = None

    def __call__(self, cmd: str, sudoable: bool = False, in_data: bytes | None = None) -> dict[str, t.Any]:
        assert cmd == hp.COMMAND_LINE
        name, _script, params = hp.parse_payload(in_data or b"")
        self.calls.append(name)
        if name == "apply_rdp_changes" and self.before_apply is not None:
            self.before_apply(self.host)
            self.before_apply = None
        return {"rc": 0, "stdout": json.dumps(TWINS[name](self.host, params)) + "\r\n", "stderr": ""}


def make(action_class: type, args: dict[str, t.Any], fake: FakeHost, check_mode: bool = False) -> t.Any:
    task = mock.MagicMock()
    task.args = args
    task.check_mode = check_mode
    task.diff = False
    task.async_val = 0
    connection = mock.MagicMock()
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    action = action_class(task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    action._low_level_execute_command = fake  # type: ignore[method-assign]  # pylint: disable=protected-access
    return action


def facts_of(target: m.Host) -> dict[str, t.Any]:
    raw = TWINS["read_rdp_state"](target, host_facts.build_params({}))
    return host_facts.normalize(raw, dt.datetime.now(dt.timezone.utc), [])


def lab_host(*fault_names: str) -> m.Host:
    return faults.build_host("win01", "127.0.0.9", list(fault_names))


def test_compliant_with_facts_costs_no_round_trip() -> None:
    fake = FakeHost(lab_host())
    result = make(ListenerSecurityAction, {"nla": True, "facts": facts_of(fake.host)}, fake).run(task_vars={})
    assert fake.calls == [] and result["changed"] is False and result["outcome"] == "compliant"


def test_a_change_with_facts_costs_one_round_trip_and_is_verified() -> None:
    fake = FakeHost(lab_host("nla_disabled"))
    result = make(ListenerSecurityAction, {"nla": True, "facts": facts_of(fake.host)}, fake).run(task_vars={})
    assert fake.calls == ["apply_rdp_changes"]
    assert result["changed"] is True and result["outcome"] == "applied" and not result.get("failed")
    assert result["operations"][0]["status"] == "applied" and result["operations"][0]["after"]["value"] == 1
    assert result["diff"] == {"before": {"nla": False}, "after": {"nla": True}}
    assert fake.host.registry.get(m.RDP_TCP, "UserAuthentication") == 1


def test_without_facts_the_module_reads_first() -> None:
    fake = FakeHost(lab_host("credssp_vulnerable"))
    result = make(CredsspAction, {"allow_encryption_oracle": "mitigated"}, fake).run(task_vars={})
    assert fake.calls == ["read_rdp_state", "apply_rdp_changes"]
    assert result["reboot_required"] is True and "reboot" in result["msg"]


def test_check_mode_sends_nothing_and_reports_the_plan() -> None:
    fake = FakeHost(lab_host("security_layer_rdp"))
    result = make(ListenerSecurityAction, {"security_layer": "tls", "facts": facts_of(fake.host)}, fake, check_mode=True).run(task_vars={})
    assert fake.calls == [] and result["changed"] is True and result["outcome"] == "check_mode"
    assert result["operations"][0]["set"]["value"] == 2 and fake.host.registry.get(m.RDP_TCP, "SecurityLayer") == 0


def test_a_refusal_fails_before_anything_is_sent() -> None:
    fake = FakeHost(lab_host())
    result = make(ListenerSecurityAction, {"nla": False, "facts": facts_of(fake.host)}, fake).run(task_vars={})
    assert fake.calls == [] and result["failed"] is True and result["outcome"] == "refused" and "allow_insecure" in result["msg"]


def test_option_problems_fail_before_the_host_is_read() -> None:
    fake = FakeHost(lab_host())
    result = make(ListenerSecurityAction, {"port": 0, "allow_port_change": True}, fake).run(task_vars={})
    assert fake.calls == [] and result["failed"] is True and "port must be a TCP port" in result["msg"]


def test_facts_that_are_not_rdp_doctor_facts_are_refused() -> None:
    fake = FakeHost(lab_host())
    result = make(ListenerSecurityAction, {"nla": True, "facts": {"something": 1}}, fake).run(task_vars={})
    assert fake.calls == [] and result["failed"] is True and "facts_version" in result["msg"]


def test_drift_rereads_replans_and_applies_once() -> None:
    fake = FakeHost(lab_host("security_layer_rdp"))
    facts = facts_of(fake.host)
    fake.before_apply = lambda host: host.reg_set(m.RDP_TCP, "SecurityLayer", 1)
    result = make(ListenerSecurityAction, {"security_layer": "tls", "facts": facts}, fake).run(task_vars={})
    assert fake.calls == ["apply_rdp_changes", "read_rdp_state", "apply_rdp_changes"]
    assert result["outcome"] == "applied" and result["diff"]["before"] == {"security_layer": "negotiate"}


def test_drift_to_the_wanted_value_ends_compliant() -> None:
    fake = FakeHost(lab_host("nla_disabled"))
    facts = facts_of(fake.host)
    fake.before_apply = lambda host: host.reg_set(m.RDP_TCP, "UserAuthentication", 1)
    result = make(ListenerSecurityAction, {"nla": True, "facts": facts}, fake).run(task_vars={})
    assert fake.calls == ["apply_rdp_changes", "read_rdp_state"] and result["changed"] is False and result["outcome"] == "compliant"


def test_a_failed_apply_is_rolled_back_and_the_task_says_so() -> None:
    fake = FakeHost(lab_host("security_layer_rdp", "nla_disabled"))
    fake.host.apply_fail_at = 2
    result = make(ListenerSecurityAction, {"security_layer": "tls", "nla": True}, fake).run(task_vars={})
    assert result["failed"] is True and result["outcome"] == "rolled_back" and result["still_applied"] == []
    assert "op02" in result["msg"] and "every applied operation was undone" in result["msg"]
    assert fake.host.registry.get(m.RDP_TCP, "SecurityLayer") == 0


def test_a_partial_rollback_names_what_is_still_applied() -> None:
    fake = FakeHost(lab_host("security_layer_rdp", "nla_disabled"))
    answer = {"schema": "rdp.doctor/apply_rdp_changes/1", "run_id": "x", "host_time_utc": "2026-11-26T13:00:00Z", "outcome": "partial",
              "drift": [], "operations": [
                  {"id": "op01", "kind": "registry_value", "status": "rollback_failed", "before": {}, "after": {},
                   "error": {"type": "System.UnauthorizedAccessException", "message": "Access is denied"}, "reversible": True},
                  {"id": "op02", "kind": "registry_value", "status": "failed", "before": {}, "after": {},
                   "error": {"type": "System.IO.IOException", "message": "boom"}, "reversible": True}]}
    calls = []

    def execute(cmd: str, sudoable: bool = False, in_data: bytes | None = None) -> dict[str, t.Any]:
        calls.append(cmd)
        return {"rc": 0, "stdout": json.dumps(answer), "stderr": ""}

    action = make(ListenerSecurityAction, {"security_layer": "tls", "nla": True, "facts": facts_of(fake.host)}, fake)
    action._low_level_execute_command = execute  # type: ignore[method-assign]  # pylint: disable=protected-access
    result = action.run(task_vars={})
    assert result["failed"] is True and result["outcome"] == "partial" and result["still_applied"] == ["op01"]
    assert "STILL APPLIED on the host: op01" in result["msg"]


def test_a_change_the_host_does_not_show_is_unverified() -> None:
    fake = FakeHost(lab_host("nla_disabled"))
    facts = facts_of(fake.host)
    real = TWINS["apply_rdp_changes"]

    def lying(cmd: str, sudoable: bool = False, in_data: bytes | None = None) -> dict[str, t.Any]:
        _name, _script, params = hp.parse_payload(in_data or b"")
        answer = real(fake.host, params)
        answer["operations"][0]["after"] = {"present": True, "type": "DWORD", "value": 0}
        return {"rc": 0, "stdout": json.dumps(answer), "stderr": ""}

    action = make(ListenerSecurityAction, {"nla": True, "facts": facts}, fake)
    action._low_level_execute_command = lying  # type: ignore[method-assign]  # pylint: disable=protected-access
    result = action.run(task_vars={})
    assert result["failed"] is True and result["outcome"] == "unverified" and "value is 0 after the change, not 1" in result["msg"]


@pytest.mark.parametrize("action_class,args", [(ListenerSecurityAction, {"security_layer": "tls"}),
                                               (CredsspAction, {"allow_encryption_oracle": "force_updated_clients"})])
def test_results_are_json_and_carry_the_contract_keys(action_class: type, args: dict[str, t.Any]) -> None:
    fake = FakeHost(lab_host("security_layer_rdp"))
    result = make(action_class, args, fake).run(task_vars={})
    json.dumps(result)
    assert {"changed", "diff", "operations", "outcome", "reboot_required", "warnings", "manual", "msg"} <= set(result)


def test_a_thin_subclass_with_static_planner_and_option_problems_works() -> None:
    """The other accepted subclass style: ``planner = staticmethod(plan)``, ``option_problems = staticmethod(...)``, no MODULE."""
    from ansible_collections.rdp.doctor.plugins.module_utils.planners import credssp
    from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction

    class Thin(RemediationAction):
        ARGUMENT_SPEC = {"allow_encryption_oracle": {"type": "str"}, "allow_insecure": {"type": "bool", "default": False}}
        planner = staticmethod(credssp.plan)
        option_problems = staticmethod(credssp.option_problems)

    fake = FakeHost(lab_host("credssp_force_updated"))
    action = make(Thin, {"allow_encryption_oracle": "mitigated", "facts": facts_of(fake.host)}, fake)
    action._task.action = "rdp.doctor.credssp"  # pylint: disable=protected-access
    result = action.run(task_vars={})
    assert result["outcome"] == "applied" and result["msg"].startswith("rdp.doctor.credssp: changed allow_encryption_oracle")
    assert make(Thin, {}, FakeHost(lab_host())).run(task_vars={})["msg"].startswith("allow_encryption_oracle is required")
