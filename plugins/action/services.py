# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.services``: the shared remediation action with this module's options and planner.

Validate (argument spec + ``option_problems``), read or take the facts, plan with the pure planner
``module_utils/planners/services.py``, apply with ``apply_rdp_changes``, verify: all in
``plugin_utils/remediation_action.py`` (docs/dev/contracts.md, section 10).
"""

from __future__ import annotations

from ansible_collections.rdp.doctor.plugins.module_utils.planners import services
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """``rdp.doctor.services``."""

    ARGUMENT_SPEC = services.ARGUMENT_SPEC
    planner = staticmethod(services.plan)
    option_problems = staticmethod(services.option_problems)
