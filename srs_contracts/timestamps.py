"""RFC 3339 timestamps: the one way every part of srs writes and reads a point in time.

UTC with a ``Z`` (``2026-11-30T13:25:04.123Z``), as Kubernetes and the event schemas
spell it. Conditions and Kubernetes Events use whole seconds (what the API server
itself writes); ticket events and logs use milliseconds.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Literal

#: How much of the fraction of a second to keep; ``auto``: microseconds when there are any.
Precision = Literal["seconds", "milliseconds", "auto"]


def rfc3339(moment: dt.datetime | None = None, *, timespec: Precision = "milliseconds") -> str:
    """``moment`` (default: now, in UTC) as an RFC 3339 timestamp ending in ``Z``."""
    if moment is None:
        if timespec == "milliseconds":
            return rfc3339_at(time.time())
        moment = dt.datetime.now(dt.UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


#: The last whole second written by :func:`rfc3339_at`, and its text (``2026-12-07T11:24:15``).
_last_second: tuple[int, str] = (-1, "")


def rfc3339_at(seconds: float) -> str:
    """``seconds`` since the epoch as an RFC 3339 timestamp in UTC, to the millisecond — the
    text ``rfc3339(datetime.fromtimestamp(seconds, UTC))`` gives (the microsecond rounded as
    ``fromtimestamp`` rounds it, then cut), without a datetime: the second's text is kept
    until the second changes. It stamps every log line and every ticket event."""
    global _last_second
    second = int(seconds)
    micro = round((seconds - second) * 1e6)
    if micro >= 1_000_000:
        second, micro = second + 1, micro - 1_000_000
    known, text = _last_second
    if second != known:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, text)
    return f"{text}.{micro // 1000:03d}Z"


def parse_rfc3339(text: str) -> dt.datetime:
    """The instant an RFC 3339 timestamp (``Z`` or an offset) names; raises ``ValueError``."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
