# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.host_facts``: everything RDP about a Windows host in one round trip.

Imperative shell around pure functions: options -> ``host_facts.build_params`` -> one run of the
``read_rdp_state`` host script (``host_protocol.run_host_script``) -> ``host_facts.normalize`` ->
``ansible_facts.rdp_doctor``, all in ``plugin_utils/facts_reader.read_host_facts`` (shared with the
remediation modules). It only reads, so check mode behaves exactly like a normal run.
"""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase

from ansible_collections.rdp.doctor.plugins.module_utils import host_facts
from ansible_collections.rdp.doctor.plugins.module_utils import validation
from ansible_collections.rdp.doctor.plugins.plugin_utils.facts_reader import FactsDocumentError, read_host_facts
from ansible_collections.rdp.doctor.plugins.plugin_utils.host_protocol import HostScriptError

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "accounts": {"type": "list", "elements": "str", "default": []},
    "event_days": {"type": "int", "default": host_facts.DEFAULT_EVENT_DAYS},
    "event_sample_size": {"type": "int", "default": host_facts.DEFAULT_EVENT_SAMPLE_SIZE},
    "port_hint": {"type": "int"},
    "include_raw": {"type": "bool", "default": False},
}

#: Longest account name accepted: a user principal name is at most 256 characters (DOMAIN\name is far shorter).
MAX_ACCOUNT_LENGTH = 256


def option_problems(args: dict[str, t.Any]) -> list[str]:
    """Range checks the argument spec cannot express (the host script's schema limits)."""
    # Generic checks by type; an account name is at most 256 characters (a user principal name), never blank.
    problems = validation.spec_problems(ARGUMENT_SPEC, args, lengths={"accounts": MAX_ACCOUNT_LENGTH})
    if not 1 <= args["event_days"] <= 365:
        problems.append(f"event_days must be between 1 and 365, not {args['event_days']}")
    if not 0 <= args["event_sample_size"] <= 50:
        problems.append(f"event_sample_size must be between 0 and 50, not {args['event_sample_size']}")
    if len(args["accounts"]) > 50:
        problems.append(f"at most 50 accounts can be checked in one run, not {len(args['accounts'])}")
    if args.get("port_hint") is not None and not 1 <= args["port_hint"] <= 65535:
        problems.append(f"port_hint must be a TCP port (1-65535), not {args['port_hint']}")
    return problems


def read_facts(execute: t.Callable[..., t.Any], args: dict[str, t.Any], host: str) -> dict[str, t.Any]:
    """One run of ``read_rdp_state`` through ``execute`` (``_low_level_execute_command``), normalised.

    Returns ``{"changed": False, "ansible_facts": {"rdp_doctor": facts}}`` (plus ``raw`` on request), or a failed
    result with ``msg`` (and ``error`` / ``raw``). ``args`` are validated options. Connection failures
    (AnsibleConnectionFailure) propagate: the caller decides what an unreachable host means. Shared by the
    ``rdp.doctor.diagnose_host`` action; the read itself is ``facts_reader.read_host_facts`` (also the
    remediation modules').
    """
    problems = option_problems(args)
    if problems:
        return {"failed": True, "changed": False, "msg": "; ".join(problems)}
    try:
        facts, raw = read_host_facts(execute, args, host=host)
    except HostScriptError as exc:
        return {"failed": True, "changed": False, "msg": str(exc), "error": exc.to_dict()}
    except FactsDocumentError as exc:
        # A document that breaks the contract: say which script and what, keep the raw answer for a bug report.
        return {"failed": True, "changed": False, "raw": exc.raw, "msg": str(exc)}
    result: dict[str, t.Any] = {"changed": False, "ansible_facts": {"rdp_doctor": facts}}
    if args.get("include_raw"):
        result["raw"] = raw
    return result


class ActionModule(ActionBase):
    """Read the host's RDP state with one host-script run and return it as versioned facts."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """Validate the options, run ``read_rdp_state`` once, normalise its answer."""
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp  # deprecated by ActionBase; never used
        args, problems = validation.validated_arguments(ARGUMENT_SPEC, self._task.args)
        if problems:  # Ansible's own type checks, every message naming its option
            return dict(result, failed=True, changed=False, msg="; ".join(problems))
        # Connection failures (AnsibleConnectionFailure) propagate: Ansible reports the host unreachable.
        result.update(read_facts(self._low_level_execute_command, args, str(task_vars.get("inventory_hostname") or "")))
        return result
