"""What the operator's scenario tests share besides fixtures (those are in ``conftest.py``):
the operator's test identity, reading SupportAgents and their conditions.

The fixtures (``tests/integration/conftest.py``):

- ``srs_crds`` (session): server-side applies everything in ``crds/``.
- ``operator_identity`` / ``operator_kubeconfig`` (session): a ServiceAccount bound to the
  ClusterRole of ``operator/deploy/rbac.yaml`` (renamed per session), as a kubeconfig
  (TokenRequest, the harness's ``kubeconfig_for_token``) — the operator never runs as
  admin here; the Secrets ClusterRole is bound per namespace (``grant_secrets``).
- ``srs_operator`` (session): ``srs operator`` as a subprocess with that kubeconfig,
  watching this process's namespaces only (``NAMESPACE_PREFIX``), so the operators that
  other test processes run on the shared cluster (``make test``'s other workers, another
  session) never reconcile the same objects.
- ``agent_namespace`` (function): a fresh ``NAMESPACE_PREFIX…`` namespace that grants the
  operator its Secrets role.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from kubernetes import client

from tests.harness import TEST_NAMESPACE_OWNER, wait_for

GROUP, VERSION = "srs.dev", "v1alpha1"
#: This process's scenario namespaces, ``srs-test-sa-<this process's label value>-…``: each
#: test process runs its own session operator, and two operators reconciling one agent fight
#: over it (one wrote a ScaledObject the other had just corrected; a steady state that never
#: settles).
NAMESPACE_PREFIX = f"srs-test-sa-{TEST_NAMESPACE_OWNER}-"


# -- CRDs and the operator ----------------------------------------------------------------


@dataclass(frozen=True)
class OperatorIdentity:
    """The test operator's ServiceAccount, its kubeconfig, and the per-session copy of the
    Secrets ClusterRole that namespaces bind to it (as operator/deploy/rbac.yaml says)."""

    kubeconfig: str
    service_account: str
    namespace: str
    secrets_role: str

    def grant_secrets(self, rbac: client.RbacAuthorizationV1Api, namespace: str) -> None:
        """Bind the Secrets ClusterRole in ``namespace`` (a RoleBinding, as a namespace owner would)."""
        rbac.create_namespaced_role_binding(
            namespace,
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": "srs-operator-secrets"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": self.secrets_role},
                "subjects": [{"kind": "ServiceAccount", "name": self.service_account, "namespace": self.namespace}],
            },
        )


# -- reading custom resources -------------------------------------------------------------


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition ``type_`` of ``obj`` ({} when absent)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def agents_table(api_client: client.ApiClient, namespace: str) -> dict[str, Any]:
    """``kubectl get supportagents`` as the server renders it (a Table: the printer columns)."""
    method, url, headers, body, _ = api_client.param_serialize(
        "GET",
        f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/supportagents",
        header_params={"Accept": "application/json;as=Table;v=v1;g=meta.k8s.io"},
        auth_settings=["BearerToken"],
    )
    response = api_client.call_api(method, url, header_params=headers, body=body)
    response.read()
    return dict(json.loads(response.data))


class Agents:
    """SupportAgents in one namespace, through the admin client."""

    def __init__(self, api_client: client.ApiClient, namespace: str) -> None:
        self.api = client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "SupportAgent", "metadata": {"name": name}, "spec": spec}
        return dict(self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "supportagents", body))

    def get(self, name: str) -> dict[str, Any]:
        return dict(self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "supportagents", name))

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        self.api.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, "supportagents", name, {"spec": spec})

    def delete(self, name: str) -> None:
        self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, "supportagents", name)

    def wait_condition(self, name: str, type_: str, status: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        """Wait until condition ``type_`` has ``status`` (and the given fields); return the agent."""
        seen: dict[str, Any] = {}

        def check() -> bool:
            nonlocal seen
            seen = self.get(name)
            c = condition(seen, type_)
            return (
                c.get("status") == status
                and all(c.get(k) == v for k, v in fields.items())
                and (c.get("observedGeneration") == seen["metadata"]["generation"])
            )

        try:
            wait_for(f"{name}: {type_}={status} {fields or ''}", check, timeout=timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}; last status: {seen.get('status')}") from None
        return seen

    def wait_ready(self, name: str, timeout: float = 60) -> dict[str, Any]:
        return self.wait_condition(name, "Ready", "True", timeout=timeout)
