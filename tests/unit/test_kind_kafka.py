"""Kafka of the kind cluster as `srs kind up` renders it: one plaintext broker, or three with
TLS, SCRAM and ACLs (devstack/kind_kafka.py), and the broker count a cluster keeps."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from devstack import images, kind, kind_kafka
from devstack.kafka_auth import KafkaAuth

pytestmark = pytest.mark.unit


def _docs(text: str) -> dict[tuple[str, str], dict]:  # type: ignore[type-arg]
    return {(d["kind"], d["metadata"]["name"]): d for d in yaml.safe_load_all(text) if d}


def test_three_brokers_are_a_statefulset_with_a_port_per_broker_for_the_host() -> None:
    docs = _docs(kind_kafka.manifest(3, [41000, 41001, 41002]))
    sts = docs[("StatefulSet", "kafka")]
    assert sts["spec"]["replicas"] == 3
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    assert sts["spec"]["serviceName"] == "kafka-brokers"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["KAFKA_BROKERS"] == "3"
    assert env["KAFKA_EXTERNAL_PORTS"] == "41000,41001,41002"
    assert env["KAFKA_BROKER_PRINCIPAL"] == kind_kafka.BROKER_PRINCIPAL
    # Secrets only by reference: the password is in no manifest.
    assert env["KAFKA_ADMIN_PASSWORD"] == {"secretKeyRef": {"name": "kafka-auth", "key": "admin-password"}}
    assert container["image"] == images.KAFKA_IMAGE
    assert container["resources"]["limits"]["memory"] == kind_kafka.MEMORY_LIMIT
    # Each broker its own data folder on the node.
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["data"]["subPathExpr"] == "$(POD_NAME)"
    headless = docs[("Service", "kafka-brokers")]
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    for n in range(3):
        external = docs[("Service", f"kafka-external-{n}")]
        assert external["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": f"kafka-{n}"}
        assert external["spec"]["ports"][0]["nodePort"] == kind.KAFKA_NODE_PORT + n
    assert docs[("Service", "kafka-bootstrap")]["spec"]["ports"][0]["port"] == 9092


def test_one_broker_stays_the_plaintext_broker_it_was() -> None:
    docs = _docs(kind_kafka.manifest(1, [41000, 41001, 41002]))
    sts = docs[("StatefulSet", "kafka")]
    assert sts["spec"]["replicas"] == 1
    env = {e["name"]: e.get("value") for e in sts["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "KAFKA_BROKERS" not in env
    assert env["KAFKA_EXTERNAL_ADVERTISED"] == "127.0.0.1:41000"
    assert docs[("Service", "kafka-external")]["spec"]["ports"][0]["nodePort"] == kind.KAFKA_NODE_PORT


def test_the_operator_is_the_admin_and_manages_the_agents_users_only_with_three_brokers() -> None:
    assert kind_kafka.helm_values(None, ["default"]) == [
        "--set",
        "kafka.bootstrapServers=kafka-bootstrap.kafka.svc:9092",
    ]
    values = kind_kafka.helm_values(KafkaAuth(Path("/nowhere")), ["default"])
    pairs = dict(v.split("=", 1) for v in values if "=" in v)
    assert pairs["kafka.agents.securityProtocol"] == "SASL_SSL"
    assert pairs["kafka.settingsSecret"] == kind_kafka.OPERATOR_SETTINGS_SECRET
    assert pairs["kafka.agents.ca.secret"] == kind_kafka.OPERATOR_CA_SECRET
    assert pairs["kafka.manageUsers"] == "true"
    assert pairs["secretNamespaces"] == "{default}"


def test_a_cluster_keeps_its_broker_count_and_a_new_one_gets_three() -> None:
    assert kind._broker_count(None, None, 3) == 3
    assert kind._broker_count(None, 1, 3) == 1
    assert kind._broker_count(1, None, 1) == 1
    assert kind._broker_count(3, 3, 3) == 3
    with pytest.raises(RuntimeError, match="srs kind down && srs kind up --brokers 3"):
        kind._broker_count(1, 3, 3)
    # A cluster made before --brokers has one host port: too few for three.
    with pytest.raises(RuntimeError, match="too few for 3 brokers"):
        kind._broker_count(None, 3, 1)


class FakeKubectl:
    """kubectl on a cluster that holds Secrets only: ``get`` and ``apply`` of JSON from stdin."""

    def __init__(self) -> None:
        self.secrets: dict[tuple[str, str], dict[str, str]] = {}

    def __call__(self, *args: str, stdin: str | None = None) -> str:
        if args[0] == "apply":
            obj = json.loads(stdin or "{}")
            if obj["kind"] == "Secret":
                meta = obj["metadata"]
                self.secrets[(meta["namespace"], meta["name"])] = obj["stringData"]
            return ""
        namespace, _, _, name = args[1], args[2], args[3], args[4]
        found = self.secrets.get((namespace, name))
        if found is None:
            raise RuntimeError(f'Error from server (NotFound): secrets "{name}" not found')
        return json.dumps({"data": {k: base64.b64encode(v.encode()).decode() for k, v in found.items()}})


def test_the_clusters_kafka_credentials_are_made_once_and_read_back(tmp_path: Path) -> None:
    kubectl = FakeKubectl()
    first = kind_kafka.ensure_auth(kubectl, tmp_path / "one")
    stored = kubectl.secrets[("kafka", kind_kafka.SECRET)]
    assert set(stored) == {"cluster-id", "admin-password", "broker.pem", "ca.crt"}
    assert len(stored["cluster-id"]) == 22 and not stored["cluster-id"].startswith("-")
    assert first.admin_password() == stored["admin-password"]
    assert first.ca_key.is_file() and (first.password_file.stat().st_mode & 0o777) == 0o600
    # The brokers' certificate: signed by that CA, for the names clients use, client use too.
    pem = stored["broker.pem"].encode()
    cert = x509.load_pem_x509_certificates(pem)[0]
    assert cert.issuer == x509.load_pem_x509_certificate(stored["ca.crt"].encode()).subject
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "*.kafka-brokers.kafka.svc" in names.get_values_for_type(x509.DNSName)
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usages and ExtendedKeyUsageOID.SERVER_AUTH in usages

    # A second `up` (or another checkout's) reads them back; nothing new is made.
    again = kind_kafka.ensure_auth(kubectl, tmp_path / "one")
    other = kind_kafka.ensure_auth(kubectl, tmp_path / "two")
    assert kubectl.secrets[("kafka", kind_kafka.SECRET)] == stored
    assert again.admin_password() == other.admin_password() == stored["admin-password"]
    assert again.ca_key.is_file()  # this folder made the CA: its key stays
    assert other.ca_file.read_text() == stored["ca.crt"] and not other.ca_key.exists()
