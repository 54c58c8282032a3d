"""A fleet report (schema rdp.doctor/fleet_report/1) built from real findings: the collection's own
normaliser, rules and probe verdicts.

Each host is a healthy raw document (rdp_doctor_raw) with lab faults applied, normalised and evaluated the way
diagnose does, joined with a probe result, and put in the report's host record shape (the report role's
``module_utils/fleet_report.py`` builds the same records from what diagnose and remediate publish); plus hosts
that were not read (unreachable, failed) and a hostile host whose every string is markup. ``FLEET`` is what a
test expects to see on the page.
"""

from __future__ import annotations

import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import findings as fd
from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from ansible_collections.rdp.doctor.plugins.module_utils import remediation as rm
from tests.unit.plugins.module_utils import rdp_doctor_raw as samples

# A host name and strings a hostile host could send: each would run script if pasted into the page.
HOSTILE_NAME = '<img src=x onerror="document.title=\'pwned\'">win-evil'
HOSTILE_TEXT = "</pre></details><script>document.title='pwned'</script><svg onload=alert(1)>"

# name -> (faults, OS build or None for the default 2022, probe tcp outcome)
READ_HOSTS: dict[str, tuple[tuple[str, ...], int | None, str]] = {
    "win-ok-01": ((), None, "connected"),
    "win-ok-02": ((), 14393, "connected"),
    "win-cert-01": (("cert_expired",), 14393, "connected"),
    "win-cert-02": (("cert_expired",), 14393, "connected"),
    "win-cert-03": (("cert_expired", "credssp_vulnerable"), 14393, "connected"),
    "win-gpo-01": (("gpo_overrides_security_layer",), None, "connected"),
    "win-gpo-02": (("gpo_overrides_security_layer", "ghost_sessions"), None, "connected"),
    "win-fw-01": (("firewall_rdp_disabled",), 17763, "refused"),
    "win-stopped-01": (("termservice_stopped",), 17763, "refused"),
}
UNREACHABLE = {"win-gone-01": "ntlm: HTTPSConnectionPool(host='10.0.9.9', port=5986): Max retries exceeded (timed out)"}
PROBE_ERROR = "probe: [Errno 113] No route to host"
FAILED = {"win-broken-01": "read_rdp_state failed: System.Management.Automation.RuntimeException: Access is denied"}
FLEET = sorted([*READ_HOSTS, *UNREACHABLE, *FAILED, HOSTILE_NAME])

CAPTIONS = {14393: "Microsoft Windows Server 2016 Standard", 17763: "Microsoft Windows Server 2019 Standard",
            20348: "Microsoft Windows Server 2022 Datacenter"}


def _raw(faults: tuple[str, ...], build: int | None) -> dict[str, t.Any]:
    raw = samples.raw_with(*faults)
    if build:
        raw["os"].update(build=build, version=f"10.0.{build}", caption=CAPTIONS[build])
    return raw


def probe_view(probe: dict[str, t.Any]) -> dict[str, t.Any]:
    """The report's small probe view (schema $defs/probe)."""
    verdict = probe["verdict"]
    return {"target": probe["target"], "port": probe["port"], "ok": verdict["ok"], "failed_step": verdict["failed_step"],
            "explanation": verdict.get("explanation") or "", "client_sees": verdict.get("client_sees") or "",
            "finding_ids": list(verdict["finding_ids"]),
            "steps": [{key: step[key] for key in ("step", "verdict", "summary", "finding_ids")} for step in probe["steps"]]}


def traits_of(facts: dict[str, t.Any] | None) -> dict[str, t.Any]:
    """The report's traits (schema $defs/traits); every value null when the host was not read."""
    facts = facts or {}
    os_facts, cert = facts.get("os") or {}, (facts.get("certificate") or {}).get("bound") or {}
    credssp, security = facts.get("credssp") or {}, facts.get("security") or {}
    policy = sorted(f"{section}.{name}" for section, values in facts.items() if isinstance(values, dict)
                    for name, setting in values.items() if isinstance(setting, dict) and setting.get("source") == "policy")
    return {"os_caption": os_facts.get("caption"), "os_version": os_facts.get("version"), "os_build": os_facts.get("build"),
            "domain": os_facts.get("domain"), "part_of_domain": os_facts.get("part_of_domain"),
            "certificate_issuer": cert.get("issuer"), "certificate_self_signed": cert.get("self_signed"),
            "certificate_not_after": cert.get("not_after"), "credssp": credssp.get("allow_encryption_oracle_name"),
            "credssp_patched": credssp.get("patched"), "security_layer": security.get("security_layer_name"),
            "nla_required": security.get("nla_required"), "policy_settings": policy}


def not_read(name: str, state: str, msg: str, error_type: str) -> dict[str, t.Any]:
    """A host diagnose could not read (schema $defs/host)."""
    return {"name": name, "address": "10.0.9.9", "state": state, "read": {"state": state, "msg": msg, "error": None},
            "worst_severity": None, "explains_0x904": False, "causes": [], "findings": [], "probe": None,
            "remediation": None, "errors": [{"stage": "read", "msg": msg, "type": error_type}], "traits": traits_of(None)}


def read_host(name: str, faults: tuple[str, ...], build: int | None, tcp: str) -> dict[str, t.Any]:
    """A host record the way the report keeps a host diagnose read."""
    facts = hf.normalize(_raw(faults, build), samples.NOW, ["rdpuser"])
    probe = samples.probe_result(target=name, tcp=tcp)
    found = [dict(f, status="open" if "module" in f["fix"] else "manual") for f in fd.evaluate(facts, probe)]
    causes = [f["id"] for f in found if f["explains_0x904"]]
    worst = min((fd.SEVERITIES.index(f["severity"]) for f in found), default=None)
    return {"name": name, "address": "127.0.0.2", "state": "broken" if causes else "healthy",
            "read": {"state": "ok", "msg": "", "error": None}, "worst_severity": None if worst is None else fd.SEVERITIES[worst],
            "explains_0x904": bool(causes), "causes": causes, "findings": found, "probe": probe_view(probe),
            "remediation": None, "errors": [], "traits": traits_of(facts)}


def drifted(host: dict[str, t.Any]) -> dict[str, t.Any]:
    """A check-mode remediation of the host: the operations it would apply (schema $defs/remediation)."""
    operation = rm.registry_set("HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server", "fDenyTSConnections", 0, 1,
                                why="RDP-CONNECTIONS-DENIED")
    host["remediation"] = {"state": "would_change", "check_mode": True, "changed": False, "outcome": "check_mode",
                           "operations": [dict(operation, id="op01")], "manual": [], "remaining": [], "fixed": [],
                           "refused": [], "regressions": [], "warnings": [], "reboot_required": False, "rebooted": False,
                           "msg": ""}
    for finding in host["findings"]:
        if finding["status"] == "open":
            finding["status"] = "would_fix"
    return host


def hostile_host() -> dict[str, t.Any]:
    """A host whose name, messages and evidence are markup (as a compromised or odd host could send)."""
    host = read_host(HOSTILE_NAME, ("cert_expired",), None, "connected")
    for finding in host["findings"]:
        finding["evidence"]["sample"] = HOSTILE_TEXT
        finding["title"] = HOSTILE_TEXT
    host["traits"]["certificate_issuer"] = "CN=" + HOSTILE_TEXT
    host["traits"]["certificate_self_signed"] = False
    host["probe"]["explanation"] = HOSTILE_TEXT
    host["address"] = HOSTILE_TEXT
    return host


def fleet_report() -> dict[str, t.Any]:
    """The whole report: every kind of host, in no particular order."""
    hosts = [read_host(name, *spec) for name, spec in READ_HOSTS.items()]
    drifted(hosts[-1])
    hosts += [not_read(name, "unreachable", msg, "unreachable") for name, msg in UNREACHABLE.items()]
    hosts[-1]["errors"].append({"stage": "probe", "msg": PROBE_ERROR, "type": "probe"})
    hosts += [not_read(name, "failed", msg, "RuntimeException") for name, msg in FAILED.items()]
    hosts.append(hostile_host())
    run = {"generated_utc": "2026-11-21T07:00:00Z", "kind": "diagnose", "check_mode": False, "run_id": "20261121T070000Z-ab12",
           "play": "Write the fleet report", "ansible_version": "2.19.14", "collection_version": "0.1.0", "broken_severity": "high",
           "selection": {"hosts": None, "findings": None},
           "sources": [{"run_id": "20261121T070000Z-ab12", "generated_utc": "2026-11-21T07:00:00Z", "hosts": len(hosts)}]}
    # The parts of the summary the page reads (it counts states and causes itself, from the host records).
    summary = {"drift": {"hosts_changed": 0, "hosts_would_change": 1, "operations": 1, "reboot_required": 0, "check_mode": True},
               "trend": [{"host": "win-cert-01", "from": "healthy", "to": "broken"}]}
    return {"schema": "rdp.doctor/fleet_report/1", "schema_version": 1, "run": run, "summary": summary, "hosts": hosts}
