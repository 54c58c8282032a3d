"""The collection on the ansible-core versions people run: 2.16, 2.17 and 2.18 next to this venv's 2.19.

``make test`` installs each older ansible-core in ``.cache/venvs/ansible-<version>``
(tests/ansible-versions/<version>.txt). Here the controller side (``ansible``, ``ansible-playbook`` and the
Python that runs the probe module) comes from that venv; the lab runs in this one. For each version, over
winrm and psrp (and ssh through the fake client): host_facts reads a host in one round trip with the same
command line on the wire as 2.19, and the diagnose playbook gives every host of a small fleet the same
findings as 2.19 with one round trip per host (docs/dev/contracts.md, section 1a).
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.ansible_env import OLDER_CONTROLLERS, REPO_ROOT, ansible_env, controller_bin
from tests.lab import dispatch, fake_ssh

pytestmark = pytest.mark.lab

DUMP_PLAYBOOK = """\
- name: Run the collection's diagnose playbook
  ansible.builtin.import_playbook: rdp.doctor.diagnose

- name: Write what diagnose concluded per host, for the test
  hosts: windows
  gather_facts: false
  tasks:
    - name: Dump the diagnosis
      ansible.builtin.copy:
        content: "{{ {'host_state': rdp_doctor_host_state, 'findings': rdp_doctor_findings} | to_json }}"
        dest: "{{ rdp_doctor_test_dump }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
      check_mode: false
      changed_when: false
"""

# What -vvvvv prints for the WinRS command (ansible.builtin.winrm _winrm_exec, 2.16 to 2.19).
WINRM_EXEC = re.compile(r"WINRM EXEC '(\S+)' \[([^\]]*)\]")


def _run(controller: str | None, tool: str, args: t.Sequence[str], timeout: float = 600.0) -> subprocess.CompletedProcess:
    """``tool args`` from the given controller's venv (None: this venv), with the working tree's collection."""
    executable = controller_bin(controller) / tool
    if not executable.exists():
        pytest.fail(f"{executable} is missing: `make test` (target `controllers`) installs ansible-core {controller} there")
    return subprocess.run([str(executable), *args], env=ansible_env(controller=controller), capture_output=True, text=True,
                          timeout=timeout, check=False, cwd=REPO_ROOT)


@pytest.fixture(name="versions_lab", scope="module")
def versions_lab_fixture(lab_fleet: t.Callable[..., t.Any]) -> t.Iterator[t.Any]:
    """A small fleet of this module's own (the tests reset and read its counters)."""
    from tests.lab.fleet import SMALL_FLEET  # pylint: disable=import-outside-toplevel

    info = lab_fleet(SMALL_FLEET, fresh=True)
    try:
        yield info
    finally:
        lab_fleet.stop(info)


def _hosts(lab: t.Any) -> list[str]:
    document = yaml.safe_load(lab.inventory_for("winrm").read_text(encoding="utf-8"))
    return list(document["all"]["children"]["windows"]["hosts"])


def _reset(lab: t.Any) -> None:
    for host in _hosts(lab):
        lab.admin.reset_counters(host)


def diagnose(lab: t.Any, controller: str | None, connection: str, folder: Path) -> dict[str, dict[str, t.Any]]:
    """Run the diagnose playbook from ``controller`` over ``connection``; every host's findings, one round trip each."""
    folder.mkdir(parents=True, exist_ok=True)
    playbook = folder / "diagnose_and_dump.yml"
    playbook.write_text(DUMP_PLAYBOOK, encoding="utf-8")
    _reset(lab)
    run = _run(controller, "ansible-playbook", ["-i", str(lab.inventory_for(connection)), str(playbook),
                                                "-e", f"rdp_doctor_test_dump={folder}"])
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "does not support Ansible version" not in run.stderr  # meta/runtime.yml requires_ansible covers it
    hosts = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in folder.glob("*.json")}
    assert set(hosts) == set(_hosts(lab))
    for host in hosts:
        counters = lab.admin.counters(host)
        assert (counters["round_trips"], counters["scripts"]) == (1, {"read_rdp_state": 1}), (controller, host, counters)
    return {host: {"state": value["host_state"]["state"],
                   "findings": [(f["id"], f["severity"], f["explains_0x904"]) for f in value["findings"]]}
            for host, value in hosts.items()}


@pytest.fixture(name="reference", scope="module")
def reference_fixture(versions_lab: t.Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, t.Any]]:
    """What diagnose concludes with this venv's ansible-core (2.19) over winrm."""
    result = diagnose(versions_lab, None, "winrm", tmp_path_factory.mktemp("reference"))
    assert all(value["state"] == "ok" for value in result.values())
    assert result["ok-2022"]["findings"] == [] and result["f-rdp-disabled"]["findings"]  # the fleet has both kinds
    return result


@pytest.mark.parametrize("connection", ["winrm", "psrp"])
@pytest.mark.parametrize("controller", OLDER_CONTROLLERS)
def test_diagnose_gives_the_same_findings_as_the_current_controller(versions_lab: t.Any, reference: dict[str, t.Any],
                                                                    tmp_path: Path, controller: str, connection: str) -> None:
    """Every host: ok, the same finding ids, severities and 0x904 flags as 2.19; one round trip per host."""
    assert diagnose(versions_lab, controller, connection, tmp_path / "dump") == reference


def _ssh_inventory(lab: t.Any, folder: Path) -> Path:
    """The lab's winrm inventory turned into ssh + PowerShell through the fake ssh client (tests/lab/fake_ssh.py)."""
    document = yaml.safe_load(lab.inventory_for("winrm").read_text(encoding="utf-8"))
    group = document["all"]["children"]["windows"]
    variables = {key: value for key, value in group["vars"].items()
                 if key not in ("ansible_port", "ansible_winrm_transport", "ansible_winrm_scheme", "ansible_password")}
    wrapper = fake_ssh.write_wrapper(folder / "ssh", password=group["vars"]["ansible_password"])
    variables.update({"ansible_connection": "ssh", "ansible_shell_type": "powershell", "ansible_ssh_executable": str(wrapper)})
    group["vars"] = variables
    inventory = folder / "inventory.ssh.yml"
    inventory.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return inventory


@pytest.mark.parametrize("connection", ["winrm", "psrp", "ssh"])
@pytest.mark.parametrize("controller", [*OLDER_CONTROLLERS, None], ids=[*OLDER_CONTROLLERS, "2.19"])
def test_host_facts_reads_a_host_in_one_round_trip(versions_lab: t.Any, tmp_path: Path, controller: str | None,
                                                   connection: str) -> None:
    """host_facts ad hoc: facts of the host, one round trip, and over winrm COMMAND_LINE itself on the wire."""
    inventory = _ssh_inventory(versions_lab, tmp_path) if connection == "ssh" else versions_lab.inventory_for(connection)
    versions_lab.admin.reset_counters("f-cert-expired")
    verbosity = ["-vvvvv"] if connection == "winrm" else []
    run = _run(controller, "ansible", ["-i", str(inventory), "f-cert-expired", "-m", "rdp.doctor.host_facts", *verbosity])
    assert run.returncode == 0 and "f-cert-expired | SUCCESS" in run.stdout, run.stdout[-3000:] + run.stderr[-2000:]
    counters = versions_lab.admin.counters("f-cert-expired")
    assert (counters["round_trips"], counters["scripts"]) == (1, {"read_rdp_state": 1}), counters
    facts = json.loads(run.stdout[run.stdout.index("{", run.stdout.index("f-cert-expired | SUCCESS")):])
    certificate = facts["ansible_facts"]["rdp_doctor"]["certificate"]
    assert certificate["bound"]["days_remaining"] < 0  # the lab host's expired listener certificate, read through this controller
    if connection == "winrm":
        sent = [(command, [word.strip("'") for word in arguments.split(", ")]) for command, arguments in WINRM_EXEC.findall(run.stdout)]
        assert sent == [("PowerShell", dispatch.COMMAND_LINE.split(" ")[1:])]
