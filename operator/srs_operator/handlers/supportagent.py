"""kopf handlers of the SupportAgent controller: watch, index, and name the agent to look at.

Thin by design, and shaped like every kind's handlers (``handlers/tickettopic.py`` is the
same): kopf watches the agents and TicketTopics and keeps what the reconcile reads in
indexes; the agents' children, pods and ConfigMaps are watched by the operator's own
informers (:class:`~srs_operator.services.supportagent_watches.ChildWatches`, in the
namespaces kopf watches). Event handlers and informers only tell
:class:`~srs_operator.services.supportagents.SupportAgentController` *which* agent may be
affected; it reconciles on its own queue. No handler here writes to the API, so kopf keeps
no state on the objects (no kopf finalizer, no annotations; the controller's own finalizer,
when it manages Kafka users, is its business).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, Final

import kopf

from srs_operator import kopf_patches
from srs_operator.handlers import topic_usage, watching
from srs_operator.models.crd import GROUP, VERSION
from srs_operator.models.supportagent import SUPPORT_AGENT
from srs_operator.models.tickettopic import TICKET_TOPIC
from srs_operator.services.supportagent_watches import Autoscaler, ChildWatches
from srs_operator.services.supportagents import AgentKey, SupportAgentController
from srs_operator.services.written import snapshot
from srs_operator.settings import SETTINGS_MEMO_KEY, OperatorSettings

KIND: Final = SUPPORT_AGENT.kind
_WATCHES_MEMO_KEY: Final = "supportagent-child-watches"


class KopfLiveState:
    """:class:`~srs_operator.services.supportagents.LiveState`: the agents from kopf's index,
    the rest from the operator's informers."""

    def __init__(self, agents: kopf.Index[Any, Any], watches: ChildWatches) -> None:
        self._agents = agents
        self._watches = watches

    def agent(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        return watching.first(self._agents, (namespace, name))  # type: ignore[no-any-return]

    def agent_keys(self) -> Iterable[AgentKey]:
        return list(self._agents.keys())

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        return self._watches.child(kind, namespace, name)

    def config_map_version(self, namespace: str, name: str) -> str | None:
        return self._watches.config_map_version(namespace, name)

    def pod_problems(self, namespace: str, name: str) -> list[str]:
        return self._watches.pod_problems(namespace, name)

    def autoscaler(self, namespace: str, name: str) -> Autoscaler | None:
        return self._watches.autoscaler(namespace, name)

    def keda_served(self, namespace: str) -> bool:
        return self._watches.keda_served(namespace)

    async def wait_listed(self, namespace: str) -> None:
        await self._watches.wait_listed(namespace)

    def healthy(self) -> tuple[bool, str]:
        return self._watches.healthy()


# -- indexes (the caches the reconcile reads) -----------------------------------------------


@kopf.index(GROUP, VERSION, SUPPORT_AGENT.plural, id="srs_agents")
async def srs_agents(
    namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any
) -> dict[Any, dict[str, Any]]:
    if (lag := watching.lag(memo)) is not None:
        lag.indexed((KIND, namespace, name))
    return {(namespace, name): snapshot(body)}


# -- lifecycle ----------------------------------------------------------------------------


@kopf.on.startup()
async def start_supportagent_controller(memo: kopf.Memo, **kwargs: Any) -> None:
    """Start the controller on kopf's indexes (kopf passes each as a keyword named by its id)
    and on the informers, which follow the namespaces kopf watches."""
    settings: OperatorSettings = memo.get(SETTINGS_MEMO_KEY) or OperatorSettings.from_env()
    watches = ChildWatches.connect(settings.recheck_seconds)
    live = KopfLiveState(kwargs["srs_agents"], watches)
    try:
        controller = await SupportAgentController.connect(
            live, settings, topic_usage.topic_usage(kwargs), watches.kube, os.environ
        )
    except ValueError as e:  # user management on, but no usable Kafka settings
        await watches.close()
        raise kopf.PermanentError(f"cannot start the SupportAgent controller: {e}") from e
    watches.bind(controller.changed, controller.config_map_changed, controller.autoscaler_served)
    unsubscribe = kopf_patches.on_namespaces_watched(watches.follow)
    memo[_WATCHES_MEMO_KEY] = (watches, unsubscribe)
    watching.start(memo, controller)


@kopf.on.cleanup()
async def stop_supportagent_controller(memo: kopf.Memo, **_: Any) -> None:
    found = memo.pop(_WATCHES_MEMO_KEY, None)
    if found is not None:  # the informers first: nothing queues work for a stopping controller
        watches, unsubscribe = found
        unsubscribe()
        await watches.stop()
    await watching.stop(memo, KIND)
    if found is not None:
        await watches.close()


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


@kopf.on.event(GROUP, VERSION, TICKET_TOPIC.plural)
async def tickettopic_changed(namespace: str | None, name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # A TicketTopic became (un)ready, appeared or went: the agents of its namespace that use its topic look again.
    if namespace is not None:
        agents = watching.controller_of(memo, SupportAgentController)
        agents.topic_changed(namespace, topic_usage.managed_topic(name, body))
