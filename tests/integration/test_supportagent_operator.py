"""SupportAgents reconciled for real: the operator runs as a subprocess under its
least-privilege ServiceAccount against the local control plane (kwok makes pods Ready)
and the real Kafka broker (TicketTopics)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from kubernetes import client

from srs_contracts.agent_config import CONFIG_KEY, AgentConfig
from tests.harness import create_test_namespace, first_change, wait_for
from tests.integration.operator_harness import (
    GROUP,
    NAMESPACE_PREFIX,
    VERSION,
    Agents,
    OperatorIdentity,
    agents_table,
    condition,
)
from tests.integration.operator_process import OperatorProcess

pytestmark = pytest.mark.integration

API_KEY = "sk-ant-test-0123456789"
HASH = "srs.dev/config-hash"

SPECIALIST: dict[str, Any] = {
    "role": "specialist",
    "specialty": "billing",
    "inputTopic": "ticket.triaged.billing",
    "model": {
        "provider": "anthropic",
        "name": "claude-sonnet-4-5",
        "apiKeySecretRef": {"name": "llm", "key": "api-key"},
    },
}


def _secret(core_v1: client.CoreV1Api, namespace: str, value: str = API_KEY, name: str = "llm") -> None:
    core_v1.create_namespaced_secret(
        namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=name), string_data={"api-key": value})
    )


@dataclass(frozen=True)
class ReadyAgent:
    """An agent the scenario starts from: created, its API key Secret present, Ready."""

    namespace: str
    agents: Agents
    body: dict[str, Any]


@pytest.fixture
def billing(agents: Agents, core_v1: client.CoreV1Api) -> ReadyAgent:
    """The ``billing`` specialist with its API key Secret, created and Ready."""
    _secret(core_v1, agents.namespace)
    agents.create("billing", SPECIALIST)
    return ReadyAgent(agents.namespace, agents, agents.wait_ready("billing"))


def _pod_hash(apps_v1: client.AppsV1Api, namespace: str, name: str) -> str:
    deployment = apps_v1.read_namespaced_deployment(name, namespace)
    return str(deployment.spec.template.metadata.annotations[HASH])


def _ready_pods(core_v1: client.CoreV1Api, namespace: str, name: str) -> list[client.V1Pod]:
    pods = core_v1.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={name}").items
    return [
        p
        for p in pods
        if p.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
    ]


def _events(core_v1: client.CoreV1Api, namespace: str, name: str) -> list[client.CoreV1Event]:
    return list(
        core_v1.list_namespaced_event(
            namespace, field_selector=f"involvedObject.kind=SupportAgent,involvedObject.name={name}"
        ).items
    )


def _write_requests(operator: OperatorProcess) -> dict[str, float]:
    """The operator's write requests so far, by verb, resource and response code."""
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as r:  # noqa: S310 - localhost
        lines = r.read().decode().splitlines()
    samples = (line.rsplit(" ", 1) for line in lines if line.startswith("srs_operator_api_requests_total{"))
    return {labels: float(value) for labels, value in samples if 'verb="GET"' not in labels}


def _drift_reverts(core_v1: client.CoreV1Api, namespace: str) -> int:
    return sum(e.count or 1 for e in _events(core_v1, namespace, "billing") if e.reason == "DriftReverted")


def test_an_agent_gets_its_children_and_becomes_ready(
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    billing: ReadyAgent,
) -> None:
    ns, agent = billing.namespace, billing.body

    assert condition(agent, "Accepted")["status"] == "True"
    status = agent["status"]
    assert (status["replicas"], status["readyReplicas"], status["ready"]) == (1, 1, "1/1")
    assert status["selector"] == "app.kubernetes.io/instance=billing,app.kubernetes.io/name=support-agent"
    assert status["observedGeneration"] == agent["metadata"]["generation"]

    uid = agent["metadata"]["uid"]
    deployment = apps_v1.read_namespaced_deployment("billing", ns)
    config_map = core_v1.read_namespaced_config_map("billing-config", ns)
    service = core_v1.read_namespaced_service("billing", ns)
    account = core_v1.read_namespaced_service_account("billing", ns)
    for child in (deployment, config_map, service, account):
        assert [(o.kind, o.uid, o.controller) for o in child.metadata.owner_references] == [("SupportAgent", uid, True)]

    container = deployment.spec.template.spec.containers[0]
    assert container.image == "srs:test"
    assert container.args == ["agent", "--config", "/etc/srs/agent.yaml"]
    assert container.readiness_probe.http_get.path == "/readyz"
    assert container.liveness_probe.http_get.path == "/healthz"
    api_key = next(e for e in container.env if e.name == "SRS_MODEL_API_KEY")
    assert (api_key.value, api_key.value_from.secret_key_ref.name) == (None, "llm")
    config = AgentConfig.from_yaml(config_map.data[CONFIG_KEY])
    assert (config.role.value, config.kafka.input_topic, config.model.api_key_env) == (
        "specialist",
        "ticket.triaged.billing",
        "SRS_MODEL_API_KEY",
    )
    assert API_KEY not in config_map.data[CONFIG_KEY]
    assert API_KEY not in json.dumps(agent)  # nor in the status
    assert [p.name for p in service.spec.ports] == ["http"]

    table = agents_table(api_client, ns)
    columns = [c["name"] for c in table["columnDefinitions"] if c["priority"] == 0]
    assert columns == [
        "Name",
        "Role",
        "Specialty",
        "Provider",
        "Model",
        "Ready",
        "Status",
        "Applied",
        "Current",
        "Desired",
        "Scaling",
        "Age",
    ]
    row = table["rows"][0]["cells"]
    assert row[:7] == ["billing", "specialist", "billing", "anthropic", "claude-sonnet-4-5", "1/1", "RolloutComplete"]

    wait_for(  # Events are posted right after the status that announces the transition
        "Created and RolloutComplete Events",
        lambda: {"Created", "RolloutComplete"} <= {e.reason for e in _events(core_v1, ns, "billing")},
        timeout=10,
    )
    assert all(API_KEY not in (e.message or "") for e in _events(core_v1, ns, "billing"))


def test_scaling_through_the_scale_subresource_gives_three_ready_pods(
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    billing: ReadyAgent,
) -> None:
    ns, agents = billing.namespace, billing.agents

    custom = client.CustomObjectsApi(api_client)  # what `kubectl scale sagent billing --replicas=3` does
    custom.patch_namespaced_custom_object_scale(
        GROUP, VERSION, ns, "supportagents", "billing", {"spec": {"replicas": 3}}
    )
    agent = agents.wait_ready("billing")
    assert (agent["status"]["readyReplicas"], agent["status"]["ready"]) == (3, "3/3")
    assert len(_ready_pods(core_v1, ns, "billing")) == 3
    scale = custom.get_namespaced_custom_object_scale(GROUP, VERSION, ns, "supportagents", "billing")
    assert (scale["spec"]["replicas"], scale["status"]["replicas"]) == (3, 3)
    assert scale["status"]["selector"] == agent["status"]["selector"]


def test_a_spec_edit_rolls_the_pods(
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    billing: ReadyAgent,
) -> None:
    ns, agents = billing.namespace, billing.agents
    before_hash = _pod_hash(apps_v1, ns, "billing")
    before_pods = {p.metadata.name for p in _ready_pods(core_v1, ns, "billing")}

    agents.patch_spec("billing", {"concurrency": 4, "prompt": {"inline": "Refunds need a manager's approval."}})
    agents.wait_ready("billing")
    wait_for("old pods gone", lambda: not before_pods & {p.metadata.name for p in _ready_pods(core_v1, ns, "billing")})
    assert _pod_hash(apps_v1, ns, "billing") != before_hash
    config = AgentConfig.from_yaml(core_v1.read_namespaced_config_map("billing-config", ns).data[CONFIG_KEY])
    assert (config.concurrency, config.system_prompt) == (4, "Refunds need a manager's approval.")
    wait_for("a ConfigChanged Event", lambda: "ConfigChanged" in {e.reason for e in _events(core_v1, ns, "billing")})


def test_a_change_to_a_referenced_secret_rolls_the_pods(
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    billing: ReadyAgent,
) -> None:
    ns, agents = billing.namespace, billing.agents
    before_hash = _pod_hash(apps_v1, ns, "billing")
    before_config = core_v1.read_namespaced_config_map("billing-config", ns).data

    rotated = base64.b64encode(b"sk-ant-rotated-key").decode()
    core_v1.patch_namespaced_secret("llm", ns, {"data": {"api-key": rotated}})
    wait_for("a new config hash", lambda: _pod_hash(apps_v1, ns, "billing") != before_hash, timeout=30)
    agents.wait_ready("billing")
    assert core_v1.read_namespaced_config_map("billing-config", ns).data == before_config  # the key is not in it

    # The hash follows the Secret's version, not its value: the original value again gives a
    # new hash, so the annotation tells nothing about the key (no offline guessing).
    rotated_hash = _pod_hash(apps_v1, ns, "billing")
    core_v1.patch_namespaced_secret("llm", ns, {"data": {"api-key": base64.b64encode(API_KEY.encode()).decode()}})
    wait_for("another config hash", lambda: _pod_hash(apps_v1, ns, "billing") not in (before_hash, rotated_hash))
    for value in (API_KEY, rotated):
        assert hashlib.sha256(value.encode()).hexdigest()[:32] not in _pod_hash(apps_v1, ns, "billing")


def test_a_missing_secret_is_reported_and_its_arrival_heals_the_agent(
    agents: Agents,
    core_v1: client.CoreV1Api,
) -> None:
    ns = agents.namespace
    agents.create("billing", SPECIALIST)
    agent = agents.wait_condition("billing", "Ready", "False", reason="SecretNotFound")
    assert "Secret llm" in condition(agent, "Ready")["message"]
    assert condition(agent, "Accepted")["status"] == "True"  # the children are there, waiting

    _secret(core_v1, ns)
    agents.wait_ready("billing")


def test_hand_edits_of_owned_objects_are_reverted(
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    billing: ReadyAgent,
) -> None:
    ns, agents = billing.namespace, billing.agents
    config = core_v1.read_namespaced_config_map("billing-config", ns).data[CONFIG_KEY]

    apps_v1.patch_namespaced_deployment(
        "billing", ns, {"spec": {"template": {"spec": {"containers": [{"name": "agent", "image": "evil:latest"}]}}}}
    )
    core_v1.patch_namespaced_config_map("billing-config", ns, {"data": {CONFIG_KEY: "role: hacked\n"}})
    core_v1.delete_namespaced_service("billing", ns)

    def image() -> str:
        return str(apps_v1.read_namespaced_deployment("billing", ns).spec.template.spec.containers[0].image)

    wait_for("image restored", lambda: image() == "srs:test", timeout=30)
    wait_for(
        "config restored",
        lambda: core_v1.read_namespaced_config_map("billing-config", ns).data[CONFIG_KEY] == config,
        timeout=30,
    )
    wait_for(
        "service recreated",
        lambda: bool(core_v1.list_namespaced_service(ns, field_selector="metadata.name=billing").items),
        timeout=30,
    )
    agents.wait_ready("billing")
    wait_for("a DriftReverted Event", lambda: "DriftReverted" in {e.reason for e in _events(core_v1, ns, "billing")})


def test_deleting_the_agent_removes_its_children(
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    billing: ReadyAgent,
) -> None:
    ns, agents = billing.namespace, billing.agents

    agents.delete("billing")
    selector = "app.kubernetes.io/instance=billing"
    wait_for("deployment collected", lambda: not apps_v1.list_namespaced_deployment(ns, label_selector=selector).items)
    wait_for("configmap collected", lambda: not core_v1.list_namespaced_config_map(ns, label_selector=selector).items)
    wait_for("service collected", lambda: not core_v1.list_namespaced_service(ns, label_selector=selector).items)
    wait_for(
        "serviceaccount collected",
        lambda: not core_v1.list_namespaced_service_account(ns, label_selector=selector).items,
    )
    wait_for("pods gone", lambda: not core_v1.list_namespaced_pod(ns, label_selector=selector).items)


def _versions(
    api_client: client.ApiClient, core_v1: client.CoreV1Api, apps_v1: client.AppsV1Api, ns: str
) -> dict[str, str]:
    agents = Agents(api_client, ns)
    return {
        "agent": agents.get("billing")["metadata"]["resourceVersion"],
        "deployment": apps_v1.read_namespaced_deployment("billing", ns).metadata.resource_version,
        "configmap": core_v1.read_namespaced_config_map("billing-config", ns).metadata.resource_version,
        "service": core_v1.read_namespaced_service("billing", ns).metadata.resource_version,
        "serviceaccount": core_v1.read_namespaced_service_account("billing", ns).metadata.resource_version,
    }


def test_steady_state_is_silent(
    api_client: client.ApiClient,
    agents: Agents,
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
    srs_operator: OperatorProcess,
) -> None:
    ns = agents.namespace
    _secret(core_v1, ns)
    # An empty env value is stored without its value by the API server (omitempty): it
    # must still compare equal, or every resync re-applies the Deployment.
    env = [{"name": "FEATURE_FLAGS", "value": ""}, {"name": "LOG_LEVEL", "value": "info"}]
    agents.create("billing", {**SPECIALIST, "env": env})
    agents.wait_ready("billing")

    def others_settled() -> bool:  # earlier tests' namespaces still being torn down cause events
        names = [n.metadata.name for n in core_v1.list_namespace().items]
        return not [n for n in names if n.startswith(NAMESPACE_PREFIX) and n != ns and "operator-" not in n]

    wait_for("other test namespaces gone", others_settled, timeout=90)

    def reconciles() -> float:
        return srs_operator.metric("srs_operator_reconciles_total", kind="SupportAgent", result="ok")

    # Agents of a namespace that vanished before kopf saw them go cost one 404 each, once
    # (then they are forgotten): wait for a resync period without a write of any kind.
    last = [srs_operator.metric("srs_operator_api_writes_total")]

    def quiet() -> bool:
        now = srs_operator.metric("srs_operator_api_writes_total")
        settled, last[0] = now == last[0], now
        return settled

    wait_for("a resync period without writes", quiet, timeout=60, interval=3)
    before = _versions(api_client, core_v1, apps_v1, ns)
    writes_before = srs_operator.metric("srs_operator_api_writes_total")
    requests_before = _write_requests(srs_operator)
    reverts_before = _drift_reverts(core_v1, ns)
    reconciles_before = reconciles()
    # Deployment writes would show first: watch them (bounded) until three more reconciles ran.
    change = first_change(apps_v1.list_namespaced_deployment, ns, resource_version=before["deployment"], seconds=8)
    assert change is None, f"the operator wrote to the Deployment of an unchanged agent: {change and change['type']}"
    wait_for("three reconciles of the unchanged agent", lambda: reconciles() - reconciles_before >= 3, timeout=30)
    assert _versions(api_client, core_v1, apps_v1, ns) == before
    # Not one API write by the operator, to any object of any namespace.
    writes = srs_operator.metric("srs_operator_api_writes_total")
    new_writes = {k: v - requests_before.get(k, 0) for k, v in _write_requests(srs_operator).items()}
    assert writes == writes_before, f"writes: { {k: n for k, n in new_writes.items() if n} }"
    # Steady state: no drift is found (and reverted) while nothing changes.
    assert _drift_reverts(core_v1, ns) == reverts_before


def test_replicas_owned_by_an_external_autoscaler_are_left_alone(
    agents: Agents,
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
) -> None:
    ns = agents.namespace
    _secret(core_v1, ns)
    agents.create("billing", {**SPECIALIST, "autoscaling": {"externallyManaged": True}})
    agents.wait_ready("billing")

    apps_v1.patch_namespaced_deployment_scale("billing", ns, {"spec": {"replicas": 2}}, field_manager="keda")
    wait_for("2 ready pods", lambda: len(_ready_pods(core_v1, ns, "billing")) == 2)
    agent = agents.wait_ready("billing")
    wait_for("status shows 2/2", lambda: agents.get("billing")["status"]["ready"] == "2/2")
    assert apps_v1.read_namespaced_deployment("billing", ns).spec.replicas == 2
    assert agent["spec"]["replicas"] == 1  # the agent's own count is not what runs


def _topic(api_client: client.ApiClient, ns: str, name: str, topic: str) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TicketTopic",
        "metadata": {"name": name},
        "spec": {"topicName": topic, "partitions": 1, "deletionPolicy": "Retain"},
    }
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(GROUP, VERSION, ns, "tickettopics", body)


def test_topics_ready_follows_the_ticket_topics_of_every_topic_the_agent_uses(
    api_client: client.ApiClient,
    agents: Agents,
    kafka_admin: AdminClient,
) -> None:
    ns = agents.namespace
    run = uuid.uuid4().hex[:8]
    topics = {role: f"sa-{run}.{role}" for role in ("in", "out", "human", "dlq")}
    spec = {
        "role": "specialist",
        "specialty": "technical",
        "inputTopic": topics["in"],
        "outputTopic": topics["out"],
        "humanTopic": topics["human"],
        "deadLetterTopic": topics["dlq"],
    }
    agents.create("tech", spec)
    agent = agents.wait_condition("tech", "TopicsReady", "False", reason="TopicsNotReady")
    assert all(t in condition(agent, "TopicsReady")["message"] for t in topics.values())
    try:
        for role, topic in topics.items():
            _topic(api_client, ns, role, topic)  # the real TicketTopic controller creates them in Kafka
        agents.wait_condition("tech", "TopicsReady", "True", timeout=60)
        agents.wait_ready("tech")

        client.CustomObjectsApi(api_client).delete_namespaced_custom_object(GROUP, VERSION, ns, "tickettopics", "dlq")
        agent = agents.wait_condition("tech", "TopicsReady", "False", reason="TopicsNotReady")
        assert condition(agent, "TopicsReady")["message"] == f"no TicketTopic for {topics['dlq']}"
    finally:
        for fut in kafka_admin.delete_topics(list(topics.values())).values():
            with contextlib.suppress(Exception):  # a topic that was never created
                fut.result(timeout=30)


def test_a_prompt_from_a_config_map_is_rendered_and_its_edits_roll_the_pods(
    agents: Agents,
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
) -> None:
    ns = agents.namespace
    spec = {
        **SPECIALIST,
        "model": {"provider": "offline"},
        "prompt": {"configMapKeyRef": {"name": "prompts", "key": "billing"}},
    }
    agents.create("billing", spec)
    agent = agents.wait_condition("billing", "Accepted", "False", reason="PromptNotFound")
    assert "ConfigMap prompts with key billing not found" in condition(agent, "Accepted")["message"]

    core_v1.create_namespaced_config_map(
        ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="prompts"), data={"billing": "Be precise."})
    )
    agents.wait_ready("billing")

    def prompt() -> str | None:
        data = core_v1.read_namespaced_config_map("billing-config", ns).data[CONFIG_KEY]
        return yaml.safe_load(data).get("system_prompt")

    assert prompt() == "Be precise."
    before = _pod_hash(apps_v1, ns, "billing")
    core_v1.patch_namespaced_config_map("prompts", ns, {"data": {"billing": "Be precise and kind."}})
    wait_for("the new prompt rendered", lambda: prompt() == "Be precise and kind.", timeout=30)
    # The ConfigMap is applied first, the Deployment right after it (what pods read, then the pods).
    wait_for("the pods rolled for the new prompt", lambda: _pod_hash(apps_v1, ns, "billing") != before, timeout=30)
    agents.wait_ready("billing")


def test_a_name_taken_by_someone_elses_object_is_a_conflict_not_a_takeover(
    agents: Agents,
    core_v1: client.CoreV1Api,
) -> None:
    ns = agents.namespace
    core_v1.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="billing", labels={"owner": "someone-else"}),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=80)], selector={"app": "web"}),
        ),
    )
    agents.create("billing", {**SPECIALIST, "model": {"provider": "offline"}})
    agent = agents.wait_condition("billing", "Accepted", "False", reason="NameConflict")
    assert (
        "a Service named billing already exists and is not owned by this SupportAgent"
        in condition(agent, "Accepted")["message"]
    )
    service = core_v1.read_namespaced_service("billing", ns)
    assert service.metadata.owner_references is None and service.spec.selector == {"app": "web"}


def test_a_service_with_a_cluster_ip_from_an_earlier_srs_is_replaced_by_a_headless_one(
    agents: Agents,
    core_v1: client.CoreV1Api,
) -> None:
    ns = agents.namespace
    # What an earlier srs made: the agent's Service with an address from the service range.
    core_v1.create_namespaced_service(
        ns,
        client.V1Service(
            metadata=client.V1ObjectMeta(name="billing"),
            spec=client.V1ServiceSpec(ports=[client.V1ServicePort(port=8080)], selector={"app": "billing"}),
        ),
    )
    old = core_v1.read_namespaced_service("billing", ns)
    assert old.spec.cluster_ip not in (None, "None")
    agents.create("billing", {**SPECIALIST, "model": {"provider": "offline"}})
    agent = agents.wait_condition("billing", "Accepted", "False", reason="NameConflict")
    # It becomes the agent's (as it was under the earlier srs): owned, labelled.
    core_v1.patch_namespaced_service(
        "billing",
        ns,
        {"metadata": {
            "labels": {"app.kubernetes.io/managed-by": "srs-operator", "app.kubernetes.io/instance": "billing"},
            "ownerReferences": [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "SupportAgent", "name": "billing",
                                 "uid": agent["metadata"]["uid"], "controller": True}],
        }},
    )  # fmt: skip
    agents.wait_ready("billing")

    def replaced() -> bool:
        service = core_v1.read_namespaced_service("billing", ns)
        return service.metadata.uid != old.metadata.uid and service.spec.cluster_ip == "None"

    wait_for("the Service replaced by a headless one", replaced, timeout=30)
    service = core_v1.read_namespaced_service("billing", ns)
    assert service.spec.selector["app.kubernetes.io/instance"] == "billing"
    assert condition(agents.wait_ready("billing"), "Accepted")["reason"] == "Applied"


def test_the_operator_identity_is_least_privilege(
    srs_operator: OperatorProcess,
    agent_namespace: str,
) -> None:
    from kubernetes import config

    operator_api = config.new_client_from_config(config_file=srs_operator.kubeconfig)
    auth = client.AuthorizationV1Api(operator_api)

    def allowed(verb: str, resource: str, group: str = "", namespace: str = "default") -> bool:
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    verb=verb, resource=resource, group=group, namespace=namespace or None
                )
            )
        )
        return bool(auth.create_self_subject_access_review(review).status.allowed)

    assert allowed("patch", "deployments", "apps")
    assert allowed("delete", "services")  # only to replace an agent's Service that has a cluster IP
    # Secrets: nothing cluster-wide; only where a namespace's RoleBinding grants it.
    assert not allowed("list", "secrets", namespace="")
    assert not allowed("watch", "secrets", namespace="")
    assert not allowed("get", "secrets", namespace="default")
    assert not allowed("list", "secrets", namespace="default")
    assert allowed("watch", "secrets", namespace=agent_namespace)
    assert not allowed("create", "secrets", namespace=agent_namespace)
    assert not allowed("create", "secrets")
    assert not allowed("update", "secrets")
    assert not allowed("delete", "deployments", "apps")
    assert not allowed("create", "pods")
    assert not allowed("update", "supportagents", GROUP)  # only the status subresource
    assert not allowed("create", "clusterrolebindings", "rbac.authorization.k8s.io")


def test_a_trained_offline_model_is_mounted_and_a_retrained_one_rolls_the_pods(
    agents: Agents,
    core_v1: client.CoreV1Api,
    apps_v1: client.AppsV1Api,
) -> None:
    ns = agents.namespace
    spec = {
        "role": "triage",
        "inputTopic": "ticket.events",
        "routes": {"billing": "ticket.triaged.billing"},
        "model": {"provider": "offline", "offline": {"modelRef": {"name": "triage-model", "key": "model.json.gz"}}},
    }
    agents.create("triage", spec)
    agent = agents.wait_condition("triage", "Accepted", "False", reason="OfflineModelNotFound")
    assert "ConfigMap triage-model with key model.json.gz not found" in condition(agent, "Accepted")["message"]

    # What `kubectl create configmap triage-model --from-file=model.json.gz` makes of a gzip file.
    model = base64.b64encode(b"\x1f\x8b first model").decode()
    core_v1.create_namespaced_config_map(
        ns,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="triage-model"), binary_data={"model.json.gz": model}),
    )
    agents.wait_condition("triage", "Accepted", "True")
    deployment = apps_v1.read_namespaced_deployment("triage", ns)
    volume = next(v for v in deployment.spec.template.spec.volumes if v.name == "offline-model")
    assert volume.config_map.name == "triage-model"
    assert [(i.key, i.path) for i in volume.config_map.items] == [("model.json.gz", "model.json.gz")]
    config = yaml.safe_load(core_v1.read_namespaced_config_map("triage-config", ns).data[CONFIG_KEY])
    assert config["model"]["model_dir"] == "/etc/srs-offline-model"

    before = _pod_hash(apps_v1, ns, "triage")
    retrained = base64.b64encode(b"\x1f\x8b second model").decode()
    core_v1.patch_namespaced_config_map("triage-model", ns, {"binaryData": {"model.json.gz": retrained}})
    wait_for("the retrained model rolls the pods", lambda: _pod_hash(apps_v1, ns, "triage") != before, timeout=30)


def test_without_the_secrets_role_in_its_namespace_an_agent_says_how_to_grant_it(
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    srs_operator: OperatorProcess,
    operator_identity: OperatorIdentity,
) -> None:
    # A namespace whose owner has not (yet) granted the operator its Secrets role.
    ns = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    create_test_namespace(core_v1, ns)
    try:
        _secret(core_v1, ns)
        agents = Agents(api_client, ns)
        agents.create("billing", SPECIALIST)
        agent = agents.wait_condition("billing", "Ready", "False", reason="SecretsNotReadable")
        message = condition(agent, "Ready")["message"]
        assert f"may not read Secrets in namespace {ns}" in message and "kubectl create rolebinding" in message

        operator_identity.grant_secrets(client.RbacAuthorizationV1Api(api_client), ns)
        agents.wait_ready("billing", timeout=90)  # noticed on the watch's next attempt, no restart
    finally:
        core_v1.delete_namespace(ns, propagation_policy="Background")
