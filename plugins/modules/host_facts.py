# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# This file holds the documentation only; the action plugin plugins/action/host_facts.py does the work.

from __future__ import annotations

DOCUMENTATION = r"""
---
module: host_facts
short_description: Gather everything RDP about a Windows host in one round trip
version_added: 0.1.0
description:
  - Reads the Remote Desktop state of a Windows host with a single run of the collection's C(read_rdp_state)
    host script (one PowerShell process, one WinRM/PSRP round trip) and returns it as versioned facts in
    C(ansible_facts.rdp_doctor).
  - Every setting comes with its effective value and its source - C(policy) (Group Policy, which wins),
    C(local) or C(default) - using C(Win32_TSGeneralSetting.PolicySource*) where Windows reports it.
  - Covers enablement and listener, services and sockets, security layer / NLA / encryption, the listener
    certificate (parsed from DER on the controller), CredSSP and its patch level, Schannel protocols, the
    firewall (Remote Desktop group, custom port coverage, GPO exception), session limits and sessions,
    licensing, MachineKeys and the listener key file, accounts and their logon rights, and RDP events.
  - The module never changes the host. Feed the facts to the P(rdp.doctor.findings#filter) filter to get
    findings, or run the P(rdp.doctor.diagnose#role) role.
author:
  - rdp.doctor contributors (!UNKNOWN)
options:
  accounts:
    description:
      - Accounts to check (existence, disabled, locked out, Remote Desktop Users membership, logon rights).
      - A name without a domain part is a local account. At most 50.
    type: list
    elements: str
    default: []
  event_days:
    description:
      - How many days of event logs to read (Schannel, RemoteConnectionManager, Licensing, TermDD...), 1 to 365.
    type: int
    default: 7
  event_sample_size:
    description:
      - How many messages to keep per event group (log, provider, id), 0 to 50.
    type: int
    default: 3
  port_hint:
    description:
      - A port to look at besides the configured C(PortNumber) when listing listening sockets, for example the
        port clients use.
    type: int
  include_raw:
    description:
      - Also return the raw document the host script answered (for bug reports and debugging).
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.facts
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode runs it unchanged.
  diff_mode:
    support: none
  platform:
    platforms: windows
    support: full
  facts:
    support: full
notes:
  - Needs Windows PowerShell 5.1 on the host and an administrator account (the MachineKeys ACL, private key
    permissions and user rights need it).
  - Runs over C(ansible.builtin.winrm), C(ansible.builtin.psrp) or C(ssh) with the PowerShell shell; the
    command line is constant and the script travels on stdin.
  - Certificate validity and session ages are judged with the controller's clock (as a client judges them);
    C(os.clock_skew_seconds) shows the difference with the host's clock.
seealso:
  - module: rdp.doctor.probe
  - plugin: rdp.doctor.findings
    plugin_type: filter
    description: Turn these facts (and a probe result) into findings.
"""

EXAMPLES = r"""
- name: Read the RDP state of the host
  rdp.doctor.host_facts:
    accounts:
      - rdpuser
      - CONTOSO\alice
    event_days: 7

- name: Show the effective security layer and where it comes from
  ansible.builtin.debug:
    msg: >-
      {{ ansible_facts.rdp_doctor.security.security_layer_name }}
      (source {{ ansible_facts.rdp_doctor.security.security_layer.source }})

- name: Compute findings from the facts
  ansible.builtin.set_fact:
    rdp_findings: "{{ ansible_facts.rdp_doctor | rdp.doctor.findings }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: success
  type: dict
  contains:
    rdp_doctor:
      description:
        - The host's RDP state, version 1.
        - A I(setting) below is a dict with C(effective) (the value Windows uses), C(source) (C(policy), C(local)
          or C(default)), C(local) (the local registry value or null), C(policy) (the Group Policy value or null)
          and C(default) (the Windows default).
      returned: success
      type: dict
      contains:
        facts_version:
          description: Version of this structure; changes only when a field changes meaning or disappears.
          type: int
          returned: always
          sample: 1
        raw_schema:
          description: Schema id of the raw document the host script answered.
          type: str
          returned: always
          sample: rdp.doctor/read_rdp_state/1
        collected_at:
          description: Controller time (UTC) the facts were built at.
          type: str
          returned: always
          sample: "2026-11-21T07:00:00Z"
        read_errors:
          description:
            - What the host could not read, each with the reason; the rest of the host was read. The facts that depend on
              a part in this list are unknown (V(null), or C(source=unknown) for a setting), never a guessed value.
            - "C(section) names the part - a top-level section (C(firewall)), C(registry: <key>), C(ts_setting: GracePeriodDays),
              C(events: <log> <provider> <id>) (C((a sample's message)) when only a message could not be formatted) or
              C(accounts: <name>)."
            - C(type) is the .NET exception type, or C(ServiceNotRunning) / C(ModuleNotAvailable) when the script did not try.
          type: list
          elements: dict
          returned: always
          sample:
            - section: firewall
              type: ServiceNotRunning
              message: "the Windows Defender Firewall service (MpsSvc) is Stopped: its ActiveStore cannot be read (...)"
        os:
          description: Operating system and names.
          type: dict
          returned: always
          contains:
            caption: {description: "Win32_OperatingSystem caption.", type: str, returned: always, sample: Microsoft Windows Server 2022 Datacenter}
            version: {description: "OS version.", type: str, returned: always, sample: 10.0.20348}
            build: {description: "OS build number.", type: int, returned: always, sample: 20348}
            product_type: {description: "Win32_OperatingSystem.ProductType (1 workstation, 2 domain controller, 3 server).", type: int, returned: always}
            role: {description: "C(workstation), C(domain_controller), C(server) or C(unknown).", type: str, returned: always}
            computer_name: {description: "NetBIOS computer name.", type: str, returned: always, sample: WIN01}
            dns_host_name: {description: "DNS host name.", type: str, returned: always, sample: win01}
            domain: {description: "DNS domain, or the workgroup name.", type: str, returned: always}
            part_of_domain: {description: "Whether the host is joined to a domain.", type: bool, returned: always}
            fqdn: {description: "Fully qualified name (host name alone in a workgroup).", type: str, returned: always}
            machine_guid: {description: "HKLM\\SOFTWARE\\Microsoft\\Cryptography MachineGuid (names the listener key file).", type: str, returned: always}
            rdsh_installed: {description: "Whether the RD Session Host role is installed.", type: bool, returned: always}
            host_time_utc: {description: "The host's clock when the script ran.", type: str, returned: always}
            last_boot_utc:
              description: When Windows last booted (Win32_OperatingSystem LastBootUpTime), ISO 8601 UTC; null when unknown.
              type: str
              returned: always
            clock_skew_seconds: {description: "Host clock minus controller clock.", type: float, returned: always}
            setup:
              description: C(oobe_in_progress) and C(system_setup_in_progress) settings (HKLM\\SYSTEM\\Setup) and C(in_progress).
              type: dict
              returned: always
        listener:
          description: Is the host accepting RDP connections at all.
          type: dict
          returned: always
          contains:
            deny_ts_connections: {description: "Setting: fDenyTSConnections (1 = connections refused).", type: dict, returned: always}
            enable_winstation: {description: "Setting: RDP-Tcp fEnableWinStation (0 = listener off).", type: dict, returned: always}
            port: {description: "Setting: RDP-Tcp PortNumber.", type: dict, returned: always}
            lan_adapter: {description: "Setting: RDP-Tcp LanAdapter (0 = every adapter).", type: dict, returned: always}
            drain_mode: {description: "Setting: TSServerDrainMode (0 logons allowed).", type: dict, returned: always}
            connections_allowed: {description: "Effective fDenyTSConnections is 0.", type: bool, returned: always}
            enabled: {description: "Effective fEnableWinStation is not 0 (null when RDP-Tcp could not be read).", type: bool, returned: always}
            effective_port: {description: "The port the listener uses.", type: int, returned: always, sample: 3389}
            port_known: {description: "False when the port could not be read (effective_port is then the default 3389).", type: bool, returned: always}
            services:
              description: >-
                TermService, SessionEnv and UmRdpService by name, each with C(present), C(state), C(start_mode), C(pid),
                C(account), C(running), C(disabled) (all null when the services could not be read).
              type: dict
              returned: always
            sockets_read: {description: "Whether the host reported its listening sockets.", type: bool, returned: always}
            services_read: {description: "Whether the host reported its services (else who owns a socket is unknown).", type: bool, returned: always}
            tcp:
              description: >-
                Sockets on the effective port - C(port), C(owners) (address, port, pid, process, termservice),
                C(listening), C(termservice_listening), C(other_owners); C(termservice) and C(termservice_listening) are null
                when the services could not be read.
              type: dict
              returned: always
            udp: {description: "Same as C(tcp) for UDP.", type: dict, returned: always}
            wts_state:
              description: >-
                The RDP-Tcp listener WinStation's WTS state (C(Listen), C(Down)...); C(absent) when Windows lists no such
                station, null when the sessions could not be read.
              type: str
              returned: always
            protocol_stack:
              description: >-
                C(loadable_protocol_object) and C(citrix_backup_protocol_object) (settings: RDP-Tcp LoadableProtocol_Object,
                CitrixBackupRdpTcpLoadableProtocolObject), C(microsoft) and C(foreign) (null when RDP-Tcp could not be read).
              type: dict
              returned: always
            port_missing: {description: "RDP-Tcp was read and has no PortNumber value.", type: bool, returned: always}
        security:
          description: Security layer, NLA, encryption.
          type: dict
          returned: always
          contains:
            security_layer: {description: "Setting: SecurityLayer (0 RDP, 1 Negotiate, 2 TLS).", type: dict, returned: always}
            security_layer_name: {description: "C(RDP), C(Negotiate), C(TLS) or C(unknown).", type: str, returned: always}
            user_authentication: {description: "Setting: UserAuthentication (1 = NLA required).", type: dict, returned: always}
            nla_required: {description: "Effective UserAuthentication is 1.", type: bool, returned: always}
            min_encryption_level: {description: "Setting: MinEncryptionLevel (1 Low, 2 Client compatible, 3 High, 4 FIPS).", type: dict, returned: always}
            min_encryption_level_name: {description: "Name of the effective level.", type: str, returned: always}
            fips_algorithm_policy: {description: "Setting: Lsa\\FIPSAlgorithmPolicy Enabled.", type: dict, returned: always}
            fips_enabled: {description: "Effective FIPS policy is on.", type: bool, returned: always}
            disable_domain_creds: {description: "Setting: Lsa disabledomaincreds.", type: dict, returned: always}
            domain_creds_disabled: {description: "Effective disabledomaincreds is on.", type: bool, returned: always}
        certificate:
          description: The listener certificate.
          type: dict
          returned: always
          contains:
            ssl_certificate_sha1_hash: {description: "Setting: RDP-Tcp SSLCertificateSHA1Hash (upper-case hex).", type: dict, returned: always}
            self_signed_cert_store: {description: "Setting: WinStations SelfSignedCertStore.", type: dict, returned: always}
            cert_template_name: {description: "Setting: policy CertTemplateName.", type: dict, returned: always}
            bound_thumbprint: {description: "Thumbprint the listener uses.", type: str, returned: always}
            bound_source:
              description: "C(registry), C(wmi), C(self_signed_store), C(none), or C(unknown) when RDP-Tcp could not be read."
              type: str
              returned: always
            wmi_thumbprint: {description: "Win32_TSGeneralSetting SSLCertificateSHA1Hash.", type: str, returned: always}
            hash_type: {description: "SSLCertificateSHA1HashType (0 not valid, 1 self-signed, 2 GPO template, 3 custom).", type: int, returned: always}
            hash_type_name: {description: "Name of C(hash_type).", type: str, returned: always}
            stores_read: {description: "Whether the host reported its certificate stores.", type: bool, returned: always}
            bound_known: {description: "Whether the binding could be read (false - no certificate check ran).", type: bool, returned: always}
            found: {description: "Whether the bound certificate exists in Remote Desktop or My.", type: bool, returned: always}
            bound:
              description: >-
                The bound certificate (null when not found) - C(store), C(thumbprint), C(subject), C(subject_cn), C(issuer),
                C(self_signed), C(not_before), C(not_after), C(days_remaining), C(expired), C(not_yet_valid), C(dns_names),
                C(ekus), C(eku_names), C(eku_ok), C(names), C(name_match), C(name_matches_host), C(has_private_key),
                C(key_container), C(key_file), C(key_readable_by_network_service), C(key_readable_by_admin), C(key_error),
                C(self_signed_container),
                C(public_key_type), C(public_key_bits), C(signature_hash), C(parse_error), C(template) (the Microsoft certificate
                template it was issued from, C(name) from the v1 Certificate Template Name extension, C(oid), C(major) and
                C(minor) from the v2 Certificate Template Information extension; null without either).
              type: dict
              returned: always
            usable: {description: "The bound certificate is valid now, has the right EKU and a readable private key.", type: bool, returned: always}
            expected_names: {description: "Names a client may use for the host (lower case).", type: list, elements: str, returned: always}
            stores: {description: "Every certificate of the C(Remote Desktop) and C(My) stores, described like C(bound).", type: dict, returned: always}
            candidates: {description: "Thumbprints of usable certificates in My that match the host name.", type: list, elements: str, returned: always}
        credssp:
          description: CredSSP encryption oracle remediation (CVE-2018-0886).
          type: dict
          returned: always
          contains:
            allow_encryption_oracle:
              description: "Setting: AllowEncryptionOracle (0 Force Updated Clients, 1 Mitigated, 2 Vulnerable)."
              type: dict
              returned: always
            allow_encryption_oracle_name: {description: "Name of the effective value.", type: str, returned: always}
            tspkg_version: {description: "FileVersion of tspkg.dll.", type: str, returned: always}
            required_tspkg_version:
              description: "First fixed tspkg.dll version for the OS build (null when the release shipped the fix or is unknown)."
              type: str
              returned: always
            fixed_in_release: {description: "The OS release shipped with the fix.", type: bool, returned: always}
            patched: {description: "Whether the fix is installed (null when it cannot be told).", type: bool, returned: always}
        schannel:
          description: Schannel protocols.
          type: dict
          returned: always
          contains:
            protocols:
              description: >-
                Per protocol (C(SSL 3.0) ... C(TLS 1.3)) and side (C(server), C(client)) - C(enabled_value),
                C(disabled_by_default_value), C(os_default), C(state) (C(enabled), C(disabled), C(disabled_by_default),
                C(unknown) when the key could not be read), C(enabled), C(source) (C(registry), C(default) or C(unknown)).
              type: dict
              returned: always
            server_enabled: {description: "Protocols the listener can use.", type: list, elements: str, returned: always}
            server_unknown: {description: "Protocols whose Server key could not be read.", type: list, elements: str, returned: always}
            tls12_server_enabled: {description: "TLS 1.2 is enabled for servers (null when unknown).", type: bool, returned: always}
            any_tls_server_enabled: {description: "At least one TLS version is enabled for servers (null when unknown).", type: bool, returned: always}
            legacy_server_enabled_explicitly:
              description: "SSL 3.0 / TLS 1.0 / TLS 1.1 enabled by a registry value."
              type: list
              elements: str
              returned: always
        firewall:
          description: Windows Defender Firewall as it concerns the listener.
          type: dict
          returned: always
          contains:
            read: {description: "Whether the host could read its firewall (false - e.g. MpsSvc stopped; see read_errors).", type: bool, returned: always}
            rdp_group: {description: "The Remote Desktop rule group resource string.", type: str, returned: always, sample: "@FirewallAPI.dll,-28752"}
            rules:
              description: >-
                Every rule the host reported, normalised, with its filters - C(program), C(service), C(remote_addresses).
              type: list
              elements: dict
              returned: always
            profiles: {description: "Firewall profiles (name, enabled, default_inbound_action).", type: list, elements: dict, returned: always}
            rdp_rules: {description: "Names of the Remote Desktop group rules.", type: list, elements: str, returned: always}
            rdp_rules_enabled: {description: "Enabled Remote Desktop group rules.", type: list, elements: str, returned: always}
            rdp_rules_disabled: {description: "Disabled Remote Desktop group rules.", type: list, elements: str, returned: always}
            rdp_tcp_rules:
              description: "The group's inbound TCP allow rules with C(covers_port) for the effective port."
              type: list
              elements: dict
              returned: always
            gpo:
              description: >-
                "Allow inbound Remote Desktop exceptions" policy per key (C(domain), C(standard)) - C(key_present),
                C(enabled), C(remote_addresses), C(blocks), C(profiles).
              type: dict
              returned: always
            gpo_blocked_profiles: {description: "Profiles in which the policy blocks RDP.", type: list, elements: str, returned: always}
            tcp:
              description: >-
                Coverage of the effective TCP port - C(profiles) (per profile C(enabled), C(open), C(allowed_by_rules),
                C(allow_rules), C(block_rules), C(gpo_blocked)), C(open_in_any_profile), C(open_in_all_profiles),
                C(allowed_by_rules_in_any_profile), C(blocked_by_rule_in_all_profiles), C(allow_rules), C(block_rules),
                C(address_limited_rules) (allow rules for the port that admit some remote addresses only: not counted as
                open). An allow rule counts only when its program is Any or svchost.exe and its service Any or TermService.
              type: dict
              returned: always
            udp: {description: "Same as C(tcp) for UDP.", type: dict, returned: always}
        session_limits:
          description: Session limits and sessions.
          type: dict
          returned: always
          contains:
            max_instance_count: {description: "Setting: MaxInstanceCount.", type: dict, returned: always}
            single_session_per_user: {description: "Setting: fSingleSessionPerUser.", type: dict, returned: always}
            max_idle_time: {description: "Setting: MaxIdleTime (ms, 0 never).", type: dict, returned: always}
            max_connection_time: {description: "Setting: MaxConnectionTime (ms, 0 never).", type: dict, returned: always}
            max_disconnection_time: {description: "Setting: MaxDisconnectionTime (ms, 0 never).", type: dict, returned: always}
            reset_broken: {description: "Setting: fResetBroken.", type: dict, returned: always}
            inherit_max_connection_time: {description: "Setting: RDP-Tcp fInheritMaxSessionTime (1 = the user's limit applies).", type: dict, returned: always}
            inherit_max_disconnection_time: {description: "Setting: RDP-Tcp fInheritMaxDisconnectionTime.", type: dict, returned: always}
            inherit_max_idle_time: {description: "Setting: RDP-Tcp fInheritMaxIdleTime.", type: dict, returned: always}
            inherit_reset_broken: {description: "Setting: RDP-Tcp fInheritResetBroken.", type: dict, returned: always}
            sessions_read: {description: "Whether the host could list its sessions.", type: bool, returned: always}
            sessions:
              description: >-
                User sessions - C(id), C(station), C(user), C(state), C(logon_time), C(disconnect_time), C(idle_seconds),
                C(age_seconds), C(disconnected_seconds).
              type: list
              elements: dict
              returned: always
            active_count: {description: "Active or connected user sessions.", type: int, returned: always}
            disconnected_count: {description: "Disconnected user sessions.", type: int, returned: always}
            admin_mode: {description: "Remote Desktop for Administration (no RD Session Host role).", type: bool, returned: always}
            admin_mode_limit: {description: "Two sessions in administration mode, else null.", type: int, returned: always}
            instance_limit: {description: "Effective connection cap (null when unlimited by policy).", type: int, returned: always}
        licensing:
          description: RD Session Host licensing.
          type: dict
          returned: always
          contains:
            licensing_mode: {description: "Setting: policy LicensingMode (2 per device, 4 per user).", type: dict, returned: always}
            license_servers: {description: "Setting: policy LicenseServers.", type: dict, returned: always}
            rdsh_installed: {description: "RD Session Host role installed.", type: bool, returned: always}
            licensing_type: {description: "Win32_TerminalServiceSetting LicensingType.", type: int, returned: always}
            licensing_type_name: {description: "Name of C(licensing_type).", type: str, returned: always}
            grace_period_days: {description: "Days left in the grace period (null without the role).", type: int, returned: always}
            license_server_list:
              description: License servers configured, from every source (policy LicenseServers first, then SpecifiedLicenseServers).
              type: list
              elements: str
              returned: always
            license_servers_configured: {description: "A license server is named by any source.", type: bool, returned: always}
            specified_license_servers:
              description: >-
                Setting: TermService LicenseServers SpecifiedLicenseServers (set by Server Manager, Set-RDLicenseConfiguration,
                WMI), with C(wmi) = what GetSpecifiedLicenseServerList answered (null when not read).
              type: dict
              returned: always
            rcm_licensing_mode: {description: "Setting: RCM Licensing Core LicensingMode (set without Group Policy).", type: dict, returned: always}
            license_server_status:
              description: >-
                GetTStoLSConnectivityStatus per named server - C(server), C(status), C(status_name), C(usable) (true, false, or
                null when the status says nothing about the host), C(error).
              type: list
              elements: dict
              returned: always
            license_server_usable: {description: "One named server is usable (null when no status was read).", type: bool, returned: always}
            x509_certificates: {description: "Byte counts of the RCM X509 Certificate values (null when not read).", type: dict, returned: always}
            x509_certificate_present: {description: "RCM X509 Certificate exists (null when not read).", type: bool, returned: always}
        certificate_store_acls:
          description: >-
            Deny entries for SYSTEM / NETWORK SERVICE on the Remote Desktop store's and RCM's registry keys - C(read), C(keys)
            (per key C(path), C(sddl), C(deny_aces)), C(denied) (null when not read).
          type: dict
          returned: always
        ephemeral_ports:
          description: >-
            TCP dynamic port ranges (Get-NetTCPSetting) - C(read), C(ranges) (setting, start, count), C(start) and C(count)
            of the narrowest one.
          type: dict
          returned: always
        machinekeys:
          description: The legacy CSP MachineKeys folder and the self-signed listener's key file.
          type: dict
          returned: always
          contains:
            path: {description: "Folder path.", type: str, returned: always}
            exists: {description: "The folder exists.", type: bool, returned: always}
            sddl: {description: "Folder SDDL.", type: str, returned: always}
            default_sddl: {description: "KB278381 default SDDL.", type: str, returned: always}
            is_default: {description: "SDDL equals the default.", type: bool, returned: always}
            aces: {description: "Parsed DACL (type, flags, rights, mask, sid).", type: list, elements: dict, returned: always}
            everyone_access_ok: {description: "Everyone has the default folder rights.", type: bool, returned: always}
            administrators_full: {description: "Administrators have full control.", type: bool, returned: always}
            acl_ok: {description: "Both of the above.", type: bool, returned: always}
            listener_key_file:
              description: >-
                The C(f686aace6942fb7f7ceb231212eef4a4_<MachineGuid>) file - C(name), C(expected_name), C(exists), C(sddl),
                C(size), C(readable), C(empty), C(network_service_read).
              type: dict
              returned: always
        winrm:
          description: C(listeners) - WinRM listeners (transport, address, port, thumbprint); an HTTPS listener's key may live in MachineKeys too.
          type: dict
          returned: always
        accounts:
          description: Accounts and logon rights.
          type: dict
          returned: always
          contains:
            expected: {description: "Accounts asked for.", type: list, elements: str, returned: always}
            remote_desktop_users: {description: "Members of Remote Desktop Users (sid, name).", type: list, elements: dict, returned: always}
            rights: {description: "SIDs holding SeRemoteInteractiveLogonRight and SeDenyRemoteInteractiveLogonRight.", type: dict, returned: always}
            rights_named: {description: "The same with well-known SIDs named.", type: dict, returned: always}
            checked:
              description: >-
                Each account checked - C(name), C(exists), C(sid), C(local), C(disabled), C(locked_out), C(groups),
                C(groups_complete), C(in_remote_desktop_users), C(in_administrators), C(allowed_by), C(denied_by), C(error),
                C(can_logon_remotely). Domain accounts are resolved without a second hop - C(disabled) and C(locked_out) are
                null, C(groups) are direct local groups and C(groups_complete) is false, so C(can_logon_remotely) is null
                (not evaluated) unless the account itself is allowed or denied. C(exists) and C(can_logon_remotely) are null
                when the lookup failed (C(error)).
              type: list
              elements: dict
              returned: always
            not_reported: {description: "Accounts asked for that the host did not report.", type: list, elements: str, returned: always}
        events:
          description: >-
            C(groups) - one per log/provider/id with C(count), C(last), C(samples), C(meaning) and C(error) (a sample whose
            message could not be formatted: its message is null) - and C(total).
          type: dict
          returned: always
        tls_cipher_suites:
          description: >-
            The TLS suites a modern client (mstsc on Windows 10/11, FreeRDP 2/3) offers that the listener can still negotiate
            - C(read), C(source) (C(policy), C(local), C(default) or C(unknown)), C(key), C(configured) (the Functions list),
            C(disabled_algorithms) (SCHANNEL Ciphers, Hashes, KeyExchangeAlgorithms with Enabled=0), C(usable_modern_suites),
            C(unusable_modern_suites) (suite -> what removes it), C(modern_client_compatible) (null when not read).
          type: dict
          returned: always
        listener_acl:
          description: >-
            The RDP-Tcp ACL (Win32_TSAccount) - C(read), C(present), C(entries) (C(sid), C(account), C(allowed), C(denied),
            C(logon_allowed), C(logon_denied)), C(logon_allowed), C(logon_denied), C(groups_without_logon) (Administrators or
            Remote Desktop Users the ACL shuts out), C(ok) (null when not read).
          type: dict
          returned: always
        logon_rights:
          description: >-
            The RDP logon rights at group level - C(read), C(groups_not_allowed), C(groups_denied) (SIDs and C(*_named)),
            C(local_accounts_denied), C(ok).
          type: dict
          returned: always
        domain:
          description: "The domain secure channel - C(read), C(member), C(domain), C(secure_channel_ok) (null in a workgroup)."
          type: dict
          returned: always
        logon_services:
          description: "LSM, Netlogon, BFE, MpsSvc - C(read), C(services) (per name C(present), C(state), C(start_mode), C(running))."
          type: dict
          returned: always
        ntlm:
          description: >-
            NTLM settings NLA meets - C(read), C(lm_compatibility_level) (3 when absent) and its C(lm_compatibility_level_source),
            C(restrict_receiving) and its C(restrict_receiving_meaning), C(incoming_denied), C(restrict_sending),
            C(ntlm_min_server_sec), C(key).
          type: dict
          returned: always
        connections:
          description: >-
            The host's record of clients reaching the listener over the event window - C(received) (RCM 261),
            C(authenticated) (RCM 1149), C(tcp_accepted) (RdpCoreTS 131), C(bad_credentials) (RdpCoreTS 140), each with
            C(last_*), C(read), C(clients_reached_listener), C(clients_authenticated) (null when the logs could not be read).
          type: dict
          returned: always
raw:
  description: The raw document C(read_rdp_state) answered.
  returned: when O(include_raw=true), or when the document could not be read
  type: dict
error:
  description: The structured error of a failed host script (C(script), C(type), C(message), C(line), C(rc), C(category)).
  returned: failure of the host script
  type: dict
  sample:
    script: read_rdp_state
    type: System.UnauthorizedAccessException
    message: "host script 'read_rdp_state' failed at line 12 (System.UnauthorizedAccessException): Access is denied"
    line: 12
    rc: 1
    category: PermissionDenied
"""
