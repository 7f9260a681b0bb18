"""The provider contract and what every provider shares: metrics, error mapping, output parsing.

A provider answers two questions for a role — *what is this ticket?* (``classify``) and
*what do we answer?* (``draft``) — and knows nothing about topics or Kafka. Network
failures become :class:`~agent_runtime.records.TransientError` (the engine retries with
backoff); requests the provider will never accept become
:class:`~agent_runtime.records.PermanentError`; output that is not what was asked for is
counted and degraded (an unreadable classification is type *unknown*, so the ticket goes
to people).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Generic, Protocol, TypeVar

from agent_runtime.metrics import LLM_LATENCY, PROVIDER_ERRORS, children
from agent_runtime.records import PermanentError, TransientError
from agent_runtime.tickets import (
    UNKNOWN_TYPE,
    Ticket,
    TriageDecision,
    parse_confidence,
    parse_priority,
    parse_ticket_type,
)
from srs_contracts.agent_config import ModelConfig, Priority, TicketType

log = logging.getLogger(__name__)

T = TypeVar("T")


class Provider(Protocol):
    """An LLM back end as the roles see it."""

    @property
    def name(self) -> str:
        """The provider's name (``offline``, ``anthropic``, …): a metrics label and event field."""
        ...

    @property
    def model(self) -> str:
        """The model id as the provider knows it."""
        ...

    async def classify(self, ticket: Ticket) -> TriageDecision:
        """Type, priority, confidence and a short reasoning for ``ticket``."""
        ...

    async def draft(self, request: DraftRequest) -> str:
        """A response to ``request.ticket`` written by the ``request.specialty`` specialist
        (plain text).

        Raises :class:`IncompleteDraftError` when the model stopped before finishing.
        """
        ...

    async def aclose(self) -> None:
        """Release network clients and threads."""
        ...


@dataclass(frozen=True)
class DraftRequest:
    """What a specialist asks a provider to answer: the ticket, its triage, the specialty
    that answers, and the customer's record when enrichment found one."""

    ticket: Ticket
    triage: TriageDecision
    specialty: TicketType
    customer: Mapping[str, Any] | None = None


class ProviderConfigError(RuntimeError):
    """The provider cannot be set up from the config (missing API key, unknown provider)."""


class IncompleteDraftError(Exception):
    """The model stopped before the draft was complete (length limit, refusal).

    The specialist escalates such a draft to people with ``reason``; it never sends it.
    """

    def __init__(self, reason: str, partial_draft: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial_draft = partial_draft


class StopReason(StrEnum):
    """Why a model stopped writing a draft, in words common to every provider."""

    COMPLETE = "complete"
    #: The token limit cut the draft short.
    TRUNCATED = "truncated"
    #: The model or the provider's filter declined to write it.
    REFUSED = "refused"


#: Each provider's own stop reasons (Anthropic's ``stop_reason``, OpenAI's ``finish_reason``,
#: Bedrock's ``stopReason``) in common words; a reason not listed is a complete draft.
STOP_REASONS: Final[Mapping[str, StopReason]] = {
    "max_tokens": StopReason.TRUNCATED,  # Anthropic, Bedrock
    "length": StopReason.TRUNCATED,  # OpenAI
    "refusal": StopReason.REFUSED,  # Anthropic
    "content_filter": StopReason.REFUSED,  # OpenAI
    "guardrail_intervened": StopReason.REFUSED,  # Bedrock
    "content_filtered": StopReason.REFUSED,  # Bedrock
}


def finished_draft(text: str, stop_reason: str | None, metrics: CallMetrics, *, refusal: str) -> str:
    """``text`` when the model finished it; :class:`IncompleteDraftError` (counted as
    ``truncated`` or ``refused``) when the provider's ``stop_reason`` says it did not, with
    ``refusal`` as the reason of a refusal. An empty draft is counted as invalid output."""
    stop = STOP_REASONS.get(stop_reason or "", StopReason.COMPLETE)
    if stop is StopReason.TRUNCATED:
        metrics.error("truncated")
        raise IncompleteDraftError("the model stopped at its token limit before finishing the draft", text)
    if stop is StopReason.REFUSED:
        metrics.error("refused")
        raise IncompleteDraftError(refusal, text)
    if not text:
        metrics.error("invalid_output")
    return text


def read_api_key(model: ModelConfig) -> str | None:
    """The API key from the environment variable ``model.api_key_env`` names (None: not configured).

    A configured but empty variable is an error at startup, not a 401 on every ticket.
    """
    if not model.api_key_env:
        return None
    value = os.environ.get(model.api_key_env, "")
    if not value:
        raise ProviderConfigError(
            f"model.api_key_env names the environment variable {model.api_key_env!r}, but it is not set"
        )
    return value


def call_deadline(model: ModelConfig, retry_allowance_seconds: float = 60.0) -> float:
    """An upper bound on one provider call including the SDK's own retries.

    SDKs honour ``retry-after``; a server asking for an hour must not park a ticket for
    an hour — past this bound the engine's own retry (with backoff) takes over.
    """
    return model.timeout_seconds * (model.max_retries + 1) + retry_allowance_seconds


class CallMetrics:
    """LLM latency and error counters of one provider in one agent."""

    def __init__(self, agent: str, provider: str) -> None:
        self._agent = agent
        self._provider = provider
        self._latency = children(LLM_LATENCY, agent=agent, provider=provider)

    def observe(self, operation: str) -> AbstractAsyncContextManager[None]:
        """Time one call (failed calls too) into ``LLM_LATENCY``."""
        return _Timed(self._latency(operation=operation))

    def error(self, kind: str) -> None:
        """Count one provider error of ``kind`` (timeout, rate_limited, server, invalid_output, …)."""
        PROVIDER_ERRORS.labels(agent=self._agent, provider=self._provider, kind=kind).inc()

    def transient(self, kind: str, message: str) -> TransientError:
        """Count and build the error the engine retries."""
        self.error(kind)
        return TransientError(f"{self._provider}: {message}")

    def permanent(self, kind: str, message: str) -> PermanentError:
        """Count and build the error that sends the input to the dead-letter topic."""
        self.error(kind)
        return PermanentError("permanent", f"{self._provider}: {message}")


class _Timed(AbstractAsyncContextManager[None]):
    """Observes how long its ``async with`` block took, failed or not (a plain class: an
    ``asynccontextmanager`` costs several times as much, on every ticket)."""

    __slots__ = ("_histogram", "_started")

    def __init__(self, histogram: Any) -> None:
        self._histogram = histogram
        self._started = 0.0

    async def __aenter__(self) -> None:
        self._started = time.perf_counter()

    async def __aexit__(self, *_exc: object) -> None:
        self._histogram.observe(time.perf_counter() - self._started)


def status_error(metrics: CallMetrics, status: int, detail: str) -> Exception:
    """Map an HTTP status from a provider to the engine's error classes.

    429 and 5xx (529 overloaded included), 408 and 409 are worth retrying; so are 401 and
    403 (a key being rotated fixes itself; a wrong one ends in the dead-letter topic once
    the engine's retries are spent). Other 4xx will never succeed for this input.
    """
    if status == 429:
        return metrics.transient("rate_limited", f"rate limited (429) after the SDK's retries: {detail}")
    if status >= 500:
        return metrics.transient("server", f"server error ({status}): {detail}")
    if status in (408, 409):
        return metrics.transient("timeout", f"request timeout/conflict ({status}): {detail}")
    if status in (401, 403):
        return metrics.transient("auth", f"credentials rejected ({status}); check the API key secret: {detail}")
    return metrics.permanent("rejected", f"request rejected ({status}): {detail}")


#: Turns an SDK's exception into the engine's (None: not one the SDK raises).
ErrorMapper = Callable[[Exception], Exception | None]


async def call_within_deadline(
    metrics: CallMetrics,
    model: ModelConfig,
    operation: str,
    request: Awaitable[T],
    map_error: ErrorMapper,
) -> T:
    """Await ``request``, timed into ``metrics`` and bounded by :func:`call_deadline`.

    An exception is first offered to ``map_error`` (the SDK's own classes); otherwise
    running past the deadline is a transient ``timeout`` and anything else propagates.
    """
    async with metrics.observe(operation):
        try:
            async with asyncio.timeout(call_deadline(model)):
                return await request
        except Exception as e:
            mapped = map_error(e)
            if mapped is not None:
                raise mapped from e
            if isinstance(e, TimeoutError):
                raise metrics.transient("timeout", "call exceeded its overall deadline") from e
            raise


class _StatusError(Protocol):
    @property
    def status_code(self) -> int: ...


E = TypeVar("E", bound=_StatusError)


@dataclass(frozen=True)
class HttpSdkErrors(Generic[E]):
    """The exception classes of an httpx-based vendor SDK (``anthropic``, ``openai``),
    which share one hierarchy: a timeout is a connection error, and an HTTP error after
    the SDK's retries carries ``status_code``."""

    timeout: type[Exception]
    connection: type[Exception]
    status: type[E]
    #: A short description of a status error's body for the error message.
    detail: Callable[[E], str]

    def mapper(self, metrics: CallMetrics) -> ErrorMapper:
        """An ``map_error`` for :func:`call_within_deadline` that counts into ``metrics``."""

        def map_error(error: Exception) -> Exception | None:
            if isinstance(error, self.timeout):
                return metrics.transient("timeout", "request timed out after the SDK's retries")
            if isinstance(error, self.connection):
                return metrics.transient("connection", f"connection failed: {type(error).__name__}")
            if isinstance(error, self.status):
                return status_error(metrics, error.status_code, self.detail(error))
            return None

        return map_error


INVALID_OUTPUT_REASONING: Final = "the model's answer could not be read as a classification"


def decision_from_output(output: object, metrics: CallMetrics) -> TriageDecision:
    """A :class:`TriageDecision` from a model's structured answer, degraded when invalid.

    Anything that is not an object with a known type and a confidence in [0, 1] counts
    as ``invalid_output`` and yields type *unknown* with confidence 0 — the human queue.
    A model that answers ``unknown`` on purpose is not an error.
    """
    if not isinstance(output, Mapping):
        metrics.error("invalid_output")
        return TriageDecision(type=None, priority=Priority.MEDIUM, confidence=0.0, reasoning=INVALID_OUTPUT_REASONING)
    raw_type = output.get("type")
    ticket_type = parse_ticket_type(raw_type)
    confidence = parse_confidence(output.get("confidence"))
    reasoning = output.get("reasoning")
    reasoning_text = reasoning.strip() if isinstance(reasoning, str) else ""
    said_unknown = isinstance(raw_type, str) and raw_type.strip().lower() == UNKNOWN_TYPE
    if (ticket_type is None and not said_unknown) or confidence is None:
        metrics.error("invalid_output")
        log.warning("provider returned an invalid classification; routing as unknown")
        return TriageDecision(
            type=None,
            priority=parse_priority(output.get("priority")),
            confidence=0.0,
            reasoning=f"{INVALID_OUTPUT_REASONING} (type={str(raw_type)[:40]!r})",
        )
    return TriageDecision(
        type=ticket_type,
        priority=parse_priority(output.get("priority")),
        confidence=confidence,
        reasoning=reasoning_text,
    )
