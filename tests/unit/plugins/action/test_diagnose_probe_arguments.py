"""Issue 10: an unreached host probed by IP is not given a false certificate FAIL (its IP is no name a user types and
there is no FQDN to compare with), a name in ansible_host is not passed as the expected address, and blank account
names never reach accounts.expected."""

from __future__ import annotations

import ssl
import typing as t

import pytest

from ansible_collections.rdp.doctor.plugins.action.diagnose_host import probe_arguments
from ansible_collections.rdp.doctor.plugins.action.probe import probe_in_process
from ansible_collections.rdp.doctor.plugins.filter.findings import findings as findings_filter
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from tests.integration.realservers import certs as testcerts
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples
from tests.unit.plugins.module_utils.test_rdp_probe import FakeRdp, rsp


def role_args(**extra: t.Any) -> dict[str, t.Any]:
    """diagnose_host's probe options as the role passes them (probe_host = ansible_host)."""
    return {"probe_host": None, "probe_port": None, "probe_expected_address": None, "probe_server_name": None,
            "probe_timeout": 2.0, "probe_options": {}, **extra}


READ = {"os": {"fqdn": "win01.corp.test"}, "listener": {"effective_port": 3389}}


@pytest.mark.parametrize(("args", "facts", "expected"), [
    # not read, probed by IP: nothing to compare the certificate with
    (role_args(probe_host="10.0.0.5", probe_expected_address="10.0.0.5"), {},
     {"name_check_skip_reason": "host not read", "expected_address": "10.0.0.5"}),
    (role_args(probe_host="fe80::5"), {}, {"name_check_skip_reason": "host not read"}),
    # read, but the facts carry no FQDN
    (role_args(probe_host="10.0.0.5"), {"listener": {"effective_port": 3390}}, {"name_check_skip_reason": "the host's FQDN is unknown"}),
    # read: the FQDN is what clients compare with
    (role_args(probe_host="10.0.0.5"), READ, {"server_name": "win01.corp.test"}),
    # not read, but the user said which name clients use (option or probe_options)
    (role_args(probe_host="10.0.0.5", probe_server_name="rdp.corp.test"), {}, {"server_name": "rdp.corp.test"}),
    (role_args(probe_host="10.0.0.5", probe_options={"server_name": "rdp.corp.test"}), {}, {"server_name": "rdp.corp.test"}),
    # not read, probed by the name a user types: that name is what a client compares with
    (role_args(probe_host="win01.corp.test"), {}, {}),
    # ansible_host is a name: no expected address (the probe compares addresses, it never resolves this one)
    (role_args(probe_host="win01.corp.test", probe_expected_address="win01.corp.test"), READ, {"server_name": "win01.corp.test"}),
])
def test_the_certificate_name_is_only_judged_against_a_name_clients_use(args: dict[str, t.Any], facts: dict[str, t.Any],
                                                                        expected: dict[str, t.Any]) -> None:
    chosen = probe_arguments(args, facts, "win01")
    picked = {key: chosen[key] for key in ("name_check_skip_reason", "server_name", "expected_address") if key in chosen}
    assert picked == expected


@pytest.fixture(scope="module")
def wrong_name_listener(tmp_path_factory: pytest.TempPathFactory) -> t.Iterator[tuple[FakeRdp, str]]:
    """A TLS listener whose CA-issued certificate names other-host.test only (no IP)."""
    made = testcerts.generate_set(tmp_path_factory.mktemp("certs"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(made["wrongname"].cert, made["wrongname"].key)
    server = FakeRdp(lambda requested, index: rsp(1), context=context)
    yield server, str(made["ca"].cert)
    server.stop()


def test_an_unreached_host_probed_by_ip_gets_no_certificate_fail(wrong_name_listener: tuple[FakeRdp, str]) -> None:
    """It used to be probed with its IP as the certificate name: RDP-CERT-NAME-MISMATCH, certificate step FAIL."""
    server, ca_bundle = wrong_name_listener
    args = role_args(probe_host="127.0.0.1", probe_port=server.port, probe_options={"ca_bundle": ca_bundle, "nla": False})
    result = probe_in_process(probe_arguments(args, {}, "win01"))
    certificate = next(step for step in result["steps"] if step["step"] == "certificate")
    assert certificate["verdict"] == "ok" and certificate["finding_ids"] == []
    assert certificate["details"]["name_check"] == "not checked: host not read"
    assert certificate["summary"].endswith("(name not checked: host not read)")
    assert result["certificate"]["name_matches"] is None and result["certificate"]["name_checks"] == []
    assert result["verdict"]["ok"] is True
    # the same listener, the host read: its FQDN is compared, and the wrong name is a real finding
    read = probe_in_process(probe_arguments(args, READ, "win01"))
    assert "RDP-CERT-NAME-MISMATCH" in read["verdict"]["finding_ids"]


def test_name_check_skip_reason_is_validated() -> None:
    result = probe_in_process({"host": "127.0.0.1", "name_check_skip_reason": "a\nb"})
    assert result["failed"] is True and "name_check_skip_reason must be a sentence of 1 to 200 characters" in result["msg"]


# --- blank account names -----------------------------------------------------------------------------------------

def test_blank_account_names_are_dropped_from_accounts_expected() -> None:
    """rdp_doctor_accounts: "" arrives as [""]: it was listed in accounts.expected and not_reported."""
    facts = hf.normalize(samples.healthy_raw(), samples.NOW, ["", "   ", "rdpuser", "\t"])
    assert facts["accounts"]["expected"] == ["rdpuser"]
    assert facts["accounts"]["not_reported"] == []
    found = findings_filter(facts, None)
    assert not [finding for finding in found if finding["id"].startswith("RDP-ACCOUNT-")]
    assert hf.build_params({"accounts": ["", " ", "rdpuser"]})["accounts"] == ["rdpuser"]
