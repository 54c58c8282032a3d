"""tls_protocols planner on lab-built facts: TLS 1.2 on, legacy off behind its guard, reboot, option errors."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils.planners import tls_protocols as tp
from tests.unit.plugins.module_utils.planners import lab_facts as lf

TLS12_SERVER = reg.schannel_key("TLS 1.2", "Server")
TLS10_SERVER = reg.schannel_key("TLS 1.0", "Server")
TLS11_SERVER = reg.schannel_key("TLS 1.1", "Server")


def plan(facts: dict, **options: object):
    full = {name: spec.get("default") for name, spec in tp.ARGUMENT_SPEC.items()}
    full.update(options)
    result = tp.plan(facts, full)
    lf.assert_well_formed(result)
    return result


def writes(result) -> list[tuple[str, str, object, object]]:
    return [(op["target"]["path"], op["target"]["name"], op["expect"].get("value", "absent"), op["set"]["value"])
            for op in result.operations]


BAD_OPTIONS = [
    ({}, "nothing to do: set tls12: enabled and/or disable_legacy"),
    ({"tls12": "on"}, "tls12 must be one of enabled, not 'on'"),
    ({"disable_legacy": ["tls1.2"]}, "disable_legacy: 'tls1.2' is not one of ssl3.0, tls1.0, tls1.1"),
    ({"disable_legacy": "tls1.0"}, "disable_legacy must be a list of ssl3.0, tls1.0, tls1.1, not 'tls1.0'"),
    ({"tls12": "enabled", "client": "yes"}, "client must be true or false, not 'yes'"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_bad_options(options: dict, message: str) -> None:
    problems = tp.option_problems(options)
    assert any(p.startswith(message) for p in problems), problems
    assert any(p.startswith(message) for p in plan(lf.facts(), **options).refused)


def test_healthy_host_is_compliant() -> None:
    result = plan(lf.facts(), tls12="enabled", client=True)
    assert result.operations == [] and not result.reboot_required
    assert result.before == result.after == {"TLS 1.2 Server": "enabled", "TLS 1.2 Client": "enabled"}


def test_tls12_disabled_is_enabled_with_both_values() -> None:
    result = plan(lf.facts("tls12_disabled"), tls12="enabled")
    assert lf.shape(result) == [
        ("op01", "registry_value", {"path": TLS12_SERVER, "name": "Enabled"},
         {"present": True, "type": "DWORD", "value": 0}, {"present": True, "type": "DWORD", "value": 1}),
        ("op02", "registry_value", {"path": TLS12_SERVER, "name": "DisabledByDefault"},
         {"present": True, "type": "DWORD", "value": 1}, {"present": True, "type": "DWORD", "value": 0}),
    ]
    assert result.before == {"TLS 1.2 Server": "disabled"} and result.after == {"TLS 1.2 Server": "enabled"}
    assert result.reboot_required and any("after a reboot" in w for w in result.warnings)


def test_all_tls_disabled_gets_tls12_back() -> None:
    result = plan(lf.facts("all_tls_disabled"), tls12="enabled")
    assert writes(result) == [(TLS12_SERVER, "Enabled", 0, 1), (TLS12_SERVER, "DisabledByDefault", 1, 0)]


def test_applied_values_make_the_next_plan_empty() -> None:
    host = lf.host_of("tls12_disabled")
    host.reg_set(TLS12_SERVER, "Enabled", 1)
    host.reg_set(TLS12_SERVER, "DisabledByDefault", 0)
    assert plan(lf.facts_of_host(host), tls12="enabled").operations == []


def test_disable_legacy_needs_its_opt_in() -> None:
    result = plan(lf.facts(), disable_legacy=["tls1.0", "tls1.1"])
    assert result.operations == [] and not result.reboot_required
    assert result.refused == ["disable_legacy: turning off TLS 1.0 Server, TLS 1.1 Server cuts every client that speaks only that "
                              "protocol; set allow_legacy_disable: true if no such client remains"]


def test_disable_legacy_with_tls12_fixes_the_legacy_host() -> None:
    result = plan(lf.facts("tls12_disabled"), tls12="enabled", disable_legacy=["tls1.0", "tls1.1", "ssl3.0"], allow_legacy_disable=True)
    assert writes(result) == [
        (TLS12_SERVER, "Enabled", 0, 1), (TLS12_SERVER, "DisabledByDefault", 1, 0),
        (TLS10_SERVER, "Enabled", 1, 0), (TLS10_SERVER, "DisabledByDefault", 0, 1),
        (TLS11_SERVER, "Enabled", "absent", 0), (TLS11_SERVER, "DisabledByDefault", "absent", 1),
    ]  # SSL 3.0 is off by the OS default on Server 2022: nothing written
    assert result.after == {"TLS 1.2 Server": "enabled", "TLS 1.0 Server": "disabled", "TLS 1.1 Server": "disabled",
                            "SSL 3.0 Server": "disabled"}
    assert any("fail to connect" in w for w in result.warnings) and result.reboot_required


def test_disable_legacy_that_leaves_no_tls_is_refused() -> None:
    result = plan(lf.facts("tls12_disabled"), disable_legacy=["tls1.0", "tls1.1"], allow_legacy_disable=True)
    assert result.operations == [] and result.refused == [
        "disable_legacy: turning off TLS 1.0, TLS 1.1 leaves the RDP listener no TLS version it can use (TLS 1.2 is disabled too); "
        "add tls12: enabled"]


def test_client_side_too() -> None:
    host = lf.host_of()
    host.reg_set(reg.schannel_key("TLS 1.2", "Client"), "Enabled", 0)
    result = plan(lf.facts_of_host(host), tls12="enabled", client=True)
    assert writes(result) == [(reg.schannel_key("TLS 1.2", "Client"), "Enabled", 0, 1),
                              (reg.schannel_key("TLS 1.2", "Client"), "DisabledByDefault", "absent", 0)]
    assert result.before == {"TLS 1.2 Server": "enabled", "TLS 1.2 Client": "disabled"}


def test_legacy_os_without_tls12_keys() -> None:
    """Server 2008 R2 needs the keys (KB3080079 [S19]); the lab's oldest release is 2012 R2, where the default enables it."""
    result = plan(lf.facts(os_version="2012r2"), tls12="enabled")
    assert result.operations == []
