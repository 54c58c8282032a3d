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
    ARGUMENT_SPEC = firewall.ARGUMENT_SPEC
    planner = staticmethod(firewall.plan)
    option_problems = staticmethod(firewall.option_problems)

    def facts_options(self, options: dict[str, t.Any]) -> dict[str, t.Any]:
        # Read the rules that cover the asked port too, so an existing custom-port rule is seen.
        return {"port_hint": options["port"]} if options.get("port") else {}
