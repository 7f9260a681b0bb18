"""The output producer: idempotent, batched, acknowledgements as callbacks on the loop.

``produce`` never waits for the broker and never flushes: records go into librdkafka's
batches (``linger.ms``), and each record's callback runs once Kafka acknowledged it
(``acks=all``) or gave up on it. Delivery reports are served by polling the producer on the event loop
itself — not on a thread — because confluent-kafka runs the Python callback of every
report separately: on a polling thread each one would have to win the GIL back from the
busy loop, which cost most of the engine's throughput. A poller task polls every
millisecond while deliveries are outstanding and every ``idle_poll_s`` otherwise (error
callbacks).

Exactly-once (``transactional``): the same producer with a ``transactional.id``; the
blocking transaction calls (``init_transactions``, ``begin_transaction``,
``commit_transaction`` with the input offsets, ``abort_transaction``) are made from a
worker thread by :mod:`~agent_runtime.engine.transactions`. librdkafka reports only the
outputs it refused (``delivery.report.only.error``): a committed transaction means every
output was written, so a report per output would only be counted. A refused output's
report may be served by the ``flush`` that precedes each commit, on that thread; its
callback (``OnRefused``) only hands it to the loop. Outputs count as produced when their
transaction commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol, cast

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from agent_runtime import metrics
from srs_contracts.kafka_logging import librdkafka_logger

log = logging.getLogger(__name__)


#: Kafka headers of a record, in order (a name may repeat; the last one counts).
Headers = list[tuple[str, bytes]]
#: Called once per record on the loop: None when Kafka acknowledged it, else the error.
OnDelivery = Callable[[Exception | None], None]
#: Exactly-once: librdkafka's ``(error, message)`` for an output it refused, on any thread.
OnRefused = Callable[[Any, Any], None]


class OutputSink(Protocol):
    """Where outputs go (the producer)."""

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Headers, on_delivery: OnDelivery) -> None:
        """Queue a record. ``on_delivery`` runs later on the loop — never inside this call —
        with None once Kafka acknowledged the record, or with the error once it gave up.
        Raises ``BufferError`` when the queue is full."""
        ...


class DeliveryError(Exception):
    """Kafka did not accept an output record (after librdkafka's own retries)."""

    def __init__(self, topic: str, error: Any) -> None:
        name = error.name() if isinstance(error, KafkaError) else type(error).__name__
        super().__init__(f"delivery to {topic} failed: {name}: {error}")
        self.topic = topic
        self.error = error


#: Kafka errors no retry can fix, and the dead-letter class they end in.
_PERMANENT_ERRORS: Final = {
    KafkaError.MSG_SIZE_TOO_LARGE: "too_large",
    KafkaError.RECORD_LIST_TOO_LARGE: "too_large",
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "permanent",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "permanent",
    KafkaError.INVALID_RECORD: "permanent",
    KafkaError.INVALID_MSG: "permanent",
    KafkaError.INVALID_REQUIRED_ACKS: "permanent",
}


def permanent_error_class(error: BaseException) -> str | None:
    """The dead-letter class of a delivery error that retrying cannot fix, else None (transient)."""
    if isinstance(error, DeliveryError):
        kafka_error = error.error
    elif isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        kafka_error = error.args[0]
    else:
        return None
    if not isinstance(kafka_error, KafkaError):
        return None
    return _PERMANENT_ERRORS.get(kafka_error.code())


def dead_letter_limit(config: Mapping[str, object], topic: str, timeout_s: float = 10.0) -> int:
    """The dead-letter topic's ``max.message.bytes`` capped by the producer's own
    ``message.max.bytes`` (just the latter when Kafka does not say: no topic yet, no permission)."""
    producer_limit = int(str(config.get("message.max.bytes", 1_000_000)))
    admin_config = {k: v for k, v in config.items() if k not in _PRODUCER_ONLY}
    admin_config["logger"] = librdkafka_logger(f"{__name__}.librdkafka")
    try:
        admin = AdminClient(cast("dict[str, str | int | float | bool]", admin_config))
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        entries = admin.describe_configs([resource], request_timeout=timeout_s)[resource].result(timeout_s)
        topic_limit = int(entries["max.message.bytes"].value)
    except Exception as e:  # noqa: BLE001 - the limit is an optimisation; a too-large error still cuts
        log.warning("cannot read the dead-letter topic's max.message.bytes; assuming the producer's",
                    extra={"topic": topic, "error": type(e).__name__, "detail": str(e)[:200]})  # fmt: skip
        return producer_limit
    return min(topic_limit, producer_limit)


_PRODUCER_ONLY: Final = frozenset(
    {
        "acks",
        "enable.idempotence",
        "linger.ms",
        "compression.type",
        "message.max.bytes",
        "error_cb",
        "transactional.id",
        "transaction.timeout.ms",
    }
)


class OutputProducer:
    """Produces output records and reports their delivery on the event loop."""

    def __init__(
        self,
        config: Mapping[str, object],
        *,
        agent: str,
        on_fatal: Callable[[str], None],
        busy_poll_s: float = 0.001,
        idle_poll_s: float = 0.1,
        transactional: bool = False,
    ) -> None:
        self._on_fatal = on_fatal
        self._transactional = transactional
        self._busy_poll_s = busy_poll_s
        self._idle_poll_s = idle_poll_s
        self._config = {**config, "error_cb": self._on_error, "logger": librdkafka_logger(f"{__name__}.librdkafka")}
        self._producer = Producer(self._config)
        #: Transactional: it cannot go on (a fatal error: fenced, say); ``renew`` replaces it …
        self.ended = False
        #: … and how many times it was replaced (reports of an old one are ignored).
        self._generation = 0
        self._retired: list[Producer] = []
        #: A replacement whose init_transactions did not finish yet (asked again, not recreated:
        #: an abandoned one would finish it later and fence its successor).
        self._starting: Producer | None = None
        self._agent = agent
        self._loop: asyncio.AbstractEventLoop | None = None
        self._poller: asyncio.Task[None] | None = None
        self._outstanding = 0
        self._wake = asyncio.Event()
        self._produced_by_topic: dict[str, Any] = {}
        #: Acknowledged records per topic since the last poll.
        self._acknowledged: dict[str, int] = {}

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._poller = loop.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while True:
            self._poll()
            if self._transactional:
                # Only refusals are reported: what is still on its way is librdkafka's count.
                self._outstanding = len(self._producer)
            if self._outstanding:
                await asyncio.sleep(self._busy_poll_s)
            else:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):  # nothing happened: poll for error callbacks
                    await asyncio.wait_for(self._wake.wait(), self._idle_poll_s)

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal(error.name())
        else:
            log.warning("producer error", extra={"error": error.name(), "detail": error.str()})

    def _fatal(self, name: str) -> None:
        """A fatal error, from error_cb or raised by poll() (both may report the same one)."""
        if self._transactional:
            # Typically the coordinator aborted a transaction that outlived transaction.timeout.ms
            # (a broker outage, a stalled process) and fenced this producer: a new one takes over
            # (init_transactions starts clean), and nothing committed is lost or repeated.
            if not self.ended:
                log.warning("the transactional producer cannot go on; a new one takes over", extra={"error": name})
            self.ended = True
        else:
            # An idempotent producer that hit a fatal error cannot guarantee order or
            # no-loss any more; stop, and let the next process resume from committed offsets.
            log.error("fatal producer error", extra={"error": name})
            self._on_fatal(f"fatal producer error: {name}")

    def _produced_counter(self, topic: str) -> Any:
        counter = self._produced_by_topic.get(topic)
        if counter is None:
            counter = self._produced_by_topic[topic] = metrics.PRODUCED.labels(self._agent, topic)
        return counter

    def produce(self, topic: str, key: bytes | None, value: bytes, headers: Headers, on_delivery: OnDelivery) -> None:
        """Queue a record; ``on_delivery(None)`` once Kafka acknowledged it, or
        ``on_delivery(DeliveryError)`` once librdkafka gave up. Both run later, on the loop.

        Raises ``BufferError`` when librdkafka's queue is full, ``KafkaException`` for a
        record Kafka can never take (too large, invalid topic).
        """

        generation = self._generation

        def report(error: Any, _message: Any) -> None:
            if generation != self._generation:
                return  # a replaced producer's record: its transaction is gone
            self._outstanding -= 1
            try:
                if error is None:
                    if not self._transactional:
                        self._acknowledged[topic] = self._acknowledged.get(topic, 0) + 1
                    on_delivery(None)
                else:
                    on_delivery(DeliveryError(topic, error))
            except Exception:
                # Raised inside poll() it would end the poller: no delivery would be seen again.
                log.exception("handling a delivery report failed")
                self._on_fatal("delivery report handling failed")

        # The client's stubs want values typed ``str | bytes | None``; ours are bytes (no
        # ``cast``: a function call for every record).
        self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=report)  # type: ignore[arg-type]
        self._outstanding += 1
        if self._outstanding == 1:
            self._wake.set()

    # -- transactions (exactly-once) -------------------------------------------------------------

    def produce_in_transaction(
        self, topic: str, key: bytes | None, value: bytes, headers: Headers, on_refused: OnRefused
    ) -> None:
        """Queue a record in the open transaction; ``on_refused(error, message)`` only if
        librdkafka gives it up, on the thread that serves the report (see the module docstring).

        Raises ``BufferError`` when librdkafka's queue is full, ``KafkaException`` for a
        record Kafka can never take (too large, invalid topic).
        """
        self._producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_refused)  # type: ignore[arg-type]
        if not self._outstanding:
            self._outstanding = 1  # the poller's count until it asks librdkafka again
            self._wake.set()

    # blocking: call these from a worker thread

    def init_transactions(self, timeout_s: float) -> None:
        """Register the transactional.id with the broker; fences an earlier producer with the same id."""
        self._producer.init_transactions(timeout_s)

    def begin_transaction(self) -> None:
        self._producer.begin_transaction()

    def flush(self, timeout_s: float) -> int:
        """Wait until every queued record is written or given up (reports are served on this
        thread meanwhile); returns how many are still on their way."""
        return self._producer.flush(timeout_s)

    def commit_transaction(self, offsets: list[TopicPartition], group_metadata: object, timeout_s: float) -> None:
        """Add the input ``offsets`` (with the consumer's group metadata) and commit.

        Raises ``KafkaException``: ``retriable()`` → call again; ``txn_requires_abort()``
        → abort, then redo the transaction; ``fatal()`` → this producer is done for.
        """
        self._producer.send_offsets_to_transaction(offsets, group_metadata, timeout_s)
        self._producer.commit_transaction(timeout_s)

    def abort_transaction(self, timeout_s: float) -> None:
        self._producer.abort_transaction(timeout_s)

    def renew(self, timeout_s: float) -> None:
        """Replace a fenced (or hung) producer: drop what the old one still holds (its
        transaction is aborted anyway) and register the same transactional.id again, which
        fences the old one for good."""
        if self._starting is None:
            self._producer.purge(blocking=False)
            self._generation += 1  # what the old one still reports is ignored
            self._starting = Producer(self._config)
        try:
            # Also completes (or aborts) the old producer's last transaction at the coordinator.
            self._starting.init_transactions(timeout_s)
        except KafkaException as e:
            error = kafka_error(e)
            if error is None or not error.retriable():
                self._retired.append(self._starting)
                self._starting = None
            raise  # retriable (timed out): the next call resumes it
        # The old client is kept, not destroyed: a thread may still be blocked inside it.
        self._retired.append(self._producer)
        self._producer, self._starting = self._starting, None
        self._outstanding = 0
        self.ended = False

    def count_committed(self, per_topic: Mapping[str, int]) -> None:
        """Exactly-once: outputs count as produced once their transaction committed."""
        for topic, count in per_topic.items():
            self._produced_counter(topic).inc(count)

    def _poll(self) -> None:
        try:
            self._producer.poll(0)
        except KafkaException as e:
            # poll() raises a fatal error (after error_cb saw it): uncaught, it would end the
            # poller, and no delivery report would be served again.
            error = kafka_error(e)
            self._fatal(error.name() if error is not None else str(e))
        if self._acknowledged:
            # Counted per poll, not per record: a metric update costs a lock.
            for topic, count in self._acknowledged.items():
                self._produced_counter(topic).inc(count)
            self._acknowledged.clear()

    async def drain(self, timeout_s: float) -> int:
        """Serve deliveries until none is outstanding or ``timeout_s`` passed; stop polling.

        Returns how many records are still undelivered.
        """
        deadline = time.monotonic() + timeout_s
        while len(self._producer) and time.monotonic() < deadline:
            self._poll()
            await asyncio.sleep(0.005)
        if self._poller is not None:
            self._poller.cancel()
        self._poll()
        return len(self._producer)


def kafka_error(exception: KafkaException) -> KafkaError | None:
    """The KafkaError a KafkaException carries (None if it carries none)."""
    argument = exception.args[0] if exception.args else None
    return argument if isinstance(argument, KafkaError) else None
