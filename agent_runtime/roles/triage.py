"""The triage role: classify a ticket, enrich it with the customer's record, route it.

Routing is a pure function of the decision and the configured table
(:class:`~agent_runtime.config.TriageConfig`): a ticket goes to the topic its type maps
to, or to the human topic when the type is unknown, has no route, or the confidence is
below the threshold. The model only ever contributes a *label*; whatever a ticket's text
tells it, nothing can be routed to a topic outside the table.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from agent_runtime.config import TriageConfig
from agent_runtime.metrics import ROUTED
from agent_runtime.providers import Provider
from agent_runtime.roles.enrichment import CustomerLookup
from agent_runtime.tickets import Ticket, TriageDecision

Route = Literal["specialist", "human"]


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


class TriageRole:
    """Classify (and enrich) one ticket at a time; many may be in flight at once."""

    def __init__(
        self, config: TriageConfig, provider: Provider, *, agent: str, customers: CustomerLookup | None = None
    ) -> None:
        self._config = config
        self._provider = provider
        self._agent = agent
        self._customers = customers

    async def triage(self, ticket: Ticket) -> TriageOutcome:
        """Classify ``ticket`` and decide its route; provider errors propagate (the engine retries)."""
        if self._customers is not None:
            # The lookup runs while the model thinks; it never fails (it degrades to None).
            decision, customer = await asyncio.gather(
                self._provider.classify(ticket), self._customers.lookup(ticket.customer_id)
            )
        else:
            decision, customer = await self._provider.classify(ticket), None
        routing = route_decision(decision, self._config)
        ROUTED.labels(agent=self._agent, type=decision.type_name, route=routing.route).inc()
        return TriageOutcome(decision=decision, routing=routing, customer=customer)
