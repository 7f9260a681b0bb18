"""A triage cascade on the real broker: the offline classifier first, an LLM behind it.

The LLM is the OpenAI-compatible wire double (the real ``openai`` SDK talks HTTP to it).
What the offline model is sure of is routed without an LLM call; what it is not sure of is
asked of the LLM; what neither is sure of reaches people — and every ticket.triaged event
says which stage decided.
"""

from __future__ import annotations

import json

import pytest

from agent_runtime import events
from agent_runtime.agent import build_handler
from agent_runtime.engine import EngineSettings
from agent_runtime.events import EventType
from srs_contracts.agent_config import AgentConfig
from tests.harness import Infra, TopicFactory
from tests.integration.engine_support import FAST_GROUP, engine_running, free_port, produce, read_all
from tests.unit.agent_fixtures import metric
from tests.unit.wire_doubles import Reply, openai_completion, wire_server

pytestmark = pytest.mark.integration

KEY_ENV = "SRS_TEST_CASCADE_KEY"


def created(ticket_id: str, subject: str, body: str) -> dict[str, str]:
    return {
        "event_type": "ticket.created",
        "event_id": f"evt-{ticket_id}",
        "ticket_id": ticket_id,
        "created_at": "2025-03-01T09:30:00Z",
        "customer_id": "cust-1",
        "subject": subject,
        "body": body,
    }


def test_the_llm_gets_only_what_the_offline_model_is_unsure_of_and_people_what_neither_is_sure_of(
    infra: Infra, kafka_topic: TopicFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-test-cascade")
    topics = {name: kafka_topic(f"cascade-{name}") for name in ("events", "billing", "technical", "human", "dlq")}
    sure = created("C-SURE", "Charged twice", "You charged my card twice for the March invoice, please refund one.")
    # Words the classifier has never seen: it cannot be sure, so the LLM is asked.
    llm_sure = created("C-LLM", "Zorblax frimble", "The quorple wugs keep splonking since the flimflam.")
    nobody_sure = created("C-NOBODY", "Blorp", "Snarfle gribbit vonk.")
    with wire_server(
        Reply(200, openai_completion(json.dumps({"type": "technical", "priority": "medium", "confidence": 0.92}))),
        Reply(200, openai_completion(json.dumps({"type": "account", "priority": "low", "confidence": 0.41}))),
    ) as llm:
        config = AgentConfig.model_validate({
            "name": "cascade-triage", "role": "triage", "concurrency": 1, "server": {"port": free_port()},
            "kafka": {"bootstrap_servers": infra.kafka_bootstrap, "group_id": f"triage-{topics['events']}",
                      "input_topic": topics["events"], "dead_letter_topic": topics["dlq"]},
            "model": {"provider": "offline"},
            "fallback_model": {"provider": "openai", "name": "gpt-test", "base_url": f"{llm.url}/v1",
                               "api_key_env": KEY_ENV, "timeout_seconds": 10},
            "triage": {"routes": {"billing": topics["billing"], "technical": topics["technical"]},
                       "human_topic": topics["human"], "confidence_threshold": 0.85, "fallback_threshold": 0.7},
        })  # fmt: skip
        saved_before = metric("srs_agent_llm_calls_saved_total", agent="cascade-triage")
        produce(
            infra.kafka_bootstrap,
            topics["events"],
            [(t["ticket_id"].encode(), json.dumps(t).encode()) for t in (sure, llm_sure, nobody_sure)],
        )
        settings = EngineSettings.from_agent_config(
            config, {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, **FAST_GROUP}, shutdown_grace_s=10
        )
        with engine_running(settings, build_handler(config)):
            billing = read_all(infra.kafka_bootstrap, topics["billing"], 1, timeout_s=60)
            technical = read_all(infra.kafka_bootstrap, topics["technical"], 1, timeout_s=60)
            human = read_all(infra.kafka_bootstrap, topics["human"], 1, timeout_s=60)

    decided = {r.key: r.json() for r in [*billing, *technical, *human]}
    for event in decided.values():
        events.validate(EventType.TICKET_TRIAGED, event)
    by_offline = decided[b"C-SURE"]["triage"]
    assert (by_offline["stage"], by_offline["decided_by"], by_offline["type"]) == (
        "primary",
        "offline/offline-v1",
        "billing",
    )
    by_llm = decided[b"C-LLM"]["triage"]
    assert (by_llm["stage"], by_llm["decided_by"]) == ("fallback", "openai/gpt-test")
    assert (by_llm["route"], by_llm["routed_to"], by_llm["type"]) == ("specialist", topics["technical"], "technical")
    by_nobody = decided[b"C-NOBODY"]["triage"]
    assert (by_nobody["stage"], by_nobody["route"], by_nobody["routed_to"]) == ("fallback", "human", topics["human"])
    assert "neither model is sure" in by_nobody["human_reason"]

    # The LLM saw exactly the two tickets the offline model was unsure of, through its real wire protocol.
    asked = [json.dumps(r.body) for r in llm.requests]
    assert len(asked) == 2
    assert "Zorblax" in asked[0] and "Snarfle" in asked[1]
    assert all(r.path == "/v1/chat/completions" for r in llm.requests)
    assert metric("srs_agent_llm_calls_saved_total", agent="cascade-triage") == saved_before + 1
