"""What a TicketTopic's status should say, and whether Kafka drifted from it: pure, no I/O.

Every message is computed from state only — no clocks (beyond ``set_condition``'s
transition time), no counters — so reconciling an unchanged topic produces an identical
status and therefore no write (:func:`status_patch` is None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from srs_contracts.timestamps import rfc3339
from srs_operator.builders.tickettopic import Claim, TopicPlan
from srs_operator.models.conditions import Condition, ConditionStatus, set_condition
from srs_operator.models.tickettopic import ConditionType, Reason, TicketTopic, TicketTopicStatus
from srs_operator.models.topicstate import TopicState

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


def invalid_spec_status(message: str) -> dict[str, object]:
    """The status of a TicketTopic whose spec does not parse (only with an older CRD
    installed: admission validates the spec): Ready=False, InvalidSpec, nothing else."""
    ready = Condition(
        type=ConditionType.READY,
        status=ConditionStatus.FALSE,
        reason=Reason.INVALID_SPEC,
        message=message,
        last_transition_time=rfc3339(timespec="seconds"),
    )
    return {"conditions": [ready.model_dump(mode="json", by_alias=True, exclude_none=True)]}


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
