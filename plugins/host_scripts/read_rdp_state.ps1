# read_rdp_state: everything RDP about this Windows host, read in one round trip (rdp.doctor).
# Raw values only, no decisions: the controller decides (docs/dev/contracts.md section 3, schema in
# read_rdp_state.schema.json). Windows PowerShell 5.1. [Sn] cites windows-rdp-facts.md; the other
# sources are Microsoft documents (learn.microsoft.com, abbreviated "ms:"), listed in docs/dev/powershell.md.
# One failing section never loses the read: each section (and each registry key, event query and account) is read
# through Invoke-RdSection, which turns a failure into {"error": {"type", "message"}} for that section alone.
param([Parameter(Mandatory = $true)] $Params)
Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$RdpTcpKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'  # PortNumber [S14]
$CryptographyKey = 'HKLM:\SOFTWARE\Microsoft\Cryptography'  # MachineGuid names the key files [S2]
$RdpFirewallGroup = '@FirewallAPI.dll,-28752'  # "Remote Desktop" rule group, locale-independent [S13]
$ListenerKeyContainer = 'TSSecKeySet1'  # the self-signed listener's key container; its file is f686aace..._<MachineGuid> [S2][S26]
$MachineKeysPath = Join-Path $env:ProgramData 'Microsoft\Crypto\RSA\MachineKeys'  # legacy CSP machine keys [S17]
$CngKeysPath = Join-Path $env:ProgramData 'Microsoft\Crypto\Keys'  # CNG machine keys [S17]
$ServiceNames = 'TermService', 'SessionEnv', 'UmRdpService', 'MpsSvc'  # [S21][S22]; MpsSvc = firewall (MSRD #45)
$UserRights = 'SeRemoteInteractiveLogonRight', 'SeDenyRemoteInteractiveLogonRight'  # [S23]
$SchannelKeyPath = 'SYSTEM\CurrentControlSet\Control\SecurityProviders\SCHANNEL'  # ms: tls/tls-registry-settings
$SchannelAlgorithmKinds = 'Ciphers', 'Hashes', 'KeyExchangeAlgorithms'  # MSRD #42
$LogonServiceNames = 'LSM', 'Netlogon', 'BFE', 'MpsSvc'  # MSRD #21 #45 [S21]
# SIDs in NETWORK SERVICE's token that a key file ACL can grant: NETWORK SERVICE, Everyone, Authenticated Users, Users, SERVICE.
$NetworkServiceSids = 'S-1-5-20', 'S-1-1-0', 'S-1-5-11', 'S-1-5-32-545', 'S-1-5-6'
$ReadDataMask = 2415919105  # 0x90000001 = GENERIC_READ | GENERIC_ALL | FILE_READ_DATA (ms: file-access-rights-constants)
# WTS_CONNECTSTATE_CLASS, in enum order (ms: wtsapi32/ne-wtsapi32-wts_connectstate_class).
$WtsStates = 'Active', 'Connected', 'ConnectQuery', 'Shadow', 'Disconnected', 'Idle', 'Listen', 'Reset', 'Down', 'Init'
# Events counted (MSRD #44 #57, msrd-coverage "checked by none"). ids @() = every id of the log, grouped by provider and id.
$EventQueries = @(
    @{ log = 'System'; provider = 'Schannel'; ids = @(36870, 36871, 36874, 36885, 36886, 36887, 36888) },  # TLS credential/key/cipher [S2][S30] MSRD #44
    @{ log = 'System'; provider = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'; ids = @(1056, 1057, 1058, 1028) },  # [S2][S34]
    @{ log = 'System'; provider = 'TermDD'; ids = @(50, 56) },  # RDP protocol errors (msrd-coverage "checked by none")
    @{ log = 'System'; provider = 'Tcpip'; ids = @(4227, 4231) },  # port exhaustion, MSRD #22 #65 (ms: tcp-ip-port-exhaustion-troubleshooting)
    @{ log = 'System'; provider = 'Microsoft-Windows-TerminalServices-Licensing'; ids = @() },  # MSRD #57
    @{ log = 'Microsoft-Windows-TerminalServices-Licensing/Admin'; provider = $null; ids = @() },  # MSRD #57
    @{ log = 'Microsoft-Windows-TerminalServices-Licensing/Operational'; provider = $null; ids = @() },  # MSRD #57
    @{ log = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager/Admin'; provider = $null; ids = @() },  # listener, licensing
    @{ log = 'Microsoft-Windows-TerminalServices-LocalSessionManager/Operational'; provider = $null; ids = @() },  # sessions
    # clients that reached the listener: RCM 261 received, 1149 authenticated; RdpCoreTS 131 TCP accepted, 140 bad password
    @{ log = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational'; provider = 'Microsoft-Windows-TerminalServices-RemoteConnectionManager'; ids = @(261, 1149) },
    @{ log = 'Microsoft-Windows-RemoteDesktopServices-RdpCoreTS/Operational'; provider = 'Microsoft-Windows-RemoteDesktopServices-RdpCoreTS'; ids = @(131, 140) }
)
$MessageLimit = 2000  # characters of an event message kept per sample
# Licensing set without Group Policy (rd_licensing). RCM holds the licensing certificates (MSRD #52, SDP RC_RDSx509Cert);
# the policy key's LicenseServers [S10] is asked for connectivity like the servers WMI lists.
$RcmKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Terminal Server\RCM'
$RcmX509Values = 'X509 Certificate', 'X509 Certificate ID', 'X509 Certificate2'
$PolicyKey = 'HKLM:\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services'  # [S10]
# Keys whose ACL decides whether SessionEnv (LocalSystem) can make and renew the self-signed certificate (MSRD #38): the
# Remote Desktop store [S2] and RCM.
$CertStoreAclKeys = [ordered]@{ 'Remote Desktop' = 'HKLM:\SOFTWARE\Microsoft\SystemCertificates\Remote Desktop'; RCM = $RcmKey }
# What a stopped service means for the section that needs it (Test-RdServiceRunning).
$StoppedEffects = @{
    MpsSvc = 'its ActiveStore cannot be read (the NetSecurity cmdlets would fail with CIM error 1753)'  # windows_exporter #2105
    WinRM = 'the WSMan: drive cannot be read'
}
# The Add-Type class is named for its version: a runspace that already compiled an older RdDoctor class (Add-Type cannot
# replace a type) gets this one next to it. Change the version with the C# below (a unit test compares both).
$NativeTypeName = 'RdDoctor.V2.Native'
# Win32 reads PowerShell has no cmdlet for. Sessions come from the WTS API, not from parsing quser/qwinsta (their
# columns, states and dates are localized); ms: wtsapi32/nf-wtsapi32-wtsenumeratesessionsw, nf-wtsapi32-wtsquerysessioninformationw,
# ns-wtsapi32-wtsinfow (WTSSessionInfo = 24). A certificate's key container is its CERT_KEY_PROV_INFO property (id 2), readable
# without opening the key; ms: wincrypt/nf-wincrypt-certgetcertificatecontextproperty, ns-wincrypt-crypt_key_prov_info.
# KeyFileHash names the key's file from its container without opening the key and without .NET 4.6 (RSACng): MD5 of the
# lower-case container name and its NUL, as four little-endian DWORDs in hex ("TSSecKeySet1" -> f686aace...eef4a4 [S2][S26]);
# managed MD5 (RFC 1321) because .NET's MD5 classes throw when the FIPS policy is on, as it is on some RDP hosts.
$NativeSource = @'
using System;
using System.Runtime.InteropServices;
namespace RdDoctor.V2 {
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
        static readonly uint[] Sines = {
            0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
            0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
            0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
            0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
            0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
            0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
            0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
            0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391 };
        static readonly int[] Shifts = { 7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21 };
        public static string KeyFileHash(string container) {
            byte[] text = System.Text.Encoding.ASCII.GetBytes(container.ToLowerInvariant() + "\0");
            int blocks = (text.Length + 8) / 64 + 1;
            byte[] data = new byte[blocks * 64];
            Array.Copy(text, data, text.Length);
            data[text.Length] = 0x80;
            long bits = (long)text.Length * 8;
            for (int i = 0; i < 8; i++) { data[data.Length - 8 + i] = (byte)(bits >> (8 * i)); }
            uint a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
            for (int block = 0; block < blocks; block++) {
                uint a = a0, b = b0, c = c0, d = d0;
                for (int i = 0; i < 64; i++) {
                    uint f; int g;
                    if (i < 16) { f = (b & c) | (~b & d); g = i; }
                    else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
                    else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
                    else { f = c ^ (b | ~d); g = (7 * i) % 16; }
                    uint sum = a + f + Sines[i] + BitConverter.ToUInt32(data, block * 64 + g * 4);
                    int s = Shifts[(i / 16) * 4 + i % 4];
                    a = d; d = c; c = b;
                    b = b + ((sum << s) | (sum >> (32 - s)));
                }
                a0 += a; b0 += b; c0 += c; d0 += d;
            }
            return a0.ToString("x8") + b0.ToString("x8") + c0.ToString("x8") + d0.ToString("x8");
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

function Get-RdErrorDetail($ErrorRecord) {
    # {type, message} of a caught error: the .NET exception under PowerShell's wrapper for a failed method or constructor
    # call (MethodInvocationException) and under reflection's (TargetInvocationException).
    $exception = $ErrorRecord.Exception
    while (($exception -is [Management.Automation.MethodInvocationException] -or $exception -is [Reflection.TargetInvocationException]) -and
        $null -ne $exception.InnerException) {
        $exception = $exception.InnerException
    }
    $message = [string]$exception.Message
    if (-not $message) { $message = $exception.GetType().FullName }
    return @{ type = $exception.GetType().FullName; message = $message }
}

function New-RdSectionError([string]$Type, [string]$Message) {
    # The section error form (schema $defs/section_error); ServiceNotRunning and ModuleNotAvailable when the script did not try.
    return @{ error = @{ type = $Type; message = $Message } }
}

function Invoke-RdSection([scriptblock]$Read) {
    # One section of the document: what $Read returns, or its section error when reading throws (CimException,
    # Win32Exception, UnauthorizedAccessException, ...). Arrays are returned whole (",$value": not unrolled).
    try { $value = & $Read } catch { return @{ error = (Get-RdErrorDetail $_) } }
    return , $value
}

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
    if (-not (Test-Path -LiteralPath $Path)) { return $null }
    $key = Get-Item -LiteralPath $Path  # a Microsoft.Win32.RegistryKey (ms: about_Registry_Provider)
    try {
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
    } finally { $key.Dispose() }
}

function Invoke-RdOptional([scriptblock]$Query) {
    # The CDXML cmdlets (NetTCPIP, NetSecurity) report "nothing matched" as an ObjectNotFound error: that is an empty answer.
    try { & $Query } catch { if ([string]$_.CategoryInfo.Category -ne 'ObjectNotFound') { throw } }
}

function Get-RdTerminalServicesCim([string]$ClassName, [string]$Filter) {
    # root\cimv2\TerminalServices [S6][S39]: missing on editions without an RDP server (MetadataError) -> $null. Any other
    # failure (a provider that does not load, TermService in a bad state: CimException) fails the section.
    $query = @{ Namespace = 'root\cimv2\TerminalServices'; ClassName = $ClassName }
    if ($Filter) { $query.Filter = $Filter }
    try { $found = @(Get-CimInstance @query) } catch { if ([string]$_.CategoryInfo.Category -ne 'MetadataError') { throw }; return $null }
    if ($found.Count -eq 0) { return $null }
    return $found[0]
}

function Test-RdServiceRunning([string]$Name, [string]$What) {
    # $null when the service runs, else the section error that says so (ms: get-service): the section is not read.
    $service = Get-Service -Name $Name -ErrorAction SilentlyContinue
    $state = 'not installed'
    if ($null -ne $service) { $state = [string]$service.Status }
    if ($state -eq 'Running') { return $null }
    return (New-RdSectionError 'ServiceNotRunning' ("the {0} service ({1}) is {2}: {3}" -f $What, $Name, $state, $StoppedEffects[$Name]))
}

function Get-RdProcessName([int]$Id) {
    # A process may exit between the socket read and this one: no name then (ms: get-process).
    $process = Get-Process -Id $Id -ErrorAction SilentlyContinue
    if ($null -eq $process) { return $null }
    try { return $process.ProcessName } finally { $process.Dispose() }
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

function Test-RdFileOpens([string]$Path) {
    # Can this administrator open the file for reading? Denied (UnauthorizedAccessException) or held open without sharing
    # (IOException: a sharing violation) = $false (ms: system.io.file.openread).
    try { [IO.File]::OpenRead($Path).Dispose(); return $true }
    catch [UnauthorizedAccessException] { return $false }
    catch [IO.IOException] { return $false }
}

function Get-RdKeyFileName([string]$Container, [string]$MachineGuid) {
    # <KeyFileHash(container)>_<MachineGuid>: the name legacy CSPs give a machine key's file [S2][S26].
    return $Native::KeyFileHash($Container) + '_' + $MachineGuid
}

function Add-RdKeyFile([hashtable]$Entry, [string]$MachineGuid) {
    # The key file computed from the container, looked up in MachineKeys then Keys, never by opening the key: opening
    # needs .NET 4.6 (RSACertificateExtensions), fails on ECDSA, HSM and strongly protected keys, and only says what the
    # administrator can do. NETWORK SERVICE's access comes from the file's ACL; the administrator's from opening the file.
    $name = Get-RdKeyFileName $Entry.key_container $MachineGuid
    foreach ($folder in $MachineKeysPath, $CngKeysPath) {
        $file = Join-Path $folder $name
        if (-not (Test-Path -LiteralPath $file -PathType Leaf)) { continue }
        $Entry.key_file = $name
        try { $Entry.key_readable_by_network_service = Test-RdNetworkServiceRead (Get-Acl -LiteralPath $file) }
        catch [UnauthorizedAccessException] { $Entry.key_readable_by_network_service = $null }
        $Entry.key_readable_by_admin = Test-RdFileOpens $file
        return
    }
    $Entry.key_error = 'no key file {0} in MachineKeys or Keys' -f $name  # the key the certificate names is gone
}

function Get-RdCertificates([string]$Store, [string]$MachineGuid) {
    # Cert:\LocalMachine\Remote Desktop (self-signed [S2]) and \My (custom [S1]) (ms: about_Certificate_Provider).
    $path = 'Cert:\LocalMachine\' + $Store
    if (-not (Test-Path -LiteralPath $path)) { return }
    foreach ($cert in @(Get-ChildItem -LiteralPath $path)) {
        try {
            $entry = @{ thumbprint = $cert.Thumbprint; der = [Convert]::ToBase64String($cert.RawData); has_private_key = $cert.HasPrivateKey
                key_container = $null; key_file = $null; key_readable_by_network_service = $null; key_readable_by_admin = $null; key_error = $null }
            if ($cert.HasPrivateKey) {
                $entry.key_container = $Native::KeyContainer($cert.Handle)  # e.g. TSSecKeySet1 [S2], even if the key is gone
                if ($null -eq $entry.key_container) { $entry.key_error = 'the certificate has no key provider information (CERT_KEY_PROV_INFO_PROP_ID)' }
                else { Add-RdKeyFile $entry $MachineGuid }
            }
            $entry
        } finally { $cert.Reset() }  # X509Certificate.Dispose needs .NET 4.6; Reset frees the handle on 4.5
    }
}

function Get-RdListenerKeyFile([string]$MachineGuid) {
    # The self-signed listener key file in MachineKeys [S2][S26]; readable = this administrator can open it for reading.
    $name = Get-RdKeyFileName $ListenerKeyContainer $MachineGuid
    $path = Join-Path $MachineKeysPath $name
    $file = @{ name = $name; exists = $false; sddl = $null; size = $null; readable = $null }
    if (Test-Path -LiteralPath $path -PathType Leaf) {
        $file.exists = $true
        $file.sddl = Get-RdSddl $path
        $file.size = [long](Get-Item -LiteralPath $path -Force).Length
        $file.readable = Test-RdFileOpens $path
    }
    return $file
}

function Get-RdSessions {
    # WTS API (see $NativeSource). Includes session 0 "Services", the console and listeners (state Listen), as Windows lists them.
    foreach ($s in $Native::Sessions()) {
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

function Test-RdSvchost([string]$Program) {
    # An application filter that admits TermService, which runs in svchost.exe [S22]: Any, or svchost.exe itself.
    return ($Program -eq 'Any' -or $Program -like '*\svchost.exe' -or $Program -eq 'svchost.exe')
}

function Test-RdRulePort($Rule, [string[]]$LocalPorts, [string]$Protocol, [string]$Program, [int[]]$Ports) {
    # Inbound rules that name a read port (single or range); inbound rules on Any port that can carry RDP (TCP, UDP or Any)
    # and either block or may admit TermService: a broad Allow rule opens the port as surely as a Block rule closes it.
    if ([string]$Rule.Direction -ne 'Inbound') { return $false }
    foreach ($spec in $LocalPorts) {
        if ($spec -eq 'Any') {
            if (@('TCP', 'UDP', 'Any') -notcontains $Protocol) { continue }
            if ([string]$Rule.Action -eq 'Block' -or (Test-RdSvchost $Program)) { return $true }
            continue
        }
        if ($spec -notmatch '^(\d+)(-(\d+))?$') { continue }
        $low = [int]$Matches[1]; $high = $low
        if ($Matches[3]) { $high = [int]$Matches[3] }
        foreach ($port in $Ports) { if ($port -ge $low -and $port -le $high) { return $true } }
    }
    return $false
}

function Get-RdFilterMap([scriptblock]$Query) {
    # InstanceID -> firewall filter: each filter shares its rule's InstanceID (one of each kind per rule,
    # ms: netsecurity/get-netfirewallportfilter, get-netfirewallapplicationfilter, get-netfirewallservicefilter, get-netfirewalladdressfilter).
    $map = @{}
    foreach ($filter in @(Invoke-RdOptional $Query)) { $map[$filter.InstanceID] = $filter }
    return $map
}

function Get-RdFilterValue($Map, [string]$Id, [string]$Property) {
    # One property of a rule's filter as a string list ("Any" when the rule has no such filter).
    $filter = $Map[$Id]
    if ($null -eq $filter) { return , @('Any') }
    return , (ConvertTo-RdTextList $filter.$Property)
}

function ConvertTo-RdTextList($Value) {
    # A filter value (one string or several) as a string list; nothing = Any.
    $list = @(foreach ($item in @($Value)) { if ($null -ne $item -and [string]$item -ne '') { [string]$item } })
    if ($list.Count -eq 0) { return , @('Any') }
    return , $list
}

function Get-RdFirewall([int[]]$Ports) {
    # ms: netsecurity/get-netfirewallrule, get-netfirewallprofile and the four filters; ActiveStore = what is in force [S13].
    # The ActiveStore is served by the firewall service: not running -> a section error before any NetSecurity call (a CIM
    # error 1753 otherwise, windows_exporter #2105). Application, service and address filters say whom a rule admits
    # (controller: host_facts._admits_termservice): a rule for another program or remote address does not open the port.
    $stopped = Test-RdServiceRunning 'MpsSvc' 'Windows Defender Firewall'
    if ($null -ne $stopped) { return $stopped }
    $portFilters = Get-RdFilterMap { Get-NetFirewallPortFilter -All -PolicyStore ActiveStore }
    $applicationFilters = Get-RdFilterMap { Get-NetFirewallApplicationFilter -All -PolicyStore ActiveStore }
    $serviceFilters = Get-RdFilterMap { Get-NetFirewallServiceFilter -All -PolicyStore ActiveStore }
    $addressFilters = Get-RdFilterMap { Get-NetFirewallAddressFilter -All -PolicyStore ActiveStore }
    $rules = @(foreach ($rule in @(Invoke-RdOptional { Get-NetFirewallRule -All -PolicyStore ActiveStore })) {
        $id = [string]$rule.InstanceID
        $localPorts = Get-RdFilterValue $portFilters $id 'LocalPort'
        $protocol = (Get-RdFilterValue $portFilters $id 'Protocol')[0]
        $program = (Get-RdFilterValue $applicationFilters $id 'Program')[0]
        if ($rule.Group -ne $RdpFirewallGroup -and -not (Test-RdRulePort $rule $localPorts $protocol $program $Ports)) { continue }
        @{ name = $rule.Name; display_name = $rule.DisplayName; group = $rule.Group; enabled = ([string]$rule.Enabled -eq 'True')
            direction = [string]$rule.Direction; action = [string]$rule.Action; profiles = @(([string]$rule.Profile) -split ',\s*')
            protocol = $protocol; local_ports = $localPorts; policy_store_source = [string]$rule.PolicyStoreSource
            program = $program; service = (Get-RdFilterValue $serviceFilters $id 'Service')[0]
            remote_addresses = (Get-RdFilterValue $addressFilters $id 'RemoteAddress') }
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
    # members whose SID no longer resolves (ms: win32-group; adsi winnt provider). Direct members only: a member that is a
    # domain group is listed as that group (its own members live on a domain controller).
    foreach ($group in @(Get-CimInstance -ClassName Win32_Group -Filter 'LocalAccount=True')) {
        $adsi = [ADSI]('WinNT://' + $env:COMPUTERNAME + '/' + $group.Name + ',group')
        try {
            $members = @(foreach ($member in @($adsi.psbase.Invoke('Members'))) {
                $sidBytes = [byte[]]$member.GetType().InvokeMember('objectSid', 'GetProperty', $null, $member, $null)
                $path = [string]$member.GetType().InvokeMember('ADsPath', 'GetProperty', $null, $member, $null)
                $parts = @(($path -replace '^WinNT://', '') -split '/')
                $name = $null  # WinNT://S-1-5-21-... = a SID that does not resolve
                if ($parts.Count -ge 2) { $name = $parts[-2] + '\' + $parts[-1] }
                @{ sid = (New-Object Security.Principal.SecurityIdentifier($sidBytes, 0)).Value; name = $name }
                })
        } finally { $adsi.Dispose() }
        @{ sid = [string]$group.SID; members = $members }
    }
}

function Test-RdLocalName([string]$Name) {
    # "name", ".\name" and "COMPUTER\name" are local accounts; "DOMAIN\name" and user@domain are not.
    if ($Name.Contains('@')) { return $false }
    if (-not $Name.Contains('\')) { return $true }
    $domain = $Name.Split('\')[0]
    return ($domain -eq '.' -or $domain -eq $env:COMPUTERNAME)
}

function Get-RdAccount([string]$Name, $Groups) {
    # A local account from the SAM: Win32_UserAccount LocalAccount=True [S32] gives SID, Disabled, Lockout. Any other name
    # is resolved by NTAccount.Translate with the machine's own domain connection: no second hop from this WinRM logon
    # (a Win32_UserAccount query for a domain would be one), so Disabled and Lockout stay unknown, and membership through
    # domain groups is not evaluated (groups_complete false: the controller never concludes "cannot log on" from it).
    # A failing lookup (broken trust: SystemException) is the account's error, not the script's.
    $entry = @{ name = $Name; exists = $false; sid = $null; disabled = $null; locked_out = $null; groups = @(); groups_complete = $true
        error = $null }
    if (Test-RdLocalName $Name) {
        $short = $Name.Split('\')[-1]
        $found = @(Get-CimInstance -ClassName Win32_UserAccount -Filter ("LocalAccount=True AND Name='" + (ConvertTo-RdWql $short) + "'"))
        if ($found.Count -eq 0) { return $entry }
        $entry.exists = $true; $entry.sid = [string]$found[0].SID
        $entry.disabled = [bool]$found[0].Disabled; $entry.locked_out = [bool]$found[0].Lockout
    } else {
        $entry.groups_complete = $false
        try { $entry.sid = (New-Object Security.Principal.NTAccount($Name)).Translate([Security.Principal.SecurityIdentifier]).Value }
        catch {
            $detail = Get-RdErrorDetail $_
            if ($detail.type -eq 'System.Security.Principal.IdentityNotMappedException') { return $entry }  # no such account
            $entry.exists = $null; $entry.error = $detail; return $entry
        }
        $entry.exists = $true
    }
    $sid = $entry.sid
    $entry.groups = @(foreach ($group in $Groups) { if (@($group.members | Where-Object { $_.sid -eq $sid }).Count -gt 0) { $group.sid } })
    return $entry
}

function ConvertTo-RdSid([string]$Entry) {
    # secedit writes "*S-1-..." for accounts with a SID and a bare name otherwise; a name that does not resolve (or whose
    # domain cannot be asked: a broken trust throws SystemException) stays a name.
    if ($Entry.StartsWith('*')) { return $Entry.Substring(1) }
    try { return (New-Object Security.Principal.NTAccount($Entry)).Translate([Security.Principal.SecurityIdentifier]).Value }
    catch [SystemException] { return $Entry }
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

function Get-RdEventXPath($Query, [datetime]$Since) {
    # Structured XML query of the System element only: no provider metadata is opened to filter (ms: eventlog/xpath,
    # "Consuming events"), unlike Get-WinEvent -FilterHashtable -ProviderName.
    $conditions = @("TimeCreated[@SystemTime>='" + $Since.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'.000Z'", [Globalization.CultureInfo]::InvariantCulture) + "']")
    if ($null -ne $Query.provider) { $conditions += "Provider[@Name='" + $Query.provider + "']" }
    if ($Query.ids.Count -gt 0) { $conditions += '(' + ((@(foreach ($id in $Query.ids) { 'EventID=' + $id })) -join ' or ') + ')' }
    return '*[System[' + ($conditions -join ' and ') + ']]'
}

function New-RdEventGroup([string]$Log, [string]$Provider, [int]$Id) {
    return @{ log = $Log; provider = $Provider; id = $Id; count = 0; last = $null; samples = @(); error = $null }
}

function Get-RdEvents($Query, [datetime]$Since, [int]$SampleSize) {
    # One query counted with EventLogReader, newest first, without formatting (the cost of Get-WinEvent is formatting every
    # message: PowerShell #12642, dotnet/runtime #34568); only the first $SampleSize records of a group are formatted, each
    # on its own: a message that cannot be formatted is a null message and the group's error, the count stays right.
    # A missing log counts 0; any other failure of the query is this query's error item, not the script's
    # (ms: system.diagnostics.eventing.reader.eventlogreader, eventlogquery, eventrecord.formatdescription).
    $groups = [ordered]@{}
    foreach ($id in $Query.ids) { $groups[[string]$id] = New-RdEventGroup $Query.log $Query.provider $id }
    $reader = $null
    try {
        $xpath = Get-RdEventXPath $Query $Since
        $eventQuery = [Diagnostics.Eventing.Reader.EventLogQuery]::new($Query.log, [Diagnostics.Eventing.Reader.PathType]::LogName, $xpath)
        $eventQuery.ReverseDirection = $true
        $reader = [Diagnostics.Eventing.Reader.EventLogReader]::new($eventQuery)
        for ($record = $reader.ReadEvent(); $null -ne $record; $record = $reader.ReadEvent()) {
            try {
                $key = [string]$record.Id
                if ($Query.ids.Count -eq 0) { $key = $record.ProviderName + '|' + $record.Id }
                if (-not $groups.Contains($key)) { $groups[$key] = New-RdEventGroup $Query.log $record.ProviderName $record.Id }
                $entry = $groups[$key]
                $entry['count'] += 1  # index syntax: a hashtable's own Count property must not be meant
                if ($null -eq $entry['last']) { $entry['last'] = ConvertTo-RdUtcText $record.TimeCreated }
                if ($entry['samples'].Count -lt $SampleSize) {
                    $message = $null
                    try { $message = $record.FormatDescription() }  # $null when the provider has no message for it
                    catch { if ($null -eq $entry['error']) { $entry['error'] = Get-RdErrorDetail $_ } }
                    if ($null -ne $message -and $message.Length -gt $MessageLimit) { $message = $message.Substring(0, $MessageLimit) }
                    $entry['samples'] += @{ time = ConvertTo-RdUtcText $record.TimeCreated; message = $message }
                }
            } finally { $record.Dispose() }
        }
    } catch {
        $detail = Get-RdErrorDetail $_
        if ($detail.type -ne 'System.Diagnostics.Eventing.Reader.EventLogNotFoundException') {
            return @{ log = $Query.log; provider = $Query.provider; ids = @($Query.ids); error = $detail }
        }  # else the log does not exist on this host (a role not installed): nothing logged
    } finally { if ($null -ne $reader) { $reader.Dispose() } }
    $groups.Values
}

function Get-RdLicenseServerStatus($Cim, [string]$Server) {
    # GetTStoLSConnectivityStatus for one license server (ms: termserv/gettstolsconnectivitystatus-win32-terminalservicesetting);
    # a failing query is this server's error, the other servers are still asked; an unreachable server costs at most 30 s.
    try {
        $answer = Invoke-CimMethod -InputObject $Cim -MethodName GetTStoLSConnectivityStatus -Arguments @{ ServerName = $Server } -OperationTimeoutSec 30
        if ($answer.ReturnValue -ne 0) {
            return @{ server = $Server; status = $null
                error = @{ type = 'WmiReturnValue'; message = ('GetTStoLSConnectivityStatus returned {0}' -f $answer.ReturnValue) } }
        }
        return @{ server = $Server; status = [int]$answer.TStoLSConnectivityStatus; error = $null }
    } catch { return @{ server = $Server; status = $null; error = (Get-RdErrorDetail $_) } }
}

function Get-RdRcmCertificateSizes {
    # The RD Session Host's licensing certificates under TS\RCM (MSRD #52): byte counts only, the values stay on the host.
    $sizes = @{}
    foreach ($name in $RcmX509Values) { $sizes[$name] = $null }
    if (-not (Test-Path -LiteralPath $RcmKey)) { return $sizes }
    $key = Get-Item -LiteralPath $RcmKey  # a Microsoft.Win32.RegistryKey (ms: about_Registry_Provider)
    try {
        foreach ($name in $RcmX509Values) {
            $value = $key.GetValue($name, $null)
            if ($null -ne $value) { $sizes[$name] = @($value).Count }
        }
    } finally { $key.Dispose() }
    return $sizes
}

function Get-RdNative {
    # The Add-Type class, or why it could not be compiled (the sections that need it fail, the others are read).
    if ($null -eq $Native) { throw ('the {0} class could not be compiled: {1}' -f $NativeTypeName, $NativeError.message) }
    return $Native
}

# ---- parameters: read (and checked) first, outside any section: a wrong parameter is the controller's bug ----
$portHint = $Params.port_hint
$registryKeys = @(foreach ($path in $Params.registry_keys) { [string]$path })
foreach ($path in $registryKeys) { if ($path -notlike 'HKLM:\*') { throw "registry_keys holds HKLM:\ paths only, not '$path'" } }
$accountNames = @(foreach ($name in $Params.accounts) { [string]$name })
$eventDays = [int]$Params.event_days
$sampleSize = [int]$Params.event_sample_size

# ---- read ----
$now = [DateTime]::UtcNow
$Native = $NativeTypeName -as [type]
$NativeError = $null
if ($null -eq $Native) {
    try { Add-Type -TypeDefinition $NativeSource; $Native = $NativeTypeName -as [type] }  # ms: add-type
    catch { $NativeError = Get-RdErrorDetail $_ }  # e.g. Constrained Language mode (docs/dev/powershell.md)
}
$read = @{}  # what one section hands to another (each section runs in its own scope)

$cryptography = Invoke-RdSection { Read-RdRegistryKey $CryptographyKey }
$machineGuid = $null
if ($null -ne $cryptography -and $cryptography.ContainsKey('MachineGuid')) { $machineGuid = [string]$cryptography.MachineGuid }

# Effective port: RDP-Tcp PortNumber, else 3389 [S14]; port_hint (the port the controller connects to) is read as well.
$rdpTcp = Invoke-RdSection { Read-RdRegistryKey $RdpTcpKey }
$port = 3389
if ($null -ne $rdpTcp -and $rdpTcp.ContainsKey('PortNumber')) { $port = [int]$rdpTcp.PortNumber }
$ports = @($port)
if ($null -ne $portHint -and [int]$portHint -ne $port) { $ports += [int]$portHint }

$registry = @{}
foreach ($path in $registryKeys) { $registry[$path] = Invoke-RdSection { Read-RdRegistryKey $path } }

# Win32_TSGeneralSetting (RDP-Tcp) [S6] and Win32_TerminalServiceSetting (ms: termserv/win32-terminalservicesetting).
$general = Invoke-RdSection {
    $cim = Get-RdTerminalServicesCim 'Win32_TSGeneralSetting' "TerminalName='RDP-Tcp'"
    if ($null -eq $cim) { return $null }
    @{ SSLCertificateSHA1Hash = $cim.SSLCertificateSHA1Hash; SSLCertificateSHA1HashType = $cim.SSLCertificateSHA1HashType
        SecurityLayer = $cim.SecurityLayer; UserAuthenticationRequired = $cim.UserAuthenticationRequired
        MinEncryptionLevel = $cim.MinEncryptionLevel; PolicySourceSecurityLayer = $cim.PolicySourceSecurityLayer
        PolicySourceUserAuthenticationRequired = $cim.PolicySourceUserAuthenticationRequired
        PolicySourceMinEncryptionLevel = $cim.PolicySourceMinEncryptionLevel }
}
# RDSH role = TerminalServerMode 1 (not Get-WindowsFeature: it loads ServerManager and walks the feature store).
$read.rdsh = $null
$setting = Invoke-RdSection {
    $cim = Get-RdTerminalServicesCim 'Win32_TerminalServiceSetting' $null
    if ($null -eq $cim) { return $null }
    $read.rdsh = ([int]$cim.TerminalServerMode -eq 1)
    $grace = $null
    if ($read.rdsh) {  # GetGracePeriodDays [S39]: meaningful on an RD Session Host only; its own failure is its own error
        $grace = Invoke-RdSection {
            $answer = Invoke-CimMethod -InputObject $cim -MethodName GetGracePeriodDays
            if ($answer.ReturnValue -eq 0) { [int]$answer.DaysLeft } else { $null }
        }
    }
    @{ AllowTSConnections = $cim.AllowTSConnections; PolicySourceAllowTSConnections = $cim.PolicySourceAllowTSConnections
        LicensingType = $cim.LicensingType; TerminalServerMode = $cim.TerminalServerMode; GracePeriodDays = $grace }
}

# ---- issue 12, part A: licensing set without Group Policy (MSRD #51-#53) ----
# Server Manager, Set-RDLicenseConfiguration and WMI name license servers in SpecifiedLicenseServers, which
# GetSpecifiedLicenseServerList returns (ms: termserv/getspecifiedlicenseserverlist-win32-terminalservicesetting); each server
# it names, and each of the policy's LicenseServers, is asked for its connectivity. Read on an RD Session Host only (the
# methods are about its licensing); each part fails alone.
$rdLicensing = Invoke-RdSection {
    if (-not $read.rdsh) { return $null }
    $cim = Get-RdTerminalServicesCim 'Win32_TerminalServiceSetting' $null
    if ($null -eq $cim) { return $null }
    $specified = Invoke-RdSection {
        $answer = Invoke-CimMethod -InputObject $cim -MethodName GetSpecifiedLicenseServerList
        if ($answer.ReturnValue -ne 0) { throw ('GetSpecifiedLicenseServerList returned {0}' -f $answer.ReturnValue) }
        , @(foreach ($name in @($answer.SpecifiedLSList)) { if ($name) { [string]$name } })
    }
    $connectivity = Invoke-RdSection {
        $servers = @()
        if ($specified -is [array]) { $servers += $specified }
        $policy = Read-RdRegistryKey $PolicyKey
        if ($null -ne $policy -and $policy.ContainsKey('LicenseServers')) {
            $policyServers = [string]$policy.LicenseServers -split '[,; ]'  # the -split operator: same on every .NET
            foreach ($name in $policyServers) { if ($name -and $servers -notcontains $name) { $servers += $name } }
        }
        , @(foreach ($server in $servers) { Get-RdLicenseServerStatus $cim $server })
    }
    $x509 = Invoke-RdSection { Get-RdRcmCertificateSizes }
    @{ specified_license_servers = $specified; connectivity = $connectivity; x509_certificates = $x509 }
}

# SDDL of the Remote Desktop store's and RCM's registry keys (ms: get-acl); null for a key that does not exist or whose ACL
# the administrator may not read. Azure's certificate repair removes Deny entries for SYSTEM there (MSRD #38).
$certStoreAcls = Invoke-RdSection {
    $acls = @{}
    foreach ($name in $CertStoreAclKeys.Keys) {
        $path = $CertStoreAclKeys[$name]
        $acls[$name] = $null
        if (Test-Path -LiteralPath $path) { $acls[$name] = Get-RdSddl $path }
    }
    $acls
}

# The dynamic (ephemeral) TCP port range of each TCP setting (ms: nettcpip/get-nettcpsetting; default 16384 ports from 49152,
# ms: troubleshoot tcp-ip-port-exhaustion-troubleshooting): a narrowed range runs out first (MSRD #22).
$ephemeralPorts = Invoke-RdSection {
    if (-not (Get-Command -Name Get-NetTCPSetting -ErrorAction SilentlyContinue)) {
        return (New-RdSectionError 'ModuleNotAvailable' 'Get-NetTCPSetting is not available (no NetTCPIP module)')
    }
    , @(foreach ($tcp in @(Get-NetTCPSetting)) {
            if ($null -ne $tcp.DynamicPortRangeNumberOfPorts) {
                @{ setting = [string]$tcp.SettingName; start = [int]$tcp.DynamicPortRangeStartPort
                    count = [int]$tcp.DynamicPortRangeNumberOfPorts }
            }
        })
}

# Win32_OperatingSystem / Win32_ComputerSystem (ms: cimwin32prov/win32-operatingsystem, win32-computersystem).
$os = Invoke-RdSection {
    $system = Get-CimInstance -ClassName Win32_OperatingSystem
    $computer = Get-CimInstance -ClassName Win32_ComputerSystem
    @{ caption = $system.Caption; version = $system.Version; build = [int]$system.BuildNumber; product_type = [int]$system.ProductType
        computer_name = $computer.Name; dns_host_name = $computer.DNSHostName; domain = $computer.Domain
        part_of_domain = [bool]$computer.PartOfDomain; machine_guid = $machineGuid; rdsh_installed = $read.rdsh
        last_boot_utc = (ConvertTo-RdUtcText $system.LastBootUpTime) }
}

# Win32_Service [S22] (ms: cimwin32prov/win32-service): state, start mode, pid, logon account.
$services = Invoke-RdSection {
    $found = @(Get-CimInstance -ClassName Win32_Service -Filter (($ServiceNames | ForEach-Object { "Name='$_'" }) -join ' OR '))
    , @(foreach ($name in $ServiceNames) {
            foreach ($service in $found) {
                if ($service.Name -eq $name) {
                    @{ name = $service.Name; state = $service.State; start_mode = $service.StartMode; pid = [int]$service.ProcessId
                        account = $service.StartName }
                }
            }
        })
}

# Optional modules: NetTCPIP and NetSecurity exist from Windows Server 2012; WSMan: needs the WinRM service.
$listening = Invoke-RdSection {
    if (-not (Get-Command -Name Get-NetTCPConnection -ErrorAction SilentlyContinue)) {
        return (New-RdSectionError 'ModuleNotAvailable' 'Get-NetTCPConnection is not available (no NetTCPIP module)')
    }
    Get-RdSockets $ports
}
$firewall = Invoke-RdSection {
    if (-not (Get-Command -Name Get-NetFirewallRule -ErrorAction SilentlyContinue)) {
        return (New-RdSectionError 'ModuleNotAvailable' 'Get-NetFirewallRule is not available (no NetSecurity module)')
    }
    Get-RdFirewall $ports
}
$winrm = Invoke-RdSection {
    $stopped = Test-RdServiceRunning 'WinRM' 'Windows Remote Management'
    if ($null -ne $stopped) { return $stopped }
    , @(Get-RdWinRmListeners)
}

$certificates = Invoke-RdSection {
    [void](Get-RdNative)
    @{ 'Remote Desktop' = @(Get-RdCertificates 'Remote Desktop' $machineGuid); 'My' = @(Get-RdCertificates 'My' $machineGuid) }
}

# tspkg.dll FileVersion tells whether the CredSSP fix is installed [S7].
$tspkg = Invoke-RdSection {
    $path = Join-Path $env:SystemRoot 'System32\tspkg.dll'
    if (-not (Test-Path -LiteralPath $path)) { return $null }
    $info = (Get-Item -LiteralPath $path).VersionInfo
    '{0}.{1}.{2}.{3}' -f $info.FileMajorPart, $info.FileMinorPart, $info.FileBuildPart, $info.FilePrivatePart
}

# ---- issue 12 part B: TLS algorithms, the listener's ACL, what a logon needs (secure channel, services) ----
# SCHANNEL Ciphers / Hashes / KeyExchangeAlgorithms (MSRD #42): subkey names hold '/' ("AES 128/128"), which the registry
# provider takes for a path separator, so they are opened with Microsoft.Win32.RegistryKey (ms: tls/tls-registry-settings,
# microsoft.win32.registrykey.opensubkey). Kind -> algorithm -> its values; a kind without a key is null.
$schannelAlgorithms = Invoke-RdSection {
    $found = @{}
    foreach ($kind in $SchannelAlgorithmKinds) {
        $found[$kind] = $null
        $root = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($SchannelKeyPath + '\' + $kind)
        if ($null -eq $root) { continue }
        try {
            $algorithms = @{}
            foreach ($name in $root.GetSubKeyNames()) {
                $sub = $root.OpenSubKey($name)
                if ($null -eq $sub) { continue }  # deleted since GetSubKeyNames
                try {
                    $values = @{}
                    foreach ($valueName in $sub.GetValueNames()) {
                        if ($valueName -eq '') { continue }
                        $raw = $sub.GetValue($valueName)
                        if ($raw -is [int]) { $raw = [BitConverter]::ToUInt32([BitConverter]::GetBytes($raw), 0) }  # DWORD unsigned
                        $values[$valueName] = $raw
                    }
                    $algorithms[$name] = $values
                } finally { $sub.Dispose() }
            }
            $found[$kind] = $algorithms
        } finally { $root.Dispose() }
    }
    $found
}
# The RDP-Tcp listener's own ACL: Win32_TSAccount (ms: termserv/win32-tsaccount), MSRD #31. Group SIDs are enough to judge it.
$listenerAcl = Invoke-RdSection {
    $cim = Get-RdTerminalServicesCim 'Win32_TSGeneralSetting' "TerminalName='RDP-Tcp'"
    if ($null -eq $cim) { return $null }  # no RDP-Tcp on this edition: nothing to read
    , @(foreach ($entry in @(Get-CimInstance -Namespace 'root\cimv2\TerminalServices' -ClassName Win32_TSAccount -Filter "TerminalName='RDP-Tcp'")) {
            @{ sid = [string]$entry.SID; account = [string]$entry.AccountName
                allowed = [long]$entry.PermissionsAllowed; denied = [long]$entry.PermissionsDenied }
        })
}
# The domain secure channel (MSRD #32): Test-ComputerSecureChannel (ms: test-computersecurechannel) on a domain member only
# (it throws on a workgroup computer). A broken trust fails NLA for every domain account.
$secureChannel = Invoke-RdSection {
    $computer = Get-CimInstance -ClassName Win32_ComputerSystem  # ms: cimwin32prov/win32-computersystem
    if (-not [bool]$computer.PartOfDomain) { return @{ checked = $false; ok = $null; domain = [string]$computer.Domain } }
    @{ checked = $true; ok = [bool](Test-ComputerSecureChannel); domain = [string]$computer.Domain }
}
# Services a logon needs besides the RDS ones (MSRD #21 #45): Win32_Service [S21] (ms: cimwin32prov/win32-service).
$logonServices = Invoke-RdSection {
    $found = @(Get-CimInstance -ClassName Win32_Service -Filter (($LogonServiceNames | ForEach-Object { "Name='$_'" }) -join ' OR '))
    , @(foreach ($service in $found) {
            @{ name = [string]$service.Name; state = [string]$service.State; start_mode = [string]$service.StartMode }
        })
}

$sessions = Invoke-RdSection { [void](Get-RdNative); , @(Get-RdSessions) }

$machineKeys = Invoke-RdSection {
    [void](Get-RdNative)
    $exists = Test-Path -LiteralPath $MachineKeysPath -PathType Container
    $sddl = $null
    if ($exists) { $sddl = Get-RdSddl $MachineKeysPath }  # default SDDL per KB278381 [S5]
    @{ path = $MachineKeysPath; exists = $exists; sddl = $sddl; listener_key_file = Get-RdListenerKeyFile $machineGuid }
}

$accounts = Invoke-RdSection {
    $groups = @(Get-RdLocalGroups)
    $remoteDesktopUsers = @(foreach ($group in $groups) { if ($group.sid -eq 'S-1-5-32-555') { $group.members } })  # [S23]
    $checked = @(foreach ($name in $accountNames) { Get-RdAccount $name $groups })
    @{ remote_desktop_users = $remoteDesktopUsers; rights = Get-RdUserRights; checked = $checked }
}

$events = Invoke-RdSection {
    $since = (Get-Date).AddDays(-$eventDays)
    , @(foreach ($query in $EventQueries) { Get-RdEvents $query $since $sampleSize })
}

return @{
    schema = 'rdp.doctor/read_rdp_state/1'
    host_time_utc = ConvertTo-RdUtcText $now
    os = $os
    registry = $registry
    ts_general_setting = $general
    ts_setting = $setting
    rd_licensing = $rdLicensing
    cert_store_acls = $certStoreAcls
    ephemeral_ports = $ephemeralPorts
    services = $services
    listening = $listening
    certificates = $certificates
    tspkg_version = $tspkg
    schannel_algorithms = $schannelAlgorithms
    listener_acl = $listenerAcl
    secure_channel = $secureChannel
    logon_services = $logonServices
    firewall = $firewall
    sessions = $sessions
    machinekeys = $machineKeys
    winrm_listeners = $winrm
    accounts = $accounts
    events = $events
}
