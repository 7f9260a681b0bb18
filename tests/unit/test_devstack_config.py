"""Pure parts of the local stack: ids, broker config, prerequisite messages."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
import yaml

from devstack import kafka, kube, stack
from devstack.kafka_auth import KafkaAuth
from devstack.settings import Paths

pytestmark = pytest.mark.unit


def test_cluster_id_is_a_kafka_uuid() -> None:
    cid = kafka.cluster_id()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid)
    assert len(base64.urlsafe_b64decode(cid + "==")) == 16
    assert kafka.cluster_id() != cid


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # The storage tool would read "-…" as an option; Kafka's own Uuid.randomUuid draws again too.
    draws = iter([b"\xfb" + bytes(15), bytes(16)])  # base64url of 0xfb… starts with "-"
    monkeypatch.setattr(kafka.uuid, "uuid4", lambda: type("U", (), {"bytes": next(draws)})())
    assert kafka.cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_broker_listens_on_loopback_and_never_auto_creates_topics(tmp_path: Path) -> None:
    broker = kafka.Broker(1, "kafka", 19092, 19094, 19093)
    props = kafka.server_properties(broker, [broker], tmp_path, KafkaAuth(tmp_path / "auth"))
    assert "auto.create.topics.enable=false" in props
    assert "listeners=PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094,CONTROLLER://127.0.0.1:19093" in props
    assert "controller.quorum.voters=1@127.0.0.1:19093" in props


def test_missing_tool_is_named_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: no java, mvn or go
    with pytest.raises(stack.PrerequisiteMissing) as err:
        stack.check_prerequisites(Paths(cache=tmp_path / "cache", state=tmp_path / "state"))
    message = str(err.value)
    assert "\n" not in message
    assert "Java 17+" in message and "Apache Maven" in message and "Go 1.24+" in message


def test_kubeconfigs_follow_the_apiserver_port_and_keep_their_tokens(tmp_path: Path) -> None:
    # state.json gone (an older version's `down`), PKI and kubeconfigs kept: the next `up`
    # picks new ports, and every kubeconfig (kwok's, the controller-manager's) must follow.
    paths = Paths(cache=tmp_path / "cache", state=tmp_path / "state")
    paths.state.mkdir(parents=True)
    first = kube.prepare(paths, kube.Ports(1, 2, 34567, 4, 5, 6))
    user_token = yaml.safe_load(paths.user_kubeconfig.read_text())["users"][0]["user"]["token"]
    again = kube.prepare(paths, kube.Ports(1, 2, 45678, 4, 5, 6))
    assert again == first
    for path in (paths.kubeconfig, paths.user_kubeconfig):
        cfg = yaml.safe_load(path.read_text())
        assert cfg["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:45678"
    assert yaml.safe_load(paths.user_kubeconfig.read_text())["users"][0]["user"]["token"] == user_token
