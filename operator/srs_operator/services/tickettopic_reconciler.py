"""One TicketTopic against Kafka: describe → plan → create/alter → the status and Events to report.

:class:`TopicReconciler` does one TicketTopic at a time (the controller's workers call it;
many run concurrently and the Kafka admin client batches their requests). It returns an
:class:`Outcome` — the status to report, the Events to post, whether to retry — and leaves
every Kubernetes write to :class:`~srs_operator.services.tickettopics.TicketTopicController`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from typing import Final, Literal

from srs_contracts.backoff import Backoff
from srs_operator.builders.tickettopic import (
    Claim,
    claim_of,
    name_violation,
    other_references,
    owner,
    plan_topic,
)
from srs_operator.builders.tickettopic_status import (
    AppliedChanges,
    conflict_status,
    not_ready_status,
    ready_status,
)
from srs_operator.clients.kafka_admin import KafkaAdminError, KafkaUnavailable, TopicAdmin
from srs_operator.models.conditions import ConditionStatus
from srs_operator.models.tickettopic import ConditionType, Reason, TicketTopic, TicketTopicStatus
from srs_operator.models.topicstate import TopicState
from srs_operator.services.tickettopic_settings import TopicSettings

log = logging.getLogger(__name__)

_CREATED_MEMORY: Final = 10_000
#: How often a reconcile looks for a topic it just created: 50 ms, doubling up to 0.5 s.
_VISIBILITY_POLL: Final = Backoff(0.05, 0.5)


@dataclass(frozen=True)
class TopicEvent:
    """A Kubernetes Event to post on the TicketTopic."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class Outcome:
    """What a reconcile or a deletion decided."""

    #: The status to report (None: leave it as it is).
    status: TicketTopicStatus | None
    events: tuple[TopicEvent, ...] = ()
    #: Kafka could not be reached: retry with backoff.
    retry: bool = False
    #: Retry soon regardless of the backoff (Kafka's metadata was not yet up to date).
    retry_after: float | None = None
    #: Why a retry is needed (kopf logs it).
    retry_message: str = ""


class _KeyedLocks:
    """One asyncio lock per topic name, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _condition_message(topic: TicketTopic, type_: ConditionType) -> str | None:
    cond = topic.status.condition(type_)
    return cond.message if cond is not None and cond.status is ConditionStatus.FALSE else None


class TopicReconciler:
    """Makes one Kafka topic match one TicketTopic."""

    def __init__(self, admin: TopicAdmin, settings: TopicSettings) -> None:
        self.admin = admin
        self.settings = settings
        self._locks = _KeyedLocks()
        # TicketTopic uid → id of the topic this process created for it (None: created, not
        # yet seen in Kafka's metadata), so that a reconcile that runs again before its status
        # write is visible, or after the topic took long to show up, reports "Created" once
        # and never claims to have adopted a topic it created itself.
        self._created: OrderedDict[str, str | None] = OrderedDict()

    def _remember_created(self, topic: TicketTopic, topic_id: str | None) -> None:
        self._created[topic.uid] = topic_id
        self._created.move_to_end(topic.uid)
        while len(self._created) > _CREATED_MEMORY:
            self._created.popitem(last=False)

    async def reconcile(self, topic: TicketTopic, claims: Iterable[Claim]) -> Outcome:
        """Level-based and idempotent: with nothing to change it makes no Kafka writes and
        returns the status the resource already has."""
        violation = name_violation(topic.namespace, topic.topic_name, self.settings.prefix_rules)
        if violation is not None:
            return self._not_ready(topic, Reason.TOPIC_NAME_NOT_ALLOWED, violation)
        effective = topic.spec.effective_topic_name(topic.name)
        if topic.status.topic_name and effective != topic.status.topic_name:
            message = (
                f"spec.topicName now names {effective}, but this TicketTopic manages topic "
                f"{topic.status.topic_name}; Kafka topics cannot be renamed: restore spec.topicName, or create a "
                f"new TicketTopic for {effective}"
            )
            return self._not_ready(topic, Reason.NOT_SUPPORTED, message)

        winner = owner([*claims, claim_of(topic)])
        if winner is not None and winner.uid != topic.uid:
            status = conflict_status(topic, winner)
            events: tuple[TopicEvent, ...] = ()
            if topic.status.ready_reason() != Reason.RESOURCE_CONFLICT:
                ready = status.condition(ConditionType.READY)
                events = (TopicEvent("Warning", Reason.RESOURCE_CONFLICT, ready.message if ready else ""),)
            return Outcome(status, events)

        async with self._locks.hold(topic.topic_name):
            try:
                return await self._sync(topic)
            except KafkaUnavailable as e:
                return self._not_ready(
                    topic,
                    Reason.KAFKA_UNAVAILABLE,
                    f"cannot reach Kafka at {self.admin.settings.bootstrap_servers}: {e}; retrying with backoff",
                    retry=True,
                )
            except KafkaAdminError as e:
                reason = Reason.INVALID_CONFIG if e.code == "INVALID_CONFIG" else Reason.KAFKA_ERROR
                return self._not_ready(topic, reason, f"Kafka refused to manage topic {topic.topic_name}: {e}")

    async def _sync(self, topic: TicketTopic) -> Outcome:
        name, spec = topic.topic_name, topic.spec
        events: list[TopicEvent] = []
        observed = await self.admin.describe(name)
        plan = plan_topic(spec, observed)

        if plan.create:
            # Remembered before the request: a create that timed out and was retried meets
            # "already exists" for a topic that is nevertheless this resource's own.
            self._remember_created(topic, None)
            created = await self.admin.create(name, spec.partitions, spec.replication_factor, spec.config)
            observed = await self._await_visible(name)
            if observed is None:
                # Created (or being deleted by someone else) but not in the metadata yet.
                return Outcome(None, retry_after=1.0, retry_message=f"topic {name} is not visible in Kafka yet")
            if not created and (refusal := self._refuse_adoption(topic)) is not None:
                return refusal  # someone else created it meanwhile
            if (event := self._existing_topic_event(topic, observed)) is not None:
                events.append(event)
            plan = plan_topic(spec, observed)
        else:
            assert observed is not None  # plan_topic creates exactly when the topic is missing
            if (refusal := self._refuse_adoption(topic)) is not None:
                return refusal
            event = self._existing_topic_event(topic, observed)
            if event is not None:
                events.append(event)

        if plan.increase_partitions_to is not None:
            try:
                await self.admin.create_partitions(name, plan.increase_partitions_to)
            except KafkaAdminError as e:
                if e.code != "INVALID_PARTITIONS":
                    raise
                # Our describe lagged behind Kafka (e.g. just increased): look again shortly.
                return Outcome(None, retry_after=2.0, retry_message=f"partitions of {name} changed meanwhile: {e}")
            events.append(
                TopicEvent(
                    "Normal",
                    Reason.PARTITIONS_INCREASED,
                    f"increased partitions of topic {name} from {observed.partitions} to {plan.increase_partitions_to}",
                )
            )
            observed = replace(observed, partitions=plan.increase_partitions_to)

        config_error: str | None = None
        if plan.config:
            try:
                await self.admin.alter_config(name, plan.config.set, plan.config.delete)
            except KafkaAdminError as e:
                config_error = str(e)
                if _condition_message(topic, ConditionType.CONFIG_IN_SYNC) != config_error:
                    events.append(TopicEvent("Warning", Reason.INVALID_CONFIG, f"Kafka refused spec.config: {e}"))
            else:
                events.append(TopicEvent("Normal", Reason.CONFIG_UPDATED, f"topic {name}: {plan.config.describe()}"))

        for message, type_ in (
            (plan.partitions_not_supported, ConditionType.PARTITIONS_IN_SYNC),
            (plan.replication_not_supported, ConditionType.REPLICATION_FACTOR_IN_SYNC),
        ):
            if message and _condition_message(topic, type_) != message:
                events.append(TopicEvent("Warning", Reason.NOT_SUPPORTED, message))

        status = ready_status(topic, observed, plan, AppliedChanges(config_error=config_error))
        return Outcome(status, tuple(events))

    def _refuse_adoption(self, topic: TicketTopic) -> Outcome | None:
        """An existing topic this TicketTopic never managed is someone else's: it is taken over
        (its overrides replaced, perhaps deleted later) only with ``spec.adoptExisting``."""
        if topic.status.topic_id or topic.uid in self._created or topic.spec.adopt_existing:
            return None
        message = (
            f"topic {topic.topic_name} already exists in Kafka and was not created by this TicketTopic; it is left "
            "untouched: set spec.adoptExisting: true to manage it (its config overrides then follow spec.config)"
        )
        return self._not_ready(topic, Reason.TOPIC_EXISTS, message)

    @staticmethod
    def _created_event(topic: TicketTopic, observed: TopicState) -> TopicEvent:
        if topic.status.topic_id:
            return TopicEvent(
                "Warning",
                Reason.RECREATED,
                f"topic {observed.name} (id {topic.status.topic_id}) was deleted outside the operator; recreated it"
                f"{_shape(observed)}",
            )
        return TopicEvent("Normal", Reason.CREATED, f"created topic {observed.name}{_shape(observed)}")

    def _existing_topic_event(self, topic: TicketTopic, observed: TopicState) -> TopicEvent | None:
        """What finding ``observed`` means: Created or Recreated (by this process), Adopted
        (first sight of a topic someone else made), replaced out of band, or nothing new."""
        if topic.uid in self._created:
            ours = self._created[topic.uid]
            if ours is None:  # created by us, now visible: say so once
                self._remember_created(topic, observed.topic_id)
                return self._created_event(topic, observed)
            if ours == observed.topic_id and topic.status.topic_id != ours:
                return None  # a repeat of the reconcile that created it, before its status was seen
        known = topic.status.topic_id
        if not known:
            return TopicEvent("Normal", Reason.ADOPTED, f"adopted existing topic {observed.name}{_shape(observed)}")
        if observed.topic_id != known:
            return TopicEvent(
                "Warning",
                Reason.ADOPTED,
                f"topic {observed.name} was replaced outside the operator (id {known} → {observed.topic_id}); "
                "adopted the new one",
            )
        return None

    async def _await_visible(self, name: str) -> TopicState | None:
        """Describe a topic just created until Kafka's metadata shows it (briefly)."""
        deadline = asyncio.get_running_loop().time() + self.settings.visibility_timeout
        for looks in itertools.count(1):
            observed = await self.admin.describe(name)
            if observed is not None or asyncio.get_running_loop().time() >= deadline:
                return observed
            await asyncio.sleep(_VISIBILITY_POLL.cap(looks))
        raise AssertionError("unreachable")  # pragma: no cover

    def _not_ready(self, topic: TicketTopic, reason: Reason, message: str, *, retry: bool = False) -> Outcome:
        events: tuple[TopicEvent, ...] = ()
        if topic.status.ready_reason() != reason:
            events = (TopicEvent("Warning", reason, message),)
        return Outcome(not_ready_status(topic, reason, message), events, retry=retry, retry_message=message)

    async def delete(self, topic: TicketTopic, claims: Iterable[Claim], waited: float) -> Outcome:
        """Delete the topic of a TicketTopic with ``deletionPolicy: Delete`` that is being deleted.

        Kept when another TicketTopic still refers to it, or when this one never managed it
        (no topic id recorded: it never created or adopted the topic). ``waited`` is how long
        the deletion has been going on: past ``delete_timeout`` an unreachable Kafka no
        longer holds the resource.
        """
        name = topic.topic_name
        self._created.pop(topic.uid, None)
        violation = name_violation(topic.namespace, name, self.settings.prefix_rules)
        if violation is not None:
            return Outcome(None, (TopicEvent("Normal", Reason.RETAINED, f"kept topic {name}: {violation}"),))
        others = other_references(claims, topic.uid)
        if others:
            refs = ", ".join(c.ref for c in others)
            return Outcome(None, (TopicEvent("Normal", Reason.RETAINED, f"kept topic {name}: still used by {refs}"),))
        if not topic.status.topic_id:
            return Outcome(
                None,
                (
                    TopicEvent(
                        "Normal",
                        Reason.RETAINED,
                        f"kept topic {name}: this TicketTopic never created or adopted it",
                    ),
                ),
            )
        async with self._locks.hold(name):
            try:
                existed = await self.admin.delete(name)
            except (KafkaUnavailable, KafkaAdminError) as e:
                if waited < self.settings.delete_timeout:
                    return Outcome(None, retry=True, retry_message=f"cannot delete topic {name} yet: {e}")
                message = (
                    f"gave up deleting topic {name} after {waited:.0f}s ({e}); released the TicketTopic so that "
                    f"its deletion is not blocked — delete the topic by hand if it still exists"
                )
                return Outcome(None, (TopicEvent("Warning", Reason.DELETE_ABANDONED, message),))
        message = f"deleted topic {name}" if existed else f"topic {name} was already gone"
        return Outcome(None, (TopicEvent("Normal", Reason.DELETED, message),))


def in_use_outcome(topic: TicketTopic, users: Iterable[str], retry: float) -> Outcome | None:
    """A TicketTopic with ``deletionPolicy: Delete`` whose topic SupportAgents still read or
    write: the deletion waits (condition and Event say for whom) and is tried again."""
    users = sorted(set(users))
    if not users:
        return None
    message = (
        f"deletion of topic {topic.topic_name} waits: still used by SupportAgent {', '.join(users)}; "
        "delete or re-point those agents first"
    )
    events: tuple[TopicEvent, ...] = ()
    if topic.status.ready_reason() != Reason.TOPIC_IN_USE:
        events = (TopicEvent("Warning", Reason.TOPIC_IN_USE, message),)
    status = not_ready_status(topic, Reason.TOPIC_IN_USE, message)
    return Outcome(status, events, retry_after=retry, retry_message=message)


def _shape(observed: TopicState | None) -> str:
    if observed is None:
        return ""
    return f" ({observed.partitions} partitions, replication factor {observed.replication_factor})"
