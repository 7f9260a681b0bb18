"""What the providers that call a model over the network share.

Anthropic, OpenAI-compatible servers and Bedrock differ in their SDKs and wire formats
only. The rest is one thing, kept here: the model config and the call metrics, the
prompts (an agent's own system prompt overrides the default), a classification's token
budget, and every call bounded by one deadline with the SDK's errors mapped to the
engine's (:func:`~agent_runtime.providers.base.call_within_deadline`).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Final, TypeVar

from agent_runtime.providers.base import CallMetrics, DraftRequest, ErrorMapper, call_within_deadline
from agent_runtime.providers.prompts import TRIAGE_SYSTEM_PROMPT, draft_request, draft_system_prompt, triage_request
from agent_runtime.tickets import Ticket
from srs_contracts.agent_config import ModelConfig

T = TypeVar("T")

#: A classification is a few dozen tokens; there is no point reserving more.
CLASSIFY_MAX_TOKENS: Final = 512


class NetworkProvider:
    """The base of the network providers; a subclass sets ``_map_error`` for its SDK."""

    _map_error: ErrorMapper

    def __init__(self, model: ModelConfig, *, agent: str, provider_name: str, system_prompt: str | None) -> None:
        self._config = model
        self._provider_name = provider_name
        self._system_prompt = system_prompt
        self._metrics = CallMetrics(agent, provider_name)

    @property
    def name(self) -> str:
        return self._provider_name

    @property
    def model(self) -> str:
        return self._config.name

    @property
    def _classify_max_tokens(self) -> int:
        return min(self._config.max_tokens, CLASSIFY_MAX_TOKENS)

    async def _call(self, operation: str, request: Awaitable[T]) -> T:
        """Await one SDK call, timed, bounded by the call deadline, its errors mapped."""
        return await call_within_deadline(self._metrics, self._config, operation, request, self._map_error)

    def _triage_prompts(self, ticket: Ticket, *, json_only: bool) -> tuple[str, str]:
        """(system, user) of a classification."""
        return self._system_prompt or TRIAGE_SYSTEM_PROMPT, triage_request(ticket, json_only=json_only)

    def _draft_prompts(self, request: DraftRequest) -> tuple[str, str]:
        """(system, user) of a draft by ``request.specialty``'s specialist."""
        return (
            draft_system_prompt(request.specialty, self._system_prompt),
            draft_request(request.ticket, request.triage, request.customer),
        )
