"""Helpers shared by the tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

#: Every namespace a test creates carries this label, so the session's sweeper finds leftovers …
TEST_NAMESPACE_LABEL = "srs.dev/test-namespace"
#: … with this process's value: ``make test`` runs test files on several workers at once, and
#: a worker's sweeper must not take the namespaces of tests still running on another.
TEST_NAMESPACE_OWNER = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
#: The label selector of this process's test namespaces (the sweeper's).
TEST_NAMESPACE_SELECTOR = f"{TEST_NAMESPACE_LABEL}={TEST_NAMESPACE_OWNER}"


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


def create_test_namespace(core_v1: client.CoreV1Api, name: str) -> None:
    """Create namespace ``name`` with this process's test label (the sweeper's)."""
    core_v1.create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TEST_NAMESPACE_LABEL: TEST_NAMESPACE_OWNER}))
    )


@contextlib.contextmanager
def fresh_namespace(core_v1: client.CoreV1Api, prefix: str) -> Iterator[str]:
    """A fresh namespace ``<prefix><random>`` with the harness's label (so the session's
    sweeper catches leftovers), deleted afterwards."""
    name = f"{prefix}{uuid.uuid4().hex[:8]}"
    create_test_namespace(core_v1, name)
    try:
        yield name
    finally:
        with contextlib.suppress(client.ApiException):
            core_v1.delete_namespace(name, propagation_policy="Background")


def wait_for_terminating_namespaces(core_v1: client.CoreV1Api, prefix: str, timeout: float = 120) -> None:
    """Until no namespace named ``<prefix>…`` is still being deleted (an earlier session's)."""

    def none_left() -> bool:
        return not [
            n
            for n in core_v1.list_namespace().items
            if n.metadata.name.startswith(prefix) and n.status.phase == "Terminating"
        ]

    wait_for(f"earlier {prefix}* namespaces to be deleted", none_left, timeout=timeout)


def first_change(
    list_fn: Callable[..., Any], *args: Any, resource_version: str, seconds: int, **kwargs: Any
) -> dict[str, Any] | None:
    """Watch ``list_fn`` (a kubernetes client list call) from ``resource_version`` for at most
    ``seconds``: the first change it sees, or None. It returns at the first write, so a test
    that proves silence fails at once instead of sleeping a fixed time and looking after."""
    stream = watch.Watch()
    try:
        for event in stream.stream(
            list_fn, *args, resource_version=resource_version, timeout_seconds=seconds, **kwargs
        ):
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                return dict(event)
    finally:
        stream.stop()
    return None
