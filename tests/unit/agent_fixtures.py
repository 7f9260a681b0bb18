"""Building blocks for the agent-runtime tests: events, configs, a fake classifier and provider.

The fakes stand in for parts built elsewhere or for a model's judgement only; event
schemas, routing, guardrails and the SDK code paths are always the real ones.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.metrics import REGISTRY
from agent_runtime.providers import IncompleteDraftError
from agent_runtime.providers.base import DraftRequest, Provider
from agent_runtime.records import InputRecord
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import AgentConfig, Priority, TicketType

ROUTES = {
    "billing": "ticket.triaged.billing",
    "technical": "ticket.triaged.technical",
    "feature_request": "ticket.triaged.feature_request",
    "account": "ticket.triaged.account",
    "other": "ticket.triaged.other",
}
HUMAN_TOPIC = "ticket.triaged.human"


def ticket_created(**overrides: Any) -> dict[str, Any]:
    """A valid ticket.created payload."""
    event: dict[str, Any] = {
        "event_type": "ticket.created",
        "event_id": "evt-0001",
        "ticket_id": "TCK-1001",
        "created_at": "2025-03-01T09:30:00Z",
        "customer_id": "cust-42",
        "channel": "email",
        "subject": "Charged twice for invoice INV-20931",
        "body": "Hello, I was charged $49.99 twice this month for my Pro plan. Please refund one.\n\nThanks,\nMaria",
    }
    event.update(overrides)
    return event


def ticket_triaged(ticket: Mapping[str, Any] | None = None, **triage: Any) -> dict[str, Any]:
    """A valid ticket.triaged payload routed to the billing specialist."""
    section: dict[str, Any] = {
        "type": "billing",
        "priority": "high",
        "confidence": 0.91,
        "reasoning": "mentions a double charge",
        "route": "specialist",
        "routed_to": "ticket.triaged.billing",
    }
    section.update(triage)
    return {
        "event_type": "ticket.triaged",
        "event_id": "5f0e7f7e-1a2b-5c3d-8e4f-000000000001",
        "ticket_id": (ticket or ticket_created())["ticket_id"],
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "triaged_at": "2025-03-01T09:30:02.123Z",
        "ticket": dict(ticket or ticket_created()),
        "triage": section,
        "customer": {"customer_id": "cust-42", "name": "Maria Lopez", "plan": "Pro", "email": "maria@example.com"},
        "agent": {"name": "triage", "role": "triage", "provider": "offline", "model": "offline-v1"},
    }


def record(value: bytes | None, *, topic: str = "ticket.events", offset: int = 7, headers: Any = ()) -> InputRecord:
    return InputRecord(topic=topic, partition=0, offset=offset, key=b"TCK-1001", value=value, headers=headers)


def triage_config(**overrides: Any) -> AgentConfig:
    doc: dict[str, Any] = {
        "name": "triage",
        "role": "triage",
        "kafka": {"group_id": "triage", "input_topic": "ticket.events"},
        "triage": {"routes": ROUTES, "human_topic": HUMAN_TOPIC, "confidence_threshold": 0.6},
    }
    doc.update(overrides)
    return AgentConfig.model_validate(doc)


def specialist_config(specialty: str = "billing", **overrides: Any) -> AgentConfig:
    doc: dict[str, Any] = {
        "name": f"{specialty}-specialist",
        "role": "specialist",
        "kafka": {"group_id": specialty, "input_topic": f"ticket.triaged.{specialty}"},
        "specialist": {"specialty": specialty, "output_topic": "ticket.resolved", "human_topic": HUMAN_TOPIC},
    }
    doc.update(overrides)
    return AgentConfig.model_validate(doc)


@dataclass(frozen=True)
class FakePrediction:
    type: TicketType
    priority: Priority
    confidence: float
    reasoning: str


class KeywordClassifier:
    """A tiny stand-in for the offline classifier (same interface: ``predict(subject, body)``)."""

    KEYWORDS = (
        (TicketType.BILLING, ("invoice", "charged", "refund", "payment")),
        (TicketType.TECHNICAL, ("error", "crash", "bug", "down")),
        (TicketType.FEATURE_REQUEST, ("would be great", "please add", "feature")),
        (TicketType.ACCOUNT, ("password", "login", "2fa", "account")),
    )

    def predict(self, subject: str, body: str) -> FakePrediction:
        text = f"{subject} {body}".lower()
        for ticket_type, words in self.KEYWORDS:
            if any(w in text for w in words):
                return FakePrediction(ticket_type, Priority.HIGH, 0.9, f"mentions {ticket_type.value} words")
        return FakePrediction(TicketType.OTHER, Priority.LOW, 0.4, "no strong signal")


@dataclass
class ScriptedProvider:
    """A provider whose answers the test decides (the model's judgement is not under test)."""

    decision: TriageDecision | None = None
    draft_text: str = "Hi Maria,\n\nWe are reviewing the charge.\n\nBest regards,\nThe Support Team\n"
    error: Exception | None = None
    calls: list[tuple[str, Ticket]] = field(default_factory=list)
    closed: bool = False

    @property
    def name(self) -> str:
        return "scripted"

    @property
    def model(self) -> str:
        return "scripted-1"

    async def classify(self, ticket: Ticket) -> TriageDecision:
        self.calls.append(("classify", ticket))
        if self.error is not None:
            raise self.error
        assert self.decision is not None
        return self.decision

    async def draft(self, request: DraftRequest) -> str:
        self.calls.append(("draft", request.ticket))
        if self.error is not None:
            raise self.error
        return self.draft_text

    async def aclose(self) -> None:
        self.closed = True


def incomplete(reason: str, partial: str) -> IncompleteDraftError:
    return IncompleteDraftError(reason, partial)


def metric(name: str, **labels: str) -> float:
    """The current value of one sample of the agent registry (0 when absent)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


def classify_once(provider: Provider, ticket: Ticket) -> TriageDecision:
    """Classify ``ticket`` with ``provider`` on a fresh loop, then close the provider."""

    async def go() -> TriageDecision:
        try:
            return await provider.classify(ticket)
        finally:
            await provider.aclose()

    return asyncio.run(go())
