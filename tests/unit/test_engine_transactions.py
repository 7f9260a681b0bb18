"""Exactly-once rules of the dispatcher, without a broker: outputs go out only inside a
transaction together with the offsets of their inputs, records finished out of order wait
for the prefix, aborted transactions are redone once, refused outputs become dead letters,
and a partition that goes away commits what it can and tells the next owner what it redid.
The same behaviour is checked against the real broker in tests/integration/test_engine_*.py.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from agent_runtime.engine.consumer import PartitionId
from agent_runtime.engine.dispatcher import Dispatcher
from agent_runtime.engine.ledger import CrashLedger
from agent_runtime.engine.producer import Headers, OnRefused
from agent_runtime.records import OutputRecord
from tests.unit.agent_fixtures import metric
from tests.unit.test_engine_dispatcher import TOPIC, FakeControl, ScriptHandler, async_test, rec, settings

pytestmark = pytest.mark.unit


@dataclass
class Transaction:
    outputs: list[OutputRecord]
    offsets: dict[PartitionId, int]
    ledgers: dict[PartitionId, CrashLedger]


@dataclass
class FakeMessage:
    """The message of a delivery report, as much of it as the engine reads."""

    _topic: str

    def topic(self) -> str:
        return self._topic


@dataclass
class FakeTransactionalProducer:
    """What a read_committed reader sees: only outputs of committed transactions.

    As librdkafka with ``delivery.report.only.error``: only refused outputs are reported,
    and a flush (or the commit's own) serves the reports on its thread; a commit of a
    transaction with a refused output fails with an error that requires an abort."""

    refuse_key: bytes | None = None
    fail_commits: int = 0
    #: Commits the broker answers "fenced" (its transaction outlived the timeout).
    fence_commits: int = 0
    #: Commits that never return (librdkafka's send_offsets_to_transaction after a
    #: coordinator outage) until ``release`` is set; then they report the producer fenced.
    hang_commits: int = 0
    release: threading.Event = field(default_factory=threading.Event)
    #: Aborts that time out (the broker is away); librdkafka keeps such an abort pending,
    #: and refuses to begin a transaction until it is resumed.
    timeout_aborts: int = 0
    #: Commits the broker carries out whose answer never arrives: each call times out.
    unanswered_commits: int = 0
    _unanswered: bool = False
    _abort_pending: bool = False
    #: The group generation whose metadata the coordinator takes (a rebalance moves it on).
    generation: object = "group-metadata"
    committed: list[Transaction] = field(default_factory=list)
    aborted: int = 0
    renewals: int = 0
    ended: bool = False
    _open: list[OutputRecord] | None = None
    #: Reports of the open transaction's refused outputs, not served yet.
    _refusals: list[tuple[OnRefused, str]] = field(default_factory=list)
    #: Threads that served a refusal (the commit's, not the loop's).
    report_threads: set[str] = field(default_factory=set)
    #: The open transaction had an output refused: it can only be aborted.
    _refused_open: bool = False

    def produce_in_transaction(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers, on_refused: OnRefused
    ) -> None:
        assert self._open is not None, "an output was produced outside a transaction"
        if key == self.refuse_key and topic != "dlq":
            self._refusals.append((on_refused, topic))
            return
        self._open.append(OutputRecord(topic, key, value, tuple(headers)))

    def begin_transaction(self) -> None:
        if self._abort_pending:
            raise KafkaException(KafkaError(KafkaError._CONFLICT, "Conflicting abort_transaction API call"))
        assert self._open is None, "a transaction began inside another"
        self._open = []

    def flush(self, timeout_s: float) -> int:
        """Serves the refusals' reports on the calling thread, as librdkafka's flush does."""
        assert self._open is not None
        for on_refused, topic in self._refusals:
            self.report_threads.add(threading.current_thread().name)
            on_refused(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), FakeMessage(topic))
        self._refused_open = bool(self._refusals) or self._refused_open
        self._refusals = []
        return 0

    def commit_transaction(self, offsets: list[TopicPartition], group_metadata: object, timeout_s: float) -> None:
        assert self._open is not None
        # Offsets never join a transaction with a refused output (they would stay pending).
        assert not self._refused_open, "offsets were sent in a transaction that must be aborted"
        self.flush(timeout_s)
        if self._refused_open:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, txn_requires_abort=True))
        if group_metadata != self.generation:
            raise KafkaException(KafkaError(KafkaError.ILLEGAL_GENERATION, txn_requires_abort=True))
        if self._unanswered:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, retriable=True))
        if self.hang_commits:
            self.hang_commits -= 1
            self.release.wait()
            raise KafkaException(KafkaError(KafkaError._FENCED, fatal=True))
        if self.fence_commits:
            self.fence_commits -= 1
            raise KafkaException(KafkaError(KafkaError._FENCED, fatal=True))
        if self.fail_commits:
            self.fail_commits -= 1
            raise KafkaException(KafkaError(KafkaError.CONCURRENT_TRANSACTIONS, txn_requires_abort=True))
        self.committed.append(
            Transaction(
                self._open,
                {(tp.topic, tp.partition): tp.offset for tp in offsets},
                {(tp.topic, tp.partition): CrashLedger.decode(tp.metadata, tp.offset) for tp in offsets},
            )
        )
        if self.unanswered_commits:
            self.unanswered_commits -= 1
            self._unanswered = True  # committed, but the client never hears it
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, retriable=True))
        self._open = None

    def abort_transaction(self, timeout_s: float) -> None:
        assert self._open is not None
        if self.timeout_aborts:
            self.timeout_aborts -= 1
            self._abort_pending = True
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, retriable=True))
        self._abort_pending = False
        self.aborted += 1
        self._open, self._refusals, self._refused_open = None, [], False

    def count_committed(self, per_topic: dict[str, int]) -> None:
        pass

    def renew(self, timeout_s: float) -> None:
        self.renewals += 1
        self._open, self._abort_pending, self._unanswered = None, False, False  # the broker ends it
        self._refusals, self._refused_open = [], False
        self.ended = False

    def visible(self) -> list[OutputRecord]:
        return [output for transaction in self.committed for output in transaction.outputs]

    def offsets(self) -> dict[PartitionId, int]:
        result: dict[PartitionId, int] = {}
        for transaction in self.committed:
            result.update(transaction.offsets)
        return result


def make(
    handler: ScriptHandler | None = None, producer: FakeTransactionalProducer | None = None, **overrides: object
) -> tuple[Dispatcher, ScriptHandler, FakeTransactionalProducer, FakeControl, list[str]]:
    handler = handler or ScriptHandler()
    producer = producer or FakeTransactionalProducer()
    control = FakeControl(committed_source=producer.offsets)
    fatal: list[str] = []
    values: dict[str, object] = {"exactly_once": True, "commit_interval_s": 0.005, **overrides}
    dispatcher = Dispatcher(settings(**values), handler, sink=producer, control=control, on_fatal=fatal.append)
    dispatcher.start()
    return dispatcher, handler, producer, control, fatal


async def until(what: str, check: object, timeout_s: float = 5.0) -> None:
    assert callable(check)
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.002)


def keys(outputs: Sequence[OutputRecord]) -> list[bytes | None]:
    return [output.key for output in outputs]


@async_test
async def test_outputs_wait_for_the_prefix_and_commit_together_with_their_offsets() -> None:
    handler = ScriptHandler(release=asyncio.Event())
    dispatcher, _, producer, _, _ = make(handler)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    # Offset 0 is slow (blocked); 1 and 2 (other keys) finish first.
    dispatcher.records_arrived([rec(0, "a", block=True), rec(1, "b"), rec(2, "c")])
    await until("1 and 2 handled", lambda: len(handler.order) == 2)
    await asyncio.sleep(0.03)  # several commit intervals pass
    # Finished, but not below the prefix: none of it may be visible, and no offset moved past 0.
    assert producer.visible() == []
    assert all(offset == 0 for t in producer.committed for offset in t.offsets.values())
    handler.release.set()  # type: ignore[union-attr]
    await until("everything committed", lambda: dispatcher.pending == 0)
    last = producer.committed[-1]
    assert keys(last.outputs) == [b"a", b"b", b"c"]  # in offset order, in one transaction …
    assert last.offsets == {(TOPIC, 0): 3}  # … with the offsets that say they are done
    # A crash now: the next owner runs offset 3 alone first; nothing past 3 was handled.
    assert last.ledgers[(TOPIC, 0)] == CrashLedger(3, 1, None)
    await dispatcher.close()


@async_test
async def test_an_aborted_transaction_is_redone_and_each_output_is_committed_once() -> None:
    before = metric("srs_agent_transactions_total", agent="unit", outcome="aborted")
    dispatcher, handler, producer, _, fatal = make(producer=FakeTransactionalProducer(fail_commits=2))
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(i, f"k{i}") for i in range(5)])
    await until("everything committed", lambda: dispatcher.pending == 0)
    assert keys(producer.visible()) == [f"k{i}".encode() for i in range(5)]
    assert producer.offsets() == {(TOPIC, 0): 5}
    assert producer.aborted == 2 and fatal == []
    assert metric("srs_agent_transactions_total", agent="unit", outcome="aborted") - before == 2
    assert all(n == 1 for n in handler.attempts.values())  # redone from what was held: no handler ran twice
    await dispatcher.close()


@async_test
async def test_an_output_kafka_refuses_for_good_sends_its_input_to_the_dead_letter_topic_instead() -> None:
    producer = FakeTransactionalProducer(refuse_key=b"huge")
    dispatcher, _, _, _, _ = make(producer=producer)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "a"), rec(1, "huge"), rec(2, "b")])
    await until("everything committed", lambda: dispatcher.pending == 0)
    visible = producer.visible()
    assert [(o.topic, o.key) for o in visible] == [("out", b"a"), ("dlq", b"huge"), ("out", b"b")]
    envelope = json.loads(visible[1].value)
    assert envelope["error"]["class"] == "too_large"
    assert producer.offsets() == {(TOPIC, 0): 3}
    assert producer.report_threads and not {"MainThread"} & producer.report_threads  # served by the flush
    await dispatcher.close()


@async_test
async def test_a_dead_letter_goes_out_in_the_transaction_of_its_offset() -> None:
    dispatcher, _, producer, _, _ = make()
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "a", permanent=True), rec(1, "b")])
    await until("everything committed", lambda: dispatcher.pending == 0)
    assert [(o.topic, o.key) for o in producer.visible()] == [("dlq", b"a"), ("out", b"b")]
    assert producer.offsets() == {(TOPIC, 0): 2}
    await dispatcher.close()


@async_test
async def test_a_revoked_partition_commits_its_prefix_and_tells_the_next_owner_what_to_redo() -> None:
    handler = ScriptHandler(release=asyncio.Event())
    dispatcher, _, producer, _, _ = make(handler, revoke_drain_timeout_s=0.05, commit_interval_s=60)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "a"), rec(1, "stuck", block=True), rec(2, "b")])
    await until("0 and 2 handled", lambda: len(handler.order) == 2)
    # Offset 1 never finishes within the drain: 0 is committed with its output, 2 is not.
    assert await dispatcher.partitions_revoked([(TOPIC, 0)]) == []
    assert keys(producer.visible()) == [b"a"]
    assert producer.committed[-1].ledgers[(TOPIC, 0)] == CrashLedger(1, 0, 2)  # clean end; handled up to 2
    assert dispatcher.pending == 0

    # The next owner redoes 1 and 2 (and counts them as the price of the rebalance), once.
    before = metric("srs_agent_reprocessed_total", agent="unit", reason="rebalance")
    successor, _, successor_producer, _, _ = make()
    successor.partitions_assigned([(TOPIC, 0)], {(TOPIC, 0): CrashLedger(1, 0, 2)})
    successor.records_arrived([rec(1, "stuck"), rec(2, "b"), rec(3, "c")])
    await until("everything committed", lambda: successor.pending == 0)
    assert keys(successor_producer.visible()) == [b"stuck", b"b", b"c"]
    assert metric("srs_agent_reprocessed_total", agent="unit", reason="rebalance") - before == 2
    await successor.close()
    handler.release.set()  # type: ignore[union-attr]
    await dispatcher.close()


@async_test
async def test_a_crash_ledger_that_points_at_a_transaction_marker_still_names_the_head_record() -> None:
    # Upstream writes transactionally: the committed offset 7 is a commit marker; 8 is the head.
    dispatcher, handler, producer, _, _ = make()
    dispatcher.partitions_assigned([(TOPIC, 0)], {(TOPIC, 0): CrashLedger(7, 3)})
    dispatcher.records_arrived([rec(8, "a"), rec(9, "b")])
    await until("everything committed", lambda: dispatcher.pending == 0)
    # Three deaths at the head: it is dead-lettered without running; the next record runs.
    assert [(o.topic, o.key) for o in producer.visible()] == [("dlq", b"a"), ("out", b"b")]
    assert 8 not in handler.attempts
    await dispatcher.close()


async def through_a_new_producer(producer: FakeTransactionalProducer, **overrides: object) -> None:
    """Four records, then a fifth, through ``producer`` as the test made it fail: one new
    producer takes over, every output is visible once, no handler runs twice."""
    dispatcher, handler, _, _, fatal = make(producer=producer, **overrides)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    for batch in (range(4), range(4, 5)):
        dispatcher.records_arrived([rec(i, f"k{i}") for i in batch])
        await until("committed", lambda n=batch.stop: dispatcher.pending == 0 and producer.offsets() == {(TOPIC, 0): n})
    assert keys(producer.visible()) == [f"k{i}".encode() for i in range(5)]
    assert producer.renewals == 1 and fatal == []
    assert all(n == 1 for n in handler.attempts.values())
    await dispatcher.close()


@async_test
async def test_a_fenced_producer_is_replaced_and_its_records_are_committed_once() -> None:
    # A broker outage longer than the transaction timeout: the coordinator aborted the open
    # transaction and fenced the producer. A new one redoes what was held, once.
    await through_a_new_producer(FakeTransactionalProducer(fence_commits=1))


@async_test
async def test_an_abort_that_keeps_timing_out_gets_a_new_producer_and_nothing_is_lost() -> None:
    # A commit refused (abortable), then the abort times out again and again (the broker is
    # away): that producer would refuse every new transaction; a new one takes over.
    producer = FakeTransactionalProducer(fail_commits=1, timeout_aborts=10)
    await through_a_new_producer(producer)
    assert producer.timeout_aborts == 7


@async_test
async def test_a_commit_that_never_returns_is_left_behind_with_its_producer() -> None:
    # librdkafka can block in send_offsets_to_transaction forever once the group coordinator
    # was gone (confluentinc/librdkafka#5456): the engine must not wait with it.
    producer = FakeTransactionalProducer(hang_commits=1)
    try:
        await through_a_new_producer(producer, transaction_call_timeout_s=0.1)
    finally:
        producer.release.set()


@async_test
async def test_a_commit_whose_answer_is_lost_is_not_redone() -> None:
    # The broker committed, but every call timed out (its answers were lost in an outage): the
    # outcome is unknown to the client. The group's committed offsets tell, once a new
    # producer settled the old one's transaction; nothing is redone, nothing is lost.
    producer = FakeTransactionalProducer(unanswered_commits=1)
    await through_a_new_producer(producer)
    assert producer.aborted == 0


@async_test
async def test_a_producer_fenced_again_and_again_stops_the_engine_without_committing() -> None:
    producer = FakeTransactionalProducer(fence_commits=100)
    dispatcher, _, _, _, fatal = make(producer=producer)
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(0, "a")])
    await until("the engine is told", lambda: bool(fatal))
    assert "replaced 3 times without a commit" in fatal[0] and producer.renewals == 3 and producer.visible() == []
    await dispatcher.close()


@async_test
async def test_a_rebalance_that_ends_the_generation_is_waited_out_not_counted_as_failing() -> None:
    dispatcher, handler, producer, control, fatal = make()
    dispatcher.partitions_assigned([(TOPIC, 0)])
    dispatcher.records_arrived([rec(i, f"k{i}") for i in range(3)])
    await until("the first records committed", lambda: dispatcher.pending == 0)
    # Another member joins: the coordinator's generation moves on at once; this member's
    # consumer gets the metadata of the next one when its own rebalance callback runs.
    producer.generation = "generation 2"
    dispatcher.records_arrived([rec(i, f"k{i}") for i in range(3, 6)])
    unready = False
    for _ in range(60):  # ~60 commit intervals: enough for dead_letter_attempts failed rounds
        await asyncio.sleep(0.005)
        unready |= dispatcher.transactions_stuck
    assert producer.aborted == 1, "one round refused; none tried again with the ended generation"
    assert not unready and fatal == []
    control.metadata = "generation 2"
    await until("the rest committed", lambda: dispatcher.pending == 0)
    assert keys(producer.visible()) == [f"k{i}".encode() for i in range(6)]
    assert producer.offsets() == {(TOPIC, 0): 6}
    assert all(n == 1 for n in handler.attempts.values())
    await dispatcher.close()


@async_test
async def test_shutdown_commits_everything_held() -> None:
    dispatcher, handler, producer, _, _ = make(commit_interval_s=60)
    dispatcher.partitions_assigned([(TOPIC, 0), (TOPIC, 1)])
    dispatcher.records_arrived([rec(0, "a"), rec(1, "b"), rec(0, "c", partition=1)])
    await until("all handled", lambda: len(handler.order) == 3)
    assert producer.visible() == [] and dispatcher.pending == 3  # held: the interval has not come
    assert await dispatcher.drain_all(timeout_s=2) == []
    assert sorted(keys(producer.visible())) == [b"a", b"b", b"c"]
    assert producer.offsets() == {(TOPIC, 0): 2, (TOPIC, 1): 1}
    await dispatcher.close()


@async_test
async def test_a_partition_that_never_got_a_record_goes_away_without_an_offset() -> None:
    dispatcher, handler, producer, _, fatal = make(commit_interval_s=60)
    dispatcher.partitions_assigned([(TOPIC, 0), (TOPIC, 1)])
    dispatcher.records_arrived([rec(0, "a")])
    await until("handled", lambda: len(handler.order) == 1)
    assert await dispatcher.drain_all(timeout_s=2) == []
    assert producer.offsets() == {(TOPIC, 0): 1} and fatal == []
    await dispatcher.close()
