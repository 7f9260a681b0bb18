"""``srs triage``: classify tickets from stdin, one JSON object per line — for evaluation.

Reads ``ticket.created`` objects (lenient: only ``subject`` or ``body`` is needed;
``event_id``, ``created_at`` and the rest may be missing) and writes, in input order,
one JSON object per line: ``ticket_id`` (when the input has one), ``type``,
``priority``, ``confidence`` and ``reasoning``. A line that cannot be classified gives
``{"line": N, "error": "..."}`` on stdout (so outputs stay aligned with inputs) and a
message on stderr; the run goes on. Exit code 0 unless the provider cannot be set up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import deque
from pathlib import Path
from typing import IO, Any

from agent_runtime.providers import Provider, ProviderConfigError, build_provider
from agent_runtime.tickets import Ticket
from srs_contracts.agent_config import ModelConfig
from srs_contracts.agent_config import Provider as ProviderName

_AGENT_NAME = "srs-triage"


def ticket_from_line(line: str) -> Ticket:
    """A ticket from one input line; ``ValueError`` with a short reason when it is not one."""
    try:
        data = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON: {e.msg} at column {e.colno}") from e
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    subject = data.get("subject")
    body = data.get("body")
    subject = subject if isinstance(subject, str) else ""
    body = body if isinstance(body, str) else ""
    if not subject.strip() and not body.strip():
        raise ValueError("the ticket has neither a subject nor a body")
    metadata = data.get("metadata")
    ticket_id = data.get("ticket_id")
    return Ticket(
        ticket_id=str(ticket_id) if ticket_id is not None else "",
        customer_id=str(data.get("customer_id") or ""),
        subject=subject,
        body=body,
        event_id=str(data.get("event_id") or ""),
        created_at=data.get("created_at") if isinstance(data.get("created_at"), str) else None,
        channel=data.get("channel") if isinstance(data.get("channel"), str) else None,
        metadata=metadata if isinstance(metadata, dict) else {},
    )


def _ticket_id_of(line: str) -> str | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    value = data.get("ticket_id") if isinstance(data, dict) else None
    return str(value) if value is not None else None


async def classify_line(provider: Provider, number: int, line: str) -> dict[str, Any]:
    """The output object for input line ``number``: a prediction or an error."""
    try:
        ticket = ticket_from_line(line)
        decision = await provider.classify(ticket)
    except Exception as e:  # noqa: BLE001 - one bad line (or one failed call) must not end the run
        error: dict[str, Any] = {"line": number, "error": f"{type(e).__name__}: {e}"}
        ticket_id = _ticket_id_of(line)
        if ticket_id is not None:
            error["ticket_id"] = ticket_id
        return error
    result: dict[str, Any] = {}
    if ticket.ticket_id:
        result["ticket_id"] = ticket.ticket_id
    result.update(
        type=decision.type_name,
        priority=decision.priority.value,
        confidence=round(decision.confidence, 4),
        reasoning=decision.reasoning,
    )
    return result


async def run_triage(provider: Provider, source: IO[str], sink: IO[str], errors: IO[str], concurrency: int) -> int:
    """Classify every line of ``source`` with up to ``concurrency`` in flight; write results in order."""
    window: deque[asyncio.Task[dict[str, Any]]] = deque()

    def emit(result: dict[str, Any]) -> None:
        sink.write(json.dumps(result, ensure_ascii=False) + "\n")
        sink.flush()
        if "error" in result:
            errors.write(f"srs triage: line {result['line']}: {result['error']}\n")

    number = 0
    while True:
        line = await asyncio.to_thread(source.readline)
        if not line:
            break
        number += 1
        if not line.strip():
            continue
        window.append(asyncio.create_task(classify_line(provider, number, line)))
        while len(window) >= concurrency:
            emit(await window.popleft())
    while window:
        emit(await window.popleft())
    return 0


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The model section the command line describes (a config file's, with flags on top)."""
    base = ModelConfig()
    if args.config:
        from srs_contracts.agent_config import AgentConfig

        base = AgentConfig.load(args.config).model
    overrides: dict[str, Any] = {}
    if args.provider:
        overrides["provider"] = ProviderName(args.provider)
    for field in ("base_url", "region", "api_key_env"):
        if getattr(args, field) is not None:
            overrides[field] = getattr(args, field)
    if args.timeout is not None:
        overrides["timeout_seconds"] = args.timeout
    provider = overrides.get("provider", base.provider)
    if args.model and provider is ProviderName.OFFLINE:
        # For the offline provider the "model" is a directory written by srs train.
        if not Path(args.model).is_dir():
            raise ValueError(f"--model {args.model}: not a directory (offline models come from srs train --output)")
        overrides["model_dir"] = args.model
    elif args.model:
        overrides["name"] = args.model
    elif args.provider and ProviderName(args.provider) is not ProviderName.OFFLINE and not args.config:
        raise ValueError(f"--model is required with --provider {args.provider}")
    return ModelConfig.model_validate({**base.model_dump(), **overrides})


def _run(args: argparse.Namespace) -> int:
    try:
        model = model_config(args)
    except (OSError, ValueError) as e:
        print(f"srs triage: {e}", file=sys.stderr)
        return 2

    async def main() -> int:
        try:
            provider = build_provider(model, agent=_AGENT_NAME, concurrency=args.concurrency)
            warm_up = getattr(provider, "warm_up", None)
            if callable(warm_up):
                warm_up()  # a bad --model directory fails here, once, not on every line
        except (ProviderConfigError, ImportError) as e:
            print(f"srs triage: cannot set up provider {model.provider.value}: {e}", file=sys.stderr)
            return 1
        try:
            return await run_triage(provider, sys.stdin, sys.stdout, sys.stderr, args.concurrency)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags :func:`model_config` reads (``srs triage``, ``srs eval``), and ``--concurrency``."""
    parser.add_argument(
        "--provider", choices=[p.value for p in ProviderName], help="LLM back end (default: offline, or --config's)"
    )
    parser.add_argument(
        "--model",
        help="network providers: the model id (required); offline: a model directory from srs train",
    )
    parser.add_argument("--base-url", dest="base_url", help="endpoint override (OpenAI-compatible servers, proxies)")
    parser.add_argument("--region", help="AWS region (bedrock)")
    parser.add_argument("--api-key-env", dest="api_key_env", help="environment variable holding the API key")
    parser.add_argument("--timeout", type=float, help="seconds per model call")
    parser.add_argument("--config", help="an agent config file whose model section to use")
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=8,
        help="tickets in flight to network providers (default: 8)",
    )


def register(sub: Any) -> None:
    """Add ``srs triage`` to the ``srs`` parser's subcommands."""
    parser = sub.add_parser(
        "triage",
        help="classify ticket.created JSON lines from stdin (evaluation)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    parser.set_defaults(func=_run)
