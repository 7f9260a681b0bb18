"""The whole ticket flow with real ``srs agent`` processes (offline provider) on the real
broker: two triage processes and five specialists, tickets arriving while agents are
killed with SIGKILL and restarted. Every ticket ends resolved, in the human queue or in
the dead-letter topic — exactly once, as a read_committed reader sees it: none is lost,
none is answered twice."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer

from agent_runtime.events import format_traceparent
from srs.publish import sample_tickets, to_event
from srs_contracts.agent_config import AgentConfig
from tests.harness import Infra, TopicFactory, wait_for
from tests.integration.engine_support import (
    FAST_GROUP,
    TopicWatcher,
    agent_log_summary,
    free_port,
    group_progress,
    kill,
    start_agent,
    topic_contents,
    wait_ready,
)

pytestmark = pytest.mark.integration

TYPES = ("billing", "technical", "feature_request", "account", "other")
AGENT = "agent_runtime.agent:build_handler"


def agent_config(name: str, document: dict[str, object]) -> AgentConfig:
    return AgentConfig.model_validate({"name": name, "server": {"port": free_port()}, **document})


def test_every_ticket_ends_resolved_human_or_dead_lettered_while_agents_are_killed(
    infra: Infra, kafka_topic: TopicFactory, tmp_path: Path
) -> None:
    events_topic = kafka_topic("flow-events", partitions=4)
    routes = {t: kafka_topic(f"flow-triaged-{t.replace('_', '-')}", partitions=2) for t in TYPES}
    human, resolved, dlq = kafka_topic("flow-human", 2), kafka_topic("flow-resolved", 4), kafka_topic("flow-dlq")
    triage = {
        "role": "triage",
        "concurrency": 8,
        "kafka": {"group_id": f"triage-{events_topic}", "input_topic": events_topic, "dead_letter_topic": dlq},
        "triage": {"routes": routes, "human_topic": human},
    }
    configs = {"triage-a": agent_config("triage", triage), "triage-b": agent_config("triage", triage)}
    for ticket_type, topic in routes.items():
        configs[ticket_type] = agent_config(
            f"{ticket_type.replace('_', '-')}-specialist",
            {
                "role": "specialist",
                "concurrency": 8,
                "kafka": {"group_id": f"specialist-{topic}", "input_topic": topic, "dead_letter_topic": dlq},
                "specialist": {"specialty": ticket_type, "output_topic": resolved, "human_topic": human},
            },
        )
    env = {**FAST_GROUP, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap}
    agents: dict[str, subprocess.Popen[bytes]] = {}
    restarts: Counter[str] = Counter()
    #: Every process started, by its log name (``triage-a-0``), and those the test killed.
    started: dict[str, subprocess.Popen[bytes]] = {}
    killed: set[str] = set()

    def start(name: str) -> None:
        run = f"{name}-{restarts[name]}"
        agents[name] = started[run] = start_agent(configs[name], tmp_path, run, env=env, handler=AGENT)
        restarts[name] += 1

    def what_happened() -> str:
        """The processes (which ended, how), each group's committed offsets against the end
        offsets, and what every agent's log says about its partitions."""
        ends = [
            f"{run}: {'killed by the test' if run in killed else 'running' if p.poll() is None else 'EXITED'}"
            f" (exit code {p.poll()})"
            for run, p in started.items()
        ]
        groups = [group_progress(infra.kafka_bootstrap, c.kafka.group_id, c.kafka.input_topic)
                  for name, c in configs.items() if name != "triage-b"]  # fmt: skip
        logs = [agent_log_summary(tmp_path / f"{run}.log") for run in started]
        return "\n".join(["processes:", *ends, "groups:", *groups, "logs:", *logs])

    samples = sample_tickets()
    tickets = [to_event(samples[n % len(samples)], "flow", n) for n in range(600)]
    poison = [(b"T-flow-bad-json", b'{"ticket_id": "T-flow-bad-json"'), (b"T-flow-no-subject", json.dumps(
        {**tickets[0], "ticket_id": "T-flow-no-subject", "subject": None}).encode())]  # fmt: skip

    def feed() -> None:
        producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "enable.idempotence": True})
        for key, value in poison:
            producer.produce(events_topic, key=key, value=value)
        for n, ticket in enumerate(tickets):
            producer.produce(
                events_topic,
                key=ticket["ticket_id"].encode(),
                value=json.dumps(ticket).encode(),
                headers=[("traceparent", format_traceparent(ticket["trace_id"], ticket["event_id"]).encode())],
            )
            producer.poll(0)
            if n % 50 == 49:
                producer.flush(10)
                time.sleep(0.4)  # tickets keep arriving for ~5 s, while agents die
        assert producer.flush(30) == 0

    watcher = TopicWatcher(infra.kafka_bootstrap, resolved, human, dlq)
    feeder = threading.Thread(target=feed, daemon=True)
    try:
        for name in configs:
            start(name)
        feeder.start()
        for victims, progress in ((("triage-a", "billing"), 100), (("triage-b", "technical"), 250)):
            watcher.wait_for_count(progress, timeout_s=60)
            for victim in victims:
                kill(agents[victim], signal.SIGKILL)
                killed.add(f"{victim}-{restarts[victim] - 1}")
                start(victim)
        feeder.join(60)
        expected = {t["ticket_id"] for t in tickets} | {k.decode() for k, _ in poison}

        def outcomes() -> dict[str, set[str]]:
            found: dict[str, set[str]] = defaultdict(set)
            for record in watcher.records:
                found[record.json()["ticket_id"] or (record.key or b"").decode()].add(record.topic)
            return found

        try:
            wait_for("an outcome for every ticket", lambda: expected <= set(outcomes()), timeout=90)
        except AssertionError:
            missing = sorted(expected - set(outcomes()))
            report = what_happened()
            try:
                held: object = [(r.offset, r.key) for r in topic_contents(infra.kafka_bootstrap, dlq)]
            except KafkaException as e:  # a broker too slow to answer is part of the story
                held = f"(unreadable: {e})"
            (tmp_path / "what-happened.txt").write_text(report)
            raise AssertionError(
                f"{len(missing)} tickets without an outcome, e.g. {missing[:10]}; the dead-letter topic holds "
                f"{held}; the watcher read up to {watcher.positions()}\n{report}"
            ) from None
        for config in configs.values():
            # Restarted ones too (a loaded machine takes tens of seconds to start one): they
            # are stopped as a running agent is.
            wait_ready(config, timeout_s=120)
        for process in agents.values():
            process.send_signal(signal.SIGTERM)
        for process in agents.values():
            assert process.wait(30) == 0
        watcher.wait_caught_up()
    finally:
        for process in agents.values():
            kill(process)
        watcher.stop()

    records = watcher.records
    final = outcomes()
    assert set(final) == expected
    # One kind of outcome per ticket: a replay decides the same way (deterministic provider).
    assert {t: topics for t, topics in final.items() if len(topics) > 1} == {}
    kinds = Counter(next(iter(topics)) for topics in final.values())
    assert kinds[resolved] > 0 and kinds[human] > 0
    assert {t for t, topics in final.items() if dlq in topics} == {"T-flow-bad-json", "T-flow-no-subject"}
    # Exactly once: one committed outcome record per ticket, whatever was killed when.
    per_ticket = Counter(r.json()["ticket_id"] or (r.key or b"").decode() for r in records)
    assert {t: n for t, n in per_ticket.items() if n > 1} == {}, "a ticket has more than one outcome"
    assert len({r.json()["event_id"] for r in records}) == len(expected)
    print(
        f"\nflow: {len(expected)} tickets, {kinds[resolved]} resolved, {kinds[human]} human, "
        f"{kinds[dlq]} dead-lettered; {sum(restarts.values()) - len(configs)} SIGKILLs, "
        f"{len(records) - len(expected)} duplicate outcomes"
    )
    assert max(restarts.values()) == 2
