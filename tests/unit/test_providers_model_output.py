"""What real models answer: unusable output asked again, then handed to people with the
reason; token usage carried to the ticket; a server's slots respected.

The server is the OpenAI wire double (the real SDK runs); the checks of
``agent_runtime.providers.quality`` are tested on their own too.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from agent_runtime.providers import IncompleteDraftError, usage
from agent_runtime.providers.base import DraftRequest
from agent_runtime.providers.openai_api import RETRY_TEMPERATURE, OpenAICompatibleProvider
from agent_runtime.providers.quality import Attempts, classification_problem, draft_problem, repeats_itself
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import Priority, TicketType
from tests.unit.agent_fixtures import metric
from tests.unit.wire_doubles import Reply, WireServer, openai_compatible, openai_completion

pytestmark = pytest.mark.unit

TICKET = Ticket("TCK-7", "cust-7", "Charged twice", "I was charged twice for invoice INV-7.")
GOOD = {"type": "billing", "priority": "high", "confidence": 0.9, "reasoning": "A double charge."}
TRIAGE = TriageDecision(TicketType.BILLING, Priority.HIGH, 0.9)
GOOD_DRAFT = "Hello,\n\nThank you for telling us. Our billing team will review the charge today.\n\nThe Support Team"
LOOP = "Thank you for contacting us about your invoice. " * 12


def provider(server: WireServer, agent: str, **model: object) -> OpenAICompatibleProvider:
    return openai_compatible(server, agent, **{"name": "gemma3-270m", "timeout_seconds": 10, "max_retries": 0, **model})


def draft(p: OpenAICompatibleProvider) -> str:
    return asyncio.run(p.draft(DraftRequest(TICKET, TRIAGE, TicketType.BILLING)))


def errors(agent: str, kind: str) -> float:
    return metric("srs_agent_provider_errors_total", agent=agent, provider="openai", kind=kind)


# --- the checks on their own ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("output", "truncated", "problem"),
    [
        (GOOD, False, None),
        ({**GOOD, "type": "unknown"}, False, None),  # unknown on purpose is an answer
        (None, False, "not JSON"),
        ([GOOD], False, "not an object"),
        ({**GOOD, "type": "refund"}, False, "'refund' is not one of the ticket types"),
        ({**GOOD, "confidence": "very"}, False, "confidence 'very'"),
        (GOOD, True, "truncated JSON"),
    ],
)
def test_classification_problems_are_named(output: object, truncated: bool, problem: str | None) -> None:
    found = classification_problem(output, truncated=truncated)
    assert found == problem if problem is None else problem in (found or "")


def test_a_draft_that_loops_is_told_from_one_that_repeats_a_word() -> None:
    assert repeats_itself(LOOP)
    assert repeats_itself("We will look into it.\n" * 3)
    ngram_loop = " ".join(["please check the settings page and then"] * 8)
    assert repeats_itself(ngram_loop)
    assert not repeats_itself(GOOD_DRAFT)
    assert not repeats_itself(
        "Your invoice INV-7 shows the charge. The charge is pending. The team checks charges daily."
    )
    assert draft_problem("   ") == "the model returned an empty draft"
    assert draft_problem(LOOP) == "the draft repeats itself"
    assert draft_problem(GOOD_DRAFT) is None


def test_attempts_stop_at_the_limit_and_when_the_budget_would_be_exceeded() -> None:
    attempts = Attempts(budget_s=60)
    assert [attempts.next() for _ in range(4)] == [True, True, True, False]
    slow = Attempts(budget_s=0.3)
    assert slow.next()
    time.sleep(0.2)  # the first attempt took 0.2 s; another would end past 0.3 s
    assert not slow.next()


# --- classify -------------------------------------------------------------------------------


def test_an_unusable_classification_is_asked_again_at_a_higher_temperature(server: WireServer) -> None:
    server.script(
        Reply(200, openai_completion('{"type": "billing", "priority": "hi')),  # cut off
        Reply(200, openai_completion(json.dumps(GOOD))),
    )
    p = provider(server, "t-out-retry")
    result = asyncio.run(p.classify(TICKET))
    assert result.type is TicketType.BILLING and result.confidence == 0.9
    first, second = (r.body for r in server.requests)
    assert first["temperature"] == 0.0 and second["temperature"] == RETRY_TEMPERATURE
    assert second["response_format"]["type"] == "json_schema"


def test_a_type_outside_the_enum_goes_to_people_with_the_reason(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(json.dumps({**GOOD, "type": "refunds"}))))
    result = asyncio.run(provider(server, "t-out-enum").classify(TICKET))
    assert result.type is None and result.confidence == 0.0
    assert "'refunds' is not one of the ticket types" in result.reasoning


def test_json_cut_off_at_the_token_limit_is_named_truncated(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(json.dumps(GOOD), finish_reason="length")))
    result = asyncio.run(provider(server, "t-out-trunc").classify(TICKET))
    assert result.type is None and "truncated JSON" in result.reasoning


# --- draft ----------------------------------------------------------------------------------


def test_a_looping_draft_is_asked_again_and_the_usable_one_returned(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(LOOP)), Reply(200, openai_completion(GOOD_DRAFT)))
    before = errors("t-out-loop", "invalid_output")
    assert draft(provider(server, "t-out-loop")) == GOOD_DRAFT.strip()
    assert len(server.requests) == 2
    assert errors("t-out-loop", "invalid_output") == before + 1


def test_drafts_that_stay_unusable_end_incomplete_with_every_reason(server: WireServer) -> None:
    server.script(
        Reply(200, openai_completion("")),
        Reply(200, openai_completion(LOOP)),
        Reply(200, openai_completion("Hello, we are", finish_reason="length")),
    )
    with pytest.raises(IncompleteDraftError) as raised:
        draft(provider(server, "t-out-bad"))
    reason = raised.value.reason
    assert reason.startswith("no usable answer after 3 attempt(s)")
    for problem in ("empty draft", "repeats itself", "token limit"):
        assert problem in reason
    assert raised.value.partial_draft == "Hello, we are"


def test_a_refusal_is_not_asked_again(server: WireServer) -> None:
    server.script(Reply(200, openai_completion("", finish_reason="content_filter")))
    with pytest.raises(IncompleteDraftError, match="content filter"):
        draft(provider(server, "t-out-refusal"))
    assert len(server.requests) == 1


# --- usage ----------------------------------------------------------------------------------


def test_every_call_of_a_ticket_adds_its_tokens_and_the_served_model(server: WireServer) -> None:
    served = {**openai_completion(GOOD_DRAFT), "model": "gemma-3-270m-q4_k_m.gguf"}
    server.script(Reply(200, openai_completion(LOOP)), Reply(200, served))
    p = provider(server, "t-out-usage")

    async def one_ticket() -> usage.Usage:
        with usage.metered() as spent:
            await p.draft(DraftRequest(TICKET, TRIAGE, TicketType.BILLING))
        return spent

    spent = asyncio.run(one_ticket())
    assert (spent.calls, spent.input_tokens, spent.output_tokens) == (2, 1400, 80)
    assert spent.model == "gemma-3-270m-q4_k_m.gguf"
    assert spent.duration_s > 0
    assert spent.as_dict()["model"] == "gemma-3-270m-q4_k_m.gguf"


def test_concurrent_tickets_keep_their_own_usage(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(GOOD_DRAFT), delay=0.1))
    p = provider(server, "t-out-usage-2")

    async def ticket(calls: int) -> int:
        with usage.metered() as spent:
            for _ in range(calls):
                await p.draft(DraftRequest(TICKET, TRIAGE, TicketType.BILLING))
        return spent.calls

    async def both() -> list[int]:
        return list(await asyncio.gather(ticket(1), ticket(3)))

    assert asyncio.run(both()) == [1, 3]


# --- slots ----------------------------------------------------------------------------------


def test_no_more_requests_than_the_server_has_slots_and_waiting_does_not_count_against_the_deadline(
    server: WireServer,
) -> None:
    server.props = {"total_slots": 2}
    server.script(Reply(200, openai_completion(GOOD_DRAFT), delay=0.5))
    # Six drafts on two slots take ~1.5 s; each call's own deadline (1 s) covers only its 0.5 s.
    p = provider(server, "t-out-slots", timeout_seconds=1)

    async def six() -> list[str]:
        return list(
            await asyncio.gather(*(p.draft(DraftRequest(TICKET, TRIAGE, TicketType.BILLING)) for _ in range(6)))
        )

    started = time.monotonic()
    drafts = asyncio.run(six())
    assert drafts == [GOOD_DRAFT.strip()] * 6
    starts = sorted(r.at for r in server.requests)
    assert len(starts) == 6
    # At most two requests were in the server at any moment: the third starts once the first ended.
    assert starts[2] - starts[0] >= 0.45 and starts[4] - starts[2] >= 0.45
    assert time.monotonic() - started >= 1.4


def test_a_server_without_slots_is_not_limited(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(GOOD_DRAFT), delay=1.0))
    p = provider(server, "t-out-noslots")

    async def four() -> None:
        await asyncio.gather(*(p.draft(DraftRequest(TICKET, TRIAGE, TicketType.BILLING)) for _ in range(4)))

    asyncio.run(four())
    starts = sorted(r.at for r in server.requests)
    assert starts[-1] - starts[0] < 1.0, "the fourth was sent before the first was answered"


# --- through the handler: the events people and consumers see --------------------------------


def _handle_with(server: WireServer, agent: str) -> dict[str, object]:
    from agent_runtime.agent import build_handler
    from tests.unit.agent_fixtures import record, specialist_config, ticket_triaged

    handler = build_handler(specialist_config(), provider=provider(server, agent))
    (output,) = asyncio.run(
        handler.handle(record(json.dumps(ticket_triaged()).encode(), topic="ticket.triaged.billing"))
    )
    event: dict[str, object] = json.loads(output.value or b"")
    return {"topic": output.topic, **event}


def test_a_resolution_carries_the_tokens_and_the_model_the_server_reported(server: WireServer) -> None:
    from agent_runtime import events

    server.script(Reply(200, {**openai_completion(GOOD_DRAFT), "model": "gemma-3-270m-q4_k_m.gguf"}))
    event = _handle_with(server, "t-out-evt")
    assert event["topic"] == "ticket.resolved"
    events.validate(events.EventType.TICKET_RESOLVED, {k: v for k, v in event.items() if k != "topic"})
    assert event["usage"] == {
        "input_tokens": 700,
        "output_tokens": 40,
        "calls": 1,
        "duration_ms": pytest.approx(event["usage"]["duration_ms"]),  # type: ignore[index]
        "model": "gemma-3-270m-q4_k_m.gguf",
    }
    assert event["agent"]["model"] == "gemma3-270m"  # type: ignore[index]


def test_a_draft_that_keeps_looping_reaches_people_with_the_reason_and_its_cost(server: WireServer) -> None:
    from agent_runtime import events

    server.script(Reply(200, openai_completion(LOOP)))
    event = _handle_with(server, "t-out-evt-loop")
    assert event["topic"] == "ticket.triaged.human"
    events.validate(events.EventType.TICKET_TRIAGED, {k: v for k, v in event.items() if k != "topic"})
    escalation = event["escalation"]
    assert isinstance(escalation, dict)
    assert escalation["reason"] == "no usable answer after 3 attempt(s): the draft repeats itself"
    assert escalation["failed_checks"] == ["incomplete_draft"]
    assert event["usage"]["calls"] == 3  # type: ignore[index]
