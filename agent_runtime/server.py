"""The agent's HTTP endpoint: ``/healthz`` (alive), ``/readyz`` (consuming), ``/metrics``.

A small threaded HTTP server, so probes and scrapes answer even while the event loop is
busy — and ``/healthz`` can report that the loop is stuck.
"""

from __future__ import annotations

import logging
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


class Probed(Protocol):
    """What the probes ask (read from the server's threads)."""

    @property
    def healthy(self) -> bool: ...

    @property
    def ready(self) -> bool: ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A request that failed is a JSON log line, not ``socketserver``'s traceback printed to
        stderr (which broke the one-JSON-object-per-line log). A client that went away — a probe
        or a scrape whose timeout ran out on a busy node — is no fault of the agent's."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("an HTTP client went away mid-request", extra={"error": type(error).__name__})
            return
        log.warning("serving an HTTP request failed", exc_info=True)


class HealthServer:
    """Serves the probes of ``target`` and the metrics of ``registry`` on ``host:port``."""

    def __init__(self, target: Probed, registry: CollectorRegistry, port: int, host: str = "0.0.0.0") -> None:  # noqa: S104 - probes come from the kubelet
        self._target = target
        self._registry = registry
        self._server = _Server((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/healthz":
                    self._answer(server._target.healthy, "ok", "unhealthy")
                elif path == "/readyz":
                    self._answer(server._target.ready, "ready", "not ready")
                elif path == "/metrics":
                    self._send(200, generate_latest(server._registry), CONTENT_TYPE_LATEST)
                else:
                    self._send(404, b"not found\n", "text/plain")

            def _answer(self, ok: bool, yes: str, no: str) -> None:
                self._send(200 if ok else 503, f"{yes if ok else no}\n".encode(), "text/plain")

            def _send(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # probes every few seconds would drown the agent's own log lines

        return Handler

    def start(self) -> HealthServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="srs-http", daemon=True)
        self._thread.start()
        log.info("serving /healthz /readyz /metrics", extra={"port": self.port})
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
