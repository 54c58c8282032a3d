"""Transport faults: what the network or the WinRM service does wrong, independent of the host model.

A lab host holds a small queue of transport faults, set at runtime through the lab's admin API
(``POST /hosts/<name>/transport_fault``). Each fault is one-shot (``count`` requests, default 1) or
persistent, and fires on the next HTTP request (``reset``, ``http500``, ``http401``, ``slow``) or on the
next command output (``garbled``):

* ``reset``   close the TCP connection with a RST, without answering;
* ``http500`` answer HTTP 500 with a WS-Management SOAP fault (WSManFault ``InternalError``);
* ``http401`` answer HTTP 401 as if the credentials were rejected;
* ``slow``    wait ``seconds`` before handling the request (then answer normally);
* ``garbled`` replace the command's output by bytes that are not the script's JSON document.

The queue is used from the lab's event loop and from the admin API (same loop), so it needs no lock.
"""

from __future__ import annotations

import dataclasses
import typing as t

REQUEST_KINDS = ("reset", "http500", "http401", "slow")
OUTPUT_KINDS = ("garbled",)
KINDS = REQUEST_KINDS + OUTPUT_KINDS

# What a garbled answer looks like: a truncated CLIXML progress record followed by binary noise. It is
# not JSON, not UTF-8 and not empty, so every parser on the controller has to reject it.
GARBAGE = b"#< CLIXML\r\n<Objs Version=\"1.1.0.1\"><Obj S=\"progress\" RefId=\"0\"><TN RefId=\"0\">\x00\xff\xfe\x9c{\"trunc"


class TransportFaultError(ValueError):
    """A transport fault document that cannot be honoured (bad kind, count or delay)."""


@dataclasses.dataclass
class TransportFault:
    """One queued fault. ``count`` None means persistent (never consumed)."""

    kind: str
    count: int | None = 1
    seconds: float = 0.0

    def to_dict(self) -> dict[str, t.Any]:
        """JSON form, as the admin API reports it."""
        return {"kind": self.kind, "count": self.count, "persistent": self.count is None, "seconds": self.seconds}


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
    return TransportFault(kind=kind, count=count, seconds=float(seconds))


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

    def take(self, kinds: tuple[str, ...]) -> TransportFault | None:
        """The first queued fault among ``kinds``, consuming one use of it (persistent ones stay)."""
        for index, fault in enumerate(self._queue):
            if fault.kind not in kinds:
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
