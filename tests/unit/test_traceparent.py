"""W3C traceparent: inputs keep their trace, get a stable one when they have none."""

from __future__ import annotations

import random

import pytest

from agent_runtime.traceparent import TraceContext, derived_trace, new_span_id, parse_traceparent

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


def _mutations(rng: random.Random) -> list[bytes]:
    """Headers of 55 bytes near the valid one: every byte class at every place, the edge ids."""
    out = [VALID, VALID.replace(b"00-", b"ff-", 1), VALID.replace(b"00-", b"01-", 1), VALID[:-2] + b"00"]
    out.append(b"00-" + b"0" * 32 + VALID[35:])
    out.append(VALID[:36] + b"0" * 16 + VALID[52:])
    alphabet = b"0123456789abcdefABCDEF-xg \t\n\x00\xff."
    for _ in range(3000):
        value = bytearray(VALID)
        for _ in range(rng.randint(1, 3)):
            value[rng.randrange(len(value))] = rng.choice(alphabet)
        out.append(bytes(value))
    return out


def test_the_quick_path_of_a_bytes_header_parses_as_the_pattern_does() -> None:
    # A str takes the pattern's path; bytes of exactly 55 take the quick one when they can.
    rng = random.Random(21)
    for value in _mutations(rng):
        assert parse_traceparent(value) == parse_traceparent(value.decode("ascii", "replace")), value


def test_a_new_span_id_is_16_hex_digits_and_never_zero() -> None:
    ids = {new_span_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 16 and int(i, 16) != 0 for i in ids)
