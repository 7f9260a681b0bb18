"""Reconcile one SupportAgent: level-based, idempotent, silent when nothing changed.

:class:`SupportAgentController` is a :class:`~srs_operator.services.controller.Controller`
(the shape every kind shares: work queue, periodic re-check, status writer, Events). Given
an agent's key it reads everything from the watch-fed caches (:class:`LiveState`: the agent,
its children, ConfigMap versions, pod problems; :class:`~.topic_usage.TopicUsage`: which
topics are Ready), and:

1. gathers the inputs besides the spec (:mod:`.supportagent_inputs`: prompt, trained
   model, Secret versions);
2. when the operator manages Kafka users, makes the agent's Kafka user and every ACL its
   spec needs exist (:mod:`.supportagent_kafka_access`) — before any child changes, so a
   topic the agent is about to use is already granted; it then holds the finalizer
   ``srs.dev/finalizer`` on the agent, to remove the user and its ACLs with it;
3. builds the desired children and status with the pure builders;
4. applies only the children that differ (:mod:`.supportagent_children`), and revokes the
   ACLs the spec dropped once the rollout that stopped using them is complete;
5. writes the status only when it differs, and announces transitions
   (:mod:`.supportagent_events`).

Which agents to reconcile comes from the handlers (watch events of agents, children,
Secrets, ConfigMaps, TicketTopics) and from the periodic re-check.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from pydantic import ValidationError

from srs_contracts.timestamps import parse_rfc3339
from srs_operator.builders.kafka_access import external_verdict
from srs_operator.builders.supportagent import (
    DesiredState,
    agent_topics,
    build_desired,
    credentials_secret_name,
    kafka_credentials,
    selector_string,
)
from srs_operator.builders.supportagent_status import (
    Verdict,
    build_status,
    parse_status,
    rollout_of,
    scaling_of,
    status_document,
    topics_verdict,
    transitions,
)
from srs_operator.clients.events import EventRecorder
from srs_operator.clients.informers import NotListedError
from srs_operator.clients.kafka_admin import KafkaAdminError, KafkaUnavailable
from srs_operator.clients.kube import SUPPORTAGENTS, ApiError, KubeClient, login
from srs_operator.clients.secrets import SecretVersions, credentials_grant_command
from srs_operator.clients.secrets import WatchTimings as SecretTimings
from srs_operator.models.conditions import ConditionStatus
from srs_operator.models.supportagent import SUPPORT_AGENT, ConditionType, Reason, SupportAgent, SupportAgentStatus
from srs_operator.services import supportagent_events
from srs_operator.services.controller import Controller, ObjectKey, merge_patch
from srs_operator.services.supportagent_children import ChildApplier, NameConflictError
from srs_operator.services.supportagent_inputs import AgentInputs, Dependencies, SecretVersionSource
from srs_operator.services.supportagent_kafka_access import Granted, KafkaAccess
from srs_operator.services.supportagent_watches import Autoscaler
from srs_operator.services.topic_usage import EMPTY, TopicUsage
from srs_operator.services.workqueue import RetryLater
from srs_operator.settings import FINALIZER, OperatorSettings

log = logging.getLogger(__name__)

KIND: Final = SUPPORT_AGENT.kind
AgentKey = ObjectKey  # (namespace, name)


class LiveState(Protocol):
    """What the watches have seen of agents and what they own (kopf's index and the
    operator's informers in production, dicts in tests)."""

    def agent(self, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def agent_keys(self) -> Iterable[AgentKey]: ...

    def child(self, kind: str, namespace: str, name: str) -> Mapping[str, Any] | None: ...

    def config_map_version(self, namespace: str, name: str) -> str | None: ...

    def pod_problems(self, namespace: str, name: str) -> Sequence[str]:
        """Why the agent's pods cannot start (see ``pod_problem``); empty when they can."""

    def autoscaler(self, namespace: str, name: str) -> Autoscaler | None:
        """The HorizontalPodAutoscaler KEDA drives the agent with, if any."""

    def keda_served(self, namespace: str) -> bool:
        """Whether KEDA's ScaledObject kind is served (KEDA is installed)."""

    async def wait_listed(self, namespace: str) -> None:
        """Return once the namespace's children are known (listed once); raise
        :class:`~srs_operator.clients.informers.NotListedError` when they cannot be."""

    def healthy(self) -> tuple[bool, str]:
        """Whether the watches behind it still run (for the liveness probe)."""


class _Agents:
    """The agents of a :class:`LiveState` as the controller's object cache."""

    def __init__(self, live: LiveState) -> None:
        self._live = live

    def get(self, key: ObjectKey) -> Mapping[str, Any] | None:
        return self._live.agent(*key)

    def keys(self) -> Iterable[ObjectKey]:
        return self._live.agent_keys()


def _validation_summary(error: ValidationError) -> str:
    """Where and what, without echoing input values."""
    parts = []
    for e in error.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in e["loc"])
        parts.append(f"spec.{loc}: {e['msg']}" if loc else e["msg"])
    return "; ".join(parts)[:1000]


class SupportAgentController(Controller):
    """Reconciles SupportAgents; one per operator process."""

    kind = KIND
    resource = SUPPORTAGENTS
    finalizer = FINALIZER

    def __init__(
        self,
        kube: KubeClient,
        live: LiveState,
        settings: OperatorSettings,
        events: EventRecorder | None = None,
        secrets: SecretVersionSource | None = None,
        usage: TopicUsage = EMPTY,
        watch_kube: KubeClient | None = None,
        access: KafkaAccess | None = None,
    ) -> None:
        super().__init__(
            kube,
            _Agents(live),
            workers=settings.workers,
            resync_seconds=settings.resync_seconds,
            events=events,
            namespaces=settings.namespaces,
        )
        self.live = live
        self.settings = settings
        self.usage = usage
        self.inputs = AgentInputs(
            kube,
            live,
            secrets
            or SecretVersions(
                watch_kube or kube, self.secret_changed, SecretTimings(retry_forbidden=settings.recheck_seconds)
            ),
            settings,
        )
        #: The agents' Kafka users and ACLs (None: the operator does not manage them).
        self.access = access
        self.children = ChildApplier(kube, live)
        self._deps: dict[AgentKey, Dependencies] = {}
        #: (namespace, ConfigMap name) -> the agents that read it (every ConfigMap event asks).
        self._config_map_readers: dict[tuple[str, str], set[AgentKey]] = {}

    @classmethod
    async def connect(
        cls,
        live: LiveState,
        settings: OperatorSettings,
        usage: TopicUsage,
        watch_kube: KubeClient,
        env: Mapping[str, str] | None = None,
    ) -> SupportAgentController:
        """A controller on its own API client, with kopf's credentials (in-cluster, else
        ``$KUBECONFIG``); the Secrets' watches on ``watch_kube`` (a client without a
        connection limit: a watch holds its connection for minutes). When the operator
        manages Kafka users, a Kafka admin client of its own (``KAFKA_*`` in ``env``)."""
        kube = KubeClient(login())
        access = None
        if settings.agent_kafka.users_managed:
            access = await KafkaAccess.connect(kube, settings, env or {})
        return cls(kube, live, settings, usage=usage, watch_kube=watch_kube, access=access)

    def healthy(self) -> tuple[bool, str]:
        ok, why = super().healthy()
        if not ok:
            return ok, why
        watches_ok, watches = self.live.healthy()
        return watches_ok, f"{why}; {watches}" if watches_ok else watches

    async def stop(self) -> None:
        await super().stop()
        if isinstance(self.inputs.secrets, SecretVersions):
            await self.inputs.secrets.stop()

    async def close(self) -> None:
        await super().close()
        if self.access is not None:
            await self.access.close()

    # -- what to reconcile (called by the handlers) -----------------------------------------

    def changed(self, namespace: str, name: str, *, urgent: bool = False) -> None:
        # A new agent first gets its Deployment; status follow-ups of the others wait.
        super().changed(namespace, name, urgent=urgent or (namespace, name) not in self._deps)

    def forget(self, key: ObjectKey) -> None:
        super().forget(key)
        self._set_dependencies(key, None)
        self.children.forget(*key)
        if self.access is not None:
            self.access.forget(key)

    def namespace_unwatched(self, namespace: str) -> None:
        super().namespace_unwatched(namespace)
        for key in [k for k in self._deps if k[0] == namespace]:
            self.vanish(key)

    def secret_changed(self, namespace: str, name: str | None) -> None:
        """A Secret changed (``None``: the operator's access to the namespace's Secrets did)."""
        for key, deps in list(self._deps.items()):
            if key[0] == namespace and (name in deps.secrets if name is not None else bool(deps.secrets)):
                self.queue.add(key)

    def config_map_changed(self, namespace: str, name: str) -> None:
        for key in list(self._config_map_readers.get((namespace, name), ())):
            self.queue.add(key)

    def _set_dependencies(self, key: AgentKey, deps: Dependencies | None) -> None:
        before = self._deps.pop(key, None)
        for name in before.config_maps if before is not None else ():
            readers = self._config_map_readers.get((key[0], name))
            if readers is not None:
                readers.discard(key)
                if not readers:
                    del self._config_map_readers[(key[0], name)]
        if deps is not None:
            self._deps[key] = deps
            for name in deps.config_maps:
                self._config_map_readers.setdefault((key[0], name), set()).add(key)

    def autoscaler_served(self, namespace: str | None) -> None:
        """KEDA's ScaledObjects started or stopped being served in ``namespace`` (None: the
        cluster): the agents that scale on lag there look again."""
        for key in list(self.live.agent_keys()):
            if namespace is not None and key[0] != namespace:
                continue
            body = self.live.agent(*key) or {}
            if ((body.get("spec") or {}).get("autoscaling") or {}).get("maxReplicas") is not None:
                self.queue.add(key)

    def topic_changed(self, namespace: str, topic: str) -> None:
        """A TicketTopic for ``topic`` changed: the agents in its namespace that use it look again."""
        for name in self.usage.agents_using(namespace, topic):
            self.queue.add((namespace, name))

    # -- reconcile ----------------------------------------------------------------------

    async def reconcile_object(self, key: AgentKey, body: Mapping[str, Any]) -> None:
        """Make the cluster match the agent ``key``; no writes when it already does."""
        meta = body.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or ())
        held = FINALIZER in finalizers
        if meta.get("deletionTimestamp"):
            # Going: garbage collection removes the children; the finalizer waits for Kafka.
            if held:
                if self.access is not None:
                    await self._remove_access(key, body)
                await self.patch_metadata(key, body, {"finalizers": [f for f in finalizers if f != FINALIZER]})
            return
        # The finalizer exactly while the operator manages Kafka users: it removes the agent's
        # user and ACLs with it (no Kafka user, nothing to hold the agent for).
        if (self.access is not None) != held:
            kept = [f for f in finalizers if f != FINALIZER]
            await self.patch_metadata(key, body, {"finalizers": [*kept, FINALIZER] if not held else kept})
            body = self.current(key) or body
        namespace, name = key
        try:
            await self.live.wait_listed(namespace)
        except NotListedError as e:
            raise RetryLater(str(e)) from e
        previous = parse_status(body.get("status"))
        generation = int(body["metadata"].get("generation") or 0)
        try:
            agent = SupportAgent.from_body(body)
        except ValidationError as e:
            invalid = Verdict.false(Reason.INVALID_SPEC, _validation_summary(e))
            rollout = rollout_of(self.children.child("Deployment", namespace, name), 0)
            status = build_status(
                previous, generation, accepted=invalid, topics=invalid, rollout=rollout, missing_secrets=(), selector=""
            )
            await self._report(key, body, previous, status)
            return

        inputs = await self.inputs.of(agent)
        self._set_dependencies(key, inputs.dependencies)
        secrets = dict(inputs.secrets)
        access: Verdict | None = None
        granted: Granted | None = None
        failure: ApiError | None = None
        #: The agent's Kafka access could not be made sure of: no child may change yet.
        access_pending = False
        creds = kafka_credentials(agent, self.settings)
        if creds is not None and not creds.managed:
            access = external_verdict(creds.secret)
        elif creds is not None and self.access is not None:
            if inputs.secrets_forbidden:
                access = Verdict.false(Reason.SECRETS_NOT_READABLE, inputs.secrets_forbidden)
                access_pending = True
            else:
                try:
                    granted = await self.access.grant(agent, secrets.get(creds.secret))
                except ApiError as e:  # the Secret could not be written
                    if e.namespace_gone or e.namespace_terminating:
                        return
                    e.subject = f"Secret {credentials_secret_name(name)}"
                    failure = e
                    message = _refusal(e)
                    if e.status == 403:
                        message += f"; let the operator write it with `{credentials_grant_command(namespace)}`"
                    access = Verdict.false(Reason.APPLY_FAILED, message)
                    access_pending = True
                else:
                    access = granted.verdict
                    access_pending = granted.failed
                    secrets[creds.secret] = granted.secret
                    if granted.issued is not None:
                        self.event(body, "Normal", "KafkaCredentialsIssued", f"a new Kafka password: {granted.issued}")
        keda = self.live.keda_served(namespace)
        partitions = self.usage.partitions(namespace, agent.spec.input_topic)
        desired = build_desired(
            agent, self.settings, inputs.prompt, secrets, inputs.model_digest, keda=keda, partitions=partitions
        )
        # Only existence is known (metadata): a missing key shows as pods that cannot start.
        missing = (
            []
            if inputs.secrets_forbidden
            else [f"Secret {n}" for n in dict.fromkeys(r.name for r in desired.secret_refs) if secrets.get(n) is None]
        )

        deployment = self.children.child("Deployment", namespace, name)
        accepted = inputs.refused
        if accepted is None and access is not None and access_pending:
            # Not one child changes before the agent may use what the new spec names.
            accepted = Verdict.false(access.reason, f"waiting for the agent's Kafka access: {access.message}")
        if accepted is None:
            try:
                applied = await self.children.apply(agent, desired)
            except NameConflictError as e:
                accepted = Verdict.false(Reason.NAME_CONFLICT, str(e))
            except ApiError as e:
                if e.namespace_gone:
                    # kopf stopped watching the namespace before it saw the agent's deletion, so
                    # its index still lists it: forget it until an event shows it again.
                    self.vanish(key)
                    return
                if e.namespace_terminating:
                    return  # the namespace and everything in it are going away
                # Never silent: a quota, an admission policy, an invalid object or a server
                # error (a full service IP range answers 500) shows in the status at once.
                failure = e
                accepted = Verdict.false(Reason.APPLY_FAILED, _refusal(e))
            else:
                deployment = applied.deployment
                accepted = Verdict.true(Reason.APPLIED, _applied_message(desired))
                for note in supportagent_events.applies(name, applied.causes, applied.rolled):
                    self.event(body, note.type, note.reason, note.message)

        rollout = rollout_of(deployment, agent.spec.replicas, self.live.pod_problems(namespace, name))
        if granted is not None and granted.stale and self.access is not None:
            if rollout.verdict.status is ConditionStatus.TRUE and accepted.status is ConditionStatus.TRUE:
                await self._revoke(agent, granted)
            else:
                # An old pod may still use them: the Deployment's progress brings the agent back.
                log.debug("%s/%s: revoking %d stale ACLs after the rollout", namespace, name, len(granted.stale))
        status = build_status(
            previous,
            generation,
            accepted=accepted,
            topics=topics_verdict(agent_topics(agent), self.usage.readiness(namespace)),
            rollout=rollout,
            missing_secrets=missing,
            selector=selector_string(agent),
            model=desired.config.model,
            secrets_forbidden=inputs.secrets_forbidden,
            scaling=scaling_of(
                agent,
                keda=keda,
                bootstrap_servers=self.settings.agent_kafka_bootstrap_servers,
                partitions=partitions,
                scaled_object=self.children.child("ScaledObject", namespace, name),
                autoscaler=self.live.autoscaler(namespace, name),
            ),
            kafka_access=access,
        )
        await self._report(key, body, previous, status)
        if failure is not None:
            raise failure  # retried with backoff; the condition says why meanwhile
        if granted is not None and granted.failed:
            raise RetryLater(access.message if access is not None else "Kafka access")

    async def _revoke(self, agent: SupportAgent, granted: Granted) -> None:
        assert self.access is not None
        try:
            await self.access.revoke(agent, granted.stale)
        except (KafkaUnavailable, KafkaAdminError) as e:
            # Harmless meanwhile (the agent no longer uses them); the next re-check tries again.
            log.warning("SupportAgent %s/%s: cannot revoke ACLs it no longer needs: %s", agent.namespace, agent.name, e)

    async def _remove_access(self, key: AgentKey, body: Mapping[str, Any]) -> None:
        """Remove the agent's Kafka user and ACLs; an unreachable Kafka is waited for at most
        ``delete_timeout`` after the deletion began, then the agent is released (Warning Event)."""
        assert self.access is not None
        try:
            await self.access.remove(*key)
        except (KafkaUnavailable, KafkaAdminError) as e:
            waited = _seconds_since((body.get("metadata") or {}).get("deletionTimestamp"))
            limit = self.settings.agent_kafka.delete_timeout
            if waited < limit:
                raise RetryLater(f"removing the agent's Kafka user and ACLs: {e}", at_most=limit - waited) from e
            self.event(
                body,
                "Warning",
                "KafkaAccessNotRemoved",
                f"released after {waited:.0f}s without removing Kafka user srs.{key[0]}.{key[1]} and its ACLs "
                f"({e}): remove them by hand (docs/kafka-security.md)",
            )

    async def _report(
        self, key: AgentKey, body: Mapping[str, Any], previous: SupportAgentStatus, status: SupportAgentStatus
    ) -> None:
        """Write the status when it differs, and announce its transitions."""
        ready = next((c for c in status.conditions if c.type == ConditionType.READY), None)
        self.report_ready(key, ready is not None and ready.status is ConditionStatus.TRUE)
        document, live = status_document(status), status_document(previous)
        if document == live:
            return
        # What the new status no longer has (the autoscaling of an agent that stopped scaling
        # on lag) is removed, not left behind by the merge patch.
        if await self.write_status(key, body, merge_patch(live, document)):
            for before, cond in transitions(previous, status):
                note = supportagent_events.condition_change(before, cond)
                if note is not None:
                    self.event(body, note.type, note.reason, note.message)


def _applied_message(desired: DesiredState) -> str:
    kinds = [m["kind"] for m in desired.children]
    return f"{', '.join(kinds[:-1])} and {kinds[-1]} match the spec"


def _seconds_since(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    return max(0.0, (dt.datetime.now(dt.UTC) - parse_rfc3339(timestamp)).total_seconds())


def _refusal(error: ApiError) -> str:
    """What the API server refused and why, for the Accepted condition and its Warning Event."""
    subject = f"{error.subject}: " if error.subject else ""
    return f"{subject}the API server refused it ({error.status} {error.reason}): {error.message}; retrying"
