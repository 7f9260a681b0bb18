"""Invalid TicketTopics are rejected by the API server (schema + CEL) with a message that
says what to fix — before the operator ever sees them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.harness import fresh_namespace
from tests.integration.tickettopic_support import GROUP, PLURAL, VERSION

pytestmark = pytest.mark.integration


@pytest.fixture
def ns(core_v1: client.CoreV1Api, srs_crds: None) -> Iterator[str]:
    # No operator watches this namespace: admission alone decides.
    with fresh_namespace(core_v1, "srs-test-ttadm-") as name:
        yield name


@pytest.fixture
def objects(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


def manifest(namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TicketTopic",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def rejection(call: Any) -> str:
    """The API server's message for a refused request (fails the test if it was accepted)."""
    with pytest.raises(client.ApiException) as refused:
        call()
    assert refused.value.status in (400, 422), refused.value
    return str(json.loads(refused.value.body)["message"])


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"partitions": 0}, "spec.partitions in body should be greater than or equal to 1"),
        ({"partitions": 20_000}, "spec.partitions in body should be less than or equal to 10000"),
        ({"replicationFactor": 0}, "spec.replicationFactor in body should be greater than or equal to 1"),
        ({"topicName": "orders and refunds"}, "spec.topicName in body should match '^[a-zA-Z0-9._-]+$'"),
        ({"topicName": ".."}, "spec.topicName cannot be '.' or '..' (Kafka forbids them)"),
        ({"topicName": "t" * 250}, "spec.topicName: Too long: may not be more than 249 bytes"),
        ({"deletionPolicy": "Sometimes"}, 'supported values: "Retain", "Delete"'),
        (
            {"config": {"Retention_MS": "1000"}},
            "spec.config keys are Kafka topic config names such as retention.ms or cleanup.policy",
        ),
        ({"config": {"retention.ms": 604800000}}, "spec.config.retention.ms in body must be of type string"),
    ],
    ids=[
        "zero-partitions",
        "absurd-partitions",
        "zero-replication",
        "topic-name-with-spaces",
        "topic-name-dotdot",
        "topic-name-too-long",
        "unknown-deletion-policy",
        "config-key-not-a-kafka-name",
        "config-value-not-a-string",
    ],
)
def test_invalid_ticket_topic_is_rejected_on_create(
    ns: str, objects: client.CustomObjectsApi, spec: dict[str, Any], expected: str
) -> None:
    message = rejection(
        lambda: objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest(ns, "bad", spec))
    )
    assert expected in message


def test_misspelled_field_is_rejected_with_strict_field_validation(ns: str, objects: client.CustomObjectsApi) -> None:
    # kubectl apply/create validate strictly by default.
    message = rejection(
        lambda: objects.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, manifest(ns, "typo", {"partition": 3}), field_validation="Strict"
        )
    )
    assert 'unknown field "spec.partition"' in message


def test_resource_name_too_long_for_a_topic_name_is_rejected(ns: str, objects: client.CustomObjectsApi) -> None:
    long_name = ".".join(["a" * 62] * 5)[:250]
    message = rejection(
        lambda: objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest(ns, long_name, {}))
    )
    assert "metadata.name is longer than Kafka's 249-character limit for topic names: set a shorter" in message
    # With an explicit topicName, a long resource name is fine.
    objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest(ns, long_name, {"topicName": "t"}))


def test_partition_decrease_is_rejected(ns: str, objects: client.CustomObjectsApi) -> None:
    objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest(ns, "orders", {"partitions": 3}))
    message = rejection(
        lambda: objects.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "orders", {"spec": {"partitions": 2}}
        )
    )
    assert "partitions can only be increased: Kafka cannot remove partitions from a topic" in message
    # Growing is fine.
    objects.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "orders", {"spec": {"partitions": 6}})


def test_topic_name_cannot_change(ns: str, objects: client.CustomObjectsApi) -> None:
    objects.create_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, manifest(ns, "events", {"topicName": "ticket.events"})
    )
    changed = rejection(
        lambda: objects.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "events", {"spec": {"topicName": "ticket.events.v2"}}
        )
    )
    assert "spec.topicName is immutable (Kafka topics cannot be renamed): create a new TicketTopic" in changed
    removed = rejection(
        lambda: objects.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "events", {"spec": {"topicName": None}}
        )
    )
    assert "spec.topicName is immutable: it may only be added or removed when it equals metadata.name" in removed


def test_topic_name_can_only_be_added_when_it_names_the_same_topic(ns: str, objects: client.CustomObjectsApi) -> None:
    objects.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, manifest(ns, "refunds", {}))
    message = rejection(
        lambda: objects.patch_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, "refunds", {"spec": {"topicName": "payments"}}
        )
    )
    assert "spec.topicName is immutable: it may only be added or removed when it equals metadata.name" in message
    # Spelling out the default is not a change.
    objects.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "refunds", {"spec": {"topicName": "refunds"}})
