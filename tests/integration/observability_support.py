"""A real Prometheus and a real Jaeger for a test, and a small ticket flow for them to watch.

Prometheus is Debian's binary, Jaeger the one ``devstack/scripts/build-jaeger.sh`` builds;
both are installed or built by the project's own code when missing (so a test fails, never
skips, when they cannot be), configured by ``devstack/observability.py`` exactly as
``srs dev up --observability`` configures them, on free loopback ports.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from devstack import observability
from devstack.processes import free_port, terminate
from devstack.settings import default_paths
from tests.harness import wait_for


def get_json(url: str, timeout: float = 10) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
        return json.loads(r.read())


@dataclass(frozen=True)
class Prometheus:
    url: str
    targets: Path
    log: Path

    def query(self, promql: str) -> dict[str, Any]:
        """The JSON answer of ``/api/v1/query`` (an error answer too: status ``error``)."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            return dict(get_json(url))
        except urllib.error.HTTPError as e:  # 400/422: a bad query; the body says why
            return dict(json.loads(e.read()))

    def value(self, promql: str) -> float | None:
        """The single value ``promql`` returns (None: no series)."""
        result = self.query(promql)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def scrape(self, target_file: str, address: str, labels: Mapping[str, str]) -> None:
        """Add a scrape target (a ``file_sd`` file named ``agent-*`` or ``operator*``, read within seconds)."""
        observability.write_target(self.targets, target_file, address, labels)

    def wait_scraped(self, address: str, timeout: float = 60) -> None:
        def up() -> bool:
            targets = get_json(f"{self.url}/api/v1/targets")["data"]["activeTargets"]
            return any(t["scrapeUrl"].startswith(f"http://{address}/") and t["health"] == "up" for t in targets)

        wait_for(f"Prometheus to scrape {address}", up, timeout=timeout, interval=0.5)


@contextmanager
def running_prometheus(folder: Path, scrape_interval: str = "1s") -> Iterator[Prometheus]:
    """Debian's Prometheus with srs's rules, scraping what :meth:`Prometheus.scrape` lists."""
    server, _ = observability.ensure_prometheus(print)
    folder.mkdir(parents=True, exist_ok=True)
    targets = folder / "targets"
    targets.mkdir()
    config = folder / "prometheus.yml"
    config.write_text(observability.prometheus_config(targets, [observability.RULES_FILE], scrape_interval))
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            observability.prometheus_argv(server, config, folder / "data", port), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for("Prometheus to be ready", lambda: _alive(proc, log) and observability.answers(f"{url}/-/ready"))
        yield Prometheus(url, targets, log)
    finally:
        terminate(proc, timeout=20)


@dataclass(frozen=True)
class Jaeger:
    query_url: str
    otlp_endpoint: str
    log: Path

    def services(self) -> list[str]:
        return list(get_json(f"{self.query_url}/api/services")["data"] or [])

    def trace(self, trace_id: str) -> dict[str, Any] | None:
        """The trace ``trace_id`` as Jaeger's query API returns it (None: not stored)."""
        try:
            data = get_json(f"{self.query_url}/api/traces/{trace_id}")["data"]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise
        return dict(data[0]) if data else None


@contextmanager
def running_jaeger(folder: Path) -> Iterator[Jaeger]:
    """Jaeger (OTLP/HTTP in, memory store, query API) on free loopback ports."""
    binary = observability.ensure_jaeger(default_paths(), print)
    folder.mkdir(parents=True, exist_ok=True)
    otlp, query, query_grpc, health = free_port(), free_port(), free_port(), free_port()
    config = folder / "jaeger.yaml"
    config.write_text(observability.jaeger_config(otlp, query, query_grpc, health))
    log = folder / "jaeger.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(observability.jaeger_argv(binary, config), stdout=out, stderr=subprocess.STDOUT)
    jaeger = Jaeger(f"http://127.0.0.1:{query}", f"http://127.0.0.1:{otlp}", log)
    try:
        wait_for(
            "Jaeger's query API",
            lambda: _alive(proc, log) and observability.answers(f"{jaeger.query_url}/api/services"),
            timeout=60,
        )
        yield jaeger
    finally:
        terminate(proc, timeout=20)


def _alive(proc: subprocess.Popen[bytes], log: Path) -> bool:
    assert proc.poll() is None, f"exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}"
    return True


def ticket(ticket_id: str, subject: str, body: str, **extra: Any) -> dict[str, Any]:
    """A ``ticket.created`` event created now."""
    return {
        "event_type": "ticket.created",
        "event_id": f"evt-{ticket_id}",
        "ticket_id": ticket_id,
        "created_at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "customer_id": f"cust-{ticket_id}",
        "subject": subject,
        "body": body,
        **extra,
    }
