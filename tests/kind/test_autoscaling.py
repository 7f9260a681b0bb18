"""Agents scale with their queue through KEDA, for real: KEDA built here and installed by
``srs kind up``, the ScaledObject the operator renders, Kafka in the cluster, the agents as
pods of the srs image.

The scaled agent is a specialist on the offline provider, held to a tenth of a CPU (a CPU
limit: the kubelet throttles it), so that one pod drains a burst slower than they arrive —
the shape of a real backlog, where a model takes seconds per draft. A triage agent (one
pod) feeds it: every ticket type is routed to the specialist's input, which has four
partitions.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from srs import publish
from srs_contracts.agent_config import TicketType
from tests.harness import wait_for
from tests.kind.conftest import Cluster

PARTITIONS = 4
pytestmark = pytest.mark.kind

#: The burst: one throttled pod must take far longer to drain it than KEDA's polling and
#: the HPA's 15 s sync take to ask for more pods. On 2026-12-07 a faster specialist (~140
#: tickets/s in one pod) drained 2,000 in ~16 s, as long as the scale-up took: the test
#: raced it (once scaled at 18 s, once never). 6,000 take one pod ~45 s.
TICKETS = 6000
#: The scale-down test's backlog: it outlasts the pods' start and the HPA's next sync after
#: maxReplicas is lowered with a margin (at ~140 tickets/s per pod on 2026-12-07, 10,000 left
#: only 758–1,082 waiting when the pods went).
BACKLOG = 20000
LAG_THRESHOLD = 50
COOLDOWN_S = 30
POLLING_S = 5


def _topic(name: str, partitions: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "srs.dev/v1alpha1",
        "kind": "TicketTopic",
        "metadata": {"name": name},
        "spec": {"partitions": partitions, "deletionPolicy": "Delete"},
    }


def _agent(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "srs.dev/v1alpha1", "kind": "SupportAgent", "metadata": {"name": name}, "spec": spec}


def _apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(items))


@dataclass(frozen=True)
class Pipeline:
    """A triage agent routing every ticket to an autoscaled specialist."""

    namespace: str
    prefix: str

    @property
    def scaled(self) -> str:
        return f"{self.prefix}-scaled"

    @property
    def outcome_topics(self) -> dict[str, str]:
        return {"resolved": f"{self.prefix}.out", "human": f"{self.prefix}.human", "dead-letter": f"{self.prefix}.dlq"}


@dataclass
class Timeline:
    """Replicas and lag of the scaled agent, sampled every two seconds."""

    cluster: Cluster
    pipeline: Pipeline
    samples: list[tuple[float, int, int, int]] = field(default_factory=list)  # t, desired, ready, lag
    _stop: threading.Event = field(default_factory=threading.Event)
    _t0: float = field(default_factory=time.monotonic)

    def lag(self, consumer: Consumer) -> int:
        topic = f"{self.pipeline.prefix}.work"
        committed = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
        total = 0
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
            # No commit yet: everything retained is waiting (what KEDA counts too, offsetResetPolicy earliest).
            total += high - (tp.offset if tp.offset >= 0 else low)
        return total

    def run(self) -> None:
        p = self.pipeline
        # Never subscribes: it only reads the agent's group's committed offsets, as KEDA does.
        group = f"srs.{p.namespace}.{p.scaled}"
        consumer = Consumer({**self.cluster.kafka_settings, "group.id": group})
        try:
            while not self._stop.is_set():
                deployment = self.cluster.get(f"deployment/{p.scaled}", "-n", p.namespace)
                desired = int(deployment["spec"].get("replicas", 0))
                ready = int(deployment["status"].get("readyReplicas", 0))
                self.samples.append((time.monotonic() - self._t0, desired, ready, self.lag(consumer)))
                self._stop.wait(2)
        finally:
            consumer.close()

    def start(self) -> Timeline:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def last(self) -> tuple[float, int, int, int]:
        wait_for("a first sample", lambda: bool(self.samples), timeout=30, interval=0.5)
        return self.samples[-1]

    def table(self) -> str:
        rows = [f"{'t (s)':>7} {'desired':>7} {'ready':>5} {'lag':>6}"]
        previous = None
        for t, desired, ready, lag in self.samples:
            if (desired, ready, lag) != previous:  # only what changed
                rows.append(f"{t:7.0f} {desired:7d} {ready:5d} {lag:6d}")
                previous = (desired, ready, lag)
        return "\n".join(rows)


def _outcomes(
    cluster: Cluster, kcat: str, topics: dict[str, str], ids: set[str]
) -> tuple[dict[str, str], Counter[str]]:
    outcome: dict[str, str] = {}
    seen: Counter[str] = Counter()
    for stage, topic in topics.items():
        done = subprocess.run(
            [kcat, "-F", cluster.kafka_config, "-X", "isolation.level=read_committed",
             "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\n"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        for key in done.stdout.splitlines():
            if key in ids:
                seen[key] += 1
                outcome.setdefault(key, stage)
    return outcome, seen


@pytest.fixture(scope="module")
def pipeline(cluster: Cluster, flow: str) -> Iterator[Pipeline]:
    """A triage agent routing every ticket to an autoscaled specialist, both Ready, KEDA's
    ScaledObject Ready (the tests below run in order: the burst, then scale to zero)."""
    prefix = f"kind-scale-{uuid.uuid4().hex[:6]}"
    p = Pipeline(flow, prefix)
    small = {"requests": {"cpu": "10m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}}
    triage = {
        "role": "triage",
        "inputTopic": f"{prefix}.events",
        "routes": {t.value: f"{prefix}.work" for t in TicketType},
        "humanTopic": f"{prefix}.human",
        "deadLetterTopic": f"{prefix}.dlq",
        "confidenceThreshold": 0.0,
        "resources": small,
    }
    specialist = {
        "role": "specialist",
        "specialty": "other",
        "inputTopic": f"{prefix}.work",
        "outputTopic": f"{prefix}.out",
        "humanTopic": f"{prefix}.human",
        "deadLetterTopic": f"{prefix}.dlq",
        "resources": {**small, "limits": {"cpu": "100m", "memory": "512Mi"}},
        "autoscaling": {
            "minReplicas": 1,
            "maxReplicas": PARTITIONS,
            "lagThreshold": LAG_THRESHOLD,
            "cooldownSeconds": COOLDOWN_S,
            "pollingSeconds": POLLING_S,
        },
    }
    topics = [_topic(f"{prefix}.{n}") for n in ("events", "out", "human", "dlq")]
    _apply(cluster, flow, *topics, _topic(f"{prefix}.work", PARTITIONS))
    _apply(cluster, flow, _agent(f"{prefix}-triage", triage), _agent(p.scaled, specialist))
    try:
        for name in (f"{prefix}-triage", p.scaled):
            wait_for(
                f"{name} Ready",
                lambda n=name: cluster.condition(f"sagent/{n}", flow).get("status") == "True",
                timeout=240,
                interval=2,
            )
        wait_for(
            "KEDA's ScaledObject Ready",
            lambda: cluster.condition(f"scaledobject/{p.scaled}", flow).get("status") == "True",
            timeout=120,
            interval=2,
        )
        yield p
    finally:
        cluster.kubectl("delete", "-n", flow, "sagent", p.scaled, f"{prefix}-triage", "--wait=false", check=False)
        names = [f"tickettopic/{prefix}.{n}" for n in ("events", "work", "out", "human", "dlq")]
        cluster.kubectl("delete", "-n", flow, *names, "--wait=false", check=False)


def test_an_agent_scales_with_its_queue_and_back_and_every_ticket_has_one_outcome(
    cluster: Cluster, pipeline: Pipeline, kcat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace, prefix, scaled_name = pipeline.namespace, pipeline.prefix, pipeline.scaled
    listed = cluster.get("scaledobjects", "-n", namespace)["items"]
    assert scaled_name in [s["metadata"]["name"] for s in listed], "one ScaledObject per autoscaled agent"
    with capsys.disabled():
        print("\n$ kubectl get scaledobject\n" + cluster.kubectl("get", "scaledobject", "-n", namespace))
    timeline = Timeline(cluster, pipeline).start()
    outcome_topics = pipeline.outcome_topics
    state: dict[str, Any] = {}
    try:
        samples = publish.sample_tickets()
        sent = cluster.publish(f"{prefix}.events", [samples[i % len(samples)] for i in range(TICKETS)])
        t_sent = timeline.last()[0]
        ids = {e["ticket_id"] for e in sent}

        # Up: within two minutes of the burst, never above the partitions.
        wait_for("more than one pod asked for", lambda: timeline.last()[1] > 1, timeout=120, interval=1)
        t_up = timeline.last()[0]

        def all_accounted() -> bool:
            outcome, seen = _outcomes(cluster, kcat, outcome_topics, ids)
            state.update(outcome=outcome, seen=seen)
            return len(outcome) == len(ids)

        wait_for("every ticket answered, with people or dead-lettered", all_accounted, timeout=420, interval=5)
        wait_for("the lag gone", lambda: timeline.last()[3] == 0, timeout=60, interval=1)
        t_drained = timeline.last()[0]
        # Down: back to minReplicas once the lag has stayed low for the cooldown (plus the
        # HPA's 15 s sync, KEDA's polling and a pod's termination).
        wait_for("back to one pod", lambda: timeline.last()[1] == 1, timeout=COOLDOWN_S + 90, interval=1)
        t_down = timeline.last()[0]
        status = cluster.get(f"sagent/{scaled_name}", "-n", namespace)["status"]
        assert status["autoscaling"]["reason"], status
    finally:
        timeline.stop()
        outcome, seen = state.get("outcome", {}), state.get("seen", Counter())
        with capsys.disabled():
            print(f"\nkind autoscaling: {TICKETS} tickets, {PARTITIONS} partitions, lagThreshold {LAG_THRESHOLD}, "
                  f"cooldown {COOLDOWN_S}s; accounted {len(outcome)} ({dict(Counter(outcome.values()))}), "
                  f"duplicates {sum(n - 1 for n in seen.values())}\n{timeline.table()}")  # fmt: skip
    assert max(s[1] for s in timeline.samples) <= PARTITIONS, "never more pods than partitions"
    assert {t: n for t, n in seen.items() if n > 1} == {}, "no ticket answered twice across scale-up and scale-down"
    with capsys.disabled():
        print(
            f"scaled up {t_up - t_sent:.0f}s after the burst, drained at {t_drained - t_sent:.0f}s, "
            f"back to 1 pod {t_down - t_drained:.0f}s after the lag was gone"
        )


def test_pods_scaled_away_in_the_middle_of_a_backlog_hand_back_their_tickets(
    cluster: Cluster, pipeline: Pipeline, kcat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Scale-down while the pods are busy: maxReplicas lowered to 1 mid-backlog makes the HPA
    take pods away at once; each one drains on SIGTERM (its running tickets finish, their
    offsets commit, the rest goes back to the group) and the one left goes on."""
    namespace, prefix, scaled_name = pipeline.namespace, pipeline.prefix, pipeline.scaled
    timeline = Timeline(cluster, pipeline).start()
    state: dict[str, Any] = {}
    try:
        samples = publish.sample_tickets()
        sent = cluster.publish(f"{prefix}.events", [samples[i % len(samples)] for i in range(BACKLOG)])
        ids = {e["ticket_id"] for e in sent}
        wait_for("more than one pod busy", lambda: timeline.last()[2] > 1, timeout=180, interval=1)
        patch = '{"spec":{"autoscaling":{"maxReplicas":1}}}'
        cluster.kubectl("patch", "-n", namespace, f"sagent/{scaled_name}", "--type=merge", "-p", patch)
        wait_for("scaled down to one pod", lambda: timeline.last()[1] == 1, timeout=60, interval=1)
        state["lag_at_scale_down"] = timeline.last()[3]

        def all_accounted() -> bool:
            outcome, seen = _outcomes(cluster, kcat, pipeline.outcome_topics, ids)
            state.update(outcome=outcome, seen=seen)
            return len(outcome) == len(ids)

        wait_for("every ticket answered, with people or dead-lettered", all_accounted, timeout=600, interval=5)
    finally:
        timeline.stop()
        outcome, seen = state.get("outcome", {}), state.get("seen", Counter())
        with capsys.disabled():
            print(f"\nkind scale-down mid-backlog: {BACKLOG} tickets; maxReplicas 4 -> 1 with lag "
                  f"{state.get('lag_at_scale_down')}; accounted {len(outcome)} ({dict(Counter(outcome.values()))}), "
                  f"duplicates {sum(n - 1 for n in seen.values())}\n{timeline.table()}")  # fmt: skip
        patch = f'{{"spec":{{"autoscaling":{{"maxReplicas":{PARTITIONS}}}}}}}'
        cluster.kubectl("patch", "-n", namespace, f"sagent/{scaled_name}", "--type=merge", "-p", patch)
    assert state["lag_at_scale_down"] > 0, "the pods were scaled away with tickets still waiting"
    assert {t: n for t, n in seen.items() if n > 1} == {}, "no ticket answered twice across the scale-down"


def test_an_agent_scales_to_zero_and_back_on_the_first_ticket(
    cluster: Cluster, pipeline: Pipeline, kcat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    namespace, prefix, scaled_name = pipeline.namespace, pipeline.prefix, pipeline.scaled
    patch = '{"spec":{"autoscaling":{"minReplicas":0}}}'
    cluster.kubectl("patch", "-n", namespace, f"sagent/{scaled_name}", "--type=merge", "-p", patch)

    def replicas() -> int:
        return int(cluster.get(f"deployment/{scaled_name}", "-n", namespace)["spec"].get("replicas", -1))

    t0 = time.monotonic()
    # Nothing waits on the input: KEDA scales to zero once the cooldown has passed.
    wait_for("scaled to zero", lambda: replicas() == 0, timeout=COOLDOWN_S + 120, interval=2)
    t_zero = time.monotonic() - t0
    wait_for("no pod left", lambda: not cluster.agent_pods(namespace, scaled_name), timeout=60, interval=2)

    [event] = cluster.publish(f"{prefix}.events", publish.sample_tickets()[:1])
    t1 = time.monotonic()
    wait_for("one pod again, on the first ticket", lambda: replicas() == 1, timeout=90, interval=1)
    t_back = time.monotonic() - t1

    def answered() -> bool:
        return event["ticket_id"] in _outcomes(cluster, kcat, pipeline.outcome_topics, {event["ticket_id"]})[0]

    wait_for("the first ticket answered", answered, timeout=180, interval=3)
    with capsys.disabled():
        print(
            f"\nkind scale to zero: 0 pods {t_zero:.0f}s after minReplicas 0 (cooldown {COOLDOWN_S}s); "
            f"1 pod {t_back:.0f}s after the first ticket, answered {time.monotonic() - t1:.0f}s after it"
        )
