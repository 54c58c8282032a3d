# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.listener_security`` (the work is in plugin_utils/remediation_action.py)."""

from __future__ import annotations

from ansible_collections.rdp.doctor.plugins.module_utils.planners import listener_security
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """Remote Desktop on/off, listener, security layer, NLA, encryption level, adapter and port."""

    MODULE = "rdp.doctor.listener_security"
    ARGUMENT_SPEC = listener_security.ARGUMENT_SPEC
    planner = staticmethod(listener_security.plan)
    option_problems = staticmethod(listener_security.option_problems)
