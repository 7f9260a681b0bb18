"""Which input offsets may be committed: the contiguous completed prefix of a partition.

Inputs of one partition finish out of order (different keys run concurrently), but a
Kafka commit means "everything before this offset is done". ``OffsetTracker`` remembers
the offsets in consumption order and only moves the commit position past an offset once
it and every offset before it are done.

Offsets the consumer never delivers — transaction markers, records of aborted
transactions — sit between and after the records of a transactionally written topic. A
position just past the last record would leave the marker behind it uncommitted forever:
a lag of one per partition that never drains (an autoscaler on lag never scales to zero,
a lag alert never clears). ``skip_to`` moves the position past them once the consumer
says it did.
"""

from __future__ import annotations

from collections import deque


class OffsetTracker:
    """The commit position of one partition.

    ``track`` every consumed offset in consumption order; ``complete`` it when all of its
    outputs are acknowledged. ``committable`` is the offset to commit (the next one to
    read), or None when nothing has completed yet.
    """

    def __init__(self) -> None:
        #: Tracked offsets not yet behind the commit position, in order, and as a set.
        self._outstanding: deque[int] = deque()
        self._outstanding_set: set[int] = set()
        self._completed: set[int] = set()
        self._committable: int | None = None
        self._last_tracked: int | None = None
        #: Where the consumer stands past the last tracked offset (``skip_to``), applied
        #: once everything tracked is done.
        self._skip: int | None = None

    @property
    def committable(self) -> int | None:
        """The next offset to consume after the contiguous completed prefix."""
        return self._committable

    @property
    def pending(self) -> int:
        """Tracked offsets that are not completed yet."""
        return len(self._outstanding) - len(self._completed)

    def track(self, offset: int) -> None:
        """Remember a consumed offset; offsets must arrive in increasing order."""
        if self._last_tracked is not None and offset <= self._last_tracked:
            raise ValueError(f"offset {offset} tracked after {self._last_tracked}: offsets must increase")
        self._last_tracked = offset
        if self._skip is not None and offset >= self._skip:
            self._skip = None
        self._outstanding.append(offset)
        self._outstanding_set.add(offset)

    def complete(self, offset: int) -> bool:
        """Mark ``offset`` done; return True when the commit position moved."""
        outstanding = self._outstanding
        if not self._completed and outstanding and outstanding[0] == offset:
            # The oldest offset, nothing completed after it: records finishing in order (the
            # usual case, once per record) move the position by one.
            outstanding.popleft()
            self._outstanding_set.discard(offset)
            self._committable = offset + 1
            if not outstanding and self._skip is not None:
                self._skip_now()  # markers after the last record (see skip_to)
            return True
        if offset in self._completed or offset not in self._outstanding_set:
            raise ValueError(f"offset {offset} is not outstanding")
        self._completed.add(offset)
        moved = False
        # Gaps between tracked offsets (compaction, transaction markers) are fine: the
        # position only ever points just past an offset that was really processed.
        while self._outstanding and self._outstanding[0] in self._completed:
            done = self._outstanding.popleft()
            self._outstanding_set.discard(done)
            self._completed.discard(done)
            self._committable = done + 1
            moved = True
        if not self._outstanding and self._skip is not None:
            moved = self._skip_now() or moved
        return moved

    def skip_to(self, position: int) -> bool:
        """The consumer's position is ``position`` though it delivered nothing at or after the
        last tracked offset + 1: the offsets in between are not records (transaction markers,
        aborted records). The commit position moves there once every tracked offset is done;
        True when it moved now. Ignored before anything was tracked (the position is then
        where this owner started)."""
        if self._last_tracked is None or position <= self._last_tracked + 1:
            return False
        self._skip = position
        return not self._outstanding and self._skip_now()

    def _skip_now(self) -> bool:
        skip, self._skip = self._skip, None
        if skip is None or (self._committable is not None and skip <= self._committable):
            return False
        self._committable = skip
        return True
