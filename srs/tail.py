"""``srs tail``: follow resolutions, the human queue and the dead-letter topic, readably.

One line per event::

    RESOLVED  T-4f1c2a-0001  billing/high             'Hi, thanks for reaching out about …'
    HUMAN     T-4f1c2a-0036  other/low     conf 0.41  confidence 0.41 below threshold 0.60
    DLQ       T-4f1c2a-0041  schema_invalid: 'subject' is a required property (ticket.events[0]@40)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from srs.flow import FlowReader, describe


def _run(args: argparse.Namespace) -> int:
    bootstrap = args.bootstrap_servers or os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        print("srs tail: set KAFKA_BOOTSTRAP_SERVERS or pass --bootstrap-servers", file=sys.stderr)
        return 2
    topics = [args.resolved_topic, args.human_topic, args.dlq_topic, *args.topic]
    try:
        reader = FlowReader(bootstrap, topics, from_beginning=args.from_beginning)
    except LookupError as e:
        print(f"srs tail: {e}", file=sys.stderr)
        return 1
    print(f"srs tail: following {', '.join(topics)} (Ctrl-C to stop)", file=sys.stderr)
    shown = 0
    try:
        for event in reader.events():
            if event is None:
                continue
            print(json.dumps(event.payload) if args.json else describe(event), flush=True)
            shown += 1
            if args.max and shown >= args.max:
                break
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


def register(sub: Any) -> None:
    """Add ``srs tail`` to the ``srs`` parser's subcommands."""
    p = sub.add_parser(
        "tail",
        help="follow ticket.resolved, the human queue and the DLQ in a readable form",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--from-beginning", action="store_true", help="start at the oldest retained event")
    p.add_argument("--resolved-topic", default="ticket.resolved")
    p.add_argument("--human-topic", default="ticket.triaged.human")
    p.add_argument("--dlq-topic", default="ticket.dlq")
    p.add_argument("--topic", action="append", default=[], help="follow this topic too (repeatable)")
    p.add_argument("--json", action="store_true", help="print raw JSON payloads")
    p.add_argument("--max", type=int, default=0, help="stop after N events (0: follow forever)")
    p.add_argument("--bootstrap-servers", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)")
    p.set_defaults(func=_run)
