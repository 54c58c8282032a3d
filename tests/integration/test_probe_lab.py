"""The client's eye on the lab: ``rdp.doctor.probe`` against the simulated fleet's RDP listeners.

One lab host per case (fleet ``tests/lab/fleets/probe.yml``, started once). For every case the probe must
see what a client sees on the matching broken Windows host: the exact verdict and finding ids of each of
the six steps, the first failing step, the answer to each protocol mix, the TLS version, the certificate
the host binds (its thumbprint as ``rdp.doctor.host_facts`` reads it from the host), the host's names and
OS version in the NTLM CHALLENGE, and a clock within limits.

Each case is probed twice: through the Python API (``probe(ProbeOptions(...))``) and through the module
(``rdp.doctor.probe`` delegated to localhost with the inventory's variables), in one playbook that also
reads the host facts. A fault applied at runtime through the admin API changes the answer at once.

Expectations follow Windows (``windows-rdp-facts.md``, ``docs/probe.md``). Windows Defender Firewall drops a
blocked SYN, so the hosts the firewall alone blocks run with ``firewall_blocks: drop`` (contracts section 9)
and the client times out after ``CONNECT_TIMEOUT``; with nothing listening the client is refused (RST).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import typing as t
from pathlib import Path

import pytest
import yaml

from ansible_collections.rdp.doctor.plugins.module_utils.rdp_probe import ProbeOptions, probe

pytestmark = pytest.mark.lab

RunPlaybook = t.Callable[..., subprocess.CompletedProcess]

FLEET = Path(__file__).resolve().parents[1] / "lab" / "fleets" / "probe.yml"
STEPS = ("dns", "tcp", "x224", "tls", "certificate", "nla")
CONNECT_TIMEOUT = 1.0  # a firewall that drops SYNs costs this much per attempt, not the default 5 s

# [MS-RDPBCGR] 2.2.1.2.1 / 2.2.1.2.2: selectedProtocol and failureCode values, written out here on purpose
# (not imported from the probe) so a wrong constant on either side shows.
SELECTED = {"RDP": 0, "SSL": 1, "HYBRID": 2, "HYBRID_EX": 8}
FAILURES = {"SSL_REQUIRED_BY_SERVER": 1, "SSL_NOT_ALLOWED_BY_SERVER": 2, "SSL_CERT_NOT_ON_SERVER": 3,
            "HYBRID_REQUIRED_BY_SERVER": 5}

Step = tuple[str, tuple[str, ...]]  # (verdict, finding ids of the step)
OK: Step = ("ok", ())
SKIPPED: Step = ("skipped", ())
REFUSED = "RDP-PROBE-TCP-REFUSED"
TIMEOUT = "RDP-PROBE-TCP-TIMEOUT"
SELF_SIGNED = ("RDP-CERT-SELF-SIGNED", "RDP-CERT-UNTRUSTED")  # the default listener certificate, always
NLA_REQUIRED: Step = ("ok", ("RDP-PROBE-NLA-REQUIRED",))
F5 = "FAILURE:HYBRID_REQUIRED_BY_SERVER"
# SecurityLayer 2 + NLA required: mstsc's 0x0b gets HYBRID, TLS-only and RDP-only get HYBRID_REQUIRED.
NLA_ANSWERS = {"0x0b": "HYBRID", "0x01": F5, "0x00": F5}
# SecurityLayer 2 + NLA off: TLS for whoever offers it (the lab selects SSL for 0x0b, contracts section 9), RDP alone refused.
NO_NLA_ANSWERS = {"0x0b": "SSL", "0x01": "SSL", "0x00": "FAILURE:SSL_REQUIRED_BY_SERVER"}
NLA_ABSENT: Step = ("warn", ("RDP-PROBE-NLA-ABSENT",))


def healthy(**changed: Step) -> dict[str, Step]:
    """The six steps of a healthy host (self-signed certificate, NLA required), some of them changed."""
    table = {"dns": OK, "tcp": OK, "x224": OK, "tls": OK, "certificate": ("warn", SELF_SIGNED), "nla": NLA_REQUIRED}
    table.update(changed)
    return table


def tcp_fails(finding_id: str) -> dict[str, Step]:
    """Nothing answers on the port: the client stops at TCP."""
    return {"dns": OK, "tcp": ("fail", (finding_id,)), "x224": SKIPPED, "tls": SKIPPED, "certificate": SKIPPED, "nla": SKIPPED}


def negotiation_fails(failure: str) -> dict[str, Step]:
    """mstsc's mix is answered with RDP_NEG_FAILURE: the client stops at X.224."""
    return {"dns": OK, "tcp": OK, "x224": ("fail", (f"RDP-PROBE-NEG-FAILURE-{failure}",)), "tls": SKIPPED,
            "certificate": SKIPPED, "nla": SKIPPED}


@dataclasses.dataclass(frozen=True)
class Case:  # pylint: disable=too-many-instance-attributes  # one field per thing a client sees
    """What a client sees on one lab host."""

    host: str
    steps: dict[str, Step]
    failed_step: str | None
    answers: dict[str, str] | None = None  # x224 answer per mix; None when no mix was sent
    tls_version: str | None = None         # None when no TLS handshake ran
    credssp: bool = False                  # the NLA step read an NTLM CHALLENGE
    port: int = 3389

    @property
    def finding_ids(self) -> list[str]:
        """Every step's ids, in step order, without duplicates (contracts section 6)."""
        return list(dict.fromkeys(fid for name in STEPS for fid in self.steps[name][1]))


CASES = [
    pytest.param(Case("ok-2022", healthy(), None, NLA_ANSWERS, "TLSv1.3", credssp=True), id="healthy-2022"),
    pytest.param(Case("p-rdp-disabled", tcp_fails(REFUSED), "tcp"), id="rdp_disabled"),
    pytest.param(Case("p-termservice-stopped", tcp_fails(REFUSED), "tcp"), id="termservice_stopped"),
    # Windows Defender Firewall has no reject action: the SYN is dropped (fleet: firewall_blocks: drop) [docs/probe.md].
    pytest.param(Case("p-firewall-rdp-disabled", tcp_fails(TIMEOUT), "tcp"), id="firewall_rdp_disabled"),
    pytest.param(Case("p-firewall-gpo-blocks", tcp_fails(TIMEOUT), "tcp"), id="firewall_gpo_blocks"),
    pytest.param(Case("p-cert-expired", healthy(certificate=("fail", ("RDP-CERT-EXPIRED",) + SELF_SIGNED)), "certificate",
                      NLA_ANSWERS, "TLSv1.3", credssp=True), id="cert_expired"),
    pytest.param(Case("p-cert-wrong-name", healthy(certificate=("fail", ("RDP-CERT-NAME-MISMATCH",) + SELF_SIGNED)), "certificate",
                      NLA_ANSWERS, "TLSv1.3", credssp=True), id="cert_wrong_name"),
    # No usable key: TLS cannot be offered (SSL_CERT_NOT_ON_SERVER); NLA is still required for the other mixes.
    pytest.param(Case("p-cert-key-unreadable", negotiation_fails("SSL_CERT_NOT_ON_SERVER"), "x224",
                      {"0x0b": "FAILURE:SSL_CERT_NOT_ON_SERVER", "0x01": F5, "0x00": F5}), id="cert_key_unreadable"),
    pytest.param(Case("p-listener-key-missing", negotiation_fails("SSL_CERT_NOT_ON_SERVER"), "x224",
                      {"0x0b": "FAILURE:SSL_CERT_NOT_ON_SERVER", "0x01": F5, "0x00": F5}), id="listener_key_missing"),
    # SecurityLayer 0 with NLA still on: TLS refused, and RDP alone is refused for want of NLA (no client gets in).
    pytest.param(Case("p-security-layer-rdp", negotiation_fails("SSL_NOT_ALLOWED_BY_SERVER"), "x224",
                      {"0x0b": "FAILURE:SSL_NOT_ALLOWED_BY_SERVER", "0x01": "FAILURE:SSL_NOT_ALLOWED_BY_SERVER", "0x00": F5}),
                 id="security_layer_rdp"),
    pytest.param(Case("p-nla-disabled", healthy(nla=NLA_ABSENT), None, NO_NLA_ANSWERS, "TLSv1.3"), id="nla_disabled"),
    # TLS 1.2 off, TLS 1.0 on, TLS 1.1 on by the OS default of 2016/2019: the best the client gets is 1.1.
    pytest.param(Case("p-tls12-disabled-2016", healthy(tls=("fail", ("RDP-PROBE-TLS-LEGACY",))), "tls", NLA_ANSWERS, "TLSv1.1",
                      credssp=True), id="tls12_disabled-2016"),
    pytest.param(Case("p-tls12-disabled-2019", healthy(tls=("fail", ("RDP-PROBE-TLS-LEGACY",))), "tls", NLA_ANSWERS, "TLSv1.1",
                      credssp=True), id="tls12_disabled-2019"),
    pytest.param(Case("p-tls12-disabled-2022", healthy(), None, NLA_ANSWERS, "TLSv1.3", credssp=True), id="tls12_disabled-2022"),
    # No Schannel Server protocol left: the TLS credential cannot be built (event 36871) [facts section 1].
    pytest.param(Case("p-all-tls-disabled", negotiation_fails("SSL_CERT_NOT_ON_SERVER"), "x224",
                      {"0x0b": "FAILURE:SSL_CERT_NOT_ON_SERVER", "0x01": F5, "0x00": F5}), id="all_tls_disabled"),
    # PortNumber 3390: nothing on 3389 (RST); 3390 listens but the firewall rules still allow 3389 only (SYN dropped).
    pytest.param(Case("p-port-moved", tcp_fails(REFUSED), "tcp"), id="port_moved-3389"),
    pytest.param(Case("p-port-moved", tcp_fails(TIMEOUT), "tcp", port=3390), id="port_moved-3390"),
    # The inventory's probe name resolves to localhost (127.0.0.1), where nothing listens on 3389.
    pytest.param(Case("p-dns-mismatch", {**tcp_fails(REFUSED), "dns": ("fail", ("RDP-DNS-MISMATCH",))}, "dns"), id="dns_mismatch"),
]

PLAYBOOK = """\
- name: Read every lab host and probe it from the controller, as the inventory says
  hosts: windows
  gather_facts: false
  tasks:
    - name: Host side (one round trip)
      rdp.doctor.host_facts:

    - name: Client side, through the module
      rdp.doctor.probe:
        host: "{{ rdp_doctor_probe_host }}"
        expected_address: "{{ ansible_host }}"
        server_name: "{{ inventory_hostname if rdp_doctor_probe_host == ansible_host else omit }}"
        connect_timeout: "{{ probe_lab_connect_timeout }}"
      delegate_to: localhost
      register: probe_result

    - name: Dump both for the test
      ansible.builtin.copy:
        content: "{{ {'facts': ansible_facts.rdp_doctor, 'probe': probe_result} | to_json }}"
        dest: "{{ probe_lab_dump }}/{{ inventory_hostname }}.json"
        mode: "0600"
      delegate_to: localhost
"""


@dataclasses.dataclass(frozen=True)
class LabHost:
    """One lab host as the inventory and the host facts describe it, and what the module probe returned."""

    name: str
    address: str
    probe_host: str
    faults: tuple[str, ...]
    facts: dict[str, t.Any]
    module_result: dict[str, t.Any]

    def options(self, port: int = 3389) -> ProbeOptions:
        """What the module is given: the inventory's probe host, its address, and the name a client types."""
        server_name = self.name if self.probe_host == self.address else None
        return ProbeOptions(host=self.probe_host, port=port, expected_address=self.address, server_name=server_name,
                            connect_timeout=CONNECT_TIMEOUT)


@dataclasses.dataclass(frozen=True)
class ProbeLab:
    """The running lab of this module and every host's facts / module probe (read once, before any change)."""

    info: t.Any
    hosts: dict[str, LabHost]


@pytest.fixture(scope="module", name="probe_lab")
def fixture_probe_lab(lab_fleet: t.Callable[..., t.Any], run_playbook: RunPlaybook, tmp_path_factory: pytest.TempPathFactory) -> ProbeLab:
    """Start the fleet, then read every host and probe it through the module in one playbook run."""
    info = lab_fleet(FLEET)
    work = tmp_path_factory.mktemp("probe-lab")
    (work / "dump").mkdir()
    playbook = work / "probe_lab.yml"
    playbook.write_text(PLAYBOOK, encoding="utf-8")
    args = ["-e", f"probe_lab_dump={work / 'dump'}", "-e", f"probe_lab_connect_timeout={CONNECT_TIMEOUT}", "--forks", "8"]
    run = run_playbook(playbook, info.inventory, args)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    inventory = yaml.safe_load(info.inventory.read_text(encoding="utf-8"))["all"]["children"]["windows"]["hosts"]
    hosts = {}
    for name, host_vars in inventory.items():
        dump = json.loads((work / "dump" / f"{name}.json").read_text(encoding="utf-8"))
        hosts[name] = LabHost(name, host_vars["ansible_host"], host_vars["rdp_doctor_probe_host"], tuple(host_vars["rdp_doctor_lab_faults"]),
                              dump["facts"], dump["probe"])
    return ProbeLab(info, hosts)


# --------------------------------------------------------------------------------------------- checks


def steps_of(result: dict[str, t.Any]) -> dict[str, Step]:
    """step -> (verdict, finding ids) of a probe result."""
    return {step["step"]: (step["verdict"], tuple(step["finding_ids"])) for step in result["steps"]}


def check_steps(result: dict[str, t.Any], case: Case) -> None:
    """Every step's verdict and ids, the verdict's first failing step and ids."""
    assert [step["step"] for step in result["steps"]] == list(STEPS)
    assert steps_of(result) == case.steps
    verdict = result["verdict"]
    assert (verdict["ok"], verdict["failed_step"]) == (case.failed_step is None, case.failed_step)
    assert verdict["finding_ids"] == case.finding_ids


def check_tcp(result: dict[str, t.Any], case: Case, host: LabHost) -> None:
    """Which address the client reached, or how each attempt failed."""
    attempts = [(a["address"], a["source"], a["outcome"]) for a in result["tcp"]["attempts"]]
    if case.steps["dns"][0] == "fail":  # resolved elsewhere: nothing there; the inventory's address would answer
        assert "127.0.0.1" in result["dns"]["addresses"] and result["dns"]["expected_address"] == host.address
        assert result["tcp"]["address"] is None
        assert attempts == [(a, "dns", "refused") for a in result["dns"]["addresses"]] + [(host.address, "expected_address", "connected")]
    elif case.steps["tcp"][0] == "fail":
        expected = "timeout" if case.steps["tcp"][1] == (TIMEOUT,) else "refused"
        assert (result["tcp"]["address"], attempts) == (None, [(host.address, "dns", expected)])
    else:
        assert (result["tcp"]["address"], attempts) == (host.address, [(host.address, "dns", "connected")])


def check_negotiation(result: dict[str, t.Any], case: Case) -> None:
    """The answer to each mix, down to selectedProtocol / failureCode."""
    if case.answers is None:
        assert result["x224"] is None
        return
    assert result["x224"]["answers"] == case.answers
    for mix in result["x224"]["mixes"]:
        answer = case.answers[mix["requested_hex"]]
        if answer.startswith("FAILURE:"):
            assert (mix["kind"], mix["failure_code"]) == ("negotiation_failure", FAILURES[answer.split(":", 1)[1]])
        else:
            assert (mix["kind"], mix["selected_protocol"]) == ("negotiation_response", SELECTED[answer])


def check_tls_and_certificate(result: dict[str, t.Any], case: Case, host: LabHost) -> None:
    """TLS version, and the certificate served is the one the host binds (host facts)."""
    if case.tls_version is None:
        assert (result["tls"], result["certificate"]) == (None, None)
        return
    assert (result["tls"]["ok"], result["tls"]["version"], result["tls"]["mix"]) == (True, case.tls_version, "0x0b")
    assert result["tls"]["legacy"] is (case.tls_version in ("TLSv1", "TLSv1.1"))
    bound = host.facts["certificate"]["bound"]
    cert = result["certificate"]
    assert cert["sha1_thumbprint"] == host.facts["certificate"]["bound_thumbprint"] == bound["thumbprint"]
    assert (cert["subject_cn"], cert["not_after"], cert["self_signed"]) == (bound["subject_cn"], bound["not_after"], True)
    assert cert["name_matches"] is (case.steps["certificate"][1][0] != "RDP-CERT-NAME-MISMATCH")


NLA_STATES = {"RDP-PROBE-NLA-REQUIRED": "required", "RDP-PROBE-NLA-OPTIONAL": "offered", "RDP-PROBE-NLA-ABSENT": "absent"}


def check_nla(result: dict[str, t.Any], case: Case, host: LabHost) -> None:
    """NLA state; the NTLM CHALLENGE names the host (workgroup: computer = domain) with its OS and clock."""
    if case.steps["nla"] == SKIPPED:
        assert result["nla"] is None
        return
    nla = result["nla"]
    assert nla["state"] == NLA_STATES[case.steps["nla"][1][0]]
    if not case.credssp:
        assert nla["credssp"] is None
        return
    os_facts = host.facts["os"]
    assert (nla["credssp"]["ok"], nla["credssp"]["mix"], nla["credssp"]["ts_request"]["version"]) == (True, "0x0b", 6)
    ntlm = nla["credssp"]["ntlm"]
    assert (ntlm["netbios_computer"], ntlm["netbios_domain"], ntlm["target_name"]) == (os_facts["computer_name"],) * 3
    assert (ntlm["dns_computer"], ntlm["dns_domain"], ntlm["os_version"]) == (os_facts["fqdn"], os_facts["fqdn"], os_facts["version"])
    assert nla["server_time_utc"] == ntlm["timestamp"]
    # the lab's clock is this machine's: well within the probe's limit (no RDP-PROBE-CLOCK-SKEW above)
    assert abs(nla["clock_skew_seconds"]) < 30.0 and abs(os_facts["clock_skew_seconds"]) < 30.0


def check_probe(result: dict[str, t.Any], case: Case, host: LabHost) -> None:
    """The whole client view of one case."""
    assert (result["schema"], result["port"]) == ("rdp.doctor/probe/1", case.port)
    check_steps(result, case)
    check_tcp(result, case, host)
    check_negotiation(result, case)
    check_tls_and_certificate(result, case, host)
    check_nla(result, case, host)


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES)
def test_probe_sees_the_broken_host(probe_lab: ProbeLab, case: Case) -> None:
    """The Python API and the module both see exactly what a client of that Windows host sees."""
    host = probe_lab.hosts[case.host]
    results = [probe(host.options(case.port))]
    if case.port == 3389:  # the module ran with the inventory's variables on the default port
        assert host.module_result["changed"] is False and not host.module_result.get("failed")
        results.append(host.module_result)
    for result in results:
        check_probe(result, case, host)


def test_fleet_file_has_one_host_per_case(probe_lab: ProbeLab) -> None:
    """Every fleet host is a case (or the runtime host) and carries exactly the fault its case is named after."""
    cases = {param.values[0].host: param.id.split("-", 1)[0] for param in CASES}
    assert set(probe_lab.hosts) == set(cases) | {"p-runtime"}
    faults = {name: host.faults for name, host in probe_lab.hosts.items()}
    assert faults == {**{name: () if fault == "healthy" else (fault,) for name, fault in cases.items()}, "p-runtime": ()}
    versions = {name: host.facts["os"]["version"] for name, host in probe_lab.hosts.items()}
    assert (versions["p-tls12-disabled-2016"], versions["p-tls12-disabled-2019"], versions["ok-2022"]) == (
        "10.0.14393", "10.0.17763", "10.0.20348")


def test_lab_drops_syns_only_where_the_firewall_alone_blocks(probe_lab: ProbeLab) -> None:
    """firewall_blocks: drop hosts hold their port in a socket that never accepts; a host with RDP off holds none."""
    admin = probe_lab.info.admin
    names = ("p-firewall-rdp-disabled", "p-firewall-gpo-blocks", "p-port-moved", "p-rdp-disabled", "ok-2022")
    ports = {name: (admin.host(name)["rdp"]["port"], admin.host(name)["rdp"]["filtered_port"]) for name in names}
    assert ports == {"p-firewall-rdp-disabled": (None, 3389), "p-firewall-gpo-blocks": (None, 3389), "p-port-moved": (None, 3390),
                     "p-rdp-disabled": (None, None), "ok-2022": (3389, None)}
    assert all(admin.host(name)["rdp"]["connections"] == 0 for name in names[:3])  # no SYN ever got through


def test_runtime_fault_changes_the_answer_without_restart(probe_lab: ProbeLab) -> None:
    """Faults applied through the admin API: the next connection sees them (same lab process)."""
    admin = probe_lab.info.admin
    host = probe_lab.hosts["p-runtime"]
    healthy_case = Case("p-runtime", healthy(), None, NLA_ANSWERS, "TLSv1.3", credssp=True)
    check_probe(host.module_result, healthy_case, host)  # the module's view, read before any change
    check_probe(probe(host.options()), healthy_case, host)
    # NLA off: the same listening socket answers differently at once
    assert admin.apply_faults("p-runtime", ["nla_disabled"]) == ["nla_disabled"]
    check_probe(probe(host.options()), Case("p-runtime", healthy(nla=NLA_ABSENT), None, NO_NLA_ANSWERS, "TLSv1.3"), host)
    # Remote Desktop off: the listener closes its socket
    assert admin.apply_faults("p-runtime", ["rdp_disabled"]) == ["nla_disabled", "rdp_disabled"]
    check_probe(probe(host.options()), Case("p-runtime", tcp_fails(REFUSED), "tcp"), host)
    status = admin.host("p-runtime")
    assert status["rdp"]["port"] is None and status["rdp"]["negotiations"]["SSL"] >= 2
    assert admin.status()["pid"] == probe_lab.info.pid  # the same lab process answered throughout
