"""What flows between the Kafka engine and the work it drives.

The engine knows records and these exceptions, nothing about tickets. A ``Handler``
(the agent: event decoding + role + provider) turns one input record into the output
records to produce; the engine produces them, and only when Kafka acknowledged every one
of them does it consider the input's offset done.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

Headers = tuple[tuple[str, bytes], ...]


# Named tuples, not frozen dataclasses: just as immutable, and built in ~0.1–0.3 µs instead
# of ~0.4–1 µs (a frozen dataclass sets each field through ``object.__setattr__``). The
# engine builds one InputRecord per consumed message on the consumer thread, holding the GIL,
# and a handler one OutputRecord per output.
class InputRecord(NamedTuple):
    """One consumed message."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int | None = None

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name`` (Kafka allows repeats), or None."""
        for k, v in reversed(self.headers):
            if k == name:
                return v
        return None


class OutputRecord(NamedTuple):
    """One message to produce as a result of an input."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = ()


_tuple_new = tuple.__new__


def new_input_record(fields: tuple[str, int, int, bytes | None, bytes | None, Headers, int | None]) -> InputRecord:
    """``InputRecord(*fields)`` without the named tuple's Python-level ``__new__`` (the engine
    builds one per consumed message): all seven fields, in order."""
    return _tuple_new(InputRecord, fields)


class PermanentError(Exception):
    """The input can never succeed (bad JSON, schema-invalid, ...): dead-letter it now.

    ``error_class`` is one of the dead-letter envelope's classes (``invalid_json``,
    ``schema_invalid``, ``too_large``, ``permanent``; see ``events/dead-letter.schema.json``).
    """

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class
        self.message = message


class TransientError(Exception):
    """Worth retrying with backoff (timeouts, 429/5xx from a provider, ...).

    Any exception that is not a ``PermanentError`` is treated as transient; this class
    exists so code can say so explicitly.
    """


class Handler(Protocol):
    """Turns one input record into the records to produce. Must be safe to call again
    for the same input (at-least-once): the same input yields the same event ids."""

    async def handle(self, record: InputRecord) -> Sequence[OutputRecord]: ...
