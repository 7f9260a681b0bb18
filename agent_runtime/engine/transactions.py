"""Exactly-once: the outputs of finished inputs and the inputs' offsets, committed together.

A record whose handler finished is *held*: its outputs (or its dead letter) wait in
memory and its offset completes in the partition's ``OffsetTracker``. As soon as the
record joins the partition's contiguous completed prefix, its outputs go into the open
Kafka transaction (``advance``; outputs stream out, not in a burst at commit time). Every
``commit_interval_s`` — sooner once ``commit_max_records`` were held — ``commit`` adds the
prefixes as the group's offsets (with the consumer's group metadata: a member that lost
its partitions to a rebalance is fenced, KIP-447) and commits — once Kafka has every
output of the transaction (a flush on a thread). librdkafka reports refused outputs only
(``delivery.report.only.error``; a report per output was a tenth of the engine's time on
the loop); the flush serves those reports on its thread, which hands them to the loop
before its own end, so a round with a refused output is aborted before any offset joins
it (offsets pending in an open transaction would block every reader of the group's
committed offsets until it ends). Either all of it becomes visible to ``read_committed``
readers, or none of it: a crash at any point leaves no output whose input is processed
again.

Records finished out of order (different keys run concurrently) wait for the prefix to
reach them, so ``concurrency`` and per-key order keep working. A round whose outputs
Kafka refuses is aborted and redone: a record whose output can never be written (too
large, not authorized) goes to the dead-letter topic instead, in a later transaction;
anything transient is retried with backoff. After ``dead_letter_attempts`` failed rounds
in a row the engine reports not ready (``stuck``) while it keeps trying. A round refused
because a rebalance ended this member's generation (a replica joined or left) is aborted
once and the next waits for the consumer's new group metadata: routine scaling is not a
failure (only a wait past ``_NEXT_GENERATION_WAIT_S`` counts as one).

A partition that goes away (revoke, shutdown) gets a last round of its own, after its
running handlers finished: what is held below the prefix is committed with the crash
ledger's clean-end count (``ledger``), records held beyond it are redone by the next
owner — which knows how many from the ledger's ``seen`` and counts them.

A producer that cannot go on (fenced after a broker outage outlived the transaction
timeout, an abort that never finished, a librdkafka call that hangs past its timeout) is
replaced by a new one with the same transactional.id, whose start settles the old one's
last transaction at the coordinator. If that transaction's outcome is unknown (a commit
timed out: the broker may have carried it out), the group's committed offsets are read
first: records below them are done, the rest is staged again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final, Protocol, TypeVar, runtime_checkable

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from agent_runtime import metrics
from agent_runtime.engine.consumer import PartitionId
from agent_runtime.engine.deliveries import with_trace
from agent_runtime.engine.draining import resume_position
from agent_runtime.engine.ledger import CrashLedger
from agent_runtime.engine.producer import DeliveryError, OnRefused, kafka_error
from agent_runtime.engine.settings import EngineSettings
from agent_runtime.engine.work import Partition, State, Work
from srs_contracts.backoff import Backoff

log = logging.getLogger(__name__)

#: A commit or abort answered "retriable" (a timeout): ask again, this many times in all.
_CALL_TRIES: Final = 3
#: Producers replaced in a row (each ended before anything committed) before the process stops.
_MAX_RENEWALS: Final = 3
#: A call still blocked this many times its own timeout is abandoned (a commit is two calls).
_STALL_FACTOR: Final = 2.0
#: What the group coordinator answers offsets sent with the group metadata of a generation
#: that a rebalance has ended (KIP-447): the member is about to join the next one.
_GENERATION_ENDED: Final = frozenset(
    {KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID, KafkaError.REBALANCE_IN_PROGRESS}
)
#: How long a member waits for the group metadata of its next generation, after a commit
#: was refused for an ended one, before such rounds count as failed: a rebalance takes a
#: few seconds; a member that cannot rejoin at all also loses its partitions.
_NEXT_GENERATION_WAIT_S: Final = 30.0

_T = TypeVar("_T")


class _Stalled(Exception):
    """A librdkafka call did not return long after its own timeout (it never will)."""


@runtime_checkable
class TransactionalSink(Protocol):
    """A producer with a transactional.id (``OutputProducer(transactional=True)``)."""

    def produce_in_transaction(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]], on_refused: OnRefused
    ) -> None: ...

    def begin_transaction(self) -> None: ...

    def flush(self, timeout_s: float) -> int:
        """Wait until every queued output is written or refused; how many are still on their way."""
        ...

    def commit_transaction(self, offsets: list[TopicPartition], group_metadata: object, timeout_s: float) -> None: ...

    def abort_transaction(self, timeout_s: float) -> None: ...

    #: It cannot go on (fenced, a fatal error, a transaction that did not end cleanly) …
    ended: bool

    def renew(self, timeout_s: float) -> None:
        """… so a new producer (same transactional.id) replaces it; blocking."""
        ...

    def count_committed(self, per_topic: dict[str, int]) -> None: ...


class _Round:
    """The open transaction's refused outputs, by the record they belong to (on the loop)."""

    __slots__ = ("failures",)

    def __init__(self) -> None:
        self.failures: dict[Work, Exception] = {}

    def refused(self, work: Work, error: Exception) -> None:
        self.failures.setdefault(work, error)


class TransactionalCommitter:
    """Commits held records and their offsets in Kafka transactions; see the module docstring."""

    def __init__(
        self,
        settings: EngineSettings,
        sink: TransactionalSink,
        *,
        owned: Callable[[], Iterable[Partition]],
        group_metadata: Callable[[], object | None],
        committed_offsets: Callable[[list[PartitionId], float], concurrent.futures.Future[dict[PartitionId, int]]],
        committed: Callable[[list[Work]], None],
        redo: Callable[[Work, Exception], None],
        on_fatal: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._sink = sink
        self._owned = owned
        self._group_metadata = group_metadata
        self._committed_offsets = committed_offsets
        self._committed = committed
        self._redo = redo
        self._on_fatal = on_fatal
        self._backoff = Backoff(settings.initial_backoff_s, settings.max_backoff_s)
        self._call_timeout_s = settings.transaction_call_timeout_s
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The open transaction's refused outputs (None: no transaction open) …
        self._open: _Round | None = None
        #: … the partitions whose outputs or offsets it carries …
        self._in_open: dict[Partition, None] = {}
        #: … and whether it must be aborted (it holds outputs of a partition given up meanwhile).
        self._poisoned = False
        #: A transaction is being committed: records that join a prefix meanwhile wait for the next.
        self._committing = False
        #: Records held in owned partitions, waiting for a transaction …
        self.held = 0
        #: … and how many of them were held since the last periodic round.
        self._since_round = 0
        #: Transactions in a row that failed (reset by the next success) …
        self.failures = 0
        #: … and producers replaced since the last success.
        self._renewals = 0
        #: The group metadata a commit was refused with because a rebalance ended its
        #: generation, and since when: no round is tried with it again.
        self._ended_generation: object | None = None
        self._ended_since = 0.0
        #: A producer ended, maybe with its last transaction committed after all: the group's
        #: committed offsets say what is done before anything is redone.
        self._unsettled = False
        self._transactions = metrics.TRANSACTIONS.labels(settings.agent, "committed")
        self._aborted = metrics.TRANSACTIONS.labels(settings.agent, "aborted")
        self._commit_latency = metrics.TRANSACTION_LATENCY.labels(settings.agent)

    @property
    def stuck(self) -> bool:
        """Transactions keep failing: nothing moves until one succeeds."""
        return self.failures >= self._settings.dead_letter_attempts

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._commit_forever(), name="srs-transactions")

    async def close(self) -> None:
        """Stop committing periodically (after the last round of ``drain_all``)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def hold(self, work: Work) -> None:
        """``work`` finished: its ``outputs`` go out with the transaction that commits its offset."""
        work.lane.partition.uncommitted[work.record.offset] = work
        self.held += 1
        # Counted from the last round: records held behind a slow one do not wake it in vain.
        self._since_round += 1
        if self._since_round >= self._settings.commit_max_records:
            self._wake.set()

    def advance(self, partition: Partition) -> None:
        """``partition``'s completed prefix may have moved: the outputs that joined it go into
        the open transaction now (spread out, not in a burst at commit time)."""
        if not (self._committing or self._poisoned or partition.closing):
            self._stage(partition)

    def forget(self, partition: Partition) -> None:
        """The partition is gone: what it holds is redone by the next owner."""
        for work in partition.uncommitted.values():
            if work.state is State.HELD:
                work.move_to(State.ABANDONED)
        self.held -= len(partition.uncommitted)
        partition.uncommitted = {}
        if partition in self._in_open:
            # Its outputs are in the open transaction, and its offsets must not go with them
            # (another member may own it now): that transaction can only be aborted.
            del self._in_open[partition]
            self._poisoned = True

    async def _commit_forever(self) -> None:
        interval = self._settings.commit_interval_s
        started = time.monotonic()
        while True:
            # One round per interval, counted from the start of the last one (a round takes time).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, started + interval - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            self._since_round = 0
            started = time.monotonic()
            if not await self.commit(self._owned()):
                await asyncio.sleep(self._backoff.delay(max(1, self.failures)))

    # -- the open transaction ----------------------------------------------------------------------

    def _stage(self, partition: Partition) -> bool:
        """Produce the outputs of ``partition``'s records that joined its prefix since the last
        call into the open transaction (opening one if needed); False when librdkafka's queue
        is full (the rest waits for the next call)."""
        position = partition.tracker.committable
        start = partition.staged if partition.staged is not None else partition.head
        if position is None or start is None or position <= start:
            return True
        if self._open is None:
            try:
                self._sink.begin_transaction()
            except KafkaException as e:
                # Its last transaction did not end cleanly (an abort that timed out is still
                # pending, say): only a new producer starts from a known state.
                self._end(f"begin_transaction: {e}")
                return True
            self._open = _Round()
        self._in_open[partition] = None
        uncommitted, held = partition.uncommitted, State.HELD  # (an enum member's lookup is slow in 3.11)
        for offset in range(start, position):
            work = uncommitted.get(offset)
            if work is not None and work.state is held and not self._produce(self._open, work):
                partition.staged = offset
                return False
        partition.staged = position
        return True

    def _produce(self, outputs: _Round, work: Work) -> bool:
        span_header = work.span.header()
        on_refused = functools.partial(self._refused_report, outputs, work)
        for index, output in enumerate(work.outputs):
            if index < work.staged_outputs:
                continue  # handed over before the queue filled up
            try:
                self._sink.produce_in_transaction(output.topic, output.key, output.value,
                                                  with_trace(output.headers, span_header), on_refused)  # fmt: skip
            except BufferError:
                return False  # librdkafka's queue is full: the rest of this record next time
            except Exception as e:  # noqa: BLE001 - refused before sending (e.g. too large)
                outputs.refused(work, e)
            work.staged_outputs = index + 1
        return True

    def _refused_report(self, outputs: _Round, work: Work, error: Any, message: Any) -> None:
        """librdkafka's report of an output it gave up on, on whichever thread served it: the
        loop's poller, or the thread of the flush before the commit. Handed to the loop, where
        it arrives before the flush's end does."""
        if error is None:
            return  # a success report: only when the environment turned them back on
        failure = DeliveryError(message.topic() or "", error)
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is closed: the process is ending anyway
            self._loop.call_soon_threadsafe(outputs.refused, work, failure)

    def _end(self, reason: str) -> None:
        """The producer cannot go on (fenced, a fatal error, a call that failed in a way only a
        new producer clears): forget the open transaction; the next round replaces it."""
        if not self._sink.ended:
            log.warning("the transactional producer is replaced", extra={"reason": reason})
        self._sink.ended = True
        self._unsettled = True
        self._forget_open()

    # -- committing ----------------------------------------------------------------------------

    async def commit(self, partitions: Iterable[Partition], *, final: bool = False) -> bool:
        """Commit the open transaction with the offsets of what it holds; True on success (or
        nothing to do). ``final``: ``partitions`` go away; their positions are committed even
        without new records, with the crash ledger's clean-end count."""
        async with self._lock:
            # Outputs are staged by this round only (none while it aborts, renews or commits).
            self._committing = True
            try:
                committed = await self._commit(list(partitions), final)
            finally:
                self._committing = False
            if committed:
                # Records that joined a prefix during the round go into the next transaction now.
                for partition in self._owned():
                    self.advance(partition)
            return committed

    async def _commit(self, partitions: list[Partition], final: bool) -> bool:
        closing = {partition: None for partition in partitions} if final else {}
        if self._sink.ended and not await self._renew():
            return self._failed()
        if self._unsettled and not await self._reconcile():
            return self._failed()
        if self._poisoned:
            await self._abort("it holds outputs of a partition given up", len(self._in_open))
            return self._failed()
        # What joined a prefix while the last transaction committed, or did not fit the queue.
        for partition in partitions:
            if partition.closing and not final:
                continue
            while not self._stage(partition):
                await asyncio.sleep(0.005)  # the queue is full: let deliveries drain
        # The open transaction's partitions, and those going away that have a position at all
        # (one that never got a record has nothing to commit).
        positions = [(p, position) for p in self._in_open if (position := p.staged) is not None]
        positions += [
            (p, position) for p in closing if p not in self._in_open and (position := self._position(p)) is not None
        ]
        if not positions:
            return True
        group_metadata = self._group_metadata()
        if group_metadata is None:
            return False  # not in the group yet
        if group_metadata is self._ended_generation:
            # The consumer has not joined the next generation yet: a rebalance, not a failure
            # (unless it never ends). The open transaction waits; nothing is aborted again.
            if time.monotonic() - self._ended_since < _NEXT_GENERATION_WAIT_S:
                return False
            return self._failed()
        offsets = [
            TopicPartition(p.id[0], p.id[1], position, metadata=CrashLedger(
                position, 0 if p in closing else 1, p.handled).encode())
            for p, position in positions
        ]  # fmt: skip
        started = time.monotonic()
        try:
            if self._open is None:  # a final round with offsets only
                await self._blocking(self._sink.begin_transaction)
                self._open = _Round()
            outputs = self._open
            # Every output written, or refused: a refusal's report reaches the loop before
            # the flush's end does. Offsets join the transaction only after that.
            if not outputs.failures and not await self._flushed():
                self._end("outputs still undelivered after the transaction's flush")
                return self._failed()
            if outputs.failures:  # refused when queued (too large, say), or by Kafka
                await self._redo_refused(outputs)
                return self._failed()
            await self._commit_transaction(offsets, group_metadata)
        except _Stalled as e:
            self._end(f"{e} (a librdkafka hang)")
            return self._failed()
        except KafkaException as e:
            cause = kafka_error(e)
            if cause is not None and cause.fatal():
                # Fenced (the coordinator aborted a transaction that outlived its timeout, or
                # another process took this transactional.id): a new producer redoes it all.
                self._end(cause.name())
            elif cause is not None and cause.retriable():
                # Timed out every time: whether it committed is unknown (an abort now could
                # fail, or race the commit). A new producer settles it at the coordinator.
                self._end(f"commit_transaction: {cause.name()}, outcome unknown")
            else:
                await self._abort(cause.name() if cause is not None else str(e), len(positions))
                if cause is not None and cause.code() in _GENERATION_ENDED:
                    # A rebalance began (a member joined or left): the next round waits for
                    # this member's new group metadata. Routine scaling is no failure, and
                    # must not make the agent unready.
                    if group_metadata is not self._ended_generation:
                        self._ended_generation, self._ended_since = group_metadata, time.monotonic()
                    return False
            return self._failed()
        self._commit_latency.observe(time.monotonic() - started)
        self._transactions.inc()
        self.failures = self._renewals = 0
        self._open, self._in_open = None, {}
        self._settle(positions)
        return True

    def _settle(self, positions: list[tuple[Partition, int]]) -> None:
        """A transaction committed ``positions``: the records held below them are done."""
        per_topic: Counter[str] = Counter()
        done: list[Work] = []
        for partition, position in positions:
            partition.committed = position
            for offset in [offset for offset in partition.uncommitted if offset < position]:
                work = partition.uncommitted.pop(offset)
                done.append(work)
                for output in work.outputs:
                    per_topic[output.topic] += 1
        self.held -= len(done)
        self._sink.count_committed(dict(per_topic))
        held = State.HELD
        self._committed([work for work in done if work.state is held])

    async def _flushed(self) -> bool:
        """Wait (on a thread) until Kafka has every output of the open transaction or refused
        it; False if some are still on their way after ``_CALL_TRIES`` call timeouts (librdkafka
        gives a transactional output up within the transaction timeout)."""
        for _ in range(_CALL_TRIES):
            if not await self._blocking(self._sink.flush, self._call_timeout_s):
                return True
        return False

    async def _redo_refused(self, outputs: _Round) -> None:
        """Kafka refused outputs of the open transaction: abort it; the records whose outputs
        can never be written become dead letters, the others are retried (``redo``)."""
        # Taken first: the abort purges the transaction's other records, and librdkafka reports
        # those too (``_PURGE_QUEUE``); they are not refused, only staged again.
        refused = list(outputs.failures.items())
        await self._abort("an output was refused", len(refused))
        for work, error in refused:
            self._redo(work, error)

    async def _reconcile(self) -> bool:
        """After a producer ended, its last transaction may have committed after all (a commit
        that timed out, or hung): the new producer's start settled it at the coordinator, and
        the group's committed offsets say. Records held below them are done, not redone."""
        partitions = [p for p in self._owned() if p.uncommitted and not p.closing]
        if partitions:
            try:
                answer = self._committed_offsets([p.id for p in partitions], self._call_timeout_s)
                async with asyncio.timeout(_STALL_FACTOR * self._call_timeout_s):
                    offsets = await asyncio.wrap_future(answer)
            except (KafkaException, TimeoutError) as e:
                log.warning("cannot read the committed offsets yet", extra={"error": str(e)})
                return False
            settled: list[tuple[Partition, int]] = []
            for partition in partitions:
                base = partition.committed if partition.committed is not None else partition.head
                position = offsets.get(partition.id)
                if position is not None and base is not None and position > base:
                    settled.append((partition, position))
                    partition.staged = position
            if settled:
                log.warning("the ended producer's last transaction had committed; its records are not redone",
                            extra={"partitions": len(settled)})  # fmt: skip
                self._settle(settled)
        self._unsettled = False
        return True

    @staticmethod
    def _position(partition: Partition) -> int | None:
        """Where the next owner of a partition going away starts (None: it never got a record)."""
        return partition.staged if partition.staged is not None else resume_position(partition)

    async def _abort(self, reason: str, partitions: int) -> None:
        """Abort the open transaction; what it held is staged again by the next one."""
        self._aborted.inc()
        log.warning("transaction aborted; its records are held for the next one",
                    extra={"reason": reason, "partitions": partitions})  # fmt: skip
        if self._open is None or self._sink.ended:
            self._forget_open()
            return
        for attempt in range(1, _CALL_TRIES + 1):
            try:
                await self._blocking(self._sink.abort_transaction, self._call_timeout_s)
            except _Stalled as e:
                self._end(f"{e} (a librdkafka hang)")
                return
            except KafkaException as e:
                error = kafka_error(e)
                if error is not None and error.retriable() and attempt < _CALL_TRIES:
                    continue  # timed out: librdkafka resumes the abort when asked again
                # Still pending, or refused: the producer is in a state only a new one clears.
                self._end(f"abort_transaction: {e}")
                return
            break
        self._forget_open()

    def _forget_open(self) -> None:
        """Nothing of the open transaction counts any more: every held record is staged again."""
        for partition in [*self._in_open, *self._owned()]:
            partition.staged = partition.committed
            for work in partition.uncommitted.values():
                work.staged_outputs = 0
        self._open, self._in_open, self._poisoned = None, {}, False

    async def _renew(self) -> bool:
        """Replace the ended producer (a transaction outlived its timeout in a broker outage,
        a call failed or hung). A new producer that keeps ending before anything committed
        stops the process, and its successor takes over; one that cannot start yet (Kafka
        is away) is tried again with backoff."""
        if self._renewals >= _MAX_RENEWALS:
            self._on_fatal(f"the transactional producer was replaced {_MAX_RENEWALS} times without a commit")
            return False
        log.warning("starting a new transactional producer; held records not yet committed are redone",
                    extra={"held": self.held, "renewal": self._renewals + 1})  # fmt: skip
        self._forget_open()
        try:
            await self._blocking(self._sink.renew, self._call_timeout_s)
        except (KafkaException, _Stalled) as e:
            log.warning("a new transactional producer could not start yet", extra={"error": str(e)})
            return False
        self._renewals += 1
        return True

    def _failed(self) -> bool:
        self.failures += 1
        if self.failures == self._settings.dead_letter_attempts:
            log.error("transactions keep failing; not ready until one commits", extra={"failures": self.failures})
        return False

    async def _commit_transaction(self, offsets: list[TopicPartition], group_metadata: object) -> None:
        for attempt in range(1, _CALL_TRIES + 1):
            try:
                await self._blocking(self._sink.commit_transaction, offsets, group_metadata, self._call_timeout_s)
                return
            except KafkaException as e:
                error = kafka_error(e)
                if error is None or not error.retriable() or attempt == _CALL_TRIES:
                    raise

    async def _blocking(self, call: Callable[..., _T], *args: Any) -> _T:
        """Run a blocking client call on a thread of its own and wait for it, at most
        ``_STALL_FACTOR`` times the call timeout: a call blocked longer is abandoned
        (``_Stalled``; its thread stays blocked inside the producer left behind). If the
        caller is cancelled meanwhile, the call still ends (or is abandoned) before the
        cancellation goes on: the lock stays held until then."""
        done: concurrent.futures.Future[_T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(call(*args))
            except BaseException as e:  # noqa: BLE001 - handed to the waiting coroutine
                done.set_exception(e)

        name = getattr(call, "__name__", "call")
        threading.Thread(target=run, name=f"srs-txn-{name}", daemon=True).start()
        result = asyncio.wrap_future(done)
        deadline = asyncio.get_running_loop().time() + _STALL_FACTOR * self._call_timeout_s
        try:
            async with asyncio.timeout_at(deadline):
                return await asyncio.shield(result)
        except TimeoutError:
            # Left behind: should it ever return, nobody waits for its outcome any more.
            result.add_done_callback(_outcome_dropped)
            raise _Stalled(f"{name} blocked for {_STALL_FACTOR * self._call_timeout_s:.0f} s") from None
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                async with asyncio.timeout_at(deadline):
                    await result
            raise


def _outcome_dropped(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: asyncio would otherwise log it as never retrieved
