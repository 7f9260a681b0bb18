"""Helpers shared by the tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

#: Every namespace a test creates carries this label, so the session's sweeper finds leftovers.
TEST_NAMESPACE_LABEL = "srs.dev/test-namespace"


@dataclass(frozen=True)
class Infra:
    """Where the tests find Kafka and Kubernetes."""

    kafka_bootstrap: str
    kubeconfig: str
    #: A kubeconfig for an identity with no rights granted (None on your own cluster).
    user_kubeconfig: str | None
    local: bool


#: ``kafka_topic(prefix="test", partitions=1, config=None) -> topic name``
TopicFactory = Callable[..., str]


def wait_for(what: str, check: Callable[[], bool], timeout: float = 60, interval: float = 0.25) -> None:
    """Poll ``check`` until true; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def kubeconfig_for_token(base_kubeconfig: str, token: str, user: str, path: Path) -> str:
    """Write a kubeconfig that reaches the same cluster as ``base_kubeconfig`` as ``token``."""
    base = yaml.safe_load(Path(base_kubeconfig).read_text())
    ctx_name = base["current-context"]
    ctx = next(c["context"] for c in base["contexts"] if c["name"] == ctx_name)
    cluster = next(c for c in base["clusters"] if c["name"] == ctx["cluster"])
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "test", "context": {"cluster": cluster["name"], "user": user}}],
        "current-context": "test",
    }
    path.write_text(yaml.safe_dump(cfg))
    return str(path)
