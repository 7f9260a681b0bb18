"""librdkafka's log, through Python logging (JSON like every other line) without the flood.

Without a ``logger`` in its config, librdkafka prints its own lines to stderr
(``%6|…|BGQUEUE|…``), which breaks a log that is JSON line by line. Every Kafka client of
the agents and the operator is handed :func:`librdkafka_logger`. While Kafka is down
librdkafka reports every reconnect attempt, several per second; each distinct message
passes once per minute.
"""

from __future__ import annotations

import logging
import time


class _RepeatFilter(logging.Filter):
    """Let each distinct librdkafka message through once per ``interval``: while Kafka is
    down it reports every reconnect attempt, several per second."""

    def __init__(self, interval: float = 60.0) -> None:
        super().__init__()
        self._interval = interval
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = "".join(ch for ch in record.getMessage() if not ch.isdigit())
        now = time.monotonic()
        if now - self._last.get(key, -self._interval) < self._interval:
            return False
        if len(self._last) > 1000:
            self._last.clear()
        self._last[key] = now
        return True


def librdkafka_logger(name: str) -> logging.Logger:
    """The logger ``name`` for a client's ``logger`` setting, repeats filtered."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, _RepeatFilter) for f in logger.filters):
        logger.addFilter(_RepeatFilter())
    return logger
