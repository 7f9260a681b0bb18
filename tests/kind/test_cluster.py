"""The cluster itself: a Ready node running containerd under a real kubelet, Kafka reachable
from the host, and the operator installed — and upgraded — as a Helm release."""

from __future__ import annotations

import json

import pytest
from confluent_kafka.admin import AdminClient

from tests.harness import wait_for
from tests.kind.conftest import ROOT, Cluster, wait_until_ready

pytestmark = pytest.mark.kind


def test_the_node_is_ready_and_runs_containerd(cluster: Cluster) -> None:
    nodes = cluster.get("nodes")["items"]
    assert len(nodes) == 1
    node = nodes[0]
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    # A real kubelet reports the node's capacity; kwok's fake node would not run containers at all.
    system = cluster.get("pods", "-n", "kube-system")["items"]
    running = {p["metadata"]["name"].rsplit("-", 1)[0] for p in system if p["status"].get("phase") == "Running"}
    assert any(name.startswith("kube-apiserver") for name in running), running
    assert any(name.startswith("coredns") for name in running), running


def test_kafka_answers_on_the_hosts_loopback(cluster: Cluster) -> None:
    admin = AdminClient({"bootstrap.servers": cluster.kafka_bootstrap, "log_level": 0})
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.brokers) == 1
    assert cluster.kafka_bootstrap.startswith("127.0.0.1:")


def test_the_operator_is_a_helm_release_that_upgrades_in_place(cluster: Cluster, flow: str) -> None:
    releases = json.loads(cluster.run("helm", "list", "-A", "-o", "json").stdout)
    release = next(r for r in releases if r["name"] == "srs-operator")
    assert release["status"] == "deployed"
    assert release["namespace"] == "srs-system"
    before = int(release["revision"])

    pods_before = {p["metadata"]["uid"] for p in cluster.get("pods", "-n", "srs-system")["items"]}
    # A change that reaches the pod template: the operator's pod is replaced, the release moves on.
    cluster.run(
        "helm", "upgrade", "srs-operator", str(ROOT / "charts" / "srs-operator"), "-n", "srs-system", "--reuse-values",
        "--set", f"podAnnotations.srs\\.dev/upgrade-test=r{before + 1}", "--wait", "--timeout", "180s",
    )  # fmt: skip
    releases = json.loads(cluster.run("helm", "list", "-A", "-o", "json").stdout)
    release = next(r for r in releases if r["name"] == "srs-operator")
    assert int(release["revision"]) == before + 1
    assert release["status"] == "deployed"

    def replaced() -> bool:
        pods = [
            p for p in cluster.get("pods", "-n", "srs-system")["items"] if not p["metadata"].get("deletionTimestamp")
        ]
        return bool(pods) and all(
            p["metadata"]["uid"] not in pods_before
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            for p in pods
        )

    wait_for("the upgraded operator pod Ready", replaced, timeout=180, interval=1)

    # The upgraded operator still reconciles: a scale goes through to a second Ready pod.
    cluster.kubectl("scale", "-n", flow, "sagent/other", "--replicas=2")
    try:
        wait_for(
            "agent other at 2/2 after the upgrade",
            lambda: cluster.get("sagent/other", "-n", flow).get("status", {}).get("readyReplicas") == 2,
            timeout=180,
            interval=1,
        )
    finally:
        cluster.kubectl("scale", "-n", flow, "sagent/other", "--replicas=1")
    wait_until_ready(cluster, "sagent/other", flow)
