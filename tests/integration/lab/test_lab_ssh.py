"""The host protocol through ``ansible.builtin.ssh`` with ``ansible_shell_type=powershell``.

No Windows sshd exists here: ``ansible_ssh_executable`` is the fake client ``tests/lab/fake_ssh.py``
(through a shell wrapper written in tmp_path). Ansible's ssh plugin gives it the remote command line as
the last argument and the payload on stdin; the fake forwards both to the lab host's WinRM endpoint, so
the host model and its counters stay in the lab process. What is proven: the collection's constant
command line arrives byte for byte, the stdin payload works, one host read is one round trip, a raw
command fails like PowerShell, and the diagnose role works unchanged over ssh.
"""

from __future__ import annotations

import base64
import json
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from tests.lab import fake_ssh
from tests.lab.dispatch import COMMAND_LINE

pytestmark = pytest.mark.lab

RunAnsible = t.Callable[..., subprocess.CompletedProcess]
RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

HOSTS = ("ok-2022", "f-cert-expired")
WINRM_ONLY_VARS = ("ansible_port", "ansible_winrm_transport", "ansible_winrm_scheme")

DIAGNOSE_AND_DUMP = """\
- name: Run the collection's diagnose playbook over ssh
  ansible.builtin.import_playbook: rdp.doctor.diagnose

- name: Write what diagnose concluded per host, for the test
  hosts: windows
  gather_facts: false
  tasks:
    - name: Dump the diagnosis
      ansible.builtin.copy:
        content: "{{ {'host_state': rdp_doctor_host_state, 'findings': rdp_doctor_findings, 'probe': rdp_doctor_probe} | to_json }}"
        dest: "{{ rdp_doctor_test_dump }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
"""


class SshSetup(t.NamedTuple):
    """An ssh inventory for the lab hosts, the fake client's wrapper and its call log."""

    inventory: Path
    wrapper: Path
    log: Path
    addresses: dict[str, str]


@pytest.fixture(name="small_lab", scope="module")
def small_lab_fixture(lab_fleet: t.Callable[..., t.Any]) -> t.Any:
    """The shared small fleet (healthy ok-2022, f-cert-expired among others)."""
    from tests.lab.fleet import SMALL_FLEET  # pylint: disable=import-outside-toplevel

    return lab_fleet(SMALL_FLEET)


def ssh_setup(lab: t.Any, folder: Path, password_in_wrapper: bool) -> SshSetup:
    """Turn the lab's winrm inventory into an ssh + PowerShell one for HOSTS, with a fresh fake client.

    ``password_in_wrapper``: the wrapper exports the password (no ansible_password); otherwise the
    inventory keeps ansible_password and the fake asks Ansible's SSH_ASKPASS, as OpenSSH would.
    """
    document = yaml.safe_load(lab.inventory_for("winrm").read_text(encoding="utf-8"))
    group = document["all"]["children"]["windows"]
    group["hosts"] = {name: group["hosts"][name] for name in HOSTS}
    variables = {key: value for key, value in group["vars"].items() if key not in WINRM_ONLY_VARS}
    password = variables.pop("ansible_password") if password_in_wrapper else None
    log = folder / "fake_ssh.log"
    wrapper = fake_ssh.write_wrapper(folder / "ssh", password=password, log=log)
    variables.update({"ansible_connection": "ssh", "ansible_shell_type": "powershell", "ansible_ssh_executable": str(wrapper)})
    group["vars"] = variables
    inventory = folder / "inventory.ssh.yml"
    inventory.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    addresses = {name: entry["ansible_host"] for name, entry in group["hosts"].items()}
    return SshSetup(inventory, wrapper, log, addresses)


def calls(setup: SshSetup) -> list[dict[str, t.Any]]:
    """What the fake client received, one record per ssh invocation."""
    if not setup.log.exists():
        return []
    return [json.loads(line) for line in setup.log.read_text(encoding="utf-8").splitlines()]


def reset(lab: t.Any) -> None:
    """Zero the lab counters of HOSTS (the fleet is shared with other tests of the session)."""
    for name in HOSTS:
        lab.admin.reset_counters(name)


def test_host_facts_over_ssh_sends_the_constant_command_line(small_lab: t.Any, run_ansible: RunAnsible, tmp_path: Path) -> None:
    """host_facts over ssh: facts for both hosts, one round trip each, COMMAND_LINE byte for byte."""
    setup = ssh_setup(small_lab, tmp_path, password_in_wrapper=True)
    tree = tmp_path / "tree"
    env = {"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_CALLBACKS_ENABLED": "ansible.builtin.tree",
           "ANSIBLE_CALLBACK_TREE_DIR": str(tree)}
    reset(small_lab)
    result = run_ansible(["windows", "-m", "rdp.doctor.host_facts"], setup.inventory, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for name in HOSTS:
        document = json.loads((tree / name).read_text(encoding="utf-8"))
        facts = document["ansible_facts"]["rdp_doctor"]
        assert facts["facts_version"] == 1 and not document.get("failed"), name
        counters = small_lab.admin.counters(name)
        assert (counters["round_trips"], counters["commands"], counters["scripts"]) == (1, 1, {"read_rdp_state": 1}), (name, counters)
    received = calls(setup)
    assert sorted(record["host"] for record in received) == sorted(setup.addresses.values())
    for record in received:
        # Ansible's ssh plugin puts the remote command last and the destination just before it.
        assert record["argv"][-1].encode("utf-8") == COMMAND_LINE.encode("utf-8")
        assert record["command_line"] == COMMAND_LINE and record["argv"][-2] == record["host"]
        assert " ".join([record["winrm_command"], *record["winrm_arguments"]]) == COMMAND_LINE
        assert record["user"] == "labadmin" and record["password_source"] == "env"
        assert record["stdin_bytes"] > 0 and record["rc"] == 0


def test_raw_command_over_ssh_fails_like_powershell(small_lab: t.Any, run_ansible: RunAnsible, tmp_path: Path) -> None:
    """A raw line reaches the host as a PowerShell script (no bootstrap): not recognized, rc 1, no round trip."""
    setup = ssh_setup(small_lab, tmp_path, password_in_wrapper=True)
    reset(small_lab)
    result = run_ansible(["ok-2022", "-m", "ansible.builtin.raw", "-a", "Get-Date"], setup.inventory)
    assert result.returncode == 2, result.stdout + result.stderr  # 2: a task failed
    assert "ok-2022 | FAILED | rc=1 >>" in result.stdout
    assert "The term 'Get-Date' is not recognized as the name of a cmdlet" in result.stdout
    assert "#< CLIXML" not in result.stdout  # the ssh plugin decoded PowerShell's CLIXML error stream
    [record] = calls(setup)
    assert record["argv"][-1] == "Get-Date" and record["stdin_bytes"] == 0 and record["rc"] == 1
    assert small_lab.admin.counters("ok-2022") == {"requests": 5, "round_trips": 0, "commands": 1, "refused": 0, "scripts": {}}


def test_wrong_password_over_ssh_is_unreachable(small_lab: t.Any, run_ansible: RunAnsible, tmp_path: Path) -> None:
    """WinRM's 401 becomes ssh's 'Permission denied' (rc 255), which Ansible reports as UNREACHABLE."""
    setup = ssh_setup(small_lab, tmp_path, password_in_wrapper=True)
    fake_ssh.write_wrapper(setup.wrapper, password="not-the-password", log=setup.log)
    reset(small_lab)
    result = run_ansible(["ok-2022", "-m", "rdp.doctor.host_facts"], setup.inventory)
    assert result.returncode == 4, result.stdout + result.stderr  # 4: host unreachable
    assert "ok-2022 | UNREACHABLE!" in result.stdout and "Permission denied" in result.stdout
    assert [record["rc"] for record in calls(setup)] == [255]
    assert small_lab.admin.counters("ok-2022")["round_trips"] == 0


@pytest.mark.parametrize(("argv", "expected"), [
    (["-C", "-o", "ControlPersist=60s", "-o", 'User="labadmin"', "-o", "Port=22", "127.1.0.2", "Get-Date"],
     ("127.1.0.2", "labadmin", 22, "Get-Date", "")),
    (["-vvv", "-p2222", "-l", "bob", "win01", "Write-Output", "hi"], ("win01", "bob", 2222, "Write-Output hi", "")),
    (["-o", "User=x", "-O", "check", "alice@win02"], ("win02", "alice", None, "", "check")),
])
def test_parse_argv_reads_what_ansible_passes(argv: list[str], expected: tuple[t.Any, ...]) -> None:
    """Destination, user, port, command line and control command from an ssh argv."""
    request = fake_ssh.parse_argv(argv)
    assert (request.host, request.user, request.port, request.command_line, request.control) == expected


def test_raw_lines_are_encoded_like_the_winrm_plugin_does() -> None:
    """The bootstrap line is split as is; any other line becomes an -EncodedCommand script."""
    command, arguments = fake_ssh.winrm_command(COMMAND_LINE)
    assert " ".join([command, *arguments]) == COMMAND_LINE
    command, arguments = fake_ssh.winrm_command("  Get-Date\n\n  exit 3 ")
    assert command == "PowerShell" and arguments[-2] == "-EncodedCommand"
    assert base64.b64decode(arguments[-1]).decode("utf-16-le") == "Get-Date\nexit 3"


def test_diagnose_role_over_ssh_finds_the_expired_certificate(small_lab: t.Any, run_playbook: RunPlaybook, tmp_path: Path) -> None:
    """The diagnose role, unchanged, over ssh (password from ansible_password via SSH_ASKPASS)."""
    setup = ssh_setup(small_lab, tmp_path, password_in_wrapper=False)
    dump = tmp_path / "dump"
    dump.mkdir()
    playbook = tmp_path / "diagnose.yml"
    playbook.write_text(DIAGNOSE_AND_DUMP, encoding="utf-8")
    reset(small_lab)
    result = run_playbook(playbook, setup.inventory, ["-e", f"rdp_doctor_test_dump={dump}", "-e", "rdp_doctor_diagnose_probe=false"])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    hosts = {path.stem: json.loads(path.read_text(encoding="utf-8")) for path in dump.glob("*.json")}
    assert set(hosts) == set(HOSTS)
    assert all(diagnosis["host_state"]["state"] == "ok" and diagnosis["probe"] is None for diagnosis in hosts.values())
    assert "RDP-CERT-EXPIRED" in [finding["id"] for finding in hosts["f-cert-expired"]["findings"]]
    assert hosts["ok-2022"]["findings"] == []
    assert {record["password_source"] for record in calls(setup)} == {"askpass"}
    for name in HOSTS:
        assert small_lab.admin.counters(name)["round_trips"] == 1
