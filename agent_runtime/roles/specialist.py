"""The specialist role: draft a response for its specialty and hold it to the guardrails.

A draft that passes becomes a resolution. One that fails a guardrail — or that the
model could not finish — becomes an escalation to people, carrying the reason, the
failed checks and the draft with its PII masked. Nothing is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent_runtime.metrics import GUARDRAIL_BLOCKED
from agent_runtime.providers import IncompleteDraftError, Provider
from agent_runtime.providers.base import DraftRequest
from agent_runtime.roles.guardrails import check_draft
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import GuardrailConfig, SpecialistConfig

#: The "check" of a draft the model did not finish (length limit, refusal, filter).
CHECK_INCOMPLETE = "incomplete_draft"
#: Up to this much text (draft and customer text), the guardrails run on the event loop
#: (~0.2 ms for a 1 KB ticket's): handing them to a thread cost more CPU than the check.
INLINE_CHECK_CHARS = 8_192


@dataclass(frozen=True)
class Resolution:
    """A draft that passed every guardrail: it may go to the customer."""

    draft: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Escalation:
    """A draft held back for people: why, which checks failed, and the (redacted) draft."""

    reason: str
    failed_checks: tuple[str, ...]
    draft: str


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


class SpecialistRole:
    """Answer tickets of one specialty."""

    def __init__(
        self, config: SpecialistConfig, guardrails: GuardrailConfig, provider: Provider, *, agent: str
    ) -> None:
        self._config = config
        self._guardrails = guardrails
        self._provider = provider
        self._agent = agent

    @property
    def specialty(self) -> str:
        return self._config.specialty.value

    async def respond(
        self, ticket: Ticket, triage: TriageDecision, customer: Mapping[str, Any] | None = None
    ) -> Resolution | Escalation:
        """Draft a response to ``ticket`` and check it; provider errors propagate (the engine retries)."""
        try:
            draft = await self._provider.draft(DraftRequest(ticket, triage, self._config.specialty, customer))
        except IncompleteDraftError as e:
            GUARDRAIL_BLOCKED.labels(agent=self._agent, check=CHECK_INCOMPLETE).inc()
            partial = check_draft(
                e.partial_draft, self._guardrails, customer_text=self._customer_text(ticket, customer)
            )
            return Escalation(reason=e.reason, failed_checks=(CHECK_INCOMPLETE,), draft=partial.redacted_draft)
        customer_text = self._customer_text(ticket, customer)
        if len(draft) + sum(map(len, customer_text)) <= INLINE_CHECK_CHARS:
            result = check_draft(draft, self._guardrails, customer_text=customer_text)
        else:
            # CPU-bound (linear, but on up to ~100 KB of customer text): off the event loop, so
            # other tickets' deliveries and the engine's heartbeat go on meanwhile.
            result = await asyncio.to_thread(check_draft, draft, self._guardrails, customer_text=customer_text)
        if result.passed:
            return Resolution(draft=draft, checks=result.checks)
        for check in result.failed:
            GUARDRAIL_BLOCKED.labels(agent=self._agent, check=check).inc()
        return Escalation(reason=result.reason(), failed_checks=result.failed, draft=result.redacted_draft)

    @staticmethod
    def _customer_text(ticket: Ticket, customer: Mapping[str, Any] | None) -> list[str]:
        # What the customer wrote or is on record with: their own contact details may be echoed.
        return [ticket.subject, ticket.body, *_strings(ticket.metadata), *_strings(customer or {})]
