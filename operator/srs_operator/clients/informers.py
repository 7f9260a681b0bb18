"""Objects of one kind, kept current by list-then-watch: the operator's own informers.

kopf watches the two custom kinds. The objects an agent owns, its pods and every
ConfigMap change far more often (a Deployment alone about five times on its way to
Ready) and need no more than a cache and a nudge to the owner's reconcile; through kopf
each of their events went through its per-object worker, indexing and handler machinery,
a third of the operator's CPU with a thousand agents starting. Here an event costs a
decode, a dictionary update and a callback.

An :class:`Informer` lists one kind in one namespace (or the whole cluster), filtered by
a label selector on the API server, keeps what ``transform`` makes of each object, and
then watches from the list's version, resuming after each watch ends and listing again
only when the server says the version is gone (410). ``on_change(namespace, name, old,
new)`` is called for every object whose kept value changed (``None``: absent) — also
for the differences a new listing finds, so nothing is missed across a re-list.

:class:`InformerSet` runs one informer per kind for each namespace the operator watches
(the namespaces kopf watches, see ``kopf_patches.on_namespaces_watched``), or one per kind
for the whole cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import aiohttp

from srs_contracts.backoff import Backoff
from srs_operator.clients.kube import ApiError, KubeClient, ResourceType

log = logging.getLogger(__name__)

T = TypeVar("T")
#: (namespace, name) of an object.
Key = tuple[str, str]
#: ``on_change(namespace, name, old, new)``: what an informer kept of the object before and now.
OnChange = Callable[[str, str, T | None, T | None], None]

#: Retries of a failed list/watch: about 1 s, doubling to 30 s, spread so informers do not retry in step.
_RETRY: Final = Backoff(1.0, 30.0)
#: Objects per page of a listing (a thousand Deployments are several megabytes of JSON).
_PAGE: Final = 500


@dataclass(frozen=True)
class Kind(Generic[T]):
    """What to watch of one kind and what to keep of each object."""

    rtype: ResourceType
    #: Server-side filter (``app.kubernetes.io/managed-by=srs-operator``); None: every object.
    label_selector: str | None
    #: What the cache keeps of an object (it owns the object: a fresh decode, never shared).
    transform: Callable[[dict[str, Any]], T]
    on_change: OnChange[T]
    #: A kind only some clusters serve (a CRD such as KEDA's ScaledObject): where listing it
    #: answers 404 the informer counts it as listed with no objects, and looks again every
    #: ``WatchTimings.absent_seconds``; ``on_presence(namespace, served)`` when that changes.
    optional: bool = False
    on_presence: Callable[[str | None, bool], None] | None = None


@dataclass(frozen=True)
class WatchTimings:
    #: Length of one watch request (the server ends it; the informer resumes from its version).
    watch_seconds: int = 300
    #: A watch that delivers nothing (not even a bookmark) for this long is dropped and resumed.
    silence_seconds: float = 360.0
    #: How often an optional kind that is not served is looked for again.
    absent_seconds: float = 30.0


DEFAULT_TIMINGS: Final = WatchTimings()


class Informer(Generic[T]):
    """One kind in one namespace (``None``: every namespace), listed then watched."""

    def __init__(self, kube: KubeClient, kind: Kind[T], namespace: str | None, timings: WatchTimings) -> None:
        self._kube = kube
        self.kind = kind
        self.namespace = namespace
        self._timings = timings
        self.objects: dict[Key, T] = {}
        #: Set once the first listing is in :attr:`objects`; stays set across re-lists.
        self.listed = asyncio.Event()
        #: Why the last list or watch failed (None once one succeeds): what a waiting reconcile reports.
        self.error: str | None = None
        #: An optional kind the API server does not serve (see :attr:`Kind.optional`).
        self.absent = False
        self._version = ""
        self._task: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        scope = f"namespace {self.namespace}" if self.namespace is not None else "the cluster"
        return f"{self.kind.rtype.plural} in {scope}"

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"informer {self.where}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def get(self, namespace: str, name: str) -> T | None:
        return self.objects.get((namespace, name))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        failures = 0
        while True:
            try:
                if not self._version:
                    await self._list()
                started = loop.time()
                await self._watch()
                failures, self.error = 0, None
                if loop.time() - started < _RETRY.initial_s:
                    await asyncio.sleep(_RETRY.initial_s)  # a watch that ends at once must not spin
                continue
            except asyncio.CancelledError:
                raise
            except ApiError as e:
                if e.status == 410:  # the version is too old: list again
                    self._version = ""
                    continue
                if e.status == 404 and self.kind.optional:
                    self._version = ""
                    self._not_served()
                    await asyncio.sleep(self._timings.absent_seconds)
                    continue
                error: Exception = e
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                error = e
            failures += 1
            delay = _RETRY.around(failures)
            self.error = f"watching {self.where} failed: {error}"
            log.warning("%s; retrying in %.0fs", self.error, delay)
            await asyncio.sleep(delay)

    async def _list(self) -> None:
        found: dict[Key, T] = {}
        params = {"limit": str(_PAGE)}
        if self.kind.label_selector:
            params["labelSelector"] = self.kind.label_selector
        while True:
            page = await self._kube.list(self.kind.rtype, self.namespace, params=params)
            for item in page.get("items") or ():
                meta = item.get("metadata") or {}
                found[(meta.get("namespace") or "", meta.get("name") or "")] = self.kind.transform(item)
            more = (page.get("metadata") or {}).get("continue")
            if not more:
                break
            params = {**params, "continue": more}
        before, self.objects = self.objects, found
        self._version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        self.error = None
        self.listed.set()
        if self.absent:
            self.absent = False
            log.info("%s are served now", self.where)
            if self.kind.on_presence is not None:
                self.kind.on_presence(self.namespace, True)
        on_change = self.kind.on_change
        for key in before.keys() | found.keys():
            old, new = before.get(key), found.get(key)
            if old != new:
                on_change(key[0], key[1], old, new)

    def _not_served(self) -> None:
        """The kind is not served (its CRD is not installed): no objects, and say so once."""
        before, self.objects = self.objects, {}
        self.error = None
        first = not self.listed.is_set()
        self.listed.set()
        for key, old in before.items():
            self.kind.on_change(key[0], key[1], old, None)
        if not self.absent:
            self.absent = True
            log.info(
                "%s are not served (is the CRD installed?); looking again every %.0fs",
                self.where,
                self._timings.absent_seconds,
            )
            if not first and self.kind.on_presence is not None:
                self.kind.on_presence(self.namespace, False)

    async def _watch(self) -> None:
        params = {
            "resourceVersion": self._version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self._timings.watch_seconds),
        }
        if self.kind.label_selector:
            params["labelSelector"] = self.kind.label_selector
        objects, transform, on_change = self.objects, self.kind.transform, self.kind.on_change
        async for event in self._kube.watch(
            self.kind.rtype, self.namespace, params, accept="application/json", timeout=self._timings.silence_seconds
        ):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError(int(obj.get("code") or 500), str(obj.get("reason") or ""), str(obj.get("message") or ""))
            meta = obj.get("metadata") or {}
            if version := meta.get("resourceVersion"):
                self._version = str(version)
            if kind == "BOOKMARK":
                continue
            key = (meta.get("namespace") or "", meta.get("name") or "")
            old = objects.get(key)
            if kind == "DELETED":
                if key in objects:
                    del objects[key]
                    on_change(key[0], key[1], old, None)
                continue
            new = objects[key] = transform(obj)
            if old != new:
                on_change(key[0], key[1], old, new)


class InformerSet:
    """An informer per kind for each watched namespace (or for the cluster)."""

    def __init__(
        self, kube: KubeClient, kinds: Mapping[str, Kind[Any]], timings: WatchTimings = DEFAULT_TIMINGS
    ) -> None:
        self._kube = kube
        self._kinds = kinds
        self._timings = timings
        #: namespace (None: the cluster) → kind name → its informer.
        self._scopes: dict[str | None, dict[str, Informer[Any]]] = {}
        self._revised = asyncio.Event()
        self._stopping: set[asyncio.Task[None]] = set()

    def follow(self, namespaces: Collection[str | None]) -> list[str]:
        """Watch exactly ``namespaces`` (``None``: the whole cluster); returns the namespaces no
        longer watched (their objects are forgotten; the caller drops what it derived from them)."""
        wanted = set(namespaces)
        gone = [ns for ns in self._scopes if ns not in wanted]
        started = wanted - self._scopes.keys()
        for ns in gone:
            for informer in self._scopes.pop(ns).values():
                task = asyncio.create_task(informer.stop())
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
        for ns in started:
            scope = self._scopes[ns] = {
                name: Informer(self._kube, kind, ns, self._timings) for name, kind in self._kinds.items()
            }
            for informer in scope.values():
                informer.start()
        if gone or started:
            self._revised.set()  # wake whoever waits for a namespace to be watched
            self._revised = asyncio.Event()
        return [ns for ns in gone if ns is not None]

    def informer(self, kind: str, namespace: str) -> Informer[Any] | None:
        scope = self._scopes.get(namespace) or self._scopes.get(None)
        return None if scope is None else scope[kind]

    def get(self, kind: str, namespace: str, name: str) -> Any:
        informer = self.informer(kind, namespace)
        return None if informer is None else informer.get(namespace, name)

    def served(self, kind: str, namespace: str) -> bool:
        """Whether the API server serves ``kind`` (always, but for an optional kind found
        missing at the last listing)."""
        informer = self.informer(kind, namespace)
        return informer is None or not informer.absent

    async def wait_listed(self, namespace: str, timeout: float) -> None:
        """Until every kind of ``namespace`` has been listed once; :class:`NotListedError` after
        ``timeout`` seconds (naming what failed, when something did)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            scope = self._scopes.get(namespace) or self._scopes.get(None)
            if scope is not None:
                waiting = [i for i in scope.values() if not i.listed.is_set()]
                if not waiting:
                    return
                events = [asyncio.ensure_future(i.listed.wait()) for i in waiting]
            else:
                events = [asyncio.ensure_future(self._revised.wait())]
            remaining = deadline - loop.time()
            try:
                if remaining > 0:
                    await asyncio.wait(events, timeout=remaining, return_when=asyncio.ALL_COMPLETED)
            finally:
                for e in events:
                    e.cancel()
            if loop.time() >= deadline:
                errors = [i.error for i in (scope or {}).values() if i.error]
                raise NotListedError(namespace, errors)

    def healthy(self) -> tuple[bool, str]:
        stopped = [i.where for scope in self._scopes.values() for i in scope.values() if not i.running()]
        if stopped:
            return False, f"the informers of {', '.join(stopped)} have stopped"
        return True, f"{sum(len(s) for s in self._scopes.values())} informers"

    async def stop(self) -> None:
        informers = [i for scope in self._scopes.values() for i in scope.values()]
        self._scopes.clear()
        await asyncio.gather(*(i.stop() for i in informers), *self._stopping, return_exceptions=True)


class NotListedError(Exception):
    """The objects of a namespace are not (yet) known: a reconcile cannot compare anything."""

    def __init__(self, namespace: str, errors: Collection[str]) -> None:
        detail = "; ".join(errors) if errors else "the first listing is still running"
        super().__init__(f"the operator does not know the objects of namespace {namespace} yet: {detail}")
        self.namespace = namespace
