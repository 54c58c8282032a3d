"""Any option that could carry a secret is no_log (issue 10): today no module takes one, and a new one must be hidden.

Walks the argument spec of every module and action plugin of the collection (nested options too). An option
whose name says it holds a password, passphrase, PFX, private key, token or credential must be ``no_log``; the
test lists what it walked so that a module added without a spec here fails loudly.
"""

from __future__ import annotations

import importlib
import re
import typing as t

from ansible_collections.rdp.doctor.plugins.action import diagnose_host, host_facts, remediate_host
from ansible_collections.rdp.doctor.plugins.module_utils import remediation_plan
from ansible_collections.rdp.doctor.plugins.modules import probe
from ansible_collections.rdp.doctor.plugins.plugin_utils.remediation_action import COMMON_ARGUMENT_SPEC

SECRET_NAME = re.compile(r"pass(word|phrase)?|secret|pfx|private_key|token|credential", re.IGNORECASE)


def specs() -> dict[str, dict[str, t.Any]]:
    found = {"host_facts": host_facts.ARGUMENT_SPEC, "diagnose_host": diagnose_host.ARGUMENT_SPEC,
             "remediate_host": remediate_host.ActionModule.ARGUMENT_SPEC, "probe": probe.argument_spec()}
    for module in remediation_plan.MODULES:
        planner = importlib.import_module(f"ansible_collections.rdp.doctor.plugins.module_utils.planners.{module}")
        found[module] = dict(planner.ARGUMENT_SPEC, **COMMON_ARGUMENT_SPEC)
    return found


def secret_options(spec: dict[str, t.Any], prefix: str = "") -> list[tuple[str, bool]]:
    """(option path, no_log) of every option whose name says it holds a secret."""
    found = []
    for name, rule in spec.items():
        if SECRET_NAME.search(name):
            found.append((prefix + name, bool(rule.get("no_log"))))
        if rule.get("options"):
            found += secret_options(rule["options"], prefix=f"{prefix}{name}.")
    return found


def test_every_module_is_walked() -> None:
    walked = specs()
    assert set(walked) == {"host_facts", "diagnose_host", "remediate_host", "probe", *remediation_plan.MODULES}
    assert all(walked.values())


def test_secret_options_are_no_log() -> None:
    leaking = [(module, option) for module, spec in specs().items() for option, no_log in secret_options(spec) if not no_log]
    assert leaking == []


def test_the_secret_name_rule_catches_what_it_should() -> None:
    spec = {"pfx_password": {"type": "str"}, "key_passphrase": {"type": "str", "no_log": True}, "thumbprint": {"type": "str"},
            "termservice": {"type": "dict", "options": {"account_password": {"type": "str"}}}}
    assert secret_options(spec) == [("pfx_password", False), ("key_passphrase", True), ("termservice.account_password", False)]
