"""The wire format: JSON Schemas from ``events/``, validation, ids and event builders.

The schemas in the repository's ``events/`` folder are the single source of truth. Three
jobs, a module each; this package is their one import point (``from agent_runtime import
events``):

- ``schemas``: loads them, resolves the ``$ref`` links between them and validates payloads;
- ``ids``: the ``event_id`` and ``trace_id`` every output carries, derived so that a replay
  repeats them (consumers drop the duplicate);
- ``builders``: the ``ticket.triaged`` and ``ticket.resolved`` events an agent writes.
"""

from agent_runtime.events.builders import (
    MAX_REASONING_CHARS,
    AgentInfo,
    Escalation,
    TriageSection,
    build_resolved,
    build_triaged,
)
from agent_runtime.events.ids import (
    EVENT_ID_NAMESPACE,
    Stage,
    derive_event_id,
    derive_trace_id,
    format_traceparent,
    is_trace_id,
    resolve_trace_id,
)
from agent_runtime.events.schemas import (
    MAX_EVENT_DEPTH,
    EventType,
    EventValidationError,
    SchemaNotFoundError,
    depth,
    load_schemas,
    max_bytes,
    schema,
    schema_dir,
    validate,
    validation_errors,
)

__all__ = [
    "EVENT_ID_NAMESPACE",
    "MAX_EVENT_DEPTH",
    "MAX_REASONING_CHARS",
    "AgentInfo",
    "Escalation",
    "EventType",
    "EventValidationError",
    "SchemaNotFoundError",
    "Stage",
    "TriageSection",
    "build_resolved",
    "build_triaged",
    "depth",
    "derive_event_id",
    "derive_trace_id",
    "format_traceparent",
    "is_trace_id",
    "load_schemas",
    "max_bytes",
    "resolve_trace_id",
    "schema",
    "schema_dir",
    "validate",
    "validation_errors",
]
