"""OpenTelemetry spans and GenAI metrics of the runtime, read back from the SDK's in-memory exporter
and the Prometheus registry (the live trace through Jaeger: tests/integration/test_observability_live.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agent_runtime import kafka_spans
from agent_runtime.providers import build_provider
from agent_runtime.providers.network import token_usage
from agent_runtime.providers.openai_api import OpenAICompatibleProvider
from agent_runtime.records import InputRecord, OutputRecord, TransientError
from srs_contracts import traces
from srs_contracts.agent_config import ModelConfig
from tests.unit.agent_fixtures import metric
from tests.unit.test_providers_openai import GOOD, TICKET
from tests.unit.wire_doubles import Reply, WireServer, openai_completion, openai_error

pytestmark = pytest.mark.unit

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    traces.configure("test-agent", {}, exporter=exporter)
    try:
        yield exporter
    finally:
        traces.shutdown()


def _record(header: str | None = f"00-{TRACE}-{PARENT}-01") -> InputRecord:
    headers = (("traceparent", header.encode()),) if header else ()
    return InputRecord("ticket.events", 2, 41, b"T-1", b"{}", headers)


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_when_the_otel_environment_asks_for_it(env: dict[str, str], on: bool) -> None:
    assert traces.wanted(env) is on
    if not on:
        assert traces.configure("agent", env) is False
        assert not traces.active()


def test_an_input_is_a_consumer_span_under_its_traceparent_and_each_output_names_its_create_span(
    spans: InMemorySpanExporter,
) -> None:
    output = OutputRecord("ticket.triaged.billing", b"T-1", b"{}", (("traceparent", b"00-" + b"1" * 32 + b"-x"),))
    with kafka_spans.processing(_record(), group="triage-group", agent="triage", role="triage", trace_id=TRACE):
        stamped = kafka_spans.produced(output)
    create, process = spans.get_finished_spans()
    assert process.name == "process ticket.events" and process.kind is SpanKind.CONSUMER
    assert f"{process.context.trace_id:032x}" == TRACE
    assert process.parent is not None and f"{process.parent.span_id:016x}" == PARENT
    assert process.attributes is not None
    assert dict(process.attributes) == {
        "messaging.system": "kafka", "messaging.operation.name": "process", "messaging.operation.type": "process",
        "messaging.destination.name": "ticket.events", "messaging.destination.partition.id": "2",
        "messaging.kafka.offset": 41, "messaging.consumer.group.name": "triage-group",
        "messaging.kafka.message.key": "T-1", "srs.agent": "triage", "srs.role": "triage",
    }  # fmt: skip
    assert create.name == "create ticket.triaged.billing" and create.kind is SpanKind.PRODUCER
    assert create.parent is not None and create.parent.span_id == process.context.span_id
    # The output's traceparent (one, replacing the old) is the create span's context.
    assert [h for h in stamped.headers if h[0] == "traceparent"] == [
        ("traceparent", f"00-{TRACE}-{create.context.span_id:016x}-01".encode())
    ]


def test_a_ticket_whose_payload_names_another_trace_is_traced_in_the_payloads(spans: InMemorySpanExporter) -> None:
    other = "0af7651916cd43dd8448eb211c80319c"
    with kafka_spans.processing(_record(), group="g", agent="a", role="specialist", trace_id=other):
        pass
    (process,) = spans.get_finished_spans()
    assert f"{process.context.trace_id:032x}" == other


def test_provider_calls_are_genai_client_spans_with_token_usage_and_metrics(
    spans: InMemorySpanExporter, server: WireServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRS_TEST_TELEMETRY_KEY", "sk-test")
    server.script(Reply(200, openai_completion(json.dumps(GOOD))), Reply(500, openai_error("overloaded")))
    config = ModelConfig.model_validate(
        {"provider": "openai", "name": "gpt-tel", "base_url": f"{server.url}/v1",
         "api_key_env": "SRS_TEST_TELEMETRY_KEY",
         "timeout_seconds": 5, "max_retries": 0}
    )  # fmt: skip
    provider = build_provider(config, agent="tel-agent")
    assert isinstance(provider, OpenAICompatibleProvider)
    labels = {"agent": "tel-agent", "provider": "openai", "model": "gpt-tel", "operation": "classify"}

    async def go() -> None:
        with kafka_spans.processing(_record(), group="g", agent="tel-agent", role="triage", trace_id=TRACE):
            await provider.classify(TICKET)
        with pytest.raises(TransientError):
            await provider.classify(TICKET)
        await provider.aclose()

    asyncio.run(go())
    chat, process, failed = spans.get_finished_spans()
    assert chat.name == "chat gpt-tel" and chat.kind is SpanKind.CLIENT
    assert chat.parent is not None and chat.parent.span_id == process.context.span_id
    assert chat.attributes is not None
    assert {k: chat.attributes[k] for k in chat.attributes if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-tel",
        "gen_ai.request.max_tokens": 512, "gen_ai.request.temperature": 0.0,
        "gen_ai.usage.input_tokens": 700, "gen_ai.usage.output_tokens": 40,
    }  # fmt: skip
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.attributes is not None and failed.attributes["error.type"] == "InternalServerError"
    # The GenAI metrics, per provider and model.
    duration = "gen_ai_client_operation_duration_seconds_count"
    assert metric(duration, **labels, error_type="") == 1
    assert metric(duration, **labels, error_type="InternalServerError") == 1
    assert metric("gen_ai_client_token_usage_sum", **labels, token_type="input") == 700
    assert metric("gen_ai_client_token_usage_sum", **labels, token_type="output") == 40


def test_token_usage_reads_every_sdks_shape() -> None:
    class Usage:
        input_tokens, output_tokens = 12, 3

    class Message:
        usage = Usage()

    assert token_usage(Message()) == (12, 3)
    assert token_usage({"usage": {"inputTokens": 5, "outputTokens": 7}}) == (5, 7)
    assert token_usage({"output": {}}) is None
    assert token_usage(object()) is None
