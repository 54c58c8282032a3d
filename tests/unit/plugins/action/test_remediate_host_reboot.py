"""remediate_host's reboot opt-in with a fake connection whose host is a lab model run by the real twins.

The fake clock advances the host's clock on every sleep of the action, so the restart the apply scheduled happens
between two reads, and the host refuses connections while it restarts (as the lab's WinRM endpoint does).
"""

from __future__ import annotations

import datetime as dt
import json
import typing as t
from unittest import mock

from ansible.errors import AnsibleConnectionFailure

from ansible_collections.rdp.doctor.plugins.action import remediate_host
from ansible_collections.rdp.doctor.plugins.action.remediate_host import ActionModule as RemediateHostAction
from tests.lab import behaviour
from tests.lab import model as m
from tests.unit.plugins.action.test_remediation_action import FakeHost, facts_of, lab_host, make

SECRET = "s3cret-Passw0rd"


class RestartingHost(FakeHost):
    """A host whose scheduled restart happens at the first request after its time; refused while it restarts."""

    def __init__(self, host: m.Host, comes_back: bool = True) -> None:
        super().__init__(host)
        self.comes_back = comes_back
        self.refused = 0

    def __call__(self, cmd: str, sudoable: bool = False, in_data: bytes | None = None) -> dict[str, t.Any]:
        now = self.host.clock(dt.datetime.now(dt.timezone.utc))
        self.host.restart_if_due(now)
        if self.host.winrm_down(now) or (not self.comes_back and self.host.down_until is not None):
            self.refused += 1
            raise AnsibleConnectionFailure(f"basic: connection reset (password={SECRET})")
        return super().__call__(cmd, sudoable, in_data)


def run(fake: FakeHost, check_mode: bool = False, **options: t.Any) -> dict[str, t.Any]:
    args = {"baseline": {"tls12": "enabled"}, "facts": facts_of(fake.host), "reboot_delay": 5, **options}
    slept: list[float] = []

    def sleep(seconds: float) -> None:  # the host's time moves on instead of the test waiting
        slept.append(seconds)
        fake.host.clock_offset_seconds += seconds

    with mock.patch.object(remediate_host.time, "sleep", sleep), \
            mock.patch.object(remediate_host.time, "monotonic", lambda: sum(slept)):
        return make(RemediateHostAction, args, fake, check_mode=check_mode).run(task_vars={"inventory_hostname": "win01"})


def test_reboot_off_reports_that_a_reboot_is_required() -> None:
    fake = RestartingHost(lab_host("tls12_disabled"))
    result = run(fake)
    assert result["outcome"] == "applied" and result["reboot_required"] is True and result["rebooted"] is False
    assert "host_restart" not in [op["kind"] for op in result["operations"]]
    assert fake.host.restart_at is None and fake.host.reboot_pending and "TLSv1.2" not in behaviour.tls_versions(fake.host)


def test_reboot_restarts_in_the_same_apply_and_waits_until_the_host_is_back() -> None:
    fake = RestartingHost(lab_host("tls12_disabled"))
    boot_before = facts_of(fake.host)["os"]["last_boot_utc"]
    result = run(fake, reboot=True)
    assert not result.get("failed"), result["msg"]
    assert fake.calls[0] == "apply_rdp_changes" and set(fake.calls[1:]) == {"read_rdp_state"}  # no extra apply
    assert fake.refused >= 1  # it read while Windows restarted and kept going
    restart = result["operations"][-1]
    assert restart["kind"] == "host_restart" and restart["status"] == "applied" and restart["set"] == {"delay_seconds": 5}
    assert restart["expect"] == {"last_boot_utc": boot_before}
    assert result["changed"] is True and result["rebooted"] is True and result["reboot_required"] is False
    assert isinstance(result["reboot_seconds"], int) and result["reboot_seconds"] >= 5
    assert result["ansible_facts"]["rdp_doctor"]["os"]["last_boot_utc"] != boot_before
    assert "RDP-TLS12-DISABLED" not in result["findings_after"] and "restarted the host" in result["msg"]
    assert "TLSv1.2" in behaviour.tls_versions(fake.host) and not fake.host.reboot_pending
    assert SECRET not in json.dumps(result)


def test_a_host_that_does_not_come_back_fails_with_the_timeout() -> None:
    fake = RestartingHost(lab_host("tls12_disabled"), comes_back=False)
    result = run(fake, reboot=True, reboot_timeout=30)
    assert result["failed"] is True and result["changed"] is True and result["rebooted"] is False
    assert "did not come back within 30 s" in result["msg"]
    assert SECRET not in json.dumps(result)


def test_check_mode_with_reboot_plans_the_restart_and_sends_nothing() -> None:
    fake = RestartingHost(lab_host("tls12_disabled"))
    result = run(fake, check_mode=True, reboot=True)
    assert fake.calls == [] and result["outcome"] == "check_mode" and result["rebooted"] is False
    assert result["operations"][-1]["kind"] == "host_restart" and "would restart the host" in result["msg"]
    assert fake.host.restart_at is None


def test_a_compliant_host_is_not_restarted() -> None:
    fake = RestartingHost(lab_host())
    result = run(fake, reboot=True)
    assert fake.calls == [] and result["outcome"] == "compliant" and result["rebooted"] is False


def test_reboot_options_are_checked_before_the_host_is_touched() -> None:
    fake = RestartingHost(lab_host("tls12_disabled"))
    result = run(fake, reboot=True, reboot_delay=1, reboot_timeout=5)
    assert result["failed"] is True and fake.calls == []
    assert "reboot_delay must be a number of seconds from 5 to 600" in result["msg"] and "reboot_timeout" in result["msg"]


def test_only_transport_failures_are_waited_out() -> None:
    from winrm.exceptions import WinRMTransportError  # pylint: disable=import-outside-toplevel

    assert remediate_host.expected_while_restarting(AnsibleConnectionFailure("reset"))
    assert remediate_host.expected_while_restarting(ConnectionResetError())
    assert remediate_host.expected_while_restarting(WinRMTransportError("http", 500, "Bad HTTP response"))
    assert not remediate_host.expected_while_restarting(KeyError("a bug"))
