"""Host facts from the lab, as the planners get them on a real run: model + faults -> read twin -> normalize.

``facts(*faults)`` builds a healthy lab host (``tests/lab/model.py``), applies the named lab faults
(``tests/lab/faults.py``), reads it with the ``read_rdp_state`` twin and normalises the raw document with
``host_facts.normalize`` at the lab's moment, exactly as the action plugin does. ``host_of`` and
``facts_of_host`` split the two steps for tests that change the model further (a CA certificate in My, a
policy value, a WinRM HTTPS listener).
"""

from __future__ import annotations

import datetime as dt
import typing as t

from ansible_collections.rdp.doctor.plugins.module_utils import host_facts as hf
from ansible_collections.rdp.doctor.plugins.module_utils import remediation
from tests.lab import certs
from tests.lab.faults import build_host
from tests.lab.model import MY_STORE, CertEntry, Host, KeyFile, capi_key_file_name
from tests.lab.twins import read_rdp_state

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.timezone.utc)


def host_of(*faults: str, os_version: str | None = None, domain: str | None = None) -> Host:
    """A lab host with the faults applied at :data:`NOW`."""
    return build_host("win01", "127.0.0.2", list(faults), os_version=os_version, now=NOW, domain=domain)


def facts_of_host(host: Host) -> dict[str, t.Any]:
    """``ansible_facts.rdp_doctor`` of a lab host, read by the twin and normalised at :data:`NOW`."""
    raw = read_rdp_state.run(host, hf.build_params({"accounts": ["rdpuser"]}))
    return hf.normalize(raw, NOW, ["rdpuser"])


def facts(*faults: str, os_version: str | None = None, domain: str | None = None) -> dict[str, t.Any]:
    """Facts of a healthy lab host with ``faults``."""
    return facts_of_host(host_of(*faults, os_version=os_version, domain=domain))


def shape(plan: remediation.Plan) -> list[tuple[str, str, dict, dict, dict]]:
    """(id, kind, target, expect, set) of every operation, for exact comparisons."""
    return [(op["id"], op["kind"], op["target"], op["expect"], op["set"]) for op in plan.operations]


def assert_well_formed(plan: remediation.Plan) -> None:
    """The plan passes the contract's validation and never mixes refusals with operations."""
    assert remediation.plan_problems(plan.operations) == []
    if plan.refused:
        assert plan.operations == [] and plan.before == plan.after


def add_my_cert(host: Host, names: list[str] | None = None, days: int = 365, readable: bool = True, key: bool = True,
                rdp_eku: bool = False, template: certs.Template | None = None) -> CertEntry:
    """A CA-issued certificate in Cert:\\LocalMachine\\My with a legacy-CSP key file, optionally issued from ``template``."""
    names = names or ["win01"]
    cert = certs.issue_server_cert(certs.lab_ca(), names[0], names, certs.key_for(host.name), NOW - dt.timedelta(days=10),
                                   NOW + dt.timedelta(days=days), remote_desktop_eku=rdp_eku, template=template)
    container = certs.new_key_container_name()
    # The file name Windows derives from the key's container (what read_rdp_state computes, without opening the key).
    entry = CertEntry(cert=cert, key=certs.key_for(host.name) if key else None, has_private_key=key,
                      key_readable_by_network_service=readable, key_container=container,
                      key_file=capi_key_file_name(container, host.os.machine_guid) if key else None)
    host.cert_stores[MY_STORE].append(entry)
    if key:
        sddl = "O:SYG:SYD:P(A;;FA;;;SY)(A;;FA;;;BA)" + ("(A;;0x120089;;;NS)" if readable else "")
        host.machinekeys.files[t.cast(str, entry.key_file)] = KeyFile(t.cast(str, entry.key_file), sddl=sddl)
    return entry
