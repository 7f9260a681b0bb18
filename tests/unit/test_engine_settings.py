"""Kafka client settings: from KAFKA_* variables, never able to weaken the delivery guarantees."""

from __future__ import annotations

import logging

import pytest

from agent_runtime.engine.settings import EngineSettings
from srs_contracts.agent_config import AgentConfig
from srs_contracts.kafka_settings import KafkaClientSettings

pytestmark = pytest.mark.unit


def config(**kafka: object) -> AgentConfig:
    return AgentConfig.model_validate(
        {
            "name": "billing",
            "role": "specialist",
            "specialist": {"specialty": "billing"},
            "kafka": {"group_id": "billing", "input_topic": "ticket.triaged.billing", **kafka},
            "concurrency": 32,
            "retry": {"max_attempts": 3, "initial_backoff_ms": 100, "max_backoff_ms": 5000},
        }
    )


def test_environment_variables_map_to_client_settings() -> None:
    settings = KafkaClientSettings.from_env(
        {
            "KAFKA_BOOTSTRAP_SERVERS": "b:9092",
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SSL_CA_LOCATION": "/etc/ca.pem",
            "KAFKA_CONSUMER_FETCH_MAX_BYTES": "1048576",
            "KAFKA_PRODUCER_LINGER_MS": "20",
            "KAFKA_SASL_OAUTHBEARER__X": "literal underscore",
            "KAFKA_HEAP_OPTS": "-Xmx1G",  # Kafka's own tools, not a client setting
            "HOME": "/root",
        }
    )
    assert settings.common == {
        "bootstrap.servers": "b:9092",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "ssl.ca.location": "/etc/ca.pem",
        "sasl.oauthbearer_x": "literal underscore",
    }
    assert settings.consumer == {"fetch.max.bytes": "1048576"}
    assert settings.producer == {"linger.ms": "20"}


def test_settings_come_from_the_agent_config_and_bootstrap_from_the_environment() -> None:
    settings = EngineSettings.from_agent_config(config(), {"KAFKA_BOOTSTRAP_SERVERS": "b:9092"})
    assert settings.bootstrap_servers == "b:9092"
    assert settings.group_id == "billing"
    assert settings.input_topic == "ticket.triaged.billing"
    assert settings.dead_letter_topic == "ticket.dlq"
    assert settings.concurrency == 32
    assert (settings.max_attempts, settings.initial_backoff_s, settings.max_backoff_s) == (3, 0.1, 5.0)
    assert settings.shutdown_grace_s == 25
    assert settings.key_log_field == "ticket_id"


def test_the_config_document_bootstrap_wins_over_the_environment() -> None:
    settings = EngineSettings.from_agent_config(
        config(bootstrap_servers="doc:9092"), {"KAFKA_BOOTSTRAP_SERVERS": "e:1"}
    )
    assert settings.bootstrap_servers == "doc:9092"
    assert settings.consumer_config()["bootstrap.servers"] == "doc:9092"


def test_no_bootstrap_servers_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="KAFKA_BOOTSTRAP_SERVERS"):
        EngineSettings.from_agent_config(config(), {})


def test_the_grace_period_comes_from_the_argument_or_the_environment() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "b:9092", "SRS_SHUTDOWN_GRACE_SECONDS": "40"}
    assert EngineSettings.from_agent_config(config(), env).shutdown_grace_s == 40
    assert EngineSettings.from_agent_config(config(), env, shutdown_grace_s=5).shutdown_grace_s == 5
    assert EngineSettings.from_agent_config(config(), env, shutdown_grace_s=5).revoke_drain_timeout_s == 2


def test_client_configs_carry_the_delivery_guarantees(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "b:9092",
        "KAFKA_SECURITY_PROTOCOL": "SSL",
        "KAFKA_ENABLE_AUTO_OFFSET_STORE": "true",  # would commit before processing: refused
        "KAFKA_PRODUCER_ACKS": "1",  # would lose acknowledged outputs on leader failover: refused
        "KAFKA_PRODUCER_LINGER_MS": "50",
        "KAFKA_CONSUMER_AUTO_OFFSET_RESET": "latest",
    }
    settings = EngineSettings.from_agent_config(config(), env)
    with caplog.at_level(logging.WARNING):
        consumer = settings.consumer_config()
        producer = settings.producer_config()
    assert consumer["enable.auto.offset.store"] is False
    # Exactly-once (the default): offsets are committed by transactions, never automatically.
    assert consumer["enable.auto.commit"] is False
    assert consumer["isolation.level"] == "read_committed"
    assert producer["transactional.id"] == f"billing-{settings.instance_id}"
    assert producer["transaction.timeout.ms"] == 10_000
    # A committed transaction says every output was written: only refusals are reported.
    assert producer["delivery.report.only.error"] is True
    assert consumer["partition.assignment.strategy"] == "cooperative-sticky"
    assert consumer["group.id"] == "billing"
    assert consumer["security.protocol"] == "SSL"
    assert consumer["auto.offset.reset"] == "latest"
    assert producer["enable.idempotence"] is True
    assert producer["acks"] == "all"
    assert producer["linger.ms"] == "50"
    assert producer["security.protocol"] == "SSL"
    assert "group.id" not in producer
    # The refusals are logged by setting name; values never appear in logs.
    assert {r.__dict__.get("setting") for r in caplog.records} >= {"enable.auto.offset.store", "acks"}
    assert "SSL" not in caplog.text


def test_at_least_once_commits_automatically_and_has_no_transactional_id() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "b:9092",
        "KAFKA_CONSUMER_ISOLATION_LEVEL": "read_uncommitted",
        # An input's offset is stored when every output's report came: refused.
        "KAFKA_PRODUCER_DELIVERY_REPORT_ONLY_ERROR": "true",
    }
    settings = EngineSettings.from_agent_config(config(delivery="at-least-once"), env)
    assert settings.exactly_once is False
    consumer, producer = settings.consumer_config(), settings.producer_config()
    assert consumer["enable.auto.commit"] is True
    # Aborted outputs of a crashed exactly-once agent upstream are never read, in either mode.
    assert consumer["isolation.level"] == "read_committed"
    assert "transactional.id" not in producer and "transaction.timeout.ms" not in producer
    assert producer["delivery.report.only.error"] is False


def test_the_transactional_id_is_the_group_and_the_pod_name_so_a_restarted_pod_fences_its_predecessor() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "b:9092", "SRS_POD_NAME": "billing-7d9f-abcde"}
    settings = EngineSettings.from_agent_config(config(), env)
    assert settings.producer_config()["transactional.id"] == "billing-billing-7d9f-abcde"
    # Without a pod name, every process gets an id of its own (two replicas never fence each other).
    one, two = (EngineSettings.from_agent_config(config(), {"KAFKA_BOOTSTRAP_SERVERS": "b:9092"}) for _ in range(2))
    assert one.transactional_id != two.transactional_id
