"""Invalid SupportAgents are rejected by the API server (OpenAPI schema + CEL rules from
the models) with a message a person can act on; nothing reaches the operator."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness import TEST_NAMESPACE_LABEL
from tests.integration.operator_harness import GROUP, VERSION
from tests.integration.operator_process import ROOT

pytestmark = pytest.mark.integration

Spec = dict[str, Any]

VALID_TRIAGE: Spec = {
    "role": "triage",
    "inputTopic": "ticket.events",
    "routes": {"billing": "ticket.triaged.billing", "technical": "ticket.triaged.technical"},
    "model": {"provider": "anthropic", "name": "claude-sonnet-4-5", "apiKeySecretRef": {"name": "llm", "key": "k"}},
}
VALID_SPECIALIST: Spec = {
    "role": "specialist",
    "specialty": "billing",
    "inputTopic": "ticket.triaged.billing",
    "model": {"provider": "offline"},
}


def _with(base: Spec, change: Callable[[Spec], None]) -> Spec:
    spec = copy.deepcopy(base)
    change(spec)
    return spec


def _set(path: str, value: Any) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value

    return change


def _drop(path: str) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        *parents, leaf = path.split(".")
        node = spec
        for p in parents:
            node = node[p]
        del node[leaf]

    return change


# (case id, spec, what the person is told)
INVALID: list[tuple[str, Spec, str]] = [
    (
        "specialist-without-specialty",
        _with(VALID_SPECIALIST, _drop("specialty")),
        "spec.specialty: Required value: a specialist needs spec.specialty: the ticket type it resolves",
    ),
    (
        "triage-without-routes",
        _with(VALID_TRIAGE, _drop("routes")),
        "spec.routes: Required value: a triage agent needs spec.routes",
    ),
    (
        "triage-with-specialty",
        _with(VALID_TRIAGE, _set("specialty", "billing")),
        "spec.specialty: Forbidden: spec.specialty is only for role specialist",
    ),
    (
        "specialist-with-routes",
        _with(VALID_SPECIALIST, _set("routes", {"billing": "x"})),
        "spec.routes: Forbidden: spec.routes is only for role triage",
    ),
    (
        "route-for-an-unknown-ticket-type",
        _with(VALID_TRIAGE, _set("routes", {"refunds": "ticket.triaged.refunds"})),
        "spec.routes keys must be ticket types (billing, technical, feature_request, account, other)",
    ),
    (
        "anthropic-without-api-key",
        _with(VALID_TRIAGE, _drop("model.apiKeySecretRef")),
        "spec.model.apiKeySecretRef: Required value: provider anthropic needs spec.model.apiKeySecretRef",
    ),
    (
        "openai-without-key-or-server",
        _with(VALID_SPECIALIST, _set("model", {"provider": "openai", "name": "gpt-4o-mini"})),
        "provider openai needs spec.model.apiKeySecretRef (a Secret with the API key), or spec.model.baseURL",
    ),
    (
        "ollama-without-base-url",
        _with(VALID_SPECIALIST, _set("model", {"provider": "ollama", "name": "llama3.1"})),
        "spec.model.baseURL: Required value: provider ollama needs spec.model.baseURL",
    ),
    (
        "bedrock-without-region",
        _with(VALID_SPECIALIST, _set("model", {"provider": "bedrock", "name": "anthropic.claude-3-haiku"})),
        "spec.model.region: Required value: provider bedrock needs spec.model.region",
    ),
    (
        "region-for-a-non-bedrock-provider",
        _with(VALID_TRIAGE, _set("model.region", "us-east-1")),
        "spec.model.region: Forbidden: spec.model.region is only used by provider bedrock",
    ),
    (
        "offline-with-an-api-key",
        _with(VALID_SPECIALIST, _set("model.apiKeySecretRef", {"name": "llm", "key": "k"})),
        "provider offline calls no API: remove spec.model.apiKeySecretRef",
    ),
    (
        "model-name-missing",
        _with(VALID_TRIAGE, _drop("model.name")),
        "spec.model.name: Required value: spec.model.name is required unless the provider is offline",
    ),
    (
        "output-back-into-the-input",
        _with(VALID_SPECIALIST, _set("outputTopic", "ticket.triaged.billing")),
        "an agent must not write to its own spec.inputTopic",
    ),
    (
        "prompt-both-inline-and-config-map",
        _with(VALID_SPECIALIST, _set("prompt", {"inline": "Hi", "configMapKeyRef": {"name": "p", "key": "k"}})),
        "spec.prompt needs exactly one of inline (the text) or configMapKeyRef",
    ),
    (
        "env-with-a-reserved-name",
        _with(VALID_SPECIALIST, _set("env", [{"name": "SRS_MODEL_API_KEY", "value": "x"}])),
        "environment variables starting with SRS_ are reserved for the operator",
    ),
    (
        "env-with-value-and-secret",
        _with(
            VALID_SPECIALIST,
            _set("env", [{"name": "X", "value": "1", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]),
        ),
        "each spec.env entry needs exactly one of value or valueFrom.secretKeyRef",
    ),
    (
        "confidence-threshold-for-a-specialist",
        _with(VALID_SPECIALIST, _set("confidenceThreshold", 0.5)),
        "spec.confidenceThreshold: Forbidden: spec.confidenceThreshold is only for role triage",
    ),
    (
        "confidence-threshold-above-one",
        _with(VALID_TRIAGE, _set("confidenceThreshold", 1.5)),
        "spec.confidenceThreshold: Invalid value: 1.5: spec.confidenceThreshold in body should be less than or "
        "equal to 1",
    ),
    (
        "fallback-model-for-a-specialist",
        _with(VALID_SPECIALIST, _set("fallbackModel", {"provider": "offline"})),
        "spec.fallbackModel: Forbidden: spec.fallbackModel is only for role triage",
    ),
    (
        "fallback-model-without-a-name",
        _with(VALID_TRIAGE, _set("fallbackModel", {"provider": "ollama", "baseURL": "http://ollama:11434/v1"})),
        "spec.fallbackModel.name: Required value: spec.fallbackModel.name is required unless the provider is offline",
    ),
    (
        "offline-model-for-another-provider",
        _with(VALID_TRIAGE, _set("model.offline", {"modelRef": {"name": "m", "key": "model.json.gz"}})),
        "spec.model.offline: Forbidden: spec.model.offline configures the offline classifier: remove it, or set "
        "provider: offline",
    ),
    (
        "unknown-provider",
        _with(VALID_SPECIALIST, _set("model.provider", "gemini")),
        'spec.model.provider: Unsupported value: "gemini": supported values: "offline", "anthropic", "openai", '
        '"ollama", "bedrock"',
    ),
    (
        "topic-name-with-a-slash",
        _with(VALID_SPECIALIST, _set("inputTopic", "tickets/billing")),
        "spec.inputTopic: Invalid value: \"tickets/billing\": spec.inputTopic in body should match '^[a-zA-Z0-9._-]+$'",
    ),
    (
        "resources-with-gpus",
        _with(VALID_SPECIALIST, _set("resources", {"limits": {"nvidia.com/gpu": 1}})),
        "spec.resources requests and limits take only cpu, memory and ephemeral-storage",
    ),
    (
        "negative-replicas",
        _with(VALID_SPECIALIST, _set("replicas", -1)),
        "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0",
    ),
]


@pytest.fixture
def plain_namespace(core_v1: client.CoreV1Api) -> Iterator[str]:
    """A namespace no operator watches: admission alone decides."""
    name = f"srs-test-admission-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TEST_NAMESPACE_LABEL: "true"}))
    )
    yield name
    core_v1.delete_namespace(name, propagation_policy="Background")


def _create(api_client: client.ApiClient, namespace: str, name: str, spec: Spec) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SupportAgent", "metadata": {"name": name}, "spec": spec}
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "supportagents", body
    )


def test_the_valid_examples_are_accepted(
    srs_crds: None,
    api_client: client.ApiClient,
    plain_namespace: str,
) -> None:
    _create(api_client, plain_namespace, "triage", VALID_TRIAGE)
    _create(api_client, plain_namespace, "billing", VALID_SPECIALIST)
    cascade = {
        **VALID_TRIAGE,
        "model": {"provider": "offline", "offline": {"modelRef": {"name": "triage-model", "key": "model.json.gz"}}},
        "fallbackModel": {**VALID_TRIAGE["model"], "confidenceThreshold": 0.7},
    }
    _create(api_client, plain_namespace, "cascade", cascade)


@pytest.mark.parametrize(("case", "spec", "message"), INVALID, ids=[c[0] for c in INVALID])
def test_an_invalid_agent_is_rejected_with_an_actionable_message(
    srs_crds: None,
    api_client: client.ApiClient,
    plain_namespace: str,
    case: str,
    spec: Spec,
    message: str,
) -> None:
    with pytest.raises(client.ApiException) as rejected:
        _create(api_client, plain_namespace, "agent", spec)
    assert rejected.value.status == 422, rejected.value.body
    detail = json.loads(rejected.value.body)["message"]
    assert message in detail, f"{case}: {detail}"


def test_an_agent_name_that_cannot_name_a_service_is_rejected(
    srs_crds: None,
    api_client: client.ApiClient,
    plain_namespace: str,
) -> None:
    with pytest.raises(client.ApiException) as rejected:
        _create(api_client, plain_namespace, "1st.agent", VALID_SPECIALIST)
    assert rejected.value.status == 422
    assert "a SupportAgent name must start with a letter" in json.loads(rejected.value.body)["message"]


def test_the_shipped_examples_are_valid(
    srs_crds: None,
    api_client: client.ApiClient,
    plain_namespace: str,
) -> None:
    examples = sorted((ROOT / "examples").glob("*-agent.yaml"))
    assert examples, "no examples/*-agent.yaml"
    custom = client.CustomObjectsApi(api_client)
    for path in examples:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "SupportAgent":  # server-side dry run: admission only, nothing stored
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, plain_namespace, "supportagents", doc, dry_run="All"
                )
