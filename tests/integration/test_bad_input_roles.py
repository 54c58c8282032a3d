"""The roles refuse bad variables before they touch a host, end to end through ansible-playbook (issue 10).

One inventory, one host per bad variable, every host pointing at a closed loopback port: a role that touched a
host would report it UNREACHABLE. Each bad host must instead fail with a message naming the variable's option
and what is allowed, and never reach the host; a control host with good variables shows that the address is
indeed unreachable (so the test would see a touch). Two playbook runs cover both roles (the in-process corpus,
tests/unit/test_bad_input_corpus.py, covers every module option).
"""

from __future__ import annotations

import re
import socket
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

#: host -> (its bad role variables, a fragment of the message it must fail with)
DIAGNOSE_CASES: dict[str, tuple[dict[str, t.Any], str]] = {
    "d-event-days": ({"rdp_doctor_event_days": 0}, "event_days must be between 1 and 365"),
    "d-event-days-type": ({"rdp_doctor_event_days": "a week"},
                          "argument 'rdp_doctor_event_days' is of type str and we were unable to convert to int"),
    "d-probe-timeout-inf": ({"rdp_doctor_probe_timeout": float("inf")}, "probe_timeout must be a finite number"),
    "d-probe-host": ({"rdp_doctor_probe_host": "999.1.1.1"}, "probe_host: '999.1.1.1' is not an IPv4 address"),
    "d-server-name-nul": ({"rdp_doctor_probe_server_name": "win01\x00.evil"}, "probe_server_name must not contain control characters"),
    "d-blank-account": ({"rdp_doctor_accounts": [""]}, "accounts[0] must not be empty"),
    "d-severity": ({"rdp_doctor_diagnose_min_severity": "urgent"}, "value of rdp_doctor_diagnose_min_severity must be one of"),
}
REMEDIATE_CASES: dict[str, tuple[dict[str, t.Any], str]] = {
    "r-baseline-key": ({"rdp_doctor_baseline": {"bogus": 1}}, "rdp_doctor_baseline: unknown key 'bogus'"),
    "r-baseline-firewall": ({"rdp_doctor_baseline": {"firewall": {"port": 0}}}, "rdp.doctor.firewall: port must be a TCP port (1-65535)"),
    "r-baseline-duration": ({"rdp_doctor_baseline": {"session_limits": {"max_idle_time": "forever"}}},
                            "rdp.doctor.session_limits: max_idle_time: 'forever' is not a duration"),
    "r-reboot-delay": ({"rdp_doctor_remediate_reboot_delay": 1}, "reboot_delay must be a number of seconds from 5 to 600"),
    "r-switch": ({"rdp_doctor_fix_credssp": "perhaps"}, "argument 'rdp_doctor_fix_credssp' is of type str and we were unable to convert to bool"),
    "r-probe-timeout": ({"rdp_doctor_probe_timeout": float("nan")}, "probe_timeout must be a finite number of seconds in (0, 300], not nan"),
}
CONTROL = "control-good"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_inventory(path: Path, cases: dict[str, tuple[dict[str, t.Any], str]]) -> None:
    port = closed_port()
    hosts: dict[str, t.Any] = {name: dict(variables) for name, (variables, _fragment) in cases.items()}
    hosts[CONTROL] = {}
    document = {"all": {"children": {"windows": {"hosts": hosts, "vars": {
        "ansible_host": "127.0.0.1", "ansible_port": port, "ansible_connection": "winrm", "ansible_user": "rdpdoctor",
        "ansible_password": "NotUsed-9f3c", "ansible_winrm_transport": "basic", "ansible_winrm_scheme": "http",
        "ansible_winrm_read_timeout_sec": 10, "ansible_winrm_operation_timeout_sec": 5}}}}}
    path.write_text(yaml.safe_dump(document, allow_unicode=False), encoding="utf-8")


def host_lines(output: str, host: str) -> list[str]:
    """The oneline callback's lines about ``host`` (``host | STATUS => {...}`` / ``host | STATUS: ...``)."""
    return [line for line in output.splitlines() if line.startswith(f"{host} | ")]


def check_run(result: subprocess.CompletedProcess, cases: dict[str, tuple[dict[str, t.Any], str]]) -> None:
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output[-3000:]
    for host, (_variables, fragment) in cases.items():
        lines = host_lines(result.stdout, host)
        failed = [line for line in lines if re.match(rf"^{re.escape(host)} \| FAILED!", line)]
        assert failed, f"{host}: no failure in\n" + "\n".join(lines)
        assert fragment in failed[0], f"{host}: {failed[0][:600]}"
        assert not any("UNREACHABLE" in line or "unreachable" in line.lower() for line in lines), f"{host} was touched: {lines}"
    control = host_lines(result.stdout, CONTROL)
    assert any("UNREACHABLE" in line or "unreachable" in line.lower() for line in control), control


@pytest.mark.parametrize(("playbook", "cases"), [("rdp.doctor.diagnose", DIAGNOSE_CASES), ("rdp.doctor.remediate", REMEDIATE_CASES)],
                         ids=["diagnose", "remediate"])
def test_role_refuses_bad_variables_before_touching_a_host(tmp_path: Path, run_playbook: RunPlaybook, playbook: str,
                                                           cases: dict[str, tuple[dict[str, t.Any], str]]) -> None:
    inventory = tmp_path / "inventory.yml"
    write_inventory(inventory, cases)
    result = run_playbook(playbook, inventory, ["-e", "rdp_doctor_serial=100%", "-e", "rdp_doctor_max_fail_percentage=100"],
                          env={"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.oneline", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1"},
                          timeout=300)
    assert result.returncode != 0
    check_run(result, cases)
