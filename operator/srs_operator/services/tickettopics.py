"""Reconcile one TicketTopic: a Kafka topic that matches its spec, a finalizer only with ``deletionPolicy: Delete``.

:class:`TicketTopicController` is a :class:`~srs_operator.services.controller.Controller`,
the shape the SupportAgent controller has too. Given a TicketTopic's key it:

1. keeps the finalizer ``srs.dev/finalizer`` exactly on TicketTopics whose policy is
   ``Delete`` (so a ``Retain`` resource is never held);
2. for a TicketTopic being deleted: waits (``TopicInUse``) while SupportAgents still read or
   write the topic (:class:`~.topic_usage.TopicUsage`), deletes the topic (a bounded wait when
   Kafka is unreachable), then releases the finalizer;
3. otherwise reconciles the topic with :class:`~.tickettopic_reconciler.TopicReconciler` and
   writes the status it returns only when it differs.

Drift in Kafka (a topic deleted or altered out of band) is found by the controller's
periodic re-check: every TicketTopic is reconciled again every ``resync_interval``; the
Kafka admin client batches the describes of all of them into a few requests, and a topic as
specified costs no write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Final

from pydantic import ValidationError

from srs_contracts.timestamps import parse_rfc3339
from srs_operator.builders.tickettopic import Claim
from srs_operator.builders.tickettopic_status import invalid_spec_status, status_patch
from srs_operator.clients.events import EventRecorder
from srs_operator.clients.kafka_admin import KafkaAdminSettings, TopicAdmin
from srs_operator.clients.kube import SUPPORTAGENTS, TICKETTOPICS, KubeClient, login
from srs_operator.models.tickettopic import TICKET_TOPIC, DeletionPolicy, TicketTopic
from srs_operator.services.controller import Controller, ObjectCache, ObjectKey
from srs_operator.services.tickettopic_reconciler import Outcome, TopicReconciler, in_use_outcome
from srs_operator.services.tickettopic_settings import TopicSettings
from srs_operator.services.topic_usage import TopicUsage
from srs_operator.services.workqueue import RetryLater
from srs_operator.settings import FINALIZER

KIND: Final = TICKET_TOPIC.kind


class TicketTopicController(Controller):
    """Reconciles TicketTopics; one per operator process."""

    kind = KIND
    resource = TICKETTOPICS
    finalizer = FINALIZER

    def __init__(
        self,
        kube: KubeClient,
        admin: TopicAdmin,
        objects: ObjectCache,
        claims: Mapping[str, Collection[Claim]],
        usage: TopicUsage,
        settings: TopicSettings,
        *,
        workers: int,
        events: EventRecorder | None = None,
        namespaces: Sequence[str] = (),
    ) -> None:
        super().__init__(
            kube,
            objects,
            workers=workers,
            resync_seconds=settings.resync_interval,
            initial_backoff=settings.retry_initial,
            max_backoff=settings.retry_max,
            backoff_jitter=0.2,  # topics failing together (Kafka down) do not retry in lockstep
            events=events,
            namespaces=namespaces,
        )
        self.admin = admin
        self.settings = settings
        self.claims = claims
        self.usage = usage
        self.reconciler = TopicReconciler(admin, settings)

    @classmethod
    async def connect(
        cls,
        env: Mapping[str, str],
        settings: TopicSettings,
        objects: ObjectCache,
        claims: Mapping[str, Collection[Claim]],
        usage: TopicUsage,
        *,
        workers: int,
        namespaces: Sequence[str] = (),
    ) -> TicketTopicController:
        """A controller on its own Kafka admin client (``KAFKA_*`` in ``env``) and API client;
        ``ValueError`` when the Kafka settings are unusable (e.g. no bootstrap servers)."""
        admin = TopicAdmin(KafkaAdminSettings.from_env(env))
        await admin.start()
        return cls(KubeClient(login()), admin, objects, claims, usage, settings, workers=workers, namespaces=namespaces)

    async def close(self) -> None:
        await super().close()
        await self.admin.close()

    # -- what to reconcile (called by the handlers) -----------------------------------------

    def topic_released(self, topic_name: str) -> None:
        """A TicketTopic for ``topic_name`` is gone: one that lost a conflict over it may take over."""
        for claim in self.claims.get(topic_name, ()):
            self.queue.add((claim.namespace, claim.name))

    # -- reconcile ----------------------------------------------------------------------

    async def reconcile_object(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or ())
        held = FINALIZER in finalizers
        try:
            topic = TicketTopic.from_body(body)
        except ValidationError as e:
            # Admission validates the spec; this only happens with an older CRD installed.
            message = f"the spec does not match the TicketTopic schema: {e.errors()[0].get('msg', e)}"
            if meta.get("deletionTimestamp"):
                if held:
                    await self.patch_metadata(key, body, {"finalizers": [f for f in finalizers if f != FINALIZER]})
                return
            changes = invalid_spec_status(message)
            status = body.get("status") or {}
            await self.write_status(key, body, {k: v for k, v in changes.items() if status.get(k) != v})
            return

        if meta.get("deletionTimestamp"):
            if held:
                if topic.spec.deletion_policy is DeletionPolicy.DELETE:
                    await self._delete(key, body, topic)  # RetryLater until the topic is dealt with
                await self.patch_metadata(key, body, {"finalizers": [f for f in finalizers if f != FINALIZER]})
            return
        wants = topic.spec.deletion_policy is DeletionPolicy.DELETE
        if wants != held:
            kept = [f for f in finalizers if f != FINALIZER]
            await self.patch_metadata(key, body, {"finalizers": [*kept, FINALIZER] if wants else kept})
            body = self.current(key) or body

        outcome = await self.reconciler.reconcile(topic, self._claims(topic))
        await self._report(key, body, outcome)
        if outcome.retry:
            raise RetryLater(outcome.retry_message)
        if outcome.retry_after is not None:
            raise RetryLater(outcome.retry_message, delay=outcome.retry_after)

    async def _delete(self, key: ObjectKey, body: Mapping[str, Any], topic: TicketTopic) -> None:
        """Delete the topic with the resource, unless another TicketTopic uses it; wait while
        SupportAgents still read or write it. Returns once the finalizer may go."""
        in_use = in_use_outcome(
            topic, await self.live_users(self.usage.users_of(topic.topic_name)), self.settings.in_use_retry
        )
        if in_use is not None:
            await self._report(key, body, in_use)
            raise RetryLater(in_use.retry_message, delay=in_use.retry_after or self.settings.in_use_retry)
        waited = _seconds_since((body.get("metadata") or {}).get("deletionTimestamp"))
        outcome = await self.reconciler.delete(topic, self._claims(topic), waited)
        await self._report(key, body, outcome)
        if outcome.retry:
            remaining = max(1.0, self.settings.delete_timeout - waited)
            raise RetryLater(outcome.retry_message, at_most=remaining)

    async def _report(self, key: ObjectKey, body: Mapping[str, Any], outcome: Outcome) -> None:
        if outcome.status is not None:
            self.report_ready(key, outcome.status.is_ready())
            await self.write_status(key, body, status_patch(body.get("status"), outcome.status))
        for event in outcome.events:
            self.event(body, event.type, event.reason, event.message)

    def _claims(self, topic: TicketTopic) -> list[Claim]:
        return list(self.claims.get(topic.topic_name, ()))

    async def live_users(self, indexed: Iterable[str]) -> list[str]:
        """The indexed users (``namespace/name`` of SupportAgents) that still exist: kopf may stop
        watching a terminating namespace before it sees an agent's deletion, and a stale entry
        must not hold the topic forever."""
        live = []
        for ref in sorted(set(indexed)):
            namespace, _, name = ref.partition("/")
            agent = await self.kube.get(SUPPORTAGENTS, namespace, name)
            if agent is not None and not (agent.get("metadata") or {}).get("deletionTimestamp"):
                live.append(ref)
        return live


def _seconds_since(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    then = parse_rfc3339(timestamp)
    return max(0.0, (dt.datetime.now(dt.UTC) - then).total_seconds())
