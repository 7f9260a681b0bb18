"""The consumer's view of a fetched message: every field of the record the handler sees."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from agent_runtime.engine.consumer import to_record
from agent_runtime.records import InputRecord

pytestmark = pytest.mark.unit


@dataclass
class FakeMessage:
    """What confluent-kafka's Message answers, as methods."""

    fields: dict[str, object]

    def __getattr__(self, name: str) -> object:
        return lambda: self.fields[name]


def message(**fields: object) -> FakeMessage:
    base: dict[str, object] = {
        "topic": "ticket.events", "partition": 3, "offset": 42, "key": b"T-1", "value": b"{}",
        "headers": [("traceparent", b"00-x"), ("empty", None)], "timestamp": (1, 1_700_000_000_000),
    }  # fmt: skip
    return FakeMessage({**base, **fields})


def test_a_message_becomes_a_record_with_each_field_in_its_place() -> None:
    assert to_record(message()) == InputRecord(
        topic="ticket.events", partition=3, offset=42, key=b"T-1", value=b"{}",
        headers=(("traceparent", b"00-x"), ("empty", b"")), timestamp_ms=1_700_000_000_000,
    )  # fmt: skip


def test_a_message_without_headers_or_timestamp_has_none() -> None:
    record = to_record(message(headers=None, timestamp=(0, -1), key=None))
    assert (record.headers, record.timestamp_ms, record.key) == ((), None, None)
