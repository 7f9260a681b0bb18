"""kopf handlers of the SupportAgent controller: watch, index, and name the agent to look at.

Thin by design. kopf watches the agents, their children (labelled
``app.kubernetes.io/managed-by=srs-operator``), ConfigMaps and TicketTopics
and keeps what the reconcile needs in indexes (kopf fills every index before it calls
any handler, so the first reconcile already sees the children that exist). The event
handlers only tell :class:`~srs_operator.services.supportagents.SupportAgentController`
*which* agent may be affected; it reconciles on its own queue. No handler here writes
to the API, so kopf keeps no state on the objects (no finalizer, no annotations).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Final

import kopf

from srs_operator import namespaces
from srs_operator.builders.supportagent_status import pod_problem
from srs_operator.liveness import HandlingLag
from srs_operator.models.crd import GROUP, VERSION
from srs_operator.models.supportagent import SUPPORT_AGENT
from srs_operator.models.tickettopic import TICKET_TOPIC
from srs_operator.services.supportagents import AgentKey, SupportAgentController
from srs_operator.settings import MANAGED_BY, SETTINGS_MEMO_KEY, OperatorSettings

MANAGED: Final = {"app.kubernetes.io/managed-by": MANAGED_BY}
MEMO_KEY: Final = "supportagents"
UNSUBSCRIBE_KEY: Final = "supportagents-unsubscribe"
#: Where ``main.configure`` puts the :class:`~srs_operator.liveness.HandlingLag` of the process.
LAG_MEMO_KEY: Final = "handling_lag"


def _snapshot(body: kopf.Body) -> dict[str, Any]:
    """A plain copy of what the reconcile reads; managedFields are large and unused."""
    raw = copy.deepcopy(dict(body))
    raw.get("metadata", {}).pop("managedFields", None)
    return raw


def _one(index: kopf.Index[Any, Any], key: Any) -> Any:
    store = index.get(key)
    if not store:
        return None
    return next(iter(store))


#: The children of an agent, by kind: (API group, version, plural) of their kopf index.
OWNED_CHILDREN: Final = {
    "Deployment": ("apps", "v1", "deployments"),
    "ConfigMap": ("", "v1", "configmaps"),
    "Service": ("", "v1", "services"),
    "ServiceAccount": ("", "v1", "serviceaccounts"),
}


def _owned_index_id(plural: str) -> str:
    return f"srs_owned_{plural}"


#: The kopf indexes the controller reads (ids of the ``kopf.index`` handlers below).
INDEXES: Final = (
    "srs_agents",
    *(_owned_index_id(plural) for _, _, plural in OWNED_CHILDREN.values()),
    "srs_configmap_versions",
    "srs_topic_readiness",
    "srs_agent_pod_problems",
)


class KopfLiveState:
    """:class:`~srs_operator.services.supportagents.LiveState` over kopf's indexes."""

    def __init__(self, indices: Mapping[str, kopf.Index[Any, Any]]) -> None:
        self._agents = indices["srs_agents"]
        self._children = {kind: indices[_owned_index_id(plural)] for kind, (_, _, plural) in OWNED_CHILDREN.items()}
        self._config_maps = indices["srs_configmap_versions"]
        self._topics = indices["srs_topic_readiness"]
        self._pods = indices["srs_agent_pod_problems"]

    def agent(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return _one(self._agents, (namespace, name))  # type: ignore[no-any-return]

    def agent_keys(self) -> Iterable[AgentKey]:
        return list(self._agents.keys())

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return _one(self._children[kind], (namespace, name))  # type: ignore[no-any-return]

    def config_map_version(self, namespace: str, name: str) -> str | None:
        return _one(self._config_maps, (namespace, name))  # type: ignore[no-any-return]

    def pod_problems(self, namespace: str, name: str) -> list[str]:
        return [problem for problem in self._pods.get((namespace, name), ()) if problem]

    def topic_readiness(self, namespace: str) -> Mapping[str, bool]:
        ready: dict[str, bool] = {}
        for topic, is_ready in self._topics.get(namespace, ()):
            ready[topic] = ready.get(topic, False) or is_ready
        return ready


# -- indexes ------------------------------------------------------------------------------


def _lag(memo: kopf.Memo) -> HandlingLag | None:
    lag = memo.get(LAG_MEMO_KEY)
    return lag if isinstance(lag, HandlingLag) else None


@kopf.index(GROUP, VERSION, SUPPORT_AGENT.plural, id="srs_agents")
async def srs_agents(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, dict[str, Any]]:
    if (lag := _lag(memo)) is not None:
        lag.indexed(("SupportAgent", namespace, name))
    return {(namespace, name): _snapshot(body)}


async def srs_owned_child(namespace: str | None, name: str, body: kopf.Body, **_: Any) -> dict[Any, Any]:
    return {(namespace, name): _snapshot(body)}


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


def _topic_name(name: str, spec: kopf.Spec) -> str:
    return str(spec.get("topicName") or name)


def _topic_is_ready(status: kopf.Status) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


@kopf.index(GROUP, VERSION, TICKET_TOPIC.plural, id="srs_topic_readiness")
async def srs_topic_readiness(
    namespace: str | None, name: str, spec: kopf.Spec, status: kopf.Status, memo: kopf.Memo, **_: Any
) -> dict[Any, tuple[str, bool]]:
    if (lag := _lag(memo)) is not None:
        lag.indexed(("TicketTopic", namespace, name))
    return {namespace: (_topic_name(name, spec), _topic_is_ready(status))}


# -- lifecycle ----------------------------------------------------------------------------


@kopf.on.startup()
async def start_supportagent_controller(memo: kopf.Memo, **kwargs: Any) -> None:
    """Start the controller on kopf's indexes (kopf passes each as a keyword named by its id)."""
    settings: OperatorSettings = memo.get(SETTINGS_MEMO_KEY) or OperatorSettings.from_env()
    live = KopfLiveState({name: kwargs[name] for name in INDEXES})
    controller = SupportAgentController.connect(live, settings)
    controller.start()
    memo[MEMO_KEY] = controller
    memo[UNSUBSCRIBE_KEY] = namespaces.on_namespace_unwatched(controller.namespace_unwatched)


@kopf.on.cleanup()
async def stop_supportagent_controller(memo: kopf.Memo, **_: Any) -> None:
    if (unsubscribe := memo.get(UNSUBSCRIBE_KEY)) is not None:
        unsubscribe()
    controller: SupportAgentController | None = memo.get(MEMO_KEY)
    if controller is not None:
        await controller.close()


@kopf.on.probe(id="supportagent_workers")
def supportagent_workers(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: fails (HTTP 500 on the liveness endpoint) once a reconcile worker has died."""
    controller: SupportAgentController | None = memo.get(MEMO_KEY)
    if controller is None:
        return "starting"
    ok, why = controller.healthy()
    if not ok:
        raise kopf.PermanentError(why)
    return why


@kopf.on.probe(id="watches")
def watches(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: fails once a watched object has waited for its handler longer than the bound
    (kopf's watches are stuck: the operator would be deaf)."""
    lag = _lag(memo)
    if lag is None:
        return "starting"
    stalled, why = lag.stalled()
    if stalled:
        raise kopf.PermanentError(why)
    return why


def _controller(memo: kopf.Memo) -> SupportAgentController:
    return memo[MEMO_KEY]  # type: ignore[no-any-return]


# -- what changed → which agent -----------------------------------------------------------


@kopf.on.event(GROUP, VERSION, SUPPORT_AGENT.plural)
async def supportagent_event(event: kopf.RawEvent, namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    if (lag := _lag(memo)) is not None:
        lag.handled(("SupportAgent", namespace, name))
    if namespace is None:
        return  # namespaced kinds always have one; the signature is kopf's
    if event.get("type") == "DELETED":
        _controller(memo).agent_deleted(namespace, name)
    else:
        _controller(memo).agent_changed(namespace, name)


def _owner(body: kopf.Body) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences") or ():
        if ref.get("kind") == SUPPORT_AGENT.kind and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
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
        _controller(memo).agent_changed(namespace, owner)


@kopf.on.event("", "v1", "configmaps")
async def config_map_event(namespace: str | None, name: str, memo: kopf.Memo, **_: Any) -> None:
    if namespace is not None:
        _controller(memo).config_map_changed(namespace, name)


@kopf.on.event(GROUP, VERSION, TICKET_TOPIC.plural)
async def tickettopic_event(namespace: str | None, name: str, spec: kopf.Spec, memo: kopf.Memo, **_: Any) -> None:
    if (lag := _lag(memo)) is not None:
        lag.handled(("TicketTopic", namespace, name))
    if namespace is not None:
        _controller(memo).topic_changed(namespace, _topic_name(name, spec))
