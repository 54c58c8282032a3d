"""What a lab host "runs": the collection's bootstrap is answered by a Python twin, anything else fails.

The lab has no PowerShell. A command line is either the collection's constant bootstrap
(``host_protocol.COMMAND_LINE``; stdin carries ``{name, script, params}``) or something else. For the
bootstrap the script text is recognised by its SHA-256 against ``plugins/host_scripts/*.ps1`` and the
twin ``tests.lab.twins.TWINS[<name>]`` runs against the host model; the answer is exactly what the
bootstrap writes (docs/dev/contracts.md, section 1). Anything else fails as PowerShell fails for an
unknown command ("The term 'x' is not recognized ...", rc 1).

PowerShell text that only starts native programs is run the way powershell.exe runs it, because that
is what older controllers send (docs/dev/contracts.md, section 1): ansible-core 2.16-2.18's winrm
connection wraps any command in its own ``PowerShell -EncodedCommand`` line, and 2.16-2.17's ssh
connection prefixes ``chcp.com 65001 > $null ;``. A ``PowerShell ... -EncodedCommand Y`` statement
inside PowerShell code starts a child powershell.exe that runs Y; the child is not fed by the pipeline,
so it inherits the parent's standard input (whatever the parent has not read) and writes to the
parent's output; the parent's exit code is 0 when the last program exited 0, else 1 (powershell.exe
``-Command``/``-EncodedCommand`` exit code rule, about_PowerShell_exe).

:func:`run_script` is transport-neutral (it returns PowerShell output objects and an optional error
record); :func:`dispatch` renders it as powershell.exe under WinRS would (stdout bytes, CLIXML stderr).
The PSRP endpoint renders the same :class:`Outcome` as pipeline objects.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import os
import re
import shlex
import sys
import threading
import typing as t
from pathlib import Path
from xml.sax.saxutils import escape

REPO_ROOT = Path(__file__).resolve().parents[2]

try:
    from ansible_collections.rdp.doctor.plugins.plugin_utils import host_protocol
except ImportError:  # the lab runs from the repository; the collection is reachable through .cache/collections
    sys.path.append(str(REPO_ROOT / ".cache" / "collections"))
    from ansible_collections.rdp.doctor.plugins.plugin_utils import host_protocol

log = logging.getLogger(__name__)

BOOTSTRAP = host_protocol.BOOTSTRAP
COMMAND_LINE = host_protocol.COMMAND_LINE

# Where host scripts are looked up; tests point this at a temporary folder.
SCRIPT_DIR = host_protocol.HOST_SCRIPT_DIR

NOT_RECOGNIZED = (
    "The term '{word}' is not recognized as the name of a cmdlet, function, script file, or operable program. "
    "Check the spelling of the name, or if a path was included, verify that the path is correct and try again."
)
CMD_NOT_RECOGNIZED = "'{word}' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"
COMMAND_NOT_FOUND = "System.Management.Automation.CommandNotFoundException"
RUNTIME_EXCEPTION = "System.Management.Automation.RuntimeException"

# Lines of BOOTSTRAP where a malformed payload makes it throw (what $_.InvocationInfo.ScriptLineNumber says).
_BOOTSTRAP_LINES = BOOTSTRAP.split("\n")
PAYLOAD_JSON_LINE = next(i for i, line in enumerate(_BOOTSTRAP_LINES, 1) if "ConvertFrom-Json" in line)
PAYLOAD_BASE64_LINE = next(i for i, line in enumerate(_BOOTSTRAP_LINES, 1) if "FromBase64String" in line)

# PowerShell keywords and statements a script may start with; the "unknown command" is the first other word.
_KEYWORDS = frozenset(
    "param begin process end if else elseif switch foreach for while do until try catch finally trap throw return "
    "break continue function filter workflow class enum using exit data dynamicparam set-strictmode".split()
)
_WORD = re.compile(r"[A-Za-z_][\w.\-\\:]*")


# --------------------------------------------------------------------------------------------- counters


@dataclasses.dataclass
class Counters:
    """Per-host counters the tests assert on (``requests`` is counted by the HTTP layer)."""

    requests: int = 0
    round_trips: int = 0
    commands: int = 0
    refused: int = 0  # requests reset because the host was restarting (Host.winrm_down)
    scripts: dict[str, int] = dataclasses.field(default_factory=dict)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, amount: int = 1) -> None:
        """Increment counter ``name`` (requests, round_trips or commands); safe from any thread."""
        with self.lock:
            setattr(self, name, getattr(self, name) + amount)

    def add_script(self, script: str) -> None:
        """Count one run of host script ``script`` (the name the payload gave)."""
        with self.lock:
            self.scripts[script] = self.scripts.get(script, 0) + 1

    def reset(self) -> None:
        """Back to zero."""
        with self.lock:
            self.requests = self.round_trips = self.commands = self.refused = 0
            self.scripts = {}

    def to_dict(self) -> dict[str, t.Any]:
        """JSON form."""
        with self.lock:
            return {"requests": self.requests, "round_trips": self.round_trips, "commands": self.commands, "refused": self.refused,
                    "scripts": dict(self.scripts)}


# Keyed by the host object's identity (lab hosts are mutable dataclasses, not hashable); the host is kept
# with its counters so its id cannot be reused while registered. Two labs in one process never share.
_COUNTERS: dict[int, tuple[t.Any, Counters]] = {}
_COUNTERS_LOCK = threading.Lock()


def counters_for(host: t.Any) -> Counters:
    """The counters of lab host ``host``; created on first use."""
    with _COUNTERS_LOCK:
        entry = _COUNTERS.get(id(host))
        if entry is None:
            entry = _COUNTERS[id(host)] = (host, Counters())
        return entry[1]


def forget_counters(hosts: t.Iterable[t.Any] | None = None) -> None:
    """Drop the counters of ``hosts`` (every host when None), e.g. when their lab closes."""
    with _COUNTERS_LOCK:
        if hosts is None:
            _COUNTERS.clear()
            return
        for host in hosts:
            _COUNTERS.pop(id(host), None)


# --------------------------------------------------------------------------------------------- scripts


_SCRIPT_TABLE: dict[str, t.Any] = {"dir": None, "digests": {}}


def _scan_scripts(directory: str) -> dict[str, str]:
    """SHA-256 of every ``<name>.ps1`` in ``directory`` -> name."""
    digests: dict[str, str] = {}
    try:
        entries = sorted(os.listdir(directory))
    except OSError:
        return digests
    for entry in entries:
        if not entry.endswith(".ps1"):
            continue
        with open(os.path.join(directory, entry), encoding="utf-8") as handle:
            digests[host_protocol.script_digest(handle.read())] = entry[:-4]
    return digests


def script_name(text: str) -> str | None:
    """The collection script whose exact text is ``text``, or None (rescans the folder on a miss)."""
    digest = host_protocol.script_digest(text)
    table = _SCRIPT_TABLE
    if table["dir"] == SCRIPT_DIR and digest in table["digests"]:
        return table["digests"][digest]
    # Lazy refresh: a miss may be a script added or edited since the last scan.
    _SCRIPT_TABLE.update({"dir": SCRIPT_DIR, "digests": _scan_scripts(SCRIPT_DIR)})
    return _SCRIPT_TABLE["digests"].get(digest)


def _twins() -> dict[str, t.Callable[..., t.Any]]:
    """The twin registry (imported late: twins import the model, which the transport does not need)."""
    from tests.lab import twins  # pylint: disable=import-outside-toplevel

    return twins.TWINS


def _twin_error_class() -> type[BaseException]:
    from tests.lab import twins  # pylint: disable=import-outside-toplevel

    return twins.TwinError


# --------------------------------------------------------------------------------------------- outcomes


@dataclasses.dataclass(frozen=True)
class NotRecognized:
    """The error record PowerShell writes for an unknown command."""

    word: str
    line: int = 1
    column: int = 1
    line_text: str = ""

    @property
    def message(self) -> str:
        """The exception message."""
        return NOT_RECOGNIZED.format(word=self.word)

    def console_text(self) -> str:
        """The record as powershell.exe prints it on stderr (no console: no line wrapping)."""
        marker = " " * (self.column - 1) + "~" * max(len(self.word), 1)
        return "\r\n".join([
            f"{self.word} : {self.message}",
            f"At line:{self.line} char:{self.column}",
            f"+ {self.line_text or self.word}",
            f"+ {marker}",
            f"    + CategoryInfo          : ObjectNotFound: ({self.word}:String) [], CommandNotFoundException",
            "    + FullyQualifiedErrorId : CommandNotFoundException",
            " ",
        ]) + "\r\n"


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What a command produced, transport-neutral: output objects (strings), an error record, exit code.

    ``native_stderr`` is set instead of ``error`` when the command line never reached PowerShell
    (cmd.exe answered).
    """

    rc: int
    output: tuple[str, ...] = ()
    error: NotRecognized | None = None
    native_stderr: str = ""


def first_command(script: str) -> NotRecognized:
    """The first word PowerShell would try to run as a command in ``script`` (comments and keywords skipped)."""
    in_block_comment = False
    for number, raw in enumerate(script.splitlines() or [""], 1):
        line = raw.strip()
        if in_block_comment:
            if "#>" in line:
                in_block_comment = False
                line = line.split("#>", 1)[1].strip()
            else:
                continue
        if line.startswith("<#"):
            if "#>" not in line:
                in_block_comment = True
                continue
            line = line.split("#>", 1)[1].strip()
        if not line or line.startswith("#") or line[0] in "$[(@{}":
            continue
        match = _WORD.match(line)
        if match is None or match.group(0).lower() in _KEYWORDS:
            continue
        return NotRecognized(match.group(0), number, raw.index(match.group(0)) + 1, raw.strip())
    stripped = script.strip()
    word = stripped.split()[0] if stripped else script
    return NotRecognized(word or "''", 1, 1, stripped)


def encoded_script(command_line: str) -> str | None:
    """The script a ``powershell.exe`` command line runs: its ``-EncodedCommand`` (or ``-Command``), else None."""
    try:
        words = shlex.split(command_line, posix=False)
    except ValueError:
        words = command_line.split()
    if not words or os.path.basename(words[0].strip('"')).lower() not in ("powershell", "powershell.exe", "pwsh", "pwsh.exe"):
        return None
    for index, word in enumerate(words[1:], 1):
        option = word.lower()
        if option in ("-encodedcommand", "-enc", "-e", "-ec") and index + 1 < len(words):
            try:
                return base64.b64decode(words[index + 1], validate=True).decode("utf-16-le")
            except (binascii.Error, UnicodeDecodeError):
                return words[index + 1]
        if option in ("-command", "-c"):
            return " ".join(words[index + 1:])
    return ""


def _json(document: t.Any) -> str:
    """The bootstrap's serialisation: compact JSON, every non-ASCII character escaped as \\uXXXX."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def error_document(script: str, error_type: str, message: str, line: int, category: str) -> str:
    """The bootstrap's failure document (contracts section 1)."""
    return _json({"failed": True, "script": script,
                  "error": {"type": error_type, "message": message, "line": int(line), "category": category}})


def _decode_payload(payload: bytes) -> tuple[str, str, dict[str, t.Any]] | str:
    """``(name, script, params)`` from stdin, or the bootstrap's error document when it cannot be decoded."""
    try:
        document = json.loads(payload.decode("utf-8-sig"))
        if not isinstance(document, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        return error_document("", "System.ArgumentException", f"Invalid JSON primitive: {exc}", PAYLOAD_JSON_LINE,
                              "NotSpecified")
    name = str(document.get("name") or "")
    try:
        text = base64.b64decode(str(document.get("script") or ""), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        return error_document(name, "System.FormatException", f"The input is not a valid Base-64 string: {exc}",
                              PAYLOAD_BASE64_LINE, "NotSpecified")
    params = document.get("params")
    return name, text, params if params is not None else {}


def _fire_scheduled_tasks(host: t.Any) -> None:
    """Task Scheduler keeps running between script runs: fire the host's revert tasks that are due (lab time)."""
    if not getattr(host, "revert_tasks", None):
        return
    from tests.lab.twins import apply_rdp_changes  # pylint: disable=import-outside-toplevel

    apply_rdp_changes.run_due_tasks(host)


def run_twin(host: t.Any, name: str, script: str, params: dict[str, t.Any]) -> Outcome:
    """Run the twin of collection script ``script`` (``name`` is what the payload called it)."""
    try:
        twin = _twins().get(script)
    except Exception as exc:  # pylint: disable=broad-except
        # A broken twin module must not take the transport down: every script run reports it instead.
        log.exception("cannot import tests.lab.twins")
        return Outcome(1, (error_document(name, RUNTIME_EXCEPTION, f"lab cannot import its twins: {type(exc).__name__}: {exc}",
                                          0, "NotSpecified"),))
    if twin is None:
        message = f"The lab has no twin for host script '{script}' (tests/lab/twins/{script}.py)."
        return Outcome(1, (error_document(name, "System.NotImplementedException", message, 0, "NotImplemented"),))
    twin_error = _twin_error_class()
    _fire_scheduled_tasks(host)
    try:
        result = twin(host, params)
        return Outcome(0, (_json(result),))
    except twin_error as exc:
        return Outcome(1, (error_document(name, str(getattr(exc, "type", "") or RUNTIME_EXCEPTION),
                                          str(getattr(exc, "message", exc)), int(getattr(exc, "line", 0) or 0),
                                          str(getattr(exc, "category", "") or "NotSpecified")),))
    except Exception as exc:  # pylint: disable=broad-except
        # A twin bug must not kill the lab: the controller sees a script failure naming the Python error.
        log.exception("twin %s crashed on host %s", script, getattr(host, "name", host))
        return Outcome(1, (error_document(name, RUNTIME_EXCEPTION, f"lab twin crashed: {type(exc).__name__}: {exc}",
                                          0, "NotSpecified"),))


def run_bootstrap(host: t.Any, payload: bytes) -> Outcome:
    """The bootstrap with ``payload`` as its input: one host script run (one round trip)."""
    counters = counters_for(host)
    counters.add("round_trips")
    decoded = _decode_payload(payload)
    if isinstance(decoded, str):
        return Outcome(1, (decoded,))
    name, text, params = decoded
    counters.add_script(name or "?")
    script = script_name(text)
    if script is None:
        unknown = first_command(text)
        return Outcome(1, (error_document(name, COMMAND_NOT_FOUND, unknown.message, unknown.line, "ObjectNotFound"),))
    return run_twin(host, name, script, params)


# Native programs PowerShell code may start on a lab host (found on PATH: System32 and
# System32\WindowsPowerShell\v1.0), as the first word of a statement, with or without the call operator.
_POWERSHELL_EXE = frozenset({"powershell", "powershell.exe"})
_CHCP = frozenset({"chcp", "chcp.com"})
# Text made only of unquoted words, statement separators and a redirection: nothing else is interpreted.
_NATIVE_ONLY = re.compile(r"[\w.\-\\:/+=$>& ;\r\n\t]*")
# How deep powershell.exe may start powershell.exe before the lab calls it a runaway.
MAX_NESTING = 4


@dataclasses.dataclass(frozen=True)
class NativeCall:
    """One statement of PowerShell code that starts a native program."""

    program: str  # "powershell" or "chcp"
    words: tuple[str, ...]
    to_null: bool = False  # ``> $null``: its output is discarded


def native_calls(script: str) -> list[NativeCall] | None:
    """The statements of ``script`` when every one starts powershell.exe or chcp.com, else None.

    Only unquoted words are read (what Ansible's wrappers produce); anything with quotes, script
    blocks, pipelines or variables other than ``$null`` is left to :func:`first_command`.
    """
    if not script.strip() or _NATIVE_ONLY.fullmatch(script) is None:
        return None
    calls: list[NativeCall] = []
    for statement in re.split(r"[;\r\n]", script):
        words = statement.split()
        if words and words[0] == "&":
            words = words[1:]
        if not words:
            continue
        to_null = words[-2:] == [">", "$null"]
        if to_null:
            words = words[:-2]
        if any(word.startswith(("$", ">", "&")) for word in words):
            return None
        program = words[0].replace("/", "\\").rsplit("\\", 1)[-1].lower()
        if program in _POWERSHELL_EXE:
            calls.append(NativeCall("powershell", tuple(words), to_null))
        elif program in _CHCP and len(words) == 2 and words[1].isdigit():
            calls.append(NativeCall("chcp", tuple(words), to_null))
        else:
            return None
    return calls or None


def run_native_calls(host: t.Any, calls: t.Sequence[NativeCall], stdin: bytes, depth: int) -> Outcome:
    """PowerShell code made of native program calls, as powershell.exe runs it (see the module docstring)."""
    output: list[str] = []
    stderr = ""
    last_ok = True
    unread = stdin
    for call in calls:
        if call.program == "chcp":
            lines = [f"Active code page: {call.words[1]}"]
            last_ok = True
        else:
            child_line = " ".join(call.words)
            child_script = encoded_script(child_line)
            child = run_powershell(host, child_script, unread, child_line, depth + 1)
            if child_script == BOOTSTRAP:
                unread = b""  # the bootstrap enumerates $input: the inherited stdin is read to its end
            _rc, child_out, child_err = render_winrs(child)
            lines = child_out.decode("utf-8", errors="replace").splitlines()
            stderr += child_err.decode("utf-8", errors="replace")
            last_ok = child.rc == 0
        if not call.to_null:
            output.extend(lines)
    return Outcome(0 if last_ok else 1, tuple(output), native_stderr=stderr)


def run_powershell(host: t.Any, script: str | None, stdin: bytes, command_line: str = "", depth: int = 0) -> Outcome:
    """powershell.exe running ``script`` with ``stdin`` (None: ``command_line`` is not powershell.exe)."""
    if script == BOOTSTRAP:
        return run_bootstrap(host, stdin)
    if script is None:
        # Not powershell.exe: WinRS runs it through cmd.exe, which knows no lab command either.
        word = command_line.split()[0] if command_line.strip() else command_line
        return Outcome(1, native_stderr=CMD_NOT_RECOGNIZED.format(word=word))
    calls = native_calls(script)
    if calls is not None and depth < MAX_NESTING:
        return run_native_calls(host, calls, stdin, depth)
    return Outcome(1, error=first_command(script))


def run_script(host: t.Any, script: str | None, stdin: bytes, command_line: str = "") -> Outcome:
    """Run a PowerShell ``script`` (None: ``command_line`` is not PowerShell) with ``stdin`` as its input."""
    counters_for(host).add("commands")
    return run_powershell(host, script, stdin, command_line)


# --------------------------------------------------------------------------------------------- WinRS rendering


def clixml_error(text: str, encoding: str = "utf-8") -> bytes:
    """stderr as powershell.exe writes it when its output is redirected: a CLIXML error stream."""
    lines = text.split("\r\n")
    parts = []
    for index, line in enumerate(lines):
        if index == len(lines) - 1 and not line:
            break
        value = escape(line.replace("_x", "_x005F_x")) + "_x000D__x000A_"
        parts.append(f'<S S="Error">{value}</S>')
    body = "".join(parts)
    return ('#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/2004/04">'
            f"{body}</Objs>").encode(encoding, errors="replace")


def render_winrs(outcome: Outcome, encoding: str = "utf-8") -> tuple[int, bytes, bytes]:
    """(rc, stdout, stderr) as powershell.exe under WinRS produces them for ``outcome``."""
    stdout = "".join(f"{item}\r\n" for item in outcome.output).encode(encoding, errors="replace")
    if outcome.error is not None:
        stderr = clixml_error(outcome.error.console_text(), encoding)
    else:
        stderr = outcome.native_stderr.encode(encoding, errors="replace")
    return outcome.rc, stdout, stderr


def dispatch(host: t.Any, command_line: str, stdin: bytes, encoding: str = "utf-8") -> tuple[int, bytes, bytes]:
    """Run ``command_line`` with ``stdin`` on lab host ``host``: (rc, stdout, stderr) as WinRS returns them."""
    if command_line == COMMAND_LINE:
        script: str | None = BOOTSTRAP
    else:
        script = encoded_script(command_line)
    return render_winrs(run_script(host, script, stdin, command_line), encoding)
