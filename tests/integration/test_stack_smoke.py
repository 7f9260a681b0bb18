"""The local stack is the real thing: scheduling, garbage collection, CRD validation,
RBAC, and a Kafka broker that does not invent topics."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from kubernetes import client, config

from devstack.settings import USER_NAME
from tests.harness import Infra, TopicFactory, wait_for

pytestmark = pytest.mark.integration


def _deployment(name: str, replicas: int) -> client.V1Deployment:
    labels = {"app": name}
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            replicas=replicas,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="app", image="registry.k8s.io/pause:3.10")]),
            ),
        ),
    )


def test_deployment_gets_three_ready_pods_and_garbage_collection_removes_them(
    infra: Infra, namespace: str, apps_v1: client.AppsV1Api, core_v1: client.CoreV1Api
) -> None:
    apps_v1.create_namespaced_deployment(namespace, _deployment("web", 3))

    def ready() -> bool:
        return (apps_v1.read_namespaced_deployment("web", namespace).status.ready_replicas or 0) == 3

    wait_for("3 ready replicas", ready)
    pods = core_v1.list_namespaced_pod(namespace, label_selector="app=web").items
    assert len(pods) == 3
    if infra.local:
        assert {p.spec.node_name for p in pods} == {"kwok-node-0"}
    assert all(p.status.phase == "Running" for p in pods)

    apps_v1.delete_namespaced_deployment("web", namespace, propagation_policy="Background")
    wait_for("ReplicaSet collected", lambda: not apps_v1.list_namespaced_replica_set(namespace).items)
    wait_for("pods collected", lambda: not core_v1.list_namespaced_pod(namespace, label_selector="app=web").items)


#: A CRD whose schema bounds spec.size to 1..10 (GROUP: a fresh API group per run).
WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.GROUP}
spec:
  group: GROUP
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties: {size: {type: integer, minimum: 1, maximum: 10}}
"""


def test_crd_is_served_and_its_schema_rejects_a_bad_object(api_client: client.ApiClient, namespace: str) -> None:
    group = f"smoke{uuid.uuid4().hex[:6]}.srs.dev"
    ext = client.ApiextensionsV1Api(api_client)
    crd = yaml.safe_load(WIDGET_CRD.replace("GROUP", group))
    ext.create_custom_resource_definition(crd)
    try:
        custom = client.CustomObjectsApi(api_client)

        def established() -> bool:
            got = ext.read_custom_resource_definition(f"widgets.{group}")
            return any(c.type == "Established" and c.status == "True" for c in got.status.conditions or [])

        wait_for("CRD established", established)
        good = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "ok"}, "spec": {"size": 3}}
        wait_for(
            "CRD served",
            lambda: _try(lambda: custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", good)),
        )
        bad = {"apiVersion": f"{group}/v1", "kind": "Widget", "metadata": {"name": "bad"}, "spec": {"size": 99}}
        with pytest.raises(client.ApiException) as err:
            custom.create_namespaced_custom_object(group, "v1", namespace, "widgets", bad)
        assert err.value.status == 422
        assert "spec.size: Invalid value: 99: spec.size in body should be less than or equal to 10" in str(
            err.value.body
        )
    finally:
        ext.delete_custom_resource_definition(f"widgets.{group}")


def _try(fn: Callable[[], object]) -> bool:
    try:
        fn()
    except client.ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_message_produced_is_consumed_back(infra: Infra, kafka_topic: TopicFactory) -> None:
    topic = kafka_topic("smoke", partitions=3)
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "enable.idempotence": True})
    delivered: list[object] = []
    producer.produce(topic, key=b"T-1", value=b'{"hello": "kafka"}', on_delivery=lambda e, m: delivered.append(e))
    assert producer.flush(30) == 0
    assert delivered == [None]

    consumer = Consumer(
        {
            "bootstrap.servers": infra.kafka_bootstrap,
            "group.id": f"smoke-{uuid.uuid4().hex[:6]}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        msg = None
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                break
        assert msg is not None and msg.error() is None
        assert (msg.key(), msg.value()) == (b"T-1", b'{"hello": "kafka"}')
    finally:
        consumer.close()


def test_producing_to_a_missing_topic_fails_because_auto_create_is_off(infra: Infra) -> None:
    topic = f"missing-{uuid.uuid4().hex[:10]}"
    producer = Producer({"bootstrap.servers": infra.kafka_bootstrap, "message.timeout.ms": 5000})
    errors: list[KafkaError] = []
    try:
        producer.produce(topic, value=b"x", on_delivery=lambda e, m: errors.append(e))
        producer.flush(15)
    except KafkaException as e:  # some client versions fail fast on unknown topics
        errors.append(e.args[0])
    assert len(errors) == 1 and errors[0] is not None
    assert errors[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._MSG_TIMED_OUT)
    admin_topics = Producer({"bootstrap.servers": infra.kafka_bootstrap}).list_topics(timeout=10).topics
    assert topic not in admin_topics


def test_non_admin_identity_is_denied_what_it_was_not_granted(infra: Infra, namespace: str) -> None:
    assert infra.user_kubeconfig, "the local stack provides a non-admin kubeconfig"
    user = client.CoreV1Api(config.new_client_from_config(config_file=infra.user_kubeconfig))
    with pytest.raises(client.ApiException) as err:
        user.list_namespaced_secret(namespace)
    assert err.value.status == 403
    message = json.loads(err.value.body)["message"]
    assert message.startswith(f'secrets is forbidden: User "{USER_NAME}" cannot list resource "secrets"'), message
    # The identity itself is valid: it can ask the API what it may do.
    review = client.AuthorizationV1Api(user.api_client).create_self_subject_access_review(
        client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(namespace=namespace, verb="list", resource="secrets")
            )
        )
    )
    assert review.status.allowed is False


def test_node_keeps_renewing_its_lease_so_it_stays_ready(
    core_v1: client.CoreV1Api, api_client: client.ApiClient
) -> None:
    # kwok renews the fake node's Lease like a kubelet; without it the node-lifecycle
    # controller marks the node NotReady after its grace period and evicts every pod.
    node = core_v1.list_node().items[0].metadata.name
    leases = client.CoordinationV1Api(api_client)
    first = leases.read_namespaced_lease(node, "kube-node-lease").spec.renew_time
    wait_for(
        "the node lease to be renewed",
        lambda: leases.read_namespaced_lease(node, "kube-node-lease").spec.renew_time != first,
        timeout=30,
    )
