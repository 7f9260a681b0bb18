"""Dead-letter records: the original bytes of an input plus why it could not be processed.

The envelope follows ``events/dead-letter.schema.json``; the same facts travel in
``srs-*`` headers so tools can filter without parsing the body. The key is the original
key, so a dead-lettered record lands next to its siblings when replayed.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from agent_runtime.records import InputRecord, OutputRecord


class ErrorClass(StrEnum):
    """Why an input was dead-lettered (the envelope's ``error.class``)."""

    INVALID_JSON = "invalid_json"
    SCHEMA_INVALID = "schema_invalid"
    RETRIES_EXHAUSTED = "retries_exhausted"
    PERMANENT = "permanent"


HEADER_ERROR_CLASS: Final = "srs-error-class"
HEADER_ERROR_MESSAGE: Final = "srs-error-message"
HEADER_SOURCE_TOPIC: Final = "srs-source-topic"
HEADER_SOURCE_PARTITION: Final = "srs-source-partition"
HEADER_SOURCE_OFFSET: Final = "srs-source-offset"
HEADER_ATTEMPTS: Final = "srs-attempts"

#: Error messages can be long (validation errors, provider responses); headers stay small.
_MAX_HEADER_MESSAGE: Final = 1000
_MAX_ENVELOPE_MESSAGE: Final = 8000
_EVENT_ID_NAMESPACE: Final = uuid.UUID("5d0c39b8-6a43-4e57-9b3e-1f9f0b8a4c21")


def error_class_of(value: str) -> ErrorClass:
    """The envelope class for a handler-supplied class name; unknown names are ``permanent``."""
    try:
        return ErrorClass(value)
    except ValueError:
        return ErrorClass.PERMANENT


def dead_letter_event_id(record: InputRecord) -> str:
    """Stable across replays: the same source record always gets the same id."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{record.topic}/{record.partition}/{record.offset}"))


def _payload(value: bytes | None) -> dict[str, str]:
    if value is None:
        return {"encoding": "utf-8", "data": ""}
    try:
        return {"encoding": "utf-8", "data": value.decode("utf-8")}
    except UnicodeDecodeError:
        return {"encoding": "base64", "data": base64.b64encode(value).decode("ascii")}


def _text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key).decode("ascii")


def build_dead_letter(
    record: InputRecord,
    *,
    topic: str,
    agent: str,
    error_class: ErrorClass,
    message: str,
    exception: str,
    attempts: int,
    trace_id: str | None,
    failed_at: datetime | None = None,
) -> OutputRecord:
    """The record to produce to ``topic`` for an input that gave up."""
    key_text = _text(record.key)
    envelope = {
        "event_type": "dead_letter",
        "event_id": dead_letter_event_id(record),
        # In this system the message key is the ticket id (the engine does not read payloads).
        "ticket_id": key_text,
        "trace_id": trace_id,
        "failed_at": (failed_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "agent": agent,
        "error": {"class": error_class.value, "message": message[:_MAX_ENVELOPE_MESSAGE], "exception": exception},
        "attempts": attempts,
        "source": {"topic": record.topic, "partition": record.partition, "offset": record.offset, "key": key_text},
        "payload": _payload(record.value),
    }
    headers = (
        (HEADER_ERROR_CLASS, error_class.value.encode()),
        (HEADER_ERROR_MESSAGE, message[:_MAX_HEADER_MESSAGE].encode("utf-8", "replace")),
        (HEADER_SOURCE_TOPIC, record.topic.encode()),
        (HEADER_SOURCE_PARTITION, str(record.partition).encode()),
        (HEADER_SOURCE_OFFSET, str(record.offset).encode()),
        (HEADER_ATTEMPTS, str(attempts).encode()),
    )
    return OutputRecord(topic=topic, key=record.key, value=json.dumps(envelope).encode(), headers=headers)
