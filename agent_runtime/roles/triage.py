"""The triage role: classify a ticket, enrich it with the customer's record, route it.

Routing is a pure function of the decision and the configured table
(:class:`~srs_contracts.agent_config.TriageConfig`): a ticket goes to the topic its type maps
to, or to the human topic when the type is unknown, has no route, or the confidence is
below the threshold. The model only ever contributes a *label*; whatever a ticket's text
tells it, nothing can be routed to a topic outside the table.

A **cascade** puts a second model behind the first (``fallback_model``, e.g. an LLM behind
the offline classifier): the first decides what it is sure of; only the tickets it is not
sure of (confidence below the threshold, or no type) are asked of the fallback, whose
decision is routed with its own threshold; what neither is sure of goes to people. The
outcome says which stage decided, and the ``srs_agent_triage_stage`` and
``srs_agent_llm_calls_saved`` metrics count them.
"""

from __future__ import annotations

import asyncio
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal

from agent_runtime.metrics import LLM_CALLS_SAVED, ROUTED, TRIAGE_STAGE, children
from agent_runtime.providers import Provider
from agent_runtime.roles.enrichment import CustomerLookup
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import TriageConfig

Route = Literal["specialist", "human"]
Stage = Literal["primary", "fallback"]


@dataclass(frozen=True)
class Routing:
    """Where one decision goes: a specialist topic from the table, or the human topic."""

    route: Route
    topic: str
    human_reason: str | None = None


@dataclass(frozen=True)
class TriageOutcome:
    """Everything the triage role decided about one ticket."""

    decision: TriageDecision
    routing: Routing
    customer: dict[str, Any] | None
    #: With a fallback model: which stage ``decision`` is from (None without a cascade).
    stage: Stage | None = None
    #: ``provider/model`` that made ``decision``.
    decided_by: str | None = None


def route_decision(decision: TriageDecision, config: TriageConfig) -> Routing:
    """The route of ``decision`` through ``config``'s table (pure; the only routing rule)."""
    if decision.type is None:
        return Routing("human", config.human_topic, "the ticket type could not be determined")
    topic = config.routes.get(decision.type)
    if topic is None:
        return Routing("human", config.human_topic, f"no route is configured for type '{decision.type.value}'")
    if decision.confidence < config.confidence_threshold:
        return Routing(
            "human",
            config.human_topic,
            f"confidence {decision.confidence:.2f} is below the threshold {config.confidence_threshold:.2f}",
        )
    return Routing("specialist", topic)


def needs_fallback(decision: TriageDecision, config: TriageConfig) -> bool:
    """Whether the first model was not sure: no type, or a confidence below the threshold.
    (A sure decision for a type without a route goes to people; a second opinion would not help.)"""
    return decision.type is None or decision.confidence < config.confidence_threshold


@dataclass
class TriageRole:
    """Classify (and enrich) one ticket at a time; many may be in flight at once."""

    config: TriageConfig
    provider: Provider
    _: KW_ONLY
    #: The agent's name, for the metrics' ``agent`` label.
    agent: str
    customers: CustomerLookup | None = None
    #: The second model of the cascade: asked when the first is not sure.
    fallback: Provider | None = None

    def __post_init__(self) -> None:
        threshold = self.config.fallback_threshold
        self._fallback_config = (
            self.config if threshold is None else self.config.model_copy(update={"confidence_threshold": threshold})
        )
        self._routed = children(ROUTED, agent=self.agent)

    def _count_route(self, type_name: str, route: str) -> None:
        self._routed(type=type_name, route=route).inc()

    async def triage(self, ticket: Ticket) -> TriageOutcome:
        """Classify ``ticket`` and decide its route; provider errors propagate (the engine retries)."""
        if self.customers is not None:
            # The lookup runs while the model thinks; it never fails (it degrades to None).
            decision, customer = await asyncio.gather(
                self.provider.classify(ticket), self.customers.lookup(ticket.customer_id)
            )
        else:
            decision, customer = await self.provider.classify(ticket), None
        if self.fallback is None:
            routing = route_decision(decision, self.config)
            self._count_route(decision.type_name, routing.route)
            return TriageOutcome(decision=decision, routing=routing, customer=customer)
        return await self._cascade(ticket, decision, customer, self.fallback)

    async def _cascade(
        self, ticket: Ticket, first: TriageDecision, customer: dict[str, Any] | None, fallback: Provider
    ) -> TriageOutcome:
        primary_by = f"{self.provider.name}/{self.provider.model}"
        if not needs_fallback(first, self.config):
            routing = route_decision(first, self.config)
            TRIAGE_STAGE.labels(agent=self.agent, stage="primary", outcome="decided").inc()
            LLM_CALLS_SAVED.labels(agent=self.agent).inc()
            self._count_route(first.type_name, routing.route)
            return TriageOutcome(first, routing, customer, stage="primary", decided_by=primary_by)
        TRIAGE_STAGE.labels(agent=self.agent, stage="primary", outcome="escalated").inc()
        second = await fallback.classify(ticket)
        routing = route_decision(second, self._fallback_config)
        if routing.route == "human" and (
            second.type is None or second.confidence < self._fallback_config.confidence_threshold
        ):
            routing = Routing(
                "human",
                routing.topic,
                f"neither model is sure: {primary_by} {_said(first)}, "
                f"{fallback.name}/{fallback.model} {_said(second)} "
                f"(thresholds {self.config.confidence_threshold:.2f} and "
                f"{self._fallback_config.confidence_threshold:.2f})",
            )
        outcome = "decided" if routing.route == "specialist" else "escalated"
        TRIAGE_STAGE.labels(agent=self.agent, stage="fallback", outcome=outcome).inc()
        self._count_route(second.type_name, routing.route)
        return TriageOutcome(
            second, routing, customer, stage="fallback", decided_by=f"{fallback.name}/{fallback.model}"
        )


def _said(decision: TriageDecision) -> str:
    return f"said {decision.type_name} at {decision.confidence:.2f}"
