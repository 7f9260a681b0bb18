"""What the TicketTopic controller decides, given a spec and what Kafka describes (pure logic)."""

from __future__ import annotations

from typing import Any

import pytest

from srs_operator.builders.tickettopic import (
    Claim,
    PrefixRule,
    TopicPlan,
    name_violation,
    other_references,
    owner,
    plan_partitions,
    plan_replication_factor,
    plan_topic,
)
from srs_operator.builders.tickettopic_status import (
    AppliedChanges,
    conflict_status,
    not_ready_status,
    ready_status,
    status_patch,
)
from srs_operator.builders.topic_config import ConfigDelta, diff_config, same_config_value
from srs_operator.models.conditions import ConditionStatus
from srs_operator.models.tickettopic import (
    ConditionType,
    DeletionPolicy,
    Reason,
    TicketTopic,
    TicketTopicSpec,
)
from srs_operator.models.topicstate import ConfigState, TopicState
from srs_operator.services.tickettopic_settings import TopicSettings

pytestmark = pytest.mark.unit

OVERRIDE = ConfigState("x", is_override=True)


def override(value: str) -> ConfigState:
    return ConfigState(value, is_override=True)


def default(value: str) -> ConfigState:
    return ConfigState(value, is_override=False)


def body(
    name: str = "orders",
    spec: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
    *,
    uid: str = "uid-a",
    created: str = "2026-01-01T00:00:00Z",
    generation: int = 1,
) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": name,
            "uid": uid,
            "creationTimestamp": created,
            "generation": generation,
        },
        "spec": spec if spec is not None else {"partitions": 3, "replicationFactor": 1},
        "status": status or {},
    }


def state(
    partitions: int = 3, rf: int = 1, config: dict[str, ConfigState] | None = None, name: str = "orders"
) -> TopicState:
    return TopicState(name, "tid-1", partitions, rf, config or {})


# -- config ---------------------------------------------------------------------------


def test_config_keys_that_differ_or_are_missing_are_set() -> None:
    delta = diff_config(
        {"retention.ms": "1000", "cleanup.policy": "compact"},
        {"retention.ms": override("5000"), "segment.bytes": default("1073741824")},
    )
    assert dict(delta.set) == {"cleanup.policy": "compact", "retention.ms": "1000"}
    assert delta.delete == ()


def test_config_override_already_as_specified_is_left_alone() -> None:
    assert not diff_config({"retention.ms": "1000"}, {"retention.ms": override("1000")})


@pytest.mark.parametrize(
    ("desired", "stored"),
    [("True", "true"), ("0100", "100"), ("+3600000", "3600000"), (" 2000 ", "2000"), ("0.50", "0.5"),
     ("delete, compact", "delete,compact")],
)  # fmt: skip
def test_config_values_kafka_normalises_are_not_reapplied(desired: str, stored: str) -> None:
    assert same_config_value(desired, stored)
    assert not diff_config({"some.key": desired}, {"some.key": override(stored)})


@pytest.mark.parametrize(
    ("desired", "stored"),
    [("1000", "1001"), ("true", "false"), ("compact", "delete"), ("delete,compact", "compact,delete"), ("x", None)],
)
def test_config_values_that_really_differ_are_set(desired: str, stored: str | None) -> None:
    assert not same_config_value(desired, stored)


def test_config_value_equal_to_a_broker_default_is_pinned_on_the_topic() -> None:
    # The spec asks for it, so a later change of the broker default must not move it.
    delta = diff_config({"cleanup.policy": "delete"}, {"cleanup.policy": default("delete")})
    assert dict(delta.set) == {"cleanup.policy": "delete"}


def test_overrides_removed_from_the_spec_are_deleted_but_broker_defaults_never() -> None:
    delta = diff_config(
        {},
        {
            "retention.ms": override("1000"),
            "cleanup.policy": default("delete"),
            "min.insync.replicas": ConfigState("1", is_override=False),  # static broker config
            "message.format.version": ConfigState("3.0", is_override=True, read_only=True),
        },
    )
    assert delta.set == {}
    assert delta.delete == ("retention.ms",)
    assert delta.describe() == "removed retention.ms"


def test_config_delta_describes_itself_for_events() -> None:
    delta = ConfigDelta(set={"a.b": "1"}, delete=("c.d",))
    assert delta.describe() == "set a.b=1; removed c.d"


# -- partitions and replication factor ------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "actual", "increase", "refused"),
    [(None, 5, None, False), (3, 3, None, False), (6, 3, 6, False), (2, 3, None, True)],
)
def test_partitions_only_grow(desired: int | None, actual: int, increase: int | None, refused: bool) -> None:
    plan = plan_partitions(desired, actual)
    assert plan.increase_to == increase
    assert (plan.not_supported is not None) is refused


def test_partition_decrease_is_reported_with_both_numbers() -> None:
    message = plan_partitions(2, 3).not_supported
    assert message is not None
    assert "spec.partitions is 2" in message
    assert "has 3" in message


def test_replication_factor_change_is_not_supported() -> None:
    assert plan_replication_factor(None, 3) is None
    assert plan_replication_factor(1, 1) is None
    message = plan_replication_factor(3, 1)
    assert message is not None
    assert "spec.replicationFactor is 3" in message


def test_a_missing_topic_is_created_and_an_existing_one_is_diffed() -> None:
    spec = TicketTopicSpec.model_validate({"partitions": 4, "config": {"retention.ms": "1"}})
    assert plan_topic(spec, None).create
    plan = plan_topic(spec, state(partitions=2))
    assert not plan.create
    assert plan.increase_partitions_to == 4
    assert dict(plan.config.set) == {"retention.ms": "1"}


def test_a_topic_as_specified_needs_nothing() -> None:
    spec = TicketTopicSpec.model_validate({"partitions": 3, "config": {"retention.ms": "1"}})
    plan = plan_topic(spec, state(config={"retention.ms": override("1")}))
    assert plan == TopicPlan()


# -- ownership ------------------------------------------------------------------------


def claim(uid: str, created: str, **kw: Any) -> Claim:
    return Claim("ns", f"tt-{uid}", uid, created, **kw)


def test_the_oldest_ticket_topic_owns_the_topic() -> None:
    older = claim("zzz", "2026-01-01T00:00:00Z")
    newer = claim("aaa", "2026-01-01T00:00:01Z")
    assert owner([newer, older]) == older


def test_same_second_creation_is_decided_by_uid() -> None:
    a = claim("aaa", "2026-01-01T00:00:00Z")
    b = claim("bbb", "2026-01-01T00:00:00Z")
    assert owner([b, a]) == a
    assert owner([]) is None


def test_other_references_ignore_self_and_ticket_topics_deleting_the_topic_too() -> None:
    me = claim("me", "2026-01-01T00:00:00Z", deletion_policy=DeletionPolicy.DELETE, being_deleted=True)
    leaving = claim("x", "2026-01-01T00:00:01Z", deletion_policy=DeletionPolicy.DELETE, being_deleted=True)
    retained = claim("y", "2026-01-01T00:00:02Z", deletion_policy=DeletionPolicy.RETAIN, being_deleted=True)
    staying = claim("z", "2026-01-01T00:00:03Z")
    assert other_references([me, leaving, retained, staying], "me") == [retained, staying]


# -- status ---------------------------------------------------------------------------


def test_ready_status_describes_the_topic_and_is_stable() -> None:
    topic = TicketTopic.from_body(body())
    observed = state()
    plan = plan_topic(topic.spec, observed)
    status = ready_status(topic, observed, plan)
    assert status.is_ready()
    assert (status.topic_name, status.topic_id, status.partitions, status.replication_factor) == (
        "orders",
        "tid-1",
        3,
        1,
    )
    assert [c.type for c in status.conditions] == [t.value for t in ConditionType]
    # Reconciling again with nothing changed yields no patch at all.
    again = TicketTopic.from_body(body(status=status.model_dump(mode="json", by_alias=True, exclude_none=True)))
    current = again.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert status_patch(current, ready_status(again, observed, plan)) is None


def test_partition_decrease_makes_ready_false_with_reason_not_supported() -> None:
    topic = TicketTopic.from_body(body(spec={"partitions": 2}))
    observed = state(partitions=3)
    status = ready_status(topic, observed, plan_topic(topic.spec, observed))
    ready = status.condition(ConditionType.READY)
    partitions = status.condition(ConditionType.PARTITIONS_IN_SYNC)
    assert ready is not None and ready.status is ConditionStatus.FALSE and ready.reason == Reason.NOT_SUPPORTED
    assert partitions is not None and partitions.reason == Reason.NOT_SUPPORTED
    assert status.partitions == 3


def test_refused_config_makes_ready_false_with_reason_invalid_config() -> None:
    topic = TicketTopic.from_body(body(spec={"config": {"retention.ms": "soon"}}))
    observed = state()
    status = ready_status(
        topic, observed, plan_topic(topic.spec, observed), AppliedChanges(config_error="INVALID_CONFIG: x")
    )
    ready = status.condition(ConditionType.READY)
    assert ready is not None and ready.reason == Reason.INVALID_CONFIG
    config = status.condition(ConditionType.CONFIG_IN_SYNC)
    assert config is not None and config.status is ConditionStatus.FALSE


def test_conflict_status_names_the_owner_and_drops_what_it_does_not_manage() -> None:
    topic = TicketTopic.from_body(body(status={"topicId": "old", "partitions": 3, "topicName": "orders"}))
    winner = claim("older", "2025-01-01T00:00:00Z")
    status = conflict_status(topic, winner)
    ready = status.condition(ConditionType.READY)
    assert ready is not None and ready.reason == Reason.RESOURCE_CONFLICT
    assert "ns/tt-older" in ready.message
    patch = status_patch({"topicId": "old", "partitions": 3, "topicName": "orders"}, status)
    assert patch is not None
    assert patch["topicId"] is None
    assert patch["partitions"] is None


def test_last_transition_time_moves_only_when_the_status_changes() -> None:
    topic = TicketTopic.from_body(body())
    first = not_ready_status(topic, Reason.KAFKA_UNAVAILABLE, "down")
    again = TicketTopic.from_body(body(status=first.model_dump(mode="json", by_alias=True, exclude_none=True)))
    second = not_ready_status(again, Reason.KAFKA_UNAVAILABLE, "down")
    assert first.conditions[0].last_transition_time == second.conditions[0].last_transition_time


# -- model ----------------------------------------------------------------------------


def test_topic_name_defaults_to_the_resource_name_and_then_sticks_to_the_status() -> None:
    assert TicketTopic.from_body(body(spec={})).topic_name == "orders"
    assert TicketTopic.from_body(body(spec={"topicName": "ticket.events"})).topic_name == "ticket.events"
    moved = TicketTopic.from_body(body(spec={"topicName": "other"}, status={"topicName": "ticket.events"}))
    assert moved.topic_name == "ticket.events"


def test_status_keys_of_other_writers_are_ignored() -> None:
    topic = TicketTopic.from_body(body(status={"kopf": {"progress": {}}, "partitions": 3}))
    assert topic.status.partitions == 3


# -- retries --------------------------------------------------------------------------


def test_backoff_doubles_per_retry_and_is_capped() -> None:
    settings = TopicSettings(retry_initial=2, retry_max=60)
    delays = [settings.backoff(n) for n in range(8)]
    assert 1.6 <= delays[0] <= 2.4
    assert 3.2 <= delays[1] <= 4.8
    assert all(d <= 72 for d in delays)
    assert delays[7] >= 48


def test_settings_come_from_the_environment() -> None:
    env = {"SRS_TOPIC_RESYNC_SECONDS": "7", "SRS_TOPIC_DELETE_TIMEOUT_SECONDS": "30"}
    settings = TopicSettings.from_env(env, resync_interval=100)
    assert settings.resync_interval == 7
    assert settings.delete_timeout == 30
    assert TopicSettings.from_env({}, resync_interval=100).resync_interval == 100


def test_reserved_topic_names_are_refused_in_every_namespace() -> None:
    for name in ("__consumer_offsets", "_schemas", "srs.internal.offsets"):
        assert "is reserved" in (name_violation("team-a", name, ()) or "")
    assert name_violation("team-a", "ticket.events", ()) is None


def test_prefix_rules_limit_each_namespace_to_its_own_names() -> None:
    rules = (PrefixRule.parse("*={namespace}."), PrefixRule.parse("support=ticket.,shared."))
    assert name_violation("team-a", "team-a.orders", rules) is None
    assert name_violation("support", "ticket.events", rules) is None
    refused = name_violation("team-b", "team-a.orders", rules)
    assert refused is not None and "may only claim topics starting with team-b." in refused
    only_some = (PrefixRule.parse("team-*=team."),)
    assert "may not claim any Kafka topic" in (name_violation("billing", "team.x", only_some) or "")


@pytest.mark.parametrize("text", ["no-equals", "=prefix", "glob=", "glob= , "])
def test_a_malformed_prefix_rule_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="NAMESPACE_GLOB=PREFIX"):
        PrefixRule.parse(text)
