"""Transport faults: what the network or the WinRM service does wrong, independent of the host model.

A lab host holds a small queue of transport faults, set at runtime through the lab's admin API
(``POST /hosts/<name>/transport_fault``). Each fault is one-shot (``count`` requests, default 1) or
persistent, and fires on the next HTTP request (``reset``, ``http500``, ``http401``, ``slow``) or on the
next command output (``garbled``):

* ``reset``   close the TCP connection with a RST, without answering;
* ``http500`` answer HTTP 500 with a WS-Management SOAP fault (WSManFault ``InternalError``);
* ``http401`` answer HTTP 401 as if the credentials were rejected;
* ``slow``    wait ``seconds`` before handling the request (then answer normally);
* ``garbled`` replace the command's output by bytes that are not the script's JSON document;
* ``oversized`` answer the script's JSON document padded with a ``lab_padding`` string to ``size`` bytes
  (default 5 MiB): valid JSON, far larger than any real answer, which the controller must refuse, not keep.

``after`` (default 0) arms a fault only once the host has run ``after`` commands (bootstrap round trips) and
a client opens a new shell: ``{"kind": "reset", "persistent": true, "after": 1}`` is a host that answers the
read and is gone when the apply comes (a new task opens a new shell); ``{"kind": "garbled", "after": 1}`` garbles
the answer of the second command (the apply, which still runs on the host).

The queue is used from the lab's event loop and from the admin API (same loop), so it needs no lock.
"""

from __future__ import annotations

import dataclasses
import typing as t

REQUEST_KINDS = ("reset", "http500", "http401", "slow")
OUTPUT_KINDS = ("garbled", "oversized")
KINDS = REQUEST_KINDS + OUTPUT_KINDS

# What a garbled answer looks like: a truncated CLIXML progress record followed by binary noise. It is
# not JSON, not UTF-8 and not empty, so every parser on the controller has to reject it.
GARBAGE = b"#< CLIXML\r\n<Objs Version=\"1.1.0.1\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\">\x00\xff\xfe\x9c{\"trunc"


DEFAULT_OVERSIZE = 5 * 1024 * 1024
MAX_OVERSIZE = 64 * 1024 * 1024


class TransportFaultError(ValueError):
    """A transport fault document that cannot be honoured (bad kind, count or delay)."""


@dataclasses.dataclass
class TransportFault:
    """One queued fault. ``count`` None means persistent (never consumed)."""

    kind: str
    count: int | None = 1
    seconds: float = 0.0
    size: int = 0
    after: int = 0
    armed: bool = True

    def to_dict(self) -> dict[str, t.Any]:
        """JSON form, as the admin API reports it."""
        return {"kind": self.kind, "count": self.count, "persistent": self.count is None, "seconds": self.seconds,
                "size": self.size, "after": self.after, "armed": self.armed}


def parse_fault(document: t.Mapping[str, t.Any]) -> TransportFault:
    """Validate an admin API document ``{"kind": ..., "count": n | "persistent": true, "seconds": s}``."""
    kind = document.get("kind")
    if kind not in KINDS:
        raise TransportFaultError(f"unknown transport fault kind {kind!r}; expected one of {', '.join(KINDS)}")
    persistent = bool(document.get("persistent", False))
    count: int | None = None if persistent else document.get("count", 1)
    if count is not None and (not isinstance(count, int) or isinstance(count, bool) or count < 1):
        raise TransportFaultError(f"count must be a positive integer, not {count!r}")
    seconds = document.get("seconds", 0.0 if kind != "slow" else 5.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or not 0 <= seconds <= 600:
        raise TransportFaultError(f"seconds must be a number between 0 and 600, not {seconds!r}")
    size = document.get("size", DEFAULT_OVERSIZE if kind == "oversized" else 0)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_OVERSIZE:
        raise TransportFaultError(f"size must be a number of bytes between 0 and {MAX_OVERSIZE}, not {size!r}")
    after = document.get("after", 0)
    if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after <= 1000:
        raise TransportFaultError(f"after must be a number of commands between 0 and 1000, not {after!r}")
    return TransportFault(kind=kind, count=count, seconds=float(seconds), size=size, after=after, armed=after == 0)


def oversized_output(stdout: bytes, size: int) -> bytes:
    """The script's JSON object with a ``lab_padding`` member that brings it to ``size`` bytes (not JSON: left as is)."""
    text = stdout.rstrip()
    if not text.startswith(b"{") or not text.endswith(b"}"):
        return stdout
    head = b'{"lab_padding":"'
    tail = b'",' + text[1:] if text != b"{}" else b'"}'
    return head + b"x" * max(size - len(head) - len(tail), 0) + tail


class TransportFaults:
    """The per-host fault queue."""

    def __init__(self) -> None:
        self._queue: list[TransportFault] = []

    def add(self, fault: TransportFault) -> None:
        """Queue a fault after the ones already queued."""
        self._queue.append(fault)

    def clear(self) -> None:
        """Drop every queued fault (one-shot and persistent)."""
        self._queue.clear()

    def describe(self) -> list[dict[str, t.Any]]:
        """The queue, oldest first, as JSON-ready dicts."""
        return [fault.to_dict() for fault in self._queue]

    def arm(self, commands_run: int, opening_shell: bool) -> None:
        """Arm the faults waiting for ``after`` commands: once that many ran, at the next shell a client opens."""
        for fault in self._queue:
            if not fault.armed and opening_shell and commands_run >= fault.after:
                fault.armed = True

    def take(self, kinds: tuple[str, ...]) -> TransportFault | None:
        """The first armed fault among ``kinds``, consuming one use of it (persistent ones stay)."""
        for index, fault in enumerate(self._queue):
            if fault.kind not in kinds or not fault.armed:
                continue
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    del self._queue[index]
            return fault
        return None

    def take_request_fault(self) -> TransportFault | None:
        """The fault to apply to the HTTP request being handled, if any."""
        return self.take(REQUEST_KINDS) if self._queue else None

    def take_output_fault(self) -> TransportFault | None:
        """The fault to apply to the command output being produced, if any."""
        return self.take(OUTPUT_KINDS) if self._queue else None
