# Copyright (c) rdp.doctor contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own host protocol: run one named host script in one round trip.

The command line is a constant bootstrap that this module encodes itself (never the PowerShell shell
plugin's script encoder, which ansible-core deprecates for removal in 2.24). The script text and its parameters travel on stdin as data, so the
command line is byte-identical for every script and parameter set and no parameter is ever pasted
into script text. The script answers with exactly one JSON document; a failure is a JSON error with a
non-zero exit code. The same bytes reach the host over ``winrm``, ``psrp`` and ``ssh`` with the
PowerShell shell, on ansible-core 2.16 to 2.19: a connection that encodes every command as PowerShell
itself (``winrm`` before 2.19, ``ssh`` before 2.18) is given the bootstrap text, which it encodes into
exactly ``COMMAND_LINE`` (see docs/dev/contracts.md, section 1).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import typing as t

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.release import __version__ as ANSIBLE_CORE_VERSION
from ansible.utils.display import Display

display = Display()

# Where the host scripts live, relative to this file: plugins/host_scripts/<name>.ps1
HOST_SCRIPT_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "host_scripts")

# Windows cmd.exe refuses command lines longer than this (WINRS_SKIP_CMD_SHELL=FALSE routes through it).
CMD_EXE_LIMIT = 8191

# The bootstrap. Windows PowerShell 5.1. Kept free of blank-line or indentation significance.
# - $input enumerates stdin (powershell.exe) or pipeline input (PSRP), as Ansible's own bootstrap does.
# - The result is written with Write-Output so it reaches stdout (powershell.exe) and the PSRP output
#   stream alike; non-ASCII characters are escaped as \uXXXX so the console code page never matters.
# - 'exit 1' sets the process exit code (powershell.exe) or the SetShouldExit host call (PSRP).
# - Warnings and information records are silenced: powershell.exe writes them to stdout ("WARNING: ..."),
#   which would break "exactly one JSON document" (ConsoleHostUserInterface.WriteWarningLine).
# - No line has leading or trailing blanks and none is empty: the winrm connection before 2.19 encodes
#   this text itself after stripping every line, and must produce exactly COMMAND_LINE.
BOOTSTRAP = "\n".join(
    [
        "$ErrorActionPreference = 'Stop'",
        "$ProgressPreference = 'SilentlyContinue'",
        "$WarningPreference = 'SilentlyContinue'",
        "$InformationPreference = 'SilentlyContinue'",
        "Set-StrictMode -Version 2.0",
        "$rdName = ''",
        "function ConvertTo-RdAsciiJson($Value, [int]$Depth) {",
        "$json = ConvertTo-Json -InputObject $Value -Depth $Depth -Compress",
        "[regex]::Replace($json, '[^\\x00-\\x7F]', { param($m) '\\u{0:x4}' -f [int][char]$m.Value })",
        "}",
        "try {",
        "$rdPayload = (@($input) -join \"`n\") | ConvertFrom-Json",
        "$rdName = [string]$rdPayload.name",
        "$rdText = [Text.Encoding]::UTF8.GetString([Convert]::FromBase64String([string]$rdPayload.script))",
        "$rdScript = [ScriptBlock]::Create($rdText)",
        "$rdResult = & $rdScript -Params $rdPayload.params",
        "Write-Output (ConvertTo-RdAsciiJson -Value $rdResult -Depth 20)",
        "exit 0",
        "} catch {",
        "$rdLine = 0",
        "if ($null -ne $_.InvocationInfo) { $rdLine = $_.InvocationInfo.ScriptLineNumber }",
        "$rdError = @{ type = $_.Exception.GetType().FullName; message = $_.Exception.Message;"
        " line = $rdLine; category = [string]$_.CategoryInfo.Category }",
        "Write-Output (ConvertTo-RdAsciiJson -Value @{ failed = $true; script = $rdName; error = $rdError } -Depth 5)",
        "exit 1",
        "}",
    ]
)

COMMAND_PREFIX = "PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand "
COMMAND_LINE = COMMAND_PREFIX + base64.b64encode(BOOTSTRAP.encode("utf-16-le")).decode("ascii")

# Connections that wrap every command in their own ``PowerShell ... -EncodedCommand`` line, with the
# first ansible-core version that passes an already encoded command line through unchanged:
# - winrm 2.16-2.18: ``exec_command`` always runs the command through the shell plugin's script encoder; 2.19 skips lines that
#   start with the encoded prefix (lib/ansible/plugins/connection/winrm.py, exec_command);
# - ssh 2.16-2.17 with a Windows shell: ``chcp.com 65001 > $null ; `` + that same encoder;
#   2.18 sends the command verbatim (lib/ansible/plugins/connection/ssh.py, exec_command).
# psrp decodes an encoded line and runs it in the runspace on every version: it always gets COMMAND_LINE.
PASSES_ENCODED_COMMAND_SINCE: dict[str, tuple[int, int]] = {"winrm": (2, 19), "ssh": (2, 18)}


def _major_minor(version: str) -> tuple[int, int]:
    """``"2.16.19"`` -> ``(2, 16)``; anything unparsable counts as a current version."""
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else (99, 0)


def command_for(transport: str, ansible_version: str | None = None) -> str:
    """What to hand ``_low_level_execute_command`` so that ``COMMAND_LINE`` is what reaches the host.

    A connection that encodes every command itself gets the bootstrap text: it turns it into exactly
    ``COMMAND_LINE`` (the bootstrap has no blank or indented line for its encoder to strip). Handing it
    ``COMMAND_LINE`` instead would run that line as PowerShell code: a child powershell.exe whose own
    command line, encoded twice, no longer fits cmd.exe's 8191 characters.
    """
    since = PASSES_ENCODED_COMMAND_SINCE.get((transport or "").rsplit(".", 1)[-1])
    if since is not None and _major_minor(ansible_version or ANSIBLE_CORE_VERSION) < since:
        return BOOTSTRAP
    return COMMAND_LINE


def _transport_of(execute: t.Any, connection: t.Any) -> str:
    """The connection plugin's transport name (``winrm``, ``psrp``, ``ssh``...), from the action plugin."""
    if connection is None:
        # ``execute`` is the action plugin's bound ``_low_level_execute_command``.
        connection = getattr(getattr(execute, "__self__", None), "_connection", None)
    return str(getattr(connection, "transport", "") or "")


class HostScriptError(AnsibleError):
    """A host script ran and reported a failure (or answered something that is not its protocol)."""

    def __init__(self, script: str, message: str, error_type: str = "", line: int = 0, rc: int | None = None,
                 category: str = "") -> None:
        self.script = script
        self.error_type = error_type
        self.line = line
        self.rc = rc
        self.category = category
        where = f" at line {line}" if line else ""
        kind = f" ({error_type})" if error_type else ""
        super().__init__(f"host script '{script}' failed{where}{kind}: {message}")

    def to_dict(self) -> dict[str, t.Any]:
        """The structured error, as action plugins return it to the user."""
        return {"script": self.script, "type": self.error_type, "message": str(self), "line": self.line,
                "rc": self.rc, "category": self.category}


def script_path(name: str) -> str:
    """Path of the host script called ``name``; refuses anything that is not a plain script name."""
    if not name or not name.replace("_", "").isalnum():
        raise AnsibleError(f"invalid host script name {name!r}")
    return os.path.join(HOST_SCRIPT_DIR, f"{name}.ps1")


def load_script(name: str) -> str:
    """The text of host script ``name`` as shipped in the collection."""
    path = script_path(name)
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as exc:
        raise AnsibleError(f"host script '{name}' is not part of this collection ({path}): {exc}") from exc


def script_digest(text: str) -> str:
    """SHA-256 of a script text; the lab recognises collection scripts by it."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def build_payload(name: str, script: str, params: dict[str, t.Any]) -> bytes:
    """The stdin document: one JSON line naming the script, carrying its text and its parameters."""
    document = {
        "name": name,
        "script": base64.b64encode(script.encode("utf-8")).decode("ascii"),
        "params": params,
    }
    return (json.dumps(document, separators=(",", ":"), sort_keys=True) + "\n").encode("utf-8")


def parse_payload(data: bytes) -> tuple[str, str, dict[str, t.Any]]:
    """Inverse of :func:`build_payload` (used by the lab and by tests)."""
    document = json.loads(data.decode("utf-8"))
    script = base64.b64decode(document["script"]).decode("utf-8")
    return document["name"], script, document["params"]


def _single_json_document(text: str) -> t.Any:
    """Decode stdout that must hold exactly one JSON document (surrounding whitespace allowed)."""
    decoder = json.JSONDecoder()
    stripped = text.strip()
    if not stripped:
        raise ValueError("no output")
    value, end = decoder.raw_decode(stripped)
    if stripped[end:].strip():
        raise ValueError(f"unexpected data after the JSON document: {stripped[end:end + 80]!r}")
    return value


#: The largest answer a host script may give. A full read of a busy host is tens of KB; an answer of megabytes is a
#: broken or hostile host, and keeping it would put it into every fork's copy of the host's facts.
MAX_ANSWER_CHARS = 4 * 1024 * 1024


def parse_result(name: str, rc: int, stdout: str, stderr: str) -> dict[str, t.Any]:
    """Turn what the connection returned into the script's result, or raise :class:`HostScriptError`."""
    if len(stdout) > MAX_ANSWER_CHARS:
        raise HostScriptError(name, f"answered {len(stdout) / 1048576:.1f} MiB, larger than the {MAX_ANSWER_CHARS // 1048576} MiB "
                              "a host script may answer: the answer was not read", rc=rc)
    try:
        document = _single_json_document(stdout)
    except ValueError as exc:
        detail = (stderr or "").strip()[:400] or (stdout or "").strip()[:400] or str(exc)
        raise HostScriptError(name, f"did not answer with one JSON document (rc={rc}): {detail}", rc=rc) from exc
    if not isinstance(document, dict):
        raise HostScriptError(name, f"answered a JSON {type(document).__name__}, expected an object", rc=rc)
    if document.get("failed"):
        error = document.get("error") or {}
        raise HostScriptError(
            name,
            str(error.get("message") or "unknown error"),
            error_type=str(error.get("type") or ""),
            line=int(error.get("line") or 0),
            rc=rc,
            category=str(error.get("category") or ""),
        )
    if rc != 0:
        raise HostScriptError(name, f"exited with rc={rc} without an error document: {(stderr or '').strip()}", rc=rc)
    return document


class LowLevelExecutor(t.Protocol):
    """What an action plugin offers: ``ActionBase._low_level_execute_command``."""

    def __call__(self, cmd: str, sudoable: bool = ..., in_data: bytes | None = ...) -> dict[str, t.Any]:
        ...


def run_host_script(execute: LowLevelExecutor, name: str, params: dict[str, t.Any], host: str = "",
                    connection: t.Any = None) -> dict[str, t.Any]:
    """Run host script ``name`` with ``params`` through the task's connection: exactly one round trip.

    ``execute`` is the action plugin's ``_low_level_execute_command``; ``connection`` its connection
    (default: the one ``execute`` is bound to), whose transport and ansible-core version decide what
    :func:`command_for` hands it. Connection problems become :class:`AnsibleConnectionFailure` with the
    host and script named; script failures become :class:`HostScriptError`.
    """
    script = load_script(name)
    payload = build_payload(name, script, params)
    command = command_for(_transport_of(execute, connection))
    form = "encoded command line" if command == COMMAND_LINE else "bootstrap text, encoded by the connection"
    display.vvv(f"rdp.doctor: running host script '{name}' ({len(payload)} bytes on stdin, {form})", host=host)
    # Parameter names only: values may name accounts or paths and are not needed to debug the protocol.
    display.vvvv(f"rdp.doctor: '{name}' parameters: {sorted(params)}", host=host)
    try:
        result = execute(command, sudoable=False, in_data=payload)
    except AnsibleConnectionFailure:
        raise
    except Exception as exc:  # pylint: disable=broad-except
        # pywinrm/pypsrp/requests raise their own exception types; name the script and the cause.
        raise AnsibleConnectionFailure(
            f"could not run host script '{name}' on {host or 'the host'}: {type(exc).__name__}: {exc}"
        ) from exc
    rc = int(result.get("rc", 1) if result.get("rc") is not None else 1)
    stdout = result.get("stdout", "") or ""
    stderr = result.get("stderr", "") or ""
    display.vvvvv(f"rdp.doctor: '{name}' rc={rc} stdout={len(stdout)} chars stderr={stderr[:2000]!r}", host=host)
    return parse_result(name, rc, stdout, stderr)
