"""What roles and providers talk about: a ticket and a triage decision.

These are the in-process views of the wire events (``events/``): a :class:`Ticket` is
read from a ``ticket.created`` payload, a :class:`TriageDecision` is what a provider
answers when asked to classify one. Neither knows about Kafka or JSON Schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from srs_contracts.agent_config import Priority, TicketType

#: The wire name of "the model could not tell" (``TriageDecision.type is None``).
UNKNOWN_TYPE: Final = "unknown"


@dataclass(frozen=True)
class Ticket:
    """A customer's ticket, as read from a ``ticket.created`` event."""

    ticket_id: str
    customer_id: str
    subject: str
    body: str
    event_id: str = ""
    created_at: str | None = None
    channel: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_event(cls, event: Mapping[str, Any]) -> Ticket:
        """Read a (schema-valid) ``ticket.created`` payload."""
        metadata = event.get("metadata")
        return cls(
            ticket_id=str(event["ticket_id"]),
            customer_id=str(event.get("customer_id", "")),
            subject=str(event["subject"]),
            body=str(event["body"]),
            event_id=str(event.get("event_id", "")),
            created_at=event.get("created_at"),
            channel=event.get("channel"),
            metadata=dict(metadata) if isinstance(metadata, Mapping) else {},
        )


@dataclass(frozen=True)
class TriageDecision:
    """A provider's classification of one ticket.

    ``type`` is None when the model could not tell (or said something that is not a
    ticket type); such a ticket goes to the human queue. Nothing here names a topic:
    routing is the triage role's job, from its configured table only.
    """

    type: TicketType | None
    priority: Priority
    confidence: float
    reasoning: str = ""

    @property
    def type_name(self) -> str:
        """The type as it travels on the wire (``unknown`` for None)."""
        return self.type.value if self.type is not None else UNKNOWN_TYPE


def parse_ticket_type(value: object) -> TicketType | None:
    """A ticket type from free-form model output (``"Billing"``, ``"feature request"``), or None."""
    if not isinstance(value, str):
        return None
    normalized = value.strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return TicketType(normalized)
    except ValueError:
        return None


def parse_priority(value: object, default: Priority = Priority.MEDIUM) -> Priority:
    """A priority from free-form model output, or ``default`` when it is not one."""
    if isinstance(value, str):
        try:
            return Priority(value.strip().lower())
        except ValueError:
            pass
    return default


def parse_confidence(value: object) -> float | None:
    """A confidence in [0, 1] from model output (percentages like ``85`` are scaled), or None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    if number != number:  # NaN
        return None
    if 1.0 < number <= 100.0:
        number /= 100.0
    if not 0.0 <= number <= 1.0:
        return None
    return number
