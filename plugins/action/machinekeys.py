# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.machinekeys``: the shared remediation action with this module's options and planner.

Validate (argument spec + ``option_problems``), read or take the facts, plan with the pure planner
``module_utils/planners/machinekeys.py``, apply with ``apply_rdp_changes``, verify: all in
``plugin_utils/remediation_action.py`` (docs/dev/contracts.md, section 10).
"""

from __future__ import annotations

from ansible_collections.rdp.doctor.plugins.module_utils.planners import machinekeys
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """``rdp.doctor.machinekeys``."""

    ARGUMENT_SPEC = machinekeys.ARGUMENT_SPEC
    planner = staticmethod(machinekeys.plan)
    option_problems = staticmethod(machinekeys.option_problems)
