"""Standard Kubernetes conditions, as both kinds report them in ``status.conditions``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from srs_contracts.timestamps import rfc3339


class ConditionStatus(StrEnum):
    """Whether the condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(BaseModel):
    """A standard Kubernetes condition (metav1.Condition): one aspect of the object's state."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    type: str = Field(max_length=316, description="Condition type, e.g. Ready, Accepted.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        description="CamelCase reason for the last transition.",
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
    )
    message: str = Field("", max_length=32768, description="Human-readable details.")
    last_transition_time: str = Field(
        alias="lastTransitionTime", description="RFC 3339 time of the last status change."
    )
    observed_generation: int | None = Field(
        None, alias="observedGeneration", ge=0, description="The generation the condition was computed for."
    )


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    observed_generation: int | None,
) -> list[Condition]:
    """Return ``conditions`` with ``type_`` set; ``lastTransitionTime`` moves only when the
    status changes, so re-reporting the same state does not churn the object."""

    def updated(last_transition_time: str) -> Condition:
        return Condition(
            type=type_,
            status=status,
            reason=reason,
            message=message,
            last_transition_time=last_transition_time,
            observed_generation=observed_generation,
        )

    out: list[Condition] = []
    found = False
    for c in conditions:
        if c.type != type_:
            out.append(c)
            continue
        found = True
        out.append(updated(c.last_transition_time if c.status == status else rfc3339(timespec="seconds")))
    if not found:
        out.append(updated(rfc3339(timespec="seconds")))
    return out
