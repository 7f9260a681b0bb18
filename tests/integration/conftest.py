"""Fixtures of the integration tests (pytest finds them here; tests never import fixtures).

- ``srs_crds`` (session): server-side applies everything in ``crds/``.
- ``operator_identity`` / ``operator_kubeconfig`` (session): a ServiceAccount bound to the
  ClusterRole of ``operator/deploy/rbac.yaml`` (renamed per session), as a kubeconfig —
  the operator never runs as admin here; the Secrets ClusterRole is bound per namespace.
- ``srs_operator`` (session): ``srs operator`` as a subprocess with that kubeconfig,
  watching this process's ``NAMESPACE_PREFIX*`` namespaces only.
- ``agent_namespace`` (function): a fresh ``NAMESPACE_PREFIX…`` namespace that grants the
  operator its Secrets role.
- ``tt`` (function): TicketTopics through the admin client.
- ``topic_operator`` (module): an operator for the TicketTopic module that uses it (its
  ``NAMESPACE_PREFIX`` and ``OPERATOR_ARGS``); ``ns`` / ``second_ns``: fresh namespaces it watches.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from tests.harness import (
    Infra,
    create_test_namespace,
    fresh_namespace,
    kubeconfig_for_token,
    wait_for,
)
from tests.integration.operator_harness import NAMESPACE_PREFIX, Agents, OperatorIdentity
from tests.integration.operator_process import ROOT, OperatorProcess, run_operator
from tests.integration.tickettopic_support import TOPIC_OPERATOR_ENV, TicketTopics


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


@pytest.fixture(scope="session")
def operator_identity(
    infra: Infra, api_client: client.ApiClient, core_v1: client.CoreV1Api, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorIdentity]:
    """A ServiceAccount that has exactly operator/deploy/rbac.yaml's rules: the ClusterRole
    bound cluster-wide, the Secrets ClusterRole only where a namespace grants it."""
    suffix = uuid.uuid4().hex[:8]
    namespace = f"{NAMESPACE_PREFIX}operator-{suffix}"
    create_test_namespace(core_v1, namespace)
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
    srs_crds: None,
    operator_kubeconfig: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """``srs operator`` as a subprocess, under the least-privilege ServiceAccount."""
    log = tmp_path_factory.mktemp("operator-log") / "operator.log"
    with run_operator(
        operator_kubeconfig,
        infra.kafka_bootstrap,
        log,
        f"{NAMESPACE_PREFIX}*",
        # Every agent is re-reconciled every 2 s: a steady state must stay silent under it.
        # A RoleBinding granted, or KEDA's CRDs installed, later is looked for every 2 s (30 s
        # in production): the tests of both prove that it is noticed, not how soon.
        args=[
            *("--resync-seconds", "2", "--recheck-seconds", "2"),
            *(["--verbose"] if os.environ.get("SRS_TEST_OPERATOR_VERBOSE") else []),
        ],
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
    with fresh_namespace(core_v1, NAMESPACE_PREFIX) as name:
        operator_identity.grant_secrets(client.RbacAuthorizationV1Api(api_client), name)
        try:
            yield name
            srs_operator.assert_alive()
        finally:
            print(f"--- operator log (tail) ---\n{srs_operator.log_tail()}")


@pytest.fixture
def agents(api_client: client.ApiClient, agent_namespace: str) -> Agents:
    """SupportAgents in the test's fresh namespace (``agents.namespace``), through the admin client."""
    return Agents(api_client, agent_namespace)


@pytest.fixture
def tt(api_client: client.ApiClient) -> TicketTopics:
    """TicketTopics through the admin client."""
    return TicketTopics(api_client)


@pytest.fixture(scope="module")
def topic_operator(
    request: pytest.FixtureRequest,
    infra: Infra,
    srs_crds: None,
    operator_kubeconfig: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """``srs operator`` for the TicketTopic module that uses it: watching the module's
    ``NAMESPACE_PREFIX``, with its ``OPERATOR_ARGS`` (if any), under the least-privilege identity."""
    module = request.module
    log = tmp_path_factory.mktemp("topic-operator") / "operator.log"
    args = getattr(module, "OPERATOR_ARGS", ())
    glob = f"{module.NAMESPACE_PREFIX}*"
    with run_operator(operator_kubeconfig, infra.kafka_bootstrap, log, glob, args=args, env=TOPIC_OPERATOR_ENV) as op:
        yield op
        print(f"operator log ({log}):\n{op.log_tail()}")


@pytest.fixture
def ns(core_v1: client.CoreV1Api, topic_operator: OperatorProcess) -> Iterator[str]:
    """A fresh namespace the module's ``topic_operator`` watches (deleted afterwards)."""
    with fresh_namespace(core_v1, topic_operator.namespace_glob.removesuffix("*")) as name:
        yield name


@pytest.fixture
def second_ns(core_v1: client.CoreV1Api, topic_operator: OperatorProcess) -> Iterator[str]:
    """Another such namespace (a second team)."""
    with fresh_namespace(core_v1, topic_operator.namespace_glob.removesuffix("*")) as name:
        yield name
