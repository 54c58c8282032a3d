# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""PLACEHOLDER (branch h9b-planners only): helper 9a's ``remediation_action.py`` replaces this file at merge.

It exists so that the five thin action plugins of this branch import for the sanity tests. The interface
is the agreed one (contracts section 10): a subclass sets ``ARGUMENT_SPEC`` (module options), ``planner``
(the pure ``plan(facts, options) -> Plan``) and optionally ``option_problems(args) -> list[str]``. This
placeholder validates the options and plans from the ``facts`` option only; it never touches a host.
"""

from __future__ import annotations

import typing as t

from ansible.plugins.action import ActionBase


class RemediationAction(ActionBase):
    """Placeholder base class: validate, plan from the given facts, report; no read, no apply."""

    TRANSFERS_FILES = False
    _supports_check_mode = True
    _supports_async = False

    ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {}

    @staticmethod
    def planner(facts: dict[str, t.Any], options: dict[str, t.Any]) -> t.Any:
        """Set by each module."""
        raise NotImplementedError

    @staticmethod
    def option_problems(args: dict[str, t.Any]) -> list[str]:
        """Set by a module with checks the argument spec cannot express."""
        del args
        return []

    def run(self, tmp: str | None = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        """Validate the options and return the plan for the ``facts`` option; fail otherwise."""
        result = super().run(tmp, task_vars or {})
        del tmp
        spec = dict(self.ARGUMENT_SPEC, facts={"type": "dict"})
        _validation, args = self.validate_argument_spec(argument_spec=spec)
        facts = args.pop("facts")
        problems = self.option_problems(args)
        if problems:
            return dict(result, failed=True, changed=False, msg="; ".join(problems))
        if not facts:
            return dict(result, failed=True, changed=False, msg="placeholder remediation engine: pass facts (the apply engine is helper 9a's)")
        plan = self.planner(facts, args)
        return dict(result, changed=plan.changes and not plan.refused, failed=bool(plan.refused), **plan.to_dict())
