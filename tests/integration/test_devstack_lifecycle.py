"""``srs dev up | status | down`` on a second, private stack: idempotent and leaves nothing behind."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import pytest

from devstack import stack
from devstack.settings import Paths, default_paths

pytestmark = pytest.mark.integration


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
