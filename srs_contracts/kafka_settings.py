"""Kafka client settings from the environment, shared by the agent runtime and the operator.

Client settings that vary per cluster (SASL, TLS, timeouts) come from environment
variables, so a platform team can point the same config document at MSK or Confluent:
``KAFKA_<NAME>`` sets ``<name>`` with ``_`` → ``.`` (``KAFKA_SECURITY_PROTOCOL`` →
``security.protocol``; write ``__`` for a literal ``_``) on every client;
``KAFKA_CONSUMER_<NAME>`` / ``KAFKA_PRODUCER_<NAME>`` set it on one client only.
Values are never logged.

It lives beside ``config.py`` (the other contract the operator shares with the runtime),
outside ``engine/``: the operator's Kafka admin client needs the same convention, not the
engine's internals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

#: Environment variables with the ``KAFKA_`` prefix that belong to Kafka's own JVM tools, or
#: name a file of settings for people's tools (``KAFKA_CLIENT_CONFIG``, which the local
#: stack's ``.devstack/env`` exports for ``kcat -F``).
_NOT_CLIENT_SETTINGS: Final = frozenset(
    {
        "KAFKA_CLIENT_CONFIG",
        "KAFKA_HEAP_OPTS",
        "KAFKA_OPTS",
        "KAFKA_JVM_PERFORMANCE_OPTS",
        "KAFKA_LOG4J_OPTS",
        "KAFKA_GC_LOG_OPTS",
        "KAFKA_JMX_OPTS",
        "KAFKA_LOG_DIR",
        "KAFKA_HOME",
        "KAFKA_VERSION",
    }
)


def _setting_name(variable_suffix: str) -> str:
    return variable_suffix.lower().replace("__", "\0").replace("_", ".").replace("\0", "_")


@dataclass(frozen=True)
class KafkaClientSettings:
    """librdkafka settings from the environment: shared, consumer-only, producer-only."""

    common: Mapping[str, str] = field(default_factory=dict)
    consumer: Mapping[str, str] = field(default_factory=dict)
    producer: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> KafkaClientSettings:
        common: dict[str, str] = {}
        consumer: dict[str, str] = {}
        producer: dict[str, str] = {}
        for variable, value in env.items():
            if not variable.startswith("KAFKA_") or variable in _NOT_CLIENT_SETTINGS:
                continue
            suffix = variable.removeprefix("KAFKA_")
            if suffix.startswith("CONSUMER_"):
                consumer[_setting_name(suffix.removeprefix("CONSUMER_"))] = value
            elif suffix.startswith("PRODUCER_"):
                producer[_setting_name(suffix.removeprefix("PRODUCER_"))] = value
            else:
                common[_setting_name(suffix)] = value
        return cls(common, consumer, producer)
