"""read_rdp_state.ps1 beyond the generic contract: the read survives a broken section, and what it computes itself is right.

* Every section of the result is read through ``Invoke-RdSection`` (one failing section never loses the read,
  docs/dev/powershell.md), statically on the script text.
* The key file name the script computes from a key container (``KeyFileHash`` in the ``Add-Type`` C#, compiled with
  Mono's C# 5 compiler and run) equals the Python reference the twin uses (``tests.lab.model.capi_key_hash``), and
  that reference gives the documented listener key file prefix for ``TSSecKeySet1``.
* The ``Add-Type`` class name is versioned, and the script names the same version it compiles.
* The calls the review found slow or fragile are gone (Get-WinEvent, Get-WindowsFeature, opening the key).
"""

from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

from ansible_collections.rdp.doctor.plugins.module_utils import rdp_registry as reg
from tests.lab import model

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "plugins" / "host_scripts" / "read_rdp_state.ps1"
TEXT = SCRIPT.read_text(encoding="utf-8")
SECTIONS = ("os", "ts_general_setting", "ts_setting", "services", "listening", "certificates", "tspkg_version", "firewall",
            "sessions", "machinekeys", "winrm_listeners", "accounts", "events")


def code_lines() -> list[str]:
    """Script lines without their comments (a ``#`` outside quotes ends the code; the here-string is C#, kept)."""
    return [re.sub(r"\s+#[^'\"]*$", "", line) for line in TEXT.splitlines() if not line.lstrip().startswith("#")]


def native_source() -> str:
    """The C# of the ``Add-Type`` here-string."""
    match = re.search(r"\$NativeSource = @'\n(.*?)\n'@", TEXT, re.S)
    assert match, "no $NativeSource here-string"
    return match.group(1)


def test_listener_key_prefix_is_the_hash_of_its_container() -> None:
    """MD5("tsseckeyset1\\0") as four little-endian DWORDs = the documented prefix, in the lab and on the controller."""
    assert model.capi_key_hash("TSSecKeySet1") == "f686aace6942fb7f7ceb231212eef4a4"
    assert model.capi_key_hash("tsseckeyset1") == model.capi_key_hash("TSSECKEYSET1")  # the name is lower-cased first
    assert model.LISTENER_KEY_PREFIX == reg.LISTENER_KEY_PREFIX == model.capi_key_hash(model.SELF_SIGNED_CONTAINER)
    assert model.capi_key_file_name("TSSecKeySet1", "g") == "f686aace6942fb7f7ceb231212eef4a4_g"
    assert model.capi_key_hash("{A1B2C3}") != model.capi_key_hash("TSSecKeySet1")
    # the worked example of jensign.com/UniqueKeyContainer (Michel Gallant): MD5 bytes 7641ab52 4cd7a921 f1e0e373 0a4e37bc
    assert model.capi_key_hash("MyCoolContainer") == "52ab417621a9d74c73e3e0f1bc374e0a"


NAMES = ["TSSecKeySet1", "MyCoolContainer", "{5A1B2C3D-0000-4E5F-8A9B-ABCDEF012345}", "te-WebServer-8d2b0c6e-1f3a", "x" * 55, "y" * 56, "z" * 120, ""]


def test_script_key_file_hash_equals_the_reference(tmp_path: pathlib.Path) -> None:
    """The script's managed MD5 (FIPS-proof, no .NET 4.6) compiled as C# 5 with warnings as errors, run on Mono."""
    harness = native_source() + """
namespace Harness {
    public static class Program {
        public static void Main(string[] args) {
            foreach (string name in args) { System.Console.WriteLine(RdDoctor.V2.Native.KeyFileHash(name)); }
        }
    }
}
"""
    source = tmp_path / "native.cs"
    source.write_text(harness, encoding="utf-8")
    program = tmp_path / "native.exe"
    compiled = subprocess.run(["mcs", "-langversion:5", "-warnaserror+", f"-out:{program}", str(source)], capture_output=True, text=True,
                              check=False)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
    ran = subprocess.run(["mono", str(program), *NAMES], capture_output=True, text=True, check=False)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == [model.capi_key_hash(name) for name in NAMES]


def test_add_type_class_is_versioned() -> None:
    """The type name the script looks for is the namespace it compiles, and carries a version."""
    namespace = re.search(r"^namespace (\S+) \{", native_source(), re.M)
    declared = re.search(r"^\$NativeTypeName = '([^']+)'", TEXT, re.M)
    assert namespace and declared
    assert declared.group(1) == namespace.group(1) + ".Native"
    assert re.fullmatch(r"RdDoctor\.V\d+\.Native", declared.group(1))
    assert "'RdDoctor.Native'" not in TEXT and "[RdDoctor." not in TEXT  # every use goes through $Native


def test_every_section_is_read_through_invoke_rdsection() -> None:
    """The returned hashtable takes each section from a variable assigned by Invoke-RdSection; registry per key."""
    code = "\n".join(code_lines())
    result = code[code.rindex("return @{"):]
    for section in SECTIONS:
        match = re.search(rf"^\s*{section} = \$(\w+)\s*$", result, re.M)
        assert match, f"{section} is not returned from a variable"
        assert re.search(rf"^\${match.group(1)} = Invoke-RdSection \{{", code, re.M), f"{section} is not read through Invoke-RdSection"
    assert re.search(r"^\s*registry = \$registry\s*$", result, re.M)
    assert re.search(r"\$registry\[\$path\] = Invoke-RdSection \{", code)
    assert re.search(r"^\s*schema = 'rdp\.doctor/read_rdp_state/1'", result, re.M)


def test_invoke_rdsection_catches_and_keeps_arrays() -> None:
    """The helper catches everything (typed catches inside sections are for data, not for failures) and does not unroll."""
    body = re.search(r"function Invoke-RdSection\(\[scriptblock\]\$Read\) \{(.*?)\n\}", TEXT, re.S)
    assert body
    assert "catch { return @{ error = (Get-RdErrorDetail $_) } }" in body.group(1)
    assert "return , $value" in body.group(1)


@pytest.mark.parametrize("gone", ["Get-WinEvent", "Get-WindowsFeature", "RSACertificateExtensions", "RSACng", "CngKey",
                                  "CspKeyContainerInfo", "Domain='"])
def test_fragile_calls_are_gone(gone: str) -> None:
    """Review items 2, 6, 7, 11, 12, 13: no formatting of every event, no ServerManager, no key opened, no double hop."""
    assert not [line for line in code_lines() if re.search(rf"(?<![\w$]){re.escape(gone)}(?!\w)", line)], gone


def test_firewall_reads_filters_after_checking_its_service() -> None:
    """Review items 1 and 9: MpsSvc checked before any NetSecurity call; application, service and address filters read."""
    body = re.search(r"function Get-RdFirewall\(\[int\[\]\]\$Ports\) \{(.*?)\n\}", TEXT, re.S)
    assert body
    text = body.group(1)
    assert text.index("Test-RdServiceRunning 'MpsSvc'") < text.index("Get-NetFirewall")
    for cmdlet in ("Get-NetFirewallPortFilter", "Get-NetFirewallApplicationFilter", "Get-NetFirewallServiceFilter",
                   "Get-NetFirewallAddressFilter", "Get-NetFirewallRule", "Get-NetFirewallProfile"):
        assert f"{cmdlet} -All -PolicyStore ActiveStore" in text or f"{cmdlet} -PolicyStore ActiveStore" in text, cmdlet


def functions() -> dict[str, tuple[list[str], str]]:
    """Each function of the script: its parameter names and its body (up to the closing brace in column 0)."""
    found = {}
    for match in re.finditer(r"^function ([\w-]+)(?:\(([^)]*)\))? \{\n(.*?)^\}", TEXT, re.S | re.M):
        params = re.findall(r"\$(\w+)", match.group(2) or "")
        found[match.group(1)] = (params, match.group(3))
    return found


def test_no_function_assigns_over_its_parameter() -> None:
    """PowerShell names are case-insensitive: ``$ports = @{}`` in a function with ``[int[]]$Ports`` converts (and fails),
    so a function never assigns to a name of its own parameters."""
    assert len(functions()) > 30
    clashes = [(name, param) for name, (params, body) in functions().items() for param in params
               if re.search(rf"^\s*\${param}\s*=[^=]", body, re.M | re.I)]
    assert clashes == []
