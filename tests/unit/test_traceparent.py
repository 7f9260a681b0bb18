"""W3C traceparent: inputs keep their trace, get a stable one when they have none."""

from __future__ import annotations

import pytest

from agent_runtime.traceparent import TraceContext, derived_trace, parse_traceparent

pytestmark = pytest.mark.unit

VALID = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_parsed() -> None:
    assert parse_traceparent(VALID) == TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")


@pytest.mark.parametrize(
    "value",
    [
        None,
        b"",
        b"garbage",
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero span id
        b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has no extra fields
        b"\xff\xfe",
    ],
)
def test_invalid_traceparents_are_ignored(value: bytes | None) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_with_extra_fields_is_accepted() -> None:
    parsed = parse_traceparent(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
    assert parsed is not None
    assert parsed.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_child_span_keeps_the_trace_and_gets_a_new_span_id() -> None:
    parent = parse_traceparent(VALID)
    assert parent is not None
    child = parent.child()
    assert child.trace_id == parent.trace_id
    assert child.span_id != parent.span_id
    assert parse_traceparent(child.header()) == child


def test_a_derived_trace_is_stable_per_record_and_valid() -> None:
    first = derived_trace("ticket.events", 3, 42)
    assert first == derived_trace("ticket.events", 3, 42)
    assert first.trace_id != derived_trace("ticket.events", 3, 43).trace_id
    assert parse_traceparent(first.header()) == first
