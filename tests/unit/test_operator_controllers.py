"""The controller shape both kinds share, on the TicketTopic controller and small fakes.

What a user observes through the API: the finalizer on exactly the TicketTopics whose
policy is Delete, a status written once and not again while nothing changes, a deletion
that waits for the agents that still use the topic, and the topic-usage read model the
SupportAgent controller reads too. The scenario tests on the real control plane and broker
(``tests/integration/test_tickettopic_*.py``) prove the same paths end to end.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from srs_operator.builders.tickettopic import Claim, claim_of
from srs_operator.clients.kube import ResourceType
from srs_operator.models.tickettopic import TicketTopic
from srs_operator.services.controller import ObjectKey
from srs_operator.services.tickettopic_settings import TopicSettings
from srs_operator.services.tickettopics import TicketTopicController
from srs_operator.services.topic_usage import TopicUsage
from srs_operator.services.workqueue import RetryLater
from srs_operator.services.written import WrittenObjects, snapshot
from srs_operator.settings import FINALIZER
from tests.unit.test_supportagent_controller import FakeEvents
from tests.unit.test_tickettopic_reconciler import FakeAdmin

pytestmark = pytest.mark.unit

NS = "team-a"


@dataclass
class FakeApi:
    """The API calls a controller makes, and its object cache, over one dict of TicketTopics."""

    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    agents: set[ObjectKey] = field(default_factory=set)
    writes: list[str] = field(default_factory=list)
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(100))

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        obj["metadata"]["resourceVersion"] = str(next(self.versions))
        self.objects[(obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
        return copy.deepcopy(obj)

    # -- KubeClient ----------------------------------------------------------------------------

    async def patch_status(self, rtype: ResourceType, ns: str, name: str, status: Mapping[str, Any]) -> dict[str, Any]:
        self.writes.append("status")
        obj = self.objects[(ns, name)]
        merged = {k: v for k, v in {**(obj.get("status") or {}), **status}.items() if v is not None}
        return self.put({**obj, "status": merged})

    async def merge_patch(self, rtype: ResourceType, ns: str, name: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        obj = self.objects[(ns, name)]
        assert patch["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
        self.writes.append("finalizers")
        meta = {**obj["metadata"], "finalizers": patch["metadata"]["finalizers"]}
        if not meta["finalizers"] and meta.get("deletionTimestamp"):
            del self.objects[(ns, name)]  # the API server lets it go
            return {**obj, "metadata": meta}
        return self.put({**obj, "metadata": meta})

    async def get(self, rtype: ResourceType, ns: str | None, name: str) -> dict[str, Any] | None:
        if (ns or "", name) in self.agents:
            return {"metadata": {"namespace": ns, "name": name}}
        return None

    async def close(self) -> None:
        return None


class Cache:
    """The cache side of :class:`FakeApi` (its ``get`` is the API's GET)."""

    def __init__(self, api: FakeApi) -> None:
        self._api = api

    def get(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return self._api.objects.get(key)

    def keys(self) -> Iterable[ObjectKey]:
        return list(self._api.objects)


def body(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "srs.dev/v1alpha1",
        "kind": "TicketTopic",
        "metadata": {"namespace": NS, "name": name, "uid": f"uid-{name}", "generation": 1,
                     "creationTimestamp": "2026-12-01T00:00:00Z"},
        "spec": spec,
    }  # fmt: skip


@dataclass
class Rig:
    api: FakeApi = field(default_factory=FakeApi)
    admin: FakeAdmin = field(default_factory=FakeAdmin)
    events: FakeEvents = field(default_factory=FakeEvents)
    users: dict[str, list[str]] = field(default_factory=dict)

    def claims(self) -> dict[str, list[Claim]]:
        out: dict[str, list[Claim]] = {}
        for obj in self.api.objects.values():
            topic = TicketTopic.from_body(obj)
            out.setdefault(topic.topic_name, []).append(claim_of(topic))
        return out

    def reconcile(self, name: str) -> None:
        """One reconcile as a worker runs it (a RetryLater would go back to the queue)."""

        async def run() -> None:
            controller = TicketTopicController(
                self.api,  # type: ignore[arg-type]
                self.admin,  # type: ignore[arg-type]
                Cache(self.api),
                self.claims(),
                TopicUsage(self.users, {}),
                TopicSettings(),
                workers=1,
                events=self.events,  # type: ignore[arg-type]
            )
            try:
                await controller.reconcile((NS, name))
            finally:
                await controller.stop()  # lets the Events posted in the background finish

        asyncio.run(run())

    def status(self, name: str) -> dict[str, Any]:
        return self.api.objects[(NS, name)].get("status") or {}


def test_a_new_topic_is_created_reported_once_and_then_left_alone() -> None:
    rig = Rig()
    rig.api.put(body("orders", {"partitions": 2}))

    rig.reconcile("orders")

    assert rig.admin.writes == [("create", "orders")]
    assert rig.api.writes == ["status"]
    assert {c["type"]: c["status"] for c in rig.status("orders")["conditions"]}["Ready"] == "True"
    assert ("Normal", "Created") in rig.events.posted
    assert not rig.api.objects[(NS, "orders")]["metadata"].get("finalizers")  # Retain: nothing holds it

    rig.api.writes.clear(), rig.admin.writes.clear(), rig.events.posted.clear()
    rig.reconcile("orders")  # the periodic re-check of a topic as specified

    assert (rig.api.writes, rig.admin.writes, rig.events.posted) == ([], [], [])


def test_the_finalizer_follows_the_deletion_policy() -> None:
    rig = Rig()
    rig.api.put(body("orders", {"deletionPolicy": "Delete"}))
    rig.reconcile("orders")
    assert rig.api.objects[(NS, "orders")]["metadata"]["finalizers"] == [FINALIZER]

    obj = rig.api.objects[(NS, "orders")]
    rig.api.put({**obj, "spec": {**obj["spec"], "deletionPolicy": "Retain"}})
    rig.reconcile("orders")
    assert rig.api.objects[(NS, "orders")]["metadata"]["finalizers"] == []


def test_a_deletion_waits_for_the_agents_that_use_the_topic_then_deletes_it() -> None:
    rig = Rig()
    rig.api.put(body("orders", {"deletionPolicy": "Delete"}))
    rig.reconcile("orders")
    obj = rig.api.objects[(NS, "orders")]
    rig.api.put({**obj, "metadata": {**obj["metadata"], "deletionTimestamp": "2026-12-01T00:00:00Z"}})
    rig.users["orders"] = [f"{NS}/triage"]
    rig.api.agents.add((NS, "triage"))

    with pytest.raises(RetryLater) as waiting:
        rig.reconcile("orders")
    assert "still used by SupportAgent team-a/triage" in str(waiting.value)
    assert rig.status("orders")["conditions"][0]["reason"] == "TopicInUse"
    assert "orders" in rig.admin.topics

    rig.api.agents.clear()  # the agent went away (its index entry may linger: it is checked live)
    rig.reconcile("orders")
    assert "orders" not in rig.admin.topics
    assert (NS, "orders") not in rig.api.objects  # the finalizer was released


def test_a_topic_being_deleted_in_a_terminating_namespace_kopf_does_not_watch_is_released_by_the_sweep() -> None:
    # kopf never starts watching a namespace that is already terminating: an operator started
    # then must still delete the topic and release the finalizer, or the namespace stays stuck.
    rig = Rig()
    rig.api.put(body("orders", {"deletionPolicy": "Delete"}))
    rig.reconcile("orders")
    obj = rig.api.objects[(NS, "orders")]
    rig.api.put({**obj, "metadata": {**obj["metadata"], "deletionTimestamp": "2026-12-01T00:00:00Z"}})
    listed: list[str | None] = []

    async def list_(rtype: ResourceType, namespace: str | None, **_: Any) -> dict[str, Any]:
        listed.append(namespace if rtype.plural != "namespaces" else "namespaces")
        if rtype.plural == "namespaces":
            return {"items": [
                {"metadata": {"name": NS, "deletionTimestamp": "2026-12-01T00:00:00Z"}},
                {"metadata": {"name": "team-b"}},  # not being deleted: kopf watches it, never listed here
                {"metadata": {"name": "kube-system", "deletionTimestamp": "2026-12-01T00:00:00Z"}},  # not ours
            ]}  # fmt: skip
        return {"items": [o for (ns, _), o in rig.api.objects.items() if ns == namespace]}

    async def sweep() -> int:
        controller = TicketTopicController(
            rig.api,  # type: ignore[arg-type]
            rig.admin,  # type: ignore[arg-type]
            {},  # type: ignore[arg-type] # kopf's cache does not show the namespace's objects
            rig.claims(),
            TopicUsage(rig.users, {}),
            TopicSettings(),
            workers=1,
            events=rig.events,  # type: ignore[arg-type]
            namespaces=["team-*"],
        )
        try:
            return await controller.sweep_deleted()
        finally:
            await controller.stop()

    rig.api.list = list_  # type: ignore[attr-defined]
    assert asyncio.run(sweep()) == 1
    assert listed == ["namespaces", NS]
    assert "orders" not in rig.admin.topics
    assert (NS, "orders") not in rig.api.objects  # the finalizer was released


def test_topic_usage_answers_both_controllers_from_one_index_each() -> None:
    usage = TopicUsage(
        users={"ticket.events": ["support/triage", "other/triage"], "ticket.dlq": ["support/triage"]},
        readiness_by_namespace={
            "support": [("ticket.events", False, 3), ("ticket.events", True, 4), ("ticket.dlq", False, None)]
        },
    )
    assert usage.users_of("ticket.events") == ["other/triage", "support/triage"]
    assert usage.agents_using("support", "ticket.events") == ["triage"]
    assert usage.readiness("support") == {"ticket.events": True, "ticket.dlq": False}
    assert usage.readiness("elsewhere") == {}
    # The partitions of a topic count only from a Ready TicketTopic (a lag autoscaler's bound).
    assert usage.partitions("support", "ticket.events") == 4
    assert usage.partitions("support", "ticket.dlq") is None
    assert usage.partitions("elsewhere", "ticket.events") is None


def test_own_writes_stand_in_for_the_cache_until_it_shows_them_even_two_in_a_row() -> None:
    written: WrittenObjects[str] = WrittenObjects()
    v1 = {"metadata": {"resourceVersion": "1"}}
    v2 = {"metadata": {"resourceVersion": "2"}, "n": 2}
    v3 = {"metadata": {"resourceVersion": "3"}, "n": 3}
    written.remember("k", v1, v2)
    written.remember("k", v2, v3)
    assert written.current("k", v1) == v3  # the cache still shows the first write's predecessor
    assert written.current("k", v2) == v3  # ... or the first write
    assert written.current("k", v3) == v3
    later = {"metadata": {"resourceVersion": "4"}}
    assert written.current("k", later) is later  # the cache moved on: it wins from now on


def test_a_snapshot_is_a_deep_copy_without_managed_fields() -> None:
    live = {
        "metadata": {"name": "a", "resourceVersion": "7", "managedFields": [{"manager": "kubectl"}]},
        "spec": {"template": {"containers": [{"name": "agent", "env": [{"name": "X", "value": "1"}]}]}},
        "status": {"replicas": 2**70},  # past 64 bits: copied all the same
    }
    copied = snapshot(live)
    assert "managedFields" not in copied["metadata"]
    assert "managedFields" in live["metadata"]  # the original is left as it was
    copied["spec"]["template"]["containers"][0]["env"][0]["value"] = "2"
    assert live["spec"]["template"]["containers"][0]["env"][0]["value"] == "1"
    assert copied["status"]["replicas"] == 2**70
    plain = snapshot({"metadata": {"name": "b"}, "data": {"k": "é"}})
    assert plain == {"metadata": {"name": "b"}, "data": {"k": "é"}}
