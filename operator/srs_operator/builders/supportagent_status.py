"""What a SupportAgent's status should say, computed from observed state only (no I/O,
no clocks beyond ``set_condition``'s transition time), so an unchanged world yields an
identical status and the operator writes nothing.

Conditions:

- ``Accepted``: the spec is usable and the children were applied.
- ``TopicsReady``: every topic the agent reads or writes has a Ready TicketTopic in its
  namespace (matched by ``spec.topicName``, defaulting to the TicketTopic's name).
- ``Ready``: the current rollout is complete — the Deployment controller has observed the
  latest spec, updated and available replicas equal the desired count, no old pods are
  left, and progress did not stall (``ProgressDeadlineExceeded``). While it is not, a pod
  that cannot start (image missing, crash loop, bad container config, unschedulable) or a
  ReplicaSet that cannot create pods (e.g. Pod Security admission) is named with the
  kubelet's or the controller's own reason (``PodsFailing``), instead of waiting out the
  progress deadline with a bare "0 of 1 available".
- ``Autoscaling`` (only for an agent that scales on lag, ``spec.autoscaling.maxReplicas``):
  whether KEDA scales it (``ScalingOnLag``; ``MaxReplicasCapped`` when the input topic has
  fewer partitions than maxReplicas), or why not (``AutoscalerMissing``: KEDA is not
  installed, which also makes ``Ready`` False; ``ScalerNotReady``: KEDA's own reason).
  ``status.autoscaling`` carries the bound in force and the HPA's last word on the
  replica count.
- ``KafkaAccessReady`` (only when the operator manages Kafka users, or the agent brings its
  own with ``spec.kafka.credentialsSecret``): the agent's Kafka user and exactly the ACLs its
  spec needs exist (``AccessGranted``), or why not (``TopicsNotAllowed``: a topic outside the
  namespace's prefix rules; ``KafkaUnavailable``; ``KafkaRefused``). ``Ready`` is False while
  it is: pods without their rights would only fill the dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from srs_contracts.agent_config import ModelConfig
from srs_operator.builders.supportagent import consumer_group, deployment_replicas, max_replicas
from srs_operator.models.conditions import Condition, ConditionStatus, set_condition
from srs_operator.models.supportagent import (
    AutoscalingStatus,
    ConditionType,
    Reason,
    SupportAgent,
    SupportAgentStatus,
)

#: Container waiting reasons that mean "this will not start by itself soon".
FAILING_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CrashLoopBackOff",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


def pod_problem(pod: Mapping[str, Any]) -> str | None:
    """Why this pod cannot start, in the kubelet's (or the scheduler's) words; None when it
    is running or still on its way."""
    name = (pod.get("metadata") or {}).get("name", "?")
    status = pod.get("status") or {}
    for cs in [*(status.get("initContainerStatuses") or ()), *(status.get("containerStatuses") or ())]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in FAILING_WAITING_REASONS:
            detail = waiting.get("message") or ""
            if reason == "CrashLoopBackOff":
                last = (cs.get("lastState") or {}).get("terminated") or {}
                detail = f"exit code {last.get('exitCode', '?')} ({last.get('reason') or 'terminated'})"
            return f"pod {name}: container {cs.get('name', '?')}: {reason}" + (f": {detail}" if detail else "")
    for cond in status.get("conditions") or ():
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason"):
            return f"pod {name}: {cond['reason']}: {cond.get('message') or ''}".rstrip(": ")
    return None


@dataclass(frozen=True)
class Verdict:
    """One condition's value before it is stamped with a transition time."""

    status: ConditionStatus
    reason: Reason
    message: str

    @classmethod
    def true(cls, reason: Reason, message: str) -> Verdict:
        return cls(ConditionStatus.TRUE, reason, message)

    @classmethod
    def false(cls, reason: Reason, message: str) -> Verdict:
        return cls(ConditionStatus.FALSE, reason, message)


@dataclass(frozen=True)
class Rollout:
    """Where the agent's Deployment stands."""

    verdict: Verdict
    desired: int
    replicas: int
    ready_replicas: int


def rollout_of(
    deployment: Mapping[str, Any] | None, expected_replicas: int, pod_problems: Sequence[str] = ()
) -> Rollout:
    """Judge the live Deployment the way ``kubectl rollout status`` does, stricter: every
    desired replica must be updated *and* available, and no old replica may remain.
    ``expected_replicas`` stands in for the desired count while there is no Deployment;
    ``pod_problems`` (from :func:`pod_problem`) explain an incomplete rollout."""
    if deployment is None:
        verdict = Verdict.false(Reason.ROLLING_OUT, "the Deployment does not exist yet")
        return Rollout(verdict, expected_replicas, 0, 0)
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    desired = int(spec.get("replicas", 1))
    replicas = int(status.get("replicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)

    def rolling(message: str) -> Rollout:
        if pod_problems:
            failing = f"{message}; " + "; ".join(sorted(pod_problems)[:3])
            return Rollout(Verdict.false(Reason.PODS_FAILING, failing), desired, replicas, ready)
        return Rollout(Verdict.false(Reason.ROLLING_OUT, message), desired, replicas, ready)

    for cond in status.get("conditions") or ():
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            message = f"the rollout stalled: {cond.get('message') or 'progress deadline exceeded'}"
            if pod_problems:
                message += "; " + "; ".join(sorted(pod_problems)[:3])
            return Rollout(Verdict.false(Reason.PROGRESS_DEADLINE_EXCEEDED, message), desired, replicas, ready)
        if cond.get("type") == "ReplicaFailure" and cond.get("status") == "True":
            # The ReplicaSet could not create pods at all (admission, quota): no pod will say why.
            message = f"pods cannot be created: {cond.get('reason', 'FailedCreate')}: {cond.get('message', '')}"
            return Rollout(Verdict.false(Reason.PODS_FAILING, message.rstrip(": ")), desired, replicas, ready)
    generation = int((deployment.get("metadata") or {}).get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return rolling("waiting for the Deployment controller to observe the new spec")
    if updated < desired:
        return rolling(f"{updated} of {desired} replicas updated")
    if replicas > updated:
        return rolling(f"{replicas - updated} old replicas are terminating")
    if available < desired:
        return rolling(f"{available} of {desired} updated replicas available")
    return Rollout(
        Verdict.true(Reason.ROLLOUT_COMPLETE, f"{desired} of {desired} replicas updated and available"),
        desired,
        replicas,
        ready,
    )


def topics_verdict(topics: Iterable[str], ready: Mapping[str, bool]) -> Verdict:
    """``ready`` maps a topic name to whether some TicketTopic for it is Ready."""
    missing = sorted(t for t in topics if t not in ready)
    not_ready = sorted(t for t in topics if t in ready and not ready[t])
    if not missing and not not_ready:
        return Verdict.true(Reason.TOPICS_READY, "every topic the agent reads or writes has a Ready TicketTopic")
    parts = []
    if missing:
        parts.append("no TicketTopic for " + ", ".join(missing))
    if not_ready:
        parts.append("TicketTopic not Ready for " + ", ".join(not_ready))
    return Verdict.false(Reason.TOPICS_NOT_READY, "; ".join(parts))


class AutoscalerView(Protocol):
    """What the status reads of the HorizontalPodAutoscaler KEDA made for an agent."""

    @property
    def last_scale_time(self) -> str | None: ...

    @property
    def conditions(self) -> tuple[tuple[str, str, str, str], ...]: ...


@dataclass(frozen=True)
class Scaling:
    """How an agent that scales on lag stands: its ``Autoscaling`` condition, its
    ``status.autoscaling``, and whether the autoscaler is missing (``Ready`` is then False)."""

    verdict: Verdict
    status: AutoscalingStatus
    missing: bool = False


#: What to install when KEDA is missing.
INSTALL_KEDA = (
    "install KEDA (e.g. `helm install keda kedacore/keda --namespace keda --create-namespace`; "
    "`srs kind up` installs it)"
)


def scaling_of(
    agent: SupportAgent,
    *,
    keda: bool,
    bootstrap_servers: str | None,
    partitions: int | None,
    scaled_object: Mapping[str, Any] | None,
    autoscaler: AutoscalerView | None,
) -> Scaling | None:
    """How the agent scales on lag; None when it does not (no ``spec.autoscaling.maxReplicas``).
    ``keda``: KEDA's ScaledObject is served; ``partitions``: of the input topic, when known."""
    spec = agent.spec.autoscaling
    high = max_replicas(agent, partitions)  # None without spec.autoscaling.maxReplicas
    if spec is None or spec.max_replicas is None or high is None:
        return None
    if not keda or not bootstrap_servers:
        running = deployment_replicas(agent, False)
        why = (
            "the cluster does not serve KEDA's ScaledObject (keda.sh/v1alpha1): " + INSTALL_KEDA
            if not keda
            else "KEDA reads the lag at the Kafka address the operator gives the agents, and it has none: set "
            "SRS_AGENT_KAFKA_BOOTSTRAP_SERVERS (the chart's kafka.bootstrapServers)"
        )
        verdict = Verdict.false(
            Reason.AUTOSCALER_MISSING,
            f"spec.autoscaling.maxReplicas asks KEDA to scale the agent on lag, but {why}, or remove "
            f"spec.autoscaling.maxReplicas; meanwhile {running} pod(s) run",
        )
        return Scaling(verdict, AutoscalingStatus(max_replicas=high), missing=True)
    so_conditions = _conditions(scaled_object)
    so_ready = so_conditions.get("Ready")
    low = min(spec.min_replicas if spec.min_replicas is not None else 1, high)
    target = f"the lag of consumer group {consumer_group(agent)} on topic {agent.spec.input_topic}"
    if so_ready is not None and so_ready[0] == "False":
        verdict = Verdict.false(Reason.SCALER_NOT_READY, f"KEDA: {so_ready[1]}: {so_ready[2]}".rstrip(": "))
    elif partitions is not None and spec.max_replicas > high:
        verdict = Verdict.true(
            Reason.MAX_REPLICAS_CAPPED,
            f"KEDA scales between {low} and {high} pods on {target}: spec.autoscaling.maxReplicas "
            f"{spec.max_replicas} is above the topic's {partitions} partitions, and a pod beyond them would get "
            "no partition (add partitions to its TicketTopic to go higher)",
        )
    else:
        verdict = Verdict.true(Reason.SCALING_ON_LAG, f"KEDA scales between {low} and {high} pods on {target}")
    reason, message, when = _last_scaling(so_conditions, autoscaler)
    return Scaling(verdict, AutoscalingStatus(max_replicas=high, reason=reason, message=message, last_scale_time=when))


def _conditions(obj: Mapping[str, Any] | None) -> dict[str, tuple[str, str, str]]:
    """type → (status, reason, message) of an object's status conditions."""
    conditions = ((obj or {}).get("status") or {}).get("conditions") or ()
    return {
        str(c.get("type")): (str(c.get("status")), str(c.get("reason") or ""), str(c.get("message") or ""))
        for c in conditions
        if isinstance(c, Mapping)
    }


def _last_scaling(
    so_conditions: Mapping[str, tuple[str, str, str]], autoscaler: AutoscalerView | None
) -> tuple[str | None, str | None, str | None]:
    """The autoscaler's last word on the replica count: (reason, message, last scale time).
    KEDA holding the fallback count first, then the HPA's limits, its last rescale, scaling
    paused at zero, and KEDA's trigger activity while there is no HPA yet."""
    fallback = so_conditions.get("Fallback")
    when = autoscaler.last_scale_time if autoscaler is not None else None
    if fallback is not None and fallback[0] == "True":
        return "Fallback", fallback[2][:1024] or "KEDA cannot read the lag: holding the fallback replicas", when
    if autoscaler is not None:
        hpa = {c[0]: c[1:] for c in autoscaler.conditions}
        able, active, limited = hpa.get("AbleToScale"), hpa.get("ScalingActive"), hpa.get("ScalingLimited")
        for found, wanted in ((active, "False"), (limited, "True"), (able, None)):
            if found is not None and (wanted is None or found[0] == wanted) and found[1]:
                return found[1][:128], found[2][:1024], when
    active = so_conditions.get("Active")
    if active is not None and active[1]:
        return active[1][:128], active[2][:1024], when
    return None, None, when


def build_status(
    previous: SupportAgentStatus,
    generation: int,
    *,
    accepted: Verdict,
    topics: Verdict,
    rollout: Rollout,
    missing_secrets: Sequence[str],
    selector: str,
    model: ModelConfig | None = None,
    secrets_forbidden: str | None = None,
    scaling: Scaling | None = None,
    kafka_access: Verdict | None = None,
) -> SupportAgentStatus:
    """The status to report; conditions keep their transition time when unchanged.
    ``secrets_forbidden`` says why the operator cannot see the Secrets the agent references;
    ``scaling``: how an agent that scales on lag stands (None: it does not); ``kafka_access``:
    the agent's Kafka user and ACLs (None: the operator does not manage them)."""
    if accepted.status is not ConditionStatus.TRUE:
        ready = Verdict.false(Reason.NOT_ACCEPTED, f"the spec was not applied: {accepted.message}")
    elif secrets_forbidden:
        ready = Verdict.false(Reason.SECRETS_NOT_READABLE, secrets_forbidden)
    elif missing_secrets:
        ready = Verdict.false(
            Reason.SECRET_NOT_FOUND,
            "pods cannot start without " + ", ".join(missing_secrets) + " (create it in the agent's namespace)",
        )
    elif kafka_access is not None and kafka_access.status is not ConditionStatus.TRUE:
        ready = kafka_access
    elif scaling is not None and scaling.missing:
        ready = scaling.verdict
    else:
        ready = rollout.verdict
    conditions: list[Condition] = [
        c
        for c in previous.conditions
        if (scaling or c.type != ConditionType.AUTOSCALING)
        and (kafka_access or c.type != ConditionType.KAFKA_ACCESS_READY)
    ]
    for type_, verdict in (
        (ConditionType.ACCEPTED, accepted),
        (ConditionType.TOPICS_READY, topics),
        (ConditionType.READY, ready),
    ):
        conditions = set_condition(conditions, type_, verdict.status, verdict.reason, verdict.message, generation)
    if scaling is not None:
        v = scaling.verdict
        conditions = set_condition(conditions, ConditionType.AUTOSCALING, v.status, v.reason, v.message, generation)
    if kafka_access is not None:
        v = kafka_access
        conditions = set_condition(
            conditions, ConditionType.KAFKA_ACCESS_READY, v.status, v.reason, v.message, generation
        )
    return SupportAgentStatus(
        observed_generation=generation,
        conditions=conditions,
        replicas=rollout.replicas,
        desired_replicas=rollout.desired,
        ready_replicas=rollout.ready_replicas,
        ready=f"{rollout.ready_replicas}/{rollout.desired}",
        selector=selector,
        provider=model.provider.value if model is not None else None,
        model=model.name if model is not None else None,
        autoscaling=scaling.status if scaling is not None else None,
    )


def status_document(status: SupportAgentStatus) -> dict[str, Any]:
    """The status as it is written to (and compared with) the API."""
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_status(raw: Mapping[str, Any] | None) -> SupportAgentStatus:
    """The live status, tolerating what another writer may have left there."""
    fields = {f.alias or n for n, f in SupportAgentStatus.model_fields.items()}
    try:
        return SupportAgentStatus.model_validate({k: v for k, v in dict(raw or {}).items() if k in fields})
    except ValueError:
        return SupportAgentStatus()


def transitions(before: SupportAgentStatus, after: SupportAgentStatus) -> list[tuple[Condition | None, Condition]]:
    """(previous, new) for every condition whose status or reason changed; previous is None
    when the condition is reported for the first time."""
    old = {c.type: c for c in before.conditions}
    out: list[tuple[Condition | None, Condition]] = []
    for c in after.conditions:
        prev = old.get(c.type)
        if prev is None or (prev.status, prev.reason) != (c.status, c.reason):
            out.append((prev, c))
    return out
