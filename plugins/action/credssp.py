# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin for ``rdp.doctor.credssp`` (the work is in plugin_utils/remediation_action.py)."""

from __future__ import annotations

from ansible_collections.rdp.doctor.plugins.module_utils.planners import credssp
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import RemediationAction


class ActionModule(RemediationAction):
    """CredSSP Encryption Oracle Remediation (AllowEncryptionOracle)."""

    MODULE = "rdp.doctor.credssp"
    ARGUMENT_SPEC = credssp.ARGUMENT_SPEC
    planner = staticmethod(credssp.plan)
    option_problems = staticmethod(credssp.option_problems)
