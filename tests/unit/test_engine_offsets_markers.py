"""The commit position passes transaction markers the consumer skipped (``OffsetTracker.skip_to``)."""

from __future__ import annotations

import pytest

from agent_runtime.engine.offsets import OffsetTracker

pytestmark = pytest.mark.unit


def test_a_marker_after_the_last_record_is_committed_past_once_the_record_is_done() -> None:
    tracker = OffsetTracker()
    tracker.track(0)
    tracker.track(1)  # records 0 and 1, then the transaction's marker at 2: position 3
    assert tracker.skip_to(3) is False  # record 1 is not done yet
    assert tracker.complete(0) is True
    assert tracker.committable == 1
    assert tracker.complete(1) is True
    assert tracker.committable == 3


def test_a_skip_reported_once_everything_is_done_moves_the_position_at_once() -> None:
    tracker = OffsetTracker()
    tracker.track(4)
    tracker.complete(4)
    assert tracker.committable == 5
    assert tracker.skip_to(5) is False  # nothing skipped
    assert tracker.skip_to(7) is True  # a marker and an aborted record
    assert tracker.committable == 7


def test_a_record_after_the_skip_position_takes_over() -> None:
    tracker = OffsetTracker()
    tracker.track(0)
    tracker.skip_to(2)
    tracker.track(3)  # a record beyond the reported position: the skip is stale
    tracker.complete(0)
    assert tracker.committable == 1
    tracker.complete(3)
    assert tracker.committable == 4


def test_nothing_is_skipped_before_a_record_was_tracked() -> None:
    # Where this owner started is the committed offset: a position beyond it with no record
    # seen says nothing this process may commit.
    tracker = OffsetTracker()
    assert tracker.skip_to(10) is False
    assert tracker.committable is None


def test_the_position_never_moves_back() -> None:
    tracker = OffsetTracker()
    tracker.track(0)
    tracker.complete(0)
    tracker.skip_to(5)
    assert tracker.committable == 5
    assert tracker.skip_to(3) is False
    assert tracker.committable == 5
