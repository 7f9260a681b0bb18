"""The admin-call batching layer: many concurrent single-topic requests → one admin call.

The ``issue`` functions here stand in for an AdminClient method: they complete
``concurrent.futures.Future`` objects from another thread, as librdkafka does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from srs_contracts.kafka_settings import KafkaClientSettings
from srs_operator.clients.kafka_admin import (
    KafkaAdminError,
    KafkaAdminSettings,
    KafkaUnavailable,
    TopicAdmin,
    _error,
    topic_id_text,
)
from srs_operator.clients.kafka_batching import BatchLimits, Coalescer

pytestmark = pytest.mark.unit


class FakeAdminCall:
    """Records each batch and answers every key from a background thread."""

    def __init__(self, fail: Mapping[str, BaseException] | None = None, refuse: str | None = None) -> None:
        self.batches: list[list[str]] = []
        self._fail = fail or {}
        self._refuse = refuse

    def __call__(self, keys: Sequence[str]) -> Mapping[str, Future[Any]]:
        if self._refuse in keys:
            raise ValueError(f"client refused {self._refuse}")
        self.batches.append(list(keys))
        futures: dict[str, Future[Any]] = {k: Future() for k in keys}

        def complete() -> None:
            for key, future in futures.items():
                if key in self._fail:
                    future.set_exception(self._fail[key])
                else:
                    future.set_result(f"result:{key}")

        threading.Timer(0.01, complete).start()
        return futures


def coalescer(call: FakeAdminCall, *, dedupe: bool = True, max_batch: int = 500) -> Coalescer[str]:
    return Coalescer("test", call, str, BatchLimits(window=0.02, max_batch=max_batch), dedupe=dedupe)


def test_concurrent_requests_leave_as_one_admin_call() -> None:
    call = FakeAdminCall()
    batcher = coalescer(call)

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(batcher.submit(f"t{i}") for i in range(200))))

    results = asyncio.run(main())
    assert results == [f"result:t{i}" for i in range(200)]
    assert len(call.batches) == 1
    assert batcher.stats.calls == 1 and batcher.stats.items == 200


def test_a_full_batch_is_sent_without_waiting_for_the_window() -> None:
    call = FakeAdminCall()
    batcher = coalescer(call, max_batch=50)

    async def main() -> None:
        await asyncio.gather(*(batcher.submit(f"t{i}") for i in range(120)))

    asyncio.run(main())
    assert [len(b) for b in call.batches] == [50, 50, 20]


def test_duplicate_describes_share_one_result() -> None:
    call = FakeAdminCall()
    batcher = coalescer(call, dedupe=True)

    async def main() -> list[Any]:
        return list(await asyncio.gather(batcher.submit("a"), batcher.submit("a"), batcher.submit("b")))

    assert asyncio.run(main()) == ["result:a", "result:a", "result:b"]
    assert call.batches == [["a", "b"]]


def test_a_second_change_to_the_same_topic_goes_into_the_next_batch() -> None:
    call = FakeAdminCall()
    batcher = coalescer(call, dedupe=False)

    async def main() -> None:
        await asyncio.gather(batcher.submit("a"), batcher.submit("b"), batcher.submit("a"))

    asyncio.run(main())
    assert call.batches == [["a", "b"], ["a"]]


def test_errors_reach_only_the_topic_they_belong_to() -> None:
    boom = KafkaException(KafkaError(KafkaError.INVALID_CONFIG, "bad value"))
    call = FakeAdminCall(fail={"bad": boom})
    batcher = coalescer(call)

    async def main() -> list[Any]:
        return list(await asyncio.gather(batcher.submit("ok"), batcher.submit("bad"), return_exceptions=True))

    ok, bad = asyncio.run(main())
    assert ok == "result:ok"
    assert bad is boom


def test_a_request_the_client_refuses_does_not_fail_its_neighbours() -> None:
    call = FakeAdminCall(refuse="poison")
    batcher = coalescer(call)

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                batcher.submit("a"), batcher.submit("poison"), batcher.submit("b"), return_exceptions=True
            )
        )

    a, poison, b = asyncio.run(main())
    assert (a, b) == ("result:a", "result:b")
    assert isinstance(poison, ValueError)


def test_a_cancelled_caller_does_not_break_the_batch() -> None:
    call = FakeAdminCall()
    batcher = coalescer(call)

    async def main() -> Any:
        doomed = asyncio.ensure_future(batcher.submit("a"))
        survivor = asyncio.ensure_future(batcher.submit("a"))
        await asyncio.sleep(0)
        doomed.cancel()
        return await survivor

    assert asyncio.run(main()) == "result:a"


def test_unreachable_kafka_and_refusals_are_told_apart() -> None:
    timeout = _error(KafkaException(KafkaError(KafkaError._TIMED_OUT, "Timed out")), "describe", "t")
    refused = _error(KafkaException(KafkaError(KafkaError.POLICY_VIOLATION, "no")), "create", "t")
    assert isinstance(timeout, KafkaUnavailable)
    assert isinstance(refused, KafkaAdminError) and refused.code == "POLICY_VIOLATION"


def test_topic_ids_are_spelled_like_kafka_does() -> None:
    from confluent_kafka import Uuid

    uid = Uuid(-0x1, 0x0123456789ABCDEF)
    text = topic_id_text(uid)
    assert len(text) == 22
    assert "/" not in text and "+" not in text and "=" not in text
    assert topic_id_text(None) == ""


def test_client_settings_follow_the_runtime_convention_plus_the_operators_own() -> None:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "SRS_KAFKA_REQUEST_TIMEOUT_SECONDS": "5",
        "SRS_KAFKA_BATCH_WINDOW_MS": "50",
    }
    settings = KafkaAdminSettings.from_env(env)
    # KAFKA_* → librdkafka exactly as the agents read it (tests/unit/test_engine_settings.py).
    assert settings.client_config == KafkaClientSettings.from_env(env).common
    assert settings.client_config["security.protocol"] == "SASL_SSL"
    assert (settings.bootstrap_servers, settings.request_timeout, settings.batch_window) == ("b1:9092,b2:9092", 5, 0.05)
    with pytest.raises(ValueError, match="KAFKA_BOOTSTRAP_SERVERS"):
        KafkaAdminSettings.from_env({})


def test_a_kafka_setting_librdkafka_does_not_know_is_reported_clearly() -> None:
    settings = KafkaAdminSettings.from_env({"KAFKA_BOOTSTRAP_SERVERS": "b:9092", "KAFKA_NO_SUCH_THING": "1"})
    with pytest.raises(ValueError, match=r"invalid Kafka client settings .*no\.such\.thing"):
        TopicAdmin(settings)
