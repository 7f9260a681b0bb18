"""How good is a triage model on a labelled set? The figures behind ``srs eval``.

For every ticket the model's type, priority and confidence are compared with the labels:
type accuracy, per-type precision and recall, the confusion matrix, how many tickets each
confidence threshold would route automatically (*coverage*) and how many of those go to
the right specialist (*routed accuracy*), expected calibration error (does a confidence
of 0.8 mean right 8 times in 10?), priority accuracy and within one level, and the time
per ticket (CPU time for the offline model, wall time for network providers). The unit
tests call :func:`evaluate` — the same code — to hold the shipped model to its targets.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agent_runtime.offline.classifier import TicketClassifier
from srs_contracts.agent_config import Priority, TicketType, TriageConfig
from srs_training.dataset import LabelledTicket

#: The triage role's default confidence threshold (below → human queue).
DEFAULT_THRESHOLD: float = TriageConfig.model_fields["confidence_threshold"].default
#: Thresholds every report shows routed accuracy and coverage for.
THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One ticket: its labels, what the model said, and what saying it cost."""

    ticket: LabelledTicket
    #: Predicted type (``unknown`` when the model could not tell).
    type: str
    priority: str
    confidence: float
    seconds: float

    @property
    def correct(self) -> bool:
        return self.type == self.ticket.type.value


@dataclass(frozen=True, slots=True)
class ClassScores:
    """Precision, recall and F1 of one label."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class ThresholdPoint:
    """What one confidence threshold does: share routed automatically, and how right they are."""

    threshold: float
    coverage: float
    #: Type accuracy of the routed tickets (NaN when none is routed).
    routed_accuracy: float


@dataclass(frozen=True, slots=True)
class Report:
    """Figures of one model on one labelled set."""

    name: str
    size: int
    type_accuracy: float
    per_type: tuple[ClassScores, ...]
    #: confusion[true][predicted] = count.
    type_confusion: dict[str, dict[str, int]]
    mean_confidence: float
    expected_calibration_error: float
    #: The default threshold's figures (also in ``thresholds``).
    threshold: float
    coverage: float
    routed_accuracy: float
    thresholds: tuple[ThresholdPoint, ...]
    #: Over the tickets that have a priority label (None when none has).
    priority_accuracy: float | None
    #: Priority predicted within one level of the truth (low↔medium, high↔critical, …).
    priority_within_one: float | None
    per_priority: tuple[ClassScores, ...]
    #: Mean time per ticket: CPU seconds (offline) or wall seconds (network providers).
    seconds_per_ticket: float
    time_kind: str

    @property
    def human_queue_share(self) -> float:
        """Share of tickets the default threshold sends to people."""
        return 1.0 - self.coverage

    def to_json(self) -> dict[str, Any]:
        """The report as plain JSON (``srs eval --json``)."""
        out = asdict(self)
        out["human_queue_share"] = self.human_queue_share
        finite: dict[str, Any] = _finite(out)
        return finite


def _finite(value: Any) -> Any:
    # JSON has no NaN: "no routed ticket" becomes null.
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def predict_all(classifier: TicketClassifier, tickets: Sequence[LabelledTicket]) -> list[Outcome]:
    """The offline classifier's outcome for every ticket, with the CPU time it took."""
    out = []
    for t in tickets:
        start = time.process_time()
        p = classifier.predict(t.subject, t.body)
        spent = time.process_time() - start
        out.append(Outcome(t, p.type.value, p.priority.value, p.confidence, spent))
    return out


def evaluate(
    classifier: TicketClassifier, tickets: Sequence[LabelledTicket], name: str, threshold: float = DEFAULT_THRESHOLD
) -> Report:
    """Predict every ticket with the offline classifier and compare with its labels."""
    return report(predict_all(classifier, tickets), name, threshold, time_kind="cpu")


def report(
    outcomes: Sequence[Outcome], name: str, threshold: float = DEFAULT_THRESHOLD, time_kind: str = "cpu"
) -> Report:
    """The figures of a set of outcomes."""
    if not outcomes:
        raise ValueError(f"{name}: no tickets to evaluate")
    types = [t.value for t in TicketType]
    type_pairs = [(o.ticket.type.value, o.type) for o in outcomes]
    correct = [o.correct for o in outcomes]
    confidences = [o.confidence for o in outcomes]
    points = tuple(_point(outcomes, th) for th in sorted({*THRESHOLDS, threshold}))
    default = next(p for p in points if p.threshold == threshold)
    rated = [o for o in outcomes if o.ticket.priority is not None]
    order = [p.value for p in Priority]
    priority_pairs = [(str(getattr(o.ticket.priority, "value", "")), o.priority) for o in rated]
    return Report(
        name=name,
        size=len(outcomes),
        type_accuracy=_mean(correct),
        per_type=_class_scores(type_pairs, types),
        type_confusion=_confusion(type_pairs, types),
        mean_confidence=_mean(confidences),
        expected_calibration_error=expected_calibration_error(confidences, correct),
        threshold=threshold,
        coverage=default.coverage,
        routed_accuracy=default.routed_accuracy,
        thresholds=points,
        priority_accuracy=_mean([a == b for a, b in priority_pairs]) if rated else None,
        priority_within_one=_mean([abs(order.index(a) - order.index(b)) <= 1 for a, b in priority_pairs])
        if rated
        else None,
        per_priority=_class_scores(priority_pairs, order) if rated else (),
        seconds_per_ticket=_mean([o.seconds for o in outcomes]),
        time_kind=time_kind,
    )


def _point(outcomes: Sequence[Outcome], threshold: float) -> ThresholdPoint:
    routed = [o.correct for o in outcomes if o.type != "unknown" and o.confidence >= threshold]
    return ThresholdPoint(threshold, len(routed) / len(outcomes), _mean(routed) if routed else float("nan"))


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Average gap between confidence and accuracy over equal-width confidence bins."""
    total = 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        members = [
            (c, ok) for c, ok in zip(confidences, correct, strict=True) if lo <= c < hi or (b == bins - 1 and c == 1)
        ]
        if members:
            accuracy = _mean([ok for _, ok in members])
            total += len(members) * abs(accuracy - _mean([c for c, _ in members]))
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
    columns = [*labels, *sorted({g for _, g in pairs} - set(labels))]  # e.g. "unknown"
    matrix = {truth: dict.fromkeys(columns, 0) for truth in labels}
    for truth, guess in pairs:
        matrix[truth][guess] += 1
    return matrix


def _mean(values: Sequence[float] | Sequence[bool]) -> float:
    return sum(values) / len(values) if values else 0.0


def format_confusion(matrix: dict[str, dict[str, int]]) -> list[str]:
    """A confusion matrix as text rows (rows: true type, columns: predicted)."""
    rows = [t for t in matrix if any(matrix[t].values())] or list(matrix)
    columns = list(next(iter(matrix.values()))) if matrix else []
    lines = ["confusion (rows: true type, columns: predicted)", " " * 16 + "".join(f"{c[:8]:>9}" for c in columns)]
    lines += [f"{t:<16}" + "".join(f"{matrix[t][c]:>9}" for c in columns) for t in rows]
    return lines


def format_report(r: Report) -> str:
    """A report as plain text, the way the docs quote it."""
    lines = [
        f"== {r.name}: {r.size} tickets",
        f"type accuracy        {r.type_accuracy:.3f}",
        f"routed at {r.threshold:.2f}       {r.routed_accuracy:.3f} of {r.coverage:.1%} routed automatically "
        f"({r.human_queue_share:.1%} to the human queue)",
        f"mean confidence      {r.mean_confidence:.3f}  "
        f"(expected calibration error {r.expected_calibration_error:.3f})",
    ]
    if r.priority_accuracy is not None and r.priority_within_one is not None:
        lines.append(f"priority accuracy    {r.priority_accuracy:.3f}  (within one level: {r.priority_within_one:.3f})")
    unit = "CPU" if r.time_kind == "cpu" else "wall"
    lines.append(f"time per ticket      {r.seconds_per_ticket * 1e6:.0f} µs {unit}")
    lines += ["", "threshold  coverage  routed accuracy"]
    lines += [f"{p.threshold:>9.2f}  {p.coverage:>8.1%}  {p.routed_accuracy:>15.3f}" for p in r.thresholds]
    lines += ["", f"{'type':<16} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>4}"]
    lines += [f"{c.label:<16} {c.precision:>9.3f} {c.recall:>7.3f} {c.f1:>6.3f} {c.support:>4}" for c in r.per_type]
    if r.per_priority:
        lines += ["", f"{'priority':<16} {'precision':>9} {'recall':>7} {'f1':>6} {'n':>4}"]
        lines += [
            f"{c.label:<16} {c.precision:>9.3f} {c.recall:>7.3f} {c.f1:>6.3f} {c.support:>4}" for c in r.per_priority
        ]
    lines += ["", *format_confusion(r.type_confusion)]
    return "\n".join(lines)
