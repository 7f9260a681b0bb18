"""Where a TicketTopic becomes a plan for its Kafka topic, and who owns a topic name: pure, no I/O.

The reconcile describes the topic (``TopicState``), calls :func:`plan_topic`, carries the
plan out through the Kafka admin client, and reports what
:mod:`~srs_operator.builders.tickettopic_status` computes. Ownership: the oldest
TicketTopic that claims a name manages the topic (:func:`owner`); prefix rules say which
names a namespace may claim at all (:func:`name_violation`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from srs_operator.builders.namespace_patterns import matches
from srs_operator.builders.topic_config import ConfigDelta, diff_config
from srs_operator.models.tickettopic import RESERVED_TOPIC_PREFIXES, DeletionPolicy, TicketTopic, TicketTopicSpec
from srs_operator.models.topicstate import TopicState

# -- which names a namespace may claim ----------------------------------------------------


@dataclass(frozen=True)
class PrefixRule:
    """Namespaces matching ``namespaces`` (kopf-style glob) may claim topics starting with one
    of ``prefixes``; ``{namespace}`` in a prefix stands for the namespace's own name."""

    namespaces: str
    prefixes: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> PrefixRule:
        """``GLOB=PREFIX[,PREFIX...]``, e.g. ``team-a=team-a.,shared.`` or ``*={namespace}.``."""
        glob, sep, prefixes = text.partition("=")
        parts = tuple(p.strip() for p in prefixes.split(",") if p.strip())
        if not sep or not glob.strip() or not parts:
            raise ValueError(f"a topic prefix rule is NAMESPACE_GLOB=PREFIX[,PREFIX...], not {text!r}")
        return cls(glob.strip(), parts)

    def __str__(self) -> str:
        return f"{self.namespaces}={','.join(self.prefixes)}"


def name_violation(namespace: str, topic_name: str, rules: Sequence[PrefixRule]) -> str | None:
    """Why ``namespace`` may not claim ``topic_name`` (None: it may). Reserved names are refused
    everywhere; with prefix rules configured, a namespace may claim only the prefixes of the
    rules that match it (a namespace no rule matches may claim nothing)."""
    reserved = next((p for p in RESERVED_TOPIC_PREFIXES if topic_name.startswith(p)), None)
    if reserved is not None:
        return f"topic {topic_name} is reserved (names starting with {reserved!r} are internal): choose another name"
    if not rules:
        return None
    allowed = [
        prefix.replace("{namespace}", namespace)
        for rule in rules
        if matches(namespace, rule.namespaces)
        for prefix in rule.prefixes
    ]
    if any(topic_name.startswith(prefix) for prefix in allowed):
        return None
    if not allowed:
        return (
            f"namespace {namespace} may not claim any Kafka topic (no topic prefix rule of the operator matches it; "
            f"rules: {'; '.join(str(r) for r in rules)})"
        )
    return (
        f"namespace {namespace} may only claim topics starting with {', '.join(sorted(set(allowed)))} "
        f"(the operator's topic prefix rules); {topic_name} is not one: rename spec.topicName"
    )


# -- partitions and replication factor --------------------------------------------------


@dataclass(frozen=True)
class PartitionPlan:
    """Grow to ``increase_to`` partitions, or report ``not_supported`` (never shrink)."""

    increase_to: int | None = None
    not_supported: str | None = None


def plan_partitions(desired: int | None, actual: int) -> PartitionPlan:
    """``None`` desired means the broker's default at creation: nothing to do afterwards."""
    if desired is None or desired == actual:
        return PartitionPlan()
    if desired > actual:
        return PartitionPlan(increase_to=desired)
    return PartitionPlan(
        not_supported=f"spec.partitions is {desired} but the topic has {actual}: Kafka cannot remove partitions, "
        f"so the topic keeps {actual} (set spec.partitions to {actual} or more, or use a new topic)"
    )


def plan_replication_factor(desired: int | None, actual: int) -> str | None:
    """A NotSupported message when the replication factor differs, else None."""
    if desired is None or desired == actual:
        return None
    return (
        f"spec.replicationFactor is {desired} but the topic has {actual}: the operator does not reassign "
        f"replicas, so the topic keeps {actual} (reassign partitions with Kafka's tools, then update the spec)"
    )


# -- the whole topic --------------------------------------------------------------------


@dataclass(frozen=True)
class TopicPlan:
    """What a reconcile does to the topic (empty for a topic that is already as specified)."""

    create: bool = False
    increase_partitions_to: int | None = None
    config: ConfigDelta = field(default_factory=ConfigDelta)
    partitions_not_supported: str | None = None
    replication_not_supported: str | None = None


def plan_topic(spec: TicketTopicSpec, observed: TopicState | None) -> TopicPlan:
    """Compare the spec with the topic Kafka describes (None: it does not exist)."""
    if observed is None:
        return TopicPlan(create=True)
    partitions = plan_partitions(spec.partitions, observed.partitions)
    return TopicPlan(
        increase_partitions_to=partitions.increase_to,
        config=diff_config(spec.config, observed.config),
        partitions_not_supported=partitions.not_supported,
        replication_not_supported=plan_replication_factor(spec.replication_factor, observed.replication_factor),
    )


# -- ownership --------------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    """One TicketTopic's claim on a Kafka topic name."""

    namespace: str
    name: str
    uid: str
    creation_timestamp: str
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN
    being_deleted: bool = False

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def seniority(self) -> tuple[str, str]:
        # RFC 3339 UTC timestamps of the API server sort as text; uid breaks same-second ties.
        return (self.creation_timestamp, self.uid)


def claim_of(topic: TicketTopic, *, being_deleted: bool = False) -> Claim:
    return Claim(
        namespace=topic.namespace,
        name=topic.name,
        uid=topic.uid,
        creation_timestamp=topic.creation_timestamp,
        deletion_policy=topic.spec.deletion_policy,
        being_deleted=being_deleted,
    )


def owner(claims: Iterable[Claim]) -> Claim | None:
    """The claim that manages the topic: the oldest TicketTopic (then the smallest uid)."""
    return min(claims, key=Claim.seniority, default=None)


def other_references(claims: Iterable[Claim], uid: str) -> list[Claim]:
    """TicketTopics other than ``uid`` that still want the topic to exist. One that is being
    deleted with policy Delete does not: it is on its way out and would delete it too."""
    return sorted(
        (c for c in claims if c.uid != uid and not (c.being_deleted and c.deletion_policy is DeletionPolicy.DELETE)),
        key=Claim.seniority,
    )
