"""TicketTopic reconcile logic: describe → plan → create/alter → status and Events.

:class:`TopicReconciler` does one TicketTopic at a time (the handlers call it; many run
concurrently and the Kafka admin client batches their requests). It returns an
:class:`Outcome` — the status to report, the Events to post, whether to retry — and
leaves the Kubernetes writes to the handler, so kopf merges them into one patch.

:class:`TopicResync` is the periodic level check. Per-object kopf timers or daemons
would put a finalizer on every TicketTopic, and a finalizer is only wanted with
``deletionPolicy: Delete``; so one loop per operator describes every managed topic in a
few batched admin calls and, where Kafka and the resource disagree (a topic deleted out
of band, a config changed by hand, a conflict that resolved), asks kopf to reconcile that
resource by stamping the :data:`RESYNC_ANNOTATION`. The stamp carries the
``resourceVersion`` the loop saw, so a replica with a stale view (e.g. a paused peer)
cannot write. In a steady state it writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Final, Literal

from srs_operator.builders import topics as plans
from srs_operator.builders.topics import Claim
from srs_operator.clients.kafka_admin import KafkaAdminError, KafkaUnavailable, TopicAdmin, TopicState
from srs_operator.clients.kube import MERGE_PATCH_CONTENT_TYPE, TICKETTOPICS, ApiError, KubeClient
from srs_operator.models.conditions import ConditionStatus
from srs_operator.models.tickettopic import ConditionType, DeletionPolicy, Reason, TicketTopic, TicketTopicStatus

log = logging.getLogger(__name__)

#: Stamped by :class:`TopicResync` to make kopf reconcile a TicketTopic that drifted. Not
#: under ``srs.dev/``: kopf ignores changes to annotations with its own prefix.
RESYNC_ANNOTATION: Final = "tickettopics.srs.dev/resync-requested"
_CREATED_MEMORY: Final = 10_000


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
    prefix_rules: tuple[plans.PrefixRule, ...] = ()
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
            prefix_rules=tuple(plans.PrefixRule.parse(t) for t in texts),
        )

    def backoff(self, retry: int) -> float:
        """Delay before retry number ``retry`` (0-based): doubling, capped, ±20 % jitter so
        that topics failing together do not retry in lockstep."""
        delay = min(self.retry_initial * 2 ** min(retry, 16), self.retry_max)
        return float(delay * random.uniform(0.8, 1.2))


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


def _ready_reason(topic: TicketTopic) -> str | None:
    ready = topic.status.condition(ConditionType.READY)
    return ready.reason if ready is not None else None


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
        violation = plans.name_violation(topic.namespace, topic.topic_name, self.settings.prefix_rules)
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

        winner = plans.owner([*claims, plans.claim_of(topic)])
        if winner is not None and winner.uid != topic.uid:
            status = plans.conflict_status(topic, winner)
            events: tuple[TopicEvent, ...] = ()
            if _ready_reason(topic) != Reason.RESOURCE_CONFLICT:
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
        plan = plans.plan_topic(spec, observed)

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
            plan = plans.plan_topic(spec, observed)
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

        status = plans.ready_status(topic, observed, plan, plans.AppliedChanges(config_error=config_error))
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
        delay = 0.05
        while True:
            observed = await self.admin.describe(name)
            if observed is not None or asyncio.get_running_loop().time() >= deadline:
                return observed
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _not_ready(self, topic: TicketTopic, reason: Reason, message: str, *, retry: bool = False) -> Outcome:
        events: tuple[TopicEvent, ...] = ()
        if _ready_reason(topic) != reason:
            events = (TopicEvent("Warning", reason, message),)
        return Outcome(plans.not_ready_status(topic, reason, message), events, retry=retry, retry_message=message)

    async def delete(self, topic: TicketTopic, claims: Iterable[Claim], waited: float) -> Outcome:
        """Delete the topic of a TicketTopic with ``deletionPolicy: Delete`` that is being deleted.

        Kept when another TicketTopic still refers to it, or when this one never managed it
        (no topic id recorded: it never created or adopted the topic). ``waited`` is how long
        the deletion has been going on: past ``delete_timeout`` an unreachable Kafka no
        longer holds the resource.
        """
        name = topic.topic_name
        self._created.pop(topic.uid, None)
        violation = plans.name_violation(topic.namespace, name, self.settings.prefix_rules)
        if violation is not None:
            return Outcome(None, (TopicEvent("Normal", Reason.RETAINED, f"kept topic {name}: {violation}"),))
        others = plans.other_references(claims, topic.uid)
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
    if _ready_reason(topic) != Reason.TOPIC_IN_USE:
        events = (TopicEvent("Warning", Reason.TOPIC_IN_USE, message),)
    status = plans.not_ready_status(topic, Reason.TOPIC_IN_USE, message)
    return Outcome(status, events, retry_after=retry, retry_message=message)


def _shape(observed: TopicState | None) -> str:
    if observed is None:
        return ""
    return f" ({observed.partitions} partitions, replication factor {observed.replication_factor})"


# -- periodic level check --------------------------------------------------------------


@dataclass(frozen=True)
class IndexedTopic:
    """What the operator remembers of every TicketTopic (kopf index value)."""

    topic: TicketTopic
    claim: Claim
    resource_version: str


class TopicResync:
    """One loop per operator: every ``resync_interval`` (or soon after :meth:`request`),
    describe the managed topics and stamp the TicketTopics that drifted."""

    def __init__(
        self,
        admin: TopicAdmin,
        kube: KubeClient,
        index: Callable[[], Mapping[str, Iterable[IndexedTopic]]],
        settings: TopicSettings,
    ) -> None:
        self._admin = admin
        self._kube = kube
        self._index = index
        self._settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="tickettopic-resync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request(self) -> None:
        """Run a pass soon (e.g. a TicketTopic was deleted: a conflicting one may take over)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            jitter = 1 + random.uniform(-self._settings.resync_jitter, self._settings.resync_jitter)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.resync_interval * jitter)
                await asyncio.sleep(1.0)  # let a burst of deletions settle into one pass
            self._wake.clear()
            try:
                await self.run_once()
            except KafkaUnavailable as e:
                log.warning("TicketTopic level check: Kafka is unreachable: %s", e)
                try:
                    await self.report_unavailable()
                except Exception:
                    log.exception("could not mark the TicketTopics KafkaUnavailable; trying again next interval")
            except Exception:
                log.exception("TicketTopic level check failed; trying again next interval")

    async def run_once(self) -> int:
        """One pass; returns how many TicketTopics were stamped."""
        groups = {name: list(entries) for name, entries in self._index().items()}
        checks: list[tuple[IndexedTopic, Claim]] = []
        for entries in groups.values():
            winner = plans.owner(e.claim for e in entries)
            if winner is not None:
                checks.extend((entry, winner) for entry in entries)
        names = sorted({e.topic.topic_name for e, w in checks if w.uid == e.topic.uid})
        described = await asyncio.gather(*(self._admin.describe(n) for n in names), return_exceptions=True)
        observed: dict[str, TopicState | None] = {}
        for name, result in zip(names, described, strict=True):
            if isinstance(result, KafkaUnavailable):
                raise result
            if isinstance(result, BaseException):
                log.warning("level check could not describe topic %s: %s", name, result)
                continue
            observed[name] = result
        stamped = 0
        for entry, winner in checks:
            name = entry.topic.topic_name
            if winner.uid == entry.topic.uid and name not in observed:
                continue
            why = plans.drift(entry.topic, entry.claim, winner, observed.get(name))
            if why is not None and await self._stamp(entry, why):
                stamped += 1
        return stamped

    async def report_unavailable(self) -> int:
        """Kafka is down: have every managed TicketTopic that still says otherwise reconciled, so
        that it reports ``KafkaUnavailable`` (once per outage) and retries with backoff; when the
        level check reaches Kafka again, :func:`~srs_operator.builders.topics.drift` brings them
        back right away. Returns how many were stamped."""
        stamped = 0
        for entries in [list(e) for e in self._index().values()]:
            winner = plans.owner(e.claim for e in entries)
            for entry in entries:
                if winner is None or winner.uid != entry.topic.uid or entry.claim.being_deleted:
                    continue
                if _ready_reason(entry.topic) == Reason.KAFKA_UNAVAILABLE:
                    continue
                if await self._stamp(entry, "Kafka is unreachable"):
                    stamped += 1
        return stamped

    async def _stamp(self, entry: IndexedTopic, why: str) -> bool:
        topic = entry.topic
        log.info("TicketTopic %s/%s drifted: %s", topic.namespace, topic.name, why)
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = {"metadata": {"resourceVersion": entry.resource_version, "annotations": {RESYNC_ANNOTATION: now}}}
        try:
            await self._kube.request(
                "PATCH",
                TICKETTOPICS.path(topic.namespace, topic.name),
                body=body,
                content_type=MERGE_PATCH_CONTENT_TYPE,
                resource=TICKETTOPICS.plural,
            )
        except ApiError as e:
            if e.status in (404, 409):  # gone, or changed since we looked: kopf has it in hand
                return False
            raise
        return True


def deletion_policy_of(spec: Mapping[str, object]) -> DeletionPolicy:
    """The deletion policy of a raw spec (for kopf filters, before the spec is parsed)."""
    return DeletionPolicy.DELETE if spec.get("deletionPolicy") == DeletionPolicy.DELETE else DeletionPolicy.RETAIN
