"""Is kopf still delivering events? A check for the liveness endpoint.

kopf indexes every object as soon as its watch shows it, but calls the handlers only
once *every* watch has finished its initial listing. A listing that never finishes (a
stream stuck on a vanished namespace, a kind the operator may not list) therefore
leaves the operator deaf while kopf's own liveness stays green. :class:`HandlingLag`
sees exactly that: an object that was indexed but whose event handler has not run
for longer than a bound means the watches are stuck, and the probe fails, so the
kubelet restarts the operator instead of leaving it deaf.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Final

#: Default bound on "indexed but not handled" (``SRS_OPERATOR_WATCH_STALL_SECONDS``).
DEFAULT_STALL_SECONDS: Final = 120.0


class HandlingLag:
    """Objects seen by an index whose event handler has not run yet, and since when."""

    def __init__(self, bound: float = DEFAULT_STALL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.bound = bound
        self._clock = clock
        self._pending: dict[Hashable, float] = {}

    def indexed(self, key: Hashable) -> None:
        """kopf indexed ``key`` (a watch event arrived); its handler should follow shortly."""
        self._pending.setdefault(key, self._clock())

    def handled(self, key: Hashable) -> None:
        """The event handler of ``key`` ran: kopf delivers events."""
        self._pending.pop(key, None)

    def stalled(self) -> tuple[bool, str]:
        """(True, why) when some object has waited for its handler longer than the bound."""
        if not self._pending:
            return False, "no object waits for its handler"
        key, since = min(self._pending.items(), key=lambda item: item[1])
        waited = self._clock() - since
        if waited > self.bound:
            return True, (
                f"{len(self._pending)} watched objects have not reached their handlers; the oldest ({key}) "
                f"has waited {waited:.0f}s (bound {self.bound:.0f}s): kopf's watches are stuck"
            )
        return False, f"{len(self._pending)} objects on their way to their handlers (oldest {waited:.1f}s)"
