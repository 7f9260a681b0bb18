"""A keyed, coalescing work queue with per-key exponential backoff (controller-runtime's
workqueue, in asyncio).

Watch events of many kinds (the agent, its Deployment, a Secret, a TicketTopic) only
*name* an agent that needs a look; the queue collapses a burst of them into one
reconcile, never runs one key on two workers at once (a key announced while it runs is
run again afterwards), and retries failures with exponential backoff instead of a
fixed resync.

A worker never dies of a handler's failure: the backoff is computed with a bounded
exponent (``2 ** failures`` overflows a float past 1,024 failures), and anything that
goes wrong in the queue's own bookkeeping is logged and survived. :meth:`WorkQueue.healthy`
reports dead workers all the same, so the liveness probe restarts a process whose queue
stopped working instead of staying green.

A handler that cannot finish *yet* (Kafka unreachable, a deletion that waits for its users)
raises :class:`RetryLater`: the one not-ready signal of every controller. With a ``delay``
the key comes back after exactly that long (no failure counted); without one it backs off
like any failure.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from srs_contracts.backoff import Backoff
from srs_operator import metrics

K = TypeVar("K", bound=Hashable)

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The object cannot be finished now: reconcile it again after ``delay`` seconds
    (``None``: the queue's exponential backoff). Its status already says why."""

    def __init__(self, message: str, delay: float | None = None, *, at_most: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay
        #: A bound on the backoff (e.g. a deadline that comes sooner).
        self.at_most = at_most


class WorkQueue(Generic[K]):
    """Run ``handler(key)`` for every added key on ``workers`` tasks."""

    def __init__(
        self,
        kind: str,
        handler: Callable[[K], Awaitable[None]],
        *,
        workers: int = 4,
        initial_backoff: float = 0.5,
        max_backoff: float = 300.0,
        jitter: float = 0.0,
    ) -> None:
        self.kind = kind
        self._handler = handler
        self._workers = workers
        self._backoff = Backoff(initial_backoff, max_backoff)
        #: ± this fraction on every backoff, so that keys failing together do not retry in lockstep.
        self._jitter = jitter
        # (priority, arrival, key): urgent keys (0) overtake routine ones (1), FIFO within each.
        self._queue: asyncio.PriorityQueue[tuple[int, int, K]] = asyncio.PriorityQueue()
        self._arrivals = itertools.count()
        self._queued: set[K] = set()
        self._running: set[K] = set()
        self._again: set[K] = set()
        self._failures: dict[K, int] = {}
        self._retries: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, key: K, *, urgent: bool = False) -> None:
        """Reconcile ``key`` soon (once, however often it is added meanwhile); ``urgent`` keys
        (e.g. objects never reconciled yet) go before routine ones (status follow-ups, resyncs)."""
        if key in self._running:
            self._again.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait((0 if urgent else 1, next(self._arrivals), key))
            metrics.QUEUE_DEPTH.labels(self.kind).set(len(self._queued))

    def add_after(self, key: K, delay: float) -> None:
        """Reconcile ``key`` after ``delay`` seconds (an earlier pending retry is replaced)."""
        old = self._retries.pop(key, None)
        if old is not None:
            old.cancel()
        self._retries[key] = asyncio.get_running_loop().call_later(delay, self._retry, key)

    def _retry(self, key: K) -> None:
        self._retries.pop(key, None)
        self.add(key)

    def forget(self, key: K) -> None:
        """Drop the key's backoff state (the object is gone)."""
        self._failures.pop(key, None)
        metrics.RETRYING.labels(self.kind).set(len(self._failures))
        handle = self._retries.pop(key, None)
        if handle is not None:
            handle.cancel()

    def __len__(self) -> int:
        return len(self._queued)

    def idle(self) -> bool:
        """Nothing queued, running or waiting out a backoff."""
        return not self._queued and not self._running and not self._retries

    def backoff(self, failures: int) -> float:
        """Delay before retrying a key that failed ``failures`` times in a row (1-based)."""
        if self._jitter:
            return self._backoff.around(max(failures, 1), spread=self._jitter)
        return self._backoff.cap(max(failures, 1))

    def healthy(self) -> tuple[bool, str]:
        """Whether every worker is still running (False with a reason once one has ended)."""
        dead = [t.get_name() for t in self._tasks if t.done()]
        if dead:
            return False, f"{len(dead)} of {len(self._tasks)} {self.kind} workers have stopped: {', '.join(dead)}"
        return True, f"{len(self._tasks)} {self.kind} workers running, {len(self._queued)} keys queued"

    def start(self) -> None:
        for i in range(self._workers):
            self._tasks.append(asyncio.create_task(self._work(), name=f"{self.kind}-worker-{i}"))

    async def stop(self) -> None:
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _work(self) -> None:
        while True:
            _, _, key = await self._queue.get()
            try:
                await self._run(key)
            except asyncio.CancelledError:
                raise
            except Exception:  # the queue's own bookkeeping failed: log it, keep the worker
                log.exception("%s %s: work queue error; the key is retried later", self.kind, key)
                self._running.discard(key)
                self.add_after(key, self._backoff.maximum_s)

    async def _run(self, key: K) -> None:
        self._queued.discard(key)
        metrics.QUEUE_DEPTH.labels(self.kind).set(len(self._queued))
        self._running.add(key)
        try:
            await self._handler(key)
        except asyncio.CancelledError:
            raise
        except RetryLater as e:
            if e.delay is not None:
                log.info("%s %s: not done yet, again in %.1fs: %s", self.kind, key, e.delay, e)
                self.add_after(key, e.delay)
            else:
                self._failed(key, e, at_most=e.at_most)
        except Exception as e:  # noqa: BLE001 - one object's failure must not stop the others
            self._failed(key, e)
        else:
            self._failures.pop(key, None)
            metrics.RETRYING.labels(self.kind).set(len(self._failures))
        finally:
            self._running.discard(key)
            if key in self._again:
                self._again.discard(key)
                self.add(key)

    def _failed(self, key: K, error: Exception, *, at_most: float | None = None) -> None:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        metrics.RETRYING.labels(self.kind).set(len(self._failures))
        delay = self.backoff(failures) if at_most is None else min(self.backoff(failures), at_most)
        log.warning(
            "%s %s: reconcile failed (attempt %d), retrying in %.1fs: %s", self.kind, key, failures, delay, error
        )
        self.add_after(key, delay)
