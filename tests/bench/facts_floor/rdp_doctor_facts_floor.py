"""Bench-only action plugin: the cheapest conceivable diagnose, to measure what Ansible itself costs.

Per host it makes the diagnosis's one round trip (the real host script with its default parameters, its answer parsed)
and publishes facts of exactly the size and shape diagnose publishes - one healthy lab host's four facts,
captured by the bench - and does nothing else: no normalisation, no probe, no findings, no role variables, no
run record. ``make bench`` measures it as the ``facts_floor`` scenario; the gap between it and the raw-task floor
is Ansible's per-host handling of the answer and of ~1,400 published values, which no implementation of diagnose
that keeps its facts can avoid. Copied next to the generated playbook (``action_plugins/``) by
``tests/bench/bench_fleet.py``; never shipped in the collection.
"""

from __future__ import annotations

import json
import typing as t
from pathlib import Path

from ansible.plugins.action import ActionBase
from ansible.vars.clean import module_response_deepcopy

from ansible_collections.rdp.doctor.plugins.module_utils import host_facts
from ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol import run_host_script

#: Read when ansible-playbook's main process loads the plugin (its strategy does, before forking a worker), so
#: no worker pays for it: a worker's only costs are the round trip and its own copy of the facts.
PUBLISHED_FILE = Path(__file__).with_name("published_facts.json")
PUBLISHED: dict[str, t.Any] = json.loads(PUBLISHED_FILE.read_text(encoding="utf-8"))


class ActionModule(ActionBase):
    """One host-script round trip, then publish the captured facts (a fresh copy per host, as diagnose builds)."""

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        run_host_script(self._low_level_execute_command, host_facts.SCRIPT_NAME, host_facts.build_params({}),
                        host=str((task_vars or {}).get("inventory_hostname") or ""))
        result.update(changed=False, ansible_facts=module_response_deepcopy(PUBLISHED))
        return result
