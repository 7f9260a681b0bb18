"""The TicketTopic reconcile service against a small in-memory Kafka admin client.

What ``TopicReconciler`` decides — which Kafka writes, which status, which Events — for
the cases a user meets, without a broker. The scenario tests against the real broker
(``tests/integration/test_tickettopic_*.py``) prove the same paths end to end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from srs_operator.builders.tickettopic import Claim, claim_of
from srs_operator.builders.tickettopic_status import status_patch
from srs_operator.clients.kafka_admin import KafkaAdminSettings, KafkaUnavailable
from srs_operator.models.tickettopic import DeletionPolicy, Reason, TicketTopic
from srs_operator.models.topicstate import ConfigState, TopicState
from srs_operator.services.tickettopic_reconciler import Outcome, TopicReconciler
from srs_operator.services.tickettopic_settings import TopicSettings

pytestmark = pytest.mark.unit

KAFKA = KafkaAdminSettings({"bootstrap.servers": "kafka.test:9092"})


@dataclass
class FakeAdmin:
    """The ``TopicAdmin`` calls the reconciler makes, on topics kept in a dict."""

    topics: dict[str, TopicState] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    unavailable: bool = False
    settings: KafkaAdminSettings = KAFKA

    def _check(self) -> None:
        if self.unavailable:
            raise KafkaUnavailable("connection refused")

    async def describe(self, topic: str) -> TopicState | None:
        self._check()
        return self.topics.get(topic)

    async def create(
        self, topic: str, partitions: int | None, replication_factor: int | None, config: Mapping[str, str]
    ) -> bool:
        self._check()
        self.writes.append(("create", topic))
        if topic in self.topics:
            return False
        overrides = {k: ConfigState(v, is_override=True) for k, v in config.items()}
        self.topics[topic] = TopicState(topic, f"id-{topic}", partitions or 1, replication_factor or 1, overrides)
        return True

    async def create_partitions(self, topic: str, total: int) -> None:
        self._check()
        self.writes.append(("create_partitions", topic))
        self.topics[topic] = replace(self.topics[topic], partitions=total)

    async def alter_config(self, topic: str, set_: Mapping[str, str], delete: Collection[str]) -> None:
        self._check()
        self.writes.append(("alter_config", topic))
        config = {k: v for k, v in self.topics[topic].config.items() if k not in delete}
        config.update({k: ConfigState(v, is_override=True) for k, v in set_.items()})
        self.topics[topic] = replace(self.topics[topic], config=config)

    async def delete(self, topic: str) -> bool:
        self._check()
        self.writes.append(("delete", topic))
        return self.topics.pop(topic, None) is not None


def ticket_topic(
    spec: dict[str, Any], status: dict[str, Any] | None = None, *, name: str = "orders", uid: str = "uid-1"
) -> TicketTopic:
    return TicketTopic.from_body(
        {
            "metadata": {
                "namespace": "team-a",
                "name": name,
                "uid": uid,
                "generation": 1,
                "creationTimestamp": "2026-11-30T10:00:00Z",
            },
            "spec": spec,
            "status": status or {},
        }
    )


def reconcile(admin: FakeAdmin, topic: TicketTopic, claims: list[Claim] | None = None) -> Outcome:
    reconciler = TopicReconciler(admin, TopicSettings())  # type: ignore[arg-type]
    return asyncio.run(reconciler.reconcile(topic, claims or []))


def reported(topic: TicketTopic, outcome: Outcome) -> TicketTopic:
    """The resource as it reads after the handler wrote ``outcome``'s status."""
    assert outcome.status is not None
    return replace(topic, status=outcome.status)


def test_a_missing_topic_is_created_as_specified_and_reported_ready() -> None:
    admin = FakeAdmin()
    topic = ticket_topic({"partitions": 3, "config": {"retention.ms": "3600000"}})

    outcome = reconcile(admin, topic)

    assert admin.writes == [("create", "orders")]
    assert admin.topics["orders"].partitions == 3
    assert outcome.status is not None and outcome.status.is_ready()
    assert outcome.status.topic_id == "id-orders"
    assert [(e.type, e.reason) for e in outcome.events] == [("Normal", Reason.CREATED)]


def test_an_unchanged_topic_makes_no_kafka_write_no_event_and_no_status_change() -> None:
    admin = FakeAdmin()
    topic = ticket_topic({"partitions": 3, "config": {"retention.ms": "3600000"}})
    first = reported(topic, reconcile(admin, topic))
    admin.writes.clear()

    again = reconcile(admin, first)

    assert admin.writes == []
    assert again.events == ()
    assert again.status is not None
    current = first.status.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert status_patch(current, again.status) is None


def test_someone_elses_topic_is_left_untouched_without_adopt_existing() -> None:
    admin = FakeAdmin(topics={"orders": TopicState("orders", "id-theirs", 1, 1)})

    outcome = reconcile(admin, ticket_topic({"partitions": 6}))

    assert admin.writes == []
    assert outcome.status is not None and outcome.status.ready_reason() == Reason.TOPIC_EXISTS
    assert [e.reason for e in outcome.events] == [Reason.TOPIC_EXISTS]


def test_a_partition_decrease_is_reported_not_applied() -> None:
    admin = FakeAdmin(topics={"orders": TopicState("orders", "id-orders", 6, 1)})
    topic = ticket_topic({"partitions": 3}, {"topicName": "orders", "topicId": "id-orders"})

    outcome = reconcile(admin, topic)

    assert admin.writes == []
    assert admin.topics["orders"].partitions == 6
    assert outcome.status is not None and outcome.status.ready_reason() == Reason.NOT_SUPPORTED
    assert [(e.type, e.reason) for e in outcome.events] == [("Warning", Reason.NOT_SUPPORTED)]


def test_more_partitions_and_a_config_change_are_applied() -> None:
    admin = FakeAdmin(topics={"orders": TopicState("orders", "id-orders", 2, 1)})
    topic = ticket_topic({"partitions": 4, "config": {"retention.ms": "1000"}}, {"topicId": "id-orders"})

    outcome = reconcile(admin, topic)

    assert admin.writes == [("create_partitions", "orders"), ("alter_config", "orders")]
    assert admin.topics["orders"].overrides == {"retention.ms": "1000"}
    assert [e.reason for e in outcome.events] == [Reason.PARTITIONS_INCREASED, Reason.CONFIG_UPDATED]
    assert outcome.status is not None and outcome.status.is_ready()


def test_kafka_unreachable_is_reported_once_and_retried_with_backoff() -> None:
    admin = FakeAdmin(unavailable=True)
    topic = ticket_topic({"partitions": 1})

    outcome = reconcile(admin, topic)
    assert outcome.retry
    assert outcome.status is not None and outcome.status.ready_reason() == Reason.KAFKA_UNAVAILABLE
    assert [e.reason for e in outcome.events] == [Reason.KAFKA_UNAVAILABLE]

    again = reconcile(admin, reported(topic, outcome))
    assert again.retry
    assert again.events == ()  # the condition already says so: no second Warning


def test_the_newer_of_two_resources_for_one_topic_changes_nothing() -> None:
    admin = FakeAdmin()
    older = claim_of(ticket_topic({}, name="orders-a", uid="uid-0"))
    newer = ticket_topic({"topicName": "orders"}, name="orders-b", uid="uid-9")
    older = replace(older, creation_timestamp="2026-11-30T09:00:00Z")

    outcome = reconcile(admin, newer, [older])

    assert admin.writes == []
    assert outcome.status is not None and outcome.status.ready_reason() == Reason.RESOURCE_CONFLICT


def test_deletion_keeps_a_topic_another_resource_still_claims() -> None:
    admin = FakeAdmin(topics={"orders": TopicState("orders", "id-orders", 1, 1)})
    topic = ticket_topic({"deletionPolicy": DeletionPolicy.DELETE.value}, {"topicId": "id-orders"})
    other = claim_of(ticket_topic({}, name="orders", uid="uid-2"))
    reconciler = TopicReconciler(admin, TopicSettings())  # type: ignore[arg-type]

    outcome = asyncio.run(reconciler.delete(topic, [other], waited=0.0))

    assert admin.writes == []
    assert [e.reason for e in outcome.events] == [Reason.RETAINED]


def test_deletion_deletes_the_topic_this_resource_manages() -> None:
    admin = FakeAdmin(topics={"orders": TopicState("orders", "id-orders", 1, 1)})
    topic = ticket_topic({"deletionPolicy": DeletionPolicy.DELETE.value}, {"topicId": "id-orders"})
    reconciler = TopicReconciler(admin, TopicSettings())  # type: ignore[arg-type]

    outcome = asyncio.run(reconciler.delete(topic, [], waited=0.0))

    assert admin.writes == [("delete", "orders")]
    assert "orders" not in admin.topics
    assert [e.reason for e in outcome.events] == [Reason.DELETED]
