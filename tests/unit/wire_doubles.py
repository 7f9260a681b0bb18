"""Local HTTP servers that answer like the LLM providers, so the real SDK code runs.

A paid model API cannot run here; these doubles speak its wire protocol instead — the
Anthropic Messages API (``POST /v1/messages``, ``tool_use`` content, error bodies,
``retry-after``), OpenAI chat completions (``POST /v1/chat/completions``) and the Bedrock
Converse API (``POST /model/{id}/converse``, reached through boto3's ``endpoint_url``).
Each server replays a script of responses and records every request it received.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent_runtime.providers import build_provider
from agent_runtime.providers.openai_api import OpenAICompatibleProvider
from srs_contracts.agent_config import ModelConfig


@dataclass
class Reply:
    """One scripted HTTP response (``delay`` seconds before answering)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float


class WireServer:
    """A threaded HTTP server on 127.0.0.1 replaying scripted replies (the last one repeats)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        #: What ``GET /props`` answers (llama.cpp's server properties); None: 404, like other servers.
        self.props: dict[str, Any] | None = None
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                server._record(
                    Request("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic())
                )
                reply = server._next()
                if reply.delay:
                    time.sleep(reply.delay)
                payload = json.dumps(reply.body).encode() if reply.body is not None else b""
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

            def do_GET(self) -> None:
                props = server.props if self.path == "/props" else None
                payload = json.dumps(props if props is not None else {"error": "not found"}).encode()
                self.send_response(200 if props is not None else 404)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def _next(self) -> Reply:
        with self._lock:
            if len(self._script) > 1:
                return self._script.popleft()
            if self._script:
                return self._script[0]
        return Reply(500, {"error": "no scripted reply"})

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def start(self) -> WireServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@contextmanager
def wire_server(*replies: Reply) -> Iterator[WireServer]:
    server = WireServer().start()
    server.script(*replies)
    try:
        yield server
    finally:
        server.stop()


# --- Anthropic Messages API --------------------------------------------------------------


def anthropic_message(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "id": "msg_01TEST",
        "type": "message",
        "role": "assistant",
        "model": "claude-test",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": 812,
            "output_tokens": 41,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 790,
        },
    }


def anthropic_tool_use(tool_input: dict[str, Any], name: str = "record_triage") -> dict[str, Any]:
    return anthropic_message(
        [{"type": "tool_use", "id": "toolu_01TEST", "name": name, "input": tool_input}], stop_reason="tool_use"
    )


def anthropic_text(text: str, stop_reason: str = "end_turn") -> dict[str, Any]:
    return anthropic_message([{"type": "text", "text": text}], stop_reason=stop_reason)


def anthropic_error(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}}


# --- OpenAI chat completions ---------------------------------------------------------------


def openai_completion(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-TEST",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "llama3.1",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 700, "completion_tokens": 40, "total_tokens": 740},
    }


def openai_error(message: str, kind: str = "server_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


# --- Bedrock Converse ---------------------------------------------------------------------


def converse_response(content: list[dict[str, Any]], stop_reason: str = "end_turn") -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": 700, "outputTokens": 40, "totalTokens": 740},
        "metrics": {"latencyMs": 321},
    }


def converse_tool_use(tool_input: dict[str, Any], name: str = "record_triage") -> dict[str, Any]:
    return converse_response(
        [{"toolUse": {"toolUseId": "tooluse_TEST", "name": name, "input": tool_input}}], "tool_use"
    )


def bedrock_error(code: str, message: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers of a Bedrock error (rest-json: the type travels in a header)."""
    return {"message": message}, {"x-amzn-errortype": f"{code}:http://internal.amazon.com/coral/com.amazon.bedrock/"}


def openai_compatible(server: WireServer, agent: str, **model: Any) -> OpenAICompatibleProvider:
    """The ``openai`` provider (or ``provider="ollama"``) built from a model config, as an agent
    builds it, pointed at ``server``; ``model`` overrides the config's fields."""
    config = ModelConfig.model_validate(
        {"provider": "openai", "name": "llama3.1", "base_url": f"{server.url}/v1", "timeout_seconds": 5,
         "max_retries": 2, **model}
    )  # fmt: skip
    built = build_provider(config, agent=agent)
    assert isinstance(built, OpenAICompatibleProvider)
    return built
