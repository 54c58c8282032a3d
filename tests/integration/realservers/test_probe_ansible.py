"""rdp.doctor.probe through Ansible itself (ad-hoc ``ansible localhost -m rdp.doctor.probe``), against
real xrdp servers: module packaging (AnsiballZ with the collection's module_utils), argument spec,
check mode, and the verdict in the returned JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ansible_env import ansible_env

pytestmark = pytest.mark.realservers

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


def run_module(args: str, *extra: str) -> tuple[str, dict]:
    """Run the module on localhost; return the status word and the result (``localhost | STATUS => {...}``)."""
    env = ansible_env({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal", "ANSIBLE_LOCALHOST_WARNING": "0",
                       "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0"})
    proc = subprocess.run([ANSIBLE, "localhost", "-m", "rdp.doctor.probe", "-a", args, *extra], env=env,
                          capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    head, sep, body = proc.stdout.partition(" => ")
    try:
        return head.rsplit("| ", 1)[-1].strip(), json.loads(body) if sep else {}
    except json.JSONDecodeError as exc:
        raise AssertionError(f"ansible rc={proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}") from exc


def test_module_reports_the_expired_certificate(lab) -> None:
    port = lab.port("xrdp-tls-expired")
    status, result = run_module(f"host=127.0.0.1 port={port} ca_bundle={lab.ca_bundle} read_timeout=2")
    assert status == "SUCCESS", result.get("msg")
    assert result["changed"] is False
    assert result["schema"] == "rdp.doctor/probe/1"
    assert result["verdict"]["failed_step"] == "certificate"
    assert result["verdict"]["finding_ids"][:4] == ["RDP-CERT-EXPIRED", "RDP-CERT-NAME-MISMATCH",
                                                    "RDP-CERT-SELF-SIGNED", "RDP-CERT-UNTRUSTED"]
    assert [step["step"] for step in result["steps"]] == ["dns", "tcp", "x224", "tls", "certificate", "nla"]


def test_module_in_check_mode_with_options(lab) -> None:
    port = lab.port("xrdp-neg-valid")
    status, result = run_module(f"host=127.0.0.1 port={port} ca_bundle={lab.ca_bundle} mixes=0x0b,0x01 steps=nla,tls", "--check")
    assert status == "SUCCESS" and result["changed"] is False
    assert result["x224"]["answers"] == {"0x0b": "SSL", "0x01": "SSL"}
    assert {s["step"]: s["verdict"] for s in result["steps"]} == {
        "dns": "ok", "tcp": "ok", "x224": "ok", "tls": "ok", "certificate": "skipped", "nla": "warn"}
    assert result["verdict"]["ok"] is True


def test_module_rejects_bad_options(lab) -> None:  # pylint: disable=unused-argument
    status, result = run_module("host=127.0.0.1 mixes=0x1f")
    assert status == "FAILED!" and "first mix must not request RDSTLS" in result["msg"]
    status, result = run_module("host=127.0.0.1 ca_bundle=/nonexistent/ca.pem")
    assert status == "FAILED!" and "ca_bundle not found" in result["msg"]
