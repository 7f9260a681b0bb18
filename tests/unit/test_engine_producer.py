"""OutputProducer's poller: a fatal error raised by poll() must not end it silently.

confluent-kafka's ``Producer.poll()`` raises a fatal error (a fenced transactional producer,
say) instead of returning. Uncaught, it ended the poller task: no delivery report was
served again, and exactly-once agents waited for their transaction's reports forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError, KafkaException

from agent_runtime.engine.producer import OutputProducer
from tests.unit.test_engine_dispatcher import async_test

pytestmark = pytest.mark.unit


class FencedClient:
    """Stands in for the librdkafka handle once it hit a fatal error."""

    def __init__(self) -> None:
        self.polls = 0

    def poll(self, timeout: float) -> int:
        self.polls += 1
        raise KafkaException(KafkaError(KafkaError._FENCED, "fenced by a newer instance", fatal=True))

    def __len__(self) -> int:
        return 0


def producer(*, transactional: bool, fatal: list[str]) -> tuple[OutputProducer, FencedClient]:
    # Nothing listens on port 9: the real client never connects; the fake answers the polls.
    output = OutputProducer(
        {"bootstrap.servers": "127.0.0.1:9", "log_level": 0},
        agent="unit",
        on_fatal=fatal.append,
        idle_poll_s=0.01,
        transactional=transactional,
    )
    client = FencedClient()
    output._producer = client  # type: ignore[assignment]
    return output, client


async def polling(transactional: bool) -> tuple[OutputProducer, FencedClient, list[str]]:
    """A started producer whose client raises a fatal error from every poll; its poller alive."""
    fatal: list[str] = []
    output, client = producer(transactional=transactional, fatal=fatal)
    output.start(asyncio.get_running_loop())
    await until(lambda: client.polls >= 3)
    assert output._poller is not None and not output._poller.done(), "the poller is alive"
    output._poller.cancel()
    return output, client, fatal


async def until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.005)


@async_test
async def test_a_transactional_producer_whose_poll_raises_is_marked_ended_and_polling_goes_on() -> None:
    output, _, fatal = await polling(transactional=True)
    assert output.ended, "the committer replaces an ended producer"
    assert fatal == []


@async_test
async def test_an_idempotent_producer_whose_poll_raises_stops_the_process() -> None:
    _, _, fatal = await polling(transactional=False)
    assert fatal and "fatal producer error" in fatal[0]
