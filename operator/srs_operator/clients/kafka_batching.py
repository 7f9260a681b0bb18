"""Batching of Kafka admin requests: many single-topic requests leave as one admin call.

Requests that arrive within a few milliseconds — e.g. from hundreds of TicketTopics
reconciled at once — go to Kafka as *one* request (one DescribeTopics, one CreateTopics,
…) and each caller awaits only its own topic's result. That, not a bigger process, is
what lets a thousand topics become Ready within a minute. The admin client
(:mod:`~srs_operator.clients.kafka_admin`) has one :class:`Coalescer` per operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from srs_operator import metrics

log = logging.getLogger(__name__)

Request = TypeVar("Request")


@dataclass
class _Pending(Generic[Request]):
    request: Request
    waiters: list[asyncio.Future[Any]]


@dataclass(frozen=True)
class BatchLimits:
    """How long a request waits for others to join its batch, and the most a batch carries."""

    window: float
    max_batch: int


@dataclass
class BatchStats:
    """How many admin requests went to Kafka, and for how many topics."""

    calls: int = 0
    items: int = 0


class Coalescer(Generic[Request]):
    """Turns many single-topic requests into one admin call per ``window``.

    ``issue`` makes the admin call for a batch and returns one ``concurrent.futures.Future``
    per key; librdkafka completes them from its own thread and the result is handed back to
    the event loop. With ``dedupe``, requests for a key already waiting share its result
    (describes); otherwise a second request for the key goes into the next batch (alters).
    """

    def __init__(
        self,
        name: str,
        issue: Callable[[Sequence[Request]], Mapping[str, Future[Any]]],
        key: Callable[[Request], str],
        limits: BatchLimits,
        *,
        dedupe: bool,
    ) -> None:
        self.name = name
        self.stats = BatchStats()
        self._issue = issue
        self._key = key
        self._window = limits.window
        self._max_batch = limits.max_batch
        self._dedupe = dedupe
        self._pending: dict[str, _Pending[Request]] = {}
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, request: Request) -> Any:
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Any] = loop.create_future()
        key = self._key(request)
        pending = self._pending.get(key)
        if pending is not None and not self._dedupe:
            self.flush()
            pending = None
        if pending is None:
            self._pending[key] = _Pending(request, [waiter])
        else:
            pending.waiters.append(waiter)
        if len(self._pending) >= self._max_batch:
            self.flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._window, self.flush)
        return await waiter

    def flush(self) -> None:
        """Send what is waiting now (called by the timer, or when a batch is full)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, {}
        if not batch:
            return
        loop = asyncio.get_running_loop()
        try:
            futures = self._call(list(batch.values()))
        except Exception as exc:  # noqa: BLE001 - the client refused the whole batch
            if len(batch) == 1:
                _fail(batch.values(), exc)
                return
            # One bad request must not fail its neighbours: retry them one by one.
            log.debug("admin batch %s refused (%s); sending its requests one by one", self.name, exc)
            futures = {}
            for key, pending in batch.items():
                try:
                    futures.update(self._call([pending]))
                except Exception as single_exc:  # noqa: BLE001 - reported to that caller only
                    _fail([pending], single_exc)
                    futures.pop(key, None)
        for key, pending in batch.items():
            future = futures.get(key)
            if future is None:
                if not all(w.done() for w in pending.waiters):
                    _fail([pending], RuntimeError(f"Kafka admin {self.name}: no result for {key}"))
                continue
            future.add_done_callback(functools.partial(_hand_back, loop, pending.waiters))

    def _call(self, batch: Sequence[_Pending[Request]]) -> Mapping[str, Future[Any]]:
        self.stats.calls += 1
        self.stats.items += len(batch)
        metrics.KAFKA_ADMIN_CALLS.labels(self.name).inc()
        metrics.KAFKA_ADMIN_TOPICS.labels(self.name).inc(len(batch))
        return self._issue([p.request for p in batch])


def _fail(pendings: Collection[_Pending[Any]], exc: BaseException) -> None:
    for pending in pendings:
        for waiter in pending.waiters:
            if not waiter.done():
                waiter.set_exception(exc)


def _hand_back(loop: asyncio.AbstractEventLoop, waiters: list[asyncio.Future[Any]], future: Future[Any]) -> None:
    """Runs in librdkafka's thread: move the result onto the event loop."""
    with contextlib.suppress(RuntimeError):  # the loop closed while Kafka was answering
        loop.call_soon_threadsafe(_deliver, waiters, future)


def _deliver(waiters: list[asyncio.Future[Any]], future: Future[Any]) -> None:
    exc = future.exception()
    for waiter in waiters:
        if waiter.done():  # the caller was cancelled meanwhile
            continue
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(future.result())
