"""JSON log lines for the agent process.

One object per line: ``ts, level, logger, msg, agent`` plus ``ticket_id`` and
``trace_id`` while a record is being handled (bound per asyncio task with ``bind``), plus
whatever a call passes in ``extra=``. Callers pass identifiers and error classes only;
payload bodies and secrets never go into a log call.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from typing import IO, Any, Final

from srs_contracts.timestamps import rfc3339_at

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
        extras = ((name, value) for name, value in vars(record).items() if name not in _STANDARD_ATTRIBUTES)
        exception = None
        if record.exc_info and record.exc_info[0] is not None:
            exception = (record.exc_info[0].__name__, self.formatException(record.exc_info))
        return self.line(record.created, record.levelname.lower(), record.name, record.getMessage(), extras, exception)

    def line(
        self,
        created: float,
        level: str,
        logger: str,
        message: str,
        extras: Iterable[tuple[str, object]],
        exception: tuple[str, str] | None = None,
    ) -> str:
        """The line of one log call (what :meth:`format` and :func:`info` write)."""
        line: dict[str, Any] = {"ts": rfc3339_at(created), "level": level, "logger": logger, "msg": message}
        if self._agent is not None:
            line["agent"] = self._agent
        for name, value in bound().items():
            if value is not None:
                # Record keys are bound as bytes and decoded only here, when a line is written.
                line[name] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        for name, value in extras:
            if value is not None:
                line[name] = value
        if exception is not None:
            line["exception"], line["traceback"] = exception
        return _ENCODER.encode(line)


#: What ``json.dumps(line, default=str)`` writes, without building an encoder for every line.
_ENCODER: Final = json.JSONEncoder(default=str)


#: "Nothing taken from the queue yet" (``None`` there means "stop").
_NOTHING: Final = object()


class LineWriter(logging.Handler):
    """Writes formatted lines to a stream from a thread of its own, in batches.

    A line is formatted by the caller and queued; the writer thread takes what is queued
    every ``BATCH_S`` and writes it in one ``write`` and ``flush``. Written to stderr by the
    logging thread itself, each line cost the agent a write(2) and the GIL handed to the
    Kafka client's threads and back (~30 µs of a triaged ticket's ~300, measured in
    ``benchmarks/runtime_benchmark.py``); a writer woken for every line still cost that
    wake-up and GIL hand-off per line. Lines keep their order; an INFO line reaches the
    stream within ``BATCH_S``; a warning or an error has reached it when the call returns
    (``flush``, which wakes the writer at once), and so has everything at
    ``logging.shutdown()`` (at exit, and in the watchdog before it ends the process). A
    SIGKILL loses only what the writer had not yet written (at most ``BATCH_S`` of lines).
    """

    #: How long the writer gathers INFO lines before it writes them.
    BATCH_S: Final = 0.05
    #: How long ``flush`` waits for the writer before it writes what is left itself.
    FLUSH_TIMEOUT_S: Final = 5.0

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self.stream = stream
        self._lines: queue.SimpleQueue[str | threading.Event | None] = queue.SimpleQueue()
        #: Set when something waits for the writer (a flush, a stop): it writes at once.
        self._urgent = threading.Event()
        self._writer = threading.Thread(target=self._write_forever, name="srs-log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 - logging's own contract: a bad record never raises
            self.handleError(record)
            return
        self.queue(line, urgent=record.levelno >= logging.WARNING)

    def queue(self, line: str, *, urgent: bool = False) -> None:
        """Hand a formatted line to the writer; ``urgent`` (a warning or worse): written when
        this returns."""
        self._lines.put(line)
        if urgent or not self._writer.is_alive():
            self.flush()

    def flush(self) -> None:
        """Return once every line queued so far is written."""
        if self._writer.is_alive():
            written = threading.Event()
            self._lines.put(written)
            self._urgent.set()
            if written.wait(self.FLUSH_TIMEOUT_S):
                return
        self._write_queued()  # no writer (stopped, or stuck): write what is left here

    def close(self) -> None:
        if self._writer.is_alive():
            self._lines.put(None)
            self._urgent.set()
            self._writer.join(self.FLUSH_TIMEOUT_S)
        self._write_queued()  # what came after the stop, if anything
        super().close()

    def _write_forever(self) -> None:
        while True:
            first = self._lines.get()
            if isinstance(first, str):
                # Gather the lines that follow (one write, one wake-up for all of them),
                # unless a flush or a stop is waiting.
                self._urgent.wait(self.BATCH_S)
            self._urgent.clear()
            if not self._write_queued(first):
                return

    def _write_queued(self, first: object = _NOTHING) -> bool:
        """Write ``first`` and everything queued after it in one write, then wake the flushes
        waiting for them; False when a stop (``None``) was among them."""
        lines: list[str] = []
        markers: list[threading.Event] = []
        going_on = True
        item = first
        while True:
            if item is None:
                going_on = False
            elif isinstance(item, str):
                lines.append(item)
            elif isinstance(item, threading.Event):
                markers.append(item)
            try:
                item = self._lines.get_nowait()
            except queue.Empty:
                break
        self._write(lines)
        for marker in markers:
            marker.set()
        return going_on

    def _write(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except Exception:  # noqa: BLE001 - as StreamHandler.handleError: report, never raise
            if logging.raiseExceptions and sys.stderr is not None:
                traceback.print_exc(file=sys.stderr)


#: The writer :func:`configure` installed, when it writes JSON lines from a thread (see :func:`info`).
_installed: LineWriter | None = None


def info(logger: logging.Logger, message: str, fields: Mapping[str, object]) -> None:
    """``logger.info(message, extra=fields)``: the same line, for lines written per record.

    When the line can only reach the writer :func:`configure` installed — the logger
    enabled for INFO, no filter on the logger or the writer, no other handler on the way
    (pytest's ``caplog`` adds one) — it is formatted and queued at once, without a
    ``LogRecord`` and the handler chain: about half of what a "ticket triaged" line cost
    (measured in ``benchmarks/README.md``). Otherwise it goes through ``logging``.
    """
    writer = _installed
    if (
        writer is None
        or not logger.isEnabledFor(logging.INFO)
        or not _straight_to(writer, logger)
        or not _STANDARD_ATTRIBUTES.isdisjoint(fields)  # logging refuses these (KeyError)
    ):
        logger.info(message, extra=dict(fields))
        return
    formatter = writer.formatter
    assert isinstance(formatter, JsonFormatter)
    try:
        line = formatter.line(time.time(), "info", logger.name, message, fields.items())
    except Exception:  # noqa: BLE001 - as the handler's own contract: a bad line never raises
        logger.info(message, extra=dict(fields))  # logging reports it (handleError)
        return
    writer.queue(line)


def _straight_to(writer: LineWriter, logger: logging.Logger) -> bool:
    """Whether an INFO record of ``logger`` would reach ``writer`` and no other handler:
    what ``Logger.handle`` and ``callHandlers`` would do with it, checked without one."""
    if logger.disabled or logger.filters or writer.filters or writer.level > logging.INFO:
        return False
    node: logging.Logger | None = logger
    while node is not None:
        if node.handlers:
            return node is logging.root and len(node.handlers) == 1 and node.handlers[0] is writer
        if not node.propagate:
            return False  # logging's last resort would write it
        node = node.parent
    return False


def configure(
    agent: str, level: str | int = "INFO", stream: IO[str] | None = None, *, writer_thread: bool = False
) -> None:
    """Send every log line of the process, as JSON, to ``stream`` (default stderr); with
    ``writer_thread``, written by a :class:`LineWriter` (what ``srs agent`` does)."""
    global _installed
    target = stream or sys.stderr
    handler: logging.Handler = LineWriter(target) if writer_thread else logging.StreamHandler(target)
    handler.setFormatter(JsonFormatter(agent))
    _installed = handler if isinstance(handler, LineWriter) else None
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
