"""The Ansible inventory of a running lab (pure rendering + one writer).

Group ``windows`` holds every lab host with ``ansible_host`` = its loopback address and the per-host
variables the collection's playbooks read: ``rdp_doctor_lab_faults`` (what the lab broke, for tests and
reports), ``rdp_doctor_accounts: [rdpuser]`` (contracts section 8; a host whose faults concern domain accounts
checks those too) and ``rdp_doctor_probe_host`` (the
name the probe connects to: the address, or ``localhost`` for the ``dns_mismatch`` path fault). The
connection variables are those of ``ansible.builtin.winrm`` (default) or ``ansible.builtin.psrp``.
"""

from __future__ import annotations

import dataclasses
import os
import typing as t

import yaml

CONNECTIONS = ("winrm", "psrp")
GROUP = "windows"
LAB_ACCOUNTS = ["rdpuser"]


@dataclasses.dataclass(frozen=True)
class InventoryHost:
    """What the inventory needs to know about one lab host."""

    name: str
    address: str
    faults: tuple[str, ...] = ()
    probe_host: str = ""
    username: str = ""
    password: str = ""
    accounts: tuple[str, ...] = ()  # checked besides LAB_ACCOUNTS (faults about domain accounts add theirs)


def connection_vars(connection: str, port: int = 5985) -> dict[str, t.Any]:
    """Group variables that make Ansible talk to the lab's WS-Management endpoints."""
    if connection == "winrm":
        return {"ansible_connection": "winrm", "ansible_port": port, "ansible_winrm_transport": "basic",
                "ansible_winrm_scheme": "http"}
    if connection == "psrp":
        return {"ansible_connection": "psrp", "ansible_port": port, "ansible_psrp_auth": "basic",
                "ansible_psrp_protocol": "http", "ansible_psrp_message_encryption": "never"}
    raise ValueError(f"unknown connection {connection!r}; expected one of {', '.join(CONNECTIONS)}")


def render_inventory(hosts: t.Sequence[InventoryHost], username: str, password: str, connection: str = "winrm",
                     port: int = 5985, extra_vars: t.Mapping[str, t.Any] | None = None) -> dict[str, t.Any]:
    """The YAML inventory document (a dict) for ``hosts``."""
    group_vars: dict[str, t.Any] = connection_vars(connection, port)
    group_vars.update({"ansible_user": username, "ansible_password": password, "rdp_doctor_accounts": list(LAB_ACCOUNTS)})
    group_vars.update(extra_vars or {})
    entries: dict[str, t.Any] = {}
    for host in hosts:
        entry: dict[str, t.Any] = {"ansible_host": host.address, "rdp_doctor_lab_faults": list(host.faults),
                                   "rdp_doctor_probe_host": host.probe_host or host.address}
        if host.accounts:
            entry["rdp_doctor_accounts"] = list(LAB_ACCOUNTS) + [a for a in host.accounts if a not in LAB_ACCOUNTS]
        if host.username and host.username != username:
            entry["ansible_user"] = host.username
        if host.password and host.password != password:
            entry["ansible_password"] = host.password
        entries[host.name] = entry
    return {"all": {"children": {GROUP: {"hosts": entries, "vars": group_vars}}}}


def write_inventory(path: str, document: dict[str, t.Any]) -> None:
    """Write an inventory atomically (a reader never sees half a file); it holds passwords: mode 0600."""
    temporary = f"{path}.tmp"
    with open(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as handle:
        handle.write("# Written by the rdp.doctor lab (python -m tests.lab start); regenerated on every start.\n")
        yaml.safe_dump(document, handle, sort_keys=False, default_flow_style=False)
    os.replace(temporary, path)
