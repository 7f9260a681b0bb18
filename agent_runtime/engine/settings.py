"""Engine settings and the Kafka client configuration the engine builds from them.

Client settings that vary per cluster (SASL, TLS, timeouts) come from the environment
(:class:`srs_contracts.kafka_settings.KafkaClientSettings`, shared with the operator).
Settings the delivery guarantee depends on cannot be overridden.

Two delivery guarantees (``kafka.delivery`` in the agent config):

- ``exactly-once`` (the default): outputs and input offsets are committed together in a
  Kafka transaction (one transactional producer per consumer; offsets sent with the
  consumer's group metadata, so a member that lost its partitions is fenced — KIP-447).
- ``at-least-once``: outputs are produced at once, offsets committed after Kafka
  acknowledged them; a crash may repeat outputs. For brokers without transactions.

Every consumer reads ``read_committed``: aborted outputs of a crashed agent are never seen.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from srs_contracts.agent_config import AgentConfig, Delivery
from srs_contracts.kafka_settings import KafkaClientSettings

log = logging.getLogger(__name__)

#: What the delivery guarantees and per-key ordering rest on; the environment cannot change these.
_CONSUMER_GUARANTEES: Final = {
    # Offsets are stored by the engine only after every output of an input is acknowledged.
    "enable.auto.offset.store": False,
    "partition.assignment.strategy": "cooperative-sticky",
    # Never hand the handler an output of an aborted transaction (a crashed agent's).
    "isolation.level": "read_committed",
}
_PRODUCER_GUARANTEES: Final = {
    "enable.idempotence": True,
    "acks": "all",
}
_CONSUMER_DEFAULTS: Final = {
    # A new group reads tickets that arrived before the agent first started.
    "auto.offset.reset": "earliest",
}
_PRODUCER_DEFAULTS: Final = {
    # Batch outputs; the engine never flushes per message.
    "linger.ms": 5,
    "compression.type": "lz4",
}
#: Exactly-once: how long a transaction of a process that died may stay open. Until the
#: broker aborts it, read_committed consumers of its output partitions wait (Kafka
#: Streams uses the same 10 s); a live agent commits every ``commit_interval_s``.
_TRANSACTIONAL_DEFAULTS: Final = {
    "transaction.timeout.ms": 10_000,
    # A committed transaction means every output was written: only refusals are reported.
    "delivery.report.only.error": True,
}
#: At-least-once: an input's offset is stored when every output's report came.
_AT_LEAST_ONCE_GUARANTEES: Final = {"delivery.report.only.error": False}


@dataclass(frozen=True)
class EngineSettings:
    """Everything the engine needs; built from the agent config plus the environment."""

    agent: str
    bootstrap_servers: str
    group_id: str
    input_topic: str
    dead_letter_topic: str
    concurrency: int = 16
    max_attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 30.0
    #: SIGTERM → exit within this many seconds (keep below the pod's terminationGracePeriodSeconds).
    shutdown_grace_s: float = 25.0
    #: How long a rebalance waits for in-flight inputs of revoked partitions to finish.
    revoke_drain_timeout_s: float = 10.0
    #: Deadline of one handler attempt; a miss is a failed attempt (``timeout`` when the last).
    handler_timeout_s: float = 120.0
    #: A handler still running this long after its deadline cannot be cut: /healthz fails,
    #: so the process restarts and the record's crash count grows.
    handler_overrun_s: float = 30.0
    #: Processes a record may crash or hang before it is dead-lettered as ``crash_loop``.
    crash_loop_limit: int = 3
    #: Attempts at writing one dead letter before the agent reports not ready (it keeps trying).
    dead_letter_attempts: int = 5
    #: The largest dead letter to write; the engine lowers it to the topic's ``max.message.bytes``
    #: at start (and further should Kafka still refuse one as too large).
    dead_letter_max_bytes: int = 1_000_000
    #: Backpressure: the consumer stops taking records while the process holds this many
    #: unfinished inputs …
    max_pending_total: int = 10000
    #: … and a partition that holds this many (it lags behind the others) is paused.
    max_pending_per_partition: int = 5000
    consume_batch_size: int = 500
    #: Log field name for the record key (the app names it ``ticket_id``).
    key_log_field: str = "key"
    #: Outputs and offsets in one Kafka transaction (else: at-least-once).
    exactly_once: bool = True
    #: Exactly-once: a transaction commits what is ready at least this often …
    commit_interval_s: float = 0.1
    #: … and as soon as this many inputs wait for it.
    commit_max_records: int = 1000
    #: Exactly-once: librdkafka's timeout for one transactional call (commit, abort, a new
    #: producer's init). A call still blocked well past it (librdkafka can hang in
    #: send_offsets_to_transaction once the group coordinator was gone: upstream issue
    #: confluentinc/librdkafka#5456) is abandoned together with its producer. Short: a
    #: transaction open longer than transaction.timeout.ms (10 s) is aborted by the broker anyway.
    transaction_call_timeout_s: float = 5.0
    #: Exactly-once: this process's transactional.id is ``<group_id>-<instance_id>``. A
    #: restarted pod (same name) fences its previous incarnation at once.
    instance_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    client: KafkaClientSettings = field(default_factory=KafkaClientSettings)

    @property
    def transactional_id(self) -> str:
        """The producer's transactional.id (exactly-once); its prefix is the group id."""
        return f"{self.group_id}-{self.instance_id}"

    @classmethod
    def from_agent_config(
        cls,
        config: AgentConfig,
        env: Mapping[str, str] | None = None,
        *,
        shutdown_grace_s: float | None = None,
        key_log_field: str = "ticket_id",
    ) -> EngineSettings:
        """Settings for the agent ``config`` describes; ``env`` defaults to ``os.environ``."""
        env = os.environ if env is None else env
        client = KafkaClientSettings.from_env(env)
        bootstrap = config.kafka.bootstrap_servers or client.common.get("bootstrap.servers")
        if not bootstrap:
            raise ValueError("no Kafka bootstrap servers: set kafka.bootstrap_servers or KAFKA_BOOTSTRAP_SERVERS")
        grace = shutdown_grace_s if shutdown_grace_s is not None else float(env.get("SRS_SHUTDOWN_GRACE_SECONDS", 25))
        if grace <= 0:
            raise ValueError("the shutdown grace period must be positive")
        return cls(
            agent=config.name,
            bootstrap_servers=bootstrap,
            group_id=config.kafka.group_id,
            input_topic=config.kafka.input_topic,
            dead_letter_topic=config.kafka.dead_letter_topic,
            concurrency=config.concurrency,
            max_attempts=config.retry.max_attempts,
            initial_backoff_s=config.retry.initial_backoff_ms / 1000,
            max_backoff_s=config.retry.max_backoff_ms / 1000,
            shutdown_grace_s=grace,
            # A rebalance must not outlast the shutdown grace either.
            revoke_drain_timeout_s=min(10.0, grace * 0.4),
            handler_timeout_s=config.retry.handler_timeout_seconds,
            crash_loop_limit=config.retry.crash_loop_limit,
            key_log_field=key_log_field,
            exactly_once=config.kafka.delivery is Delivery.EXACTLY_ONCE,
            commit_interval_s=config.kafka.commit_interval_ms / 1000,
            commit_max_records=config.kafka.commit_max_records,
            # The pod's name (the operator sets it from the downward API), else a random id.
            instance_id=env.get("SRS_POD_NAME") or uuid.uuid4().hex[:12],
            client=client,
        )

    def consumer_config(self) -> dict[str, object]:
        """librdkafka settings of the input consumer."""
        # Exactly-once: offsets are committed by the producer's transactions, never automatically.
        guarantees = {**_CONSUMER_GUARANTEES, "enable.auto.commit": not self.exactly_once}
        return self._client_config(_CONSUMER_DEFAULTS, self.client.consumer, guarantees) | {"group.id": self.group_id}

    def producer_config(self) -> dict[str, object]:
        """librdkafka settings of the output (and dead-letter) producer."""
        if not self.exactly_once:
            guarantees = {**_PRODUCER_GUARANTEES, **_AT_LEAST_ONCE_GUARANTEES}
            return self._client_config(_PRODUCER_DEFAULTS, self.client.producer, guarantees)
        guarantees = {**_PRODUCER_GUARANTEES, "transactional.id": self.transactional_id}
        return self._client_config({**_PRODUCER_DEFAULTS, **_TRANSACTIONAL_DEFAULTS}, self.client.producer, guarantees)

    def _client_config(
        self, defaults: Mapping[str, object], specific: Mapping[str, str], guarantees: Mapping[str, object]
    ) -> dict[str, object]:
        config: dict[str, object] = {"client.id": f"srs-{self.agent}", **defaults}
        config.update(self.client.common)
        config.update(specific)
        config["bootstrap.servers"] = self.bootstrap_servers
        for name, value in guarantees.items():
            if name in config and str(config[name]).lower() != str(value).lower():
                log.warning("ignoring Kafka setting from the environment that would break delivery guarantees",
                            extra={"setting": name})  # fmt: skip
            config[name] = value
        config.pop("group.id", None)
        return config
