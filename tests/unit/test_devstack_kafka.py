"""The local stack's Kafka as configured (pure parts): its listeners, its credentials, one
or three brokers, and what ``.devstack/env`` tells clients."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from devstack import kafka, kafka_auth, kcat, stack
from devstack.kafka_auth import KafkaAuth
from devstack.processes import ProcessRecord
from devstack.settings import Paths
from srs_contracts.kafka_settings import KafkaClientSettings

pytestmark = pytest.mark.unit


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_env_files_client_config_is_no_client_setting() -> None:
    # .devstack/env exports KAFKA_CLIENT_CONFIG for kcat -F; as "client.config" every srs
    # client (agents, operator) would fail on a setting librdkafka does not know.
    settings = KafkaClientSettings.from_env(
        {"KAFKA_CLIENT_CONFIG": "/x/client.properties", "KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}
    )
    assert settings.common == {"security.protocol": "SASL_SSL"}


def test_one_broker_has_a_plaintext_and_a_sasl_ssl_listener_on_loopback_with_acls_enforced(tmp_path: Path) -> None:
    auth = KafkaAuth(tmp_path / "auth")
    broker = kafka.Broker(1, "kafka", 9092, 9094, 9093)
    props = _props(kafka.server_properties(broker, [broker], tmp_path / "kafka", auth))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094"
    assert props["listener.security.protocol.map"] == "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert "ScramLoginModule required" in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]
    assert props["listener.name.sasl_ssl.ssl.keystore.type"] == "PEM"
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(auth.broker_keystore)
    assert props["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == "User:ANONYMOUS;User:srs-admin"
    assert props["default.replication.factor"] == "1" and props["min.insync.replicas"] == "1"
    assert "password" not in kafka.server_properties(broker, [broker], tmp_path / "kafka", auth)


def test_three_brokers_are_one_quorum_and_replicate_everything_three_times(tmp_path: Path) -> None:
    ports = {key: 10000 + i for i, key in enumerate(k for n in kafka.broker_names(3) for k in kafka.port_keys(n))}
    members = kafka.brokers(3, ports)
    assert [(b.node_id, b.name) for b in members] == [(1, "kafka-1"), (2, "kafka-2"), (3, "kafka-3")]
    assert kafka.bootstrap_servers(members) == "127.0.0.1:10000,127.0.0.1:10003,127.0.0.1:10006"
    assert kafka.sasl_bootstrap_servers(members) == "127.0.0.1:10001,127.0.0.1:10004,127.0.0.1:10007"
    second = _props(kafka.server_properties(members[1], members, tmp_path / "kafka-2", KafkaAuth(tmp_path)))
    assert second["node.id"] == "2"
    assert second["controller.quorum.voters"] == "1@127.0.0.1:10002,2@127.0.0.1:10005,3@127.0.0.1:10008"
    assert second["listeners"].startswith("PLAINTEXT://127.0.0.1:10003,SASL_SSL://127.0.0.1:10004,")
    assert second["log.dirs"] == f"{tmp_path}/kafka-2/kraft"
    factors = ("default", "offsets.topic", "transaction.state.log", "share.coordinator.state.topic")
    for key in (f"{name}.replication.factor" for name in factors):
        assert second[key] == "3", key
    for key in ("min.insync.replicas", "transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr"):
        assert second[key] == "2", key


def test_a_single_broker_keeps_the_name_and_ports_of_stacks_before_brokers_were_counted() -> None:
    assert kafka.broker_names(1) == ["kafka"]
    assert kafka.port_keys("kafka") == ("kafka", "kafka_sasl", "kafka_controller")


def test_credentials_are_owner_only_made_once_and_the_certificate_names_loopback(tmp_path: Path) -> None:
    auth, new = kafka_auth.ensure(tmp_path / "kafka-auth")
    assert new
    assert _mode(auth.folder) == 0o700
    for secret in (auth.ca_key, auth.broker_keystore, auth.password_file):
        assert _mode(secret) == 0o600, secret
    password = auth.admin_password()
    assert len(password) >= 32 and password.replace("-", "").replace("_", "").isalnum()

    pem = auth.broker_keystore.read_bytes()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    leaf, ca = x509.load_pem_x509_certificates(pem)
    assert x509.load_pem_x509_certificate(auth.ca_file.read_bytes()) == ca
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

    again, new_again = kafka_auth.ensure(tmp_path / "kafka-auth")
    assert not new_again
    assert again.admin_password() == password
    assert again.broker_keystore.read_bytes() == pem


def test_the_storage_tool_bootstraps_the_admin_from_a_file_not_a_command_line(tmp_path: Path) -> None:
    auth, _ = kafka_auth.ensure(tmp_path)
    assert auth.scram_argument() == f"SCRAM-SHA-512=[name=srs-admin,password={auth.admin_password()}]"
    assert kafka._argfile_token("/a b/server.properties") == '"/a b/server.properties"'
    with pytest.raises(ValueError):
        kafka._argfile_token('say "hi"')


def test_the_client_config_is_what_kcat_reads_and_only_its_owner_may(tmp_path: Path) -> None:
    auth, _ = kafka_auth.ensure(tmp_path / "kafka-auth")
    path = kafka_auth.write_client_config(auth, "127.0.0.1:1,127.0.0.1:2")
    assert _mode(path) == 0o600
    assert kafka_auth.read_client_config(path) == {
        "bootstrap.servers": "127.0.0.1:1,127.0.0.1:2",
        "security.protocol": "SASL_SSL",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "srs-admin",
        "sasl.password": auth.admin_password(),
        "ssl.ca.location": str(auth.ca_file),
    }


def _state(paths: Paths, brokers: int) -> stack.StackState:
    ports = {key: 20000 + i for i, key in enumerate(k for n in kafka.broker_names(brokers) for k in kafka.port_keys(n))}
    members = kafka.brokers(brokers, ports)
    return stack.StackState(
        kafka_bootstrap=kafka.bootstrap_servers(members),
        kubeconfig=str(paths.kubeconfig),
        user_kubeconfig=str(paths.user_kubeconfig),
        bin_dir="/bin",
        ports=ports,
        processes=[ProcessRecord(b.name, 1, 1, "log") for b in members],
        kafka_sasl_bootstrap=kafka.sasl_bootstrap_servers(members),
        kafka_brokers=brokers,
    )


def test_the_env_file_exports_the_sasl_listeners_the_ca_and_the_client_config_but_no_secret(tmp_path: Path) -> None:
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    paths.state.mkdir()
    auth, _ = kafka_auth.ensure(paths.kafka_auth)
    state = _state(paths, 3)
    stack.write_env(paths, state)
    env = paths.env_file.read_text()
    exports = dict(
        line.removeprefix("export ").split("=", 1) for line in env.splitlines() if line.startswith("export ")
    )
    assert exports["KAFKA_BOOTSTRAP_SERVERS"] == state.kafka_bootstrap
    assert exports["SRS_KAFKA_SASL_BOOTSTRAP_SERVERS"] == "127.0.0.1:20001,127.0.0.1:20004,127.0.0.1:20007"
    assert exports["SRS_KAFKA_CA_FILE"] == str(auth.ca_file)
    assert exports["KAFKA_CLIENT_CONFIG"] == str(auth.client_config)
    assert auth.admin_password() not in env


def test_the_state_keeps_the_broker_count_and_a_stack_from_before_reads_as_one_broker(tmp_path: Path) -> None:
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    state = _state(paths, 3)
    assert stack.StackState.from_json(state.to_json()) == state
    old = state.to_json()
    del old["kafka_brokers"], old["kafka_sasl_bootstrap"]
    before = stack.StackState.from_json(old)
    assert before.kafka_brokers == 1 and before.kafka_sasl_bootstrap == ""


def test_a_different_broker_count_on_an_existing_stack_says_what_to_do(tmp_path: Path) -> None:
    state = _state(Paths(cache=tmp_path, state=tmp_path), 1)
    assert stack._broker_count(None, None) == 1
    assert stack._broker_count(None, 3) == 3
    assert stack._broker_count(state, None) == 1
    assert stack._broker_count(state, 1) == 1
    with pytest.raises(RuntimeError) as err:
        stack._broker_count(state, 3)
    assert "srs dev reset && srs dev up --brokers 3" in str(err.value)
    with pytest.raises(ValueError, match="one of 1, 3"):
        stack._broker_count(None, 2)


def test_components_are_the_brokers_then_the_control_plane() -> None:
    assert stack.components(1) == (
        "kafka",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
    )
    assert stack.components(3)[:3] == ("kafka-1", "kafka-2", "kafka-3")
    assert {"kafka", "kafka-1", "kafka-2", "kafka-3", "kafka-auth"} <= set(stack.DATA)


def test_the_kcat_wrapper_runs_debians_kcat_on_the_wheels_librdkafka(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Debian 12's librdkafka 2.0.2 cannot log in to Kafka 4 with SCRAM (librdkafka#4895).
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    real = tmp_path / "usr-bin" / "kcat"
    real.parent.mkdir()
    real.write_text("#!/bin/sh\n")
    real.chmod(0o755)
    monkeypatch.setenv("PATH", f"{kcat.bin_dir(paths)}:{real.parent}")
    wrapper = kcat.write_wrapper(paths)
    assert wrapper == kcat.bin_dir(paths) / "kcat" and _mode(wrapper) == 0o755
    text = wrapper.read_text()
    assert f'exec {real} "$@"' in text, "the real kcat, never the wrapper itself"
    library = (kcat.bin_dir(paths) / "lib" / "librdkafka.so.1").resolve()
    assert library.name.startswith("librdkafka") and "confluent_kafka.libs" in str(library)
    assert f'LD_LIBRARY_PATH="{kcat.bin_dir(paths) / "lib"}' in text
    assert "bin" in stack.DATA


def test_no_kcat_no_wrapper(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert kcat.write_wrapper(Paths(cache=tmp_path, state=tmp_path / "state")) is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "extra"], "srs dev status takes no arguments (extra)"),
        (["broker", "restart", "1"], "usage: srs dev broker {stop,kill,start} ID"),
        (["broker", "kill"], "usage: srs dev broker {stop,kill,start} ID"),
    ],
)
def test_the_broker_command_line_says_how_it_is_used(argv: list[str], message: str, tmp_path: Path) -> None:
    env = {**os.environ, "SRS_DEVSTACK_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "srs.cli", "dev", *argv], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_only_one_or_three_brokers_are_offered(tmp_path: Path) -> None:
    env = {**os.environ, "SRS_DEVSTACK_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "srs.cli", "dev", "up", "--brokers", "2"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 2 and "invalid choice: 2 (choose from 1, 3)" in done.stderr, done.stderr
