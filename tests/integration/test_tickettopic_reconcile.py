"""TicketTopic scenarios against the real broker and API server, with ``srs operator`` running.

Each test gets its own namespace (``srs-test-tt-…``, the only ones this operator
watches) and topic names of its own; what Kafka holds is checked with an AdminClient of
the test's own, never through the operator.
"""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
from kubernetes import client

from tests.harness import Infra, first_change, fresh_namespace, wait_for
from tests.integration.operator_harness import GROUP, VERSION
from tests.integration.operator_process import OperatorProcess, run_operator
from tests.integration.tickettopic_support import (
    TOPIC_OPERATOR_ENV,
    TicketTopics,
    delete_topic_if_present,
    describe_topic,
    sleep_past_second_boundary,
    unique,
)

pytestmark = pytest.mark.integration

NAMESPACE_PREFIX = "srs-test-tt-"


@pytest.fixture
def topic_names(kafka_admin: AdminClient, tt: TicketTopics) -> Iterator[Callable[[str], str]]:
    """Unique topic names; after the test the TicketTopics that manage them go first (so
    the operator does not recreate them), then the topics."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(unique(prefix))
        return names[-1]

    yield make
    tt.delete_all_for(set(names))
    for name in names:
        delete_topic_if_present(kafka_admin, name)


@pytest.fixture
def existing_topic(kafka_admin: AdminClient, topic_names: Callable[[str], str]) -> Callable[..., str]:
    """Create a Kafka topic behind the operator's back (cleaned up like ``topic_names``)."""

    def make(prefix: str, partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = topic_names(prefix)
        futures = kafka_admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])
        futures[name].result(timeout=30)
        return name

    return make


def test_ticket_topic_creates_the_topic_with_partitions_and_config(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-create")
    tt.create(ns, name, {"partitions": 3, "replicationFactor": 1, "config": {"retention.ms": "3600000"}})

    obj = tt.wait_condition(ns, name, "True", "InSync")

    topic = describe_topic(kafka_admin, name)
    assert topic is not None
    assert (topic.partitions, topic.replication_factor) == (3, 1)
    assert topic.overrides == {"retention.ms": "3600000"}
    status = obj["status"]
    assert status["topicName"] == name
    assert status["topicId"] == topic.topic_id
    assert (status["partitions"], status["replicationFactor"], status["observedGeneration"]) == (3, 1, 1)
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "Ready": "True",
        "PartitionsInSync": "True",
        "ReplicationFactorInSync": "True",
        "ConfigInSync": "True",
    }
    created = tt.wait_event(ns, name, "Created")
    assert "3 partitions" in created.message
    # Retain is the default: no finalizer holds the resource.
    assert obj["spec"]["deletionPolicy"] == "Retain"
    assert not obj["metadata"].get("finalizers")


def test_steady_state_makes_no_writes(
    api_client: client.ApiClient, ns: str, tt: TicketTopics, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-quiet")
    # Values Kafka stores in its own spelling (true, 100000) must not count as a difference.
    tt.create(
        ns, name, {"partitions": 1, "config": {"unclean.leader.election.enable": "True", "retention.ms": "0100000"}}
    )
    tt.wait_condition(ns, name, "True")
    wait_for("the Created Event", lambda: bool(tt.events(ns, name)))
    version = tt.get(ns, name)["metadata"]["resourceVersion"]
    events = len(tt.events(ns, name))

    # Three level checks (every 3 s in these tests) of a topic that is as specified: no write.
    change = first_change(
        client.CustomObjectsApi(api_client).list_namespaced_custom_object,
        GROUP, VERSION, ns, "tickettopics",
        field_selector=f"metadata.name={name}", resource_version=version, seconds=10,
    )  # fmt: skip
    assert change is None, f"the operator wrote to an unchanged TicketTopic: {change and change['type']}"
    assert len(tt.events(ns, name)) == events


def test_existing_topic_is_adopted(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, existing_topic: Callable[..., str]
) -> None:
    name = existing_topic("tt-adopt", partitions=2, config={"retention.ms": "86400000"})
    before = describe_topic(kafka_admin, name)
    assert before is not None

    tt.create(ns, name, {"partitions": 2, "config": {"retention.ms": "86400000"}, "adoptExisting": True})

    obj = tt.wait_condition(ns, name, "True", "InSync")
    assert obj["status"]["topicId"] == before.topic_id  # the same topic, not a new one
    assert "adopted existing topic" in tt.wait_event(ns, name, "Adopted").message
    after = describe_topic(kafka_admin, name)
    assert after is not None and after.topic_id == before.topic_id and after.partitions == 2


def test_partition_increase_is_applied(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-grow")
    tt.create(ns, name, {"partitions": 1})
    tt.wait_condition(ns, name, "True")

    tt.patch_spec(ns, name, {"partitions": 4})

    obj = tt.wait_condition(ns, name, "True", "InSync")
    assert obj["status"]["partitions"] == 4
    topic = describe_topic(kafka_admin, name)
    assert topic is not None and topic.partitions == 4
    assert "from 1 to 4" in tt.wait_event(ns, name, "PartitionsIncreased").message


def test_partition_decrease_is_reported_not_applied(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, existing_topic: Callable[..., str]
) -> None:
    # Admission refuses a decrease of spec.partitions; an adopted topic that already has
    # more partitions than the spec asks for is where the operator has to say no itself.
    name = existing_topic("tt-shrink", partitions=4)

    tt.create(ns, name, {"partitions": 2, "adoptExisting": True})

    obj = tt.wait_condition(ns, name, "False", "NotSupported")
    partitions = tt.condition(ns, name, "PartitionsInSync")
    assert partitions is not None and partitions["status"] == "False" and partitions["reason"] == "NotSupported"
    assert "spec.partitions is 2 but the topic has 4" in partitions["message"]
    assert obj["status"]["partitions"] == 4
    topic = describe_topic(kafka_admin, name)
    assert topic is not None and topic.partitions == 4
    warning = tt.wait_event(ns, name, "NotSupported")
    assert warning.type == "Warning"


def test_replication_factor_change_is_reported_not_applied(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-rf")
    tt.create(ns, name, {"partitions": 1, "replicationFactor": 1})
    tt.wait_condition(ns, name, "True")

    tt.patch_spec(ns, name, {"replicationFactor": 3})

    tt.wait_condition(ns, name, "False", "NotSupported")
    rf = tt.condition(ns, name, "ReplicationFactorInSync")
    assert rf is not None and rf["status"] == "False"
    assert "spec.replicationFactor is 3 but the topic has 1" in rf["message"]
    topic = describe_topic(kafka_admin, name)
    assert topic is not None and topic.replication_factor == 1

    # Back to what the topic has: Ready again.
    tt.patch_spec(ns, name, {"replicationFactor": 1})
    tt.wait_condition(ns, name, "True", "InSync")


def test_config_changes_are_set_and_removed_overrides_fall_back_to_broker_defaults(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    broker = ConfigResource(ResourceType.BROKER, "1")
    broker_before = {k: v.value for k, v in kafka_admin.describe_configs([broker])[broker].result().items()}
    name = topic_names("tt-config")
    tt.create(ns, name, {"partitions": 1, "config": {"retention.ms": "3600000", "cleanup.policy": "compact"}})
    tt.wait_condition(ns, name, "True")

    tt.patch_spec(ns, name, {"config": {"retention.ms": "7200000", "cleanup.policy": None}})

    def applied() -> bool:
        topic = describe_topic(kafka_admin, name)
        return topic is not None and topic.overrides == {"retention.ms": "7200000"}

    wait_for("retention.ms SET and cleanup.policy DELETEd", applied, timeout=30)
    topic = describe_topic(kafka_admin, name)
    assert topic is not None
    value, source = topic.config["cleanup.policy"]
    assert value == "delete"  # the broker's default again
    assert source != 1  # not a topic override
    tt.wait_condition(ns, name, "True", "InSync")
    updated = [e.message for e in tt.events(ns, name) if e.reason == "ConfigUpdated"]
    assert any("set retention.ms=7200000" in m and "removed cleanup.policy" in m for m in updated), updated
    broker_after = {k: v.value for k, v in kafka_admin.describe_configs([broker])[broker].result().items()}
    assert broker_after == broker_before


def test_config_changed_by_hand_is_reverted(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-handedit")
    tt.create(ns, name, {"partitions": 1, "config": {"retention.ms": "3600000"}})
    tt.wait_condition(ns, name, "True")

    resource = ConfigResource(
        ResourceType.TOPIC,
        name,
        incremental_configs=[
            ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET),
            ConfigEntry("segment.ms", "600000", incremental_operation=AlterConfigOpType.SET),
        ],
    )
    kafka_admin.incremental_alter_configs([resource])[resource].result()

    def reverted() -> bool:
        topic = describe_topic(kafka_admin, name)
        return topic is not None and topic.overrides == {"retention.ms": "3600000"}

    wait_for("the level check to revert the hand edit", reverted, timeout=30)


def test_topic_deleted_out_of_band_is_recreated_with_an_event(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-recreate")
    tt.create(ns, name, {"partitions": 2, "config": {"retention.ms": "3600000"}})
    first_id = tt.wait_condition(ns, name, "True")["status"]["topicId"]

    delete_topic_if_present(kafka_admin, name)

    def recreated() -> bool:
        topic = describe_topic(kafka_admin, name)
        return topic is not None and topic.topic_id != first_id

    wait_for("the topic to be recreated", recreated, timeout=30)
    topic = describe_topic(kafka_admin, name)
    assert topic is not None
    assert (topic.partitions, topic.overrides) == (2, {"retention.ms": "3600000"})
    event = tt.wait_event(ns, name, "Recreated")
    assert event.type == "Warning"
    assert "deleted outside the operator" in event.message
    wait_for("status.topicId to follow", lambda: tt.get(ns, name)["status"].get("topicId") == topic.topic_id)


def test_second_ticket_topic_for_one_topic_gets_resource_conflict_and_takes_over_later(
    ns: str, second_ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    topic_name = topic_names("tt-shared")
    tt.create(ns, "first", {"topicName": topic_name, "partitions": 1, "deletionPolicy": "Delete"})
    tt.wait_condition(ns, "first", "True")
    sleep_past_second_boundary()

    # Taking over a topic another resource created is adoption: it needs the opt-in.
    tt.create(
        second_ns,
        "second",
        {"topicName": topic_name, "partitions": 1, "config": {"retention.ms": "1000"}, "adoptExisting": True},
    )

    obj = tt.wait_condition(second_ns, "second", "False", "ResourceConflict")
    ready = tt.condition(second_ns, "second")
    assert ready is not None and f"{ns}/first" in ready["message"]
    assert "topicId" not in obj["status"]
    assert tt.wait_event(second_ns, "second", "ResourceConflict").type == "Warning"
    topic = describe_topic(kafka_admin, topic_name)
    assert topic is not None and topic.overrides == {}  # the newer one touched nothing
    assert tt.condition(ns, "first") is not None

    # The older one goes (policy Delete): the topic stays, because "second" still uses it …
    tt.delete(ns, "first")
    wait_for("first to be gone", lambda: not tt.exists(ns, "first"), timeout=30)
    retained = tt.wait_event(ns, "first", "Retained")
    assert f"{second_ns}/second" in retained.message
    assert describe_topic(kafka_admin, topic_name) is not None

    # … and the newer one takes over, applying its own config.
    tt.wait_condition(second_ns, "second", "True", "InSync", timeout=30)
    wait_for(
        "second's config on the topic",
        lambda: (t := describe_topic(kafka_admin, topic_name)) is not None and t.overrides == {"retention.ms": "1000"},
    )


def test_deletion_policy_delete_removes_the_topic_and_retain_keeps_it(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    doomed, kept = topic_names("tt-delete"), topic_names("tt-retain")
    tt.create(ns, doomed, {"partitions": 1, "deletionPolicy": "Delete"})
    tt.create(ns, kept, {"partitions": 1, "deletionPolicy": "Retain"})
    tt.wait_condition(ns, doomed, "True")
    tt.wait_condition(ns, kept, "True")
    assert tt.get(ns, doomed)["metadata"].get("finalizers") == ["srs.dev/finalizer"]
    assert not tt.get(ns, kept)["metadata"].get("finalizers")

    tt.delete(ns, doomed)
    tt.delete(ns, kept)

    wait_for("both TicketTopics to be gone", lambda: not tt.exists(ns, doomed) and not tt.exists(ns, kept), timeout=30)
    wait_for("the Delete topic to be gone from Kafka", lambda: describe_topic(kafka_admin, doomed) is None)
    assert describe_topic(kafka_admin, kept) is not None
    assert tt.wait_event(ns, doomed, "Deleted").message == f"deleted topic {doomed}"


def test_switching_to_retain_releases_the_finalizer(
    ns: str, tt: TicketTopics, kafka_admin: AdminClient, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-switch")
    tt.create(ns, name, {"partitions": 1, "deletionPolicy": "Delete"})
    wait_for("the finalizer", lambda: bool(tt.get(ns, name)["metadata"].get("finalizers")))

    tt.patch_spec(ns, name, {"deletionPolicy": "Retain"})

    wait_for("the finalizer to be released", lambda: not tt.get(ns, name)["metadata"].get("finalizers"))
    tt.delete(ns, name)
    wait_for("the TicketTopic to be gone", lambda: not tt.exists(ns, name))
    assert describe_topic(kafka_admin, name) is not None


def test_printer_columns_answer_what_and_whether_ready(
    ns: str, tt: TicketTopics, api_client: client.ApiClient, topic_names: Callable[[str], str]
) -> None:
    name = topic_names("tt-columns")
    tt.create(ns, name, {"partitions": 2})
    tt.wait_condition(ns, name, "True")
    request = api_client.param_serialize(
        "GET",
        f"/apis/srs.dev/v1alpha1/namespaces/{ns}/tickettopics",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(*request)
    response.read()
    table = json.loads(response.data)
    columns = [c["name"] for c in table["columnDefinitions"] if c.get("priority", 0) == 0]
    assert columns == ["Name", "Topic", "Partitions", "Replication", "Ready", "Reason", "Age"]
    row = dict(zip([c["name"] for c in table["columnDefinitions"]], table["rows"][0]["cells"], strict=True))
    assert (row["Topic"], row["Partitions"], row["Replication"], row["Ready"]) == (name, 2, 1, "True")


def test_ticket_topics_applied_together_share_kafka_admin_requests(
    ns: str, tt: TicketTopics, topic_operator: OperatorProcess, topic_names: Callable[[str], str]
) -> None:
    names = [topic_names("tt-batch") for _ in range(40)]
    calls_before = topic_operator.metric("srs_operator_kafka_admin_calls_total", operation="create_topics")
    topics_before = topic_operator.metric("srs_operator_kafka_admin_topics_total", operation="create_topics")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: tt.create(ns, n, {"partitions": 1}), names))
    for name in names:
        tt.wait_condition(ns, name, "True")

    calls = topic_operator.metric("srs_operator_kafka_admin_calls_total", operation="create_topics") - calls_before
    topics = topic_operator.metric("srs_operator_kafka_admin_topics_total", operation="create_topics") - topics_before
    assert topics == 40
    assert calls <= 10, f"{calls:.0f} CreateTopics requests for 40 topics: hardly batched"


def test_a_namespace_deleted_while_no_operator_watched_it_is_not_left_stuck_on_its_topic(
    infra: Infra,
    srs_crds: None,
    operator_kubeconfig: str,
    core_v1: client.CoreV1Api,
    tt: TicketTopics,
    kafka_admin: AdminClient,
    topic_names: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """An operator that (re)starts while a namespace is being deleted never watches it (kopf does
    not start watching a terminating namespace): its sweep still deletes the topic of a
    ``deletionPolicy: Delete`` TicketTopic there and releases the finalizer, so the namespace goes."""
    prefix = "srs-test-ttsweep-"
    name = topic_names("tt-sweep")
    with fresh_namespace(core_v1, prefix) as namespace:
        with run_operator(
            operator_kubeconfig, infra.kafka_bootstrap, tmp_path / "before.log", f"{prefix}*", env=TOPIC_OPERATOR_ENV
        ):
            tt.create(namespace, name, {"deletionPolicy": "Delete"})
            tt.wait_condition(namespace, name, "True", "InSync")
        # No operator runs: the namespace's deletion waits on the TicketTopic's finalizer.
        core_v1.delete_namespace(namespace)
        wait_for(
            "the namespace to wait on the TicketTopic",
            lambda: core_v1.read_namespace(namespace).status.phase == "Terminating" and tt.exists(namespace, name),
            timeout=30,
        )
        assert describe_topic(kafka_admin, name) is not None

        with run_operator(
            operator_kubeconfig, infra.kafka_bootstrap, tmp_path / "after.log", f"{prefix}*", env=TOPIC_OPERATOR_ENV
        ) as op:

            def namespace_gone() -> bool:
                try:
                    core_v1.read_namespace(namespace)
                except client.ApiException as e:
                    return e.status == 404
                return False

            try:
                wait_for(f"namespace {namespace} to be deleted", namespace_gone, timeout=90)
            except AssertionError as e:
                raise AssertionError(f"{e}\noperator log:\n{op.log_tail(80)}") from None
        assert describe_topic(kafka_admin, name) is None
