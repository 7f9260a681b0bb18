"""The bedrock provider: boto3's Converse API against a local endpoint, adaptive retries, off the event loop."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime.providers import IncompleteDraftError, build_provider
from agent_runtime.providers.base import DraftRequest
from agent_runtime.providers.bedrock import BedrockProvider
from agent_runtime.records import PermanentError, TransientError
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import ModelConfig, Priority, TicketType
from tests.unit.agent_fixtures import classify_once, metric
from tests.unit.wire_doubles import (
    Reply,
    WireServer,
    bedrock_error,
    converse_response,
    converse_tool_use,
)

pytestmark = [pytest.mark.unit, pytest.mark.usefixtures("fake_aws_credentials")]

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
TICKET = Ticket("TCK-3", "cust-3", "Cannot log in", "I reset my password but still cannot log in.")
GOOD = {"type": "account", "priority": "medium", "confidence": 0.86, "reasoning": "Sign-in trouble."}


def provider(server: WireServer, agent: str, **model: object) -> BedrockProvider:
    config = ModelConfig.model_validate(
        {"provider": "bedrock", "name": MODEL_ID, "base_url": server.url, "region": "eu-west-1",
         "timeout_seconds": 5, "max_retries": 2, **model}
    )  # fmt: skip
    built = build_provider(config, agent=agent, concurrency=4)
    assert isinstance(built, BedrockProvider)
    return built


def classify(p: BedrockProvider) -> TriageDecision:
    return classify_once(p, TICKET)


def test_classification_is_a_converse_call_with_the_triage_tool(server: WireServer) -> None:
    server.script(Reply(200, converse_tool_use(GOOD)))
    result = classify(provider(server, "t-br-ok", temperature=0.1))
    assert result == TriageDecision(TicketType.ACCOUNT, Priority.MEDIUM, 0.86, "Sign-in trouble.")
    (request,) = server.requests
    assert request.path == f"/model/{MODEL_ID.replace(':', '%3A')}/converse"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")
    assert "/eu-west-1/bedrock/aws4_request" in request.headers["authorization"]
    body = request.body
    assert body["inferenceConfig"] == {"maxTokens": 512, "temperature": 0.1}
    (tool,) = body["toolConfig"]["tools"]
    assert tool["toolSpec"]["name"] == "record_triage"
    assert tool["toolSpec"]["inputSchema"]["json"]["required"] == ["type", "priority", "confidence", "reasoning"]
    assert "untrusted" in body["system"][0]["text"]
    assert "<ticket>" in body["messages"][0]["content"][0]["text"]


def test_throttling_is_retried_by_botocore(server: WireServer) -> None:
    body, headers = bedrock_error("ThrottlingException", "Too many requests")
    server.script(Reply(429, body, headers), Reply(200, converse_tool_use(GOOD)))
    assert classify(provider(server, "t-br-429")).type is TicketType.ACCOUNT
    assert len(server.requests) == 2


def test_an_unavailable_service_ends_as_a_transient_error_after_the_retries(server: WireServer) -> None:
    body, headers = bedrock_error("ServiceUnavailableException", "try later")
    server.script(Reply(503, body, headers))
    before = metric("srs_agent_provider_errors_total", agent="t-br-503", provider="bedrock", kind="server")
    with pytest.raises(TransientError, match="ServiceUnavailableException"):
        classify(provider(server, "t-br-503", max_retries=1))
    assert len(server.requests) == 2
    assert metric("srs_agent_provider_errors_total", agent="t-br-503", provider="bedrock", kind="server") == before + 1


def test_a_validation_error_is_permanent(server: WireServer) -> None:
    body, headers = bedrock_error("ValidationException", "The provided model identifier is invalid.")
    server.script(Reply(400, body, headers))
    with pytest.raises(PermanentError, match="ValidationException"):
        classify(provider(server, "t-br-400"))
    assert len(server.requests) == 1


def test_a_read_timeout_is_a_transient_error(server: WireServer) -> None:
    server.script(Reply(200, converse_tool_use(GOOD), delay=2.0))
    with pytest.raises(TransientError, match="timed out"):
        classify(provider(server, "t-br-timeout", timeout_seconds=0.3, max_retries=0))


def test_a_model_without_forced_tools_answering_in_text_is_still_read(server: WireServer) -> None:
    server.script(
        Reply(200, converse_response([{"text": '{"type": "billing", "priority": "low", "confidence": 0.7}'}]))
    )
    assert classify(provider(server, "t-br-text")).type is TicketType.BILLING


def test_calls_run_off_the_event_loop(server: WireServer) -> None:
    server.script(Reply(200, converse_tool_use(GOOD), delay=0.5))
    p = provider(server, "t-br-loop")

    async def go() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        task = asyncio.create_task(ticker())
        await p.classify(TICKET)
        task.cancel()
        await p.aclose()
        return ticks

    assert asyncio.run(go()) >= 10  # the loop kept running for the half second boto3 waited


def test_draft_returns_the_text_and_a_truncated_one_is_incomplete(server: WireServer) -> None:
    server.script(
        Reply(200, converse_response([{"text": "Hi,\n\nUse Forgot password.\n\nThe Support Team"}])),
        Reply(200, converse_response([{"text": "Hi, use"}], stop_reason="max_tokens")),
    )
    p = provider(server, "t-br-draft")
    decision = TriageDecision(TicketType.ACCOUNT, Priority.MEDIUM, 0.9)
    assert "Forgot password" in asyncio.run(p.draft(DraftRequest(TICKET, decision, TicketType.ACCOUNT)))
    assert "toolConfig" not in server.requests[0].body
    with pytest.raises(IncompleteDraftError):
        asyncio.run(p.draft(DraftRequest(TICKET, decision, TicketType.ACCOUNT)))
