"""The handler the Kafka engine calls: bytes in, schema-checked events out.

``build_handler(config)`` wires the configured role to its provider. For each input
record the handler decodes the JSON (bad JSON → ``PermanentError("invalid_json")``),
validates it against the role's input schema (``ticket.created`` for triage,
``ticket.triaged`` for specialists; a violation → ``PermanentError("schema_invalid")``
naming the field), runs the role, builds the output events with stable ids, validates
them against their schemas and returns them as records keyed by ``ticket_id``. Provider
failures propagate as ``TransientError`` for the engine to retry.

Every output carries the input's trace: the payload's ``trace_id``, else the record's
``traceparent`` header, else one derived from the input's event id. The same trace
travels in the output's ``traceparent`` header. When the ``OTEL_*`` environment turns
tracing on (``agent_runtime/traces.py``), each input is a ``process`` span and each
output's ``traceparent`` names its ``create`` span, so one ticket is one trace across agents.
Each finished ticket is counted by outcome (``srs_agent_tickets_total``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import orjson

from agent_runtime import events, kafka_spans, logs, metrics
from agent_runtime.events import AgentInfo, EventType, EventValidationError, Stage, TriageSection
from agent_runtime.providers import Provider, build_provider, usage
from agent_runtime.records import InputRecord, OutputRecord, PermanentError
from agent_runtime.roles.enrichment import CustomerLookup
from agent_runtime.roles.specialist import Escalation, SpecialistRole
from agent_runtime.roles.triage import TriageRole
from agent_runtime.tickets import Ticket, TriageDecision, parse_ticket_type
from srs_contracts import traces
from srs_contracts.agent_config import AgentConfig, Priority, Role, TicketType
from srs_contracts.timestamps import parse_rfc3339

log = logging.getLogger(__name__)

TRACEPARENT_HEADER: Final = "traceparent"
EVENT_ID_HEADER: Final = "srs-event-id"
EVENT_TYPE_HEADER: Final = "srs-event-type"


def decode_payload(record: InputRecord, max_bytes: int | None = None) -> object:
    """The record's value as JSON; ``PermanentError("invalid_json")`` when it is not.

    The size comes first — before decoding or parsing touches the bytes: a value over
    ``max_bytes`` (the input schema's ``x-max-bytes``) is ``PermanentError("too_large")``.
    """
    if record.value is None:
        raise PermanentError("invalid_json", "the record has no value (a tombstone?)")
    if max_bytes is not None and len(record.value) > max_bytes:
        raise PermanentError("too_large", f"the value has {len(record.value)} bytes; the schema allows {max_bytes}")
    try:
        text = record.value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PermanentError("invalid_json", f"the value is not UTF-8: byte {e.start}") from e
    try:
        if text.startswith("\ufeff"):  # what json.loads refuses before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        payload = _DECODER.decode(text)
    except json.JSONDecodeError as e:
        raise PermanentError(
            "invalid_json", f"the value is not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from e
    except RecursionError as e:
        # json gives up past the interpreter's recursion limit (~1000 levels).
        raise PermanentError("too_large", "the value nests too deeply to parse") from e
    except ValueError as e:
        raise PermanentError("invalid_json", f"the value is not JSON: {e}") from e
    if "\\u" in text and not _encodable(payload):
        # "\ud800" parses, but no event holding it can be written as UTF-8 again.
        raise PermanentError("invalid_json", "the value holds a lone UTF-16 surrogate escape")
    return payload


def _encodable(payload: object) -> bool:
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _not_json(constant: str) -> object:
    raise ValueError(f"{constant} is not a JSON value")


#: json.loads(text, parse_constant=_not_json) without building a decoder for every record.
_DECODER: Final = json.JSONDecoder(parse_constant=_not_json)


def validate_input(event_type: EventType, payload: object) -> dict[str, Any]:
    """``payload`` if it is a valid ``event_type``; ``PermanentError("schema_invalid")`` naming the field if
    not (``"too_large"`` when a size bound is what it breaks)."""
    try:
        events.validate(event_type, payload)
    except EventValidationError as e:
        raise PermanentError("too_large" if e.too_large else "schema_invalid", str(e)) from e
    if not isinstance(payload, dict):  # the schemas say "type": "object"; this keeps mypy and -O honest
        raise PermanentError("schema_invalid", f"{event_type.value}: $: not a JSON object")
    return payload


def encode_event(topic: str, event_type: EventType, event: Mapping[str, Any]) -> OutputRecord:
    """An output record: the event as compact UTF-8 JSON, keyed by ticket id, with trace headers."""
    event_id = str(event["event_id"])
    headers = (
        (TRACEPARENT_HEADER, events.format_traceparent(str(event["trace_id"]), event_id).encode()),
        (EVENT_ID_HEADER, event_id.encode()),
        (EVENT_TYPE_HEADER, event_type.value.encode()),
    )
    try:
        # Compact UTF-8 JSON, as json.dumps(ensure_ascii=False, separators=(",", ":")) writes it
        # (but exponents: 1e-7, not 1e-07), ~15x faster.
        value = orjson.dumps(event)
    except orjson.JSONEncodeError:  # what orjson does not write (an integer past 64 bits): json does
        value = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    return OutputRecord(topic=topic, key=str(event["ticket_id"]).encode(), value=value, headers=headers)


def _triage_from_event(section: Mapping[str, Any]) -> TriageDecision:
    return TriageDecision(
        type=parse_ticket_type(section.get("type")),
        priority=Priority(section["priority"]),
        confidence=float(section["confidence"]),
        reasoning=str(section.get("reasoning", "")),
    )


def _triage_section(
    decision: TriageDecision,
    *,
    route: str,
    routed_to: str,
    human_reason: str | None = None,
    stage: str | None = None,
    decided_by: str | None = None,
) -> TriageSection:
    """The ``triage`` section of a ticket.triaged event: ``decision``, and where it sent the ticket."""
    return TriageSection(
        type=decision.type_name,
        priority=decision.priority.value,
        confidence=decision.confidence,
        route=route,
        routed_to=routed_to,
        reasoning=decision.reasoning or None,
        human_reason=human_reason,
        stage=stage,
        decided_by=decided_by,
    )


class AgentHandler:
    """One agent's :class:`~agent_runtime.records.Handler`: triage or specialist, by config."""

    def __init__(
        self,
        config: AgentConfig,
        provider: Provider,
        *,
        triage: TriageRole | None = None,
        specialist: SpecialistRole | None = None,
        clients: Sequence[Provider | CustomerLookup | None] = (),
    ) -> None:
        self._config = config
        self._triage = triage
        self._specialist = specialist
        #: What :meth:`aclose` closes: the provider, then any fallback model or customer lookup.
        self._clients = [provider, *(c for c in clients if c is not None)]
        self._agent = AgentInfo(name=config.name, role=config.role.value, provider=provider.name, model=provider.model)
        # Bound once (the per-ticket path only increments); a triage agent routes or hands to
        # people, a specialist resolves or hands to people.
        outcomes = ("routed", "human") if config.role is Role.TRIAGE else ("resolved", "human")
        self._outcomes = {o: metrics.TICKETS.labels(config.name, o) for o in outcomes}
        self._ages = {o: metrics.TICKET_AGE.labels(config.name, o) for o in outcomes if o != "routed"}
        self._input_event_type = EventType.TICKET_CREATED if config.role is Role.TRIAGE else EventType.TICKET_TRIAGED
        #: The input schema's ``x-max-bytes`` (looked up once, not per record).
        self._input_max_bytes = events.max_bytes(self._input_event_type)

    @property
    def input_event_type(self) -> EventType:
        return self._input_event_type

    async def handle(self, record: InputRecord) -> Sequence[OutputRecord]:
        event_type = self._input_event_type
        if traces.active():
            return await self._handle_traced(record, event_type)
        payload = validate_input(event_type, decode_payload(record, self._input_max_bytes))
        return await self._handle_valid(record, payload)

    async def _handle_traced(self, record: InputRecord, event_type: EventType) -> Sequence[OutputRecord]:
        """:meth:`handle` inside a ``process`` span, each output with its ``create`` span's context."""
        try:
            payload = validate_input(event_type, decode_payload(record, self._input_max_bytes))
        except PermanentError as e:
            with self._span(record, None) as span:
                traces.failed(span, e, e.error_class)
            raise
        trace_id = events.resolve_trace_id(payload, record.header(TRACEPARENT_HEADER), seed=str(payload["event_id"]))
        with self._span(record, trace_id) as span:
            try:
                outputs = await self._handle_valid(record, payload)
            except PermanentError as e:
                traces.failed(span, e, e.error_class)
                raise
            except Exception as e:
                traces.failed(span, e, type(e).__name__)
                raise
            return [kafka_spans.produced(output) for output in outputs]

    def _span(self, record: InputRecord, trace_id: str | None) -> AbstractContextManager[Any]:
        config = self._config
        return kafka_spans.processing(
            record, group=config.kafka.group_id, agent=config.name, role=config.role.value, trace_id=trace_id
        )

    async def _handle_valid(self, record: InputRecord, payload: dict[str, Any]) -> Sequence[OutputRecord]:
        trace_id = events.resolve_trace_id(payload, record.header(TRACEPARENT_HEADER), seed=str(payload["event_id"]))
        logs.bind(ticket_id=payload["ticket_id"], trace_id=trace_id)
        # What the model calls of this ticket cost goes into the event that answers it.
        with usage.metered() as spent:
            if self._triage is not None:
                outputs = await self._handle_triage(payload, trace_id)
            elif self._specialist is not None:
                outputs = await self._handle_specialist(payload, trace_id)
            else:  # build_handler never does this
                raise PermanentError("permanent", f"agent {self._config.name} has no role to run")
        if spent.calls:
            for _topic, _type, event in outputs:
                event["usage"] = spent.as_dict()
        return [self._checked(topic, event_type, event) for topic, event_type, event in outputs]

    def _checked(self, topic: str, event_type: EventType, event: dict[str, Any]) -> OutputRecord:
        try:
            events.validate(event_type, event)
        except EventValidationError as e:
            # Our own bug, not the input's fault — but never produce an event that breaks the contract.
            log.error("an output event does not match its schema", extra={"field": e.field})
            raise PermanentError("permanent", f"output {e}") from e
        return encode_event(topic, event_type, event)

    async def _handle_triage(
        self, ticket_event: dict[str, Any], trace_id: str
    ) -> list[tuple[str, EventType, dict[str, Any]]]:
        assert self._triage is not None
        outcome = await self._triage.triage(Ticket.from_event(ticket_event))
        decision, routing = outcome.decision, outcome.routing
        event = events.build_triaged(
            event_id=events.derive_event_id(str(ticket_event["event_id"]), Stage.TRIAGE, self._config.name),
            trace_id=trace_id,
            ticket=ticket_event,
            triage=_triage_section(
                decision,
                route=routing.route,
                routed_to=routing.topic,
                human_reason=routing.human_reason,
                stage=outcome.stage,
                decided_by=outcome.decided_by,
            ),
            agent=self._agent,
            customer=outcome.customer,
        )
        logs.info(
            log,
            "ticket triaged",
            {
                "type": decision.type_name,
                "route": routing.route,
                "confidence": round(decision.confidence, 3),
                **({"stage": outcome.stage} if outcome.stage else {}),
            },
        )
        self._outcomes["human" if routing.route == "human" else "routed"].inc()
        return [(routing.topic, EventType.TICKET_TRIAGED, event)]

    def _finished(self, outcome: str, created_at: object) -> None:
        """Count a ticket this specialist finished and observe its age (created → now)."""
        self._outcomes[outcome].inc()
        if isinstance(created_at, str):
            # The schema checked the format; an odd timestamp is no reason to fail a ticket.
            with contextlib.suppress(ValueError):
                self._ages[outcome].observe(max(0.0, time.time() - parse_rfc3339(created_at).timestamp()))

    async def _handle_specialist(
        self, triaged: dict[str, Any], trace_id: str
    ) -> list[tuple[str, EventType, dict[str, Any]]]:
        assert self._specialist is not None and self._config.specialist is not None
        section = triaged["triage"]
        if section["route"] != "specialist" or "escalation" in triaged:
            # Human-queue events on a specialist topic mean crossed wiring; answering them
            # automatically would undo a person's job (and could loop). Dead-letter, loudly.
            raise PermanentError(
                "permanent",
                f"a ticket.triaged event for the human queue (route={section['route']}) reached specialist "
                f"{self._config.name}; check the topic wiring",
            )
        ticket_event: dict[str, Any] = triaged["ticket"]
        ticket = Ticket.from_event(ticket_event)
        decision = _triage_from_event(section)
        customer = triaged.get("customer")
        outcome = await self._specialist.respond(ticket, decision, customer if isinstance(customer, dict) else None)
        input_id = str(triaged["event_id"])
        specialty = self._config.specialist.specialty
        if isinstance(outcome, Escalation):
            human_topic = self._config.specialist.human_topic
            event = events.build_triaged(
                event_id=events.derive_event_id(input_id, Stage.ESCALATION, self._config.name),
                trace_id=trace_id,
                ticket=ticket_event,
                triage=_triage_section(decision, route="human", routed_to=human_topic, human_reason=outcome.reason),
                agent=self._agent,
                customer=customer if isinstance(customer, dict) else None,
                escalation=events.Escalation(
                    reason=outcome.reason, failed_checks=outcome.failed_checks, draft=outcome.draft
                ),
            )
            log.warning("draft escalated to people", extra={"failed_checks": list(outcome.failed_checks)})
            self._finished("human", ticket_event.get("created_at"))
            return [(human_topic, EventType.TICKET_TRIAGED, event)]
        ticket_type: TicketType = decision.type if decision.type is not None else specialty
        event = events.build_resolved(
            event_id=events.derive_event_id(input_id, Stage.RESOLUTION, self._config.name),
            trace_id=trace_id,
            ticket=ticket_event,
            ticket_type=ticket_type.value,
            priority=decision.priority.value,
            confidence=decision.confidence,
            response_body=outcome.draft,
            response_subject=f"Re: {ticket.subject}",
            guardrail_checks=outcome.checks,
            agent=self._agent,
        )
        logs.info(log, "ticket resolved", {"type": ticket_type.value})
        self._finished("resolved", ticket_event.get("created_at"))
        return [(self._config.specialist.output_topic, EventType.TICKET_RESOLVED, event)]

    async def aclose(self) -> None:
        """Close the provider's, the fallback model's and the customer lookup's clients."""
        for c in self._clients:
            await c.aclose()


def build_handler(
    config: AgentConfig,
    *,
    provider: Provider | None = None,
    customers: CustomerLookup | None = None,
    fallback: Provider | None = None,
) -> AgentHandler:
    """The handler of the agent ``config`` describes (its role, provider and wiring).

    ``provider``, ``fallback`` and ``customers`` replace the configured ones (tests,
    embedding). Fails at once — not on the first ticket — when a provider cannot be set up
    or the event schemas are missing.
    """
    events.load_schemas()
    if provider is None:
        provider = build_provider(
            config.model, agent=config.name, system_prompt=config.system_prompt, concurrency=config.concurrency
        )
    if config.role is Role.TRIAGE:
        assert config.triage is not None  # AgentConfig guarantees it
        if fallback is None and config.fallback_model is not None:
            fallback = build_provider(
                config.fallback_model,
                agent=config.name,
                system_prompt=config.system_prompt,
                concurrency=config.concurrency,
            )
        for model in (provider, fallback):
            warm_up = getattr(model, "warm_up", None)
            if callable(warm_up):
                warm_up()
        if customers is None and config.enrichment is not None:
            customers = CustomerLookup(config.enrichment, agent=config.name)
        role = TriageRole(config.triage, provider, agent=config.name, customers=customers, fallback=fallback)
        return AgentHandler(config, provider, triage=role, clients=(fallback, customers))
    assert config.specialist is not None  # AgentConfig guarantees it
    specialist = SpecialistRole(config.specialist, config.guardrails, provider, agent=config.name)
    return AgentHandler(config, provider, specialist=specialist, clients=(customers,))
