"""Any OpenAI-compatible chat-completions server through the official async SDK.

OpenAI itself, Ollama (``provider: ollama``, default ``http://localhost:11434/v1``), vLLM,
LiteLLM and friends: ``model.base_url`` points at the server. Classification asks for a
JSON object constrained by a JSON Schema (``response_format`` ``json_schema``, strict);
the answer is still parsed leniently, because not every compatible server enforces the
schema. Timeouts and retries (honouring ``retry-after``) are the SDK's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import openai
from openai.types.chat import ChatCompletion

from agent_runtime.providers.base import (
    DraftRequest,
    HttpSdkErrors,
    ProviderConfigError,
    decision_from_output,
    finished_draft,
    read_api_key,
)
from agent_runtime.providers.network import NetworkProvider
from agent_runtime.providers.prompts import TRIAGE_OUTPUT_SCHEMA, TRIAGE_TOOL_NAME, extract_json_object
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import ModelConfig

OLLAMA_BASE_URL: Final = "http://localhost:11434/v1"
#: Local servers (Ollama, vLLM without --api-key) ignore the key, but the SDK insists on one.
_NO_KEY: Final = "not-needed"


class OpenAICompatibleProvider(NetworkProvider):
    """Classify and draft through a chat-completions endpoint."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        agent: str,
        provider_name: str = "openai",
        system_prompt: str | None = None,
        client: openai.AsyncOpenAI | None = None,
    ) -> None:
        super().__init__(model, agent=agent, provider_name=provider_name, system_prompt=system_prompt)
        self._map_error = _SDK_ERRORS.mapper(self._metrics)
        base_url = model.base_url or (OLLAMA_BASE_URL if provider_name == "ollama" else None)
        api_key = read_api_key(model)
        if api_key is None and base_url is not None:
            api_key = _NO_KEY
        try:
            self._client = client or openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                timeout=model.timeout_seconds,
                max_retries=model.max_retries,
            )
        except openai.OpenAIError as e:
            raise ProviderConfigError(f"{provider_name}: set model.api_key_env (or OPENAI_API_KEY): {e}") from e

    async def classify(self, ticket: Ticket) -> TriageDecision:
        system, user = self._triage_prompts(ticket, json_only=True)
        completion = await self._call(
            "classify",
            self._client.chat.completions.create(
                model=self._config.name,
                temperature=self._config.temperature,
                max_tokens=self._classify_max_tokens,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": TRIAGE_TOOL_NAME, "schema": TRIAGE_OUTPUT_SCHEMA, "strict": True},
                },
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
            ),
        )
        return decision_from_output(extract_json_object(_content_of(completion)), self._metrics)

    async def draft(self, request: DraftRequest) -> str:
        system, user = self._draft_prompts(request)
        completion = await self._call(
            "draft",
            self._client.chat.completions.create(
                model=self._config.name,
                temperature=self._config.temperature,
                max_tokens=self._config.max_tokens,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
            ),
        )
        return finished_draft(
            _content_of(completion).strip(),
            completion.choices[0].finish_reason if completion.choices else None,
            self._metrics,
            refusal="the provider's content filter stopped the draft",
        )

    async def aclose(self) -> None:
        await self._client.close()


def _content_of(completion: ChatCompletion) -> str:
    if not completion.choices:
        return ""
    return completion.choices[0].message.content or ""


def _error_detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping):
            return f"{inner.get('type') or inner.get('code') or 'error'}: {str(inner.get('message', ''))[:200]}"
    return type(error).__name__


_SDK_ERRORS: Final = HttpSdkErrors(
    openai.APITimeoutError, openai.APIConnectionError, openai.APIStatusError, _error_detail
)
