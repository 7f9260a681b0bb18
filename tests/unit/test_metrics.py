"""Metric helpers of the agent process."""

from __future__ import annotations

import random

import pytest
from prometheus_client import CollectorRegistry, Histogram

from agent_runtime import metrics

pytestmark = pytest.mark.unit


def _samples(histogram: Histogram) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in histogram.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_observing_many_amounts_at_once_counts_them_as_observing_each() -> None:
    registry = CollectorRegistry()
    buckets = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
    one_by_one = Histogram("one", "", ["agent"], buckets=buckets, registry=registry)
    at_once = Histogram("many", "", ["agent"], buckets=buckets, registry=registry)
    rng = random.Random(21)
    # Exactly on a bound, just above, zero, negative, beyond the last bound.
    amounts = [0.0, -1.0, 0.005, 0.0050001, 0.1, 60.0, 61.0, *buckets]
    amounts += [rng.expovariate(5.0) for _ in range(2000)]
    for amount in amounts:
        one_by_one.labels("a").observe(amount)
    metrics.observe_each(at_once.labels("a"), amounts[:700])
    metrics.observe_each(at_once.labels("a"), amounts[700:])
    metrics.observe_each(at_once.labels("a"), [])
    expected = {(name.replace("one", "many"), le): v for (name, le), v in _samples(one_by_one).items()}
    got = _samples(at_once)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if key[0].endswith("_sum"):
            assert got[key] == pytest.approx(value, rel=1e-12)  # added up once: the last bits may differ
        else:
            assert got[key] == value, key
