"""listener_certificate planner on lab-built facts: renew self-signed, bind from My, key permissions, GPO, option errors."""

from __future__ import annotations

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from ansible_collections.rdp.doctor.plugins.module_utils.planners import listener_certificate as lc
from tests.lab import certs
from tests.lab.model import MY_STORE, POL
from tests.unit.plugins.module_utils.planners import lab_facts as lf
from tests.unit.plugins.module_utils.planners.lab_facts import add_my_cert

SELF = reg.STORE_REMOTE_DESKTOP


def plan(facts: dict, **options: object):
    full = {name: spec.get("default") for name, spec in lc.ARGUMENT_SPEC.items()}
    full.update(options)
    result = lc.plan(facts, full)
    lf.assert_well_formed(result)
    return result


def kinds(result) -> list[tuple[str, dict, dict, dict]]:
    return [(op["kind"], op["target"], op["expect"], op["set"]) for op in result.operations]


def current_self_signed(facts: dict) -> str:
    return facts["certificate"]["bound_thumbprint"]


# --------------------------------------------------------------------------------------------------
# thumbprints and options
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "aa bb cc dd ee ff 00 11 22 33 44 55 66 77 88 99 aa bb cc dd",
    "\u200eaabbccddeeff00112233445566778899aabbccdd",
    "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD",
    " aabbccddeeff00112233445566778899aabbccdd\u200f\ufeff",
])
def test_thumbprints_are_normalised(value: str) -> None:
    assert lc.normalize_thumbprint(value) == ("AABBCCDDEEFF00112233445566778899AABBCCDD", None)


@pytest.mark.parametrize("value", ["abc", "zz" * 20, "aabbccddeeff00112233445566778899aabbccdd00", ""])
def test_bad_thumbprints(value: str) -> None:
    thumbprint, problem = lc.normalize_thumbprint(value)
    assert thumbprint is None and problem.startswith("thumbprint: ") and "40 hex digits" in problem


BAD_OPTIONS = [
    ({"state": None}, "state is required: one of self_signed, bound, key_permissions"),
    ({"state": "renewed"}, "state must be one of self_signed, bound, key_permissions, not 'renewed'"),
    ({"state": "bound"}, "state=bound needs exactly one of thumbprint, subject or template"),
    ({"state": "bound", "thumbprint": "aa" * 20, "subject": "win01"},
     "state=bound needs exactly one of thumbprint, subject or template to choose the certificate (got thumbprint, subject)"),
    ({"state": "self_signed", "thumbprint": "aa" * 20}, "state=self_signed takes no thumbprint"),
    ({"state": "key_permissions", "subject": "win01"}, "state=key_permissions takes only thumbprint"),
    ({"state": "bound", "thumbprint": "nope"}, "thumbprint: 'nope' is not a SHA-1 thumbprint"),
    ({"state": "self_signed", "min_days_valid": -1}, "min_days_valid must be a whole number of days from 0 to 3650, not -1"),
]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_bad_options(options: dict, message: str) -> None:
    problems = lc.option_problems({"min_days_valid": 30, **options})
    assert any(p.startswith(message) for p in problems), problems
    assert any(p.startswith(message) for p in plan(lf.facts(), **options).refused)


def test_findings_proposals_are_accepted() -> None:
    tp = "AA" * 20
    for options in ({"state": "self_signed"}, {"state": "bound", "thumbprint": tp}, {"state": "key_permissions", "thumbprint": tp}):
        assert lc.option_problems({"min_days_valid": 30, **options}) == []


# --------------------------------------------------------------------------------------------------
# state: self_signed
# --------------------------------------------------------------------------------------------------

def test_healthy_host_is_compliant_for_every_state() -> None:
    facts = lf.facts()
    for options in ({"state": "self_signed"}, {"state": "key_permissions"}):
        result = plan(facts, **options)
        assert result.operations == [] and not result.refused and result.before == result.after


@pytest.mark.parametrize("fault, reason", [
    ("cert_expired", "it expired on"),
    ("cert_wrong_name", "not this host"),
    ("cert_key_unreadable", "NETWORK SERVICE cannot read its private key"),
    ("listener_key_missing", "no key file f686aace6942fb7f7ceb231212eef4a4_"),
])
def test_broken_self_signed_is_renewed(fault: str, reason: str) -> None:
    facts = lf.facts(fault)
    old = current_self_signed(facts)
    result = plan(facts, state="self_signed")
    assert kinds(result) == [
        ("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": old}, {"thumbprint": None}),
        ("certificate", {"store": SELF, "thumbprint": old}, {"present": True}, {"present": False}),
        ("service_control", {"name": "SessionEnv"}, {"state": "Running"}, {"action": "restart"}),
    ]
    assert result.before["thumbprint"] == old and result.after["thumbprint"] is None
    assert result.restart == ["SessionEnv"] and any(reason in w for w in result.warnings)


def test_expiring_soon_uses_min_days_valid() -> None:
    facts = lf.facts()  # the healthy self-signed certificate has 152 days left
    assert plan(facts, state="self_signed", min_days_valid=30).operations == []
    renewed = plan(facts, state="self_signed", min_days_valid=200)
    assert [op["kind"] for op in renewed.operations] == ["listener_binding", "certificate", "service_control"]
    assert any("expires in 152 days (min_days_valid 200)" in w for w in renewed.warnings)


def test_bound_missing_falls_back_to_the_self_signed_certificate() -> None:
    facts = lf.facts("cert_bound_missing")
    stored = facts["certificate"]["stores"][SELF][0]["thumbprint"]
    result = plan(facts, state="self_signed")
    assert kinds(result) == [("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": facts["certificate"]["bound_thumbprint"]},
                              {"thumbprint": None})]
    assert result.after["thumbprint"] == stored


def test_disabled_sessionenv_is_enabled_before_it_starts() -> None:
    host = lf.host_of("cert_expired")
    host.services["SessionEnv"].start_mode = "Disabled"
    host.services["SessionEnv"].state = "Stopped"
    result = plan(lf.facts_of_host(host), state="self_signed")
    assert kinds(result)[2:] == [("service_config", {"name": "SessionEnv"}, {"start_mode": "Disabled"}, {"start_mode": "Manual"}),
                                 ("service_control", {"name": "SessionEnv"}, {"state": "Stopped"}, {"action": "start"})]


def test_gpo_template_is_manual() -> None:
    host = lf.host_of("cert_expired")
    host.reg_set(POL, "CertTemplateName", "RDPServer")
    result = plan(lf.facts_of_host(host), state="self_signed")
    assert result.operations == [] and result.manual[0]["policy_key"] == POL + "\\CertTemplateName"
    assert "'RDPServer'" in result.manual[0]["reason"]


# --------------------------------------------------------------------------------------------------
# state: bound
# --------------------------------------------------------------------------------------------------

def test_bind_by_thumbprint_grants_the_key_then_binds() -> None:
    host = lf.host_of()
    entry = add_my_cert(host, readable=False)
    facts = lf.facts_of_host(host)
    spaced = " ".join(entry.thumbprint[i:i + 2].lower() for i in range(0, 40, 2))
    result = plan(facts, state="bound", thumbprint="\u200e" + spaced)
    assert kinds(result) == [
        ("key_acl", {"store": MY_STORE, "thumbprint": entry.thumbprint}, {}, {"grant": [{"sid": "S-1-5-20", "rights": "Read"}]}),
        ("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": current_self_signed(facts)}, {"thumbprint": entry.thumbprint}),
    ]
    assert result.after["thumbprint"] == entry.thumbprint


def test_bind_by_subject_picks_the_longest_valid() -> None:
    host = lf.host_of()
    add_my_cert(host, days=100)
    longest = add_my_cert(host, days=300, rdp_eku=True)
    result = plan(lf.facts_of_host(host), state="bound", subject="CN=win01")
    assert [op["set"] for op in result.operations] == [{"thumbprint": longest.thumbprint}]


def test_bound_certificate_already_bound_is_compliant() -> None:
    host = lf.host_of()
    entry = add_my_cert(host)
    host.bind_cert(entry)
    assert plan(lf.facts_of_host(host), state="bound", thumbprint=entry.thumbprint).operations == []


@pytest.mark.parametrize("change, fragment", [
    ({"names": ["oldname"]}, "names oldname, not this host"),
    ({"days": 10}, "expires in 10 days (min_days_valid 30)"),
    ({"key": False}, "it has no private key"),
])
def test_unsuitable_certificates_are_refused(change: dict, fragment: str) -> None:
    host = lf.host_of()
    entry = add_my_cert(host, **change)
    result = plan(lf.facts_of_host(host), state="bound", thumbprint=entry.thumbprint)
    assert result.operations == [] and len(result.refused) == 1
    assert result.refused[0].startswith("thumbprint: no certificate with thumbprint") and fragment in result.refused[0]


def test_unknown_thumbprint_and_subject_are_refused() -> None:
    facts = lf.facts()
    assert plan(facts, state="bound", thumbprint="AB" * 20).refused == [
        f"thumbprint: no certificate with thumbprint {'AB' * 20} in Cert:\\LocalMachine\\My (a listener certificate must be there [S1])"]
    assert plan(facts, state="bound", subject="nobody").refused[0].startswith("subject: no certificate with subject 'nobody'")
    assert plan(facts, state="bound", thumbprint=current_self_signed(facts)).refused[0].startswith(
        "thumbprint: " + current_self_signed(facts) + " is the self-signed certificate")


RDP_TEMPLATE = certs.Template(name="RemoteDesktopComputer", oid="1.3.6.1.4.1.311.21.8.1234567.7654321.11.22.33.44.100.200",
                              major=100, minor=3)


def test_bind_by_template_name_picks_the_longest_valid_usable_match() -> None:
    host = lf.host_of()
    add_my_cert(host, days=400)  # longer valid, but issued from no template
    add_my_cert(host, days=500, template=certs.Template(name="WebServer"))
    add_my_cert(host, days=900, names=["oldname"], template=RDP_TEMPLATE)  # names another host
    shorter = add_my_cert(host, days=100, template=RDP_TEMPLATE)
    longest = add_my_cert(host, days=300, readable=False, template=RDP_TEMPLATE)
    facts = lf.facts_of_host(host)
    result = plan(facts, state="bound", template="remotedesktopCOMPUTER")
    assert kinds(result) == [
        ("key_acl", {"store": MY_STORE, "thumbprint": longest.thumbprint}, {}, {"grant": [{"sid": "S-1-5-20", "rights": "Read"}]}),
        ("listener_binding", {"terminal": "RDP-Tcp"}, {"thumbprint": current_self_signed(facts)}, {"thumbprint": longest.thumbprint}),
    ]
    assert shorter.thumbprint != longest.thumbprint and result.refused == []


def test_bind_by_template_oid() -> None:
    host = lf.host_of()
    add_my_cert(host, days=500, template=certs.Template(name="RemoteDesktopComputer"))  # v1 name only: no OID to match
    by_oid = add_my_cert(host, days=200, template=certs.Template(oid=RDP_TEMPLATE.oid, major=100, minor=3))
    result = plan(lf.facts_of_host(host), state="bound", template=f" {RDP_TEMPLATE.oid} ")
    assert [op["set"] for op in result.operations if op["kind"] == "listener_binding"] == [{"thumbprint": by_oid.thumbprint}]


def test_unknown_template_is_refused_naming_the_templates_the_host_carries() -> None:
    host = lf.host_of()
    add_my_cert(host, template=RDP_TEMPLATE)
    add_my_cert(host, template=certs.Template(name="WebServer"))
    add_my_cert(host)
    result = plan(lf.facts_of_host(host), state="bound", template="RDPServer")
    assert result.operations == [] and result.refused == [
        "template: no certificate with template 'RDPServer' (name or OID) in Cert:\\LocalMachine\\My; its certificates carry "
        f"the templates 'RemoteDesktopComputer' ({RDP_TEMPLATE.oid} v100.3), 'WebServer'"]
    assert plan(lf.facts(), state="bound", template="RDPServer").refused == [
        "template: no certificate with template 'RDPServer' (name or OID) in Cert:\\LocalMachine\\My; none of its 0 certificates "
        "carries a certificate template extension"]


def test_unusable_template_certificates_are_refused() -> None:
    host = lf.host_of()
    entry = add_my_cert(host, days=10, template=RDP_TEMPLATE)
    result = plan(lf.facts_of_host(host), state="bound", template=RDP_TEMPLATE.name)
    assert result.refused == [f"template: no certificate with template 'RemoteDesktopComputer' can serve the listener "
                              f"({entry.thumbprint}: it expires in 10 days (min_days_valid 30))"]


def test_template_certificate_already_bound_is_compliant() -> None:
    host = lf.host_of()
    entry = add_my_cert(host, template=RDP_TEMPLATE)
    add_my_cert(host, days=100, template=RDP_TEMPLATE)
    host.bind_cert(entry)
    for template in (RDP_TEMPLATE.name, RDP_TEMPLATE.oid):
        result = plan(lf.facts_of_host(host), state="bound", template=template)
        assert result.operations == [] and result.refused == [] and result.before["thumbprint"] == entry.thumbprint


# --------------------------------------------------------------------------------------------------
# state: key_permissions
# --------------------------------------------------------------------------------------------------

def test_key_unreadable_gets_network_service_read() -> None:
    facts = lf.facts("cert_key_unreadable")
    bound = facts["certificate"]["bound_thumbprint"]
    result = plan(facts, state="key_permissions", thumbprint=bound)
    assert kinds(result) == [("key_acl", {"store": SELF, "thumbprint": bound},
                              {"sddl": facts["machinekeys"]["listener_key_file"]["sddl"]},
                              {"grant": [{"sid": "S-1-5-20", "rights": "Read"}]})]
    assert result.before == {"key_readable_by_network_service": False} and result.after == {"key_readable_by_network_service": True}
    assert lf.shape(plan(facts, state="key_permissions")) == lf.shape(result)  # default: the bound certificate


def test_key_permissions_on_a_missing_key_is_refused() -> None:
    result = plan(lf.facts("listener_key_missing"), state="key_permissions")
    assert result.operations == [] and "is missing, no permission can fix it; use state=self_signed" in result.refused[0]


def test_key_permissions_without_a_certificate_is_refused() -> None:
    result = plan(lf.facts("cert_bound_missing"), state="key_permissions")
    assert result.refused[0].startswith("state: no certificate")
