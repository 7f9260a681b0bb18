"""OpenTelemetry traces of an agent: one trace per ticket, across every Kafka hop.

Off unless the standard ``OTEL_*`` environment asks for it (an OTLP endpoint, or
``OTEL_TRACES_EXPORTER``); then the SDK is imported and set up once, from that
environment (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
``OTEL_EXPORTER_OTLP_*``, ``OTEL_BSP_*``), and spans are exported over OTLP/HTTP in
batches. When off, every helper here is one global lookup: the per-ticket path pays nothing.

The spans follow OpenTelemetry's conventions:

- ``process <topic>`` (CONSUMER) for one input record: ``messaging.system=kafka``,
  ``messaging.destination.name``, ``messaging.destination.partition.id``,
  ``messaging.kafka.offset``, ``messaging.consumer.group.name``. Its parent is the context
  in the record's ``traceparent`` header, so the trace continues across agents.
- ``create <topic>`` (PRODUCER) for each output, a child of the process span; its context
  is the output's ``traceparent``, so the next agent's process span is its child.
- ``chat <model>`` (CLIENT) for each provider call: ``gen_ai.operation.name``,
  ``gen_ai.provider.name``, ``gen_ai.request.model``, ``gen_ai.usage.input_tokens`` /
  ``output_tokens``.

No ticket text goes into a span: ids, topics, offsets, models, token counts and outcomes.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from agent_runtime.records import InputRecord, OutputRecord

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

TRACEPARENT: Final = "traceparent"

#: Provider names as OpenTelemetry's ``gen_ai.provider.name`` spells them.
GEN_AI_PROVIDER_NAMES: Final[Mapping[str, str]] = {"bedrock": "aws.bedrock"}

_STABLE_PARENT_SPAN: Final = "5352530000000001"

_tracer: Tracer | None = None
_provider: TracerProvider | None = None


def wanted(env: Mapping[str, str]) -> bool:
    """True when the ``OTEL_*`` environment asks for traces (an OTLP endpoint or a traces exporter)."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    return bool(exporter) or bool(endpoint)


def configure(service_name: str, env: Mapping[str, str] | None = None, exporter: SpanExporter | None = None) -> bool:
    """Set up tracing from the ``OTEL_*`` environment (``service_name`` unless
    ``OTEL_SERVICE_NAME`` says otherwise); False, and nothing imported, when it asks for none.

    ``exporter`` (tests) receives every span as it ends, whatever the environment says.
    """
    global _tracer, _provider
    env = os.environ if env is None else env
    if exporter is None and not wanted(env):
        return False
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME") or service_name})
    if exporter is not None:
        _provider = TracerProvider(resource=resource)
        _provider.add_span_processor(SimpleSpanProcessor(exporter))
        _tracer = _provider.get_tracer("srs.agent_runtime")
        return True
    exporter_name = env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() or "otlp"
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        if exporter_name != "otlp":
            log.warning("unsupported OTEL_TRACES_EXPORTER; using otlp", extra={"exporter": exporter_name})
        if env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf") != "http/protobuf":
            log.warning("only OTLP over HTTP (http/protobuf) is built in; using it")
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        # The endpoint from ``env`` (the SDK would read only os.environ); the rest (headers,
        # timeout, compression) the SDK reads from the environment itself.
        base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").rstrip("/")
        endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (f"{base}/v1/traces" if base else None)
        exporter = OTLPSpanExporter(endpoint=endpoint)
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    _tracer = _provider.get_tracer("srs.agent_runtime")
    log.info("exporting traces over OTLP", extra={"exporter": exporter_name, "service": service_name})
    return True


def active() -> bool:
    """True when spans are being recorded (tracing configured)."""
    return _tracer is not None


def shutdown() -> None:
    """Export what is buffered and stop (at process exit)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextlib.contextmanager
def processing(
    record: InputRecord, *, group: str, agent: str, role: str, trace_id: str | None = None
) -> Iterator[Span]:
    """The ``process <topic>`` span of one input record, current while the handler runs.

    Its parent is the record's ``traceparent``; when the ticket's own ``trace_id`` (the
    payload's) differs from it, the span joins the ticket's trace instead.
    """
    assert _tracer is not None, "tracing is not configured"
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
    with _tracer.start_as_current_span(
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
    context = propagator.extract({TRACEPARENT: f"00-{trace_id}-{_STABLE_PARENT_SPAN}-01"})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def produced(output: OutputRecord) -> OutputRecord:
    """``output`` with a ``create <topic>`` span (a child of the current span) as its ``traceparent``."""
    assert _tracer is not None, "tracing is not configured"
    from opentelemetry.trace import SpanKind

    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.name": "create",
        "messaging.operation.type": "create",
        "messaging.destination.name": output.topic,
    }
    with _tracer.start_as_current_span(f"create {output.topic}", kind=SpanKind.PRODUCER, attributes=attributes) as span:
        context = span.get_span_context()
    header = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}".encode()
    headers = (*(h for h in output.headers if h[0] != TRACEPARENT), (TRACEPARENT, header))
    return OutputRecord(topic=output.topic, key=output.key, value=output.value, headers=headers)


def failed(span: Span, error: BaseException, error_type: str) -> None:
    """Mark ``span`` failed with ``error_type`` (no exception message: it may quote the input)."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, type(error).__name__))


@contextlib.contextmanager
def span(name: str, attributes: Mapping[str, str | int] | None = None) -> Iterator[Span | None]:
    """An internal span ``name`` (None, and nothing recorded, when tracing is off)."""
    if _tracer is None:
        yield None
        return
    with _tracer.start_as_current_span(name, attributes=dict(attributes or {})) as current:
        yield current


@contextlib.contextmanager
def model_call(operation: str, provider: str, model: str, **request: Any) -> Iterator[Span | None]:
    """The ``chat <model>`` span of one provider call (None when tracing is off)."""
    if _tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": GEN_AI_PROVIDER_NAMES.get(provider, provider),
        "gen_ai.request.model": model,
        "srs.operation": operation,
    }
    attributes.update({f"gen_ai.request.{k}": v for k, v in request.items() if v is not None})
    with _tracer.start_as_current_span(
        f"chat {model}", kind=SpanKind.CLIENT, attributes=attributes, record_exception=False,
        set_status_on_exception=False,
    ) as span:  # fmt: skip
        yield span
