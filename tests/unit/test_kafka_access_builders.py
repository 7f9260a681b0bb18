"""A SupportAgent becomes a Kafka identity: its ACLs, its credentials Secret, and how its pods
and KEDA use them (pure builders).

The ACL plans and the SASL manifests are compared with golden YAML in ``tests/unit/golden/``;
after an intended change, regenerate with ``SRS_UPDATE_GOLDEN=1`` and review the diff.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from srs_operator.builders import kafka_access as access
from srs_operator.builders import supportagent as build
from srs_operator.builders.tickettopic import PrefixRule
from srs_operator.models.conditions import ConditionStatus
from srs_operator.models.kafkaaccess import AclEntry, Operation, Pattern, Resource, ScramUser
from srs_operator.models.supportagent import Reason, SecretVersion, SupportAgent
from srs_operator.settings import AgentKafkaSettings, OperatorSettings
from tests.unit.test_supportagent_builders import SPECIALIST, TRIAGE, _GoldenDumper

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
SASL = OperatorSettings(
    agent_image="registry.example/srs:1.2.3",
    agent_kafka_bootstrap_servers="kafka-sasl:9093",
    agent_kafka=AgentKafkaSettings(security_protocol="SASL_SSL", ca_pem=CA),
)
PASSWORD = "a-password-that-must-appear-only-in-the-secret"


def _agent(body: dict[str, Any], **annotations: str) -> SupportAgent:
    body = copy.deepcopy(body)
    body["metadata"]["annotations"] = {**body["metadata"].get("annotations", {}), **annotations}
    return SupportAgent.from_body(body)


def _golden(name: str, rendered: str) -> None:
    path = GOLDEN / name
    if os.environ.get("SRS_UPDATE_GOLDEN"):
        path.write_text(rendered)
    assert rendered == path.read_text(), f"{path.name} differs; regenerate with SRS_UPDATE_GOLDEN=1 and review"


def _acl_lines(plan: access.AccessPlan) -> list[str]:
    return [f"{access.principal(plan.username)}: {e}" for e in sorted(plan.acls)]


# -- ACLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "body"), [("triage", TRIAGE), ("specialist", SPECIALIST)])
def test_an_agent_is_granted_exactly_its_topics_group_and_transactional_ids(case: str, body: dict[str, Any]) -> None:
    plan = access.plan_access(SupportAgent.from_body(body))
    assert plan.refused == ()
    _golden(f"kafka-acls-{case}.yaml", yaml.safe_dump(_acl_lines(plan), sort_keys=False))


def test_a_triage_agent_writes_every_route_the_human_queue_and_the_dead_letter_topic() -> None:
    plan = access.plan_access(SupportAgent.from_body(TRIAGE))
    topic = {(e.name, e.operation) for e in plan.acls if e.resource is Resource.TOPIC}
    assert topic == {
        ("ticket.events", Operation.READ),
        ("ticket.triaged.billing", Operation.WRITE),
        ("ticket.triaged.technical", Operation.WRITE),
        ("ticket.triaged.account", Operation.WRITE),
        ("ticket.triaged.human", Operation.WRITE),
        ("ticket.dlq", Operation.WRITE),
        ("ticket.dlq", Operation.DESCRIBE_CONFIGS),  # the runtime reads its max.message.bytes
    }
    assert AclEntry(Resource.GROUP, "srs.support.triage", Pattern.LITERAL, Operation.READ) in plan.acls
    # The runtime's transactional.id is <group>-<pod name>.
    txn = AclEntry(Resource.TRANSACTIONAL_ID, "srs.support.triage-", Pattern.PREFIXED, Operation.WRITE)
    assert txn in plan.acls
    assert not any(e.resource is Resource.CLUSTER for e in plan.acls), "no cluster-level right for an agent"
    assert not any(
        e.operation is Operation.READ and e.name != "ticket.events" for e in plan.acls if e.resource is Resource.TOPIC
    )


def test_idempotent_write_on_the_cluster_only_when_asked_for_old_brokers() -> None:
    plan = access.plan_access(SupportAgent.from_body(SPECIALIST), idempotent_write=True)
    assert AclEntry(Resource.CLUSTER, "kafka-cluster", Pattern.LITERAL, Operation.IDEMPOTENT_WRITE) in plan.acls


def test_a_topic_outside_the_namespaces_prefix_rules_gets_no_acl_and_a_clear_condition() -> None:
    body = copy.deepcopy(SPECIALIST)
    body["spec"].update(
        inputTopic="support.triaged.billing", outputTopic="billing.resolved", deadLetterTopic="support.dlq"
    )
    body["spec"]["humanTopic"] = "support.human"
    rules = [PrefixRule.parse("support=support.")]
    plan = access.plan_access(SupportAgent.from_body(body), rules)
    assert [t for t, _ in plan.refused] == ["billing.resolved"]
    assert not any(e.name == "billing.resolved" for e in plan.acls)
    assert {e.name for e in plan.acls if e.resource is Resource.TOPIC} == {
        "support.triaged.billing",
        "support.dlq",
        "support.human",
    }
    verdict = access.access_verdict(plan)
    assert verdict.status is ConditionStatus.FALSE
    assert verdict.reason is Reason.TOPICS_NOT_ALLOWED
    assert verdict.message.startswith("no ACL for billing.resolved: namespace support may only claim topics")
    assert "TOPIC_AUTHORIZATION_FAILED" in verdict.message


def test_a_granted_agent_is_told_which_user_and_secret() -> None:
    verdict = access.access_verdict(access.plan_access(SupportAgent.from_body(SPECIALIST)))
    assert verdict.status is ConditionStatus.TRUE
    assert verdict.reason is Reason.ACCESS_GRANTED
    assert "Kafka user srs.support.billing (Secret billing-kafka)" in verdict.message


def test_a_route_added_is_created_and_a_route_dropped_is_deleted() -> None:
    before = access.plan_access(SupportAgent.from_body(TRIAGE))
    body = copy.deepcopy(TRIAGE)
    body["spec"]["routes"] = {"billing": "ticket.triaged.billing", "other": "ticket.triaged.other"}
    after = access.plan_access(SupportAgent.from_body(body))
    diff = access.diff_acls(after.acls, before.acls)
    assert [str(e) for e in diff.create] == ["WRITE on TOPIC ticket.triaged.other"]
    assert [str(e) for e in diff.delete] == [
        "WRITE on TOPIC ticket.triaged.account",
        "WRITE on TOPIC ticket.triaged.technical",
    ]
    assert not access.diff_acls(after.acls, after.acls)


# -- credentials -----------------------------------------------------------------------------


def _issued(rotation: str = "", owner: str = TRIAGE["metadata"]["uid"]) -> SecretVersion:
    return SecretVersion(
        "secret-uid",
        "17",
        annotations=((access.ROTATION_ANNOTATION, rotation), (access.STATE_ANNOTATION, access.ISSUED)),
        owner_uid=owner,
    )


def test_a_new_password_is_issued_only_when_one_is_needed() -> None:
    agent = SupportAgent.from_body(TRIAGE)
    user = ScramUser("srs.support.triage", frozenset({"SCRAM-SHA-512"}))
    assert access.password_reason(agent, _issued(), user, "SCRAM-SHA-512") is None
    assert access.password_reason(agent, None, user, "SCRAM-SHA-512") == "Secret triage-kafka does not exist"
    assert "no SCRAM-SHA-512 credentials" in str(access.password_reason(agent, _issued(), None, "SCRAM-SHA-512"))
    pending = SecretVersion("u", "18", annotations=((access.STATE_ANNOTATION, access.PENDING),), owner_uid=agent.uid)
    assert "may not have reached Kafka" in str(access.password_reason(agent, pending, user, "SCRAM-SHA-512"))


def test_a_new_annotation_value_asks_for_a_rotation_once() -> None:
    user = ScramUser("srs.support.triage", frozenset({"SCRAM-SHA-512"}))
    rotate = _agent(TRIAGE, **{access.ROTATE_ANNOTATION: "2026-12-06"})
    assert "rotation was asked for" in str(access.password_reason(rotate, _issued(), user, "SCRAM-SHA-512"))
    assert access.password_reason(rotate, _issued(rotation="2026-12-06"), user, "SCRAM-SHA-512") is None


def test_a_secret_of_that_name_owned_by_someone_else_is_never_overwritten() -> None:
    agent = SupportAgent.from_body(TRIAGE)
    assert access.secret_conflict(agent, None) is None
    assert access.secret_conflict(agent, _issued()) is None
    message = access.secret_conflict(agent, _issued(owner="someone-else"))
    assert message is not None and "already exists and is not owned by this SupportAgent" in message


def test_the_credentials_secret_is_owned_by_the_agent_and_holds_username_password_and_ca() -> None:
    agent = _agent(TRIAGE, **{access.ROTATE_ANNOTATION: "r1"})
    secret = access.build_credentials_secret(agent, PASSWORD, rotation="r1", ca_pem=CA, state=access.PENDING)
    assert secret["metadata"]["name"] == "triage-kafka"
    assert secret["metadata"]["ownerReferences"] == [build.owner_reference(agent)]
    assert secret["metadata"]["annotations"] == {
        access.STATE_ANNOTATION: "pending",
        access.ROTATION_ANNOTATION: "r1",
        access.CA_ANNOTATION: hashlib.sha256(CA.encode()).hexdigest(),
    }
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data == {"username": "srs.support.triage", "password": PASSWORD, "ca.crt": CA}
    assert "argocd.argoproj.io/tracking-id" not in secret["metadata"]["annotations"], "never the agent's annotations"


# -- how pods and KEDA use them --------------------------------------------------------------


def _autoscaled_triage() -> dict[str, Any]:
    body = copy.deepcopy(TRIAGE)
    body["spec"]["autoscaling"] = {"maxReplicas": 4}
    return body


def test_sasl_manifests_match_golden() -> None:
    secrets = {"triage-kafka": _issued()}
    desired = build.build_desired(SupportAgent.from_body(_autoscaled_triage()), SASL, None, secrets, keda=True)
    wanted = ("ConfigMap", "TriggerAuthentication", "Deployment", "ScaledObject")
    rendered = "---\n".join(
        yaml.dump(c, Dumper=_GoldenDumper, sort_keys=False) for c in desired.children if c["kind"] in wanted
    )
    _golden("supportagent-triage-sasl.yaml", rendered)


def test_the_credentials_reach_the_pod_only_through_secret_key_refs_and_the_ca_beside_the_config() -> None:
    desired = build.build_desired(SupportAgent.from_body(TRIAGE), SASL, None, {"triage-kafka": _issued()})
    kinds = [c["kind"] for c in desired.children]
    assert "Secret" not in kinds, "the credentials Secret is the access service's, never a rendered child"
    deployment = next(c for c in desired.children if c["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env["KAFKA_SASL_USERNAME"]["valueFrom"] == {"secretKeyRef": {"name": "triage-kafka", "key": "username"}}
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "triage-kafka", "key": "password"}}
    assert env["KAFKA_SSL_CA_LOCATION"]["value"] == build.KAFKA_CA_PATH
    config_map = next(c for c in desired.children if c["kind"] == "ConfigMap")
    assert config_map["data"][build.KAFKA_CA_KEY] == CA
    assert desired.secret_refs[-2:] == (
        build.SecretKeyRef("triage-kafka", "password"),
        build.SecretKeyRef("triage-kafka", "username"),
    )


def test_a_new_password_rolls_the_pods_and_so_does_a_new_ca() -> None:
    agent = SupportAgent.from_body(TRIAGE)
    first = build.build_desired(agent, SASL, None, {"triage-kafka": _issued()}).config_hash
    rotated = SecretVersion("secret-uid", "18", _issued().annotations, _issued().owner_uid)
    assert build.build_desired(agent, SASL, None, {"triage-kafka": rotated}).config_hash != first
    other_ca = OperatorSettings(
        agent_image=SASL.agent_image,
        agent_kafka_bootstrap_servers=SASL.agent_kafka_bootstrap_servers,
        agent_kafka=AgentKafkaSettings(security_protocol="SASL_SSL", ca_pem=CA.replace("fake", "next")),
    )
    assert build.build_desired(agent, other_ca, None, {"triage-kafka": _issued()}).config_hash != first


def test_with_user_management_off_an_agent_brings_its_own_credentials_secret() -> None:
    settings = OperatorSettings(
        agent_kafka=AgentKafkaSettings(security_protocol="SASL_SSL", manage_users=False),
        agent_kafka_bootstrap_servers="b-1.msk.example:9096",
    )
    body = copy.deepcopy(SPECIALIST)
    body["spec"]["kafka"] = {"credentialsSecret": {"name": "billing-agent", "username": "billing-agent"}}
    body["spec"]["autoscaling"] = {"maxReplicas": 2}
    desired = build.build_desired(SupportAgent.from_body(body), settings, None, {}, keda=True)
    deployment = next(c for c in desired.children if c["kind"] == "Deployment")
    env = {e["name"]: e for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    # Strimzi's KafkaUser Secret holds the password only; the user is named like the KafkaUser.
    assert env["KAFKA_SASL_USERNAME"] == {"name": "KAFKA_SASL_USERNAME", "value": "billing-agent"}
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"] == {"secretKeyRef": {"name": "billing-agent", "key": "password"}}
    assert "KAFKA_SSL_CA_LOCATION" not in env, "no CA given: the system's trust store (MSK)"
    auth = next(c for c in desired.children if c["kind"] == "TriggerAuthentication")
    assert auth["spec"] == {
        "env": [{"parameter": "username", "name": "KAFKA_SASL_USERNAME", "containerName": "agent"}],
        "secretTargetRef": [{"parameter": "password", "name": "billing-agent", "key": "password"}],
    }
    assert [r.name for r in desired.secret_refs] == ["billing-agent"]


def test_on_a_plaintext_listener_nothing_about_kafka_identity_is_rendered() -> None:
    settings = OperatorSettings(agent_kafka_bootstrap_servers="kafka:9092")
    assert not settings.agent_kafka.users_managed
    body = _autoscaled_triage()
    desired = build.build_desired(SupportAgent.from_body(body), settings, None, {}, keda=True)
    deployment = next(c for c in desired.children if c["kind"] == "Deployment")
    names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert not {n for n in names if n.startswith("KAFKA_")}
    assert "TriggerAuthentication" not in [c["kind"] for c in desired.children]
    scaled = next(c for c in desired.children if c["kind"] == "ScaledObject")
    assert "authenticationRef" not in scaled["spec"]["triggers"][0]


# -- settings --------------------------------------------------------------------------------


def test_user_management_defaults_to_on_exactly_with_scram() -> None:
    assert not AgentKafkaSettings().users_managed
    assert AgentKafkaSettings(security_protocol="SASL_SSL").users_managed
    assert AgentKafkaSettings(security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-256").users_managed
    assert not AgentKafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER").users_managed
    assert not AgentKafkaSettings(security_protocol="SASL_SSL", manage_users=False).users_managed
    assert not AgentKafkaSettings(security_protocol="SSL").users_managed


def test_settings_that_cannot_work_are_refused_with_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="managing Kafka users needs agents that authenticate with SCRAM"):
        AgentKafkaSettings(manage_users=True).loaded()
    with pytest.raises(ValueError, match="is none of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"):
        AgentKafkaSettings(security_protocol="TLS").loaded()
    not_pem = tmp_path / "ca.txt"
    not_pem.write_text("hello")
    with pytest.raises(ValueError, match="holds no PEM certificate"):
        AgentKafkaSettings(security_protocol="SSL", ca_file=str(not_pem)).loaded()
    with pytest.raises(ValueError, match="cannot read the agents' Kafka CA file"):
        AgentKafkaSettings(security_protocol="SSL", ca_file=str(tmp_path / "missing.pem")).loaded()
    pem = tmp_path / "ca.pem"
    pem.write_text(CA)
    assert AgentKafkaSettings(security_protocol="SSL", ca_file=str(pem)).loaded().ca_pem == CA


def test_settings_come_from_the_environment() -> None:
    env = {
        "SRS_AGENT_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "SRS_AGENT_KAFKA_SASL_MECHANISM": "scram-sha-256",
        "SRS_AGENT_KAFKA_CA_FILE": "/etc/ca.pem",
        "SRS_KAFKA_MANAGE_USERS": "false",
        "SRS_KAFKA_ACL_IDEMPOTENT_WRITE": "1",
        "SRS_KAFKA_ACCESS_DELETE_TIMEOUT_SECONDS": "30",
    }
    kafka = AgentKafkaSettings.from_env(env)
    assert kafka == AgentKafkaSettings("SASL_SSL", "SCRAM-SHA-256", "/etc/ca.pem", None, False, True, 30.0)
    assert AgentKafkaSettings.from_env({}).manage_users is None
    with pytest.raises(ValueError, match="expected true or false"):
        AgentKafkaSettings.from_env({"SRS_KAFKA_MANAGE_USERS": "maybe"})


# -- the command line ------------------------------------------------------------------------


def _settings_from(argv: list[str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> OperatorSettings:
    from srs import cli as srs_cli
    from srs_operator import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: list[OperatorSettings] = []
    monkeypatch.setattr(main, "run", lambda settings: seen.append(settings) or 0)
    monkeypatch.setattr("srs_operator.cli._limit_malloc_arenas", lambda: None)
    assert srs_cli.main(["operator", *argv]) == 0
    return seen[0]


def test_the_flags_reach_the_settings_and_the_ca_file_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text(CA)
    settings = _settings_from(
        ["--agent-kafka-security-protocol", "SASL_SSL", "--agent-kafka-ca-file", str(pem), "--no-kafka-manage-users"],
        monkeypatch,
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"},
    )
    assert settings.agent_kafka.security_protocol == "SASL_SSL"
    assert settings.agent_kafka.ca_pem == CA
    assert not settings.agent_kafka.users_managed
    # What only the environment sets is kept (the agents' OTEL_* settings were dropped before).
    assert ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318") in settings.agent_otel_env
    on = _settings_from(["--agent-kafka-security-protocol", "SASL_SSL"], monkeypatch, {})
    assert on.agent_kafka.users_managed


def test_settings_that_cannot_work_stop_the_operator_with_what_to_change(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from srs import cli as srs_cli

    monkeypatch.setattr("srs_operator.cli._limit_malloc_arenas", lambda: None)
    assert srs_cli.main(["operator", "--kafka-manage-users"]) == 2
    assert "managing Kafka users needs agents that authenticate with SCRAM" in capsys.readouterr().err
