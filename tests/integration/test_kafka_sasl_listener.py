"""The local stack's SASL_SSL listener, against the real broker: the admin's client config
works (with librdkafka and with kcat), a wrong password and an untrusted CA are refused, and
a principal with no ACLs may touch no topic. The PLAINTEXT listener every other test uses
is the same broker's."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (
    AdminClient,
    NewTopic,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from devstack import kafka_auth, kcat, stack
from devstack.kafka_auth import KafkaAuth
from devstack.settings import Paths, default_paths
from tests.harness import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # see "serial" in pyproject.toml


@dataclass(frozen=True)
class SecureKafka:
    """The local stack's broker as a SASL_SSL client sees it."""

    auth: KafkaAuth
    sasl_bootstrap: str
    plaintext_bootstrap: str

    def admin_settings(self) -> dict[str, str]:
        """What ``$KAFKA_CLIENT_CONFIG`` holds: the admin principal over SASL_SSL."""
        return kafka_auth.read_client_config(self.auth.client_config)

    def settings_for(self, username: str, password: str) -> dict[str, str]:
        return {**self.admin_settings(), "sasl.username": username, "sasl.password": password}


@pytest.fixture(scope="module")
def secure_kafka() -> SecureKafka:
    # The local stack whatever KAFKA_BOOTSTRAP_SERVERS says: its SASL_SSL listener is what is tested.
    state = stack.up()
    return SecureKafka(KafkaAuth(default_paths().kafka_auth), state.kafka_sasl_bootstrap, state.kafka_bootstrap)


def _refused(settings: dict[str, Any], what: Callable[[KafkaError], bool]) -> list[KafkaError]:
    """Connect with ``settings``: the metadata request must fail (no answer comes over a
    refused connection), and the client must report an error ``what`` accepts."""
    seen: list[KafkaError] = []
    admin = AdminClient({**settings, "error_cb": seen.append, "log_level": 0})
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=5)

    def reported() -> bool:
        admin.poll(0.2)  # serves the error callback
        return any(what(e) for e in seen)

    wait_for("the client's error callback", reported, timeout=20)
    return seen


@pytest.fixture
def topic(secure_kafka: SecureKafka) -> Iterator[str]:
    """A topic created by the admin over SASL_SSL, deleted afterwards."""
    admin = AdminClient(secure_kafka.admin_settings())
    name = f"sasl-{uuid.uuid4().hex[:10]}"
    admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=-1)])[name].result(timeout=30)
    yield name
    admin.delete_topics([name])[name].result(timeout=30)


def test_the_admin_client_config_produces_and_consumes_over_sasl_ssl(secure_kafka: SecureKafka, topic: str) -> None:
    settings = secure_kafka.admin_settings()
    assert settings["security.protocol"] == "SASL_SSL"
    assert settings["bootstrap.servers"] == secure_kafka.sasl_bootstrap
    assert settings["ssl.ca.location"] == str(secure_kafka.auth.ca_file)
    producer = Producer({**settings, "acks": "all"})
    producer.produce(topic, key=b"T-1", value=b"over TLS, as srs-admin")
    assert producer.flush(30) == 0
    consumer = Consumer({**settings, "group.id": f"sasl-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                assert msg.value() == b"over TLS, as srs-admin"
                break
        else:
            pytest.fail("the record produced over SASL_SSL never came back")
    finally:
        consumer.close()


def test_kcat_reads_the_client_config(secure_kafka: SecureKafka) -> None:
    # A client srs did not write, as a person would run it from a shell that sourced
    # .devstack/env: kcat -F $KAFKA_CLIENT_CONFIG -L (Debian's kcat on the wheel's librdkafka).
    kcat_bin = kcat.command(default_paths(), lambda msg: print(msg, flush=True))
    done = subprocess.run(
        [kcat_bin, "-F", str(secure_kafka.auth.client_config), "-L", "-m", "15"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for broker in secure_kafka.sasl_bootstrap.split(","):
        assert f"at {broker}" in done.stdout, done.stdout


def test_a_wrong_password_is_refused_as_an_authentication_failure(secure_kafka: SecureKafka) -> None:
    settings = secure_kafka.settings_for(kafka_auth.ADMIN_USER, "not-the-password")
    seen = _refused(settings, lambda e: e.code() == KafkaError._AUTHENTICATION)
    failure = next(e for e in seen if e.code() == KafkaError._AUTHENTICATION)
    assert "Authentication failed" in failure.str() and "SCRAM-SHA-512" in failure.str(), failure.str()


def test_a_client_that_does_not_trust_the_stacks_ca_fails_tls(secure_kafka: SecureKafka) -> None:
    # A real CA, but another one: the control plane's.
    other_ca = default_paths().state / "pki" / "ca.crt"
    settings = {**secure_kafka.admin_settings(), "ssl.ca.location": str(other_ca)}
    seen = _refused(settings, lambda e: e.code() == KafkaError._SSL or "certificate verify failed" in e.str())
    assert any("certificate verify failed" in e.str() for e in seen), [e.str() for e in seen]


@pytest.fixture
def user_without_acls(secure_kafka: SecureKafka) -> Iterator[tuple[str, str]]:
    """A SCRAM principal made through the Admin API (as the operator makes agents'), granted nothing."""
    admin = AdminClient(secure_kafka.admin_settings())
    name, password = f"srs-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    admin.alter_user_scram_credentials([UserScramCredentialUpsertion(name, info, password.encode())])[name].result(
        timeout=30
    )

    def logs_in() -> bool:
        # Metadata of no topic (nothing is authorized), but an answer: the broker knows it.
        try:
            AdminClient({**secure_kafka.settings_for(name, password), "log_level": 0}).list_topics(timeout=3)
        except KafkaException:
            return False
        return True

    wait_for("the new principal's login", logs_in, timeout=30)
    yield name, password
    deletion = UserScramCredentialDeletion(name, ScramMechanism.SCRAM_SHA_512)
    admin.alter_user_scram_credentials([deletion])[name].result(timeout=30)


def test_a_principal_without_acls_may_not_write_or_read_a_topic(
    secure_kafka: SecureKafka, topic: str, user_without_acls: tuple[str, str]
) -> None:
    settings = secure_kafka.settings_for(*user_without_acls)
    reports: list[KafkaError | None] = []
    producer = Producer({**settings, "message.timeout.ms": 10000, "log_level": 0})
    producer.produce(topic, b"denied", on_delivery=lambda err, _msg: reports.append(err))
    producer.flush(20)
    assert len(reports) == 1 and reports[0] is not None
    assert reports[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, reports[0].str()

    # It does not even learn the topic exists: its metadata holds no topic.
    visible = AdminClient({**settings, "log_level": 0}).list_topics(timeout=10).topics
    assert topic not in visible

    errors: list[KafkaError] = []
    consumer = Consumer({**settings, "group.id": f"denied-{uuid.uuid4().hex}", "log_level": 0})
    consumer.subscribe([topic])
    try:
        for _ in range(40):
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is not None:
                errors.append(msg.error())
                break
    finally:
        consumer.close()
    assert errors and errors[0].code() in (
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
    ), [e.str() for e in errors]


def test_the_plaintext_fast_path_keeps_every_right(secure_kafka: SecureKafka, topic: str) -> None:
    # ANONYMOUS (loopback PLAINTEXT) is a super user: what every other test relies on.
    producer = Producer({"bootstrap.servers": secure_kafka.plaintext_bootstrap})
    producer.produce(topic, b"fast path")
    assert producer.flush(30) == 0


def test_a_stack_from_before_the_listener_gets_it_at_its_next_up_on_the_same_data(tmp_path: Path) -> None:
    paths = Paths(cache=default_paths().cache, state=tmp_path / "devstack")
    first = stack.up(paths)
    try:
        topic = f"kept-{uuid.uuid4().hex[:6]}"
        plaintext = AdminClient({"bootstrap.servers": first.kafka_bootstrap})
        plaintext.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
        # What a stack from before left, still running: no SASL_SSL port in its state, no
        # credentials (its storage was formatted without the admin's, or with another password).
        data = json.loads(paths.state_file.read_text())
        del data["kafka_sasl_bootstrap"], data["kafka_brokers"], data["ports"]["kafka_sasl"]
        paths.state_file.write_text(json.dumps(data))
        shutil.rmtree(paths.kafka_auth)
        broker = next(p for p in first.processes if p.name == "kafka")

        second = stack.up(paths)
        assert second.kafka_bootstrap == first.kafka_bootstrap and second.kafka_sasl_bootstrap
        restarted = next(p for p in second.processes if p.name == "kafka")
        assert not broker.is_alive() and restarted.is_alive(), "the broker restarted with its listener"
        settings = kafka_auth.read_client_config(KafkaAuth(paths.kafka_auth).client_config)
        assert topic in AdminClient(settings).list_topics(timeout=30).topics, "same data, new admin password"
        assert "export KAFKA_CLIENT_CONFIG=" in paths.env_file.read_text()
    finally:
        stack.down(paths, quiet=True)
        stack.reset(paths)
