# apply_rdp_changes: apply an explicit, ordered list of primitive operations in one round trip (rdp.doctor).
# The controller decides (module_utils/planners), this script only applies: it checks EVERY operation's `expect`
# against the host before writing anything (drift -> nothing written), applies in order keeping each previous state,
# undoes the applied ones in reverse when one fails, and re-reads every target so the result verifies itself.
# Contract: docs/dev/contracts.md section 10a, kinds in plugins/module_utils/remediation.py, schema in
# apply_rdp_changes.schema.json. Windows PowerShell 5.1. [Sn] cites windows-rdp-facts.md; "ms:" = learn.microsoft.com.
param([Parameter(Mandatory = $true)] $Params)
Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'

$SchemaId = 'rdp.doctor/apply_rdp_changes/1'
$OwnedRulePrefix = 'rdp.doctor-'  # the only firewall rules this script creates or deletes
$StateDir = Join-Path $env:ProgramData 'rdp.doctor'  # backups (file_remove) and revert tasks (revert_task)
$RevertDir = Join-Path $StateDir 'revert'
$TaskPath = '\rdp.doctor\'  # scheduled task folder of the revert tasks (ms: scheduledtasks/register-scheduledtask)
$RdpTcpSubKey = 'SYSTEM\CurrentControlSet\Control\Terminal Server\WinStations\RDP-Tcp'  # SSLCertificateSHA1Hash [S1][S2]
$MachineKeysPath = Join-Path $env:ProgramData 'Microsoft\Crypto\RSA\MachineKeys'  # legacy CSP machine keys [S17]
$CngKeysPath = Join-Path $env:ProgramData 'Microsoft\Crypto\Keys'  # CNG machine keys [S17]
# Win32_Service.StartMode spells Auto, ChangeStartMode wants Automatic (ms: cimwin32prov/changestartmode-method-in-class-win32-service).
$StartModeArgument = @{ Auto = 'Automatic'; Manual = 'Manual'; Disabled = 'Disabled' }
# RegistryValueKind names <-> the contract's type names (ms: dotnet/api/microsoft.win32.registryvaluekind).
$RegistryKinds = @{ DWORD = 'DWord'; QWORD = 'QWord'; String = 'String'; ExpandString = 'ExpandString'; MultiString = 'MultiString'; Binary = 'Binary' }
$WtsStates = 'Active', 'Connected', 'ConnectQuery', 'Shadow', 'Disconnected', 'Idle', 'Listen', 'Reset', 'Down', 'Init'  # WTS_CONNECTSTATE_CLASS

# Session read and logoff: WTSQuerySessionInformationW(WTSSessionInfo = 24) -> WTSINFOW, WTSLogoffSession(wait = true)
# (ms: wtsapi32/nf-wtsapi32-wtsquerysessioninformationw, ns-wtsapi32-wtsinfow, nf-wtsapi32-wtslogoffsession). A versioned
# type name: a runspace that loaded an older definition keeps it, so a changed definition gets a new name.
$NativeSource = @'
using System;
using System.Runtime.InteropServices;
namespace RdDoctor {
    public static class ApplyNative1 {
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
        static extern bool WTSQuerySessionInformationW(IntPtr server, int sessionId, int infoClass, out IntPtr buffer, out int bytes);
        [DllImport("wtsapi32.dll")]
        static extern void WTSFreeMemory(IntPtr memory);
        [DllImport("wtsapi32.dll", SetLastError = true)]
        static extern bool WTSLogoffSession(IntPtr server, int sessionId, bool wait);
        // false when the session does not exist (ERROR_FILE_NOT_FOUND and friends): the caller reports it as absent.
        public static bool Query(int sessionId, out Info info) {
            IntPtr buffer; int bytes;
            info = new Info();
            if (!WTSQuerySessionInformationW(IntPtr.Zero, sessionId, 24, out buffer, out bytes)) { return false; }
            try { info = (Info)Marshal.PtrToStructure(buffer, typeof(Info)); } finally { WTSFreeMemory(buffer); }
            return true;
        }
        public static void Logoff(int sessionId) {
            if (!WTSLogoffSession(IntPtr.Zero, sessionId, true)) { throw new System.ComponentModel.Win32Exception(); }
        }
    }
}
'@

# The revert task's script: CONSTANT text written to disk and run by the task; what it restores comes from the JSON file
# the revert_task operation writes (<RevertDir>\<task name>.json), never from text pasted into a script.
$RestoreScript = @'
# rdp.doctor revert task: restores the values listed in <this folder>\<TaskName>.json, then deletes the task.
param([Parameter(Mandatory = $true)] [string]$TaskName)
Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$folder = Split-Path -Parent $MyInvocation.MyCommand.Path
$listFile = Join-Path $folder ($TaskName + '.json')
$document = Get-Content -LiteralPath $listFile -Raw | ConvertFrom-Json
$log = @()
foreach ($op in @($document.restore)) {
    try {
        if ($op.kind -eq 'registry_value') {
            $sub = ([string]$op.target.path).Substring(6)  # HKLM:\ stripped (ms: microsoft.win32.registry.localmachine)
            if ($op.set.present) {
                $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey($sub)
                try {
                    $kind = [string]$op.set.type
                    $data = $op.set.value
                    if ($kind -eq 'DWORD') { $data = [BitConverter]::ToInt32([BitConverter]::GetBytes([uint32]$data), 0); $kind = 'DWord' }
                    elseif ($kind -eq 'QWORD') { $data = [BitConverter]::ToInt64([BitConverter]::GetBytes([uint64]$data), 0); $kind = 'QWord' }
                    elseif ($kind -eq 'MultiString') { $data = [string[]]@($data) }
                    elseif ($kind -eq 'Binary') { $hex = [string]$data; $data = [byte[]]@(for ($i = 0; $i -lt $hex.Length; $i += 2) { [Convert]::ToByte($hex.Substring($i, 2), 16) }) }
                    $key.SetValue([string]$op.target.name, $data, [Microsoft.Win32.RegistryValueKind]$kind)
                } finally { $key.Close() }
            } else {
                $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($sub, $true)
                if ($null -ne $key) { try { $key.DeleteValue([string]$op.target.name, $false) } finally { $key.Close() } }
            }
        } elseif ($op.kind -eq 'service_control' -and $op.set.action -eq 'restart') {
            Restart-Service -Name ([string]$op.target.name) -Force  # ms: microsoft.powershell.management/restart-service
        }
        $log += @{ id = $op.id; status = 'applied'; error = $null }
    } catch {
        $log += @{ id = $op.id; status = 'failed'; error = $_.Exception.Message }
    }
}
$stamp = [DateTime]::UtcNow.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
@{ task = $TaskName; ran_utc = $stamp; results = $log } | ConvertTo-Json -Depth 6 | Set-Content -LiteralPath (Join-Path $folder ($TaskName + '.result.json')) -Encoding UTF8
Remove-Item -LiteralPath $listFile -Force
Unregister-ScheduledTask -TaskName $TaskName -TaskPath '\rdp.doctor\' -Confirm:$false  # the task deletes itself
'@

# ------------------------------------------------------------------------------------------------ small helpers

function Get-RdField($Object, [string]$Name) {
    # A property of a ConvertFrom-Json object, $null when absent (strict mode throws on a missing property).
    if ($null -eq $Object) { return $null }
    if ($Object -is [hashtable]) { return $Object[$Name] }
    $property = $Object.PSObject.Properties[$Name]
    if ($null -eq $property) { return $null }
    return $property.Value
}

function Test-RdHasField($Object, [string]$Name) {
    if ($null -eq $Object) { return $false }
    if ($Object -is [hashtable]) { return $Object.ContainsKey($Name) }
    return $null -ne $Object.PSObject.Properties[$Name]
}

function Get-RdFieldNames($Object) {
    if ($null -eq $Object) { return @() }
    if ($Object -is [hashtable]) { return @($Object.Keys) }
    return @($Object.PSObject.Properties | ForEach-Object { $_.Name })
}

function ConvertTo-RdCanonical($Value) {
    # Compact JSON, case-insensitive: the one way drift and verification compare an expected value with a read one.
    return (ConvertTo-Json -InputObject $Value -Compress -Depth 8).ToLowerInvariant()
}

function ConvertTo-RdUtcText($Value) {
    if ($null -eq $Value) { return $null }
    return $Value.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [Globalization.CultureInfo]::InvariantCulture)
}

function ConvertTo-RdHex([byte[]]$Bytes) {
    return ([BitConverter]::ToString($Bytes) -replace '-', '').ToLowerInvariant()
}

function ConvertFrom-RdHex([string]$Hex) {
    return [byte[]]@(for ($i = 0; $i -lt $Hex.Length; $i += 2) { [Convert]::ToByte($Hex.Substring($i, 2), 16) })
}

function Get-RdSubKey([string]$Path) {
    # 'HKLM:\SOFTWARE\...' -> 'SOFTWARE\...'; only HKLM is ever written (remediation.operation_problems).
    if ($Path -notlike 'HKLM:\*') { throw "only HKLM:\ registry paths may be written, not '$Path'" }
    return $Path.Substring(6)
}

# ------------------------------------------------------------------------------------------------ registry_value
# Microsoft.Win32.RegistryKey keeps the value's type (ms: dotnet/api/microsoft.win32.registrykey.setvalue, getvaluekind,
# deletevalue; registry.localmachine.createsubkey). Paths: contracts 3a, [S1][S4][S7][S9][S10][S14][S18][S37].

function Read-RdRegistryValue($Op) {
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey((Get-RdSubKey ([string]$Op.target.path)))
    if ($null -eq $key) { return @{ present = $false } }
    try {
        $name = [string]$Op.target.name
        if (@($key.GetValueNames()) -notcontains $name) { return @{ present = $false } }
        $raw = $key.GetValue($name, $null, 'DoNotExpandEnvironmentNames')
        switch ([string]$key.GetValueKind($name)) {
            'DWord' { return @{ present = $true; type = 'DWORD'; value = [BitConverter]::ToUInt32([BitConverter]::GetBytes([int]$raw), 0) } }
            'QWord' { return @{ present = $true; type = 'QWORD'; value = [BitConverter]::ToUInt64([BitConverter]::GetBytes([long]$raw), 0) } }
            'String' { return @{ present = $true; type = 'String'; value = [string]$raw } }
            'ExpandString' { return @{ present = $true; type = 'ExpandString'; value = [string]$raw } }
            'MultiString' { return @{ present = $true; type = 'MultiString'; value = [string[]]@($raw) } }
            default {
                $bytes = [byte[]]@()
                if ($null -ne $raw) { $bytes = [byte[]]$raw }
                return @{ present = $true; type = 'Binary'; value = (ConvertTo-RdHex $bytes) }
            }
        }
    } finally { $key.Close() }
}

function Write-RdRegistryValue([string]$Path, [string]$Name, $State) {
    # $State = @{present; type; value}: write it (creating the key) or delete the value.
    $sub = Get-RdSubKey $Path
    if (-not (Get-RdField $State 'present')) {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($sub, $true)
        if ($null -ne $key) { try { $key.DeleteValue($Name, $false) } finally { $key.Close() } }
        return
    }
    $type = [string](Get-RdField $State 'type')
    if (-not $RegistryKinds.ContainsKey($type)) { throw "unknown registry type '$type'" }
    $value = Get-RdField $State 'value'
    switch ($type) {
        'DWORD' { $data = [BitConverter]::ToInt32([BitConverter]::GetBytes([uint32]$value), 0) }  # SetValue(DWord) wants an Int32
        'QWORD' { $data = [BitConverter]::ToInt64([BitConverter]::GetBytes([uint64]$value), 0) }
        'MultiString' { $data = [string[]]@($value) }
        'Binary' { $data = ConvertFrom-RdHex ([string]$value) }
        default { $data = [string]$value }
    }
    $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey($sub)
    try { $key.SetValue($Name, $data, [Microsoft.Win32.RegistryValueKind]$RegistryKinds[$type]) } finally { $key.Close() }
}

function Invoke-RdRegistryValue($Op, $Before) {
    Write-RdRegistryValue ([string]$Op.target.path) ([string]$Op.target.name) $Op.set
    return $null
}

function Undo-RdRegistryValue($Op, $Before, $Saved) {
    Write-RdRegistryValue ([string]$Op.target.path) ([string]$Op.target.name) $Before  # previous type and value, or absence
}

# ------------------------------------------------------------------------------------------------ services
# Win32_Service (ms: cimwin32prov/win32-service; ChangeStartMode, Change methods), Start-/Stop-/Restart-Service
# (ms: powershell/module/microsoft.powershell.management). TermService, SessionEnv, UmRdpService [S21][S22].

function Get-RdService([string]$Name) {
    $found = @(Get-CimInstance -ClassName Win32_Service -Filter ("Name='" + ($Name -replace "'", "''") + "'"))
    if ($found.Count -eq 0) { throw "Cannot find any service with service name '$Name'." }
    return $found[0]
}

function Read-RdServiceConfig($Op) {
    $service = Get-RdService ([string]$Op.target.name)
    return @{ start_mode = [string]$service.StartMode; account = [string]$service.StartName }
}

function Set-RdServiceConfig([string]$Name, $State) {
    $service = Get-RdService $Name
    $mode = Get-RdField $State 'start_mode'
    if ($null -ne $mode) {
        $answer = Invoke-CimMethod -InputObject $service -MethodName ChangeStartMode -Arguments @{ StartMode = $StartModeArgument[[string]$mode] }
        if ($answer.ReturnValue -ne 0) { throw "Win32_Service.ChangeStartMode($mode) on $Name returned $($answer.ReturnValue)" }
    }
    $account = Get-RdField $State 'account'
    if ($null -ne $account) {
        # Built-in service accounts take an empty password [S22] (ms: change-method-in-class-win32-service).
        $answer = Invoke-CimMethod -InputObject $service -MethodName Change -Arguments @{ StartName = [string]$account; StartPassword = '' }
        if ($answer.ReturnValue -ne 0) { throw "Win32_Service.Change(StartName=$account) on $Name returned $($answer.ReturnValue)" }
    }
}

function Invoke-RdServiceConfig($Op, $Before) {
    Set-RdServiceConfig ([string]$Op.target.name) $Op.set
    return $null
}

function Undo-RdServiceConfig($Op, $Before, $Saved) {
    $previous = @{}
    foreach ($name in Get-RdFieldNames $Op.set) { $previous[$name] = $Before[$name] }
    Set-RdServiceConfig ([string]$Op.target.name) $previous
}

function Read-RdServiceControl($Op) {
    return @{ state = [string](Get-RdService ([string]$Op.target.name)).State }
}

function Invoke-RdServiceAction([string]$Name, [string]$Action) {
    # -Force: TermService has dependents (UmRdpService) [S21]; dependents that were running are started again.
    $running = @(Get-Service -Name $Name -DependentServices | Where-Object { [string]$_.Status -eq 'Running' } | ForEach-Object { $_.Name })
    switch ($Action) {
        'start' { Start-Service -Name $Name }
        'stop' { Stop-Service -Name $Name -Force }
        'restart' {
            Restart-Service -Name $Name -Force
            foreach ($dependent in $running) { Start-Service -Name $dependent }
        }
        default { throw "unknown service action '$Action'" }
    }
}

function Invoke-RdServiceControl($Op, $Before) {
    Invoke-RdServiceAction ([string]$Op.target.name) ([string]$Op.set.action)
    return $null
}

function Undo-RdServiceControl($Op, $Before, $Saved) {
    $name = [string]$Op.target.name
    $action = [string]$Op.set.action
    if ($action -eq 'restart') { return }  # a restart leaves the service as it found it
    if ([string]$Before.state -eq 'Running') { Invoke-RdServiceAction $name 'start' } else { Invoke-RdServiceAction $name 'stop' }
}

# ------------------------------------------------------------------------------------------------ firewall rules
# NetSecurity by the rule's stable -Name, never the localized display name [S13] (ms: netsecurity/get-netfirewallrule,
# set-netfirewallrule, enable-netfirewallrule, disable-netfirewallrule, new-netfirewallrule, remove-netfirewallrule,
# get-netfirewallportfilter, get-netfirewalladdressfilter). Writes go to the default PersistentStore.

function Get-RdFirewallRule([string]$Name) {
    # CDXML cmdlets report "no such rule" as an ObjectNotFound error: that is an absent rule.
    try { return Get-NetFirewallRule -Name $Name } catch { if ([string]$_.CategoryInfo.Category -ne 'ObjectNotFound') { throw } }
    return $null
}

function Read-RdFirewallRuleState([string]$Name) {
    $rule = Get-RdFirewallRule $Name
    if ($null -eq $rule) { return @{ present = $false } }
    $ports = Get-NetFirewallPortFilter -AssociatedNetFirewallRule $rule
    $addresses = Get-NetFirewallAddressFilter -AssociatedNetFirewallRule $rule
    return @{ present = $true; enabled = ([string]$rule.Enabled -eq 'True'); display_name = [string]$rule.DisplayName
        protocol = [string]$ports.Protocol; local_ports = [string[]]@($ports.LocalPort); profiles = [string[]]@(([string]$rule.Profile) -split ',\s*')
        remote_addresses = [string[]]@($addresses.RemoteAddress); service = $null }
}

function Read-RdFirewallRule($Op) {
    return Read-RdFirewallRuleState ([string]$Op.target.name)
}

function Set-RdFirewallRule([string]$Name, $State) {
    if (Test-RdHasField $State 'enabled') {
        if (Get-RdField $State 'enabled') { Enable-NetFirewallRule -Name $Name } else { Disable-NetFirewallRule -Name $Name }
    }
    if (Test-RdHasField $State 'local_ports') { Set-NetFirewallRule -Name $Name -LocalPort ([string[]]@(Get-RdField $State 'local_ports')) }
    if (Test-RdHasField $State 'remote_addresses') { Set-NetFirewallRule -Name $Name -RemoteAddress ([string[]]@(Get-RdField $State 'remote_addresses')) }
}

function Invoke-RdFirewallRule($Op, $Before) {
    Set-RdFirewallRule ([string]$Op.target.name) $Op.set
    return $null
}

function Undo-RdFirewallRule($Op, $Before, $Saved) {
    $previous = @{}
    foreach ($name in Get-RdFieldNames $Op.set) { $previous[$name] = $Before[$name] }
    Set-RdFirewallRule ([string]$Op.target.name) $previous
}

function New-RdOwnedRule([string]$Name, $Definition) {
    if (-not $Name.StartsWith($OwnedRulePrefix)) { throw "rdp.doctor only creates rules named $OwnedRulePrefix*, not '$Name'" }
    $rule = @{ Name = $Name; DisplayName = [string](Get-RdField $Definition 'display_name'); Direction = 'Inbound'; Action = 'Allow'
        Protocol = [string](Get-RdField $Definition 'protocol'); LocalPort = [string[]]@(Get-RdField $Definition 'local_ports')
        Profile = [string[]]@(Get-RdField $Definition 'profiles'); Enabled = 'True' }
    $remote = Get-RdField $Definition 'remote_addresses'
    if ($null -ne $remote) { $rule.RemoteAddress = [string[]]@($remote) }
    $service = Get-RdField $Definition 'service'
    if ($service) { $rule.Service = [string]$service }
    [void](New-NetFirewallRule @rule)
}

function Read-RdOwnedRule($Op) {
    return Read-RdFirewallRuleState ([string]$Op.target.name)
}

function Invoke-RdOwnedRule($Op, $Before) {
    $name = [string]$Op.target.name
    if (-not $name.StartsWith($OwnedRulePrefix)) { throw "rdp.doctor only creates or deletes rules named $OwnedRulePrefix*, not '$name'" }
    if ($Before.present) { Remove-NetFirewallRule -Name $name }
    if ($Op.set.present) { New-RdOwnedRule $name $Op.set }
    return $null
}

function Undo-RdOwnedRule($Op, $Before, $Saved) {
    $name = [string]$Op.target.name
    if ($null -ne (Get-RdFirewallRule $name)) { Remove-NetFirewallRule -Name $name }
    if ($Before.present) { New-RdOwnedRule $name $Before }
}

# ------------------------------------------------------------------------------------------------ listener certificate
# Win32_TSGeneralSetting.SSLCertificateSHA1Hash (write) [S1][S6]; the REG_BINARY RDP-Tcp\SSLCertificateSHA1Hash (read;
# deleting it falls back to the self-signed certificate) [S1][S2][S28].

function Read-RdListenerBinding($Op) {
    $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($RdpTcpSubKey)
    if ($null -eq $key) { return @{ thumbprint = $null } }
    try {
        $raw = $key.GetValue('SSLCertificateSHA1Hash', $null)
        if ($null -eq $raw) { return @{ thumbprint = $null } }
        if ($raw -is [byte[]]) { return @{ thumbprint = (ConvertTo-RdHex $raw).ToUpperInvariant() } }
        return @{ thumbprint = (([string]$raw) -replace '[^0-9A-Fa-f]', '').ToUpperInvariant() }
    } finally { $key.Close() }
}

function Set-RdListenerBinding($Thumbprint) {
    if ($null -eq $Thumbprint -or [string]$Thumbprint -eq '') {
        $key = [Microsoft.Win32.Registry]::LocalMachine.OpenSubKey($RdpTcpSubKey, $true)
        if ($null -ne $key) { try { $key.DeleteValue('SSLCertificateSHA1Hash', $false) } finally { $key.Close() } }
        return
    }
    $setting = Get-CimInstance -Namespace root\cimv2\TerminalServices -ClassName Win32_TSGeneralSetting -Filter "TerminalName='RDP-Tcp'"
    # The certificate must be in LocalMachine\My, else WMI answers "Invalid Parameter" [S1].
    Set-CimInstance -InputObject $setting -Property @{ SSLCertificateSHA1Hash = [string]$Thumbprint }
}

function Invoke-RdListenerBinding($Op, $Before) {
    Set-RdListenerBinding (Get-RdField $Op.set 'thumbprint')
    return $null
}

function Undo-RdListenerBinding($Op, $Before, $Saved) {
    # The previous bytes go back as they were: a self-signed hash names a certificate in Remote Desktop, not My, which the
    # WMI setter refuses [S1]; the registry value is what Windows reads [S2][S28].
    if ($null -eq $Before.thumbprint) { Set-RdListenerBinding $null; return }
    $key = [Microsoft.Win32.Registry]::LocalMachine.CreateSubKey($RdpTcpSubKey)
    try { $key.SetValue('SSLCertificateSHA1Hash', (ConvertFrom-RdHex ([string]$Before.thumbprint)), [Microsoft.Win32.RegistryValueKind]::Binary) } finally { $key.Close() }
}

# ------------------------------------------------------------------------------------------------ certificates and keys
# X509Store LocalMachine\My and \Remote Desktop [S1][S2] (ms: dotnet/api/system.security.cryptography.x509certificates.x509store).

function Open-RdStore([string]$Store, [string]$Mode) {
    $x509 = [Security.Cryptography.X509Certificates.X509Store]::new($Store, [Security.Cryptography.X509Certificates.StoreLocation]::LocalMachine)
    $x509.Open([Security.Cryptography.X509Certificates.OpenFlags]$Mode)
    return $x509
}

function Find-RdCertificate($Store, [string]$Thumbprint) {
    $found = @($Store.Certificates | Where-Object { $_.Thumbprint -eq $Thumbprint.ToUpperInvariant() })
    if ($found.Count -eq 0) { return $null }
    return $found[0]
}

function Read-RdCertificate($Op) {
    $store = Open-RdStore ([string]$Op.target.store) 'ReadOnly'
    try { return @{ present = ($null -ne (Find-RdCertificate $store ([string]$Op.target.thumbprint))) } } finally { $store.Close() }
}

function Invoke-RdCertificate($Op, $Before) {
    # Keep a PFX in memory (with a one-time random password) when the key is exportable, so undo can put it back;
    # otherwise only the certificate comes back and the operation reports reversible = false.
    $store = Open-RdStore ([string]$Op.target.store) 'ReadWrite'
    try {
        $cert = Find-RdCertificate $store ([string]$Op.target.thumbprint)
        $saved = @{ pfx = $null; password = [Guid]::NewGuid().ToString('N'); der = $cert.RawData; reversible = $true }
        if ($cert.HasPrivateKey) {
            try { $saved.pfx = $cert.Export([Security.Cryptography.X509Certificates.X509ContentType]::Pfx, $saved.password) }
            catch [Security.Cryptography.CryptographicException] { $saved.reversible = $false }
        }
        $store.Remove($cert)
        return $saved
    } finally { $store.Close() }
}

function Undo-RdCertificate($Op, $Before, $Saved) {
    $flags = [Security.Cryptography.X509Certificates.X509KeyStorageFlags]'MachineKeySet, PersistKeySet, Exportable'
    if ($null -ne $Saved.pfx) { $cert = [Security.Cryptography.X509Certificates.X509Certificate2]::new([byte[]]$Saved.pfx, [string]$Saved.password, $flags) }
    else { $cert = [Security.Cryptography.X509Certificates.X509Certificate2]::new([byte[]]$Saved.der) }
    $store = Open-RdStore ([string]$Op.target.store) 'ReadWrite'
    try { $store.Add($cert) } finally { $store.Close() }
    if (-not $Saved.reversible) { throw 'the certificate is back but its private key was not exportable and is lost' }
}

function Find-RdKeyFile([string]$Store, [string]$Thumbprint) {
    # The key file of a certificate: the key's unique container name, in MachineKeys then Crypto\Keys. A legacy CSP
    # key answers through X509Certificate2.PrivateKey (.NET 4.5, ms: cspkeycontainerinfo.uniquekeycontainername);
    # a CNG key only through RSACertificateExtensions/RSACng (.NET 4.6, ms: cngkey.uniquename), tested first with -as
    # [type] because Windows Server 2012 R2 ships .NET 4.5.1.
    $x509 = Open-RdStore $Store 'ReadOnly'
    try { $cert = Find-RdCertificate $x509 $Thumbprint } finally { $x509.Close() }
    if ($null -eq $cert) { throw "no certificate $Thumbprint in LocalMachine\$Store" }
    if (-not $cert.HasPrivateKey) { throw "certificate $Thumbprint has no private key" }
    $unique = $null
    try { $unique = $cert.PrivateKey.CspKeyContainerInfo.UniqueKeyContainerName } catch { $unique = $null }
    $extensions = 'System.Security.Cryptography.X509Certificates.RSACertificateExtensions' -as [type]
    $cngType = 'System.Security.Cryptography.RSACng' -as [type]
    if ($null -eq $unique -and $null -ne $extensions -and $null -ne $cngType) {
        $rsa = $extensions::GetRSAPrivateKey($cert)
        try { if ($rsa -is $cngType) { $unique = $rsa.Key.UniqueName } } finally { if ($null -ne $rsa) { $rsa.Dispose() } }
    }
    if ($null -eq $unique) { throw "the private key of certificate $Thumbprint cannot be located (neither a CryptoAPI nor a readable CNG key)" }
    foreach ($folder in $MachineKeysPath, $CngKeysPath) {
        $file = Join-Path $folder $unique
        if (Test-Path -LiteralPath $file -PathType Leaf) { return $file }
    }
    throw "the key file $unique of certificate $Thumbprint is in neither MachineKeys nor Crypto\Keys"
}

function Get-RdGrantsPresent($Acl, $Grants) {
    # The requested grants that the ACL already gives (an allow rule for the SID covering the rights).
    $present = @()
    foreach ($grant in @($Grants)) {
        $rights = [Security.AccessControl.FileSystemRights][string]$grant.rights
        foreach ($rule in $Acl.GetAccessRules($true, $true, [Security.Principal.SecurityIdentifier])) {
            if ($rule.IdentityReference.Value -ne [string]$grant.sid -or [string]$rule.AccessControlType -ne 'Allow') { continue }
            if (($rule.FileSystemRights -band $rights) -eq $rights) { $present += @{ sid = [string]$grant.sid; rights = [string]$grant.rights }; break }
        }
    }
    return $present
}

function Read-RdKeyAcl($Op) {
    $file = Find-RdKeyFile ([string]$Op.target.store) ([string]$Op.target.thumbprint)
    $acl = Get-Acl -LiteralPath $file  # ms: microsoft.powershell.security/get-acl
    return @{ sddl = $acl.Sddl; grant = @(Get-RdGrantsPresent $acl (Get-RdField $Op.set 'grant')) }
}

function Invoke-RdKeyAcl($Op, $Before) {
    # FileSystemAccessRule on the SID (ms: system.security.accesscontrol.filesystemaccessrule); NETWORK SERVICE Read [S1][S22].
    $file = Find-RdKeyFile ([string]$Op.target.store) ([string]$Op.target.thumbprint)
    $acl = Get-Acl -LiteralPath $file
    foreach ($grant in @($Op.set.grant)) {
        $sid = New-Object Security.Principal.SecurityIdentifier([string]$grant.sid)
        $rule = New-Object Security.AccessControl.FileSystemAccessRule($sid, [Security.AccessControl.FileSystemRights][string]$grant.rights, 'Allow')
        $acl.AddAccessRule($rule)
    }
    Set-Acl -LiteralPath $file -AclObject $acl  # ms: microsoft.powershell.security/set-acl
    return $null
}

function Undo-RdKeyAcl($Op, $Before, $Saved) {
    $file = Find-RdKeyFile ([string]$Op.target.store) ([string]$Op.target.thumbprint)
    Set-RdSddl $file $Before.sddl
}

# ------------------------------------------------------------------------------------------------ paths
# Get-Acl / Set-Acl with SetSecurityDescriptorSddlForm, one object only (ms: objectsecurity.setsecuritydescriptorsddlform);
# MachineKeys default ACL [S5]; Rename-Item, Copy-Item, Remove-Item (ms: microsoft.powershell.management).

function Set-RdSddl([string]$Path, [string]$Sddl) {
    # The DACL only (with its protection flag): writing the owner would need SeRestorePrivilege, and the owner is not
    # what breaks access (ms: objectsecurity.setsecuritydescriptorsddlform(string, accesscontrolsections)).
    $acl = Get-Acl -LiteralPath $Path
    $acl.SetSecurityDescriptorSddlForm($Sddl, [Security.AccessControl.AccessControlSections]::Access)
    Set-Acl -LiteralPath $Path -AclObject $acl
}

function Read-RdPathAcl($Op) {
    $path = [string]$Op.target.path
    if (-not (Test-Path -LiteralPath $path)) { return @{ sddl = $null } }
    return @{ sddl = (Get-Acl -LiteralPath $path).Sddl }
}

function Invoke-RdPathAcl($Op, $Before) {
    Set-RdSddl ([string]$Op.target.path) ([string]$Op.set.sddl)
    return $null
}

function Undo-RdPathAcl($Op, $Before, $Saved) {
    Set-RdSddl ([string]$Op.target.path) ([string]$Before.sddl)
}

function Get-RdRenameDestination($Op) {
    $parent = Split-Path -Path ([string]$Op.target.path) -Parent
    return Join-Path -Path $parent -ChildPath ([string]$Op.set.new_name)
}

function Read-RdPathRename($Op) {
    return @{ present = (Test-Path -LiteralPath ([string]$Op.target.path)); destination_present = (Test-Path -LiteralPath (Get-RdRenameDestination $Op)) }
}

function Invoke-RdPathRename($Op, $Before) {
    Rename-Item -LiteralPath ([string]$Op.target.path) -NewName ([string]$Op.set.new_name)
    return $null
}

function Undo-RdPathRename($Op, $Before, $Saved) {
    $leaf = Split-Path -Path ([string]$Op.target.path) -Leaf
    Rename-Item -LiteralPath (Get-RdRenameDestination $Op) -NewName $leaf
}

function Read-RdFileRemove($Op) {
    $path = [string]$Op.target.path
    if (-not (Test-Path -LiteralPath $path -PathType Leaf)) { return @{ present = $false; sddl = $null } }
    return @{ present = $true; sddl = (Get-Acl -LiteralPath $path).Sddl }
}

function Invoke-RdFileRemove($Op, $Before) {
    # Copy first (the ACL is kept in $Before.sddl and put back on restore), then delete.
    $path = [string]$Op.target.path
    $backupDir = [string]$Op.set.backup_dir
    if (-not (Test-Path -LiteralPath $backupDir)) { [void](New-Item -ItemType Directory -Path $backupDir -Force) }
    $leaf = Split-Path -Path $path -Leaf
    $backup = Join-Path -Path $backupDir -ChildPath ($RunId + '-' + $leaf)
    Copy-Item -LiteralPath $path -Destination $backup -Force
    Remove-Item -LiteralPath $path -Force
    return @{ backup = $backup }
}

function Undo-RdFileRemove($Op, $Before, $Saved) {
    $path = [string]$Op.target.path
    Copy-Item -LiteralPath $Saved.backup -Destination $path -Force
    if ($Before.sddl) { Set-RdSddl $path ([string]$Before.sddl) }
}

# ------------------------------------------------------------------------------------------------ sessions

function Read-RdSessionLogoff($Op) {
    if (-not ('RdDoctor.ApplyNative1' -as [type])) { Add-Type -TypeDefinition $NativeSource }
    $info = New-Object RdDoctor.ApplyNative1+Info
    if (-not [RdDoctor.ApplyNative1]::Query([int]$Op.target.session_id, [ref]$info) -or -not $info.UserName) {
        return @{ present = $false; user = $null; state = $null; logon_time = $null }
    }
    $user = $info.UserName
    if ($info.Domain) { $user = $info.Domain + '\' + $info.UserName }
    $logon = $null
    if ($info.LogonTime -gt 0) { $logon = ConvertTo-RdUtcText ([DateTime]::FromFileTimeUtc($info.LogonTime)) }
    return @{ present = $true; user = $user; state = $WtsStates[$info.State]; logon_time = $logon }
}

function Invoke-RdSessionLogoff($Op, $Before) {
    [RdDoctor.ApplyNative1]::Logoff([int]$Op.target.session_id)
    return $null
}

function Undo-RdSessionLogoff($Op, $Before, $Saved) {
    throw 'a logged-off session cannot be restored'
}

# ------------------------------------------------------------------------------------------------ revert task
# ScheduledTasks module (ms: scheduledtasks/register-scheduledtask, new-scheduledtaskaction, new-scheduledtasktrigger,
# new-scheduledtaskprincipal, new-scheduledtasksettingsset, get-scheduledtask, unregister-scheduledtask).

function Get-RdRevertTask([string]$Name) {
    try { return Get-ScheduledTask -TaskName $Name -TaskPath $TaskPath } catch { if ([string]$_.CategoryInfo.Category -ne 'ObjectNotFound') { throw } }
    return $null
}

function Read-RdRevertTask($Op) {
    $task = Get-RdRevertTask ([string]$Op.target.name)
    if ($null -eq $task) { return @{ present = $false; run_at_utc = $null } }
    $at = $null
    $triggers = @($task.Triggers)
    if ($triggers.Count -gt 0 -and $triggers[0].StartBoundary) {
        $at = ConvertTo-RdUtcText ([DateTime]::Parse([string]$triggers[0].StartBoundary, [Globalization.CultureInfo]::InvariantCulture))
    }
    return @{ present = $true; run_at_utc = $at }
}

function Invoke-RdRevertTask($Op, $Before) {
    $name = [string]$Op.target.name
    if ($name -notmatch '^[A-Za-z0-9._-]+$') { throw "revert task names are letters, digits, '.', '_' and '-', not '$name'" }
    if (-not (Test-Path -LiteralPath $RevertDir)) { [void](New-Item -ItemType Directory -Path $RevertDir -Force) }
    $scriptFile = Join-Path $RevertDir 'restore.ps1'
    Set-Content -LiteralPath $scriptFile -Value $RestoreScript -Encoding UTF8
    $listFile = Join-Path $RevertDir ($name + '.json')
    ConvertTo-Json -InputObject @{ task = $name; run_id = $RunId; restore = @($Op.set.restore) } -Depth 10 | Set-Content -LiteralPath $listFile -Encoding UTF8
    $at = [DateTime]::Parse([string]$Op.set.run_at_utc, [Globalization.CultureInfo]::InvariantCulture, [Globalization.DateTimeStyles]'AdjustToUniversal, AssumeUniversal')
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' -Argument ('-NoProfile -NonInteractive -ExecutionPolicy Bypass -File "' + $scriptFile + '" -TaskName ' + $name)
    $trigger = New-ScheduledTaskTrigger -Once -At $at.ToLocalTime()
    $principal = New-ScheduledTaskPrincipal -UserId 'S-1-5-18' -LogonType ServiceAccount -RunLevel Highest  # LocalSystem
    $settings = New-ScheduledTaskSettingsSet -StartWhenAvailable  # a host that was off at the deadline reverts when it is back
    [void](Register-ScheduledTask -TaskName $name -TaskPath $TaskPath -Action $action -Trigger $trigger -Principal $principal -Settings $settings `
        -Description 'rdp.doctor: restores settings changed temporarily (revert_after), then deletes itself')
    return $null
}

function Undo-RdRevertTask($Op, $Before, $Saved) {
    $name = [string]$Op.target.name
    if ($null -ne (Get-RdRevertTask $name)) { Unregister-ScheduledTask -TaskName $name -TaskPath $TaskPath -Confirm:$false }
    $listFile = Join-Path $RevertDir ($name + '.json')
    if (Test-Path -LiteralPath $listFile) { Remove-Item -LiteralPath $listFile -Force }
}

# ------------------------------------------------------------------------------------------------ host restart
# shutdown.exe (ms: windows-server/administration/windows-commands/shutdown): /r restarts after /t <seconds>, /d p:2:4
# records a planned "Operating System: Reconfiguration" reason, /c the comment; /a aborts a pending shutdown while
# the delay runs. Win32_OperatingSystem.LastBootUpTime (ms: cimwin32prov/win32-operatingsystem) tells a new boot.

$RestartScheduled = $false  # set by this run's host_restart: Windows has no cmdlet that reads a pending shutdown

function Read-RdHostRestart($Op) {
    $system = Get-CimInstance -ClassName Win32_OperatingSystem
    return @{ scheduled = $script:RestartScheduled; last_boot_utc = (ConvertTo-RdUtcText $system.LastBootUpTime) }
}

function Invoke-RdHostRestart($Op, $Before) {
    $delay = [int]$Op.set.delay_seconds
    if ($delay -lt 5 -or $delay -gt 600) { throw "delay_seconds must be from 5 to 600, not $delay" }
    & shutdown.exe /r /t $delay /d p:2:4 /c 'rdp.doctor: a remediated setting takes effect at boot'
    if ($LASTEXITCODE -ne 0) { throw "shutdown.exe /r failed with exit code $LASTEXITCODE" }
    $script:RestartScheduled = $true
    return $null
}

function Undo-RdHostRestart($Op, $Before, $Saved) {
    & shutdown.exe /a
    if ($LASTEXITCODE -ne 0) { throw "shutdown.exe /a failed with exit code $LASTEXITCODE" }
    $script:RestartScheduled = $false
}

# ------------------------------------------------------------------------------------------------ dispatcher

$Kinds = @{
    registry_value = @{ Read = ${function:Read-RdRegistryValue}; Apply = ${function:Invoke-RdRegistryValue}; Undo = ${function:Undo-RdRegistryValue} }
    service_config = @{ Read = ${function:Read-RdServiceConfig}; Apply = ${function:Invoke-RdServiceConfig}; Undo = ${function:Undo-RdServiceConfig} }
    service_control = @{ Read = ${function:Read-RdServiceControl}; Apply = ${function:Invoke-RdServiceControl}; Undo = ${function:Undo-RdServiceControl} }
    firewall_rule = @{ Read = ${function:Read-RdFirewallRule}; Apply = ${function:Invoke-RdFirewallRule}; Undo = ${function:Undo-RdFirewallRule} }
    firewall_rule_owned = @{ Read = ${function:Read-RdOwnedRule}; Apply = ${function:Invoke-RdOwnedRule}; Undo = ${function:Undo-RdOwnedRule} }
    listener_binding = @{ Read = ${function:Read-RdListenerBinding}; Apply = ${function:Invoke-RdListenerBinding}; Undo = ${function:Undo-RdListenerBinding} }
    certificate = @{ Read = ${function:Read-RdCertificate}; Apply = ${function:Invoke-RdCertificate}; Undo = ${function:Undo-RdCertificate} }
    key_acl = @{ Read = ${function:Read-RdKeyAcl}; Apply = ${function:Invoke-RdKeyAcl}; Undo = ${function:Undo-RdKeyAcl} }
    path_acl = @{ Read = ${function:Read-RdPathAcl}; Apply = ${function:Invoke-RdPathAcl}; Undo = ${function:Undo-RdPathAcl} }
    path_rename = @{ Read = ${function:Read-RdPathRename}; Apply = ${function:Invoke-RdPathRename}; Undo = ${function:Undo-RdPathRename} }
    file_remove = @{ Read = ${function:Read-RdFileRemove}; Apply = ${function:Invoke-RdFileRemove}; Undo = ${function:Undo-RdFileRemove} }
    session_logoff = @{ Read = ${function:Read-RdSessionLogoff}; Apply = ${function:Invoke-RdSessionLogoff}; Undo = ${function:Undo-RdSessionLogoff} }
    revert_task = @{ Read = ${function:Read-RdRevertTask}; Apply = ${function:Invoke-RdRevertTask}; Undo = ${function:Undo-RdRevertTask} }
    host_restart = @{ Read = ${function:Read-RdHostRestart}; Apply = ${function:Invoke-RdHostRestart}; Undo = ${function:Undo-RdHostRestart} }
}

function Get-RdDrift($Op, $Actual) {
    # Only the keys `expect` names are compared; $null when the host matches.
    $expected = @{}
    $found = @{}
    $differs = $false
    if ($Actual.ContainsKey('error')) { $differs = $true; $found.error = $Actual.error }
    foreach ($name in Get-RdFieldNames $Op.expect) {
        $expected[$name] = Get-RdField $Op.expect $name
        $found[$name] = $Actual[$name]
        if ((ConvertTo-RdCanonical $expected[$name]) -ne (ConvertTo-RdCanonical $found[$name])) { $differs = $true }
    }
    if (-not $differs) { return $null }
    return @{ id = [string]$Op.id; expected = $expected; actual = $found }
}

function Get-RdError($ErrorRecord) {
    return @{ type = $ErrorRecord.Exception.GetType().FullName; message = $ErrorRecord.Exception.Message }
}

$RunId = [string]$Params.run_id
$operations = @($Params.operations)
foreach ($op in $operations) {
    if (-not $Kinds.ContainsKey([string]$op.kind)) { throw "unknown operation kind '$($op.kind)' in $($op.id)" }
}

function Read-RdTarget($Op) {
    # A target that cannot be read (a service, certificate or key file that is gone) is drift, not a script failure.
    try { return & $Kinds[[string]$Op.kind].Read $Op } catch { return @{ error = $_.Exception.Message } }
}

# 1. Read every target and compare with `expect`: any drift -> nothing written.
$results = @(foreach ($op in $operations) {
    $reversible = Get-RdField $op 'reversible'
    @{ id = [string]$op.id; kind = [string]$op.kind; status = 'not_run'; before = (Read-RdTarget $op); after = $null
        error = $null; reversible = ($null -eq $reversible -or [bool]$reversible) }
})
$drift = @(for ($i = 0; $i -lt $operations.Count; $i++) {
    $difference = Get-RdDrift $operations[$i] $results[$i].before
    if ($null -ne $difference) { $difference }
})
$outcome = 'applied'
if ($drift.Count -gt 0) {
    $outcome = 'drift'
} else {
    # 2. Apply in order, keeping what each operation needs to be undone.
    $saved = @{}
    $failedAt = -1
    for ($i = 0; $i -lt $operations.Count; $i++) {
        $op = $operations[$i]
        try {
            $saved[$i] = & $Kinds[[string]$op.kind].Apply $op $results[$i].before
            $results[$i].status = 'applied'
            if ($saved[$i] -is [hashtable] -and $saved[$i].ContainsKey('reversible') -and -not $saved[$i].reversible) { $results[$i].reversible = $false }
        } catch {
            $results[$i].status = 'failed'
            $results[$i].error = Get-RdError $_
            $failedAt = $i
            break
        }
    }
    # 3. On a failure undo the applied operations in reverse.
    if ($failedAt -ge 0) {
        $outcome = 'rolled_back'
        for ($i = $failedAt - 1; $i -ge 0; $i--) {
            $op = $operations[$i]
            if (-not $results[$i].reversible) { $results[$i].status = 'not_reversible'; $outcome = 'partial'; continue }
            try {
                & $Kinds[[string]$op.kind].Undo $op $results[$i].before $saved[$i]
                $results[$i].status = 'rolled_back'
            } catch {
                $results[$i].status = 'rollback_failed'
                $results[$i].error = Get-RdError $_
                $outcome = 'partial'
            }
        }
    }
    # 4. Re-read every target: the result carries its own verification.
    for ($i = 0; $i -lt $operations.Count; $i++) {
        try { $results[$i].after = & $Kinds[[string]$operations[$i].kind].Read $operations[$i] }
        catch { if ($null -eq $results[$i].error) { $results[$i].error = Get-RdError $_ } }
    }
}

@{
    schema = $SchemaId
    run_id = $RunId
    host_time_utc = ConvertTo-RdUtcText ([DateTime]::UtcNow)
    outcome = $outcome
    drift = $drift
    operations = $results
}
