"""A fake ``ssh`` client that plays Windows OpenSSH with ``DefaultShell=powershell`` against a lab host.

Given to Ansible as ``ansible_ssh_executable``, it lets ``ansible.builtin.ssh`` with
``ansible_shell_type=powershell`` drive the lab without any sshd: Ansible's ssh plugin puts the remote
command line verbatim in the last argument (no encoding for PowerShell shells) and writes ``in_data`` on
stdin. This client forwards (command line, stdin) to the lab host's WinRM endpoint with pywinrm, at the
protocol level, so the host model stays in the lab process and its counters see the run:

* destination, user and port come from the ssh argv (``-o User="x"``, ``user@host``, ``-l``, ``-p``,
  ``-o Port=N``); the WinRM port is ``RDP_FAKE_SSH_WINRM_PORT`` (default 5985), not the ssh port;
* the password is ``RDP_FAKE_SSH_PASSWORD`` when set (the generated wrapper sets it), else it is asked
  from ``$SSH_ASKPASS`` as OpenSSH does (Ansible's ``password_mechanism=ssh_askpass`` with
  ``ansible_password``);
* the command line is split as ``ansible.builtin.winrm`` splits it: a line that already is a
  ``PowerShell ... -EncodedCommand`` line (the collection's bootstrap) is split on spaces; any other line
  is what sshd would hand to the PowerShell default shell, so it is wrapped into ``-EncodedCommand``
  exactly as the winrm plugin does (``raw: Get-Date`` then fails like PowerShell on the lab);
* the WinRS command is started with ``WINRS_SKIP_CMD_SHELL=TRUE``: sshd starts its default shell
  without cmd.exe, so cmd.exe's 8191-character limit does not apply (ansible-core 2.16-2.17 send
  ``chcp.com 65001 > $null ; PowerShell ... -EncodedCommand ...``, which the wrapping makes longer);
* stdout and stderr (CLIXML, which Ansible's ssh plugin decodes) are written as received; the exit code
  is the command's. Transport failures end with 255 and an OpenSSH-like message, which Ansible reports as
  UNREACHABLE.

``RDP_FAKE_SSH_LOG`` names a file that gets one JSON line per call (argv, parsed request, WinRM command
and arguments, stdin size, rc) so tests can check what Ansible sent byte for byte.

Run as ``python -m tests.lab.fake_ssh`` (``/work/main`` on ``PYTHONPATH``), or through the wrapper
:func:`write_wrapper` generates.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import shlex
import subprocess
import sys
import typing as t
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

ENV_PASSWORD = "RDP_FAKE_SSH_PASSWORD"
ENV_LOG = "RDP_FAKE_SSH_LOG"
ENV_WINRM_PORT = "RDP_FAKE_SSH_WINRM_PORT"
DEFAULT_WINRM_PORT = 5985

# What ansible.builtin.winrm recognises as an already encoded PowerShell command line
# (powershell shell plugin: _encode_script('', strict_mode=False, preserve_rc=False)).
ENCODED_PREFIX = "PowerShell -NoProfile -NonInteractive -ExecutionPolicy Unrestricted -EncodedCommand "

# OpenSSH client options that take an argument (ssh(1) synopsis); every other letter is a flag.
_OPTIONS_WITH_ARGUMENT = frozenset("BbcDEeFIiJLlmOoPpQRSWw")

# Same chunk size as ansible.builtin.winrm for stdin (WinRS Send messages).
_STDIN_CHUNK = 200000

# ssh's own exit code for its errors; Ansible's ssh plugin turns it into UNREACHABLE.
SSH_ERROR_RC = 255


@dataclasses.dataclass(frozen=True)
class SshRequest:
    """What an ssh argv asks for."""

    destination: str
    user: str = ""
    port: int | None = None
    command_line: str = ""
    control: str = ""  # the -O control command (check, stop, exit), empty for a normal run
    options: tuple[tuple[str, str], ...] = ()

    @property
    def host(self) -> str:
        """Host part of the destination (``user@`` removed)."""
        return self.destination.rsplit("@", 1)[-1]


class UsageError(ValueError):
    """The argv is not an ssh invocation this fake understands."""


def _unquote(value: str) -> str:
    """``"x"`` -> ``x``: Ansible quotes some -o values (User, ControlPath) as ssh_config allows."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def _split_option(value: str) -> tuple[str, str]:
    """``Key=Value`` or ``Key Value`` -> (lower-case key, unquoted value)."""
    for separator in ("=", " "):
        if separator in value:
            key, rest = value.split(separator, 1)
            return key.strip().lower(), _unquote(rest.strip())
    return value.strip().lower(), ""


def parse_argv(argv: t.Sequence[str]) -> SshRequest:
    """Parse ``ssh [options] destination [command...]`` (argv without the program name)."""
    options: list[tuple[str, str]] = []
    flags: dict[str, str] = {}
    index = 0
    while index < len(argv) and argv[index].startswith("-") and argv[index] != "-":
        word = argv[index]
        index += 1
        if word == "--":
            break
        position = 1
        while position < len(word):
            letter = word[position]
            if letter in _OPTIONS_WITH_ARGUMENT:
                value = word[position + 1:]
                if not value:
                    if index >= len(argv):
                        raise UsageError(f"option requires an argument -- {letter}")
                    value = argv[index]
                    index += 1
                if letter == "o":
                    options.append(_split_option(value))
                else:
                    flags[letter] = value
                break
            position += 1
    if index >= len(argv):
        raise UsageError("no destination given")
    destination = argv[index]
    settings = dict(options)
    user = settings.get("user") or flags.get("l", "")
    if "@" in destination:
        user = destination.rsplit("@", 1)[0]
    port_text = flags.get("p") or settings.get("port")
    try:
        port = int(port_text) if port_text else None
    except ValueError as exc:
        raise UsageError(f"bad port '{port_text}'") from exc
    # ssh joins the command words with spaces; Ansible always passes the command as one word.
    command_line = " ".join(argv[index + 1:])
    return SshRequest(destination, user, port, command_line, flags.get("O", ""), tuple(options))


def encode_command(script: str) -> str:
    """A raw line as ansible.builtin.winrm sends it: stripped, non-blank lines, UTF-16-LE, base64."""
    text = "\n".join(line.strip() for line in script.splitlines() if line.strip())
    return ENCODED_PREFIX + base64.b64encode(text.encode("utf-16-le")).decode("ascii")


def winrm_command(command_line: str) -> tuple[str, list[str]]:
    """(Command, Arguments) of the WinRS command for ``command_line``, split as ansible.builtin.winrm does.

    sshd with DefaultShell=powershell hands the line to PowerShell; on WinRS the winrm plugin does the
    same by encoding the line, so the lab sees what a PowerShell default shell would run.
    """
    if command_line.startswith(ENCODED_PREFIX) or command_line.startswith("type "):
        parts = command_line.split(" ")
    else:
        parts = encode_command(command_line).split(" ")
    return parts[0], parts[1:]


def stdin_chunks(data: bytes) -> list[tuple[bytes, bool]]:
    """stdin as WinRS Send messages: (chunk, is_last)."""
    chunks = [data[start:start + _STDIN_CHUNK] for start in range(0, len(data), _STDIN_CHUNK)]
    return [(chunk, number == len(chunks) - 1) for number, chunk in enumerate(chunks)]


# --------------------------------------------------------------------------------------------- imperative shell


def ask_password(request: SshRequest, env: t.Mapping[str, str]) -> tuple[str | None, str]:
    """(password, where it came from): the environment's, else what ``$SSH_ASKPASS`` answers (as OpenSSH asks)."""
    if env.get(ENV_PASSWORD) is not None:
        return env[ENV_PASSWORD], "env"
    askpass = env.get("SSH_ASKPASS")
    if not askpass:
        return None, "none"
    prompt = f"{request.user}@{request.host}'s password: " if request.user else f"{request.host}'s password: "
    try:
        answer = subprocess.run([askpass, prompt], env=dict(env), stdin=subprocess.DEVNULL, capture_output=True,
                                timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None, "askpass"
    if answer.returncode != 0:
        return None, "askpass"
    return answer.stdout.decode("utf-8").rstrip("\r\n"), "askpass"


def run_winrm(request: SshRequest, password: str, stdin: bytes, winrm_port: int) -> tuple[int, bytes, bytes]:
    """Run the request's command line on the host's WS-Management endpoint: (rc, stdout, stderr)."""
    # Imported here: parsing and the wrapper need no pywinrm, and `-O` control calls stay fast.
    from winrm.protocol import Protocol  # pylint: disable=import-outside-toplevel

    protocol = Protocol(f"http://{request.host}:{winrm_port}/wsman", transport="basic", username=request.user,
                        password=password, server_cert_validation="ignore", read_timeout_sec=30, operation_timeout_sec=20)
    command, arguments = winrm_command(request.command_line)
    # Same shell options as ansible.builtin.winrm: UTF-8 code page; stdin in pipe mode when there is input.
    shell_id = protocol.open_shell(codepage=65001)
    try:
        # sshd starts its default shell directly (no cmd.exe in between): so does WinRS with skip_cmd_shell.
        command_id = protocol.run_command(shell_id, command, arguments, console_mode_stdin=not stdin, skip_cmd_shell=True)
        try:
            for chunk, last in stdin_chunks(stdin):
                protocol.send_command_input(shell_id, command_id, chunk, end=last)
            stdout, stderr, rc = protocol.get_command_output(shell_id, command_id)
        finally:
            protocol.cleanup_command(shell_id, command_id)
    finally:
        protocol.close_shell(shell_id)
    return rc, stdout, stderr


def transport_error(request: SshRequest, exc: Exception, ssh_port: int) -> bytes:
    """The OpenSSH message for a failure to reach or log on to the host."""
    from winrm.exceptions import InvalidCredentialsError  # pylint: disable=import-outside-toplevel

    if isinstance(exc, InvalidCredentialsError):
        return f"{request.user}@{request.host}: Permission denied (publickey,password,keyboard-interactive).\r\n".encode()
    name = type(exc).__name__
    if "ConnectionError" in name or isinstance(exc, ConnectionError):
        return f"ssh: connect to host {request.host} port {ssh_port}: Connection refused ({name}: {exc})\r\n".encode()
    return f"Connection to {request.host} closed by remote host ({name}: {exc}).\r\n".encode()


def read_stdin(stream: t.BinaryIO | None) -> bytes:
    """stdin data; nothing when stdin is a terminal (Ansible gives a pty when it has no in_data)."""
    if stream is None or stream.closed or stream.isatty():
        return b""
    return stream.read()


def log_call(path: str, record: dict[str, t.Any]) -> None:
    """Append one JSON line to the call log (O_APPEND: parallel forks do not interleave a line)."""
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def execute(argv: t.Sequence[str], stdin: bytes, env: t.Mapping[str, str]) -> tuple[int, bytes, bytes, dict[str, t.Any]]:
    """One ssh invocation: (rc, stdout, stderr, log record)."""
    record: dict[str, t.Any] = {"argv": list(argv)}
    try:
        request = parse_argv(argv)
    except UsageError as exc:
        return SSH_ERROR_RC, b"", f"ssh: {exc}\r\n".encode(), record
    record.update({"destination": request.destination, "host": request.host, "user": request.user, "port": request.port,
                   "command_line": request.command_line, "stdin_bytes": len(stdin)})
    if request.control:
        # No master connection is ever kept (each call is a new WinRM shell): what ssh says then.
        return SSH_ERROR_RC, b"", f"Control socket connect({request.host}): No such file or directory\r\n".encode(), record
    if not request.command_line:
        return SSH_ERROR_RC, b"", b"fake ssh: interactive sessions are not supported; give a command\r\n", record
    command, arguments = winrm_command(request.command_line)
    record.update({"winrm_command": command, "winrm_arguments": arguments})
    password, record["password_source"] = ask_password(request, env)
    if password is None:
        return SSH_ERROR_RC, b"", f"{request.user}@{request.host}: Permission denied (publickey,password).\r\n".encode(), record
    winrm_port = int(env.get(ENV_WINRM_PORT) or DEFAULT_WINRM_PORT)
    try:
        rc, stdout, stderr = run_winrm(request, password, stdin, winrm_port)
    except Exception as exc:  # pylint: disable=broad-except
        # requests/pywinrm raise many types; ssh reports every transport failure the same way (rc 255).
        return SSH_ERROR_RC, b"", transport_error(request, exc, request.port or 22), record
    return rc, stdout, stderr, record


def main(argv: t.Sequence[str] | None = None) -> int:
    """Entry point: behave as ``ssh`` for Ansible's ssh connection plugin."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    stdin = read_stdin(sys.stdin.buffer if sys.stdin is not None else None)
    rc, stdout, stderr, record = execute(arguments, stdin, os.environ)
    record["rc"] = rc
    if os.environ.get(ENV_LOG):
        log_call(os.environ[ENV_LOG], record)
    sys.stdout.buffer.write(stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(stderr)
    sys.stderr.buffer.flush()
    return rc


def wrapper_text(python: str = sys.executable, password: str | None = None, log: str | Path | None = None,
                 winrm_port: int | None = None) -> str:
    """A POSIX shell script that runs this fake with the given settings (for ``ansible_ssh_executable``)."""
    lines = ["#!/bin/sh", "# Fake ssh client for the rdp.doctor lab (tests/lab/fake_ssh.py); generated, do not edit."]
    settings = {ENV_PASSWORD: password, ENV_LOG: str(log) if log else None,
                ENV_WINRM_PORT: str(winrm_port) if winrm_port else None}
    for name, value in settings.items():
        if value is not None:
            lines.append(f"{name}={shlex.quote(value)}; export {name}")
    lines.append(f'PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}}; export PYTHONPATH')
    lines.append(f'exec {shlex.quote(python)} -m tests.lab.fake_ssh "$@"')
    return "\n".join(lines) + "\n"


def write_wrapper(path: str | Path, password: str | None = None, log: str | Path | None = None,
                  winrm_port: int | None = None, python: str = sys.executable) -> Path:
    """Write the wrapper script at ``path``, executable by its owner only (it may hold a password)."""
    target = Path(path)
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
    with open(descriptor, "w", encoding="utf-8") as handle:
        handle.write(wrapper_text(python, password, log, winrm_port))
    os.chmod(target, 0o700)
    return target


if __name__ == "__main__":
    sys.exit(main())
