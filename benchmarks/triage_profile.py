"""Where the offline triage agent's CPU goes, per ticket, without Kafka.

Runs the real triage handler (``agent_runtime.agent.build_handler``: decode, input schema
validation, the offline classifier, the triaged event, output schema validation, encode)
over the bundled sample tickets, first plainly for the CPU per ticket, then under
cProfile for a per-stage table: the cumulative time of the functions that make up each
stage, as a share of the profiled total (cProfile slows everything by about the same
factor, so shares hold, absolute µs are from the plain run).

    .venv/bin/python benchmarks/triage_profile.py              # 3000 tickets
    .venv/bin/python benchmarks/triage_profile.py --tickets 10000 --top 30
    SRS_NATIVE_CLASSIFIER=0 .venv/bin/python benchmarks/triage_profile.py   # Python only, to compare
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import time
from collections.abc import Sequence

from agent_runtime.agent import build_handler
from agent_runtime.offline.modelfile import load_default
from agent_runtime.records import Handler, InputRecord
from srs import publish
from srs_contracts.agent_config import AgentConfig

#: Stage → (file suffix, function name) whose cumulative time is the stage's.
STAGES: dict[str, tuple[str, str]] = {
    "whole handler (decode → encode)": ("agent_runtime/agent.py", "handle"),
    "input schema validation": ("agent_runtime/agent.py", "validate_input"),
    "offline classifier (predict)": ("agent_runtime/offline/classifier.py", "predict"),
    "  of which: features and their sums": ("agent_runtime/offline/classifier.py", "_see"),
    "  of which: reasoning text": ("agent_runtime/offline/classifier.py", "_reasoning"),
    "triaged event built": ("agent_runtime/events/builders.py", "build_triaged"),
    "output schema validation + encode": ("agent_runtime/agent.py", "_checked"),
}


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def triage_handler() -> Handler:
    routes = {t: f"triaged-{t}" for t in ("billing", "technical", "feature_request", "account", "other")}
    config = AgentConfig.model_validate(
        {
            "name": "profile",
            "role": "triage",
            "triage": {"routes": routes, "human_topic": "human"},
            "kafka": {"group_id": "profile", "input_topic": "in"},
        }
    )
    return build_handler(config)


def records(count: int) -> list[InputRecord]:
    samples = publish.sample_tickets()
    out = []
    for n in range(count):
        event = publish.to_event(samples[n % len(samples)], "profile", n)
        out.append(InputRecord("in", 0, n, event["ticket_id"].encode(), json.dumps(event).encode(), ()))
    return out


def run(handler: Handler, batch: Sequence[InputRecord]) -> None:
    async def go() -> None:
        for record in batch:
            await handler.handle(record)

    asyncio.run(go())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=3000, help="tickets per run (default 3000)")
    parser.add_argument("--top", type=int, default=0, help="also print cProfile's N most expensive functions")
    args = parser.parse_args(argv)

    handler = triage_handler()
    batch = records(args.tickets)
    progress("warming up (300 tickets)")
    run(handler, batch[:300])
    progress(f"plain run: {args.tickets} tickets")
    started = time.process_time()
    run(handler, batch)
    per_ticket_us = (time.process_time() - started) / args.tickets * 1e6
    progress("profiled run")
    profile = cProfile.Profile()
    profile.enable()
    run(handler, batch)
    profile.disable()
    stats = pstats.Stats(profile)
    cumulative: dict[tuple[str, str], float] = {}
    for (filename, _line, function), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        for suffix, name in STAGES.values():
            if function == name and filename.endswith(suffix):
                cumulative[(suffix, name)] = cumulative.get((suffix, name), 0.0) + ct
    total = cumulative.get(STAGES["whole handler (decode → encode)"], 0.0) or 1.0

    path = "compiled step (native/)" if load_default().compiled else "Python only (no compiled step)"
    print(f"\noffline triage handler, {args.tickets} sample tickets, {path}: {per_ticket_us:.0f} µs CPU per ticket\n")
    print(f"{'stage':<40} {'share':>7} {'µs/ticket':>10}")
    for stage, key in STAGES.items():
        share = cumulative.get(key, 0.0) / total
        print(f"{stage:<40} {share:>6.0%} {share * per_ticket_us:>10.0f}")
    if args.top:
        print()
        stats.sort_stats("cumulative").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
