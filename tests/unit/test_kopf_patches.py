"""The patches of kopf's internals (``srs_operator.kopf_patches``): one test per patched behaviour."""

from __future__ import annotations

import asyncio
from importlib import metadata
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from kopf._cogs.aiokits import aiotoggles
from kopf._core.reactor import observation, orchestration

from srs_operator import kopf_patches

pytestmark = pytest.mark.unit


def test_a_lost_revision_notice_is_sent_again(monkeypatch: pytest.MonkeyPatch) -> None:
    # An orchestrator that, like kopf's, acts only on a notice: it saw the new namespace's
    # notice lost, and waits for the next one. The nudge must deliver it within its interval.
    async def orchestrator(*, insights: Any, **_: Any) -> None:
        async with insights.revised:
            await insights.revised.wait()

    monkeypatch.setattr(orchestration, "orchestrator", orchestrator)
    kopf_patches.nudge_lost_revisions(interval=0.05)
    kopf_patches.nudge_lost_revisions(interval=0.05)  # idempotent: wrapped once

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
    kopf_patches.release_vanished_watch_toggles()
    heard: list[str] = []
    unsubscribe = kopf_patches.on_namespace_unwatched(heard.append)

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
    kopf_patches.adopt_namespaces_listed_by_the_watch()

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


def test_kopf_is_the_release_the_patches_were_written_for() -> None:
    # The patches wrap private kopf functions: a kopf upgrade moves this pin only after the
    # tests of this module pass against it.
    assert metadata.version("kopf") == kopf_patches.KOPF_VERSION


def test_the_index_toggles_of_streams_kopf_stops_are_dropped_before_it_stops_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # kopf's real toggle set: no handler runs until every toggle is on; a stream stopped before
    # its listing finished never turns its toggle on.
    seen_by_kopf: list[list[str | None]] = []

    async def terminate_redundancies(*, ensemble: Any, **_: Any) -> None:
        seen_by_kopf.append(sorted(t.name or "" for t in ensemble.operator_indexed))

    monkeypatch.setattr(orchestration, "terminate_redundancies", terminate_redundancies)
    kopf_patches.release_vanished_watch_toggles()

    class Key(NamedTuple):
        resource: str
        namespace: str | None

    async def main() -> bool:
        indexed = aiotoggles.ToggleSet(all)
        await indexed.make_toggle(False, name="supportagents@team-gone")
        await indexed.make_toggle(True, name="supportagents@team-b")
        ensemble = SimpleNamespace(
            watcher_tasks={Key("supportagents", "team-gone"): None, Key("supportagents", "team-b"): None},
            operator_indexed=indexed,
        )
        await orchestration.terminate_redundancies(
            remaining_resources={"supportagents"}, remaining_namespaces={"team-b"}, ensemble=ensemble
        )
        ensemble._srs_watchdog.cancel()
        return indexed.is_on()

    assert asyncio.run(main())  # handlers may run again
    assert seen_by_kopf == [["supportagents@team-b"]]  # dropped before kopf's own termination


def test_an_object_toggle_left_off_by_a_cancelled_worker_is_released(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kopf_patches, "STUCK_AFTER", 0.05)

    async def main() -> tuple[bool, list[str | None]]:
        indexed = aiotoggles.ToggleSet(all)
        stream = await indexed.make_toggle(False, name="supportagents@team-a")  # still listing: not stuck
        await indexed.make_toggle(False, name="('team-a', 'billing')")  # a worker that never indexed it
        watchdog = asyncio.create_task(kopf_patches._release_stuck_object_toggles(indexed, interval=0.01))
        deadline = asyncio.get_running_loop().time() + 5
        while len(indexed) > 1 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        left = [t.name for t in indexed]
        await stream.turn_to(True)  # the stream's listing completes: the watchdog's work is done
        await asyncio.wait_for(watchdog, timeout=2)
        return indexed.is_on(), left

    fully_indexed, left = asyncio.run(main())
    assert left == ["supportagents@team-a"]
    assert fully_indexed


def test_no_handler_needs_the_last_handled_state_that_the_operator_never_builds() -> None:
    # main.NoDiffBase skips kopf's per-event copy of every object: right only while no
    # handler tells creations from updates (on.create/update/resume/delete) and no daemon
    # or timer runs. Adding one must change the storage back, and this test says so.
    import kopf

    from srs_operator import main

    registry = kopf.get_default_registry()
    assert main.HANDLER_MODULES  # every handler module is imported, so registered
    assert not registry._changing.get_all_handlers(), "a changing handler needs kopf's diff base: drop NoDiffBase"
    assert not registry._spawning.get_all_handlers(), "a daemon or timer needs kopf's diff base: drop NoDiffBase"
    storage = main.NoDiffBase(prefix="srs.dev", key="last-handled-configuration")
    assert storage.build(body=kopf.Body({"metadata": {"name": "a"}, "spec": {"x": 1}})) == {}


def test_watch_events_are_decoded_by_orjson_into_the_same_objects() -> None:
    import json

    import orjson
    from kopf._cogs.clients import api

    kopf_patches.decode_watch_events_with_orjson()
    kopf_patches.decode_watch_events_with_orjson()  # idempotent
    assert api.json.loads is orjson.loads  # type: ignore[attr-defined]
    assert api.json.dumps({"a": 1}) == json.dumps({"a": 1})  # type: ignore[attr-defined]  # the rest is json's
    line = json.dumps(
        {
            "type": "MODIFIED",
            "object": {
                "kind": "Deployment",
                "metadata": {"name": "billing", "resourceVersion": "12345", "generation": 2**63 - 1},
                "spec": {"replicas": 3, "template": {"metadata": {"annotations": {"note": "héllo \\u2028 ✓"}}}},
                "status": {"conditions": [{"type": "Available", "status": "True"}], "ratio": 0.1},
            },
        }
    ).encode()
    assert api.json.loads(line.decode("utf-8")) == json.loads(line)  # type: ignore[attr-defined]


def test_listeners_hear_what_kopf_watches_each_time_it_matches_its_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    matched: list[str] = []

    async def adjust_tasks(*, insights: Any, **_: Any) -> None:
        matched.append("kopf")  # kopf's own matching runs first, untouched

    monkeypatch.setattr(orchestration, "adjust_tasks", adjust_tasks)
    kopf_patches.report_watched_namespaces()
    kopf_patches.report_watched_namespaces()  # idempotent: wrapped once
    heard: list[frozenset[str | None]] = []

    def failing(namespaces: frozenset[str | None]) -> None:
        raise RuntimeError("a listener's bug")

    unsubscribe_failing = kopf_patches.on_namespaces_watched(failing)
    unsubscribe = kopf_patches.on_namespaces_watched(heard.append)

    async def main() -> None:
        insights = SimpleNamespace(namespaces={"team-a", "team-b"})
        await orchestration.adjust_tasks(insights=insights, settings=None)
        insights.namespaces = {None}
        await orchestration.adjust_tasks(insights=insights, settings=None)

    try:
        asyncio.run(main())
    finally:
        unsubscribe()
        unsubscribe_failing()
    assert matched == ["kopf", "kopf"]
    assert heard == [frozenset({"team-a", "team-b"}), frozenset({None})]  # a failing listener stops no one
