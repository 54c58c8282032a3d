# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure planners of the remediation modules: ``plan(facts, options) -> remediation.Plan`` (contracts section 10b)."""
