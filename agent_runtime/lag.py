"""How far the agent's consumer group is behind its input topic, sampled for Prometheus.

A background thread asks the brokers, every ``interval_s``, for each input partition's
log end offset and the group's committed offset, and sets ``srs_agent_consumer_lag``
(before the group's first commit a partition's whole retained log counts as lag, which is
what a consumer starting there has to read). Whether the brokers answered at all is
``srs_agent_kafka_up``. Every replica of an agent reports the same group's lag: alerts and
dashboards take the ``max`` per partition.

The sampler uses its own client with the group's id and never subscribes, so it never
joins the group or moves its offsets.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

from agent_runtime.metrics import CONSUMER_LAG, KAFKA_UP
from srs_contracts.kafka_logging import librdkafka_logger

log = logging.getLogger(__name__)


class LagSampler:
    """Samples the lag of ``group``'s ``topic`` into the agent's metrics until stopped."""

    def __init__(
        self, agent: str, topic: str, client_config: Mapping[str, object], *, interval_s: float = 10.0
    ) -> None:
        self._agent = agent
        self._topic = topic
        self._interval_s = interval_s
        self._config = {
            **client_config,
            "enable.auto.commit": False,
            "client.id": f"srs-{agent}-lag",
            "logger": librdkafka_logger("srs.kafka.lag"),
        }
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        consumer = Consumer(self._config)
        try:
            while not self._stop.is_set():
                self.sample(consumer)
                self._stop.wait(self._interval_s)
        finally:
            consumer.close()

    def sample(self, consumer: Consumer, timeout_s: float = 5.0) -> dict[int, int] | None:
        """One sample: the lag per partition (None when the brokers did not answer)."""
        try:
            metadata = consumer.list_topics(self._topic, timeout=timeout_s)
            topic = metadata.topics.get(self._topic)
            if topic is None or topic.error is not None:
                raise KafkaException(topic.error if topic is not None else "topic not in metadata")
            partitions = [TopicPartition(self._topic, p) for p in sorted(topic.partitions)]
            committed = {tp.partition: tp.offset for tp in consumer.committed(partitions, timeout=timeout_s)}
            lags: dict[int, int] = {}
            for tp in partitions:
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout_s, cached=False)
                position = committed.get(tp.partition, -1)
                lags[tp.partition] = max(0, high - (position if position >= 0 else low))
        except KafkaException as e:
            KAFKA_UP.labels(self._agent).set(0)
            log.warning("could not sample the consumer lag", extra={"error": str(e)[:200]})
            return None
        KAFKA_UP.labels(self._agent).set(1)
        for partition, lag in lags.items():
            CONSUMER_LAG.labels(self._agent, self._topic, str(partition)).set(lag)
        return lags
