"""Fixtures for the operator's scenario tests: CRDs, the operator under its least-privilege
identity, and namespaces it watches.

- ``srs_crds`` (session): server-side applies everything in ``crds/``.
- ``operator_identity`` / ``operator_kubeconfig`` (session): a ServiceAccount bound to the
  ClusterRole of ``operator/deploy/rbac.yaml`` (renamed per session), as a kubeconfig
  (TokenRequest, the harness's ``kubeconfig_for_token``) — the operator never runs as
  admin here; the Secrets ClusterRole is bound per namespace (``grant_secrets``).
- ``srs_operator`` (session): ``srs operator`` as a subprocess with that kubeconfig,
  watching namespaces ``srs-test-sa-*`` only, so operators that other test sessions run
  on the shared cluster never reconcile the same objects.
- ``agent_namespace`` (function): a fresh ``srs-test-sa-…`` namespace that grants the
  operator its Secrets role.

Import the fixtures into a test module by name (pytest finds them there).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.harness import TEST_NAMESPACE_LABEL, Infra, kubeconfig_for_token, wait_for
from tests.integration.operator_process import ROOT, OperatorProcess, run_operator

GROUP, VERSION = "srs.dev", "v1alpha1"
NAMESPACE_PREFIX = "srs-test-sa-"


# -- CRDs and the operator ----------------------------------------------------------------


@pytest.fixture(scope="session")
def srs_crds(api_client: client.ApiClient) -> None:
    """Install (server-side apply) every CRD in crds/ and wait until they are served."""
    ext = client.ApiextensionsV1Api(api_client)
    names = []
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        ext.patch_custom_resource_definition(
            crd["metadata"]["name"], crd, field_manager="srs-tests", force=True,
            _content_type="application/apply-patch+yaml",
        )  # fmt: skip
        names.append(crd["metadata"]["name"])

    def established() -> bool:
        for name in names:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if not any(c.type == "Established" and c.status == "True" for c in conds):
                return False
        return True

    wait_for("CRDs established", established, timeout=30)


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


@pytest.fixture(scope="session")
def operator_identity(
    infra: Infra, api_client: client.ApiClient, core_v1: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorIdentity]:
    """A ServiceAccount that has exactly operator/deploy/rbac.yaml's rules: the ClusterRole
    bound cluster-wide, the Secrets ClusterRole only where a namespace grants it."""
    suffix = uuid.uuid4().hex[:8]
    namespace = f"{NAMESPACE_PREFIX}operator-{suffix}"
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace, labels={TEST_NAMESPACE_LABEL: "true"}))
    )
    docs = list(yaml.safe_load_all((ROOT / "operator/deploy/rbac.yaml").read_text()))
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    rbac = client.RbacAuthorizationV1Api(api_client)
    role, secrets_role = roles["srs-operator"], roles["srs-operator-secrets"]
    role["metadata"]["name"] = f"srs-operator-test-{suffix}"
    secrets_role["metadata"]["name"] = f"srs-operator-secrets-test-{suffix}"
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    binding["metadata"]["name"] = role["metadata"]["name"]
    binding["roleRef"]["name"] = role["metadata"]["name"]
    binding["subjects"] = [{"kind": "ServiceAccount", "name": "srs-operator", "namespace": namespace}]
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")
    sa["metadata"]["namespace"] = namespace
    core_v1.create_namespaced_service_account(namespace, sa)
    rbac.create_cluster_role(role)
    rbac.create_cluster_role(secrets_role)
    rbac.create_cluster_role_binding(binding)
    token = core_v1.create_namespaced_service_account_token(
        "srs-operator",
        namespace,
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=7200)),
    ).status.token
    user = f"system:serviceaccount:{namespace}:srs-operator"
    path = tmp_path_factory.mktemp("operator") / "kubeconfig"
    yield OperatorIdentity(
        kubeconfig_for_token(infra.kubeconfig, token, user, path),
        "srs-operator",
        namespace,
        secrets_role["metadata"]["name"],
    )
    with contextlib.suppress(client.ApiException):
        rbac.delete_cluster_role_binding(binding["metadata"]["name"])
    for name in (role["metadata"]["name"], secrets_role["metadata"]["name"]):
        with contextlib.suppress(client.ApiException):
            rbac.delete_cluster_role(name)
    with contextlib.suppress(client.ApiException):
        core_v1.delete_namespace(namespace)


@pytest.fixture(scope="session")
def operator_kubeconfig(operator_identity: OperatorIdentity) -> str:
    """A kubeconfig of a ServiceAccount that has exactly operator/deploy/rbac.yaml's rules."""
    return operator_identity.kubeconfig


@pytest.fixture(scope="session")
def srs_operator(
    infra: Infra,
    core_v1: client.CoreV1Api,
    srs_crds: None,
    operator_kubeconfig: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """``srs operator`` as a subprocess, under the least-privilege ServiceAccount."""
    # kopf stalls (until its watch times out) when a watched namespace vanishes during its
    # initial listing: start once earlier sessions' namespaces are gone.
    wait_for(
        f"earlier {NAMESPACE_PREFIX}* namespaces to be deleted",
        lambda: (
            not [
                n
                for n in core_v1.list_namespace().items
                if n.metadata.name.startswith(NAMESPACE_PREFIX) and n.status.phase == "Terminating"
            ]
        ),
        timeout=120,
    )
    log = tmp_path_factory.mktemp("operator-log") / "operator.log"
    with run_operator(
        operator_kubeconfig,
        infra.kafka_bootstrap,
        log,
        f"{NAMESPACE_PREFIX}*",
        # Every agent is re-reconciled every 2 s: a steady state must stay silent under it.
        args=["--resync-seconds", "2", *(["--verbose"] if os.environ.get("SRS_TEST_OPERATOR_VERBOSE") else [])],
        env={"SRS_AGENT_IMAGE": "srs:test"},
    ) as running:
        yield running


@pytest.fixture
def agent_namespace(
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    operator_identity: OperatorIdentity,
    srs_operator: OperatorProcess,
) -> Iterator[str]:
    """A fresh namespace the test operator watches, whose owner granted the operator the
    Secrets ClusterRole there (deleted afterwards)."""
    name = f"{NAMESPACE_PREFIX}{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TEST_NAMESPACE_LABEL: "true"}))
    )
    operator_identity.grant_secrets(client.RbacAuthorizationV1Api(api_client), name)
    try:
        yield name
        srs_operator.assert_alive()
    finally:
        print(f"--- operator log (tail) ---\n{srs_operator.log_tail()}")
        with contextlib.suppress(client.ApiException):
            core_v1.delete_namespace(name, propagation_policy="Background")


# -- reading custom resources -------------------------------------------------------------


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition ``type_`` of ``obj`` ({} when absent)."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


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
