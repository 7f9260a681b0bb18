"""Dead-letter records: the envelope matches events/dead-letter.schema.json, headers carry the reason."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent_runtime.engine.deadletter import ErrorClass, build_dead_letter, error_class_of
from agent_runtime.records import InputRecord

pytestmark = pytest.mark.unit

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "events" / "dead-letter.schema.json").read_text())


def validate(envelope: Any) -> None:
    jsonschema.validate(envelope, SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def record(value: bytes | None, key: bytes | None = b"T-1") -> InputRecord:
    return InputRecord(topic="ticket.events", partition=2, offset=41, key=key, value=value)


def test_a_text_payload_is_kept_as_utf8_with_every_header() -> None:
    out = build_dead_letter(
        record(b'{"ticket_id": "T-1", bad'),
        topic="ticket.dlq",
        agent="triage",
        error_class=ErrorClass.INVALID_JSON,
        message="Expecting ',' delimiter",
        exception="PermanentError",
        attempts=1,
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        failed_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    envelope = json.loads(out.value)
    validate(envelope)
    assert out.topic == "ticket.dlq"
    assert out.key == b"T-1"
    assert envelope["payload"] == {"encoding": "utf-8", "data": '{"ticket_id": "T-1", bad'}
    assert envelope["failed_at"] == "2026-01-02T03:04:05Z"
    assert envelope["source"] == {"topic": "ticket.events", "partition": 2, "offset": 41, "key": "T-1"}
    assert envelope["error"] == {
        "class": "invalid_json",
        "message": "Expecting ',' delimiter",
        "exception": "PermanentError",
    }
    assert dict(out.headers) == {
        "srs-error-class": b"invalid_json",
        "srs-error-message": b"Expecting ',' delimiter",
        "srs-source-topic": b"ticket.events",
        "srs-source-partition": b"2",
        "srs-source-offset": b"41",
        "srs-attempts": b"1",
    }


def test_binary_payload_is_base64_and_missing_key_and_value_are_allowed() -> None:
    binary = build_dead_letter(
        record(b"\xff\x00\xfe"), topic="dlq", agent="a", error_class=ErrorClass.PERMANENT, message="m",
        exception="E", attempts=0, trace_id=None,
    )  # fmt: skip
    envelope = json.loads(binary.value)
    validate(envelope)
    assert envelope["payload"] == {"encoding": "base64", "data": base64.b64encode(b"\xff\x00\xfe").decode()}

    empty = build_dead_letter(
        record(None, key=None), topic="dlq", agent="a", error_class=ErrorClass.RETRIES_EXHAUSTED, message="m",
        exception="E", attempts=5, trace_id=None,
    )  # fmt: skip
    envelope = json.loads(empty.value)
    validate(envelope)
    assert empty.key is None
    assert envelope["ticket_id"] is None
    assert envelope["payload"] == {"encoding": "utf-8", "data": ""}


def test_the_event_id_is_stable_across_replays_and_distinct_per_record() -> None:
    def event_id(offset: int) -> str:
        r = InputRecord(topic="t", partition=0, offset=offset, key=None, value=b"x")
        out = build_dead_letter(
            r, topic="dlq", agent="a", error_class=ErrorClass.PERMANENT, message="m", exception="E", attempts=1,
            trace_id=None,
        )  # fmt: skip
        return str(json.loads(out.value)["event_id"])

    assert event_id(1) == event_id(1)
    assert event_id(1) != event_id(2)


def test_long_messages_are_cut_in_the_header_but_kept_longer_in_the_envelope() -> None:
    out = build_dead_letter(
        record(b"{}"), topic="dlq", agent="a", error_class=ErrorClass.SCHEMA_INVALID, message="x" * 20_000,
        exception="ValidationError", attempts=1, trace_id=None,
    )  # fmt: skip
    assert len(dict(out.headers)["srs-error-message"]) == 1000
    envelope = json.loads(out.value)
    validate(envelope)
    assert 1000 < len(envelope["error"]["message"]) < 20_000


def test_unknown_handler_error_classes_become_permanent() -> None:
    assert error_class_of("schema_invalid") is ErrorClass.SCHEMA_INVALID
    assert error_class_of("made_up") is ErrorClass.PERMANENT
