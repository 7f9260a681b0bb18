"""The operator's Kafka admin client: the only place that talks to Kafka.

One ``confluent_kafka.admin.AdminClient`` per operator process (created at startup,
closed at cleanup). Every operation goes through a :class:`Coalescer`: requests that
arrive within a few milliseconds — e.g. from hundreds of TicketTopics reconciled at
once — leave as *one* admin request (one DescribeTopics, one CreateTopics, …) and each
caller awaits only its own topic's result. That, not a bigger process, is what lets a
thousand topics become Ready within a minute.

Batching lives in :mod:`~srs_operator.clients.kafka_batching`, librdkafka's log filter in
:mod:`~srs_contracts.kafka_logging`, the metrics in :mod:`srs_operator.metrics`.

Errors are sorted into two kinds: :class:`KafkaUnavailable` (Kafka cannot be reached or
did not answer in time: retry with backoff) and :class:`KafkaAdminError` (Kafka answered
and said no, e.g. an invalid config value: retrying the same request will not help).

Connection settings follow the runtime's convention (``srs_contracts.kafka_settings``):
``KAFKA_BOOTSTRAP_SERVERS`` plus ``KAFKA_<NAME>`` for any librdkafka setting, e.g.
``KAFKA_SECURITY_PROTOCOL=SASL_SSL``, ``KAFKA_SASL_MECHANISM``, ``KAFKA_SASL_USERNAME``,
``KAFKA_SASL_PASSWORD``, ``KAFKA_SSL_CA_LOCATION``. Values are never logged.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Final, TypeVar

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

from srs_contracts.kafka_logging import librdkafka_logger
from srs_contracts.kafka_settings import KafkaClientSettings
from srs_operator.clients.kafka_batching import BatchLimits, BatchStats, Coalescer
from srs_operator.models.topicstate import ConfigState, TopicState

log = logging.getLogger(__name__)

#: One change request (a NewTopic, NewPartitions, ConfigResource or topic name).
Change = TypeVar("Change")

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


def topic_id_text(topic_id: Uuid | None) -> str:
    """Kafka's own spelling of a topic id (URL-safe base64, no padding), as ``kafka-topics`` shows it;
    the client's ``str()`` uses the standard alphabet."""
    if topic_id is None:
        return ""
    raw = base64.b64decode(str(topic_id) + "==")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def is_transient(err: KafkaError) -> bool:
    """Whether the error means "Kafka cannot be reached or is not ready", not "Kafka said no"."""
    return err.code() in _TRANSIENT_CODES or bool(err.retriable())


def _error(exc: BaseException, action: str, topic: str) -> Exception:
    """Translate a client exception into :class:`KafkaUnavailable` or :class:`KafkaAdminError`."""
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    if isinstance(err, KafkaError):
        if is_transient(err):
            return KafkaUnavailable(f"cannot {action} topic {topic}: {err.str()}")
        return KafkaAdminError(err.name(), err.str())
    if isinstance(exc, Exception):
        return exc
    return RuntimeError(str(exc))


def _error_code(exc: BaseException) -> int | None:
    err = exc.args[0] if isinstance(exc, KafkaException) and exc.args else None
    return err.code() if isinstance(err, KafkaError) else None


class PolledAdmin:
    """An AdminClient whose librdkafka log and error callbacks are served by a task of its
    own (they arrive through ``poll``): ``start`` it, ``close`` it."""

    _poller_name = "kafka-admin-poller"

    def __init__(
        self,
        settings: KafkaAdminSettings,
        client_id: str,
        logger: str,
        client_factory: Callable[[dict[str, Any]], AdminClient],
    ) -> None:
        self.settings = settings
        config: dict[str, Any] = {
            "client.id": client_id,
            # Without a broker, librdkafka reconnects quickly; back off instead of spinning.
            "reconnect.backoff.ms": 500,
            "reconnect.backoff.max.ms": 10_000,
            **settings.client_config,
            "logger": librdkafka_logger(f"{logger}.librdkafka"),
        }
        try:
            self._admin = client_factory(config)
        except KafkaException as e:  # e.g. KAFKA_FOO=… that is no librdkafka setting
            err = e.args[0] if e.args else e
            detail = err.str() if isinstance(err, KafkaError) else str(err)
            raise ValueError(f"invalid Kafka client settings (KAFKA_* environment): {detail}") from e
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll_forever(), name=self._poller_name)

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


class TopicAdmin(PolledAdmin):
    """Batched, asyncio-friendly topic administration on one ``AdminClient``."""

    def __init__(
        self, settings: KafkaAdminSettings, *, client_factory: Callable[[dict[str, Any]], AdminClient] = AdminClient
    ) -> None:
        super().__init__(settings, "srs-operator", __name__, client_factory)
        limits = BatchLimits(settings.batch_window, settings.max_batch)
        # Describes of a topic already waiting share its result; changes go in the next batch.
        self._describe_topics = Coalescer("describe_topics", self._issue_describe_topics, str, limits, dedupe=True)
        self._describe_configs = Coalescer("describe_configs", self._issue_describe_configs, str, limits, dedupe=True)
        self._create = Coalescer("create_topics", self._issue_create, _topic_of, limits, dedupe=False)
        self._partitions = Coalescer("create_partitions", self._issue_partitions, _topic_of, limits, dedupe=False)
        self._alter = Coalescer("incremental_alter_configs", self._issue_alter, _name_of, limits, dedupe=False)
        self._delete = Coalescer("delete_topics", self._issue_delete, str, limits, dedupe=True)

    # -- lifecycle -----------------------------------------------------------------

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
        return await self._change(self._create, new, "create", topic, already=KafkaError.TOPIC_ALREADY_EXISTS)

    async def create_partitions(self, topic: str, total: int) -> None:
        """Grow the topic to ``total`` partitions."""
        await self._change(self._partitions, NewPartitions(topic, total), "add partitions to", topic)

    async def alter_config(self, topic: str, set_: Mapping[str, str], delete: Collection[str]) -> None:
        """SET ``set_`` and DELETE the ``delete`` overrides, touching no other key."""
        entries = [ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in sorted(set_.items())]
        entries += [ConfigEntry(k, None, incremental_operation=AlterConfigOpType.DELETE) for k in sorted(delete)]
        resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=entries)
        await self._change(self._alter, resource, "alter the config of", topic)

    async def delete(self, topic: str) -> bool:
        """Delete the topic; False when it did not exist (which counts as success)."""
        return await self._change(self._delete, topic, "delete", topic, already=KafkaError.UNKNOWN_TOPIC_OR_PART)

    async def _change(
        self, batch: Coalescer[Change], request: Change, action: str, topic: str, *, already: int | None = None
    ) -> bool:
        """Send one change through its batch: True when done, False when Kafka answers that it
        already is so (error code ``already``); any other error becomes ours (:func:`_error`)."""
        try:
            await batch.submit(request)
        except KafkaException as exc:
            if already is not None and _error_code(exc) == already:
                return False
            raise _error(exc, action, topic) from exc
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


def _topic_of(request: NewTopic | NewPartitions) -> str:
    return str(request.topic)


def _name_of(resource: ConfigResource) -> str:
    return str(resource.name)


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
