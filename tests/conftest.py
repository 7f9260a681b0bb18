"""Test harness: the real local stack (or your own cluster/broker), namespaces, topics.

- ``KAFKA_BOOTSTRAP_SERVERS`` and ``KUBECONFIG`` set in the environment: the tests use
  that broker / cluster (kind, EKS, MSK, ...). Otherwise the session starts the local
  stack with ``srs dev up`` (a no-op when it already runs) and uses it.
- Nothing here ever skips: when the stack cannot start, every test that needs it errors.
- ``fake_aws_credentials`` / ``moto_url``: moto's server for the AWS APIs (DynamoDB, IAM).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kubernetes import client, config

from tests.harness import (
    TEST_NAMESPACE_SELECTOR,
    Infra,
    TopicFactory,
    fresh_namespace,
    kubeconfig_for_token,
)
from tests.moto_server import FAKE_CREDENTIALS, moto_server


@pytest.fixture(scope="session")
def infra() -> Infra:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    kubeconfig = os.environ.get("KUBECONFIG")
    if bootstrap and kubeconfig:
        return Infra(bootstrap, kubeconfig, os.environ.get("SRS_USER_KUBECONFIG"), local=False)
    from devstack import stack

    state = stack.up()
    return Infra(
        bootstrap or state.kafka_bootstrap,
        kubeconfig or state.kubeconfig,
        state.user_kubeconfig,
        local=True,
    )


@pytest.fixture(scope="session")
def api_client(infra: Infra) -> client.ApiClient:
    """An admin API client for the test cluster."""
    return config.new_client_from_config(config_file=infra.kubeconfig)


@pytest.fixture(scope="session")
def core_v1(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def apps_v1(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="session")
def _namespace_sweeper(core_v1: client.CoreV1Api) -> Iterator[None]:
    yield
    # Catch namespaces a crashed test of this session (this worker) left behind.
    for ns in core_v1.list_namespace(label_selector=TEST_NAMESPACE_SELECTOR).items:
        if ns.status.phase != "Terminating":
            core_v1.delete_namespace(ns.metadata.name)


@pytest.fixture
def namespace(core_v1: client.CoreV1Api, _namespace_sweeper: None) -> Iterator[str]:
    """A fresh, randomly named namespace, deleted after the test."""
    with fresh_namespace(core_v1, "srs-test-") as name:
        yield name


@pytest.fixture(scope="session")
def kafka_admin(infra: Infra) -> AdminClient:
    return AdminClient({"bootstrap.servers": infra.kafka_bootstrap})


@pytest.fixture
def kafka_topic(kafka_admin: AdminClient) -> Iterator[TopicFactory]:
    """Create uniquely named topics; all are deleted after the test."""
    created: list[str] = []

    def make(prefix: str = "test", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        futures = kafka_admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})]
        )
        futures[name].result(timeout=30)
        created.append(name)
        return name

    yield make
    if created:
        for fut in kafka_admin.delete_topics(created).values():
            fut.result(timeout=30)


@pytest.fixture
def service_account_kubeconfig(infra: Infra, core_v1: client.CoreV1Api, tmp_path: Path) -> Callable[[str, str], str]:
    """Return a kubeconfig acting as ServiceAccount ``name`` in ``namespace`` (TokenRequest)."""

    def make(namespace: str, name: str) -> str:
        try:
            core_v1.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name))
            )
        except client.ApiException as e:
            if e.status != 409:
                raise
        tr = core_v1.create_namespaced_service_account_token(
            name, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[]))
        )
        user = f"system:serviceaccount:{namespace}:{name}"
        safe = base64.urlsafe_b64encode(user.encode()).decode()[:16]
        return kubeconfig_for_token(infra.kubeconfig, tr.status.token, user, tmp_path / f"kubeconfig-{safe}")

    return make


# -- AWS APIs: moto's server (unit tests of the DynamoDB paths, the Terraform suite) ----------


@pytest.fixture
def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials moto accepts, and no profile of the developer's own."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's server on a free loopback port, one per test module."""
    with moto_server() as url:
        yield url
