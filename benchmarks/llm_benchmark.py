"""Drafts per second and latency per ticket against the local model server (``srs llm up``).

Each run sends ``--tickets`` drafting requests (the sample tickets, the specialist prompt
of ``examples/local-llm/``) through the runtime's own OpenAI-compatible provider, with
``concurrency`` tickets in flight at once (1, 2, 4 and 8 by default), and reports
throughput (tickets/s and output tokens/s) and the per-ticket latency (p50, p99: from the
ticket's start, waiting for a server slot included) — the figures that decide an agent's
``concurrency`` against a server of a given number of slots and threads.

The last run repeats the highest concurrency with a call timeout only a little above one
draft's time, twice: with the runtime's slot limit (tickets wait for a slot before their
deadline starts) and without it (every request goes to the server at once and queues
there, its timeout running): the difference is what turns a saturated server into
timeouts and dead letters.

    .venv/bin/srs llm up --parallel 4 --threads 2
    PYTHONPATH=. .venv/bin/python benchmarks/llm_benchmark.py          # uses the running server
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from agent_runtime.providers import IncompleteDraftError, usage
from agent_runtime.providers.base import DraftRequest
from agent_runtime.providers.openai_api import OpenAICompatibleProvider
from agent_runtime.providers.slots import ServerSlots
from agent_runtime.records import TransientError
from agent_runtime.tickets import Ticket, TriageDecision
from devstack import llm
from srs import publish
from srs_contracts.agent_config import ModelConfig, Priority, TicketType

ROOT = Path(__file__).resolve().parent.parent


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def specialist_prompt() -> tuple[str, dict[str, object]]:
    """The first specialist of examples/local-llm/: its prompt and model settings."""
    doc = next(yaml.safe_load_all((ROOT / "examples" / "local-llm" / "specialists.yaml").read_text()))
    return doc["spec"]["prompt"]["inline"], doc["spec"]["model"]


@dataclass
class Run:
    concurrency: int
    latencies_s: list[float]
    wall_s: float
    output_tokens: int
    failures: dict[str, int]

    def row(self, label: str = "") -> str:
        lat = sorted(self.latencies_s) or [0.0]
        p50 = statistics.median(lat)
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
        done = len(self.latencies_s)
        failed = ", ".join(f"{k} {v}" for k, v in sorted(self.failures.items())) or "0"
        return (
            f"| {self.concurrency:>11} {label:<14}| {done / self.wall_s:>9.2f} "
            f"| {self.output_tokens / self.wall_s:>9.1f} "
            f"| {p50:>7.2f} | {p99:>7.2f} | {failed:<20} |"
        )


async def run(base_url: str, tickets: list[Ticket], concurrency: int, *, timeout_s: float, limit: bool) -> Run:
    prompt, model = specialist_prompt()
    config = ModelConfig.model_validate({
        "provider": "openai", "name": llm.settings.LLM_MODEL_ALIAS, "base_url": base_url, "max_retries": 0,
        "max_tokens": model.get("maxTokens", 160), "temperature": model.get("temperature", 0.2),
        "timeout_seconds": timeout_s,
    })  # fmt: skip
    provider = OpenAICompatibleProvider(config, agent="benchmark", system_prompt=prompt)
    if not limit:
        provider._slots = ServerSlots(None)  # the comparison without the limit
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failures: dict[str, int] = {}
    out_tokens = 0

    async def one(ticket: Ticket) -> None:
        nonlocal out_tokens
        async with gate:
            started = time.perf_counter()
            with usage.metered() as spent:
                try:
                    await provider.draft(
                        DraftRequest(
                            ticket, TriageDecision(TicketType.BILLING, Priority.MEDIUM, 0.9), TicketType.BILLING
                        )
                    )
                    latencies.append(time.perf_counter() - started)
                except IncompleteDraftError:
                    latencies.append(time.perf_counter() - started)
                    failures["to people"] = failures.get("to people", 0) + 1
                except TransientError as e:
                    kind = "timeout" if "time" in str(e) else "error"
                    failures[kind] = failures.get(kind, 0) + 1
            out_tokens += spent.output_tokens

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in tickets))
    wall = time.perf_counter() - started
    await provider.aclose()
    return Run(concurrency, latencies, wall, out_tokens, failures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=16, help="drafts per run (default 16)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--timeout", type=float, default=120, help="call timeout of the main runs (s)")
    parser.add_argument(
        "--saturation", type=int, default=None, help="concurrency of the two last runs (default: 2 x the highest)"
    )
    parser.add_argument(
        "--tight-timeout", type=float, default=None,
        help="call timeout of the two last runs; given, the main runs are skipped (default: 2.5 x one draft)",
    )  # fmt: skip
    args = parser.parse_args()

    state = llm.running()
    if state is None:
        print("the local model server is not running: start it with `srs llm up`", file=sys.stderr)
        return 1
    samples = publish.sample_tickets()
    tickets = [
        Ticket(f"B-{i}", "cus_bench", s["subject"], s["body"])
        for i, s in ((i, samples[i % len(samples)]) for i in range(args.tickets))
    ]
    _say(f"server {state.base_url}: {state.parallel} slots, {state.threads} threads; {args.tickets} drafts per run")
    asyncio.run(run(state.base_url, tickets[:2], 1, timeout_s=args.timeout, limit=True))  # warm-up

    print(f"\n{llm.settings.LLM_MODEL_ALIAS} on llama-server: {state.parallel} slots, {state.threads} threads, "
          f"{args.tickets} drafts per run\n")  # fmt: skip
    print("| concurrency                | tickets/s | out tok/s | p50 (s) | p99 (s) | failed               |")
    print("|---------------------------:|----------:|----------:|--------:|--------:|:---------------------|")
    single: Run | None = None
    for concurrency in [] if args.tight_timeout else args.concurrency:
        _say(f"concurrency {concurrency}")
        result = asyncio.run(run(state.base_url, tickets, concurrency, timeout_s=args.timeout, limit=True))
        single = single or result
        print(result.row(), flush=True)

    # A saturated server: timeout a little above one draft at concurrency 1.
    tight = args.tight_timeout or max(statistics.median((single.latencies_s if single else None) or [1.0]) * 2.5, 2.0)
    top = args.saturation or max(args.concurrency) * 2
    for limit in (True, False):
        label = "slot limit" if limit else "no limit"
        _say(f"concurrency {top}, call timeout {tight:.1f}s, {label}")
        result = asyncio.run(run(state.base_url, tickets, top, timeout_s=tight, limit=limit))
        print(result.row(f"{label}"), flush=True)
    print(f"\n(last two rows: call timeout {tight:.1f} s, concurrency {top})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
