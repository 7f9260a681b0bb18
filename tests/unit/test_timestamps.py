"""RFC 3339 timestamps as every part of srs writes them."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from srs_contracts.timestamps import parse_rfc3339, rfc3339, rfc3339_at

pytestmark = pytest.mark.unit


def test_an_instant_reads_as_rfc3339_writes_it_to_the_millisecond() -> None:
    # Within one second (the second's text is kept), across seconds, days and a year, and
    # fractions that only rounding to the microsecond carries into the next millisecond.
    for seconds in (1796637855.0, 1796637855.0429, 1796637855.9991, 1796637856.5, 1798761599.999, 1798761600.001):
        assert rfc3339_at(seconds) == rfc3339(datetime.fromtimestamp(seconds, UTC)), seconds


def test_now_is_now_in_milliseconds_with_a_z() -> None:
    before = time.time()
    text = rfc3339()
    after = time.time()
    assert text.endswith("Z") and len(text) == len("2026-12-07T11:24:15.123Z")
    assert before - 0.001 <= parse_rfc3339(text).timestamp() <= after
    assert rfc3339(timespec="seconds").endswith("Z") and "." not in rfc3339(timespec="seconds")
