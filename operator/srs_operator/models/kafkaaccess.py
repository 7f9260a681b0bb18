"""A Kafka principal's access as the operator plans it and as Kafka describes it.

Plain values, no client types: the builders compute sets of :class:`AclEntry` from a
SupportAgent's spec, the Kafka client (:mod:`srs_operator.clients.kafka_access`) turns them
into ``AclBinding`` objects and back, and a diff of two sets is what is created or deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

#: The name Kafka gives its one cluster resource (``ResourceType.BROKER`` in librdkafka).
CLUSTER_RESOURCE_NAME: Final = "kafka-cluster"


class Resource(StrEnum):
    """Kafka resource types an agent's ACLs name (librdkafka's names)."""

    TOPIC = "TOPIC"
    GROUP = "GROUP"
    TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
    CLUSTER = "BROKER"  # librdkafka calls Kafka's Cluster resource BROKER


class Pattern(StrEnum):
    LITERAL = "LITERAL"
    PREFIXED = "PREFIXED"


class Operation(StrEnum):
    """ACL operations an agent is granted. READ and WRITE imply DESCRIBE in Kafka's authorizer."""

    READ = "READ"
    WRITE = "WRITE"
    DESCRIBE = "DESCRIBE"
    DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
    IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"


@dataclass(frozen=True, order=True)
class AclEntry:
    """One ALLOW rule for one principal from any host: ``operation`` on a resource."""

    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    def __str__(self) -> str:
        pattern = "" if self.pattern is Pattern.LITERAL else f" ({self.pattern.value.lower()})"
        return f"{self.operation.value} on {self.resource.value} {self.name}{pattern}"


@dataclass(frozen=True)
class ScramUser:
    """What Kafka says of a SCRAM user: the mechanisms it has credentials for."""

    name: str
    mechanisms: frozenset[str]
