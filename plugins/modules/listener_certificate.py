# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/listener_certificate.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: listener_certificate
short_description: Renew the self-signed RDP listener certificate, bind a certificate, fix its key permissions
version_added: 0.1.0
description:
  - O(state=self_signed) - the listener uses a healthy self-signed certificate. One that is expired, expires
    within O(min_days_valid) days, names another host (a renamed computer), has a broken key (key file
    missing, key unreadable) or that a binding names but no store holds, is renewed - the binding
    (C(SSLCertificateSHA1Hash)) is deleted so the listener falls back to the self-signed certificate, the
    broken certificate is removed from C(Cert:\LocalMachine\Remote Desktop), and SessionEnv (Remote Desktop
    Configuration) is restarted, which makes a new one. The new thumbprint comes back in the apply result.
    Microsoft's documents differ on which service to restart (SessionEnv in the Azure articles and AskDS -
    the service that performs RDS certificate requests and renewals - TermService in the general
    troubleshooting article); SessionEnv is chosen because it does the renewal and restarting it does not
    drop the connected sessions.
  - O(state=bound) - binds a certificate of C(Cert:\LocalMachine\My) (the only store Microsoft supports for
    a custom listener certificate) chosen by O(thumbprint), O(subject) or O(template). It must have a
    private key, the Server Authentication or Remote Desktop Authentication (1.3.6.1.4.1.311.54.1.2) EKU (or
    none), be valid for O(min_days_valid) more days and name the host. NETWORK SERVICE (TermService's
    account) gets Read on its private key first, then the listener is bound
    (C(Win32_TSGeneralSetting.SSLCertificateSHA1Hash)).
  - O(state=key_permissions) - only grants NETWORK SERVICE Read on the private key of the bound certificate
    (or the one O(thumbprint) names).
  - A Group Policy that enforces a certificate template (C(CertTemplateName)) owns the listener certificate
    - the module reports it under RV(manual) and changes nothing.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  state:
    description:
      - C(self_signed), C(bound) or C(key_permissions) (see the description).
    type: str
    required: true
    choices: [self_signed, bound, key_permissions]
  thumbprint:
    description:
      - The certificate for O(state=bound) or O(state=key_permissions). Spaces, colons and invisible characters (such as
        the U+200E mark the certificate dialog copies) are removed; 40 hex digits remain, any case.
    type: str
  subject:
    description:
      - For O(state=bound) - the subject (C(CN=host.contoso.com)), its common name or one of its DNS names. With several
        matches the one valid longest is bound.
    type: str
  template:
    description:
      - For O(state=bound) - the certificate template the certificate was issued from - its name (any case), read
        from the v1 Certificate Template Name extension (1.3.6.1.4.1.311.20.2), or its OID, read from the v2
        Certificate Template Information extension (1.3.6.1.4.1.311.21.7). The extensions are read from the
        certificate on the controller. With several matches the one valid longest is bound; with none the
        module refuses and lists the templates the host's C(My) certificates carry.
    type: str
  min_days_valid:
    description:
      - A certificate valid for fewer days is renewed (O(state=self_signed)) or not bound (O(state=bound)). 0 to 3650.
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - rdp.doctor.remediation
notes:
  - Removing a certificate is reversible only when its key can be exported; the apply result says whether it
    could.
  - Sources - Microsoft's listener certificate configuration article and KB2001849 (My store, WMI binding,
    NETWORK SERVICE read, invisible characters), the Azure event-id and internal-error articles (remove and
    restart SessionEnv), AskDS on RDS certificate enrollment (EKU, SessionEnv, CertTemplateName); see
    docs/remediation.md.
seealso:
  - module: rdp.doctor.host_facts
  - plugin: rdp.doctor.findings
    plugin_type: filter
    description: Findings name this module, with parameters, as their fix.
  - module: rdp.doctor.machinekeys
"""

EXAMPLES = r"""
- name: Renew an expired, expiring or broken self-signed listener certificate
  rdp.doctor.listener_certificate:
    state: self_signed
    min_days_valid: 30

- name: Bind a CA-issued certificate (a thumbprint pasted from the certificate dialog is fine)
  rdp.doctor.listener_certificate:
    state: bound
    thumbprint: "‎3a 5f 0c 11 9e 8b 4d 2a 71 c3 0b 9e 6f 22 41 aa 83 19 7d 5c"

- name: Bind the certificate issued to the host's FQDN
  rdp.doctor.listener_certificate:
    state: bound
    subject: "CN={{ ansible_facts.rdp_doctor.os.fqdn }}"

- name: Bind the certificate issued from the enterprise CA's RDP template (its name or its OID)
  rdp.doctor.listener_certificate:
    state: bound
    template: RemoteDesktopComputer

- name: Let TermService read the bound certificate's key
  rdp.doctor.listener_certificate:
    state: key_permissions
"""

RETURN = r"""
changed:
  description: Whether the host was (or, in check mode, would be) changed.
  returned: always
  type: bool
outcome:
  description:
    - C(compliant) (nothing to do), C(check_mode) (planned, nothing sent), or the apply outcome - C(applied),
      C(drift) (the host changed since it was read; nothing applied), C(rolled_back) (an operation failed and
      every applied one was undone) or C(partial) (an undo failed; RV(msg) names what is still applied).
  returned: always
  type: str
  sample: applied
diff:
  description: The managed settings before and after (only those the task asked about).
  returned: always
  type: dict
  contains:
    before: {description: "Before the change.", type: dict, returned: always}
    after: {description: "After the change (as planned in check mode).", type: dict, returned: always}
  sample:
    before: {thumbprint: A784C3A67F61B872E35898BCB10DDA5480C34BF4, source: registry, certificate: {not_after: "2026-11-03T07:00:00Z"}}
    after: {thumbprint: null, source: self_signed_store, certificate: a new self-signed certificate made by SessionEnv}
operations:
  description:
    - The plan - primitive operations in the order they are applied, each with C(id), C(kind), C(target),
      C(expect) (the state it must find), C(set) (the state it writes), C(reversible) and C(why); after an
      apply also C(status), C(before), C(after) and C(error). See docs/dev/contracts.md section 10.
  returned: always
  type: list
  elements: dict
  sample:
    - {id: op01, kind: listener_binding, target: {terminal: RDP-Tcp}, expect: {thumbprint: A784C3A67F61B872E35898BCB10DDA5480C34BF4},
       set: {thumbprint: null}, reversible: true, why: "the listener falls back to the self-signed certificate"}
    - {id: op02, kind: certificate, target: {store: Remote Desktop, thumbprint: A784C3A67F61B872E35898BCB10DDA5480C34BF4},
       expect: {present: true}, set: {present: false}, reversible: true, why: "renew: it expired on 2026-11-03T07:00:00Z"}
    - {id: op03, kind: service_control, target: {name: SessionEnv}, expect: {state: Running}, set: {action: restart},
       reversible: true, why: "SessionEnv creates a new self-signed listener certificate"}
reboot_required:
  description: The change takes effect only after a reboot.
  returned: always
  type: bool
warnings:
  description: What the user should know about the plan (sessions that will drop, backups kept, ...).
  returned: always
  type: list
  elements: str
manual:
  description:
    - What the module will not change and why, each C(setting), C(reason) and C(policy_key) - for example a value
      Group Policy owns, which a local write could not fix.
  returned: always
  type: list
  elements: dict
refused:
  description: Changes a safety guard refused, each naming the option that allows it. A task with refusals fails and changes nothing.
  returned: always
  type: list
  elements: str
restart:
  description: Services the plan restarts (already part of RV(operations)).
  returned: always
  type: list
  elements: str
msg:
  description: A one-line summary, or why the task failed.
  returned: always
  type: str
"""
