"""``srs publish``: send ``ticket.created`` events to Kafka, from a JSONL file or samples.

Each input line needs at least ``subject`` and ``body`` (and usually ``customer_id``);
``event_type``, ``event_id``, ``ticket_id``, ``created_at``, ``trace_id`` and ``channel``
are filled in when absent. Events are validated against ``events/ticket.created`` before
anything is sent; the Kafka key is the ticket id and the trace travels in a W3C
``traceparent`` header too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from agent_runtime import events
from srs_contracts.timestamps import rfc3339

SAMPLES = "tickets.jsonl"


def sample_tickets() -> list[dict[str, Any]]:
    """The hand-written sample tickets shipped with srs (``srs/samples/tickets.jsonl``)."""
    text = resources.files("srs.samples").joinpath(SAMPLES).read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except ValueError as e:
                raise ValueError(f"{path}:{n}: not JSON: {e}") from e
            if not isinstance(item, dict):
                raise ValueError(f"{path}:{n}: expected a JSON object")
            yield item


def to_event(ticket: dict[str, Any], run_id: str, n: int) -> dict[str, Any]:
    """Complete a ticket into a ``ticket.created`` event (fields given win)."""
    event = {
        "event_type": "ticket.created",
        "event_id": str(uuid.uuid4()),
        "ticket_id": f"T-{run_id}-{n:04d}",
        "trace_id": secrets.token_hex(16),
        "created_at": rfc3339(),
        "customer_id": "cus_anonymous",
        "channel": "api",
    }
    event.update(ticket)
    return event


def publish(
    bootstrap: str,
    topic: str,
    tickets: Sequence[dict[str, Any]],
    progress: bool = True,
    client: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Validate and send every ticket; return the events sent. Raises when any delivery failed.
    ``client``: more librdkafka settings (a SASL_SSL listener's, as ``KAFKA_CLIENT_CONFIG`` holds)."""
    from confluent_kafka import Producer

    # Connected before the tickets are stamped, so set-up does not count as their latency.
    # Not idempotent: its producer-id handshake holds the first sends for up to ~1 s, and a
    # rare retry duplicate carries the same event_id, which consumers drop.
    producer = Producer(
        {**(client or {}), "bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5, "log_level": 3}
    )
    producer.list_topics(topic, timeout=10)
    run_id = secrets.token_hex(3)
    built = [to_event(t, run_id, n) for n, t in enumerate(tickets, 1)]
    for event in built:
        errors = events.validation_errors(events.EventType.TICKET_CREATED, event)
        if errors:
            raise ValueError(f"ticket {event.get('ticket_id')}: {errors[0]}")
    # Validation compiles the schema once (~0.5 s); tickets are "created" as they are sent.
    sent_at = rfc3339()
    for ticket, event in zip(tickets, built, strict=True):
        if "created_at" not in ticket:
            event["created_at"] = sent_at
    failures: list[str] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            failures.append(f"{msg.key().decode()}: {err}")

    for i, event in enumerate(built, 1):
        producer.produce(
            topic,
            key=event["ticket_id"].encode(),
            value=json.dumps(event).encode(),
            headers=[("traceparent", events.format_traceparent(event["trace_id"], event["event_id"]).encode())],
            on_delivery=on_delivery,
        )
        producer.poll(0)
        if progress and i % 1000 == 0:
            print(f"srs publish: {i}/{len(built)} sent", file=sys.stderr)
    remaining = producer.flush(30)
    if remaining or failures:
        raise RuntimeError(f"{remaining} undelivered, {len(failures)} failed: {failures[:3]}")
    return built


def _run(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("srs publish: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers", file=sys.stderr)
        return 2
    try:
        tickets: list[dict[str, Any]] = (
            list(read_jsonl(Path(args.file)))
            if args.file
            else list(itertools.islice(itertools.cycle(sample_tickets()), args.samples))
        )
        sent = publish(bootstrap, args.topic, tickets)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"srs publish: {e}", file=sys.stderr)
        return 1
    print(f"srs publish: {len(sent)} ticket.created events sent to {args.topic}", file=sys.stderr)
    if args.print_ids:
        for event in sent:
            print(event["ticket_id"])
    return 0


def register(sub: Any) -> None:
    """Add ``srs publish`` to the ``srs`` parser's subcommands."""
    p = sub.add_parser(
        "publish",
        help="send ticket.created events (from a JSONL file or the bundled samples)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--file", "-f", help="JSONL file, one ticket per line")
    src.add_argument("--samples", "-n", type=int, default=10, help="send N of the bundled sample tickets (default 10)")
    p.add_argument("--topic", default="ticket.events", help="topic to send to (default ticket.events)")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--print-ids", action="store_true", help="print each sent ticket id on stdout")
    p.set_defaults(func=_run)
