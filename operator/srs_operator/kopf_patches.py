"""Every patch of kopf's internals, in one place: keeping kopf's per-namespace watching from going deaf.

Written for kopf :data:`KOPF_VERSION` (pinned in ``pyproject.toml`` and the lock file);
:func:`apply` installs them all and warns when another kopf runs. Each patch wraps one
private kopf function, is idempotent, and has its own test in
``tests/unit/test_kopf_patches.py`` (a kopf upgrade must pass those before the pin moves):

- :func:`release_vanished_watch_toggles` — ``orchestration.terminate_redundancies``;
- :func:`adopt_namespaces_listed_by_the_watch` — ``observation.process_discovered_namespace_event``;
- :func:`nudge_lost_revisions` — ``orchestration.orchestrator``;
- :func:`_release_stuck_object_toggles` — started by the first, on ``operator_indexed``;
- :func:`decode_watch_events_with_orjson` — ``kopf._cogs.clients.api.json`` (speed only);
- :func:`report_watched_namespaces` — ``orchestration.adjust_tasks`` (the operator's own
  informers watch the namespaces kopf watches: :func:`on_namespaces_watched`).

Why kopf could go deaf: with namespace patterns, kopf runs one watch stream per kind and
matching namespace (``orchestration.spawn_missing_watchers``) and, for every indexed
kind, adds a "not yet indexed" toggle to ``operator_indexed``; each stream drops its
toggle when its initial listing is done, and *no handler runs anywhere* until every
toggle is dropped (so that indexes are complete). When a namespace disappears,
``orchestration.terminate_redundancies`` cancels that namespace's streams but leaves
their toggles in place. A namespace deleted while its streams were still listing — a
fresh operator starting amid namespace churn, the issue-10 benchmark's "0 of 1,000
Ready after 300 s" — therefore leaves a toggle that is never dropped: every handler
waits forever, and kopf's own liveness stays green.

:func:`release_vanished_watch_toggles` wraps ``terminate_redundancies`` so that the
toggles of the streams it stops are dropped first (a vanished namespace has nothing left
to index). First, not after: stopping a stream waits (``queueing.exit_timeout``) for its
workers, which may themselves be waiting for every index to be complete. Running kopf
cluster-wide and filtering in the handlers would avoid the per-namespace streams
altogether, but kopf then removes the finalizers of objects that its filters exclude —
another operator's TicketTopics — so the streams stay per namespace.
Objects seen while the operator is not yet fully indexed get per-object toggles, and a
worker cancelled with its stream before it indexed its object leaks one too;
:func:`_release_stuck_object_toggles` drops those that stay off for :data:`STUCK_AFTER`
seconds (indexing one object takes milliseconds). :mod:`srs_operator.liveness` remains
the safety net: an object waiting for its handler past a bound fails the liveness probe.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection
from importlib import metadata
from typing import Any, Final

import orjson
from kopf._cogs.clients import api as kopf_api
from kopf._core.reactor import observation, orchestration

log = logging.getLogger(__name__)

#: The kopf release whose internals these patches were written against (and tested with).
KOPF_VERSION: Final = "1.45.2"


def apply() -> None:
    """Install every patch (idempotent); warn when the running kopf is not :data:`KOPF_VERSION`."""
    running = metadata.version("kopf")
    if running != KOPF_VERSION:
        log.warning(
            "kopf %s runs, but srs_operator.kopf_patches was written for kopf %s: "
            "run tests/unit/test_kopf_patches.py against it",
            running,
            KOPF_VERSION,
        )
    release_vanished_watch_toggles()
    adopt_namespaces_listed_by_the_watch()
    nudge_lost_revisions()
    decode_watch_events_with_orjson()
    report_watched_namespaces()


#: A per-object index toggle still off after this long belongs to a worker that is gone.
STUCK_AFTER = 20.0

#: Called with each namespace kopf stops watching (deleted, or no longer matching).
_unwatched_listeners: list[Callable[[str], None]] = []


def on_namespace_unwatched(listener: Callable[[str], None]) -> Callable[[], None]:
    """Call ``listener(namespace)`` whenever kopf stops watching a namespace; returns the
    function that unsubscribes it.

    kopf's indexes keep the objects of a namespace whose streams it stopped (it never saw
    their deletion): whoever iterates an index must forget that namespace here, or it keeps
    reconciling, and writing to, objects that are gone."""
    _unwatched_listeners.append(listener)
    return lambda: _unwatched_listeners.remove(listener)


#: Called with every namespace kopf watches (``None``: the cluster), each time kopf revises them.
_watched_listeners: list[Callable[[frozenset[str | None]], None]] = []


def on_namespaces_watched(listener: Callable[[frozenset[str | None]], None]) -> Callable[[], None]:
    """Call ``listener(namespaces)`` with what kopf watches — the namespaces matching the
    operator's patterns, or ``{None}`` cluster-wide — each time kopf matches its watch
    streams to them (on every namespace change, and every :data:`REVISION_NUDGE_SECONDS`);
    returns the function that unsubscribes it. Whatever watches more kinds beside kopf
    follows kopf's namespace decisions through this, including the patches above."""
    _watched_listeners.append(listener)
    return lambda: _watched_listeners.remove(listener)


def report_watched_namespaces() -> None:
    """Make kopf tell :func:`on_namespaces_watched` listeners what it watches (idempotent)."""
    original: Callable[..., Any] = orchestration.adjust_tasks
    if getattr(original, "_srs_reports_namespaces", False):
        return

    async def adjust_tasks(*, insights: Any, **kwargs: Any) -> None:
        await original(insights=insights, **kwargs)
        namespaces = frozenset(insights.namespaces)
        for listener in list(_watched_listeners):
            try:
                listener(namespaces)
            except Exception:  # a listener's bug must not stop kopf's orchestration
                log.exception("a listener failed on the watched namespaces")

    adjust_tasks._srs_reports_namespaces = True  # type: ignore[attr-defined]
    orchestration.adjust_tasks = adjust_tasks


class _WatchJson:
    """The ``json`` of kopf's API client module, whose only use there is decoding each line of a
    watch stream, with orjson's ``loads`` (the rest is the standard module's)."""

    loads = staticmethod(orjson.loads)

    def __getattr__(self, name: str) -> Any:
        return getattr(json, name)


def decode_watch_events_with_orjson() -> None:
    """Decode kopf's watch events with orjson (idempotent): the standard ``json.loads`` of every
    event was a tenth of the operator's CPU with a thousand agents starting. The same objects
    come out: what the API server sends is plain JSON with integers within 64 bits."""
    if not isinstance(getattr(kopf_api, "json", None), _WatchJson):
        setattr(kopf_api, "json", _WatchJson())  # noqa: B010 - a private global of kopf's


def release_vanished_watch_toggles() -> None:
    """Make kopf drop the "not yet indexed" toggles of the watch streams it stops (idempotent)."""
    original: Callable[..., Any] = orchestration.terminate_redundancies
    if getattr(original, "_srs_releases_toggles", False):
        return

    async def terminate_redundancies(
        *, remaining_resources: Collection[Any], remaining_namespaces: Collection[Any], ensemble: Any
    ) -> None:
        if not hasattr(ensemble, "_srs_watchdog"):
            ensemble._srs_watchdog = asyncio.create_task(
                _release_stuck_object_toggles(ensemble.operator_indexed), name="srs index-toggle watchdog"
            )
        stopped_keys = [
            key
            for key in ensemble.watcher_tasks
            if key.namespace not in remaining_namespaces or key.resource not in remaining_resources
        ]
        stopped = {f"{key.resource}@{key.namespace}" for key in stopped_keys}
        # Before the streams stop: stopping waits for their workers, and a worker may be waiting
        # for exactly these toggles (every index complete) before it can finish.
        leaked = [toggle for toggle in ensemble.operator_indexed if toggle.name in stopped]
        if leaked:
            log.info("released %d index toggles of watch streams stopped before their listing", len(leaked))
            await ensemble.operator_indexed.drop_toggles(leaked)
        await original(
            remaining_resources=remaining_resources, remaining_namespaces=remaining_namespaces, ensemble=ensemble
        )
        gone = {key.namespace for key in stopped_keys if key.namespace not in remaining_namespaces}
        for namespace in sorted(n for n in gone if n is not None):
            for listener in list(_unwatched_listeners):
                try:
                    listener(namespace)
                except Exception:  # a listener's bug must not stop kopf's orchestration
                    log.exception("a listener failed on namespace %s no longer watched", namespace)

    terminate_redundancies._srs_releases_toggles = True  # type: ignore[attr-defined]
    orchestration.terminate_redundancies = terminate_redundancies


def adopt_namespaces_listed_by_the_watch() -> None:
    """Make kopf add the namespaces its namespace watch lists when it (re)starts (idempotent).

    kopf's namespace observer lists the namespaces once to fill in what it watches, then
    starts a watch that lists them *again* and ignores that second listing (it expects no
    news). A namespace created between the two listings is in neither the first listing nor
    the watch's events: kopf never watches it, and its agents are never reconciled — which
    is what a namespace created right after the operator starts (a test, a GitOps sync)
    runs into. The same gap reopens whenever the watch restarts (expired resourceVersion)."""
    original: Callable[..., Any] = observation.process_discovered_namespace_event
    if getattr(original, "_srs_adopts_listing", False):
        return

    async def process_discovered_namespace_event(
        *, raw_event: Any, namespaces: Collection[Any], insights: Any, **kwargs: Any
    ) -> None:
        if raw_event["type"] is not None:
            await original(raw_event=raw_event, namespaces=namespaces, insights=insights, **kwargs)
            return
        async with insights.revised:
            known = set(insights.namespaces)
            observation.revise_namespaces(raw_events=[raw_event], insights=insights, namespaces=namespaces)
            if insights.namespaces != known:
                log.info("watching namespace %s, created while kopf started its namespace watch",
                         raw_event["object"]["metadata"]["name"])  # fmt: skip
                insights.revised.notify_all()

    process_discovered_namespace_event._srs_adopts_listing = True  # type: ignore[attr-defined]
    observation.process_discovered_namespace_event = process_discovered_namespace_event


#: How often kopf's orchestrator is made to re-check its watch streams against what it knows.
REVISION_NUDGE_SECONDS = 5.0


def nudge_lost_revisions(interval: float = REVISION_NUDGE_SECONDS) -> None:
    """Make kopf's orchestrator re-match its watch streams to the known namespaces every
    ``interval`` seconds (idempotent).

    The orchestrator waits for a revision notice and for its streams at once; when a stream
    ends at the moment a namespace event notifies it, it cancels the notified waiter and the
    notice is lost: the new namespace is known, but no stream is started for it until the
    next namespace event — for a lone new namespace, never (the operator ignores its agents).
    Re-sending the notice periodically bounds that to ``interval``; a match with nothing to
    change starts and stops nothing."""
    original: Callable[..., Any] = orchestration.orchestrator
    if getattr(original, "_srs_nudged", False):
        return

    async def orchestrator(*, insights: Any, **kwargs: Any) -> None:
        async def nudge() -> None:
            while True:
                await asyncio.sleep(interval)
                async with insights.revised:
                    insights.revised.notify_all()

        nudger = asyncio.create_task(nudge(), name="srs orchestrator nudge")
        try:
            await original(insights=insights, **kwargs)
        finally:
            nudger.cancel()
            await asyncio.gather(nudger, return_exceptions=True)

    orchestrator._srs_nudged = True  # type: ignore[attr-defined]
    orchestration.orchestrator = orchestrator


async def _release_stuck_object_toggles(operator_indexed: Any, interval: float = 5.0) -> None:
    """Drop per-object "not yet indexed" toggles that stayed off past :data:`STUCK_AFTER`.

    kopf gives each object seen before the operator is fully indexed a toggle, dropped by
    the object's worker once it indexed the object (a matter of milliseconds). A worker
    cancelled before that — its namespace vanished and its stream stopped — never drops
    it, and kopf stays deaf. Such a toggle is recognisable by its age alone.
    """
    first_seen: dict[Any, float] = {}
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        if operator_indexed.is_on():
            return  # fully indexed once: kopf stops creating these toggles for good
        now = loop.time()
        off = {t for t in operator_indexed if t.is_off() and str(t.name or "").startswith("(")}
        first_seen = {t: first_seen.get(t, now) for t in off}
        stuck = [t for t, since in first_seen.items() if now - since > STUCK_AFTER]
        if stuck:
            log.warning("released %d index toggles of objects whose workers ended before indexing them", len(stuck))
            await operator_indexed.drop_toggles(stuck)
