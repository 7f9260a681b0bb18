"""Claude through the official async SDK (``anthropic.AsyncAnthropic``).

- Structured output: classification is a forced call of the ``record_triage`` tool
  whose input schema is :data:`~agent_runtime.providers.prompts.TRIAGE_OUTPUT_SCHEMA`.
- Prompt caching: the system prompt is one text block with ``cache_control``
  (ephemeral), so the tool definition and the system prompt — identical for every
  ticket — are read from the cache after the first call.
- Timeouts and retries are the SDK's (``timeout``, ``max_retries``; 408/409/429/5xx and
  connection errors are retried with backoff honouring ``retry-after``). What is still
  failing after them is mapped to the engine's error classes.
- ``model.temperature`` is not sent: this SDK generation does not accept it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Final

import anthropic
from anthropic.types import Message, TextBlockParam, ToolParam

from agent_runtime.config import ModelConfig
from agent_runtime.providers.base import (
    CallMetrics,
    DraftRequest,
    HttpSdkErrors,
    call_within_deadline,
    decision_from_output,
    finished_draft,
    read_api_key,
)
from agent_runtime.providers.prompts import (
    TRIAGE_OUTPUT_SCHEMA,
    TRIAGE_SYSTEM_PROMPT,
    TRIAGE_TOOL_DESCRIPTION,
    TRIAGE_TOOL_NAME,
    draft_request,
    draft_system_prompt,
    extract_json_object,
    triage_request,
)
from agent_runtime.tickets import Ticket, TriageDecision

PROVIDER_NAME: Final = "anthropic"
#: A classification is a few dozen tokens; there is no point reserving more.
_CLASSIFY_MAX_TOKENS: Final = 512

_TRIAGE_TOOL: Final[ToolParam] = {
    "name": TRIAGE_TOOL_NAME,
    "description": TRIAGE_TOOL_DESCRIPTION,
    "input_schema": TRIAGE_OUTPUT_SCHEMA,
}


def _cached_system(text: str) -> list[TextBlockParam]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


class AnthropicProvider:
    """Classify and draft with a Claude model."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        agent: str,
        system_prompt: str | None = None,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        self._config = model
        self._system_prompt = system_prompt
        self._metrics = CallMetrics(agent, PROVIDER_NAME)
        self._map_error = _SDK_ERRORS.mapper(self._metrics)
        self._client = client or anthropic.AsyncAnthropic(
            api_key=read_api_key(model),
            base_url=model.base_url,
            timeout=model.timeout_seconds,
            max_retries=model.max_retries,
        )

    @property
    def name(self) -> str:
        return PROVIDER_NAME

    @property
    def model(self) -> str:
        return self._config.name

    async def _call(self, operation: str, request: Awaitable[Message]) -> Message:
        return await call_within_deadline(self._metrics, self._config, operation, request, self._map_error)

    async def classify(self, ticket: Ticket) -> TriageDecision:
        message = await self._call(
            "classify",
            self._client.messages.create(
                model=self._config.name,
                max_tokens=min(self._config.max_tokens, _CLASSIFY_MAX_TOKENS),
                system=_cached_system(self._system_prompt or TRIAGE_SYSTEM_PROMPT),
                tools=[_TRIAGE_TOOL],
                tool_choice={"type": "tool", "name": TRIAGE_TOOL_NAME, "disable_parallel_tool_use": True},
                messages=[{"role": "user", "content": triage_request(ticket, json_only=False)}],
            ),
        )
        for block in message.content:
            if block.type == "tool_use" and block.name == TRIAGE_TOOL_NAME:
                return decision_from_output(block.input, self._metrics)
        # No tool call (a refusal, or a server that ignores tool_choice): maybe JSON in text.
        return decision_from_output(extract_json_object(_text_of(message)), self._metrics)

    async def draft(self, request: DraftRequest) -> str:
        message = await self._call(
            "draft",
            self._client.messages.create(
                model=self._config.name,
                max_tokens=self._config.max_tokens,
                system=_cached_system(draft_system_prompt(request.specialty, self._system_prompt)),
                messages=[{"role": "user", "content": draft_request(request.ticket, request.triage, request.customer)}],
            ),
        )
        return finished_draft(
            _text_of(message).strip(),
            message.stop_reason,
            self._metrics,
            refusal="the model declined to draft a response",
        )

    async def aclose(self) -> None:
        await self._client.close()


def _text_of(message: Message) -> str:
    return "".join(block.text for block in message.content if block.type == "text")


def _error_detail(error: anthropic.APIStatusError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error")
        if isinstance(inner, Mapping):
            return f"{inner.get('type', 'error')}: {str(inner.get('message', ''))[:200]}"
    return type(error).__name__


_SDK_ERRORS: Final = HttpSdkErrors(
    anthropic.APITimeoutError, anthropic.APIConnectionError, anthropic.APIStatusError, _error_detail
)
