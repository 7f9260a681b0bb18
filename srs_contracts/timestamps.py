"""RFC 3339 timestamps: the one way every part of srs writes and reads a point in time.

UTC with a ``Z`` (``2026-11-30T13:25:04.123Z``), as Kubernetes and the event schemas
spell it. Conditions and Kubernetes Events use whole seconds (what the API server
itself writes); ticket events and logs use milliseconds.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

#: How much of the fraction of a second to keep; ``auto``: microseconds when there are any.
Precision = Literal["seconds", "milliseconds", "auto"]


def rfc3339(moment: dt.datetime | None = None, *, timespec: Precision = "milliseconds") -> str:
    """``moment`` (default: now, in UTC) as an RFC 3339 timestamp ending in ``Z``."""
    moment = dt.datetime.now(dt.UTC) if moment is None else moment
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_rfc3339(text: str) -> dt.datetime:
    """The instant an RFC 3339 timestamp (``Z`` or an offset) names; raises ``ValueError``."""
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
