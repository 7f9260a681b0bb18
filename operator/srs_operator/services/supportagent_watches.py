"""What the SupportAgent reconcile reads besides the agents: their children, their pods'
problems and every ConfigMap's version, kept by the operator's own informers.

Children (Deployment, Service, ServiceAccount; ConfigMaps too) and pods are listed and
watched only when labelled ``app.kubernetes.io/managed-by=srs-operator`` (the API server
filters), ConfigMaps all of them (prompts live in the user's ConfigMaps; only their
version is kept, the body only of the agents' own). KEDA's ScaledObjects where KEDA is
installed (an optional kind: where it is not, there are none, and the agents that want
one are told when it appears), and the HorizontalPodAutoscalers KEDA makes of them (they
carry the ScaledObject's labels; only what the status reports is kept). Each change names
the agent to look at again: a child's owner, the agent whose pod's problem changed (not
every pod status update: only a new, changed or cleared problem), every reader of a
ConfigMap.

The namespaces are the ones kopf watches for the agents (``follow``, fed by
``kopf_patches.on_namespaces_watched``); a reconcile waits for its namespace's first
listing (``wait_listed``) so that it never takes a child it has not seen yet for missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from srs_operator.builders.supportagent_status import pod_problem
from srs_operator.clients.informers import DEFAULT_TIMINGS, InformerSet, Kind, WatchTimings
from srs_operator.clients.kube import (
    CONFIGMAPS,
    DEPLOYMENTS,
    HORIZONTALPODAUTOSCALERS,
    PODS,
    SCALEDOBJECTS,
    SERVICEACCOUNTS,
    SERVICES,
    TRIGGERAUTHENTICATIONS,
    KubeClient,
    login,
)
from srs_operator.models.crd import GROUP
from srs_operator.models.supportagent import SUPPORT_AGENT
from srs_operator.settings import MANAGED_BY

MANAGED_SELECTOR: Final = f"app.kubernetes.io/managed-by={MANAGED_BY}"
_INSTANCE: Final = "app.kubernetes.io/instance"
#: How long a reconcile waits for its namespace's first listing before it is retried.
LIST_TIMEOUT: Final = 30.0

Notify = Callable[[str, str], None]


@dataclass(frozen=True, slots=True)
class _ConfigMap:
    version: str
    #: The whole object when it is an agent's own (labelled), else None: a prompt needs only its version.
    owned: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class _Pod:
    agent: str | None
    problem: str | None


@dataclass(frozen=True, slots=True)
class Autoscaler:
    """What the agent's status reports of the HorizontalPodAutoscaler KEDA drives it with
    (its replica counts come from the Deployment: kept here, they would only wake the agent
    at every HPA status update)."""

    agent: str | None
    last_scale_time: str | None
    #: (type, status, reason, message) of each of its conditions.
    conditions: tuple[tuple[str, str, str, str], ...]


def _lean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without ``managedFields`` (large, never read)."""
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


def _scaled_object(obj: dict[str, Any]) -> dict[str, Any]:
    """A ScaledObject without what KEDA rewrites at every poll (when its trigger was last
    active, its read failures): the kept value changes only when something the agent's
    status or apply reads does."""
    status = _lean(obj).get("status") or {}
    status.pop("lastActiveTime", None)
    status.pop("health", None)
    return obj


def _autoscaler(obj: dict[str, Any]) -> Autoscaler:
    status = obj.get("status") or {}
    agent = ((obj.get("metadata") or {}).get("labels") or {}).get(_INSTANCE)
    return Autoscaler(
        agent=None if agent is None else str(agent),
        last_scale_time=status.get("lastScaleTime"),
        conditions=tuple(
            (str(c.get("type")), str(c.get("status")), str(c.get("reason") or ""), str(c.get("message") or ""))
            for c in status.get("conditions") or ()
        ),
    )


def _config_map(obj: dict[str, Any]) -> _ConfigMap:
    meta = obj.get("metadata") or {}
    ours = (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == MANAGED_BY
    return _ConfigMap(str(meta.get("resourceVersion") or ""), _lean(obj) if ours else None)


def _pod(obj: dict[str, Any]) -> _Pod:
    agent = ((obj.get("metadata") or {}).get("labels") or {}).get(_INSTANCE)
    return _Pod(None if agent is None else str(agent), pod_problem(obj))


def owner(body: Mapping[str, Any]) -> str | None:
    """The SupportAgent that owns a child (its ownerReference, else its instance label)."""
    meta = body.get("metadata") or {}
    for ref in meta.get("ownerReferences") or ():
        if ref.get("kind") == SUPPORT_AGENT.kind and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return str(ref["name"])
    instance = (meta.get("labels") or {}).get(_INSTANCE)
    return None if instance is None else str(instance)


def _ignore(namespace: str, name: str) -> None:
    """Until :meth:`ChildWatches.bind`."""


def _ignore_scope(namespace: str | None) -> None:
    """Until :meth:`ChildWatches.bind`."""


class ChildWatches:
    """The agents' children, pods and ConfigMaps as informers show them."""

    def __init__(self, kube: KubeClient, timings: WatchTimings = DEFAULT_TIMINGS) -> None:
        #: The client of every watch (the Secrets' too): one without a connection limit, since a
        #: watch holds its connection for minutes.
        self.kube = kube
        self._agent_changed: Notify = _ignore
        self._config_map_changed: Notify = _ignore
        self._kind_served: Callable[[str | None], None] = _ignore_scope
        #: (namespace, agent) → pod name → its problem (None: none).
        self._pods: dict[tuple[str, str], dict[str, str | None]] = {}
        owned = self._owned_changed
        self.informers = InformerSet(
            kube,
            {
                "Deployment": Kind(DEPLOYMENTS, MANAGED_SELECTOR, _lean, owned),
                "Service": Kind(SERVICES, MANAGED_SELECTOR, _lean, owned),
                "ServiceAccount": Kind(SERVICEACCOUNTS, MANAGED_SELECTOR, _lean, owned),
                "ConfigMap": Kind(CONFIGMAPS, None, _config_map, self._config_map_event),
                "Pod": Kind(PODS, MANAGED_SELECTOR, _pod, self._pod_event),
                "ScaledObject": Kind(
                    SCALEDOBJECTS, MANAGED_SELECTOR, _scaled_object, owned, optional=True, on_presence=self._presence
                ),
                # KEDA's too: the credentials its lag trigger reads with, when the agents use SASL.
                "TriggerAuthentication": Kind(TRIGGERAUTHENTICATIONS, MANAGED_SELECTOR, _lean, owned, optional=True),
                "HorizontalPodAutoscaler": Kind(
                    HORIZONTALPODAUTOSCALERS, MANAGED_SELECTOR, _autoscaler, self._autoscaler_event
                ),
            },
            timings,
        )

    def bind(
        self,
        agent_changed: Notify,
        config_map_changed: Notify,
        autoscaler_changed: Callable[[str | None], None] = _ignore_scope,
    ) -> None:
        """Whom to tell: ``agent_changed(namespace, agent)``, ``config_map_changed(namespace, name)``,
        ``autoscaler_changed(namespace)`` when KEDA's ScaledObjects start or stop being served
        there (``None``: in the cluster)."""
        self._agent_changed, self._config_map_changed = agent_changed, config_map_changed
        self._kind_served = autoscaler_changed

    def follow(self, namespaces: Collection[str | None]) -> None:
        """Watch these namespaces (``None``: the cluster), and only these."""
        for gone in self.informers.follow(namespaces):
            for key in [k for k in self._pods if k[0] == gone]:
                del self._pods[key]

    # -- reads (LiveState) ------------------------------------------------------------------

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        found = self.informers.get(kind, namespace, name)
        if isinstance(found, _ConfigMap):
            return found.owned
        return found  # type: ignore[no-any-return]

    def autoscaler(self, namespace: str, name: str) -> Autoscaler | None:
        """The HorizontalPodAutoscaler KEDA made for the agent (named like it), if any."""
        found = self.informers.get("HorizontalPodAutoscaler", namespace, name)
        return found if isinstance(found, Autoscaler) else None

    def keda_served(self, namespace: str) -> bool:
        """Whether KEDA's ScaledObject kind is served (KEDA is installed)."""
        return self.informers.served("ScaledObject", namespace)

    def config_map_version(self, namespace: str, name: str) -> str | None:
        found = self.informers.get("ConfigMap", namespace, name)
        return None if found is None else str(found.version)

    def pod_problems(self, namespace: str, name: str) -> list[str]:
        return [p for p in (self._pods.get((namespace, name)) or {}).values() if p]

    async def wait_listed(self, namespace: str) -> None:
        """Until the namespace's children, pods and ConfigMaps have been listed once
        (:class:`~srs_operator.clients.informers.NotListedError` after :data:`LIST_TIMEOUT`)."""
        await self.informers.wait_listed(namespace, LIST_TIMEOUT)

    def healthy(self) -> tuple[bool, str]:
        return self.informers.healthy()

    async def stop(self) -> None:
        await self.informers.stop()

    async def close(self) -> None:
        """:meth:`stop`, then close the client."""
        await self.stop()
        await self.kube.close()

    @classmethod
    def connect(cls, recheck_seconds: float = DEFAULT_TIMINGS.absent_seconds) -> ChildWatches:
        """Watches on their own client, with kopf's credentials, without a connection limit;
        a kind not served (KEDA's) is looked for again every ``recheck_seconds``."""
        timings = dataclasses.replace(DEFAULT_TIMINGS, absent_seconds=recheck_seconds)
        return cls(KubeClient(login(), limit=0), timings)

    # -- changes ------------------------------------------------------------------------------

    def _owned_changed(self, namespace: str, name: str, old: Any, new: Any) -> None:
        # Rollout progress, hand edits and deletions of children all lead back to the owner.
        agent = owner(new if new is not None else old)
        if agent is not None:
            self._agent_changed(namespace, agent)

    def _autoscaler_event(self, namespace: str, name: str, old: Autoscaler | None, new: Autoscaler | None) -> None:
        for agent in {a.agent for a in (old, new) if a is not None and a.agent is not None}:
            self._agent_changed(namespace, agent)

    def _presence(self, namespace: str | None, served: bool) -> None:
        self._kind_served(namespace)

    def _config_map_event(self, namespace: str, name: str, old: _ConfigMap | None, new: _ConfigMap | None) -> None:
        if (old.version if old else None) != (new.version if new else None):
            self._config_map_changed(namespace, name)
        before, after = (old.owned if old else None), (new.owned if new else None)
        if before is not None or after is not None:
            self._owned_changed(namespace, name, before, after)

    def _pod_event(self, namespace: str, name: str, old: _Pod | None, new: _Pod | None) -> None:
        # Only a problem that appears, changes or clears matters to the agent's status (its
        # readiness comes from the Deployment): the other pod updates reconcile nothing.
        if old is not None and old.agent is not None and (new is None or new.agent != old.agent):
            pods = self._pods.get((namespace, old.agent))
            if pods is not None:
                pods.pop(name, None)
                if not pods:
                    del self._pods[(namespace, old.agent)]
            if old.problem is not None:
                self._agent_changed(namespace, old.agent)
        if new is not None and new.agent is not None:
            self._pods.setdefault((namespace, new.agent), {})[name] = new.problem
            before = old.problem if old is not None and old.agent == new.agent else None
            if new.problem != before:
                self._agent_changed(namespace, new.agent)
