"""Kafka unreachable: reported as ``KafkaUnavailable``, retried with backoff, recovered from
without help; a deletion waits a bounded time and then lets go.

The shared broker is never stopped: each test runs its own operator whose bootstrap
address is a local port that refuses connections — until the test starts a forwarder to
the real broker on that port.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from kubernetes import client

from tests.harness import Infra, fresh_namespace, wait_for
from tests.integration.operator_process import OperatorProcess, run_operator
from tests.integration.tickettopic_support import (
    TOPIC_OPERATOR_ENV,
    TcpForwarder,
    TicketTopics,
    delete_topic_if_present,
    describe_topic,
    unique,
)

pytestmark = pytest.mark.integration

NAMESPACE_PREFIX = "srs-test-ttdown-"


@pytest.fixture
def forwarder(infra: Infra) -> Iterator[TcpForwarder]:
    fwd = TcpForwarder(infra.kafka_bootstrap)
    yield fwd
    fwd.stop()


@pytest.fixture
def start_operator(
    infra: Infra,
    srs_crds: None,
    operator_kubeconfig: str,
    forwarder: TcpForwarder,
    tmp_path: Path,
) -> Iterator[Callable[[dict[str, str]], OperatorProcess]]:
    """Start an operator whose Kafka is ``forwarder``'s (so far closed) port."""
    stack = []

    def start(env: dict[str, str]) -> OperatorProcess:
        cm = run_operator(
            operator_kubeconfig,
            forwarder.address,
            tmp_path / "operator.log",
            f"{NAMESPACE_PREFIX}*",
            env={**TOPIC_OPERATOR_ENV, "SRS_KAFKA_REQUEST_TIMEOUT_SECONDS": "2", **env},
        )
        stack.append(cm)
        return cm.__enter__()

    yield start
    for cm in reversed(stack):
        cm.__exit__(None, None, None)
    print((tmp_path / "operator.log").read_text(errors="replace")[-6000:])


@pytest.fixture
def ns(core_v1: client.CoreV1Api) -> Iterator[str]:
    with fresh_namespace(core_v1, NAMESPACE_PREFIX) as name:
        yield name


def _retries(operator: OperatorProcess) -> float:
    """Reconciles of TicketTopics that could not finish and were put back in the backoff."""
    return operator.metric("srs_operator_reconcile_errors_total", kind="TicketTopic", error="RetryLater")


def _backing_off(operator: OperatorProcess) -> float:
    return operator.metric("srs_operator_retrying", kind="TicketTopic")


def test_kafka_unreachable_is_reported_and_recovers_by_itself(
    ns: str,
    tt: TicketTopics,
    forwarder: TcpForwarder,
    start_operator: Callable[[dict[str, str]], OperatorProcess],
    kafka_admin: AdminClient,
) -> None:
    operator = start_operator({"SRS_TOPIC_RETRY_MAX_SECONDS": "4"})
    name = unique("tt-down")
    try:
        tt.create(ns, name, {"partitions": 2})

        tt.wait_condition(ns, name, "False", "KafkaUnavailable", timeout=30)
        ready = tt.condition(ns, name)
        assert ready is not None and f"cannot reach Kafka at {forwarder.address}" in ready["message"]
        assert tt.wait_event(ns, name, "KafkaUnavailable").type == "Warning"
        wait_for("the operator to retry the reconcile", lambda: _retries(operator) >= 2, timeout=30)
        assert _backing_off(operator) == 1
        assert describe_topic(kafka_admin, name) is None

        forwarder.start()  # Kafka is back

        obj = tt.wait_condition(ns, name, "True", "InSync", timeout=45)
        topic = describe_topic(kafka_admin, name)
        assert topic is not None and topic.partitions == 2
        assert obj["status"]["topicId"] == topic.topic_id
        # The backoff is over once the reconcile succeeded.
        wait_for("the retry state to be cleared", lambda: _backing_off(operator) == 0, timeout=15)
    finally:
        tt.delete_all_for({name})
        delete_topic_if_present(kafka_admin, name)


def test_deletion_waits_a_bounded_time_for_unreachable_kafka_then_releases(
    ns: str, tt: TicketTopics, start_operator: Callable[[dict[str, str]], OperatorProcess]
) -> None:
    start_operator({"SRS_TOPIC_DELETE_TIMEOUT_SECONDS": "6"})
    name = unique("tt-stuck")
    tt.create(ns, name, {"partitions": 1, "deletionPolicy": "Delete"})
    tt.wait_condition(ns, name, "False", "KafkaUnavailable", timeout=30)
    assert tt.get(ns, name)["metadata"].get("finalizers") == ["srs.dev/finalizer"]
    # As if the topic had been created before Kafka became unreachable.
    tt.patch_status(ns, name, {"topicId": "AAAAAAAAAAAAAAAAAAAAAA", "topicName": name})

    started = time.monotonic()
    tt.delete(ns, name)

    wait_for("the TicketTopic to be released", lambda: not tt.exists(ns, name), timeout=60)
    waited = time.monotonic() - started
    assert waited >= 5, f"released after {waited:.1f}s, before the deletion timeout"
    event = tt.wait_event(ns, name, "DeleteAbandoned")
    assert event.type == "Warning"
    assert f"gave up deleting topic {name}" in event.message
