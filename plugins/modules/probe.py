#!/usr/bin/python
# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""rdp.doctor.probe: see what an RDP client sees, step by step, and explain the failing step."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: probe
short_description: See what a Remote Desktop client sees, step by step, and explain the failing step
version_added: 0.1.0
description:
  - Walks the RDP connection sequence the way a client does, up to the first CredSSP message, and
    reports every step with its own verdict and timing - DNS, TCP, X.224 negotiation, TLS, the
    listener certificate and NLA - then a verdict that names the first failing step, the finding
    ids it supports and what a client (mstsc, xfreerdp) will show.
  - "DNS: every address the name resolves to; a mismatch with O(expected_address) (the inventory
    address) is reported as C(RDP-DNS-MISMATCH)."
  - "TCP: refused (RST) vs timed out (SYN dropped) vs connected, per address."
  - "X.224: one connection per protocol mix (O(mixes)). The module reads the selected protocol (never
    only the message type), names RDP_NEG_FAILURE codes, recognises legacy answers without
    negotiation data, the MCS Disconnect-Provider-Ultimatum of old xrdp, and non-RDP services (SSH
    banner, HTTP, bare TLS)."
  - "TLS: observed with a permissive client (TLS 1.0 and later, every cipher at security level 0),
    then judged: TLS 1.0/1.1 is C(RDP-PROBE-TLS-LEGACY). TLS is only attempted on a connection where
    the server selected a TLS-based protocol, never after a negotiation failure."
  - "Certificate: subject, SANs, issuer, EKU, serial, SHA-1 thumbprint, SHA-256, validity, and every
    problem at once: expired, not yet valid, expiring soon, name mismatch, self-signed, untrusted
    (by O(ca_bundle) or the controller's store), wrong EKU, weak key or signature."
  - "NLA: required vs offered vs absent from the C(0x0b) and C(0x01) answers; then one TSRequest with
    an NTLM NEGOTIATE (no credentials, no logon attempt) to read the server's NTLM CHALLENGE: NetBIOS
    and DNS names, OS version and clock, hence the clock skew."
  - The module changes nothing anywhere, so check mode runs it normally. It runs where it is
    delegated (the controller or a jump host), not on the Windows host.
  - "On the controller (C(delegate_to: localhost), or any host reached with the C(local) connection,
    without become) the probe runs inside the controller's worker process for the task: no module
    process is started (that start-up cost more controller CPU than the probe itself). On any other
    host, a jump host, the module is executed there. Options and result are the same."
  - The C(rdp.doctor.diagnose) role probes each host through P(rdp.doctor.diagnose_host#module), in
    the same task that reads the host.
  - "Steps within one probe run one connection at a time; O(max_connections_per_target) also bounds
    connections to one address across concurrent probes of the same process: real RDP listeners have
    tiny listen queues. Ansible runs each host's task in its own worker process, so two inventory hosts
    with the same address are two processes, as they were two module processes."
  - The result shape is documented in docs/probe.md and is stable (C(schema) names its version).
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  host:
    description:
      - Name or address the client connects to (what a user types into mstsc).
      - An IP address or a host name of at most 253 characters (labels of 1 to 63 characters, no spaces
        or control characters); something that looks like an IPv4 address but is not one is refused.
    type: str
    required: true
  port:
    description:
      - TCP port of the RDP listener.
    type: int
    default: 3389
  expected_address:
    description:
      - The address the inventory says the host has. When O(host) resolves to other addresses the DNS
        step fails with C(RDP-DNS-MISMATCH), the TCP step also tries this address, and the other steps
        run against what the client would reach.
      - Must be an IPv4 or IPv6 address literal; it is never looked up (a malformed address such as
        C(999.1.1.1) is refused, not resolved as a name).
    type: str
  server_name:
    description:
      - The name to check the certificate against, and the TLS SNI (not sent for IP literals).
      - Defaults to O(host), which is what a client compares with.
      - Like O(host), an IP address or a host name of at most 253 characters (labels of 1 to 63
        characters, no spaces or control characters).
    type: str
  connect_timeout:
    description:
      - Seconds to wait for a TCP connection (SYN-ACK) before calling the address timed out.
      - A finite number greater than 0 and at most 3600.
    type: float
    default: 5.0
  read_timeout:
    description:
      - Seconds to wait for each answer (X.224 Connection Confirm, TLS handshake, CredSSP).
      - A finite number greater than 0 and at most 3600.
    type: float
    default: 5.0
  ca_bundle:
    description:
      - PEM (or DER) file, or a directory of PEM files, with the CA certificates to trust.
      - Default is the controller's system store.
      - A file must be a regular readable file of at most 16 MiB; a FIFO, a device or a socket is refused
        before anything opens it.
    type: path
  trust_check:
    description:
      - Judge whether the certificate chains to a trusted CA (O(ca_bundle) or the system store).
      - The verdict is the path validation of the Python library cryptography over the certificates the
        server sent (signatures, CA basic constraints and key usage of every intermediate, path length,
        at most 8 certificates); validity dates, names and EKU of the listener certificate are judged
        separately, so every problem is listed.
    type: bool
    default: true
  steps:
    description:
      - Steps to run and report. A step's prerequisites always run (for example C(certificate) needs
        the TLS handshake); steps not asked for are reported as C(skipped).
      - At least one step.
    type: list
    elements: str
    choices: [dns, tcp, x224, tls, certificate, nla]
    default: [dns, tcp, x224, tls, certificate, nla]
  mixes:
    description:
      - Protocol mixes for the X.224 Connection Request, one connection each, in order, as hex or
        decimal strings; C(none) sends a request without RDP_NEG_REQ (a pre-Vista client).
      - The default tells the cases apart - C(0x0b) (SSL, HYBRID, HYBRID_EX; what mstsc sends),
        C(0x01) (TLS only; tells NLA required from NLA offered) and C(0x00) (standard RDP security
        only; tells TLS required).
      - The first mix must not request RDSTLS (C(0x04)) or RDSAAD (C(0x10)) bits; old xrdp
        disconnects such requests.
    type: list
    elements: str
    default: ["0x0b", "0x01", "0x00"]
  nla:
    description:
      - Send the first CredSSP message (TSRequest with an NTLM NEGOTIATE, no credentials) when the
        server selected HYBRID, to read its NTLM CHALLENGE (names, OS version, clock).
      - No AUTHENTICATE message is ever sent, so no logon is attempted.
    type: bool
    default: true
  cookie:
    description:
      - User name for the C(Cookie mstshash=) routing token in the Connection Request, as mstsc
        sends it. It also makes HTTP servers answer (they wait for a line end). An empty string sends
        no cookie.
      - ASCII without spaces, line breaks or control characters, at most 221 characters.
    type: str
    default: rdpdoctor
  max_connections_per_target:
    description:
      - Most connections open at once to one address and port across all probes of this process.
      - From 1 to 64.
    type: int
    default: 2
  max_clock_skew:
    description:
      - Seconds of difference between the server clock (NTLM CHALLENGE timestamp) and the
        controller's clock above which C(RDP-PROBE-CLOCK-SKEW) is reported (Kerberos' default is 300).
      - A finite number, 0 or more.
    type: float
    default: 300.0
  expiring_days:
    description:
      - A certificate expiring within this many days is reported as C(RDP-CERT-EXPIRING-SOON).
      - From 0 to 36500.
    type: int
    default: 30
  name_check_skip_reason:
    description:
      - "Do not compare the certificate with O(server_name) or O(host), and say why: the certificate
        step then reports C(name not checked: <reason>) instead of a name mismatch."
      - For a caller that does not know the name clients use; the C(rdp.doctor.diagnose) role sets it
        when it could not read a host it probes by IP address (no FQDN to compare with).
      - A sentence of 1 to 200 characters without control characters.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The probe only observes; check mode runs it unchanged.
  diff_mode:
    support: none
  platform:
    platforms: posix
    support: full
    details: Runs on the controller or a jump host (use C(delegate_to)), not on the Windows host.
requirements:
  - cryptography (for the certificate step)
notes:
  - Mapping a probe result to the code mstsc shows is inference unless the result says otherwise;
    Microsoft documents what 0x904 (socket closed) and extended 0x7 (server denied the connection)
    mean, not which server behaviour produces them.
  - The probe stops before authentication, so account, licensing, session-limit and RD Gateway
    problems are not visible here; rdp.doctor.host_facts sees those from the host side.
  - Every finding id, the decision rules and the result shape are described in docs/probe.md in the
    collection.
"""

EXAMPLES = r"""
- name: Probe the host's RDP listener from the controller
  rdp.doctor.probe:
    host: "{{ inventory_hostname }}"
    expected_address: "{{ ansible_host }}"
  delegate_to: localhost
  register: rdp_probe

- name: Stop here when a client cannot connect
  ansible.builtin.assert:
    that: rdp_probe.verdict.ok
    fail_msg: "{{ rdp_probe.verdict.explanation }} -- a client sees: {{ rdp_probe.verdict.client_sees }}"

- name: Probe a listener on another port with an internal CA, without the CredSSP step
  rdp.doctor.probe:
    host: rdsh01.corp.example.com
    port: 3390
    ca_bundle: /etc/pki/corp-root-ca.pem
    nla: false
  delegate_to: localhost

- name: Only tell whether NLA is required (negotiation, no TLS or certificate)
  rdp.doctor.probe:
    host: 10.0.0.5
    steps: [nla]
    mixes: ["0x0b", "0x01"]
  delegate_to: localhost
"""

RETURN = r"""
schema:
  description: Version of the result shape.
  returned: always
  type: str
  sample: rdp.doctor/probe/1
target:
  description: The host probed, as given.
  returned: always
  type: str
  sample: win01.corp.example.com
port:
  description: The port probed.
  returned: always
  type: int
  sample: 3389
server_name:
  description: The name the certificate was checked against.
  returned: always
  type: str
  sample: win01.corp.example.com
started_utc:
  description: When the probe started (controller clock, UTC).
  returned: always
  type: str
  sample: "2026-11-21T07:00:00.000Z"
elapsed_ms:
  description: Wall time of the whole probe in milliseconds.
  returned: always
  type: float
  sample: 11.8
steps:
  description:
    - One entry per step, always six, in the order dns, tcp, x224, tls, certificate, nla.
  returned: always
  type: list
  elements: dict
  contains:
    step:
      description: Step name.
      type: str
      sample: certificate
    verdict:
      description: C(ok), C(warn), C(fail) or C(skipped) (not requested, not reached, or not applicable).
      type: str
      sample: fail
    elapsed_ms:
      description: Time spent in this step (network round trips included).
      type: float
      sample: 0.9
    summary:
      description: What the step saw, in one sentence.
      type: str
      sample: "rdp-expired.test, issued by rdp-expired.test, valid until 2021-01-01T00:00:00Z: expired on ..."
    finding_ids:
      description: Finding ids this step supports (see docs/probe.md).
      type: list
      elements: str
      sample: [RDP-CERT-EXPIRED, RDP-CERT-SELF-SIGNED]
    details:
      description: The step's key facts (the full observation is in the section of the same name).
      type: dict
      sample: {"problems": ["expired", "self_signed"]}
verdict:
  description: The conclusion.
  returned: always
  type: dict
  contains:
    ok:
      description: True when no step failed (warnings allowed).
      type: bool
      sample: false
    failed_step:
      description: The first failing step, or null.
      type: str
      sample: certificate
    finding_ids:
      description: Every finding id of every step, in step order, without duplicates.
      type: list
      elements: str
      sample: [RDP-CERT-EXPIRED, RDP-CERT-SELF-SIGNED, RDP-PROBE-NLA-ABSENT]
    findings:
      description: The same ids with the step that found them and their severity (critical, high, medium, low, info).
      type: list
      elements: dict
      sample: [{"id": "RDP-CERT-EXPIRED", "step": "certificate", "severity": "high"}]
    explanation:
      description: The failing step and its summary.
      type: str
      sample: "certificate: ... expired on 2021-01-01T00:00:00Z (2151 days ago) ..."
    client_sees:
      description: What a client shows in this case (mstsc, and xfreerdp where it was observed).
      type: str
      sample: "mstsc: \"The identity of the remote computer cannot be verified\" listing the expiry ..."
    client_sees_basis:
      description: C(inference) when the mapping to the client's message is not documented by Microsoft.
      type: str
      sample: inference
dns:
  description: Name resolution.
  returned: always
  type: dict
  contains:
    name:
      description: The name looked up.
      type: str
    literal:
      description: True when O(host) is an IP address (no lookup).
      type: bool
    addresses:
      description: Every address, in resolver order.
      type: list
      elements: str
      sample: ["10.0.0.5"]
    expected_address:
      description: O(expected_address), or null.
      type: str
    error:
      description: The resolver's error, or null.
      type: str
      sample: "[Errno -2] Name or service not known"
    elapsed_ms:
      description: Lookup time.
      type: float
tcp:
  description: TCP connection attempts; null when DNS gave no address.
  returned: when DNS gave an address
  type: dict
  contains:
    address:
      description: The address the following steps used (the first that connected), or null.
      type: str
      sample: "10.0.0.5"
    attempts:
      description:
        - One per address (C(source=dns)), plus O(expected_address) when DNS did not return it
          (C(source=expected_address)).
        - C(outcome) is C(connected), C(refused), C(timeout), C(unreachable) or C(error).
      type: list
      elements: dict
      sample: [{"address": "10.0.0.5", "family": "ipv4", "source": "dns", "outcome": "refused", "errno": 111, "elapsed_ms": 0.3}]
x224:
  description: The X.224 negotiation, one entry per mix; null when TCP failed.
  returned: when a TCP connection was made
  type: dict
  contains:
    answers:
      description:
        - Mix label to a short answer - the selected protocol (C(SSL), C(HYBRID), C(HYBRID_EX), C(RDP)),
          C(FAILURE:<name>), C(LEGACY), C(DPUM), C(NOT_RDP:<service>), C(NO_ANSWER), C(CLOSED),
          C(RESET), C(CONNECT_FAILED).
      type: dict
      sample: {"0x0b": "SSL", "0x01": "SSL", "0x00": "FAILURE:SSL_REQUIRED_BY_SERVER"}
    mixes:
      description:
        - Full record per mix - C(requested), C(requested_hex), C(requested_names), C(kind)
          (negotiation_response, negotiation_failure, legacy_confirm, disconnect_ultimatum,
          disconnect_request, not_rdp, no_answer, closed, reset, truncated, malformed, connect_failed),
          C(selected_protocol), C(selected_name), C(flags), C(flag_names), C(failure_code),
          C(failure_name), C(service), C(raw) (hex of the answer), C(elapsed_ms).
      type: list
      elements: dict
    service_check:
      description: After a silent close, whether a direct TLS handshake works (a bare TLS service).
      type: dict
tls:
  description: The TLS handshake as observed with a permissive client; null when no TLS-based protocol was selected.
  returned: when the server selected SSL, HYBRID or HYBRID_EX
  type: dict
  contains:
    ok:
      description: Whether the handshake completed.
      type: bool
    mix:
      description: The mix on whose connection TLS ran.
      type: str
      sample: "0x0b"
    version:
      description: Negotiated version.
      type: str
      sample: TLSv1.3
    cipher:
      description: Negotiated cipher suite.
      type: str
      sample: TLS_AES_256_GCM_SHA384
    cipher_bits:
      description: Secret bits of the cipher.
      type: int
      sample: 256
    legacy:
      description: True for SSLv3, TLS 1.0 and TLS 1.1.
      type: bool
    chain_length:
      description: Certificates the server sent.
      type: int
    error:
      description: Handshake error when it failed.
      type: str
    elapsed_ms:
      description: Handshake time.
      type: float
certificate:
  description:
    - The listener certificate and every problem with it; null without a TLS handshake.
  returned: when a TLS handshake completed
  type: dict
  contains:
    subject:
      description: Subject, RFC 4514.
      type: str
      sample: "CN=win01.corp.example.com"
    subject_cn:
      description: Subject common name.
      type: str
    issuer:
      description: Issuer, RFC 4514.
      type: str
    issuer_cn:
      description: Issuer common name.
      type: str
    san_dns:
      description: DNS names of the subjectAltName.
      type: list
      elements: str
    san_ip:
      description: IP addresses of the subjectAltName.
      type: list
      elements: str
    eku:
      description: Extended key usages (oid and name); null when the extension is absent.
      type: list
      elements: dict
    serial:
      description: Serial number, upper-case hex.
      type: str
    sha1_thumbprint:
      description: SHA-1 of the DER, upper-case hex (the Windows thumbprint).
      type: str
      sample: 0A1B2C3D4E5F60718293A4B5C6D7E8F901234567
    sha256:
      description: SHA-256 of the DER, upper-case hex.
      type: str
    not_before:
      description: Start of validity, ISO 8601 UTC.
      type: str
    not_after:
      description: End of validity, ISO 8601 UTC.
      type: str
    validity:
      description: C(days_left), C(expired), C(not_yet_valid), C(expiring_soon), C(checked_at).
      type: dict
    self_signed:
      description: Issuer equals subject and the signature verifies with the certificate's own key.
      type: bool
    name_matches:
      description:
        - Whether O(server_name) matches (IP SANs for addresses, DNS SANs or the CN otherwise).
        - Null when no name was checked (O(name_check_skip_reason)).
      type: bool
    name_check:
      description: C(not checked - ) and O(name_check_skip_reason), when the name was not checked.
      returned: when O(name_check_skip_reason) is set
      type: str
      sample: "not checked: host not read"
    trust:
      description: C(checked), C(trusted), C(store), C(reason), C(chain) (subjects from leaf to anchor).
      type: dict
    problems:
      description: Every problem - C(code), C(id), C(severity), C(message).
      type: list
      elements: dict
      sample: [{"code": "expired", "id": "RDP-CERT-EXPIRED", "severity": "high", "message": "expired on ..."}]
    problem_ids:
      description: The finding ids of C(problems).
      type: list
      elements: str
nla:
  description: Network Level Authentication; null when the negotiation did not tell.
  returned: when the negotiation answers tell
  type: dict
  contains:
    state:
      description: C(required), C(offered) (not required) or C(absent).
      type: str
      sample: required
    evidence:
      description: The answers that tell.
      type: str
      sample: "0x01 -> HYBRID_REQUIRED_BY_SERVER"
    credssp:
      description:
        - The first CredSSP exchange - C(status), C(ts_request) (version, error_code, fields) and
          C(ntlm) (netbios_computer, netbios_domain, dns_computer, dns_domain, dns_tree, os_version,
          timestamp, target_name, flags); null when not attempted.
      type: dict
    server_time_utc:
      description: Server clock from the NTLM CHALLENGE timestamp.
      type: str
    clock_skew_seconds:
      description: Server clock minus controller clock, in seconds.
      type: float
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_probe
from ansible_collections.rdp.doctor.plugins.module_utils import x509_info


def argument_spec() -> dict:
    """The module's options (kept in step with DOCUMENTATION; validate-modules checks both)."""
    return {
        "host": {"type": "str", "required": True},
        "port": {"type": "int", "default": 3389},
        "expected_address": {"type": "str"},
        "server_name": {"type": "str"},
        "connect_timeout": {"type": "float", "default": 5.0},
        "read_timeout": {"type": "float", "default": 5.0},
        "ca_bundle": {"type": "path"},
        "trust_check": {"type": "bool", "default": True},
        "steps": {"type": "list", "elements": "str", "choices": list(rdp_probe.STEPS), "default": list(rdp_probe.STEPS)},
        "mixes": {"type": "list", "elements": "str", "default": ["0x0b", "0x01", "0x00"]},
        "nla": {"type": "bool", "default": True},
        "cookie": {"type": "str", "default": rdp_probe.DEFAULT_COOKIE},
        "max_connections_per_target": {"type": "int", "default": 2},
        "max_clock_skew": {"type": "float", "default": rdp_probe.DEFAULT_MAX_CLOCK_SKEW},
        "expiring_days": {"type": "int", "default": 30},
        "name_check_skip_reason": {"type": "str"},
    }


def options_from_params(params: dict) -> rdp_probe.ProbeOptions:
    """Module parameters to ProbeOptions; ValueError for a mix that is not a number."""
    return rdp_probe.ProbeOptions(
        host=params["host"], port=params["port"], expected_address=params["expected_address"],
        connect_timeout=params["connect_timeout"], read_timeout=params["read_timeout"],
        ca_bundle=params["ca_bundle"], server_name=params["server_name"], steps=tuple(params["steps"]),
        mixes=tuple(rdp_probe.parse_mix(mix) for mix in params["mixes"]), nla=params["nla"],
        trust_check=params["trust_check"], cookie=params["cookie"] or None,
        max_connections_per_target=params["max_connections_per_target"],
        max_clock_skew=params["max_clock_skew"], expiring_days=params["expiring_days"],
        name_check_skip_reason=params.get("name_check_skip_reason"))


def main() -> None:
    """Validate, probe, return the result (never changed)."""
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    if "certificate" in params["steps"] and not x509_info.HAS_CRYPTOGRAPHY:
        module.fail_json(msg=missing_required_lib("cryptography"), exception=x509_info.CRYPTOGRAPHY_IMPORT_ERROR)
    if params["ca_bundle"] and params["trust_check"] and not os.path.exists(params["ca_bundle"]):
        module.fail_json(msg=f"ca_bundle not found: {params['ca_bundle']}")
    try:
        options = options_from_params(params)
        result = rdp_probe.probe(options)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # pylint: disable=broad-exception-caught  # report, don't hide, an unexpected crash
        module.fail_json(msg=f"probe crashed: {exc}", exception=traceback.format_exc())
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
