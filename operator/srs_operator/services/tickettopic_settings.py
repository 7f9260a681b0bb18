"""Knobs of the TicketTopic controller, from the environment and the operator's flags."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from srs_contracts.backoff import Backoff
from srs_operator.builders.tickettopic import PrefixRule


@dataclass(frozen=True)
class TopicSettings:
    """Knobs of the TicketTopic controller (environment: ``SRS_TOPIC_*``)."""

    #: The level check runs this often (± ``resync_jitter``) even when nothing changed.
    resync_interval: float = 300.0
    resync_jitter: float = 0.1
    #: Exponential backoff of a TicketTopic whose reconcile cannot reach Kafka.
    retry_initial: float = 2.0
    retry_max: float = 120.0
    #: A TicketTopic with ``deletionPolicy: Delete`` waits this long for an unreachable
    #: Kafka before it is released anyway (with a Warning Event): never a stuck namespace.
    delete_timeout: float = 90.0
    #: How long a reconcile waits for a topic it just created to show up in Kafka's metadata.
    visibility_timeout: float = 15.0
    #: Which topic names each namespace may claim (none: any name that is not reserved).
    prefix_rules: tuple[PrefixRule, ...] = ()
    #: A deletion that waits for SupportAgents to stop using the topic looks again this often.
    in_use_retry: float = 5.0

    @classmethod
    def from_env(
        cls, env: Mapping[str, str], *, resync_interval: float | None = None, prefix_rules: Iterable[str] = ()
    ) -> TopicSettings:
        """``SRS_TOPIC_RESYNC_SECONDS`` (else ``resync_interval``, the operator's ``--resync-seconds``),
        ``SRS_TOPIC_RETRY_MAX_SECONDS``, ``SRS_TOPIC_DELETE_TIMEOUT_SECONDS``, and the prefix rules of
        ``--topic-prefix-rule`` plus ``SRS_TOPIC_PREFIX_RULES`` (``GLOB=PREFIX[,PREFIX];GLOB=…``)."""
        default_resync = resync_interval if resync_interval is not None else cls.resync_interval
        texts = [*prefix_rules, *(r for r in env.get("SRS_TOPIC_PREFIX_RULES", "").split(";") if r.strip())]
        return cls(
            resync_interval=float(env.get("SRS_TOPIC_RESYNC_SECONDS") or default_resync),
            retry_max=float(env.get("SRS_TOPIC_RETRY_MAX_SECONDS", cls.retry_max)),
            delete_timeout=float(env.get("SRS_TOPIC_DELETE_TIMEOUT_SECONDS", cls.delete_timeout)),
            prefix_rules=tuple(PrefixRule.parse(t) for t in texts),
        )

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (0-based): doubling, capped, ±20 % jitter so
        that topics failing together do not retry in lockstep."""
        return Backoff(self.retry_initial, self.retry_max).around(retry + 1, spread=0.2)
