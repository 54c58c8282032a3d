"""Lab host -> read_rdp_state twin -> host_facts.normalize -> findings.evaluate, without Ansible (issue 7).

Each fault of ``tests/lab/faults.py`` gives at least its finding ids (contracts section 8) from the host's side alone;
each host state a read must survive gives exactly its ids: the read is reported incomplete where a part could not be
read, every other finding of a combined fault stays, and nothing false is concluded from what is missing.
"""

from __future__ import annotations

import datetime as dt
import typing as t

import pytest

from ansible_collections.rdp.doctor.plugins.filter.findings_summary import findings_summary
from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from tests.lab import faults as lab_faults
from tests.lab.inventory import LAB_ACCOUNTS
from tests.lab.twins import read_rdp_state as twin

NOW = dt.datetime(2026, 11, 21, 7, 0, 0, tzinfo=dt.timezone.utc)
READ_FAULTS = ("firewall_service_stopped", "event_unformattable", "wmi_terminalservices_broken", "wts_unavailable", "key_not_openable_by_admin",
               "netfx_45_only", "accounts_domain_unreachable", "accounts_nested_group", "firewall_rule_program_filtered",
               "firewall_rule_address_filtered", "firewall_allow_any_port")


def diagnose(faults: t.Sequence[str]) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
    """Facts and findings for a lab host with ``faults``, read with the lab inventory's accounts."""
    host = lab_faults.build_host("win01", "127.0.0.11", list(faults), now=NOW)
    accounts = list(LAB_ACCOUNTS) + list(host.inventory_accounts)
    params = hf.build_params({"accounts": accounts, "event_days": 7, "event_sample_size": 3})
    facts = hf.normalize(twin.run(host, params, now=NOW), NOW, accounts)
    return facts, fd.evaluate(facts)


def ids(found: list[dict[str, t.Any]]) -> set[str]:
    """The finding ids."""
    return {f["id"] for f in found}


def test_read_faults_are_in_the_lab() -> None:
    """This file's list is the lab's (a new host state gets its exact expectation here)."""
    assert set(READ_FAULTS) <= set(lab_faults.FAULTS)


def test_healthy_host_has_no_finding() -> None:
    """No read error, no finding."""
    facts, found = diagnose(())
    assert facts["read_errors"] == [] and found == []


@pytest.mark.parametrize("fault", sorted(lab_faults.FAULTS))
def test_every_fault_gives_its_ids(fault: str) -> None:
    """The contract's ids from the host's side (the path-only DNS fault needs the probe); host states: exactly theirs."""
    _facts, found = diagnose((fault,))
    wanted = set(lab_faults.FAULTS[fault].finding_ids) - {"RDP-DNS-MISMATCH", "RDP-PATH-BLOCKED"}  # path faults need the probe
    assert wanted <= ids(found), [f["id"] for f in found]
    if fault in READ_FAULTS:
        assert ids(found) == wanted


def _incomplete(found: list[dict[str, t.Any]]) -> dict[str, t.Any]:
    return next(f for f in found if f["id"] == "RDP-READ-INCOMPLETE")


def test_firewall_service_stopped_reads_everything_else() -> None:
    """MpsSvc stopped: the firewall is a section error (no CIM call), the certificate finding of a combined fault stays."""
    facts, found = diagnose(("firewall_service_stopped", "cert_expired", "firewall_rdp_disabled"))
    assert facts["read_errors"] == [{"section": "firewall", "type": "ServiceNotRunning", "message": twin.FIREWALL_STOPPED.format(state="Stopped")}]
    # the disabled rules cannot be seen: no firewall finding, and no claim that the port is open either
    assert ids(found) == {"RDP-CERT-EXPIRED", "RDP-READ-INCOMPLETE"} and facts["firewall"]["tcp"]["open_in_any_profile"] is None
    assert _incomplete(found)["evidence"]["not_checked"] == ["firewall: the firewall rules and profiles for the RDP port"]
    lines = findings_summary(found, {"state": "ok"})
    assert any(line.startswith("could not read: firewall (the Windows Defender Firewall service (MpsSvc) is Stopped") for line in lines)
    assert not any(line.startswith("no findings") for line in lines)


def test_unformattable_event_keeps_its_count() -> None:
    """The count is right; the sample that cannot be formatted has no message; the group carries the error."""
    facts, found = diagnose(("event_unformattable",))
    group = next(g for g in facts["events"]["groups"] if g["provider"] == "TermDD" and g["id"] == 56)
    assert group["count"] == 3 and group["samples"][0]["message"] is None and group["samples"][1]["message"]
    assert group["error"] == {"type": twin.EVENT_FORMAT_ERROR, "message": "The data is invalid."}
    assert [e["section"] for e in _incomplete(found)["evidence"]["read_errors"]] == ["events: System TermDD 56 (a sample's message)"]


def test_broken_wmi_provider_falls_back_to_the_registry() -> None:
    """Both TerminalServices classes fail; the settings come from the registry, so a combined NLA finding stays."""
    facts, found = diagnose(("wmi_terminalservices_broken", "nla_disabled"))
    # Win32_TSAccount (the listener's ACL) lives in the same provider: its section fails with the other two
    assert [e["section"] for e in facts["read_errors"]] == ["ts_general_setting", "ts_setting", "listener_acl"]
    assert ids(found) == {"RDP-NLA-DISABLED", "RDP-READ-INCOMPLETE"} and facts["os"]["rdsh_installed"] is False


@pytest.mark.parametrize("fault", ["key_not_openable_by_admin", "netfx_45_only"])
def test_listener_key_is_found_without_opening_it(fault: str) -> None:
    """The key file comes from the container's name: a key the administrator cannot open, or a host without .NET 4.6,
    still has a usable listener certificate (the first release called it unusable)."""
    facts, found = diagnose((fault,))
    bound = facts["certificate"]["bound"]
    assert facts["certificate"]["usable"] and bound["key_error"] is None and found == []
    assert bound["key_file"] == facts["machinekeys"]["listener_key_file"]["name"]
    assert bound["key_readable_by_admin"] is (fault != "key_not_openable_by_admin")


def test_broken_trust_is_the_account_error_only() -> None:
    """The domain account's lookup fails alone: rdpuser is still judged (and found disabled when it is)."""
    facts, found = diagnose(("accounts_domain_unreachable", "account_disabled"))
    alice = next(a for a in facts["accounts"]["checked"] if a["name"] == "CONTOSO\\alice")
    assert alice["exists"] is None and alice["can_logon_remotely"] is None and alice["error"]["type"] == "System.SystemException"
    # the broken trust itself is judged from Test-ComputerSecureChannel (issue 12), not from the failed lookup
    assert ids(found) == {"RDP-ACCOUNT-DISABLED", "RDP-READ-INCOMPLETE", "RDP-DOMAIN-TRUST-BROKEN"}
    assert [a["name"] for a in next(f for f in found if f["id"] == "RDP-ACCOUNT-DISABLED")["evidence"]["accounts"]] == ["rdpuser"]


def test_nested_group_is_not_a_false_not_allowed() -> None:
    """CONTOSO\\alice reaches Remote Desktop Users through a domain group: not evaluated, never "not allowed"."""
    facts, found = diagnose(("accounts_nested_group",))
    alice = next(a for a in facts["accounts"]["checked"] if a["name"] == "CONTOSO\\alice")
    assert (alice["exists"], alice["groups_complete"], alice["can_logon_remotely"]) == (True, False, None)
    assert ids(found) == {"RDP-ACCOUNT-MEMBERSHIP-UNKNOWN"} and "RDP-ACCOUNT-NOT-ALLOWED" not in ids(found)


@pytest.mark.parametrize("fault, rule", [("firewall_rule_program_filtered", "Contoso-Agent-In-TCP"),
                                         ("firewall_rule_address_filtered", "Jump-RDP-In-TCP")])
def test_narrow_rules_do_not_open_the_port(fault: str, rule: str) -> None:
    """The rule reaches the controller with its filters and does not count as an allow rule for the listener."""
    facts, found = diagnose((fault,))
    assert rule in [r["name"] for r in facts["firewall"]["rules"]] and facts["firewall"]["tcp"]["allow_rules"] == []
    assert ids(found) == {"RDP-FIREWALL-RULES-DISABLED"}


def test_allow_any_port_rule_opens_the_port() -> None:
    """The Remote Desktop rules are off, but an allow rule for every TCP port opens 3389: nothing to report."""
    facts, found = diagnose(("firewall_allow_any_port",))
    assert facts["firewall"]["tcp"]["allow_rules"] == ["Allow-All-In-TCP"] and found == []


def test_sessions_unreadable_with_termservice_stopped() -> None:
    """TermService stopped and the WTS API failing: the service finding stays, the sessions are not guessed (no limit,
    no ghosts), and the read says so."""
    facts, found = diagnose(("termservice_stopped", "wts_unavailable", "ghost_sessions"))
    assert facts["session_limits"]["sessions_read"] is False and facts["session_limits"]["sessions"] == []
    assert ids(found) == {"RDP-SERVICE-STOPPED", "RDP-READ-INCOMPLETE"}
    wanted = {"section": "sessions", "type": twin.WIN32_EXCEPTION, "message": "The RPC server is unavailable"}
    assert _incomplete(found)["evidence"]["read_errors"] == [wanted]
