"""The SupportAgent reconcile service against small fakes of the API client and the caches.

``SupportAgentController.reconcile`` reads the agent and its children from the watch-fed
caches (:class:`FakeCluster` plays both the API server and the caches: what the
operator applies is what the next reconcile sees) and writes only what differs. The
scenario tests on the real control plane (``tests/integration/test_supportagent_*.py``)
prove the same paths end to end.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from srs_operator import metrics
from srs_operator.clients.events import ObjectRef
from srs_operator.clients.kube import ApiError, ResourceType
from srs_operator.models.supportagent import SecretVersion
from srs_operator.services.supportagent_watches import Autoscaler
from srs_operator.services.supportagents import AgentKey, SupportAgentController
from srs_operator.settings import OperatorSettings

pytestmark = pytest.mark.unit

NS, NAME = "support", "billing"
KINDS = {
    "configmaps": "ConfigMap",
    "deployments": "Deployment",
    "services": "Service",
    "serviceaccounts": "ServiceAccount",
    "supportagents": "SupportAgent",
    "scaledobjects": "ScaledObject",
}
SPECIALIST: dict[str, Any] = {
    "role": "specialist",
    "specialty": "billing",
    "inputTopic": "ticket.triaged.billing",
    "outputTopic": "ticket.resolved",
    "model": {"provider": "offline"},
}


@dataclass
class FakeCluster:
    """The API calls the controller makes, and the caches it reads, over one dict of objects."""

    objects: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    writes: list[tuple[str, str]] = field(default_factory=list)
    versions: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    #: Kinds whose apply the API server refuses, and how.
    refuse: dict[str, ApiError] = field(default_factory=dict)
    #: Whether KEDA's ScaledObject is served.
    keda: bool = False

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        meta["resourceVersion"] = str(next(self.versions))
        meta.setdefault("uid", f"uid-{obj['kind']}-{meta['name']}-{meta['resourceVersion']}")
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return copy.deepcopy(obj)

    # -- KubeClient ------------------------------------------------------------------------

    async def get(self, rtype: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((KINDS[rtype.plural], namespace or "", name))
        return copy.deepcopy(obj) if obj is not None else None

    async def apply(self, obj: Mapping[str, Any], *, force: bool = True) -> dict[str, Any]:
        self.writes.append(("apply", obj["kind"]))
        if obj["kind"] in self.refuse:
            raise self.refuse[obj["kind"]]
        live = self.objects.get((obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]))
        if obj["kind"] == "Service" and live is not None:
            # As the API server: a Service's cluster IP is immutable.
            wanted, current = obj["spec"].get("clusterIP"), live["spec"].get("clusterIP")
            if wanted is not None and current is not None and wanted != current:
                raise ApiError(
                    422, "Invalid", f"Service {obj['metadata']['name']}: spec.clusterIPs: field is immutable"
                )
        return self.put(dict(obj))

    async def delete(self, rtype: ResourceType, namespace: str | None, name: str, *, uid: str) -> None:
        self.writes.append(("delete", KINDS[rtype.plural]))
        key = (KINDS[rtype.plural], namespace or "", name)
        if key in self.objects and self.objects[key]["metadata"]["uid"] != uid:
            raise ApiError(409, "Conflict", "precondition failed: uid")
        self.objects.pop(key, None)

    async def patch_status(
        self, rtype: ResourceType, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any]:
        self.writes.append(("patch_status", rtype.plural))
        agent = self.objects[("SupportAgent", namespace, name)]
        return self.put({**agent, "status": dict(status)})

    async def close(self) -> None:
        return None

    # -- LiveState ---------------------------------------------------------------------------

    def agent(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.objects.get(("SupportAgent", namespace, name))

    def agent_keys(self) -> Iterable[AgentKey]:
        return [(ns, name) for kind, ns, name in self.objects if kind == "SupportAgent"]

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self.objects.get((kind, namespace, name))

    def config_map_version(self, namespace: str, name: str) -> str | None:
        obj = self.objects.get(("ConfigMap", namespace, name))
        return obj["metadata"]["resourceVersion"] if obj is not None else None

    def topic_readiness(self, namespace: str) -> Mapping[str, bool]:
        return {}

    def pod_problems(self, namespace: str, name: str) -> list[str]:
        return []

    def autoscaler(self, namespace: str, name: str) -> Autoscaler | None:
        return None

    def keda_served(self, namespace: str) -> bool:
        return self.keda

    async def wait_listed(self, namespace: str) -> None:
        return None

    def healthy(self) -> tuple[bool, str]:
        return True, "fake"


@dataclass
class FakeEvents:
    posted: list[tuple[str, str]] = field(default_factory=list)

    async def post(self, obj: ObjectRef, type_: str, reason: str, message: str) -> None:
        self.posted.append((type_, reason))


class NoSecrets:
    async def of(self, namespace: str) -> Mapping[str, SecretVersion]:
        return {}


def controller(cluster: FakeCluster, events: FakeEvents) -> SupportAgentController:
    return SupportAgentController(
        cluster,  # type: ignore[arg-type]
        cluster,
        OperatorSettings(),
        events=events,  # type: ignore[arg-type]
        secrets=NoSecrets(),
    )


def reconcile(ctl: SupportAgentController) -> None:
    async def run() -> None:
        await ctl.reconcile((NS, NAME))
        await ctl.stop()  # lets the Events it posted in the background finish

    asyncio.run(run())


def agent(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "srs.dev/v1alpha1",
        "kind": "SupportAgent",
        "metadata": {"namespace": NS, "name": NAME, "uid": "uid-agent", "generation": 1},
        "spec": spec,
    }


def condition(cluster: FakeCluster, type_: str) -> dict[str, Any]:
    status = cluster.objects[("SupportAgent", NS, NAME)].get("status") or {}
    return next(c for c in status.get("conditions", []) if c["type"] == type_)


def test_a_new_agent_gets_its_four_children_and_an_accepted_status() -> None:
    cluster, events = FakeCluster(), FakeEvents()
    cluster.put(agent(SPECIALIST))

    reconcile(controller(cluster, events))

    applied = [kind for verb, kind in cluster.writes if verb == "apply"]
    assert sorted(applied[:3]) == ["ConfigMap", "Service", "ServiceAccount"]
    assert applied[3:] == ["Deployment"]  # what the pods use exists before the pods
    assert ("patch_status", "supportagents") in cluster.writes
    assert condition(cluster, "Accepted")["status"] == "True"
    assert condition(cluster, "Ready")["reason"] == "RollingOut"  # no Deployment controller here
    assert ("Normal", "Created") in events.posted


def test_a_second_reconcile_of_an_unchanged_agent_writes_nothing() -> None:
    cluster, events = FakeCluster(), FakeEvents()
    cluster.put(agent(SPECIALIST))
    reconcile(controller(cluster, events))
    cluster.writes.clear()
    events.posted.clear()

    reconcile(controller(cluster, events))

    assert cluster.writes == []
    assert events.posted == []


def test_a_hand_edit_of_the_deployment_is_reverted_and_announced() -> None:
    cluster, events = FakeCluster(), FakeEvents()
    cluster.put(agent(SPECIALIST))
    reconcile(controller(cluster, events))
    deployment = copy.deepcopy(cluster.objects[("Deployment", NS, NAME)])
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
    cluster.put(deployment)
    cluster.writes.clear()
    events.posted.clear()

    reconcile(controller(cluster, events))

    assert cluster.writes == [("apply", "Deployment")]
    live = cluster.objects[("Deployment", NS, NAME)]
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] != "someone/else:latest"
    assert ("Normal", "DriftReverted") in events.posted


def test_a_controller_that_found_a_child_unchanged_still_sees_a_later_hand_edit_or_spec_change() -> None:
    # The same controller throughout: it remembers which children it found matching (by
    # version), so a re-check of unchanged children compares nothing; an edit must still show.
    cluster, events = FakeCluster(), FakeEvents()
    cluster.put(agent(SPECIALIST))
    ctl = controller(cluster, events)

    async def run() -> None:
        for _ in range(3):  # create, then two re-checks of unchanged children
            await ctl.reconcile((NS, NAME))
        cluster.writes.clear()
        deployment = copy.deepcopy(cluster.objects[("Deployment", NS, NAME)])
        deployment["spec"]["template"]["spec"]["containers"][0]["image"] = "someone/else:latest"
        cluster.put(deployment)
        await ctl.reconcile((NS, NAME))
        assert cluster.writes == [("apply", "Deployment")]
        cluster.writes.clear()
        body = copy.deepcopy(cluster.objects[("SupportAgent", NS, NAME)])
        body["spec"]["outputTopic"] = "ticket.resolved.v2"
        body["metadata"]["generation"] = 2
        cluster.put(body)
        await ctl.reconcile((NS, NAME))
        assert ("apply", "ConfigMap") in cluster.writes
        await ctl.stop()

    asyncio.run(run())
    config_map = next(o for (kind, _, _), o in cluster.objects.items() if kind == "ConfigMap")
    assert "ticket.resolved.v2" in config_map["data"]["agent.yaml"]


def test_a_service_with_a_cluster_ip_is_replaced_by_a_headless_one() -> None:
    cluster, events = FakeCluster(), FakeEvents()
    cluster.put(agent(SPECIALIST))
    reconcile(controller(cluster, events))
    service = cluster.objects[("Service", NS, NAME)]
    assert service["spec"]["clusterIP"] == "None"
    # What an earlier srs left: the same Service with an address (and that version's digest).
    old = copy.deepcopy(service)
    old["spec"]["clusterIP"] = "10.0.0.7"
    old["metadata"]["annotations"] = {**old["metadata"].get("annotations", {}), "srs.dev/applied": "earlier"}
    old["metadata"].pop("uid")
    old_uid = cluster.put(old)["metadata"]["uid"]
    cluster.writes.clear()

    reconcile(controller(cluster, events))

    assert cluster.writes[:2] == [("delete", "Service"), ("apply", "Service")]
    replaced = cluster.objects[("Service", NS, NAME)]
    assert replaced["spec"]["clusterIP"] == "None" and replaced["metadata"]["uid"] != old_uid
    assert condition(cluster, "Accepted")["status"] == "True"


def test_an_invalid_spec_is_reported_and_nothing_is_applied() -> None:
    cluster, events = FakeCluster(), FakeEvents()
    cluster.put(agent({**SPECIALIST, "role": "juggler"}))

    reconcile(controller(cluster, events))

    assert [verb for verb, _ in cluster.writes] == ["patch_status"]
    assert condition(cluster, "Accepted")["reason"] == "InvalidSpec"


def test_a_child_the_api_server_refuses_even_with_a_server_error_is_reported_then_recovers() -> None:
    # A full service IP range answers 500: agents beyond it once showed no status at all.
    cluster, events = FakeCluster(), FakeEvents()
    cluster.put(agent(SPECIALIST))
    cluster.refuse["Service"] = ApiError(500, "InternalError", "failed to allocate a serviceIP: range is full")

    with pytest.raises(ApiError):  # the work queue retries it with backoff
        reconcile(controller(cluster, events))

    accepted = condition(cluster, "Accepted")
    assert accepted["status"] == "False" and accepted["reason"] == "ApplyFailed"
    assert accepted["message"].startswith("Service billing: the API server refused it (500 InternalError)")
    assert "range is full" in accepted["message"]
    assert ("Warning", "ApplyFailed") in events.posted
    labels = {"resource": "Service", "code": "500"}
    failures = metrics.REGISTRY.get_sample_value("srs_operator_child_apply_failures_total", labels)
    assert failures is not None and failures >= 1

    del cluster.refuse["Service"]
    reconcile(controller(cluster, events))
    assert condition(cluster, "Accepted")["reason"] == "Applied"


def test_a_config_map_change_requeues_exactly_the_agents_that_read_it() -> None:
    cluster, events = FakeCluster(), FakeEvents()
    for name, source in (("billing", "prompts"), ("refunds", "prompts"), ("other", "other-prompts")):
        body = agent({**SPECIALIST, "prompt": {"configMapKeyRef": {"name": source, "key": "k"}}})
        body["metadata"] = {**body["metadata"], "name": name, "uid": f"uid-{name}"}
        cluster.put(body)
    for source in ("prompts", "other-prompts"):
        meta = {"namespace": NS, "name": source}
        cluster.put({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "Be kind."}})
    ctl = controller(cluster, events)
    queued: list[AgentKey] = []

    async def run() -> tuple[list[AgentKey], list[AgentKey]]:
        for name in ("billing", "refunds", "other"):
            await ctl.reconcile((NS, name))
        ctl.queue.add = lambda key, urgent=False: queued.append(key)  # type: ignore[method-assign]
        ctl.config_map_changed(NS, "prompts")
        ctl.config_map_changed("elsewhere", "prompts")  # same name, another namespace: nobody
        first = sorted(queued)
        queued.clear()
        ctl.forget((NS, "refunds"))
        ctl.config_map_changed(NS, "prompts")
        await ctl.stop()
        return first, list(queued)

    first, after_forget = asyncio.run(run())
    assert first == [(NS, "billing"), (NS, "refunds")]
    assert after_forget == [(NS, "billing")]
