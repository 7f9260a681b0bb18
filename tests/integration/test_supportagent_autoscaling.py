"""Agents that scale on lag, reconciled for real against the local control plane: the
operator renders KEDA's ScaledObject where KEDA's CRD is served (KEDA's own CRD, from its
Go module at the pinned version), says ``AutoscalerMissing`` where it is not, bounds the
replicas by the input topic's partitions, reports the HorizontalPodAutoscaler's word, and
removes the ScaledObject when the spec stops asking for one.

No KEDA runs here (that is the kind suite's, tests/kind/test_autoscaling.py): the HPA a
test creates is the one KEDA would make, and kube-controller-manager's HPA controller
really judges it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from kubernetes import client

from devstack import keda
from tests.harness import wait_for
from tests.integration.operator_harness import GROUP, VERSION, Agents, agents_table, condition

pytestmark = pytest.mark.integration

SCALED_OBJECTS_CRD = "scaledobjects.keda.sh"


def _scaled_object_crd() -> dict[str, Any]:
    [path] = [p for p in keda.crd_files() if p.name == "keda.sh_scaledobjects.yaml"]
    return dict(yaml.safe_load(path.read_text()))


def _install_crd(ext: client.ApiextensionsV1Api) -> None:
    crd = _scaled_object_crd()
    ext.patch_custom_resource_definition(
        SCALED_OBJECTS_CRD, crd, field_manager="srs-tests", force=True, _content_type="application/apply-patch+yaml"
    )

    def established() -> bool:
        conds = ext.read_custom_resource_definition(SCALED_OBJECTS_CRD).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conds)

    wait_for("KEDA's ScaledObject CRD established", established, timeout=30)


def _remove_crd(ext: client.ApiextensionsV1Api) -> None:
    with contextlib.suppress(client.ApiException):
        ext.delete_custom_resource_definition(SCALED_OBJECTS_CRD)

    def gone() -> bool:
        try:
            ext.read_custom_resource_definition(SCALED_OBJECTS_CRD)
        except client.ApiException as e:
            return e.status == 404
        return False

    wait_for("KEDA's ScaledObject CRD removed", gone, timeout=60)


@pytest.fixture
def keda_crd(api_client: client.ApiClient) -> Iterator[client.ApiextensionsV1Api]:
    """KEDA's ScaledObject CRD served, as where KEDA is installed."""
    ext = client.ApiextensionsV1Api(api_client)
    _install_crd(ext)
    yield ext


@pytest.fixture
def no_keda_crd(api_client: client.ApiClient) -> client.ApiextensionsV1Api:
    """KEDA's ScaledObject CRD not served, as where KEDA is not installed (before the
    test's namespace exists, so the operator finds it missing from the start)."""
    ext = client.ApiextensionsV1Api(api_client)
    _remove_crd(ext)
    return ext


def _scaled_object(api_client: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(
            client.CustomObjectsApi(api_client).get_namespaced_custom_object(
                "keda.sh", "v1alpha1", namespace, "scaledobjects", name
            )
        )
    except client.ApiException as e:
        if e.status == 404:
            return None
        raise


def _replicas(apps_v1: client.AppsV1Api, namespace: str, name: str) -> int | None:
    return apps_v1.read_namespaced_deployment(name, namespace).spec.replicas  # type: ignore[no-any-return]


def test_without_keda_the_agent_says_what_to_install_and_picks_keda_up_once_installed(
    no_keda_crd: client.ApiextensionsV1Api, api_client: client.ApiClient, apps_v1: client.AppsV1Api, agents: Agents
) -> None:
    ext = no_keda_crd
    spec = {
        "role": "specialist",
        "specialty": "billing",
        "inputTopic": "ticket.triaged.billing",
        "autoscaling": {"minReplicas": 2, "maxReplicas": 3},
    }
    agents.create("billing", spec)
    agent = agents.wait_condition("billing", "Ready", "False", reason="AutoscalerMissing")
    assert "install KEDA" in condition(agent, "Ready")["message"]
    assert condition(agent, "Autoscaling")["reason"] == "AutoscalerMissing"
    # Tickets keep flowing meanwhile: minReplicas pods run.
    wait_for("the Deployment at minReplicas", lambda: _replicas(apps_v1, agents.namespace, "billing") == 2)

    try:
        _install_crd(ext)
        # The operator looks for the kind again every --recheck-seconds (30 s; the test operator
        # 2 s), then tells the agents that want it.
        agent = agents.wait_condition("billing", "Autoscaling", "True", timeout=90, reason="ScalingOnLag")
        scaled = _scaled_object(api_client, agents.namespace, "billing")
        assert scaled is not None
        assert scaled["metadata"]["ownerReferences"][0]["uid"] == agent["metadata"]["uid"]
        trigger = scaled["spec"]["triggers"][0]
        assert trigger["type"] == "kafka"
        assert trigger["metadata"]["consumerGroup"] == f"srs.{agents.namespace}.billing"
        assert trigger["metadata"]["topic"] == "ticket.triaged.billing"
        assert (scaled["spec"]["minReplicaCount"], scaled["spec"]["maxReplicaCount"]) == (2, 3)
        assert condition(agents.wait_ready("billing"), "Autoscaling")["message"].startswith(
            "KEDA scales between 2 and 3 pods"
        )
    finally:
        agents.delete("billing")


def test_the_scaled_object_follows_the_spec_the_partitions_and_the_hpa(
    keda_crd: client.ApiextensionsV1Api,
    api_client: client.ApiClient,
    apps_v1: client.AppsV1Api,
    agents: Agents,
    kafka_admin: AdminClient,
) -> None:
    ns = agents.namespace
    topic = f"autoscale-{uuid.uuid4().hex[:8]}.in"
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP,
        VERSION,
        ns,
        "tickettopics",
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TicketTopic",
            "metadata": {"name": "input"},
            "spec": {"topicName": topic, "partitions": 2},
        },
    )
    try:
        spec = {
            "role": "specialist",
            "specialty": "technical",
            "inputTopic": topic,
            "autoscaling": {"minReplicas": 1, "maxReplicas": 4, "lagThreshold": 25, "cooldownSeconds": 30},
        }
        agents.create("tech", spec)
        # Two partitions: a third and fourth pod would get none.
        agent = agents.wait_condition("tech", "Autoscaling", "True", reason="MaxReplicasCapped")
        assert "maxReplicas 4 is above the topic's 2 partitions" in condition(agent, "Autoscaling")["message"]
        assert agent["status"]["autoscaling"]["maxReplicas"] == 2
        scaled = _scaled_object(api_client, ns, "tech")
        assert scaled is not None and scaled["spec"]["maxReplicaCount"] == 2
        assert scaled["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"] == {
            "stabilizationWindowSeconds": 30
        }
        assert "replicas" not in scaled["spec"]["scaleTargetRef"]

        # The HPA KEDA would make of it (its name, the ScaledObject's labels, an external
        # metric); kube-controller-manager's HPA controller judges it, and the agent reports that.
        labels = scaled["metadata"]["labels"]
        hpa = client.V2HorizontalPodAutoscaler(
            metadata=client.V1ObjectMeta(name="tech", labels=labels),
            spec=client.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=client.V2CrossVersionObjectReference(
                    api_version="apps/v1", kind="Deployment", name="tech"
                ),
                min_replicas=1,
                max_replicas=2,
                metrics=[
                    client.V2MetricSpec(
                        type="External",
                        external=client.V2ExternalMetricSource(
                            metric=client.V2MetricIdentifier(name="s0-kafka-consumer-lag"),
                            target=client.V2MetricTarget(type="AverageValue", average_value="25"),
                        ),
                    )
                ],
            ),
        )
        autoscaling = client.AutoscalingV2Api(api_client)
        autoscaling.create_namespaced_horizontal_pod_autoscaler(ns, hpa)
        reported: dict[str, Any] = {}

        def reports_the_hpa() -> bool:
            nonlocal reported
            live = autoscaling.read_namespaced_horizontal_pod_autoscaler("tech", ns)
            reasons = {c.reason for c in (live.status.conditions or [])}
            reported = agents.get("tech")["status"].get("autoscaling") or {}
            return bool(reasons) and reported.get("reason") in reasons

        wait_for("the agent's status to report the HPA's reason", reports_the_hpa, timeout=90)

        table = agents_table(api_client, ns)
        columns = [c["name"] for c in table["columnDefinitions"]]
        [row] = [r["cells"] for r in table["rows"]]
        assert row[columns.index("Scaling")] == reported["reason"]
        assert row[columns.index("Desired")] == agents.get("tech")["status"]["desiredReplicas"]

        # Back to a fixed count: the ScaledObject goes, the operator owns the replicas again.
        agents.patch_spec("tech", {"autoscaling": None, "replicas": 2})
        wait_for("the ScaledObject deleted", lambda: _scaled_object(api_client, ns, "tech") is None)
        wait_for("the Deployment at spec.replicas", lambda: _replicas(apps_v1, ns, "tech") == 2)
        agent = agents.wait_ready("tech")
        assert condition(agent, "Autoscaling") == {}
        assert "autoscaling" not in agent["status"]
    finally:
        for fut in kafka_admin.delete_topics([topic]).values():
            with contextlib.suppress(Exception):
                fut.result(timeout=30)
