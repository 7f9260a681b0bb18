"""A child the API server refuses is never silent (the operator against a real kube-apiserver).

A ResourceQuota that allows no Service, and a ValidatingAdmissionPolicy that denies the
agent's Deployment: the agent says which child was refused and why (``Accepted=False``,
``ApplyFailed``, the API server's message), a Warning Event says it too, the operator
keeps retrying with backoff, and the agent becomes Ready by itself once the quota or the
policy is gone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from tests.harness import wait_for
from tests.integration.operator_harness import Agents, agents_table, condition

pytestmark = pytest.mark.integration

OFFLINE_SPECIALIST: dict[str, Any] = {
    "role": "specialist",
    "specialty": "billing",
    "inputTopic": "ticket.triaged.billing",
    "model": {"provider": "offline"},
}


def _warnings(core_v1: client.CoreV1Api, namespace: str, name: str) -> list[str]:
    events = core_v1.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=SupportAgent,involvedObject.name={name}"
    ).items
    return [f"{e.reason}: {e.message}" for e in events if e.type == "Warning"]


def _refused_then_recovers(
    agents: Agents, core_v1: client.CoreV1Api, namespace: str, what: str, because: str, lift: Any
) -> None:
    agents.create("billing", OFFLINE_SPECIALIST)
    agent = agents.wait_condition("billing", "Accepted", "False", timeout=30, reason="ApplyFailed")
    message = condition(agent, "Accepted")["message"]
    assert message.startswith(f"{what}: the API server refused it") and because in message, message
    assert condition(agent, "Ready")["status"] == "False"
    # `kubectl get sagent` says it too: the Applied column.
    table = agents_table(agents.api.api_client, namespace)
    names = [c["name"] for c in table["columnDefinitions"]]
    [row] = [r["cells"] for r in table["rows"] if r["cells"][0] == "billing"]
    assert row[names.index("Applied")] == "ApplyFailed"
    wait_for(
        "a Warning Event naming the refused child",
        lambda: any(w.startswith("ApplyFailed: " + what) for w in _warnings(core_v1, namespace, "billing")),
        timeout=30,
    )
    lift()
    agents.wait_ready("billing", timeout=90)
    assert condition(agents.get("billing"), "Accepted")["reason"] == "Applied"


def test_a_quota_that_refuses_the_service_shows_on_the_agent_until_it_is_lifted(
    api_client: client.ApiClient, core_v1: client.CoreV1Api, agent_namespace: str
) -> None:
    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-services"), spec=client.V1ResourceQuotaSpec(hard={"services": "0"})
    )
    core_v1.create_namespaced_resource_quota(agent_namespace, quota)
    # Enforced once the resource quota controller has counted the namespace.
    wait_for(
        "the quota in force",
        lambda: bool(core_v1.read_namespaced_resource_quota("no-services", agent_namespace).status.hard),
        timeout=30,
    )
    _refused_then_recovers(
        Agents(api_client, agent_namespace), core_v1, agent_namespace, "Service billing", "exceeded quota: no-services",
        lambda: core_v1.delete_namespaced_resource_quota("no-services", agent_namespace),
    )  # fmt: skip


@pytest.fixture
def deny_deployments(api_client: client.ApiClient, agent_namespace: str) -> Iterator[str]:
    """A ValidatingAdmissionPolicy (CEL) that denies Deployments in ``agent_namespace``; its
    binding is what the test removes to lift it (both removed afterwards)."""
    admission = client.AdmissionregistrationV1Api(api_client)
    name = f"srs-test-deny-{uuid.uuid4().hex[:6]}"
    admission.create_validating_admission_policy(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": ["apps"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["deployments"],
                        }
                    ]
                },
                "validations": [{"expression": "false", "message": "Deployments are frozen in this namespace"}],
            },
        }
    )
    admission.create_validating_admission_policy_binding(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": agent_namespace}}
                },
            },
        }
    )
    try:
        yield name
    finally:
        for delete in (
            admission.delete_validating_admission_policy_binding,
            admission.delete_validating_admission_policy,
        ):
            try:
                delete(name)
            except client.ApiException as e:
                if e.status != 404:
                    raise


def test_an_admission_policy_that_denies_the_deployment_shows_on_the_agent_until_it_is_lifted(
    api_client: client.ApiClient, core_v1: client.CoreV1Api, agent_namespace: str, deny_deployments: str
) -> None:
    admission = client.AdmissionregistrationV1Api(api_client)
    # A new binding takes a moment to reach the admission plugin: the agent's Deployment must meet it.
    wait_for(
        "the policy in force",
        lambda: _denied(client.AppsV1Api(api_client), agent_namespace),
        timeout=30,
    )
    _refused_then_recovers(
        Agents(api_client, agent_namespace), core_v1, agent_namespace, "Deployment billing",
        "Deployments are frozen in this namespace",
        lambda: admission.delete_validating_admission_policy_binding(deny_deployments),
    )  # fmt: skip


def _denied(apps_v1: client.AppsV1Api, namespace: str) -> bool:
    """A dry-run Deployment is refused by the policy."""
    probe = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "probe"},
        "spec": {
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {"containers": [{"name": "c", "image": "probe"}]},
            },
        },
    }
    try:
        apps_v1.create_namespaced_deployment(namespace, probe, dry_run="All")
    except client.ApiException as e:
        return "frozen" in (e.body or "")
    return False
