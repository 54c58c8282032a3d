# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Planner of ``rdp.doctor.credssp`` (pure): CredSSP Encryption Oracle Remediation (CVE-2018-0886).

``AllowEncryptionOracle`` lives under ``SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Policies\\System\\CredSSP\\
Parameters`` - the very key the "Encryption Oracle Remediation" GPO writes (not ``SOFTWARE\\Policies``) [S9], so
a domain GPO refresh may overwrite it: the plan warns on domain members. 0 Force Updated Clients, 1 Mitigated,
2 Vulnerable [S9]; the change takes effect after a reboot [S8]. ``vulnerable`` needs ``allow_insecure``. The
plan warns when the host lacks the CredSSP update (the real fix is patching both sides [S7]) and when the value
is above the CIS baseline 18.9.4.1 (0) [S24].
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from ansible_collections.rdp.doctor.plugins.module_utils.planners.common import Facts, domain_member, get

VALUES = {"force_updated_clients": 0, "mitigated": 1, "vulnerable": 2}
NAMES = {number: name for name, number in VALUES.items()}


#: The module's options (Ansible argument spec); the action plugin and rdp.doctor.remediate_host validate with it.
ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "allow_encryption_oracle": {"type": "str", "required": True, "choices": list(VALUES)},
    "allow_insecure": {"type": "bool", "default": False},
}


def option_problems(options: dict[str, t.Any]) -> list[str]:
    """Checks before any host is touched (the argument spec checks the choices)."""
    if options.get("allow_encryption_oracle") is None:
        return [f"allow_encryption_oracle is required: one of {', '.join(VALUES)}"]
    return []


def plan(facts: Facts, options: dict[str, t.Any]) -> remediation.Plan:
    """Plan AllowEncryptionOracle = ``options.allow_encryption_oracle``."""
    result = remediation.Plan()
    wanted_name = options["allow_encryption_oracle"]
    wanted = VALUES[wanted_name]
    setting = get(facts, "credssp.allow_encryption_oracle", {}) or {}
    effective = setting.get("effective")
    before = NAMES.get(effective, effective)
    result.before["allow_encryption_oracle"] = before
    result.after["allow_encryption_oracle"] = before
    if get(facts, "credssp.patched") is False:
        result.warnings.append(f"this host lacks the CredSSP update (tspkg.dll {get(facts, 'credssp.tspkg_version')}, fixed in "
                               f"{get(facts, 'credssp.required_tspkg_version')}): updated clients fail against it whatever "
                               "AllowEncryptionOracle says; install the latest cumulative update [S7]")
    if effective == wanted:
        return result
    if wanted_name == "vulnerable" and not options.get("allow_insecure"):
        result.refused.append("allow_encryption_oracle=vulnerable exposes CredSSP to CVE-2018-0886; pass allow_insecure=true to allow it")
        return result
    result.after["allow_encryption_oracle"] = wanted_name
    result.operations = remediation.number([remediation.registry_set(
        reg.CREDSSP, "AllowEncryptionOracle", wanted, setting.get("local"), why=f"AllowEncryptionOracle {before} -> {wanted_name}")])
    result.reboot_required = True
    if wanted > 0:
        result.warnings.append(f"allow_encryption_oracle={wanted_name} is below the CIS baseline 18.9.4.1 (force_updated_clients)")
    if domain_member(facts):
        result.warnings.append(f"this host is a domain member: a GPO '{reg.POLICY_CREDSSP}' writes the same key and its next refresh "
                               "may overwrite this value")
    return result
