"""The wire format: JSON Schemas from ``events/``, validation, ids and event builders.

The schemas in the repository's ``events/`` folder are the single source of truth; this
module loads them (from the source checkout, or from the installed package where they
ship as data files in ``agent_runtime/schemas/``), resolves the ``$ref`` links between them and
validates payloads against them. It also derives the ids every output event carries:

- ``event_id``: a UUIDv5 of (input event id, stage, agent), so processing the same input
  again — a replay, a retry after a crash — yields the same id and consumers can drop
  the duplicate;
- ``trace_id``: taken from the input payload, else from its W3C ``traceparent`` header,
  else derived from the input's event id (a replay keeps the trace).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from agent_runtime.engine.tracing import parse_traceparent
from srs_contracts.timestamps import rfc3339

if TYPE_CHECKING:
    from referencing._core import Resolver


class EventType(StrEnum):
    """The events on the wire, named as in their schema files (``<name>.schema.json``)."""

    TICKET_CREATED = "ticket.created"
    TICKET_TRIAGED = "ticket.triaged"
    TICKET_RESOLVED = "ticket.resolved"
    DEAD_LETTER = "dead-letter"


class SchemaNotFoundError(RuntimeError):
    """The event schemas are neither installed with the package nor in a source checkout."""


class EventValidationError(ValueError):
    """A payload does not match its schema. ``field`` is a JSON path such as ``$.ticket.subject``.

    ``too_large``: the violation is a size bound (bytes, length, items, keys, depth).
    """

    def __init__(self, event_type: EventType, field: str, message: str, *, too_large: bool = False) -> None:
        super().__init__(f"{event_type.value}: {field}: {message}")
        self.event_type = event_type
        self.field = field
        self.message = message
        self.too_large = too_large


#: Schema keywords that bound size: breaking one means "too large", not "malformed".
_SIZE_KEYWORDS: Final = frozenset({"maxLength", "maxItems", "maxProperties", "maxDepth"})
#: No event nests deeper than this (ticket.triaged → ticket → metadata → 3 levels); checked
#: before the schema, whose validator recurses once per level.
MAX_EVENT_DEPTH: Final = 12


_SCHEMA_SUFFIX: Final = ".schema.json"


def schema_dir() -> Path:
    """Where the event schemas are: installed package data first, then the source checkout."""
    package = Path(__file__).resolve().parent
    # An installed package carries them as data files (events/ mapped to agent_runtime/schemas);
    # a source checkout (editable install included) has the repository's events/ next to it.
    for candidate in (package / "schemas", package.parent / "events"):
        if (candidate / f"{EventType.TICKET_CREATED.value}{_SCHEMA_SUFFIX}").is_file():
            return candidate
    raise SchemaNotFoundError(
        f"event schemas not found: neither {package / 'schemas'} (installed) nor {package.parent / 'events'} has them"
    )


@cache
def load_schemas() -> dict[EventType, dict[str, Any]]:
    """Every event schema, parsed, keyed by event type."""
    folder = schema_dir()
    schemas: dict[EventType, dict[str, Any]] = {}
    for event_type in EventType:
        path = folder / f"{event_type.value}{_SCHEMA_SUFFIX}"
        schemas[event_type] = json.loads(path.read_text(encoding="utf-8"))
    return schemas


def schema(event_type: EventType) -> dict[str, Any]:
    """The parsed JSON Schema of one event type."""
    return load_schemas()[event_type]


def max_bytes(event_type: EventType) -> int | None:
    """The largest encoded event of this type (the schema's ``x-max-bytes``), if it says."""
    limit = schema(event_type).get("x-max-bytes")
    return limit if isinstance(limit, int) else None


def depth(value: object) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``{}`` or ``[]`` is 1); iterative, any depth."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            children: Iterator[object] | list[object] = iter(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        level += 1
        deepest = max(deepest, level)
        stack.extend((child, level) for child in children)
    return deepest


def _max_depth(validator: Any, limit: int, instance: object, _schema: Any) -> Iterator[ValidationError]:
    """The ``maxDepth`` keyword (an srs extension): ``instance`` nests at most ``limit`` levels."""
    if isinstance(instance, dict | list) and depth(instance) > limit:
        yield ValidationError(f"nested deeper than {limit} levels")


_Validator: Final = validators.extend(Draft202012Validator, {"maxDepth": _max_depth})  # type: ignore[no-untyped-call]


_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$",
)


def _is_rfc3339_datetime(value: object) -> bool:
    # Checked here rather than through an optional jsonschema extra, so that a missing
    # package can never turn format checking off silently in production.
    if not isinstance(value, str):
        return True  # other keywords check the type
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(_is_rfc3339_datetime)
    return checker


_ANNOTATIONS: Final = frozenset({"description", "title", "$comment", "examples"})


def _inline_refs(node: Any, resolver: Resolver[Any], seen: frozenset[int] = frozenset()) -> Any:
    """``node`` with every ``$ref`` replaced by what it points to (resolved at load time).

    Same validation, but jsonschema no longer resolves references on every event — it
    halves the cost of checking a ticket.triaged event. A cyclic reference stays a
    ``$ref`` (the validator's registry still resolves it).
    """
    if isinstance(node, list):
        return [_inline_refs(item, resolver, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        resolved = resolver.lookup(ref)
        if id(resolved.contents) not in seen:
            target = {k: v for k, v in resolved.contents.items() if k not in ("$id", "$schema")}
            inlined = _inline_refs(target, resolved.resolver, seen | {id(resolved.contents)})
            siblings = {k: _inline_refs(v, resolver, seen) for k, v in node.items() if k != "$ref"}
            if set(siblings) <= _ANNOTATIONS:
                return {**inlined, **siblings}
            return {**siblings, "allOf": [*siblings.get("allOf", []), inlined]}
    return {k: _inline_refs(v, resolver, seen) for k, v in node.items()}


@cache
def _validators() -> dict[EventType, Any]:
    schemas = load_schemas()
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012)) for s in schemas.values()
    )
    checker = _format_checker()
    return {
        event_type: _Validator(
            _inline_refs(s, registry.resolver(base_uri=s["$id"])), registry=registry, format_checker=checker
        )
        for event_type, s in schemas.items()
    }


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _first_error(errors: Iterator[ValidationError]) -> ValidationError | None:
    # The shallowest error first: "ticket_id is required" beats a nested detail.
    ordered = sorted(errors, key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path)), e.message))
    return ordered[0] if ordered else None


def validation_errors(event_type: EventType, payload: object) -> list[str]:
    """Every schema violation of ``payload`` as ``"<json path>: <message>"`` (empty when valid)."""
    errors = sorted(_validators()[event_type].iter_errors(payload), key=lambda e: list(map(str, e.absolute_path)))
    return [f"{_json_path(e)}: {e.message}" for e in errors]


def validate(event_type: EventType, payload: object) -> None:
    """Raise :class:`EventValidationError` naming the offending field unless ``payload`` is valid."""
    if depth(payload) > MAX_EVENT_DEPTH:
        raise EventValidationError(event_type, "$", f"nested deeper than {MAX_EVENT_DEPTH} levels", too_large=True)
    error = _first_error(_validators()[event_type].iter_errors(payload))
    if error is not None:
        too_large = error.validator in _SIZE_KEYWORDS
        raise EventValidationError(event_type, _json_path(error), _short(error.message), too_large=too_large)


def _short(message: str, limit: int = 300) -> str:
    # jsonschema quotes the offending value; a 20 kB ticket body must not end up in a header.
    return message if len(message) <= limit else message[: limit - 1] + "…"


# --- ids -------------------------------------------------------------------------------

#: Namespace of every derived event id (a UUIDv5 of the project's URL).
EVENT_ID_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://srs.dev/events")
_TRACE_ID: Final = re.compile(r"^[0-9a-f]{32}$")
_INVALID_TRACE_ID: Final = "0" * 32


class Stage(StrEnum):
    """What produced an output event: part of its id, so one input can have several outputs."""

    TRIAGE = "triage"
    RESOLUTION = "resolution"
    ESCALATION = "escalation"


def derive_event_id(input_event_id: str, stage: Stage | str, agent: str) -> str:
    """The id of the event ``agent`` produces at ``stage`` from the input ``input_event_id``.

    Deterministic: the same input, stage and agent always give the same id.
    """
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{stage}\x1f{agent}\x1f{input_event_id}"))


def is_trace_id(value: object) -> bool:
    """A valid W3C trace id: 32 lower-case hex digits, not all zero."""
    return isinstance(value, str) and bool(_TRACE_ID.match(value)) and value != _INVALID_TRACE_ID


def derive_trace_id(seed: str) -> str:
    """A trace id derived from ``seed`` (the input's event id): a replay keeps its trace."""
    trace_id = hashlib.sha256(f"trace\x1f{seed}".encode()).hexdigest()[:32]
    return trace_id if trace_id != _INVALID_TRACE_ID else "0" * 31 + "1"


def format_traceparent(trace_id: str, span_seed: str) -> str:
    """A W3C ``traceparent`` (version 00, sampled) whose span id is derived from ``span_seed``."""
    span_id = hashlib.sha256(f"span\x1f{span_seed}".encode()).hexdigest()[:16]
    if span_id == "0" * 16:
        span_id = "0" * 15 + "1"
    return f"00-{trace_id}-{span_id}-01"


def resolve_trace_id(payload: Mapping[str, Any], traceparent: bytes | str | None, seed: str) -> str:
    """The trace of an input: its payload's ``trace_id``, else its ``traceparent``, else derived."""
    from_payload = payload.get("trace_id")
    if is_trace_id(from_payload):
        return str(from_payload)
    from_header = parse_traceparent(traceparent)
    if from_header is not None:
        return from_header.trace_id
    return derive_trace_id(seed)


# --- builders --------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentInfo:
    """Who produced an event (the ``agent`` section of every output)."""

    name: str
    role: str
    provider: str
    model: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role, "provider": self.provider, "model": self.model}


#: ``triage.reasoning`` is capped by the schema; longer model output is cut, not rejected.
MAX_REASONING_CHARS: Final = 2000


@dataclass(frozen=True)
class TriageSection:
    """The ``triage`` section of a ticket.triaged event."""

    type: str  # a TicketType value or "unknown"
    priority: str
    confidence: float
    route: str  # "specialist" | "human"
    routed_to: str
    reasoning: str | None = None
    human_reason: str | None = None
    #: Which model of a cascade this decision is from: "primary" or "fallback" (None: no cascade).
    stage: str | None = None
    #: ``provider/model`` that made the decision (set with ``stage``).
    decided_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        section: dict[str, Any] = {
            "type": self.type,
            "priority": self.priority,
            "confidence": round(min(max(self.confidence, 0.0), 1.0), 4),
            "route": self.route,
            "routed_to": self.routed_to,
        }
        if self.reasoning:
            section["reasoning"] = _truncate(self.reasoning, MAX_REASONING_CHARS)
        if self.human_reason:
            section["human_reason"] = self.human_reason
        if self.stage:
            section["stage"] = self.stage
        if self.decided_by:
            section["decided_by"] = self.decided_by
        return section


@dataclass(frozen=True)
class Escalation:
    """The ``escalation`` section: why a specialist handed its draft to people."""

    reason: str
    failed_checks: tuple[str, ...] = ()
    draft: str | None = None

    def as_dict(self) -> dict[str, Any]:
        section: dict[str, Any] = {"stage": "specialist", "reason": self.reason}
        if self.failed_checks:
            section["failed_checks"] = list(self.failed_checks)
        if self.draft is not None:
            section["draft"] = self.draft
        return section


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _identity(event_type: EventType, event_id: str, ticket: Mapping[str, Any], trace_id: str) -> dict[str, Any]:
    """The fields every output event starts with: what it is, its stable id, the ticket, the trace."""
    return {
        "event_type": event_type.value,
        "event_id": event_id,
        "ticket_id": ticket["ticket_id"],
        "trace_id": trace_id,
    }


def build_triaged(
    *,
    event_id: str,
    trace_id: str,
    ticket: Mapping[str, Any],
    triage: TriageSection,
    agent: AgentInfo,
    customer: Mapping[str, Any] | None = None,
    escalation: Escalation | None = None,
    triaged_at: str | None = None,
) -> dict[str, Any]:
    """A ``ticket.triaged`` event about ``ticket`` (the ticket.created event, carried unchanged)."""
    event: dict[str, Any] = {
        **_identity(EventType.TICKET_TRIAGED, event_id, ticket, trace_id),
        "triaged_at": triaged_at or rfc3339(),
        "ticket": dict(ticket),
        "triage": triage.as_dict(),
        "customer": dict(customer) if customer is not None else None,
        "agent": agent.as_dict(),
    }
    if escalation is not None:
        event["escalation"] = escalation.as_dict()
    return event


def build_resolved(
    *,
    event_id: str,
    trace_id: str,
    ticket: Mapping[str, Any],
    ticket_type: str,
    priority: str,
    response_body: str,
    agent: AgentInfo,
    confidence: float | None = None,
    response_subject: str | None = None,
    guardrail_checks: tuple[str, ...] = (),
    resolved_at: str | None = None,
) -> dict[str, Any]:
    """A ``ticket.resolved`` event: a drafted response to ``ticket`` that passed the guardrails."""
    response: dict[str, Any] = {"body": response_body}
    if response_subject:
        response["subject"] = response_subject
    event: dict[str, Any] = {
        **_identity(EventType.TICKET_RESOLVED, event_id, ticket, trace_id),
        "resolved_at": resolved_at or rfc3339(),
        "type": ticket_type,
        "priority": priority,
        "subject": ticket.get("subject", ""),
        "customer_id": ticket.get("customer_id", ""),
        "response": response,
        "guardrails": {"passed": True, "checks": list(guardrail_checks)},
        "agent": agent.as_dict(),
    }
    if confidence is not None:
        event["confidence"] = round(min(max(confidence, 0.0), 1.0), 4)
    if "created_at" in ticket:
        event["created_at"] = ticket["created_at"]
    return event
