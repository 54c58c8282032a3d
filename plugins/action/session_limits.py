# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.session_limits``: the shared remediation action with this module's options and planner.

Validate (argument spec + ``option_problems``), read or take the facts, plan with the pure planner
``module_utils/planners/session_limits.py``, apply with ``apply_rdp_changes``, verify: all in
``plugin_utils/remediation_action.py`` (docs/dev/contracts.md, section 10).
"""

from __future__ import annotations

from ansible_collections.rdp.doctor.plugins.module_utils.planners import session_limits
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """``rdp.doctor.session_limits``."""

    ARGUMENT_SPEC = session_limits.ARGUMENT_SPEC
    planner = staticmethod(session_limits.plan)
    option_problems = staticmethod(session_limits.option_problems)
