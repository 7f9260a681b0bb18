"""OffsetTracker: only the contiguous completed prefix of a partition is committable."""

from __future__ import annotations

import random

import pytest

from agent_runtime.engine.offsets import OffsetTracker

pytestmark = pytest.mark.unit


def tracker_with(*offsets: int) -> OffsetTracker:
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.track(offset)
    return tracker


def test_nothing_is_committable_before_anything_completes() -> None:
    tracker = tracker_with(0, 1, 2)
    assert tracker.committable is None
    assert tracker.pending == 3


def test_completing_in_order_moves_the_position_past_each_offset() -> None:
    tracker = tracker_with(5, 6, 7)
    assert tracker.complete(5)
    assert tracker.committable == 6
    assert tracker.complete(6)
    assert tracker.complete(7)
    assert tracker.committable == 8
    assert tracker.pending == 0


def test_a_later_offset_completing_first_does_not_move_the_position() -> None:
    tracker = tracker_with(0, 1, 2, 3)
    assert not tracker.complete(2)
    assert not tracker.complete(3)
    assert tracker.committable is None
    assert tracker.pending == 2
    assert tracker.complete(0)
    assert tracker.committable == 1  # 1 still runs: 2 and 3 must not be committed yet
    assert tracker.complete(1)
    assert tracker.committable == 4


def test_gaps_between_offsets_commit_just_past_the_last_processed_one() -> None:
    # Compacted topics and transaction markers leave holes in the offsets.
    tracker = tracker_with(10, 14, 20)
    tracker.complete(14)
    tracker.complete(10)
    assert tracker.committable == 15
    tracker.complete(20)
    assert tracker.committable == 21


def test_an_offset_cannot_complete_twice_or_without_being_tracked() -> None:
    tracker = tracker_with(0, 1)
    tracker.complete(1)
    with pytest.raises(ValueError, match="not outstanding"):
        tracker.complete(1)
    with pytest.raises(ValueError, match="not outstanding"):
        tracker.complete(7)
    tracker.complete(0)
    with pytest.raises(ValueError, match="not outstanding"):
        tracker.complete(0)


def test_offsets_must_be_tracked_in_increasing_order() -> None:
    tracker = tracker_with(3)
    with pytest.raises(ValueError, match="must increase"):
        tracker.track(3)
    with pytest.raises(ValueError, match="must increase"):
        tracker.track(2)


def test_random_completion_order_never_commits_an_unfinished_offset() -> None:
    rng = random.Random(4)
    offsets = sorted(rng.sample(range(10_000), 500))
    tracker = tracker_with(*offsets)
    done: set[int] = set()
    for offset in rng.sample(offsets, len(offsets)):
        tracker.complete(offset)
        done.add(offset)
        position = tracker.committable
        if position is not None:
            # Everything below the position is done; the first offset at/after it is not.
            assert all(o in done for o in offsets if o < position)
            assert next((o for o in offsets if o >= position), None) not in done
        else:
            assert offsets[0] not in done
    assert tracker.committable == offsets[-1] + 1
    assert tracker.pending == 0


def test_interleaved_tracking_and_completion_agrees_with_the_plain_definition() -> None:
    # In-order completions take a quick path; mixed with out-of-order ones and new offsets
    # arriving meanwhile, every answer must still be the definition's.
    rng = random.Random(21)
    tracker = OffsetTracker()
    tracked: list[int] = []
    done: set[int] = set()
    next_offset = 0
    for _ in range(5000):
        open_offsets = [o for o in tracked if o not in done]
        if not open_offsets or rng.random() < 0.4:
            next_offset += rng.choice((1, 1, 1, 2, 5))  # gaps: compaction, transaction markers
            tracker.track(next_offset)
            tracked.append(next_offset)
            continue
        offset = open_offsets[0] if rng.random() < 0.7 else rng.choice(open_offsets)
        before = tracker.committable
        moved = tracker.complete(offset)
        done.add(offset)
        prefix = next((i for i, o in enumerate(tracked) if o not in done), len(tracked))
        expected = tracked[prefix - 1] + 1 if prefix else None
        assert tracker.committable == (expected if expected is not None else before)
        assert moved == (tracker.committable != before)
        assert tracker.pending == len(tracked) - len(done)
