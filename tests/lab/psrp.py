"""PowerShell Remoting (PSRP) over the lab host's WS-Management endpoint, with psrpcore's server side.

``ansible.builtin.psrp`` (pypsrp) opens a runspace pool (WS-Man Create on
``http://schemas.microsoft.com/powershell/Microsoft.PowerShell`` carrying ``creationXml``), then runs each
command as a pipeline (Command with the CREATE_PIPELINE fragment, Send for the pipeline input, Receive
for the output), stops the previous pipeline with a ``ps_ctrl_c`` Signal and closes the pool with Delete.

Ansible does not start powershell.exe over PSRP: it decodes the ``-EncodedCommand`` script and runs it
in the runspace with the stdin lines as pipeline input; a raw command becomes ``<cmd>\\nexit
$LASTEXITCODE``. So the lab recognises the collection's bootstrap by its script text, joins the input
lines into the payload, runs the twin, writes the JSON string as one output object and reports the exit
code through the ``SetShouldExit`` host call (what ``exit N`` does in a remote runspace). Any other
script fails as PowerShell does: a CommandNotFoundException error record for its first command.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import logging
import re
import time
import typing as t
import uuid

from psrpcore import (
    CreatePipelineEvent,
    EndOfPipelineInputEvent,
    PipelineInputEvent,
    PSRPCoreError,
    PSRPPayload,
    ServerPipeline,
    ServerRunspacePool,
    StreamType,
)
from psrpcore.types import ErrorCategory, ErrorCategoryInfo, HostMethodIdentifier, NETException, PSInvocationState

from tests.lab import dispatch, winrm
from tests.lab.transport_faults import GARBAGE, oversized_output

log = logging.getLogger(__name__)

PSRP_NS = "http://schemas.microsoft.com/powershell"
RESOURCE_POWERSHELL = "http://schemas.microsoft.com/powershell/Microsoft.PowerShell"
# Largest PSRP payload returned by one Receive, and the fragment size: big outputs span several Receives
# and fragments as they do from a real WinRM service (MaxEnvelopeSize 500 KiB, base64 on the wire).
MAX_RECEIVE_PAYLOAD = 96 * 1024
FRAGMENT_SIZE = 32 * 1024
_EXIT_LASTEXITCODE = re.compile(r"(?im)^\s*exit\s+\$LASTEXITCODE\s*$")


def _not_found_exception(message: str) -> NETException:
    """The CommandNotFoundException PowerShell raises for an unknown command."""
    exception = NETException(Message=message, HResult=-2146233087)
    names = ["System.Management.Automation.CommandNotFoundException", "System.Management.Automation.RuntimeException",
             "System.SystemException"]
    exception.PSObject.type_names = names + list(exception.PSTypeNames)
    return exception


@dataclasses.dataclass
class PipelineRun:
    """Server state of one pipeline: psrpcore object, input gathered so far, whether it ran."""

    pipeline: ServerPipeline
    created: bool = False
    no_input: bool = True
    inputs: list[t.Any] = dataclasses.field(default_factory=list)
    input_done: bool = False
    executed: bool = False

    @property
    def ready(self) -> bool:
        """The CREATE_PIPELINE and all input arrived: it can run."""
        return self.created and (self.no_input or self.input_done)


class PSRPShell:
    """A runspace pool on one lab host: one WS-Man shell, pipelines as its commands."""

    kind = "psrp"

    def __init__(self, shell_id: str) -> None:
        self.shell_id = shell_id
        self.pool = ServerRunspacePool()
        self.runs: dict[str, PipelineRun] = {}
        self.outbox: dict[uuid.UUID | None, list[bytes]] = {}
        self.last_used = time.monotonic()

    # -------------------------------------------------------------------------------------- PSRP plumbing

    def feed(self, data: bytes, stream_type: StreamType = StreamType.default, pipeline_id: uuid.UUID | None = None) -> None:
        """Give client fragments to the pool, react to the events they complete, queue the answers."""
        try:
            self.pool.receive_data(PSRPPayload(data, stream_type, pipeline_id))
            while (event := self.pool.next_event()) is not None:
                self._on_event(event)
        except PSRPCoreError as exc:
            raise winrm.WSManFault(2152992672, "w:InternalError", f"PSRP protocol error: {exc}") from exc
        self._collect()

    def _on_event(self, event: t.Any) -> None:
        run = self.runs.get(str(event.pipeline_id).upper()) if getattr(event, "pipeline_id", None) else None
        if run is None:
            return
        if isinstance(event, CreatePipelineEvent):
            run.created = True
            run.no_input = bool(event.pipeline.no_input)
        elif isinstance(event, PipelineInputEvent):
            run.inputs.append(event.data)
        elif isinstance(event, EndOfPipelineInputEvent):
            run.input_done = True

    def _collect(self) -> None:
        """Move everything psrpcore queued into per-target outboxes (pool = None, else pipeline id)."""
        while (payload := self.pool.data_to_send(FRAGMENT_SIZE)) is not None:
            self.outbox.setdefault(payload.pipeline_id, []).append(payload.data)

    def _take(self, target: uuid.UUID | None) -> bytes:
        """Queued fragments for ``target``, at most about MAX_RECEIVE_PAYLOAD bytes (whole payloads)."""
        queue = self.outbox.get(target) or []
        taken = bytearray()
        while queue and (not taken or len(taken) + len(queue[0]) <= MAX_RECEIVE_PAYLOAD):
            taken += queue.pop(0)
        return bytes(taken)

    # -------------------------------------------------------------------------------------- WS-Man verbs

    async def handle(self, endpoint: winrm.HostEndpoint, wsman: winrm.WSManRequest) -> tuple[str, str]:
        """Route a request for this shell."""
        action = wsman.action
        if action == winrm.ACTION_DELETE:
            endpoint.shells.pop(self.shell_id, None)
            return winrm.ACTION_DELETE + "Response", ""
        verb = action.rsplit("/", 1)[-1] if action.startswith(winrm.SHELL_ACTIONS) else ""
        handler = {"Command": self._command, "Send": self._send, "Receive": self._receive, "Signal": self._signal}.get(verb)
        if handler is None:
            raise winrm.WSManFault(2150858771, "a:ActionNotSupported", f"The action {action} is not supported by the service.")
        return await handler(endpoint, wsman)

    async def _command(self, endpoint: winrm.HostEndpoint, wsman: winrm.WSManRequest) -> tuple[str, str]:
        del endpoint
        line = wsman.body
        if line is None:
            raise winrm.WSManFault(2150858817, "w:InvalidMessageInformationHeader", "Command without rsp:CommandLine.", 400)
        command_id = (line.get("CommandId") or str(uuid.uuid4())).upper()
        pipeline_id = uuid.UUID(command_id)
        self.runs[command_id] = PipelineRun(ServerPipeline(self.pool, pipeline_id))
        arguments = "".join((arg.text or "") for arg in line.findall(f"{{{winrm.NS['rsp']}}}Arguments"))
        self.feed(_b64(arguments), StreamType.default, pipeline_id)
        body = f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        return winrm.SHELL_ACTIONS + "CommandResponse", body

    async def _send(self, endpoint: winrm.HostEndpoint, wsman: winrm.WSManRequest) -> tuple[str, str]:
        del endpoint
        for stream in (wsman.body if wsman.body is not None else []):
            command_id = stream.get("CommandId")
            pipeline_id = uuid.UUID(command_id) if command_id else None
            stream_type = StreamType.prompt_response if stream.get("Name") == "pr" else StreamType.default
            self.feed(_b64(stream.text or ""), stream_type, pipeline_id)
        return winrm.SHELL_ACTIONS + "SendResponse", "<rsp:SendResponse/>"

    async def _receive(self, endpoint: winrm.HostEndpoint, wsman: winrm.WSManRequest) -> tuple[str, str]:
        desired = wsman.body.find(f"{{{winrm.NS['rsp']}}}DesiredStream") if wsman.body is not None else None
        command_id = (desired.get("CommandId") or "").upper() if desired is not None else ""
        if not command_id:
            return await self._receive_pool(wsman)
        run = self.runs.get(command_id)
        if run is None:
            raise winrm.WSManFault(2150858843, "w:InvalidSelectors", f"The command {command_id} is not running in shell {self.shell_id}.")
        if not run.executed:
            if not run.ready:
                await _wait_then_timeout(wsman)
            run.executed = True
            await self._execute(endpoint, run)
        data = self._take(run.pipeline.pipeline_id)
        done = run.pipeline.state != PSInvocationState.Running and not self.outbox.get(run.pipeline.pipeline_id)
        streams = f'<rsp:Stream Name="stdout" CommandId="{command_id}">{base64.b64encode(data).decode("ascii")}</rsp:Stream>'
        state = winrm.STATE_DONE if done else winrm.STATE_RUNNING
        body = (f'<rsp:ReceiveResponse>{streams}<rsp:CommandState CommandId="{command_id}" State="{state}">'
                f'{"<rsp:ExitCode>0</rsp:ExitCode>" if done else ""}</rsp:CommandState></rsp:ReceiveResponse>')
        return winrm.SHELL_ACTIONS + "ReceiveResponse", body

    async def _receive_pool(self, wsman: winrm.WSManRequest) -> tuple[str, str]:
        data = self._take(None)
        if not data:
            await _wait_then_timeout(wsman)
        stream = f'<rsp:Stream Name="stdout">{base64.b64encode(data).decode("ascii")}</rsp:Stream>'
        return winrm.SHELL_ACTIONS + "ReceiveResponse", f"<rsp:ReceiveResponse>{stream}</rsp:ReceiveResponse>"

    async def _signal(self, endpoint: winrm.HostEndpoint, wsman: winrm.WSManRequest) -> tuple[str, str]:
        del endpoint
        command_id = (wsman.body.get("CommandId") or "").upper() if wsman.body is not None else ""
        run = self.runs.pop(command_id, None)
        if run is not None:
            # Stopping a finished pipeline only forgets it (what Ansible's ps_ctrl_c before the next command does).
            self.pool.pipeline_table.pop(run.pipeline.pipeline_id, None)
            self.outbox.pop(run.pipeline.pipeline_id, None)
        return winrm.SHELL_ACTIONS + "SignalResponse", "<rsp:SignalResponse/>"

    # -------------------------------------------------------------------------------------- running a pipeline

    async def _execute(self, endpoint: winrm.HostEndpoint, run: PipelineRun) -> None:
        pipeline = run.pipeline
        pipeline.start()
        commands = list(getattr(pipeline.metadata, "commands", []) or [])
        first = commands[0] if commands else None
        text = str(first.command_text) if first is not None else ""
        is_script = bool(getattr(first, "is_script", False))
        if is_script and text == dispatch.BOOTSTRAP:
            payload = "\n".join("" if item is None else str(item) for item in run.inputs).encode("utf-8")
            await endpoint.apply_latency()
            outcome = await endpoint.run_blocking(dispatch.run_script, endpoint.host, dispatch.BOOTSTRAP, payload)
        else:
            await endpoint.apply_latency()
            outcome = await endpoint.run_blocking(dispatch.run_script, endpoint.host, text if is_script else None, b"", text)
        await endpoint.model_changed()
        fault = endpoint.transport_faults.take_output_fault()
        garbled = fault is not None and fault.kind == "garbled"
        for item in outcome.output:
            if fault is not None and fault.kind == "oversized" and isinstance(item, str):
                item = oversized_output(item.encode("utf-8"), fault.size).decode("utf-8")
            pipeline.write_output(GARBAGE.decode("latin-1") if garbled else item)
        if garbled and not outcome.output:
            pipeline.write_output(GARBAGE.decode("latin-1"))
        if outcome.error is not None:
            self._write_not_found(pipeline, outcome.error)
        exit_code = _exit_code(text, is_script, outcome)
        if exit_code is not None:
            pipeline.host_call(HostMethodIdentifier.SetShouldExit, [exit_code])
        pipeline.complete()
        self._collect()

    @staticmethod
    def _write_not_found(pipeline: ServerPipeline, error: dispatch.NotRecognized) -> None:
        pipeline.write_error(
            _not_found_exception(error.message),
            ErrorCategoryInfo(Category=ErrorCategory.ObjectNotFound, Reason="CommandNotFoundException",
                              TargetName=error.word, TargetType="String"),
            target_object=error.word,
            fully_qualified_error_id="CommandNotFoundException",
        )


def _exit_code(text: str, is_script: bool, outcome: dispatch.Outcome) -> int | None:
    """The SetShouldExit argument the script's ``exit`` statement produces, None when it does not exit."""
    if text == dispatch.BOOTSTRAP:
        return outcome.rc  # the bootstrap ends with 'exit 0' or 'exit 1'
    if is_script and _EXIT_LASTEXITCODE.search(text):
        # Ansible's raw over PSRP ('<cmd>\nexit $LASTEXITCODE'): a real host reports a failed unknown command
        # with rc != 0 (ansible-core's win_raw integration test asserts it for psrp too).
        return 1 if outcome.error is not None else outcome.rc
    return None


def _b64(text: str) -> bytes:
    try:
        return base64.b64decode(text)
    except binascii.Error as exc:
        raise winrm.WSManFault(2150858817, "w:InvalidMessageInformationHeader", f"payload is not base64: {exc}", 400) from exc


async def _wait_then_timeout(wsman: winrm.WSManRequest) -> t.NoReturn:
    """Nothing to report: hold the Receive for OperationTimeout like WinRM, then fault (clients retry)."""
    await asyncio.sleep(min(wsman.operation_timeout, winrm.MAX_RECEIVE_WAIT))
    raise winrm.operation_timeout_fault()


def create_shell(endpoint: winrm.HostEndpoint, wsman: winrm.WSManRequest, client_ip: str) -> tuple[PSRPShell, str]:
    """Open a runspace pool from a WS-Man Create: (shell, CreateResponse body)."""
    if wsman.resource_uri.lower() != RESOURCE_POWERSHELL.lower():
        name = wsman.resource_uri[len(winrm.RESOURCE_PSRP_PREFIX):]
        raise winrm.WSManFault(2150858811, "w:DestinationUnreachable",
                               f"The WS-Management service cannot process the request. Cannot find the {name} session "
                               "configuration in the WSMan: drive on the localhost computer.")
    shell_element = wsman.body
    shell_id = ((shell_element.get("ShellId") if shell_element is not None else None) or str(uuid.uuid4())).upper()
    creation = shell_element.find(f"{{{PSRP_NS}}}creationXml") if shell_element is not None else None
    if creation is None or not (creation.text or "").strip():
        raise winrm.WSManFault(2150858817, "w:InvalidMessageInformationHeader", "Create without creationXml.", 400)
    shell = PSRPShell(shell_id)
    shell.feed(_b64(creation.text or ""))
    body = winrm.shell_body(shell_id, wsman.resource_uri, endpoint.username, client_ip, "stdin pr", "stdout")
    return shell, body
