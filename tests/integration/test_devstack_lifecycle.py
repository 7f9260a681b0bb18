"""``srs dev up | status | down | reset`` on a second, private stack: idempotent, restarts
in place, never loses data unless reset, and leaves nothing behind."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kubernetes import client, config

from devstack import stack
from devstack.settings import Paths, default_paths
from tests.harness import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # see "serial" in pyproject.toml


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_up_is_idempotent_and_down_leaves_no_process_or_port(tmp_path: Path) -> None:
    paths = Paths(cache=default_paths().cache, state=tmp_path / "devstack")
    first = stack.up(paths)
    try:
        assert all(p.is_alive() for p in first.processes)
        assert {p.name for p in first.processes} == {
            "kafka", "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
        }  # fmt: skip
        env = (paths.state / "env").read_text()
        assert f"export KAFKA_BOOTSTRAP_SERVERS={first.kafka_bootstrap}" in env
        assert f"export KUBECONFIG={paths.state / 'kubeconfig'}" in env

        second = stack.up(paths)
        assert [p.pid for p in second.processes] == [p.pid for p in first.processes]

        out = io.StringIO()
        assert stack.status(paths, out=out) is True
        assert first.kafka_bootstrap in out.getvalue()
    finally:
        stack.down(paths)

    assert not any(p.is_alive() for p in first.processes)
    assert not [port for port in first.ports.values() if _listening(port)]
    out = io.StringIO()
    assert stack.status(paths, out=out) is False
    assert "not running" in out.getvalue()
    assert (paths.state / "logs" / "kafka.log").exists(), "logs are kept after down"
    stack.reset(paths)


def _produce_one(bootstrap: str, topic: str, value: bytes) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, value)
    assert producer.flush(30) == 0


def _read_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    seen: list[bytes] = []
    try:
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.append(msg.value())
                break
    finally:
        consumer.close()
    return seen


def _config_map_exists(kubeconfig: str, name: str) -> bool:
    api = client.CoreV1Api(config.new_client_from_config(config_file=kubeconfig))
    try:
        api.read_namespaced_config_map(name, "default")
    except client.ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def test_a_dead_component_is_restarted_alone_in_place_and_only_reset_deletes_data(tmp_path: Path) -> None:
    paths = Paths(cache=default_paths().cache, state=tmp_path / "devstack")
    first = stack.up(paths)
    try:
        api = client.CoreV1Api(config.new_client_from_config(config_file=first.kubeconfig))
        api.create_namespaced_config_map(
            "default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="kept"), data={"k": "v"})
        )
        topic = f"kept-{uuid.uuid4().hex[:6]}"
        _produce_one(first.kafka_bootstrap, topic, b"still here")
        by_name = {p.name: p for p in first.processes}

        # Kafka and etcd die (as with an OOM kill); the rest keeps running.
        for name in ("kafka", "etcd"):
            os.killpg(by_name[name].pid, signal.SIGKILL)
        wait_for("kafka and etcd gone", lambda: not by_name["kafka"].is_alive() and not by_name["etcd"].is_alive())

        second = stack.up(paths)
        again = {p.name: p for p in second.processes}
        assert second.ports == first.ports, "restarted on the same ports"
        assert second.kafka_bootstrap == first.kafka_bootstrap
        for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"):
            assert again[name].pid == by_name[name].pid, f"{name} was left alone"
        for name in ("kafka", "etcd"):
            assert again[name].pid != by_name[name].pid and again[name].is_alive()
        assert _config_map_exists(first.kubeconfig, "kept"), "etcd's data survived; the old kubeconfig still works"
        assert _read_all(first.kafka_bootstrap, topic) == [b"still here"], "Kafka's data survived"

        # Output into a closed pipe (`srs dev status | head -0`) ends quietly: the reader is
        # gone before the first write.
        env = {**os.environ, "SRS_DEVSTACK_DIR": str(paths.state)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "srs.cli", "dev", "status"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, stderr
        assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr

        # down then up resumes the same stack with its data.
        stack.down(paths, quiet=True)
        third = stack.up(paths)
        assert third.ports == first.ports
        assert _config_map_exists(third.kubeconfig, "kept")
    finally:
        stack.down(paths, quiet=True)

    stack.reset(paths)
    assert not (paths.state / "etcd").exists() and not (paths.state / "kafka").exists()
    fresh = stack.up(paths)
    try:
        assert not _config_map_exists(fresh.kubeconfig, "kept"), "reset deleted the data"
    finally:
        stack.down(paths, quiet=True)
        stack.reset(paths)
