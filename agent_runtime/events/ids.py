"""The ids every output event carries, derived so that a replay repeats them.

- ``event_id``: a UUIDv5 of (input event id, stage, agent), so processing the same input
  again — a replay, a retry after a crash — yields the same id and consumers can drop
  the duplicate;
- ``trace_id``: taken from the input payload, else from its W3C ``traceparent`` header,
  else derived from the input's event id (a replay keeps the trace).
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final

from agent_runtime.traceparent import parse_traceparent

#: Namespace of every derived event id (a UUIDv5 of the project's URL).
EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://srs.dev/events")
_NAMESPACE_BYTES: Final = EVENT_ID_NAMESPACE.bytes
_TRACE_ID: Final = re.compile(r"^[0-9a-f]{32}$")
_INVALID_TRACE_ID: Final = "0" * 32


class Stage(StrEnum):
    """What produced an output event: part of its id, so one input can have several outputs."""

    TRIAGE = "triage"
    RESOLUTION = "resolution"
    ESCALATION = "escalation"


def derive_event_id(input_event_id: str, stage: Stage | str, agent: str) -> str:
    """The id of the event ``agent`` produces at ``stage`` from the input ``input_event_id``.

    Deterministic: the same input, stage and agent always give the same id.
    """
    # uuid.uuid5 computed directly (the UUID object cost twice the hash, on every ticket).
    name = f"{stage}\x1f{agent}\x1f{input_event_id}".encode()
    # SHA-1 is what UUIDv5 is defined with (an id, not a secret).
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest())
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest[:16].hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def is_trace_id(value: object) -> bool:
    """A valid W3C trace id: 32 lower-case hex digits, not all zero."""
    return isinstance(value, str) and bool(_TRACE_ID.match(value)) and value != _INVALID_TRACE_ID


def derive_trace_id(seed: str) -> str:
    """A trace id derived from ``seed`` (the input's event id): a replay keeps its trace."""
    trace_id = hashlib.sha256(f"trace\x1f{seed}".encode()).hexdigest()[:32]
    return trace_id if trace_id != _INVALID_TRACE_ID else "0" * 31 + "1"


def format_traceparent(trace_id: str, span_seed: str) -> str:
    """A W3C ``traceparent`` (version 00, sampled) whose span id is derived from ``span_seed``."""
    span_id = hashlib.sha256(f"span\x1f{span_seed}".encode()).hexdigest()[:16]
    if span_id == "0" * 16:
        span_id = "0" * 15 + "1"
    return f"00-{trace_id}-{span_id}-01"


def resolve_trace_id(payload: Mapping[str, Any], traceparent: bytes | str | None, seed: str) -> str:
    """The trace of an input: its payload's ``trace_id``, else its ``traceparent``, else derived."""
    from_payload = payload.get("trace_id")
    if is_trace_id(from_payload):
        return str(from_payload)
    from_header = parse_traceparent(traceparent)
    if from_header is not None:
        return from_header.trace_id
    return derive_trace_id(seed)
