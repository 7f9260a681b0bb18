"""kopf handlers of the ``TicketTopic`` kind: parse the body, call the service, write back.

- ``tickettopic_index``: every TicketTopic by Kafka topic name (conflicts, deletion guard,
  the level check's work list).
- ``reconcile_tickettopic`` (create, update, resume): one reconcile; status only when it
  differs; Kafka unreachable → ``TemporaryError`` with a per-topic growing delay.
- ``tickettopic_users``: every SupportAgent by the Kafka topics it reads or writes.
- ``delete_tickettopic``: only for ``deletionPolicy: Delete`` (so only those carry the
  finalizer); waits while SupportAgents use the topic (``TopicInUse``); bounded wait when
  Kafka is unreachable.
- ``start_tickettopics`` / ``stop_tickettopics``: the Kafka admin client and the level
  check live for the whole operator process.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import Any, Final

import kopf
from pydantic import ValidationError

from agent_runtime.timestamps import parse_rfc3339
from srs_operator import metrics
from srs_operator.builders.supportagent import agent_topics, render_config
from srs_operator.builders.tickettopic import Claim, claim_of, name_violation
from srs_operator.builders.tickettopic_status import invalid_spec_status, status_patch
from srs_operator.models.crd import GROUP, VERSION
from srs_operator.models.supportagent import SUPPORT_AGENT, SupportAgent
from srs_operator.models.tickettopic import TICKET_TOPIC, DeletionPolicy, TicketTopic
from srs_operator.services.tickettopic_resync import IndexedTopic
from srs_operator.services.tickettopic_settings import TopicSettings
from srs_operator.services.tickettopics import (
    Outcome,
    TicketTopicController,
    deletion_policy_of,
    in_use_outcome,
)
from srs_operator.settings import SETTINGS_MEMO_KEY, OperatorSettings

log = logging.getLogger(__name__)

KIND: Final = TICKET_TOPIC.kind
PLURAL: Final = TICKET_TOPIC.plural
_MEMO_KEY: Final = "tickettopics"


def _controller(memo: kopf.Memo) -> TicketTopicController:
    controller = memo.get(_MEMO_KEY)
    if not isinstance(controller, TicketTopicController):
        raise kopf.TemporaryError("the TicketTopic controller is not started yet", delay=5)
    return controller


@kopf.on.startup()
async def start_tickettopics(memo: kopf.Memo, **kwargs: Any) -> None:
    """Create the Kafka admin client (once per process) and start the level check."""
    index = _index(kwargs)
    operator_settings = memo.get(SETTINGS_MEMO_KEY)
    ours = operator_settings if isinstance(operator_settings, OperatorSettings) else None
    try:
        settings = TopicSettings.from_env(
            os.environ,
            resync_interval=ours.resync_seconds if ours is not None else None,
            prefix_rules=ours.topic_prefix_rules if ours is not None else (),
        )
    except ValueError as e:
        raise kopf.PermanentError(f"cannot start the TicketTopic controller: {e}") from e
    try:
        controller = await TicketTopicController.start(os.environ, settings, lambda: index)
    except ValueError as e:  # e.g. no KAFKA_BOOTSTRAP_SERVERS: nothing to manage topics with
        raise kopf.PermanentError(f"cannot start the TicketTopic controller: {e}") from e
    memo[_MEMO_KEY] = controller
    log.info(
        "TicketTopic controller started: Kafka %s, level check every %.0fs",
        controller.admin.settings.bootstrap_servers,
        settings.resync_interval,
    )


@kopf.on.cleanup()
async def stop_tickettopics(memo: kopf.Memo, **_: Any) -> None:
    controller = memo.get(_MEMO_KEY)
    if isinstance(controller, TicketTopicController):
        await controller.stop()


@kopf.index(GROUP, VERSION, PLURAL)
def tickettopic_index(body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo, **_: Any) -> dict[str, IndexedTopic]:
    """Topic name → the TicketTopics that claim it (a claim the namespace may not make never
    counts: it cannot take a topic from its rightful owner as the older resource)."""
    try:
        topic = TicketTopic.from_body(body)
    except ValidationError:
        return {}
    controller = memo.get(_MEMO_KEY)
    rules = controller.settings.prefix_rules if isinstance(controller, TicketTopicController) else ()
    if name_violation(topic.namespace, topic.topic_name, rules) is not None:
        return {}
    claim = claim_of(topic, being_deleted=meta.get("deletionTimestamp") is not None)
    return {topic.topic_name: IndexedTopic(topic, claim, str(meta.get("resourceVersion", "")))}


def _parse(body: kopf.Body, patch: kopf.Patch | None = None) -> TicketTopic:
    try:
        return TicketTopic.from_body(body)
    except ValidationError as e:
        # Admission validates the spec; this only happens with an older CRD installed.
        message = f"the spec does not match the TicketTopic schema: {e.errors()[0].get('msg', e)}"
        if patch is not None:
            patch.status.update(invalid_spec_status(message))
        raise kopf.PermanentError(message) from e


def _index(kwargs: dict[str, Any]) -> kopf.Index[str, IndexedTopic]:
    """kopf passes the index as a keyword named after :func:`tickettopic_index`."""
    index: kopf.Index[str, IndexedTopic] = kwargs["tickettopic_index"]
    return index


def _claims(kwargs: dict[str, Any], topic: TicketTopic) -> list[Claim]:
    return [entry.claim for entry in _index(kwargs).get(topic.topic_name, [])]


def _post_events(body: kopf.Body, outcome: Outcome) -> None:
    for event in outcome.events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
async def reconcile_tickettopic(
    body: kopf.Body,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    **kwargs: Any,
) -> None:
    """Make the Kafka topic match the spec and report it; silent when nothing changed."""
    controller = _controller(memo)
    with metrics.observe_reconcile(KIND):
        topic = _parse(body, patch)
        outcome = await controller.reconciler.reconcile(topic, _claims(kwargs, topic))
        if outcome.status is not None:
            metrics.report_ready(KIND, topic.namespace, topic.name, outcome.status.is_ready())
            changes = status_patch(body.get("status"), outcome.status)
            if changes:
                patch.status.update(changes)
                metrics.STATUS_WRITES.labels(KIND).inc()
        _post_events(body, outcome)
        if outcome.retry:
            raise kopf.TemporaryError(outcome.retry_message, delay=controller.settings.backoff(retry))
        if outcome.retry_after is not None:
            raise kopf.TemporaryError(outcome.retry_message, delay=outcome.retry_after)


@kopf.index(GROUP, VERSION, SUPPORT_AGENT.plural)
def tickettopic_users(body: kopf.Body, meta: kopf.Meta, **_: Any) -> dict[str, str]:
    """Kafka topic → the SupportAgents that read or write it (``namespace/name``), so that a
    topic in use is not deleted under them."""
    if meta.get("deletionTimestamp"):
        return {}
    try:
        agent = SupportAgent.from_body(body)
        config = render_config(agent, OperatorSettings(), None)
    except (ValidationError, KeyError, TypeError):
        return {}
    return {topic: f"{agent.namespace}/{agent.name}" for topic in agent_topics(config)}


def _deletes_topic(spec: kopf.Spec, **_: Any) -> bool:
    return deletion_policy_of(spec) is DeletionPolicy.DELETE


@kopf.on.delete(GROUP, VERSION, PLURAL, when=_deletes_topic)
async def delete_tickettopic(
    body: kopf.Body,
    meta: kopf.Meta,
    patch: kopf.Patch,
    memo: kopf.Memo,
    retry: int,
    **kwargs: Any,
) -> None:
    """Delete the topic with the resource (policy Delete), unless another TicketTopic uses it;
    wait while SupportAgents still read or write it."""
    controller = _controller(memo)
    topic = _parse(body)
    users: kopf.Index[str, str] = kwargs["tickettopic_users"]
    in_use = in_use_outcome(
        topic, await controller.live_users(users.get(topic.topic_name, ())), controller.settings.in_use_retry
    )
    if in_use is not None:
        if in_use.status is not None and (changes := status_patch(body.get("status"), in_use.status)):
            patch.status.update(changes)
        _post_events(body, in_use)
        raise kopf.TemporaryError(in_use.retry_message, delay=in_use.retry_after or controller.settings.in_use_retry)
    waited = _seconds_since(meta.get("deletionTimestamp"))
    outcome = await controller.reconciler.delete(topic, _claims(kwargs, topic), waited)
    _post_events(body, outcome)
    if outcome.retry:
        remaining = max(1.0, controller.settings.delete_timeout - waited)
        raise kopf.TemporaryError(outcome.retry_message, delay=min(controller.settings.backoff(retry), remaining))


def _is_deletion(type: str | None, **_: Any) -> bool:
    return type == "DELETED"


@kopf.on.event(GROUP, VERSION, PLURAL, when=_is_deletion)
def tickettopic_gone(memo: kopf.Memo, meta: kopf.Meta, **_: Any) -> None:
    """A deleted TicketTopic may leave a conflicting one in charge: check soon."""
    metrics.forget_resource(KIND, meta.get("namespace", ""), meta.get("name", ""))
    controller = memo.get(_MEMO_KEY)
    if isinstance(controller, TicketTopicController):
        controller.resync.request()


def _seconds_since(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    then = parse_rfc3339(timestamp)
    return max(0.0, (dt.datetime.now(dt.UTC) - then).total_seconds())
