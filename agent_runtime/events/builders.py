"""Builders of the output events (``ticket.triaged``, ``ticket.resolved``): the fields an
agent fills in, around the input ticket, with derived ids."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from agent_runtime.events.schemas import EventType
from srs_contracts.timestamps import rfc3339


@dataclass(frozen=True)
class AgentInfo:
    """Who produced an event (the ``agent`` section of every output)."""

    name: str
    role: str
    provider: str
    model: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "provider": self.provider, "model": self.model}


#: ``triage.reasoning`` is capped by the schema; longer model output is cut, not rejected.
MAX_REASONING_CHARS: Final = 2000


@dataclass(frozen=True)
class TriageSection:
    """The ``triage`` section of a ticket.triaged event."""

    type: str  # a TicketType value or "unknown"
    priority: str
    confidence: float
    route: str  # "specialist" | "human"
    routed_to: str
    reasoning: str | None = None
    human_reason: str | None = None
    #: Which model of a cascade this decision is from: "primary" or "fallback" (None: no cascade).
    stage: str | None = None
    #: ``provider/model`` that made the decision (set with ``stage``).
    decided_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        section: dict[str, Any] = {
            "type": self.type,
            "priority": self.priority,
            "confidence": round(min(max(self.confidence, 0.0), 1.0), 4),
            "route": self.route,
            "routed_to": self.routed_to,
        }
        if self.reasoning:
            section["reasoning"] = _truncate(self.reasoning, MAX_REASONING_CHARS)
        if self.human_reason:
            section["human_reason"] = self.human_reason
        if self.stage:
            section["stage"] = self.stage
        if self.decided_by:
            section["decided_by"] = self.decided_by
        return section


@dataclass(frozen=True)
class Escalation:
    """The ``escalation`` section: why a specialist handed its draft to people."""

    reason: str
    failed_checks: tuple[str, ...] = ()
    draft: str | None = None

    def as_dict(self) -> dict[str, Any]:
        section: dict[str, Any] = {"stage": "specialist", "reason": self.reason}
        if self.failed_checks:
            section["failed_checks"] = list(self.failed_checks)
        if self.draft is not None:
            section["draft"] = self.draft
        return section


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _identity(event_type: EventType, event_id: str, ticket: Mapping[str, Any], trace_id: str) -> dict[str, Any]:
    """The fields every output event starts with: what it is, its stable id, the ticket, the trace."""
    return {
        "event_type": event_type.value,
        "event_id": event_id,
        "ticket_id": ticket["ticket_id"],
        "trace_id": trace_id,
    }


def build_triaged(
    *,
    event_id: str,
    trace_id: str,
    ticket: Mapping[str, Any],
    triage: TriageSection,
    agent: AgentInfo,
    customer: Mapping[str, Any] | None = None,
    escalation: Escalation | None = None,
    triaged_at: str | None = None,
) -> dict[str, Any]:
    """A ``ticket.triaged`` event about ``ticket`` (the ticket.created event, carried unchanged)."""
    event: dict[str, Any] = {
        **_identity(EventType.TICKET_TRIAGED, event_id, ticket, trace_id),
        "triaged_at": triaged_at or rfc3339(),
        "ticket": dict(ticket),
        "triage": triage.as_dict(),
        "customer": dict(customer) if customer is not None else None,
        "agent": agent.as_dict(),
    }
    if escalation is not None:
        event["escalation"] = escalation.as_dict()
    return event


def build_resolved(
    *,
    event_id: str,
    trace_id: str,
    ticket: Mapping[str, Any],
    ticket_type: str,
    priority: str,
    response_body: str,
    agent: AgentInfo,
    confidence: float | None = None,
    response_subject: str | None = None,
    guardrail_checks: tuple[str, ...] = (),
    resolved_at: str | None = None,
) -> dict[str, Any]:
    """A ``ticket.resolved`` event: a drafted response to ``ticket`` that passed the guardrails."""
    response: dict[str, Any] = {"body": response_body}
    if response_subject:
        response["subject"] = response_subject
    event: dict[str, Any] = {
        **_identity(EventType.TICKET_RESOLVED, event_id, ticket, trace_id),
        "resolved_at": resolved_at or rfc3339(),
        "type": ticket_type,
        "priority": priority,
        "subject": ticket.get("subject", ""),
        "customer_id": ticket.get("customer_id", ""),
        "response": response,
        "guardrails": {"passed": True, "checks": list(guardrail_checks)},
        "agent": agent.as_dict(),
    }
    if confidence is not None:
        event["confidence"] = round(min(max(confidence, 0.0), 1.0), 4)
    if "created_at" in ticket:
        event["created_at"] = ticket["created_at"]
    return event
