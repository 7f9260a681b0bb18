"""``srs agent`` processes against the real broker: graceful shutdown, SIGKILL mid-stream,
a group scaled 1 → 3 → 1 mid-stream. Whatever happens to the processes, every input ends
with exactly one output, as a read_committed reader sees it (the agents are exactly-once)."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from tests.harness import Infra, TopicFactory, wait_for
from tests.integration.engine_support import (
    FAST_GROUP,
    Read,
    TopicWatcher,
    agent_config,
    committed_offsets,
    kill,
    make_topics,
    produce,
    start_agent,
    wait_ready,
)

pytestmark = pytest.mark.integration


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()
    except OSError:
        return 0, ""


def sources(outputs: list[Read]) -> Counter[tuple[int, int]]:
    """How often each input (partition, offset) produced an output."""
    return Counter((o.json()["source_partition"], o.json()["source_offset"]) for o in outputs)


def expected_sources(committed_by_partition: dict[int, int]) -> set[tuple[int, int]]:
    return {(p, o) for p, end in committed_by_partition.items() for o in range(max(end, 0))}


def input_positions(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """The end offset of each partition of ``topic`` (how many inputs it holds)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "positions"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def test_sigterm_drains_commits_and_exits_zero(infra: Infra, kafka_topic: TopicFactory, tmp_path: Path) -> None:
    topics = make_topics(kafka_topic, partitions=4, prefix="life")
    input_topic, output_topic = topics["input"], topics["output"]
    config = agent_config(infra.kafka_bootstrap, topics, concurrency=8)
    produce(infra.kafka_bootstrap, input_topic, [(f"T-{i}".encode(), b"{}") for i in range(80)])
    # No automatic commits: whatever is committed below, the shutdown committed it.
    env = {**FAST_GROUP, "KAFKA_CONSUMER_AUTO_COMMIT_INTERVAL_MS": "3600000", "SRS_TEST_SLEEP_MS": "250"}
    watcher = TopicWatcher(infra.kafka_bootstrap, output_topic)
    agent = start_agent(config, tmp_path, "graceful", env=env, grace_s=10)
    try:
        port = config.server.port
        wait_ready(config)  # bounded: a loaded machine takes a while to start a process
        assert http_get(port, "/healthz") == (200, "ok\n")
        watcher.wait_for_count(8)
        status, exposition = http_get(port, "/metrics")
        assert status == 200
        assert 'srs_agent_consumed_total{agent="engine-test"' in exposition

        started = time.monotonic()
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
        assert time.monotonic() - started < 10
    finally:
        kill(agent)

    committed = committed_offsets(infra.kafka_bootstrap, config.kafka.group_id, input_topic, 4)
    watcher.wait_caught_up()  # outputs acknowledged just before the exit
    produced = sources(watcher.records)
    assert sum(max(o, 0) for o in committed.values()) >= 8, "the shutdown committed the work it finished"
    # Never committed without an output: every input below a committed offset has one.
    assert expected_sources(committed) <= set(produced)
    log = (tmp_path / "graceful.log").read_text()
    assert '"msg": "stopped"' in log

    # The next process picks up exactly where the committed offsets say, and finishes the rest.
    agent = start_agent(config, tmp_path, "graceful-2", env=env, grace_s=10)
    try:
        wait_for("all 80 inputs handled", lambda: len(sources(watcher.records)) == 80, timeout=60)
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
        watcher.wait_caught_up()
    finally:
        kill(agent)
        watcher.stop()
    # Distinct keys start in offset order: what the first process finished is exactly what it
    # committed, so the second one redid nothing.
    assert all(n == 1 for n in sources(watcher.records).values())
    assert sum(committed_offsets(infra.kafka_bootstrap, config.kafka.group_id, input_topic, 4).values()) == 80


def test_every_log_line_is_json_librdkafkas_included(infra: Infra, kafka_topic: TopicFactory, tmp_path: Path) -> None:
    # KAFKA_DEBUG makes librdkafka log plenty (every client: consumer, producer, the admin
    # client that reads the dead-letter topic's limit). Unrouted, it prints raw lines such as
    # "%7|…|BROKER|…" to stderr; routed through Python logging it obeys the JSON log.
    topics = make_topics(kafka_topic, partitions=1, prefix="logs")
    config = agent_config(infra.kafka_bootstrap, topics)
    produce(infra.kafka_bootstrap, topics["input"], [(b"T-1", b"{}")])
    watcher = TopicWatcher(infra.kafka_bootstrap, topics["output"])
    agent = start_agent(config, tmp_path, "debug", env={**FAST_GROUP, "KAFKA_DEBUG": "broker,topic,metadata"})
    try:
        wait_ready(config)
        watcher.wait_for_count(1)  # a record went through: consumer and producer both talked
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(15) == 0
    finally:
        kill(agent)
        watcher.stop()
    lines = (tmp_path / "debug.log").read_text().splitlines()
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not not_json, f"{len(not_json)} of {len(lines)} log lines are not JSON, e.g. {not_json[:3]}"
    assert any('"msg": "stopped"' in line for line in lines)


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def test_sigkill_mid_stream_loses_nothing(infra: Infra, kafka_topic: TopicFactory, tmp_path: Path) -> None:
    partitions, total, kills = 8, 3000, 4
    topics = make_topics(kafka_topic, partitions=partitions, prefix="kill")
    input_topic, output_topic = topics["input"], topics["output"]
    config = agent_config(infra.kafka_bootstrap, topics, concurrency=16)
    produce(infra.kafka_bootstrap, input_topic, [(f"T-{i % 500}".encode(), b"{}") for i in range(total)])
    env = {**FAST_GROUP, "SRS_TEST_SLEEP_MS": "20"}
    watcher = TopicWatcher(infra.kafka_bootstrap, output_topic)
    try:
        for round_ in range(kills):
            agent = start_agent(config, tmp_path, f"killed-{round_}", env=env)
            try:
                # Let it make real progress, then kill it without any chance to clean up.
                watcher.wait_for_count(watcher.count() + 250, timeout_s=60)
            finally:
                kill(agent, signal.SIGKILL)
            assert agent.returncode == -signal.SIGKILL
        assert len(sources(watcher.records)) < total, "the kills happened mid-stream"

        agent = start_agent(config, tmp_path, "survivor", env=env)
        try:
            wait_for(f"all {total} inputs handled", lambda: len(sources(watcher.records)) == total, timeout=90)
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(30) == 0
        finally:
            kill(agent)
        watcher.wait_caught_up()
        produced = sources(watcher.records)
    finally:
        watcher.stop()

    expected = {
        (p, o) for p, end in input_positions(infra.kafka_bootstrap, input_topic, partitions).items() for o in range(end)
    }
    assert set(produced) == expected, "every input has an output"
    duplicates = sum(produced.values()) - len(produced)
    print(f"\nSIGKILL x{kills}: {total} inputs, {sum(produced.values())} outputs, {duplicates} duplicates")
    assert duplicates == 0, sorted(source for source, n in produced.items() if n > 1)[:20]
    committed = committed_offsets(infra.kafka_bootstrap, config.kafka.group_id, input_topic, partitions)
    assert sum(committed.values()) == total


def test_scaling_one_to_three_to_one_mid_stream_gives_every_input_exactly_one_output(
    infra: Infra, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    partitions = 6
    topics = make_topics(kafka_topic, partitions=partitions, prefix="group")
    input_topic, output_topic = topics["input"], topics["output"]
    # One group; each member a config of its own (its own probe port).
    configs = [agent_config(infra.kafka_bootstrap, topics, concurrency=8) for _ in range(3)]
    env = {**FAST_GROUP, "SRS_TEST_SLEEP_MS": "10"}
    sent = 0
    stop_feeding = threading.Event()

    # Inputs keep arriving (~300/s) until the group has gone 1 → 3 → 1.
    def feed() -> None:
        nonlocal sent
        while not stop_feeding.is_set():
            produce(infra.kafka_bootstrap, input_topic, [(f"T-{i}".encode(), b"{}") for i in range(sent, sent + 50)])
            sent += 50
            time.sleep(0.15)

    feeder = threading.Thread(target=feed, daemon=True)
    watcher = TopicWatcher(infra.kafka_bootstrap, output_topic)
    feeder.start()
    members = [start_agent(configs[0], tmp_path, "member-0", env=env)]
    try:
        watcher.wait_for_count(200)
        # Scale up: two more members join; the cooperative rebalance moves partitions to them.
        members += [start_agent(configs[n], tmp_path, f"member-{n}", env=env) for n in (1, 2)]

        def all_working() -> bool:
            recent = watcher.records[-300:]
            return len({o.json()["pid"] for o in recent}) == 3

        wait_for("three members producing", all_working, timeout=90)
        # Scale down mid-stream: two leave gracefully (drain, last transaction, leave the group).
        for member in members[:2]:
            member.send_signal(signal.SIGTERM)
        for member in members[:2]:
            assert member.wait(30) == 0
        watcher.wait_for_count(watcher.count() + 200)  # the survivor carries on alone
        stop_feeding.set()
        feeder.join(10)
        total = sent
        wait_for(f"all {total} inputs handled", lambda: len(sources(watcher.records)) >= total, timeout=90)
        members[2].send_signal(signal.SIGTERM)
        assert members[2].wait(30) == 0
        watcher.wait_caught_up()
    finally:
        stop_feeding.set()
        for member in members:
            kill(member)
        watcher.stop()

    outputs = watcher.records
    produced = sources(outputs)
    assert len(produced) == total
    assert {o.json()["pid"] for o in outputs} == {member.pid for member in members}
    assert '"msg": "partitions revoked; draining"' in (tmp_path / "member-0.log").read_text()
    # Routine scaling is no failure: a member whose commits a rebalance refused waits for its
    # next generation; it never reports itself not ready for it.
    for n in range(3):
        lines = (tmp_path / f"member-{n}.log").read_text()
        assert "transactions keep failing" not in lines, f"member-{n} went unready during routine scaling"
    duplicates = sum(produced.values()) - total
    print(f"\nscaling 1 → 3 → 1: {total} inputs, {duplicates} duplicates")
    assert duplicates == 0, sorted(source for source, n in produced.items() if n > 1)[:20]
    committed = committed_offsets(infra.kafka_bootstrap, configs[0].kafka.group_id, input_topic, partitions)
    assert sum(committed.values()) == total
