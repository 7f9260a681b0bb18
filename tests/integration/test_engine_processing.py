"""The engine against the real broker: outputs, dead letters, retries, order, traces,
backpressure — every input ends as an output or a dead letter, and only then is committed."""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from agent_runtime import metrics
from agent_runtime.engine import EngineSettings
from tests.harness import Infra, TopicFactory, wait_for
from tests.integration.engine_support import (
    FAST_GROUP,
    ScriptedHandler,
    agent_config,
    committed_offsets,
    engine_running,
    make_topics,
    produce,
    read_all,
    topic_contents,
)

pytestmark = pytest.mark.integration

DLQ_SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "events" / "dead-letter.schema.json").read_text())
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def settings_for(
    infra: Infra, topics: dict[str, str], *, env: dict[str, str] | None = None, **config: Any
) -> EngineSettings:
    cfg = agent_config(infra.kafka_bootstrap, topics, **config)
    return EngineSettings.from_agent_config(
        cfg, {"KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap, **FAST_GROUP, **(env or {})}
    )


def validate_dead_letter(envelope: Any) -> None:
    jsonschema.validate(envelope, DLQ_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def wait_committed(infra: Infra, settings: EngineSettings, partitions: int, total: int) -> dict[int, int]:
    """Wait until the group's committed offsets add up to ``total`` inputs."""
    seen: dict[int, int] = {}

    def done() -> bool:
        seen.update(committed_offsets(infra.kafka_bootstrap, settings.group_id, settings.input_topic, partitions))
        return sum(max(o, 0) for o in seen.values()) == total

    wait_for(f"{total} committed inputs", done, timeout=30, interval=0.5)
    return seen


def test_poison_inputs_go_to_the_dead_letter_topic_with_their_reason(infra: Infra, kafka_topic: TopicFactory) -> None:
    topics = make_topics(kafka_topic, partitions=2)
    settings = settings_for(infra, topics)
    inputs = [
        (b"T-good-1", b'{"n": 1}'),
        (b"T-bad-json", b'{"ticket_id": "T-bad-json", '),
        (b"T-binary", b"\xff\xfe\x00garbage"),
        (b"T-schema", b'{"permanent": "schema_invalid"}'),
        (b"T-good-2", b'{"n": 2}'),
    ]
    produce(infra.kafka_bootstrap, topics["input"], inputs)

    with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
        outputs = read_all(infra.kafka_bootstrap, topics["output"], 2)
        dead = read_all(infra.kafka_bootstrap, topics["dlq"], 3)
        wait_committed(infra, settings, 2, len(inputs))
        assert agent.stop() == 0

    assert sorted(o.key or b"" for o in outputs) == [b"T-good-1", b"T-good-2"]
    by_key = {d.key: d for d in dead}
    assert sorted(k or b"" for k in by_key) == [b"T-bad-json", b"T-binary", b"T-schema"]
    for key, error_class in [
        (b"T-bad-json", b"invalid_json"),
        (b"T-binary", b"invalid_json"),
        (b"T-schema", b"schema_invalid"),
    ]:
        record = by_key[key]
        envelope = record.json()
        validate_dead_letter(envelope)
        assert record.headers["srs-error-class"] == error_class
        assert record.headers["srs-source-topic"] == topics["input"].encode()
        assert record.headers["srs-attempts"] == b"1"
        assert record.headers["srs-error-message"]
        assert envelope["source"]["partition"] == int(record.headers["srs-source-partition"])
        assert envelope["source"]["offset"] == int(record.headers["srs-source-offset"])
        assert envelope["agent"] == "engine-test"
    payload = by_key[b"T-bad-json"].json()["payload"]
    assert (payload["encoding"], payload["data"]) == ("utf-8", '{"ticket_id": "T-bad-json", ')
    assert by_key[b"T-binary"].json()["payload"]["encoding"] == "base64"


def test_transient_failures_are_retried_then_succeed_or_are_dead_lettered(
    infra: Infra, kafka_topic: TopicFactory
) -> None:
    topics = make_topics(kafka_topic, partitions=2)
    settings = settings_for(infra, topics, max_attempts=4)
    handler = ScriptedHandler(topics["output"])
    produce(
        infra.kafka_bootstrap,
        topics["input"],
        [(b"T-flaky", b'{"fail_times": 2}'), (b"T-broken", b'{"fail_times": 100}'), (b"T-fine", b"{}")],
    )
    retried_before = metrics.REGISTRY.get_sample_value("srs_agent_retried_total", {"agent": "engine-test"}) or 0

    with engine_running(settings, handler) as agent:
        outputs = {o.key: o.json() for o in read_all(infra.kafka_bootstrap, topics["output"], 2)}
        dead = read_all(infra.kafka_bootstrap, topics["dlq"], 1)
        wait_committed(infra, settings, 2, 3)
        assert agent.stop() == 0

    assert outputs[b"T-flaky"]["attempt"] == 3
    assert outputs[b"T-fine"]["attempt"] == 1
    assert [d.key for d in dead] == [b"T-broken"]
    assert dead[0].headers["srs-error-class"] == b"retries_exhausted"
    assert dead[0].headers["srs-attempts"] == b"4"
    assert dead[0].json()["error"]["message"] == "TransientError: scripted failure 4"
    validate_dead_letter(dead[0].json())
    retried = metrics.REGISTRY.get_sample_value("srs_agent_retried_total", {"agent": "engine-test"}) or 0
    assert retried - retried_before == 2 + 3


def test_order_per_key_is_kept_while_many_inputs_are_in_flight(infra: Infra, kafka_topic: TopicFactory) -> None:
    topics = make_topics(kafka_topic, partitions=8)
    settings = settings_for(infra, topics, concurrency=32)
    rng = random.Random(11)
    keys = [f"T-{k}".encode() for k in range(24)]
    # Random per-record latency: without per-key order, later records would often finish first.
    inputs = [
        (key, json.dumps({"seq": seq, "sleep_ms": rng.randint(0, 40)}).encode()) for seq in range(8) for key in keys
    ]
    produce(infra.kafka_bootstrap, topics["input"], inputs)
    handler = ScriptedHandler(topics["output"])

    with engine_running(settings, handler) as agent:
        outputs = read_all(infra.kafka_bootstrap, topics["output"], len(inputs))
        wait_committed(infra, settings, 8, len(inputs))
        assert agent.stop() == 0

    sequences: dict[bytes, list[int]] = defaultdict(list)
    for output in sorted(outputs, key=lambda o: (o.partition, o.offset)):
        assert output.key is not None
        sequences[output.key].append(output.json()["input"]["seq"])
    assert {key: seqs for key, seqs in sequences.items()} == {key: list(range(8)) for key in keys}
    assert handler.max_running > 8  # really concurrent: many keys were in flight at once


def test_the_trace_travels_from_the_input_header_to_the_outputs(infra: Infra, kafka_topic: TopicFactory) -> None:
    topics = make_topics(kafka_topic, partitions=1)
    settings = settings_for(infra, topics)
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-traced", b"{}")], headers=[("traceparent", TRACEPARENT)])
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-untraced", b"{}")])

    with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
        outputs = {o.key: o for o in read_all(infra.kafka_bootstrap, topics["output"], 2)}
        assert agent.stop() == 0

    traced = outputs[b"T-traced"]
    version, trace_id, span_id, flags = traced.headers["traceparent"].decode().split("-")
    assert (version, trace_id, flags) == ("00", "4bf92f3577b34da6a3ce929d0e0e4736", "01")
    assert span_id != "00f067aa0ba902b7"
    assert traced.json()["trace_id"] == trace_id  # what the handler saw is what the header says
    untraced = outputs[b"T-untraced"]
    assert untraced.json()["trace_id"] == untraced.headers["traceparent"].decode().split("-")[1]
    assert untraced.json()["trace_id"] != trace_id


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_an_unwritable_dead_letter_topic_holds_the_offset_until_it_can_be_written(
    infra: Infra, kafka_topic: TopicFactory, kafka_admin: AdminClient, delivery: str
) -> None:
    topics = make_topics(kafka_topic, partitions=1)
    topics["dlq"] = f"engine-dlq-later-{int(time.time() * 1000)}"  # does not exist yet
    # Fail undeliverable records quickly instead of after librdkafka's default 5 minutes.
    settings = settings_for(infra, topics, env={"KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS": "1000"}, delivery=delivery)
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-poison", b"not json"), (b"T-after", b"{}")])

    def dead_letter_failures() -> float:
        labels = {"agent": "engine-test", "reason": "dead_letter_delivery"}
        return metrics.REGISTRY.get_sample_value("srs_agent_failed_total", labels) or 0.0

    before = dead_letter_failures()
    try:
        with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
            wait_for("two failed dead-letter writes", lambda: dead_letter_failures() - before >= 2, timeout=30)
            if delivery == "at-least-once":
                read_all(infra.kafka_bootstrap, topics["output"], 1)  # T-after went out on its own
            else:
                # T-after's output waits for the transaction that also commits T-poison's dead letter.
                assert topic_contents(infra.kafka_bootstrap, topics["output"]) == []
            # T-poison (offset 0) is not done: the committed position stays at 0
            # (committed by the crash ledger when the partition started; -1001 would mean none).
            assert committed_offsets(infra.kafka_bootstrap, settings.group_id, topics["input"], 1)[0] <= 0

            kafka_admin.create_topics([NewTopic(topics["dlq"], num_partitions=1, replication_factor=1)])[
                topics["dlq"]
            ].result(30)
            dead = read_all(infra.kafka_bootstrap, topics["dlq"], 1, timeout_s=60)
            assert dead[0].key == b"T-poison"
            assert [o.key for o in read_all(infra.kafka_bootstrap, topics["output"], 1)] == [b"T-after"]
            assert wait_committed(infra, settings, 1, 2) == {0: 2}
            assert agent.stop() == 0
    finally:
        kafka_admin.delete_topics([topics["dlq"]])


def test_backpressure_pauses_partitions_and_resumes_them(infra: Infra, kafka_topic: TopicFactory) -> None:
    topics = make_topics(kafka_topic, partitions=2)
    settings = settings_for(infra, topics, concurrency=4)
    settings = dataclasses.replace(settings, max_pending_per_partition=10, max_pending_total=16)
    inputs = [(f"T-{i}".encode(), b'{"sleep_ms": 20}') for i in range(200)]
    produce(infra.kafka_bootstrap, topics["input"], inputs)
    paused_seen = 0.0

    def paused_now() -> float:
        return metrics.REGISTRY.get_sample_value("srs_agent_paused_partitions", {"agent": "engine-test"}) or 0.0

    with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
        deadline = time.monotonic() + 30
        while paused_seen == 0 and time.monotonic() < deadline:
            paused_seen = max(paused_seen, paused_now())
            time.sleep(0.005)
        outputs = read_all(infra.kafka_bootstrap, topics["output"], len(inputs))
        wait_committed(infra, settings, 2, len(inputs))
        assert paused_now() == 0  # everything resumed once the work was done
        assert agent.stop() == 0

    assert paused_seen >= 1
    assert {o.key for o in outputs} == {k for k, _ in inputs}
