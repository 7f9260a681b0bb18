"""Reading the ticket flow back from Kafka, for people: ``srs tail`` and the demo.

``FlowReader`` consumes the flow's topics without joining a consumer group's commits
(it never moves an agent's offsets) and turns each record into a ``FlowEvent``;
``describe`` renders one as a single readable line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition


@dataclass(frozen=True)
class FlowEvent:
    """One record of the flow, decoded."""

    stage: str
    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int
    payload: dict[str, Any]
    headers: dict[str, str]

    @property
    def ticket_id(self) -> str | None:
        tid = self.payload.get("ticket_id")
        return str(tid) if tid else self.key


def _stage(payload: dict[str, Any]) -> str:
    kind = payload.get("event_type")
    if kind == "ticket.triaged":
        return "human" if payload.get("triage", {}).get("route") == "human" else "triaged"
    if kind == "ticket.resolved":
        return "resolved"
    if kind == "ticket.created":
        return "created"
    if kind == "dead_letter":
        return "dead-letter"
    return "unreadable"


def decode(msg: Message) -> FlowEvent:
    """A consumed record as a ``FlowEvent`` (undecodable payloads become ``unreadable``)."""
    value = msg.value() or b""
    raw = value.encode() if isinstance(value, str) else value
    try:
        payload = json.loads(raw)
        if not isinstance(payload, dict):
            payload = {"value": payload}
    except ValueError:
        payload = {"raw": raw[:200].decode(errors="replace")}
    key = msg.key()
    headers: dict[str, str] = {}
    for name, header_value in list(msg.headers() or []):
        headers[str(name)] = (
            header_value.decode(errors="replace") if isinstance(header_value, bytes) else str(header_value or "")
        )
    _ts_type, ts = msg.timestamp()
    return FlowEvent(
        stage=_stage(payload),
        topic=msg.topic() or "",
        partition=msg.partition() or 0,
        offset=msg.offset() or 0,
        key=key.decode(errors="replace") if isinstance(key, bytes) else key,
        timestamp_ms=ts,
        payload=payload,
        headers=headers,
    )


def _excerpt(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def describe(event: FlowEvent) -> str:
    """One readable line for a flow event."""
    p = event.payload
    tid = event.ticket_id or "?"
    if event.stage == "created":
        return f"CREATED   {tid:<14} {_excerpt(str(p.get('subject', '')), 70)}"
    if event.stage in ("triaged", "human"):
        t = p.get("triage", {})
        head = f"{t.get('type', '?')}/{t.get('priority', '?')}"
        conf = f"conf {float(t.get('confidence', 0)):.2f}"
        if event.stage == "triaged":
            return f"TRIAGED   {tid:<14} {head:<24} {conf}  → {t.get('routed_to', event.topic)}"
        reason = p.get("escalation", {}).get("reason") or t.get("human_reason") or ""
        return f"HUMAN     {tid:<14} {head:<24} {conf}  {_excerpt(reason, 70)}"
    if event.stage == "resolved":
        head = f"{p.get('type', '?')}/{p.get('priority', '?')}"
        body = str(p.get("response", {}).get("body", ""))
        return f"RESOLVED  {tid:<14} {head:<24} {_excerpt(body, 80)!r}"
    if event.stage == "dead-letter":
        err = p.get("error", {})
        src = p.get("source", {})
        where = f"{src.get('topic', '?')}[{src.get('partition', '?')}]@{src.get('offset', '?')}"
        return f"DLQ       {tid:<14} {err.get('class', '?')}: {_excerpt(str(err.get('message', '')), 70)} ({where})"
    return f"???       {tid:<14} unreadable record on {event.topic}@{event.offset}"


class FlowReader:
    """Reads topics from the beginning or from "now", never committing offsets.

    Partitions are assigned explicitly at offsets fixed in the constructor, so a caller
    that produces right afterwards (the demo) cannot miss its own results.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Sequence[str],
        from_beginning: bool = False,
        client: Mapping[str, str] | None = None,
    ) -> None:
        self.topics = list(topics)
        self.consumer = Consumer(
            {
                **(client or {}),  # more librdkafka settings: a SASL_SSL listener's
                "bootstrap.servers": bootstrap,
                "group.id": f"srs-flow-reader-{uuid.uuid4().hex[:8]}",
                # What a customer would see: never an output of a transaction that was aborted.
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "log_level": 3,
            }
        )
        metadata = self.consumer.list_topics(timeout=10)
        missing = [t for t in self.topics if t not in metadata.topics or metadata.topics[t].error is not None]
        if missing:
            self.consumer.close()
            raise LookupError(f"topic(s) {', '.join(missing)} do not exist (is their TicketTopic applied and Ready?)")
        assignment = []
        for topic in self.topics:
            for partition in metadata.topics[topic].partitions:
                tp = TopicPartition(topic, partition)
                low, high = self.consumer.get_watermark_offsets(tp, timeout=10)
                assignment.append(TopicPartition(topic, partition, low if from_beginning else high))
        self.consumer.assign(assignment)

    def events(self, poll_timeout: float = 0.5) -> Iterator[FlowEvent | None]:
        """Yield decoded events; ``None`` on an idle poll (lets callers check deadlines)."""
        while True:
            msg = self.consumer.poll(poll_timeout)
            if msg is None:
                yield None
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(err)
            yield decode(msg)

    def close(self) -> None:
        self.consumer.close()
