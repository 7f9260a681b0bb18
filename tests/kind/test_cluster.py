"""The cluster itself: a Ready node running containerd under a real kubelet, Kafka reachable
from the host, KEDA running as upstream ships it (operator, metrics API server, admission
webhooks), and the operator installed — and upgraded — as a Helm release."""

from __future__ import annotations

import json

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from devstack import images, keda
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
    admin = AdminClient({**cluster.kafka_settings, "log_level": 0})
    metadata = admin.list_topics(timeout=10)
    # Three brokers, each advertised to the host on its own loopback port (kind's port mappings).
    assert sorted(metadata.brokers) == [0, 1, 2]
    assert {f"{b.host}:{b.port}" for b in metadata.brokers.values()} == set(cluster.kafka_bootstrap.split(","))
    assert all(address.startswith("127.0.0.1:") for address in cluster.kafka_bootstrap.split(","))
    assert cluster.kafka_settings["security.protocol"] == "SASL_SSL"


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


def test_keda_runs_its_operator_metrics_server_and_webhooks(cluster: Cluster) -> None:
    assert cluster.state.keda_installed, "srs kind up installed no KEDA"
    for name in keda.DEPLOYMENTS:
        deployment = cluster.get(f"deployment/{name}", "-n", keda.NAMESPACE)
        available = next(c for c in deployment["status"]["conditions"] if c["type"] == "Available")
        assert available["status"] == "True", (name, available)
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert container["image"] in images.KEDA_IMAGES.values(), container["image"]
    # Built here as upstream's images are: nonroot, uid and gid 65532.
    for image in images.KEDA_IMAGES.values():
        user = cluster.run("docker", "image", "inspect", "--format", "{{.Config.User}}", image).stdout.strip()
        assert user == "65532:65532", (image, user)

    # The operator's certificate rotation made the certificates and put its CA where the API
    # server needs it: the external metrics API answers through the aggregator.
    assert cluster.get("secret/kedaorg-certs", "-n", keda.NAMESPACE)["data"]["ca.crt"]
    api_service = cluster.get(f"apiservice/{keda.API_SERVICE}")
    assert api_service["spec"].get("caBundle"), "the operator wrote no CA into the APIService"
    assert any(c["type"] == "Available" and c["status"] == "True" for c in api_service["status"]["conditions"])
    metrics = json.loads(cluster.kubectl("get", "--raw", "/apis/external.metrics.k8s.io/v1beta1"))
    assert metrics["groupVersion"] == "external.metrics.k8s.io/v1beta1"

    # KEDA's kinds are served.
    crd = cluster.get("crd/scaledobjects.keda.sh")
    assert any(c["type"] == "Established" and c["status"] == "True" for c in crd["status"]["conditions"])
    assert cluster.get("scaledobjects", "-A")["items"] is not None


def _scaled_object(name: str, *, min_replicas: int, idle_replicas: int) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"name": "no-such-workload"},
                "idleReplicaCount": idle_replicas,
                "minReplicaCount": min_replicas,
                "maxReplicaCount": 4,
                "triggers": [
                    {
                        "type": "kafka",
                        "metadata": {
                            "bootstrapServers": "kafka-bootstrap.kafka.svc:9092",
                            "consumerGroup": "webhook-test",
                            "topic": "webhook-test",
                            "lagThreshold": "10",
                        },
                    }
                ],
            },
        }
    )


def test_kedas_webhook_rejects_an_invalid_scaled_object_with_its_message(cluster: Cluster) -> None:
    # An idle replica count not below the minimum passes the CRD's schema and is refused by
    # KEDA's own validation, in its webhook (upstream registers it with failurePolicy Ignore:
    # without a webhook that answers over TLS, the API server would let it through).
    done = cluster.run(
        "kubectl", "create", "--dry-run=server", "-f", "-",
        stdin=_scaled_object("idle-not-below-min", min_replicas=1, idle_replicas=1), check=False,
    )  # fmt: skip
    assert done.returncode != 0, f"KEDA's webhook let an invalid ScaledObject through: {done.stdout}"
    assert 'admission webhook "vscaledobject.kb.io" denied the request' in done.stderr, done.stderr
    assert "IdleReplicaCount=1 must be less than MinReplicaCount=1" in done.stderr, done.stderr
    # The same object with an idle count below the minimum is admitted: the webhook refused the
    # counts, not the target (KEDA does not require the workload to exist for a Kafka trigger).
    cluster.kubectl(
        "create", "--dry-run=server", "-f", "-", stdin=_scaled_object("idle-below-min", min_replicas=1, idle_replicas=0)
    )
