"""Delivering a record's outputs: hand them to the producer, count the acknowledgements.

A record is complete only when every output was handed to the producer *and* Kafka
acknowledged each; a full producer queue part-way (``BufferError``) makes the caller wait
and hand over the rest, never completes the record early. An output the handler gave its
own valid ``traceparent`` keeps it; the others carry this process's span.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from agent_runtime.engine.producer import OutputSink
from agent_runtime.engine.work import State, Work
from agent_runtime.records import OutputRecord
from agent_runtime.traceparent import TRACEPARENT, parse_traceparent


class OutputDeliveries:
    """Produces outputs for the dispatcher; ``done`` or ``failed`` once a record's are all answered."""

    def __init__(
        self, sink: OutputSink, *, done: Callable[[Work], None], failed: Callable[[Work, Exception], None]
    ) -> None:
        self._sink = sink
        self._done = done
        self._failed = failed

    def produce(self, work: Work, outputs: Sequence[OutputRecord], start: int) -> int:
        """Produce ``outputs[start:]``; return how many are dealt with (all, unless the queue filled up)."""
        on_delivery = functools.partial(self._delivered, work)
        span_header = work.span.header()
        for index in range(start, len(outputs)):
            output = outputs[index]
            headers = with_trace(output.headers, span_header)
            try:
                self._sink.produce(output.topic, output.key, output.value, headers, on_delivery)
            except BufferError:
                return index
            except Exception as e:  # noqa: BLE001 - e.g. a record too large: fails this attempt (or for good)
                if work.failure is None:
                    work.failure = e
                return len(outputs)
            work.expected += 1
        return len(outputs)

    def _delivered(self, work: Work, error: Exception | None) -> None:
        work.delivered += 1
        if error is not None and work.failure is None:
            work.failure = error
        self.check(work)

    def check(self, work: Work) -> None:
        """Complete ``work`` once every output is handed over and acknowledged (or fail it)."""
        if work.producing or work.delivered < work.expected or work.state is not State.ACKING:
            return  # more to produce or to come, or abandoned meanwhile
        if work.failure is None:
            self._done(work)
        else:
            self._failed(work, work.failure)


def with_trace(headers: Sequence[tuple[str, bytes]], span_header: bytes) -> list[tuple[str, bytes]]:
    """An output's headers, with ``span_header`` as its traceparent unless it has a valid one."""
    result = list(headers)
    # A handler that set its own valid traceparent keeps it.
    if not result or parse_traceparent(_header(result, TRACEPARENT)) is None:
        result.append((TRACEPARENT, span_header))
    return result


def _header(headers: Sequence[tuple[str, bytes]], name: str) -> bytes | None:
    for header_name, value in reversed(headers):
        if header_name == name:
            return value
    return None
