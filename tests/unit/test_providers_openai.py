"""The OpenAI-compatible provider (OpenAI, Ollama, vLLM) against a local chat-completions server."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_runtime.providers import IncompleteDraftError, ProviderConfigError, build_provider
from agent_runtime.providers.base import DraftRequest
from agent_runtime.providers.openai_api import OpenAICompatibleProvider
from agent_runtime.records import PermanentError, TransientError
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import ModelConfig, Priority, TicketType
from tests.unit.agent_fixtures import classify_once, metric
from tests.unit.wire_doubles import Reply, WireServer, openai_compatible, openai_completion, openai_error

pytestmark = pytest.mark.unit

KEY_ENV = "SRS_TEST_OPENAI_KEY"
KEY = "sk-proj-test-0123456789"
TICKET = Ticket("TCK-2", "cust-2", "Webhook failing", "Our webhook returns 500 since this morning.")
GOOD = {"type": "technical", "priority": "high", "confidence": 0.88, "reasoning": "A failing integration."}


def provider(server: WireServer, agent: str, name: str = "openai", **model: object) -> OpenAICompatibleProvider:
    return openai_compatible(server, agent, provider=name, **model)


def classify(p: OpenAICompatibleProvider) -> TriageDecision:
    return classify_once(p, TICKET)


def errors(agent: str, kind: str, provider_name: str = "openai") -> float:
    return metric("srs_agent_provider_errors_total", agent=agent, provider=provider_name, kind=kind)


def test_classification_asks_for_schema_constrained_json(server: WireServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    server.script(Reply(200, openai_completion(json.dumps(GOOD))))
    result = classify(provider(server, "t-oai-ok", api_key_env=KEY_ENV, temperature=0.2))
    assert result == TriageDecision(TicketType.TECHNICAL, Priority.HIGH, 0.88, "A failing integration.")
    (request,) = server.requests
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {KEY}"
    body = request.body
    assert body["model"] == "llama3.1" and body["temperature"] == 0.2
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "untrusted" in body["messages"][0]["content"]


def test_ollama_needs_no_api_key_and_is_labelled_as_ollama(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(json.dumps(GOOD))))
    p = provider(server, "t-ollama", name="ollama")
    assert p.name == "ollama"
    assert classify(p).type is TicketType.TECHNICAL


def test_json_in_a_code_fence_is_read(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(f"```json\n{json.dumps(GOOD)}\n```")))
    assert classify(provider(server, "t-oai-fence", name="ollama")).type is TicketType.TECHNICAL


def test_a_confidence_given_as_a_percentage_is_scaled(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(json.dumps({**GOOD, "confidence": 75}))))
    assert classify(provider(server, "t-oai-pct", name="ollama")).confidence == 0.75


def test_an_answer_that_is_never_json_becomes_unknown_with_the_reason_and_is_counted(server: WireServer) -> None:
    server.script(Reply(200, openai_completion("It is probably a technical issue.")))
    before = errors("t-oai-garbage", "invalid_output", "ollama")
    result = classify(provider(server, "t-oai-garbage", name="ollama"))
    assert result.type is None and result.confidence == 0.0
    assert "no usable answer after 3 attempt(s): the answer is not JSON" in result.reasoning
    assert len(server.requests) == 3, "asked again twice"
    assert errors("t-oai-garbage", "invalid_output", "ollama") == before + 3


def test_a_429_with_retry_after_is_retried_by_the_sdk(server: WireServer) -> None:
    server.script(
        Reply(429, openai_error("Rate limit reached", "requests"), {"retry-after": "1"}),
        Reply(200, openai_completion(json.dumps(GOOD))),
    )
    assert classify(provider(server, "t-oai-429", name="ollama")).type is TicketType.TECHNICAL
    assert len(server.requests) == 2
    assert server.requests[1].at - server.requests[0].at >= 0.95


def test_a_server_that_keeps_failing_ends_as_a_transient_error(server: WireServer) -> None:
    server.script(Reply(503, openai_error("model is loading"), {"retry-after": "0"}))
    before = errors("t-oai-503", "server", "ollama")
    with pytest.raises(TransientError, match="503"):
        classify(provider(server, "t-oai-503", name="ollama", max_retries=1))
    assert len(server.requests) == 2
    assert errors("t-oai-503", "server", "ollama") == before + 1


def test_an_unknown_model_is_a_permanent_error(server: WireServer) -> None:
    server.script(Reply(404, openai_error("model 'llama9' not found", "not_found_error")))
    with pytest.raises(PermanentError, match="not found"):
        classify(provider(server, "t-oai-404", name="ollama"))


def test_a_timeout_is_a_transient_error(server: WireServer) -> None:
    server.script(Reply(200, openai_completion(json.dumps(GOOD)), delay=2.0))
    with pytest.raises(TransientError, match="timed out"):
        classify(provider(server, "t-oai-timeout", name="ollama", timeout_seconds=0.3, max_retries=0))


def test_draft_returns_the_message_text(server: WireServer) -> None:
    server.script(Reply(200, openai_completion("Hi,\n\nWe are looking into the webhook.\n\nThe Support Team")))
    p = provider(server, "t-oai-draft", name="ollama")
    text = asyncio.run(
        p.draft(DraftRequest(TICKET, TriageDecision(TicketType.TECHNICAL, Priority.HIGH, 0.9), TicketType.TECHNICAL))
    )
    assert "webhook" in text
    body = server.requests[0].body
    assert "response_format" not in body
    assert "technical support specialist" in body["messages"][0]["content"]


def test_a_draft_cut_off_by_the_length_limit_is_incomplete(server: WireServer) -> None:
    server.script(Reply(200, openai_completion("Hi, we are", finish_reason="length")))
    p = provider(server, "t-oai-len", name="ollama")
    with pytest.raises(IncompleteDraftError, match="token limit"):
        asyncio.run(
            p.draft(DraftRequest(TICKET, TriageDecision(TicketType.TECHNICAL, Priority.LOW, 0.9), TicketType.TECHNICAL))
        )


def test_openai_without_any_key_fails_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_ADMIN_KEY", raising=False)
    with pytest.raises(ProviderConfigError):
        build_provider(ModelConfig(provider="openai", name="gpt-test"), agent="t")
