"""How good is the offline classifier? Train on the training split, measure elsewhere.

    python -m agent_runtime.offline.evaluate                      # held-out split
    python -m agent_runtime.offline.evaluate --extra FILE.jsonl   # plus any other labelled set
    python -m agent_runtime.offline.evaluate --cv 5 --calibrate   # cross-validation, temperatures

Reports type and priority accuracy, per-type precision/recall/F1, the confusion matrix,
calibration (mean confidence against accuracy, expected calibration error), how many
tickets the triage threshold would send to the human queue and how accurate the rest is,
and prediction speed. The unit tests call :func:`evaluate` — the same code — to hold
the classifier to its accuracy target.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent_runtime.config import Priority, TicketType, TriageConfig
from agent_runtime.offline.classifier import ClassifierSettings, TicketClassifier, shrink
from agent_runtime.offline.dataset import LabelledTicket, Split, load_split, read_jsonl
from agent_runtime.offline.naive_bayes import softmax

#: The triage role's default confidence threshold (below → human queue).
DEFAULT_THRESHOLD = TriageConfig.model_fields["confidence_threshold"].default


@dataclass(frozen=True, slots=True)
class ClassScores:
    """Precision, recall and F1 of one label."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class Report:
    """Figures of one classifier on one labelled set."""

    name: str
    size: int
    type_accuracy: float
    priority_accuracy: float
    #: Priority predicted within one step of the truth (low↔medium, high↔critical, ...).
    priority_within_one: float
    per_type: tuple[ClassScores, ...]
    per_priority: tuple[ClassScores, ...]
    #: confusion[true][predicted] = count, over type labels.
    type_confusion: dict[str, dict[str, int]]
    mean_confidence: float
    expected_calibration_error: float
    threshold: float
    #: Share of tickets whose confidence is below the threshold (→ human queue).
    human_queue_share: float
    #: Type accuracy on the tickets that would be routed automatically.
    routed_accuracy: float


def evaluate(
    classifier: TicketClassifier, tickets: Sequence[LabelledTicket], name: str, threshold: float = DEFAULT_THRESHOLD
) -> Report:
    """Predict every ticket and compare with its labels."""
    if not tickets:
        raise ValueError(f"{name}: no tickets to evaluate")
    predictions = [classifier.predict(t.subject, t.body) for t in tickets]
    type_pairs = [(t.type.value, p.type.value) for t, p in zip(tickets, predictions, strict=True)]
    priority_pairs = [(t.priority.value, p.priority.value) for t, p in zip(tickets, predictions, strict=True)]
    correct = [truth == guess for truth, guess in type_pairs]
    confidences = [p.confidence for p in predictions]
    routed = [ok for ok, c in zip(correct, confidences, strict=True) if c >= threshold]
    order = [p.value for p in Priority]
    return Report(
        name=name,
        size=len(tickets),
        type_accuracy=_mean(correct),
        priority_accuracy=_mean([a == b for a, b in priority_pairs]),
        priority_within_one=_mean([abs(order.index(a) - order.index(b)) <= 1 for a, b in priority_pairs]),
        per_type=_class_scores(type_pairs, [t.value for t in TicketType]),
        per_priority=_class_scores(priority_pairs, order),
        type_confusion=_confusion(type_pairs, [t.value for t in TicketType]),
        mean_confidence=_mean(confidences),
        expected_calibration_error=expected_calibration_error(confidences, correct),
        threshold=threshold,
        human_queue_share=1.0 - len(routed) / len(tickets),
        routed_accuracy=_mean(routed) if routed else float("nan"),
    )


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Average gap between confidence and accuracy over equal-width confidence bins."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [ok for c, ok in zip(confidences, correct, strict=True) if lo <= c < hi or (b == bins - 1 and c == 1)]
        if members:
            in_bin = [c for c in confidences if lo <= c < hi or (b == bins - 1 and c == 1)]
            total += len(members) * abs(_mean(members) - _mean(in_bin))
    return total / len(confidences)


def _class_scores(pairs: Sequence[tuple[str, str]], labels: Sequence[str]) -> tuple[ClassScores, ...]:
    out = []
    for label in labels:
        tp = sum(1 for truth, guess in pairs if truth == label and guess == label)
        predicted = sum(1 for _, guess in pairs if guess == label)
        actual = sum(1 for truth, _ in pairs if truth == label)
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(ClassScores(label, precision, recall, f1, actual))
    return tuple(out)


def _confusion(pairs: Sequence[tuple[str, str]], labels: Sequence[str]) -> dict[str, dict[str, int]]:
    matrix = {truth: dict.fromkeys(labels, 0) for truth in labels}
    for truth, guess in pairs:
        matrix[truth][guess] += 1
    return matrix


def _mean(values: Sequence[float] | Sequence[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


# --- cross-validation and calibration --------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScoredTicket:
    """Uncalibrated scores of a ticket from a model that did not see it."""

    ticket: LabelledTicket
    type_scores: list[float]
    priority_scores: list[float]
    evidence: float


def folds(tickets: Sequence[LabelledTicket], k: int) -> list[int]:
    """Deterministic fold number per ticket, stratified by type."""
    seen: dict[TicketType, int] = {}
    out = []
    for t in tickets:
        out.append(seen.get(t.type, 0) % k)
        seen[t.type] = seen.get(t.type, 0) + 1
    return out


def cross_validate(
    tickets: Sequence[LabelledTicket], k: int, settings: ClassifierSettings | None = None
) -> list[ScoredTicket]:
    """Score every ticket with a classifier trained on the other k-1 folds."""
    fold_of = folds(tickets, k)
    scored: list[ScoredTicket] = []
    for fold in range(k):
        train = [t for t, f in zip(tickets, fold_of, strict=True) if f != fold]
        model = TicketClassifier.train(train, settings)
        for t, f in zip(tickets, fold_of, strict=True):
            if f == fold:
                type_scores, priority_scores, evidence = model.raw_scores(t.subject, t.body)
                scored.append(ScoredTicket(t, type_scores, priority_scores, evidence))
    return scored


def fit_temperature(
    scored: Sequence[ScoredTicket],
    scores: Callable[[ScoredTicket], list[float]],
    truth: Callable[[ScoredTicket], int],
    fallback: Sequence[float],
) -> float:
    """The temperature that minimises the negative log-likelihood of the true labels."""
    best_t, best_nll = 1.0, math.inf
    for step in range(0, 61):
        temperature = 0.5 * 1.08**step  # 0.5 … ~50, geometric
        nll = 0.0
        for s in scored:
            probs = shrink(softmax(scores(s), temperature), s.evidence, fallback)
            nll -= math.log(max(probs[truth(s)], 1e-12))
        if nll < best_nll:
            best_t, best_nll = temperature, nll
    return round(best_t, 2)


def calibrate(tickets: Sequence[LabelledTicket], k: int, settings: ClassifierSettings) -> tuple[float, float, float]:
    """Cross-validated type accuracy and the fitted type and priority temperatures."""
    scored = cross_validate(tickets, k, settings)
    types = sorted(t.value for t in TicketType)
    priorities = sorted(p.value for p in Priority)
    accuracy = _mean(
        [types[max(range(len(types)), key=s.type_scores.__getitem__)] == s.ticket.type.value for s in scored]
    )
    type_t = fit_temperature(
        scored, lambda s: s.type_scores, lambda s: types.index(s.ticket.type.value), [1 / len(types)] * len(types)
    )
    counts = [sum(1 for t in tickets if t.priority.value == p) for p in priorities]
    priority_t = fit_temperature(
        scored,
        lambda s: s.priority_scores,
        lambda s: priorities.index(s.ticket.priority.value),
        [c / len(tickets) for c in counts],
    )
    return accuracy, type_t, priority_t


# --- command line -----------------------------------------------------------------------


def format_report(report: Report) -> str:
    """A report as plain text, the way the docs quote it."""
    lines = [
        f"== {report.name}: {report.size} tickets",
        f"type accuracy      {report.type_accuracy:.3f}",
        f"priority accuracy  {report.priority_accuracy:.3f}  (within one step: {report.priority_within_one:.3f})",
        f"mean confidence    {report.mean_confidence:.3f}  "
        f"(expected calibration error {report.expected_calibration_error:.3f})",
        f"below {report.threshold:.2f} → human queue: {report.human_queue_share:.1%} of tickets; "
        f"type accuracy of the rest {report.routed_accuracy:.3f}",
        "",
        f"{'type':<16} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>4}",
    ]
    lines += [
        f"{c.label:<16} {c.precision:>9.3f} {c.recall:>7.3f} {c.f1:>6.3f} {c.support:>4}" for c in report.per_type
    ]
    lines += ["", f"{'priority':<16} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>4}"]
    lines += [
        f"{c.label:<16} {c.precision:>9.3f} {c.recall:>7.3f} {c.f1:>6.3f} {c.support:>4}" for c in report.per_priority
    ]
    labels = list(report.type_confusion)
    short = {label: label[:8] for label in labels}
    lines += [
        "",
        "confusion (rows: true type, columns: predicted)",
        " " * 16 + "".join(f"{short[c]:>9}" for c in labels),
    ]
    lines += [f"{t:<16}" + "".join(f"{report.type_confusion[t][c]:>9}" for c in labels) for t in labels]
    return "\n".join(lines)


def measure_speed(classifier: TicketClassifier, tickets: Sequence[LabelledTicket], rounds: int = 5) -> float:
    """Mean seconds per prediction over ``rounds`` passes."""
    start = time.perf_counter()
    for _ in range(rounds):
        for t in tickets:
            classifier.predict(t.subject, t.body)
    return (time.perf_counter() - start) / (rounds * len(tickets))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agent_runtime.offline.evaluate",
        description="Train the offline classifier on the training split and report its accuracy.",
    )
    parser.add_argument("--extra", type=Path, action="append", default=[], help="another labelled JSONL set")
    parser.add_argument("--cv", type=int, default=0, metavar="K", help="also k-fold cross-validate the training split")
    parser.add_argument("--calibrate", action="store_true", help="fit temperatures by cross-validation (k = --cv or 5)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, help="triage confidence threshold")
    args = parser.parse_args(argv)

    train = load_split(Split.TRAIN)
    start = time.perf_counter()
    classifier = TicketClassifier.train(train)
    trained_in = time.perf_counter() - start
    heldout = load_split(Split.HELDOUT)
    print(f"trained on {len(train)} tickets in {trained_in * 1000:.0f} ms")

    reports = [evaluate(classifier, heldout, "held-out split", args.threshold)]
    reports += [evaluate(classifier, read_jsonl(path), str(path), args.threshold) for path in args.extra]
    for report in reports:
        print()
        print(format_report(report))

    if args.cv or args.calibrate:
        k = args.cv or 5
        accuracy, type_t, priority_t = calibrate(train, k, classifier.settings)
        print()
        print(f"== {k}-fold cross-validation on the training split: type accuracy {accuracy:.3f}")
        if args.calibrate:
            s = classifier.settings
            print(f"fitted temperatures: type {type_t} (configured {s.type_temperature}), ", end="")
            print(f"priority {priority_t} (configured {s.priority_temperature})")

    per_ticket = measure_speed(classifier, heldout)
    print()
    print(f"prediction speed: {per_ticket * 1e6:.0f} µs per ticket ({1 / per_ticket:.0f} tickets/s, one core)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
