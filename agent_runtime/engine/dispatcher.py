"""The dispatcher: many inputs in flight, order per key, offsets only after acknowledgement.

Records of one partition are split into *lanes* by key. A lane runs its records one at a
time — handler, produce, Kafka's acknowledgement, next record — so outputs of one key
keep their order, retries included. Different lanes run concurrently: ``concurrency``
worker tasks take lanes from the ready queue and run their head record's handler; the
outputs are produced with a delivery callback and the worker moves on. The rest of a
record's life (acknowledgement, retry after a backoff, dead letter) is driven by
callbacks, so a record costs no task or future of its own — buffered or in flight —
which keeps the engine near the speed of a hand-written consume → produce loop.

Every handler attempt has a deadline (``handler_timeout_s``); a miss is a failed attempt,
and the dead letter after the last one says ``timeout``. A handler that cannot be cut
(it ignores cancellation) turns ``/healthz`` red once it overran by ``handler_overrun_s``.
Kafka errors that no retry can fix — a record too large, an authorization failure, an
invalid record — end the attempt for good (``too_large`` / ``permanent``). A dead letter is
cut to fit the dead-letter topic; one that still cannot be written after
``dead_letter_attempts`` makes the engine not ready (it keeps trying, the offset stays).

Around it: :mod:`~agent_runtime.engine.work` (the records in flight and their states; every
state change through ``Work.move_to``), :mod:`~agent_runtime.engine.deliveries` (outputs
handed over and acknowledged), :mod:`~agent_runtime.engine.deadletters` (writing dead
letters) and :mod:`~agent_runtime.engine.draining` (revokes, losses, shutdown).

When a record is done (outputs acknowledged, or dead-lettered and acknowledged), its
offset completes in the partition's ``OffsetTracker`` and the contiguous completed
prefix is stored for the next commit. Exactly-once (the default): nothing is produced
when a handler finishes; its outputs are *held* and the lane moves on, and
:mod:`~agent_runtime.engine.transactions` commits held outputs together with the
prefix's offsets; a record is done when its transaction committed. Backpressure: a partition with too many
unfinished records is paused (resumed at half the mark). The process as a whole is held
back by the consumer, which stops taking records from its fetch queue while too many of
those it handed over are not ``released`` yet — cheaper than pausing every partition,
which throws librdkafka's prefetched records away and fetches them again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, Protocol

from agent_runtime import logs, metrics
from agent_runtime.engine.consumer import PartitionId, PartitionOffset
from agent_runtime.engine.deadletter import (
    ErrorClass,
    error_class_of,
)
from agent_runtime.engine.deadletters import DeadLetterWriter
from agent_runtime.engine.deliveries import OutputDeliveries
from agent_runtime.engine.draining import drain
from agent_runtime.engine.ledger import CrashLedger
from agent_runtime.engine.producer import OutputSink, permanent_error_class
from agent_runtime.engine.settings import EngineSettings
from agent_runtime.engine.transactions import TransactionalCommitter, TransactionalSink
from agent_runtime.engine.work import Lane, Partition, State, Unkeyed, Work
from agent_runtime.records import Handler, InputRecord, OutputRecord, PermanentError
from agent_runtime.traceparent import (
    TRACEPARENT,
    derived_trace,
    parse_traceparent,
    set_current_trace_id,
)
from srs_contracts.backoff import Backoff

log = logging.getLogger(__name__)

#: Error messages of transient failures go to logs; keep them short (they may echo input).
_MAX_LOGGED_ERROR: Final = 200
#: Handlers that never suspend (CPU-bound, like the offline classifier) give the event loop
#: back once a loop turn has run records for this long, whichever worker ran them: delivery
#: reports, offset stores, new records and rebalance drains wait for the next turn. (A count
#: per worker — 32 records — let one turn run concurrency × 32 handlers: seconds.)
_TURN_BUDGET_S: Final = 0.005


class PartitionControl(Protocol):
    """What the dispatcher asks of the consumer."""

    def pause(self, partitions: Sequence[PartitionId]) -> None: ...

    def resume(self, partitions: Sequence[PartitionId]) -> None: ...

    def store_offsets(self, offsets: Sequence[PartitionOffset]) -> None: ...

    def commit_ledger(
        self, partition: PartitionId, offset: int, ledger: CrashLedger, done: Callable[[bool], None]
    ) -> None:
        """Commit ``offset`` with ``ledger`` in its metadata, synchronously; ``done(ok)`` runs on the loop."""
        ...

    def group_metadata(self) -> object | None:
        """The consumer's group metadata as of the last rebalance (None before the first)."""
        ...

    def committed_offsets(
        self, partitions: list[PartitionId], timeout_s: float
    ) -> concurrent.futures.Future[dict[PartitionId, int]]:
        """The group's committed offsets of ``partitions`` (stable ones), when read."""
        ...


class HandlerTimeoutError(Exception):
    """The handler missed its deadline."""


class Dispatcher:
    """Runs a ``Handler`` over consumed records; see the module docstring."""

    def __init__(
        self,
        settings: EngineSettings,
        handler: Handler,
        *,
        sink: OutputSink,
        control: PartitionControl,
        on_fatal: Callable[[str], None],
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._sink = sink
        self._control = control
        self._on_fatal = on_fatal
        self._backoff = Backoff(settings.initial_backoff_s, settings.max_backoff_s)
        self._partitions: dict[PartitionId, Partition] = {}
        self._pending_total = 0
        #: Consumed records this dispatcher let go of (done, dropped, or left to the next
        #: owner); only ever grows. The consumer thread reads it for flow control.
        self.released = 0
        self._paused: set[Partition] = set()
        self._dirty: set[Partition] = set()
        self._store_scheduled = False
        #: Lanes whose head record waits for a worker.
        self._ready: deque[Lane] = deque()
        self._idle_workers: deque[asyncio.Future[None]] = deque()
        #: When the current loop turn began running records (see ``_TURN_BUDGET_S``).
        self._turn_started = 0.0
        self._turn_mark_scheduled = False
        self._workers: list[asyncio.Task[None]] = []
        agent = settings.agent
        self._consumed = metrics.CONSUMED.labels(agent, settings.input_topic)
        #: Handlers running now; read by /metrics when scraped, not counted per record.
        self._running = 0
        metrics.IN_FLIGHT.labels(agent).set_function(lambda: self._running)
        self._paused_gauge = metrics.PAUSED_PARTITIONS.labels(agent)
        self._latency = metrics.PROCESSING_LATENCY.labels(agent)
        self._retried = metrics.RETRIED.labels(agent)
        #: Handlers running now, with their start time (read by the health probe's thread).
        self._started: dict[Work, float] = {}
        self._deliveries = OutputDeliveries(sink, done=self._done, failed=self._failed)
        #: Exactly-once: commits held outputs with their offsets (None: at-least-once).
        self._committer: TransactionalCommitter | None = None
        if settings.exactly_once:
            if not isinstance(sink, TransactionalSink):
                raise TypeError("exactly-once needs a transactional producer")
            self._committer = TransactionalCommitter(
                settings, sink, owned=self._partitions.values, group_metadata=control.group_metadata,
                committed_offsets=control.committed_offsets,
                committed=self._committed, redo=self._redo, on_fatal=on_fatal,
            )  # fmt: skip
        self._dead_letters = DeadLetterWriter(
            settings, sink, self._done, hold=self._hold if self._committer is not None else None
        )

    # -- life cycle and observations --------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the deadline watch (on the running loop)."""
        self._workers = [
            asyncio.create_task(self._work_forever(), name=f"srs-worker-{n}") for n in range(self._settings.concurrency)
        ]
        self._workers.append(asyncio.create_task(self._watch_deadlines(), name="srs-deadlines"))
        if self._committer is not None:
            self._committer.start()

    async def close(self) -> None:
        """Stop the workers (after ``drain_all``)."""
        if self._committer is not None:
            await self._committer.close()
        for worker in self._workers:
            worker.cancel()
        if self._workers:
            await asyncio.wait(self._workers)
        self._workers = []

    async def _watch_deadlines(self) -> None:
        """Cancel handlers past ``handler_timeout_s``. One task polling the running handlers
        costs nothing per record; a timer per record cost ~20 µs (measured)."""
        timeout = self._settings.handler_timeout_s
        tick = max(0.01, min(1.0, timeout / 8))
        while True:
            await asyncio.sleep(tick)
            overdue = time.monotonic() - timeout
            for work, started in list(self._started.items()):
                if started <= overdue and not work.late and work.worker is not None:
                    work.late = True
                    work.worker.cancel()

    @property
    def pending(self) -> int:
        """Consumed records not finished yet (waiting, running, retrying or unacknowledged)."""
        return self._pending_total

    @property
    def stuck_dead_letters(self) -> int:
        """Dead letters that failed ``dead_letter_attempts`` times and are still not written."""
        return self._dead_letters.stuck

    @property
    def transactions_stuck(self) -> bool:
        """Exactly-once: ``dead_letter_attempts`` transactions in a row failed; nothing moves."""
        return self._committer is not None and self._committer.stuck

    @property
    def dead_letter_max_bytes(self) -> int:
        """The largest dead letter the topic takes (lowered when Kafka says it is too large)."""
        return self._dead_letters.max_bytes

    @property
    def assigned_partitions(self) -> list[PartitionId]:
        """The partitions this dispatcher holds: a revoked one stays until its work drained."""
        return sorted(self._partitions)

    def overrunning_handlers(self) -> int:
        """Handlers still running ``handler_overrun_s`` past their deadline (safe from any thread)."""
        limit = time.monotonic() - self._settings.handler_timeout_s - self._settings.handler_overrun_s
        return sum(1 for started in list(self._started.values()) if started < limit)

    # -- consumer events (on the loop) ------------------------------------------------------

    def partitions_assigned(
        self, partitions: list[PartitionId], ledgers: dict[PartitionId, CrashLedger] | None = None
    ) -> None:
        for partition in partitions:
            known = self._partitions.get(partition)
            if known is not None and known.closing:
                # Left over from a revoke whose drain never finished: that state describes
                # the old ownership (offsets, lanes), not this one. Start afresh.
                self._drop(known)
                known = None
            if known is None:
                self._partitions[partition] = Partition(partition, (ledgers or {}).get(partition))

    def records_arrived(self, records: list[InputRecord]) -> None:
        touched: set[Partition] = set()
        tracked = 0
        for record in records:
            partition = self._partitions.get((record.topic, record.partition))
            if partition is None:
                continue  # not ours (any more): its owner reads it from the committed offset
            try:
                partition.tracker.track(record.offset)
            except ValueError:
                # The consumer went back in the partition: the offsets would no longer say
                # what was done. Commit nothing more for it, and stop.
                log.error("offsets went backwards; giving the partition up", extra={
                    "partition": record.partition, "offset": record.offset,
                })  # fmt: skip
                self._drop(partition)
                self._on_fatal("offsets went backwards")
                continue
            tracked += 1
            touched.add(partition)
            if not partition.closing:  # else: tracked as unfinished, so never committed
                if partition.held is not None and partition.suspect is None and not partition.opening:
                    self._open(partition, record.offset)
                self._enqueue(partition, record)
                if partition.redo_until is not None and record.offset <= partition.redo_until:
                    metrics.REPROCESSED.labels(self._settings.agent, partition.redo_reason).inc()
        self._pending_total += tracked
        self.released += len(records) - tracked
        self._consumed.inc(len(records))
        if tracked < len(records):
            log.warning("records of partitions not assigned here dropped", extra={"records": len(records) - tracked})
        self._wake_workers()
        for partition in touched:
            self._apply_backpressure(partition)

    def positions_advanced(self, positions: dict[PartitionId, int]) -> None:
        """The consumer passed offsets that are not records (transaction markers): once the
        records before them are done, the commit position moves past them too."""
        for partition_id, position in positions.items():
            partition = self._partitions.get(partition_id)
            if partition is None or partition.closing or not partition.tracker.skip_to(position):
                continue
            self._position_moved(partition)

    def fail(self, reason: str) -> None:
        self._on_fatal(reason)

    async def partitions_revoked(self, partitions: list[PartitionId]) -> list[PartitionOffset]:
        """Finish (or, after the drain timeout, abandon) in-flight work; return what to commit."""
        owned = [self._partitions[p] for p in partitions if p in self._partitions]
        try:
            offsets = await drain(owned, self._settings.revoke_drain_timeout_s, self._abandon)
            if self._committer is None:
                return offsets
            # Exactly-once: the offsets go with the held outputs, in the partitions' last transaction.
            await self._committer.commit(owned, final=True)
            return []
        finally:
            # Also when the consumer gave up waiting and cancelled this drain: the partitions
            # are gone either way, and nothing of theirs may run or be stored any more.
            self.partitions_forgotten(partitions)

    def partitions_forgotten(self, partitions: list[PartitionId]) -> None:
        """Give partitions up at once (idempotent): the consumer no longer owns them.

        The consumer calls this after a revoke whose drain it stopped waiting for (the loop
        was blocked); requests reach the loop in order, so it runs before a later assignment.
        """
        for partition_id in partitions:
            partition = self._partitions.get(partition_id)
            if partition is not None:
                self._drop(partition)

    async def partitions_lost(self, partitions: list[PartitionId]) -> None:
        """Abandon the work of partitions another member may own already."""
        owned = [self._partitions[p] for p in partitions if p in self._partitions]
        await drain(owned, 0, self._abandon)
        self._forget(owned)

    async def drain_all(self, timeout_s: float) -> list[PartitionOffset]:
        """Stop starting records; let in-flight ones finish for up to ``timeout_s``.

        Returns the offsets to commit for every owned partition (exactly-once: none, they are
        committed here with the held outputs).
        """
        owned = list(self._partitions.values())
        offsets = await drain(owned, timeout_s, self._abandon)
        if self._committer is None:
            return offsets
        await self._committer.commit(owned, final=True)
        return []

    # -- queueing -----------------------------------------------------------------------------

    def _enqueue(self, partition: Partition, record: InputRecord) -> None:
        headers = record.headers
        # Usually the last header (as srs publishes it), so no search through the others.
        last = headers[-1] if headers else None
        value = last[1] if last is not None and last[0] == TRACEPARENT else record.header(TRACEPARENT)
        incoming = parse_traceparent(value)
        as_handled = record
        if incoming is None:
            incoming = derived_trace(record.topic, record.partition, record.offset)
            # Appended, so ``record.header("traceparent")`` (the last value) is the valid one.
            as_handled = record._replace(headers=(*record.headers, (TRACEPARENT, incoming.header())))
        key = record.key
        lane_key: object = key if key is not None else Unkeyed()
        lane = partition.lanes.get(lane_key)
        if lane is None:
            lane = partition.lanes[lane_key] = Lane(lane_key, partition)
        lane.queue.append(Work(as_handled, incoming.child(), lane))
        if not lane.scheduled:
            lane.scheduled = True
            self._ready.append(lane)

    def _make_ready(self, lane: Lane, *, first: bool = False) -> None:
        if first:
            self._ready.appendleft(lane)  # a retry: it already waited its turn once
        else:
            self._ready.append(lane)
        self._wake_workers()

    def _wake_workers(self) -> None:
        for _ in range(min(len(self._ready), len(self._idle_workers))):
            waiter = self._idle_workers.popleft()
            if not waiter.done():
                waiter.set_result(None)

    async def _next_lane(self) -> Lane:
        while True:
            while self._ready:
                lane = self._ready.popleft()
                if not lane.partition.closing:
                    return lane
                lane.scheduled = False  # never started: the offset stays uncommitted
            waiter = asyncio.get_running_loop().create_future()
            self._idle_workers.append(waiter)
            await waiter

    # -- the workers: run handlers ------------------------------------------------------------

    async def _work_forever(self) -> None:
        worker = asyncio.current_task()
        ready = self._ready
        while True:
            lane = ready.popleft() if ready else await self._next_lane()
            partition = lane.partition
            if partition.closing:
                lane.scheduled = False  # never started: the offset stays uncommitted
                continue
            work = lane.queue[0]
            if partition.held is not None and not self._may_start(partition, work):
                partition.held.append(lane)  # stays scheduled; released with the partition
                continue
            if partition.condemned and work.record.offset == partition.suspect:
                partition.condemned = False
                self._condemn(work)
                continue
            try:
                await self._run_handler(work, worker)
            except asyncio.CancelledError:
                if work.state is not State.ABANDONED:
                    raise  # the dispatcher is closing
                # A drain gave up on this handler; the worker goes on with other lanes.
                if worker is not None:
                    worker.uncancel()
            except Exception:
                # A bug in the engine itself: stop rather than go on with a gap in the offsets.
                log.exception("processing a record failed unexpectedly")
                self._on_fatal("dispatcher failure")
                raise
            if time.monotonic() - self._turn_started >= _TURN_BUDGET_S:
                await self._next_turn()

    async def _next_turn(self) -> None:
        """Give the loop back; the next turn's budget starts once the callbacks queued
        before it (delivery reports, the consumer's batches, a drain) ran."""
        if not self._turn_mark_scheduled:
            self._turn_mark_scheduled = True
            asyncio.get_running_loop().call_soon(self._new_turn)
        await asyncio.sleep(0)

    def _new_turn(self) -> None:
        self._turn_mark_scheduled = False
        self._turn_started = time.monotonic()

    async def _run_handler(self, work: Work, worker: asyncio.Task[None] | None) -> None:
        record = work.record
        # The key goes in as bytes: the log formatter decodes it only when a line is written.
        logs.replace({"trace_id": work.span.trace_id, self._settings.key_log_field: record.key})
        set_current_trace_id(work.span.trace_id)
        work.move_to(State.RUNNING)  # QUEUED → RUNNING: now active
        work.attempts += 1
        work.worker = worker
        self._running += 1
        work.late = False
        # The deadline watch (one task, not a timer per record) cancels this if it runs too long.
        self._started[work] = time.monotonic()
        try:
            outputs = await self._handler.handle(record)
        except PermanentError as e:
            metrics.FAILED.labels(self._settings.agent, e.error_class).inc()
            self._dead_letters.write(work, error_class_of(e.error_class), e.message, type(e).__name__)
            return
        except asyncio.CancelledError:
            if not work.late or work.state is State.ABANDONED:
                raise  # a drain or the dispatcher closing, not the deadline
            if worker is not None:
                worker.uncancel()
            self._failed(work, self._late())
            return
        except Exception as e:  # noqa: BLE001 - any other failure is transient by contract
            self._failed(work, self._late() if work.late else e)
            return
        finally:
            self._running -= 1
            self._started.pop(work, None)
            work.worker = None
        if work.late:
            # It ignored the cancellation and returned anyway: too late counts as a miss.
            self._failed(work, self._late())
            return
        if work.state is State.ABANDONED:
            return
        if self._committer is not None:
            self._hold(work, outputs)
            return
        work.move_to(State.ACKING)  # both active
        work.expected = work.delivered = 0
        work.failure = None
        # Until every output is handed over, acknowledgements of the first ones must not
        # complete the input (librdkafka's queue may fill up part-way).
        work.producing = True
        queued = self._deliveries.produce(work, outputs, 0)
        while queued < len(outputs):
            await asyncio.sleep(0.005)  # librdkafka's queue is full: let deliveries drain
            if work.state is not State.ACKING:
                return  # abandoned meanwhile
            queued = self._deliveries.produce(work, outputs, queued)
        work.producing = False
        self._deliveries.check(work)

    def _late(self) -> HandlerTimeoutError:
        return HandlerTimeoutError(f"the handler did not finish within {self._settings.handler_timeout_s:g}s")

    def _failed(self, work: Work, error: Exception) -> None:
        """A failure of the handler or of a delivery: retry after a backoff, or dead-letter."""
        if work.state is State.ABANDONED:
            return
        reason = type(error).__name__
        permanent = permanent_error_class(error)
        if permanent is not None:
            # Kafka refused an output for good (too large, not authorized, invalid): no retry helps.
            metrics.FAILED.labels(self._settings.agent, permanent).inc()
            self._dead_letters.write(work, error_class_of(permanent), f"{reason}: {error}", reason)
            return
        metrics.FAILED.labels(self._settings.agent, reason).inc()
        if work.attempts >= self._settings.max_attempts:
            last = ErrorClass.TIMEOUT if isinstance(error, HandlerTimeoutError) else ErrorClass.RETRIES_EXHAUSTED
            self._dead_letters.write(work, last, f"{reason}: {error}", reason)
            return
        if work.lane.partition.closing:
            work.move_to(State.ABANDONED)
            return
        delay = self._backoff.delay(work.attempts)
        log.warning("processing failed; retrying", extra=work.log_fields(self._settings.key_log_field, {
            "error": reason, "detail": str(error)[:_MAX_LOGGED_ERROR], "attempt": work.attempts,
            "retry_in_s": round(delay, 3),
        }))  # fmt: skip
        self._retried.inc()
        work.move_to(State.RETRY_WAIT)
        work.timer = asyncio.get_running_loop().call_later(delay, self._retry, work)

    def _retry(self, work: Work) -> None:
        work.timer = None
        if work.state is State.RETRY_WAIT:
            work.move_to(State.QUEUED)
            self._make_ready(work.lane, first=True)

    def _done(self, work: Work) -> None:
        """At-least-once: every output (or the dead letter) of ``work`` is acknowledged."""
        work.move_to(State.DONE)
        self._complete(work)
        self._finish(work, time.monotonic())

    def _hold(self, work: Work, outputs: Sequence[OutputRecord]) -> None:
        """Exactly-once: ``work`` is finished; its outputs wait for the transaction that commits it."""
        work.outputs = outputs
        work.move_to(State.HELD)
        partition = work.lane.partition
        if partition.handled is None or work.record.offset > partition.handled:
            partition.handled = work.record.offset
        assert self._committer is not None
        self._committer.hold(work)
        self._complete(work)
        self._committer.advance(partition)

    def _committed(self, works: list[Work]) -> None:
        """Exactly-once: the transaction with these records' outputs and offsets committed
        (all at once: one pass over a transaction's records, not a call chain per record)."""
        now, done = time.monotonic(), State.DONE
        for work in works:
            work.move_to(done)
            if work.dead_letter is not None:
                self._dead_letters.committed(work)
            self._finish(work, None)
        metrics.observe_each(self._latency, [now - work.arrived for work in works])

    def _redo(self, work: Work, error: Exception) -> None:
        self._dead_letters.redo(work, error)

    def _complete(self, work: Work) -> None:
        """``work``'s offset is complete: its lane goes on with the next record of the key."""
        lane = work.lane
        partition = lane.partition
        lane.queue.popleft()
        if partition.tracker.complete(work.record.offset) and self._committer is None:
            self._position_moved(partition)
        if partition.paused:
            self._relieve(partition)
        if lane.queue and not partition.closing:
            self._make_ready(lane)
        else:
            lane.scheduled = False
            if not lane.queue and partition.lanes.get(lane.key) is lane:
                del partition.lanes[lane.key]

    def _position_moved(self, partition: Partition) -> None:
        """``partition``'s commit position moved: stored for the next commit (at-least-once),
        or staged into the open transaction (exactly-once)."""
        if self._committer is not None:
            self._committer.advance(partition)
            return
        if self._partitions.get(partition.id) is partition:
            self._dirty.add(partition)
            if not self._store_scheduled:
                # Coalesce: one store request per loop iteration, not one per record.
                self._store_scheduled = True
                asyncio.get_running_loop().call_soon(self._store_dirty)

    def _finish(self, work: Work, now: float | None) -> None:
        """``work`` is done for good (its outputs are in Kafka, committed where exactly-once);
        ``now``: observe its latency (None: the caller observes it)."""
        partition = work.lane.partition
        self._pending_total -= 1
        self.released += 1
        if now is not None:
            self._latency.observe(now - work.arrived)
        if work.record.offset == partition.suspect:
            self._suspect_done(partition)

    # -- crash ledger: durable poison detection (see ``ledger``) ----------------------------------

    def _open(self, partition: Partition, head: int) -> None:
        """The first record of a newly owned partition arrived: commit the ledger, then let records start."""
        partition.opening = True
        partition.head = head
        ledger = partition.ledger
        # The committed offset may point at a transaction marker: the head is the first
        # record at or after it.
        applies = ledger is not None and ledger.head <= head
        deaths = ledger.deaths if ledger is not None and applies else 0
        if ledger is not None and applies and ledger.seen is not None and ledger.seen >= head:
            partition.redo_until = ledger.seen
            partition.redo_reason = "crash" if deaths else "rebalance"
            log.info("handling again records an earlier owner handled but did not commit", extra={
                "partition": partition.id[1], "from_offset": head, "to_offset": ledger.seen,
                "reason": partition.redo_reason,
            })  # fmt: skip
        if deaths >= self._settings.crash_loop_limit:
            partition.suspect, partition.condemned = head, True
            log.error("a record crashed or hung the agent repeatedly; dead-lettering it unprocessed", extra={
                "partition": partition.id[1], "offset": head, "deaths": deaths,
            })  # fmt: skip
            self._release(partition, suspect_only=True)
            return
        if deaths:
            partition.suspect = head
            log.warning("the agent ended while this record was unfinished; running it alone first", extra={
                "partition": partition.id[1], "offset": head, "deaths": deaths,
            })  # fmt: skip
        self._commit_ledger(partition, head, deaths + 1, suspect_only=deaths > 0)

    def _commit_ledger(self, partition: Partition, head: int, deaths: int, *, suspect_only: bool) -> None:
        def committed(ok: bool) -> None:
            if not ok:
                log.warning("committing the crash ledger failed; crashes of this record may go uncounted",
                            extra={"partition": partition.id[1], "offset": head})  # fmt: skip
            if self._partitions.get(partition.id) is partition:
                self._release(partition, suspect_only=suspect_only)

        self._control.commit_ledger(partition.id, head, CrashLedger(head, deaths), committed)

    def _may_start(self, partition: Partition, work: Work) -> bool:
        return partition.suspect_released and work.record.offset == partition.suspect

    def _release(self, partition: Partition, *, suspect_only: bool) -> None:
        """Let held lanes start: only the suspect's (``suspect_only``) or all of them."""
        held = partition.held or []
        if suspect_only:
            partition.suspect_released = True
            self._make_ready_held(partition, [lane for lane in held if self._may_start(partition, lane.queue[0])])
            return
        partition.held = None
        partition.suspect = None
        self._make_ready_held(partition, held)

    def _make_ready_held(self, partition: Partition, lanes: list[Lane]) -> None:
        for lane in lanes:
            if partition.held is not None:
                partition.held.remove(lane)
            if not partition.closing and lane.queue:
                self._ready.append(lane)
        self._wake_workers()

    def _condemn(self, work: Work) -> None:
        deaths = work.lane.partition.ledger.deaths if work.lane.partition.ledger is not None else 0
        work.attempts = deaths
        metrics.FAILED.labels(self._settings.agent, ErrorClass.CRASH_LOOP.value).inc()
        self._dead_letters.write(
            work, ErrorClass.CRASH_LOOP,
            f"the record crashed or hung {deaths} agent processes (limit {self._settings.crash_loop_limit})",
            "CrashLoop",
        )  # fmt: skip

    def _suspect_done(self, partition: Partition) -> None:
        """The suspect finished on its own: commit the new position, then let the rest run."""
        committable = partition.tracker.committable
        if committable is None or partition.closing:
            return
        self._commit_ledger(partition, committable, 1, suspect_only=False)

    # -- completion, offsets, backpressure ------------------------------------------------------

    def _store_dirty(self) -> None:
        self._store_scheduled = False
        offsets = []
        for partition in self._dirty:
            committable = partition.tracker.committable
            if committable is not None and self._partitions.get(partition.id) is partition:
                offsets.append((*partition.id, committable))
        self._dirty.clear()
        if offsets:
            self._control.store_offsets(offsets)

    def _apply_backpressure(self, partition: Partition) -> None:
        if partition.tracker.pending >= self._settings.max_pending_per_partition and not partition.paused:
            partition.paused = True
            self._paused.add(partition)
            self._control.pause([partition.id])
            self._paused_gauge.set(len(self._paused))
            log.info("partition paused for backpressure", extra={
                "partition": partition.id[1], "pending": partition.tracker.pending,
            })  # fmt: skip

    def _relieve(self, partition: Partition) -> None:
        if partition.paused and partition.tracker.pending <= self._settings.max_pending_per_partition // 2:
            partition.paused = False
            self._paused.discard(partition)
            if not partition.closing:
                self._control.resume([partition.id])
            self._paused_gauge.set(len(self._paused))
            log.info("partition resumed", extra={"partition": partition.id[1], "pending": partition.tracker.pending})

    # -- draining -------------------------------------------------------------------------------

    def _abandon(self, work: Work) -> None:
        worker = work.worker
        self._dead_letters.unstick(work)
        work.move_to(State.ABANDONED)
        if work.timer is not None:
            work.timer.cancel()
            work.timer = None
        if worker is not None:
            worker.cancel()  # its handler is still running; the worker itself goes on

    def _drop(self, partition: Partition) -> None:
        """Give a partition up at once, committing nothing more for it."""
        partition.closing = True
        for lane in partition.lanes.values():
            if lane.queue and lane.queue[0].state is not State.QUEUED:
                self._abandon(lane.queue[0])
        self._forget([partition])

    def _forget(self, partitions: list[Partition]) -> None:
        for partition in partitions:
            # Records not done: unfinished ones, and (exactly-once) finished ones not committed.
            undone = partition.tracker.pending + len(partition.uncommitted)
            if self._committer is not None:
                for work in partition.uncommitted.values():
                    self._dead_letters.unstick(work)
                self._committer.forget(partition)
            self._pending_total -= undone
            self.released += undone
            self._partitions.pop(partition.id, None)
            self._paused.discard(partition)
            self._dirty.discard(partition)
        self._paused_gauge.set(len(self._paused))
