"""Tokens and time spent on the model for one ticket, carried to the event that answers it.

The handler opens a meter around one input (:func:`metered`); every provider call made
while handling it adds what the server reported (:func:`record`): input and output tokens,
the call's duration and the model the server says answered (which may differ from the
configured name: an alias, a dated snapshot). The meter lives in a context variable, so
the provider interface stays as it is and concurrent tickets never mix their counts
(each ticket is handled in its own task, with its own copy of the context).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass
class Usage:
    """What the model calls of one ticket cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0
    duration_s: float = 0.0
    #: The model the server reported for the last call (None: it reported none).
    model: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ``usage`` section of an event (see ``events/ticket.triaged.schema.json#/$defs/usage``)."""
        section: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "calls": self.calls,
            "duration_ms": round(self.duration_s * 1000, 1),
        }
        if self.model:
            section["model"] = self.model
        return section


_CURRENT: ContextVar[Usage | None] = ContextVar("srs_usage", default=None)


class _Meter(AbstractContextManager[Usage]):
    """The block of :func:`metered` (a plain class: a ``contextmanager`` generator costs twice
    as much, on every ticket)."""

    __slots__ = ("_token",)

    def __enter__(self) -> Usage:
        usage = Usage()
        self._token = _CURRENT.set(usage)
        return usage

    def __exit__(self, *_exc: object) -> None:
        _CURRENT.reset(self._token)


def metered() -> AbstractContextManager[Usage]:
    """Count every provider call made inside the block (in this task and the tasks it starts)."""
    return _Meter()


def record(*, input_tokens: int | None, output_tokens: int | None, duration_s: float, model: str | None) -> None:
    """Add one call to the current meter (a no-op outside :func:`metered`)."""
    usage = _CURRENT.get()
    if usage is None:
        return
    usage.calls += 1
    usage.input_tokens += max(input_tokens or 0, 0)
    usage.output_tokens += max(output_tokens or 0, 0)
    usage.duration_s += max(duration_s, 0.0)
    if model:
        usage.model = model
