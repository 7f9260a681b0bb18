"""Throughput of the agent runtime's Kafka engine on a real broker, against its baselines.

One run measures, on the same ~1 KB ``ticket.created`` records and the same broker:

1. a raw confluent-kafka consume → produce loop, at-least-once (idempotent producer,
   batching, offsets stored only after the output's acknowledgement, contiguous per
   partition) — the limit of this machine — and, alternating with it, the hand-off floor:
   the engine's shape (a consumer thread handing batches to an event loop, the trace
   context, the echo handler, a produce with its ``traceparent``) without any of its
   guarantees, so that the engine's own bookkeeping shows apart from the shape; and the
   raw loop exactly-once: a transaction per ``commit_max_records`` records or
   ``commit_interval_s``, committed where it is due (consuming waits for it), the
   exactly-once loop a person writes without a framework;
2. a seed-style loop: one record at a time, ``flush()`` after every produce, automatic
   offset commits (what the original system did);
3. the engine with a trivial handler (echo), with the offline triage agent
   (``agent_runtime.agent.build_handler``, the real classifier), and with the offline billing
   specialist on the triage agent's ``ticket.triaged`` events of the same tickets (templated
   draft, guardrails, ``ticket.resolved``);
4. the engine with a simulated provider of fixed latency (default 200 ms) at
   concurrency 1, 8 and 64, compared with the ideal concurrency / latency;
5. the two delivery guarantees side by side: the engine's echo run exactly-once (outputs
   and offsets in Kafka transactions, the default) and at-least-once, for throughput;
   and a paced run of each (``--paced-rate`` records/s), for the latency from a record's
   send to its output being visible to a ``read_committed`` reader (p50/p99).

Throughput is measured from the first record handled to the last output acknowledged,
so group joins and start-up do not count; the process uses the garbage-collector
settings of ``srs agent`` (``agent_runtime.app.tune_gc``). Progress goes to stderr,
figures to stdout.

    .venv/bin/python benchmarks/runtime_benchmark.py            # uses $KAFKA_BOOTSTRAP_SERVERS
    .venv/bin/python benchmarks/runtime_benchmark.py --messages 5000 --skip-offline
    .venv/bin/python benchmarks/runtime_benchmark.py --json runtime.json     # the figures as JSON too
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import random
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from agent_runtime import logs, metrics
from agent_runtime.app import tune_gc
from agent_runtime.engine import Engine, EngineSettings
from agent_runtime.engine.consumer import to_record
from agent_runtime.engine.offsets import OffsetTracker
from agent_runtime.offline.modelfile import load_default
from agent_runtime.records import Handler, InputRecord, OutputRecord
from agent_runtime.traceparent import TRACEPARENT, derived_trace, parse_traceparent
from srs_contracts.agent_config import AgentConfig

AGENT = "benchmark"
RAW_TRANSACTIONAL_RUN = "raw loop, exactly-once (blocking commits)"
TRIAGE_RUN = "engine + offline triage agent"
SPECIALIST_RUN = "engine + offline billing specialist"
FLOOR_RUN = "hand-off floor (thread → loop, trace, no guarantees)"


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Stages:
    """Where an engine run's CPU went, µs per record: the handler (its own thread time), the
    rest of the event loop's thread (the engine: dispatcher, transactions, producer calls,
    delivery reports, metrics), and every other thread of the process (the consumer thread,
    librdkafka's threads, the blocking transaction calls)."""

    handler_us: float
    engine_loop_us: float
    other_threads_us: float

    @property
    def total_us(self) -> float:
        return self.handler_us + self.engine_loop_us + self.other_threads_us


@dataclass(frozen=True)
class Result:
    name: str
    messages: int
    seconds: float
    #: Process CPU time (all threads) per record, start-up included: an efficiency figure
    #: that does not depend on what else the machine runs.
    cpu_us_per_message: float = float("nan")
    #: Engine runs: where that CPU went, per record (see ``Stages``).
    stages: Stages | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("nan")


# -- set-up -----------------------------------------------------------------------------------


class Topics:
    """Creates uniquely named topics and deletes them all at the end."""

    def __init__(self, bootstrap: str) -> None:
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._created: list[str] = []

    def create(self, prefix: str, partitions: int) -> str:
        name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
        self._admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])[name].result(30)
        self._created.append(name)
        return name

    def delete_all(self) -> None:
        if self._created:
            for future in self._admin.delete_topics(self._created).values():
                future.result(30)


def ticket_event(n: int, size: int) -> bytes:
    """A valid ``ticket.created`` event of about ``size`` bytes."""
    event = {
        "event_type": "ticket.created",
        "event_id": str(uuid.uuid4()),
        "ticket_id": f"T-bench-{n:07d}",
        "trace_id": uuid.uuid4().hex,
        "created_at": "2026-01-01T00:00:00.000Z",
        "customer_id": f"cus_{n % 997:04d}",
        "channel": "email",
        "subject": "Charged twice for my invoice",
        "body": "",
    }
    filler = (
        "Hello, my card was charged twice for the same invoice this month and I would like the duplicate "
        "refunded. The order number is in the attached receipt. "
    )
    base = len(json.dumps(event))
    event["body"] = (filler * (size // len(filler) + 1))[: max(1, size - base)]
    return json.dumps(event).encode()


def fill(bootstrap: str, topic: str, count: int, size: int) -> None:
    """``count`` tickets keyed by ticket id, with a ``traceparent`` header as ``srs publish`` sends them."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "enable.idempotence": True})
    for n in range(count):
        value = ticket_event(n, size)
        traceparent = f"00-{json.loads(value)['trace_id']}-{uuid.uuid4().hex[:16]}-01".encode()
        while True:
            try:
                producer.produce(
                    topic, key=f"T-bench-{n:07d}".encode(), value=value, headers=[("traceparent", traceparent)]
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("could not fill the input topic")


def settings_for(
    bootstrap: str,
    input_topic: str,
    concurrency: int,
    delivery: str = "exactly-once",
    *,
    dead_letter_topic: str | None = None,
) -> EngineSettings:
    """An engine's settings on ``input_topic`` (a fresh consumer group); ``dead_letter_topic``:
    one that exists (an engine reads its ``max.message.bytes`` at start), else the config's default."""
    kafka = {"group_id": f"bench-{uuid.uuid4().hex[:8]}", "input_topic": input_topic, "delivery": delivery}
    if dead_letter_topic is not None:
        kafka["dead_letter_topic"] = dead_letter_topic
    config = AgentConfig.model_validate(
        {
            "name": AGENT,
            "role": "specialist",
            "specialist": {"specialty": "billing"},
            "kafka": kafka,
            "concurrency": concurrency,
        }
    )
    return EngineSettings.from_agent_config(config, {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap})


# -- baselines --------------------------------------------------------------------------------


def raw_loop(settings: EngineSettings, output_topic: str, count: int) -> Result:
    """Consume → produce → store the offset once acknowledged; single thread, batched."""
    consumer = Consumer(settings.consumer_config())
    producer = Producer(settings.producer_config())
    consumer.subscribe([settings.input_topic])
    trackers: dict[int, OffsetTracker] = {}
    acknowledged = 0
    first: float | None = None

    def on_delivery(partition: int, offset: int) -> Callable[[Any, Any], None]:
        def done(error: Any, _message: Any) -> None:
            nonlocal acknowledged
            if error is not None:
                raise RuntimeError(f"delivery failed: {error}")
            acknowledged += 1
            tracker = trackers[partition]
            if tracker.complete(offset):
                consumer.store_offsets(offsets=[_tp(settings.input_topic, partition, tracker.committable)])

        return done

    while acknowledged < count:
        for message in consumer.consume(500, 0.1):
            if message.error() is not None:
                continue
            if first is None:
                first = time.perf_counter()
            partition, offset = message.partition() or 0, message.offset() or 0
            trackers.setdefault(partition, OffsetTracker()).track(offset)
            while True:
                try:
                    producer.produce(
                        output_topic,
                        value=message.value(),
                        key=message.key(),
                        on_delivery=on_delivery(partition, offset),
                    )
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.poll(0)
    end = time.perf_counter()
    consumer.close()
    producer.flush(10)
    assert first is not None
    return Result("raw confluent-kafka loop", count, end - first)


def raw_transactional_loop(settings: EngineSettings, output_topic: str, count: int) -> Result:
    """Consume → produce in a transaction; every ``commit_max_records`` records or
    ``commit_interval_s`` (the engine's own settings) the consumed positions go into the
    transaction and it commits. Single thread, so the commit blocks consuming: the loop
    a person writes for exactly-once without a framework."""
    consumer = Consumer(settings.consumer_config())
    producer = Producer(settings.producer_config())
    producer.init_transactions(30)
    consumer.subscribe([settings.input_topic])
    positions: dict[int, int] = {}
    done = in_transaction = 0
    opened = 0.0
    first: float | None = None
    while done < count:
        for message in consumer.consume(500, 0.1):
            if message.error() is not None:
                continue
            if first is None:
                first = time.perf_counter()
            if not in_transaction:
                producer.begin_transaction()
                opened = time.perf_counter()
            while True:
                try:
                    producer.produce(output_topic, value=message.value(), key=message.key())
                    break
                except BufferError:
                    producer.poll(0.01)
            positions[message.partition() or 0] = (message.offset() or 0) + 1
            in_transaction += 1
            done += 1
        due = (
            in_transaction >= settings.commit_max_records or time.perf_counter() - opened >= settings.commit_interval_s
        )
        if in_transaction and (due or done >= count):
            offsets = [_tp(settings.input_topic, p, o) for p, o in positions.items()]
            producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(30)
            in_transaction = 0
    end = time.perf_counter()
    consumer.close()
    assert first is not None
    return Result(RAW_TRANSACTIONAL_RUN, count, end - first)


def seed_loop(
    settings: EngineSettings, output_topic: str, count: int, max_seconds: float, latency_s: float = 0.0
) -> Result:
    """One at a time, flush() after every produce, offsets auto-committed as consumed;
    ``latency_s`` simulates the provider call the seed made for every ticket."""
    config = {k: v for k, v in settings.consumer_config().items() if k != "enable.auto.offset.store"}
    consumer = Consumer(config)
    producer = Producer({"bootstrap.servers": settings.bootstrap_servers})
    consumer.subscribe([settings.input_topic])
    handled = 0
    first: float | None = None
    while handled < count and (first is None or time.perf_counter() - first < max_seconds):
        message = consumer.poll(0.5)
        if message is None or message.error() is not None:
            continue
        if first is None:
            first = time.perf_counter()
        if latency_s:
            time.sleep(latency_s)
        producer.produce(output_topic, value=message.value(), key=message.key())
        producer.flush()
        handled += 1
    end = time.perf_counter()
    consumer.close()
    assert first is not None
    name = "seed-style loop (flush per message)" + (f", {latency_s * 1000:.0f} ms provider" if latency_s else "")
    return Result(name, handled, end - first)


def handoff_floor(settings: EngineSettings, output_topic: str, count: int) -> Result:
    """What the engine's shape costs before any of its guarantees: a consumer thread builds
    each record as the engine's does and hands the batch to an event loop, which gives every
    record its trace context (the engine's parser and span), calls the echo handler, and
    produces its output with a ``traceparent`` and a delivery callback. No offsets are stored
    or committed, no lanes, no retries, no transactions, no metrics: a floor, not an engine."""
    consumer = Consumer(settings.consumer_config())
    producer = Producer(settings.producer_config())
    consumer.subscribe([settings.input_topic])
    handler = EchoHandler(output_topic)
    acknowledged = 0
    first: float | None = None
    stop = threading.Event()

    def delivered(error: Any, _message: Any) -> None:
        nonlocal acknowledged
        if error is not None:
            raise RuntimeError(f"delivery failed: {error}")
        acknowledged += 1

    def handle(records: list[InputRecord]) -> None:
        nonlocal first
        if first is None:
            first = time.perf_counter()
        for record in records:
            incoming = parse_traceparent(record.header(TRACEPARENT))
            if incoming is None:
                incoming = derived_trace(record.topic, record.partition, record.offset)
            span = incoming.child().header()
            step = handler.handle(record)
            try:
                step.send(None)
            except StopIteration as finished:
                outputs = finished.value
            else:
                raise RuntimeError("the echo handler suspended")
            for output in outputs:
                producer.produce(output.topic, value=output.value, key=output.key,
                                 headers=[(TRACEPARENT, span)], on_delivery=delivered)  # fmt: skip

    def fetch(loop: asyncio.AbstractEventLoop) -> None:
        while not stop.is_set():
            records = [to_record(m) for m in consumer.consume(500, 0.1) if m.error() is None]
            if records:
                loop.call_soon_threadsafe(handle, records)

    async def main() -> float:
        thread = threading.Thread(target=fetch, args=(asyncio.get_running_loop(),), daemon=True)
        thread.start()
        while acknowledged < count:
            producer.poll(0)
            await asyncio.sleep(0.001)
        end = time.perf_counter()
        stop.set()
        thread.join()
        return end

    end = asyncio.run(main())
    consumer.close()
    producer.flush(10)
    assert first is not None
    return Result(FLOOR_RUN, count, end - first)


def _tp(topic: str, partition: int, offset: int | None) -> Any:
    from confluent_kafka import TopicPartition

    return TopicPartition(topic, partition, -1001 if offset is None else offset)


# -- the engine -------------------------------------------------------------------------------


class EchoHandler:
    """Returns the input as the output, optionally after a simulated provider latency."""

    def __init__(self, output_topic: str, latency_s: float = 0.0) -> None:
        self.output_topic = output_topic
        self.latency_s = latency_s

    async def handle(self, record: InputRecord) -> Sequence[OutputRecord]:
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        return [OutputRecord(self.output_topic, record.key, record.value or b"")]


class FirstCallClock:
    """Wraps a handler: remembers when it was first called, and estimates the CPU time of the
    event loop's thread spent inside it (a handler that suspends is charged for what ran
    meanwhile; the handlers measured here do not suspend).

    The CPU clock of a thread is a system call (~0.4 µs here), and two per record were a third
    of what the echo handler's run measured as "handler": a random eighth of the calls are
    timed, and their sum scaled (an unbiased estimate). The other calls hand the inner
    handler's coroutine straight to the engine: a wrapping coroutine of its own cost the
    engine ~1 µs per record, charged to neither the engine nor the handler it measured."""

    #: One call in this many is timed.
    SAMPLE: int = 8

    def __init__(self, inner: Handler) -> None:
        self.inner = inner
        self.first: float | None = None
        self.cpu_s = 0.0
        self._draw = random.Random(0).random

    def handle(self, record: InputRecord) -> Coroutine[Any, Any, Sequence[OutputRecord]]:
        if self.first is None:
            self.first = time.perf_counter()
        if self._draw() * self.SAMPLE >= 1:
            return self.inner.handle(record)
        return self._timed(record)

    async def _timed(self, record: InputRecord) -> Sequence[OutputRecord]:
        started = time.thread_time()
        try:
            return await self.inner.handle(record)
        finally:
            self.cpu_s += (time.thread_time() - started) * self.SAMPLE


def produced(topics: Sequence[str]) -> float:
    """Outputs acknowledged (committed, exactly-once) so far on ``topics``. Reads the one
    counter family: the whole registry's collection, every 5 ms, cost the triage run ~5 % of
    its event loop."""
    wanted = set(topics)
    return sum(
        sample.value
        for family in metrics.PRODUCED.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["agent"] == AGENT and sample.labels["topic"] in wanted
    )


def run_engine(
    name: str, settings: EngineSettings, handler: Handler, output_topics: Sequence[str], count: int
) -> Result:
    clock = FirstCallClock(handler)
    engine = Engine(settings, clock)
    baseline = produced(output_topics)
    end = 0.0
    process_cpu, loop_cpu = time.process_time(), time.thread_time()

    async def main() -> None:
        nonlocal end
        runner = asyncio.create_task(engine.run())
        while produced(output_topics) - baseline < count:
            if runner.done():
                raise RuntimeError(f"engine stopped early: {engine.failure}")
            await asyncio.sleep(0.005)
        end = time.perf_counter()
        engine.stop()
        await runner

    asyncio.run(main())
    process_cpu, loop_cpu = time.process_time() - process_cpu, time.thread_time() - loop_cpu
    assert clock.first is not None
    per_record = 1e6 / count
    stages = Stages(
        handler_us=clock.cpu_s * per_record,
        engine_loop_us=(loop_cpu - clock.cpu_s) * per_record,
        other_threads_us=(process_cpu - loop_cpu) * per_record,
    )
    return Result(name, count, end - clock.first, stages=stages)


@dataclass(frozen=True)
class Latency:
    name: str
    messages: int
    p50_ms: float
    p99_ms: float


def paced_latency(name: str, settings: EngineSettings, output_topic: str, count: int, rate: float) -> Latency:
    """Send ``count`` records at ``rate``/s into the (empty) input topic while the engine
    runs; the latency of each is from its send to its output being visible to a
    read_committed reader (what a downstream agent or a customer-facing service sees)."""
    bootstrap = settings.bootstrap_servers
    engine = Engine(settings, EchoHandler(output_topic))
    sent: dict[bytes, float] = {}
    seen: dict[bytes, float] = {}
    failures: list[BaseException] = []

    def feed() -> None:
        producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "enable.idempotence": True})
        deadline = time.monotonic() + 60
        while not engine.ready:  # in the group: start-up does not count
            if time.monotonic() > deadline:
                failures.append(RuntimeError("the engine did not join its group"))
                return
            time.sleep(0.01)
        start = time.perf_counter()
        for n in range(count):
            while time.perf_counter() < start + n / rate:
                time.sleep(0.0005)
            key = f"L-{n}".encode()
            sent[key] = time.perf_counter()
            producer.produce(settings.input_topic, key=key, value=b"{}")
            producer.poll(0)
        producer.flush(30)

    def read() -> None:
        consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": f"latency-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed", "auto.offset.reset": "earliest", "enable.auto.commit": False,
        })  # fmt: skip
        consumer.subscribe([output_topic])
        deadline = time.monotonic() + 120
        try:
            while len(seen) < count and time.monotonic() < deadline:
                for message in consumer.consume(1000, 0.05):
                    if message.error() is None:
                        seen.setdefault(message.key() or b"", time.perf_counter())
        finally:
            consumer.close()

    threads = [threading.Thread(target=feed, daemon=True), threading.Thread(target=read, daemon=True)]

    async def main() -> None:
        runner = asyncio.create_task(engine.run())
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads) and not runner.done():
            await asyncio.sleep(0.05)
        engine.stop()
        await runner

    asyncio.run(main())
    if failures or len(seen) < count:
        raise RuntimeError(f"{name}: {len(seen)}/{count} outputs seen; {failures}")
    latencies = sorted((seen[key] - sent[key]) * 1000 for key in sent)
    return Latency(name, count, latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)])


def offline_triage_handler(settings: EngineSettings, topics: Topics, partitions: int) -> tuple[Handler, list[str]]:
    """The real triage agent with the offline provider, routing into fresh topics."""
    from agent_runtime.agent import build_handler

    routes = {t: topics.create(f"triaged-{t.replace('_', '-')}", partitions) for t in ("billing", "technical",
              "feature_request", "account", "other")}  # fmt: skip
    human = topics.create("human", partitions)
    config = AgentConfig.model_validate(
        {
            "name": AGENT,
            "role": "triage",
            "triage": {"routes": routes, "human_topic": human},
            "kafka": {"group_id": settings.group_id, "input_topic": settings.input_topic},
        }
    )
    return build_handler(config), [*routes.values(), human]


def offline_specialist_handler(settings: EngineSettings, topics: Topics, partitions: int) -> tuple[Handler, list[str]]:
    """The real billing specialist with the offline provider (templated draft, guardrails),
    answering into fresh topics."""
    from agent_runtime.agent import build_handler

    resolved, human = topics.create("resolved", partitions), topics.create("specialist-human", partitions)
    config = AgentConfig.model_validate(
        {
            "name": AGENT,
            "role": "specialist",
            "specialist": {"specialty": "billing", "output_topic": resolved, "human_topic": human},
            "kafka": {"group_id": settings.group_id, "input_topic": settings.input_topic},
        }
    )
    return build_handler(config), [resolved, human]


def fill_triaged(bootstrap: str, topic: str, count: int, size: int, topics: Topics, partitions: int) -> None:
    """``count`` ``ticket.triaged`` events for the billing specialist, as the offline triage agent
    writes them (its handler run in this process on the same ~``size`` B tickets), with their
    keys and trace headers."""
    settings = settings_for(bootstrap, topic, 1)
    triage, _ = offline_triage_handler(settings, topics, partitions)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})

    async def triaged() -> None:
        for n in range(count):
            (out,) = await triage.handle(InputRecord(topic, 0, n, None, ticket_event(n, size), ()))
            producer.produce(topic, out.value, out.key, headers=list(out.headers))
            producer.poll(0)

    asyncio.run(triaged())
    if producer.flush(60):
        raise RuntimeError("could not fill the specialist's input topic")


# -- the run ----------------------------------------------------------------------------------


def classifier_path() -> str:
    """Which path the offline classifier takes for ASCII tickets (``SRS_NATIVE_CLASSIFIER=0``: Python)."""
    return "compiled step (native/)" if load_default().compiled else "Python only (no compiled step)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap-servers", default=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))
    parser.add_argument("--messages", type=int, default=100_000, help="records per throughput run (default 100000)")
    parser.add_argument("--size", type=int, default=1024, help="record size in bytes (default 1024)")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of every topic (default 8)")
    parser.add_argument("--seed-seconds", type=float, default=10.0, help="time box of the seed-style loop")
    parser.add_argument("--latency-ms", type=float, default=200.0, help="simulated provider latency (default 200)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64], help="levels to measure")
    parser.add_argument("--batches", type=int, default=25, help="latency runs handle concurrency x batches records")
    parser.add_argument("--engine-concurrency", type=int, default=16, help="concurrency of the throughput run")
    parser.add_argument(
        "--repeat", type=int, default=3, help="alternating raw/engine runs; the best counts (default 3)"
    )
    parser.add_argument("--skip-offline", action="store_true", help="skip the run with the offline triage agent")
    parser.add_argument(
        "--paced-rate", type=float, default=500.0, help="records/s of the latency runs per guarantee (default 500)"
    )
    parser.add_argument(
        "--paced-seconds", type=float, default=20.0,
        help="length of each latency run (default 20: a p99 of 10,000 records; 6 s runs gave 186 and 507 ms)",
    )  # fmt: skip
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this file (JSON)")
    parser.add_argument("--log-level", default="INFO", help="the agents' log level (default INFO, as srs agent)")
    args = parser.parse_args(argv)
    if not args.bootstrap_servers:
        parser.error("set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers")
    # Logs as `srs agent` writes them (JSON lines at --log-level: at INFO, one line per triaged
    # ticket, by a writer thread), into /dev/null, line-buffered like stderr; warnings and
    # errors on stderr too.
    devnull = open(os.devnull, "w", buffering=1)  # noqa: SIM115 - open for the whole run
    logs.configure(AGENT, args.log_level, devnull, writer_thread=True)
    shown = logging.StreamHandler(sys.stderr)
    shown.setLevel(logging.WARNING)
    logging.getLogger().addHandler(shown)
    # The collector settings `srs agent` runs with (they apply to the baselines too).
    tune_gc()

    topics = Topics(args.bootstrap_servers)
    try:
        return _run(args, topics)
    finally:
        progress("deleting the benchmark topics")
        topics.delete_all()


def measured(run: Callable[[], Result]) -> Result:
    """``run()`` with its process CPU time per record."""
    cpu = time.process_time()
    result = run()
    return replace(result, cpu_us_per_message=(time.process_time() - cpu) * 1e6 / result.messages)


def best(results: list[Result]) -> Result:
    """The fastest of repeated runs: the machine is shared, slower runs measure the neighbours."""
    return max(results, key=lambda r: r.rate)


def _run(args: argparse.Namespace, topics: Topics) -> int:
    bootstrap, partitions, count = args.bootstrap_servers, args.partitions, args.messages
    input_topic = topics.create("in", partitions)
    dead_letters = topics.create("dlq", 1)
    progress(f"filling {input_topic}: {count} records of ~{args.size} B over {partitions} partitions")
    fill(bootstrap, input_topic, count, args.size)

    def baseline() -> EngineSettings:
        """Client settings of the hand-written loops (no transactions: they commit as at-least-once does)."""
        return settings_for(bootstrap, input_topic, 1, "at-least-once")

    def fresh(concurrency: int) -> EngineSettings:
        return settings_for(bootstrap, input_topic, concurrency, dead_letter_topic=dead_letters)

    def raw_run() -> Result:
        return raw_loop(baseline(), topics.create("out-raw", partitions), count)

    def engine_run(delivery: str) -> Result:
        out = topics.create("out-engine", partitions)
        settings = settings_for(
            bootstrap, input_topic, args.engine_concurrency, delivery, dead_letter_topic=dead_letters
        )
        return run_engine(f"engine + echo handler, {delivery}", settings, EchoHandler(out), [out], count)

    def floor_run() -> Result:
        return handoff_floor(baseline(), topics.create("out-floor", partitions), count)

    def raw_transactional_run() -> Result:
        settings = settings_for(bootstrap, input_topic, 1, "exactly-once")
        return raw_transactional_loop(settings, topics.create("out-raw-tx", partitions), count)

    raws: list[Result] = []
    floors: list[Result] = []
    raw_transactional: list[Result] = []
    engines: list[Result] = []
    at_least_once: list[Result] = []
    for round_ in range(1, args.repeat + 1):
        # Alternate, so all see the same share of whatever else the machine does.
        progress(f"round {round_}/{args.repeat}: raw confluent-kafka loop …")
        raws.append(measured(raw_run))
        progress(f"  {raws[-1].rate:,.0f} msg/s, {raws[-1].cpu_us_per_message:.1f} µs CPU/msg")
        progress(f"round {round_}/{args.repeat}: hand-off floor …")
        floors.append(measured(floor_run))
        progress(f"  {floors[-1].rate:,.0f} msg/s, {floors[-1].cpu_us_per_message:.1f} µs CPU/msg")
        progress(f"round {round_}/{args.repeat}: raw loop, exactly-once …")
        raw_transactional.append(measured(raw_transactional_run))
        progress(
            f"  {raw_transactional[-1].rate:,.0f} msg/s, {raw_transactional[-1].cpu_us_per_message:.1f} µs CPU/msg"
        )
        for delivery, runs in (("exactly-once", engines), ("at-least-once", at_least_once)):
            progress(f"round {round_}/{args.repeat}: engine, echo handler, {delivery} …")
            runs.append(measured(functools.partial(engine_run, delivery)))
            progress(f"  {runs[-1].rate:,.0f} msg/s, {runs[-1].cpu_us_per_message:.1f} µs CPU/msg")
    raw, floor, engine, engine_alo = best(raws), best(floors), best(engines), best(at_least_once)
    raw_tx = best(raw_transactional)
    progress(f"seed-style loop (at most {args.seed_seconds:.0f} s) …")
    seed = measured(lambda: seed_loop(baseline(), topics.create("out-seed", partitions), count, args.seed_seconds))
    progress(f"  {seed.rate:,.0f} msg/s")
    results = [raw, floor, raw_tx, seed, engine, engine_alo]
    if not args.skip_offline:
        progress(f"engine, offline triage agent, concurrency {args.engine_concurrency} …")
        settings = fresh(args.engine_concurrency)
        handler, outs = offline_triage_handler(settings, topics, partitions)
        tune_gc()  # as `srs agent` does once its handler is built: the model is frozen out of collections
        results.append(measured(lambda: run_engine(TRIAGE_RUN, settings, handler, outs, count)))
        progress(f"  {results[-1].rate:,.0f} msg/s")
        triaged_in = topics.create("triaged-in", partitions)
        progress(f"filling {triaged_in}: {count} ticket.triaged events, as the offline triage agent writes them")
        fill_triaged(bootstrap, triaged_in, count, args.size, topics, partitions)
        progress(f"engine, offline billing specialist, concurrency {args.engine_concurrency} …")
        settings = settings_for(bootstrap, triaged_in, args.engine_concurrency, dead_letter_topic=dead_letters)
        handler, outs = offline_specialist_handler(settings, topics, partitions)
        tune_gc()
        results.append(measured(lambda: run_engine(SPECIALIST_RUN, settings, handler, outs, count)))
        progress(f"  {results[-1].rate:,.0f} msg/s")

    paced: list[Latency] = []
    paced_count = int(args.paced_rate * args.paced_seconds)
    for delivery in ("exactly-once", "at-least-once"):
        progress(f"latency: {paced_count} records at {args.paced_rate:.0f}/s, {delivery} …")
        paced_in = topics.create("paced-in", partitions)
        settings = settings_for(bootstrap, paced_in, args.engine_concurrency, delivery, dead_letter_topic=dead_letters)
        paced.append(paced_latency(delivery, settings, topics.create("paced-out", partitions), paced_count,
                                   args.paced_rate))  # fmt: skip
        progress(f"  p50 {paced[-1].p50_ms:.0f} ms, p99 {paced[-1].p99_ms:.0f} ms")
    commit_interval_ms = fresh(1).commit_interval_s * 1000

    latency_s = args.latency_ms / 1000
    progress(f"seed-style loop with a {args.latency_ms:.0f} ms provider (at most {args.seed_seconds:.0f} s) …")
    slow_seed = measured(
        lambda: seed_loop(baseline(), topics.create("out-seed-slow", partitions), count, args.seed_seconds, latency_s)
    )
    progress(f"  {slow_seed.rate:,.1f} msg/s")
    latency_results: list[tuple[int, Result]] = []
    for concurrency in args.concurrency:
        n = concurrency * args.batches
        progress(f"engine, {args.latency_ms:.0f} ms handler, concurrency {concurrency}, {n} records …")
        out = topics.create(f"out-c{concurrency}", partitions)
        settings = replace(fresh(concurrency), max_pending_total=max(10_000, n))
        result = measured(
            functools.partial(run_engine, f"concurrency {concurrency}", settings, EchoHandler(out, latency_s), [out], n)
        )
        latency_results.append((concurrency, result))
        progress(f"  {result.rate:,.1f} msg/s")

    print()
    print(f"Kafka engine benchmark — {count} records of ~{args.size} B, {partitions} partitions, broker {bootstrap}")
    print(
        f"(raw loop and engine: best of {args.repeat} alternating runs; CPU: process CPU per record, start-up included)"
    )
    print(f"offline classifier: {classifier_path()}")
    print()
    print(f"{'run':<52} {'records':>8} {'seconds':>8} {'msg/s':>10} {'CPU µs':>7} {'vs raw':>7} {'vs seed':>8}")
    for r in results:
        print(f"{r.name:<52} {r.messages:>8} {r.seconds:>8.2f} {r.rate:>10,.0f} {r.cpu_us_per_message:>7.1f} "
              f"{r.rate / raw.rate:>7.2f} {r.rate / seed.rate:>7.1f}x")  # fmt: skip
    print()
    print("where an engine run's CPU goes, µs per record (handler: its own time on the event loop; engine loop: the")
    print("rest of the loop's thread; other threads: the consumer thread, librdkafka, blocking transaction calls)")
    print(f"{'run':<52} {'handler':>8} {'engine loop':>12} {'other threads':>14} {'total':>7}")
    for r in results:
        if r.stages is not None:
            st = r.stages
            print(f"{r.name:<52} {st.handler_us:>8.1f} {st.engine_loop_us:>12.1f} {st.other_threads_us:>14.1f} "
                  f"{st.total_us:>7.1f}")  # fmt: skip
    print()
    print(f"{'simulated provider':<52} {'records':>8} {'seconds':>8} {'msg/s':>10} {'ideal':>7} {'ratio':>8}")
    print(f"{slow_seed.name:<52} {slow_seed.messages:>8} {slow_seed.seconds:>8.2f} {slow_seed.rate:>10,.1f} "
          f"{1 / latency_s:>7.0f} {slow_seed.rate * latency_s:>8.2f}")  # fmt: skip
    for concurrency, r in latency_results:
        ideal = concurrency / latency_s
        print(f"{f'engine, {args.latency_ms:.0f} ms, concurrency {concurrency}':<52} {r.messages:>8} {r.seconds:>8.2f} "
              f"{r.rate:>10,.1f} {ideal:>7.0f} {r.rate / ideal:>8.2f}")  # fmt: skip
    print()
    print(f"{'delivery (send → visible to read_committed)':<52} {'records':>8} {'p50 ms':>8} {'p99 ms':>10}")
    for latency in paced:
        print(f"{latency.name + f', {args.paced_rate:.0f}/s':<52} {latency.messages:>8} {latency.p50_ms:>8.1f} "
              f"{latency.p99_ms:>10.1f}")  # fmt: skip
    print()
    eos_p99, alo_p99 = paced[0].p99_ms, paced[1].p99_ms
    checks = [
        (f"engine ≥ 80% of raw loop: {engine.rate / raw.rate:.0%}", engine.rate >= 0.8 * raw.rate),
        (f"engine ≥ 20x seed-style loop: {engine.rate / seed.rate:.1f}x", engine.rate >= 20 * seed.rate),
        (f"exactly-once ≥ 0.8 x at-least-once throughput: {engine.rate / engine_alo.rate:.2f}",
         engine.rate >= 0.8 * engine_alo.rate),
        (f"exactly-once p99 ≤ at-least-once p99 + commit interval + 50 ms: {eos_p99:.0f} ≤ "
         f"{alo_p99:.0f} + {commit_interval_ms:.0f} + 50", eos_p99 <= alo_p99 + commit_interval_ms + 50),
    ]  # fmt: skip
    for r in results:
        if r.name == TRIAGE_RUN:
            checks.append((f"offline triage ≥ 5,000 tickets/s: {r.rate:,.0f}", r.rate >= 5000))
            checks.append((f"offline triage ≤ 200 µs CPU per ticket: {r.cpu_us_per_message:.0f}",
                           r.cpu_us_per_message <= 200))  # fmt: skip
    by_name = {r.name: r for r in results}
    if TRIAGE_RUN in by_name and SPECIALIST_RUN in by_name:
        triage_us, specialist_us = by_name[TRIAGE_RUN].cpu_us_per_message, by_name[SPECIALIST_RUN].cpu_us_per_message
        checks.append((f"offline specialist within 2x the triage agent's CPU per ticket: {specialist_us:.0f} µs, "
                       f"{specialist_us / triage_us:.1f}x", specialist_us <= 2 * triage_us))  # fmt: skip
    for concurrency, r in latency_results:
        if concurrency == max(args.concurrency):
            ratio = r.rate / (concurrency / latency_s)
            checks.append((f"concurrency {concurrency} ≥ 0.8 x concurrency/latency: {ratio:.2f}", ratio >= 0.8))
            checks.append((
                f"with the {args.latency_ms:.0f} ms provider, concurrency {concurrency} ≥ 20x the seed-style loop: "
                f"{r.rate / slow_seed.rate:.0f}x", r.rate >= 20 * slow_seed.rate,
            ))  # fmt: skip
    for text, ok in checks:
        print(f"[{'PASS' if ok else 'MISS'}] {text}")
    if args.json:

        def row(r: Result) -> dict[str, Any]:
            return {**asdict(r), "per_second": r.rate, "vs_raw": r.rate / raw.rate}

        args.json.write_text(json.dumps({
            "benchmark": "runtime", "records": count, "size": args.size, "partitions": partitions,
            "offline_classifier": classifier_path(),
            "throughput": [row(r) for r in results],
            "simulated_provider": {"latency_ms": args.latency_ms, "seed_style": row(slow_seed),
                                   "engine": [{"concurrency": c, **row(r)} for c, r in latency_results]},
            "latency": [{**asdict(x), "per_second": args.paced_rate} for x in paced],
            "checks": [{"check": text, "pass": ok} for text, ok in checks],
        }, indent=2))  # fmt: skip
        progress(f"figures written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
