"""Reconcile one SupportAgent: level-based, idempotent, silent when nothing changed.

Given the agent's key, :class:`SupportAgentController` reads everything from the
watch-fed caches (:class:`LiveState`: the agent, its children, ConfigMap versions,
TicketTopic readiness; :class:`SecretVersionSource`: versions of Secrets from
metadata-only watches, :mod:`srs_operator.clients.secrets`), builds the desired children and status with
the pure builders, and writes only what differs:

1. each child is server-side applied (field manager ``srs-operator``, force) only when
   it is missing, its desired manifest changed, or someone edited a field the operator
   owns (:mod:`srs_operator.services.drift`);
2. the status subresource is patched only when the computed status differs from the
   live one (conditions keep their transition time while unchanged);
3. Events are posted only on transitions.

The caches lag the operator's own writes by one watch event; the responses of those
writes stand in for the cached objects until the watch catches up, so a reconcile right
after a write does not repeat it.

Which agents to reconcile comes from the handlers (watch events of agents, children,
Secrets, ConfigMaps, TicketTopics) through a :class:`~.workqueue.WorkQueue`, plus a
periodic resync; every path ends in the same :meth:`SupportAgentController.reconcile`.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from pydantic import ValidationError

from srs_operator import metrics
from srs_operator.builders.supportagent import (
    CHILD_KINDS,
    CONFIG_HASH_ANNOTATION,
    DesiredState,
    agent_topics,
    build_desired,
    child_name,
    offline_model_ref,
    referenced_secrets,
    selector_string,
)
from srs_operator.builders.supportagent_status import (
    Verdict,
    build_status,
    parse_status,
    rollout_of,
    status_document,
    topics_verdict,
    transitions,
)
from srs_operator.clients.events import EventRecorder, EventType, ObjectRef
from srs_operator.clients.kube import BY_KIND, CONFIGMAPS, SUPPORTAGENTS, ApiError, KubeClient, login
from srs_operator.clients.secrets import SecretsForbidden, SecretVersions
from srs_operator.models.conditions import Condition, ConditionStatus
from srs_operator.models.crd import API_VERSION
from srs_operator.models.supportagent import (
    SUPPORT_AGENT,
    ConditionType,
    Reason,
    SecretVersion,
    SupportAgent,
    SupportAgentStatus,
)
from srs_operator.services.drift import ApplyCause, needs_apply, with_digest
from srs_operator.services.workqueue import WorkQueue
from srs_operator.settings import OperatorSettings

log = logging.getLogger(__name__)

KIND: Final = SUPPORT_AGENT.kind
AgentKey = tuple[str, str]  # (namespace, name)


class LiveState(Protocol):
    """What the watches have seen (kopf indexes in production, dicts in tests)."""

    def agent(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def agent_keys(self) -> Iterable[AgentKey]: ...

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def config_map_version(self, namespace: str, name: str) -> str | None: ...

    def topic_readiness(self, namespace: str) -> Mapping[str, bool]: ...

    def pod_problems(self, namespace: str, name: str) -> Sequence[str]:
        """Why the agent's pods cannot start (see ``pod_problem``); empty when they can."""


class SecretVersionSource(Protocol):
    """Versions of the Secrets in a namespace (metadata-only watches in production)."""

    async def of(self, namespace: str) -> Mapping[str, SecretVersion]: ...


class NameConflictError(Exception):
    """A child's name is taken by an object this agent does not own."""


@dataclass(frozen=True)
class Dependencies:
    """What an agent's desired state was computed from (to know whom a change concerns)."""

    secrets: frozenset[str] = frozenset()
    #: ConfigMaps it reads: the prompt's, the trained offline model's.
    config_maps: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()


@dataclass
class _Written:
    """The response of the operator's own write, until the watch shows that version or a later one."""

    version_before: str | None
    obj: dict[str, Any]


@dataclass
class _AppliedChildren:
    deployment: Mapping[str, Any] | None
    causes: dict[str, ApplyCause] = field(default_factory=dict)
    rolled: bool = False


def _version(obj: Mapping[str, Any] | None) -> str | None:
    return None if obj is None else (obj.get("metadata") or {}).get("resourceVersion")


def _snapshot(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(obj))
    (out.get("metadata") or {}).pop("managedFields", None)
    return out


def _validation_summary(error: ValidationError) -> str:
    """Where and what, without echoing input values."""
    parts = []
    for e in error.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"spec.{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)[:1000]


class SupportAgentController:
    """Reconciles SupportAgents; one per operator process."""

    def __init__(
        self,
        kube: KubeClient,
        live: LiveState,
        settings: OperatorSettings,
        events: EventRecorder | None = None,
        secrets: SecretVersionSource | None = None,
    ) -> None:
        self.kube = kube
        self.live = live
        self.secrets: SecretVersionSource = secrets or SecretVersions(kube, self.secret_changed)
        self.settings = settings
        self.events = events or EventRecorder(kube)
        self.queue: WorkQueue[AgentKey] = WorkQueue(KIND, self.reconcile, workers=settings.workers)
        self._written_children: dict[tuple[str, str, str], _Written] = {}
        self._written_agents: dict[AgentKey, _Written] = {}
        self._deps: dict[AgentKey, Dependencies] = {}
        # ConfigMaps the agents read (prompts, trained models), by resourceVersion: data and binaryData keys.
        self._config_maps: dict[tuple[str, str], tuple[str | None, Mapping[str, str], Mapping[str, str]]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._resync: asyncio.Task[None] | None = None
        #: Agents whose namespace is gone while kopf's index still lists them (no resync).
        self._vanished: set[AgentKey] = set()

    # -- lifecycle ----------------------------------------------------------------------

    @classmethod
    def connect(cls, live: LiveState, settings: OperatorSettings) -> SupportAgentController:
        """A controller on its own API client, with kopf's credentials (in-cluster, else ``$KUBECONFIG``)."""
        return cls(KubeClient(login()), live, settings)

    def start(self) -> None:
        self.queue.start()
        self._resync = asyncio.create_task(self._resync_forever(), name="supportagent-resync")

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
        await self.queue.stop()
        if isinstance(self.secrets, SecretVersions):
            await self.secrets.stop()
        await asyncio.gather(*self._background, return_exceptions=True)

    async def close(self) -> None:
        """:meth:`stop`, then close the API client (``on.cleanup``)."""
        await self.stop()
        await self.kube.close()

    def healthy(self) -> tuple[bool, str]:
        """Whether the workers and the periodic resync still run (for the liveness probe)."""
        if self._resync is not None and self._resync.done():
            return False, "the SupportAgent resync loop has stopped"
        return self.queue.healthy()

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.resync_seconds)
            keys = set(self.live.agent_keys())
            self._vanished &= keys  # entries kopf's index dropped need no more remembering
            for key in keys - self._vanished:
                self.queue.add(key)

    # -- what to reconcile (called by the handlers) -----------------------------------------

    def agent_changed(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._vanished.discard(key)
        self.queue.add(key, urgent=key not in self._deps)  # a new agent first gets its Deployment

    def agent_deleted(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        metrics.forget_resource(KIND, namespace, name)
        self.queue.forget(key)
        self._deps.pop(key, None)
        self._written_agents.pop(key, None)
        for kind in CHILD_KINDS:
            self._written_children.pop((kind, namespace, child_name(name, kind)), None)

    def namespace_unwatched(self, namespace: str) -> None:
        """The namespace is gone (or no longer watched): its agents stay in kopf's index, but
        must never be reconciled again, nor retried, until an event shows one again."""
        for key in {k for k in (*self.live.agent_keys(), *self._deps) if k[0] == namespace}:
            self._vanished.add(key)
            self.agent_deleted(*key)

    def secret_changed(self, namespace: str, name: str | None) -> None:
        """A Secret changed (``None``: the operator's access to the namespace's Secrets did)."""
        for key, deps in list(self._deps.items()):
            if key[0] == namespace and (name in deps.secrets if name is not None else bool(deps.secrets)):
                self.queue.add(key)

    def config_map_changed(self, namespace: str, name: str) -> None:
        for key, deps in list(self._deps.items()):
            if key[0] == namespace and name in deps.config_maps:
                self.queue.add(key)

    def topic_changed(self, namespace: str, topic: str) -> None:
        for key, deps in list(self._deps.items()):
            if key[0] == namespace and topic in deps.topics:
                self.queue.add(key)

    # -- reconcile ----------------------------------------------------------------------

    def _agent_body(self, key: AgentKey) -> Mapping[str, Any] | None:
        live = self.live.agent(*key)
        written = self._written_agents.get(key)
        if written is not None:
            if live is not None and _version(live) == written.version_before:
                return written.obj
            del self._written_agents[key]
        return live

    def _child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None:
        live = self.live.child(kind, namespace, name)
        written = self._written_children.get((kind, namespace, name))
        if written is not None:
            if _version(live) == written.version_before:
                return written.obj
            del self._written_children[(kind, namespace, name)]
        return live

    async def reconcile(self, key: AgentKey) -> None:
        """Make the cluster match the agent ``key``; no writes when it already does."""
        if key in self._vanished:
            return  # its namespace is gone; kopf's index has not noticed (see namespace_unwatched)
        body = self._agent_body(key)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return  # gone or going: garbage collection removes the children
        with metrics.observe_reconcile(KIND):
            await self._reconcile(key, body)

    async def _reconcile(self, key: AgentKey, body: Mapping[str, Any]) -> None:
        meta = body["metadata"]
        namespace, name = key
        ref = ObjectRef(API_VERSION, KIND, namespace, name, meta["uid"])
        previous = parse_status(body.get("status"))
        generation = int(meta.get("generation") or 0)
        try:
            agent = SupportAgent.from_body(body)
        except ValidationError as e:
            invalid = Verdict.false(Reason.INVALID_SPEC, _validation_summary(e))
            rollout = rollout_of(self._child("Deployment", namespace, name), 0)
            status = build_status(
                previous, generation, accepted=invalid, topics=invalid, rollout=rollout, missing_secrets=(), selector=""
            )
            await self._write_status(key, ref, body, previous, status)
            return

        prompt: str | None = None
        accepted: Verdict | None = None
        cm_ref = agent.spec.prompt.config_map_key_ref if agent.spec.prompt is not None else None
        if cm_ref is not None:
            prompt = await self._prompt(namespace, cm_ref.name, cm_ref.key)
            if prompt is None:
                accepted = Verdict.false(
                    Reason.PROMPT_NOT_FOUND,
                    f"spec.prompt.configMapKeyRef: ConfigMap {cm_ref.name} with key {cm_ref.key} not found",
                )
        model_ref = offline_model_ref(agent.spec.model)
        model_digest: str | None = None
        if model_ref is not None:
            model_digest = await self._config_map_digest(namespace, model_ref.name, model_ref.key)
            if model_digest is None and accepted is None:
                accepted = Verdict.false(
                    Reason.OFFLINE_MODEL_NOT_FOUND,
                    f"spec.model.offline.modelRef: ConfigMap {model_ref.name} with key {model_ref.key} not found "
                    "(create it from srs train's output: kubectl create configmap NAME --from-file=model.json.gz)",
                )
        refs = referenced_secrets(agent.spec)
        secrets: dict[str, SecretVersion | None] = {r.name: None for r in refs}
        forbidden: str | None = None
        if refs:
            try:
                versions = await self.secrets.of(namespace)
            except SecretsForbidden as e:
                forbidden = str(e)
            else:
                secrets = {r.name: versions.get(r.name) for r in refs}
        desired = build_desired(agent, self.settings, prompt, secrets, model_digest)
        topics = agent_topics(desired.config)
        self._deps[key] = Dependencies(
            secrets=frozenset(secrets),
            config_maps=frozenset(ref.name for ref in (cm_ref, model_ref) if ref is not None),
            topics=frozenset(topics),
        )
        # Only existence is known (metadata): a missing key shows as pods that cannot start.
        missing = [] if forbidden else [f"Secret {r.name}" for r in desired.secret_refs if secrets.get(r.name) is None]

        deployment = self._child("Deployment", namespace, name)
        failure: ApiError | None = None
        if accepted is None:
            try:
                applied = await self._apply_children(agent, desired)
            except NameConflictError as e:
                accepted = Verdict.false(Reason.NAME_CONFLICT, str(e))
            except ApiError as e:
                if e.namespace_gone:
                    # kopf stopped watching the namespace before it saw the agent's deletion, so
                    # its index still lists it: forget it until an event shows it again.
                    self._vanished.add(key)
                    self.agent_deleted(namespace, name)
                    return
                if e.namespace_terminating:
                    return  # the namespace and everything in it are going away
                if e.transient:
                    raise
                failure = e
                accepted = Verdict.false(Reason.APPLY_FAILED, e.message)
            else:
                deployment = applied.deployment
                accepted = Verdict.true(
                    Reason.APPLIED, "ServiceAccount, ConfigMap, Service and Deployment match the spec"
                )
                self._announce_applies(ref, name, applied)

        status = build_status(
            previous,
            generation,
            accepted=accepted,
            topics=topics_verdict(topics, self.live.topic_readiness(namespace)),
            rollout=rollout_of(deployment, agent.spec.replicas, self.live.pod_problems(namespace, name)),
            missing_secrets=missing,
            selector=selector_string(agent),
            model=desired.config.model,
            secrets_forbidden=forbidden,
        )
        await self._write_status(key, ref, body, previous, status)
        if failure is not None:
            raise failure  # retried with backoff; the condition says why meanwhile

    async def _config_map(
        self, namespace: str, name: str
    ) -> tuple[str | None, Mapping[str, str], Mapping[str, str]] | None:
        """A referenced ConfigMap's data and binaryData, fetched again only when its version moved."""
        version = self.live.config_map_version(namespace, name)
        if version is None:
            return None
        cached = self._config_maps.get((namespace, name))
        if cached is None or cached[0] != version:
            obj = await self.kube.get(CONFIGMAPS, namespace, name)
            if obj is None:
                return None
            cached = (_version(obj), dict(obj.get("data") or {}), dict(obj.get("binaryData") or {}))
            self._config_maps[(namespace, name)] = cached
        return cached

    async def _prompt(self, namespace: str, name: str, key: str) -> str | None:
        found = await self._config_map(namespace, name)
        return None if found is None else found[1].get(key)

    async def _config_map_digest(self, namespace: str, name: str, key: str) -> str | None:
        """SHA-256 of one ConfigMap key's value (text or binary), e.g. a trained model; None when absent."""
        found = await self._config_map(namespace, name)
        if found is None:
            return None
        value = found[1].get(key, found[2].get(key))
        return None if value is None else hashlib.sha256(value.encode()).hexdigest()

    async def _apply_children(self, agent: SupportAgent, desired: DesiredState) -> _AppliedChildren:
        result = _AppliedChildren(deployment=self._child("Deployment", agent.namespace, agent.name))
        plan: list[tuple[dict[str, Any], Mapping[str, Any] | None, ApplyCause]] = []
        for child in desired.children:
            live = self._child(child["kind"], agent.namespace, child["metadata"]["name"])
            cause = needs_apply(child, live)
            if cause is not None:
                plan.append((child, live, cause))
        # A child the caches do not know may still exist, unlabelled: never take over someone else's object.
        found = await asyncio.gather(
            *(self._existing(child, agent) for child, _, cause in plan if cause is ApplyCause.CREATE)
        )
        existing = iter(found)
        for i, (child, _, cause) in enumerate(plan):
            if cause is ApplyCause.CREATE:
                obj = next(existing)
                if obj is not None:  # ours, but it had left the cache (e.g. its labels were edited)
                    plan[i] = (child, obj, ApplyCause.DRIFT)

        async def apply(child: dict[str, Any], live: Mapping[str, Any] | None, cause: ApplyCause) -> None:
            kind, child_name = child["kind"], child["metadata"]["name"]
            obj = await self.kube.apply(with_digest(child))
            self._written_children[(kind, agent.namespace, child_name)] = _Written(_version(live), _snapshot(obj))
            metrics.CHILDREN_APPLIED.labels(kind, cause.value).inc()
            result.causes[f"{kind} {child_name}"] = cause
            if kind == "Deployment":
                result.deployment = obj
                result.rolled = cause is ApplyCause.UPDATE and _template_hash(live) != desired.config_hash

        # What the pods use first (ServiceAccount, ConfigMap, Service, in parallel), then the Deployment.
        await asyncio.gather(*(apply(*p) for p in plan if p[0]["kind"] != "Deployment"))
        await asyncio.gather(*(apply(*p) for p in plan if p[0]["kind"] == "Deployment"))
        return result

    async def _existing(self, child: Mapping[str, Any], agent: SupportAgent) -> dict[str, Any] | None:
        """The live object named like ``child`` if it exists and is the agent's; a conflict if it is not."""
        kind, name = child["kind"], child["metadata"]["name"]
        if kind == "ConfigMap" and self.live.config_map_version(agent.namespace, name) is None:
            return None  # every ConfigMap is cached (prompts live in them): no need to ask
        obj = await self.kube.get(BY_KIND[kind], agent.namespace, name)
        if obj is None:
            return None
        owners = (obj.get("metadata") or {}).get("ownerReferences") or []
        if not any(o.get("uid") == agent.uid for o in owners):
            raise NameConflictError(
                f"a {kind} named {name} already exists and is not owned by this SupportAgent: "
                "rename the agent or remove that object"
            )
        return obj

    def _announce_applies(self, ref: ObjectRef, name: str, applied: _AppliedChildren) -> None:
        if not applied.causes:
            return
        by_cause: dict[ApplyCause, list[str]] = {}
        for what, cause in applied.causes.items():
            by_cause.setdefault(cause, []).append(what)
        if ApplyCause.CREATE in by_cause:
            self._event(ref, "Normal", "Created", "created " + ", ".join(by_cause[ApplyCause.CREATE]))
        if ApplyCause.DRIFT in by_cause:
            self._event(
                ref,
                "Normal",
                "DriftReverted",
                "reverted changes made outside the operator to " + ", ".join(by_cause[ApplyCause.DRIFT]),
            )
        if ApplyCause.UPDATE in by_cause:
            if applied.rolled:
                message = f"the rendered config or a referenced Secret changed: rolling out new pods of {name}"
                self._event(ref, "Normal", "ConfigChanged", message)
            else:
                self._event(ref, "Normal", "Updated", "updated " + ", ".join(by_cause[ApplyCause.UPDATE]))

    async def _write_status(
        self,
        key: AgentKey,
        ref: ObjectRef,
        body: Mapping[str, Any],
        previous: SupportAgentStatus,
        status: SupportAgentStatus,
    ) -> None:
        ready = next((c for c in status.conditions if c.type == ConditionType.READY), None)
        metrics.report_ready(KIND, key[0], key[1], ready is not None and ready.status is ConditionStatus.TRUE)
        document = status_document(status)
        if document == status_document(previous):
            return
        try:
            obj = await self.kube.patch_status(SUPPORTAGENTS, key[0], key[1], document)
        except ApiError as e:
            if e.status == 404:
                # Deleted meanwhile, or a stale index entry (see _reconcile): a patch of a custom
                # resource whose namespace is gone says only "not found". Stop resyncing it
                # until an event shows it again, or every resync would patch it forever.
                self._vanished.add(key)
                return
            raise
        metrics.STATUS_WRITES.labels(KIND).inc()
        self._written_agents[key] = _Written(_version(body), _snapshot(obj))
        for before, cond in transitions(previous, status):
            self._announce_condition(ref, before, cond)

    def _announce_condition(self, ref: ObjectRef, before: Condition | None, cond: Condition) -> None:
        """An Event for a transition a person would want to hear about: a rollout that completed,
        anything that went wrong, topics that became (un)ready after the first report."""
        if cond.status is ConditionStatus.TRUE:
            if cond.type == ConditionType.READY or (cond.type == ConditionType.TOPICS_READY and before is not None):
                self._event(ref, "Normal", cond.reason, cond.message)
        elif cond.reason in (Reason.ROLLING_OUT, Reason.NOT_ACCEPTED):
            return  # progress, or already announced through Accepted
        elif cond.type != ConditionType.TOPICS_READY or (before is not None and before.status is ConditionStatus.TRUE):
            self._event(ref, "Warning", cond.reason, cond.message)

    def _event(self, ref: ObjectRef, type_: EventType, reason: str, message: str) -> None:
        level = logging.WARNING if type_ == "Warning" else logging.INFO
        log.log(level, "SupportAgent %s/%s: %s: %s", ref.namespace, ref.name, reason, message)
        task = asyncio.create_task(self.events.post(ref, type_, reason, message))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _template_hash(deployment: Mapping[str, Any] | None) -> str | None:
    if deployment is None:
        return None
    template = (deployment.get("spec") or {}).get("template") or {}
    return ((template.get("metadata") or {}).get("annotations") or {}).get(CONFIG_HASH_ANNOTATION)
