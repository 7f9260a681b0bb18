"""The two kopf indexes behind :class:`~srs_operator.services.topic_usage.TopicUsage`:
which Kafka topics each SupportAgent uses, and which TicketTopics are Ready.

Each is computed once per object change, here, and read by both controllers (the
SupportAgent's ``TopicsReady``, the TicketTopic's deletion guard).
"""

from __future__ import annotations

from typing import Any, Final

import kopf
from pydantic import ValidationError

from srs_operator.builders.supportagent import agent_topics
from srs_operator.models.crd import GROUP, VERSION
from srs_operator.models.supportagent import SUPPORT_AGENT, SupportAgent
from srs_operator.models.tickettopic import TICKET_TOPIC, TicketTopic
from srs_operator.services.topic_usage import AgentRef, TopicUsage, agent_ref

USERS_INDEX: Final = "srs_topic_users"
READINESS_INDEX: Final = "srs_topic_readiness"


@kopf.index(GROUP, VERSION, SUPPORT_AGENT.plural, id=USERS_INDEX)
def srs_topic_users(body: kopf.Body, meta: kopf.Meta, **_: Any) -> dict[str, AgentRef]:
    """Kafka topic → the SupportAgent (``namespace/name``) that reads or writes it."""
    if meta.get("deletionTimestamp"):
        return {}
    try:
        agent = SupportAgent.from_body(body)
    except ValidationError:
        return {}  # an agent whose spec is invalid uses no topic (it has no pods)
    return {topic: agent_ref(agent.namespace, agent.name) for topic in agent_topics(agent)}


def managed_topic(name: str, body: kopf.Body) -> str:
    """The Kafka topic a TicketTopic manages (``status.topicName`` once recorded)."""
    try:
        return TicketTopic.from_body(body).topic_name
    except ValidationError:
        return str(body.get("status", {}).get("topicName") or body.get("spec", {}).get("topicName") or name)


@kopf.index(GROUP, VERSION, TICKET_TOPIC.plural, id=READINESS_INDEX)
def srs_topic_readiness(
    namespace: str | None, name: str, body: kopf.Body, status: kopf.Status, **_: Any
) -> dict[Any, tuple[str, bool, int | None]]:
    """Namespace → (the Kafka topic a TicketTopic manages, whether it is Ready, its partitions)."""
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())
    partitions = status.get("partitions")
    return {namespace: (managed_topic(name, body), ready, partitions if isinstance(partitions, int) else None)}


def topic_usage(indexes: dict[str, Any]) -> TopicUsage:
    """The read model over the two indexes (kopf passes every index to every handler as a
    keyword named by its id)."""
    return TopicUsage(indexes[USERS_INDEX], indexes[READINESS_INDEX])
