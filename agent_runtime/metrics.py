"""Prometheus metrics of one agent process, served on ``/metrics``.

Every series carries the agent's name (``agent``) so that one Prometheus scraping many
agents tells them apart. Names follow ``srs_agent_<what>_<unit>``.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()


def children(metric: Any, **fixed: str) -> Callable[..., Any]:
    """``metric``'s child for ``fixed`` labels plus the ones given per call, each bound once:
    ``labels()`` validates and hashes its arguments, too much for every ticket."""
    return functools.cache(lambda **labels: metric.labels(**fixed, **labels))


def observe_each(histogram: Any, amounts: Sequence[float]) -> None:
    """``histogram.observe(amount)`` for every amount (a histogram's child, labels bound), with
    one update of the sum and one per bucket that gets any: each ``observe`` takes a lock
    three times, too much for every record when a transaction commits thousands at once.
    The counts are the same; the sum is added up once (it may differ in the last bits)."""
    bounds = histogram._upper_bounds  # prometheus_client's own: the last one is +Inf
    counts = [0] * len(bounds)
    for amount in amounts:
        # The first bucket whose bound is >= amount, as ``observe`` picks it (none for NaN).
        if not math.isnan(amount):
            counts[bisect.bisect_left(bounds, amount)] += 1
    histogram._sum.inc(math.fsum(amounts))
    for bucket, count in zip(histogram._buckets, counts, strict=True):
        if count:
            bucket.inc(count)


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

CONSUMED = Counter("srs_agent_consumed", "Input records consumed.", ["agent", "topic"], registry=REGISTRY)
PRODUCED = Counter("srs_agent_produced", "Output records acknowledged by Kafka.", ["agent", "topic"], registry=REGISTRY)
FAILED = Counter(
    "srs_agent_failed", "Processing attempts that failed, by reason.", ["agent", "reason"], registry=REGISTRY
)
DEAD_LETTERED = Counter(
    "srs_agent_dead_lettered", "Inputs sent to the dead-letter topic, by error class.", ["agent", "error_class"],
    registry=REGISTRY,
)  # fmt: skip
DEAD_LETTERS_STUCK = Gauge(
    "srs_agent_dead_letters_stuck",
    "Dead letters that could not be written after the bounded attempts (the agent is not ready while > 0).",
    ["agent"], registry=REGISTRY,
)  # fmt: skip
HANDLER_OVERRUNS = Gauge(
    "srs_agent_handler_overruns",
    "Handlers still running well past their deadline (they ignore cancellation; /healthz fails while > 0).",
    ["agent"], registry=REGISTRY,
)  # fmt: skip
RETRIED = Counter("srs_agent_retried", "Retries of an input after a transient failure.", ["agent"], registry=REGISTRY)
IN_FLIGHT = Gauge("srs_agent_in_flight", "Inputs being processed right now.", ["agent"], registry=REGISTRY)
PAUSED_PARTITIONS = Gauge(
    "srs_agent_paused_partitions", "Partitions paused for backpressure.", ["agent"], registry=REGISTRY
)
PROCESSING_LATENCY = Histogram(
    "srs_agent_processing_latency_seconds", "From consume to all outputs acknowledged.", ["agent"],
    buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
TRANSACTIONS = Counter(
    "srs_agent_transactions",
    "Kafka transactions of an exactly-once agent, by outcome (committed, aborted).",
    ["agent", "outcome"],
    registry=REGISTRY,
)
TRANSACTION_LATENCY = Histogram(
    "srs_agent_transaction_seconds",
    "Time of one committed transaction (begin → outputs acknowledged → offsets → commit).",
    ["agent"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
REPROCESSED = Counter(
    "srs_agent_reprocessed",
    "Inputs handled again because an earlier owner of the partition handled them but did not commit "
    "(reason: crash or rebalance): the price of a crash, in provider calls.",
    ["agent", "reason"],
    registry=REGISTRY,
)
LLM_LATENCY = Histogram(
    "srs_agent_llm_latency_seconds", "One LLM call, by provider and operation (classify, draft).",
    ["agent", "provider", "operation"], buckets=_LATENCY_BUCKETS, registry=REGISTRY,
)  # fmt: skip
PROVIDER_ERRORS = Counter(
    "srs_agent_provider_errors", "LLM provider errors, by kind (timeout, rate_limited, server, invalid_output, …).",
    ["agent", "provider", "kind"], registry=REGISTRY,
)  # fmt: skip
ENRICHMENT_DEGRADED = Counter(
    "srs_agent_enrichment_degraded", "Customer lookups that failed or timed out; triage went on without them.",
    ["agent", "reason"], registry=REGISTRY,
)  # fmt: skip
ROUTED = Counter(
    "srs_agent_routed", "Triage decisions by ticket type and route (specialist, human).", ["agent", "type", "route"],
    registry=REGISTRY,
)  # fmt: skip
TRIAGE_STAGE = Counter(
    "srs_agent_triage_stage", "Triage cascade: decisions per stage (primary, fallback) and outcome (decided: routed "
    "to a specialist by this stage; escalated: passed on to the fallback model or the human queue).",
    ["agent", "stage", "outcome"], registry=REGISTRY,
)  # fmt: skip
LLM_CALLS_SAVED = Counter(
    "srs_agent_llm_calls_saved", "Triage cascade: tickets the primary model decided, so the fallback model was not "
    "called.", ["agent"], registry=REGISTRY,
)  # fmt: skip
GUARDRAIL_BLOCKED = Counter(
    "srs_agent_guardrail_blocked", "Drafts escalated to people because a guardrail failed.", ["agent", "check"],
    registry=REGISTRY,
)  # fmt: skip
CONSUMER_LAG = Gauge(
    "srs_agent_consumer_lag", "Records of the input topic not yet committed by the agent's consumer group, by "
    "partition (log end offset - committed offset; the whole partition before the first commit).",
    ["agent", "topic", "partition"], registry=REGISTRY,
)  # fmt: skip
KAFKA_UP = Gauge(
    "srs_agent_kafka_up", "1 when the last lag sample reached the Kafka brokers, 0 when it could not.", ["agent"],
    registry=REGISTRY,
)  # fmt: skip

# OpenTelemetry's GenAI client metrics, in their Prometheus names (``gen_ai.client.token.usage``,
# ``gen_ai.client.operation.duration`` in seconds) and with their advised bucket boundaries.
GEN_AI_TOKEN_USAGE = Histogram(
    "gen_ai_client_token_usage", "Tokens used per provider call, by token type (input, output).",
    ["agent", "provider", "model", "operation", "token_type"],
    buckets=(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864),
    registry=REGISTRY,
)  # fmt: skip
GEN_AI_OPERATION_DURATION = Histogram(
    "gen_ai_client_operation_duration_seconds", "Duration of one provider call; error_type is empty when it "
    "succeeded, else the class of the error (RateLimitError, APITimeoutError, TimeoutError, …).",
    ["agent", "provider", "model", "operation", "error_type"],
    buckets=(0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92),
    registry=REGISTRY,
)  # fmt: skip
TICKETS = Counter(
    "srs_agent_tickets", "Tickets this agent finished, by outcome: routed (triage → a specialist), human (to the "
    "human queue, by triage or by a specialist's guardrails), resolved (a response published).",
    ["agent", "outcome"], registry=REGISTRY,
)  # fmt: skip
TICKET_AGE = Histogram(
    "srs_agent_ticket_age_seconds", "From the ticket's created_at to its resolution or hand-over to people, by "
    "outcome (observed by the specialist that finished it).", ["agent", "outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600), registry=REGISTRY,
)  # fmt: skip
