"""What the SupportAgent reconcile reads besides the agents: their children, their pods'
problems and every ConfigMap's version, kept by the operator's own informers.

Children (Deployment, Service, ServiceAccount; ConfigMaps too) and pods are listed and
watched only when labelled ``app.kubernetes.io/managed-by=srs-operator`` (the API server
filters), ConfigMaps all of them (prompts live in the user's ConfigMaps; only their
version is kept, the body only of the agents' own). Each change names the agent to look
at again: a child's owner, the agent whose pod's problem changed (not every pod status
update: only a new, changed or cleared problem), every reader of a ConfigMap.

The namespaces are the ones kopf watches for the agents (``follow``, fed by
``kopf_patches.on_namespaces_watched``); a reconcile waits for its namespace's first
listing (``wait_listed``) so that it never takes a child it has not seen yet for missing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from srs_operator.builders.supportagent_status import pod_problem
from srs_operator.clients.informers import DEFAULT_TIMINGS, InformerSet, Kind, WatchTimings
from srs_operator.clients.kube import CONFIGMAPS, DEPLOYMENTS, PODS, SERVICEACCOUNTS, SERVICES, KubeClient, login
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


def _lean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without ``managedFields`` (large, never read)."""
    obj.get("metadata", {}).pop("managedFields", None)
    return obj


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


class ChildWatches:
    """The agents' children, pods and ConfigMaps as informers show them."""

    def __init__(self, kube: KubeClient, timings: WatchTimings = DEFAULT_TIMINGS) -> None:
        #: The client of every watch (the Secrets' too): one without a connection limit, since a
        #: watch holds its connection for minutes.
        self.kube = kube
        self._agent_changed: Notify = _ignore
        self._config_map_changed: Notify = _ignore
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
            },
            timings,
        )

    def bind(self, agent_changed: Notify, config_map_changed: Notify) -> None:
        """Whom to tell: ``agent_changed(namespace, agent)``, ``config_map_changed(namespace, name)``."""
        self._agent_changed, self._config_map_changed = agent_changed, config_map_changed

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
    def connect(cls) -> ChildWatches:
        """Watches on their own client, with kopf's credentials, without a connection limit."""
        return cls(KubeClient(login(), limit=0))

    # -- changes ------------------------------------------------------------------------------

    def _owned_changed(self, namespace: str, name: str, old: Any, new: Any) -> None:
        # Rollout progress, hand edits and deletions of children all lead back to the owner.
        agent = owner(new if new is not None else old)
        if agent is not None:
            self._agent_changed(namespace, agent)

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
