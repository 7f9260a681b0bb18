"""The Argo CD health checks judged on what the operator really writes.

The operator runs under its own RBAC against the local control plane and Kafka; each
test reads the live SupportAgent / TicketTopic and runs gitops/argocd's health.lua on it
with Argo CD's interpreter (gopher-lua, argocd-cm libraries). A change in the
operator's conditions that the scripts do not understand fails here, not in production.
The gitops example (examples/gitops/teams/support) is applied wave by wave, the way Argo
CD syncs it, with its topic names made unique per test.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from gitops.argocd.interpreter import Health
from tests.harness import TopicFactory
from tests.integration.gitops_support import Objects, health, team_manifests
from tests.integration.operator_harness import GROUP, VERSION, Agents, condition
from tests.integration.tickettopic_support import sleep_past_second_boundary

pytestmark = pytest.mark.integration


@pytest.fixture
def objects(api_client: client.ApiClient, agent_namespace: str) -> Iterator[Objects]:
    objs = Objects(api_client, agent_namespace)
    yield objs
    objs.delete_topics()


def _wave(obj: dict[str, Any]) -> int:
    return int(obj["metadata"].get("annotations", {}).get("argocd.argoproj.io/sync-wave", "0"))


def _rfc3339(t: dt.datetime) -> str:
    return t.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def test_the_gitops_example_turns_healthy_wave_by_wave(objects: Objects) -> None:
    manifests = team_manifests(uuid.uuid4().hex[:6])
    waves = sorted({_wave(m) for m in manifests})
    assert waves == [1, 2], "topics in wave 1, agents in wave 2"
    for wave in waves:
        batch = [m for m in manifests if _wave(m) == wave]
        for m in batch:
            created = objects.create(m)
            # Just created: the operator has not written a status yet.
            assert health(created).status == "Progressing"
        for m in batch:  # Argo CD moves to the next wave only when this one is Healthy
            obj, judged = objects.wait_health(m["kind"], m["metadata"]["name"], "Healthy")
            ready = condition(obj, "Ready")
            assert judged.message == ready["message"]
            assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    _, billing = objects.wait_health("SupportAgent", "billing", "Healthy")
    assert billing == Health("Healthy", "1 of 1 replicas updated and available")


def test_a_spec_change_is_progressing_until_the_operator_has_observed_it(objects: Objects, agents: Agents) -> None:
    suffix = uuid.uuid4().hex[:6]
    for m in team_manifests(suffix):
        objects.create(m)
    objects.wait_health("SupportAgent", "triage", "Healthy")

    # The API server answers the patch before the operator can have seen it: the status
    # still describes the previous generation, and Healthy would be a lie (argo-cd#23578).
    patched = objects.patch_spec("SupportAgent", "triage", {"concurrency": 4})
    assert patched["status"]["observedGeneration"] < patched["metadata"]["generation"]
    assert condition(patched, "Ready")["status"] == "True"
    assert health(patched) == Health(
        "Progressing",
        f"Waiting for the srs operator to observe generation {patched['metadata']['generation']} "
        f"(the status describes generation {patched['status']['observedGeneration']})",
    )
    objects.wait_health("SupportAgent", "triage", "Healthy")


@pytest.fixture
def agents(api_client: client.ApiClient, agent_namespace: str) -> Agents:
    return Agents(api_client, agent_namespace)


def _topic(name: str, topic_name: str, partitions: int, adopt: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"topicName": topic_name, "partitions": partitions, "replicationFactor": 1}
    if adopt:
        spec["adoptExisting"] = True  # the topic exists already: taking it over is an explicit choice
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TicketTopic", "metadata": {"name": name}, "spec": spec}


def test_an_agent_scaled_to_zero_is_suspended(objects: Objects, agents: Agents) -> None:
    suffix = uuid.uuid4().hex[:6]
    for m in team_manifests(suffix):
        objects.create(m)
    objects.wait_health("SupportAgent", "billing", "Healthy")
    objects.patch_spec("SupportAgent", "billing", {"replicas": 0})
    obj, judged = objects.wait_health("SupportAgent", "billing", "Suspended")
    assert judged.message == "Scaled to zero: spec.replicas is 0, no pods run"
    assert condition(obj, "Ready")["reason"] == "RolloutComplete"


def test_an_agent_reading_a_topic_nobody_declares_is_progressing_then_degraded(
    objects: Objects, agents: Agents
) -> None:
    topic = f"ticket-{uuid.uuid4().hex[:6]}.undeclared"
    agents.create(
        "orphan",
        {"role": "specialist", "specialty": "billing", "model": {"provider": "offline"}, "inputTopic": topic},
    )
    live = agents.wait_condition("orphan", "Ready", "True")  # rolled out; the topic is what is missing
    topics = condition(live, "TopicsReady")
    assert (topics["status"], topics["reason"]) == ("False", "TopicsNotReady")
    assert f"no TicketTopic for {topic}" in topics["message"]
    assert health(live) == Health("Progressing", topics["message"])

    # The same status once the topic has been missing for ten minutes: the operator keeps
    # lastTransitionTime while the condition holds, so that is what Argo CD will then see.
    later = copy.deepcopy(live)
    for c in later["status"]["conditions"]:
        if c["type"] == "TopicsReady":
            c["lastTransitionTime"] = _rfc3339(dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10))
    assert health(later) == Health("Degraded", topics["message"])


def test_an_agent_without_its_api_key_secret_is_degraded_with_the_operators_message(
    objects: Objects, agents: Agents
) -> None:
    agents.create(
        "keyless",
        {
            "role": "specialist",
            "specialty": "billing",
            "inputTopic": f"ticket-{uuid.uuid4().hex[:6]}.billing",
            "model": {
                "provider": "anthropic",
                "name": "claude-sonnet-4-5",
                "apiKeySecretRef": {"name": "llm", "key": "api-key"},
            },
        },
    )
    obj, judged = objects.wait_health("SupportAgent", "keyless", "Degraded")
    ready = condition(obj, "Ready")
    assert ready["reason"] == "SecretNotFound"
    assert judged.message == ready["message"]
    assert "Secret llm" in judged.message


def test_a_partition_decrease_is_degraded_with_the_not_supported_message(
    objects: Objects, kafka_topic: TopicFactory
) -> None:
    # Admission refuses to lower spec.partitions, so the decrease that reaches the operator
    # is a TicketTopic asking for fewer partitions than an existing topic has.
    name = kafka_topic(prefix="ticket-decrease", partitions=3)
    objects.create(_topic("events", name, partitions=1, adopt=True))
    obj, judged = objects.wait_health("TicketTopic", "events", "Degraded")
    ready = condition(obj, "Ready")
    assert ready["reason"] == "NotSupported"
    assert judged.message == ready["message"]
    assert "Kafka cannot remove partitions" in judged.message

    # The fix (in git: spec.partitions back to what the topic has) turns it Healthy.
    objects.patch_spec("TicketTopic", "events", {"partitions": 3})
    _, judged = objects.wait_health("TicketTopic", "events", "Healthy")
    assert judged.message == f"topic {name} exists as specified"


def test_a_second_tickettopic_for_one_topic_is_degraded_with_the_conflict(
    objects: Objects, kafka_topic: TopicFactory
) -> None:
    name = kafka_topic(prefix="ticket-conflict", partitions=1)
    objects.create(_topic("first", name, partitions=1, adopt=True))
    objects.wait_health("TicketTopic", "first", "Healthy")
    sleep_past_second_boundary()  # creation times are in seconds: "first" must be the older one
    objects.create(_topic("second", name, partitions=1))
    obj, judged = objects.wait_health("TicketTopic", "second", "Degraded")
    assert condition(obj, "Ready")["reason"] == "ResourceConflict"
    assert judged.message == condition(obj, "Ready")["message"]
    assert "already managed by TicketTopic" in judged.message
