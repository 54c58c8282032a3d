"""rdp.doctor's probe against real RDP servers (Debian's xrdp 0.9, FreeRDP 2.11 shadow) and real
non-RDP services on 127.0.0.1. Every case checks the exact verdict of every step, the finding ids of
every step and the X.224 answers per mix."""

from __future__ import annotations

import socket

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe

pytestmark = pytest.mark.realservers

EXPIRED_ALL = ["RDP-CERT-EXPIRED", "RDP-CERT-NAME-MISMATCH", "RDP-CERT-SELF-SIGNED", "RDP-CERT-UNTRUSTED"]
NEG_SSL = {"0x0b": "SSL", "0x01": "SSL", "0x00": "RDP"}
TLS_ONLY = {"0x0b": "SSL", "0x01": "SSL", "0x00": "FAILURE:SSL_REQUIRED_BY_SERVER"}
ALL_RDP = {"0x0b": "RDP", "0x01": "RDP", "0x00": "RDP"}
NOT_REACHED = {"tls": ("skipped", []), "certificate": ("skipped", []), "nla": ("skipped", [])}


def case(dns=("ok", []), tcp=("ok", []), x224=("ok", []), tls=("ok", []), certificate=("ok", []),
         nla=("warn", ["RDP-PROBE-NLA-ABSENT"])) -> dict:
    """Expected (verdict, finding ids) per step; the defaults are a healthy server without NLA."""
    return {"dns": dns, "tcp": tcp, "x224": x224, "tls": tls, "certificate": certificate, "nla": nla}


# server -> (expected steps, expected answers per mix, failed step)
RDP_CASES = {
    "xrdp-neg-valid": (case(), NEG_SSL, None),
    "xrdp-tls-expired": (case(certificate=("fail", EXPIRED_ALL)), TLS_ONLY, "certificate"),
    "xrdp-rdp": (case(x224=("warn", ["RDP-PROBE-STANDARD-RDP-ONLY"]), tls=("skipped", []), certificate=("skipped", [])),
                 ALL_RDP, None),
    "xrdp-neg-self-tls12": (case(certificate=("warn", ["RDP-CERT-SELF-SIGNED", "RDP-CERT-UNTRUSTED"])), NEG_SSL, None),
    "xrdp-tls-nocert": (case(x224=("fail", ["RDP-PROBE-NEG-FAILURE-SSL_CERT_NOT_ON_SERVER"]), **NOT_REACHED),
                        {"0x0b": "FAILURE:SSL_CERT_NOT_ON_SERVER", "0x01": "FAILURE:SSL_CERT_NOT_ON_SERVER",
                         "0x00": "FAILURE:SSL_CERT_NOT_ON_SERVER"}, "x224"),
    "xrdp-neg-notyet": (case(certificate=("fail", ["RDP-CERT-NOT-YET-VALID"])), NEG_SSL, "certificate"),
    "xrdp-neg-wrongname": (case(certificate=("fail", ["RDP-CERT-NAME-MISMATCH"])), NEG_SSL, "certificate"),
    # xrdp "negotiate" without a readable certificate silently downgrades to standard RDP security
    "xrdp-neg-nocert": (case(x224=("warn", ["RDP-PROBE-STANDARD-RDP-ONLY"]), tls=("skipped", []),
                             certificate=("skipped", [])), ALL_RDP, None),
    "xrdp-tls10-only": (case(tls=("fail", ["RDP-PROBE-TLS-LEGACY"]),
                             certificate=("warn", ["RDP-CERT-SELF-SIGNED", "RDP-CERT-UNTRUSTED"])), TLS_ONLY, "tls"),
    "shadow-default": (case(certificate=("warn", ["RDP-CERT-SELF-SIGNED", "RDP-CERT-UNTRUSTED"])), NEG_SSL, None),
    "shadow-nla": (case(nla=("ok", ["RDP-PROBE-NLA-REQUIRED"])),
                   {"0x0b": "HYBRID", "0x01": "FAILURE:HYBRID_REQUIRED_BY_SERVER",
                    "0x00": "FAILURE:HYBRID_REQUIRED_BY_SERVER"}, None),
    "shadow-nla-optional": (case(nla=("ok", ["RDP-PROBE-NLA-OPTIONAL"])),
                            {"0x0b": "HYBRID", "0x01": "SSL", "0x00": "FAILURE:SSL_REQUIRED_BY_SERVER"}, None),
    "shadow-tls": (case(certificate=("fail", EXPIRED_ALL)), TLS_ONLY, "certificate"),
    "shadow-rdp": (case(x224=("warn", ["RDP-PROBE-NEG-FAILURE-SSL_NOT_ALLOWED_BY_SERVER", "RDP-PROBE-STANDARD-RDP-ONLY"]),
                        tls=("skipped", []), certificate=("skipped", [])),
                   {"0x0b": "FAILURE:SSL_NOT_ALLOWED_BY_SERVER", "0x01": "FAILURE:SSL_NOT_ALLOWED_BY_SERVER",
                    "0x00": "RDP"}, None),
    # FreeRDP /sec:ext alone refuses every request: an unusable server
    "shadow-ext": (case(x224=("fail", ["RDP-PROBE-NEG-FAILURE-SSL_REQUIRED_BY_SERVER"]), **NOT_REACHED),
                   {"0x0b": "FAILURE:SSL_REQUIRED_BY_SERVER", "0x01": "FAILURE:SSL_REQUIRED_BY_SERVER",
                    "0x00": "FAILURE:SSL_REQUIRED_BY_SERVER"}, "x224"),
}


def probe(host: str, port: int, **options) -> dict:
    """One probe with short timeouts (everything is local)."""
    settings = {"connect_timeout": 1.0, "read_timeout": 1.0, **options}
    return rdp_probe.probe(rdp_probe.ProbeOptions(host=host, port=port, **settings))


def observed(result: dict) -> dict:
    return {step["step"]: (step["verdict"], step["finding_ids"]) for step in result["steps"]}


def assert_consistent(result: dict, failed_step: str | None) -> None:
    """The verdict agrees with the steps."""
    verdict = result["verdict"]
    assert verdict["failed_step"] == failed_step
    assert verdict["ok"] is (failed_step is None)
    step_ids = [fid for step in result["steps"] for fid in step["finding_ids"]]
    assert verdict["finding_ids"] == list(dict.fromkeys(step_ids))


@pytest.mark.parametrize("name", list(RDP_CASES))
def test_rdp_servers(lab, name: str) -> None:
    expected_steps, answers, failed_step = RDP_CASES[name]
    result = probe("127.0.0.1", lab.port(name), ca_bundle=lab.ca_bundle)
    assert observed(result) == expected_steps, [s["summary"] for s in result["steps"]]
    assert result["x224"]["answers"] == answers
    assert_consistent(result, failed_step)


def test_tls_details_are_observed_not_assumed(lab) -> None:
    legacy = probe("127.0.0.1", lab.port("xrdp-tls10-only"), ca_bundle=lab.ca_bundle)
    assert (legacy["tls"]["version"], legacy["tls"]["legacy"]) == ("TLSv1", True)
    tls12 = probe("127.0.0.1", lab.port("xrdp-neg-self-tls12"), ca_bundle=lab.ca_bundle)
    assert (tls12["tls"]["version"], tls12["tls"]["cipher"]) == ("TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256")
    tls13 = probe("127.0.0.1", lab.port("xrdp-neg-notyet"), ca_bundle=lab.ca_bundle)
    assert tls13["tls"]["version"] == "TLSv1.3"


def test_certificate_facts_match_the_certificate_served(lab) -> None:
    result = probe("127.0.0.1", lab.port("xrdp-tls-expired"), ca_bundle=lab.ca_bundle)
    cert = result["certificate"]
    served = lab.certs["expired"]
    import hashlib  # pylint: disable=import-outside-toplevel
    assert cert["sha1_thumbprint"] == hashlib.sha1(served.der).hexdigest().upper()
    assert cert["san_dns"] == ["rdp-expired.test", "localhost"]
    assert cert["not_after"] == "2021-01-01T00:00:00Z"
    assert cert["validity"]["expired"] is True
    assert result["verdict"]["client_sees"].startswith("mstsc: \"The identity of the remote computer cannot be verified\"")


def test_certificate_judged_against_the_name_the_client_uses(lab) -> None:
    by_name = probe("127.0.0.1", lab.port("xrdp-neg-wrongname"), ca_bundle=lab.ca_bundle, server_name="other-host.test")
    assert observed(by_name)["certificate"] == ("ok", [])
    valid_by_name = probe("127.0.0.1", lab.port("xrdp-neg-valid"), ca_bundle=lab.ca_bundle, server_name="rdp-other.test")
    assert observed(valid_by_name)["certificate"] == ("fail", ["RDP-CERT-NAME-MISMATCH"])


def test_without_the_ca_bundle_the_lab_ca_is_untrusted(lab) -> None:
    result = probe("127.0.0.1", lab.port("xrdp-neg-valid"))
    assert observed(result)["certificate"] == ("warn", ["RDP-CERT-UNTRUSTED"])
    assert "unable to get local issuer certificate" in result["certificate"]["trust"]["reason"]
    unchecked = probe("127.0.0.1", lab.port("xrdp-neg-valid"), trust_check=False)
    assert observed(unchecked)["certificate"] == ("ok", []) and unchecked["certificate"]["trust"] == {"checked": False}


def test_nla_challenge_from_freerdp(lab) -> None:
    result = probe("127.0.0.1", lab.port("shadow-nla"), ca_bundle=lab.ca_bundle)
    nla = result["nla"]
    assert nla["state"] == "required" and nla["evidence"] == "0x01 -> HYBRID_REQUIRED_BY_SERVER"
    ntlm = nla["credssp"]["ntlm"]
    assert ntlm["os_version"] == "6.1.7601"  # WinPR's fixed NTLM version
    assert ntlm["netbios_computer"] and ntlm["dns_computer"]
    assert nla["credssp"]["ts_request"]["version"] == 6
    assert abs(nla["clock_skew_seconds"]) < 60  # same machine, same clock


def test_old_xrdp_disconnects_rdstls_requests(lab) -> None:
    result = probe("127.0.0.1", lab.port("xrdp-neg-valid"), mixes=(0x0B, 0x0F, None), ca_bundle=lab.ca_bundle)
    assert result["x224"]["answers"] == {"0x0b": "SSL", "0x0f": "DPUM", "none": "LEGACY"}
    assert observed(result)["x224"] == ("ok", [])
    legacy_first = probe("127.0.0.1", lab.port("xrdp-neg-valid"), mixes=(None,))
    assert observed(legacy_first)["x224"] == ("warn", ["RDP-PROBE-STANDARD-RDP-ONLY"])


TRANSPORT_CASES = {
    # name: (expected tcp, expected x224, expected service)
    "closed": (("fail", ["RDP-PROBE-TCP-REFUSED"]), ("skipped", []), None),
    "syn-drop": (("fail", ["RDP-PROBE-TCP-TIMEOUT"]), ("skipped", []), None),
    "silent": (("ok", []), ("fail", ["RDP-PROBE-NO-ANSWER"]), None),
    "ssh-banner": (("ok", []), ("fail", ["RDP-PROBE-NOT-RDP"]), "ssh"),
    "http": (("ok", []), ("fail", ["RDP-PROBE-NOT-RDP"]), "http"),
    "tls-service": (("ok", []), ("fail", ["RDP-PROBE-NOT-RDP"]), "tls"),
}


@pytest.mark.parametrize("name", list(TRANSPORT_CASES))
def test_transport_and_non_rdp_cases(lab, name: str) -> None:
    tcp, x224, service = TRANSPORT_CASES[name]
    port = lab.closed_port if name == "closed" else lab.port(name)
    result = probe("127.0.0.1", port, connect_timeout=0.5, read_timeout=0.5)
    assert observed(result) == {"dns": ("ok", []), "tcp": tcp, "x224": x224, **NOT_REACHED}
    assert_consistent(result, "tcp" if tcp[0] == "fail" else "x224")
    if service == "tls":
        assert result["x224"]["service_check"]["tls_service"] is True
    elif service:
        assert result["x224"]["mixes"][0]["service"]["service"] == service


def test_dns_mismatch_against_a_real_server(lab) -> None:
    port = lab.port("xrdp-neg-valid")
    resolved = {info[4][0] for info in socket.getaddrinfo("localhost", port, 0, socket.SOCK_STREAM)}
    result = probe("localhost", port, expected_address="127.0.0.2", ca_bundle=lab.ca_bundle)
    # xrdp listens on 127.0.0.1 only: ::1, when /etc/hosts maps localhost to it, is refused
    tcp = ("warn", ["RDP-PROBE-TCP-PARTIAL"]) if "::1" in resolved else ("ok", [])
    assert observed(result) == case(dns=("fail", ["RDP-DNS-MISMATCH"]), tcp=tcp)
    assert [a["source"] for a in result["tcp"]["attempts"]][-1] == "expected_address"
    assert_consistent(result, "dns")


def test_dns_failure(lab) -> None:  # pylint: disable=unused-argument  # same session, same resolver
    result = probe("rdp-doctor-probe-test.invalid", 3389)
    assert observed(result) == {"dns": ("fail", ["RDP-DNS-FAILED"]), "tcp": ("skipped", []), "x224": ("skipped", []),
                                **NOT_REACHED}


def test_probe_many_against_every_server_at_once(lab) -> None:
    names = list(RDP_CASES)
    results = rdp_probe.probe_many([{"port": lab.port(name)} for name in names], concurrency=8,
                                   defaults={"host": "127.0.0.1", "ca_bundle": lab.ca_bundle, "read_timeout": 2.0})
    for name, result in zip(names, results):
        assert observed(result) == RDP_CASES[name][0], name
