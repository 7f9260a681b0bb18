"""Prometheus metrics of the operator process, served on ``--metrics-port``.

Names follow ``srs_operator_<what>_<unit>``; ``kind`` is the custom resource kind
(``SupportAgent``, ``TicketTopic``) so one dashboard covers both controllers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from srs_contracts import traces

REGISTRY = CollectorRegistry()

RECONCILES = Counter(
    "srs_operator_reconciles", "Reconciles by kind and result (ok, error).", ["kind", "result"], registry=REGISTRY
)
RECONCILE_ERRORS = Counter(
    "srs_operator_reconcile_errors", "Failed reconciles by kind and error class.", ["kind", "error"], registry=REGISTRY
)
RECONCILE_DURATION = Histogram(
    "srs_operator_reconcile_duration_seconds", "Duration of one reconcile, by kind.", ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=REGISTRY,
)  # fmt: skip
API_REQUESTS = Counter(
    "srs_operator_api_requests", "Kubernetes API requests the operator's own client made, by verb, resource, code.",
    ["verb", "resource", "code"], registry=REGISTRY,
)  # fmt: skip
API_LATENCY = Histogram(
    "srs_operator_api_request_duration_seconds", "Latency of the operator's own Kubernetes API requests, by verb.",
    ["verb"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=REGISTRY,
)  # fmt: skip
API_WRITES = Counter(
    "srs_operator_api_writes", "Kubernetes API writes (apply, patch, create, delete) by verb and resource.",
    ["verb", "resource"], registry=REGISTRY,
)  # fmt: skip
CHILDREN_APPLIED = Counter(
    "srs_operator_children_applied", "Owned objects applied, by resource and cause (create, update, drift).",
    ["resource", "cause"], registry=REGISTRY,
)  # fmt: skip
CHILD_APPLY_FAILURES = Counter(
    "srs_operator_child_apply_failures", "Owned objects the API server refused to apply (a quota, an admission "
    "policy or webhook, an invalid object, a server error), by resource and HTTP status code.",
    ["resource", "code"], registry=REGISTRY,
)  # fmt: skip
STATUS_WRITES = Counter("srs_operator_status_writes", "Status patches, by kind.", ["kind"], registry=REGISTRY)
KAFKA_ADMIN_CALLS = Counter(
    "srs_operator_kafka_admin_calls",
    "Kafka admin requests sent, by operation (one request carries a whole batch of topics).",
    ["operation"], registry=REGISTRY,
)  # fmt: skip
KAFKA_ADMIN_TOPICS = Counter(
    "srs_operator_kafka_admin_topics",
    "Topics carried by Kafka admin requests, by operation (topics/calls = the batching factor).",
    ["operation"], registry=REGISTRY,
)  # fmt: skip
RESOURCE_READY = Gauge(
    "srs_operator_resource_ready", "1 when the resource's Ready condition is True, 0 when it is not (set at every "
    "reconcile; the series goes away with the resource).", ["kind", "namespace", "name"], registry=REGISTRY,
)  # fmt: skip
RETRYING = Gauge(
    "srs_operator_retrying", "Objects waiting out a backoff after a failed reconcile, by kind.", ["kind"],
    registry=REGISTRY,
)  # fmt: skip
QUEUE_DEPTH = Gauge(
    "srs_operator_queue_depth", "Objects waiting to be reconciled, by kind.", ["kind"], registry=REGISTRY
)


@contextmanager
def observe_reconcile(kind: str) -> Iterator[None]:
    """Count one reconcile of ``kind`` and time it; an exception counts as an error (and propagates).
    With OpenTelemetry on (``OTEL_*``), each reconcile is a ``reconcile <kind>`` span."""
    started = time.perf_counter()
    try:
        with traces.span(f"reconcile {kind}", {"srs.kind": kind}):
            yield
    except BaseException as e:
        RECONCILES.labels(kind, "error").inc()
        RECONCILE_ERRORS.labels(kind, type(e).__name__).inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        RECONCILE_DURATION.labels(kind).observe(time.perf_counter() - started)


def report_ready(kind: str, namespace: str, name: str, ready: bool) -> None:
    """Record whether ``kind`` ``namespace/name`` is Ready (``srs_operator_resource_ready``)."""
    RESOURCE_READY.labels(kind, namespace, name).set(1 if ready else 0)


def forget_resource(kind: str, namespace: str, name: str) -> None:
    """Drop the series of a deleted resource."""
    with contextlib.suppress(KeyError):  # never reported
        RESOURCE_READY.remove(kind, namespace, name)


def serve(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - scraped from other pods
    """Serve ``/metrics`` on ``port`` in a background thread."""
    start_http_server(port, addr=addr, registry=REGISTRY)
