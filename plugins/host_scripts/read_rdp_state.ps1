# read_rdp_state: everything RDP about this Windows host, read in one round trip (rdp.doctor).
# Raw values only, no decisions: the controller decides (docs/dev/contracts.md section 3, schema in
# read_rdp_state.schema.json). Windows PowerShell 5.1. [Sn] cites windows-rdp-facts.md; the other
# sources are Microsoft documents (learn.microsoft.com, abbreviated "ms:"), listed in docs/dev/powershell.md.
param([Parameter(Mandatory = $true)] $Params)
Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$RdpTcpKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'  # PortNumber [S14]
$CryptographyKey = 'HKLM:\SOFTWARE\Microsoft\Cryptography'  # MachineGuid names the listener key file [S2]
$RdpFirewallGroup = '@FirewallAPI.dll,-28752'  # "Remote Desktop" rule group, locale-independent [S13]
$ListenerKeyPrefix = 'f686aace6942fb7f7ceb231212eef4a4'  # self-signed listener key file <prefix>_<MachineGuid> [S2][S26]
$MachineKeysPath = Join-Path $env:ProgramData 'Microsoft\Crypto\RSA\MachineKeys'  # legacy CSP machine keys [S17]
$CngKeysPath = Join-Path $env:ProgramData 'Microsoft\Crypto\Keys'  # CNG machine keys [S17]
$ServiceNames = 'TermService', 'SessionEnv', 'UmRdpService', 'MpsSvc'  # [S21][S22]; MpsSvc = firewall (MSRD #45)
$UserRights = 'SeRemoteInteractiveLogonRight', 'SeDenyRemoteInteractiveLogonRight'  # [S23]
# SIDs in NETWORK SERVICE's token that a key file ACL can grant: NETWORK SERVICE, Everyone, Authenticated Users, Users, SERVICE.
$NetworkServiceSids = 'S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-32-545', 'S-1-5-6'
$ReadDataMask = 2415919105  # 0x90000001 = GENERIC_READ | GENERIC_ALL | FILE_READ_DATA (ms: file-access-rights-constants)
# WTS_CONNECTSTATE_CLASS, in enum order (ms: wtsapi32/ne-wtsapi32-wts_connectstate_class).
$WtsStates = 'Active', 'Connected', 'ConnectQuery', 'Shadow', 'Disconnected', 'Idle', 'Listen', 'Reset', 'Down', 'Init'
# Events counted (MSRD #44 #57, msrd-coverage "checked by none"). ids @() = every id of the log, grouped by provider and id.
$EventQueries = @(
    @{ log = 'System'; provider = 'Schannel'; ids = @(36870, 36871, 36874, 36888) },  # TLS credential/key/cipher [S2][S30]
    @{ log = 'System'; provider = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'; ids = @(1056, 1057, 1058, 1028) },  # [S2][S34]
    @{ log = 'System'; provider = 'TermDD'; ids = @(50, 56) },  # RDP protocol errors (msrd-coverage "checked by none")
    @{ log = 'System'; provider = 'Microsoft-Windows-TerminalServices-Licensing'; ids = @() },  # MSRD #57
    @{ log = 'Microsoft-Windows-TerminalServices-Licensing/Admin'; provider = $null; ids = @() },  # MSRD #57
    @{ log = 'Microsoft-Windows-TerminalServices-Licensing/Operational'; provider = $null; ids = @() },  # MSRD #57
    @{ log = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager/Admin'; provider = $null; ids = @() },  # listener, licensing
    @{ log = 'Microsoft-Windows-TerminalServices-LocalSessionManager/Operational'; provider = $null; ids = @() }  # sessions
)
# Two Win32 reads PowerShell has no cmdlet for. Sessions come from the WTS API, not from parsing quser/qwinsta (their
# columns, states and dates are localized); ms: wtsapi32/nf-wtsapi32-wtsenumeratesessionsw, nf-wtsapi32-wtsquerysessioninformationw,
# ns-wtsapi32-wtsinfow (WTSSessionInfo = 24). A certificate's key container is its CERT_KEY_PROV_INFO property (id 2), readable
# without opening the key; ms: wincrypt/nf-wincrypt-certgetcertificatecontextproperty, ns-wincrypt-crypt_key_prov_info.
$NativeSource = @'
using System;
using System.Runtime.InteropServices;
namespace RdDoctor {
    public static class Native {
        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        // Public structs: Add-Type fails on warnings, and CS0649 flags fields of private types filled only by marshalling.
        public struct SessionInfo { public int SessionId; public IntPtr WinStationName; public int State; }
        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        public struct Info {
            public int State; public int SessionId;
            public int IncomingBytes, OutgoingBytes, IncomingFrames, OutgoingFrames, IncomingCompressedBytes, OutgoingCompressedBytes;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 32)] public string WinStationName;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 17)] public string Domain;
            [MarshalAs(UnmanagedType.ByValTStr, SizeConst = 21)] public string UserName;
            public long ConnectTime, DisconnectTime, LastInputTime, LogonTime, CurrentTime;
        }
        [DllImport("wtsapi32.dll", SetLastError = true)]
        static extern bool WTSEnumerateSessionsW(IntPtr server, int reserved, int version, out IntPtr sessions, out int count);
        [DllImport("wtsapi32.dll", SetLastError = true)]
        static extern bool WTSQuerySessionInformationW(IntPtr server, int sessionId, int infoClass, out IntPtr buffer, out int bytes);
        [DllImport("wtsapi32.dll")]
        static extern void WTSFreeMemory(IntPtr memory);
        [StructLayout(LayoutKind.Sequential, CharSet = CharSet.Unicode)]
        public struct KeyProvInfo { public string ContainerName; public string ProviderName; public int ProviderType; public int Flags;
                             public int ProvParamCount; public IntPtr ProvParams; public int KeySpec; }
        [DllImport("crypt32.dll", SetLastError = true)]
        static extern bool CertGetCertificateContextProperty(IntPtr cert, int propId, IntPtr data, ref int size);
        public static string KeyContainer(IntPtr cert) {
            int size = 0;
            if (!CertGetCertificateContextProperty(cert, 2, IntPtr.Zero, ref size)) { return null; }  // no key provider info
            IntPtr data = Marshal.AllocHGlobal(size);
            try {
                if (!CertGetCertificateContextProperty(cert, 2, data, ref size)) { throw new System.ComponentModel.Win32Exception(); }
                return ((KeyProvInfo)Marshal.PtrToStructure(data, typeof(KeyProvInfo))).ContainerName;
            } finally { Marshal.FreeHGlobal(data); }
        }
        public static Info[] Sessions() {
            IntPtr list; int count;
            if (!WTSEnumerateSessionsW(IntPtr.Zero, 0, 1, out list, out count)) { throw new System.ComponentModel.Win32Exception(); }
            Info[] result = new Info[count];
            try {
                int size = Marshal.SizeOf(typeof(SessionInfo));
                for (int i = 0; i < count; i++) {
                    SessionInfo s = (SessionInfo)Marshal.PtrToStructure(new IntPtr(list.ToInt64() + i * size), typeof(SessionInfo));
                    IntPtr buffer; int bytes;
                    Info info = new Info();
                    if (WTSQuerySessionInformationW(IntPtr.Zero, s.SessionId, 24, out buffer, out bytes)) {
                        try { info = (Info)Marshal.PtrToStructure(buffer, typeof(Info)); } finally { WTSFreeMemory(buffer); }
                    }
                    // Listeners answer no WTSSessionInfo: their id, name and state come from the enumeration.
                    info.SessionId = s.SessionId; info.State = s.State; info.WinStationName = Marshal.PtrToStringUni(s.WinStationName);
                    result[i] = info;
                }
            } finally { WTSFreeMemory(list); }
            return result;
        }
    }
}
'@

function ConvertTo-RdUtcText($Value) {
    # ISO 8601 UTC text, culture-independent.
    if ($null -eq $Value) { return $null }
    return $Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

function ConvertFrom-RdFileTime([long]$Value) {
    # WTS times are UTC FILETIMEs; 0 means "never" (no logon, never disconnected).
    if ($Value -le 0) { return $null }
    return [DateTime]::FromFileTimeUtc($Value)
}

function Read-RdRegistryKey([string]$Path) {
    # One key in provider form; $null when absent. DWORD/QWORD -> unsigned int, SZ/EXPAND_SZ -> string (unexpanded),
    # MULTI_SZ -> string[], BINARY and anything else -> lower-case hex (ms: microsoft.win32.registrykey.getvaluekind).
    if ($Path -notlike 'HKLM:\*') { throw "registry_keys holds HKLM:\ paths only, not '$Path'" }
    if (-not (Test-Path -LiteralPath $Path)) { return $null }
    $key = Get-Item -LiteralPath $Path  # a Microsoft.Win32.RegistryKey (ms: about_Registry_Provider)
    $values = @{}
    foreach ($name in $key.GetValueNames()) {
        if ($name -eq '') { continue }  # the unnamed default value: nothing RDP reads lives there
        $raw = $key.GetValue($name, $null, 'DoNotExpandEnvironmentNames')
        switch ([string]$key.GetValueKind($name)) {
            'DWord' { $values[$name] = [BitConverter]::ToUInt32([BitConverter]::GetBytes([int]$raw), 0) }  # Int32 -> unsigned
            'QWord' { $values[$name] = [BitConverter]::ToUInt64([BitConverter]::GetBytes([long]$raw), 0) }
            'String' { $values[$name] = [string]$raw }
            'ExpandString' { $values[$name] = [string]$raw }
            'MultiString' { $values[$name] = [string[]]@($raw) }
            default {
                $bytes = [byte[]]@()
                if ($null -ne $raw) { $bytes = [byte[]]$raw }
                $values[$name] = ([BitConverter]::ToString($bytes) -replace '-', '').ToLowerInvariant()
            }
        }
    }
    return $values
}

function Invoke-RdOptional([scriptblock]$Query) {
    # The CDXML cmdlets (NetTCPIP, NetSecurity) report "nothing matched" as an ObjectNotFound error: that is an empty answer.
    try { & $Query } catch { if ([string]$_.CategoryInfo.Category -ne 'ObjectNotFound') { throw } }
}

function Get-RdTerminalServicesCim([string]$ClassName, [string]$Filter) {
    # root\cimv2\TerminalServices [S6][S39]: missing on editions without an RDP server (MetadataError) -> $null.
    $query = @{ Namespace = 'root\cimv2\TerminalServices'; ClassName = $ClassName }
    if ($Filter) { $query.Filter = $Filter }
    try { $found = @(Get-CimInstance @query) } catch { if ([string]$_.CategoryInfo.Category -ne 'MetadataError') { throw }; return $null }
    if ($found.Count -eq 0) { return $null }
    return $found[0]
}

function Get-RdProcessName([int]$Id) {
    # A process may exit between the socket read and this one: no name then (ms: get-process).
    $process = Get-Process -Id $Id -ErrorAction SilentlyContinue
    if ($null -eq $process) { return $null }
    return $process.ProcessName
}

function Get-RdSddl([string]$Path) {
    # ms: get-acl. An ACL the administrator may not read is reported as $null, not as a failure.
    try { return (Get-Acl -LiteralPath $Path).Sddl } catch [UnauthorizedAccessException] { return $null }
}

function Test-RdNetworkServiceRead($Acl) {
    # Can NETWORK SERVICE (TermService's account [S22]) read the key file? Allow ACE with read for a SID in its token,
    # and no such deny ACE [S1][S2]. Privileges and service SIDs are not considered.
    $allowed = $false
    foreach ($rule in $Acl.GetAccessRules($true, $true, [Security.Principal.SecurityIdentifier])) {
        if ($NetworkServiceSids -notcontains $rule.IdentityReference.Value) { continue }
        $mask = [BitConverter]::ToUInt32([BitConverter]::GetBytes([int]$rule.FileSystemRights), 0)
        if (([long]$mask -band $ReadDataMask) -eq 0) { continue }
        if ([string]$rule.AccessControlType -eq 'Deny') { return $false }
        $allowed = $true
    }
    return $allowed
}

function Add-RdKeyFile($Cert, [hashtable]$Entry) {
    # Opens the private key as the reading administrator: legacy CSP keys answer CspKeyContainerInfo, CNG keys CngKey
    # (ms: rsacertificateextensions.getrsaprivatekey, cspkeycontainerinfo.uniquekeycontainername, cngkey.uniquename).
    $rsa = [Security.Cryptography.X509Certificates.RSACertificateExtensions]::GetRSAPrivateKey($Cert)
    if ($null -eq $rsa) { throw 'the private key is not an RSA key' }
    if ($rsa -is [Security.Cryptography.RSACng]) { $Entry.key_file = $rsa.Key.UniqueName } else { $Entry.key_file = $rsa.CspKeyContainerInfo.UniqueKeyContainerName }
    foreach ($folder in $MachineKeysPath, $CngKeysPath) {
        $file = Join-Path $folder $Entry.key_file
        if (Test-Path -LiteralPath $file -PathType Leaf) {
            $Entry.key_readable_by_network_service = Test-RdNetworkServiceRead (Get-Acl -LiteralPath $file)
            return
        }
    }
}

function Get-RdCertificates([string]$Store) {
    # Cert:\LocalMachine\Remote Desktop (self-signed [S2]) and \My (custom [S1]) (ms: about_Certificate_Provider).
    $path = 'Cert:\LocalMachine\' + $Store
    if (-not (Test-Path -LiteralPath $path)) { return }
    foreach ($cert in @(Get-ChildItem -LiteralPath $path)) {
        $entry = @{ thumbprint = $cert.Thumbprint; der = [Convert]::ToBase64String($cert.RawData); has_private_key = $cert.HasPrivateKey
            key_container = $null; key_file = $null; key_readable_by_network_service = $null; key_error = $null }
        if ($cert.HasPrivateKey) {
            $entry.key_container = [RdDoctor.Native]::KeyContainer($cert.Handle)  # e.g. TSSecKeySet1 [S2], even if the key is gone
            # A key that cannot be opened is exactly what breaks the listener [S2]: data, never a failure.
            try { Add-RdKeyFile -Cert $cert -Entry $entry } catch { $entry.key_error = $_.Exception.Message }
        }
        $entry
    }
}

function Get-RdListenerKeyFile([string]$MachineGuid) {
    # The self-signed listener key file in MachineKeys [S2][S26]; readable = this administrator can open it for reading.
    $name = $ListenerKeyPrefix + '_' + $MachineGuid
    $path = Join-Path $MachineKeysPath $name
    $file = @{ name = $name; exists = $false; sddl = $null; size = $null; readable = $null }
    if (Test-Path -LiteralPath $path -PathType Leaf) {
        $file.exists = $true
        $file.sddl = Get-RdSddl $path
        $file.size = [long](Get-Item -LiteralPath $path -Force).Length
        try { [IO.File]::OpenRead($path).Dispose(); $file.readable = $true } catch [UnauthorizedAccessException] { $file.readable = $false }
    }
    return $file
}

function Get-RdSessions {
    # WTS API (see $NativeSource). Includes session 0 "Services", the console and listeners (state Listen), as Windows lists them.
    foreach ($s in [RdDoctor.Native]::Sessions()) {
        $user = $null
        if ($s.UserName) { $user = $s.UserName; if ($s.Domain) { $user = $s.Domain + '\' + $s.UserName } }
        $idle = $null
        if ($s.LastInputTime -gt 0 -and $s.CurrentTime -gt 0) { $idle = [long][Math]::Floor(($s.CurrentTime - $s.LastInputTime) / 1e7) }
        $disconnected = $null
        if ($WtsStates[$s.State] -eq 'Disconnected' -and $s.DisconnectTime -gt 0 -and $s.CurrentTime -gt 0) {
            $disconnected = [long][Math]::Floor(($s.CurrentTime - $s.DisconnectTime) / 1e7)
        }
        @{ id = $s.SessionId; station = $s.WinStationName; user = $user; state = $WtsStates[$s.State]
            logon_time = ConvertTo-RdUtcText (ConvertFrom-RdFileTime $s.LogonTime)
            disconnect_time = ConvertTo-RdUtcText (ConvertFrom-RdFileTime $s.DisconnectTime)
            idle_seconds = $idle; disconnected_seconds = $disconnected }
    }
}

function ConvertTo-RdSocket($Socket) {
    return @{ address = [string]$Socket.LocalAddress; port = [int]$Socket.LocalPort; pid = [int]$Socket.OwningProcess
        process = Get-RdProcessName $Socket.OwningProcess }
}

function Get-RdSockets([int[]]$Ports) {
    # ms: nettcpip/get-nettcpconnection, get-netudpendpoint; owner process for the port-conflict check [S4][S26] MSRD #16 #17.
    # @(foreach ...) and not @($var): a foreach that emits nothing assigns $null, and @($null) is a one-element array.
    $tcp = @(foreach ($port in $Ports) { Invoke-RdOptional { Get-NetTCPConnection -State Listen -LocalPort $port } })
    $udp = @(foreach ($port in $Ports) { Invoke-RdOptional { Get-NetUDPEndpoint -LocalPort $port } })
    return @{ tcp = @(foreach ($socket in $tcp) { ConvertTo-RdSocket $socket }); udp = @(foreach ($socket in $udp) { ConvertTo-RdSocket $socket }) }
}

function Test-RdRulePort($Rule, [string[]]$LocalPorts, [int[]]$Ports) {
    # Inbound rules that name the RDP port (single or range), and inbound Block rules on any port.
    if ([string]$Rule.Direction -ne 'Inbound') { return $false }
    foreach ($spec in $LocalPorts) {
        if ($spec -eq 'Any') { if ([string]$Rule.Action -eq 'Block') { return $true }; continue }
        if ($spec -notmatch '^(\d+)(-(\d+))?$') { continue }
        $low = [int]$Matches[1]; $high = $low
        if ($Matches[3]) { $high = [int]$Matches[3] }
        foreach ($port in $Ports) { if ($port -ge $low -and $port -le $high) { return $true } }
    }
    return $false
}

function Get-RdFirewall([int[]]$Ports) {
    # ms: netsecurity/get-netfirewallrule, get-netfirewallportfilter, get-netfirewallprofile; ActiveStore = what is in force [S13].
    # A port filter shares its rule's InstanceID (one-to-one, ms: get-netfirewallportfilter).
    $filters = @{}
    foreach ($filter in @(Get-NetFirewallPortFilter -All -PolicyStore ActiveStore)) { $filters[$filter.InstanceID] = $filter }
    $rules = @(foreach ($rule in @(Get-NetFirewallRule -All -PolicyStore ActiveStore)) {
        $filter = $filters[$rule.InstanceID]
        $protocol = 'Any'; $localPorts = @('Any')
        if ($null -ne $filter) { $protocol = [string]$filter.Protocol; $localPorts = @(foreach ($p in $filter.LocalPort) { [string]$p }) }
        if ($rule.Group -ne $RdpFirewallGroup -and -not (Test-RdRulePort $rule $localPorts $Ports)) { continue }
        @{ name = $rule.Name; display_name = $rule.DisplayName; group = $rule.Group; enabled = ([string]$rule.Enabled -eq 'True')
            direction = [string]$rule.Direction; action = [string]$rule.Action; profiles = @(([string]$rule.Profile) -split ',\s*')
            protocol = $protocol; local_ports = $localPorts; policy_store_source = [string]$rule.PolicyStoreSource }
        })
    $profiles = @(foreach ($fwProfile in @(Get-NetFirewallProfile -PolicyStore ActiveStore)) {
            @{ name = [string]$fwProfile.Name; enabled = ([string]$fwProfile.Enabled -eq 'True')
                default_inbound_action = [string]$fwProfile.DefaultInboundAction }
        })
    return @{ rules = $rules; profiles = $profiles }
}

function Get-RdWinRmListeners {
    # ms: about_WSMan_Provider (WSMan:\localhost\Listener\<Listener_n>\Transport|Address|Port|CertificateThumbprint|Enabled).
    foreach ($listener in @(Get-ChildItem -Path 'WSMan:\localhost\Listener')) {
        $values = @{}
        foreach ($item in @(Get-ChildItem -Path ('WSMan:\localhost\Listener\' + $listener.Name))) { $values[$item.Name] = $item.Value }
        $thumbprint = $null
        if ($values.CertificateThumbprint) { $thumbprint = [string]$values.CertificateThumbprint }
        @{ transport = [string]$values.Transport; address = [string]$values.Address; port = [int]$values.Port
            thumbprint = $thumbprint; enabled = ([string]$values.Enabled -eq 'true') }
    }
}

function ConvertTo-RdWql([string]$Text) {
    # WQL string literal escaping (ms: wmisdk/wql-sql-for-wmi): backslash and quote.
    return $Text.Replace('\', '\\').Replace("'", "\'")
}

function Get-RdLocalGroups {
    # Local groups by SID (names are localized [S23]) with member SIDs through the WinNT ADSI provider, which lists
    # members whose SID no longer resolves (ms: win32-group; adsi winnt provider). Direct members only.
    foreach ($group in @(Get-CimInstance -ClassName Win32_Group -Filter 'LocalAccount=True')) {
        $adsi = [ADSI]('WinNT://' + $env:COMPUTERNAME + '/' + $group.Name + ',group')
        $members = @(foreach ($member in @($adsi.psbase.Invoke('Members'))) {
            $sidBytes = [byte[]]$member.GetType().InvokeMember('objectSid', 'GetProperty', $null, $member, $null)
            $path = [string]$member.GetType().InvokeMember('ADsPath', 'GetProperty', $null, $member, $null)
            $parts = @(($path -replace '^WinNT://', '') -split '/')
            $name = $null  # WinNT://S-1-5-21-... = a SID that does not resolve
            if ($parts.Count -ge 2) { $name = $parts[-2] + '\' + $parts[-1] }
            @{ sid = (New-Object Security.Principal.SecurityIdentifier($sidBytes, 0)).Value; name = $name }
            })
        @{ sid = [string]$group.SID; members = $members }
    }
}

function Get-RdAccount([string]$Name, $Groups) {
    # Win32_UserAccount [S32]: "name" or ".\name" = local account, "DOMAIN\name" = that domain's account.
    $domain = $null; $short = $Name
    if ($Name.Contains('\')) { $domain = $Name.Split('\')[0]; $short = $Name.Split('\')[1] }
    $filter = "LocalAccount=True AND Name='" + (ConvertTo-RdWql $short) + "'"
    if ($domain -and $domain -ne '.' -and $domain -ne $env:COMPUTERNAME) {
        $filter = "Domain='" + (ConvertTo-RdWql $domain) + "' AND Name='" + (ConvertTo-RdWql $short) + "'"
    }
    $found = @(Get-CimInstance -ClassName Win32_UserAccount -Filter $filter)
    if ($found.Count -eq 0) { return @{ name = $Name; exists = $false; sid = $null; disabled = $null; locked_out = $null; groups = @() } }
    $sid = [string]$found[0].SID
    $memberOf = @(foreach ($group in $Groups) { if (@($group.members | Where-Object { $_.sid -eq $sid }).Count -gt 0) { $group.sid } })
    return @{ name = $Name; exists = $true; sid = $sid; disabled = [bool]$found[0].Disabled; locked_out = [bool]$found[0].Lockout
        groups = $memberOf }
}

function ConvertTo-RdSid([string]$Entry) {
    # secedit writes "*S-1-..." for accounts with a SID and a bare name otherwise; a name that does not resolve stays a name.
    if ($Entry.StartsWith('*')) { return $Entry.Substring(1) }
    try { return (New-Object Security.Principal.NTAccount($Entry)).Translate([Security.Principal.SecurityIdentifier]).Value }
    catch [Security.Principal.IdentityNotMappedException] { return $Entry }
}

function Get-RdUserRights {
    # secedit /export /areas USER_RIGHTS (ms: windows-commands/secedit-export) as MSRD #30 does; a right nobody holds is absent.
    $rights = @{}
    foreach ($right in $UserRights) { $rights[$right] = @() }
    $file = [IO.Path]::GetTempFileName()
    try {
        $output = & (Join-Path $env:SystemRoot 'System32\secedit.exe') /export /areas USER_RIGHTS /cfg $file /quiet
        if ($LASTEXITCODE -ne 0) { throw ('secedit /export failed with exit code {0}: {1}' -f $LASTEXITCODE, ($output -join ' ')) }
        $lines = @(Get-Content -LiteralPath $file)
    } finally { Remove-Item -LiteralPath $file -Force }
    foreach ($line in $lines) {
        if ($line -match '^\s*(\w+)\s*=\s*(.*)$' -and $rights.ContainsKey($Matches[1])) {
            $right = $Matches[1]
            $rights[$right] = @(foreach ($item in $Matches[2].Split(',')) { if ($item.Trim()) { ConvertTo-RdSid $item.Trim() } })
        }
    }
    return $rights
}

function Get-RdEvents($Query, [datetime]$Since, [int]$SampleSize) {
    # ms: get-winevent -FilterHashtable. No matching event, log or provider = count 0: a missing log is not an error.
    $filter = @{ LogName = $Query.log; StartTime = $Since }
    if ($null -ne $Query.provider) { $filter.ProviderName = $Query.provider }
    if ($Query.ids.Count -gt 0) { $filter.Id = $Query.ids }
    $found = @()
    try { $found = @(Get-WinEvent -FilterHashtable $filter) } catch { if ($_.FullyQualifiedErrorId -notmatch '^NoMatching(Events|Logs|Providers)Found') { throw } }
    $groups = [ordered]@{}
    foreach ($id in $Query.ids) { $groups[[string]$id] = @{ log = $Query.log; provider = $Query.provider; id = $id; count = 0; last = $null; samples = @() } }
    foreach ($record in $found) {  # newest first
        $key = [string]$record.Id
        if ($Query.ids.Count -eq 0) { $key = $record.ProviderName + '|' + $record.Id }
        if (-not $groups.Contains($key)) {
            $groups[$key] = @{ log = $Query.log; provider = $record.ProviderName; id = $record.Id; count = 0; last = $null; samples = @() }
        }
        $entry = $groups[$key]
        $entry['count'] += 1  # index syntax: a hashtable's own Count property must not be meant
        if ($null -eq $entry['last']) { $entry['last'] = ConvertTo-RdUtcText $record.TimeCreated }
        if ($entry['samples'].Count -lt $SampleSize) {
            $message = $record.Message  # $null when the provider's message file is missing
            if ($null -ne $message -and $message.Length -gt 2000) { $message = $message.Substring(0, 2000) }
            $entry['samples'] += @{ time = ConvertTo-RdUtcText $record.TimeCreated; message = $message }
        }
    }
    $groups.Values
}

# ---- read ----
$now = [DateTime]::UtcNow
if (-not ('RdDoctor.Native' -as [type])) { Add-Type -TypeDefinition $NativeSource }  # ms: add-type
$machineGuid = $null
$cryptography = Read-RdRegistryKey $CryptographyKey
if ($null -ne $cryptography -and $cryptography.ContainsKey('MachineGuid')) { $machineGuid = [string]$cryptography.MachineGuid }

# Effective port: RDP-Tcp PortNumber, else 3389 [S14]; port_hint (the port the controller connects to) is read as well.
$rdpTcp = Read-RdRegistryKey $RdpTcpKey
$port = 3389
if ($null -ne $rdpTcp -and $rdpTcp.ContainsKey('PortNumber')) { $port = [int]$rdpTcp.PortNumber }
$ports = @($port)
if ($null -ne $Params.port_hint -and [int]$Params.port_hint -ne $port) { $ports += [int]$Params.port_hint }

$registry = @{}
foreach ($path in $Params.registry_keys) { $registry[[string]$path] = Read-RdRegistryKey ([string]$path) }

# Win32_TSGeneralSetting (RDP-Tcp) [S6] and Win32_TerminalServiceSetting (ms: termserv/win32-terminalservicesetting).
$generalCim = Get-RdTerminalServicesCim 'Win32_TSGeneralSetting' "TerminalName='RDP-Tcp'"
$general = $null
if ($null -ne $generalCim) {
    $general = @{ SSLCertificateSHA1Hash = $generalCim.SSLCertificateSHA1Hash; SSLCertificateSHA1HashType = $generalCim.SSLCertificateSHA1HashType
        SecurityLayer = $generalCim.SecurityLayer; UserAuthenticationRequired = $generalCim.UserAuthenticationRequired
        MinEncryptionLevel = $generalCim.MinEncryptionLevel; PolicySourceSecurityLayer = $generalCim.PolicySourceSecurityLayer
        PolicySourceUserAuthenticationRequired = $generalCim.PolicySourceUserAuthenticationRequired
        PolicySourceMinEncryptionLevel = $generalCim.PolicySourceMinEncryptionLevel }
}
$settingCim = Get-RdTerminalServicesCim 'Win32_TerminalServiceSetting' $null

# RDSH role: Get-WindowsFeature on servers (ms: servermanager/get-windowsfeature), else TerminalServerMode 1 = RDSH.
$rdsh = $null
if (Get-Command -Name Get-WindowsFeature -ErrorAction SilentlyContinue) {
    $feature = Get-WindowsFeature -Name RDS-RD-Server
    $rdsh = ($null -ne $feature -and [bool]$feature.Installed)
} elseif ($null -ne $settingCim) { $rdsh = ([int]$settingCim.TerminalServerMode -eq 1) }
$setting = $null
if ($null -ne $settingCim) {
    $grace = $null
    if ($rdsh) {  # GetGracePeriodDays [S39]: meaningful on an RD Session Host only
        $answer = Invoke-CimMethod -InputObject $settingCim -MethodName GetGracePeriodDays
        if ($answer.ReturnValue -eq 0) { $grace = [int]$answer.DaysLeft }
    }
    $setting = @{ AllowTSConnections = $settingCim.AllowTSConnections; PolicySourceAllowTSConnections = $settingCim.PolicySourceAllowTSConnections
        LicensingType = $settingCim.LicensingType; TerminalServerMode = $settingCim.TerminalServerMode; GracePeriodDays = $grace }
}

# Win32_OperatingSystem / Win32_ComputerSystem (ms: cimwin32prov/win32-operatingsystem, win32-computersystem).
$os = Get-CimInstance -ClassName Win32_OperatingSystem
$computer = Get-CimInstance -ClassName Win32_ComputerSystem
# Win32_Service [S22] (ms: cimwin32prov/win32-service): state, start mode, pid, logon account.
$serviceCims = @(Get-CimInstance -ClassName Win32_Service -Filter (($ServiceNames | ForEach-Object { "Name='$_'" }) -join ' OR '))
$services = @(foreach ($name in $ServiceNames) {
        foreach ($service in $serviceCims) {
            if ($service.Name -eq $name) {
                @{ name = $service.Name; state = $service.State; start_mode = $service.StartMode; pid = [int]$service.ProcessId; account = $service.StartName }
            }
        }
    })

# Optional modules: NetTCPIP and NetSecurity exist from Windows Server 2012; WSMan: needs the WinRM service.
$listening = @{ error = 'Get-NetTCPConnection is not available (no NetTCPIP module)' }
if (Get-Command -Name Get-NetTCPConnection -ErrorAction SilentlyContinue) { $listening = Get-RdSockets $ports }
$firewall = @{ error = 'Get-NetFirewallRule is not available (no NetSecurity module)' }
if (Get-Command -Name Get-NetFirewallRule -ErrorAction SilentlyContinue) { $firewall = Get-RdFirewall $ports }
$winrm = @{ error = 'the WinRM service is not running' }
if ([string](Get-Service -Name WinRM).Status -eq 'Running') { $winrm = @(Get-RdWinRmListeners) }

# tspkg.dll FileVersion tells whether the CredSSP fix is installed [S7].
$tspkgPath = Join-Path $env:SystemRoot 'System32\tspkg.dll'
$tspkg = $null
if (Test-Path -LiteralPath $tspkgPath) {
    $info = (Get-Item -LiteralPath $tspkgPath).VersionInfo
    $tspkg = '{0}.{1}.{2}.{3}' -f $info.FileMajorPart, $info.FileMinorPart, $info.FileBuildPart, $info.FilePrivatePart
}

$machineKeys = @{ path = $MachineKeysPath; exists = (Test-Path -LiteralPath $MachineKeysPath -PathType Container); sddl = $null
    listener_key_file = Get-RdListenerKeyFile $machineGuid }
if ($machineKeys.exists) { $machineKeys.sddl = Get-RdSddl $MachineKeysPath }  # default SDDL per KB278381 [S5]

$groups = @(Get-RdLocalGroups)
$remoteDesktopUsers = @(foreach ($group in $groups) { if ($group.sid -eq 'S-1-5-32-555') { $group.members } })  # [S23]
$checked = @(foreach ($name in $Params.accounts) { Get-RdAccount ([string]$name) $groups })
$rights = Get-RdUserRights

$since = (Get-Date).AddDays(-[int]$Params.event_days)
$events = @(foreach ($query in $EventQueries) { Get-RdEvents $query $since ([int]$Params.event_sample_size) })

return @{
    schema = 'rdp.doctor/read_rdp_state/1'
    host_time_utc = ConvertTo-RdUtcText $now
    os = @{ caption = $os.Caption; version = $os.Version; build = [int]$os.BuildNumber; product_type = [int]$os.ProductType
        computer_name = $computer.Name; dns_host_name = $computer.DNSHostName; domain = $computer.Domain
        part_of_domain = [bool]$computer.PartOfDomain; machine_guid = $machineGuid; rdsh_installed = $rdsh }
    registry = $registry
    ts_general_setting = $general
    ts_setting = $setting
    services = $services
    listening = $listening
    certificates = @{ 'Remote Desktop' = @(Get-RdCertificates 'Remote Desktop'); 'My' = @(Get-RdCertificates 'My') }
    tspkg_version = $tspkg
    firewall = $firewall
    sessions = @(Get-RdSessions)
    machinekeys = $machineKeys
    winrm_listeners = $winrm
    accounts = @{ remote_desktop_users = $remoteDesktopUsers; rights = $rights; checked = $checked }
    events = $events
}
