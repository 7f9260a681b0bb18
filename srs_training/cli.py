"""``srs train`` and ``srs eval``: train the offline classifier on your tickets, and measure any model.

srs train --data tickets.csv --output ./triage-model
srs eval --data heldout.jsonl --model ./triage-model
srs eval --data heldout.jsonl --provider openai --model gpt-4o-mini --json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent_runtime.offline import modelfile
from agent_runtime.triage_cli import add_model_arguments
from srs_training import evaluate
from srs_training.dataset import LabelledTicket, read_labelled


def _read(path: str, command: str, skip_bad: bool) -> list[LabelledTicket] | None:
    """The usable tickets of ``path``; every bad row is reported; None when the command must stop."""
    try:
        labelled = read_labelled(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"srs {command}: cannot read {path}: {exc}", file=sys.stderr)
        return None
    for problem in labelled.problems:
        print(f"srs {command}: {path}:{problem.line}: {problem.reason}", file=sys.stderr)
    if labelled.problems and not skip_bad:
        print(
            f"srs {command}: {len(labelled.problems)} row(s) of {path} cannot be used (listed above); fix them, or "
            f"pass --skip-bad to go on with the other {len(labelled.tickets)}",
            file=sys.stderr,
        )
        return None
    if labelled.problems:
        print(f"srs {command}: skipped {len(labelled.problems)} bad row(s), listed above", file=sys.stderr)
    if not labelled.tickets:
        print(f"srs {command}: {path} holds no usable tickets", file=sys.stderr)
        return None
    return labelled.tickets


def _run_train(args: argparse.Namespace) -> int:
    from srs_training import training

    tickets = _read(args.data, "train", args.skip_bad)
    if tickets is None:
        return 2
    types = sorted({t.type.value for t in tickets})
    print(f"training on {len(tickets)} tickets ({', '.join(types)}), {args.folds}-fold cross-validation …")
    start = time.perf_counter()
    try:
        trained = training.train_on(tickets, k=args.folds)
    except ValueError as exc:
        print(f"srs train: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - start
    classifier, pruned_to = modelfile.shrink_to_fit(trained.classifier)
    if pruned_to is not None:
        print(f"kept the features seen in at least {pruned_to} tickets, so that the model fits a ConfigMap (1 MiB)")
    s = classifier.settings
    path = modelfile.save(
        classifier,
        args.output,
        {
            "trained_on": Path(args.data).name,
            "tickets": len(tickets),
            "types": types,
            "cv_type_accuracy": round(trained.cv_accuracy, 4),
        },
    )
    size = path.stat().st_size
    print(f"cross-validated type accuracy {trained.cv_accuracy:.3f}")
    print()
    print("\n".join(evaluate.format_confusion(trained.cv_confusion)))
    print()
    print(f"calibration: type temperature {s.type_temperature}, priority temperature {s.priority_temperature}")
    print(f"wrote {path} ({size / 1024:.0f} KiB) in {elapsed:.1f} s")
    if not modelfile.fits_config_map(path.read_bytes()):
        print(
            f"note: {len(base64.b64encode(path.read_bytes())) / 1024:.0f} KiB once base64-encoded: too big for a "
            "ConfigMap (1 MiB); mount it from a volume instead",
            file=sys.stderr,
        )
    else:
        print(
            "load it in a SupportAgent: kubectl create configmap triage-model "
            f"--from-file={modelfile.MODEL_FILE}={path} and set spec.model.offline.modelRef.name: triage-model"
        )
    return 0


async def _provider_outcomes(args: argparse.Namespace, tickets: list[LabelledTicket]) -> list[evaluate.Outcome]:
    from agent_runtime.providers import build_provider
    from agent_runtime.tickets import Ticket
    from agent_runtime.triage_cli import model_config

    provider = build_provider(model_config(args), agent="srs-eval", concurrency=args.concurrency)
    gate = asyncio.Semaphore(args.concurrency)

    async def one(t: LabelledTicket) -> evaluate.Outcome:
        async with gate:
            start = time.perf_counter()
            decision = await provider.classify(Ticket(ticket_id=t.id, customer_id="", subject=t.subject, body=t.body))
            spent = time.perf_counter() - start
        return evaluate.Outcome(t, decision.type_name, decision.priority.value, decision.confidence, spent)

    try:
        return list(await asyncio.gather(*(one(t) for t in tickets)))
    finally:
        await provider.aclose()


def _run_eval(args: argparse.Namespace) -> int:
    tickets = _read(args.data, "eval", args.skip_bad)
    if tickets is None:
        return 2
    offline = args.provider in (None, "offline") and not args.config
    try:
        if offline:
            from agent_runtime.offline.modelfile import load_default

            classifier = modelfile.load(args.model) if args.model else load_default()
            report = evaluate.evaluate(classifier, tickets, args.data, args.threshold)
        else:
            outcomes = asyncio.run(_provider_outcomes(args, tickets))
            report = evaluate.report(outcomes, args.data, args.threshold, time_kind="wall")
    except (modelfile.ModelFileError, ValueError, OSError) as exc:
        print(f"srs eval: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False))
    else:
        print(evaluate.format_report(report))
    return 0


def register(sub: Any) -> None:
    """Add ``srs train`` and ``srs eval`` to the ``srs`` parser's subcommands."""
    train = sub.add_parser(
        "train",
        help="train the offline triage classifier on your labelled tickets",
        description="Train the offline classifier on a labelled set (JSON Lines, or CSV by extension) with "
        "subject, body, type and optionally priority; any subset of the five types works. Rows that cannot be "
        "used are listed with their line numbers. Prints cross-validated accuracy and the confusion matrix and "
        "writes DIR/model.json.gz, which srs triage --model DIR, srs eval --model DIR and a SupportAgent's "
        "spec.model.offline.modelRef load.",
    )
    train.add_argument("--data", required=True, metavar="FILE", help="labelled tickets (.jsonl or .csv)")
    train.add_argument("--output", required=True, metavar="DIR", help="directory to write the model to")
    train.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    train.add_argument("--skip-bad", action="store_true", help="train on the usable rows when some are bad")
    train.set_defaults(func=_run_train)

    ev = sub.add_parser(
        "eval",
        help="measure a triage model on a labelled set",
        description="Type accuracy, per-type precision/recall, routed accuracy and coverage at several confidence "
        "thresholds, expected calibration error, priority accuracy and within one level, and time per ticket. "
        "Default: the shipped offline model; --model DIR: one from srs train; --provider NAME --model ID: an LLM.",
    )
    ev.add_argument("--data", required=True, metavar="FILE", help="labelled tickets (.jsonl or .csv)")
    add_model_arguments(ev)
    ev.add_argument("--threshold", type=float, default=evaluate.DEFAULT_THRESHOLD, help="the triage threshold")
    ev.add_argument("--skip-bad", action="store_true", help="evaluate the usable rows when some are bad")
    ev.add_argument("--json", action="store_true", help="one JSON object instead of text")
    ev.set_defaults(func=_run_eval)
