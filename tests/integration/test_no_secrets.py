"""No password appears in any output, even at the highest verbosity, on success and on failure."""

from __future__ import annotations

import subprocess
import typing as t

import pytest
import yaml

from tests.lab.fleet import SMALL_FLEET

pytestmark = pytest.mark.lab

RunAnsible = t.Callable[..., subprocess.CompletedProcess]


def lab_password(inventory: t.Any) -> str:
    """The WinRM password the lab inventory holds."""
    with open(inventory, encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    return document["all"]["children"]["windows"]["vars"]["ansible_password"]


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
def test_password_never_printed_at_vvvvv(lab_fleet: t.Callable[..., t.Any], run_ansible: RunAnsible, connection: str) -> None:
    """host_facts at -vvvvv, then a failing host script (garbled answer): the password is in neither output."""
    info = lab_fleet(SMALL_FLEET)
    inventory = info.inventory_for(connection)
    password = lab_password(inventory)
    assert len(password) >= 8

    ok = run_ansible(["ok-2022", "-m", "rdp.doctor.host_facts", "-vvvvv"], inventory)
    assert ok.returncode == 0, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert '"facts_version": 1' in ok.stdout
    # The verbose protocol log names the script and its parameter names, not their values.
    assert "running host script 'read_rdp_state'" in ok.stdout + ok.stderr

    info.admin.set_transport_fault("f-cert-expired", "garbled")
    failed = run_ansible(["f-cert-expired", "-m", "rdp.doctor.host_facts", "-vvvvv"], inventory)
    assert failed.returncode != 0
    for output in (ok.stdout, ok.stderr, failed.stdout, failed.stderr):
        assert password not in output
