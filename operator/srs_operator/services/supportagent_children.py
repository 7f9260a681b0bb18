"""Apply a SupportAgent's children: only what is missing, changed, or edited by hand.

Each child is server-side applied (field manager ``srs-operator``, force) only when
:func:`~srs_operator.services.drift.needs_apply` says so: it is missing, its desired
manifest changed, or someone edited a field the operator owns. What the pods use first
(ServiceAccount, ConfigMap, Service, in parallel), then the Deployment, then what scales it
(a KEDA ScaledObject). An optional child no longer desired (the ScaledObject of an agent
that stopped scaling on lag) is deleted. A name taken by an
object the agent does not own is a :class:`NameConflictError`, never a takeover. The
responses stand in for the watch caches until the watches show them
(:class:`~srs_operator.services.written.WrittenObjects`).

A new owned kind (a PodDisruptionBudget, a KEDA ScaledObject) needs its builder in
``builders/supportagent.py`` (it joins ``DesiredState.children``), its REST path in
``clients/kube.py`` (``BY_KIND``) and an informer in ``services/supportagent_watches.py``
(``ChildWatches``); nothing here changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from srs_operator import metrics
from srs_operator.builders.supportagent import (
    CHILD_KINDS,
    CONFIG_HASH_ANNOTATION,
    OPTIONAL_CHILD_KINDS,
    DesiredState,
    child_name,
    manifest_digest,
)
from srs_operator.clients.kube import BY_KIND, ApiError, KubeClient
from srs_operator.models.supportagent import SupportAgent
from srs_operator.services.drift import ApplyCause, needs_apply, with_digest
from srs_operator.services.written import WrittenObjects, resource_version

#: (kind, namespace, name) of a child.
ChildKey = tuple[str, str, str]
#: A child to apply: its manifest, the live object, why.
_Planned = tuple[dict[str, Any], Mapping[str, Any] | None, ApplyCause]

log = logging.getLogger(__name__)


class ChildCache(Protocol):
    """The agents' children as the watches show them, and every ConfigMap's version."""

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def config_map_version(self, namespace: str, name: str) -> str | None: ...


class NameConflictError(Exception):
    """A child's name is taken by an object this agent does not own."""


@dataclass
class AppliedChildren:
    """What one apply pass did: the Deployment as it now is, and why each child was applied."""

    deployment: Mapping[str, Any] | None
    #: "Kind name" → why it was applied (empty: nothing was).
    causes: dict[str, ApplyCause] = field(default_factory=dict)
    #: The Deployment's pod template changed: new pods roll out.
    rolled: bool = False


class ChildApplier:
    """Applies children through ``kube``, reading them from ``cache`` (or from its own writes)."""

    def __init__(self, kube: KubeClient, cache: ChildCache) -> None:
        self._kube = kube
        self._cache = cache
        self._written: WrittenObjects[ChildKey] = WrittenObjects()
        #: Children found to match: (resourceVersion, desired digest) when last compared. A
        #: re-check of an unchanged child against an unchanged manifest compares nothing.
        self._matched: dict[ChildKey, tuple[str, str]] = {}

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        """The child as it now is (the operator's own last write until the watch shows it)."""
        key = (kind, namespace, name)
        return self._written.current(key, self._cache.child(kind, namespace, name))

    def forget(self, namespace: str, agent_name: str) -> None:
        for kind in CHILD_KINDS:
            key = (kind, namespace, child_name(agent_name, kind))
            self._written.forget(key)
            self._matched.pop(key, None)

    async def apply(self, agent: SupportAgent, desired: DesiredState) -> AppliedChildren:
        """Apply what differs; raises :class:`NameConflictError` or the API's error (its
        ``subject`` names the child the API server refused)."""
        result = AppliedChildren(deployment=self.child("Deployment", agent.namespace, agent.name))
        plan: list[_Planned] = []
        for manifest in desired.children:
            key = (manifest["kind"], agent.namespace, manifest["metadata"]["name"])
            live = self.child(*key)
            digest = manifest_digest(manifest)
            version = resource_version(live)
            if version is not None and self._matched.get(key) == (version, digest):
                continue
            cause = needs_apply(manifest, live, digest)
            if cause is None:
                if version is not None:
                    self._matched[key] = (version, digest)
            else:
                self._matched.pop(key, None)
                plan.append((manifest, live, cause))
        # A child the caches do not know may still exist, unlabelled: never take over someone else's object.
        found = await asyncio.gather(*(self._existing(m, agent) for m, _, cause in plan if cause is ApplyCause.CREATE))
        existing = iter(found)
        for i, (manifest, _, cause) in enumerate(plan):
            if cause is ApplyCause.CREATE:
                obj = next(existing)
                if obj is not None:  # ours, but it had left the cache (e.g. its labels were edited)
                    plan[i] = (manifest, obj, ApplyCause.DRIFT)

        async def apply(manifest: dict[str, Any], live: Mapping[str, Any] | None, cause: ApplyCause) -> None:
            kind, name = manifest["kind"], manifest["metadata"]["name"]
            try:
                if _immutable_field_differs(manifest, live):
                    assert live is not None
                    # An agent's Service from an srs that gave it a cluster IP: the field cannot
                    # change in place, so the old one goes (if it still is that one) and the
                    # headless one is created in its place.
                    log.info(
                        "replacing %s %s/%s: its cluster IP cannot be removed in place", kind, agent.namespace, name
                    )
                    await self._kube.delete(BY_KIND[kind], agent.namespace, name, uid=live["metadata"]["uid"])
                    live, cause = None, ApplyCause.CREATE
                applied = await self._kube.apply(with_digest(manifest))
            except ApiError as e:
                e.subject = f"{kind} {name}"
                metrics.CHILD_APPLY_FAILURES.labels(kind, str(e.status)).inc()
                raise
            obj = self._written.remember((kind, agent.namespace, name), live, applied)
            metrics.CHILDREN_APPLIED.labels(kind, cause.value).inc()
            result.causes[f"{kind} {name}"] = cause
            if kind == "Deployment":
                result.deployment = obj
                result.rolled = cause is ApplyCause.UPDATE and _template_hash(live) != desired.config_hash

        for phase in _phases(plan):
            await asyncio.gather(*(apply(*p) for p in phase))
        await self._remove_undesired(agent, desired)
        return result

    async def _remove_undesired(self, agent: SupportAgent, desired: DesiredState) -> None:
        """Delete the agent's optional children that ``desired`` no longer has."""
        wanted = {m["kind"] for m in desired.children}
        for kind in OPTIONAL_CHILD_KINDS:
            if kind in wanted:
                continue
            key = (kind, agent.namespace, child_name(agent.name, kind))
            live = self.child(*key)
            if live is None or not _owned_by(live, agent):
                continue
            try:
                await self._kube.delete(BY_KIND[kind], agent.namespace, key[2], uid=live["metadata"]["uid"])
            except ApiError as e:
                e.subject = f"{kind} {key[2]}"
                metrics.CHILD_APPLY_FAILURES.labels(kind, str(e.status)).inc()
                raise
            log.info("deleted %s %s/%s: the spec no longer asks for it", kind, agent.namespace, key[2])
            self._written.forget(key)
            self._matched.pop(key, None)

    async def _existing(self, manifest: Mapping[str, Any], agent: SupportAgent) -> dict[str, Any] | None:
        """The live object named like ``manifest`` if it exists and is the agent's; a conflict if it is not."""
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if kind == "ConfigMap" and self._cache.config_map_version(agent.namespace, name) is None:
            return None  # every ConfigMap is cached (prompts live in them): no need to ask
        obj = await self._kube.get(BY_KIND[kind], agent.namespace, name)
        if obj is None:
            return None
        if not _owned_by(obj, agent):
            raise NameConflictError(
                f"a {kind} named {name} already exists and is not owned by this SupportAgent: "
                "rename the agent or remove that object"
            )
        return obj


#: Kinds applied after the others, in this order: the Deployment (its pods use the rest),
#: then what scales it (KEDA checks the workload it targets).
_LATER: Final = ("Deployment", "ScaledObject")


def _phases(plan: list[_Planned]) -> list[list[_Planned]]:
    """``plan`` in apply phases: everything else together, then each of :data:`_LATER`."""
    first = [p for p in plan if p[0]["kind"] not in _LATER]
    return [first, *([p for p in plan if p[0]["kind"] == kind] for kind in _LATER)]


def _owned_by(obj: Mapping[str, Any], agent: SupportAgent) -> bool:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("uid") == agent.uid for o in owners)


def _immutable_field_differs(manifest: Mapping[str, Any], live: Mapping[str, Any] | None) -> bool:
    """Whether ``live`` has a value ``manifest`` wants changed that the API server keeps
    immutable: today a Service's ``spec.clusterIP`` (an address, where headless is wanted)."""
    if live is None or manifest["kind"] != "Service":
        return False
    wanted = (manifest.get("spec") or {}).get("clusterIP")
    current = (live.get("spec") or {}).get("clusterIP")
    return wanted is not None and current is not None and current != wanted


def _template_hash(deployment: Mapping[str, Any] | None) -> str | None:
    if deployment is None:
        return None
    template = (deployment.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH_ANNOTATION)
