"""A real model in the cluster: llama.cpp's server with Gemma 3 270M (``srs kind up --llm``)
as a Deployment whose readiness is the server's /health, and a specialist pod of the srs
image drafting replies through it with ``provider: openai`` — the path a user without an
API key takes on Kubernetes."""

from __future__ import annotations

import json
import subprocess
import uuid
from typing import Any

import pytest

from devstack import kind, settings
from srs import publish
from tests.harness import wait_for
from tests.kind.conftest import Cluster, wait_until_ready
from tests.kind.test_agents import _agent, _apply, _topics

pytestmark = pytest.mark.kind

PROMPT = (
    "The following is a reply written by the customer support team of a software company. The team answers "
    "the customer's question politely in two or three sentences and signs as The Support Team."
)


#: The one-node cluster's 2 CPUs are nearly all requested by the control plane, Kafka, the
#: operator, the model server and the example agents: these two ask for little.
SMALL = {"requests": {"cpu": "20m", "memory": "128Mi"}}


def test_the_model_server_runs_as_a_ready_deployment_and_answers_the_openai_api(cluster: Cluster) -> None:
    assert cluster.state.llm_base_url == kind.LLM_BASE_URL_IN_CLUSTER, "srs kind up --llm deployed no model server"
    deployment = cluster.get("deployment/llm", "-n", kind.LLM_NAMESPACE)
    assert deployment["status"].get("readyReplicas") == 1
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["httpGet"]["path"] == "/health"
    # Through the API server's service proxy: the Service routes to the server's port.
    models = json.loads(
        cluster.kubectl("get", "--raw", f"/api/v1/namespaces/{kind.LLM_NAMESPACE}/services/llm:http/proxy/v1/models")
    )
    assert [m["id"] for m in models["data"]] == [settings.LLM_MODEL_ALIAS]


def _outcomes(cluster: Cluster, kcat: str, topics: dict[str, str], ids: set[str]) -> dict[str, dict[str, Any]]:
    """The committed outcome of each ticket (resolved or with people), read with kcat."""
    found: dict[str, dict[str, Any]] = {}
    for stage in ("resolved", "human"):
        done = subprocess.run(
            [kcat, "-F", cluster.kafka_config, "-X", "isolation.level=read_committed",
             "-C", "-t", topics[stage], "-o", "beginning", "-e", "-q", "-f", "%s\n"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        for line in done.stdout.splitlines():
            event = json.loads(line)
            if event["ticket_id"] in ids:
                found[event["ticket_id"]] = event
    return found


def test_a_specialist_pod_drafts_through_the_in_cluster_model(
    cluster: Cluster, flow: str, kcat: str, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"kind-llm-{uuid.uuid4().hex[:6]}"
    names = {stage: f"{prefix}.{stage}" for stage in ("in", "drafts", "resolved", "human", "dlq")}
    triage: dict[str, Any] = {
        "apiVersion": "srs.dev/v1alpha1", "kind": "SupportAgent", "metadata": {"name": f"{prefix}-triage"},
        "spec": {
            "role": "triage", "model": {"provider": "offline"}, "inputTopic": names["in"],
            # Every type to the model-backed specialist; nothing is held back for people.
            "routes": {t: names["drafts"] for t in ("billing", "technical", "feature_request", "account", "other")},
            "humanTopic": names["human"], "confidenceThreshold": 0.0, "deadLetterTopic": names["dlq"],
            "resources": SMALL,
        },
    }  # fmt: skip
    model = {
        "provider": "openai", "name": settings.LLM_MODEL_ALIAS, "baseURL": cluster.state.llm_base_url,
        "maxTokens": 96, "temperature": 0.2, "timeoutSeconds": 150,
    }  # fmt: skip
    specialist: dict[str, Any] = _agent(
        f"{prefix}-drafts", prefix, inputTopic=names["drafts"], outputTopic=names["resolved"],
        humanTopic=names["human"], deadLetterTopic=names["dlq"], model=model, prompt={"inline": PROMPT},
        concurrency=kind.LLM_PARALLEL, resources=SMALL,
    )  # fmt: skip
    _apply(cluster, flow, *_topics(list(names.values())), triage, specialist)
    try:
        for agent in (triage, specialist):
            wait_until_ready(cluster, f"sagent/{agent['metadata']['name']}", flow)
        samples = publish.sample_tickets()
        sent = cluster.publish(names["in"], samples[:2])
        ids = {event["ticket_id"] for event in sent}
        found: dict[str, dict[str, Any]] = {}

        def all_answered() -> bool:
            found.update(_outcomes(cluster, kcat, names, ids))
            return set(found) == ids

        wait_for("both tickets drafted through the model (resolved, or with people and the reason)",
                 all_answered, timeout=420, interval=5)  # fmt: skip
    finally:
        for agent in (triage, specialist):
            cluster.kubectl("delete", "sagent", "-n", flow, agent["metadata"]["name"], "--wait=false", check=False)
        for topic in names.values():
            cluster.kubectl("delete", "ttopic", "-n", flow, topic, "--wait=false", check=False)
    for event in found.values():
        # Resolved with a draft, or escalated by the specialist (an unusable draft, a guardrail):
        # either way the model was called, and what it cost is on the event.
        assert event["event_type"] == "ticket.resolved" or "escalation" in event, event
        spent = event["usage"]
        assert spent["calls"] >= 1 and spent["output_tokens"] > 0, spent
        assert spent["model"] == settings.LLM_MODEL_ALIAS, "the model the server reported"
        if event["event_type"] == "ticket.resolved":
            assert event["response"]["body"].strip()
    with capsys.disabled():
        print("\nkind local model: " + "; ".join(
            f"{e['ticket_id']} {e['event_type']} {e['usage']['output_tokens']} tokens "
            f"in {e['usage']['duration_ms'] / 1000:.1f}s" for e in found.values()))  # fmt: skip
