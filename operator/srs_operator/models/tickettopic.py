"""The ``TicketTopic`` custom resource: one Kafka topic, owned by the operator.

Modelled on Strimzi's ``KafkaTopic``: ``spec.topicName`` defaults to ``metadata.name`` and
never changes; partitions only grow; a replication-factor change is reported, not
attempted; ``spec.config`` holds the topic's dynamic config overrides (everything else is
the broker's default). ``deletionPolicy`` says whether deleting the resource deletes the
topic. CEL rules reject, at admission, what Kafka could never do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import Field

from srs_operator.models.conditions import Condition, ConditionStatus
from srs_operator.models.crd import CustomResourceKind, PrinterColumn, ResourceModel, Rule, validations

#: Kafka's own limits on topic names (``org.apache.kafka.common.internals.Topic``).
TOPIC_NAME_PATTERN: Final = r"^[a-zA-Z0-9._-]+$"
TOPIC_NAME_MAX_LENGTH: Final = 249
#: Topic config names: ``retention.ms``, ``cleanup.policy``, ``min.insync.replicas`` …
CONFIG_KEY_PATTERN: Final = r"^[a-z][a-z0-9]*([.][a-z0-9]+)*$"
MAX_PARTITIONS: Final = 10_000
#: Topic names no TicketTopic may claim: Kafka's and the ecosystem's internal topics
#: (``__consumer_offsets``, ``__transaction_state``, ``_schemas``, ``_confluent-…``) start
#: with ``_``; ``srs.internal.`` is kept for srs's own state topics.
RESERVED_TOPIC_PREFIXES: Final = ("_", "srs.internal.")
MAX_CONFIG_ENTRIES: Final = 64


class DeletionPolicy(StrEnum):
    """What deleting the TicketTopic does to the Kafka topic."""

    RETAIN = "Retain"
    DELETE = "Delete"


class ConditionType(StrEnum):
    """Condition types of a TicketTopic: ``Ready`` summarises the per-aspect ones."""

    READY = "Ready"
    PARTITIONS_IN_SYNC = "PartitionsInSync"
    REPLICATION_FACTOR_IN_SYNC = "ReplicationFactorInSync"
    CONFIG_IN_SYNC = "ConfigInSync"


class Reason(StrEnum):
    """``reason`` values of TicketTopic conditions (and Event reasons where they match)."""

    IN_SYNC = "InSync"
    CREATED = "Created"
    ADOPTED = "Adopted"
    RECREATED = "Recreated"
    PARTITIONS_INCREASED = "PartitionsIncreased"
    CONFIG_UPDATED = "ConfigUpdated"
    BROKER_DEFAULT = "BrokerDefault"
    NOT_SUPPORTED = "NotSupported"
    RESOURCE_CONFLICT = "ResourceConflict"
    KAFKA_UNAVAILABLE = "KafkaUnavailable"
    KAFKA_ERROR = "KafkaError"
    INVALID_CONFIG = "InvalidConfig"
    INVALID_SPEC = "InvalidSpec"
    DELETED = "Deleted"
    RETAINED = "Retained"
    DELETE_ABANDONED = "DeleteAbandoned"
    TOPIC_EXISTS = "TopicExists"
    TOPIC_NAME_NOT_ALLOWED = "TopicNameNotAllowed"
    TOPIC_IN_USE = "TopicInUse"


TopicNameStr = Annotated[
    str,
    Field(min_length=1, max_length=TOPIC_NAME_MAX_LENGTH, pattern=TOPIC_NAME_PATTERN),
]
ConfigValue = Annotated[str, Field(max_length=4096)]


class TicketTopicSpec(ResourceModel):
    """Desired state of a Kafka topic."""

    topic_name: TopicNameStr | None = Field(
        None,
        description="Name of the Kafka topic: letters, digits, '.', '_' and '-', at most 249 characters. "
        "Defaults to metadata.name. Immutable: a topic cannot be renamed.",
        json_schema_extra=validations(
            Rule(
                "self == oldSelf",
                "spec.topicName is immutable (Kafka topics cannot be renamed): create a new TicketTopic "
                "for the new name",
            ),
            Rule("self != '.' && self != '..'", "spec.topicName cannot be '.' or '..' (Kafka forbids them)"),
        ),
    )
    partitions: int | None = Field(
        None,
        ge=1,
        le=MAX_PARTITIONS,
        description="Number of partitions; can only be increased. Defaults to the broker's num.partitions.",
        json_schema_extra=validations(
            Rule(
                "self >= oldSelf",
                "partitions can only be increased: Kafka cannot remove partitions from a topic (create a new "
                "topic to get fewer)",
            )
        ),
    )
    replication_factor: int | None = Field(
        None,
        ge=1,
        le=32,
        description="Replicas of each partition. Defaults to the broker's default.replication.factor. A change "
        "after creation is reported as NotSupported, not applied (reassign partitions with Kafka's tools).",
    )
    config: dict[str, ConfigValue] = Field(
        default_factory=dict,
        max_length=MAX_CONFIG_ENTRIES,
        description="Topic config overrides, e.g. {retention.ms: '604800000', cleanup.policy: compact}; values are "
        "strings. Keys not listed take the broker's defaults; overrides removed from here are removed from the "
        "topic.",
        json_schema_extra=validations(
            Rule(
                f"self.all(k, k.matches('{CONFIG_KEY_PATTERN}'))",
                "spec.config keys are Kafka topic config names such as retention.ms or cleanup.policy "
                "(lowercase words separated by dots)",
            )
        ),
    )
    deletion_policy: DeletionPolicy = Field(
        DeletionPolicy.RETAIN,
        description="Retain (default) keeps the Kafka topic when this resource is deleted; Delete deletes it, "
        "unless another TicketTopic still refers to the same topic; while a SupportAgent still reads or writes "
        "the topic, the deletion waits (reason TopicInUse).",
    )
    adopt_existing: bool = Field(
        False,
        description="Manage a Kafka topic that already exists (created outside this resource): its config is "
        "then made to match spec.config (overrides not listed are removed) and, with deletionPolicy Delete, "
        "deleting this resource deletes it. Without it, an existing topic is left alone and reported as "
        "TopicExists.",
    )

    def effective_topic_name(self, metadata_name: str) -> str:
        """The Kafka topic this spec manages: ``topicName`` or the resource's name."""
        return self.topic_name or metadata_name


class TicketTopicStatus(ResourceModel):
    """Observed state of the Kafka topic, written by the operator."""

    observed_generation: int | None = Field(None, ge=0, description="The spec generation this status describes.")
    topic_name: str | None = Field(
        None, max_length=TOPIC_NAME_MAX_LENGTH, description="The Kafka topic this resource manages."
    )
    topic_id: str | None = Field(None, max_length=64, description="Kafka's topic id (changes when it is recreated).")
    partitions: int | None = Field(None, ge=0, description="Partitions the topic has in Kafka.")
    replication_factor: int | None = Field(None, ge=0, description="Replication factor the topic has in Kafka.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready (the topic exists as specified), PartitionsInSync, ReplicationFactorInSync, "
        "ConfigInSync; reasons such as NotSupported, ResourceConflict, KafkaUnavailable say why not.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )

    def condition(self, type_: ConditionType) -> Condition | None:
        """The condition of ``type_``, if reported."""
        return next((c for c in self.conditions if c.type == type_), None)

    def ready_reason(self) -> str | None:
        """The reason of the ``Ready`` condition, if reported."""
        ready = self.condition(ConditionType.READY)
        return ready.reason if ready is not None else None

    def is_ready(self) -> bool:
        ready = self.condition(ConditionType.READY)
        return ready is not None and ready.status is ConditionStatus.TRUE


@dataclass(frozen=True)
class TicketTopic:
    """A TicketTopic as the handlers see it: identity plus parsed spec and status."""

    namespace: str
    name: str
    uid: str
    creation_timestamp: str
    generation: int
    spec: TicketTopicSpec
    status: TicketTopicStatus

    @property
    def topic_name(self) -> str:
        """The Kafka topic this resource manages (``status.topicName`` once recorded, so a change
        that slipped past admission cannot move it to another topic)."""
        return self.status.topic_name or self.spec.effective_topic_name(self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> TicketTopic:
        """Parse a kopf body (or a plain dict) of a TicketTopic; raises ``pydantic.ValidationError``."""
        meta = body["metadata"]
        status = {k: v for k, v in dict(body.get("status") or {}).items() if k in _STATUS_KEYS}
        return cls(
            namespace=meta["namespace"],
            name=meta["name"],
            uid=meta["uid"],
            creation_timestamp=meta.get("creationTimestamp") or "",
            generation=meta.get("generation") or 0,
            spec=TicketTopicSpec.model_validate(dict(body.get("spec") or {})),
            status=TicketTopicStatus.model_validate(status),
        )


#: Status keys this model owns; others (written by other tools) are ignored when parsing.
_STATUS_KEYS: Final = frozenset(f.alias or n for n, f in TicketTopicStatus.model_fields.items())


TICKET_TOPIC: Final = CustomResourceKind(
    kind="TicketTopic",
    plural="tickettopics",
    singular="tickettopic",
    short_names=("ttopic",),
    description="A Kafka topic managed by the operator: created (or adopted) with the requested partitions, "
    "replication factor and config, kept in sync, and deleted with the resource only when deletionPolicy is "
    "Delete.",
    spec=TicketTopicSpec,
    status=TicketTopicStatus,
    printer_columns=(
        PrinterColumn("Topic", ".status.topicName", description="Kafka topic"),
        PrinterColumn("Partitions", ".status.partitions", type="integer", description="Partitions in Kafka"),
        PrinterColumn("Replication", ".status.replicationFactor", type="integer", description="Replication factor"),
        PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status', description="Topic as specified"),
        PrinterColumn("Reason", '.status.conditions[?(@.type=="Ready")].reason', description="Why (not) Ready"),
        PrinterColumn("Policy", ".spec.deletionPolicy", description="Retain or Delete", priority=1),
        PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
    ),
    root_rules=(
        Rule(
            "has(self.spec.topicName) || size(self.metadata.name) <= 249",
            "metadata.name is longer than Kafka's 249-character limit for topic names: set a shorter spec.topicName",
            field_path=".metadata.name",
        ),
        Rule(
            " && ".join(
                f"!(has(self.spec.topicName) ? self.spec.topicName : self.metadata.name).startsWith('{prefix}')"
                for prefix in RESERVED_TOPIC_PREFIXES
            ),
            "topics whose names start with '_' (Kafka's internal topics such as __consumer_offsets) or "
            "'srs.internal.' are reserved: choose another spec.topicName",
            field_path=".spec.topicName",
        ),
        Rule(
            "has(self.spec.topicName) == has(oldSelf.spec.topicName) || "
            "(has(self.spec.topicName) ? self.spec.topicName : oldSelf.spec.topicName) == self.metadata.name",
            "spec.topicName is immutable: it may only be added or removed when it equals metadata.name (the "
            "topic it names cannot change)",
            field_path=".spec.topicName",
        ),
    ),
)
