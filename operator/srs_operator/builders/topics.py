"""Pure TicketTopic logic: what to do to a Kafka topic, who owns it, what status to report.

No I/O here. The handlers describe the topic (``TopicState``), call :func:`plan_topic`,
carry out the plan through the Kafka admin client, and report :func:`ready_status` (or
one of the ``*_status`` functions for the cases where nothing could be done). Every
message is computed from state only — no clocks, no counters — so reconciling an
unchanged topic produces an identical status and therefore no write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from srs_operator.clients.kafka_admin import ConfigState, TopicState
from srs_operator.models.conditions import Condition, ConditionStatus, set_condition
from srs_operator.models.tickettopic import (
    RESERVED_TOPIC_PREFIXES,
    ConditionType,
    DeletionPolicy,
    Reason,
    TicketTopic,
    TicketTopicSpec,
    TicketTopicStatus,
)
from srs_operator.namespaces import matches

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


# -- config -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigDelta:
    """An ``incremental_alter_configs`` request: keys to SET and overrides to DELETE."""

    set: Mapping[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.set or self.delete)

    def describe(self) -> str:
        """``set retention.ms=1000; removed cleanup.policy`` (for Events)."""
        parts = []
        if self.set:
            parts.append("set " + ", ".join(f"{k}={v}" for k, v in self.set.items()))
        if self.delete:
            parts.append("removed " + ", ".join(self.delete))
        return "; ".join(parts)


def same_config_value(desired: str, actual: str | None) -> bool:
    """Whether Kafka's stored ``actual`` is its spelling of ``desired``. Kafka normalises what
    it stores (``True`` → ``true``, ``0100`` → ``100``, surrounding blanks dropped); comparing
    literally would re-apply such a value on every reconcile."""
    if actual is None:
        return False
    want, have = desired.strip(), actual.strip()
    if want == have:
        return True
    if {want.lower(), have.lower()} <= {"true", "false"}:
        return want.lower() == have.lower()
    for number in (int, float):
        try:
            return bool(number(want) == number(have))
        except ValueError:
            continue
    if "," in want or "," in have:
        return [v.strip() for v in want.split(",")] == [v.strip() for v in have.split(",")]
    return False


def diff_config(desired: Mapping[str, str], observed: Mapping[str, ConfigState]) -> ConfigDelta:
    """SET every desired key that is not already a topic override with that value (a key
    that merely has the desired value as a broker default is pinned on the topic, so a
    later change of the broker default does not move it); DELETE every topic override
    the spec no longer lists. Broker defaults and static configs are never touched."""
    to_set = {
        key: value
        for key, value in sorted(desired.items())
        if not (
            (entry := observed.get(key)) is not None and entry.is_override and same_config_value(value, entry.value)
        )
    }
    to_delete = tuple(sorted(k for k, v in observed.items() if v.is_override and not v.read_only and k not in desired))
    return ConfigDelta(set=to_set, delete=to_delete)


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
    config: ConfigDelta = ConfigDelta()
    partitions_not_supported: str | None = None
    replication_not_supported: str | None = None

    @property
    def changes_kafka(self) -> bool:
        return self.create or self.increase_partitions_to is not None or bool(self.config)


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


# -- status -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AppliedChanges:
    """What a reconcile did, and what it could not do, to report in the status."""

    config_error: str | None = None


def ready_status(
    topic: TicketTopic, observed: TopicState, plan: TopicPlan, applied: AppliedChanges = AppliedChanges()
) -> TicketTopicStatus:
    """Status after a reconcile reached Kafka; ``observed`` is the topic after the plan ran."""
    gen = topic.generation
    conditions = list(topic.status.conditions)
    spec = topic.spec

    conditions = _aspect_condition(
        conditions, ConditionType.PARTITIONS_IN_SYNC, plan.partitions_not_supported,
        spec.partitions is not None, f"{observed.partitions} partitions", gen,
    )  # fmt: skip
    conditions = _aspect_condition(
        conditions, ConditionType.REPLICATION_FACTOR_IN_SYNC, plan.replication_not_supported,
        spec.replication_factor is not None, f"replication factor {observed.replication_factor}", gen,
    )  # fmt: skip

    if applied.config_error:
        conditions = set_condition(
            conditions,
            ConditionType.CONFIG_IN_SYNC,
            ConditionStatus.FALSE,
            Reason.INVALID_CONFIG,
            applied.config_error,
            gen,
        )
    else:
        n = len(spec.config)
        conditions = set_condition(
            conditions,
            ConditionType.CONFIG_IN_SYNC,
            ConditionStatus.TRUE,
            Reason.IN_SYNC,
            f"{n} config override{'s' if n != 1 else ''}" if n else "no config overrides: broker defaults",
            gen,
        )

    problems = [m for m in (plan.partitions_not_supported, plan.replication_not_supported) if m]
    if applied.config_error:
        conditions = set_condition(
            conditions,
            ConditionType.READY,
            ConditionStatus.FALSE,
            Reason.INVALID_CONFIG,
            f"topic {observed.name} exists, but Kafka refused spec.config: {applied.config_error}",
            gen,
        )
    elif problems:
        conditions = set_condition(
            conditions, ConditionType.READY, ConditionStatus.FALSE, Reason.NOT_SUPPORTED, "; ".join(problems), gen
        )
    else:
        conditions = set_condition(
            conditions,
            ConditionType.READY,
            ConditionStatus.TRUE,
            Reason.IN_SYNC,
            f"topic {observed.name} exists as specified",
            gen,
        )
    return TicketTopicStatus(
        observed_generation=gen,
        topic_name=observed.name,
        topic_id=observed.topic_id or topic.status.topic_id,
        partitions=observed.partitions,
        replication_factor=observed.replication_factor,
        conditions=_ordered(conditions),
    )


def not_ready_status(topic: TicketTopic, reason: Reason, message: str) -> TicketTopicStatus:
    """Ready=False for ``reason``; what was last observed of the topic stays as it was."""
    conditions = set_condition(
        list(topic.status.conditions), ConditionType.READY, ConditionStatus.FALSE, reason, message, topic.generation
    )
    return topic.status.model_copy(
        update={
            "observed_generation": topic.generation,
            "topic_name": topic.topic_name,
            "conditions": _ordered(conditions),
        }
    )


def conflict_status(topic: TicketTopic, winner: Claim) -> TicketTopicStatus:
    """The newer of two TicketTopics for one topic: it reports and manages nothing."""
    message = (
        f"topic {topic.topic_name} is already managed by TicketTopic {winner.ref} (created earlier); this one "
        f"changes nothing: delete it or choose another spec.topicName"
    )
    ready = next((c for c in topic.status.conditions if c.type == ConditionType.READY), None)
    conditions = set_condition(
        [ready] if ready else [],
        ConditionType.READY,
        ConditionStatus.FALSE,
        Reason.RESOURCE_CONFLICT,
        message,
        topic.generation,
    )
    return TicketTopicStatus(observed_generation=topic.generation, topic_name=topic.topic_name, conditions=conditions)


_CONDITION_ORDER = [t.value for t in ConditionType]


def _ordered(conditions: Sequence[Condition]) -> list[Condition]:
    """Ready first, then the aspects, always in the same order (a stable status)."""
    return sorted(
        conditions,
        key=lambda c: (_CONDITION_ORDER.index(c.type) if c.type in _CONDITION_ORDER else len(_CONDITION_ORDER), c.type),
    )


def status_patch(current: Mapping[str, object] | None, desired: TicketTopicStatus) -> dict[str, object] | None:
    """The merge patch that turns ``current`` (the object's status) into ``desired``, or None
    when they already agree — the check that keeps a steady state free of writes."""
    want = desired.model_dump(mode="json", by_alias=True, exclude_none=True)
    have = dict(current or {})
    patch: dict[str, object] = {k: v for k, v in want.items() if have.get(k) != v}
    # Fields that no longer apply (e.g. topicId of a TicketTopic in conflict) are removed.
    patch.update({k: None for k in have if k in _OWNED and k not in want})
    return patch or None


_OWNED = frozenset(f.alias or n for n, f in TicketTopicStatus.model_fields.items())


# -- level check ------------------------------------------------------------------------


def drift(topic: TicketTopic, claim: Claim, winner: Claim, observed: TopicState | None) -> str | None:
    """Why ``topic`` (claiming its topic with ``claim``; ``winner`` owns the topic) needs a
    reconcile given what Kafka says, or None when all is as reported.

    Resources waiting on a spec change (Kafka refused this generation, a name not allowed)
    are left alone, so a broken resource is not stamped forever; one that reported Kafka
    unreachable is reconciled as soon as the level check reaches Kafka again.
    """
    if claim.being_deleted:
        return None
    ready = topic.status.condition(ConditionType.READY)
    reason = ready.reason if ready is not None else None
    if reason == Reason.KAFKA_UNAVAILABLE:
        # The level check reaches Kafka (it got this far): reconcile now rather than at the
        # end of a backoff that grew during the outage.
        return "Kafka is reachable again"
    if reason in (Reason.INVALID_CONFIG, Reason.KAFKA_ERROR) and topic.status.observed_generation == topic.generation:
        return None
    if reason == Reason.TOPIC_NAME_NOT_ALLOWED:
        return None  # waits for a new name (a spec change) or other rules (an operator restart)
    if reason == Reason.TOPIC_EXISTS and observed is not None:
        return None  # someone else's topic, left alone until spec.adoptExisting is set
    current = topic.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    if winner.uid != topic.uid:
        return "the topic's owner changed" if status_patch(current, conflict_status(topic, winner)) else None
    if observed is None:
        return f"topic {topic.topic_name} does not exist in Kafka"
    plan = plan_topic(topic.spec, observed)
    if plan.increase_partitions_to is not None:
        return f"topic {topic.topic_name} has {observed.partitions} partitions, the spec asks for more"
    if plan.config:
        return f"config of topic {topic.topic_name} differs from the spec ({plan.config.describe()})"
    if status_patch(current, ready_status(topic, observed, plan)):
        return f"status of {topic.topic_name} is out of date"
    return None


def _aspect_condition(
    conditions: list[Condition],
    type_: ConditionType,
    not_supported: str | None,
    set_in_spec: bool,
    in_sync_message: str,
    generation: int | None,
) -> list[Condition]:
    """Partitions or replication factor: NotSupported with the reason, else in sync (with
    the spec's value, or with the broker's default when the spec leaves it out)."""
    if not_supported:
        return set_condition(conditions, type_, ConditionStatus.FALSE, Reason.NOT_SUPPORTED, not_supported, generation)
    reason = Reason.IN_SYNC if set_in_spec else Reason.BROKER_DEFAULT
    return set_condition(conditions, type_, ConditionStatus.TRUE, reason, in_sync_message, generation)
