"""The event schemas: loaded from ``events/`` (the single source of truth), ``$ref`` links
resolved, and payloads validated against them (size bounds reported as ``too_large``).

The schemas ship as package data in ``agent_runtime/schemas/`` when installed; a source
checkout reads the repository's ``events/`` folder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from datetime import datetime
from enum import StrEnum
from functools import cache
from itertools import compress, repeat
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

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
    package = Path(__file__).resolve().parent.parent  # agent_runtime/
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


_CONTAINERS: Final = (dict, list)
#: How many levels :func:`depth` walks by recursion (quick for the few levels of an event)
#: before it walks the rest level by level (any depth, no recursion limit to hit).
_RECURSION_LEVELS: Final = 20


def depth(value: object) -> int:
    """How deeply ``value`` nests (a scalar is 0, ``{}`` or ``[]`` is 1); any depth."""
    return _depth(value, _RECURSION_LEVELS)


def _depth(value: object, levels: int) -> int:
    # It runs twice for every ticket: recursion, which only descends into containers (most
    # of an event is strings and numbers), is the quickest walk of a shallow event.
    if isinstance(value, dict):
        children: Iterable[object] = value.values()
    elif isinstance(value, list):
        children = value
    else:
        return 0
    deepest = 0
    for child in children:
        if isinstance(child, _CONTAINERS):
            if not levels:
                return _depth_by_levels(value)
            below = _depth(child, levels - 1)
            if below > deepest:
                deepest = below
    return deepest + 1


def _depth_by_levels(value: object) -> int:
    """:func:`depth` without recursion: level by level, only containers to the next one."""
    level = 0
    layer: list[Any] = [value] if isinstance(value, _CONTAINERS) else []
    while layer:
        level += 1
        below: list[Any] = []
        for node in layer:
            children = node.values() if isinstance(node, dict) else node
            below += compress(children, map(isinstance, children, repeat(_CONTAINERS)))
        layer = below
    return level


def _max_depth(validator: Any, limit: int, instance: object, _schema: Any) -> Iterator[ValidationError]:
    """The ``maxDepth`` keyword (an srs extension): ``instance`` nests at most ``limit`` levels."""
    if isinstance(instance, dict | list) and depth(instance) > limit:
        yield ValidationError(f"nested deeper than {limit} levels")


_Validator: Final = validators.extend(Draft202012Validator, {"maxDepth": _max_depth})  # type: ignore[no-untyped-call]


_RFC3339: Final = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$",
)


#: Date-times found valid lately: a ticket's ``created_at`` is checked on the way in and
#: again in every event that carries it on. Bounded: emptied when full.
_VALID_DATE_TIMES: dict[str, None] = {}
_MAX_REMEMBERED: Final = 4096


def _is_rfc3339_datetime(value: object) -> bool:
    # Checked here rather than through an optional jsonschema extra, so that a missing
    # package can never turn format checking off silently in production.
    if not isinstance(value, str):
        return True  # other keywords check the type
    if value in _VALID_DATE_TIMES:
        return True
    if not _RFC3339.match(value):
        return False
    try:
        datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    if len(_VALID_DATE_TIMES) >= _MAX_REMEMBERED:
        _VALID_DATE_TIMES.clear()
    _VALID_DATE_TIMES[value] = None
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
def _inlined() -> tuple[Registry[Any], dict[EventType, dict[str, Any]]]:
    schemas = load_schemas()
    registry: Registry[Any] = Registry().with_resources(
        (s["$id"], Resource.from_contents(s, default_specification=DRAFT202012)) for s in schemas.values()
    )
    return registry, {t: _inline_refs(s, registry.resolver(base_uri=s["$id"])) for t, s in schemas.items()}


@cache
def _validators() -> dict[EventType, Any]:
    """The reference validators (jsonschema): they decide, and word every error."""
    registry, inlined = _inlined()
    checker = _format_checker()
    return {t: _Validator(s, registry=registry, format_checker=checker) for t, s in inlined.items()}


class _MaxDepthKeyword:
    """``maxDepth`` for the compiled validators."""

    def __init__(self, _parent_schema: Any, value: int, _schema_path: Any) -> None:
        self._limit = int(value)

    def validate(self, instance: object) -> None:
        if isinstance(instance, dict | list) and depth(instance) > self._limit:
            raise ValueError(f"nested deeper than {self._limit} levels")


@cache
def _compiled() -> dict[EventType, Any]:
    """Compiled validators (jsonschema-rs) of the same schemas, with the same ``maxDepth``
    and ``date-time`` checks: a fast yes for a valid event. Anything they do not accept
    (or cannot read) goes to the reference validator, which decides and words the error,
    so they can only make a valid event cheaper, never let an invalid one through (a test
    keeps them at least as strict on every event the tests know)."""
    _, inlined = _inlined()
    return {
        t: jsonschema_rs.validator_for(
            s,
            keywords={"maxDepth": _MaxDepthKeyword},
            formats={"date-time": _is_rfc3339_datetime},
            validate_formats=True,
        )
        for t, s in inlined.items()
    }


def _compiled_accepts(event_type: EventType, payload: object) -> bool:
    try:
        return bool(_compiled()[event_type].is_valid(payload))
    except Exception:  # noqa: BLE001 - a value it cannot convert (a lone surrogate, a huge int): ask the reference
        return False


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
    if _compiled_accepts(event_type, payload):
        return
    error = _first_error(_validators()[event_type].iter_errors(payload))
    if error is not None:
        too_large = error.validator in _SIZE_KEYWORDS
        raise EventValidationError(event_type, _json_path(error), _short(error.message), too_large=too_large)


def _short(message: str, limit: int = 300) -> str:
    # jsonschema quotes the offending value; a 20 kB ticket body must not end up in a header.
    return message if len(message) <= limit else message[: limit - 1] + "…"
