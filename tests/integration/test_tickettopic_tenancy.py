"""Shared clusters: one team's TicketTopic cannot take, change or delete another team's topic.

The operator here runs with the prefix rule ``srs-test-tn-*={namespace}.`` (each namespace
may claim only topics named after itself) under its least-privilege identity. Existing
topics are adopted only with ``spec.adoptExisting``; a topic still used by a SupportAgent
is not deleted with its TicketTopic until no agent uses it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kubernetes import client

from tests.harness import wait_for
from tests.integration.operator_harness import Agents
from tests.integration.tickettopic_support import (
    TicketTopics,
    delete_topic_if_present,
    describe_topic,
)

pytestmark = pytest.mark.integration

NAMESPACE_PREFIX = "srs-test-tn-"
#: The tenancy rule under test: each namespace may claim only topics named after itself.
OPERATOR_ARGS = ["--topic-prefix-rule", f"{NAMESPACE_PREFIX}*={{namespace}}."]


@pytest.fixture
def team_a(ns: str) -> str:
    return ns


@pytest.fixture
def team_b(second_ns: str) -> str:
    return second_ns


@pytest.fixture
def cleanup(kafka_admin: AdminClient, tt: TicketTopics) -> Iterator[list[str]]:
    names: list[str] = []
    yield names
    tt.delete_all_for(set(names), timeout=60)
    for name in names:
        delete_topic_if_present(kafka_admin, name)


def _existing(kafka_admin: AdminClient, name: str, config: dict[str, str]) -> str:
    kafka_admin.create_topics([NewTopic(name, 1, 1, config=config)])[name].result(timeout=30)
    return name


def test_a_namespace_cannot_claim_another_teams_topic_even_as_the_older_resource(
    team_a: str, team_b: str, tt: TicketTopics, kafka_admin: AdminClient, cleanup: list[str]
) -> None:
    topic = f"{team_a}.orders"
    cleanup.append(topic)
    # Team B asks first (the oldest TicketTopic would win a conflict), for team A's name.
    tt.create(team_b, "grab", {"topicName": topic, "partitions": 1, "deletionPolicy": "Delete"})
    refused = tt.wait_condition(team_b, "grab", "False", "TopicNameNotAllowed")
    message = next(c["message"] for c in refused["status"]["conditions"] if c["type"] == "Ready")
    assert f"namespace {team_b} may only claim topics starting with {team_b}." in message
    assert tt.wait_event(team_b, "grab", "TopicNameNotAllowed").type == "Warning"
    assert describe_topic(kafka_admin, topic) is None, "nothing was created for the refused claim"

    tt.create(team_a, "orders", {"topicName": topic, "partitions": 2})
    tt.wait_condition(team_a, "orders", "True", "InSync")  # not a ResourceConflict with B's older claim
    described = describe_topic(kafka_admin, topic)
    assert described is not None and described.partitions == 2

    # B's deletion (policy Delete) never deletes A's topic.
    tt.delete(team_b, "grab")
    wait_for("B's TicketTopic gone", lambda: not tt.exists(team_b, "grab"))
    assert describe_topic(kafka_admin, topic) is not None


def test_internal_topic_names_are_refused_at_admission(team_a: str, tt: TicketTopics) -> None:
    for name in ("__consumer_offsets", "_schemas", "srs.internal.state"):
        with pytest.raises(client.ApiException) as refused:
            tt.create(team_a, f"t-{uuid.uuid4().hex[:6]}", {"topicName": name})
        assert refused.value.status == 422
        assert "are reserved: choose another spec.topicName" in refused.value.body


def test_an_existing_topic_is_left_alone_without_the_adoption_opt_in(
    team_a: str, tt: TicketTopics, kafka_admin: AdminClient, cleanup: list[str]
) -> None:
    topic = _existing(kafka_admin, f"{team_a}.compacted", {"cleanup.policy": "compact"})
    cleanup.append(topic)
    before = describe_topic(kafka_admin, topic)
    assert before is not None

    tt.create(team_a, "compacted", {"topicName": topic, "partitions": 1, "deletionPolicy": "Delete"})
    refused = tt.wait_condition(team_a, "compacted", "False", "TopicExists")
    message = next(c["message"] for c in refused["status"]["conditions"] if c["type"] == "Ready")
    assert "set spec.adoptExisting: true" in message
    after = describe_topic(kafka_admin, topic)
    assert after is not None and after.overrides == {"cleanup.policy": "compact"}, "its overrides were kept"
    assert not refused["status"].get("topicId")

    # Deleting the refused resource (policy Delete) leaves the topic alone.
    tt.delete(team_a, "compacted")
    wait_for("the TicketTopic gone", lambda: not tt.exists(team_a, "compacted"))
    gone_or_kept = describe_topic(kafka_admin, topic)
    assert gone_or_kept is not None and gone_or_kept.topic_id == before.topic_id

    # With the opt-in, it is managed: config made to match the spec.
    tt.create(team_a, "adopted", {"topicName": topic, "adoptExisting": True, "config": {"retention.ms": "60000"}})
    tt.wait_condition(team_a, "adopted", "True", "InSync")
    managed = describe_topic(kafka_admin, topic)
    assert managed is not None and managed.topic_id == before.topic_id
    assert managed.overrides == {"retention.ms": "60000"}


def test_a_topic_in_use_by_a_support_agent_is_not_deleted_until_nothing_uses_it(
    team_a: str,
    api_client: client.ApiClient,
    tt: TicketTopics,
    kafka_admin: AdminClient,
    cleanup: list[str],
) -> None:
    topic = f"{team_a}.billing"
    cleanup.append(topic)
    tt.create(team_a, "billing", {"topicName": topic, "partitions": 1, "deletionPolicy": "Delete"})
    tt.wait_condition(team_a, "billing", "True", "InSync")
    agents = Agents(api_client, team_a)
    agents.create(
        "billing", {"role": "specialist", "specialty": "billing", "inputTopic": topic, "model": {"provider": "offline"}}
    )
    agents.wait_condition("billing", "Accepted", "True")  # the agent is in service, and the operator knows it

    tt.delete(team_a, "billing")
    waiting = tt.wait_condition(team_a, "billing", "False", "TopicInUse")
    message = next(c["message"] for c in waiting["status"]["conditions"] if c["type"] == "Ready")
    assert f"still used by SupportAgent {team_a}/billing" in message
    assert tt.wait_event(team_a, "billing", "TopicInUse").type == "Warning"
    assert describe_topic(kafka_admin, topic) is not None
    assert tt.exists(team_a, "billing"), "the finalizer holds the resource while the topic is in use"

    started = time.monotonic()
    agents.delete("billing")
    wait_for("the TicketTopic released", lambda: not tt.exists(team_a, "billing"), timeout=60)
    wait_for("the topic deleted", lambda: describe_topic(kafka_admin, topic) is None, timeout=30)
    print(f"deleted {time.monotonic() - started:.1f}s after the last agent using it went away")
    with contextlib.suppress(client.ApiException):
        agents.delete("billing")
