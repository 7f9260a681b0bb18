"""The compiled validators are a fast yes, never a wrong one.

``events.validate`` asks the compiled validators (jsonschema-rs) first and returns at once
when they accept; anything else goes to the reference validator (jsonschema), which
decides and words the error. So the compiled ones must never accept an event the
reference rejects. Checked here on every kind of event the agents read and write, valid
ones and thousands of variants: each field in turn removed, or replaced by a hostile value
(wrong types, empty and over-long strings, bad timestamps and ids, deep nesting, too
many keys, NaN, huge integers, lone surrogates, trailing newlines).
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime import events
from agent_runtime.agent import build_handler
from agent_runtime.engine.deadletter import ErrorClass, build_dead_letter
from agent_runtime.events import EventType
from agent_runtime.events.schemas import _compiled_accepts
from agent_runtime.records import InputRecord
from srs import publish
from tests.unit.agent_fixtures import specialist_config, triage_config

pytestmark = pytest.mark.unit

HOSTILE: list[Any] = [
    None, True, 0, -1, 1.5, 10**40, float("nan"), float("inf"), "", "x" * 20_001, "\ud800", "ok\n",
    "2026-13-45T99:99:99Z", "2026-12-05T10:00:00Z\n", "2026-12-05 10:00:00", "A" * 32, "0" * 32, "f" * 32 + "\n",
    [], [None] * 60, {}, {f"k{i}": i for i in range(60)}, {"a": {"b": {"c": {"d": {"e": 1}}}}},
    "billing", "human", "urgent",
]  # fmt: skip


def _events() -> list[tuple[EventType, dict[str, Any]]]:
    """A valid event of each kind, as the agents write them."""
    created = [publish.to_event(ticket, "compiled", n) for n, ticket in enumerate(publish.sample_tickets()[:6])]
    out: list[tuple[EventType, dict[str, Any]]] = [(EventType.TICKET_CREATED, e) for e in created]

    async def run(config: Any, event_type: EventType, inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        handler = build_handler(config)
        written = []
        for n, event in enumerate(inputs):
            record = InputRecord("in", 0, n, event["ticket_id"].encode(), json.dumps(event).encode())
            written += [json.loads(o.value) for o in await handler.handle(record)]
        return written

    triaged = asyncio.run(run(triage_config(), EventType.TICKET_CREATED, created))
    out += [(EventType.TICKET_TRIAGED, e) for e in triaged]
    billing = [e for e in triaged if e.get("triage", {}).get("route") == "specialist"][:3]
    resolved = asyncio.run(run(specialist_config(), EventType.TICKET_TRIAGED, billing))
    out += [(EventType.TICKET_RESOLVED, e) for e in resolved if e.get("event_type") == "ticket.resolved"]
    letter = build_dead_letter(
        InputRecord("in", 0, 3, b"k", b"not json"), topic="dlq", agent="triage", error_class=ErrorClass.INVALID_JSON,
        message="not UTF-8 JSON", exception="ValueError", attempts=1, trace_id=None,
    )  # fmt: skip
    out.append((EventType.DEAD_LETTER, json.loads(letter.value)))
    return out


def _variants(node: Any) -> Iterator[Any]:
    """``node`` with one field removed, or one value replaced by a hostile one, each in turn."""
    if isinstance(node, dict):
        for key in node:
            yield {k: v for k, v in node.items() if k != key}
            for value in [*HOSTILE, *_variants(node[key])]:
                yield {**node, key: value}
    elif isinstance(node, list):
        for i, item in enumerate(node):
            for value in [*HOSTILE[:8], *_variants(item)]:
                yield [*node[:i], value, *node[i + 1 :]]


def test_the_compiled_validators_accept_what_the_agents_write() -> None:
    # Else the fast path would never be taken (and this module would test nothing).
    kinds = _events()
    assert {t for t, _ in kinds} == set(EventType)
    for event_type, event in kinds:
        assert events.validation_errors(event_type, event) == []
        assert _compiled_accepts(event_type, event), event_type


def test_the_compiled_validators_never_accept_what_the_reference_rejects() -> None:
    checked = rejected = 0
    for event_type, event in _events():
        for variant in _variants(copy.deepcopy(event)):
            checked += 1
            if events.validation_errors(event_type, variant):
                rejected += 1
                assert not _compiled_accepts(event_type, variant), (event_type, variant)
    assert checked > 5_000 and rejected > checked // 2, (checked, rejected)
