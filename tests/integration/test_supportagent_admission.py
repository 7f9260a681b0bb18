"""Invalid SupportAgents are rejected by the API server (OpenAPI schema + CEL rules from
the models) with a message a person can act on; nothing reaches the operator."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness import create_test_namespace
from tests.integration.operator_harness import GROUP, VERSION
from tests.integration.operator_process import ROOT

pytestmark = pytest.mark.integration

Spec = dict[str, Any]

CASES = yaml.safe_load((Path(__file__).parent / "admission" / "supportagent.yaml").read_text())
VALID_TRIAGE: Spec = CASES["valid"]["triage"]
VALID_SPECIALIST: Spec = CASES["valid"]["specialist"]


def _parent(spec: Spec, path: str) -> tuple[dict[str, Any], str]:
    """The mapping holding the dotted ``path``'s last key (created on the way), and that key."""
    *parents, leaf = path.split(".")
    node = spec
    for p in parents:
        node = node.setdefault(p, {})
    return node, leaf


def _invalid_spec(case: dict[str, Any]) -> Spec:
    """A case's spec: its valid starting point with its ``set`` and ``drop`` applied."""
    spec = copy.deepcopy(CASES["valid"][case["from"]])
    for path, value in (case.get("set") or {}).items():
        node, leaf = _parent(spec, path)
        node[leaf] = value
    if "drop" in case:
        node, leaf = _parent(spec, case["drop"])
        del node[leaf]
    return spec


@pytest.fixture
def plain_namespace(core_v1: client.CoreV1Api) -> Iterator[str]:
    """A namespace no operator watches: admission alone decides."""
    name = f"srs-test-admission-{uuid.uuid4().hex[:8]}"
    create_test_namespace(core_v1, name)
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
    _create(api_client, plain_namespace, "autoscaled", CASES["valid"]["autoscaled"])


@pytest.mark.parametrize("case", CASES["invalid"], ids=[c["id"] for c in CASES["invalid"]])
def test_an_invalid_agent_is_rejected_with_an_actionable_message(
    srs_crds: None,
    api_client: client.ApiClient,
    plain_namespace: str,
    case: dict[str, Any],
) -> None:
    with pytest.raises(client.ApiException) as rejected:
        _create(api_client, plain_namespace, "agent", _invalid_spec(case))
    assert rejected.value.status == 422, rejected.value.body
    detail = json.loads(rejected.value.body)["message"]
    assert case["message"] in detail, f"{case['id']}: {detail}"


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
