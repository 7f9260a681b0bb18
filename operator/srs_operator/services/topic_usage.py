"""Which Kafka topics each SupportAgent uses, and which topics are Ready: one read model, two readers.

The two kinds meet at Kafka topics. A SupportAgent is ``TopicsReady`` when every topic it
reads or writes has a Ready TicketTopic in its namespace; a TicketTopic with
``deletionPolicy: Delete`` waits while SupportAgents still use its topic; a TicketTopic
that becomes (un)ready concerns the agents that use it. :class:`TopicUsage` answers all
three from two watch-fed indexes, each computed once per object change
(:mod:`srs_operator.handlers.topic_usage`):

- *users*: Kafka topic → the agents (``namespace/name``) that read or write it, from
  :func:`~srs_operator.builders.supportagent.agent_topics`;
- *readiness*: namespace → (Kafka topic, Ready, partitions) of every TicketTopic there, the
  topic being the one the TicketTopic manages (``status.topicName`` once recorded), the
  partitions what its status reports (None until known).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

#: "namespace/name" of a SupportAgent.
AgentRef = str


def agent_ref(namespace: str, name: str) -> AgentRef:
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class TopicUsage:
    """Read-only views over the two indexes (kopf indexes in production, dicts in tests)."""

    users: Mapping[str, Collection[AgentRef]]
    readiness_by_namespace: Mapping[Any, Collection[tuple[str, bool, int | None]]]

    def users_of(self, topic: str) -> list[AgentRef]:
        """The agents (any namespace) that read or write Kafka topic ``topic``, sorted."""
        return sorted(set(self.users.get(topic, ())))

    def agents_using(self, namespace: str, topic: str) -> list[str]:
        """Names of the agents in ``namespace`` that read or write ``topic``."""
        prefix = f"{namespace}/"
        return [ref[len(prefix) :] for ref in self.users_of(topic) if ref.startswith(prefix)]

    def readiness(self, namespace: str) -> dict[str, bool]:
        """Kafka topic → whether some TicketTopic in ``namespace`` for it is Ready."""
        ready: dict[str, bool] = {}
        for topic, is_ready, _ in self.readiness_by_namespace.get(namespace, ()):
            ready[topic] = ready.get(topic, False) or is_ready
        return ready

    def partitions(self, namespace: str, topic: str) -> int | None:
        """The partitions of Kafka topic ``topic`` as a Ready TicketTopic in ``namespace``
        reports them; None when none does."""
        found = [
            n for t, is_ready, n in self.readiness_by_namespace.get(namespace, ()) if t == topic and is_ready and n
        ]
        return max(found) if found else None


#: No agents, no topics (tests, and the moment before kopf hands over its indexes).
EMPTY: TopicUsage = TopicUsage({}, {})
