"""The engine: consumer → dispatcher → producer, and an orderly life cycle around them.

``Engine.run()`` consumes until ``stop()`` (SIGTERM) or a fatal Kafka error, then shuts
down within the grace period: stop fetching, let in-flight inputs finish, deliver what
is queued, commit the completed prefix of every partition, leave the group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

from confluent_kafka import KafkaException

from agent_runtime import metrics
from agent_runtime.engine.consumer import InputConsumer
from agent_runtime.engine.dispatcher import Dispatcher
from agent_runtime.engine.producer import OutputProducer, dead_letter_limit
from agent_runtime.engine.settings import EngineSettings
from agent_runtime.records import Handler

log = logging.getLogger(__name__)

#: /healthz fails when the event loop has not ticked for this long (it is stuck).
_LOOP_STALL_S = 30.0
_HEARTBEAT_S = 1.0
#: How long the broker may take to register a transactional.id (its first use creates
#: the transaction state topic).
_INIT_TRANSACTIONS_S = 60.0


class Engine:
    """Runs one ``Handler`` over the input topic of ``settings``."""

    def __init__(self, settings: EngineSettings, handler: Handler) -> None:
        self.settings = settings
        self._handler = handler
        self._stop_requested: asyncio.Event | None = None
        self._stop_started: float | None = None
        self._failure: str | None = None
        self._heartbeat = time.monotonic()
        self._running = False
        self._consumer: InputConsumer | None = None
        self.dispatcher: Dispatcher | None = None
        self._overruns_gauge = metrics.HANDLER_OVERRUNS.labels(settings.agent)

    # -- state, readable from any thread ------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Joined the consumer group, not shutting down, and every dead letter could be written."""
        return (
            self._running
            and self._stop_started is None
            and self._consumer is not None
            and self._consumer.joined.is_set()
            and (
                self.dispatcher is None
                or (self.dispatcher.stuck_dead_letters == 0 and not self.dispatcher.transactions_stuck)
            )
        )

    @property
    def healthy(self) -> bool:
        """Not failed, the event loop is ticking, and no handler overran its deadline for good."""
        if self._failure is not None or time.monotonic() - self._heartbeat >= _LOOP_STALL_S:
            return False
        overruns = self.dispatcher.overrunning_handlers() if self.dispatcher is not None else 0
        self._overruns_gauge.set(overruns)
        return overruns == 0

    @property
    def failure(self) -> str | None:
        return self._failure

    # -- control, on the loop -----------------------------------------------------------------

    def stop(self) -> None:
        """Begin a graceful shutdown (idempotent); ``run`` returns within the grace period."""
        if self._stop_started is None:
            self._stop_started = time.monotonic()
            log.info("stopping: draining in-flight inputs", extra={"grace_s": self.settings.shutdown_grace_s})
        if self._stop_requested is not None:
            self._stop_requested.set()

    def fail(self, reason: str) -> None:
        """Stop because something is broken; ``run`` then returns 1."""
        if self._failure is None:
            self._failure = reason
            log.error("engine failed; stopping", extra={"reason": reason})
        self.stop()

    async def run(self) -> int:
        """Consume until stopped; 0 after a graceful stop, 1 after a failure."""
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        if self._stop_started is not None:
            self._stop_requested.set()
        # Dead letters are cut to what the dead-letter topic takes.
        limit = await asyncio.to_thread(
            dead_letter_limit, self.settings.producer_config(), self.settings.dead_letter_topic
        )
        settings = self.settings = dataclasses.replace(
            self.settings, dead_letter_max_bytes=min(limit, self.settings.dead_letter_max_bytes)
        )
        producer = OutputProducer(
            settings.producer_config(), agent=settings.agent, on_fatal=self.fail, transactional=settings.exactly_once
        )
        if settings.exactly_once and not await self._init_transactions(producer):
            return 1
        consumer = self._consumer = InputConsumer(
            settings.consumer_config(),
            topic=settings.input_topic,
            batch_size=settings.consume_batch_size,
            max_outstanding=settings.max_pending_total,
            revoke_timeout_s=settings.revoke_drain_timeout_s,
        )
        dispatcher = self.dispatcher = Dispatcher(
            settings, self._handler, sink=producer, control=consumer, on_fatal=self.fail
        )
        producer.start(loop)
        dispatcher.start()
        consumer.start(loop, dispatcher)
        self._running = True
        heartbeat = asyncio.create_task(self._beat())
        log.info("consuming", extra={"topic": settings.input_topic, "group": settings.group_id,
                                     "concurrency": settings.concurrency})  # fmt: skip
        try:
            await self._stop_requested.wait()
            await self._shut_down(consumer, dispatcher, producer)
        finally:
            self._running = False
            heartbeat.cancel()
        return 1 if self._failure is not None else 0

    async def _init_transactions(self, producer: OutputProducer) -> bool:
        """Register this process's transactional.id (fencing an earlier process with the same one)."""
        try:
            await asyncio.to_thread(producer.init_transactions, _INIT_TRANSACTIONS_S)
        except KafkaException as e:
            self.fail(
                f"exactly-once needs Kafka transactions, and the broker did not start one for "
                f"{self.settings.transactional_id!r}: {e}. Check the broker's transaction.state.log.* settings "
                "and the principal's rights on the transactional id, or set delivery: at-least-once"
            )
            return False
        log.info("transactions ready", extra={"transactional_id": self.settings.transactional_id})
        return True

    async def _beat(self) -> None:
        while True:
            self._heartbeat = time.monotonic()
            await asyncio.sleep(_HEARTBEAT_S)

    async def _shut_down(self, consumer: InputConsumer, dispatcher: Dispatcher, producer: OutputProducer) -> None:
        assert self._stop_started is not None
        grace = self.settings.shutdown_grace_s
        deadline = self._stop_started + grace
        # Committing and leaving the group need a moment after the drain.
        reserve = min(5.0, grace * 0.2)

        def left(margin: float = 0.0) -> float:
            return max(0.0, deadline - margin - time.monotonic())

        consumer.stop_fetching()
        # The consumer thread may be inside a rebalance callback that waits on this loop.
        await asyncio.to_thread(consumer.join, left(reserve))
        offsets = await dispatcher.drain_all(left(reserve))
        await dispatcher.close()
        undelivered = await producer.drain(left(reserve / 2))
        if undelivered:
            # Outputs of abandoned inputs only: their offsets are not committed.
            log.warning("outputs still undelivered at shutdown", extra={"records": undelivered})
        await asyncio.to_thread(consumer.commit, offsets)
        await asyncio.to_thread(consumer.close)
        log.info("stopped", extra={"seconds": round(time.monotonic() - self._stop_started, 3),
                                   "failure": self._failure})  # fmt: skip
