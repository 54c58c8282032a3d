# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/fleet_report.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: fleet_report
short_description: Write one report of the rdp.doctor results of every host of a play - JSON, JUnit XML, Markdown, HTML
version_added: 0.2.0
description:
  - Reads what P(rdp.doctor.diagnose#role) and P(rdp.doctor.remediate#role) published for each host (C(rdp_doctor_findings),
    C(rdp_doctor_host_state), C(rdp_doctor_probe), C(rdp_doctor_facts), C(rdp_doctor_remediation); as facts or as
    variables) and builds one fleet report - a record per host, healthy, broken, failed and unreachable alike, and a
    fleet summary.
  - A host that published nothing (Ansible could not reach it before diagnose ran) is still reported, as unreachable.
  - Writes the report into O(dest) as JSON (schema C(rdp.doctor/fleet_report/1), shipped as
    C(plugins/report_schemas/fleet_report.schema.json)), JUnit XML (one test suite per host, one test case per check),
    Markdown (a short summary for a ticket) and HTML (when this collection has its renderer).
  - Runs on the controller only and never contacts a host; run it once (C(run_once)) with C(delegate_to=localhost).
  - In check mode the report is written all the same - a check-mode remediation is the drift report.
  - docs/reports.md describes every field and format.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  dest:
    description: Folder the report files are written to, created when missing.
    type: path
    required: true
  basename:
    description: File name without its suffix (C(.json), C(.junit.xml), C(.md), C(.html)).
    type: str
    default: rdp-doctor-report
  formats:
    description:
      - Formats to write. C(html) needs the collection's HTML renderer; without it a warning says so and the other formats
        are written.
    type: list
    elements: str
    choices: [json, junit, markdown, html]
    default: [json, junit, markdown, html]
  hosts:
    description:
      - Hosts to report. Default every host of the play, C(ansible_play_hosts_all), failed and unreachable ones included.
      - From a play on C(localhost), pass the inventory hosts, for example C({{ query('inventory_hostnames', 'windows') }}).
    type: list
    elements: str
  include_play:
    description: Report the hosts of this play. V(false) reports only the files of O(merge).
    type: bool
    default: true
  merge:
    description:
      - JSON fleet reports to merge with this one - the slices of one AWX job-sliced run, or an older run for a trend.
      - A host in several reports keeps the newest record (by C(run.generated_utc)); a changed state is kept as
        C(previous_state) and listed in C(summary.trend).
    type: list
    elements: path
    default: []
  select_hosts:
    description:
      - A JMESPath expression run on the list of host records; it must return host records. The summary is recomputed
        from the hosts it keeps.
      - "Examples: C([?traits.os_build==`20348`]) (one OS build), C([?state!='healthy'])."
      - A bad expression fails the task before anything is read or written.
    type: str
  select_findings:
    description:
      - A JMESPath expression run on each host's findings; it must return findings. Host states still follow every
        finding; the summary's causes and severities follow the selection.
      - "Example: C([?severity=='critical'])."
    type: str
  broken_severity:
    description: A host is broken when an open finding explains 0x904 or is at least this severe.
    type: str
    choices: [critical, high, medium, low, info]
    default: high
  run_id:
    description: An id of the run kept in the report. Default the AWX job id (C(awx_job_id)) when there is one.
    type: str
  kind:
    description: What the run was. Default C(drift) when a check-mode remediation is reported, C(remediate) after a
      remediation, else C(diagnose).
    type: str
    choices: [diagnose, remediate, drift]
  markdown_max_hosts:
    description: Hosts listed by name in the Markdown summary; the rest are counted.
    type: int
    default: 20
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The report is written in check mode too; no managed host is contacted or changed.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
    details: Runs on the controller.
notes:
  - Reads only the rdp.doctor variables of each host (never connection variables), so no password reaches a report.
seealso:
  - module: rdp.doctor.diagnose_host
  - module: rdp.doctor.remediate_host
"""

EXAMPLES = r"""
- name: Report every host of the play
  rdp.doctor.fleet_report:
    dest: "{{ playbook_dir }}/reports"
  run_once: true
  delegate_to: localhost

- name: Only the critical findings of Windows Server 2022 hosts
  rdp.doctor.fleet_report:
    dest: /srv/reports/rdp
    basename: critical-2022
    formats: [json, markdown]
    select_hosts: "[?traits.os_build==`20348`]"
    select_findings: "[?severity=='critical']"
  run_once: true
  delegate_to: localhost

- name: Merge the reports of an AWX job-sliced run into one fleet report
  rdp.doctor.fleet_report:
    dest: /srv/reports/rdp
    include_play: false
    merge: "{{ query('fileglob', '/srv/reports/rdp/slices/*.json') }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
files:
  description: The files written, by format.
  returned: always
  type: dict
  sample: {json: /srv/reports/rdp/rdp-doctor-report.json, junit: /srv/reports/rdp/rdp-doctor-report.junit.xml}
summary:
  description: The fleet summary (C(summary) of the JSON report) - counts by state, hosts per cause, by severity, drift.
  returned: always
  type: dict
stats:
  description: What the report role keeps with set_stats - the summary's counts, hosts per cause and every host's state.
  returned: always
  type: dict
  sample: {hosts: 3, states: {healthy: 1, broken: 1, unreachable: 1, failed: 0, unknown: 0},
           host_states: {win01: healthy, win02: broken, win03: unreachable}}
headline:
  description: The host count and the count of each state, in one line.
  returned: always
  type: str
  sample: "49 hosts: 7 healthy, 5 unknown, 35 broken, 1 failed, 1 unreachable"
markdown:
  description: The Markdown summary.
  returned: always
  type: str
"""
