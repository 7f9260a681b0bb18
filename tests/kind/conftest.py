"""Fixtures of the kind suite: the cluster of ``srs kind up``, kubectl on it, and kcat.

What only a real kubelet can prove runs here: the srs image in pods, probes checked by
the kubelet, Pod Security admission, pod replacement, Secret rotation, Helm, and Kafka as a
StatefulSet of three brokers with TLS, SCRAM and ACLs. The suite brings the cluster up
itself (``srs kind up`` is idempotent) and never skips: when the cluster cannot start, every
test errors. Host clients speak to Kafka as its admin (``KAFKA_CLIENT_CONFIG``), over SASL_SSL.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import events
from devstack import kcat as kcat_wrapper
from devstack import kind, settings
from srs import publish
from tests.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Cluster:
    """The kind cluster under test: kubectl and helm on it, Kafka from the host."""

    def __init__(self, state: kind.KindState) -> None:
        self.state = state
        self.kafka_bootstrap = state.kafka_bootstrap
        #: librdkafka settings of the host's client (the admin over SASL_SSL), and their file.
        self.kafka_settings = state.kafka_settings()
        assert state.kafka_client_config, "srs kind up wrote no KAFKA_CLIENT_CONFIG"
        self.kafka_config = state.kafka_client_config
        self.env = {
            **os.environ,
            "KUBECONFIG": state.kubeconfig,
            "PATH": os.pathsep.join([*state.bin_dirs, os.environ.get("PATH", "")]),
        }

    def run(self, *argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(argv), env=self.env, input=stdin, capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.run("kubectl", *args, stdin=stdin, check=check).stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def condition(self, kind_name: str, namespace: str, type_: str = "Ready") -> dict[str, Any]:
        obj = self.get(kind_name, "-n", namespace)
        for cond in obj.get("status", {}).get("conditions", []):
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def agent_pods(self, namespace: str, agent: str) -> list[dict[str, Any]]:
        pods = self.get("pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={agent}")["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]

    def publish(self, topic: str, tickets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send tickets as ``srs publish`` builds them, from the host as the admin; returns the
        events sent. Idempotent (acks=all): a retry across a broker's loss adds no second copy,
        so every ticket is in the input once and an outcome seen twice is the agents' doing."""
        from confluent_kafka import Producer

        producer = Producer({**self.kafka_settings, "enable.idempotence": True, "linger.ms": 5, "log_level": 3})
        run_id = secrets.token_hex(3)
        built = [publish.to_event(t, run_id, n) for n, t in enumerate(tickets, 1)]
        failures: list[str] = []

        def on_delivery(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(f"{msg.key().decode()}: {err}")

        for event in built:
            traceparent = events.format_traceparent(event["trace_id"], event["event_id"]).encode()
            producer.produce(
                topic,
                key=event["ticket_id"].encode(),
                value=json.dumps(event).encode(),
                headers=[("traceparent", traceparent)],
                on_delivery=on_delivery,
            )
            producer.poll(0)
        remaining = producer.flush(60)
        assert not remaining and not failures, f"{remaining} undelivered, {len(failures)} failed: {failures[:3]}"
        return built

    def kcat_read(self, kcat: str, topic: str, *, config: str | None = None) -> list[str]:
        """The keys of every committed record of ``topic``, read with kcat from the beginning."""
        done = subprocess.run(
            [kcat, "-F", config or self.kafka_config, "-X", "isolation.level=read_committed",
             "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%k\n"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``test_down.py`` removes the cluster: it runs after every other test, whatever the names."""
    items.sort(key=lambda item: item.path.name == "test_down.py")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    # With the model server: one test drafts through a real model in the cluster. Three
    # brokers: what a cluster made by `srs kind up` has (a cluster of one says how to recreate it).
    return Cluster(kind.up(llm=True, brokers=3))


@pytest.fixture(scope="session")
def kcat(cluster: Cluster) -> str:
    """Debian's kcat, a Kafka client srs did not write, to count what reached the topics: the
    wrapper ``srs kind up`` puts on ``.kind/env``'s PATH (Debian's librdkafka 2.0.2 cannot log
    in with SCRAM to Kafka 4; devstack/kcat.py)."""
    paths = replace(settings.default_paths(), state=settings.kind_state())
    return kcat_wrapper.command(paths, lambda msg: print(msg, flush=True))


#: The namespace of the ticket flow: every example applied, Pod Security level `restricted` enforced.
FLOW_NAMESPACE = "default"


@pytest.fixture(scope="session")
def flow(cluster: Cluster) -> Iterator[str]:
    """examples/ applied in a namespace that enforces the restricted Pod Security Standard,
    every TicketTopic and SupportAgent Ready."""
    cluster.kubectl(
        "label", "namespace", FLOW_NAMESPACE, "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    cluster.kubectl("apply", "-n", FLOW_NAMESPACE, "-f", str(EXAMPLES))
    for kind_name in ("tickettopics", "supportagents"):
        done = cluster.run(
            "kubectl", "wait", "-n", FLOW_NAMESPACE, "--for=condition=Ready", kind_name, "--all", "--timeout=180s",
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            listing = cluster.kubectl("get", kind_name, "-n", FLOW_NAMESPACE, check=False)
            events = cluster.kubectl("get", "events", "-n", FLOW_NAMESPACE, "--sort-by=.lastTimestamp", check=False)
            raise AssertionError(f"{kind_name} not Ready within 180 s:\n{listing}\n{done.stderr}\n{events[-3000:]}")
    yield FLOW_NAMESPACE


def wait_until_ready(cluster: Cluster, resource: str, namespace: str, timeout: float = 180) -> None:
    wait_for(
        f"{resource} Ready",
        lambda: cluster.condition(resource, namespace).get("status") == "True",
        timeout=timeout,
        interval=1,
    )


#: Where a ticket of the flow ends: every ticket in exactly one of these, once.
OUTCOME_TOPICS = {"resolved": "ticket.resolved", "human": "ticket.triaged.human", "dead-letter": "ticket.dlq"}


def count_outcomes(cluster: Cluster, kcat: str, ids: set[str]) -> tuple[dict[str, str], Counter[str]]:
    """Every ticket's outcome and how often each was seen: kcat from the beginning,
    committed records only, as a customer-facing consumer reads."""
    outcome: dict[str, str] = {}
    seen: Counter[str] = Counter()
    for stage, topic in OUTCOME_TOPICS.items():
        for key in cluster.kcat_read(kcat, topic):
            if key in ids:
                seen[key] += 1
                outcome.setdefault(key, stage)
    return outcome, seen


def assert_every_ticket_once(
    cluster: Cluster,
    kcat: str,
    ids: set[str],
    what: str,
    t0: float,
    capsys: pytest.CaptureFixture[str],
    *,
    timeout: float,
) -> None:
    """Wait until every ticket of ``ids`` has an outcome; print the figures (also on a
    timeout) and assert that none has two."""
    state: dict[str, Any] = {}

    def all_accounted() -> bool:
        outcome, seen = count_outcomes(cluster, kcat, ids)
        state.update(outcome=outcome, seen=seen)
        return len(outcome) == len(ids)

    try:
        wait_for(
            "every ticket resolved, in the human queue or dead-lettered", all_accounted, timeout=timeout, interval=3
        )
    finally:
        outcome: dict[str, str] = state.get("outcome", {})
        seen: Counter[str] = state.get("seen", Counter())
        duplicates = sum(n - 1 for n in seen.values())
        with capsys.disabled():  # the figures belong in CI's output, not only in a failure report
            print(
                f"\n{what}: sent {len(ids)}, accounted {len(outcome)} ({dict(Counter(outcome.values()))}), "
                f"duplicates {duplicates}, {time.monotonic() - t0:.1f}s"
            )
    assert {t: n for t, n in seen.items() if n > 1} == {}, "exactly once: no ticket has two outcomes"
