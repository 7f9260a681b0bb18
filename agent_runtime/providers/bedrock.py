"""Models on Amazon Bedrock through boto3's ``bedrock-runtime`` Converse API.

boto3 is synchronous: every call runs on a thread pool of this provider's own, sized to
the agent's concurrency (the event loop's default pool has only a handful of threads).
Retries are botocore's *adaptive* mode (exponential backoff plus client-side rate
limiting on throttling). Classification is a tool call (``toolChoice: any`` — the only
tool is ``record_triage``), parsed leniently since not every Bedrock model supports
forced tools. Credentials come from the standard AWS chain (IRSA on EKS, environment);
``model.base_url`` overrides the endpoint (VPC endpoints, tests).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

import boto3
import botocore.exceptions
from botocore.config import Config

from agent_runtime.providers.base import DraftRequest, decision_from_output, finished_draft, status_error
from agent_runtime.providers.network import NetworkProvider
from agent_runtime.providers.prompts import (
    TRIAGE_OUTPUT_SCHEMA,
    TRIAGE_TOOL_DESCRIPTION,
    TRIAGE_TOOL_NAME,
    extract_json_object,
)
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import ModelConfig

PROVIDER_NAME: Final = "bedrock"
DEFAULT_REGION: Final = "us-east-1"

_TRANSIENT_CODES: Final = {
    "ThrottlingException": "rate_limited",
    "ModelNotReadyException": "rate_limited",
    "ServiceQuotaExceededException": "rate_limited",
    "ModelTimeoutException": "timeout",
    "InternalServerException": "server",
    "ServiceUnavailableException": "server",
    "ModelErrorException": "server",
    "AccessDeniedException": "auth",
    "UnrecognizedClientException": "auth",
    "ExpiredTokenException": "auth",
}


def bedrock_client(model: ModelConfig, pool_size: int) -> Any:
    """A ``bedrock-runtime`` client with adaptive retries and the model's timeouts."""
    config = Config(
        retries={"mode": "adaptive", "total_max_attempts": model.max_retries + 1},
        connect_timeout=min(model.timeout_seconds, 10.0),
        read_timeout=model.timeout_seconds,
        max_pool_connections=pool_size,
    )
    region = model.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return boto3.client("bedrock-runtime", region_name=region, endpoint_url=model.base_url, config=config)


class BedrockProvider(NetworkProvider):
    """Classify and draft with a Bedrock model (Converse API)."""

    def __init__(
        self,
        model: ModelConfig,
        *,
        agent: str,
        system_prompt: str | None = None,
        concurrency: int = 16,
        client: Any = None,
    ) -> None:
        super().__init__(model, agent=agent, provider_name=PROVIDER_NAME, system_prompt=system_prompt)
        self._map_error = self._botocore_error
        self._client = client if client is not None else bedrock_client(model, concurrency)
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bedrock")

    async def _converse(self, operation: str, request: Mapping[str, Any]) -> Mapping[str, Any]:
        call: Callable[[], Mapping[str, Any]] = functools.partial(
            self._client.converse, modelId=self._config.name, **request
        )
        loop = asyncio.get_running_loop()

        async def in_thread() -> Mapping[str, Any]:
            return await loop.run_in_executor(self._executor, call)

        return await self._call(operation, in_thread())

    def _botocore_error(self, error: Exception) -> Exception | None:
        """botocore's exceptions as the engine's (None: not botocore's)."""
        if isinstance(error, botocore.exceptions.ClientError):
            return self._client_error(error)
        if isinstance(error, (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectTimeoutError)):
            return self._metrics.transient("timeout", "request timed out after botocore's retries")
        if isinstance(error, (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ConnectionClosedError)):
            return self._metrics.transient("connection", f"connection failed: {type(error).__name__}")
        if isinstance(error, botocore.exceptions.NoCredentialsError):
            return self._metrics.transient("auth", "no AWS credentials found")
        return None

    def _client_error(self, error: botocore.exceptions.ClientError) -> Exception:
        info = error.response.get("Error", {})
        code = str(info.get("Code", "Unknown"))
        detail = f"{code}: {str(info.get('Message', ''))[:200]}"
        kind = _TRANSIENT_CODES.get(code)
        if kind is not None:
            return self._metrics.transient(kind, detail)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400))
        return status_error(self._metrics, status, detail)

    async def classify(self, ticket: Ticket) -> TriageDecision:
        system, user = self._triage_prompts(ticket, json_only=False)
        response = await self._converse(
            "classify",
            {
                "system": [{"text": system}],
                "messages": [{"role": "user", "content": [{"text": user}]}],
                "inferenceConfig": {
                    "maxTokens": self._classify_max_tokens,
                    "temperature": self._config.temperature,
                },
                "toolConfig": {
                    "tools": [
                        {
                            "toolSpec": {
                                "name": TRIAGE_TOOL_NAME,
                                "description": TRIAGE_TOOL_DESCRIPTION,
                                "inputSchema": {"json": TRIAGE_OUTPUT_SCHEMA},
                            }
                        }
                    ],
                    "toolChoice": {"any": {}},
                },
            },
        )
        content = _content_of(response)
        for block in content:
            tool_use = block.get("toolUse")
            if isinstance(tool_use, Mapping) and tool_use.get("name") == TRIAGE_TOOL_NAME:
                return decision_from_output(tool_use.get("input"), self._metrics)
        return decision_from_output(extract_json_object(_text_of(content)), self._metrics)

    async def draft(self, request: DraftRequest) -> str:
        system, user = self._draft_prompts(request)
        response = await self._converse(
            "draft",
            {
                "system": [{"text": system}],
                "messages": [{"role": "user", "content": [{"text": user}]}],
                "inferenceConfig": {"maxTokens": self._config.max_tokens, "temperature": self._config.temperature},
            },
        )
        stop_reason = response.get("stopReason")
        return finished_draft(
            _text_of(_content_of(response)).strip(),
            stop_reason if isinstance(stop_reason, str) else None,
            self._metrics,
            refusal=f"Bedrock stopped the draft ({stop_reason})",
        )

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()


def _content_of(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    message = response.get("output", {}).get("message", {})
    content = message.get("content", []) if isinstance(message, Mapping) else []
    return [block for block in content if isinstance(block, Mapping)]


def _text_of(content: list[Mapping[str, Any]]) -> str:
    return "".join(str(block["text"]) for block in content if "text" in block)
