"""Shared pieces of the engine tests: a scripted handler, agent runners, topic readers.

``ScriptedHandler`` does what each input's JSON tells it (fail N times, fail for good,
sleep) and echoes the input into the config's output topic, so a test can tell from the
outputs alone what happened to every input. ``scripted_handler`` is its factory for
``srs agent --handler tests.integration.engine_support:scripted_handler``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from agent_runtime.engine import Engine, EngineSettings, current_trace_id
from agent_runtime.records import InputRecord, OutputRecord, PermanentError, TransientError
from devstack.processes import free_port
from srs_contracts.agent_config import AgentConfig
from tests.harness import TopicFactory, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
SRS = Path(sys.executable).parent / "srs"
#: Fast group membership and commits, so tests do not wait for production-sized timeouts.
FAST_GROUP = {
    "KAFKA_CONSUMER_SESSION_TIMEOUT_MS": "6000",
    "KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS": "500",
    "KAFKA_CONSUMER_AUTO_COMMIT_INTERVAL_MS": "1000",
    # Also the rebalance timeout: a member that never rejoins holds a rebalance this long.
    "KAFKA_CONSUMER_MAX_POLL_INTERVAL_MS": "20000",
}


class ScriptedHandler:
    """Echoes each input to ``output_topic``; the input's JSON may ask it to misbehave.

    ``{"fail_times": n}``: a transient error on the first n attempts.
    ``{"permanent": "schema_invalid"}``: a permanent error of that class.
    ``{"sleep_ms": n}``: take n ms (also ``$SRS_TEST_SLEEP_MS`` for every input).
    ``{"block_s": n}``: block the event loop for n s (a handler doing CPU-bound work on it).
    ``{"ignore_cancel_s": n}``: take n s and ignore cancellation meanwhile.
    ``{"crash": true}``: the process kills itself (SIGKILL), every time.
    ``{"hang": true}``: touch ``$SRS_TEST_MARKER``, then block the event loop for good.
    ``{"mark": true}``: touch ``$SRS_TEST_MARKER`` when it starts.
    ``{"outputs": n}``: n outputs instead of one.
    Input that is not JSON: ``PermanentError("invalid_json")``.
    """

    def __init__(self, output_topic: str, sleep_ms: float = 0.0, member: str = "") -> None:
        self.output_topic = output_topic
        self.sleep_ms = sleep_ms
        self.member = member
        self.attempts: Counter[tuple[int, int]] = Counter()
        self.running = 0
        self.max_running = 0
        self.handled_order: list[tuple[bytes | None, int]] = []

    async def handle(self, record: InputRecord) -> Sequence[OutputRecord]:
        self.attempts[(record.partition, record.offset)] += 1
        attempt = self.attempts[(record.partition, record.offset)]
        try:
            script = json.loads(record.value or b"")
        except ValueError as e:
            raise PermanentError("invalid_json", f"not JSON: {e}") from e
        if not isinstance(script, dict):
            raise PermanentError("schema_invalid", "expected a JSON object")
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        if script.get("mark"):
            Path(os.environ["SRS_TEST_MARKER"]).touch()
        try:
            sleep_ms = float(script.get("sleep_ms", self.sleep_ms))
            if sleep_ms:
                await asyncio.sleep(sleep_ms / 1000)
            await self._misbehave(script)
        finally:
            self.running -= 1
        if "permanent" in script:
            raise PermanentError(str(script["permanent"]), "the script says this input can never succeed")
        if attempt <= int(script.get("fail_times", 0)):
            raise TransientError(f"scripted failure {attempt}")
        self.handled_order.append((record.key, record.offset))
        output = {
            "source_partition": record.partition,
            "source_offset": record.offset,
            "attempt": attempt,
            "trace_id": current_trace_id(),
            "input": script,
            "pid": os.getpid(),
            "member": self.member,
        }
        return [
            OutputRecord(self.output_topic, record.key, json.dumps({**output, "output": n}).encode())
            for n in range(int(script.get("outputs", 1)))
        ]

    @staticmethod
    async def _misbehave(script: dict[str, Any]) -> None:
        if script.get("crash"):
            os.kill(os.getpid(), signal.SIGKILL)
        if script.get("hang"):
            Path(os.environ["SRS_TEST_MARKER"]).touch()
            time.sleep(3600)
        if script.get("block_s"):
            time.sleep(float(script["block_s"]))
        if script.get("ignore_cancel_s"):
            until = time.monotonic() + float(script["ignore_cancel_s"])
            while time.monotonic() < until:
                try:
                    await asyncio.sleep(until - time.monotonic())
                except asyncio.CancelledError:
                    continue


def scripted_handler(config: AgentConfig) -> ScriptedHandler:
    """Handler factory for ``srs agent --handler``: echoes into the specialist's output topic."""
    assert config.specialist is not None
    return ScriptedHandler(config.specialist.output_topic, float(os.environ.get("SRS_TEST_SLEEP_MS", "0")))


def make_topics(kafka_topic: TopicFactory, partitions: int = 4, prefix: str = "engine") -> dict[str, str]:
    """Fresh ``input``, ``output`` (``partitions`` each) and ``dlq`` topics."""
    return {
        "input": kafka_topic(f"{prefix}-in", partitions=partitions),
        "output": kafka_topic(f"{prefix}-out", partitions=partitions),
        "dlq": kafka_topic(f"{prefix}-dlq", partitions=1),
    }


def agent_config(
    bootstrap: str,
    topics: dict[str, str],
    *,
    concurrency: int = 16,
    max_attempts: int = 4,
    port: int | None = None,
    delivery: str = "exactly-once",
) -> AgentConfig:
    """A specialist wired to :func:`make_topics`' topics (group ``group-<input topic>``)."""
    return AgentConfig.model_validate(
        {
            "name": "engine-test",
            "role": "specialist",
            "specialist": {"specialty": "billing", "output_topic": topics["output"]},
            "kafka": {
                "bootstrap_servers": bootstrap,
                "group_id": f"group-{topics['input']}",
                "input_topic": topics["input"],
                "dead_letter_topic": topics["dlq"],
                "delivery": delivery,
            },
            "concurrency": concurrency,
            "retry": {"max_attempts": max_attempts, "initial_backoff_ms": 20, "max_backoff_ms": 200},
            "server": {"port": port or free_port()},
        }
    )


# -- running the engine ---------------------------------------------------------------------


@dataclass
class EngineThread:
    """An ``Engine`` running on its own event loop in a thread of the test process."""

    engine: Engine
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    result: list[int] = field(default_factory=list)

    def stop(self, timeout_s: float = 60) -> int:
        self.loop.call_soon_threadsafe(self.engine.stop)
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "engine did not stop"
        return self.result[0]


@contextmanager
def engine_running(settings: EngineSettings, handler: Any) -> Iterator[EngineThread]:
    engine = Engine(settings, handler)
    loop = asyncio.new_event_loop()
    result: list[int] = []

    def main() -> None:
        result.append(loop.run_until_complete(engine.run()))
        loop.close()

    runner = EngineThread(engine, threading.Thread(target=main, daemon=True), loop, result)
    runner.thread.start()
    try:
        yield runner
    finally:
        if runner.thread.is_alive():
            runner.stop()


SCRIPTED_HANDLER = "tests.integration.engine_support:scripted_handler"


def start_agent(
    config: AgentConfig,
    tmp_path: Path,
    name: str,
    *,
    env: dict[str, str] | None = None,
    grace_s: float = 10,
    handler: str = SCRIPTED_HANDLER,
) -> subprocess.Popen[bytes]:
    """``srs agent`` (by default with the scripted handler) as a separate process; logs go to a file."""
    config_file = tmp_path / f"{name}.yaml"
    config_file.write_text(config.to_yaml())
    log_file = (tmp_path / f"{name}.log").open("ab")
    return subprocess.Popen(
        [
            str(SRS), "agent", "--config", str(config_file), "--grace-period", str(grace_s),
            "--handler", handler,
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})},
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_ready(config: AgentConfig, timeout_s: float = 120) -> None:
    """Wait until the agent process serving ``config`` answers /readyz (it is in its group)."""
    url = f"http://127.0.0.1:{config.server.port}/readyz"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    wait_for(f"{config.name} on port {config.server.port} to be ready", ready, timeout=timeout_s)


def kill(process: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    process.wait(60)


# -- producing and reading ------------------------------------------------------------------


def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes | None, bytes]], headers: Any = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    for key, value in records:
        producer.produce(topic, key=key, value=value, headers=headers)
        producer.poll(0)
    assert producer.flush(30) == 0


@dataclass(frozen=True)
class Read:
    topic: str
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    partition: int
    offset: int

    def json(self) -> Any:
        return json.loads(self.value)


def to_read(message: Any) -> Read:
    headers = {name: value or b"" for name, value in message.headers() or []}
    return Read(message.topic(), message.key(), message.value() or b"", headers, message.partition(), message.offset())


def reader(bootstrap: str, role: str, **settings: object) -> Consumer:
    """A consumer that reads what a user sees: committed records only (aborted outputs of a
    crashed agent never), without joining a group's offsets."""
    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{role}-{time.monotonic_ns()}",
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **settings,
        }
    )


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 60) -> list[Read]:
    """Read ``topic`` from the start until ``expected`` records arrived (or fail)."""
    consumer = reader(bootstrap, "reader")
    consumer.subscribe([topic])
    found: list[Read] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(found) < expected:
            assert time.monotonic() < deadline, f"only {len(found)}/{expected} records in {topic} after {timeout_s}s"
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    found.append(to_read(message))
        # Anything beyond the expected count (duplicates) that is already there.
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                found.append(to_read(message))
    finally:
        consumer.close()
    return found


def topic_contents(bootstrap: str, topic: str, timeout_s: float = 10) -> list[Read]:
    """Every committed record ``topic`` holds now, read by partition up to its end (no
    consumer group): the end of a partition is where read_committed reading stops."""
    consumer = reader(bootstrap, "dump", **{"enable.partition.eof": True})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        found: list[Read] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout_s
        while len(at_end) < len(partitions):
            assert time.monotonic() < deadline, f"{topic}: only partitions {sorted(at_end)} read to the end"
            for message in consumer.consume(1000, 0.5):
                error = message.error()
                if error is None:
                    found.append(to_read(message))
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
        return found
    finally:
        consumer.close()


class TopicWatcher:
    """Reads topics from the start on a background thread, for as long as the test needs.

    Every partition is assigned explicitly once the broker's metadata lists it. A
    subscription would miss a topic created a moment ago whose metadata the broker has not
    published yet, and librdkafka looks again only at its next metadata refresh (minutes).
    """

    def __init__(self, bootstrap: str, *topics: str) -> None:
        self._consumer = reader(bootstrap, "watcher")
        self._assignment = [tp for topic in topics for tp in self._partitions(topic)]
        self._consumer.assign(self._assignment)
        self._bootstrap, self._topics = bootstrap, topics
        self._records: list[Read] = []
        #: (topic, partition) → the next offset to read there.
        self._positions: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _partitions(self, topic: str, timeout_s: float = 30) -> list[TopicPartition]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = self._consumer.list_topics(topic, timeout=10).topics.get(topic)
            if found is not None and found.error is None and found.partitions:
                return [TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(found.partitions)]
            assert time.monotonic() < deadline, f"{topic} is not in the broker's metadata after {timeout_s}s"
            time.sleep(0.1)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = [to_read(m) for m in self._consumer.consume(1000, 0.2) if m.error() is None]
            # The consumer's position, not the last record's offset + 1: it moves past
            # transaction markers too.
            positions = {(tp.topic, tp.partition): tp.offset for tp in self._consumer.position(self._assignment)}
            with self._lock:
                self._records.extend(batch)
                self._positions.update({tp: offset for tp, offset in positions.items() if offset >= 0})
        self._consumer.close()

    @property
    def records(self) -> list[Read]:
        with self._lock:
            return list(self._records)

    def count(self) -> int:
        with self._lock:
            return len(self._records)

    def wait_for_count(self, count: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.count() < count:
            assert time.monotonic() < deadline, f"only {self.count()}/{count} records after {timeout_s}s"
            time.sleep(0.05)

    def wait_caught_up(self, timeout_s: float = 30) -> None:
        """Wait until every record the topics hold now has been read: once nothing writes any
        more, the records are complete (no fixed wait for stragglers, bounded by ``timeout_s``)."""
        probe = reader(self._bootstrap, "probe")
        try:
            ends = {
                (topic, partition): probe.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
                for topic in self._topics
                for partition in probe.list_topics(topic, timeout=10).topics[topic].partitions
            }
        finally:
            probe.close()

        def caught_up() -> bool:
            with self._lock:
                return all(self._positions.get(tp, 0) >= end for tp, end in ends.items() if end > 0)

        deadline = time.monotonic() + timeout_s
        while not caught_up():
            assert time.monotonic() < deadline, f"the watcher did not read up to {ends} within {timeout_s}s"
            time.sleep(0.05)

    def positions(self) -> dict[tuple[str, int], int]:
        """(topic, partition) → the next offset the watcher will read there."""
        with self._lock:
            return dict(self._positions)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def committed_offsets(bootstrap: str, group_id: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (-1001 when none)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        committed = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed}


def group_progress(bootstrap: str, group_id: str, topic: str) -> str:
    """One line per partition of ``topic``: the group's committed offset (with the crash
    ledger in its metadata) against the partition's end offset — where a group is stuck."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group_id, "enable.auto.commit": False})
    try:
        return _group_progress(consumer, topic)
    except KafkaException as e:  # a broker too slow to answer is part of the story
        return f"{topic}: group {group_id} unreadable: {e}"
    finally:
        consumer.close()


def _group_progress(consumer: Consumer, topic: str) -> str:
    partitions = sorted(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
    committed = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    lines = []
    for tp in committed:
        end = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)[1]
        lag = f"{end - tp.offset} behind" if tp.offset >= 0 else "nothing committed"
        lines.append(f"{topic}[{tp.partition}] committed {tp.offset} {tp.metadata or ''} end {end}: {lag}")
    return "\n".join(lines)


#: Log messages that tell how a process handled its partitions (the rest is per-record noise).
_TELLING = ("partitions", "offsets", "ledger", "alone", "crash", "engine failed", "stopp", "rebalance", "consum")


def agent_log_summary(log_file: Path, tail: int = 6, telling: int = 40) -> str:
    """What an agent's log says about its partitions (assignments, revokes, losses, ledger
    commits, warnings and errors — the last ``telling`` of them) and its last ``tail`` lines."""
    if not log_file.exists():
        return f"{log_file.name}: no log"
    lines = log_file.read_text(errors="replace").splitlines()
    picked = []
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            picked.append(line[:300])  # not JSON: a traceback or librdkafka's own output
            continue
        message = str(entry.get("msg", ""))
        if entry.get("level") in ("warning", "error", "critical") or any(t in message for t in _TELLING):
            fields = {k: v for k, v in entry.items() if k not in ("agent", "logger", "trace_id", "level", "ts")}
            picked.append(f"{entry.get('ts', '')[11:23]} {entry.get('level')} {json.dumps(fields)[:300]}")
    return "\n".join(
        [f"--- {log_file.name} ({len(lines)} lines); telling lines:", *picked[-telling:], "last lines:"]
        + [line[:300] for line in lines[-tail:]]
    )
