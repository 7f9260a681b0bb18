"""Spans of Kafka records (OpenTelemetry messaging conventions): ``process <topic>`` around a
handler, ``create <topic>`` for each output, whose context becomes the output's
``traceparent``. Tracing itself is set up by :mod:`srs_contracts.traces`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agent_runtime.records import InputRecord, OutputRecord
from srs_contracts import traces
from srs_contracts.traces import TRACEPARENT

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span


@contextlib.contextmanager
def processing(
    record: InputRecord, *, group: str, agent: str, role: str, trace_id: str | None = None
) -> Iterator[Span]:
    """The ``process <topic>`` span of one input record, current while the handler runs.

    Its parent is the record's ``traceparent``; when the ticket's own ``trace_id`` (the
    payload's) differs from it, the span joins the ticket's trace instead.
    """
    from opentelemetry.trace import SpanKind

    context = _parent_context(record.header(TRACEPARENT), trace_id)
    attributes: dict[str, Any] = {
        "messaging.system": "kafka",
        "messaging.operation.name": "process",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
        "messaging.consumer.group.name": group,
        "srs.agent": agent,
        "srs.role": role,
    }
    if record.key is not None:
        attributes["messaging.kafka.message.key"] = record.key.decode("utf-8", "replace")
    with traces.tracer().start_as_current_span(
        f"process {record.topic}", context=context, kind=SpanKind.CONSUMER, attributes=attributes,
        record_exception=False, set_status_on_exception=False,
    ) as span:  # fmt: skip
        yield span


def _parent_context(header: bytes | None, trace_id: str | None) -> Context | None:
    """The context in ``header`` (W3C trace context), or one in the ticket's ``trace_id`` when
    the header is missing, invalid or names another trace."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    if header is not None:
        context = propagator.extract({TRACEPARENT: header.decode("ascii", "replace")})
        found = trace.get_current_span(context).get_span_context()
        if found.is_valid and (trace_id is None or f"{found.trace_id:032x}" == trace_id):
            return context
    if trace_id is None:
        return None
    # Hang this hop under the ticket's trace, below a stable (not exported) parent span id.
    context = propagator.extract({TRACEPARENT: f"00-{trace_id}-{traces.STABLE_PARENT_SPAN}-01"})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def produced(output: OutputRecord) -> OutputRecord:
    """``output`` with a ``create <topic>`` span (a child of the current span) as its ``traceparent``."""
    from opentelemetry.trace import SpanKind

    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.name": "create",
        "messaging.operation.type": "create",
        "messaging.destination.name": output.topic,
    }
    with traces.tracer().start_as_current_span(
        f"create {output.topic}", kind=SpanKind.PRODUCER, attributes=attributes
    ) as span:
        context = span.get_span_context()
    header = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}".encode()
    headers = (*(h for h in output.headers if h[0] != TRACEPARENT), (TRACEPARENT, header))
    return OutputRecord(topic=output.topic, key=output.key, value=output.value, headers=headers)
