"""Prometheus and Jaeger for the local stack (``srs dev up --observability``) and the tests.

- **Prometheus** (server and ``promtool``) is Debian's ``prometheus`` package, installed
  on first use when running as root (as on the development machines and CI); the package's
  own service is not used: srs starts its own server on loopback.
- **Jaeger** (OTLP in, query API and UI out, traces in memory) is built from its Go module
  (``github.com/jaegertracing/jaeger/cmd/jaeger``) by ``scripts/build-jaeger.sh``, cached
  by version under ``~/.cache/srs``.

Prometheus finds what to scrape in files (``file_sd``): the pod runner writes one target
file per agent process it runs (``targets/agent-<namespace>_<pod>.json``), the demo one
for its operator (``targets/operator.json``); they sit in ``.devstack/observability/``.
srs's alert rules (``charts/srs-operator/files/prometheus-rules.yaml``) are loaded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

import yaml

from devstack import apt, locks, settings
from devstack.processes import free_port
from devstack.settings import Paths

Progress = Callable[[str], None]

ROOT: Final = Path(__file__).resolve().parent.parent
RULES_FILE: Final = ROOT / "charts" / "srs-operator" / "files" / "prometheus-rules.yaml"
BUILD_SCRIPT: Final = Path(__file__).parent / "scripts" / "build-jaeger.sh"
#: Debian's package that brings ``prometheus`` and ``promtool``.
PROMETHEUS_PACKAGE: Final = "prometheus"


class ObservabilityUnavailable(RuntimeError):
    """Prometheus or Jaeger cannot be installed or started here."""


def ensure_prometheus(progress: Progress) -> tuple[Path, Path]:
    """(``prometheus``, ``promtool``): Debian's, installed on first use."""
    if shutil.which("prometheus") is None or shutil.which("promtool") is None:
        apt.install([PROMETHEUS_PACKAGE], progress, ObservabilityUnavailable)
    server, tool = shutil.which("prometheus"), shutil.which("promtool")
    if server is None or tool is None:
        raise ObservabilityUnavailable(f"Debian's {PROMETHEUS_PACKAGE} package brought no prometheus/promtool")
    return Path(server), Path(tool)


def jaeger_binary(paths: Paths) -> Path:
    return (
        paths.cache / f"jaeger-{settings.JAEGER_VERSION}-{settings.recipe_digest(*settings.JAEGER_RECIPE)}" / "jaeger"
    )


def ensure_jaeger(paths: Paths, progress: Progress) -> Path:
    """The ``jaeger`` binary, built from the Go module proxy on first use (cached by version)."""
    binary = jaeger_binary(paths)
    if binary.is_file():
        return binary
    if shutil.which("go") is None:
        raise ObservabilityUnavailable("building Jaeger needs Go 1.24+ on PATH (https://go.dev/doc/install)")
    with locks.exclusive(paths.cache, binary.parent.name, f"Jaeger {settings.JAEGER_VERSION}", progress):
        if binary.is_file():
            return binary
        progress(f"building Jaeger {settings.JAEGER_VERSION} from Go sources into {binary.parent} (first run only)")
        done = subprocess.run(["bash", str(BUILD_SCRIPT), settings.JAEGER_VERSION, str(binary.parent)])
    if done.returncode != 0 or not binary.is_file():
        raise ObservabilityUnavailable(f"building Jaeger {settings.JAEGER_VERSION} failed (output above)")
    return binary


# -- configuration ---------------------------------------------------------------------------


def prometheus_config(targets_dir: Path, rule_files: Sequence[Path], scrape_interval: str = "5s") -> str:
    """A Prometheus config scraping the agents and operators listed in ``targets_dir``.

    ``honor_labels``: the agents' and operator's own ``namespace``/``name`` labels (the
    objects they report on) win over target labels.
    """

    def job(name: str, pattern: str) -> dict[str, object]:
        return {
            "job_name": name,
            "honor_labels": True,
            "file_sd_configs": [{"files": [str(targets_dir / pattern)], "refresh_interval": "2s"}],
        }

    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [job("srs-agents", "agent-*.json"), job("srs-operator", "operator*.json")],
    }
    return "# Written by srs (devstack/observability.py).\n" + yaml.safe_dump(config, sort_keys=False)


def jaeger_config(otlp_http_port: int, query_port: int, query_grpc_port: int, health_port: int) -> str:
    """Jaeger: OTLP over HTTP in, traces in memory, the query API/UI out — all on loopback."""
    config = {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": {"receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"]}
            },
            "telemetry": {"resource": {"service.name": "jaeger"}, "metrics": {"level": "none"}},
        },
        "extensions": {
            "jaeger_query": {
                # On by default: Jaeger's own spans go to localhost:4317, where nothing listens,
                # and every stop waits ~9 s for that exporter to give up.
                "enable_tracing": False,
                "storage": {"traces": "memory"},
                "http": {"endpoint": f"127.0.0.1:{query_port}"},
                "grpc": {"endpoint": f"127.0.0.1:{query_grpc_port}"},
            },
            "jaeger_storage": {"backends": {"memory": {"memory": {"max_traces": 100000}}}},
            "healthcheckv2": {"use_v2": True, "http": {"endpoint": f"127.0.0.1:{health_port}"}},
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_http_port}"}}}},
        "processors": {"batch": {"timeout": "200ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memory"}},
    }
    return "# Written by srs (devstack/observability.py).\n" + yaml.safe_dump(config, sort_keys=False)


# -- scrape targets -------------------------------------------------------------------------


def targets_dir(paths: Paths) -> Path:
    """Where the pod runner and the demo list what Prometheus scrapes."""
    return paths.state / "observability" / "targets"


def write_target(directory: Path, name: str, address: str, labels: Mapping[str, str]) -> Path:
    """Write (atomically) one ``file_sd`` target file, ``<directory>/<name>.json``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps([{"targets": [address], "labels": dict(labels)}]))
    tmp.replace(path)
    return path


# -- running them ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoints:
    """Where the observability processes answer."""

    prometheus_url: str
    traces_url: str
    otlp_endpoint: str

    def env(self) -> dict[str, str]:
        """``SRS_PROMETHEUS_URL``, ``SRS_TRACES_URL`` and the OTLP endpoint for processes to export to."""
        return {
            "SRS_PROMETHEUS_URL": self.prometheus_url,
            "SRS_TRACES_URL": self.traces_url,
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.otlp_endpoint,
        }


def prometheus_argv(binary: Path, config: Path, data: Path, port: int) -> list[str]:
    return [
        str(binary), f"--config.file={config}", f"--storage.tsdb.path={data}",
        f"--web.listen-address=127.0.0.1:{port}", "--web.enable-lifecycle", "--storage.tsdb.retention.time=2d",
    ]  # fmt: skip


def jaeger_argv(binary: Path, config: Path) -> list[str]:
    return [str(binary), f"--config=file:{config}"]


def answers(url: str, timeout: float = 2.0) -> bool:
    """True when ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - loopback
            return bool(r.status == 200)
    except OSError:
        return False


ENDPOINTS_FILE: Final = "endpoints.json"


def save_endpoints(paths: Paths, endpoints: Endpoints) -> None:
    folder = paths.state / "observability"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ENDPOINTS_FILE).write_text(json.dumps(endpoints.__dict__))


def load_endpoints(paths: Paths) -> Endpoints | None:
    """The endpoints of ``srs dev up --observability``, if it ran (None otherwise)."""
    try:
        return Endpoints(**json.loads((paths.state / "observability" / ENDPOINTS_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def env_exports(paths: Paths, attached: Sequence[str]) -> str:
    """The ``export`` lines of ``.devstack/env`` for Prometheus and Jaeger, when ``srs dev up
    --observability`` started them (``attached`` names the stack's attached processes)."""
    endpoints = load_endpoints(paths)
    if endpoints is None or PROMETHEUS not in attached:
        return ""
    return (
        f"export SRS_PROMETHEUS_URL={endpoints.prometheus_url}\n"
        f"export SRS_TRACES_URL={endpoints.traces_url}\n"
        f"export SRS_OTLP_ENDPOINT={endpoints.otlp_endpoint}\n"
    )


PROMETHEUS: Final = "prometheus"
JAEGER: Final = "jaeger"


class Stack(Protocol):
    """What ``start`` needs of :mod:`devstack.stack` (passed in: the stack imports this module)."""

    def attach(self, name: str, argv: list[str], env: dict[str, str]) -> object: ...

    def write_env(self, paths: Paths) -> None: ...


def start(paths: Paths, progress: Progress, stack: Stack, timeout_s: float = 60.0) -> Endpoints:
    """Start Prometheus and Jaeger beside the running ``stack`` (attached: ``srs dev down``
    stops them, ``srs dev up`` restarts them on the same ports); idempotent."""

    server, _ = ensure_prometheus(progress)
    jaeger = ensure_jaeger(paths, progress)
    folder = paths.state / "observability"
    targets = targets_dir(paths)
    targets.mkdir(parents=True, exist_ok=True)
    saved = load_endpoints(paths)
    ports = json.loads((folder / "ports.json").read_text()) if saved and (folder / "ports.json").is_file() else {}
    if not ports:
        ports = {name: free_port() for name in ("prometheus", "otlp_http", "query_http", "query_grpc", "health")}
        (folder / "ports.json").write_text(json.dumps(ports))
    prometheus_yml = folder / "prometheus.yml"
    prometheus_yml.write_text(prometheus_config(targets, [RULES_FILE]))
    jaeger_yml = folder / "jaeger.yaml"
    jaeger_yml.write_text(jaeger_config(ports["otlp_http"], ports["query_http"], ports["query_grpc"], ports["health"]))
    endpoints = Endpoints(
        prometheus_url=f"http://127.0.0.1:{ports['prometheus']}",
        traces_url=f"http://127.0.0.1:{ports['query_http']}",
        otlp_endpoint=f"http://127.0.0.1:{ports['otlp_http']}",
    )
    save_endpoints(paths, endpoints)
    stack.attach(
        PROMETHEUS, prometheus_argv(server, prometheus_yml, folder / "prometheus-data", ports["prometheus"]), {}
    )
    stack.attach(JAEGER, jaeger_argv(jaeger, jaeger_yml), {})
    for what, url in (("Prometheus", f"{endpoints.prometheus_url}/-/ready"),
                      ("Jaeger", f"{endpoints.traces_url}/api/services")):  # fmt: skip
        if not wait_until_answers(url, timeout_s):
            raise ObservabilityUnavailable(
                f"{what} did not answer on {url} within {timeout_s:.0f}s (logs: {paths.logs})"
            )
    # Reload: the rules file or the targets may have changed since a running Prometheus started.
    urllib.request.urlopen(urllib.request.Request(f"{endpoints.prometheus_url}/-/reload", method="POST"), timeout=10)  # noqa: S310
    stack.write_env(paths)
    return endpoints


def wait_until_answers(url: str, timeout_s: float) -> bool:
    """Poll ``url`` until it answers 200 (True) or ``timeout_s`` passes (False)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if answers(url):
            return True
        time.sleep(0.2)
    return answers(url)


def main() -> int:
    """``python -m devstack.observability``: install Prometheus and build Jaeger now (``make test``
    does it before the tests, so no test waits for a first build)."""
    from devstack.settings import default_paths

    def say(message: str) -> None:
        print(f"srs observability: {message}", flush=True)

    try:
        server, tool = ensure_prometheus(say)
        jaeger = ensure_jaeger(default_paths(), say)
    except ObservabilityUnavailable as e:
        say(str(e))
        return 1
    say(f"prometheus {server}, promtool {tool}, jaeger {jaeger}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
