"""End to end: how the diagnose role publishes its results (issue 8), against the lab's small fleet.

The diagnose task returns ``rdp_doctor_facts`` / ``_probe`` / ``_findings`` / ``_host_state`` as facts (no
per-host ``set_fact``). So: the roles work with ``INJECT_FACTS_AS_VARS=False`` (they read ``ansible_facts``);
the facts are cacheable and a fact cache keeps them between runs; and a host that Ansible itself finds
unreachable before the action runs still gets a state of this run, never the cached one of an earlier run.
"""

from __future__ import annotations

import json
import re
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

#: A connection plugin that fails as Ansible sets it up, before the task's action runs: the task comes back
#: unreachable from Ansible itself (the lab's transport faults are seen by the action, which reports them).
#: It fails the diagnose task only (a host that drops between two tasks; one lost at an earlier task is out of the
#: play before the diagnose role can say anything about it).
LOST_CONNECTION = '''\
from __future__ import annotations

DOCUMENTATION = """
name: lost
short_description: fails before the action runs (rdp.doctor test)
description: Raises AnsibleConnectionFailure when Ansible sets its options for rdp.doctor.diagnose_host.
author: rdp.doctor contributors
"""

import os

from ansible.errors import AnsibleConnectionFailure
from ansible.plugins.connection.local import Connection as LocalConnection


class Connection(LocalConnection):
    transport = "lost"

    def set_options(self, task_keys=None, var_options=None, direct=None):
        super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        keys = task_keys or {}
        lose_at = os.environ.get("RDP_DOCTOR_TEST_LOSE_AT", "diagnose_host")
        # remediate_host: the plan/apply task, not the role's first task (validate_only) that runs it too
        if str(keys.get("action", "")).endswith(lose_at) and not (keys.get("args") or {}).get("validate_only"):
            raise AnsibleConnectionFailure("lost: the host went away before the task started")
'''

HOSTS = "ok-2022,f-rdp-disabled"


def then_dump(playbook: str, content: str, through_hostvars: bool = False) -> str:
    """The collection's ``playbook``, then a play writing ``content`` (a template) for each host of HOSTS into
    ``rdp_doctor_test_dump``: on each host itself, or once through ``hostvars[item]`` (a host Ansible failed or found
    unreachable has left the play, not hostvars)."""
    task: dict[str, t.Any] = {
        "name": "Dump what the host holds",
        "ansible.builtin.copy": {"content": content, "mode": "0600",
                                 "dest": "{{ rdp_doctor_test_dump }}/{{ %s }}.json" % ("item" if through_hostvars else "inventory_hostname")},
        "delegate_to": "localhost", "check_mode": False, "changed_when": False}
    if through_hostvars:
        task.update(loop=HOSTS.split(","), run_once=True)
    return yaml.safe_dump([{"name": f"Run the collection's playbook {playbook}", "ansible.builtin.import_playbook": playbook},
                           {"name": "Write what each host holds, for the test", "hosts": "windows", "gather_facts": False,
                            "tasks": [task]}], sort_keys=False)


#: Remediate (which reads first with the diagnose role), then what each host holds, read as facts only, and whether
#: the names also exist as variables.
REMEDIATE_AND_DUMP = then_dump("rdp.doctor.remediate", (
    "{{ {'host_state': ansible_facts['rdp_doctor_host_state'], 'findings': ansible_facts['rdp_doctor_findings'],"
    " 'probe': ansible_facts['rdp_doctor_probe'], 'facts_version': ansible_facts['rdp_doctor_facts'].facts_version | default(None),"
    " 'remediation': ansible_facts['rdp_doctor_remediation'], 'injected': rdp_doctor_findings is defined,"
    " 'old_name': ansible_facts['rdp_doctor'] is defined} | to_json }}"))

#: Diagnose, then what each host holds under the names users read (facts injected as variables: the default).
DIAGNOSE_AND_DUMP = then_dump("rdp.doctor.diagnose", (
    "{{ {'host_state': hostvars[item].rdp_doctor_host_state, 'findings': hostvars[item].rdp_doctor_findings,"
    " 'probe': hostvars[item].rdp_doctor_probe, 'facts': hostvars[item].rdp_doctor_facts,"
    " 'fact': hostvars[item].ansible_facts['rdp_doctor_host_state']} | to_json }}"), through_hostvars=True)

#: Remediate, then both hosts' remediation records.
REMEDIATE_ONLY_AND_DUMP = then_dump("rdp.doctor.remediate", "{{ {'remediation': hostvars[item].ansible_facts['rdp_doctor_remediation']} | to_json }}",
                                    through_hostvars=True)


def run_dumping(run_playbook: RunPlaybook, template: str, inventories: list[Path], folder: Path,
                env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict[str, dict[str, t.Any]]]:
    """Run a playbook with a dump play; the process and each host's dump."""
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / "dump"
    dump.mkdir(exist_ok=True)
    playbook = folder / "playbook.yml"
    playbook.write_text(template, encoding="utf-8")
    plugins = folder / "connection_plugins"  # next to the playbook: Ansible loads it for this run
    plugins.mkdir(exist_ok=True)
    (plugins / "lost.py").write_text(LOST_CONNECTION, encoding="utf-8")
    args = ["-i", str(inventories[1])] if len(inventories) > 1 else []
    args += ["--limit", HOSTS, "-e", f"rdp_doctor_test_dump={dump}", "-e", "rdp_doctor_serial=0"]
    process = run_playbook(playbook, inventories[0], args, env=env)
    return process, {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in dump.glob("*.json")}


def cached_facts(cache: Path, host: str) -> dict[str, t.Any]:
    """A host's facts in the jsonfile fact cache (ansible-core 2.19 names the file s1_<host> and wraps the JSON
    document in a ``__payload__`` string; older versions write <host> and the document itself)."""
    (path,) = [p for p in cache.iterdir() if p.name == host or p.name.endswith("_" + host)]
    document = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(document.get("__payload__"), str):
        document = json.loads(document["__payload__"])
    return t.cast(dict, document)


def test_facts_published_cached_and_lost_host_not_stale(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                        tmp_path: Path) -> None:
    """Remediate with INJECT_FACTS_AS_VARS=False, then diagnose with one host lost: a state of this run, not the cache's."""
    from tests.lab.fleet import SMALL_FLEET  # pylint: disable=import-outside-toplevel

    info = lab_fleet(SMALL_FLEET, fresh=True)
    cache = tmp_path / "fact-cache"
    env = {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(cache)}
    try:
        first, hosts = run_dumping(run_playbook, REMEDIATE_AND_DUMP, [info.inventory], tmp_path / "remediate",
                                   dict(env, ANSIBLE_INJECT_FACT_VARS="False"))
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
        assert set(hosts) == {"ok-2022", "f-rdp-disabled"}
        ok, broken = hosts["ok-2022"], hosts["f-rdp-disabled"]
        # The roles read the facts without injection: remediate planned from them and fixed the broken host.
        assert ok["host_state"]["state"] == "ok" and ok["findings"] == [] and ok["facts_version"] == 1
        assert ok["probe"]["verdict"]["ok"] is True and ok["remediation"]["state"] == "compliant"
        assert [f["id"] for f in broken["findings"]] == ["RDP-CONNECTIONS-DENIED"]
        assert broken["remediation"]["state"] == "changed", broken["remediation"]
        assert not ok["injected"] and not ok["old_name"]  # one copy of each, under the documented names only
        assert info.admin.counters("ok-2022")["round_trips"] == 1  # compliant: the read alone
        # Cacheable: the fact cache holds this run's four facts per host.
        cached = cached_facts(cache, "ok-2022")
        assert {"rdp_doctor_facts", "rdp_doctor_probe", "rdp_doctor_findings", "rdp_doctor_host_state"} <= set(cached)
        assert cached["rdp_doctor_host_state"]["state"] == "ok"

        # ok-2022 now fails in Ansible's hands before the diagnose action runs; the cache says it was fine.
        lost_inventory = tmp_path / "lost.yml"
        lost_inventory.write_text(yaml.safe_dump({"all": {"hosts": {"ok-2022": {"ansible_connection": "lost"}}}}), encoding="utf-8")
        second, hosts = run_dumping(run_playbook, DIAGNOSE_AND_DUMP, [info.inventory, lost_inventory], tmp_path / "lost", env)
    finally:
        lab_fleet.stop(info)
    # The recap tells the truth: Ansible itself found the lost host unreachable (its own error line says why), the
    # other one is green.
    assert second.returncode != 0, second.stdout[-3000:] + second.stderr[-2000:]
    recap = {line.split()[0]: line for line in second.stdout.splitlines() if ": ok=" in line}
    assert "unreachable=1" in recap["ok-2022"] and "failed=0" in recap["f-rdp-disabled"], recap
    assert re.search(r"fatal: \[ok-2022\]: UNREACHABLE! => .*lost: the host went away", second.stdout), second.stdout[-3000:]
    lost = hosts["ok-2022"]
    # A state of this run (published by the role's run-once task from the run's records), never the cache's "ok".
    assert lost["host_state"] == {"state": "unreachable", "msg": lost["host_state"]["msg"], "error": None}
    assert "Ansible lost the host before rdp.doctor.diagnose_host ran" in lost["host_state"]["msg"] and lost["fact"] == lost["host_state"]
    assert lost["facts"] == {} and lost["findings"] == [] and lost["probe"] is None
    # The run's fleet summary names it, with its reason on one line, after Ansible's own error line.
    summary = re.search(r"UNREACHABLE +ok-2022: .*Ansible lost the host", second.stdout)
    assert summary and summary.start() > second.stdout.index("fatal: [ok-2022]"), second.stdout[-3000:]
    # The other host: diagnosed in this run (fixed by the first run: no finding left).
    assert hosts["f-rdp-disabled"]["host_state"]["state"] == "ok" and hosts["f-rdp-disabled"]["findings"] == []


def test_host_lost_at_the_remediate_task_is_reported_and_published(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook,
                                                                   tmp_path: Path) -> None:
    """A host Ansible loses at the remediate task (after diagnose read it): unreachable in the recap, named in the fleet
    summary, and its rdp_doctor_remediation of this run published; the other host is fixed. (The run-once publishing
    task once got diagnose facts for it, failed on the missing remediation record, and so failed every host.)"""
    from tests.lab.fleet import SMALL_FLEET  # pylint: disable=import-outside-toplevel

    info = lab_fleet(SMALL_FLEET, fresh=True)
    lost_inventory = tmp_path / "lost.yml"
    lost_inventory.write_text(yaml.safe_dump({"all": {"hosts": {"ok-2022": {"ansible_connection": "lost"}}}}), encoding="utf-8")
    try:
        process, hosts = run_dumping(run_playbook, REMEDIATE_ONLY_AND_DUMP, [info.inventory, lost_inventory], tmp_path / "run",
                                     {"RDP_DOCTOR_TEST_LOSE_AT": "remediate_host"})
    finally:
        lab_fleet.stop(info)
    recap = {line.split()[0]: line for line in process.stdout.splitlines() if ": ok=" in line}
    assert process.returncode != 0 and "unreachable=1" in recap["ok-2022"], process.stdout[-3000:]
    assert "failed=0" in recap["f-rdp-disabled"] and "unreachable=0" in recap["f-rdp-disabled"], recap
    assert re.search(r"UNREACHABLE +ok-2022: .*before rdp.doctor.remediate_host ran", process.stdout), process.stdout[-3000:]
    assert hosts["ok-2022"]["remediation"]["state"] == "unreachable"
    assert hosts["f-rdp-disabled"]["remediation"]["state"] == "changed"
