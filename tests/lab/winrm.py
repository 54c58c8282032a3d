"""WS-Management over HTTP for one lab host: the WinRS (``cmd``) shell, and routing to PSRP.

The unmodified ``ansible.builtin.winrm`` (pywinrm) and ``ansible.builtin.psrp`` (pypsrp) connections
talk to this endpoint on ``<host.address>:5985``. Everything runs on one asyncio event loop (the whole
fleet lives in one process); HTTP/1.1 is parsed by hand, minimally: ``POST /wsman`` with a
``Content-Length`` (or chunked) body, keep-alive, Basic authentication.

Faithfulness notes (shared/reference/ansible-winrm-harness.md, "protocol subtleties"):

* the response head and body leave in ONE write (Nagle + delayed ACK otherwise cost ~40 ms a message);
* the request body is always drained before answering, 401 included, or keep-alive desynchronises;
* ``RelatesTo`` echoes the request ``MessageID`` (pywinrm and pypsrp assert it);
* the ShellId is a ``Selector Name="ShellId"``; CommandId an element whose tag ends with CommandId;
* the command runs lazily on the first Receive once stdin ended (stdin arrives after Command);
* output is encoded in the shell's code page (65001 from Ansible, 437 from ``winrm.Session``);
* a Receive that cannot complete answers the OperationTimeout fault (2150858793) after the
  requested OperationTimeout, which the clients retry silently.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import codecs
import concurrent.futures
import datetime as dt
import dataclasses
import logging
import re
import socket
import struct
import time
import typing as t
import uuid
from xml.etree import ElementTree
from xml.sax.saxutils import escape, quoteattr

from tests.lab import dispatch
from tests.lab.transport_faults import GARBAGE, TransportFaults, oversized_output

log = logging.getLogger(__name__)

WINRM_PORT = 5985

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "p": "http://schemas.microsoft.com/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}

ACTION_CREATE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Create"
ACTION_DELETE = "http://schemas.xmlsoap.org/ws/2004/09/transfer/Delete"
SHELL_ACTIONS = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/"
RESOURCE_CMD = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/cmd"
RESOURCE_PSRP_PREFIX = "http://schemas.microsoft.com/powershell/"
STATE_DONE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Done"
STATE_RUNNING = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/CommandState/Running"

# cmd.exe refuses longer command lines (WINRS_SKIP_CMD_SHELL=FALSE routes the command through it).
CMD_EXE_LIMIT = 8191
# CreateProcess's limit, what applies when WINRS_SKIP_CMD_SHELL=TRUE starts the program without cmd.exe.
CREATE_PROCESS_LIMIT = 32767
MAX_BODY = 16 * 1024 * 1024
SHELL_IDLE_SECONDS = 900.0
MAX_RECEIVE_WAIT = 60.0

_ENVELOPE_HEAD = (
    '<s:Envelope xml:lang="en-US" xmlns:s="{s}" xmlns:a="{a}" xmlns:x="{x}" xmlns:w="{w}" xmlns:p="{p}" xmlns:rsp="{rsp}">'
    "<s:Header><a:Action>{{action}}</a:Action><a:MessageID>uuid:{{message_id}}</a:MessageID>"
    "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
    "<a:RelatesTo>{{relates_to}}</a:RelatesTo></s:Header><s:Body>"
).format(**NS)


# --------------------------------------------------------------------------------------------- HTTP


@dataclasses.dataclass
class HttpRequest:
    """One parsed HTTP/1.1 request (header names lower-cased)."""

    method: str
    path: str
    version: str
    headers: dict[str, str]
    body: bytes

    @property
    def keep_alive(self) -> bool:
        """Whether the client wants the connection kept open after the answer."""
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


class BadHttpRequest(Exception):
    """The bytes on the socket are not an HTTP request we can answer."""


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A ``Transfer-Encoding: chunked`` body."""
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        try:
            size = int(size_line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise BadHttpRequest("bad chunk size") from exc
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)
        if len(body) > MAX_BODY:
            raise BadHttpRequest("body too large")


async def read_request(reader: asyncio.StreamReader) -> HttpRequest | None:
    """The next request on a keep-alive connection, body drained; None at end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadHttpRequest("truncated request head") from exc
        return None
    except asyncio.LimitOverrunError as exc:
        raise BadHttpRequest("request head too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, path, version = lines[0].split(" ", 2)
    except ValueError as exc:
        raise BadHttpRequest(f"bad request line {lines[0]!r}") from exc
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _sep, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        try:
            length = int(headers.get("content-length", "0") or "0")
        except ValueError as exc:
            raise BadHttpRequest("bad Content-Length") from exc
        if length < 0 or length > MAX_BODY:
            raise BadHttpRequest("bad Content-Length")
        body = await reader.readexactly(length) if length else b""
    return HttpRequest(method.upper(), path, version.upper(), headers, body)


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
            500: "Internal Server Error"}


def http_response(status: int, body: bytes = b"", content_type: str = "application/soap+xml;charset=UTF-8",
                  extra_headers: t.Sequence[tuple[str, str]] = (), keep_alive: bool = True) -> bytes:
    """Head and body as one buffer (written with one send)."""
    headers = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}", "Server: Microsoft-HTTPAPI/2.0",
               f"Content-Length: {len(body)}"]
    if body:
        headers.append(f"Content-Type: {content_type}")
    headers.extend(f"{name}: {value}" for name, value in extra_headers)
    if not keep_alive:
        headers.append("Connection: close")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + body


def reset_connection(writer: asyncio.StreamWriter) -> None:
    """Drop the TCP connection with a RST, as a crashed service or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


# --------------------------------------------------------------------------------------------- WS-Management


@dataclasses.dataclass
class WSManRequest:
    """The parts of a WS-Management request the endpoint uses."""

    action: str
    message_id: str
    resource_uri: str
    selectors: dict[str, str]
    options: dict[str, str]
    operation_timeout: float
    body: ElementTree.Element | None


@dataclasses.dataclass
class WSManFault(Exception):
    """A SOAP fault answer (HTTP 500 unless told otherwise)."""

    code: int
    subcode: str
    reason: str
    http_status: int = 500
    wmi_code: int | None = None

    def __str__(self) -> str:
        return f"WSManFault {self.code} {self.subcode}: {self.reason}"


def operation_timeout_fault() -> WSManFault:
    """What WinRM answers when a Receive has nothing to report within OperationTimeout."""
    return WSManFault(2150858793, "w:TimedOut",
                      "The WS-Management service cannot complete the operation within the time specified in OperationTimeout.")


def shell_not_found_fault(shell_id: str) -> WSManFault:
    """The ShellId names no shell of this service."""
    return WSManFault(2150858843, "w:InvalidSelectors",
                      f"The request for the Windows Remote Shell with ShellId {shell_id} failed because the shell was not "
                      "found on the server. Possible causes are: the specified ShellId is incorrect or the shell no longer "
                      "exists on the server. Provide the correct ShellId or create a new shell and retry the operation.")


def internal_error_fault(reason: str) -> WSManFault:
    """A generic service failure."""
    return WSManFault(2147500037, "w:InternalError", reason)


_DURATION = re.compile(r"^P(?:T)?(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?$")


def parse_duration(text: str | None, default: float = 20.0) -> float:
    """Seconds of an xs:duration like ``PT20S`` or ``PT60.000S`` (default when absent or odd)."""
    match = _DURATION.match((text or "").strip())
    if not match or not any(match.groups()):
        return default
    hours, minutes, seconds = (float(group or 0) for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def _q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


def parse_envelope(data: bytes) -> WSManRequest:
    """Parse a SOAP envelope; raises WSManFault (400-ish) when it is not one."""
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", f"The request is not valid XML: {exc}",
                         http_status=400) from exc
    header = root.find(_q("s", "Header"))
    body = root.find(_q("s", "Body"))
    if header is None or body is None:
        raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "The request is not a SOAP envelope.", 400)

    def text(prefix: str, tag: str) -> str:
        element = header.find(_q(prefix, tag))  # type: ignore[union-attr]
        return (element.text or "").strip() if element is not None else ""

    selectors = {sel.get("Name", ""): (sel.text or "") for sel in header.iter(_q("w", "Selector"))}
    options = {opt.get("Name", ""): (opt.text or "") for opt in header.iter(_q("w", "Option"))}
    first = next(iter(body), None)
    return WSManRequest(
        action=text("a", "Action"),
        message_id=text("a", "MessageID"),
        resource_uri=text("w", "ResourceURI"),
        selectors=selectors,
        options=options,
        operation_timeout=parse_duration(text("w", "OperationTimeout")),
        body=first,
    )


def envelope(action: str, relates_to: str, body: str) -> bytes:
    """A response envelope around ``body`` (already serialised XML)."""
    head = _ENVELOPE_HEAD.format(action=escape(action), message_id=str(uuid.uuid4()).upper(), relates_to=escape(relates_to))
    return (head + body + "</s:Body></s:Envelope>").encode("utf-8")


def fault_envelope(fault: WSManFault, relates_to: str, machine: str) -> bytes:
    """The SOAP fault body pywinrm and pypsrp parse (Code/Subcode/Reason and the WSManFault detail)."""
    wmi = ""
    if fault.wmi_code is not None:
        wmi = ('<p:MSFT_WmiError xmlns:p="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/MSFT_WmiError">'
               f"<p:error_Code>{fault.wmi_code}</p:error_Code></p:MSFT_WmiError>")
    body = (
        f'<s:Fault><s:Code><s:Value>s:Receiver</s:Value><s:Subcode><s:Value>{escape(fault.subcode)}</s:Value></s:Subcode>'
        f'</s:Code><s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)} </s:Text></s:Reason><s:Detail>'
        f'<f:WSManFault xmlns:f="{NS["f"]}" Code="{fault.code}" Machine={quoteattr(machine)}>'
        f"<f:Message>{escape(fault.reason)} </f:Message></f:WSManFault>{wmi}</s:Detail></s:Fault>"
    )
    return envelope("http://schemas.dmtf.org/wbem/wsman/1/wsman/fault", relates_to, body)


def codepage_encoding(codepage: str | None) -> str:
    """Python codec for a WINRS_CODEPAGE (65001 UTF-8; 437 when absent, WinRS's default)."""
    number = (codepage or "437").strip()
    if number == "65001":
        return "utf-8"
    try:
        return codecs.lookup(f"cp{number}").name
    except LookupError:
        return "utf-8"


# --------------------------------------------------------------------------------------------- WinRS shell


@dataclasses.dataclass
class WinRSCommand:
    """One process started in a WinRS shell."""

    command_id: str
    command_line: str
    skip_cmd_shell: bool = False  # WINRS_SKIP_CMD_SHELL=TRUE: started directly, not through cmd.exe
    stdin: bytearray = dataclasses.field(default_factory=bytearray)
    stdin_started: bool = False
    stdin_done: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    result: tuple[int, bytes, bytes] | None = None
    delivered: bool = False


@dataclasses.dataclass
class WinRSShell:
    """A ``cmd`` shell: code page and its commands."""

    shell_id: str
    encoding: str
    commands: dict[str, WinRSCommand] = dataclasses.field(default_factory=dict)
    last_used: float = dataclasses.field(default_factory=time.monotonic)

    kind: t.ClassVar[str] = "winrs"


def shell_body(shell_id: str, resource_uri: str, owner: str, client_ip: str, input_streams: str, output_streams: str) -> str:
    """CreateResponse body: ResourceCreated (ShellId selector) and the Shell description."""
    return (
        f"<x:ResourceCreated><a:Address>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:Address>"
        f"<a:ReferenceParameters><w:ResourceURI>{escape(resource_uri)}</w:ResourceURI><w:SelectorSet>"
        f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet></a:ReferenceParameters></x:ResourceCreated>'
        f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId><rsp:ResourceUri>{escape(resource_uri)}</rsp:ResourceUri>"
        f"<rsp:Owner>{escape(owner)}</rsp:Owner><rsp:ClientIP>{escape(client_ip)}</rsp:ClientIP>"
        f"<rsp:IdleTimeOut>PT7200.000S</rsp:IdleTimeOut><rsp:InputStreams>{escape(input_streams)}</rsp:InputStreams>"
        f"<rsp:OutputStreams>{escape(output_streams)}</rsp:OutputStreams><rsp:ShellRunTime>P0DT0H0M0S</rsp:ShellRunTime>"
        f"<rsp:ShellInactivity>P0DT0H0M0S</rsp:ShellInactivity></rsp:Shell>"
    )


def _child_text(element: ElementTree.Element | None, prefix: str, tag: str, default: str = "") -> str:
    if element is None:
        return default
    child = element.find(_q(prefix, tag))
    return (child.text or "") if child is not None else default


def _stream_xml(name: str, command_id: str, data: bytes) -> str:
    attrs = f'Name="{name}" CommandId="{command_id}"'
    parts = [f"<rsp:Stream {attrs}>{base64.b64encode(data).decode('ascii')}</rsp:Stream>"] if data else []
    parts.append(f'<rsp:Stream {attrs} End="true"></rsp:Stream>')
    return "".join(parts)


def receive_body(command_id: str, rc: int, stdout: bytes, stderr: bytes) -> str:
    """ReceiveResponse with both streams ended and CommandState Done with the exit code."""
    return (
        f"<rsp:ReceiveResponse>{_stream_xml('stdout', command_id, stdout)}{_stream_xml('stderr', command_id, stderr)}"
        f'<rsp:CommandState CommandId="{command_id}" State="{STATE_DONE}"><rsp:ExitCode>{rc}</rsp:ExitCode>'
        f"</rsp:CommandState></rsp:ReceiveResponse>"
    )


# --------------------------------------------------------------------------------------------- the endpoint


async def _nothing() -> None:
    """Default model-change hook (no RDP listener to re-evaluate)."""


class HostEndpoint:  # pylint: disable=too-many-instance-attributes
    """The WS-Management service of one lab host (WinRS and PSRP shells), on ``host.address:5985``."""

    def __init__(self, host: t.Any, username: str, password: str, latency_ms: float = 0.0, port: int = WINRM_PORT,
                 executor: concurrent.futures.Executor | None = None) -> None:
        self.host = host
        self.username = username
        self.password = password
        self.latency_ms = float(latency_ms or 0.0)
        self.port = port
        self.executor = executor
        self.counters = dispatch.counters_for(host)
        self.transport_faults = TransportFaults()
        self.shells: dict[str, t.Any] = {}
        self.server: asyncio.base_events.Server | None = None
        # Called after every command run: a twin may have changed what the host's RDP listener does.
        self.model_changed: t.Callable[[], t.Awaitable[None]] = _nothing
        self._writers: set[asyncio.StreamWriter] = set()
        self._authorization = "Basic " + base64.b64encode(f"{username}:{password}".encode("utf-8")).decode("ascii")

    @property
    def name(self) -> str:
        """The host's name."""
        return str(self.host.name)

    @property
    def address(self) -> str:
        """The loopback address the host listens on."""
        return str(self.host.address)

    # -------------------------------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Listen on ``address:port``; OSError (address in use, not local) propagates to the caller."""
        self.server = await asyncio.start_server(self.handle_connection, self.address, self.port, reuse_address=True,
                                                 backlog=128, limit=64 * 1024)

    async def close(self) -> None:
        """Stop listening and drop open connections."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def run_blocking(self, func: t.Callable[..., t.Any], *args: t.Any) -> t.Any:
        """Run twin code off the event loop so one slow twin does not stall the fleet."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, func, *args)

    async def apply_latency(self) -> None:
        """The per-host latency knob: added before each command's output."""
        if self.latency_ms > 0:
            await asyncio.sleep(self.latency_ms / 1000.0)

    def faulty_output(self, stdout: bytes) -> bytes:
        """The command's output as an armed output fault (garbled, oversized) changes it."""
        fault = self.transport_faults.take_output_fault()
        if fault is None:
            return stdout
        log.info("%s: transport fault %s", self.name, fault.kind)
        return GARBAGE if fault.kind == "garbled" else oversized_output(stdout, fault.size)

    # -------------------------------------------------------------------------------------- HTTP

    async def handle_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve requests on one keep-alive connection until the client closes it."""
        peer = writer.get_extra_info("peername") or ("?", 0)
        self._writers.add(writer)
        try:
            while True:
                try:
                    request = await read_request(reader)
                except BadHttpRequest as exc:
                    writer.write(http_response(400, str(exc).encode(), "text/plain", keep_alive=False))
                    await writer.drain()
                    break
                if request is None:
                    break
                response = await self.handle_request(request, str(peer[0]))
                if response is None:
                    reset_connection(writer)
                    return
                writer.write(response)
                await writer.drain()
                if not request.keep_alive:
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # pylint: disable=broad-except
            log.exception("%s: connection handler failed", self.name)
        finally:
            self._writers.discard(writer)
            if not writer.transport.is_closing():
                writer.close()

    async def _restarting(self) -> bool:
        """A restart the host scheduled (``shutdown.exe /r``) happens at the first request after its time; then WinRM
        resets connections for ``RESTART_DOWN_SECONDS``, as a restarting Windows does. The RDP listener follows the model."""
        host = self.host
        if getattr(host, "restart_at", None) is None and getattr(host, "down_until", None) is None:
            return False
        now = host.clock(dt.datetime.now(dt.timezone.utc))
        if host.restart_if_due(now):
            self.shells.clear()  # a restart ends every WinRS and PSRP shell
            await self.model_changed()
        return bool(host.winrm_down(now))

    def _authorized(self, request: HttpRequest) -> bool:
        return request.headers.get("authorization", "") == self._authorization

    async def handle_request(self, request: HttpRequest, client_ip: str) -> bytes | None:
        """One HTTP request -> the full response bytes (None: reset the connection)."""
        self.counters.add("requests")
        if await self._restarting():
            self.counters.add("refused")
            log.info("%s: restarting (shutdown.exe /r), connection refused", self.name)
            return None
        # A shell opens (WS-Transfer Create): faults waiting for "after" commands arm from here on.
        self.transport_faults.arm(self.counters.round_trips, b"/transfer/Create" in request.body)
        fault = self.transport_faults.take_request_fault()
        if fault is not None:
            log.info("%s: transport fault %s", self.name, fault.kind)
            if fault.kind == "reset":
                return None
            if fault.kind == "http401":
                return self._unauthorized(request)
            if fault.kind == "slow":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "http500":
                relates = self._message_id(request.body)
                failure = internal_error_fault("The WS-Management service cannot process the request because of an "
                                               "internal error (lab transport fault http500).")
                return http_response(500, fault_envelope(failure, relates, self.name), keep_alive=request.keep_alive)
        if request.path.split("?", 1)[0].lower() != "/wsman":
            return http_response(404, b"", keep_alive=request.keep_alive)
        if request.method != "POST":
            return http_response(405, b"", extra_headers=[("Allow", "POST")], keep_alive=request.keep_alive)
        if not self._authorized(request):
            return self._unauthorized(request)
        return await self._handle_wsman(request, client_ip)

    @staticmethod
    def _unauthorized(request: HttpRequest) -> bytes:
        return http_response(401, b"", extra_headers=[("WWW-Authenticate", 'Basic realm="WSMAN"')],
                             keep_alive=request.keep_alive)

    @staticmethod
    def _message_id(body: bytes) -> str:
        match = re.search(rb"MessageID[^>]*>([^<]+)<", body)
        return match.group(1).decode("utf-8", "replace").strip() if match else ""

    async def _handle_wsman(self, request: HttpRequest, client_ip: str) -> bytes:
        relates = ""
        try:
            wsman = parse_envelope(request.body)
            relates = wsman.message_id
            action, body = await self.handle_wsman(wsman, client_ip)
            return http_response(200, envelope(action, relates, body), keep_alive=request.keep_alive)
        except WSManFault as fault:
            if fault.code != 2150858793:
                log.info("%s: fault %s", self.name, fault)
            return http_response(fault.http_status, fault_envelope(fault, relates or self._message_id(request.body), self.name),
                                 keep_alive=request.keep_alive)
        except Exception as exc:  # pylint: disable=broad-except
            # A lab bug answers like a broken WinRM service (HTTP 500 fault) instead of hanging the client.
            log.exception("%s: request failed", self.name)
            failure = internal_error_fault(f"lab internal error: {type(exc).__name__}: {exc}")
            return http_response(500, fault_envelope(failure, relates or self._message_id(request.body), self.name),
                                 keep_alive=request.keep_alive)

    # -------------------------------------------------------------------------------------- WS-Management

    def _shell(self, wsman: WSManRequest) -> t.Any:
        shell_id = wsman.selectors.get("ShellId", "")
        shell = self.shells.get(shell_id.upper())
        if shell is None:
            raise shell_not_found_fault(shell_id)
        shell.last_used = time.monotonic()
        return shell

    def _expire_shells(self) -> None:
        """Forget shells nobody closed (clients that died mid-task)."""
        horizon = time.monotonic() - SHELL_IDLE_SECONDS
        for shell_id in [key for key, shell in self.shells.items() if shell.last_used < horizon]:
            del self.shells[shell_id]

    async def handle_wsman(self, wsman: WSManRequest, client_ip: str) -> tuple[str, str]:
        """Route one request: (response action, response body XML)."""
        if wsman.action == ACTION_CREATE:
            self._expire_shells()
            return self._create(wsman, client_ip)
        shell = self._shell(wsman)
        if shell.kind == "psrp":
            return await shell.handle(self, wsman)
        if wsman.action == ACTION_DELETE:
            self.shells.pop(shell.shell_id, None)
            return ACTION_DELETE + "Response", ""
        handler = {
            SHELL_ACTIONS + "Command": self._command,
            SHELL_ACTIONS + "Send": self._send,
            SHELL_ACTIONS + "Receive": self._receive,
            SHELL_ACTIONS + "Signal": self._signal,
        }.get(wsman.action)
        if handler is None:
            raise WSManFault(2150858771, "a:ActionNotSupported", f"The action {wsman.action} is not supported by the service.")
        return await handler(shell, wsman)

    def _create(self, wsman: WSManRequest, client_ip: str) -> tuple[str, str]:
        resource = wsman.resource_uri
        if resource.startswith(RESOURCE_PSRP_PREFIX):
            from tests.lab import psrp  # pylint: disable=import-outside-toplevel

            shell, body = psrp.create_shell(self, wsman, client_ip)
            self.shells[shell.shell_id] = shell
            return ACTION_CREATE + "Response", body
        if resource.lower() != RESOURCE_CMD:
            raise WSManFault(2150858811, "w:DestinationUnreachable",
                             f"The WS-Management service cannot process the request. The resource URI {resource} was not found.")
        shell_id = str(uuid.uuid4()).upper()
        shell = WinRSShell(shell_id, codepage_encoding(wsman.options.get("WINRS_CODEPAGE")))
        self.shells[shell_id] = shell
        streams = wsman.body
        body = shell_body(shell_id, RESOURCE_CMD, self.username, client_ip,
                          _child_text(streams, "rsp", "InputStreams", "stdin"),
                          _child_text(streams, "rsp", "OutputStreams", "stdout stderr"))
        return ACTION_CREATE + "Response", body

    async def _command(self, shell: WinRSShell, wsman: WSManRequest) -> tuple[str, str]:
        line = wsman.body
        if line is None or line.tag != _q("rsp", "CommandLine"):
            raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", "Command without rsp:CommandLine.", 400)
        command = _child_text(line, "rsp", "Command").strip()
        arguments = [(arg.text or "") for arg in line.findall(_q("rsp", "Arguments"))]
        command_line = " ".join([command, *arguments]) if arguments else command
        command_id = (line.get("CommandId") or str(uuid.uuid4())).upper()
        skip_cmd_shell = wsman.options.get("WINRS_SKIP_CMD_SHELL", "FALSE").strip().upper() == "TRUE"
        shell.commands[command_id] = WinRSCommand(command_id, command_line, skip_cmd_shell)
        return SHELL_ACTIONS + "CommandResponse", f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"

    @staticmethod
    def _command_of(shell: WinRSShell, command_id: str | None) -> WinRSCommand:
        command = shell.commands.get((command_id or "").upper())
        if command is None:
            raise WSManFault(2150858843, "w:InvalidSelectors", f"The command {command_id} is not running in shell {shell.shell_id}.")
        return command

    async def _send(self, shell: WinRSShell, wsman: WSManRequest) -> tuple[str, str]:
        for stream in (wsman.body if wsman.body is not None else []):
            command = self._command_of(shell, stream.get("CommandId"))
            try:
                command.stdin += base64.b64decode(stream.text or "")
            except binascii.Error as exc:
                raise WSManFault(2150858817, "w:InvalidMessageInformationHeader", f"stdin is not base64: {exc}", 400) from exc
            command.stdin_started = True
            if (stream.get("End") or "").lower() == "true":
                command.stdin_done.set()
        return SHELL_ACTIONS + "SendResponse", "<rsp:SendResponse/>"

    async def _receive(self, shell: WinRSShell, wsman: WSManRequest) -> tuple[str, str]:
        desired = wsman.body.find(_q("rsp", "DesiredStream")) if wsman.body is not None else None
        command = self._command_of(shell, desired.get("CommandId") if desired is not None else None)
        if command.result is None:
            if command.stdin_started and not command.stdin_done.is_set():
                # The process is still reading stdin: WinRM holds the Receive until OperationTimeout.
                try:
                    await asyncio.wait_for(command.stdin_done.wait(), min(wsman.operation_timeout, MAX_RECEIVE_WAIT))
                except asyncio.TimeoutError as exc:
                    raise operation_timeout_fault() from exc
            command.result = await self._execute(shell, command)
        rc, stdout, stderr = command.result
        if command.delivered:
            stdout = stderr = b""
        command.delivered = True
        return SHELL_ACTIONS + "ReceiveResponse", receive_body(command.command_id, rc, stdout, stderr)

    async def _execute(self, shell: WinRSShell, command: WinRSCommand) -> tuple[int, bytes, bytes]:
        if len(command.command_line) > (CREATE_PROCESS_LIMIT if command.skip_cmd_shell else CMD_EXE_LIMIT):
            # cmd.exe (or CreateProcess, without cmd.exe) refuses the line before PowerShell starts.
            self.counters.add("commands")
            return 1, b"", "The command line is too long.\r\n".encode(shell.encoding)
        await self.apply_latency()
        rc, stdout, stderr = await self.run_blocking(dispatch.dispatch, self.host, command.command_line, bytes(command.stdin),
                                                     shell.encoding)
        await self.model_changed()
        return rc, self.faulty_output(stdout), stderr

    async def _signal(self, shell: WinRSShell, wsman: WSManRequest) -> tuple[str, str]:
        command_id = wsman.body.get("CommandId") if wsman.body is not None else None
        shell.commands.pop((command_id or "").upper(), None)
        return SHELL_ACTIONS + "SignalResponse", "<rsp:SignalResponse/>"

    # -------------------------------------------------------------------------------------- status

    def status(self) -> dict[str, t.Any]:
        """Per-host status for the admin API."""
        return {"name": self.name, "address": self.address, "port": self.port, "latency_ms": self.latency_ms,
                "counters": self.counters.to_dict(), "transport_faults": self.transport_faults.describe(),
                "shells": len(self.shells)}
