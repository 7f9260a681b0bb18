"""The input consumer: a thread that fetches records and bridges rebalances to the loop.

``consume()`` blocks, so it runs on its own thread and hands batches of records to the
event loop. Rebalance callbacks run on that thread too: on revoke it asks the loop to
drain the revoked partitions' in-flight work (the consumer thread waits, which holds the
rebalance until the drain is over), then commits what finished before giving the
partitions up.

Only that thread calls the ``Consumer``: confluent-kafka serializes calls on one
consumer, so a ``store_offsets`` from the loop would wait behind back-to-back
``consume()`` calls. The loop queues its requests (pause, resume, store offsets); the
consumer thread applies them between fetches and while it waits for a drain.

Flow control: the thread stops taking records while ``max_outstanding`` of those it
handed over are not released by the listener yet (records queued for the loop count
too), so a burst cannot pile up in memory; librdkafka keeps the rest prefetched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from agent_runtime.engine.ledger import CrashLedger
from agent_runtime.records import InputRecord, new_input_record
from srs_contracts.kafka_logging import librdkafka_logger

log = logging.getLogger(__name__)

#: (topic, partition)
PartitionId = tuple[str, int]
#: (topic, partition, next offset to read)
PartitionOffset = tuple[str, int, int]
#: How often a consumer that keeps getting records still looks whether its position passed
#: offsets it never delivered (transaction markers) on its other partitions.
POSITION_CHECK_S = 1.0


class ConsumerListener(Protocol):
    """What the consumer tells the engine; every method runs on the event loop."""

    #: How many of the records handed over the listener has let go of (only grows; the
    #: consumer thread reads it to hold back when too many are still held).
    released: int

    def records_arrived(self, records: list[InputRecord]) -> None: ...

    def positions_advanced(self, positions: dict[PartitionId, int]) -> None:
        """The consumer stands past offsets it never delivered (transaction markers, aborted
        records) after the last record it handed over of each partition."""
        ...

    def partitions_assigned(self, partitions: list[PartitionId], ledgers: dict[PartitionId, CrashLedger]) -> None:
        """New partitions, with the crash ledger of each one's committed offset (when there is one)."""
        ...

    def partitions_forgotten(self, partitions: list[PartitionId]) -> None:
        """Partitions gone without a drain (it did not finish in time): drop their state."""
        ...

    def partitions_revoked(self, partitions: list[PartitionId]) -> Coroutine[Any, Any, list[PartitionOffset]]:
        """Drain the partitions; return the offsets to commit before they go."""
        ...

    def partitions_lost(self, partitions: list[PartitionId]) -> Coroutine[Any, Any, None]: ...

    def fail(self, reason: str) -> None: ...


def to_record(message: Any) -> InputRecord:
    """The engine's record of a consumed message (on the consumer thread)."""
    raw_headers = message.headers()
    headers: tuple[tuple[str, bytes], ...] = ()
    if raw_headers:
        # A header may have no value; the record contract says bytes.
        headers = tuple([(name, value if value is not None else b"") for name, value in raw_headers])
    timestamp_type, timestamp = message.timestamp()
    # On the consumer thread, which holds the GIL meanwhile, for every record.
    return new_input_record((
        message.topic(),  # topic
        message.partition(),  # partition
        message.offset(),  # offset
        message.key(),  # key
        message.value(),  # value
        headers,
        timestamp if timestamp_type != 0 else None,  # timestamp_ms
    ))  # fmt: skip


def _partition_ids(partitions: Sequence[Any]) -> list[PartitionId]:
    return [(tp.topic, tp.partition) for tp in partitions]


class InputConsumer:
    """One ``confluent_kafka.Consumer`` in a consumer group, read on its own thread."""

    def __init__(
        self,
        config: Mapping[str, object],
        *,
        topic: str,
        batch_size: int,
        max_outstanding: int,
        revoke_timeout_s: float,
        poll_timeout_s: float = 0.1,
    ) -> None:
        self._topic = topic
        self._listener: ConsumerListener | None = None
        self._batch_size = batch_size
        self._max_outstanding = max_outstanding
        #: Records handed to the listener so far (only this thread writes it).
        self._handed_over = 0
        self._revoke_timeout_s = revoke_timeout_s
        self._poll_timeout_s = poll_timeout_s
        self._consumer = Consumer(
            {**config, "error_cb": self._on_client_error, "logger": librdkafka_logger(f"{__name__}.librdkafka")}
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop_fetching = threading.Event()
        #: Set while closing: close() revokes everything, after the engine committed.
        self._closing = False
        self.joined = threading.Event()
        #: Requests from the loop, applied on the consumer thread: (operation, argument).
        self._requests: queue.SimpleQueue[tuple[str, list[Any]]] = queue.SimpleQueue()
        #: Partitions paused on request (the thread polls faster meanwhile, to resume promptly).
        self._paused: set[tuple[str, int]] = set()
        #: Per partition, the offset after the last record handed over (or the position last
        #: reported past it): what ``_report_skipped`` compares the consumer's position with.
        self._delivered: dict[PartitionId, int] = {}
        self._positions_checked = 0.0
        # Reading committed offsets waits while a crashed member's transaction is open
        # (read_committed asks for stable offsets): up to the transaction timeout.
        self._committed_timeout_s = 30.0
        #: The group metadata as of the last rebalance callback (exactly-once sends it with
        #: every transaction; a stale one is refused by the broker, never wrongly accepted).
        self._group_metadata: object | None = None

    # -- the consumer thread ------------------------------------------------------------

    @property
    def listener(self) -> ConsumerListener:
        assert self._listener is not None, "start() the consumer first"
        return self._listener

    def start(self, loop: asyncio.AbstractEventLoop, listener: ConsumerListener) -> None:
        """Subscribe and start fetching; ``listener`` hears about records and rebalances."""
        self._loop = loop
        self._listener = listener
        self._consumer.subscribe(
            [self._topic], on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost
        )
        self._thread = threading.Thread(target=self._fetch_forever, name="srs-consumer", daemon=True)
        self._thread.start()

    def _call_on_loop(self, callback: Callable[..., object], *args: object) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(callback, *args)

    def _fetch_forever(self) -> None:
        last_consume = time.monotonic()
        try:
            while not self._stop_fetching.is_set():
                self._apply_requests()
                room = self._max_outstanding - (self._handed_over - self.listener.released)
                if room > 0:
                    timeout = self._poll_timeout_s / 5 if self._paused else self._poll_timeout_s
                    # Wait for the first record only (consume(n, timeout) would hold a lone
                    # ticket back until the timeout), then take whatever is prefetched.
                    first = self._consumer.poll(timeout)
                    messages = [] if first is None else [first]
                    if first is not None and min(room, self._batch_size) > 1:
                        messages += self._consumer.consume(min(room, self._batch_size) - 1, 0)
                elif time.monotonic() - last_consume >= self._poll_timeout_s:
                    # Holding back (the engine has enough): still serve rebalance callbacks,
                    # taking at most one record. librdkafka keeps the rest prefetched.
                    messages = self._consumer.consume(1, 0)
                else:
                    time.sleep(0.002)
                    continue
                last_consume = time.monotonic()
                records = []
                for message in messages:
                    error = message.error()
                    if error is None:
                        record = to_record(message)
                        records.append(record)
                        self._delivered[(record.topic, record.partition)] = record.offset + 1
                    else:
                        self._on_consume_error(error)
                if records:
                    self._handed_over += len(records)
                    self._call_on_loop(self.listener.records_arrived, records)
                if not messages or last_consume - self._positions_checked >= POSITION_CHECK_S:
                    self._report_skipped()
        except Exception as e:
            log.exception("consumer thread failed")
            self._call_on_loop(self.listener.fail, f"consumer failed: {type(e).__name__}")

    def _report_skipped(self) -> None:
        """Tell the loop where the consumer stands past what it delivered: a transactional
        topic's markers come after its records, and only the position shows them passed.
        Called when a poll found nothing (and at least every ``POSITION_CHECK_S``): after the
        records it handed over, in the loop's order, so none below a position is unknown there."""
        self._positions_checked = time.monotonic()
        if not self._delivered:
            return
        try:
            positions = self._consumer.position([TopicPartition(t, p) for t, p in self._delivered])
        except KafkaException as e:
            log.debug("reading the consumer's positions failed", extra={"error": str(e)})
            return
        advanced = {}
        for tp in positions:
            key = (tp.topic, tp.partition)
            if tp.error is None and tp.offset > self._delivered.get(key, tp.offset):
                advanced[key] = self._delivered[key] = tp.offset
        if advanced:
            self._call_on_loop(self.listener.positions_advanced, advanced)

    def _on_consume_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._PARTITION_EOF:
            return
        if error.fatal():
            self._call_on_loop(self.listener.fail, f"fatal consumer error: {error.name()}")
        log.warning("consumer error", extra={"error": error.name(), "detail": error.str()})

    def _on_client_error(self, error: KafkaError) -> None:
        if error.fatal() and self._loop is not None:
            self._call_on_loop(self.listener.fail, f"fatal consumer error: {error.name()}")
        log.warning("consumer client error", extra={"error": error.name(), "detail": error.str()})

    def _run_on_loop(self, coroutine: Coroutine[Any, Any, Any], timeout_s: float) -> Any:
        """Run ``coroutine`` on the loop and wait for it, serving the loop's requests meanwhile."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return future.result(0.05)
            except concurrent.futures.TimeoutError:
                # The drain stores offsets and may pause; apply that while we wait.
                self._apply_requests()
                if time.monotonic() > deadline:
                    future.cancel()
                    raise

    def _apply_requests(self, lost: frozenset[PartitionId] = frozenset()) -> None:
        """Apply the loop's queued requests; commits and stores for ``lost`` partitions are
        dropped (another member may own them: a late commit would rewind its position)."""
        while True:
            try:
                operation, argument = self._requests.get_nowait()
            except queue.Empty:
                return
            if lost and operation == "ledger" and (argument[0].topic, argument[0].partition) in lost:
                self._call_on_loop(argument[1], False)
                continue
            if lost and operation == "store":
                argument = [tp for tp in argument if (tp.topic, tp.partition) not in lost]
            try:
                if operation == "ledger":
                    self._commit_ledger(*argument)
                elif operation == "committed":
                    self._read_committed(*argument)
                elif operation == "store":
                    if argument:
                        self._consumer.store_offsets(offsets=argument)
                elif operation == "pause":
                    self._consumer.pause(argument)
                    self._paused.update((tp.topic, tp.partition) for tp in argument)
                else:
                    self._consumer.resume(argument)
                    self._paused.difference_update((tp.topic, tp.partition) for tp in argument)
            except KafkaException as e:
                # Only for a partition revoked meanwhile; its revoke committed what was done.
                log.debug("consumer request failed", extra={"operation": operation, "error": str(e)})

    def _read_committed(
        self, partitions: list[Any], timeout_s: float, result: concurrent.futures.Future[dict[PartitionId, int]]
    ) -> None:
        try:
            committed = self._consumer.committed(partitions, timeout=timeout_s)
        except KafkaException as e:
            result.set_exception(e)
            return
        result.set_result(
            {(tp.topic, tp.partition): tp.offset for tp in committed if tp.offset >= 0 and tp.error is None}
        )

    def _commit_ledger(self, partition: TopicPartition, done: Callable[[bool], None]) -> None:
        try:
            self._consumer.commit(offsets=[partition], asynchronous=False)
            ok = True
        except KafkaException as e:
            log.warning("committing the crash ledger failed", extra={"error": str(e)})
            ok = False
        self._call_on_loop(done, ok)

    def _ledgers(self, partitions: list[Any]) -> dict[PartitionId, CrashLedger]:
        """The crash ledger in each partition's committed offset (none for a new group)."""
        if not partitions:
            return {}
        try:
            committed = self._consumer.committed(partitions, timeout=self._committed_timeout_s)
        except KafkaException as e:
            log.warning("cannot read committed offsets; crash counts start afresh", extra={"error": str(e)})
            return {}
        return {
            (tp.topic, tp.partition): CrashLedger.decode(tp.metadata, tp.offset) for tp in committed if tp.offset >= 0
        }

    def _on_assign(self, _consumer: Any, partitions: list[Any]) -> None:
        # Called on every rebalance, with an empty list too: a member without partitions
        # (more replicas than partitions) is still ready.
        self._group_metadata = self._consumer.consumer_group_metadata()
        ledgers = self._ledgers(partitions)
        self.joined.set()
        log.info("partitions assigned", extra={"partitions": _describe(partitions)})
        self._call_on_loop(self.listener.partitions_assigned, _partition_ids(partitions), ledgers)

    def _on_revoke(self, _consumer: Any, partitions: list[Any]) -> None:
        if self._closing or not partitions:
            return
        self._group_metadata = self._consumer.consumer_group_metadata()
        log.info("partitions revoked; draining", extra={"partitions": _describe(partitions)})
        try:
            # A little longer than the drain itself, which cancels what did not finish.
            offsets = self._run_on_loop(
                self.listener.partitions_revoked(_partition_ids(partitions)), self._revoke_timeout_s + 5
            )
        except Exception as e:  # noqa: BLE001 - nothing committed: the next owner redoes the work
            log.error("draining revoked partitions failed", extra={"error": type(e).__name__})
            offsets = []
            # The loop is stuck (a handler blocks it) or the drain failed: make sure the
            # dispatcher lets the partitions go once it runs again — before any later assignment.
            self._call_on_loop(self.listener.partitions_forgotten, _partition_ids(partitions))
        # Store requests still queued hold older offsets: apply them before the final ones.
        self._apply_requests()
        self.commit(offsets)
        self._partitions_gone(partitions)

    def _on_lost(self, _consumer: Any, partitions: list[Any]) -> None:
        if self._closing or not partitions:
            return
        # Another member may own them already: abandon the work, commit nothing. Not ready
        # again until the group assigns this member anew (possibly nothing).
        self.joined.clear()
        log.warning("partitions lost", extra={"partitions": _describe(partitions)})
        self._apply_requests(lost=frozenset(_partition_ids(partitions)))
        try:
            self._run_on_loop(self.listener.partitions_lost(_partition_ids(partitions)), 30)
        except Exception as e:  # noqa: BLE001 - the work was not committed; it is redone elsewhere
            log.error("abandoning lost partitions failed", extra={"error": type(e).__name__})
        self._partitions_gone(partitions)

    def _partitions_gone(self, partitions: list[Any]) -> None:
        # A paused partition would stay paused should it come back to this consumer, and its
        # delivered offsets describe the old ownership.
        self._paused.difference_update((tp.topic, tp.partition) for tp in partitions)
        for tp in partitions:
            self._delivered.pop((tp.topic, tp.partition), None)
        try:
            self._consumer.resume(partitions)
        except KafkaException as e:
            log.debug("resume of revoked partitions failed", extra={"error": str(e)})

    # -- called from the event loop ---------------------------------------------------------

    def group_metadata(self) -> object | None:
        """The consumer's group metadata as of the last rebalance (None before the first)."""
        return self._group_metadata

    def committed_offsets(
        self, partitions: list[PartitionId], timeout_s: float
    ) -> concurrent.futures.Future[dict[PartitionId, int]]:
        """The group's committed offsets of ``partitions``, read on the consumer thread (a
        ``committed()`` call while another thread polls the same consumer hangs, past its
        timeout). Stable: an open transaction's offsets are waited for (read_committed)."""
        result: concurrent.futures.Future[dict[PartitionId, int]] = concurrent.futures.Future()
        self._requests.put(("committed", [[TopicPartition(t, p) for t, p in partitions], timeout_s, result]))
        return result

    def pause(self, partitions: Sequence[PartitionId]) -> None:
        self._requests.put(("pause", [TopicPartition(t, p) for t, p in partitions]))

    def resume(self, partitions: Sequence[PartitionId]) -> None:
        self._requests.put(("resume", [TopicPartition(t, p) for t, p in partitions]))

    def store_offsets(self, offsets: Sequence[PartitionOffset]) -> None:
        """Mark offsets for the next (automatic) commit.

        Their ledger says one death: should this process die, the next owner of the
        partition runs the head record alone first (see ``ledger``).
        """
        self._requests.put(("store", [TopicPartition(t, p, o, metadata=_ledger(o, 1)) for t, p, o in offsets]))

    def commit_ledger(
        self, partition: PartitionId, offset: int, ledger: CrashLedger, done: Callable[[bool], None]
    ) -> None:
        """Commit ``offset`` with ``ledger`` synchronously on the consumer thread; ``done(ok)`` on the loop."""
        topic, number = partition
        self._requests.put(("ledger", [TopicPartition(topic, number, offset, metadata=ledger.encode()), done]))

    # -- shutdown, once the consumer thread has ended -------------------------------------------

    def stop_fetching(self) -> None:
        self._stop_fetching.set()

    def join(self, timeout_s: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)

    def commit(self, offsets: Sequence[PartitionOffset]) -> None:
        """Store and commit ``offsets`` synchronously (does nothing for an empty list).

        Stored too: with automatic commits, librdkafka commits the *stored* offsets when a
        partition goes away, and an older stored offset would undo this commit.
        """
        if not offsets:
            return
        # A clean end: nobody died here.
        partitions = [TopicPartition(t, p, o, metadata=_ledger(o, 0)) for t, p, o in offsets]
        try:
            self._consumer.store_offsets(offsets=partitions)
        except KafkaException as e:
            log.warning("storing offsets failed", extra={"error": str(e)})
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
            log.info("offsets committed", extra={"partitions": ",".join(f"{t}[{p}]@{o}" for t, p, o in offsets)})
        except KafkaException as e:
            log.error("commit failed", extra={"error": str(e)})

    def close(self) -> None:
        """Leave the group. Commit first: closing revokes without draining."""
        self._closing = True
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as e:
            log.warning("closing the consumer failed", extra={"error": str(e)})


def _ledger(offset: int, deaths: int) -> str:
    return CrashLedger(offset, deaths).encode()


def _describe(partitions: Sequence[Any]) -> str:
    return ",".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
