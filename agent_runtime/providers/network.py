"""What the providers that call a model over the network share.

Anthropic, OpenAI-compatible servers and Bedrock differ in their SDKs and wire formats
only. The rest is one thing, kept here: the model config and the call metrics, the
prompts (an agent's own system prompt overrides the default), a classification's token
budget, and every call bounded by one deadline with the SDK's errors mapped to the
engine's (:func:`~agent_runtime.providers.base.call_within_deadline`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Mapping
from typing import Any, Final, TypeVar

from agent_runtime.metrics import GEN_AI_OPERATION_DURATION, GEN_AI_TOKEN_USAGE
from agent_runtime.providers.base import CallMetrics, DraftRequest, ErrorMapper, call_within_deadline
from agent_runtime.providers.prompts import TRIAGE_SYSTEM_PROMPT, draft_request, draft_system_prompt, triage_request
from agent_runtime.tickets import Ticket
from srs_contracts import traces
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
        self._agent = agent

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
        """Await one SDK call, timed, bounded by the call deadline, its errors mapped; recorded as
        OpenTelemetry's GenAI metrics and, when tracing is on, a ``chat <model>`` span."""
        config = self._config
        labels = (self._agent, self._provider_name, config.name, operation)
        started = time.perf_counter()
        error_type = ""
        with traces.model_call(
            operation, self._provider_name, config.name, temperature=config.temperature,
            max_tokens=self._classify_max_tokens if operation == "classify" else config.max_tokens,
        ) as span:  # fmt: skip
            try:
                result = await call_within_deadline(self._metrics, config, operation, request, self._map_error)
            except BaseException as e:
                # The SDK's own exception class when there is one (RateLimitError, APITimeoutError, …).
                error_type = type(e.__cause__ or e).__name__
                if span is not None:
                    traces.failed(span, e, error_type)
                raise
            finally:
                GEN_AI_OPERATION_DURATION.labels(*labels, error_type).observe(time.perf_counter() - started)
            usage = token_usage(result)
            if usage is not None:
                GEN_AI_TOKEN_USAGE.labels(*labels, "input").observe(usage[0])
                GEN_AI_TOKEN_USAGE.labels(*labels, "output").observe(usage[1])
                if span is not None:
                    span.set_attribute("gen_ai.usage.input_tokens", usage[0])
                    span.set_attribute("gen_ai.usage.output_tokens", usage[1])
        return result

    def _triage_prompts(self, ticket: Ticket, *, json_only: bool) -> tuple[str, str]:
        """(system, user) of a classification."""
        return self._system_prompt or TRIAGE_SYSTEM_PROMPT, triage_request(ticket, json_only=json_only)

    def _draft_prompts(self, request: DraftRequest) -> tuple[str, str]:
        """(system, user) of a draft by ``request.specialty``'s specialist."""
        return (
            draft_system_prompt(request.specialty, self._system_prompt),
            draft_request(request.ticket, request.triage, request.customer),
        )


def token_usage(response: Any) -> tuple[int, int] | None:
    """(input, output) tokens an SDK response reports, or None: Anthropic's
    ``usage.input_tokens``/``output_tokens``, OpenAI's ``usage.prompt_tokens``/``completion_tokens``,
    Bedrock Converse's ``usage.inputTokens``/``outputTokens``."""
    usage = response.get("usage") if isinstance(response, Mapping) else getattr(response, "usage", None)
    if usage is None:
        return None
    pairs = (("input_tokens", "output_tokens"), ("prompt_tokens", "completion_tokens"), ("inputTokens", "outputTokens"))
    for input_name, output_name in pairs:
        if isinstance(usage, Mapping):
            found = usage.get(input_name), usage.get(output_name)
        else:
            found = getattr(usage, input_name, None), getattr(usage, output_name, None)
        if isinstance(found[0], int) and isinstance(found[1], int):
            return found[0], found[1]
    return None
