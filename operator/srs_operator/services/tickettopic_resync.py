"""The TicketTopic level check: one loop per operator finds the topics that drifted from
their resources and has kopf reconcile those.

Per-object kopf timers or daemons would put a finalizer on every TicketTopic, and a
finalizer is only wanted with ``deletionPolicy: Delete``; so one loop per operator
describes every managed topic in a few batched admin calls and, where Kafka and the
resource disagree (a topic deleted out of band, a config changed by hand, a conflict
that resolved), asks kopf to reconcile that resource by stamping the
:data:`RESYNC_ANNOTATION`. The stamp carries the ``resourceVersion`` the loop saw, so a
replica with a stale view (e.g. a paused peer) cannot write. In a steady state it writes
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from agent_runtime.timestamps import rfc3339
from srs_operator.builders.tickettopic import Claim, owner
from srs_operator.builders.tickettopic_status import drift
from srs_operator.clients.kafka_admin import KafkaUnavailable, TopicAdmin
from srs_operator.clients.kube import TICKETTOPICS, ApiError, KubeClient
from srs_operator.models.tickettopic import Reason, TicketTopic
from srs_operator.models.topicstate import TopicState
from srs_operator.services.tickettopic_settings import TopicSettings

log = logging.getLogger(__name__)

#: Stamped by :class:`TopicResync` to make kopf reconcile a TicketTopic that drifted. Not
#: under ``srs.dev/``: kopf ignores changes to annotations with its own prefix.
RESYNC_ANNOTATION: Final = "tickettopics.srs.dev/resync-requested"


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
            winner = owner(e.claim for e in entries)
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
            why = drift(entry.topic, entry.claim, winner, observed.get(name))
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
            winner = owner(e.claim for e in entries)
            for entry in entries:
                if winner is None or winner.uid != entry.topic.uid or entry.claim.being_deleted:
                    continue
                if entry.topic.status.ready_reason() == Reason.KAFKA_UNAVAILABLE:
                    continue
                if await self._stamp(entry, "Kafka is unreachable"):
                    stamped += 1
        return stamped

    async def _stamp(self, entry: IndexedTopic, why: str) -> bool:
        topic = entry.topic
        log.info("TicketTopic %s/%s drifted: %s", topic.namespace, topic.name, why)
        now = rfc3339()
        body = {"metadata": {"resourceVersion": entry.resource_version, "annotations": {RESYNC_ANNOTATION: now}}}
        try:
            await self._kube.merge_patch(TICKETTOPICS, topic.namespace, topic.name, body)
        except ApiError as e:
            if e.status in (404, 409):  # gone, or changed since we looked: kopf has it in hand
                return False
            raise
        return True
