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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from srs_contracts.agent_config import ModelConfig
from srs_operator.models.conditions import Condition, ConditionStatus, set_condition
from srs_operator.models.supportagent import ConditionType, Reason, SupportAgentStatus

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
) -> SupportAgentStatus:
    """The status to report; conditions keep their transition time when unchanged.
    ``secrets_forbidden`` says why the operator cannot see the Secrets the agent references."""
    if accepted.status is not ConditionStatus.TRUE:
        ready = Verdict.false(Reason.NOT_ACCEPTED, f"the spec was not applied: {accepted.message}")
    elif secrets_forbidden:
        ready = Verdict.false(Reason.SECRETS_NOT_READABLE, secrets_forbidden)
    elif missing_secrets:
        ready = Verdict.false(
            Reason.SECRET_NOT_FOUND,
            "pods cannot start without " + ", ".join(missing_secrets) + " (create it in the agent's namespace)",
        )
    else:
        ready = rollout.verdict
    conditions: list[Condition] = list(previous.conditions)
    for type_, verdict in (
        (ConditionType.ACCEPTED, accepted),
        (ConditionType.TOPICS_READY, topics),
        (ConditionType.READY, ready),
    ):
        conditions = set_condition(conditions, type_, verdict.status, verdict.reason, verdict.message, generation)
    return SupportAgentStatus(
        observed_generation=generation,
        conditions=conditions,
        replicas=rollout.replicas,
        ready_replicas=rollout.ready_replicas,
        ready=f"{rollout.ready_replicas}/{rollout.desired}",
        selector=selector,
        provider=model.provider.value if model is not None else None,
        model=model.name if model is not None else None,
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
