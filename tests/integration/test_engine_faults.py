"""Faults on the real broker: handlers that hang, block, crash or emit many outputs, dead
letters that do not fit, and rebalances that do not drain — nothing stalls, nothing is lost."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from agent_runtime import metrics
from agent_runtime.engine import EngineSettings
from tests.harness import Infra, TopicFactory, wait_for
from tests.integration.engine_support import (
    FAST_GROUP,
    EngineThread,
    ScriptedHandler,
    TopicWatcher,
    agent_config,
    committed_offsets,
    engine_running,
    kill,
    make_topics,
    produce,
    read_all,
    start_agent,
)
from tests.integration.test_engine_processing import settings_for, validate_dead_letter, wait_committed

pytestmark = pytest.mark.integration


def metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, {"agent": "engine-test", **labels}) or 0.0


def script(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def test_an_input_is_done_only_when_every_output_was_produced_even_when_the_queue_fills_up(
    infra: Infra, kafka_topic: TopicFactory
) -> None:
    """Item 4: librdkafka's queue holds one record, so the second output of each input hits
    BufferError while the first is still unacknowledged."""
    topics = make_topics(kafka_topic, partitions=1)
    settings = settings_for(infra, topics, env={"KAFKA_PRODUCER_QUEUE_BUFFERING_MAX_MESSAGES": "1"})
    inputs = [(f"T-{n}".encode(), script(outputs=2)) for n in range(30)]
    produce(infra.kafka_bootstrap, topics["input"], inputs)
    with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
        wait_committed(infra, settings, 1, len(inputs))
        outputs = read_all(infra.kafka_bootstrap, topics["output"], 2 * len(inputs))
        assert agent.stop() == 0
    produced = {(o.key, o.json()["output"]) for o in outputs}
    assert produced == {(key, n) for key, _ in inputs for n in (0, 1)}


def test_a_handler_past_its_deadline_is_cut_retried_and_dead_lettered_as_timeout(
    infra: Infra, kafka_topic: TopicFactory
) -> None:
    topics = make_topics(kafka_topic, partitions=1)
    settings = dataclasses.replace(settings_for(infra, topics, max_attempts=2), handler_timeout_s=0.5)
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-slow", script(sleep_ms=60_000)), (b"T-next", script())])
    with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
        (dead,) = read_all(infra.kafka_bootstrap, topics["dlq"], 1)
        (after,) = read_all(infra.kafka_bootstrap, topics["output"], 1)
        wait_committed(infra, settings, 1, 2)
        assert agent.engine.healthy
        assert agent.stop() == 0
    envelope = dead.json()
    validate_dead_letter(envelope)
    assert (dead.key, envelope["error"]["class"], envelope["attempts"]) == (b"T-slow", "timeout", 2)
    assert after.key == b"T-next"


def test_a_handler_that_cannot_be_cut_turns_health_red_until_it_ends(infra: Infra, kafka_topic: TopicFactory) -> None:
    topics = make_topics(kafka_topic, partitions=1)
    settings = dataclasses.replace(
        settings_for(infra, topics, max_attempts=1), handler_timeout_s=0.5, handler_overrun_s=1.0
    )
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-stubborn", script(ignore_cancel_s=8))])
    with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
        wait_for("the engine to report the overrun", lambda: not agent.engine.healthy, timeout=30, interval=0.1)
        assert metric("srs_agent_handler_overruns") >= 1
        (dead,) = read_all(infra.kafka_bootstrap, topics["dlq"], 1, timeout_s=60)
        assert dead.json()["error"]["class"] == "timeout"
        wait_for("health to come back", lambda: agent.engine.healthy, timeout=30, interval=0.1)
        assert agent.stop() == 0


def test_a_dead_letter_larger_than_its_topic_allows_is_cut_and_the_partition_moves_on(
    infra: Infra, kafka_topic: TopicFactory
) -> None:
    """Item 2: a 200 KB non-JSON value became a 1.2 MB envelope that was retried forever."""
    topics = make_topics(kafka_topic, partitions=1)
    topics["dlq"] = kafka_topic("engine-dlq-small", partitions=1, config={"max.message.bytes": "50000"})
    settings = settings_for(infra, topics)
    poison = bytes(range(256)) * 800  # 200 KB, not UTF-8: base64 in the envelope
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-big", poison), (b"T-after", script())])
    with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
        (dead,) = read_all(infra.kafka_bootstrap, topics["dlq"], 1)
        wait_committed(infra, settings, 1, 2)
        assert agent.stop() == 0
    assert len(dead.value) < 50_000
    envelope = dead.json()
    validate_dead_letter(envelope)
    payload = envelope["payload"]
    assert (payload["truncated"], payload["size"], payload["encoding"]) == (True, len(poison), "base64")
    assert envelope["source"] == {"topic": topics["input"], "partition": 0, "offset": 0, "key": "T-big"}


def test_a_dead_letter_that_cannot_be_written_makes_the_agent_not_ready_until_it_is(
    infra: Infra, kafka_topic: TopicFactory, kafka_admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from confluent_kafka.admin import NewTopic

    topics = make_topics(kafka_topic, partitions=1)
    topics["dlq"] = f"engine-dlq-missing-{int(time.time() * 1000)}"  # does not exist (yet)
    settings = dataclasses.replace(
        settings_for(infra, topics, env={"KAFKA_PRODUCER_MESSAGE_TIMEOUT_MS": "500"}), dead_letter_attempts=3
    )
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-poison", b"not json")])
    try:
        with engine_running(settings, ScriptedHandler(topics["output"])) as agent:
            wait_for("the agent to join", lambda: agent.engine.ready, timeout=30)
            wait_for("the agent to report not ready", lambda: not agent.engine.ready, timeout=60, interval=0.1)
            assert metric("srs_agent_dead_letters_stuck") == 1
            stuck = [r for r in caplog.records if r.getMessage().startswith("a dead letter cannot be written")]
            assert stuck and (stuck[0].__dict__["partition"], stuck[0].__dict__["offset"]) == (0, 0)
            kafka_admin.create_topics([NewTopic(topics["dlq"], num_partitions=1, replication_factor=1)])[
                topics["dlq"]
            ].result(30)
            read_all(infra.kafka_bootstrap, topics["dlq"], 1, timeout_s=90)
            wait_for("the agent to be ready again", lambda: agent.engine.ready, timeout=60)
            assert metric("srs_agent_dead_letters_stuck") == 0
            assert agent.stop() == 0
    finally:
        kafka_admin.delete_topics([topics["dlq"]])


def test_a_rebalance_whose_drain_times_out_gives_the_revoked_partition_up(
    infra: Infra, kafka_topic: TopicFactory
) -> None:
    """Item 5: member A's loop is blocked by a handler while B joins; A's revoke cannot drain in
    time. A must let the revoked partition go: B alone processes what was queued behind the
    blocker there, and A takes the partition back cleanly later."""
    topics = make_topics(kafka_topic, partitions=2)

    def member(name: str) -> tuple[EngineSettings, ScriptedHandler]:
        settings = dataclasses.replace(settings_for(infra, topics), revoke_drain_timeout_s=1.0)
        return settings, ScriptedHandler(topics["output"], member=name)

    watcher = TopicWatcher(infra.kafka_bootstrap, topics["output"])
    settings_a, handler_a = member("A")
    try:
        with engine_running(settings_a, handler_a) as a:
            wait_for("A to own both partitions", lambda: len(owned(a)) == 2)
            # On each partition: a blocker, then two records of the same key queued behind it.
            # Only the first blocker A runs blocks (10 s: longer than the 1 + 5 s the revoke waits).
            for partition in (0, 1):
                produce_to(infra, topics["input"], partition, [
                    (b"K", script(block_s=10 if partition == 0 else 0, step=0)),
                    (b"K", script(step=1)), (b"K", script(step=2)),
                ])  # fmt: skip
            wait_for("A to run the blocker", lambda: handler_a.running >= 1 or watcher.count() > 0, interval=0.05)
            settings_b, handler_b = member("B")
            with engine_running(settings_b, handler_b) as b:
                wait_for(
                    "B to own one partition",
                    lambda: len(owned(b)) == 1,
                    timeout=60,
                )
                (revoked,) = owned(b)
                wait_for("A to let the revoked partition go",
                         lambda: revoked not in owned(a), timeout=30)  # fmt: skip
                watcher.wait_for_count(6)
                steps = [
                    (o["source_partition"], o["input"]["step"], o["member"])
                    for o in (r.json() for r in watcher.records)
                ]
                queued_behind = [
                    (member, step) for partition, step, member in steps if partition == revoked[1] and step
                ]
                assert {m for m, _ in queued_behind} == {"B"}, f"records behind the blocker ran in A: {steps}"
                assert b.stop() == 0
            # B left: A gets the partition back and goes on with it (no stale state, no stall).
            wait_for("A to own both partitions again", lambda: len(owned(a)) == 2, timeout=60)
            before = watcher.count()
            produce_to(infra, topics["input"], revoked[1], [(b"K2", script(step=3))])
            watcher.wait_for_count(before + 1, timeout_s=30)
            assert a.engine.failure is None
            assert a.stop() == 0
    finally:
        watcher.stop()


def owned(agent: EngineThread) -> list[tuple[str, int]]:
    dispatcher = agent.engine.dispatcher
    return dispatcher.assigned_partitions if dispatcher is not None else []


def produce_to(infra: Infra, topic: str, partition: int, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "enable.idempotence": True})
    for key, value in records:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


# -- durable poison detection: real processes, real kills --------------------------------------


def run_until_dead_lettered(
    infra: Infra, topics: dict[str, str], tmp_path: Path, *, kill_when_marked: bool, max_runs: int = 12
) -> tuple[int, list[Any], subprocess.Popen[bytes]]:
    """Start ``srs agent`` again each time it dies (or is killed) until the dead-letter topic has
    an entry; return how many processes died, the dead letters and the process still running."""
    config = agent_config(infra.kafka_bootstrap, topics)
    marker = tmp_path / "hung"
    dlq = TopicWatcher(infra.kafka_bootstrap, topics["dlq"])
    deaths = 0
    try:
        for run in range(max_runs):
            marker.unlink(missing_ok=True)
            process = start_agent(config, tmp_path, f"agent-{run}", env={**FAST_GROUP, "SRS_TEST_MARKER": str(marker)})
            while process.poll() is None and dlq.count() == 0:
                if kill_when_marked and marker.exists():
                    kill(process)  # what the liveness probe does to a hung agent
                    break
                time.sleep(0.1)
            if process.poll() is None:  # alive, and the dead letter is written
                return deaths, dlq.records, process
            deaths += 1
        raise AssertionError(f"no dead letter after {max_runs} runs")
    finally:
        dlq.stop()


@pytest.mark.parametrize("failure", ["crash", "hang"])
def test_a_record_that_crashes_or_hangs_its_process_is_dead_lettered_as_crash_loop(
    infra: Infra, kafka_topic: TopicFactory, tmp_path: Path, failure: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = make_topics(kafka_topic, partitions=1)
    poison = script(crash=True) if failure == "crash" else script(hang=True)
    produce(
        infra.kafka_bootstrap, topics["input"], [(b"T-ok-1", script()), (b"T-poison", poison), (b"T-ok-2", script())]
    )
    started = time.monotonic()
    deaths, dead, survivor = run_until_dead_lettered(infra, topics, tmp_path, kill_when_marked=failure == "hang")
    outputs = TopicWatcher(infra.kafka_bootstrap, topics["output"])
    try:
        # Innocent neighbours are processed, not dead-lettered (T-ok-1 possibly more than once).
        wait_for("both innocent records processed", lambda: {r.key for r in outputs.records} == {b"T-ok-1", b"T-ok-2"})
    finally:
        outputs.stop()
        survivor.send_signal(signal.SIGTERM)
        survivor.wait(60)
    with capsys.disabled():
        print(f"\ncrash loop ({failure}): dead-lettered after {deaths} process deaths, "
              f"{time.monotonic() - started:.1f}s")  # fmt: skip
    (letter,) = dead
    envelope = letter.json()
    validate_dead_letter(envelope)
    assert (letter.key, envelope["error"]["class"], envelope["source"]["offset"]) == (b"T-poison", "crash_loop", 1)
    assert envelope["attempts"] == 3  # the crash_loop_limit
    # The poison killed 3 processes as the head of the partition, plus at most one run in
    # which it was not the head yet (T-ok-1 ran alone, as a suspect, and passed).
    assert 3 <= deaths <= 5
    assert committed_offsets(infra.kafka_bootstrap, f"group-{topics['input']}", topics["input"], 1) == {0: 3}


def test_a_clean_stop_does_not_count_as_a_crash(infra: Infra, kafka_topic: TopicFactory, tmp_path: Path) -> None:
    """Four processes are stopped (SIGTERM) while a slow record at the head runs: a rolling
    restart, not a crash loop. The fifth processes it normally."""
    topics = make_topics(kafka_topic, partitions=1)
    config = agent_config(infra.kafka_bootstrap, topics)
    marker = tmp_path / "started"
    env = {**FAST_GROUP, "SRS_TEST_MARKER": str(marker)}
    # 5 s: far longer than a stop takes to cut it (SIGTERM, then the 1 s grace period), and
    # what the fifth process waits for before it writes the output.
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-slow", script(sleep_ms=5_000, mark=True))])
    for run in range(4):
        marker.unlink(missing_ok=True)
        process = start_agent(config, tmp_path, f"agent-{run}", env=env, grace_s=1)
        try:
            wait_for("the agent to start the record", marker.exists, timeout=60, interval=0.05)
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(60)
        assert code == 0
    process = start_agent(config, tmp_path, "agent-last", env=env)
    try:
        (out,) = read_all(infra.kafka_bootstrap, topics["output"], 1, timeout_s=60)
        assert out.key == b"T-slow"  # processed, not dead-lettered as a crash loop
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
