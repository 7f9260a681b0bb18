"""Draining: a partition that goes away (revoked, lost, shutdown) stops starting records,
lets its active ones finish for a bounded time, and abandons the rest uncommitted (they
are redelivered to the next owner). What to commit is the contiguous completed prefix.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from agent_runtime.engine.consumer import PartitionOffset
from agent_runtime.engine.work import ACTIVE, Partition, State, Work

log = logging.getLogger(__name__)


async def drain(
    partitions: list[Partition], timeout_s: float, abandon: Callable[[Work], None]
) -> list[PartitionOffset]:
    """Stop the partitions; wait for their active records; abandon the rest."""
    for partition in partitions:
        partition.closing = True
        partition.drained = asyncio.Event()
        for lane in partition.lanes.values():
            head = lane.queue[0] if lane.queue else None
            if head is not None and head.state in (State.RETRY_WAIT, State.DEAD_LETTER_WAIT):
                abandon(head)  # waiting for a backoff: not worth holding the drain
        if partition.active == 0:
            partition.drained.set()
    waits = [p.drained.wait() for p in partitions if p.drained is not None and not p.drained.is_set()]
    if waits and timeout_s > 0:
        try:
            async with asyncio.timeout(timeout_s):
                await asyncio.gather(*waits)
        except TimeoutError:
            pass
    else:
        for wait in waits:
            wait.close()
    unfinished = [
        lane.queue[0] for p in partitions for lane in p.lanes.values() if lane.queue and lane.queue[0].state in ACTIVE
    ]
    for work in unfinished:
        abandon(work)
    if unfinished:
        log.warning(
            "abandoned unfinished work; it stays uncommitted and is redelivered", extra={"records": len(unfinished)}
        )
        await asyncio.sleep(0)  # let cancelled handlers unwind
    # A partition where nothing finished still gets its clean-end commit: it resets the
    # crash ledger (stopping is not crashing).
    return [(*p.id, position) for p in partitions if (position := resume_position(p)) is not None]


def resume_position(partition: Partition) -> int | None:
    """Where the next owner starts: the committable offset, else where this process started."""
    committable = partition.tracker.committable
    return committable if committable is not None else partition.head
