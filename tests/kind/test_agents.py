"""Agents as real pods: the srs image under a kubelet, in a namespace that enforces the
restricted Pod Security Standard, with probes, JSON logs, metrics, Secrets and config
mounts that only a real node exercises — and a ticket flow in which every ticket has
exactly one outcome when pods are killed mid-flow."""

from __future__ import annotations

import json
import re
import shlex
import time
import uuid
from typing import Any

import pytest

from srs import publish
from tests.harness import wait_for
from tests.kind.conftest import Cluster, assert_every_ticket_once, wait_until_ready

pytestmark = pytest.mark.kind

EXAMPLE_AGENTS = ("triage", "billing", "technical", "feature-request", "account", "other")


def _ready(pod: dict) -> bool:  # type: ignore[type-arg]
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions", []))


def test_example_agents_run_as_restricted_pods_of_the_srs_image(cluster: Cluster, flow: str) -> None:
    for agent in EXAMPLE_AGENTS:
        pods = cluster.agent_pods(flow, agent)
        assert len(pods) == 1, f"{agent}: {[p['metadata']['name'] for p in pods]}"
        pod = pods[0]
        assert _ready(pod), f"{agent} pod not Ready: {pod['status']}"
        container = pod["spec"]["containers"][0]
        assert container["image"] == cluster.state.image
        # The kubelet checks the runtime's own probes; a Ready pod with no restarts passed them.
        assert container["readinessProbe"]["httpGet"] and container["livenessProbe"]["httpGet"]
        assert pod["status"]["containerStatuses"][0]["restartCount"] == 0
        assert pod["spec"]["nodeName"] == f"{cluster.state.cluster}-control-plane"

    pod = cluster.agent_pods(flow, "billing")[0]["metadata"]["name"]
    assert cluster.kubectl("exec", "-n", flow, pod, "--", "id", "-u").strip() == "10001"
    # The rendered config comes from the ConfigMap mounted by the kubelet; the root fs is read-only.
    config = cluster.kubectl("exec", "-n", flow, pod, "--", "cat", "/etc/srs/agent.yaml")
    assert "ticket.triaged.billing" in config
    write = cluster.run("kubectl", "exec", "-n", flow, pod, "--", "touch", "/opt/srs/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_a_restricted_namespace_refuses_pods_that_break_the_standard(cluster: Cluster, flow: str) -> None:
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": f"not-allowed-{uuid.uuid4().hex[:6]}"},
        "spec": {"containers": [{"name": "c", "image": cluster.state.image, "securityContext": {"privileged": True}}]},
    }
    done = cluster.run("kubectl", "apply", "-n", flow, "-f", "-", stdin=json.dumps(privileged), check=False)
    assert done.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in done.stderr


def test_agent_logs_are_json_and_metrics_are_scrapeable_through_the_service(cluster: Cluster, flow: str) -> None:
    lines = [line for line in cluster.kubectl("logs", "-n", flow, "deploy/triage", "--tail=20").splitlines() if line]
    assert lines
    records = [json.loads(line) for line in lines]
    assert all({"ts", "level", "msg"} <= set(r) for r in records), records[:3]

    # Scraped the way Prometheus would reach it: through the agent's Service (via the API server's proxy).
    service = cluster.get("service/triage", "-n", flow)
    port = service["spec"]["ports"][0]["name"]
    metrics = cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{flow}/services/triage:{port}/proxy/metrics")
    assert "# TYPE" in metrics
    assert "srs_" in metrics


def test_200_tickets_have_exactly_one_outcome_each_while_agent_pods_are_killed(
    cluster: Cluster, flow: str, kcat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    samples = publish.sample_tickets()
    tickets = [samples[i % len(samples)] for i in range(200)]
    killed = {agent: cluster.agent_pods(flow, agent)[0]["metadata"]["uid"] for agent in ("triage", "billing")}

    t0 = time.monotonic()
    sent = cluster.publish("ticket.events", tickets[:100])
    # Mid-flow: the triage pod and a specialist pod go away; their Deployments replace them.
    cluster.kubectl("delete", "pod", "-n", flow, "-l", "app.kubernetes.io/instance in (triage,billing)", "--wait=false")
    sent += cluster.publish("ticket.events", tickets[100:])
    ids = {event["ticket_id"] for event in sent}
    assert len(ids) == 200

    assert_every_ticket_once(cluster, kcat, ids, "kind flow", t0, capsys, timeout=240)
    for agent, uid in killed.items():
        pods = cluster.agent_pods(flow, agent)
        assert pods and all(p["metadata"]["uid"] != uid for p in pods), f"{agent} pod was not replaced"
        wait_for(f"{agent} replacement Ready", lambda a=agent: all(_ready(p) for p in cluster.agent_pods(flow, a)), 120)


def _topics(names: list[str]) -> list[dict]:  # type: ignore[type-arg]
    return [
        {
            "apiVersion": "srs.dev/v1alpha1",
            "kind": "TicketTopic",
            "metadata": {"name": n},
            "spec": {"partitions": 1, "deletionPolicy": "Delete"},
        }
        for n in names
    ]


def _agent(name: str, prefix: str, **spec: object) -> dict:  # type: ignore[type-arg]
    return {
        "apiVersion": "srs.dev/v1alpha1",
        "kind": "SupportAgent",
        "metadata": {"name": name},
        "spec": {
            "role": "specialist",
            "specialty": "other",
            "inputTopic": f"{prefix}.in",
            "outputTopic": f"{prefix}.out",
            "humanTopic": f"{prefix}.human",
            "deadLetterTopic": f"{prefix}.dlq",
            **spec,
        },
    }


def _apply(cluster: Cluster, namespace: str, *objects: dict) -> None:  # type: ignore[type-arg]
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}),
    )


def test_rotating_an_api_key_secret_rolls_the_agent_pods(cluster: Cluster, flow: str) -> None:
    prefix = f"kind-rotation-{uuid.uuid4().hex[:6]}"
    name = prefix
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"{name}-key"},
        "stringData": {"api-key": "sk-first-key"},
    }
    model = {
        "provider": "anthropic",
        "name": "claude-sonnet-4-5",
        "apiKeySecretRef": {"name": f"{name}-key", "key": "api-key"},
    }
    _apply(cluster, flow, secret, *_topics([f"{prefix}.in", f"{prefix}.out", f"{prefix}.human", f"{prefix}.dlq"]),
           _agent(name, prefix, model=model))  # fmt: skip
    granted: str | None = None
    try:
        # The operator reads Secrets only where a RoleBinding lets it; it says so, with the command.
        def reported() -> dict[str, Any]:
            return cluster.condition(f"sagent/{name}", flow)

        wait_for("Ready or SecretsNotReadable", lambda: reported().get("status") == "True"
                 or reported().get("reason") == "SecretsNotReadable", timeout=180, interval=1)  # fmt: skip
        cond = reported()
        if cond.get("reason") == "SecretsNotReadable":
            command = re.search(r"`(kubectl create rolebinding [^`]+)`", cond["message"])
            assert command, cond["message"]
            argv = shlex.split(command.group(1))
            assert "--serviceaccount=srs-system:srs-operator" in argv, argv
            cluster.run(*argv)
            granted = argv[3]
        wait_until_ready(cluster, f"sagent/{name}", flow)
        first = cluster.agent_pods(flow, name)[0]
        pod = first["metadata"]["name"]
        # The key reaches the container only as a secretKeyRef env var (compared, never printed).
        check = 'test "$SRS_MODEL_API_KEY" = sk-first-key'
        assert cluster.run("kubectl", "exec", "-n", flow, pod, "--", "sh", "-c", check, check=False).returncode == 0

        cluster.kubectl(
            "patch", "secret", "-n", flow, f"{name}-key", "-p", json.dumps({"stringData": {"api-key": "sk-second-key"}})
        )

        def rolled() -> bool:
            pods = cluster.agent_pods(flow, name)
            return len(pods) == 1 and pods[0]["metadata"]["uid"] != first["metadata"]["uid"] and _ready(pods[0])

        wait_for("a new Ready pod after the key rotation", rolled, timeout=180, interval=1)
        pod = cluster.agent_pods(flow, name)[0]["metadata"]["name"]
        check = 'test "$SRS_MODEL_API_KEY" = sk-second-key'
        assert cluster.run("kubectl", "exec", "-n", flow, pod, "--", "sh", "-c", check, check=False).returncode == 0
        # The key itself appears nowhere the operator writes.
        for where in ("configmaps", "supportagents", "deployments", "events"):
            assert "sk-second-key" not in cluster.kubectl("get", where, "-n", flow, "-o", "json")
    finally:
        cluster.kubectl("delete", "sagent", "-n", flow, name, "--wait=false", check=False)
        cluster.kubectl("delete", "secret", "-n", flow, f"{name}-key", check=False)
        if granted:
            cluster.kubectl("delete", "rolebinding", "-n", flow, granted, check=False)
        for suffix in ("in", "out", "human", "dlq"):
            cluster.kubectl("delete", "ttopic", "-n", flow, f"{prefix}.{suffix}", "--wait=false", check=False)


def test_an_agent_whose_image_cannot_start_says_why(cluster: Cluster, flow: str) -> None:
    prefix = f"kind-noimage-{uuid.uuid4().hex[:6]}"
    name = prefix
    _apply(cluster, flow, *_topics([f"{prefix}.in", f"{prefix}.out", f"{prefix}.human", f"{prefix}.dlq"]),
           _agent(name, prefix, model={"provider": "offline"}, image="srs.local/no-such-image:0.0.0"))  # fmt: skip
    try:

        def failing() -> bool:
            cond = cluster.condition(f"sagent/{name}", flow)
            return cond.get("status") == "False" and cond.get("reason") == "PodsFailing"

        wait_for("Ready=False with reason PodsFailing", failing, timeout=180, interval=1)
        message = cluster.condition(f"sagent/{name}", flow)["message"]
        assert any(r in message for r in ("ErrImagePull", "ImagePullBackOff", "ErrImageNeverPull")), message
        assert "srs.local/no-such-image:0.0.0" in message or "no-such-image" in message, message
    finally:
        cluster.kubectl("delete", "sagent", "-n", flow, name, "--wait=false", check=False)
        for suffix in ("in", "out", "human", "dlq"):
            cluster.kubectl("delete", "ttopic", "-n", flow, f"{prefix}.{suffix}", "--wait=false", check=False)
