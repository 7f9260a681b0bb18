"""The handler the engine calls: bytes in, schema-valid events out — or a clear permanent error."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from agent_runtime import events
from agent_runtime.agent import AgentHandler, build_handler
from agent_runtime.events import EventType
from agent_runtime.providers.offline import OfflineProvider
from agent_runtime.records import InputRecord, OutputRecord, PermanentError, TransientError
from agent_runtime.tickets import TriageDecision
from agent_runtime.traceparent import parse_traceparent
from srs_contracts.agent_config import Priority, TicketType
from tests.unit.agent_fixtures import (
    HUMAN_TOPIC,
    KeywordClassifier,
    ScriptedProvider,
    record,
    specialist_config,
    ticket_created,
    ticket_triaged,
    triage_config,
)

pytestmark = pytest.mark.unit

HEADER_TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{HEADER_TRACE}-b7ad6b7169203331-01".encode()


def handle(handler: AgentHandler, rec: InputRecord) -> Sequence[OutputRecord]:
    return asyncio.run(handler.handle(rec))


def offline_triage(**config: Any) -> AgentHandler:
    return build_handler(
        triage_config(**config), provider=OfflineProvider(agent="triage", classifier=KeywordClassifier())
    )


def offline_specialist(specialty: str = "billing", **config: Any) -> AgentHandler:
    return build_handler(specialist_config(specialty, **config), provider=OfflineProvider(agent="spec"))


def payload_of(output: OutputRecord) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(output.value)
    return value


def header(output: OutputRecord, name: str) -> bytes | None:
    return dict(output.headers).get(name)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"{not json", b"", b'{"a": 1', b"\xff\xfe\x00"])
def test_bytes_that_are_not_json_are_a_permanent_invalid_json_error(value: bytes) -> None:
    with pytest.raises(PermanentError) as caught:
        handle(offline_triage(), record(value))
    assert caught.value.error_class == "invalid_json"


def test_a_tombstone_is_a_permanent_invalid_json_error() -> None:
    with pytest.raises(PermanentError) as caught:
        handle(offline_triage(), record(None))
    assert caught.value.error_class == "invalid_json"


def test_json_that_is_not_a_ticket_created_event_is_schema_invalid_naming_the_field() -> None:
    payload = ticket_created()
    del payload["customer_id"]
    with pytest.raises(PermanentError) as caught:
        handle(offline_triage(), record(json.dumps(payload).encode()))
    assert caught.value.error_class == "schema_invalid"
    assert "customer_id" in caught.value.message


def test_a_json_array_is_schema_invalid() -> None:
    with pytest.raises(PermanentError) as caught:
        handle(offline_triage(), record(b"[1, 2]"))
    assert caught.value.error_class == "schema_invalid"


def test_a_specialist_rejects_a_ticket_created_event_as_schema_invalid() -> None:
    with pytest.raises(PermanentError) as caught:
        handle(offline_specialist(), record(json.dumps(ticket_created()).encode()))
    assert caught.value.error_class == "schema_invalid"
    assert "ticket.triaged" in caught.value.message


# --- triage --------------------------------------------------------------------------------


def test_triage_produces_one_schema_valid_triaged_event_keyed_by_ticket_id() -> None:
    (output,) = handle(offline_triage(), record(json.dumps(ticket_created()).encode()))
    event = payload_of(output)
    events.validate(EventType.TICKET_TRIAGED, event)
    assert output.topic == "ticket.triaged.billing" == event["triage"]["routed_to"]
    assert output.key == b"TCK-1001"
    assert event["ticket"] == ticket_created()
    assert event["agent"] == {"name": "triage", "role": "triage", "provider": "offline", "model": "offline-v1"}
    assert header(output, "srs-event-id") == event["event_id"].encode()
    assert header(output, "srs-event-type") == b"ticket.triaged"


def test_replaying_an_input_gives_the_same_event_id() -> None:
    value = json.dumps(ticket_created()).encode()
    first = payload_of(handle(offline_triage(), record(value, offset=7))[0])
    replay = payload_of(handle(offline_triage(), record(value, offset=912))[0])
    assert first["event_id"] == replay["event_id"]
    other = payload_of(handle(offline_triage(), record(json.dumps(ticket_created(event_id="evt-2")).encode()))[0])
    assert other["event_id"] != first["event_id"]


def test_the_trace_id_comes_from_the_payload_and_travels_in_the_traceparent_header() -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    value = json.dumps(ticket_created(trace_id=trace)).encode()
    (output,) = handle(offline_triage(), record(value, headers=(("traceparent", TRACEPARENT),)))
    assert payload_of(output)["trace_id"] == trace
    parsed = parse_traceparent(header(output, "traceparent"))
    assert parsed is not None and parsed.trace_id == trace


def test_without_a_payload_trace_the_traceparent_header_is_used() -> None:
    value = json.dumps(ticket_created()).encode()
    (output,) = handle(offline_triage(), record(value, headers=(("traceparent", TRACEPARENT),)))
    assert payload_of(output)["trace_id"] == HEADER_TRACE


def test_without_any_trace_a_stable_one_is_generated() -> None:
    value = json.dumps(ticket_created()).encode()
    first = payload_of(handle(offline_triage(), record(value))[0])["trace_id"]
    assert events.is_trace_id(first)
    assert payload_of(handle(offline_triage(), record(value))[0])["trace_id"] == first


def test_low_confidence_goes_to_the_human_topic_with_the_reason() -> None:
    value = json.dumps(ticket_created(subject="Hello", body="Just wanted to say hi.")).encode()
    (output,) = handle(offline_triage(), record(value))
    event = payload_of(output)
    events.validate(EventType.TICKET_TRIAGED, event)
    assert output.topic == HUMAN_TOPIC
    assert event["triage"]["route"] == "human"
    assert event["triage"]["human_reason"] == "confidence 0.40 is below the threshold 0.60"


def test_an_unknown_type_goes_to_the_human_topic_as_unknown() -> None:
    provider = ScriptedProvider(TriageDecision(None, Priority.MEDIUM, 0.0, "unreadable"))
    (output,) = handle(build_handler(triage_config(), provider=provider), record(json.dumps(ticket_created()).encode()))
    event = payload_of(output)
    assert (output.topic, event["triage"]["type"]) == (HUMAN_TOPIC, "unknown")


def test_a_transient_provider_error_propagates_for_the_engine_to_retry() -> None:
    provider = ScriptedProvider(error=TransientError("anthropic: rate limited"))
    with pytest.raises(TransientError):
        handle(build_handler(triage_config(), provider=provider), record(json.dumps(ticket_created()).encode()))


def test_a_ticket_with_the_largest_allowed_body_still_produces_valid_output() -> None:
    value = json.dumps(ticket_created(body="Refund please. " * 1333)).encode()
    (output,) = handle(offline_triage(), record(value))
    events.validate(EventType.TICKET_TRIAGED, payload_of(output))


# --- specialist ----------------------------------------------------------------------------


def test_a_specialist_produces_a_schema_valid_resolution_on_its_output_topic() -> None:
    (output,) = handle(offline_specialist(), record(json.dumps(ticket_triaged()).encode()))
    event = payload_of(output)
    events.validate(EventType.TICKET_RESOLVED, event)
    assert output.topic == "ticket.resolved" and output.key == b"TCK-1001"
    assert (event["type"], event["priority"], event["confidence"]) == ("billing", "high", 0.91)
    assert event["trace_id"] == ticket_triaged()["trace_id"]
    assert event["response"]["body"].startswith("Hi Maria,")
    assert event["response"]["subject"] == "Re: Charged twice for invoice INV-20931"
    assert event["guardrails"]["passed"] is True
    assert event["created_at"] == ticket_created()["created_at"]


def test_a_draft_failing_the_guardrails_goes_to_the_human_topic_with_an_escalation() -> None:
    provider = ScriptedProvider(draft_text="Hi Maria, your card 4111 1111 1111 1111 was refunded.")
    handler = build_handler(specialist_config(), provider=provider)
    (output,) = handle(handler, record(json.dumps(ticket_triaged()).encode()))
    event = payload_of(output)
    events.validate(EventType.TICKET_TRIAGED, event)
    assert output.topic == HUMAN_TOPIC and output.key == b"TCK-1001"
    assert event["triage"]["route"] == "human" and event["triage"]["routed_to"] == HUMAN_TOPIC
    assert event["escalation"] == {
        "stage": "specialist",
        "reason": "draft failed guardrails: pii_card_number",
        "failed_checks": ["pii_card_number"],
        "draft": "Hi Maria, your card [redacted: pii_card_number] was refunded.",
    }
    assert event["ticket"] == ticket_triaged()["ticket"]
    assert event["agent"]["role"] == "specialist"


def test_forbidden_phrases_from_the_config_escalate() -> None:
    config = specialist_config(guardrails={"forbidden_phrases": ["reviewing it against your account"]})
    handler = build_handler(config, provider=OfflineProvider(agent="spec"))
    (output,) = handle(handler, record(json.dumps(ticket_triaged()).encode()))
    assert output.topic == HUMAN_TOPIC
    assert payload_of(output)["escalation"]["failed_checks"] == ["forbidden_phrase"]


def test_resolution_and_escalation_ids_are_stable_and_distinct() -> None:
    value = json.dumps(ticket_triaged()).encode()
    resolved = payload_of(handle(offline_specialist(), record(value))[0])
    assert resolved["event_id"] == payload_of(handle(offline_specialist(), record(value))[0])["event_id"]
    escalating = build_handler(specialist_config(), provider=ScriptedProvider(draft_text=""))
    escalated = payload_of(handle(escalating, record(value))[0])
    assert escalated["escalation"]["failed_checks"] == ["empty"]
    assert escalated["event_id"] != resolved["event_id"]


@pytest.mark.parametrize("specialty", [t.value for t in TicketType])
def test_every_specialty_resolves_its_tickets_with_valid_events(specialty: str) -> None:
    triaged = ticket_triaged(type=specialty, routed_to=f"ticket.triaged.{specialty}")
    (output,) = handle(offline_specialist(specialty), record(json.dumps(triaged).encode()))
    events.validate(EventType.TICKET_RESOLVED, payload_of(output))
    assert payload_of(output)["type"] == specialty


def test_a_human_queue_event_reaching_a_specialist_is_dead_lettered_not_answered() -> None:
    triaged = ticket_triaged(route="human", routed_to=HUMAN_TOPIC, human_reason="low confidence")
    provider = ScriptedProvider()
    with pytest.raises(PermanentError, match="topic wiring"):
        handle(build_handler(specialist_config(), provider=provider), record(json.dumps(triaged).encode()))
    assert provider.calls == []


def test_closing_the_handler_closes_the_provider() -> None:
    provider = ScriptedProvider()
    asyncio.run(build_handler(specialist_config(), provider=provider).aclose())
    assert provider.closed


def test_the_default_offline_triage_runs_the_shipped_classifier_end_to_end() -> None:
    handler = build_handler(triage_config())
    payload = ticket_created(
        subject="Charged twice for my subscription",
        body="I was billed $49.99 twice this month for the Pro plan. Please refund the duplicate charge.",
    )
    (output,) = handle(handler, record(json.dumps(payload).encode()))
    event = payload_of(output)
    events.validate(EventType.TICKET_TRIAGED, event)
    assert event["agent"]["provider"] == "offline"
    assert event["triage"]["type"] == "billing" and output.topic == "ticket.triaged.billing"
    assert event["triage"]["reasoning"]


@pytest.mark.parametrize(
    "extra",
    [
        {"note": "Réfund “twice” — 請求 😀"},
        {"note": 'tabs\tnew\nlines \x00 \x1f \x7f \u2028 / \\ "'},
        {"n": 0.1, "c": 0.8731, "big": 1e300, "neg": -0.0, "i": -(2**63)},
        {"nested": [{"a": [True, False, None]}, []]},
    ],
)
def test_an_output_is_the_json_the_standard_library_writes(extra: dict[str, Any]) -> None:
    from agent_runtime.agent import encode_event

    event = {"event_id": "e-1", "trace_id": "0" * 31 + "1", "ticket_id": "t-1", **extra}
    record = encode_event("out", EventType.TICKET_TRIAGED, event)
    assert record.value == json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def test_a_float_with_an_exponent_is_the_same_number() -> None:
    from agent_runtime.agent import encode_event

    # The one spelling that differs: 1e-7 where json writes 1e-07 (the same JSON number).
    event = {"event_id": "e-1", "trace_id": "0" * 31 + "1", "ticket_id": "t-1", "m": 1e-7, "p": 2.5e-320}
    assert json.loads(encode_event("out", EventType.TICKET_TRIAGED, event).value) == event


def test_an_integer_past_64_bits_is_still_written() -> None:
    from agent_runtime.agent import encode_event

    event = {"event_id": "e-1", "trace_id": "0" * 31 + "1", "ticket_id": "t-1", "huge": 2**70}
    assert json.loads(encode_event("out", EventType.TICKET_TRIAGED, event).value)["huge"] == 2**70
