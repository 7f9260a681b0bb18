"""JSON log lines for the agent process.

One object per line: ``ts, level, logger, msg, agent`` plus ``ticket_id`` and
``trace_id`` while a record is being handled (bound per asyncio task with ``bind``), plus
whatever a call passes in ``extra=``. Callers pass identifiers and error classes only;
payload bodies and secrets never go into a log call.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import IO, Any, Final

from srs_contracts.timestamps import rfc3339

_context: ContextVar[Mapping[str, object] | None] = ContextVar("srs_log_context", default=None)

#: Attributes every ``LogRecord`` has; anything else on a record came from ``extra=``.
_STANDARD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def bind(**fields: object) -> None:
    """Add fields to every log line of the current asyncio task (and tasks it starts)."""
    _context.set({**(_context.get() or {}), **fields})


def replace(fields: Mapping[str, object]) -> None:
    """Make ``fields`` the only fields bound in the current context (a new record starts)."""
    _context.set(fields)


def bound() -> Mapping[str, object]:
    """The fields bound in the current context."""
    return _context.get() or {}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object."""

    def __init__(self, agent: str | None = None) -> None:
        super().__init__()
        self._agent = agent

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": rfc3339(datetime.fromtimestamp(record.created, UTC)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self._agent is not None:
            line["agent"] = self._agent
        for name, value in bound().items():
            if value is not None:
                # Record keys are bound as bytes and decoded only here, when a line is written.
                line[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        for name, value in vars(record).items():
            if name not in _STANDARD_ATTRIBUTES and value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exception"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return _ENCODER.encode(line)


#: What ``json.dumps(line, default=str)`` writes, without building an encoder for every line.
_ENCODER: Final = json.JSONEncoder(default=str)


def configure(agent: str, level: str | int = "INFO", stream: IO[str] | None = None) -> None:
    """Send every log line of the process, as JSON, to ``stream`` (default stderr)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(agent))
    # A JSON line holds none of what a LogRecord finds out for every call by default: the
    # caller's file and line (a walk up the stack), its thread and process. Switched off as
    # the logging HOWTO's "Optimization" section says; it was most of the ~30 µs a
    # "ticket triaged" line cost per ticket.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Client libraries log request details (URLs, sometimes bodies) at debug level.
    for noisy in ("httpx", "httpcore", "botocore", "urllib3", "anthropic", "openai"):
        logging.getLogger(noisy).setLevel(max(logging.getLogger().level, logging.INFO))
