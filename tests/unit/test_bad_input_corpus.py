"""Bad input never reaches a host (issue 10): a corpus of bad arguments for every module the collection runs on a host.

Each case is (module, args, message fragment). The action plugin runs in-process with a connection whose every
command is recorded and a probe that is recorded: a case passes when the task fails with a message that
contains the fragment (which names the option and what is allowed), carries no traceback and no finding, and
neither the host nor the probe was touched. The roles' own argument specs are exercised end to end in
tests/integration/test_bad_input_roles.py.
"""

from __future__ import annotations

import os
import typing as t
from unittest import mock

import pytest
from ansible.errors import AnsibleActionFail
from ansible.playbook.play_context import PlayContext

from ansible_collections.rdp.doctor.plugins.action import credssp, diagnose_host, firewall, host_facts, listener_certificate
from ansible_collections.rdp.doctor.plugins.action import listener_security, machinekeys, remediate_host, services
from ansible_collections.rdp.doctor.plugins.action import session_limits, tls_protocols

ACTIONS: dict[str, type] = {
    "host_facts": host_facts.ActionModule,
    "diagnose_host": diagnose_host.ActionModule,
    "remediate_host": remediate_host.ActionModule,
    "credssp": credssp.ActionModule,
    "listener_security": listener_security.ActionModule,
    "listener_certificate": listener_certificate.ActionModule,
    "firewall": firewall.ActionModule,
    "session_limits": session_limits.ActionModule,
    "machinekeys": machinekeys.ActionModule,
    "services": services.ActionModule,
    "tls_protocols": tls_protocols.ActionModule,
}

INF = float("inf")
NAN = float("nan")
LONG = "x" * 5000
#: Placeholders replaced by real paths the fixture makes (a FIFO, a 5 MB file, a directory, a missing file).
FIFO, BIG, DIRECTORY, MISSING = "<fifo>", "<big>", "<directory>", "<missing>"

Case = t.Tuple[str, t.Dict[str, t.Any], str]

# Options every host-reading module shares (host_facts, diagnose_host read with them).
_FACTS_CASES: list[tuple[dict[str, t.Any], str]] = [
    ({"event_days": 0}, "event_days must be between 1 and 365"),
    ({"event_days": 366}, "event_days must be between 1 and 365"),
    ({"event_days": -7}, "event_days must be between 1 and 365"),
    ({"event_days": "a week"}, "argument 'event_days' is of type str and we were unable to convert to int"),
    ({"event_days": 1.5}, "argument 'event_days' is of type float and we were unable to convert to int"),
    ({"event_days": True}, "event_days must be a whole number"),
    ({"event_sample_size": 51}, "event_sample_size must be between 0 and 50"),
    ({"event_sample_size": -1}, "event_sample_size must be between 0 and 50"),
    ({"accounts": [""]}, "accounts[0] must not be empty"),
    ({"accounts": ["   "]}, "accounts[0] must not be empty"),
    ({"accounts": ["al\x00ice"]}, "accounts[0] must not contain control characters"),
    ({"accounts": ["alice", "bob\nFAKE LOG LINE"]}, "accounts[1] must not contain control characters"),
    ({"accounts": ["x" * 300]}, "accounts[0] is 300 characters long; at most 256"),
    ({"accounts": [f"user{i}" for i in range(51)]}, "at most 50 accounts"),
    ({"port_hint": 0}, "port_hint must be a TCP port (1-65535)"),
    ({"port_hint": 65536}, "port_hint must be a TCP port (1-65535)"),
    ({"port_hint": -3389}, "port_hint must be a TCP port (1-65535)"),
    ({"port_hint": "rdp"}, "argument 'port_hint' is of type str"),
    ({"bogus": 1}, "Unsupported parameters"),
]

CASES: list[Case] = [("host_facts", args, fragment) for args, fragment in _FACTS_CASES] + [
    ("host_facts", {"include_raw": "perhaps"}, "argument 'include_raw' is of type str and we were unable to convert to bool"),
] + [("diagnose_host", args, fragment) for args, fragment in _FACTS_CASES] + [
    ("diagnose_host", {"steps": []}, "steps must name at least one of facts, probe, findings, summary"),
    ("diagnose_host", {"steps": ["everything"]}, "value of steps must be one or more of: facts, probe, findings, summary"),
    ("diagnose_host", {"probe_host": ""}, "probe_host must not be empty"),
    ("diagnose_host", {"probe_host": "win\x0001"}, "probe_host must not contain control characters"),
    ("diagnose_host", {"probe_host": LONG}, "probe_host is 5000 characters long; at most 253"),
    ("diagnose_host", {"probe_host": "bad host!"}, "probe_host: 'bad host!' is not a host name or IP address"),
    ("diagnose_host", {"probe_host": "999.1.1.1"}, "probe_host: '999.1.1.1' is not an IPv4 address"),
    ("diagnose_host", {"probe_host": "-win01"}, "is not a host name or IP address"),
    ("diagnose_host", {"probe_port": 0}, "probe_port must be a TCP port (1-65535)"),
    ("diagnose_host", {"probe_port": 70000}, "probe_port must be a TCP port (1-65535)"),
    ("diagnose_host", {"probe_port": True}, "probe_port must be a TCP port (1-65535), not True"),
    ("diagnose_host", {"probe_expected_address": "999.1.1.1"}, "probe_expected_address: '999.1.1.1' is not an IPv4 address"),
    ("diagnose_host", {"probe_expected_address": "10.0.0.5\n"}, "probe_expected_address must not contain control characters"),
    ("diagnose_host", {"probe_expected_address": "10.0.0.5; rm"}, "probe_expected_address: '10.0.0.5; rm' is not a host name or IP address"),
    ("diagnose_host", {"probe_server_name": LONG}, "probe_server_name is 5000 characters long; at most 253"),
    ("diagnose_host", {"probe_server_name": "win01\x00.evil.example"}, "probe_server_name must not contain control characters"),
    ("diagnose_host", {"probe_server_name": "*.corp example"}, "probe_server_name: '*.corp example' is not a host name"),
    ("diagnose_host", {"probe_timeout": INF}, "probe_timeout must be a finite number of seconds in (0, 300], not inf"),
    ("diagnose_host", {"probe_timeout": NAN}, "probe_timeout must be a finite number of seconds in (0, 300], not nan"),
    ("diagnose_host", {"probe_timeout": 1e308}, "probe_timeout must be a finite number of seconds in (0, 300]"),
    ("diagnose_host", {"probe_timeout": -1}, "probe_timeout must be a finite number of seconds in (0, 300]"),
    ("diagnose_host", {"probe_timeout": 0}, "probe_timeout must be a finite number of seconds in (0, 300]"),
    ("diagnose_host", {"probe_timeout": "fast"}, "argument 'probe_timeout' is of type str"),
    ("diagnose_host", {"probe_options": "nla=maybe=1"}, "probe_options: argument 'nla' is of type str"),
    ("diagnose_host", {"probe_options": {"bogus": 1}}, "probe_options: unknown key 'bogus'; allowed: ca_bundle"),
    ("diagnose_host", {"probe_options": {"ca_bundle": FIFO}}, "is not a regular file"),
    ("diagnose_host", {"probe_options": {"ca_bundle": "/dev/zero"}}, "probe_options.ca_bundle: '/dev/zero' is not a regular file"),
    ("diagnose_host", {"probe_options": {"ca_bundle": DIRECTORY}}, "is not a regular file"),
    ("diagnose_host", {"probe_options": {"ca_bundle": MISSING}}, "cannot be used (No such file or directory); it must be a readable regular file"),
    ("diagnose_host", {"probe_options": {"ca_bundle": BIG}}, "bytes; at most 4194304 are allowed"),
    ("diagnose_host", {"probe_options": {"ca_bundle": "/etc/ssl/\x00certs"}}, "probe_options.ca_bundle must not contain control characters"),
    ("diagnose_host", {"probe_options": {"nla": "perhaps"}}, "probe_options: argument 'nla' is of type str"),
    ("diagnose_host", {"probe_options": {"mixes": ["0x0b\x00"]}}, "probe_options.mixes[0] must not contain control characters"),
    ("diagnose_host", {"probe_options": {"cookie": "mstshash=a\r\nX"}}, "probe_options.cookie must not contain control characters"),
    ("diagnose_host", {"probe_options": {"max_clock_skew": -1}}, "probe_options.max_clock_skew must be a number from 0 to 86400"),
    ("diagnose_host", {"probe_options": {"max_clock_skew": INF}}, "probe_options.max_clock_skew must be a finite number"),
    ("diagnose_host", {"probe_options": {"max_clock_skew": NAN}}, "probe_options.max_clock_skew must be a finite number"),
    ("diagnose_host", {"probe_options": {"expiring_days": 1e20}}, "probe_options.expiring_days must be a whole number from 0 to 3650"),
    ("diagnose_host", {"probe_options": {"expiring_days": -30}}, "probe_options.expiring_days must be a whole number"),
    ("diagnose_host", {"probe_options": {"max_connections_per_target": 0}}, "probe_options.max_connections_per_target"),
    ("diagnose_host", {"probe_options": {"steps": []}}, "probe_options.steps must name at least one probe step"),
    ("diagnose_host", {"probe_options": {"steps": ["ping"]}}, "probe_options: value of steps must be one or more of"),
    ("diagnose_host", {"categories": ["everything"]}, "categories: 'everything' is not a finding category; allowed: accounts"),
    ("diagnose_host", {"categories": ["tls\x00"]}, "categories[0] must not contain control characters"),
    ("diagnose_host", {"min_severity": "urgent"}, "value of min_severity must be one of: critical, high, medium, low, info"),
    ("diagnose_host", {"fail_on_findings": "perhaps"}, "argument 'fail_on_findings' is of type str"),
    ("diagnose_host", {"probe": "sometimes"}, "argument 'probe' is of type str and we were unable to convert to bool"),
    ("diagnose_host", {"run_tags": ["all\x1b[31m"]}, "run_tags[0] must not contain control characters"),
    ("diagnose_host", {"skip_tags": [""]}, "skip_tags[0] must not be empty"),
]

# rdp.doctor.remediate_host: the role's task (findings, a baseline, switches, the probe after the change, reboot).
_FINDING = {"id": "RDP-CREDSSP-VULNERABLE", "fix": {"module": "rdp.doctor.credssp", "params": {"allow_encryption_oracle": "mitigated"}}}
CASES += [
    ("remediate_host", {"findings": [1]}, "Elements value for option 'findings' is of type int"),
    ("remediate_host", {"findings": "RDP-NLA-DISABLED"}, "Elements value for option 'findings' is of type str"),
    ("remediate_host", {"findings": [{"id": "X", "fix": "credssp"}]}, "findings[0].fix must be a dictionary"),
    ("remediate_host", {"findings": [{"id": "X", "fix": {"module": 5}}]}, "findings[0].fix.module must be a module name"),
    ("remediate_host", {"findings": [{"id": "X", "fix": {"module": "rdp.doctor.nosuch"}}]}, "is not a remediation module of rdp.doctor"),
    ("remediate_host", {"findings": [{"id": "X", "fix": {"module": "ansible.windows.win_regedit"}}]}, "is not a remediation module"),
    ("remediate_host", {"findings": [{"id": "X", "fix": {"module": "rdp.doctor.credssp", "params": "x"}}]},
     "findings[0].fix.params must be a dictionary"),
    ("remediate_host", {"findings": [{"id": "X", "fix": {"module": "rdp.doctor.credssp", "run": "calc.exe"}}]},
     "findings[0].fix: unknown key 'run'"),
    ("remediate_host", {"findings": [{"id": "X\x00", "fix": {"manual": "x"}}]}, "findings[0].id must not contain control characters"),
    ("remediate_host", {"findings": [{"id": "X", "fix": {"module": "rdp.doctor.credssp", "params": {"allow_encryption_oracle": "sometimes"}}}]},
     "rdp.doctor.credssp: value of allow_encryption_oracle must be one of"),
    ("remediate_host", {"findings": [_FINDING, {"id": "Y", "fix": {
        "module": "rdp.doctor.credssp", "params": {"allow_encryption_oracle": "force_updated_clients"}}}]},
     "rdp.doctor.credssp: finding Y asks allow_encryption_oracle='force_updated_clients'"),
    ("remediate_host", {"findings": [{"id": "X", "fix": {"module": "rdp.doctor.firewall", "params": {"port": 0}}}]},
     "rdp.doctor.firewall: port must be a TCP port (1-65535)"),
    ("remediate_host", {"baseline": "secure"}, "argument 'baseline' is of type str and we were unable to convert to dict"),
    ("remediate_host", {"baseline": {"bogus": 1}}, "rdp_doctor_baseline: unknown key 'bogus'; allowed: allow_connections"),
    ("remediate_host", {"baseline": {"firewall": "on"}}, "rdp_doctor_baseline.firewall must be a dict of rdp.doctor.firewall options"),
    ("remediate_host", {"baseline": {"firewall": {"bogus": 1}}}, "rdp.doctor.firewall: Unsupported parameters: bogus"),
    ("remediate_host", {"baseline": {"firewall": {"port": 0}}}, "rdp.doctor.firewall: port must be a TCP port (1-65535)"),
    ("remediate_host", {"baseline": {"firewall": {"remote_addresses": ["10.0.0.0/8;calc"]}}}, "rdp.doctor.firewall: remote_addresses"),
    ("remediate_host", {"baseline": {"firewall": {"remote_addresses": ["10.0.0.1\x00"]}}},
     "rdp.doctor.firewall: remote_addresses[0] must not contain control characters"),
    ("remediate_host", {"baseline": {"firewall": {"profiles": ["work"]}}}, "rdp.doctor.firewall: value of profiles must be one or more of"),
    ("remediate_host", {"baseline": {"session_limits": {"max_idle_time": "forever"}}},
     "rdp.doctor.session_limits: max_idle_time: 'forever' is not a duration"),
    ("remediate_host", {"baseline": {"session_limits": {"max_idle_time": -5}}}, "rdp.doctor.session_limits: max_idle_time: -5 is negative"),
    ("remediate_host", {"baseline": {"session_limits": {"max_idle_time": INF}}}, "rdp.doctor.session_limits: max_idle_time: inf is not a duration"),
    ("remediate_host", {"baseline": {"session_limits": {"max_idle_time": "100d"}}}, "is longer than Windows can store"),
    ("remediate_host", {"baseline": {"session_limits": {"max_instance_count": 0}}}, "rdp.doctor.session_limits: max_instance_count must be"),
    ("remediate_host", {"baseline": {"services": {"termservice": {"state": "flying"}}}}, "rdp.doctor.services: value of state must be one of"),
    ("remediate_host", {"baseline": {"services": {"termservice": {"bogus": 1}}}}, "rdp.doctor.services: Unsupported parameters: termservice.bogus"),
    ("remediate_host", {"baseline": {"services": {"termservice": "on"}}}, "rdp.doctor.services: argument 'termservice' is of type str"),
    ("remediate_host", {"baseline": {"port": 70000}}, "rdp.doctor.listener_security: port must be a TCP port"),
    ("remediate_host", {"baseline": {"port": "rdp"}}, "rdp.doctor.listener_security: argument 'port' is of type str"),
    ("remediate_host", {"baseline": {"credssp": "sometimes"}}, "rdp.doctor.credssp: value of allow_encryption_oracle must be one of"),
    ("remediate_host", {"baseline": {"tls12": "disabled"}}, "rdp.doctor.tls_protocols: value of tls12 must be one of: enabled"),
    ("remediate_host", {"baseline": {"disable_legacy_tls": ["tls13"]}}, "rdp.doctor.tls_protocols: value of disable_legacy"),
    ("remediate_host", {"baseline": {"security_layer": "ssl"}}, "rdp.doctor.listener_security: value of security_layer must be one of"),
    ("remediate_host", {"baseline": {"nla": "perhaps"}}, "rdp.doctor.listener_security: argument 'nla' is of type str"),
    ("remediate_host", {"baseline": {"min_encryption_level": "ultra"}}, "rdp.doctor.listener_security: value of min_encryption_level"),
    ("remediate_host", {"baseline": {"security_layer": "tls", "min_encryption_level": "low"}}, "invalid combination"),
    ("remediate_host", {"enabled": {"bogus": True}}, "enabled: unknown key 'bogus'; allowed: credssp"),
    ("remediate_host", {"enabled": {"credssp": "false"}}, "enabled.credssp must be true or false, not 'false'"),
    ("remediate_host", {"enabled": "all"}, "argument 'enabled' is of type str and we were unable to convert to dict"),
    ("remediate_host", {"run_tags": ["all\nx"]}, "run_tags[0] must not contain control characters"),
    ("remediate_host", {"skip_tags": [""]}, "skip_tags[0] must not be empty"),
    ("remediate_host", {"probe_timeout": INF}, "probe_timeout must be a finite number of seconds in (0, 300]"),
    ("remediate_host", {"probe_timeout": NAN}, "probe_timeout must be a finite number of seconds in (0, 300]"),
    ("remediate_host", {"probe_timeout": 301}, "probe_timeout must be a finite number of seconds in (0, 300]"),
    ("remediate_host", {"probe_port": 0}, "probe_port must be a TCP port (1-65535)"),
    ("remediate_host", {"probe_host": "999.1.1.1"}, "probe_host: '999.1.1.1' is not an IPv4 address"),
    ("remediate_host", {"probe_server_name": LONG}, "probe_server_name is 5000 characters long"),
    ("remediate_host", {"probe_expected_address": "10.0.0.1\x00"}, "probe_expected_address must not contain control characters"),
    ("remediate_host", {"probe_before": "ok"}, "probe_before must be the probe result diagnose returned"),
    ("remediate_host", {"reboot_delay": 0}, "reboot_delay must be a number of seconds from 5 to 600"),
    ("remediate_host", {"reboot_delay": 601}, "reboot_delay must be a number of seconds from 5 to 600"),
    ("remediate_host", {"reboot_timeout": 10}, "reboot_timeout must be a number of seconds from 30 to 7200"),
    ("remediate_host", {"reboot_timeout": 10**9}, "reboot_timeout must be a number of seconds from 30 to 7200"),
    ("remediate_host", {"reboot": "later"}, "argument 'reboot' is of type str and we were unable to convert to bool"),
    ("remediate_host", {"accounts": [""]}, "accounts[0] must not be empty"),
    ("remediate_host", {"accounts": ["x" * 257]}, "accounts[0] is 257 characters long; at most 256"),
    ("remediate_host", {"facts": "facts"}, "argument 'facts' is of type str and we were unable to convert to dict"),
    ("remediate_host", {"facts": {"os": {}}}, "facts must be the host's ansible_facts.rdp_doctor"),
    ("remediate_host", {"bogus": 1}, "Unsupported parameters"),
]

# The remediation modules (each also run without facts: a bad option must fail before the host is read).
CASES += [
    ("credssp", {}, "missing required arguments: allow_encryption_oracle"),
    ("credssp", {"allow_encryption_oracle": "sometimes"}, "value of allow_encryption_oracle must be one of"),
    ("credssp", {"allow_encryption_oracle": "mitigated\x00"}, "value of allow_encryption_oracle must be one of"),
    ("credssp", {"allow_encryption_oracle": "mitigated", "allow_insecure": "maybe"}, "argument 'allow_insecure' is of type str"),
    ("credssp", {"allow_encryption_oracle": "mitigated", "reboot": True}, "Unsupported parameters"),
    ("credssp", {"allow_encryption_oracle": "mitigated", "facts": "host"}, "argument 'facts' is of type str and we were unable to convert to dict"),
    ("listener_security", {}, "give at least one of"),
    ("listener_security", {"port": 0, "allow_port_change": True}, "port must be a TCP port (1-65535)"),
    ("listener_security", {"port": 70000, "allow_port_change": True}, "port must be a TCP port (1-65535)"),
    ("listener_security", {"port": "rdp"}, "argument 'port' is of type str and we were unable to convert to int"),
    ("listener_security", {"port": True}, "port must be a whole number"),
    ("listener_security", {"lan_adapter": -1}, "lan_adapter must be 0 (every network adapter) or an adapter's LanaId"),
    ("listener_security", {"nla": True, "revert_after": "soon"}, "revert_after: 'soon' is not a duration"),
    ("listener_security", {"nla": True, "revert_after": "30s"}, "revert_after must be between 1m and 7d"),
    ("listener_security", {"nla": True, "revert_after": "8d"}, "revert_after must be between 1m and 7d"),
    ("listener_security", {"nla": True, "revert_after": "10m\x00"}, "revert_after must not contain control characters"),
    ("listener_security", {"port": 3390, "revert_after": "10m"}, "revert_after cannot undo a port change"),
    ("listener_security", {"security_layer": "tls", "min_encryption_level": "low"}, "invalid combination"),
    ("listener_security", {"security_layer": "ssl"}, "value of security_layer must be one of"),
    ("listener_security", {"nla": "perhaps"}, "argument 'nla' is of type str and we were unable to convert to bool"),
    ("listener_security", {"allow_connections": "sometimes"}, "argument 'allow_connections' is of type str"),
    ("listener_security", {"min_encryption_level": "ultra"}, "value of min_encryption_level must be one of"),
    ("listener_security", {"nla": True, "write_local_policy": "x"}, "argument 'write_local_policy' is of type str"),
    ("listener_security", {"nla": True, "certificate": "x"}, "Unsupported parameters"),
    ("listener_certificate", {}, "missing required arguments: state"),
    ("listener_certificate", {"state": "renewed"}, "value of state must be one of"),
    ("listener_certificate", {"state": "bound"}, "state=bound needs exactly one of thumbprint, subject or template"),
    ("listener_certificate", {"state": "bound", "thumbprint": "ab" * 20, "subject": "CN=win01"},
     "state=bound needs exactly one of thumbprint, subject or template to choose the certificate (got thumbprint, subject)"),
    ("listener_certificate", {"state": "bound", "thumbprint": "zz"}, "thumbprint: 'zz' is not a SHA-1 thumbprint (40 hex digits"),
    ("listener_certificate", {"state": "bound", "thumbprint": "ab" * 19 + "a\x00"}, "thumbprint must not contain control characters"),
    ("listener_certificate", {"state": "bound", "subject": "CN=win01\x00.evil"}, "subject must not contain control characters"),
    ("listener_certificate", {"state": "bound", "subject": LONG}, "subject is 5000 characters long; at most 1024"),
    ("listener_certificate", {"state": "bound", "template": "RDP\nAuth"}, "template must not contain control characters"),
    ("listener_certificate", {"state": "self_signed", "min_days_valid": -1}, "min_days_valid must be a whole number of days from 0 to 3650"),
    ("listener_certificate", {"state": "self_signed", "min_days_valid": 3651}, "min_days_valid must be a whole number of days from 0 to 3650"),
    ("listener_certificate", {"state": "self_signed", "min_days_valid": "soon"}, "argument 'min_days_valid' is of type str"),
    ("listener_certificate", {"state": "self_signed", "min_days_valid": True}, "min_days_valid must be a whole number"),
    ("listener_certificate", {"state": "self_signed", "subject": "CN=win01"}, "state=self_signed takes no subject"),
    ("listener_certificate", {"state": "key_permissions", "subject": "CN=win01"}, "state=key_permissions takes only thumbprint"),
    ("listener_certificate", {"state": "self_signed", "pfx_password": "secret"}, "Unsupported parameters"),
    ("firewall", {"port": 0}, "port must be a TCP port (1-65535)"),
    ("firewall", {"port": 70000}, "port must be a TCP port (1-65535)"),
    ("firewall", {"protocols": []}, "protocols must name tcp, udp or both"),
    ("firewall", {"protocols": ["icmp"]}, "value of protocols must be one or more of"),
    ("firewall", {"profiles": []}, "profiles must name at least one of"),
    ("firewall", {"profiles": ["work"]}, "value of profiles must be one or more of"),
    ("firewall", {"remote_addresses": [""]}, "remote_addresses[0] must not be empty"),
    ("firewall", {"remote_addresses": ["10.0.0.0/8;calc"]}, "remote_addresses: '10.0.0.0/8;calc' is not an address"),
    ("firewall", {"remote_addresses": ["10.0.0.1\x00"]}, "remote_addresses[0] must not contain control characters"),
    ("firewall", {"remote_addresses": [LONG]}, "remote_addresses[0] is 5000 characters long"),
    ("firewall", {"scope_builtin_rules": True}, "scope_builtin_rules needs remote_addresses"),
    ("firewall", {"state": "on"}, "value of state must be one of"),
    ("firewall", {"allow_lockout": "maybe"}, "argument 'allow_lockout' is of type str"),
    ("firewall", {"rules": ["x"]}, "Unsupported parameters"),
    ("session_limits", {}, "nothing to do: set at least one of"),
    ("session_limits", {"max_idle_time": "forever"}, "max_idle_time: 'forever' is not a duration"),
    ("session_limits", {"max_idle_time": -1}, "max_idle_time: -1 is negative"),
    ("session_limits", {"max_idle_time": "1.5h"}, "max_idle_time: '1.5h' is not a duration"),
    ("session_limits", {"max_idle_time": 1.5}, "max_idle_time: 1.5 is not a duration"),
    ("session_limits", {"max_idle_time": NAN}, "max_idle_time: nan is not a duration"),
    ("session_limits", {"max_idle_time": "100d"}, "max_idle_time: '100d' is longer than Windows can store"),
    ("session_limits", {"max_idle_time": True}, "max_idle_time: True is not a duration"),
    ("session_limits", {"max_disconnection_time": "8h\x00"}, "max_disconnection_time must not contain control characters"),
    ("session_limits", {"max_connection_time": "2 weeks"}, "max_connection_time: '2 weeks' is not a duration"),
    ("session_limits", {"max_instance_count": 0}, "max_instance_count must be a whole number from 1 to 999999 or 'unlimited'"),
    ("session_limits", {"max_instance_count": "lots"}, "max_instance_count must be a whole number from 1 to 999999"),
    ("session_limits", {"max_instance_count": 1000000}, "max_instance_count must be a whole number from 1 to 999999"),
    ("session_limits", {"max_instance_count": 1.5}, "max_instance_count must be a whole number"),
    ("session_limits", {"end_disconnected_sessions": [0]}, "end_disconnected_sessions: sessions 0 (services) and 65536"),
    ("session_limits", {"end_disconnected_sessions": [65536]}, "end_disconnected_sessions: sessions 0 (services) and 65536"),
    ("session_limits", {"end_disconnected_sessions": [-1]}, "end_disconnected_sessions: sessions 0 (services) and 65536"),
    ("session_limits", {"end_disconnected_sessions": ["two"]}, "Elements value for option 'end_disconnected_sessions' is of type str"),
    ("session_limits", {"logoff_sessions": True}, "logoff_sessions: true needs logoff_disconnected_older_than or end_disconnected_sessions"),
    ("session_limits", {"logoff_disconnected_older_than": "ages"}, "logoff_disconnected_older_than: 'ages' is not a duration"),
    ("session_limits", {"reset_broken": "maybe"}, "argument 'reset_broken' is of type str"),
    ("machinekeys", {}, "repair is required with state=repaired"),
    ("machinekeys", {"repair": "everything"}, "value of repair must be one of"),
    ("machinekeys", {"state": "broken"}, "value of state must be one of"),
    ("machinekeys", {"state": "restored"}, "state=restored needs restore_from"),
    ("machinekeys", {"state": "restored", "restore_from": "C:\\Windows"}, "restore_from: 'C:\\\\Windows' is not a folder this module renamed"),
    ("machinekeys", {"state": "restored", "restore_from": "..\\..\\Windows"}, "is not a folder this module renamed"),
    ("machinekeys", {"state": "restored", "restore_from": "MachineKeys\x00"}, "restore_from must not contain control characters"),
    ("machinekeys", {"state": "restored", "repair": "listener_key"}, "state=restored takes no repair"),
    ("machinekeys", {"repair": "listener_key", "restore_from": "x"}, "restore_from is only for state=restored"),
    ("machinekeys", {"repair": "listener_key", "force": "yes please"}, "argument 'force' is of type str"),
    ("services", {}, "nothing to do: set start_mode, state"),
    ("services", {"termservice": "on"}, "argument 'termservice' is of type str and we were unable to convert to dict"),
    ("services", {"termservice": {"bogus": 1}}, "Unsupported parameters: termservice.bogus"),
    ("services", {"termservice": {"start_mode": "sometimes"}},
     "value of start_mode must be one of: auto, manual, disabled, got: sometimes found in termservice"),
    ("services", {"termservice": {"state": "flying"}}, "value of state must be one of: started, stopped, restarted, got: flying found in termservice"),
    ("services", {"termservice": {"account": "root"}}, "value of account must be one of: network_service, got: root found in termservice"),
    ("services", {"sessionenv": {"account": "LocalSystem"}}, "Unsupported parameters: sessionenv.account"),
    ("services", {"termservice": {"start_mode": "disabled", "state": "started"}}, "termservice: a disabled service cannot be started"),
    ("services", {"umrdpservice": {"state": "started"}, "termservice": {"state": "stopped"}},
     "umrdpservice.state: UmRdpService needs TermService running"),
    ("services", {"termservice": {"state": "started"}, "allow_lockout": "x"}, "argument 'allow_lockout' is of type str"),
    ("tls_protocols", {}, "nothing to do: set tls12: enabled and/or disable_legacy"),
    ("tls_protocols", {"tls12": "disabled"}, "value of tls12 must be one of: enabled"),
    ("tls_protocols", {"disable_legacy": ["tls13"]}, "value of disable_legacy must be one or more of"),
    ("tls_protocols", {"tls12": "enabled", "allow_legacy_disable": "x"}, "argument 'allow_legacy_disable' is of type str"),
    ("tls_protocols", {"tls12": "enabled", "client": "both"}, "argument 'client' is of type str"),
    ("tls_protocols", {"tls12": "enabled", "server": True}, "Unsupported parameters"),
]


class Recorder:
    """Stands in for everything that touches a host: ``_low_level_execute_command`` and the probe."""

    def __init__(self) -> None:
        self.commands: list[t.Any] = []
        self.probes: list[t.Any] = []

    def execute(self, cmd: str, sudoable: bool = False, in_data: bytes | None = None) -> dict[str, t.Any]:
        self.commands.append((cmd, in_data))
        raise AssertionError("a bad argument reached the host")

    def probe(self, args: dict[str, t.Any]) -> dict[str, t.Any]:
        self.probes.append(args)
        raise AssertionError("a bad argument reached the probe")


def run_action(module: str, args: dict[str, t.Any], recorder: Recorder) -> dict[str, t.Any]:
    """The task result Ansible would report: the action's result, or its AnsibleActionFail as failed + msg."""
    task = mock.MagicMock()
    task.args = args
    task.check_mode = False
    task.diff = False
    task.async_val = 0
    task.action = f"rdp.doctor.{module}"
    connection = mock.MagicMock()
    connection._shell.tmpdir = None  # pylint: disable=protected-access
    action = ACTIONS[module](task, connection, PlayContext(), loader=None, templar=None, shared_loader_obj=None)
    action._low_level_execute_command = recorder.execute  # type: ignore[method-assign]  # pylint: disable=protected-access
    try:
        return action.run(task_vars={"inventory_hostname": "win01"})
    except AnsibleActionFail as exc:  # what validate_argument_spec raises; TaskExecutor turns it into this result
        return {"failed": True, "msg": exc.message}


def _with_paths(value: t.Any, paths: dict[str, str]) -> t.Any:
    if isinstance(value, dict):
        return {key: _with_paths(item, paths) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_paths(item, paths) for item in value]
    return paths.get(value, value) if isinstance(value, str) else value


@pytest.fixture(name="paths", scope="module")
def fixture_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A FIFO (a reader would block forever), a 5 MB file, a directory and a missing file."""
    base = tmp_path_factory.mktemp("bad-input")
    fifo = base / "bundle.fifo"
    os.mkfifo(fifo)
    big = base / "big.pem"
    with open(big, "wb") as handle:
        handle.truncate(5 * 1024 * 1024)
    return {FIFO: str(fifo), BIG: str(big), DIRECTORY: str(base), MISSING: str(base / "missing.pem")}


def test_the_corpus_is_large_and_covers_every_module() -> None:
    assert len(CASES) >= 150
    assert {module for module, _args, _fragment in CASES} == set(ACTIONS)
    assert len({(module, repr(args)) for module, args, _fragment in CASES}) == len(CASES), "a case is listed twice"


@pytest.mark.parametrize(("module", "args", "fragment"), CASES, ids=[f"{m}-{i}" for i, (m, _a, _f) in enumerate(CASES)])
def test_bad_argument_fails_before_the_host_is_touched(module: str, args: dict[str, t.Any], fragment: str,
                                                       paths: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    monkeypatch.setattr(diagnose_host, "probe_in_process", recorder.probe)
    monkeypatch.setattr(remediate_host, "probe_in_process", recorder.probe)
    result = run_action(module, _with_paths(args, paths), recorder)
    assert result.get("failed") is True, result
    assert fragment in result["msg"], result["msg"]
    assert "Traceback" not in repr(result) and "exception" not in result
    assert not result.get("findings") and not result.get("operations")
    assert recorder.commands == [] and recorder.probes == []
