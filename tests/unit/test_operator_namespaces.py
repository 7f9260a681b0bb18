"""The operator's guards around kopf's namespace orchestration."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from kopf._core.reactor import observation, orchestration

from srs_operator import namespaces

pytestmark = pytest.mark.unit


def test_a_lost_revision_notice_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # An orchestrator that, like kopf's, acts only on a notice: it saw the new namespace's
    # notice lost, and waits for the next one. The nudge must deliver it within its interval.
    async def orchestrator(*, insights: Any, **_: Any) -> None:
        async with insights.revised:
            await insights.revised.wait()

    monkeypatch.setattr(orchestration, "orchestrator", orchestrator)
    namespaces.nudge_lost_revisions(interval=0.05)
    namespaces.nudge_lost_revisions(interval=0.05)  # idempotent: wrapped once

    async def main() -> None:
        insights = SimpleNamespace(revised=asyncio.Condition())
        await asyncio.wait_for(orchestration.orchestrator(insights=insights), timeout=2)

    asyncio.run(main())
    assert getattr(orchestration.orchestrator, "_srs_nudged", False)


def test_listeners_hear_each_namespace_whose_streams_kopf_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    stopped_by_kopf: list[set[str | None]] = []

    async def terminate_redundancies(*, remaining_namespaces: Any, **_: Any) -> None:
        stopped_by_kopf.append(set(remaining_namespaces))

    monkeypatch.setattr(orchestration, "terminate_redundancies", terminate_redundancies)
    namespaces.release_vanished_watch_toggles()
    heard: list[str] = []
    unsubscribe = namespaces.on_namespace_unwatched(heard.append)

    class Toggles(list[Any]):
        async def drop_toggles(self, toggles: Any) -> None:
            raise AssertionError("no toggle to drop")

        def is_on(self) -> bool:
            return True

    class Key(NamedTuple):  # kopf's EnsembleKey: a stream per resource and namespace
        resource: str
        namespace: str | None

    key = Key

    streams = [key("supportagents", "team-a"), key("pods", "team-a"), key("supportagents", "team-b"), key("crds", None)]
    ensemble = SimpleNamespace(watcher_tasks={k: None for k in streams}, operator_indexed=Toggles())

    async def main() -> None:
        await orchestration.terminate_redundancies(
            remaining_resources={"supportagents", "pods", "crds"},
            remaining_namespaces={"team-b", None},
            ensemble=ensemble,
        )
        ensemble._srs_watchdog.cancel()

    try:
        asyncio.run(main())
    finally:
        unsubscribe()
    assert stopped_by_kopf == [{"team-b", None}]  # kopf's own termination still runs
    assert heard == ["team-a"]  # once, although two of its streams stopped


def test_a_namespace_only_in_the_watchs_own_listing_is_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    # kopf ignores the listing its namespace watch starts with; a namespace created since
    # kopf's first listing is only there, and must be watched all the same.
    ignored: list[Any] = []

    async def kopfs_own(*, raw_event: Any, **_: Any) -> None:
        ignored.append(raw_event)

    monkeypatch.setattr(observation, "process_discovered_namespace_event", kopfs_own)
    namespaces.adopt_namespaces_listed_by_the_watch()

    def listed(name: str) -> dict[str, Any]:
        return {"type": None, "object": {"metadata": {"name": name}}}

    async def main() -> set[str]:
        insights = SimpleNamespace(revised=asyncio.Condition(), namespaces={"team-a"})
        process = observation.process_discovered_namespace_event
        for name in ("team-a", "team-new", "kube-system"):
            await process(raw_event=listed(name), namespaces=["team-*"], insights=insights)
        await process(raw_event={**listed("team-b"), "type": "ADDED"}, namespaces=["team-*"], insights=insights)
        return set(insights.namespaces)

    assert asyncio.run(main()) == {"team-a", "team-new"}  # kube-system does not match the pattern
    assert [e["type"] for e in ignored] == ["ADDED"]  # real events still go to kopf's own handling
