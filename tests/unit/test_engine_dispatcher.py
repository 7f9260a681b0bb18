"""The dispatcher's rules, without a broker: per-key order, concurrency, offsets, backpressure,
retries and dead letters. The same behaviour is checked against real Kafka in
tests/integration/test_engine_*.py; here each rule is pinned down on its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field

import pytest

from agent_runtime.engine.consumer import PartitionId, PartitionOffset
from agent_runtime.engine.dispatcher import Dispatcher
from agent_runtime.engine.ledger import CrashLedger
from agent_runtime.engine.producer import Headers, OnDelivery
from agent_runtime.engine.settings import EngineSettings
from agent_runtime.records import InputRecord, OutputRecord, PermanentError
from agent_runtime.traceparent import current_trace_id, parse_traceparent
from tests.unit.agent_fixtures import metric

pytestmark = pytest.mark.unit


def async_test(test: Callable[[], Coroutine[None, None, None]]) -> Callable[[], None]:
    """Run an async test on a fresh event loop."""

    @functools.wraps(test)
    def run() -> None:
        asyncio.run(test())

    return run


TOPIC = "in"
TRACEPARENT = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def settings(**overrides: object) -> EngineSettings:
    values: dict[str, object] = {
        "agent": "unit",
        "bootstrap_servers": "unused:9092",
        "group_id": "g",
        "input_topic": TOPIC,
        "dead_letter_topic": "dlq",
        "concurrency": 4,
        "max_attempts": 3,
        "initial_backoff_s": 0.001,
        "max_backoff_s": 0.005,
        "revoke_drain_timeout_s": 1.0,
        # These rules are at-least-once's; tests/unit/test_engine_transactions.py has exactly-once's.
        "exactly_once": False,
    }
    values.update(overrides)
    return EngineSettings(**values)  # type: ignore[arg-type]


@dataclass
class FakeSink:
    """Acknowledges after ``ack_delay_s``; fails the next ``fail_next`` records (or all to ``fail_topic``)."""

    ack_delay_s: float = 0.0
    fail_next: int = 0
    fail_topic: str | None = None
    sent: list[OutputRecord] = field(default_factory=list)

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Headers, on_delivery: OnDelivery) -> None:
        record = OutputRecord(topic, key, value, tuple(headers))
        fails = self.fail_next > 0 or record.topic == self.fail_topic
        self.fail_next = max(0, self.fail_next - 1)

        def acknowledge() -> None:
            if fails:
                on_delivery(RuntimeError("delivery failed"))
            else:
                self.sent.append(record)
                on_delivery(None)

        asyncio.get_running_loop().call_later(self.ack_delay_s, acknowledge)


@dataclass
class FakeControl:
    paused: list[PartitionId] = field(default_factory=list)
    resumed: list[PartitionId] = field(default_factory=list)
    stored: dict[PartitionId, int] = field(default_factory=dict)
    store_history: list[PartitionOffset] = field(default_factory=list)

    def pause(self, partitions: Sequence[PartitionId]) -> None:
        self.paused.extend(partitions)

    def resume(self, partitions: Sequence[PartitionId]) -> None:
        self.resumed.extend(partitions)

    ledgers: list[tuple[PartitionId, CrashLedger]] = field(default_factory=list)

    def store_offsets(self, offsets: Sequence[PartitionOffset]) -> None:
        for topic, partition, offset in offsets:
            assert offset >= self.stored.get((topic, partition), 0), "a stored offset went backwards"
            self.stored[(topic, partition)] = offset
            self.store_history.append((topic, partition, offset))

    def commit_ledger(
        self, partition: PartitionId, offset: int, ledger: CrashLedger, done: Callable[[bool], None]
    ) -> None:
        self.ledgers.append((partition, ledger))
        asyncio.get_running_loop().call_soon(done, True)

    #: The consumer's group metadata as of its last rebalance.
    metadata: object = "group-metadata"

    def group_metadata(self) -> object | None:
        return self.metadata

    #: The group's committed offsets (the exactly-once tests read their fake producer's).
    committed_source: Callable[[], dict[PartitionId, int]] = dict

    def committed_offsets(
        self, partitions: list[PartitionId], timeout_s: float
    ) -> concurrent.futures.Future[dict[PartitionId, int]]:
        committed = self.committed_source()
        answer: concurrent.futures.Future[dict[PartitionId, int]] = concurrent.futures.Future()
        answer.set_result({partition: committed[partition] for partition in partitions if partition in committed})
        return answer


@dataclass
class ScriptHandler:
    """Reads ``{"sleep": s, "fail": n, "permanent": bool}`` from each value; echoes it to ``out``."""

    running: int = 0
    max_running: int = 0
    order: list[tuple[bytes | None, int]] = field(default_factory=list)
    attempts: dict[int, int] = field(default_factory=dict)
    trace_ids: dict[int, str | None] = field(default_factory=dict)
    release: asyncio.Event | None = None

    async def handle(self, record: InputRecord) -> Sequence[OutputRecord]:
        script = json.loads(record.value or b"{}")
        self.attempts[record.offset] = self.attempts.get(record.offset, 0) + 1
        self.trace_ids[record.offset] = current_trace_id()
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await asyncio.sleep(script.get("sleep", 0))
            if script.get("block") and self.release is not None:
                await self.release.wait()
        finally:
            self.running -= 1
        if script.get("permanent"):
            raise PermanentError("schema_invalid", "missing field 'subject'")
        if self.attempts[record.offset] <= script.get("fail", 0):
            raise TimeoutError("provider timed out")
        self.order.append((record.key, record.offset))
        return [OutputRecord("out", record.key, record.value or b"")]


def rec(
    offset: int, key: str | None, partition: int = 0, headers: tuple[tuple[str, bytes], ...] = (), **script: object
) -> InputRecord:
    return InputRecord(TOPIC, partition, offset, key.encode() if key else None, json.dumps(script).encode(), headers)


async def settle(dispatcher: Dispatcher, control: FakeControl, timeout_s: float = 5.0) -> None:
    """Wait until nothing is pending any more and the last offsets were stored."""
    async with asyncio.timeout(timeout_s):
        while dispatcher.pending:
            await asyncio.sleep(0.001)
    await asyncio.sleep(0)  # the coalesced store runs one loop iteration later


def make(
    handler: ScriptHandler | None = None, sink: FakeSink | None = None, **overrides: object
) -> tuple[Dispatcher, ScriptHandler, FakeSink, FakeControl, list[str]]:
    handler = handler or ScriptHandler()
    sink = sink or FakeSink()
    control = FakeControl()
    fatal: list[str] = []
    dispatcher = Dispatcher(settings(**overrides), handler, sink=sink, control=control, on_fatal=fatal.append)
    dispatcher.start()
    return dispatcher, handler, sink, control, fatal


@async_test
async def test_one_key_runs_in_order_while_different_keys_run_concurrently() -> None:
    dispatcher, handler, sink, control, fatal = make(concurrency=8)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    # Earlier records of a key take longer: without per-key order they would finish last.
    records = [rec(i, f"k{i % 4}", sleep=0.02 * (3 - i // 4)) for i in range(12)]
    dispatcher.records_arrived(records)
    await settle(dispatcher, control)

    for key in ("k0", "k1", "k2", "k3"):
        offsets = [offset for k, offset in handler.order if k == key.encode()]
        assert offsets == sorted(offsets) and len(offsets) == 3
        sent = [json.loads(r.value) for r in sink.sent if r.key == key.encode()]
        assert [s["sleep"] for s in sent] == sorted((s["sleep"] for s in sent), reverse=True)
    assert handler.max_running == 4  # one per key: four keys in flight at once
    assert control.stored == {(TOPIC, 0): 12}
    assert not fatal


@async_test
async def test_concurrency_is_capped_and_unkeyed_records_run_in_parallel() -> None:
    dispatcher, handler, _, control, _ = make(concurrency=3)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(i, None, sleep=0.01) for i in range(12)])
    await settle(dispatcher, control)
    assert handler.max_running == 3
    assert control.stored == {(TOPIC, 0): 12}


@async_test
async def test_a_slow_record_holds_back_the_commit_position_of_its_partition_only() -> None:
    handler = ScriptHandler(release=asyncio.Event())
    dispatcher, _, _, control, _ = make(handler)
    dispatcher.partitions_assigned([(TOPIC, 0), (TOPIC, 1)])
    dispatcher.records_arrived([rec(0, "slow", block=True), rec(1, "a"), rec(2, "b"), rec(0, "c", partition=1)])
    async with asyncio.timeout(5):
        while control.stored.get((TOPIC, 1)) != 1 or len(handler.order) < 3:
            await asyncio.sleep(0.001)
    # Offsets 1 and 2 are done, but 0 is not: partition 0 must not be committed past 0.
    assert (TOPIC, 0) not in control.stored
    handler.release.set()  # type: ignore[union-attr]
    await settle(dispatcher, control)
    assert control.stored == {(TOPIC, 0): 3, (TOPIC, 1): 1}


@async_test
async def test_transient_failures_are_retried_until_they_succeed() -> None:
    dispatcher, handler, sink, control, _ = make(max_attempts=3)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "k", fail=2), rec(1, "k")])
    await settle(dispatcher, control)
    assert handler.attempts == {0: 3, 1: 1}
    assert [r.topic for r in sink.sent] == ["out", "out"]
    assert handler.order == [(b"k", 0), (b"k", 1)]  # the retry kept its key's order
    assert control.stored == {(TOPIC, 0): 2}


@async_test
async def test_exhausted_retries_and_permanent_errors_go_to_the_dead_letter_topic() -> None:
    dispatcher, handler, sink, control, _ = make(max_attempts=3)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "a", fail=99), rec(1, "b", permanent=True), rec(2, "c")])
    await settle(dispatcher, control)
    assert handler.attempts == {0: 3, 1: 1, 2: 1}
    dead = {r.key: r for r in sink.sent if r.topic == "dlq"}
    assert dict(dead[b"a"].headers)["srs-error-class"] == b"retries_exhausted"
    assert dict(dead[b"a"].headers)["srs-attempts"] == b"3"
    assert json.loads(dead[b"a"].value)["error"]["message"] == "TimeoutError: provider timed out"
    assert dict(dead[b"b"].headers)["srs-error-class"] == b"schema_invalid"
    assert dict(dead[b"b"].headers)["srs-attempts"] == b"1"
    assert control.stored == {(TOPIC, 0): 3}


@async_test
async def test_a_failed_output_delivery_is_retried_like_a_handler_failure() -> None:
    dispatcher, handler, sink, control, _ = make(sink=FakeSink(fail_next=1))
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "k")])
    await settle(dispatcher, control)
    assert handler.attempts == {0: 2}
    assert [r.topic for r in sink.sent] == ["out"]
    assert control.stored == {(TOPIC, 0): 1}


@async_test
async def test_an_undeliverable_dead_letter_keeps_the_offset_uncommitted() -> None:
    dispatcher, _, sink, control, _ = make(sink=FakeSink(fail_topic="dlq"))
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "poison", permanent=True), rec(1, "fine")])
    await asyncio.sleep(0.1)  # many dead-letter attempts, all failing
    assert [r.topic for r in sink.sent] == ["out"]
    assert (TOPIC, 0) not in control.stored  # offset 1 is done, but 0 is not: nothing committed
    # The dead-letter topic comes back: the input is dead-lettered and only then committed.
    sink.fail_topic = None
    await settle(dispatcher, control)
    assert [r.topic for r in sink.sent] == ["out", "dlq"]
    assert control.stored == {(TOPIC, 0): 2}


@async_test
async def test_revoking_finishes_in_flight_work_and_leaves_waiting_work_uncommitted() -> None:
    dispatcher, handler, _, _, _ = make(concurrency=1)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    # Concurrency 1: offset 0 runs; 1 and 2 wait for the slot, 3 waits behind 0 (same key).
    dispatcher.records_arrived([rec(0, "a", sleep=0.05), rec(1, "b"), rec(2, "c"), rec(3, "a")])
    await asyncio.sleep(0.01)
    offsets = await dispatcher.partitions_revoked([(TOPIC, 0)])
    assert handler.order == [(b"a", 0)]
    assert offsets == [(TOPIC, 0, 1)]
    assert dispatcher.pending == 0
    assert dispatcher.assigned_partitions == []


@async_test
async def test_revoking_abandons_work_that_outlives_the_drain_timeout() -> None:
    handler = ScriptHandler(release=asyncio.Event())
    dispatcher, _, _, _, _ = make(handler, revoke_drain_timeout_s=0.05)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "a"), rec(1, "stuck", block=True), rec(2, "b")])
    await asyncio.sleep(0.02)
    offsets = await dispatcher.partitions_revoked([(TOPIC, 0)])
    assert offsets == [(TOPIC, 0, 1)]  # offset 1 never finished: the next owner redoes 1 and 2


@async_test
async def test_a_partition_with_too_much_pending_work_is_paused_then_resumed() -> None:
    handler = ScriptHandler(release=asyncio.Event())
    dispatcher, _, _, control, _ = make(handler, max_pending_per_partition=4, concurrency=8)
    dispatcher.partitions_assigned([(TOPIC, 0), (TOPIC, 1)])
    dispatcher.records_arrived([rec(i, f"k{i}", block=True) for i in range(4)] + [rec(0, "x", partition=1)])
    assert control.paused == [(TOPIC, 0)]
    assert metric("srs_agent_paused_partitions", agent="unit") == 1
    handler.release.set()  # type: ignore[union-attr]
    await settle(dispatcher, control)
    assert control.resumed == [(TOPIC, 0)]
    assert metric("srs_agent_paused_partitions", agent="unit") == 0


@async_test
async def test_released_counts_every_record_let_go_of_for_the_consumers_flow_control() -> None:
    handler = ScriptHandler(release=asyncio.Event())
    dispatcher, _, _, control, _ = make(handler)
    dispatcher.partitions_assigned([(TOPIC, 0), (TOPIC, 1)])
    dispatcher.records_arrived([rec(i, f"k{i}", partition=i % 2, block=True) for i in range(6)] + [rec(0, "x", 7)])
    assert dispatcher.released == 1  # the record of an unassigned partition, dropped at once
    handler.release.set()  # type: ignore[union-attr]
    await settle(dispatcher, control)
    assert dispatcher.released == 7
    handler.release = asyncio.Event()
    dispatcher.records_arrived([rec(10, "a", block=True), rec(11, "b", block=True)])
    await dispatcher.partitions_lost([(TOPIC, 0)])  # both abandoned, left to the next owner
    assert dispatcher.released == 9
    assert dispatcher.pending == 0


@async_test
async def test_outputs_carry_the_input_trace_and_the_handler_can_read_it() -> None:
    dispatcher, handler, sink, control, _ = make()
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "traced", headers=(("traceparent", TRACEPARENT),)), rec(1, "untraced")])
    await settle(dispatcher, control)
    out = {r.key: parse_traceparent(dict(r.headers)["traceparent"]) for r in sink.sent}
    traced, untraced = out[b"traced"], out[b"untraced"]
    assert traced is not None and untraced is not None
    assert traced.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert traced.span_id != "00f067aa0ba902b7"  # our own span, child of the input's
    assert handler.trace_ids == {0: traced.trace_id, 1: untraced.trace_id}


@async_test
async def test_records_of_partitions_not_assigned_are_not_processed() -> None:
    dispatcher, handler, _, _, _ = make()
    dispatcher.records_arrived([rec(0, "k")])
    await asyncio.sleep(0.01)
    assert handler.attempts == {}
    assert dispatcher.pending == 0


@async_test
async def test_shutdown_drains_and_reports_offsets_for_every_partition() -> None:
    dispatcher, _, _, _, _ = make(sink=FakeSink(ack_delay_s=0.02))
    dispatcher.partitions_assigned([(TOPIC, 0), (TOPIC, 1)])
    dispatcher.records_arrived([rec(0, "a"), rec(1, "b"), rec(0, "c", partition=1)])
    await asyncio.sleep(0.005)
    offsets = await dispatcher.drain_all(timeout_s=2)
    assert sorted(offsets) == [(TOPIC, 0, 2), (TOPIC, 1, 1)]


@async_test
async def test_a_consumer_going_back_in_a_partition_stops_the_engine_without_committing_more() -> None:
    dispatcher, handler, _, control, fatal = make()
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(5, "a"), rec(6, "b")])
    await settle(dispatcher, control)
    assert control.stored == {(TOPIC, 0): 7}
    dispatcher.records_arrived([rec(3, "c"), rec(8, "d")])
    await asyncio.sleep(0.01)
    assert fatal == ["offsets went backwards"]
    assert dispatcher.assigned_partitions == []
    assert control.stored == {(TOPIC, 0): 7}
    assert set(handler.attempts) == {5, 6}


@dataclass
class TinyQueueSink(FakeSink):
    """Holds one unacknowledged record at a time (librdkafka with queue.buffering.max.messages=1)."""

    queued: int = 0

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Headers, on_delivery: OnDelivery) -> None:
        if self.queued:
            raise BufferError("queue full")
        self.queued += 1

        def delivered(error: Exception | None) -> None:
            self.queued -= 1
            on_delivery(error)

        super().produce(topic, key, value, headers, delivered)


@dataclass
class TwoOutputs(ScriptHandler):
    async def handle(self, record: InputRecord) -> Sequence[OutputRecord]:
        return [OutputRecord("out", record.key, b"first"), OutputRecord("out", record.key, b"second")]


@async_test
async def test_an_input_completes_only_after_every_output_is_produced_and_acknowledged() -> None:
    dispatcher, _, sink, control, _ = make(TwoOutputs(), TinyQueueSink(ack_delay_s=0.002))
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(i, f"k{i}") for i in range(10)])
    await settle(dispatcher, control)
    assert sorted((r.key, r.value) for r in sink.sent) == sorted(
        (f"k{i}".encode(), v) for i in range(10) for v in (b"first", b"second")
    )


@async_test
async def test_records_start_only_after_the_crash_ledger_is_committed() -> None:
    dispatcher, handler, _, control, _ = make()
    dispatcher.partitions_assigned([(TOPIC, 0)], {(TOPIC, 0): CrashLedger(7, 0)})
    dispatcher.records_arrived([rec(7, "a"), rec(8, "b")])
    await settle(dispatcher, control)
    assert control.ledgers[0] == ((TOPIC, 0), CrashLedger(7, 1))  # one death counted in advance
    assert sorted(offset for _, offset in handler.order) == [7, 8]


@async_test
async def test_after_a_death_the_head_runs_alone_then_the_rest() -> None:
    dispatcher, handler, _, control, _ = make(concurrency=4)
    dispatcher.partitions_assigned([(TOPIC, 0)], {(TOPIC, 0): CrashLedger(3, 1)})
    dispatcher.records_arrived([rec(3, "a", sleep=0.05), rec(4, "b"), rec(5, "c")])
    await settle(dispatcher, control)
    assert handler.order[0] == (b"a", 3)  # the slow head first, although others were free to run
    assert [ledger for _, ledger in control.ledgers] == [CrashLedger(3, 2), CrashLedger(4, 1)]


@async_test
async def test_a_head_that_killed_enough_processes_is_dead_lettered_unprocessed() -> None:
    dispatcher, handler, sink, control, _ = make(crash_loop_limit=3)
    dispatcher.partitions_assigned([(TOPIC, 0)], {(TOPIC, 0): CrashLedger(3, 3)})
    dispatcher.records_arrived([rec(3, "poison"), rec(4, "next")])
    await settle(dispatcher, control)
    assert handler.attempts.get(3) is None  # never run again
    (letter,) = [r for r in sink.sent if r.topic == "dlq"]
    assert dict(letter.headers)["srs-error-class"] == b"crash_loop"
    assert handler.order == [(b"next", 4)]
    assert control.stored == {(TOPIC, 0): 5}


@pytest.mark.parametrize(
    ("metadata", "committed", "deaths"),
    [
        ('{"srs":1,"head":7,"deaths":2}', 7, 2),
        ('{"srs":1,"head":6,"deaths":2}', 7, 0),  # about another offset: stale
        ("written by another tool", 7, 0),
        ('{"srs":2,"head":7,"deaths":2}', 7, 0),  # a future format is not guessed at
        (None, 7, 0),
    ],
)
def test_the_crash_ledger_counts_only_deaths_at_the_committed_offset(
    metadata: str | None, committed: int, deaths: int
) -> None:
    assert CrashLedger.decode(metadata, committed) == CrashLedger(committed, deaths)
    assert CrashLedger.decode(CrashLedger(committed, 3).encode(), committed).deaths == 3


@async_test
async def test_a_handler_past_its_deadline_is_cancelled_and_retried() -> None:
    dispatcher, handler, sink, control, _ = make(handler_timeout_s=0.05, max_attempts=2)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "slow", sleep=10), rec(1, "fast")])
    await settle(dispatcher, control)
    assert handler.attempts[0] == 2
    (letter,) = [r for r in sink.sent if r.topic == "dlq"]
    assert dict(letter.headers)["srs-error-class"] == b"timeout"
    assert handler.order == [(b"fast", 1)]


@dataclass
class BusyHandler:
    """Works ``busy_s`` on the event loop without ever suspending (like the offline classifier)."""

    busy_s: float = 0.002
    runs: int = 0

    async def handle(self, record: InputRecord) -> Sequence[OutputRecord]:
        until = time.monotonic() + self.busy_s
        while time.monotonic() < until:
            pass
        self.runs += 1
        return [OutputRecord("out", record.key, record.value or b"")]


@async_test
async def test_handlers_that_never_suspend_still_let_acknowledgements_and_offsets_through() -> None:
    # Eight workers each ran 32 such records before giving the loop back: one loop turn was
    # 256 handler runs, and no delivery report, offset store or rebalance drain could run
    # meanwhile (a triage agent stored no offset for its first ~2 s, and a SIGKILL then
    # replayed everything it had done).
    handler = BusyHandler()
    dispatcher, _, _, control, _ = make(handler, concurrency=8)  # type: ignore[arg-type]
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(i, f"k{i}") for i in range(400)])
    async with asyncio.timeout(10):
        while not control.store_history:
            await asyncio.sleep(0)
    assert handler.runs < 64, f"the first offset was stored only after {handler.runs} handler runs"
    await settle(dispatcher, control, timeout_s=30)
    assert control.stored == {(TOPIC, 0): 400}


@async_test
async def test_a_revoke_drains_promptly_while_other_partitions_keep_the_workers_busy() -> None:
    # The consumer thread waits inside the rebalance callback until the drain is over, and
    # the whole group waits for this member: the drain must not queue behind the busy work
    # of partitions that stay.
    handler = BusyHandler()
    dispatcher, _, _, control, _ = make(handler, concurrency=8)  # type: ignore[arg-type]
    dispatcher.partitions_assigned([(TOPIC, 0), (TOPIC, 1)])
    dispatcher.records_arrived([rec(i, f"k{i}", partition=i % 2) for i in range(480)])
    async with asyncio.timeout(10):
        while handler.runs == 0:  # the crash ledgers are committed and the workers are busy
            await asyncio.sleep(0)
    before = handler.runs
    offsets = await dispatcher.partitions_revoked([(TOPIC, 0)])
    # Counted in handler runs, not seconds: the same on a fast machine and a loaded one.
    waited = handler.runs - before
    assert waited < 64, f"the revoke drain waited for {waited} handler runs of the partition that stays"
    assert offsets and offsets[0][:2] == (TOPIC, 0)
    await settle(dispatcher, control, timeout_s=30)
    assert control.stored[(TOPIC, 1)] == 480
