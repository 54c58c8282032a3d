"""A fleet report built from real findings: the collection's own normaliser, rules and probe verdicts.

Each host is a healthy raw document (rdp_doctor_raw) with lab faults applied, normalised and evaluated the way
diagnose does, joined with a probe result; plus hosts that were not read (unreachable, failed) and a hostile
host whose every string is markup. ``FLEET`` is what a test expects to see on the page.
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
FAILED = {"win-broken-01": "read_rdp_state failed: System.Management.Automation.RuntimeException: Access is denied"}
FLEET = sorted([*READ_HOSTS, *UNREACHABLE, *FAILED, HOSTILE_NAME])

CAPTIONS = {14393: "Microsoft Windows Server 2016 Standard", 17763: "Microsoft Windows Server 2019 Standard",
            20348: "Microsoft Windows Server 2022 Datacenter"}


def _raw(faults: tuple[str, ...], build: int | None) -> dict[str, t.Any]:
    raw = samples.raw_with(*faults)
    if build:
        raw["os"].update(build=build, version=f"10.0.{build}", caption=CAPTIONS[build])
    return raw


def read_host(name: str, faults: tuple[str, ...], build: int | None, tcp: str) -> dict[str, t.Any]:
    """A host record the way the report keeps a host diagnose read: state, facts, findings, probe."""
    facts = hf.normalize(_raw(faults, build), samples.NOW, ["rdpuser"])
    probe = samples.probe_result(target=name, tcp=tcp)
    found = fd.evaluate(facts, probe)
    state = "broken" if any(f.get("explains_0x904") for f in found) else "healthy"
    return {"name": name, "state": state, "facts": facts, "probe": probe, "findings": found}


def drifted(host: dict[str, t.Any]) -> dict[str, t.Any]:
    """A check-mode remediation of the host: the operations it would apply (contracts 10c)."""
    operation = rm.registry_set("HKLM:\\SYSTEM\\CurrentControlSet\\Control\\Terminal Server", "fDenyTSConnections", 0, 1,
                                why="RDP-CONNECTIONS-DENIED")
    host["remediation"] = {"state": "would_change", "outcome": "check_mode", "operations": [dict(operation, id="op01")]}
    return host


def hostile_host() -> dict[str, t.Any]:
    """A host whose name, messages and evidence are markup (as a compromised or odd host could send)."""
    host = read_host(HOSTILE_NAME, ("cert_expired",), None, "connected")
    for finding in host["findings"]:
        finding["evidence"]["sample"] = HOSTILE_TEXT
        finding["title"] = HOSTILE_TEXT
    host["facts"]["certificate"]["bound"]["issuer"] = "CN=" + HOSTILE_TEXT
    host["probe"]["verdict"]["explanation"] = HOSTILE_TEXT
    return host


def fleet_report() -> dict[str, t.Any]:
    """The whole report: every kind of host, in no particular order."""
    hosts = [read_host(name, *spec) for name, spec in READ_HOSTS.items()]
    drifted(hosts[-1])
    hosts += [{"name": name, "state": "unreachable", "msg": msg, "findings": [], "probe": None} for name, msg in UNREACHABLE.items()]
    hosts += [{"name": name, "state": "failed", "error": {"type": "RuntimeException", "message": msg}, "findings": []}
              for name, msg in FAILED.items()]
    hosts.append(hostile_host())
    return {"schema": "rdp.doctor/report/1", "generated_utc": "2026-11-21T07:00:00Z", "run": {"check_mode": False},
            "hosts": hosts}
