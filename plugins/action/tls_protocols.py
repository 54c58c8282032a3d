# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.tls_protocols``: the shared remediation action with this module's options and planner.

Validate (argument spec + ``option_problems``), read or take the facts, plan with the pure planner
``module_utils/planners/tls_protocols.py``, apply with ``apply_rdp_changes``, verify: all in
``plugin_utils/remediation_action.py`` (docs/dev/contracts.md, section 10).
"""

from __future__ import annotations

from ansible_collections.rdp.doctor.plugins.module_utils.planners import tls_protocols
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """``rdp.doctor.tls_protocols``."""

    ARGUMENT_SPEC = tls_protocols.ARGUMENT_SPEC
    planner = staticmethod(tls_protocols.plan)
    option_problems = staticmethod(tls_protocols.option_problems)
