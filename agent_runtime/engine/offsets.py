"""Which input offsets may be committed: the contiguous completed prefix of a partition.

Inputs of one partition finish out of order (different keys run concurrently), but a
Kafka commit means "everything before this offset is done". ``OffsetTracker`` remembers
the offsets in consumption order and only moves the commit position past an offset once
it and every offset before it are done.
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
        self._outstanding.append(offset)
        self._outstanding_set.add(offset)

    def complete(self, offset: int) -> bool:
        """Mark ``offset`` done; return True when the commit position moved."""
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
        return moved
