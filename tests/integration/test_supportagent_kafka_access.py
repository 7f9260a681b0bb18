"""Each agent its own Kafka user and nothing more, on the real broker's SASL_SSL listener.

The operator runs with user management on (agents on SASL_SSL with SCRAM-SHA-512, the
stack's CA), under its least-privilege ServiceAccount plus the per-namespace
``srs-operator-kafka-credentials`` role, with the prefix rule ``*={namespace}.``; it manages
users and ACLs over the plaintext loopback listener (whose principal is a super user on the
local stack). The tests then connect *as the agents*, with the credentials from their
Secrets, and let the broker's StandardAuthorizer judge.
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)
from kubernetes import client

from tests.harness import Infra, fresh_namespace, wait_for, wait_for_terminating_namespaces
from tests.integration.operator_harness import GROUP, VERSION, Agents, OperatorIdentity, condition
from tests.integration.operator_process import ROOT, OperatorProcess, run_operator

pytestmark = pytest.mark.integration

NAMESPACE_PREFIX = "srs-test-ka-"
ROTATE = "srs.dev/rotate-kafka-credentials"


@dataclass(frozen=True)
class SaslListener:
    bootstrap: str
    ca_file: str


@pytest.fixture(scope="module")
def sasl() -> SaslListener:
    """The local stack's SASL_SSL listener (``.devstack/env``)."""
    bootstrap, ca = os.environ.get("SRS_KAFKA_SASL_BOOTSTRAP_SERVERS"), os.environ.get("SRS_KAFKA_CA_FILE")
    if not (bootstrap and ca):
        from devstack import stack

        state = stack.up()
        bootstrap = getattr(state, "kafka_sasl_bootstrap", None)
        ca = str(Path(state.kubeconfig).parent / "kafka-auth" / "ca.crt") if bootstrap else None
    assert bootstrap and ca and Path(ca).exists(), "the stack has no SASL_SSL listener: source .devstack/env"
    return SaslListener(bootstrap, ca)


@pytest.fixture(scope="module")
def credentials_role(api_client: client.ApiClient, operator_identity: OperatorIdentity) -> Iterator[str]:
    """A per-session copy of operator/deploy/rbac.yaml's srs-operator-kafka-credentials ClusterRole."""
    docs = yaml.safe_load_all((ROOT / "operator/deploy/rbac.yaml").read_text())
    role = next(d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"].endswith("kafka-credentials"))
    role["metadata"]["name"] = f"{operator_identity.secrets_role}-kafka-credentials"
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role(role)
    yield role["metadata"]["name"]
    with contextlib.suppress(client.ApiException):
        rbac.delete_cluster_role(role["metadata"]["name"])


@pytest.fixture(scope="module")
def access_operator(
    infra: Infra,
    api_client: client.ApiClient,
    srs_crds: None,
    operator_kubeconfig: str,
    sasl: SaslListener,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    core_v1 = client.CoreV1Api(api_client)
    log = tmp_path_factory.mktemp("access-operator") / "operator.log"
    args = [
        "--resync-seconds", "2",
        "--agent-kafka-bootstrap-servers", sasl.bootstrap,
        "--agent-kafka-security-protocol", "SASL_SSL",
        "--agent-kafka-ca-file", sasl.ca_file,
        "--topic-prefix-rule", "*={namespace}.",
    ]  # fmt: skip
    env = {"SRS_AGENT_IMAGE": "srs:test"}
    with run_operator(
        operator_kubeconfig, infra.kafka_bootstrap, log, f"{NAMESPACE_PREFIX}*", args=args, env=env
    ) as op:
        # A session that stopped amid a namespace's deletion left agents on the finalizer; kopf
        # never watches a namespace that is already terminating, so the operator's sweep must
        # release them (that is what a restarted operator does too).
        wait_for_terminating_namespaces(core_v1, NAMESPACE_PREFIX)
        yield op
        print(f"operator log ({log}):\n{op.log_tail(120)}")


@pytest.fixture(scope="module")
def admin(infra: Infra) -> AdminClient:
    """Kafka as the operator sees it (the plaintext listener's super user)."""
    return AdminClient({"bootstrap.servers": infra.kafka_bootstrap})


def _grant(api_client: client.ApiClient, identity: OperatorIdentity, credentials_role: str, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api_client)
    identity.grant_secrets(rbac, namespace)
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "srs-operator-kafka-credentials"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": credentials_role},
            "subjects": [{"kind": "ServiceAccount", "name": identity.service_account, "namespace": identity.namespace}],
        },
    )


@dataclass
class Team:
    """A namespace the access operator watches and may write Kafka credentials in."""

    namespace: str
    agents: Agents

    def topic(self, name: str) -> str:
        return f"{self.namespace}.{name}"


@pytest.fixture
def team_factory(
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    operator_identity: OperatorIdentity,
    credentials_role: str,
    access_operator: OperatorProcess,
) -> Iterator[Any]:
    with contextlib.ExitStack() as stack:

        def make() -> Team:
            name = stack.enter_context(fresh_namespace(core_v1, NAMESPACE_PREFIX))
            _grant(api_client, operator_identity, credentials_role, name)
            stack.callback(_delete_agents, api_client, name)  # before the namespace goes
            return Team(name, Agents(api_client, name))

        yield make
        access_operator.assert_alive()


def _delete_agents(api_client: client.ApiClient, namespace: str) -> None:
    """Delete the namespace's agents and wait until the operator released them (their Kafka
    users removed), so that the module's operator does not stop amid their deletion."""
    custom = client.CustomObjectsApi(api_client)

    def remaining() -> list[Any]:
        return list(custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "supportagents")["items"])

    for agent in remaining():
        with contextlib.suppress(client.ApiException):
            custom.delete_namespaced_custom_object(
                GROUP, VERSION, namespace, "supportagents", agent["metadata"]["name"]
            )
    wait_for(f"the agents of {namespace} to be released", lambda: not remaining(), timeout=60)


def _create_topics(admin: AdminClient, *names: str) -> None:
    futures = admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1) for n in names])
    for future in futures.values():
        with contextlib.suppress(KafkaException):  # already there
            future.result(30)


def _triage(team: Team) -> dict[str, Any]:
    return {
        "role": "triage",
        "inputTopic": team.topic("events"),
        "routes": {"billing": team.topic("billing")},
        "humanTopic": team.topic("human"),
        "deadLetterTopic": team.topic("dlq"),
        "model": {"provider": "offline"},
    }


def _specialist(team: Team) -> dict[str, Any]:
    return {
        "role": "specialist",
        "specialty": "billing",
        "inputTopic": team.topic("billing"),
        "outputTopic": team.topic("resolved"),
        "humanTopic": team.topic("human"),
        "deadLetterTopic": team.topic("dlq"),
        "model": {"provider": "offline"},
    }


def _all_topics(team: Team) -> list[str]:
    return [team.topic(t) for t in ("events", "billing", "human", "dlq", "resolved", "account")]


def _wait_access(team: Team, name: str, status: str = "True", timeout: float = 60) -> dict[str, Any]:
    """The agent's KafkaAccessReady condition, once it has ``status``."""
    return condition(team.agents.wait_condition(name, "KafkaAccessReady", status, timeout=timeout), "KafkaAccessReady")


def _credentials(core_v1: client.CoreV1Api, namespace: str, agent: str) -> tuple[str, str]:
    secret = core_v1.read_namespaced_secret(f"{agent}-kafka", namespace)
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    return data["username"], data["password"]


def _client(sasl: SaslListener, username: str, password: str, **extra: Any) -> dict[str, Any]:
    return {
        "bootstrap.servers": sasl.bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": username,
        "sasl.password": password,
        "ssl.ca.location": sasl.ca_file,
        **extra,
    }


def _produce(config: dict[str, Any], topic: str, timeout: float = 20) -> KafkaError | None:
    """Produce one record; the delivery error, or None when Kafka took it."""
    errors: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": int(timeout * 1000), "enable.idempotence": True})
    producer.produce(topic, b"hello", key=b"t-1", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(timeout + 5)
    assert errors, "no delivery report"
    return errors[0]


def _authentication_error(config: dict[str, Any], timeout: float = 20) -> KafkaError | None:
    """The error the brokers answer a connection with these credentials (None: accepted)."""
    errors: list[KafkaError] = []
    admin = AdminClient({**config, "error_cb": errors.append})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as e:
        errors.append(e.args[0])
    admin.poll(1)  # serves error_cb: librdkafka reports the refused authentication there
    auth = [e for e in errors if e.code() in (KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED)]
    return auth[0] if auth else None


def _consume(
    config: dict[str, Any], topic: str, group: str, timeout: float = 30
) -> tuple[bytes | None, KafkaError | None]:
    """Read from ``topic`` as ``group``: the first record's value, or the first error."""
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return None, msg.error()
            return msg.value(), None
        return None, None
    finally:
        consumer.close()


def _acls(admin: AdminClient, principal: str) -> list[str]:
    any_acl = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY, AclPermissionType.ANY
    )  # type: ignore[arg-type]
    bindings = admin.describe_acls(any_acl, request_timeout=20).result(30)
    return sorted(
        f"{b.operation.name} {b.restype.name} {b.name} ({b.resource_pattern_type.name})"
        for b in bindings  # type: ignore[union-attr]
    )


def _user_exists(admin: AdminClient, username: str) -> bool:
    try:
        admin.describe_user_scram_credentials([username], request_timeout=20)[username].result(30)  # type: ignore[index]
    except KafkaException as e:
        if e.args[0].code() == KafkaError.RESOURCE_NOT_FOUND:
            return False
        raise
    return True


# -- the tests ----------------------------------------------------------------------------


def test_a_steady_agent_costs_no_write_in_kubernetes_or_kafka(
    team_factory: Any, access_operator: OperatorProcess, admin: AdminClient
) -> None:
    # First in the module: no other test's namespace is being torn down meanwhile.
    team = team_factory()
    team.agents.create("billing", _specialist(team))
    _wait_access(team, "billing")
    team.agents.wait_ready("billing")
    kafka_writes = ("create_acls", "delete_acls", "alter_user_scram_credentials")

    def writes() -> tuple[float, ...]:
        kube = access_operator.metric("srs_operator_api_writes_total")
        return (
            kube,
            *(access_operator.metric("srs_operator_kafka_admin_calls_total", operation=op) for op in kafka_writes),
        )

    time.sleep(3)  # the last status and Event writes of the rollout settle
    before = writes()
    describes = access_operator.metric("srs_operator_kafka_admin_calls_total", operation="describe_acls")
    time.sleep(8)  # four re-checks at --resync-seconds 2; Kafka is asked again after half of one
    assert writes() == before, "a steady agent was written to"
    later = access_operator.metric("srs_operator_kafka_admin_calls_total", operation="describe_acls")
    assert later > describes, "the periodic re-check still looks at Kafka (drift made there is found)"


def test_an_agents_secret_reads_its_input_and_writes_its_outputs_over_sasl_ssl(
    team_factory: Any, core_v1: client.CoreV1Api, admin: AdminClient, infra: Infra, sasl: SaslListener
) -> None:
    team = team_factory()
    _create_topics(admin, *_all_topics(team))
    team.agents.create("triage", _triage(team))
    ready = _wait_access(team, "triage")
    assert ready["reason"] == "AccessGranted"
    team.agents.wait_ready("triage")
    username, password = _credentials(core_v1, team.namespace, "triage")
    assert username == f"srs.{team.namespace}.triage"
    print(f"ACLs of User:{username}:\n  " + "\n  ".join(_acls(admin, f"User:{username}")))

    # A ticket on the input, written by someone allowed to (the plaintext super user).
    assert _produce({"bootstrap.servers": infra.kafka_bootstrap}, team.topic("events")) is None
    as_agent = _client(sasl, username, password)
    value, error = _consume(as_agent, team.topic("events"), f"srs.{team.namespace}.triage")
    assert (value, error) == (b"hello", None)
    for out in ("billing", "human", "dlq"):
        assert _produce(as_agent, team.topic(out)) is None, out
    # Exactly-once: its transactional ids are <group>-<pod name>.
    txn = Producer({**as_agent, "transactional.id": f"srs.{team.namespace}.triage-triage-7d9f-abcde"})
    txn.init_transactions(20)
    txn.begin_transaction()
    txn.produce(team.topic("billing"), b"in a transaction")
    txn.commit_transaction(20)

    # The pods get the credentials from the Secret, the CA beside their config.
    apps = client.AppsV1Api(core_v1.api_client)
    container = apps.read_namespaced_deployment("triage", team.namespace).spec.template.spec.containers[0]
    env = {e.name: e for e in container.env}
    assert env["KAFKA_SASL_PASSWORD"].value_from.secret_key_ref.name == "triage-kafka"
    assert env["KAFKA_SECURITY_PROTOCOL"].value == "SASL_SSL"
    config_map = core_v1.read_namespaced_config_map("triage-config", team.namespace)
    assert config_map.data["kafka-ca.crt"] == Path(sasl.ca_file).read_text()
    assert password not in str(team.agents.get("triage")), "never in the status"


def test_an_agents_secret_is_refused_other_agents_topics_groups_and_namespaces(
    team_factory: Any, core_v1: client.CoreV1Api, admin: AdminClient, sasl: SaslListener
) -> None:
    team, other = team_factory(), team_factory()
    _create_topics(admin, *_all_topics(team), *_all_topics(other))
    team.agents.create("triage", _triage(team))
    team.agents.create("billing", _specialist(team))
    other.agents.create("triage", _triage(other))
    for t, name in ((team, "triage"), (team, "billing"), (other, "triage")):
        _wait_access(t, name)
    as_a = _client(sasl, *_credentials(core_v1, team.namespace, "triage"))

    # B's input topic (A writes it, but may not read it).
    _, error = _consume(as_a, team.topic("billing"), f"srs.{team.namespace}.triage")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    # A topic of another namespace.
    error = _produce(as_a, other.topic("billing"), timeout=10)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    _, error = _consume(as_a, other.topic("events"), f"srs.{team.namespace}.triage")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    # B's consumer group, on a topic A may read.
    _, error = _consume(as_a, team.topic("events"), f"srs.{team.namespace}.billing")
    assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error


def test_a_topic_outside_the_namespaces_prefix_gets_no_acl_and_says_so(team_factory: Any, admin: AdminClient) -> None:
    team = team_factory()
    spec = _specialist(team) | {"outputTopic": "ticket.resolved"}
    team.agents.create("billing", spec)
    cond = _wait_access(team, "billing", "False")
    assert cond["reason"] == "TopicsNotAllowed"
    assert cond["message"].startswith(f"no ACL for ticket.resolved: namespace {team.namespace} may only claim topics")
    assert not [a for a in _acls(admin, f"User:srs.{team.namespace}.billing") if "ticket.resolved" in a]
    assert condition(team.agents.get("billing"), "Ready")["reason"] == "TopicsNotAllowed"


def test_a_route_added_is_writable_before_the_config_map_names_it(
    team_factory: Any, core_v1: client.CoreV1Api, admin: AdminClient
) -> None:
    team = team_factory()
    team.agents.create("triage", _triage(team))
    _wait_access(team, "triage")
    principal = f"User:srs.{team.namespace}.triage"
    account = team.topic("account")
    spec = _triage(team)
    spec["routes"]["account"] = account
    team.agents.patch_spec("triage", spec)
    samples: list[tuple[bool, bool]] = []

    def routed() -> bool:
        # The ConfigMap first, then the ACLs: once the ConfigMap names the route, a later look
        # at the ACLs must find the grant (the other order would race the operator itself).
        config = core_v1.read_namespaced_config_map("triage-config", team.namespace).data["agent.yaml"]
        granted = f"WRITE TOPIC {account} (LITERAL)" in _acls(admin, principal)
        samples.append((account in config, granted))
        return account in config

    wait_for("the ConfigMap to route account tickets", routed, timeout=60, interval=0.05)
    assert (True, False) not in samples, samples


def test_deleting_the_agent_removes_its_acls_and_its_scram_user(
    team_factory: Any, api_client: client.ApiClient, admin: AdminClient
) -> None:
    team = team_factory()
    team.agents.create("billing", _specialist(team))
    _wait_access(team, "billing")
    username = f"srs.{team.namespace}.billing"
    assert _acls(admin, f"User:{username}") and _user_exists(admin, username)
    team.agents.delete("billing")
    custom = client.CustomObjectsApi(api_client)

    def gone() -> bool:
        try:
            custom.get_namespaced_custom_object(GROUP, VERSION, team.namespace, "supportagents", "billing")
        except client.ApiException as e:
            return e.status == 404
        return False

    wait_for("the agent to be deleted (its finalizer released)", gone, timeout=60)
    assert _acls(admin, f"User:{username}") == []
    assert not _user_exists(admin, username)


def test_a_rotation_changes_the_password_rolls_the_pods_and_the_old_password_is_refused(
    team_factory: Any, api_client: client.ApiClient, core_v1: client.CoreV1Api, sasl: SaslListener, admin: AdminClient
) -> None:
    team = team_factory()
    _create_topics(admin, *_all_topics(team))
    team.agents.create("billing", _specialist(team))
    _wait_access(team, "billing")
    team.agents.wait_ready("billing")
    username, old = _credentials(core_v1, team.namespace, "billing")
    apps = client.AppsV1Api(api_client)
    before = apps.read_namespaced_deployment("billing", team.namespace).spec.template.metadata.annotations

    client.CustomObjectsApi(api_client).patch_namespaced_custom_object(
        GROUP, VERSION, team.namespace, "supportagents", "billing",
        {"metadata": {"annotations": {ROTATE: uuid.uuid4().hex}}},
    )  # fmt: skip
    wait_for("a new password", lambda: _credentials(core_v1, team.namespace, "billing")[1] != old, timeout=60)
    _, new = _credentials(core_v1, team.namespace, "billing")
    wait_for(
        "the pods to roll",
        lambda: apps.read_namespaced_deployment("billing", team.namespace).spec.template.metadata.annotations != before,
        timeout=60,
    )
    assert _authentication_error(_client(sasl, username, new)) is None
    assert _produce(_client(sasl, username, new), team.topic("resolved")) is None
    refused = _authentication_error(_client(sasl, username, old))
    assert refused is not None and "Authentication failed" in refused.str(), refused
