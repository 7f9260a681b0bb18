"""Dead-letter records: the envelope matches events/dead-letter.schema.json, headers carry the reason."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agent_runtime.engine.deadletter import ErrorClass, build_dead_letter, error_class_of, record_size
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
    value = b'{"ticket_id": "T-1", bad'
    assert envelope["payload"] == {
        "encoding": "utf-8", "data": value.decode(), "size": len(value), "sha256": hashlib.sha256(value).hexdigest(),
        "truncated": False,
    }  # fmt: skip
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
    assert envelope["payload"]["encoding"] == "base64"
    assert envelope["payload"]["data"] == base64.b64encode(b"\xff\x00\xfe").decode()

    empty = build_dead_letter(
        record(None, key=None), topic="dlq", agent="a", error_class=ErrorClass.RETRIES_EXHAUSTED, message="m",
        exception="E", attempts=5, trace_id=None,
    )  # fmt: skip
    envelope = json.loads(empty.value)
    validate(envelope)
    assert empty.key is None
    assert envelope["ticket_id"] is None
    assert (envelope["payload"]["data"], envelope["payload"]["size"], envelope["payload"]["truncated"]) == (
        "",
        0,
        False,
    )


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


@pytest.mark.parametrize(
    ("value", "encoding"),
    [(b"x" * 1_200_000, "utf-8"), (b"\xff" * 1_200_000, "base64"), ('"\u00e9\n'.encode() * 200_000, "utf-8")],
)
@pytest.mark.parametrize("max_bytes", [100_000, 8_192])
def test_a_dead_letter_is_cut_to_fit_and_keeps_where_the_original_is(
    value: bytes, encoding: str, max_bytes: int
) -> None:
    out = build_dead_letter(
        record(value, key=b"K" * 5000), topic="dlq", agent="a", error_class=ErrorClass.INVALID_JSON, message="m" * 9000,
        exception="E", attempts=1, trace_id=None, max_bytes=max_bytes,
    )  # fmt: skip
    assert record_size(out) <= max_bytes
    envelope = json.loads(out.value)
    validate(envelope)
    payload = envelope["payload"]
    assert payload["encoding"] == encoding
    assert payload["truncated"] is True
    assert payload["size"] == len(value)
    assert payload["sha256"] == hashlib.sha256(value).hexdigest()
    assert envelope["source"]["offset"] == 41 and envelope["source"]["partition"] == 2
    kept = payload["data"].encode() if encoding == "utf-8" else base64.b64decode(payload["data"])
    assert value.startswith(kept) and len(kept) > max_bytes // 10
    # A key this long cannot be a ticket id; its digest stands in for it.
    assert out.key == b"sha256:" + hashlib.sha256(b"K" * 5000).hexdigest().encode()


def test_a_dead_letter_that_fits_is_not_cut() -> None:
    out = build_dead_letter(
        record(b"x" * 50_000), topic="dlq", agent="a", error_class=ErrorClass.TOO_LARGE, message="m",
        exception="E", attempts=1, trace_id=None, max_bytes=100_000,
    )  # fmt: skip
    payload = json.loads(out.value)["payload"]
    assert payload["truncated"] is False and len(payload["data"]) == 50_000
