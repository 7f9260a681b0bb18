"""Each agent its own Kafka identity, on the kind cluster's three brokers (TLS, SCRAM, ACLs).

The operator runs as the Kafka admin and gives every SupportAgent a SCRAM user and exactly
the ACLs its spec needs (docs/kafka-security.md); here that is checked from outside, with
kcat (a client srs did not write) holding an agent's own Secret, and from a pod that has no
credentials at all. Two tenants: agent ``a`` in one namespace, agent ``b`` in another.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import (
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from srs import publish
from srs_contracts.agent_config import TicketType
from tests.harness import wait_for
from tests.kind.conftest import EXAMPLES, Cluster

pytestmark = pytest.mark.kind

OPERATOR = "srs-operator"
OPERATOR_NAMESPACE = "srs-system"


@dataclass(frozen=True)
class Tenant:
    """A namespace with one specialist agent reading ``<ns>.in``."""

    namespace: str

    @property
    def agent(self) -> str:
        return "agent"

    def topic(self, suffix: str) -> str:
        return f"{self.namespace}.{suffix}"

    @property
    def group(self) -> str:
        return f"srs.{self.namespace}.{self.agent}"


def _apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    items = {"apiVersion": "v1", "kind": "List", "items": list(objects)}
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(items))


def _topic(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "srs.dev/v1alpha1",
        "kind": "TicketTopic",
        "metadata": {"name": name},
        "spec": {"partitions": 1, "deletionPolicy": "Delete"},
    }


def _agent(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "srs.dev/v1alpha1", "kind": "SupportAgent", "metadata": {"name": name}, "spec": spec}


SMALL = {"requests": {"cpu": "10m", "memory": "96Mi"}, "limits": {"memory": "512Mi"}}


def _new_namespace(cluster: Cluster, name: str) -> None:
    """A namespace where the operator may read Secrets and write agents' Kafka credentials
    (what the chart binds in the namespaces it is told of)."""
    cluster.kubectl("create", "namespace", name)
    for role in ("secrets", "kafka-credentials"):
        cluster.kubectl(
            "create", "rolebinding", f"{OPERATOR}-{role}", "-n", name, f"--clusterrole={OPERATOR}-{role}",
            f"--serviceaccount={OPERATOR_NAMESPACE}:{OPERATOR}",
        )  # fmt: skip


def _wait_ready(cluster: Cluster, namespace: str, *agents: str) -> None:
    for name in agents:
        wait_for(
            f"{namespace}/{name} Ready",
            lambda n=name: cluster.condition(f"sagent/{n}", namespace).get("status") == "True",
            timeout=240,
            interval=2,
        )


@pytest.fixture(scope="module")
def tenants(cluster: Cluster) -> Iterator[tuple[Tenant, Tenant]]:
    """Two namespaces, each with a specialist agent on its own topics, both Ready (their Kafka
    users and ACLs made)."""
    suffix = uuid.uuid4().hex[:6]
    pair = (Tenant(f"kind-acl-a-{suffix}"), Tenant(f"kind-acl-b-{suffix}"))
    try:
        for t in pair:
            _new_namespace(cluster, t.namespace)
            spec = {
                "role": "specialist",
                "specialty": "other",
                "inputTopic": t.topic("in"),
                "outputTopic": t.topic("out"),
                "humanTopic": t.topic("human"),
                "deadLetterTopic": t.topic("dlq"),
                "resources": SMALL,
            }
            _apply(cluster, t.namespace, *(_topic(t.topic(s)) for s in ("in", "out", "human", "dlq")))
            _apply(cluster, t.namespace, _agent(t.agent, spec))
        for t in pair:
            _wait_ready(cluster, t.namespace, t.agent)
        yield pair
    finally:
        for t in pair:
            # The agents first (their finalizer removes the Kafka user), then their namespace.
            cluster.kubectl("delete", "sagent", "--all", "-n", t.namespace, "--wait=false", check=False)
            cluster.kubectl("delete", "namespace", t.namespace, "--wait=false", check=False)


def _credentials_file(cluster: Cluster, tenant: Tenant, folder: Path) -> str:
    """A librdkafka properties file (owner-only) with the agent's own credentials, read from
    the Secret the operator wrote (``<agent>-kafka``), for the host's SASL_SSL listeners."""
    secret = cluster.get(f"secret/{tenant.agent}-kafka", "-n", tenant.namespace)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    settings = {
        "bootstrap.servers": cluster.kafka_bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": data["username"],
        "sasl.password": data["password"],
        "ssl.ca.location": cluster.kafka_settings["ssl.ca.location"],
    }
    path = folder / f"{tenant.namespace}.properties"
    path.touch(mode=0o600)
    path.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    return str(path)


def _kcat(kcat: str, *args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([kcat, *args], input=stdin, capture_output=True, text=True, timeout=timeout)


def _group_join_refusal(kcat: str, config: str, group: str, topic: str, timeout: float = 60) -> str:
    """Join ``group`` (a balanced consumer of ``topic``) with kcat until the broker answers;
    returns kcat's error output. kcat keeps a refused group consumer running: it is stopped
    once the refusal is printed."""
    lines: list[str] = []
    with subprocess.Popen(
        [kcat, "-F", config, "-G", group, topic, "-q"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as proc:
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
        reader.start()
        try:
            wait_for("kcat's group join answered", lambda: "authoriz" in "".join(lines).lower(), timeout, interval=0.2)
        finally:
            proc.kill()
    reader.join(timeout=10)
    return "".join(lines)


def test_an_agents_credentials_reach_its_topics_and_nothing_of_another_tenant(
    cluster: Cluster, tenants: tuple[Tenant, Tenant], kcat: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tenants
    config = _credentials_file(cluster, a, tmp_path)
    # The identity works: a's own input reads (to its end) and its own output takes a record.
    own = _kcat(kcat, "-F", config, "-X", "isolation.level=read_committed", "-C", "-t", a.topic("in"), "-e", "-q")
    assert own.returncode == 0, own.stderr
    wrote = _kcat(kcat, "-F", config, "-P", "-t", a.topic("dlq"), "-k", "probe", stdin="not a ticket\n")
    assert wrote.returncode == 0, wrote.stderr

    # b's input: the broker refuses the topic (TOPIC_AUTHORIZATION_FAILED).
    read = _kcat(kcat, "-F", config, "-C", "-t", b.topic("in"), "-e", "-q")
    assert "Topic authorization failed" in read.stderr, read.stderr
    # A topic of another namespace: refused too.
    write = _kcat(kcat, "-F", config, "-P", "-t", b.topic("out"), "-k", "probe", stdin="not a ticket\n")
    assert write.returncode != 0 and "Topic authorization failed" in write.stderr, write.stderr
    # b's consumer group, on a topic a may read: the group is refused (GROUP_AUTHORIZATION_FAILED).
    refusal = _group_join_refusal(kcat, config, b.group, a.topic("in"))
    assert "Group authorization failed" in refusal, refusal
    with capsys.disabled():
        print(
            f"\nkcat as {a.namespace}/{a.agent}: read {b.topic('in')} -> {read.stderr.strip().splitlines()[-1]}; "
            f"write {b.topic('out')} -> {write.stderr.strip().splitlines()[-1]}; "
            f"join {b.group} -> {refusal.strip().splitlines()[-1]}"
        )


#: Run in a pod of the cluster with no Kafka credentials: each way in is tried, each outcome printed.
_NO_CREDENTIALS_PROBE = """
import json
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

attempts = {
    "plaintext on the client listener": {"bootstrap.servers": "kafka-bootstrap.kafka.svc:9092"},
    "SASL_SSL with a made-up user": {
        "bootstrap.servers": "kafka-bootstrap.kafka.svc:9092", "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "nobody", "sasl.password": "guess",
        "enable.ssl.certificate.verification": "false",
    },
    "TLS without the brokers' certificate on the replication listener": {
        "bootstrap.servers": "kafka-0.kafka-brokers.kafka.svc:9091", "security.protocol": "SSL",
        "enable.ssl.certificate.verification": "false",
    },
}
outcome = {}
for what, settings in attempts.items():
    errors = []
    admin = AdminClient({**settings, "error_cb": lambda e: errors.append(str(e)), "log_level": 0})
    try:
        brokers = admin.list_topics(timeout=10).brokers
        outcome[what] = {"connected": True, "brokers": len(brokers)}
    except KafkaException as e:
        admin.poll(1)  # serves the error callback: why the connection failed
        outcome[what] = {"connected": False, "error": str(e), "errors": sorted(set(errors))[:3]}
print(json.dumps(outcome))
"""


def test_a_pod_without_credentials_cannot_connect(
    cluster: Cluster, tenants: tuple[Tenant, Tenant], capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = tenants
    done = cluster.run(
        "kubectl", "run", f"no-credentials-{uuid.uuid4().hex[:6]}", "-n", a.namespace, "--image", cluster.state.image,
        "--image-pull-policy=Never", "--restart=Never", "--rm", "-i", "--quiet", "--command", "--",
        "python", "-c", _NO_CREDENTIALS_PROBE,
    )  # fmt: skip
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    with capsys.disabled():
        print("\n" + "\n".join(f"{what}: {result}" for what, result in outcome.items()))
    assert all(not result["connected"] for result in outcome.values()), outcome
    refused = outcome["SASL_SSL with a made-up user"]
    assert any("Authentication failed" in e for e in refused["errors"]), refused


def _acls(cluster: Cluster, principal: str) -> set[tuple[str, str, str, str]]:
    """The principal's ACLs as (operation, resource type, name, pattern type)."""
    admin = AdminClient({**cluster.kafka_settings, "log_level": 0})
    query = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, principal, None, AclOperation.ANY, AclPermissionType.ANY
    )
    bindings = admin.describe_acls(query, request_timeout=30).result(timeout=30)
    return {(b.operation.name, b.restype.name, b.name, b.resource_pattern_type.name) for b in bindings}


def test_the_demo_triage_agent_gets_exactly_the_acls_its_spec_needs(
    cluster: Cluster, flow: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = yaml.safe_load((EXAMPLES / "triage-agent.yaml").read_text())["spec"]
    principal = f"User:srs.{flow}.triage"
    writes = {*spec["routes"].values(), spec["humanTopic"], spec["deadLetterTopic"]}
    expected = {
        ("READ", "TOPIC", spec["inputTopic"], "LITERAL"),
        ("READ", "GROUP", f"srs.{flow}.triage", "LITERAL"),
        ("DESCRIBE_CONFIGS", "TOPIC", spec["deadLetterTopic"], "LITERAL"),
        ("WRITE", "TRANSACTIONAL_ID", f"srs.{flow}.triage-", "PREFIXED"),
        *(("WRITE", "TOPIC", topic, "LITERAL") for topic in writes),
    }
    found = _acls(cluster, principal)
    with capsys.disabled():  # the listing belongs in CI's output (the closing note shows it)
        print(f"\nACLs of {principal} (describe_acls on the kind cluster):")
        for op, restype, name, pattern in sorted(found, key=lambda x: (x[1], x[2], x[0])):
            print(f"  {principal}: {op} on {restype} {name}" + (" (prefixed)" if pattern == "PREFIXED" else ""))
    assert found == expected


def test_a_route_added_to_a_triage_agent_is_writable_before_the_agent_uses_it(
    cluster: Cluster, tenants: tuple[Tenant, Tenant], kcat: str
) -> None:
    a, _ = tenants
    name = "router"
    work, billing = a.topic("routed"), a.topic("billing")
    routes = {t.value: work for t in TicketType if t != TicketType.BILLING}
    spec = {
        "role": "triage",
        "inputTopic": a.topic("tickets"),
        "routes": routes,
        "humanTopic": a.topic("human"),
        "deadLetterTopic": a.topic("dlq"),
        "confidenceThreshold": 0.0,
        "resources": SMALL,
    }
    _apply(cluster, a.namespace, *(_topic(t) for t in (a.topic("tickets"), work, billing)))
    _apply(cluster, a.namespace, _agent(name, spec))
    _wait_ready(cluster, a.namespace, name)
    before = {p["metadata"]["uid"] for p in cluster.agent_pods(a.namespace, name)}

    # The spec change: billing tickets now go to their own topic.
    patch = {"spec": {"routes": {**routes, TicketType.BILLING.value: billing}}}
    cluster.kubectl("patch", "sagent", name, "-n", a.namespace, "--type=merge", "-p", json.dumps(patch))

    def rolled() -> bool:
        pods = cluster.agent_pods(a.namespace, name)
        return bool(pods) and all(p["metadata"]["uid"] not in before for p in pods)

    wait_for("the router's pods replaced after the route change", rolled, timeout=180, interval=1)
    _wait_ready(cluster, a.namespace, name)
    # Every sample: the offline model classifies several of them as billing.
    sent = cluster.publish(a.topic("tickets"), publish.sample_tickets())
    ids = {e["ticket_id"] for e in sent}
    wait_for(
        f"a ticket routed to {billing}",
        lambda: bool(ids & set(cluster.kcat_read(kcat, billing))),
        timeout=120,
        interval=2,
    )
    assert ("WRITE", "TOPIC", billing, "LITERAL") in _acls(cluster, f"User:srs.{a.namespace}.{name}")
    for pod in cluster.agent_pods(a.namespace, name):
        log = cluster.kubectl("logs", "-n", a.namespace, pod["metadata"]["name"])
        assert "authorization" not in log.lower(), [line for line in log.splitlines() if "uthoriz" in line][:3]
