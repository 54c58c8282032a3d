"""No secret leaks through remediation at -vvvvv (issue 10): the remediate role and every remediation module.

No remediation module takes a password, PFX password or key (a listener_certificate ``pfx_password`` is refused
as an unknown option: tests/unit/test_bad_input_corpus.py), so the secret at stake is the connection password.
Every path is run at the highest verbosity with Ansible's log file on: the role in check mode with --diff, the
role applying and verifying, the role rolling a host back after the probe got worse, every module in check mode
with diff and then applied, an apply whose 2nd operation fails (rolled back), a garbled host answer and an
option refused before the host is touched. The password appears in no output and no log, in any of them.
"""

from __future__ import annotations

import json
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

#: host -> (lab faults, the module task run on it in check mode and then for real)
MODULE_HOSTS: dict[str, tuple[list[str], str, dict[str, t.Any]]] = {
    "m-listener-security": (["nla_disabled"], "listener_security", {"nla": True}),
    "m-credssp": (["credssp_vulnerable"], "credssp", {"allow_encryption_oracle": "mitigated"}),
    "m-firewall": (["firewall_rdp_disabled"], "firewall", {"state": "enabled"}),
    "m-certificate": (["cert_expired"], "listener_certificate", {"state": "self_signed"}),
    "m-machinekeys": (["machinekeys_acl_broken"], "machinekeys", {"repair": "acl"}),
    "m-session-limits": (["ghost_sessions"], "session_limits",
                         {"max_disconnection_time": "8h", "logoff_disconnected_older_than": "1d", "logoff_sessions": True}),
    "m-services": (["termservice_stopped"], "services", {"termservice": {"state": "started"}}),
    "m-tls": (["tls12_disabled"], "tls_protocols", {"tls12": "enabled"}),
}
ROLE_FAULTS = ["nla_disabled", "security_layer_rdp", "credssp_vulnerable", "firewall_rdp_disabled"]


def fleet_document() -> dict[str, t.Any]:
    hosts = [{"name": name, "faults": faults} for name, (faults, _module, _options) in MODULE_HOSTS.items()]
    hosts += [{"name": "s-check", "faults": ROLE_FAULTS}, {"name": "s-apply", "faults": ROLE_FAULTS}, {"name": "s-rollback"},
              {"name": "s-fail", "faults": ["security_layer_rdp", "nla_disabled"]}, {"name": "s-garbled", "faults": ["nla_disabled"]}]
    return {"defaults": {"os_version": "2022"}, "hosts": hosts}


def modules_playbook() -> list[dict[str, t.Any]]:
    """Per module host: check mode with diff, then the apply; then the failure paths on s-fail and s-garbled."""
    plays = []
    for host, (_faults, module, options) in MODULE_HOSTS.items():
        plays.append({"name": f"{module} on {host}", "hosts": host, "gather_facts": False, "tasks": [
            {"name": "check", f"rdp.doctor.{module}": options, "check_mode": True, "diff": True, "register": "checked"},
            {"name": "apply", f"rdp.doctor.{module}": options, "diff": True, "register": "applied", "ignore_errors": True},
            {"name": "outcomes", "ansible.builtin.debug": {"msg": "OUTCOMES {{ checked.outcome }} {{ applied.outcome }}"}},
        ]})
    plays.append({"name": "failure paths", "hosts": "s-fail,s-garbled", "gather_facts": False, "tasks": [
        {"name": "refused before the host", "rdp.doctor.listener_security": {"nla": True, "revert_after": "forever"}, "ignore_errors": True},
        {"name": "apply that fails", "rdp.doctor.listener_security": {"security_layer": "tls", "nla": True}, "diff": True,
         "ignore_errors": True, "register": "failing"},
        {"name": "outcome", "ansible.builtin.debug": {"msg": "FAILURE {{ failing.outcome | default('none') }} {{ failing.msg | default('') }}"}},
    ]})
    return plays


def lab_password(inventory: str | Path) -> str:
    document = yaml.safe_load(Path(inventory).read_text(encoding="utf-8"))
    return str(document["all"]["children"]["windows"]["vars"]["ansible_password"])


class Verbose:
    """Runs playbooks at -vvvvv with Ansible's log file on; keeps every output to search."""

    def __init__(self, run_playbook: RunPlaybook, inventory: str, tmp_path: Path) -> None:
        self.run_playbook, self.inventory, self.tmp_path = run_playbook, inventory, tmp_path
        self.outputs: list[str] = []
        self.count = 0

    def __call__(self, playbook: str | Path, *args: str) -> subprocess.CompletedProcess:
        self.count += 1
        log = self.tmp_path / f"ansible{self.count}.log"
        run = self.run_playbook(playbook, self.inventory, ["-vvvvv", *args], env={"ANSIBLE_LOG_PATH": str(log)})
        assert log.exists() and log.stat().st_size > 0, "Ansible wrote no log"
        self.outputs += [run.stdout, run.stderr, log.read_text(encoding="utf-8", errors="replace")]
        return run


def test_no_password_in_remediation_at_vvvvv(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook, tmp_path: Path) -> None:
    fleet = tmp_path / "secrets.yml"
    fleet.write_text(yaml.safe_dump(fleet_document(), sort_keys=False), encoding="utf-8")
    lab = lab_fleet(fleet, fresh=True)
    try:
        inventory = lab.inventory_for("winrm")
        password = lab_password(inventory)
        assert len(password) >= 8
        run = Verbose(run_playbook, inventory, tmp_path)

        checked = run("rdp.doctor.remediate", "--check", "--diff", "--limit", "s-check")
        assert checked.returncode == 0, checked.stdout[-3000:]
        assert '"outcome": "check_mode"' in checked.stdout and "running host script 'apply_rdp_changes'" not in checked.stdout

        applied = run("rdp.doctor.remediate", "--diff", "--limit", "s-apply")
        assert applied.returncode == 0, applied.stdout[-3000:]
        assert '"outcome": "applied"' in applied.stdout and "running host script 'apply_rdp_changes'" in applied.stdout

        rolled = run("rdp.doctor.remediate", "--limit", "s-rollback", "-e",
                     json.dumps({"rdp_doctor_baseline": {"firewall": {"state": "disabled"}}, "rdp_doctor_allow_lockout": True}))
        assert rolled.returncode != 0 and "ROLLED BACK" in rolled.stdout, rolled.stdout[-3000:]

        lab.admin.fail_apply_at("s-fail", 2)
        lab.admin.set_transport_fault("s-garbled", "garbled", count=1)
        playbook = tmp_path / "modules.yml"
        playbook.write_text(yaml.safe_dump(modules_playbook(), sort_keys=False), encoding="utf-8")
        modules = run(playbook, "--diff")
        outcomes = [line for line in modules.stdout.splitlines() if "OUTCOMES " in line and '"msg"' in line]
        assert len(outcomes) == len(MODULE_HOSTS), modules.stdout[-4000:]
        assert all("OUTCOMES check_mode applied" in line for line in outcomes), outcomes
        assert "revert_after: 'forever' is not a duration" in modules.stdout
        failures = [line for line in modules.stdout.splitlines() if '"msg": "FAILURE ' in line]
        assert len(failures) == 2 and any("FAILURE rolled_back" in line for line in failures), failures or modules.stdout[-4000:]
        assert any("FAILURE none" in line and "read_rdp_state" in line for line in failures), failures  # the garbled answer

        for output in run.outputs:
            assert password not in output
    finally:
        lab_fleet.stop(lab)
