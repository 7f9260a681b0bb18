"""JSON log lines: one object per line, record context included, keys decoded only when written."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
from collections.abc import Iterator

import pytest

from agent_runtime import logs

pytestmark = pytest.mark.unit


@pytest.fixture(params=[False, True], ids=["stream-handler", "writer-thread"])
def lines(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    # configure() also switches off what JSON lines do not use (the caller's file and line, thread, process).
    flags = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    logs.configure("billing", "DEBUG", stream, writer_thread=request.param)
    try:
        yield stream
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = flags


@contextlib.contextmanager
def only_ours() -> Iterator[None]:
    """Without the handlers pytest adds to the root logger for its reports (it adds them
    when the test's call starts): what a line meets in ``srs agent``."""
    root = logging.getLogger()
    saved = root.handlers
    root.handlers = [h for h in saved if isinstance(h.formatter, logs.JsonFormatter)]
    try:
        yield
    finally:
        root.handlers = saved


def written(stream: io.StringIO) -> list[dict[str, object]]:
    """This test's lines (asyncio logs its own at debug level), once every handler wrote what it holds."""
    for handler in logging.getLogger().handlers:
        handler.flush()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["logger"] == "srs.test"]


def test_a_line_carries_time_level_logger_message_agent_and_extras(lines: io.StringIO) -> None:
    logging.getLogger("srs.test").warning("partition %s paused", 3, extra={"pending": 12})
    (line,) = written(lines)
    assert line["level"] == "warning"
    assert line["logger"] == "srs.test"
    assert line["msg"] == "partition 3 paused"
    assert line["agent"] == "billing"
    assert line["pending"] == 12
    assert str(line["ts"]).endswith("Z")


def test_a_line_is_what_json_writes(lines: io.StringIO) -> None:
    log = logging.getLogger("srs.test")
    log.info("scores", extra={"tiny": 1e-07, "ratio": 0.912, "nested": {"a": [1, None, True]}, "who": "Zoë"})
    log.info("plain", extra={"count": 3})
    parsed = written(lines)  # flushes
    raw = [r for r in lines.getvalue().splitlines() if json.loads(r)["logger"] == "srs.test"]
    # Exactly as json.dumps writes it (", " and ": ", non-ASCII escaped): readers match the text.
    assert raw == [json.dumps(line) for line in parsed]
    scores, plain = parsed
    assert (scores["tiny"], scores["ratio"], scores["nested"]) == (1e-07, 0.912, {"a": [1, None, True]})
    assert scores["who"] == "Zoë"
    assert plain["count"] == 3


def test_a_per_record_line_is_the_line_logging_writes(lines: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1796653524.123456)  # both read the clock
    log = logging.getLogger("srs.test")
    fields = {"type": "billing", "confidence": 0.997, "stage": None, "who": "Zoë", "nested": {"a": [1e-07]}}

    async def handle() -> None:
        logs.replace({"trace_id": "a" * 32, "ticket_id": b"T-\xc3\xa9"})
        log.info("ticket triaged", extra=fields)
        logs.info(log, "ticket triaged", fields)

    with only_ours():
        asyncio.run(handle())
    written(lines)  # flushes
    through_logging, direct = [r for r in lines.getvalue().splitlines() if json.loads(r)["logger"] == "srs.test"]
    assert direct == through_logging
    assert json.loads(direct)["ticket_id"] == "T-é"
    assert "stage" not in json.loads(direct)


def test_a_per_record_line_reaches_every_handler_and_filter_on_its_way(lines: io.StringIO) -> None:
    with only_ours():
        _log_past_handlers_and_filters(logging.getLogger("srs.test"))
    assert [(line["msg"], line["count"]) for line in written(lines)] == [("heard", 1), ("written", 4)]


def _log_past_handlers_and_filters(log: logging.Logger) -> None:
    seen: list[logging.LogRecord] = []

    class Listening(logging.Handler):  # what pytest's caplog adds to the root logger
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    listening = Listening()
    logging.getLogger().addHandler(listening)
    try:
        logs.info(log, "heard", {"count": 1})
    finally:
        logging.getLogger().removeHandler(listening)
    assert [(r.getMessage(), getattr(r, "count", None)) for r in seen] == [("heard", 1)]

    def refuse(record: logging.LogRecord) -> bool:
        return record.getMessage() != "filtered"

    log.addFilter(refuse)
    try:
        logs.info(log, "filtered", {"count": 2})
    finally:
        log.removeFilter(refuse)
    log.setLevel(logging.WARNING)
    try:
        logs.info(log, "below the level", {"count": 3})
    finally:
        log.setLevel(logging.NOTSET)
    logs.info(log, "written", {"count": 4})


def test_record_context_is_per_task_and_keys_are_decoded(lines: io.StringIO) -> None:
    log = logging.getLogger("srs.test")

    async def handle(ticket: bytes, trace: str) -> None:
        logs.replace({"trace_id": trace, "ticket_id": ticket})
        await asyncio.sleep(0)  # the other task binds its own record meanwhile
        log.info("handled")

    async def main() -> None:
        await asyncio.gather(handle(b"T-1", "a" * 32), handle(b"T-2", "b" * 32))

    asyncio.run(main())
    log.info("outside")
    by_ticket = {line.get("ticket_id"): line for line in written(lines)}
    assert by_ticket["T-1"]["trace_id"] == "a" * 32
    assert by_ticket["T-2"]["trace_id"] == "b" * 32
    assert "trace_id" not in by_ticket[None]


def test_bind_adds_to_what_is_bound(lines: io.StringIO) -> None:
    async def main() -> None:
        logs.replace({"trace_id": "c" * 32})
        logs.bind(ticket_id="T-9")
        logging.getLogger("srs.test").info("triaged")

    asyncio.run(main())
    (line,) = written(lines)
    assert (line["trace_id"], line["ticket_id"]) == ("c" * 32, "T-9")


def test_exceptions_name_their_type(lines: io.StringIO) -> None:
    try:
        raise TimeoutError("provider took too long")
    except TimeoutError:
        logging.getLogger("srs.test").exception("call failed")
    (line,) = written(lines)
    assert line["exception"] == "TimeoutError"
    assert "Traceback" in str(line["traceback"])


def test_extras_json_cannot_hold_are_written_as_text_and_odd_strings_still_make_a_line(lines: io.StringIO) -> None:
    import dataclasses
    import datetime

    @dataclasses.dataclass
    class Where:
        partition: int

    moment = datetime.datetime(2026, 12, 6, 16, 45, tzinfo=datetime.UTC)
    log = logging.getLogger("srs.test")
    log.warning("odd", extra={"at": moment, "where": Where(3), "big": 2**70, "half": "\ud800", "customer": "Zoë"})
    (line,) = written(lines)
    assert (line["at"], line["where"]) == (str(moment), str(Where(3)))
    assert (line["big"], line["half"], line["customer"]) == (2**70, "\ud800", "Zoë")


def test_the_writer_thread_keeps_the_order_and_a_warning_is_written_when_the_call_returns() -> None:
    stream = io.StringIO()
    writer = logs.LineWriter(stream)
    log = logging.getLogger("srs.test.writer")
    log.addHandler(writer)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        for n in range(2000):
            log.info("line %d", n)
        log.warning("the last")  # no flush: a warning is written before the call returns
        assert stream.getvalue().splitlines() == [*(f"line {n}" for n in range(2000)), "the last"]
    finally:
        log.removeHandler(writer)
        log.propagate = True
        log.setLevel(logging.NOTSET)
        writer.close()


def test_an_info_line_is_written_by_the_writer_thread_without_a_flush() -> None:
    stream = io.StringIO()
    writer = logs.LineWriter(stream)
    try:
        writer.handle(logging.makeLogRecord({"msg": "triaged", "levelno": logging.INFO}))
        deadline = time.monotonic() + 10
        while stream.getvalue() != "triaged\n":
            assert time.monotonic() < deadline, "the writer thread never wrote the line"
            time.sleep(0.001)
    finally:
        writer.close()


def test_info_lines_that_come_one_at_a_time_are_written_together() -> None:
    class Counting(io.StringIO):
        writes = 0

        def write(self, text: str) -> int:
            self.writes += 1
            return super().write(text)

    stream = Counting()
    writer = logs.LineWriter(stream)
    try:
        started = time.monotonic()
        for n in range(100):  # a ticket every millisecond: the writer would wake for each
            writer.handle(logging.makeLogRecord({"msg": f"line {n}", "levelno": logging.INFO}))
            time.sleep(0.001)
        elapsed = time.monotonic() - started
        deadline = time.monotonic() + 10
        while stream.getvalue().count("\n") < 100:
            assert time.monotonic() < deadline, "the writer thread never wrote the lines"
            time.sleep(0.01)
        assert stream.getvalue().splitlines() == [f"line {n}" for n in range(100)]
        # One write per BATCH_S while the lines came (however long the sleeps took), and the last.
        assert stream.writes <= elapsed / logs.LineWriter.BATCH_S + 3, (stream.writes, elapsed)
    finally:
        writer.close()


def test_close_writes_what_is_queued_and_a_line_after_it_is_still_written() -> None:
    stream = io.StringIO()
    writer = logs.LineWriter(stream)
    for n in range(100):
        writer.handle(logging.makeLogRecord({"msg": f"line {n}", "levelno": logging.INFO}))
    writer.close()  # what logging.shutdown() does at exit
    writer.handle(logging.makeLogRecord({"msg": "late", "levelno": logging.INFO}))
    assert stream.getvalue().splitlines() == [*(f"line {n}" for n in range(100)), "late"]


def test_a_stream_that_fails_never_raises_into_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(io.StringIO):
        def write(self, _text: str) -> int:
            raise OSError("disk full")

    monkeypatch.setattr(logging, "raiseExceptions", False)
    writer = logs.LineWriter(Broken())
    try:
        writer.handle(logging.makeLogRecord({"msg": "lost", "levelno": logging.ERROR}))  # flushes: no raise
    finally:
        writer.close()
