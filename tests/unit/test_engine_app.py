"""The agent process around the engine: probes and metrics over HTTP, handler factories."""

from __future__ import annotations

import http.client
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry, Counter

from agent_runtime import app
from agent_runtime.server import HealthServer

pytestmark = pytest.mark.unit


@dataclass
class Target:
    healthy: bool = True
    ready: bool = False


def get(server: HealthServer, path: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read().decode()


def test_probes_follow_the_engine_and_metrics_come_from_the_registry() -> None:
    target, registry = Target(), CollectorRegistry()
    Counter("srs_test_things", "Things.", registry=registry).inc(3)
    server = HealthServer(target, registry, port=0, host="127.0.0.1").start()
    try:
        assert get(server, "/healthz")[::2] == (200, "ok\n")
        assert get(server, "/readyz")[::2] == (503, "not ready\n")
        target.ready = True
        assert get(server, "/readyz")[::2] == (200, "ready\n")
        target.healthy = False
        assert get(server, "/healthz")[0] == 503
        status, content_type, body = get(server, "/metrics")
        assert status == 200 and content_type.startswith("text/plain")
        assert "srs_test_things_total 3.0" in body
        assert get(server, "/nope")[0] == 404
    finally:
        server.stop()


class Failing:
    """A target whose probe answer fails the way ``error`` says."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.ready = True

    @property
    def healthy(self) -> bool:
        raise self.error


@pytest.mark.parametrize(
    ("error", "level"),
    [(BrokenPipeError(32, "Broken pipe"), logging.DEBUG), (RuntimeError("a bug"), logging.WARNING)],
)
def test_a_failed_request_is_a_log_record_never_a_traceback_on_stderr(
    error: Exception, level: int, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent_runtime.server")
    server = HealthServer(Failing(error), CollectorRegistry(), port=0, host="127.0.0.1").start()
    try:
        with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
            get(server, "/healthz")
        assert get(server, "/readyz")[::2] == (200, "ready\n"), "the server goes on serving"
    finally:
        server.stop()
    assert capfd.readouterr().err == "", "a plain-text traceback would break the JSON log"
    [record] = [
        r
        for r in caplog.records
        if r.name == "agent_runtime.server"
        and r.levelno >= logging.DEBUG
        and r.msg != "serving /healthz /readyz /metrics"
    ]
    assert record.levelno == level


def test_handler_factories_are_named_module_colon_attribute() -> None:
    assert app.load_handler_factory("tests.integration.engine_support:scripted_handler").__name__ == "scripted_handler"
    with pytest.raises(ValueError, match="module:attribute"):
        app.load_handler_factory("tests.integration.engine_support")
    with pytest.raises(TypeError, match="not callable"):
        app.load_handler_factory("tests.integration.engine_support:REPO_ROOT")
    with pytest.raises(ImportError):
        app.load_handler_factory("no_such_module_here:build")
