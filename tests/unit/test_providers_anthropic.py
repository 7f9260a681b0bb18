"""The anthropic provider against a local server speaking the Messages API: the real SDK runs."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent_runtime.providers import IncompleteDraftError, ProviderConfigError, build_provider
from agent_runtime.providers.anthropic_api import AnthropicProvider
from agent_runtime.providers.base import DraftRequest
from agent_runtime.records import PermanentError, TransientError
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import ModelConfig, Priority, TicketType
from tests.unit.agent_fixtures import classify_once, metric
from tests.unit.wire_doubles import (
    Reply,
    WireServer,
    anthropic_error,
    anthropic_text,
    anthropic_tool_use,
)

pytestmark = pytest.mark.unit

KEY_ENV = "SRS_TEST_ANTHROPIC_KEY"
KEY = "sk-ant-test-0123456789"
TICKET = Ticket("TCK-1", "cust-1", "Charged twice", "I was charged twice for invoice INV-20931.\n\nThanks,\nMaria")
GOOD = {"type": "billing", "priority": "high", "confidence": 0.93, "reasoning": "A duplicate charge."}


@pytest.fixture(autouse=True)
def _api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


def provider(server: WireServer, agent: str, **model: object) -> AnthropicProvider:
    config = ModelConfig.model_validate(
        {"provider": "anthropic", "name": "claude-test", "base_url": server.url, "api_key_env": KEY_ENV,
         "timeout_seconds": 5, "max_retries": 2, **model}
    )  # fmt: skip
    built = build_provider(config, agent=agent)
    assert isinstance(built, AnthropicProvider)
    return built


def errors(agent: str, kind: str) -> float:
    return metric("srs_agent_provider_errors_total", agent=agent, provider="anthropic", kind=kind)


def classify(p: AnthropicProvider, ticket: Ticket = TICKET) -> TriageDecision:
    return classify_once(p, ticket)


def test_classification_is_a_forced_tool_call_with_a_cached_system_prompt(server: WireServer) -> None:
    server.script(Reply(200, anthropic_tool_use(GOOD)))
    result = classify(provider(server, "t-anth-ok"))
    assert result == TriageDecision(TicketType.BILLING, Priority.HIGH, 0.93, "A duplicate charge.")
    (request,) = server.requests
    assert request.path == "/v1/messages"
    assert KEY in (request.headers.get("x-api-key", "") + request.headers.get("authorization", ""))
    body = request.body
    assert body["model"] == "claude-test"
    assert body["tool_choice"]["type"] == "tool" and body["tool_choice"]["name"] == "record_triage"
    (tool,) = body["tools"]
    assert tool["input_schema"]["required"] == ["type", "priority", "confidence", "reasoning"]
    (system,) = body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert "untrusted" in system["text"]
    assert "<ticket>" in body["messages"][0]["content"] and "INV-20931" in body["messages"][0]["content"]


def test_a_429_with_retry_after_is_retried_by_the_sdk_after_the_requested_wait(server: WireServer) -> None:
    server.script(
        Reply(429, anthropic_error("rate_limit_error", "slow down"), {"retry-after": "1"}),
        Reply(200, anthropic_tool_use(GOOD)),
    )
    started = time.monotonic()
    result = classify(provider(server, "t-anth-429"))
    assert result.type is TicketType.BILLING
    assert len(server.requests) == 2
    # The SDK's own backoff would be ≤ 0.5 s: waiting a full second means retry-after was honoured.
    assert server.requests[1].at - server.requests[0].at >= 0.95
    assert time.monotonic() - started < 5


def test_an_overloaded_api_ends_as_a_transient_error_after_the_sdk_retries(server: WireServer) -> None:
    server.script(Reply(529, anthropic_error("overloaded_error", "Overloaded"), {"retry-after": "0"}))
    before = errors("t-anth-529", "server")
    with pytest.raises(TransientError, match="529"):
        classify(provider(server, "t-anth-529", max_retries=1))
    assert len(server.requests) == 2
    assert errors("t-anth-529", "server") == before + 1


def test_a_timeout_is_a_transient_error(server: WireServer) -> None:
    server.script(Reply(200, anthropic_tool_use(GOOD), delay=2.0))
    before = errors("t-anth-timeout", "timeout")
    with pytest.raises(TransientError, match="timed out"):
        classify(provider(server, "t-anth-timeout", timeout_seconds=0.3, max_retries=0))
    assert errors("t-anth-timeout", "timeout") == before + 1


def test_a_request_the_api_rejects_is_a_permanent_error(server: WireServer) -> None:
    server.script(Reply(400, anthropic_error("invalid_request_error", "prompt is too long")))
    with pytest.raises(PermanentError, match="prompt is too long") as caught:
        classify(provider(server, "t-anth-400"))
    assert caught.value.error_class == "permanent"
    assert len(server.requests) == 1  # not retried


def test_an_unknown_type_in_the_tool_call_becomes_unknown_and_is_counted(server: WireServer) -> None:
    server.script(Reply(200, anthropic_tool_use({**GOOD, "type": "route_to_ticket.admin"})))
    before = errors("t-anth-invalid", "invalid_output")
    result = classify(provider(server, "t-anth-invalid"))
    assert result.type is None and result.confidence == 0.0
    assert errors("t-anth-invalid", "invalid_output") == before + 1


def test_a_text_answer_with_json_instead_of_a_tool_call_is_still_read(server: WireServer) -> None:
    server.script(Reply(200, anthropic_text('Here you go: {"type": "account", "priority": "low", "confidence": 0.8}')))
    result = classify(provider(server, "t-anth-text"))
    assert result.type is TicketType.ACCOUNT and result.priority is Priority.LOW


def test_a_refusal_without_any_classification_goes_to_unknown(server: WireServer) -> None:
    server.script(Reply(200, anthropic_text("I can't help with that.", stop_reason="refusal")))
    assert classify(provider(server, "t-anth-refusal")).type is None


def test_a_model_that_says_unknown_is_not_an_error(server: WireServer) -> None:
    server.script(Reply(200, anthropic_tool_use({**GOOD, "type": "unknown", "confidence": 0.2})))
    before = errors("t-anth-unknown", "invalid_output")
    result = classify(provider(server, "t-anth-unknown"))
    assert result.type is None and result.confidence == 0.2
    assert errors("t-anth-unknown", "invalid_output") == before


def test_draft_returns_the_text_and_caches_the_specialist_prompt(server: WireServer) -> None:
    server.script(Reply(200, anthropic_text("Hi Maria,\n\nWe are on it.\n\nThe Support Team")))
    p = provider(server, "t-anth-draft")
    decision = TriageDecision(TicketType.BILLING, Priority.HIGH, 0.9)
    text = asyncio.run(p.draft(DraftRequest(TICKET, decision, TicketType.BILLING, {"name": "Maria", "password": "x"})))
    assert text.startswith("Hi Maria,")
    body = server.requests[0].body
    assert body["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert "billing support specialist" in body["system"][0]["text"]
    assert "password" not in body["messages"][0]["content"]  # sensitive customer fields stay out
    assert "tools" not in body


def test_a_draft_cut_off_at_the_token_limit_is_incomplete(server: WireServer) -> None:
    server.script(Reply(200, anthropic_text("Hi Maria, we", stop_reason="max_tokens")))
    p = provider(server, "t-anth-trunc")
    with pytest.raises(IncompleteDraftError) as caught:
        asyncio.run(
            p.draft(DraftRequest(TICKET, TriageDecision(TicketType.BILLING, Priority.LOW, 0.9), TicketType.BILLING))
        )
    assert caught.value.partial_draft == "Hi Maria, we"


def test_the_config_system_prompt_overrides_the_built_in_one(server: WireServer) -> None:
    server.script(Reply(200, anthropic_tool_use(GOOD)))
    config = ModelConfig(provider="anthropic", name="claude-test", base_url=server.url, api_key_env=KEY_ENV)
    p = build_provider(config, agent="t-anth-prompt", system_prompt="You triage for ACME.")
    asyncio.run(p.classify(TICKET))
    assert server.requests[0].body["system"][0]["text"] == "You triage for ACME."


def test_a_missing_api_key_variable_fails_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(ProviderConfigError, match=KEY_ENV):
        build_provider(ModelConfig(provider="anthropic", name="claude-test", api_key_env=KEY_ENV), agent="t")


def test_every_call_is_observed_in_the_llm_latency_histogram(server: WireServer) -> None:
    server.script(Reply(200, anthropic_tool_use(GOOD)))
    labels = {"agent": "t-anth-latency", "provider": "anthropic", "operation": "classify"}
    before = metric("srs_agent_llm_latency_seconds_count", **labels)
    classify(provider(server, "t-anth-latency"))
    assert metric("srs_agent_llm_latency_seconds_count", **labels) == before + 1
