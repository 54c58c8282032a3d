"""The lab's transport fault queue: documents validated, "after" faults armed only at a new shell, oversized answers."""

from __future__ import annotations

import json

import pytest

from tests.lab.transport_faults import (DEFAULT_OVERSIZE, REQUEST_KINDS, TransportFaultError, TransportFaults, oversized_output,
                                        parse_fault)


@pytest.mark.parametrize("document, message", [
    ({"kind": "explode"}, "unknown transport fault kind 'explode'"),
    ({"kind": "reset", "count": 0}, "count must be a positive integer"),
    ({"kind": "slow", "seconds": 601}, "seconds must be a number between 0 and 600"),
    ({"kind": "oversized", "size": -1}, "size must be a number of bytes"),
    ({"kind": "oversized", "size": "big"}, "size must be a number of bytes"),
    ({"kind": "reset", "after": True}, "after must be a number of commands"),
    ({"kind": "reset", "after": 1001}, "after must be a number of commands"),
])
def test_bad_documents_are_refused_with_the_reason(document: dict, message: str) -> None:
    with pytest.raises(TransportFaultError, match=message):
        parse_fault(document)


def test_after_arms_once_enough_commands_ran_and_a_shell_opens() -> None:
    queue = TransportFaults()
    queue.add(parse_fault({"kind": "reset", "persistent": True, "after": 1}))
    assert queue.take_request_fault() is None  # not armed
    queue.arm(commands_run=1, opening_shell=False)
    assert queue.take_request_fault() is None  # the first command's own shell keeps working (Signal, Delete)
    queue.arm(commands_run=0, opening_shell=True)
    assert queue.take_request_fault() is None  # a new shell before the first command ran
    queue.arm(commands_run=1, opening_shell=True)
    fault = queue.take_request_fault()
    assert fault is not None and fault.kind == "reset" and fault.kind in REQUEST_KINDS
    assert queue.take_request_fault() is not None  # persistent: from then on, every request


def test_oversized_output_is_valid_json_of_the_size_asked_for() -> None:
    padded = oversized_output(b'{"a": 1, "b": [2]}\r\n', 10_000)
    assert len(padded) == 10_000 and json.loads(padded)["b"] == [2]
    assert len(oversized_output(b"{}", 100)) == 100 and json.loads(oversized_output(b"{}", 100))["lab_padding"]
    assert oversized_output(b"not json", 100) == b"not json"
    assert parse_fault({"kind": "oversized"}).size == DEFAULT_OVERSIZE
