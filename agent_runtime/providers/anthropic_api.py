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

from collections.abc import Mapping
from typing import Final

import anthropic
from anthropic.types import Message, TextBlockParam, ToolParam

from agent_runtime.providers.base import DraftRequest, HttpSdkErrors, decision_from_output, finished_draft, read_api_key
from agent_runtime.providers.network import NetworkProvider
from agent_runtime.providers.prompts import (
    TRIAGE_OUTPUT_SCHEMA,
    TRIAGE_TOOL_DESCRIPTION,
    TRIAGE_TOOL_NAME,
    extract_json_object,
)
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import ModelConfig

PROVIDER_NAME: Final = "anthropic"

_TRIAGE_TOOL: Final[ToolParam] = {
    "name": TRIAGE_TOOL_NAME,
    "description": TRIAGE_TOOL_DESCRIPTION,
    "input_schema": TRIAGE_OUTPUT_SCHEMA,
}


def _cached_system(text: str) -> list[TextBlockParam]:
    return [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]


class AnthropicProvider(NetworkProvider):
    """Classify and draft with a Claude model."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        agent: str,
        system_prompt: str | None = None,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        super().__init__(model, agent=agent, provider_name=PROVIDER_NAME, system_prompt=system_prompt)
        self._map_error = _SDK_ERRORS.mapper(self._metrics)
        self._client = client or anthropic.AsyncAnthropic(
            api_key=read_api_key(model),
            base_url=model.base_url,
            timeout=model.timeout_seconds,
            max_retries=model.max_retries,
        )

    async def classify(self, ticket: Ticket) -> TriageDecision:
        system, user = self._triage_prompts(ticket, json_only=False)
        message = await self._call(
            "classify",
            self._client.messages.create(
                model=self._config.name,
                max_tokens=self._classify_max_tokens,
                system=_cached_system(system),
                tools=[_TRIAGE_TOOL],
                tool_choice={"type": "tool", "name": TRIAGE_TOOL_NAME, "disable_parallel_tool_use": True},
                messages=[{"role": "user", "content": user}],
            ),
        )
        for block in message.content:
            if block.type == "tool_use" and block.name == TRIAGE_TOOL_NAME:
                return decision_from_output(block.input, self._metrics)
        # No tool call (a refusal, or a server that ignores tool_choice): maybe JSON in text.
        return decision_from_output(extract_json_object(_text_of(message)), self._metrics)

    async def draft(self, request: DraftRequest) -> str:
        system, user = self._draft_prompts(request)
        message = await self._call(
            "draft",
            self._client.messages.create(
                model=self._config.name,
                max_tokens=self._config.max_tokens,
                system=_cached_system(system),
                messages=[{"role": "user", "content": user}],
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
