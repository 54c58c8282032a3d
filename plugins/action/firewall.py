# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.firewall`` (the work is in plugin_utils/remediation_action.py)."""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils.planners import firewall
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """The Remote Desktop firewall rule group and the collection's custom-port rules."""

    MODULE = "rdp.doctor.firewall"
    ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
        "state": {"type": "str", "default": "enabled", "choices": ["enabled", "disabled"]},
        "profiles": {"type": "list", "elements": "str", "default": ["domain", "private", "public"],
                     "choices": ["domain", "private", "public"]},
        "protocols": {"type": "list", "elements": "str", "default": ["tcp", "udp"], "choices": ["tcp", "udp"]},
        "port": {"type": "int"},
        "remote_addresses": {"type": "list", "elements": "str"},
        "scope_builtin_rules": {"type": "bool", "default": False},
        "allow_lockout": {"type": "bool", "default": False},
    }
    PLANNER = staticmethod(firewall.plan)

    def option_problems(self, options: dict[str, t.Any]) -> list[str]:
        return firewall.option_problems(options)

    def facts_options(self, options: dict[str, t.Any]) -> dict[str, t.Any]:
        # Read the rules that cover the asked port too, so an existing custom-port rule is seen.
        return {"port_hint": options["port"]} if options.get("port") else {}
