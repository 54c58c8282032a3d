# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/diagnose_host.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: diagnose_host
short_description: Diagnose Remote Desktop on one Windows host in one task - facts, client probe, findings, summary
version_added: 0.1.0
description:
  - The one per-host task of the P(rdp.doctor.diagnose#role) role, usable on its own.
  - Reads the host with one run of the C(read_rdp_state) host script, exactly as P(rdp.doctor.host_facts#module)
    does (one WinRM/PSRP round trip).
  - Probes the host's RDP listener as a client does, exactly as P(rdp.doctor.probe#module) does, from the
    controller (in the controller's worker process, no module process is started).
  - Joins both into findings with the P(rdp.doctor.findings#filter) filter and the summary lines with the
    P(rdp.doctor.findings_summary#filter) filter.
  - Publishes the results as facts (C(ansible_facts)), set on every run so no value of an earlier run stays -
    C(rdp_doctor_facts), C(rdp_doctor_probe), C(rdp_doctor_findings) and C(rdp_doctor_host_state), the
    variables the P(rdp.doctor.diagnose#role) role documents. Read them as C(ansible_facts['rdp_doctor_findings'])
    (works with C(INJECT_FACTS_AS_VARS=False)) or, while Ansible injects facts as variables, as C(rdp_doctor_findings).
  - A host that cannot be reached or whose script fails is not a failed task - RV(host_state) says so and
    the probe still looks at it - unless O(verdict) or O(fail_on) (or the deprecated O(fail_on_findings)) is set.
  - A failed task publishes no facts (Ansible drops them); every host's results are also kept in the run's records
    for P(rdp.doctor.run_summary#module), which returns those of the failed hosts for publishing.
  - Never changes the host.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  accounts:
    description:
      - Accounts to check, as in P(rdp.doctor.host_facts#module).
    type: list
    elements: str
    default: []
  event_days:
    description: Days of event logs to read, 1 to 365.
    type: int
    default: 7
  event_sample_size:
    description: Messages kept per event group, 0 to 50.
    type: int
    default: 3
  port_hint:
    description: A port to look at besides the configured C(PortNumber) when listing listening sockets.
    type: int
  steps:
    description:
      - The steps to run. C(findings) without C(facts) judges the probe alone; without C(probe) the host alone.
    type: list
    elements: str
    choices: [facts, probe, findings, summary]
    default: [facts, probe, findings, summary]
  run_tags:
    description:
      - The run's C(--tags) (pass C(ansible_run_tags)). With O(skip_tags), selects the steps as if each step were
        a task tagged like the diagnose role's steps - C(rdp_doctor_facts), C(rdp_doctor_probe),
        C(rdp_doctor_findings), C(rdp_doctor_summary), a later step's tag selecting what it needs.
      - Default runs every step of O(steps).
    type: list
    elements: str
  skip_tags:
    description: The run's C(--skip-tags) (pass C(ansible_skip_tags)); see O(run_tags).
    type: list
    elements: str
    default: []
  probe:
    description: Probe the listener from the controller. V(false) leaves the client's view out.
    type: bool
    default: true
  probe_host:
    description: Name or address the probe connects to (what users type into mstsc). Default the inventory name.
    type: str
  probe_port:
    description: Port the probe connects to. Default the listener's effective C(PortNumber) from the facts, else 3389.
    type: int
  probe_expected_address:
    description: The address the inventory says the host has (see the C(expected_address) option of the probe).
    type: str
  probe_server_name:
    description:
      - Name the listener certificate must be issued for. Default the host's FQDN from the facts, else O(probe_host).
    type: str
  probe_timeout:
    description: Connect and read timeout of the probe, in seconds.
    type: float
    default: 5.0
  probe_options:
    description:
      - Further options of P(rdp.doctor.probe#module) (for example C(ca_bundle), C(mixes), C(nla)). The options above
        win over the same keys here.
    type: dict
    default: {}
  categories:
    description: Keep only findings of these categories (see P(rdp.doctor.findings#filter)). Default keeps all.
    type: list
    elements: str
  min_severity:
    description: Drop findings less severe than this.
    type: str
    choices: [critical, high, medium, low, info]
    default: info
  fail_on_findings:
    description:
      - Deprecated, use O(fail_on=cause) - fail the task when a finding explains 0x904 or the host could not be read.
      - When true and O(fail_on=none), O(fail_on) is C(cause).
    type: bool
    default: false
  fail_on:
    description:
      - Which findings fail the task (the message is the summary) - C(none) never for a finding; C(cause) a finding
        that explains 0x904; a severity (C(critical), C(high), C(medium), C(low), C(info)) a finding that severe or worse.
      - When it is not C(none), a host that could not be read, or whose probe could not run, fails too.
      - "The message is the summary; with O(verdict) it is the role's one line, C(STATE: reason)."
    type: str
    choices: [none, cause, critical, high, medium, low, info]
    default: none
  verdict:
    description:
      - "Fail the task for a host that could not be read or probed, or whose findings reach O(fail_on), with one line
        (C(UNREACHABLE: not reached (timeout): ...), C(BROKEN: [critical] RDP-... (explains 0x904) ...)). What the
        P(rdp.doctor.diagnose#role) role does with C(rdp_doctor_diagnose_verdict)."
    type: bool
    default: false
  use_role_variables:
    description:
      - Take every option the task does not set from the P(rdp.doctor.diagnose#role) role's variables -
        C(rdp_doctor_accounts), C(rdp_doctor_event_days), C(rdp_doctor_event_sample_size), C(rdp_doctor_diagnose_probe),
        C(rdp_doctor_probe_host), C(rdp_doctor_probe_port), C(rdp_doctor_probe_server_name), C(rdp_doctor_probe_timeout),
        C(rdp_doctor_diagnose_min_severity), C(rdp_doctor_diagnose_fail_on), C(rdp_doctor_diagnose_fail_on_findings),
        C(rdp_doctor_diagnose_verdict) and the area switches C(rdp_doctor_diagnose_<category>) (O(categories)); the
        probe connects to C(ansible_host) (else the inventory name) and expects that address; O(run_tags) and
        O(skip_tags) are the run's.
      - Each is validated as the option it feeds, with the variable named in the message, before the host is touched.
      - "Why: every templated argument of a per-host task costs each host's worker process a Jinja compilation
        (a few milliseconds; Ansible keeps no template cache across its per-task processes). Variables that hold
        a template are templated here."
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: Everything it does only reads; check mode runs it unchanged.
  diff_mode:
    support: none
  platform:
    platforms: windows
    support: full
    details: The facts are read on the Windows host; the probe runs on the controller.
  facts:
    support: full
notes:
  - The probe runs in the controller's worker process for this host; it opens one connection at a time and
    never more than the probe's C(max_connections_per_target) to one address. To probe from a jump host,
    set O(probe=false) and run P(rdp.doctor.probe#module) with C(delegate_to) the jump host.
  - Needs what P(rdp.doctor.host_facts#module) needs on the host (Windows PowerShell 5.1, an administrator).
seealso:
  - module: rdp.doctor.host_facts
  - module: rdp.doctor.probe
  - module: rdp.doctor.run_summary
  - plugin: rdp.doctor.findings
    plugin_type: filter
  - plugin: rdp.doctor.findings_summary
    plugin_type: filter
"""

EXAMPLES = r"""
- name: Diagnose each host in one task
  rdp.doctor.diagnose_host:
    accounts: [CONTOSO\alice]
    probe_host: "{{ ansible_host | default(inventory_hostname) }}"
  register: diagnosis

- name: Show what was found
  ansible.builtin.debug:
    var: diagnosis.summary

- name: Hosts whose listener is refused (the findings are facts of the host)
  ansible.builtin.debug:
    msg: "{{ ansible_facts['rdp_doctor_findings'] | selectattr('explains_0x904') | map(attribute='id') | list }}"

- name: Only the host side, certificate and network findings, failing hosts with a cause of 0x904
  rdp.doctor.diagnose_host:
    probe: false
    categories: [certificate, network]
    fail_on: high
"""

RETURN = r"""
steps:
  description: The steps that ran.
  returned: always
  type: list
  elements: str
  sample: [facts, probe, findings, summary]
host_state:
  description:
    - How reading the host went - C(state) (C(ok), C(unreachable), C(failed), or C(skipped) when the facts step did
      not run), C(msg) and C(error) (the host script's structured error, or null).
    - C(probe_error) as well when the probe was asked for and gave no result.
  returned: always
  type: dict
  sample: {"state": "ok", "msg": "the host facts were not read in this run", "error": null}
probe_error:
  description: Why the probe could not run (unusable options).
  returned: when the probe failed to start
  type: str
summary:
  description: The summary lines (see P(rdp.doctor.findings_summary#filter)); empty when the summary step did not run.
  returned: always
  type: list
  elements: str
  sample: ["1 finding, 1 explains 0x904", "[critical] RDP-CERT-EXPIRED (explains 0x904): ..."]
ansible_facts:
  description: The results of this run, published as facts of the host.
  returned: when the task does not fail
  type: dict
  contains:
    rdp_doctor_facts:
      description: The host facts documented in P(rdp.doctor.host_facts#module) (its C(ansible_facts.rdp_doctor)); empty when the host was not read.
      returned: always
      type: dict
    rdp_doctor_probe:
      description: The result of the probe, as P(rdp.doctor.probe#module) returns it; null when it did not run.
      returned: always
      type: dict
    rdp_doctor_findings:
      description: The findings (see P(rdp.doctor.findings#filter)), causes of 0x904 first; empty when the findings step did not run.
      returned: always
      type: list
      elements: dict
    rdp_doctor_host_state:
      description: The same as RV(host_state).
      returned: always
      type: dict
"""
