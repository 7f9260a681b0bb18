"""``srs operator`` as a subprocess of a test: started standalone on one namespace glob,
waited for until its liveness endpoint answers, stopped afterwards; its log and its
Prometheus metrics at hand.

The suites pass what is theirs — the namespace glob, the identity (a kubeconfig), extra
flags and environment — as arguments; nothing here is a pytest fixture.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack.processes import free_port, terminate
from tests.harness import wait_for

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class OperatorProcess:
    """The running ``srs operator``, watching the namespaces that match ``namespace_glob``."""

    proc: subprocess.Popen[bytes]
    log: Path
    metrics_url: str
    kubeconfig: str
    namespace_glob: str
    liveness_url: str = ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of Prometheus metric ``name`` that carry ``labels``."""
        with urllib.request.urlopen(self.metrics_url, timeout=5) as r:  # noqa: S310 - localhost
            text = r.read().decode()
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
            if match is None:
                continue
            have = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(have.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
        return total

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"the operator exited ({self.proc.returncode}):\n{self.log_tail()}"


@contextlib.contextmanager
def run_operator(
    kubeconfig: str,
    bootstrap: str,
    log: Path,
    namespace_glob: str,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Iterator[OperatorProcess]:
    """Start ``srs operator --standalone`` on ``namespace_glob`` as ``kubeconfig``'s identity
    with Kafka at ``bootstrap`` (plus ``args`` and ``env``), output to ``log``; wait until it
    is live; stop it afterwards."""
    metrics_port, liveness_port = free_port(), free_port()
    liveness_url = f"http://127.0.0.1:{liveness_port}/healthz"
    full_env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    argv = [
        sys.executable, "-m", "srs.cli", "operator",
        "--namespace", namespace_glob,
        "--metrics-port", str(metrics_port),
        "--liveness", liveness_url,
        # Peering is cluster-wide in production (ClusterKopfPeering srs-operator); kopf's
        # namespaced peering does not suit namespaces that come and go with every test.
        "--standalone",
        *args,
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=full_env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    running = OperatorProcess(
        proc, log, f"http://127.0.0.1:{metrics_port}/metrics", kubeconfig, namespace_glob, liveness_url
    )

    def live() -> bool:
        running.assert_alive()
        try:
            with urllib.request.urlopen(liveness_url, timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    try:
        wait_for("the operator's liveness endpoint", live, timeout=60, interval=0.2)
        yield running
    finally:
        terminate(proc, timeout=20)
