"""A Kafka topic as Kafka describes it: what the Kafka admin client returns and the pure
TicketTopic builders compare with the spec (so the builders need no client)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConfigState:
    """One config entry of a topic as Kafka reports it."""

    value: str | None
    #: True when set on the topic itself (a dynamic topic override), False for broker
    #: defaults and static/dynamic broker configs, which the operator never touches.
    is_override: bool
    read_only: bool = False


@dataclass(frozen=True)
class TopicState:
    """A topic as Kafka describes it."""

    name: str
    topic_id: str
    partitions: int
    replication_factor: int
    config: Mapping[str, ConfigState] = field(default_factory=dict)

    @property
    def overrides(self) -> dict[str, str]:
        """The topic's dynamic config overrides."""
        return {k: v.value for k, v in self.config.items() if v.is_override and v.value is not None}
