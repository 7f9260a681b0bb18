"""An agent whose input is written in transactions (as every srs agent writes its outputs)
commits its group's position to the end of each partition once it is idle: the transaction
markers after the last records count as consumed, so the lag a user (or KEDA, or an alert)
reads from the group drains to zero instead of staying at one per partition."""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from agent_runtime.engine import EngineSettings
from tests.harness import Infra, TopicFactory, wait_for
from tests.integration.engine_support import (
    FAST_GROUP,
    ScriptedHandler,
    agent_config,
    committed_offsets,
    engine_running,
    make_topics,
    read_all,
)

pytestmark = pytest.mark.integration

PARTITIONS = 2


def _write_in_transactions(
    producer: Producer, topic: str, first: int, batches: int, *, abort_last: bool = False
) -> int:
    """``batches`` transactions of ten records each; the last one aborted when asked. Returns
    how many records a read_committed reader sees."""
    seen = 0
    for batch in range(batches):
        producer.begin_transaction()
        for i in range(10):
            key = f"T-{first + batch}-{i}".encode()
            producer.produce(topic, key=key, value=json.dumps({"seq": i}).encode())
        if abort_last and batch == batches - 1:
            producer.abort_transaction(30)
        else:
            producer.commit_transaction(30)
            seen += 10
    return seen


def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "lag-ends"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    finally:
        consumer.close()


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_the_lag_of_a_transactionally_written_input_drains_to_zero(
    infra: Infra, kafka_topic: TopicFactory, delivery: str
) -> None:
    topics = make_topics(kafka_topic, partitions=PARTITIONS, prefix=f"lag-{delivery.split('-')[0]}")
    bootstrap = infra.kafka_bootstrap
    config = agent_config(bootstrap, topics, delivery=delivery)
    settings = EngineSettings.from_agent_config(config, {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, **FAST_GROUP})
    upstream = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"upstream-{topics['input']}"})
    upstream.init_transactions(30)
    lags: list[dict[int, int]] = []

    def lag_is_zero() -> bool:
        ends = _ends(bootstrap, topics["input"])
        committed = committed_offsets(bootstrap, settings.group_id, topics["input"], PARTITIONS)
        lags.append({p: ends[p] - committed[p] for p in ends})
        return all(lag == 0 for lag in lags[-1].values())

    answered = _write_in_transactions(upstream, topics["input"], 0, 3)
    handler: Any = ScriptedHandler(topics["output"])
    with engine_running(settings, handler) as agent:
        read_all(bootstrap, topics["output"], answered)
        wait_for("the group's lag at zero (markers included)", lag_is_zero, timeout=30, interval=0.5)
        # More while the agent runs, then a transaction the writer aborts: its records are
        # never delivered, and the position still reaches the end.
        answered += _write_in_transactions(upstream, topics["input"], 3, 2, abort_last=True)
        read_all(bootstrap, topics["output"], answered)
        wait_for("the lag at zero again, past an aborted transaction", lag_is_zero, timeout=30, interval=0.5)
        assert agent.stop() == 0
    assert len(read_all(bootstrap, topics["output"], answered)) == answered, "each input answered once"
