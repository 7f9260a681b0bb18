"""Dead-letter records: the original bytes of an input plus why it could not be processed.

The envelope follows ``events/dead-letter.schema.json``; the same facts travel in
``srs-*`` headers so tools can filter without parsing the body. The key is the original
key, so a dead-lettered record lands next to its siblings when replayed.

A dead letter always fits: ``build_dead_letter(..., max_bytes=N)`` cuts the copied payload
(and an absurdly long key) until the record fits in ``N`` bytes — the dead-letter topic's
``max.message.bytes``. The envelope always keeps the source topic, partition and offset,
the original size and its SHA-256, so the original can be read from the source topic
while it is retained, and a cut copy can be told from a whole one (``payload.truncated``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime
from enum import StrEnum
from typing import Final

from agent_runtime.records import InputRecord, OutputRecord
from srs_contracts.timestamps import rfc3339


class ErrorClass(StrEnum):
    """Why an input was dead-lettered (the envelope's ``error.class``)."""

    INVALID_JSON = "invalid_json"
    SCHEMA_INVALID = "schema_invalid"
    RETRIES_EXHAUSTED = "retries_exhausted"
    PERMANENT = "permanent"
    #: Bigger than the schema allows (bytes, a field, nesting), or an output Kafka refused as too large.
    TOO_LARGE = "too_large"
    #: The handler did not finish within its deadline, every attempt.
    TIMEOUT = "timeout"
    #: The record crashed or hung its process repeatedly (counted across restarts).
    CRASH_LOOP = "crash_loop"


HEADER_ERROR_CLASS: Final = "srs-error-class"
HEADER_ERROR_MESSAGE: Final = "srs-error-message"
HEADER_SOURCE_TOPIC: Final = "srs-source-topic"
HEADER_SOURCE_PARTITION: Final = "srs-source-partition"
HEADER_SOURCE_OFFSET: Final = "srs-source-offset"
HEADER_ATTEMPTS: Final = "srs-attempts"

#: Error messages can be long (validation errors, provider responses); headers stay small.
_MAX_HEADER_MESSAGE: Final = 1000
_MAX_ENVELOPE_MESSAGE: Final = 8000
#: A key longer than this is replaced by its digest (the dead letter must fit, and a key this
#: long cannot be a ticket id anyway).
_MAX_KEY_BYTES: Final = 1024
#: Room left for Kafka's record and batch framing on top of key, value and headers.
_RECORD_OVERHEAD: Final = 512
#: The smallest limit a dead letter is cut to: the envelope without any payload fits in it.
MIN_DEAD_LETTER_BYTES: Final = 4096
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


def _payload(value: bytes | None, keep: int | None = None) -> dict[str, object]:
    """The payload section: ``value`` as UTF-8 text (or base64), at most its first ``keep`` bytes."""
    raw = value or b""
    cut = raw if keep is None or keep >= len(raw) else raw[:keep]
    section: dict[str, object]
    try:
        # A cut may split a character: drop the partial one rather than switch to base64.
        text = cut.decode("utf-8") if cut is raw else _decode_prefix(cut, whole=raw)
        section = {"encoding": "utf-8", "data": text}
    except UnicodeDecodeError:
        section = {"encoding": "base64", "data": base64.b64encode(cut).decode("ascii")}
    section["size"] = len(raw)
    section["sha256"] = hashlib.sha256(raw).hexdigest()
    section["truncated"] = len(cut) < len(raw)
    return section


def _decode_prefix(cut: bytes, *, whole: bytes) -> str:
    whole.decode("utf-8")  # a value that is not UTF-8 as a whole stays base64, cut or not
    return cut.decode("utf-8", "ignore")


def _text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(key).decode("ascii")


def _bounded_key(key: bytes | None) -> bytes | None:
    if key is None or len(key) <= _MAX_KEY_BYTES:
        return key
    return b"sha256:" + hashlib.sha256(key).hexdigest().encode()


def record_size(record: OutputRecord) -> int:
    """What a record counts against ``max.message.bytes`` (key, value, headers, framing)."""
    headers = sum(len(name) + len(value) for name, value in record.headers)
    return len(record.key or b"") + len(record.value) + headers + _RECORD_OVERHEAD


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
    max_bytes: int | None = None,
) -> OutputRecord:
    """The record to produce to ``topic`` for an input that gave up, at most ``max_bytes`` long.

    The payload copy is cut to fit (``payload.truncated``); the source coordinates, the
    original size and digest always stay.
    """
    key = _bounded_key(record.key)
    key_text = _text(key)
    # A small topic limit leaves the payload copy most of the room.
    message_limit = _MAX_ENVELOPE_MESSAGE if max_bytes is None else min(_MAX_ENVELOPE_MESSAGE, max(200, max_bytes // 8))
    envelope: dict[str, object] = {
        "event_type": "dead_letter",
        "event_id": dead_letter_event_id(record),
        # In this system the message key is the ticket id (the engine does not read payloads).
        "ticket_id": key_text,
        "trace_id": trace_id,
        "failed_at": rfc3339(failed_at, timespec="auto"),
        "agent": agent,
        "error": {"class": error_class.value, "message": message[:message_limit], "exception": exception},
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
    out = OutputRecord(topic=topic, key=key, value=json.dumps(envelope).encode(), headers=headers)
    if max_bytes is None or record_size(out) <= max_bytes:
        return out
    # Cut the copied payload until the record fits: each round keeps what the last one
    # measured as room (JSON escaping or base64 makes the copy larger than the bytes kept).
    value = record.value or b""
    keep = len(value)
    while True:
        excess = record_size(out) - max(max_bytes, MIN_DEAD_LETTER_BYTES)
        if excess <= 0 or keep == 0:
            return out
        copied = len(json.dumps(envelope["payload"]))
        keep = max(0, int(keep * max(0.0, 1 - (excess + 64) / max(copied, 1))) - 16)
        envelope["payload"] = _payload(value, keep)
        out = OutputRecord(topic=topic, key=key, value=json.dumps(envelope).encode(), headers=headers)
