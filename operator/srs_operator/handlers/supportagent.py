"""kopf handlers of the SupportAgent controller: watch, index, and name the agent to look at.

Thin by design, and shaped like every kind's handlers (``handlers/tickettopic.py`` is the
same): kopf watches the agents, their children (labelled
``app.kubernetes.io/managed-by=srs-operator``), ConfigMaps, pods and TicketTopics and keeps what the
reconcile reads in indexes; the event handlers only tell
:class:`~srs_operator.services.supportagents.SupportAgentController` *which* agent may be
affected; it reconciles on its own queue. No handler here writes to the API, so kopf keeps
no state on the objects (no finalizer, no annotations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

import kopf

from srs_operator.builders.supportagent_status import pod_problem
from srs_operator.handlers import topic_usage, watching
from srs_operator.models.crd import GROUP, VERSION
from srs_operator.models.supportagent import SUPPORT_AGENT
from srs_operator.models.tickettopic import TICKET_TOPIC
from srs_operator.services.supportagents import AgentKey, SupportAgentController
from srs_operator.services.written import snapshot
from srs_operator.settings import MANAGED_BY, SETTINGS_MEMO_KEY, OperatorSettings

KIND: Final = SUPPORT_AGENT.kind
MANAGED: Final = {"app.kubernetes.io/managed-by": MANAGED_BY}

#: The children of an agent, by kind: (API group, version, plural) of their kopf index.
OWNED_CHILDREN: Final = {
    "Deployment": ("apps", "v1", "deployments"),
    "ConfigMap": ("", "v1", "configmaps"),
    "Service": ("", "v1", "services"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
}


def _owned_index_id(plural: str) -> str:
    return f"srs_owned_{plural}"


class KopfLiveState:
    """:class:`~srs_operator.services.supportagents.LiveState` over kopf's indexes."""

    def __init__(self, indices: Mapping[str, kopf.Index[Any, Any]]) -> None:
        self._agents = indices["srs_agents"]
        self._children = {kind: indices[_owned_index_id(plural)] for kind, (_, _, plural) in OWNED_CHILDREN.items()}
        self._config_maps = indices["srs_configmap_versions"]
        self._pods = indices["srs_agent_pod_problems"]

    def agent(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return watching.first(self._agents, (namespace, name))  # type: ignore[no-any-return]

    def agent_keys(self) -> Iterable[AgentKey]:
        return list(self._agents.keys())

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return watching.first(self._children[kind], (namespace, name))  # type: ignore[no-any-return]

    def config_map_version(self, namespace: str, name: str) -> str | None:
        return watching.first(self._config_maps, (namespace, name))  # type: ignore[no-any-return]

    def pod_problems(self, namespace: str, name: str) -> list[str]:
        return [problem for problem in self._pods.get((namespace, name), ()) if problem]


# -- indexes (the caches the reconcile reads) -----------------------------------------------


@kopf.index(GROUP, VERSION, SUPPORT_AGENT.plural, id="srs_agents")
async def srs_agents(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, dict[str, Any]]:
    if (lag := watching.lag(memo)) is not None:
        lag.indexed((KIND, namespace, name))
    return {(namespace, name): snapshot(body)}


async def srs_owned_child(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): snapshot(body)}


# One index per child kind (only objects labelled as managed by srs-operator).
for _group, _version, _plural in OWNED_CHILDREN.values():
    kopf.index(_group, _version, _plural, labels=MANAGED, id=_owned_index_id(_plural))(srs_owned_child)


@kopf.index("", "v1", "configmaps", id="srs_configmap_versions")
async def srs_configmap_versions(namespace: str | None, name: str, meta: kopf.Meta, **_: Any) -> dict[Any, Any]:
    # Only the version: a prompt is read when its ConfigMap's version moves.
    return {(namespace, name): meta.get("resourceVersion")}


@kopf.index("", "v1", "pods", labels=MANAGED, id="srs_agent_pod_problems")
async def srs_agent_pod_problems(namespace: str | None, body: kopf.Body, **_: Any) -> dict[Any, str | None]:
    # Per agent, one entry per pod: why it cannot start, or None.
    instance = body.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/instance")
    if instance is None:
        return {}
    return {(namespace, instance): pod_problem(body)}


# -- lifecycle ----------------------------------------------------------------------------


@kopf.on.startup()
async def start_supportagent_controller(memo: kopf.Memo, **kwargs: Any) -> None:
    """Start the controller on kopf's indexes (kopf passes each as a keyword named by its id)."""
    settings: OperatorSettings = memo.get(SETTINGS_MEMO_KEY) or OperatorSettings.from_env()
    controller = await SupportAgentController.connect(KopfLiveState(kwargs), settings, topic_usage.topic_usage(kwargs))
    watching.start(memo, controller)


@kopf.on.cleanup()
async def stop_supportagent_controller(memo: kopf.Memo, **_: Any) -> None:
    await watching.stop(memo, KIND)


# -- what changed → which agent -----------------------------------------------------------


@kopf.on.event(GROUP, VERSION, SUPPORT_AGENT.plural)
async def supportagent_event(event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    if (lag := watching.lag(memo)) is not None:
        lag.handled((KIND, namespace, name))
    if namespace is None:
        return  # namespaced kinds always have one; the signature is kopf's
    if event.get("type") == "DELETED":
        watching.controller_of(memo, SupportAgentController).deleted(namespace, name)
    else:
        watching.controller_of(memo, SupportAgentController).changed(namespace, name)


def _owner(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            return str(ref["name"])
    instance = body.get("metadata", {}).get("labels", {}).get("app.kubernetes.io/instance")
    return None if instance is None else str(instance)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event("", "v1", "configmaps", labels=MANAGED)
@kopf.on.event("", "v1", "services", labels=MANAGED)
@kopf.on.event("", "v1", "serviceaccounts", labels=MANAGED)
@kopf.on.event("", "v1", "pods", labels=MANAGED)
async def child_event(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    # Rollout progress, hand edits and deletions of children all lead back to the owner.
    owner = _owner(body)
    if owner is not None and namespace is not None:
        watching.controller_of(memo, SupportAgentController).changed(namespace, owner)


@kopf.on.event("", "v1", "configmaps")
async def config_map_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    if namespace is not None:
        watching.controller_of(memo, SupportAgentController).config_map_changed(namespace, name)


@kopf.on.event(GROUP, VERSION, TICKET_TOPIC.plural)
async def tickettopic_changed(namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # A TicketTopic became (un)ready, appeared or went: the agents of its namespace that use its topic look again.
    if namespace is not None:
        agents = watching.controller_of(memo, SupportAgentController)
        agents.topic_changed(namespace, topic_usage.managed_topic(name, body))
