"""The operator's Kafka admin client: the only place that talks to Kafka.

One ``confluent_kafka.admin.AdminClient`` per operator process (created at startup,
closed at cleanup). Every operation goes through a :class:`Coalescer`: requests that
arrive within a few milliseconds — e.g. from hundreds of TicketTopics reconciled at
once — leave as *one* admin request (one DescribeTopics, one CreateTopics, …) and each
caller awaits only its own topic's result. That, not a bigger process, is what lets a
thousand topics become Ready within a minute.

Errors are sorted into two kinds: :class:`KafkaUnavailable` (Kafka cannot be reached or
did not answer in time: retry with backoff) and :class:`KafkaAdminError` (Kafka answered
and said no, e.g. an invalid config value: retrying the same request will not help).

Connection settings follow the runtime's convention (``agent_runtime.kafka_settings``):
``KAFKA_BOOTSTRAP_SERVERS`` plus ``KAFKA_<NAME>`` for any librdkafka setting, e.g.
``KAFKA_SECURITY_PROTOCOL=SASL_SSL``, ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``,
``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_CA_LOCATION``. Values are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicCollection, Uuid
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
    TopicDescription,
)
from prometheus_client import Counter

from agent_runtime.kafka_settings import KafkaClientSettings
from srs_operator import metrics
from srs_operator.models.topicstate import ConfigState, TopicState

log = logging.getLogger(__name__)

#: Error codes that mean "Kafka is not reachable / not ready right now", not "Kafka said no".
_TRANSIENT_CODES: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError._DESTROY,
        KafkaError._WAIT_COORD,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_CONTROLLER,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.BROKER_NOT_AVAILABLE,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.THROTTLING_QUOTA_EXCEEDED,
    }
)


ADMIN_CALLS = Counter(
    "srs_operator_kafka_admin_calls",
    "Kafka admin requests sent, by operation (one request carries a whole batch of topics).",
    ["operation"],
    registry=metrics.REGISTRY,
)
ADMIN_TOPICS = Counter(
    "srs_operator_kafka_admin_topics",
    "Topics carried by Kafka admin requests, by operation (topics/calls = the batching factor).",
    ["operation"],
    registry=metrics.REGISTRY,
)


class _RepeatFilter(logging.Filter):
    """Let each distinct librdkafka message through once per ``interval``: while Kafka is
    down it reports every reconnect attempt, several per second."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = "".join(ch for ch in record.getMessage() if not ch.isdigit())
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


def _librdkafka_logger() -> logging.Logger:
    logger = logging.getLogger(f"{__name__}.librdkafka")
    if not any(isinstance(f, _RepeatFilter) for f in logger.filters):
        logger.addFilter(_RepeatFilter())
    return logger


class KafkaUnavailable(Exception):
    """Kafka could not be reached or did not answer in time; retrying later may succeed."""


class KafkaAdminError(Exception):
    """Kafka answered and refused the request (e.g. ``INVALID_CONFIG``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class KafkaAdminSettings:
    """How the operator reaches Kafka and how it batches admin requests."""

    client_config: Mapping[str, str]
    #: Upper bound of one admin request, including connecting; also the broker-side
    #: operation timeout of create/delete/partition requests.
    request_timeout: float = 15.0
    #: How long a request waits for others to join its batch.
    batch_window: float = 0.02
    #: A batch is sent at once when it reaches this many topics.
    max_batch: int = 500

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaAdminSettings:
        """``KAFKA_*`` client settings plus ``SRS_KAFKA_REQUEST_TIMEOUT_SECONDS`` and
        ``SRS_KAFKA_BATCH_WINDOW_MS``."""
        client = dict(KafkaClientSettings.from_env(env).common)
        if not client.get("bootstrap.servers"):
            raise ValueError("KAFKA_BOOTSTRAP_SERVERS is not set: the operator needs a Kafka cluster to manage topics")
        return cls(
            client_config=client,
            request_timeout=float(env.get("SRS_KAFKA_REQUEST_TIMEOUT_SECONDS", 15)),
            batch_window=float(env.get("SRS_KAFKA_BATCH_WINDOW_MS", 20)) / 1000,
        )

    @property
    def bootstrap_servers(self) -> str:
        return self.client_config["bootstrap.servers"]


Request = TypeVar("Request")


@dataclass
class _Pending(Generic[Request]):
    request: Request
    waiters: list[asyncio.Future[Any]]


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
        *,
        window: float,
        max_batch: int,
        dedupe: bool,
    ) -> None:
        self.name = name
        self.stats = BatchStats()
        self._issue = issue
        self._key = key
        self._window = window
        self._max_batch = max_batch
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
        ADMIN_CALLS.labels(self.name).inc()
        ADMIN_TOPICS.labels(self.name).inc(len(batch))
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


def topic_id_text(topic_id: Uuid | None) -> str:
    """Kafka's own spelling of a topic id (URL-safe base64, no padding), as ``kafka-topics`` shows it;
    the client's ``str()`` uses the standard alphabet."""
    if topic_id is None:
        return ""
    raw = base64.b64decode(str(topic_id) + "==")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _error(exc: BaseException, action: str, topic: str) -> Exception:
    """Translate a client exception into :class:`KafkaUnavailable` or :class:`KafkaAdminError`."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(err, KafkaError):
        if err.code() in _TRANSIENT_CODES or err.retriable():
            return KafkaUnavailable(f"cannot {action} topic {topic}: {err.str()}")
        return KafkaAdminError(err.name(), err.str())
    if isinstance(exc, Exception):
        return exc
    return RuntimeError(str(exc))


def _error_code(exc: BaseException) -> int | None:
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


class TopicAdmin:
    """Batched, asyncio-friendly topic administration on one ``AdminClient``."""

    def __init__(
        self, settings: KafkaAdminSettings, *, client_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient
    ) -> None:
        self.settings = settings
        config: dict[str, Any] = {
            "client.id": "srs-operator",
            # Without a broker, librdkafka reconnects quickly; back off instead of spinning.
            "reconnect.backoff.ms": 500,
            "reconnect.backoff.max.ms": 10_000,
            **settings.client_config,
            "logger": _librdkafka_logger(),
        }
        try:
            self._admin = client_factory(config)
        except KafkaException as e:  # e.g. KAFKA_FOO=… that is no librdkafka setting
            err = e.args[0] if e.args else e
            detail = err.str() if isinstance(err, KafkaError) else str(err)
            raise ValueError(f"invalid Kafka client settings (KAFKA_* environment): {detail}") from e
        self._poller: asyncio.Task[None] | None = None
        window, size = settings.batch_window, settings.max_batch
        self._describe_topics = Coalescer[str](
            "describe_topics", self._issue_describe_topics, str, window=window, max_batch=size, dedupe=True
        )
        self._describe_configs = Coalescer[str](
            "describe_configs", self._issue_describe_configs, str, window=window, max_batch=size, dedupe=True
        )
        self._create = Coalescer[NewTopic](
            "create_topics", self._issue_create, lambda t: str(t.topic), window=window, max_batch=size, dedupe=False
        )
        self._partitions = Coalescer[NewPartitions](
            "create_partitions",
            self._issue_partitions,
            lambda p: str(p.topic),
            window=window,
            max_batch=size,
            dedupe=False,
        )
        self._alter = Coalescer[ConfigResource](
            "incremental_alter_configs",
            self._issue_alter,
            lambda r: str(r.name),
            window=window,
            max_batch=size,
            dedupe=False,
        )
        self._delete = Coalescer[str](
            "delete_topics", self._issue_delete, str, window=window, max_batch=size, dedupe=True
        )

    # -- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Start serving librdkafka's log and error callbacks (they arrive through ``poll``)."""
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever(), name="kafka-admin-poller")

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        self._admin.poll(0)

    async def _poll_forever(self) -> None:
        while True:
            self._admin.poll(0)
            await asyncio.sleep(1.0)

    @property
    def stats(self) -> dict[str, BatchStats]:
        """Admin calls made so far, per operation (calls vs. topics they carried)."""
        return {
            c.name: c.stats
            for c in (
                self._describe_topics,
                self._describe_configs,
                self._create,
                self._partitions,
                self._alter,
                self._delete,
            )
        }

    # -- operations ----------------------------------------------------------------

    async def describe(self, topic: str) -> TopicState | None:
        """The topic's partitions, replication factor, id and config; None when it does not exist."""
        outcomes: list[Any] = list(
            await asyncio.gather(
                self._describe_topics.submit(topic), self._describe_configs.submit(topic), return_exceptions=True
            )
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and _error_code(outcome) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return None
        described, configs = outcomes
        if isinstance(described, BaseException):
            raise _error(described, "describe", topic) from described
        if isinstance(configs, BaseException):
            raise _error(configs, "describe the config of", topic) from configs
        return _topic_state(described, configs)

    async def create(
        self, topic: str, partitions: int | None, replication_factor: int | None, config: Mapping[str, str]
    ) -> bool:
        """Create the topic; False when it already exists (the caller adopts it). ``None``
        partitions or replication factor take the broker's defaults."""
        new = NewTopic(
            topic,
            num_partitions=partitions if partitions is not None else -1,
            replication_factor=replication_factor if replication_factor is not None else -1,
            config=dict(config),
        )
        try:
            await self._create.submit(new)
        except KafkaException as exc:
            if _error_code(exc) == KafkaError.TOPIC_ALREADY_EXISTS:
                return False
            raise _error(exc, "create", topic) from exc
        return True

    async def create_partitions(self, topic: str, total: int) -> None:
        """Grow the topic to ``total`` partitions."""
        try:
            await self._partitions.submit(NewPartitions(topic, total))
        except KafkaException as exc:
            raise _error(exc, "add partitions to", topic) from exc

    async def alter_config(self, topic: str, set_: Mapping[str, str], delete: Collection[str]) -> None:
        """SET ``set_`` and DELETE the ``delete`` overrides, touching no other key."""
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in sorted(set_.items())]
        entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in sorted(delete)]
        try:
            await self._alter.submit(ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries))
        except KafkaException as exc:
            raise _error(exc, "alter the config of", topic) from exc

    async def delete(self, topic: str) -> bool:
        """Delete the topic; False when it did not exist (which counts as success)."""
        try:
            await self._delete.submit(topic)
        except KafkaException as exc:
            if _error_code(exc) == KafkaError.UNKNOWN_TOPIC_OR_PART:
                return False
            raise _error(exc, "delete", topic) from exc
        return True

    # -- one admin call per batch --------------------------------------------------

    def _issue_describe_topics(self, topics: Sequence[str]) -> Mapping[str, Future[Any]]:
        return self._admin.describe_topics(TopicCollection(list(topics)), request_timeout=self.settings.request_timeout)

    def _issue_describe_configs(self, topics: Sequence[str]) -> Mapping[str, Future[Any]]:
        resources = [ConfigResource(ResourceType.TOPIC, t) for t in topics]
        result = self._admin.describe_configs(resources, request_timeout=self.settings.request_timeout)
        return {str(r.name): f for r, f in result.items()}

    def _issue_create(self, topics: Sequence[NewTopic]) -> Mapping[str, Future[Any]]:
        return self._admin.create_topics(list(topics), **self._operation_timeouts())

    def _issue_partitions(self, requests: Sequence[NewPartitions]) -> Mapping[str, Future[Any]]:
        return self._admin.create_partitions(list(requests), **self._operation_timeouts())

    def _issue_alter(self, resources: Sequence[ConfigResource]) -> Mapping[str, Future[Any]]:
        result = self._admin.incremental_alter_configs(list(resources), request_timeout=self.settings.request_timeout)
        return {str(r.name): f for r, f in result.items()}

    def _issue_delete(self, topics: Sequence[str]) -> Mapping[str, Future[Any]]:
        return self._admin.delete_topics(list(topics), **self._operation_timeouts())

    def _operation_timeouts(self) -> dict[str, float]:
        # The broker waits for the change to reach every broker (so a describe right after
        # sees it), but gives up before the client does.
        timeout = self.settings.request_timeout
        return {"request_timeout": timeout, "operation_timeout": max(1.0, timeout * 0.8)}


def _topic_state(description: TopicDescription, configs: Mapping[str, Any]) -> TopicState:
    partitions = description.partitions or []
    return TopicState(
        name=description.name,
        topic_id=topic_id_text(description.topic_id),
        partitions=len(partitions),
        replication_factor=max((len(p.replicas) for p in partitions), default=0),
        config={
            name: ConfigState(
                value=entry.value,
                is_override=entry.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value,
                read_only=bool(entry.is_read_only),
            )
            for name, entry in configs.items()
        },
    )
