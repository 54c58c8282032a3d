# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.listener_security`` (the work is in plugin_utils/remediation_action.py)."""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils.planners import listener_security
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """Remote Desktop on/off, listener, security layer, NLA, encryption level, adapter and port."""

    MODULE = "rdp.doctor.listener_security"
    ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
        "allow_connections": {"type": "bool"},
        "listener_enabled": {"type": "bool"},
        "security_layer": {"type": "str", "choices": list(listener_security.SECURITY_LAYERS)},
        "nla": {"type": "bool"},
        "min_encryption_level": {"type": "str", "choices": list(listener_security.ENCRYPTION_LEVELS)},
        "lan_adapter": {"type": "int"},
        "port": {"type": "int"},
        "write_local_policy": {"type": "bool", "default": False},
        "revert_after": {"type": "str"},
        "allow_lockout": {"type": "bool", "default": False},
        "allow_insecure": {"type": "bool", "default": False},
        "allow_port_change": {"type": "bool", "default": False},
    }
    PLANNER = staticmethod(listener_security.plan)

    def option_problems(self, options: dict[str, t.Any]) -> list[str]:
        return listener_security.option_problems(options)
