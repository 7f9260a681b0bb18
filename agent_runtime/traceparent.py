"""W3C trace context for records: keep the trace of an input, start a span per input.

The wire format every agent reads and writes (the engine per record, the event builders
for ids): no Kafka and no ticket here.

An input that carries a valid ``traceparent`` header keeps its trace id. One without it
gets a trace id derived from its topic, partition and offset, so a replay of the same
record is traced (and, in the handler's payloads, identified) the same way. Outputs get
``traceparent: 00-<trace id>-<span id of this processing>-<flags>``.

The handler learns the trace id of the record it handles from ``current_trace_id()`` or
from the record's ``traceparent`` header, which the engine fills in when it was missing.
"""

from __future__ import annotations

import hashlib
import random
import re
from contextvars import ContextVar
from typing import NamedTuple

TRACEPARENT = "traceparent"

_TRACEPARENT_RE = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
#: What a header of exactly ``version-trace-span-flags`` holds besides its three dashes.
_HEX_DIGITS = b"0123456789abcdef"
#: The length of such a header (55 bytes).
_EXACT_LENGTH = 2 + 1 + 32 + 1 + 16 + 1 + 2
#: ``TraceContext(...)`` without the named tuple's Python-level ``__new__`` (once or twice per record).
_new_context = tuple.__new__

_SPAN_RANDOM = random.Random()

_current_trace_id: ContextVar[str | None] = ContextVar("srs_trace_id", default=None)


class TraceContext(NamedTuple):
    """The parts of a ``traceparent`` the engine uses (a tuple: built once per record)."""

    trace_id: str
    span_id: str
    flags: str = "01"

    def header(self) -> bytes:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}".encode()

    def child(self) -> TraceContext:
        """The same trace with a new span (this process's work on the record)."""
        return _new_context(TraceContext, (self.trace_id, new_span_id(), self.flags))


def parse_traceparent(value: bytes | str | None) -> TraceContext | None:
    """The trace context in a ``traceparent`` value, or None when absent or invalid."""
    if value is None:
        return None
    if (
        type(value) is bytes
        and len(value) == _EXACT_LENGTH
        and value[2] == value[35] == value[52] == 0x2D  # "-"
        and value.translate(None, _HEX_DIGITS) == b"---"
    ):
        # The usual header, exactly (no whitespace, nothing after the flags): what the pattern
        # below matches in it, without matching the whole value (every record).
        text = value.decode()
        trace_id, span_id = text[3:35], text[36:52]
        if text.startswith("ff") or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
            return None
        return _new_context(TraceContext, (trace_id, span_id, text[53:]))
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    match = _TRACEPARENT_RE.match(text.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    # Version ff is forbidden; version 00 has nothing after the flags.
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, flags)


def derived_trace(topic: str, partition: int, offset: int) -> TraceContext:
    """A stable trace context for a record that arrived without one."""
    digest = hashlib.sha256(f"{topic}\0{partition}\0{offset}".encode()).hexdigest()
    return TraceContext(digest[:32], digest[32:48], "01")


def new_span_id() -> str:
    # Span ids need uniqueness, not secrecy: the fast PRNG saves a syscall per record.
    span_id = _SPAN_RANDOM.randbytes(8).hex()
    return span_id if span_id != _ZERO_SPAN else "0" * 15 + "1"


def current_trace_id() -> str | None:
    """The trace id of the record whose handler is running (set per record by the engine)."""
    return _current_trace_id.get()


def set_current_trace_id(trace_id: str | None) -> None:
    """Bind the trace id in the current context (each asyncio task has its own)."""
    _current_trace_id.set(trace_id)
