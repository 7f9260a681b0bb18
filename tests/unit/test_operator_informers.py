"""The operator's own informers (``clients/informers.py``) and what the SupportAgent
reconcile reads through them (``services/supportagent_watches.py``), on a fake of the
API's list and watch. Against the real API server they run in every SupportAgent
scenario of ``tests/integration`` (the operator watches children only through them)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest

from srs_operator.clients.informers import Informer, InformerSet, Kind, NotListedError, WatchTimings
from srs_operator.clients.kube import CONFIGMAPS, PODS, ApiError, ResourceType
from srs_operator.services.supportagent_watches import ChildWatches

pytestmark = pytest.mark.unit

END = "end of the watch"


def obj(name: str, version: str, namespace: str = "team-a", **extra: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": namespace, "resourceVersion": version, **extra.pop("meta", {})}
    return {"metadata": meta, **extra}


class FakeApi:
    """List pages handed out in order; watch events from a queue (an exception is raised,
    :data:`END` ends the stream as the server does after ``timeoutSeconds``)."""

    def __init__(self, *pages: dict[str, Any] | Exception) -> None:
        self.pages = list(pages)
        self.events: asyncio.Queue[dict[str, Any] | Exception | str] = asyncio.Queue()
        self.lists: list[dict[str, str]] = []
        self.watches: list[dict[str, str]] = []

    async def list(
        self, rtype: ResourceType, namespace: str | None, *, accept: str = "", params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        self.lists.append(dict(params or {}))
        page = self.pages.pop(0)
        if isinstance(page, Exception):
            raise page
        return page

    async def watch(
        self, rtype: ResourceType, namespace: str | None, params: Mapping[str, str], *, accept: str, timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        self.watches.append(dict(params))
        while True:
            item = await self.events.get()
            if item == END:
                return
            if isinstance(item, Exception):
                raise item
            assert isinstance(item, dict)
            yield item


def page(version: str, *items: dict[str, Any], more: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": version}
    if more:
        meta["continue"] = more
    return {"metadata": meta, "items": list(items)}


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.005)


Change = tuple[str, str, Any, Any]


def recording(
    changes: list[Change], transform: Callable[[dict[str, Any]], Any] = lambda o: o["metadata"]["resourceVersion"]
) -> Kind[Any]:
    return Kind(CONFIGMAPS, "app=x", transform, lambda ns, name, old, new: changes.append((ns, name, old, new)))


def test_lists_page_by_page_then_watches_from_the_listings_version() -> None:
    async def main() -> None:
        changes: list[Change] = []
        api = FakeApi(page("", obj("a", "5"), more="next"), page("10", obj("b", "7")))
        informer = Informer(api, recording(changes), "team-a", WatchTimings())  # type: ignore[arg-type]
        informer.start()
        await asyncio.wait_for(informer.listed.wait(), 2)
        assert api.lists == [
            {"limit": "500", "labelSelector": "app=x"},
            {"limit": "500", "labelSelector": "app=x", "continue": "next"},
        ]
        assert sorted(changes) == [("team-a", "a", None, "5"), ("team-a", "b", None, "7")]
        await until(lambda: len(api.watches) == 1)
        assert api.watches[0]["resourceVersion"] == "10" and api.watches[0]["labelSelector"] == "app=x"

        changes.clear()
        for event in (
            {"type": "MODIFIED", "object": obj("a", "11")},
            {"type": "ADDED", "object": obj("c", "12")},
            {"type": "DELETED", "object": obj("b", "13")},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}},
            END,
        ):
            api.events.put_nowait(event)
        await until(lambda: len(api.watches) == 2)
        assert changes == [("team-a", "a", "5", "11"), ("team-a", "c", None, "12"), ("team-a", "b", "7", None)]
        assert informer.objects == {("team-a", "a"): "11", ("team-a", "c"): "12"}
        # The stream ended as the server ends it: resumed from the last version seen, no new listing.
        assert api.watches[1]["resourceVersion"] == "20" and len(api.lists) == 2
        await informer.stop()

    asyncio.run(main())


def test_an_update_that_changes_nothing_kept_calls_no_one() -> None:
    async def main() -> None:
        changes: list[Change] = []
        kind = recording(changes, transform=lambda o: (o.get("status") or {}).get("phase"))
        api = FakeApi(page("1", obj("p", "1", status={"phase": "Pending"})))
        informer = Informer(api, kind, "team-a", WatchTimings())  # type: ignore[arg-type]
        informer.start()
        await until(lambda: len(api.watches) == 1)
        api.events.put_nowait({"type": "MODIFIED", "object": obj("p", "2", status={"phase": "Pending"})})
        api.events.put_nowait({"type": "MODIFIED", "object": obj("p", "3", status={"phase": "Running"})})
        await until(lambda: len(changes) == 2)
        assert changes == [("team-a", "p", None, "Pending"), ("team-a", "p", "Pending", "Running")]
        await informer.stop()

    asyncio.run(main())


def test_an_expired_version_lists_again_and_reports_only_what_differs() -> None:
    async def main() -> None:
        changes: list[Change] = []
        api = FakeApi(
            page("10", obj("a", "1"), obj("b", "2"), obj("same", "3")),
            page("30", obj("b", "22"), obj("c", "23"), obj("same", "3")),
        )
        informer = Informer(api, recording(changes), "team-a", WatchTimings())  # type: ignore[arg-type]
        informer.start()
        await until(lambda: len(api.watches) == 1)
        changes.clear()
        # What the API server sends when the version is too old for its watch cache.
        api.events.put_nowait({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}})
        await until(lambda: len(api.watches) == 2)
        assert sorted(changes, key=str) == sorted(
            [("team-a", "a", "1", None), ("team-a", "b", "2", "22"), ("team-a", "c", None, "23")], key=str
        )
        assert api.watches[1]["resourceVersion"] == "30"
        await informer.stop()

    asyncio.run(main())


def test_a_namespace_that_cannot_be_listed_says_why_to_whoever_waits_for_it() -> None:
    async def main() -> None:
        forbidden = ApiError(403, "Forbidden", 'deployments.apps is forbidden: User "srs" cannot list')
        api = FakeApi(forbidden, forbidden, forbidden)
        informers = InformerSet(api, {"Deployment": recording([])})  # type: ignore[arg-type]
        informers.follow({"team-a"})
        with pytest.raises(NotListedError, match=r"403 Forbidden: deployments\.apps is forbidden"):
            await informers.wait_listed("team-a", timeout=0.3)
        assert informers.healthy()[0]  # still trying (with backoff), not dead
        await informers.stop()

    asyncio.run(main())


def test_follows_the_namespaces_it_is_given_and_forgets_the_others() -> None:
    async def main() -> None:
        apis: dict[str | None, FakeApi] = {
            "team-a": FakeApi(page("1", obj("a", "1"))),
            "team-b": FakeApi(page("1", obj("b", "1", namespace="team-b"))),
            None: FakeApi(page("1", obj("a", "1"), obj("b", "1", namespace="team-b"))),
        }

        class PerNamespace:
            def __getattr__(self, verb: str) -> Any:
                return lambda rtype, ns, *a, **kw: getattr(apis[ns], verb)(rtype, ns, *a, **kw)

        informers = InformerSet(PerNamespace(), {"ConfigMap": recording([])})  # type: ignore[arg-type]
        waiting = asyncio.create_task(informers.wait_listed("team-b", timeout=2))
        await asyncio.sleep(0.01)
        assert informers.follow({"team-a", "team-b"}) == []
        await waiting  # a reconcile that came first waits for the namespace to be watched and listed
        assert informers.get("ConfigMap", "team-b", "b") == "1"
        assert informers.follow({"team-a"}) == ["team-b"]
        assert informers.get("ConfigMap", "team-b", "b") is None
        assert informers.get("ConfigMap", "team-a", "a") == "1"
        assert informers.follow({None}) == ["team-a"]  # cluster-wide: one informer for every namespace
        await informers.wait_listed("team-b", timeout=2)
        assert informers.get("ConfigMap", "team-b", "b") == "1"
        assert informers.healthy() == (True, "1 informers")
        await informers.stop()

    asyncio.run(main())


def pod(name: str, version: str, agent: str, waiting: str | None = None) -> dict[str, Any]:
    statuses = (
        [{"name": "agent", "state": {"waiting": {"reason": waiting, "message": "no such image"}}}] if waiting else []
    )
    return obj(
        name, version, meta={"labels": {"app.kubernetes.io/instance": agent}}, status={"containerStatuses": statuses}
    )


def test_an_agent_hears_of_its_pods_only_when_their_problems_change() -> None:
    async def main() -> None:
        pods = FakeApi(page("1", pod("billing-1", "1", "billing")))
        config_maps = FakeApi(page("1"))
        by_kind = {PODS.plural: pods, CONFIGMAPS.plural: config_maps}

        class Api:
            def __getattr__(self, verb: str) -> Any:
                def call(rtype: ResourceType, *a: Any, **kw: Any) -> Any:
                    return getattr(by_kind.get(rtype.plural) or FakeApi(page("1")), verb)(rtype, *a, **kw)

                return call

        watches = ChildWatches(Api())  # type: ignore[arg-type]
        heard: list[str] = []
        watches.bind(lambda ns, agent: heard.append(agent), lambda ns, name: heard.append(f"configmap {name}"))
        watches.follow({"team-a"})
        await watches.wait_listed("team-a")
        await until(lambda: len(pods.watches) == 1)
        assert heard == []  # a pod without a problem changes nothing the agent reports

        pods.events.put_nowait({"type": "MODIFIED", "object": pod("billing-1", "2", "billing")})  # e.g. now Running
        pods.events.put_nowait({"type": "MODIFIED", "object": pod("billing-1", "3", "billing", "ImagePullBackOff")})
        await until(lambda: heard == ["billing"])
        assert watches.pod_problems("team-a", "billing") == [
            "pod billing-1: container agent: ImagePullBackOff: no such image"
        ]
        pods.events.put_nowait({"type": "MODIFIED", "object": pod("billing-1", "4", "billing", "ImagePullBackOff")})
        pods.events.put_nowait({"type": "DELETED", "object": pod("billing-1", "5", "billing", "ImagePullBackOff")})
        await until(lambda: heard == ["billing", "billing"])  # the same problem again: nothing; gone: cleared
        assert watches.pod_problems("team-a", "billing") == []

        config_maps.events.put_nowait({"type": "ADDED", "object": obj("prompts", "6")})
        owned = obj(
            "billing",
            "7",
            meta={"labels": {"app.kubernetes.io/managed-by": "srs-operator", "app.kubernetes.io/instance": "billing"}},
        )
        config_maps.events.put_nowait({"type": "ADDED", "object": owned})
        await until(lambda: len(heard) == 5)
        assert heard[2:] == ["configmap prompts", "configmap billing", "billing"]
        assert watches.config_map_version("team-a", "prompts") == "6"
        assert watches.child("ConfigMap", "team-a", "prompts") is None  # the user's: its version only
        assert (watches.child("ConfigMap", "team-a", "billing") or {})["metadata"]["name"] == "billing"
        await watches.stop()

    asyncio.run(main())


def test_an_optional_kind_that_is_not_served_counts_as_listed_empty_until_it_appears() -> None:
    async def main() -> None:
        changes: list[Change] = []
        presence: list[tuple[str | None, bool]] = []
        not_found = ApiError(404, "NotFound", "the server could not find the requested resource")
        api = FakeApi(not_found, not_found, page("5", obj("billing", "4")))
        kind = Kind(
            CONFIGMAPS,
            None,
            lambda o: o["metadata"]["resourceVersion"],
            lambda ns, name, old, new: changes.append((ns, name, old, new)),
            optional=True,
            on_presence=lambda ns, served: presence.append((ns, served)),
        )
        informers = InformerSet(api, {"ScaledObject": kind}, WatchTimings(absent_seconds=0.01))  # type: ignore[arg-type]
        informers.follow(["team-a"])
        # A reconcile is not held up by a kind the cluster does not serve.
        await informers.wait_listed("team-a", timeout=2)
        assert not informers.served("ScaledObject", "team-a")
        # Installed later (its CRD): found at the next look, and the watchers are told.
        await until(lambda: presence == [("team-a", True)])
        assert informers.served("ScaledObject", "team-a")
        assert changes == [("team-a", "billing", None, "4")]
        await informers.stop()

    asyncio.run(main())


def test_a_kind_that_is_not_optional_is_not_taken_for_missing_on_a_404() -> None:
    async def main() -> None:
        api = FakeApi(ApiError(404, "NotFound", "no such resource"), page("5"))
        informers = InformerSet(api, {"ConfigMap": recording([])}, WatchTimings(absent_seconds=0.01))  # type: ignore[arg-type]
        informers.follow(["team-a"])
        with pytest.raises(NotListedError, match="no such resource"):
            await informers.wait_listed("team-a", timeout=0.3)
        await informers.stop()

    asyncio.run(main())
