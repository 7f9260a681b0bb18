"""Kafka on kind as three brokers (a StatefulSet, one KRaft quorum): topics replicated three
times with ``min.insync.replicas`` 2, and the ticket flow keeps exactly one outcome per
ticket when the leader of its input is killed, or when every broker is restarted in turn."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from srs import publish
from tests.harness import wait_for
from tests.kind.conftest import OUTCOME_TOPICS, Cluster, assert_every_ticket_once

pytestmark = pytest.mark.kind

INPUT = "ticket.events"
TICKETS = 500
BATCH = 50


def _admin(cluster: Cluster) -> AdminClient:
    return AdminClient({**cluster.kafka_settings, "log_level": 0})


def _partitions(cluster: Cluster, topic: str) -> dict[int, Any]:
    return dict(_admin(cluster).list_topics(topic, timeout=15).topics[topic].partitions)


def _fully_replicated(cluster: Cluster, *topics: str) -> bool:
    """Every broker up and every partition's three replicas in sync."""
    metadata = _admin(cluster).list_topics(timeout=15)
    if len(metadata.brokers) != 3:
        return False
    return all(len(p.isrs) == 3 for t in topics for p in metadata.topics[t].partitions.values())


def _wait_healthy(cluster: Cluster) -> None:
    cluster.kubectl("-n", "kafka", "rollout", "status", "statefulset/kafka", "--timeout=300s")
    wait_for(
        "three brokers, every replica of the flow's topics in sync",
        lambda: _fully_replicated(cluster, INPUT, *OUTCOME_TOPICS.values()),
        timeout=180,
        interval=2,
    )


@dataclass
class Publisher:
    """Sends :data:`TICKETS` sample tickets in batches of :data:`BATCH`, one batch every
    ``interval`` seconds, so that the flow spans what the test does to the brokers."""

    cluster: Cluster
    interval: float
    sent: list[dict[str, Any]] = field(default_factory=list)
    error: BaseException | None = None
    _thread: threading.Thread | None = None

    def run(self) -> None:
        samples = publish.sample_tickets()
        try:
            for start in range(0, TICKETS, BATCH):
                batch = [samples[i % len(samples)] for i in range(start, start + BATCH)]
                self.sent += self.cluster.publish(INPUT, batch)
                time.sleep(self.interval)
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def join(self) -> set[str]:
        assert self._thread is not None
        self._thread.join(timeout=600)
        if self.error is not None:
            raise self.error
        return {e["ticket_id"] for e in self.sent}


@pytest.fixture
def healthy(cluster: Cluster, flow: str) -> Iterator[str]:
    """The flow on a whole cluster, before and after the test (the next test starts whole)."""
    _wait_healthy(cluster)
    yield flow
    _wait_healthy(cluster)


def test_topics_default_to_three_replicas_and_two_in_sync(cluster: Cluster, flow: str) -> None:
    # examples/topics.yaml names no replication factor: the topics get what the cluster holds.
    partitions = _partitions(cluster, INPUT)
    assert len(partitions) == 6
    assert all(len(p.replicas) == 3 for p in partitions.values()), partitions
    assert all(set(p.replicas) == {0, 1, 2} for p in partitions.values()), partitions
    resource = ConfigResource(ResourceType.TOPIC, INPUT)
    admin = _admin(cluster)  # held until the answer is in: a dropped client cancels its requests
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["min.insync.replicas"].value == "2"
    status = cluster.get(f"ttopic/{INPUT}", "-n", flow)["status"]
    assert status["replicationFactor"] == 3


def test_killing_the_leader_of_the_input_mid_flow_loses_and_repeats_no_ticket(
    cluster: Cluster, healthy: str, kcat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    partitions = _partitions(cluster, INPUT)
    leader = partitions[0].leader
    led = sorted(n for n, p in partitions.items() if p.leader == leader)
    pod = f"kafka-{leader}"
    uid = cluster.get(f"pod/{pod}", "-n", "kafka")["metadata"]["uid"]

    t0 = time.monotonic()
    publisher = Publisher(cluster, interval=2).start()
    wait_for("the first tickets sent", lambda: len(publisher.sent) >= 2 * BATCH, timeout=60, interval=0.2)
    # No grace: the broker dies as a crash would take it, mid-flow.
    cluster.kubectl("-n", "kafka", "delete", "pod", pod, "--grace-period=0", "--force", "--wait=false")
    ids = publisher.join()
    assert len(ids) == TICKETS
    with capsys.disabled():
        print(f"\nkilled {pod} (leader of {INPUT} partitions {led}) after {BATCH * 2} of {TICKETS} tickets")
    assert_every_ticket_once(cluster, kcat, ids, f"broker {leader} killed", t0, capsys, timeout=420)
    wait_for(
        f"{pod} replaced",
        lambda: cluster.get(f"pod/{pod}", "-n", "kafka")["metadata"]["uid"] != uid,
        timeout=120,
        interval=1,
    )


def test_a_rolling_restart_of_every_broker_mid_flow_loses_and_repeats_no_ticket(
    cluster: Cluster, healthy: str, kcat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.get("pods", "-n", "kafka")["items"]}
    t0 = time.monotonic()
    publisher = Publisher(cluster, interval=8).start()
    wait_for("the first tickets sent", lambda: len(publisher.sent) >= BATCH, timeout=60, interval=0.2)
    cluster.kubectl("-n", "kafka", "rollout", "restart", "statefulset/kafka")
    ids = publisher.join()
    assert len(ids) == TICKETS
    cluster.kubectl("-n", "kafka", "rollout", "status", "statefulset/kafka", "--timeout=600s")
    restarted = time.monotonic() - t0
    after = {p["metadata"]["name"]: p["metadata"]["uid"] for p in cluster.get("pods", "-n", "kafka")["items"]}
    assert set(after) == set(before) and all(after[n] != before[n] for n in before), (before, after)
    with capsys.disabled():
        print(f"\nrolling restart of {sorted(before)}: {restarted:.0f}s until the last broker was Ready")
    assert_every_ticket_once(cluster, kcat, ids, "rolling restart", t0, capsys, timeout=420)
