"""fleet_summary / host_verdict: one honest, short summary for a whole run (issue 11's console, issue 10's hidden failures)."""

from __future__ import annotations

import typing as t

import pytest

from ansible_collections.rdp.doctor.plugins.filter.fleet_summary import failure_reason, fleet_summary, host_verdict, one_line

OK = {"state": "ok", "msg": "", "error": None}
CERT_EXPIRED = {"id": "RDP-CERT-EXPIRED", "severity": "critical", "explains_0x904": True, "title": "The listener certificate has expired"}
DENIED = {"id": "RDP-CONNECTIONS-DENIED", "severity": "critical", "explains_0x904": True, "title": "Remote Desktop is off"}
NLA_OFF = {"id": "RDP-NLA-DISABLED", "severity": "high", "explains_0x904": False, "title": "NLA is not required"}
IDLE = {"id": "RDP-NO-IDLE-LIMIT", "severity": "low", "explains_0x904": False, "title": "No idle limit"}
INCOMPLETE = {"id": "RDP-READ-INCOMPLETE", "severity": "medium", "explains_0x904": False, "title": "Part of the host could not be read"}


def probe(ok: bool = True, problems: t.Sequence[str] = ("self_signed", "untrusted")) -> dict[str, t.Any]:
    """A probe result as rdp_probe returns it (the parts the summary reads)."""
    certificate = {"step": "certificate", "verdict": "warn" if ok else "fail", "summary": "WIN, issued by WIN",
                   "details": {"problems": list(problems)}}
    return {"target": "127.0.0.2", "port": 3389, "steps": [{"step": "tcp", "verdict": "ok"}, certificate],
            "verdict": {"ok": ok, "explanation": "" if ok else "certificate: expired", "failed_step": None if ok else "certificate"}}


def record(state: dict | None = None, findings: list | None = None, probe_result: t.Any = None, **extra: t.Any) -> dict:
    """One host's record."""
    return {"host_state": state or OK, "findings": findings or [], "probe": probe_result, **extra}


FLEET = {
    "ok-1": record(probe_result=probe()),
    "ok-2": record(probe_result=probe()),
    "cert": record(findings=[CERT_EXPIRED, IDLE], probe_result=probe(ok=False, problems=["expired", "self_signed"])),
    "off": record(findings=[DENIED], probe_result=probe(ok=False)),
    "risk": record(findings=[NLA_OFF], probe_result=probe()),
    "reset": record({"state": "unreachable", "error": None,
                     "msg": "could not run host script 'read_rdp_state' on reset: ConnectionResetError(104, 'Connection reset by peer')"}),
    "garbled": record({"state": "failed", "error": {"script": "read_rdp_state"},
                       "msg": "host script 'read_rdp_state' did not answer with one JSON document (rc=0): #< CLIXML\r\n<Objs " + "A" * 5000}),
}


def test_counts_by_state_and_cause_then_one_line_per_host_worst_first() -> None:
    lines = fleet_summary(FLEET, fail_on="high")
    assert lines[0] == "rdp.doctor: 7 hosts - 1 failed, 1 unreachable, 2 broken, 1 at risk, 2 healthy; fail_on=high fails 5"
    assert lines[1] == "causes: RDP-CERT-EXPIRED 1, RDP-CONNECTIONS-DENIED 1"
    assert lines[2] == "failed or not read: connection reset 1, garbled answer 1"
    hosts = [line.split()[1].rstrip(":") for line in lines[3:8]]
    assert hosts == ["garbled", "reset", "cert", "off", "risk"]
    assert lines[5].startswith("BROKEN") and "RDP-CERT-EXPIRED (explains 0x904)" in lines[5] and lines[5].endswith("(+1 more)")
    assert not any(line.split()[1].rstrip(":").startswith("ok-") for line in lines[3:])  # healthy hosts get no line


def test_default_self_signed_certificate_is_said_once_as_info() -> None:
    lines = fleet_summary(FLEET)
    info = [line for line in lines if "self-signed" in line]
    assert len(info) == 1 and info[0].startswith("info: 4 hosts use Windows' default self-signed")  # ok-1, ok-2, off, risk
    assert not any("WARN" in line for line in lines)


def test_an_expired_self_signed_certificate_is_not_the_default_one() -> None:
    assert host_verdict(FLEET["cert"])["default_certificate"] is False
    assert host_verdict(record(probe_result=probe(problems=["self_signed", "untrusted", "weak_key"])))["default_certificate"] is False


def test_errors_are_one_short_line_without_clixml_or_base64() -> None:
    lines = fleet_summary(FLEET, max_error=120)
    garbled = next(line for line in lines if " garbled:" in line)
    assert "\n" not in garbled and "\r" not in garbled and "CLIXML output omitted" in garbled and "AAAA" not in garbled
    assert len(garbled) < 200
    assert all(len(line) < 320 for line in lines)
    blob = one_line("payload " + "QUJD" * 100 + " end")
    assert blob == "payload <400 encoded characters omitted> end"
    cut = one_line("word " * 100, limit=50)
    assert cut.endswith("...") and len(cut) <= 50 and cut.startswith("word word")


@pytest.mark.parametrize("message, reason", [
    ("could not run host script 'read_rdp_state' on h: ConnectionResetError(104, 'Connection reset by peer')", "connection reset"),
    ("winrm connection error: HTTPConnectionPool: Read timed out. (read timeout=3)", "timeout"),
    ("the specified credentials were rejected by the server", "credentials rejected"),
    ("Bad HTTP response returned from server. Code 500", "HTTP 500"),
    ("host script 'read_rdp_state' did not answer with one JSON document (rc=0): #< CLIXML", "garbled answer"),
    ("host script 'read_rdp_state' answered 5.0 MiB, larger than the 4.0 MiB a host script may answer", "oversized answer"),
    ("[Errno 111] Connection refused", "connection refused"),
    ("something else entirely", "other error"),
])
def test_failure_reasons_are_short_and_countable(message: str, reason: str) -> None:
    assert failure_reason(message) == reason


def test_a_failed_probe_is_never_healthy() -> None:
    verdict = host_verdict(record({"state": "ok", "msg": "", "probe_error": "probe crashed: 3 is not a valid X509 version"}))
    assert verdict["state"] == "failed" and verdict["fails"] and "probe failed" in verdict["detail"]
    lines = fleet_summary({"h": record({"state": "ok", "msg": "", "probe_error": "probe crashed"})})
    assert lines[0] == "rdp.doctor: 1 host - 1 failed" and "healthy" not in " ".join(lines)


def test_a_client_view_that_fails_without_a_finding_is_broken() -> None:
    verdict = host_verdict(record(probe_result=probe(ok=False)))
    assert verdict["state"] == "broken" and "client view fails: certificate: expired" in verdict["detail"]


@pytest.mark.parametrize("fail_on, failing", [
    ("none", {"reset", "garbled"}),
    ("cause", {"reset", "garbled", "cert", "off"}),
    ("critical", {"reset", "garbled", "cert", "off"}),
    ("high", {"reset", "garbled", "cert", "off", "risk"}),
    ("low", {"reset", "garbled", "cert", "off", "risk"}),
])
def test_fail_on_decides_which_findings_fail_a_host_unread_hosts_always_fail(fail_on: str, failing: set[str]) -> None:
    assert {name for name, rec in FLEET.items() if host_verdict(rec, fail_on)["fails"]} == failing


def test_read_incomplete_and_skipped_hosts_are_not_healthy() -> None:
    incomplete = dict(INCOMPLETE, evidence={"read_errors": [{"section": "firewall", "message": "MpsSvc is Stopped"}]})
    assert host_verdict(record(findings=[incomplete])) | {"default_certificate": False} == {
        "state": "read incomplete", "causes": [], "reason": "", "fails": False, "severity": "medium", "default_certificate": False,
        "detail": "could not read: firewall (MpsSvc is Stopped)"}
    assert host_verdict(record({"state": "skipped", "msg": "the host facts were not read in this run"}))["state"] == "skipped"
    assert host_verdict({})["state"] == "skipped"  # no record at all: never claimed healthy


def test_hostvars_records_and_remediation_outcomes() -> None:
    hostvars = {"rdp_doctor_host_state": OK, "rdp_doctor_findings": [DENIED], "rdp_doctor_probe": probe(ok=False),
                "rdp_doctor_remediation": {"state": "changed", "operations": [{"id": "op01"}, {"id": "op02"}]}}
    assert host_verdict(hostvars) | {"default_certificate": False} == {
        "state": "fixed", "causes": ["RDP-CONNECTIONS-DENIED"], "reason": "", "fails": False, "severity": "critical",
        "default_certificate": False, "detail": "2 operation(s) applied and verified"}
    left = dict(hostvars, rdp_doctor_remediation={"state": "changed", "operations": [{}], "remaining": ["RDP-TLS12-DISABLED"]})
    assert host_verdict(left)["state"] == "broken" and host_verdict(left)["detail"] == "still present after the change: RDP-TLS12-DISABLED"
    check = dict(hostvars, rdp_doctor_remediation={"state": "would_change", "operations": [{}]})
    assert host_verdict(check)["state"] == "would change"
    assert host_verdict(check)["detail"].startswith("check mode: 1 change(s) would be made; now: [critical] RDP-CONNECTIONS-DENIED")
    rolled = dict(hostvars, rdp_doctor_remediation={"state": "rolled_back", "msg": "", "regressions": ["tcp: ok -> fail"]})
    assert host_verdict(rolled)["state"] == "failed" and host_verdict(rolled)["detail"] == "rolled back: tcp: ok -> fail"
    partial = dict(hostvars, rdp_doctor_remediation={"state": "failed", "msg": "op02 failed; op01 is still applied"})
    assert host_verdict(partial)["detail"] == "remediation failed: op02 failed; op01 is still applied"
    manual = dict(hostvars, rdp_doctor_remediation={"state": "manual_only", "manual": [{"id": "RDP-GPO-OVERRIDE"}]})
    assert host_verdict(manual)["state"] == "manual" and host_verdict(manual)["detail"] == "manual steps: RDP-GPO-OVERRIDE"
    lines = fleet_summary({"a": hostvars, "b": check, "c": rolled})
    assert lines[0] == "rdp.doctor: 3 hosts - 1 failed, 1 would change, 1 fixed"
    assert lines[1] == "causes: RDP-CONNECTIONS-DENIED 2"  # the fixed host's cause is gone
    assert [line.split()[0] for line in lines[1:] if not line.startswith(("causes", "failed or", "info"))] == ["FAILED", "WOULD_CHANGE"]


def test_hosts_never_reached_are_listed() -> None:
    lines = fleet_summary({"ok-1": FLEET["ok-1"]}, not_reached=["later-1", "ok-1"])
    assert lines[0] == "rdp.doctor: 2 hosts - 1 not reached, 1 healthy"
    assert any(line.startswith("NOT_REACHED") and "later-1" in line for line in lines)


def test_bad_fail_on_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="fail_on must be one of none, cause, critical"):
        fleet_summary(FLEET, fail_on="severe")


def test_a_lost_apply_answer_says_the_host_may_have_changed() -> None:
    lost = {"host_state": OK, "findings": [NLA_OFF], "remediation": {
        "state": "failed", "outcome": "unknown",
        "msg": "rdp.doctor.remediate_host: the host may have applied some or all of op01: the answer to the change was lost; "
               "run again to read the host and converge (host script 'apply_rdp_changes' did not answer with one JSON document)"}}
    verdict = host_verdict(lost)
    assert verdict["state"] == "failed" and verdict["reason"] == "answer lost (garbled answer)"
    assert verdict["detail"].startswith("answer lost (garbled answer): the host may have applied some or all of op01")
