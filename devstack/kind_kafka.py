"""Kafka of the kind cluster: one plaintext broker, or a quorum of three with TLS and SCRAM.

``srs kind up --brokers 3`` (the default for a new cluster) runs three KRaft nodes in a
StatefulSet (``containers/kafka/kafka-cluster.yaml``): replication 3 and
``min.insync.replicas`` 2 by default, so one broker may go and ``acks=all`` producers go on.
What is secret and what the brokers need to form one cluster lives in the Secret
``kafka/kafka-auth``, made here on the first ``up`` and read back by every later one (the
cluster is the source of truth: an adopted cluster keeps its own):

- ``cluster-id``: the KRaft cluster id every broker formats its storage with;
- ``admin-password``: the SCRAM-SHA-512 password of :data:`kafka_auth.ADMIN_USER`, a super
  user, bootstrapped into the metadata when the storage is formatted (as on the local stack);
- ``broker.pem`` / ``ca.crt``: the brokers' key and certificate (server and client use: the
  brokers and controllers authenticate each other with it, and its principal
  :data:`BROKER_PRINCIPAL` is the other super user), signed by a CA made with
  :mod:`devstack.pki` whose key stays on the host (``.kind/kafka-auth/``).

Clients have only SASL_SSL listeners: pods reach ``kafka-bootstrap.kafka.svc:9092``, the host
``127.0.0.1:<port>`` of each broker. The operator is the admin (its ``KAFKA_*`` settings from
the Secret ``srs-operator-kafka``), and gives every agent its own SCRAM user and ACLs
(docs/kafka-security.md). ``.kind/kafka-auth/client.properties`` is the admin's librdkafka
file for people and tests (``KAFKA_CLIENT_CONFIG``; ``kcat -F``).

With one broker (``--brokers 1``) everything is PLAINTEXT, as the kind cluster always had:
the properties file then names only the bootstrap servers.
"""

from __future__ import annotations

import json
import secrets
import string
from collections.abc import Callable, Sequence
from pathlib import Path

from devstack import images, kafka, kafka_auth, pki
from devstack.kafka_auth import KafkaAuth

#: ``srs kind up --brokers``: a TLS + SCRAM quorum of three (default), or one plaintext broker.
BROKER_COUNTS = (1, 3)
DEFAULT_BROKERS = 3
NAMESPACE = "kafka"
#: The node port of broker N's host listener is FIRST_NODE_PORT + N; every cluster reserves
#: the host ports of the largest count when it is created (kind's port mappings are fixed then).
FIRST_NODE_PORT = 30092
SECRET = "kafka-auth"  # noqa: S105 - a Secret's name
#: The brokers' TLS principal (their certificate's subject): a super user.
BROKER_PRINCIPAL = "CN=srs-kind-kafka-broker"
#: What the brokers' certificate is valid for: the per-broker names in the cluster, the
#: bootstrap Service, and the host's loopback (the EXTERNAL listeners).
BROKER_NAMES = (
    "*.kafka-brokers.kafka.svc",
    "*.kafka-brokers.kafka.svc.cluster.local",
    "kafka-bootstrap.kafka.svc",
    "kafka-bootstrap.kafka.svc.cluster.local",
    "localhost",
)
BROKER_IPS = ("127.0.0.1",)
BOOTSTRAP_IN_CLUSTER = "kafka-bootstrap.kafka.svc:9092"
#: The operator's Kafka identity (envFrom) and the CA it gives the agents, in its namespace.
OPERATOR_SETTINGS_SECRET = "srs-operator-kafka"  # noqa: S105 - a Secret's name
OPERATOR_CA_SECRET = "kafka-ca"  # noqa: S105 - a Secret's name
#: A broker of three: heap, and the memory the kubelet reserves and allows (JVM heap plus
#: metaspace, threads, direct buffers and the page cache's share).
HEAP = "512m"
MEMORY_REQUEST = "768Mi"
MEMORY_LIMIT = "1Gi"

Kubectl = Callable[..., str]


def node_ports(count: int) -> list[int]:
    return [FIRST_NODE_PORT + n for n in range(count)]


def secure(brokers: int) -> bool:
    """Whether a cluster of this many brokers has TLS and SCRAM (the issue's rule: three)."""
    return brokers >= 3


def host_bootstrap(host_ports: Sequence[int], brokers: int) -> str:
    """The host's bootstrap servers: every broker's loopback port."""
    return ",".join(f"127.0.0.1:{p}" for p in host_ports[:brokers])


def auth_folder(state_dir: Path) -> Path:
    return state_dir / "kafka-auth"


def _secret_data(kubectl: Kubectl, namespace: str, name: str) -> dict[str, str] | None:
    """A Secret's data (base64-decoded), None when there is none."""
    import base64

    try:
        found = json.loads(kubectl("-n", namespace, "get", "secret", name, "-o", "json"))
    except RuntimeError as e:
        if "NotFound" in str(e):
            return None
        raise
    return {k: base64.b64decode(v).decode() for k, v in found.get("data", {}).items()}


def _ensure_namespace(kubectl: Kubectl, name: str) -> None:
    kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))


def _apply_secret(kubectl: Kubectl, namespace: str, name: str, data: dict[str, str]) -> None:
    """Create or update a Secret from stdin (nothing secret on a command line)."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/managed-by": "srs-kind"}},
        "stringData": data,
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def ensure_auth(kubectl: Kubectl, state_dir: Path) -> KafkaAuth:
    """The cluster's Kafka credentials: read back from the Secret ``kafka/kafka-auth`` when
    the cluster has it, else made now (a CA, the brokers' certificate, a cluster id and the
    admin's password) and stored there. The host keeps the CA certificate and the admin's
    password in ``.kind/kafka-auth/`` (mode 0700), and the CA's key of a cluster made here."""
    auth = KafkaAuth(auth_folder(state_dir))
    auth.folder.mkdir(parents=True, exist_ok=True)
    auth.folder.chmod(0o700)
    _ensure_namespace(kubectl, NAMESPACE)
    data = _secret_data(kubectl, NAMESPACE, SECRET)
    if data is None:
        ca = pki.CertificateAuthority.new("srs-kind-kafka-ca")
        key, cert = ca.issue(BROKER_PRINCIPAL.removeprefix("CN="), BROKER_NAMES, BROKER_IPS, server=True, client=True)
        chain = auth.folder / ".broker.pem"
        pki.write_key_and_chain(chain, key, cert, ca.cert)
        data = {
            "cluster-id": kafka.cluster_id(),
            # URL-safe characters only: nothing the storage tool's [name=…,password=…] parser,
            # a properties file or an argument file would read specially.
            "admin-password": secrets.token_urlsafe(24),
            "broker.pem": chain.read_text(),
            "ca.crt": ca.cert_pem().decode(),
        }
        chain.unlink()
        _apply_secret(kubectl, NAMESPACE, SECRET, data)
        ca.save(auth.ca_file, auth.ca_key)
    elif not auth.ca_file.is_file() or auth.ca_file.read_text() != data["ca.crt"]:
        auth.ca_file.write_text(data["ca.crt"])
        auth.ca_key.unlink(missing_ok=True)  # of another cluster, if any: not this one's CA
    pki.write_private(auth.password_file, data["admin-password"].encode())
    return auth


def write_client_config(folder: Path, bootstrap: str, auth: KafkaAuth | None) -> Path:
    """``.kind/kafka-auth/client.properties`` (owner-only): the admin over SASL_SSL on the host's
    listeners, or (one plaintext broker) just the bootstrap servers. ``kcat -F FILE -L`` reads it."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    settings = auth.admin_settings(bootstrap) if auth is not None else {"bootstrap.servers": bootstrap}
    body = "# Written by `srs kind up`: the kind cluster's Kafka from the host (kcat -F this-file -L).\n"
    path = folder / "client.properties"
    pki.write_private(path, (body + "".join(f"{k}={v}\n" for k, v in settings.items())).encode())
    return path


def apply_operator_secrets(kubectl: Kubectl, namespace: str, auth: KafkaAuth) -> None:
    """The operator's own identity (the admin, as the runtime's ``KAFKA_*`` variables) and the
    CA it mounts and gives every agent, in its namespace."""
    _ensure_namespace(kubectl, namespace)
    _apply_secret(kubectl, namespace, OPERATOR_CA_SECRET, {"ca.crt": auth.ca_file.read_text()})
    _apply_secret(
        kubectl, namespace, OPERATOR_SETTINGS_SECRET,
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": kafka_auth.MECHANISM,
            "KAFKA_SASL_USERNAME": kafka_auth.ADMIN_USER,
            "KAFKA_SASL_PASSWORD": auth.admin_password(),
            "KAFKA_SSL_CA_LOCATION": f"/etc/srs-kafka-ca/{auth.ca_file.name}",
        },
    )  # fmt: skip


def helm_values(auth: KafkaAuth | None, flow_namespaces: Sequence[str]) -> list[str]:
    """The chart's values for this Kafka: with TLS and SCRAM, the operator is the admin, the
    agents use SASL_SSL with the cluster's CA, and the operator manages their users and ACLs
    (may write their credential Secrets in ``flow_namespaces``)."""
    if auth is None:
        return ["--set", f"kafka.bootstrapServers={BOOTSTRAP_IN_CLUSTER}"]
    namespaces = "{" + ",".join(flow_namespaces) + "}"
    return [
        "--set", f"kafka.bootstrapServers={BOOTSTRAP_IN_CLUSTER}",
        "--set", f"kafka.settingsSecret={OPERATOR_SETTINGS_SECRET}",
        "--set", "kafka.agents.securityProtocol=SASL_SSL",
        "--set", f"kafka.agents.saslMechanism={kafka_auth.MECHANISM}",
        "--set", f"kafka.agents.ca.secret={OPERATOR_CA_SECRET}",
        "--set", "kafka.agents.ca.key=ca.crt",
        "--set-string", "kafka.manageUsers=true",
        "--set", f"secretNamespaces={namespaces}",
    ]  # fmt: skip


def manifest(brokers: int, host_ports: Sequence[int], image_digest: str = "") -> str:
    """The Kafka manifest of ``brokers`` brokers whose host listeners kind maps to ``host_ports``
    (``image_digest``: the Kafka image's source digest, on the pod template)."""
    folder = images.CONTAINERS / "kafka"
    if not secure(brokers):
        return string.Template((folder / "kafka.yaml").read_text()).substitute(
            IMAGE=images.KAFKA_IMAGE, NODE_PORT=FIRST_NODE_PORT, EXTERNAL_ADVERTISED=f"127.0.0.1:{host_ports[0]}"
        )
    external = "".join(
        f"""---
apiVersion: v1
kind: Service
metadata: {{name: kafka-external-{n}, namespace: kafka}}
spec:
  type: NodePort
  selector: {{statefulset.kubernetes.io/pod-name: kafka-{n}}}
  ports: [{{name: external, port: 9094, targetPort: 9094, nodePort: {node_port}}}]
"""
        for n, node_port in enumerate(node_ports(brokers))
    )
    return string.Template((folder / "kafka-cluster.yaml").read_text()).substitute(
        IMAGE=images.KAFKA_IMAGE, BROKERS=brokers, EXTERNAL_PORTS=",".join(map(str, host_ports[:brokers])),
        EXTERNAL_SERVICES=external.rstrip("\n"), BROKER_PRINCIPAL=BROKER_PRINCIPAL, ADMIN_USER=kafka_auth.ADMIN_USER,
        HEAP=HEAP, MEMORY_REQUEST=MEMORY_REQUEST, MEMORY_LIMIT=MEMORY_LIMIT, IMAGE_DIGEST=image_digest or "none",
    )  # fmt: skip


def client_settings(config_file: Path) -> dict[str, str]:
    """The librdkafka settings of a properties file (``KAFKA_CLIENT_CONFIG``)."""
    return kafka_auth.read_client_config(config_file)


def deployed_brokers(kubectl: Kubectl) -> int | None:
    """How many brokers the cluster's Kafka StatefulSet has (None: none deployed)."""
    try:
        found = json.loads(kubectl("-n", NAMESPACE, "get", "statefulset", "kafka", "-o", "json"))
    except RuntimeError as e:
        if "NotFound" in str(e):
            return None
        raise
    return int(found["spec"].get("replicas", 1))
