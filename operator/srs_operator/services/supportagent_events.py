"""The Events a SupportAgent's reconcile announces: pure wording, no I/O.

Events go out on transitions only (a quiet cluster sees none): children created, updated
or reverted after a hand edit, a rollout that completed, anything that went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from srs_operator.models.conditions import Condition, ConditionStatus
from srs_operator.models.supportagent import ConditionType, Reason
from srs_operator.services.drift import ApplyCause


@dataclass(frozen=True)
class Announcement:
    """One Event to post on the agent."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def applies(name: str, causes: Mapping[str, ApplyCause], rolled: bool) -> list[Announcement]:
    """What one apply pass did (``causes``: "Kind name" → why it was applied)."""
    by_cause: dict[ApplyCause, list[str]] = {}
    for what, cause in causes.items():
        by_cause.setdefault(cause, []).append(what)
    out: list[Announcement] = []
    if ApplyCause.CREATE in by_cause:
        out.append(Announcement("Normal", "Created", "created " + ", ".join(by_cause[ApplyCause.CREATE])))
    if ApplyCause.DRIFT in by_cause:
        message = "reverted changes made outside the operator to " + ", ".join(by_cause[ApplyCause.DRIFT])
        out.append(Announcement("Normal", "DriftReverted", message))
    if ApplyCause.UPDATE in by_cause:
        if rolled:
            message = f"the rendered config or a referenced Secret changed: rolling out new pods of {name}"
            out.append(Announcement("Normal", "ConfigChanged", message))
        else:
            out.append(Announcement("Normal", "Updated", "updated " + ", ".join(by_cause[ApplyCause.UPDATE])))
    return out


def condition_change(before: Condition | None, cond: Condition) -> Announcement | None:
    """An Event for a transition a person would want to hear about: a rollout that completed,
    anything that went wrong, topics that became (un)ready and autoscaling that started or
    changed after the first report."""
    later = cond.type in (ConditionType.TOPICS_READY, ConditionType.AUTOSCALING, ConditionType.KAFKA_ACCESS_READY)
    if cond.status is ConditionStatus.TRUE:
        if cond.type == ConditionType.READY or (later and before is not None):
            return Announcement("Normal", cond.reason, cond.message)
        return None
    if cond.reason in (Reason.ROLLING_OUT, Reason.NOT_ACCEPTED):
        return None  # progress, or already announced through Accepted
    if cond.type == ConditionType.AUTOSCALING and cond.reason == Reason.AUTOSCALER_MISSING:
        return None  # announced through Ready
    if cond.type == ConditionType.KAFKA_ACCESS_READY:
        return None  # announced through Ready, which says the same
    if cond.type != ConditionType.TOPICS_READY or (before is not None and before.status is ConditionStatus.TRUE):
        return Announcement("Warning", cond.reason, cond.message)
    return None
