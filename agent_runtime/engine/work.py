"""Records in flight: their states, the lanes that order them, the partitions that own them.

A partition's records are split into lanes by key (a lane runs one record at a time);
a record (:class:`Work`) moves through :class:`State` only by :meth:`Work.move_to`.
Plain data: the dispatcher and its helpers decide, these classes remember.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import Sequence
from typing import Final

from agent_runtime.engine.consumer import PartitionId
from agent_runtime.engine.ledger import CrashLedger
from agent_runtime.engine.offsets import OffsetTracker
from agent_runtime.records import InputRecord, OutputRecord
from agent_runtime.traceparent import TraceContext


class State(enum.IntEnum):
    """Where a record is in its life; :meth:`Work.move_to` is the only way to change it."""

    QUEUED = enum.auto()
    RUNNING = enum.auto()  # the handler runs
    ACKING = enum.auto()  # outputs produced, acknowledgements outstanding
    RETRY_WAIT = enum.auto()  # a backoff before the next attempt
    DEAD_LETTERING = enum.auto()  # the dead letter is produced, acknowledgement outstanding
    DEAD_LETTER_WAIT = enum.auto()  # a backoff before writing the dead letter again
    HELD = enum.auto()  # exactly-once: outputs (or the dead letter) held for the next transaction
    DONE = enum.auto()
    ABANDONED = enum.auto()  # the partition went away first: uncommitted, redelivered


#: Work a drain waits for; the waiting states are abandoned at once.
ACTIVE: Final = frozenset({State.RUNNING, State.ACKING, State.DEAD_LETTERING})


class Partition:
    """Per-partition state while this process owns the partition."""

    __slots__ = (
        "active", "closing", "committed", "condemned", "drained", "handled", "head", "held", "id", "lanes", "ledger",
        "opening", "paused", "redo_reason", "redo_until", "staged", "suspect", "suspect_released", "tracker",
        "uncommitted",
    )  # fmt: skip

    def __init__(self, partition: PartitionId, ledger: CrashLedger | None = None) -> None:
        self.id = partition
        #: What the committed offset says about crashes at the head record (None: nothing yet).
        self.ledger = ledger
        #: Lanes that may not start yet: until this process's crash ledger is committed, and in
        #: suspect mode (the head record runs alone). None: the partition runs freely.
        self.held: list[Lane] | None = []
        #: Suspect mode: the offset of the head record that must run alone.
        self.suspect: int | None = None
        #: The suspect crashed ``crash_loop_limit`` processes: dead-letter it, do not run it.
        self.condemned = False
        #: The first record arrived; the ledger commit is on its way.
        self.opening = False
        #: The ledger is committed: the suspect may run (alone).
        self.suspect_released = False
        #: The first offset this process saw (the committed position when it got the partition).
        self.head: int | None = None
        self.tracker = OffsetTracker()
        self.lanes: dict[object, Lane] = {}
        self.paused = False
        #: Revoked or stopping: no record starts, waiting ones are abandoned (uncommitted).
        self.closing = False
        #: Records in an ``ACTIVE`` state; a drain waits for zero.
        self.active = 0
        self.drained: asyncio.Event | None = None
        #: Exactly-once: records held for a transaction (finished, not committed), by offset …
        self.uncommitted: dict[int, Work] = {}
        #: … the offset the last transaction committed …
        self.committed: int | None = None
        #: … the position up to which outputs are in Kafka (committed, or in the open transaction) …
        self.staged: int | None = None
        #: … and the highest offset whose handler finished here (the next owner redoes up to it).
        self.handled: int | None = None
        #: An earlier owner handled records up to this offset without committing them (the
        #: ledger's ``seen``); they are handled again here, counted with ``redo_reason``.
        self.redo_until: int | None = None
        self.redo_reason = ""


class Lane:
    """The records of one key in one partition, in offset order."""

    __slots__ = ("key", "partition", "queue", "scheduled")

    def __init__(self, key: object, partition: Partition) -> None:
        self.key = key
        self.partition = partition
        self.queue: deque[Work] = deque()
        #: In the ready queue or busy with its head record.
        self.scheduled = False


class Work:
    """One input record and where it is in its life."""

    __slots__ = (
        "arrived", "attempts", "dead_letter", "dead_letter_failures", "delivered", "expected", "failure", "lane",
        "late", "outputs", "producing", "record", "span", "staged_outputs", "state", "stuck", "timer", "worker",
    )  # fmt: skip

    def __init__(self, record: InputRecord, span: TraceContext, lane: Lane) -> None:
        self.record = record  # as the handler sees it: with a traceparent header
        self.span = span  # this process's span; outputs carry it
        self.lane = lane
        self.arrived = time.monotonic()
        #: Changed only through :meth:`move_to`.
        self.state = State.QUEUED
        self.attempts = 0
        # The current round of deliveries (outputs, or the dead letter).
        self.expected = 0
        self.delivered = 0
        self.failure: Exception | None = None
        self.dead_letter: OutputRecord | None = None
        self.dead_letter_failures = 0
        #: Exactly-once: what the next transaction produces for this record (HELD), and how
        #: many of them are in the open transaction already.
        self.outputs: Sequence[OutputRecord] = ()
        self.staged_outputs = 0
        #: Outputs are still being handed to the producer: the input is not complete yet even
        #: if every output handed over so far is acknowledged.
        self.producing = False
        #: Counted in ``Dispatcher.stuck_dead_letters``.
        self.stuck = False
        #: The current attempt missed its deadline (its handler was cancelled for it).
        self.late = False
        self.timer: asyncio.TimerHandle | None = None
        self.worker: asyncio.Task[None] | None = None

    def move_to(self, state: State) -> None:
        """Every state change goes through here: it keeps the partition's count of active
        records, which a drain waits on, true."""
        partition = self.lane.partition
        was_active, is_active = self.state in ACTIVE, state in ACTIVE
        self.state = state
        if was_active and not is_active:
            partition.active -= 1
            if partition.active == 0 and partition.drained is not None:
                partition.drained.set()
        elif is_active and not was_active:
            partition.active += 1

    def log_fields(self, key_field: str, fields: dict[str, object]) -> dict[str, object]:
        """Log fields that say which record this is (never its payload)."""
        record = self.record
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return {
            "trace_id": self.span.trace_id, key_field: key,
            "partition": record.partition, "offset": record.offset, **fields,
        }  # fmt: skip


class Unkeyed:
    """Lane key of a record without a key: such records are not ordered among themselves."""

    __slots__ = ()
