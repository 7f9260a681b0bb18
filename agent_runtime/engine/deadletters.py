"""Dead letters: a record that failed for good goes to the dead-letter topic, never lost.

Until Kafka has acknowledged the dead letter, the record's offset stays open: a dead
letter that cannot be written is retried with backoff (cut to fit when the topic says it
is too large), and after ``dead_letter_attempts`` failures the engine reports not ready
(:attr:`DeadLetterWriter.stuck`) while it keeps trying. The envelope itself is built by
:mod:`~agent_runtime.engine.deadletter`.

Exactly-once (``hold`` given): the dead letter is the record's one output and goes out
with the transaction that commits the record's offset; when a transaction is refused,
:meth:`DeadLetterWriter.redo` decides what the record's outputs become.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Sequence
from typing import Final

from agent_runtime import metrics
from agent_runtime.engine.deadletter import (
    MIN_DEAD_LETTER_BYTES,
    ErrorClass,
    build_dead_letter,
    error_class_of,
    record_size,
)
from agent_runtime.engine.producer import OutputSink, permanent_error_class
from agent_runtime.engine.settings import EngineSettings
from agent_runtime.engine.work import State, Work
from agent_runtime.records import OutputRecord
from agent_runtime.traceparent import TRACEPARENT
from srs_contracts.backoff import Backoff

log = logging.getLogger(__name__)

#: Error messages go to logs; keep them short (they may echo input).
_MAX_LOGGED_ERROR: Final = 200


class DeadLetterWriter:
    """Writes the dead letters of one dispatcher; ``done`` completes a record once Kafka has its dead letter."""

    def __init__(
        self,
        settings: EngineSettings,
        sink: OutputSink,
        done: Callable[[Work], None],
        hold: Callable[[Work, Sequence[OutputRecord]], None] | None = None,
    ) -> None:
        self._settings = settings
        self._sink = sink
        # The same schedule as the dispatcher's retries, from the same settings.
        self._backoff = Backoff(settings.initial_backoff_s, settings.max_backoff_s)
        self._done = done
        self._hold = hold
        #: Dead letters that failed ``dead_letter_attempts`` times and are still not written.
        self.stuck = 0
        self._stuck_gauge = metrics.DEAD_LETTERS_STUCK.labels(settings.agent)
        #: The largest dead letter the topic takes (lowered when Kafka says it is too large).
        self.max_bytes = settings.dead_letter_max_bytes

    def write(self, work: Work, error_class: ErrorClass, message: str, exception: str) -> None:
        """Write the input to the dead-letter topic; until Kafka has it, the offset stays open,
        so a dead letter that cannot be written never loses the input."""
        if work.state is State.ABANDONED:
            return
        work.dead_letter = self._build(work, error_class, message, exception)
        if self._hold is not None:
            self._hold(work, (work.dead_letter,))
            return
        self._send(work)

    def _build(self, work: Work, error_class: ErrorClass, message: str, exception: str) -> OutputRecord:
        return build_dead_letter(
            work.record,
            topic=self._settings.dead_letter_topic,
            agent=self._settings.agent,
            error_class=error_class,
            message=message,
            exception=exception,
            attempts=work.attempts,
            trace_id=work.span.trace_id,
            max_bytes=self.max_bytes,
        )

    def redo(self, work: Work, error: Exception) -> None:
        """Exactly-once: Kafka refused an output of held ``work`` (its transaction was aborted).

        An output Kafka can never take makes the record a dead letter; a dead letter too
        large for its topic is cut; anything else is retried as it is by the next transaction.
        """
        permanent = permanent_error_class(error)
        if work.dead_letter is None:
            metrics.FAILED.labels(self._settings.agent, permanent or type(error).__name__).inc()
            if permanent is not None:
                reason = type(error).__name__
                log.warning("Kafka refused an output for good; dead-lettering the input", extra=self._fields(work, {
                    "error": reason, "detail": str(error)[:_MAX_LOGGED_ERROR],
                }))  # fmt: skip
                work.dead_letter = self._build(work, error_class_of(permanent), f"{reason}: {error}", reason)
                work.outputs = (work.dead_letter,)
            return
        metrics.FAILED.labels(self._settings.agent, "dead_letter_delivery").inc()
        size = record_size(work.dead_letter)
        if permanent == ErrorClass.TOO_LARGE and size > MIN_DEAD_LETTER_BYTES:
            work.dead_letter = self._cut(work, size)
            work.outputs = (work.dead_letter,)
            return
        self._count_failure(work, error)

    def _count_failure(self, work: Work, error: Exception) -> None:
        """One more failed write of ``work``'s dead letter; after ``dead_letter_attempts``, stuck."""
        assert work.dead_letter is not None
        work.dead_letter_failures += 1
        if work.dead_letter_failures >= self._settings.dead_letter_attempts and not work.stuck:
            # Nothing is lost (the offset stays), but this partition is stuck behind it: say so.
            work.stuck = True
            self.stuck += 1
            self._stuck_gauge.set(self.stuck)
            log.error("a dead letter cannot be written; not ready until it is", extra=self._fields(work, {
                "error": type(error).__name__, "detail": str(error)[:_MAX_LOGGED_ERROR],
                "attempts": work.dead_letter_failures, "dead_letter_topic": work.dead_letter.topic,
            }))  # fmt: skip

    def committed(self, work: Work) -> None:
        """Exactly-once: the transaction holding ``work``'s outputs committed."""
        if work.dead_letter is not None:
            self.unstick(work)
            self._written(work)

    def _written(self, work: Work) -> None:
        assert work.dead_letter is not None
        error_class = dict(work.dead_letter.headers).get("srs-error-class", b"").decode()
        metrics.DEAD_LETTERED.labels(self._settings.agent, error_class).inc()
        log.warning("input dead-lettered", extra=self._fields(work, {
            "error_class": error_class, "attempts": work.attempts,
        }))  # fmt: skip

    def _cut(self, work: Work, size: int) -> OutputRecord:
        """The dead letter again, cut to half its size (the topic takes less than we thought)."""
        assert work.dead_letter is not None
        self.max_bytes = max(MIN_DEAD_LETTER_BYTES, min(self.max_bytes, size // 2))
        log.warning("dead letter too large for its topic; cutting its payload copy", extra=self._fields(work, {
            "bytes": size, "max_bytes": self.max_bytes,
        }))  # fmt: skip
        envelope = json.loads(work.dead_letter.value)
        return self._build(
            work, error_class_of(envelope["error"]["class"]), envelope["error"]["message"],
            envelope["error"].get("exception", ""),
        )  # fmt: skip

    def _send(self, work: Work) -> None:
        work.timer = None
        if work.state is State.ABANDONED:
            return
        assert work.dead_letter is not None
        work.move_to(State.DEAD_LETTERING)
        record = work.dead_letter
        try:
            self._sink.produce(
                record.topic, record.key, record.value, [*record.headers, (TRACEPARENT, work.span.header())],
                functools.partial(self._delivered, work),
            )  # fmt: skip
        except Exception as e:  # noqa: BLE001 - a full queue or a broken topic: try again later
            self._delivered(work, e)

    def _delivered(self, work: Work, error: Exception | None) -> None:
        if work.state is not State.DEAD_LETTERING:
            return  # abandoned meanwhile
        assert work.dead_letter is not None
        if error is None:
            self.unstick(work)
            self._written(work)
            self._done(work)
            return
        metrics.FAILED.labels(self._settings.agent, "dead_letter_delivery").inc()
        if work.lane.partition.closing:
            work.move_to(State.ABANDONED)
            return
        size = record_size(work.dead_letter)
        if permanent_error_class(error) == ErrorClass.TOO_LARGE and size > MIN_DEAD_LETTER_BYTES:
            # The topic takes less than we thought (or its limit was lowered): cut and retry now.
            work.dead_letter = self._cut(work, size)
            self._send(work)
            return
        self._count_failure(work, error)
        delay = self._backoff.delay(work.dead_letter_failures)
        log.error("writing the dead letter failed; input kept uncommitted, retrying", extra=self._fields(work, {
            "error": type(error).__name__, "detail": str(error)[:_MAX_LOGGED_ERROR], "retry_in_s": round(delay, 3),
        }))  # fmt: skip
        work.move_to(State.DEAD_LETTER_WAIT)
        work.timer = asyncio.get_running_loop().call_later(delay, self._send, work)

    def unstick(self, work: Work) -> None:
        """``work`` no longer counts as stuck (written, or abandoned)."""
        if work.stuck:
            work.stuck = False
            self.stuck -= 1
            self._stuck_gauge.set(self.stuck)

    def _fields(self, work: Work, fields: dict[str, object]) -> dict[str, object]:
        return work.log_fields(self._settings.key_log_field, fields)
