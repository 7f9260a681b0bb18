"""kopf handlers of the TicketTopic controller: watch, index, and name the TicketTopic to look at.

The same shape as ``handlers/supportagent.py``: kopf watches TicketTopics and keeps them
in two indexes (by key: what the reconcile reads; by Kafka topic: who claims which topic);
the event handlers only tell
:class:`~srs_operator.services.tickettopics.TicketTopicController` *which* TicketTopic to
look at; it reconciles on its own queue, writes the status, posts Events and keeps the
finalizer on exactly the TicketTopics with ``deletionPolicy: Delete``.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Final

import kopf
from pydantic import ValidationError

from srs_operator.builders.tickettopic import Claim, claim_of, name_violation
from srs_operator.handlers import topic_usage, watching
from srs_operator.models.crd import GROUP, VERSION
from srs_operator.models.tickettopic import TICKET_TOPIC, TicketTopic
from srs_operator.services.tickettopic_settings import TopicSettings
from srs_operator.services.tickettopics import TicketTopicController
from srs_operator.services.written import snapshot
from srs_operator.settings import SETTINGS_MEMO_KEY, OperatorSettings

log = logging.getLogger(__name__)

KIND: Final = TICKET_TOPIC.kind
PLURAL: Final = TICKET_TOPIC.plural
#: Where the start-up handler puts the prefix rules, for the claims index.
_SETTINGS_KEY: Final = "tickettopic-settings"
#: TicketTopics reconciled at once: each mostly waits for Kafka, whose admin client batches
#: the requests of concurrent reconciles (more workers, fewer and fuller batches).
TOPIC_WORKERS: Final = 64


# -- indexes (the caches the reconcile reads) -----------------------------------------------


@kopf.index(GROUP, VERSION, PLURAL, id="srs_tickettopics")
def srs_tickettopics(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, dict[str, Any]]:
    if (lag := watching.lag(memo)) is not None:
        lag.indexed((KIND, namespace, name))
    return {(namespace, name): snapshot(body)}


@kopf.index(GROUP, VERSION, PLURAL, id="srs_topic_claims")
def srs_topic_claims(body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> dict[str, Claim]:
    """Kafka topic name → the TicketTopics that claim it (a claim the namespace may not make never
    counts: it cannot take a topic from its rightful owner as the older resource)."""
    try:
        topic = TicketTopic.from_body(body)
    except ValidationError:
        return {}
    settings = memo.get(_SETTINGS_KEY)
    rules = settings.prefix_rules if isinstance(settings, TopicSettings) else ()
    if name_violation(topic.namespace, topic.topic_name, rules) is not None:
        return {}
    return {topic.topic_name: claim_of(topic, being_deleted=meta.get("deletionTimestamp") is not None)}


# -- lifecycle ----------------------------------------------------------------------------


@kopf.on.startup()
async def start_tickettopic_controller(memo: kopf.Memo, **kwargs: Any) -> None:
    """Start the controller on kopf's indexes, with its own Kafka admin client."""
    ours = memo.get(SETTINGS_MEMO_KEY)
    operator_settings = ours if isinstance(ours, OperatorSettings) else None
    try:
        settings = TopicSettings.from_env(
            os.environ,
            resync_interval=operator_settings.resync_seconds if operator_settings is not None else None,
            prefix_rules=operator_settings.topic_prefix_rules if operator_settings is not None else (),
        )
        controller = await TicketTopicController.connect(
            os.environ,
            settings,
            watching.IndexCache(kwargs["srs_tickettopics"]),
            kwargs["srs_topic_claims"],
            topic_usage.topic_usage(kwargs),
            workers=TOPIC_WORKERS,
            namespaces=operator_settings.namespaces if operator_settings is not None else (),
        )
    except ValueError as e:  # e.g. no KAFKA_BOOTSTRAP_SERVERS: nothing to manage topics with
        raise kopf.PermanentError(f"cannot start the TicketTopic controller: {e}") from e
    memo[_SETTINGS_KEY] = settings
    watching.start(memo, controller)
    log.info(
        "TicketTopic controller started: Kafka %s, re-check every %.0fs",
        controller.admin.settings.bootstrap_servers,
        settings.resync_interval,
    )


@kopf.on.cleanup()
async def stop_tickettopic_controller(memo: kopf.Memo, **_: Any) -> None:
    await watching.stop(memo, KIND)


# -- what changed → which TicketTopic --------------------------------------------------------


@kopf.on.event(GROUP, VERSION, PLURAL)
async def tickettopic_event(
    event: kopf.RawEvent, namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> None:
    if (lag := watching.lag(memo)) is not None:
        lag.handled((KIND, namespace, name))
    if namespace is None:
        return  # namespaced kinds always have one; the signature is kopf's
    controller = watching.controller_of(memo, TicketTopicController)
    if event.get("type") == "DELETED":
        controller.deleted(namespace, name)
        controller.topic_released(topic_usage.managed_topic(name, body))  # a conflicting one may take over
    else:
        controller.changed(namespace, name)
