"""The one shape of every srs controller: watch-fed caches, a keyed work queue, one reconcile.

controller-runtime's shape, in kopf: kopf watches and indexes (the informers and their
caches); the handlers only *name* an object that may need a look; a :class:`Controller`
reconciles it on its own :class:`~srs_operator.services.workqueue.WorkQueue`. Every kind
(SupportAgent, TicketTopic, and the next one) gets the same parts from this base:

- **one trigger**: :meth:`Controller.changed` (from kopf event handlers: the object, its
  children, whatever it reads) and :meth:`Controller.deleted`; bursts coalesce, a key never
  runs twice at once, new objects go first;
- **one periodic re-check**: every ``resync_seconds`` (± 10 %) every cached object is queued
  again; a reconcile of an object that is as it should be writes nothing, so the re-check
  costs reads only (it is how drift outside Kubernetes, e.g. in Kafka, is found);
- **one not-ready signal**: :class:`~srs_operator.services.workqueue.RetryLater` (or any
  exception: exponential backoff per key);
- **one status writer**: :meth:`Controller.write_status` (a merge patch of the status
  subresource, skipped when empty; the response stands in for the cache until the watch
  shows it, so the next reconcile neither repeats it nor re-announces its transitions);
- **one Event path**: :meth:`Controller.event` (logged, and posted in the background);
- **one start/stop protocol**: :meth:`Controller.start` in kopf's ``on.startup``,
  :meth:`Controller.close` in ``on.cleanup``, :meth:`Controller.healthy` in a liveness probe;
- **namespaces that go away**: :meth:`Controller.namespace_unwatched` forgets their objects
  although kopf's indexes still list them, and a kind whose objects hold a finalizer
  (:attr:`Controller.finalizer`) has it released in namespaces being deleted that kopf does
  not watch (:meth:`Controller.sweep_deleted`, every :data:`SWEEP_SECONDS`).

A subclass says what its objects are (:attr:`Controller.kind`, :attr:`Controller.resource`),
where the cache is (:class:`ObjectCache`) and how to reconcile one
(:meth:`Controller.reconcile_object`); ``operator/README.md`` walks through adding a kind.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Final, Protocol

from srs_operator import metrics
from srs_operator.builders.namespace_patterns import matches
from srs_operator.clients.events import EventRecorder, EventType, ObjectRef
from srs_operator.clients.kube import NAMESPACES, ApiError, KubeClient, ResourceType
from srs_operator.models.crd import API_VERSION
from srs_operator.services.workqueue import RetryLater, WorkQueue
from srs_operator.services.written import WrittenObjects

log = logging.getLogger(__name__)

#: (namespace, name) of a namespaced custom resource.
ObjectKey = tuple[str, str]

_RESYNC_JITTER = 0.1
#: How often namespaces being deleted are looked at for objects that still hold the finalizer.
SWEEP_SECONDS: Final = 30.0


class ObjectCache(Protocol):
    """The watch-fed cache of one kind (a kopf index in production, a dict in tests)."""

    def get(self, key: ObjectKey) -> Mapping[str, Any] | None: ...

    def keys(self) -> Iterable[ObjectKey]: ...


class Controller(abc.ABC):
    """Reconciles the objects of one kind; one per kind and operator process."""

    #: The kind (``SupportAgent``), for logs, metrics and Events.
    kind: ClassVar[str]
    #: Its REST resource (status patches, metadata patches).
    resource: ClassVar[ResourceType]
    #: The finalizer its objects may hold (None: they never hold one); the reconcile of an
    #: object being deleted releases it.
    finalizer: ClassVar[str | None] = None

    def __init__(
        self,
        kube: KubeClient,
        objects: ObjectCache,
        *,
        workers: int,
        resync_seconds: float,
        initial_backoff: float = 0.5,
        max_backoff: float = 300.0,
        backoff_jitter: float = 0.0,
        events: EventRecorder | None = None,
        namespaces: Sequence[str] = (),
    ) -> None:
        self.kube = kube
        self.objects = objects
        #: The operator's namespace patterns (``--namespace``; empty: every namespace).
        self.namespaces = tuple(namespaces)
        self.resync_seconds = resync_seconds
        self.events = events or EventRecorder(kube)
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            self.kind,
            self.reconcile,
            workers=workers,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            jitter=backoff_jitter,
        )
        self.written: WrittenObjects[ObjectKey] = WrittenObjects()
        #: Objects whose namespace is gone while kopf's index still lists them (no resync).
        self._vanished: set[ObjectKey] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._resync: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # -- what to reconcile (called by the handlers) -----------------------------------------

    def changed(self, namespace: str, name: str, *, urgent: bool = False) -> None:
        """The object, or something it depends on, changed: reconcile it soon."""
        key = (namespace, name)
        self._vanished.discard(key)
        self.queue.add(key, urgent=urgent)

    def deleted(self, namespace: str, name: str) -> None:
        """The object is gone: forget everything about it."""
        self.forget((namespace, name))

    def forget(self, key: ObjectKey) -> None:
        """Drop what the controller remembers of ``key`` (subclasses add their own memories)."""
        self.queue.forget(key)
        self.written.forget(key)
        metrics.forget_resource(self.kind, key[0], key[1])

    def report_ready(self, key: ObjectKey, ready: bool) -> None:
        """Every reconcile says whether the object is Ready (``srs_operator_resource_ready``:
        what the not-Ready alerts and the operator dashboard read)."""
        metrics.report_ready(self.kind, key[0], key[1], ready)

    def vanish(self, key: ObjectKey) -> None:
        """The object's namespace is gone (an API answer said so) but kopf's index may still
        list it: never reconcile it again until an event shows it again."""
        self._vanished.add(key)
        self.forget(key)

    def is_vanished(self, key: ObjectKey) -> bool:
        """Whether ``key`` is forgotten until an event shows it again (see :meth:`vanish`)."""
        return key in self._vanished

    def namespace_unwatched(self, namespace: str) -> None:
        """kopf stopped watching ``namespace``: its objects stay in kopf's indexes, but must never
        be reconciled again, nor retried, until an event shows one again."""
        for key in [k for k in self.objects.keys() if k[0] == namespace]:  # noqa: SIM118 - a Protocol, not a dict
            self.vanish(key)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers and the periodic re-check (``on.startup``)."""
        self.queue.start()
        self._resync = asyncio.create_task(self._resync_forever(), name=f"{self.kind}-resync")
        if self.finalizer is not None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name=f"{self.kind}-finalizer-sweep")

    async def stop(self) -> None:
        """Stop the re-check, the sweep and the workers; let Events being posted finish."""
        for task in (self._resync, self._sweeper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._resync = self._sweeper = None
        await self.queue.stop()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def close(self) -> None:
        """:meth:`stop`, then close the API client (``on.cleanup``)."""
        await self.stop()
        await self.kube.close()

    def healthy(self) -> tuple[bool, str]:
        """Whether the workers, the periodic re-check and the sweep still run (for the liveness probe)."""
        if self._resync is not None and self._resync.done():
            return False, f"the {self.kind} re-check loop has stopped"
        if self._sweeper is not None and self._sweeper.done():
            return False, f"the {self.kind} finalizer sweep has stopped"
        return self.queue.healthy()

    def resync(self) -> int:
        """Queue every cached object (the periodic re-check); returns how many."""
        keys = set(self.objects.keys())
        self._vanished &= keys  # entries kopf's index dropped need no more remembering
        for key in keys - self._vanished:
            self.queue.add(key)
        return len(keys - self._vanished)

    async def _resync_forever(self) -> None:
        while True:
            jitter = 1 + random.uniform(-_RESYNC_JITTER, _RESYNC_JITTER)
            await asyncio.sleep(self.resync_seconds * jitter)
            self.resync()

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_deleted()
            except Exception as e:  # noqa: BLE001 - the next sweep tries again
                log.warning("looking for %ss being deleted in terminating namespaces failed: %s", self.kind, e)
            await asyncio.sleep(SWEEP_SECONDS)

    async def sweep_deleted(self) -> int:
        """Finish the deletion of objects that hold :attr:`finalizer` in namespaces being
        deleted that kopf does not watch: kopf never starts watching a namespace that is
        already terminating, so an operator restarted (or a replica taking over) while a
        namespace was being deleted would leave it stuck on the finalizer forever. Reads one
        list of namespaces, and the kind only in those being deleted. Returns how many
        objects' reconciles finished (their finalizer released)."""
        released = 0
        for ns in (await self.kube.list(NAMESPACES, None)).get("items") or ():
            ns_meta = ns.get("metadata") or {}
            namespace = ns_meta.get("name")
            if not namespace or not ns_meta.get("deletionTimestamp"):
                continue
            if self.namespaces and not any(matches(namespace, p) for p in self.namespaces):
                continue
            for item in (await self.kube.list(self.resource, namespace)).get("items") or ():
                meta = item.get("metadata") or {}
                name = meta.get("name")
                if (
                    not name
                    or not meta.get("deletionTimestamp")
                    or self.finalizer not in (meta.get("finalizers") or ())
                ):
                    continue
                key = (namespace, name)
                if self.objects.get(key) is not None and not self.is_vanished(key):
                    continue  # watched: the queue deals with it
                try:
                    await self.reconcile_object(key, item)
                except (RetryLater, ApiError) as e:
                    log.info("%s %s/%s is being deleted and waits: %s", self.kind, namespace, name, e)
                else:
                    released += 1
        return released

    # -- reconcile ----------------------------------------------------------------------

    def current(self, key: ObjectKey) -> Mapping[str, Any] | None:
        """The object as the cache shows it, or as the operator's last write left it."""
        return self.written.current(key, self.objects.get(key))

    async def reconcile(self, key: ObjectKey) -> None:
        """Reconcile the object ``key`` as it now is (what the queue's workers call)."""
        if key in self._vanished:
            return  # its namespace is gone; kopf's index has not noticed (see namespace_unwatched)
        body = self.current(key)
        if body is None:
            return
        with metrics.observe_reconcile(self.kind):
            await self.reconcile_object(key, body)

    @abc.abstractmethod
    async def reconcile_object(self, key: ObjectKey, body: Mapping[str, Any]) -> None:
        """Make the world match ``body``; level-based, no writes when it already does. Raise
        :class:`~srs_operator.services.workqueue.RetryLater` when it cannot be finished now."""

    # -- writes ---------------------------------------------------------------------------

    async def write_status(self, key: ObjectKey, body: Mapping[str, Any], patch: Mapping[str, Any] | None) -> bool:
        """Merge-patch the status subresource with ``patch`` (nothing when it is empty); False
        when the object is gone (deleted meanwhile, or its namespace is)."""
        if not patch:
            return False
        try:
            obj = await self.kube.patch_status(self.resource, key[0], key[1], patch)
        except ApiError as e:
            if e.status == 404:
                # Deleted meanwhile, or a stale index entry: a patch of a custom resource whose
                # namespace is gone says only "not found". Stop re-checking it until an event
                # shows it again, or every re-check would patch it forever.
                self.vanish(key)
                return False
            raise
        metrics.STATUS_WRITES.labels(self.kind).inc()
        self.written.remember(key, body, obj)
        return True

    async def patch_metadata(self, key: ObjectKey, body: Mapping[str, Any], metadata: Mapping[str, Any]) -> None:
        """Merge-patch the object's metadata (e.g. its finalizers), conditional on the version the
        reconcile read (a 409 is retried with the next event)."""
        version = (body.get("metadata") or {}).get("resourceVersion")
        patch = {"metadata": {**metadata, "resourceVersion": version}}
        obj = await self.kube.merge_patch(self.resource, key[0], key[1], patch)
        self.written.remember(key, body, obj)

    def event(self, body: Mapping[str, Any], type_: EventType, reason: str, message: str) -> None:
        """Announce a transition on the object (``kubectl describe``): logged, and posted as a
        Kubernetes Event in the background (Events are best effort)."""
        meta = body.get("metadata") or {}
        ref = ObjectRef(API_VERSION, self.kind, meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""))
        level = logging.WARNING if type_ == "Warning" else logging.INFO
        log.log(level, "%s %s/%s: %s: %s", self.kind, ref.namespace, ref.name, reason, message)
        task = asyncio.create_task(self.events.post(ref, type_, reason, message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def merge_patch(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON merge patch (RFC 7386) that turns ``before`` into ``after``: ``after`` with
    ``null`` for every key ``before`` has and ``after`` has not, at any depth (a merge patch
    leaves a key it does not name as it was)."""
    out: dict[str, Any] = {}
    for k, v in after.items():
        old = before.get(k)
        out[k] = merge_patch(old, v) if isinstance(v, Mapping) and isinstance(old, Mapping) else v
    out.update({k: None for k in before.keys() - after.keys()})
    return out
