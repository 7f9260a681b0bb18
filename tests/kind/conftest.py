"""Fixtures of the kind suite: the cluster of ``srs kind up``, kubectl on it, and kcat.

What only a real kubelet can prove runs here: the srs image in pods, probes checked by
the kubelet, Pod Security admission, pod replacement, Secret rotation, Helm. The suite
brings the cluster up itself (``srs kind up`` is idempotent) and never skips: when the
cluster cannot start, every test errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack import apt, kind
from tests.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


class Cluster:
    """The kind cluster under test: kubectl and helm on it, Kafka from the host."""

    def __init__(self, state: kind.KindState) -> None:
        self.state = state
        self.kafka_bootstrap = state.kafka_bootstrap
        self.env = {
            **os.environ,
            "KUBECONFIG": state.kubeconfig,
            "PATH": os.pathsep.join([*state.bin_dirs, os.environ.get("PATH", "")]),
        }

    def run(self, *argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(list(argv), env=self.env, input=stdin, capture_output=True, text=True, timeout=300)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def kubectl(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        return self.run("kubectl", *args, stdin=stdin, check=check).stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def condition(self, kind_name: str, namespace: str, type_: str = "Ready") -> dict[str, Any]:
        obj = self.get(kind_name, "-n", namespace)
        for cond in obj.get("status", {}).get("conditions", []):
            if cond["type"] == type_:
                return dict(cond)
        return {}

    def agent_pods(self, namespace: str, agent: str) -> list[dict[str, Any]]:
        pods = self.get("pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={agent}")["items"]
        return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``test_down.py`` removes the cluster: it runs after every other test, whatever the names."""
    items.sort(key=lambda item: item.path.name == "test_down.py")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    # With the model server: one test drafts through a real model in the cluster. One plaintext
    # broker, what this suite is written for: a cluster made with --brokers 3 is refused with
    # what to run instead, never half-used.
    return Cluster(kind.up(llm=True, brokers=1))


@pytest.fixture(scope="session")
def kcat() -> str:
    """Debian's kcat: a Kafka client srs did not write, to count what reached the topics."""
    if shutil.which("kcat") is None:
        apt.install(["kcat"], lambda msg: print(msg, flush=True))
    path = shutil.which("kcat")
    assert path, "kcat is needed to count tickets with a client srs did not write"
    return path


#: The namespace of the ticket flow: every example applied, Pod Security level `restricted` enforced.
FLOW_NAMESPACE = "default"


@pytest.fixture(scope="session")
def flow(cluster: Cluster) -> Iterator[str]:
    """examples/ applied in a namespace that enforces the restricted Pod Security Standard,
    every TicketTopic and SupportAgent Ready."""
    cluster.kubectl(
        "label", "namespace", FLOW_NAMESPACE, "--overwrite",
        "pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/enforce-version=latest",
    )  # fmt: skip
    cluster.kubectl("apply", "-n", FLOW_NAMESPACE, "-f", str(EXAMPLES))
    for kind_name in ("tickettopics", "supportagents"):
        done = cluster.run(
            "kubectl", "wait", "-n", FLOW_NAMESPACE, "--for=condition=Ready", kind_name, "--all", "--timeout=180s",
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            listing = cluster.kubectl("get", kind_name, "-n", FLOW_NAMESPACE, check=False)
            events = cluster.kubectl("get", "events", "-n", FLOW_NAMESPACE, "--sort-by=.lastTimestamp", check=False)
            raise AssertionError(f"{kind_name} not Ready within 180 s:\n{listing}\n{done.stderr}\n{events[-3000:]}")
    yield FLOW_NAMESPACE


def wait_until_ready(cluster: Cluster, resource: str, namespace: str, timeout: float = 180) -> None:
    wait_for(
        f"{resource} Ready",
        lambda: cluster.condition(resource, namespace).get("status") == "True",
        timeout=timeout,
        interval=1,
    )
