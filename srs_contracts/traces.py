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

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

TRACEPARENT: Final = "traceparent"

#: Provider names as OpenTelemetry's ``gen_ai.provider.name`` spells them.
GEN_AI_PROVIDER_NAMES: Final[Mapping[str, str]] = {"bedrock": "aws.bedrock"}

STABLE_PARENT_SPAN: Final = "5352530000000001"

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


def tracer() -> Tracer:
    """The tracer of this process (``configure`` first)."""
    assert _tracer is not None, "tracing is not configured"
    return _tracer


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
