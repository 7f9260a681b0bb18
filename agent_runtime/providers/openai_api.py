"""Any OpenAI-compatible chat-completions server through the official async SDK.

OpenAI itself, Ollama (``provider: ollama``, default ``http://localhost:11434/v1``), vLLM,
LiteLLM and friends: ``model.base_url`` points at the server. Classification asks for a
JSON object constrained by a JSON Schema (``response_format`` ``json_schema``, strict);
the answer is still parsed leniently, because not every compatible server enforces the
schema. Timeouts and retries (honouring ``retry-after``) are the SDK's.

What a real model answers is checked (:mod:`~agent_runtime.providers.quality`): invalid,
truncated or off-enum JSON and empty or looping drafts are asked again (a retry samples
at a temperature of at least ``RETRY_TEMPERATURE``: at 0 the same prompt gives the same
answer) while the call's time budget lasts; then the classification is type *unknown*
and the draft an :class:`IncompleteDraftError`, both with the reasons — people get the
ticket. Every answer's token usage and the model the server reported go to
:mod:`~agent_runtime.providers.usage`.

A server that says how many requests it decodes at once (llama.cpp's ``/props``
``total_slots``) gets no more than that from this process (:mod:`~agent_runtime.providers.slots`):
the others wait for a slot, and a call's deadline starts only once it has one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Final

import openai
from openai.types.chat import ChatCompletion

from agent_runtime.providers import usage
from agent_runtime.providers.base import (
    INVALID_OUTPUT_REASONING,
    STOP_REASONS,
    DraftRequest,
    HttpSdkErrors,
    IncompleteDraftError,
    ProviderConfigError,
    StopReason,
    decision_from_output,
    finished_draft,
    read_api_key,
)
from agent_runtime.providers.network import NetworkProvider
from agent_runtime.providers.prompts import TRIAGE_OUTPUT_SCHEMA, TRIAGE_TOOL_NAME, extract_json_object
from agent_runtime.providers.quality import Attempts, classification_problem, draft_problem
from agent_runtime.providers.slots import ServerSlots
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import ModelConfig, Priority

log = logging.getLogger(__name__)

OLLAMA_BASE_URL: Final = "http://localhost:11434/v1"
#: Local servers (Ollama, vLLM without --api-key) ignore the key, but the SDK insists on one.
_NO_KEY: Final = "not-needed"
#: The least temperature of a retry after an unusable answer.
RETRY_TEMPERATURE: Final = 0.7


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
        # Only a server given by base_url is asked for its slots (never a hosted API's default).
        self._slots = ServerSlots.for_server(base_url)

    async def classify(self, ticket: Ticket) -> TriageDecision:
        system, user = self._triage_prompts(ticket, json_only=True)
        attempts = Attempts(budget_s=self._config.timeout_seconds)
        while attempts.next():
            completion = await self._complete(
                "classify",
                attempts,
                max_tokens=self._classify_max_tokens,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": TRIAGE_TOOL_NAME, "schema": TRIAGE_OUTPUT_SCHEMA, "strict": True},
                },
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            )
            output = extract_json_object(_content_of(completion))
            problem = classification_problem(output, truncated=_stop_of(completion) is StopReason.TRUNCATED)
            if problem is None:
                return decision_from_output(output, self._metrics)
            self._unusable(attempts, "classify", problem)
        return TriageDecision(
            type=None,
            priority=Priority.MEDIUM,
            confidence=0.0,
            reasoning=f"{INVALID_OUTPUT_REASONING}: {attempts.reason()}",
        )

    async def draft(self, request: DraftRequest) -> str:
        system, user = self._draft_prompts(request)
        attempts = Attempts(budget_s=self._config.timeout_seconds)
        text = ""
        while attempts.next():
            completion = await self._complete(
                "draft",
                attempts,
                max_tokens=self._config.max_tokens,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            )
            text = _content_of(completion).strip()
            stop = _stop_of(completion)
            if stop is StopReason.REFUSED:  # asking again would not change a filter's mind
                return finished_draft(
                    text, completion.choices[0].finish_reason, self._metrics,
                    refusal="the provider's content filter stopped the draft",
                )  # fmt: skip
            if stop is StopReason.TRUNCATED:
                self._metrics.error("truncated")
                problem: str | None = "the model stopped at its token limit before finishing the draft"
            else:
                problem = draft_problem(text)
                if problem is not None:
                    self._metrics.error("invalid_output")
            if problem is None:
                return text
            self._unusable(attempts, "draft", problem, count=False)
        raise IncompleteDraftError(attempts.reason(), text)

    async def _complete(self, operation: str, attempts: Attempts, **kwargs: Any) -> ChatCompletion:
        """One chat completion: waits for a server slot, then runs under the call deadline;
        its usage goes to the ticket's meter."""
        temperature = self._config.temperature
        if attempts.retrying:
            temperature = max(temperature, RETRY_TEMPERATURE)
        async with self._slots.slot():
            started = time.perf_counter()
            completion: ChatCompletion = await self._call(
                operation,
                self._client.chat.completions.create(model=self._config.name, temperature=temperature, **kwargs),
            )
        tokens = completion.usage
        usage.record(
            input_tokens=tokens.prompt_tokens if tokens else None,
            output_tokens=tokens.completion_tokens if tokens else None,
            duration_s=time.perf_counter() - started,
            model=completion.model or None,
        )
        return completion

    def _unusable(self, attempts: Attempts, operation: str, problem: str, *, count: bool = True) -> None:
        if count:
            self._metrics.error("invalid_output")
        attempts.problems.append(problem)
        log.warning("unusable model answer", extra={"operation": operation, "problem": problem})

    async def aclose(self) -> None:
        await self._client.close()


def _content_of(completion: ChatCompletion) -> str:
    if not completion.choices:
        return ""
    return completion.choices[0].message.content or ""


def _stop_of(completion: ChatCompletion) -> StopReason:
    reason = completion.choices[0].finish_reason if completion.choices else None
    return STOP_REASONS.get(reason or "", StopReason.COMPLETE)


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
