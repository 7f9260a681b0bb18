"""Broker outage: Kafka dies mid-flow and comes back in place; nothing is lost.

On the local stack (whose Kafka this test kills): an operator (level check every 3 s),
a pod runner for this test's agents only, and a triage agent with two specialists on
their own topics. Tickets are published continuously; a few seconds in, the broker is
killed (SIGKILL), and ``srs dev up`` restarts it in place 20 s later. The test then
requires that the operator and the agents recover by themselves (no restart of theirs),
that every TicketTopic went ``KafkaUnavailable`` and back to ``Ready``, and that every
ticket Kafka acknowledged ends resolved, in the human queue or in the dead-letter topic —
exactly once (the agents are exactly-once; the reader is read_committed).
It prints the figures: tickets sent / accounted / duplicated, and the recovery times.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kubernetes import client, config

from devstack import stack
from srs import publish
from srs.flow import FlowReader
from tests.harness import create_test_namespace, wait_for
from tests.integration.operator_harness import Agents
from tests.integration.operator_process import ROOT, run_operator
from tests.integration.tickettopic_support import TOPIC_OPERATOR_ENV, TicketTopics, delete_topic_if_present

pytestmark = [pytest.mark.e2e, pytest.mark.serial]  # see "serial" in pyproject.toml

TICKETS = 200
OUTAGE_SECONDS = 20.0
FINAL_STAGES = ("resolved", "human", "dead-letter")


class Publisher(threading.Thread):
    """Sends sample tickets one by one (~20 per second); a ticket counts as sent once Kafka
    acknowledged it. The producer rides out the outage: deliveries wait up to 5 minutes."""

    def __init__(self, bootstrap: str, topic: str, count: int) -> None:
        super().__init__(daemon=True)
        self.topic = topic
        self.count = count
        self.producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "message.timeout.ms": 300_000,
                "log_level": 2,
            }
        )
        self.acked: set[str] = set()
        self.failed: list[str] = []
        self.produced = 0

    def run(self) -> None:
        samples = publish.sample_tickets()
        run_id = uuid.uuid4().hex[:6]

        def delivered(err: Any, msg: Any) -> None:
            if err is None:
                self.acked.add(msg.key().decode())
            else:
                self.failed.append(f"{msg.key().decode()}: {err}")

        for n in range(self.count):
            event = publish.to_event(samples[n % len(samples)], run_id, n)
            self.producer.produce(
                self.topic, key=event["ticket_id"].encode(), value=json.dumps(event).encode(), on_delivery=delivered
            )
            self.produced += 1
            self.producer.poll(0)
            time.sleep(0.05)
        self.producer.flush(330)


def _ready_reason(tt: TicketTopics, namespace: str, name: str) -> tuple[str | None, str | None]:
    cond = tt.condition(namespace, name) or {}
    return cond.get("status"), cond.get("reason")


def test_a_broker_outage_mid_flow_loses_no_ticket_and_everything_recovers_by_itself(tmp_path: Path) -> None:
    state = stack.up()
    kafka = next(p for p in state.processes if p.name == "kafka")
    api = config.new_client_from_config(config_file=state.kubeconfig)
    core = client.CoreV1Api(api)
    subprocess.run(
        [str(Path(state.bin_dir) / "kubectl"), "--kubeconfig", state.kubeconfig, "apply", "--server-side",
         "--force-conflicts", "-f", str(ROOT / "crds")],
        check=True, capture_output=True,
    )  # fmt: skip
    run = uuid.uuid4().hex[:6]
    ns = f"srs-test-outage-{run}"
    create_test_namespace(core, ns)
    topic = {k: f"outage-{run}.{k}" for k in ("events", "billing", "technical", "human", "resolved", "dlq")}
    tt = TicketTopics(api)
    agents = Agents(api, ns)
    names = {"triage": f"o{run}-triage", "billing": f"o{run}-billing", "technical": f"o{run}-technical"}
    runner: subprocess.Popen[bytes] | None = None
    try:
        with run_operator(
            state.kubeconfig, state.kafka_bootstrap, tmp_path / "operator.log", ns,
            args=["--resync-seconds", "3"], env=TOPIC_OPERATOR_ENV,
        ) as operator:  # fmt: skip
            for key, name in topic.items():
                tt.create(ns, key, {"topicName": name, "partitions": 3 if key == "events" else 1})
            for key in topic:
                tt.wait_condition(ns, key, "True", timeout=60)
            selector = (
                f"app.kubernetes.io/managed-by=srs-operator,app.kubernetes.io/instance in ({','.join(names.values())})"
            )
            runner_log = tmp_path / "podrunner.log"
            with runner_log.open("wb") as out:
                runner = subprocess.Popen(
                    [sys.executable, "-m", "devstack.podrunner", "--selector", selector,
                     "--workdir", str(tmp_path / "pods"), "--logdir", str(tmp_path / "pod-logs")],
                    env={**os.environ, "KUBECONFIG": state.kubeconfig},
                    stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
                )  # fmt: skip
            common = {"model": {"provider": "offline"}, "humanTopic": topic["human"], "deadLetterTopic": topic["dlq"]}
            agents.create(
                names["triage"],
                {**common, "role": "triage", "inputTopic": topic["events"],
                 "routes": {"billing": topic["billing"], "technical": topic["technical"]}},
            )  # fmt: skip
            for specialty in ("billing", "technical"):
                agents.create(
                    names[specialty],
                    {**common, "role": "specialist", "specialty": specialty, "inputTopic": topic[specialty],
                     "outputTopic": topic["resolved"]},
                )  # fmt: skip
            for name in names.values():
                agents.wait_ready(name, timeout=90)

            reader = FlowReader(state.kafka_bootstrap, [topic[k] for k in ("human", "resolved", "dlq")])
            outcomes: Counter[str] = Counter()
            event_ids: dict[str, set[str]] = {}
            seen_after: dict[str, float] = {}
            stop_reading = threading.Event()

            def read() -> None:
                for event in reader.events():
                    if stop_reading.is_set():
                        return
                    if event is not None and event.stage in FINAL_STAGES and event.ticket_id:
                        outcomes[event.ticket_id] += 1
                        event_ids.setdefault(event.ticket_id, set()).add(str(event.payload.get("event_id")))
                        seen_after.setdefault(event.ticket_id, time.monotonic())

            reading = threading.Thread(target=read, daemon=True)
            reading.start()
            publisher = Publisher(state.kafka_bootstrap, topic["events"], TICKETS)
            publisher.start()
            wait_for("the flow to be under way", lambda: len(outcomes) >= 20, timeout=60)

            killed_at = time.monotonic()
            os.killpg(kafka.pid, signal.SIGKILL)
            wait_for("the broker gone", lambda: not kafka.is_alive(), timeout=10)
            unavailable: set[str] = set()

            def all_reported_unavailable() -> bool:
                for key in topic:
                    if _ready_reason(tt, ns, key) == ("False", "KafkaUnavailable"):
                        unavailable.add(key)
                return unavailable == set(topic)

            wait_for("every TicketTopic KafkaUnavailable", all_reported_unavailable, timeout=OUTAGE_SECONDS - 2)
            time.sleep(max(0.0, killed_at + OUTAGE_SECONDS - time.monotonic()))  # the outage lasts 20 s

            restarted = stack.up()
            back_at = time.monotonic()
            assert restarted.kafka_bootstrap == state.kafka_bootstrap, "Kafka is back on the same port"
            wait_for(
                "every TicketTopic Ready again",
                lambda: all(_ready_reason(tt, ns, key)[0] == "True" for key in topic),
                timeout=120,
            )
            topics_ready_after = time.monotonic() - back_at
            publisher.join(timeout=360)
            assert not publisher.is_alive(), "the publisher finished"
            wait_for(
                "every acknowledged ticket accounted for",
                lambda: publisher.acked <= set(outcomes),
                timeout=180,
                interval=1,
            )
            stop_reading.set()
            reading.join(timeout=10)
            reader.close()

            after = [t - back_at for t in seen_after.values() if t > back_at]
            first_after = min(after) if after else float("nan")
            all_after = max(after) if after else float("nan")
            duplicated = sum(1 for n in outcomes.values() if n > 1)
            # A replay repeats the outcome's event_id (consumers drop it); a different id would be a new outcome.
            distinct = sum(1 for ids in event_ids.values() if len(ids) > 1)
            restarts = runner_log.read_text(errors="replace").count("restarted ")
            print(
                f"\nbroker outage ({OUTAGE_SECONDS:.0f} s, SIGKILL, restarted in place by `srs dev up`):\n"
                f"  tickets sent (acknowledged)   {len(publisher.acked)} of {publisher.produced} produced"
                f" ({len(publisher.failed)} failed)\n"
                f"  accounted                     {len(publisher.acked & set(outcomes))}"
                f" (resolved / human / dead-letter)\n"
                f"  duplicated outcomes           {duplicated} tickets (replays with the same event_id; "
                f"{distinct} with a different one)\n"
                f"  TicketTopics Ready again      {topics_ready_after:.1f} s after Kafka was back\n"
                f"  first outcome after restart   {first_after:.1f} s; last {all_after:.1f} s\n"
                f"  agent process restarts        {restarts}; operator restarts 0"
            )
            assert not publisher.failed, publisher.failed[:5]
            assert publisher.acked and publisher.acked <= set(outcomes)
            assert restarts == 0, "the agents rode out the outage without being restarted"
            assert duplicated == 0, "exactly once: no ticket has two outcomes, across a broker crash"
            assert distinct == 0
            operator.assert_alive()
            with urllib.request.urlopen(operator.liveness_url, timeout=5) as r:  # noqa: S310 - localhost
                assert r.status == 200
    finally:
        if runner is not None:
            runner.terminate()
            try:
                runner.wait(timeout=60)
            except subprocess.TimeoutExpired:
                runner.kill()
        with contextlib.suppress(client.ApiException):
            for key in topic:
                tt.delete(ns, key)
        with contextlib.suppress(client.ApiException):
            core.delete_namespace(ns, propagation_policy="Background")
        admin = AdminClient({"bootstrap.servers": state.kafka_bootstrap})
        for name in topic.values():
            delete_topic_if_present(admin, name)
