"""Issue 10, faults at fleet scale: an apply whose answer is lost is never reported as "nothing changed".

The host (lab twins on a model) applies the plan; the connection then loses the answer (garbled, oversized, reset).
The task fails with outcome "unknown", says the host may have applied the plan and to run again; a second run reads the
host and converges.
"""

from __future__ import annotations

import importlib
import json
import typing as t

import pytest
from ansible.errors import AnsibleConnectionFailure

from ansible_collections.rdp.doctor.plugins.action.listener_security import ActionModule as ListenerSecurityAction
from ansible_collections.rdp.doctor.plugins.plugin_utils import host_protocol as hp
from tests.lab.transport_faults import GARBAGE, oversized_output
from tests.unit.plugins.action.test_remediation_action import FakeHost, facts_of, lab_host, make
from tests.unit.plugins.action.test_remediation_modules import TASK_ARGS


class LosingHost(FakeHost):
    """Runs every script on the model; the answer of the first apply is lost the way ``loss`` says."""

    def __init__(self, host: t.Any, loss: str) -> None:
        super().__init__(host)
        self.loss = loss

    def __call__(self, cmd: str, sudoable: bool = False, in_data: bytes | None = None) -> dict[str, t.Any]:
        answer = super().__call__(cmd, sudoable, in_data)
        if self.calls[-1] != "apply_rdp_changes" or not self.loss:
            return answer
        loss, self.loss = self.loss, ""
        if loss == "reset":
            raise AnsibleConnectionFailure("winrm connection error: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))")
        if loss == "garbled":
            return dict(answer, stdout=GARBAGE.decode("latin-1"))
        return dict(answer, stdout=oversized_output(answer["stdout"].encode(), hp.MAX_ANSWER_CHARS + 10).decode())


@pytest.mark.parametrize("loss, said", [("reset", "Connection reset by peer"), ("garbled", "did not answer with one JSON document"),
                                        ("oversized", "larger than the 4 MiB a host script may answer")])
def test_a_lost_apply_answer_is_unknown_not_unchanged_and_a_rerun_converges(loss: str, said: str) -> None:
    fake = LosingHost(lab_host("nla_disabled"), loss)
    result = make(ListenerSecurityAction, {"nla": True}, fake).run(task_vars={})
    assert result["failed"] is True and result["outcome"] == "unknown" and result["changed"] is True
    assert said in result["msg"] and "may have applied some or all of op" in result["msg"] and "run again" in result["msg"]
    assert json.dumps(result)  # plain data
    again = make(ListenerSecurityAction, {"nla": True}, fake).run(task_vars={})
    assert again["outcome"] == "compliant" and not again.get("failed")  # the host did apply it: the re-run converges
    assert fake.calls == ["read_rdp_state", "apply_rdp_changes", "read_rdp_state"]


def test_an_oversized_read_is_refused_before_it_is_parsed() -> None:
    big = oversized_output(b'{"facts_version": 1}', hp.MAX_ANSWER_CHARS + 1).decode()
    with pytest.raises(hp.HostScriptError, match=r"answered 4\.0 MiB, larger than the 4 MiB"):
        hp.parse_result("read_rdp_state", 0, big, "")
    assert hp.parse_result("x", 0, oversized_output(b'{"a": 1}', 1000).decode(), "")["a"] == 1


def test_unchanged_facts_given_still_cost_one_round_trip() -> None:
    """With facts (as the role passes them) a lost answer is the same outcome."""
    fake = LosingHost(lab_host("nla_disabled"), "garbled")
    result = make(ListenerSecurityAction, {"nla": True, "facts": facts_of(fake.host)}, fake).run(task_vars={})
    assert result["outcome"] == "unknown" and fake.calls == ["apply_rdp_changes"]


class BrokenTransport:
    """A connection whose every host-script answer is broken the way ``kind`` says."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls = 0

    def __call__(self, cmd: str, sudoable: bool = False, in_data: bytes | None = None) -> dict[str, t.Any]:
        self.calls += 1
        if self.kind == "reset":
            raise AnsibleConnectionFailure("basic: ('Connection aborted.', ConnectionResetError(104, 'Connection reset by peer'))")
        big = oversized_output(b'{"facts_version": 1}', hp.MAX_ANSWER_CHARS + 1).decode()
        stdout = GARBAGE.decode("latin-1") if self.kind == "garbled" else big
        return {"rc": 0, "stdout": stdout, "stderr": ""}


MODULE_ARGS = {"host_facts": {}, **{name: dict(args) for name, args in TASK_ARGS.items()}}


@pytest.mark.parametrize("module", sorted(MODULE_ARGS))
@pytest.mark.parametrize("kind, said", [("garbled", "did not answer with one JSON document"),
                                        ("oversized", "larger than the 4 MiB a host script may answer")])
def test_every_module_fails_a_broken_read_with_the_reason(module: str, kind: str, said: str) -> None:
    """host_facts and the eight remediation modules: a garbled or oversized read fails the task, names why, changes nothing."""
    action_class = importlib.import_module(f"ansible_collections.rdp.doctor.plugins.action.{module}").ActionModule
    transport = BrokenTransport(kind)
    result = make(action_class, MODULE_ARGS[module], transport).run(task_vars={"inventory_hostname": "win01"})  # type: ignore[arg-type]
    assert result["failed"] is True and said in result["msg"] and not result.get("changed"), result
    assert transport.calls == 1 and len(result["msg"]) < 1200  # one read, no apply; the garbage is not echoed at length


@pytest.mark.parametrize("module", sorted(MODULE_ARGS))
def test_every_module_lets_ansible_report_a_lost_connection(module: str) -> None:
    """A reset before anything was sent propagates as AnsibleConnectionFailure: Ansible marks the host UNREACHABLE, with why."""
    action_class = importlib.import_module(f"ansible_collections.rdp.doctor.plugins.action.{module}").ActionModule
    with pytest.raises(AnsibleConnectionFailure, match="Connection reset by peer"):
        make(action_class, MODULE_ARGS[module], BrokenTransport("reset")).run(task_vars={"inventory_hostname": "win01"})  # type: ignore[arg-type]
