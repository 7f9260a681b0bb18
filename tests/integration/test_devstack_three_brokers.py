"""``srs dev up --brokers 3`` on a private stack: three brokers in one KRaft quorum, topics
from TicketTopics replicated three times, and produce/consume with ``acks=all`` going on
while the leader of their partition is killed."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    NewTopic,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)
from kubernetes import client, config

from devstack import stack
from devstack.kafka_auth import ADMIN_USER, KafkaAuth
from devstack.settings import Paths, default_paths
from tests.harness import wait_for
from tests.integration.operator_process import ROOT, run_operator
from tests.integration.tickettopic_support import TOPIC_OPERATOR_ENV, TicketTopics

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # see "serial" in pyproject.toml


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Paths, stack.StackState]]:
    """A private stack with three brokers, stopped and deleted afterwards."""
    paths = Paths(cache=default_paths().cache, state=tmp_path_factory.mktemp("three") / "devstack")
    state = stack.up(paths, brokers=3)
    try:
        yield paths, state
    finally:
        stack.down(paths, quiet=True)
        stack.reset(paths)


def _admin(state: stack.StackState) -> AdminClient:
    return AdminClient({"bootstrap.servers": state.kafka_bootstrap, "log_level": 0})


def _replicas(state: stack.StackState, topic: str) -> dict[int, tuple[int, list[int], list[int]]]:
    """Partition → (leader, replicas, in-sync replicas)."""
    md = _admin(state).list_topics(topic, timeout=10).topics[topic]
    return {p.id: (p.leader, list(p.replicas), list(p.isrs)) for p in md.partitions.values()}


def test_three_brokers_form_one_cluster_and_the_stack_keeps_its_count(three: tuple[Paths, stack.StackState]) -> None:
    paths, state = three
    assert state.kafka_brokers == 3
    assert [p.name for p in state.processes][:3] == ["kafka-1", "kafka-2", "kafka-3"]
    assert len(state.kafka_bootstrap.split(",")) == 3 and len(state.kafka_sasl_bootstrap.split(",")) == 3
    assert sorted(_admin(state).list_topics(timeout=10).brokers) == [1, 2, 3]
    env = (paths.state / "env").read_text()
    assert f"export KAFKA_BOOTSTRAP_SERVERS={state.kafka_bootstrap}\n" in env
    assert f"export SRS_KAFKA_SASL_BOOTSTRAP_SERVERS={state.kafka_sasl_bootstrap}\n" in env

    out = io.StringIO()
    assert stack.status(paths, out=out)
    for broker in state.brokers():
        line = next(line for line in out.getvalue().splitlines() if line.startswith(f"{broker.name} "))
        assert "running" in line and broker.bootstrap in line and broker.sasl_bootstrap in line

    # `up` without --brokers keeps three; asking for one says what to do instead.
    assert stack.up(paths).kafka_brokers == 3
    with pytest.raises(RuntimeError, match=r"srs dev reset && srs dev up --brokers 1"):
        stack.up(paths, brokers=1)


def _srs_dev(paths: Paths, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SRS_DEVSTACK_DIR": str(paths.state)}
    return subprocess.run(
        [sys.executable, "-m", "srs.cli", "dev", *args], env=env, capture_output=True, text=True, timeout=180
    )


def test_one_broker_stops_and_starts_again_from_the_command_line(three: tuple[Paths, stack.StackState]) -> None:
    paths, state = three
    stopped = _srs_dev(paths, "broker", "stop", "3")
    assert stopped.returncode == 0, stopped.stderr
    assert "`srs dev broker start 3` starts it again" in stopped.stderr
    assert not state.process("kafka-3").is_alive()
    wait_for("broker 3 out of the metadata", lambda: sorted(_admin(state).list_topics(timeout=10).brokers) == [1, 2])
    down = io.StringIO()
    assert not stack.status(paths, out=down), "a stopped broker: the stack is not healthy"
    assert any(line.startswith("kafka-3 ") and "STOPPED" in line for line in down.getvalue().splitlines())

    started = _srs_dev(paths, "broker", "start", "3")
    assert started.returncode == 0, started.stderr
    assert sorted(_admin(state).list_topics(timeout=10).brokers) == [1, 2, 3]
    assert stack.status(paths, out=io.StringIO())

    wrong = _srs_dev(paths, "broker", "stop", "7")
    assert wrong.returncode == 1 and "no Kafka broker 7 (its brokers: 1, 2, 3)" in wrong.stderr
    usage = _srs_dev(paths, "broker", "restart", "1")
    assert usage.returncode == 2 and "usage: srs dev broker {stop,kill,start} ID" in usage.stderr


def _apply_crds(api_client: client.ApiClient) -> None:
    ext = client.ApiextensionsV1Api(api_client)
    crd = yaml.safe_load((ROOT / "crds" / "tickettopics.srs.dev.yaml").read_text())
    ext.patch_custom_resource_definition(
        crd["metadata"]["name"], crd, field_manager="srs-tests", force=True,
        _content_type="application/apply-patch+yaml",
    )  # fmt: skip

    def established() -> bool:
        conds = ext.read_custom_resource_definition(crd["metadata"]["name"]).status.conditions or []
        return any(c.type == "Established" and c.status == "True" for c in conds)

    wait_for("the TicketTopic CRD established", established, timeout=30)


def test_a_ticket_topic_without_a_replication_factor_gets_three_replicas_and_min_isr_two(
    three: tuple[Paths, stack.StackState], tmp_path: Path
) -> None:
    _, state = three
    api_client = config.new_client_from_config(config_file=state.kubeconfig)
    _apply_crds(api_client)
    namespace = f"srs-test-rf-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(api_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    topics = TicketTopics(api_client)
    name = f"rf.{uuid.uuid4().hex[:8]}"
    with run_operator(
        state.kubeconfig, state.kafka_bootstrap, tmp_path / "operator.log", "srs-test-rf-*", env=TOPIC_OPERATOR_ENV
    ) as operator:
        topics.create(namespace, name, {"partitions": 3, "deletionPolicy": "Delete"})

        def ready() -> bool:
            operator.assert_alive()
            conds = topics.get(namespace, name).get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        wait_for(f"TicketTopic {name} Ready", ready, timeout=60)
        assert topics.get(namespace, name)["status"]["replicationFactor"] == 3
        partitions = _replicas(state, name)
        assert len(partitions) == 3
        assert all(sorted(replicas) == [1, 2, 3] for _, replicas, _ in partitions.values()), partitions
        resource = ConfigResource(ResourceType.TOPIC, name)
        admin = _admin(state)  # kept: a collected client fails its futures
        described = admin.describe_configs([resource])[resource].result(timeout=10)
        assert described["min.insync.replicas"].value == "2"


def test_produce_and_consume_with_acks_all_go_on_when_the_partitions_leader_is_killed(
    three: tuple[Paths, stack.StackState],
) -> None:
    paths, state = three
    topic = f"kill-{uuid.uuid4().hex[:8]}"
    admin = _admin(state)
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=-1)])[topic].result(timeout=30)
    wait_for("three in-sync replicas", lambda: len(_replicas(state, topic)[0][2]) == 3, timeout=30)
    leader = _replicas(state, topic)[0][0]

    failures: list[KafkaError] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer(
        {"bootstrap.servers": state.kafka_bootstrap, "acks": "all", "enable.idempotence": True, "linger.ms": 5}
    )
    total, kill_at = 400, 150
    for i in range(total):
        if i == kill_at:
            # Mid-flow (records of the first part may still be in flight), as `kubectl delete
            # pod --grace-period=0` would: no orderly handover.
            stack.stop_broker(leader, kill=True, paths=paths)
        producer.produce(topic, key=f"T-{i}".encode(), value=str(i).encode(), on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(60) == 0
    assert not failures, [f.str() for f in failures]
    new_leader, _, isr = _replicas(state, topic)[0]
    assert new_leader != leader and leader not in isr and len(isr) == 2

    # A consumer group (offsets replicated three times) reads everything, once, in order.
    consumer = Consumer(
        {
            "bootstrap.servers": state.kafka_bootstrap,
            "group.id": f"kill-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    seen: list[int] = []
    deadline = time.monotonic() + 120
    try:
        while len(seen) < total and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                seen.append(int(msg.value()))
        consumer.commit(asynchronous=False)  # the group's offsets, written with a broker down
    finally:
        consumer.close()
    assert seen == list(range(total))

    # Back in place: same ports, same data, and in sync again.
    stack.start_broker(leader, paths=paths)
    wait_for("the restarted broker back in sync", lambda: len(_replicas(state, topic)[0][2]) == 3, timeout=60)
    admin.delete_topics([topic])[topic].result(timeout=30)


def _logs_in(sasl_bootstrap: str, auth: KafkaAuth, user: str, password: str) -> bool:
    """Whether ``user`` logs in (SCRAM over SASL_SSL) on the broker(s) of ``sasl_bootstrap``."""
    settings = {**auth.admin_settings(sasl_bootstrap), "sasl.username": user, "sasl.password": password}
    try:
        return bool(AdminClient({**settings, "log_level": 0}).list_topics(timeout=10).brokers)
    except KafkaException:
        return False


def test_a_restarted_broker_keeps_every_scram_credential_after_a_user_was_deleted(
    three: tuple[Paths, stack.StackState],
) -> None:
    """Kafka's ScramDelta.apply() (every release up to 4.4.0) may drop every SCRAM credential
    of a broker that replays, from an empty image, a log holding a deleted user
    (docs/kafka-security.md). The stack's snapshot a minute is the workaround: a restarted
    broker starts from a snapshot, which holds live users only."""
    paths, state = three
    logs = [paths.state / b.name / "kraft" / "__cluster_metadata-0" for b in state.brokers()]

    def snapshot(log: Path) -> bool:  # not the one at offset 0 the storage tool may write
        return any(not p.name.startswith("00000000000000000000-") for p in log.glob("*.checkpoint"))

    wait_for("a KRaft snapshot on every broker", lambda: all(snapshot(log) for log in logs), 120)

    auth = KafkaAuth(paths.kafka_auth)
    admin = _admin(state)
    # Fixed names: whether the bug strikes depends on their order in a HashMap (with these,
    # Kafka 4.1.1 to 4.4.0 lost every credential of the restarted broker on every try).
    kept = {f"scram-test-{i}": f"pw-{i}-{uuid.uuid4().hex}" for i in range(1, 4)}
    gone = [f"gone-{i}" for i in range(8)]
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(u, info, pw.encode()) for u, pw in kept.items()
    ]
    upserts += [UserScramCredentialUpsertion(u, info, b"pw") for u in gone]
    for done in admin.alter_user_scram_credentials(upserts, request_timeout=30).values():
        done.result(timeout=30)
    deletions: list[UserScramCredentialAlteration] = [
        UserScramCredentialDeletion(u, ScramMechanism.SCRAM_SHA_512) for u in gone
    ]
    for done in admin.alter_user_scram_credentials(deletions, request_timeout=30).values():
        done.result(timeout=30)

    broker = state.brokers()[1]
    stack.stop_broker(broker.node_id, paths=paths)
    stack.start_broker(broker.node_id, paths=paths)
    users = {**kept, ADMIN_USER: auth.admin_password()}
    refused = [u for u, pw in users.items() if not _logs_in(broker.sasl_bootstrap, auth, u, pw)]
    assert not refused, f"{broker.name} refuses {refused} after its restart"
