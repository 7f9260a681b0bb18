"""Training the offline classifier: on the project's tickets, or on yours.

``train_default()`` builds the model the project ships: the hand-written training split
plus generated tickets (:mod:`srs_training.generate`) that count for less each.
``train_on()`` builds one from any labelled set (``srs train``). Both then *calibrate*:

1. predictions for tickets the model did not train on (k-fold cross-validation; for the
   shipped model also a model trained on the hand-written tickets alone predicting the
   generated ones — text written differently from what it learned from);
2. a temperature for the type and the priority scores (least log-loss);
3. a :class:`~agent_runtime.offline.classifier.ConfidenceModel` on those predictions, so
   that a confidence of 0.8 means "right about 80 % of the time", on unfamiliar text too.

The result is a directory (:mod:`agent_runtime.offline.modelfile`) that
``srs triage --model DIR`` and a SupportAgent's ``spec.model.offline.modelRef`` load.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

from agent_runtime.offline import features, modelfile
from agent_runtime.offline.classifier import (
    Assessment,
    ClassifierSettings,
    ConfidenceModel,
    TicketClassifier,
    confidence_signals,
    shrink,
)
from agent_runtime.offline.naive_bayes import NaiveBayes, softmax
from srs_training import generate
from srs_training.dataset import LabelledTicket, Split, load_split

#: Generated tickets in the shipped model, and what each counts for next to a hand-written one.
GENERATED_COUNT = 5000
GENERATED_WEIGHT = 0.1
GENERATED_SEED = 1


def fit(
    tickets: Sequence[LabelledTicket],
    settings: ClassifierSettings | None = None,
    weights: Sequence[float] | None = None,
) -> TicketClassifier:
    """Fit both models of a classifier on labelled tickets (deterministic: same tickets,
    same model).

    ``weights`` (one per ticket, default 1) make some tickets count for less. The
    priority model learns from the tickets that have a priority.
    """
    settings = settings or ClassifierSettings()
    weights = list(weights) if weights is not None else [1.0] * len(tickets)
    documents = [features.extract(t.subject, t.body, settings.feature_settings) for t in tickets]
    type_model = NaiveBayes.fit(documents, [t.type.value for t in tickets], settings.type_model, weights)
    rated = [i for i, t in enumerate(tickets) if t.priority is not None]
    if not rated:
        # A set labelled with types only: priorities are learned from the shipped tickets.
        shipped = load_split(Split.TRAIN)
        documents = [features.extract(t.subject, t.body, settings.feature_settings) for t in shipped]
        tickets, weights, rated = shipped, [1.0] * len(shipped), list(range(len(shipped)))
    priority_model = NaiveBayes.fit(
        [documents[i] for i in rated],
        [str(getattr(tickets[i].priority, "value", "")) for i in rated],
        settings.priority_model,
        [weights[i] for i in rated],
    )
    return TicketClassifier(type_model, priority_model, settings, settings.confidence)


@dataclass(frozen=True, slots=True)
class Scored:
    """A ticket and what a model that did not train on it saw in it."""

    ticket: LabelledTicket
    assessment: Assessment
    types: tuple[str, ...]
    priorities: tuple[str, ...]

    @property
    def type_index(self) -> int:
        return self.types.index(self.ticket.type.value) if self.ticket.type.value in self.types else -1


@dataclass(frozen=True, slots=True)
class Trained:
    """A calibrated classifier and what training measured."""

    classifier: TicketClassifier
    #: Cross-validated type accuracy (before any threshold).
    cv_accuracy: float
    #: confusion[true][predicted] over the cross-validated predictions.
    cv_confusion: dict[str, dict[str, int]]
    tickets: int


def folds(tickets: Sequence[LabelledTicket], k: int) -> list[int]:
    """Deterministic fold number per ticket, stratified by type."""
    seen: dict[str, int] = {}
    out = []
    for t in tickets:
        n = seen.get(t.type.value, 0)
        out.append(n % k)
        seen[t.type.value] = n + 1
    return out


def _score(model: TicketClassifier, tickets: Sequence[LabelledTicket]) -> list[Scored]:
    types = tuple(t.value for t in model.types)
    priorities = tuple(p.value for p in model.priorities)
    return [Scored(t, model.assess(t.subject, t.body), types, priorities) for t in tickets]


def cross_validate(
    tickets: Sequence[LabelledTicket],
    k: int,
    settings: ClassifierSettings,
    weights: Sequence[float] | None = None,
    always: Sequence[LabelledTicket] = (),
    always_weight: float = 1.0,
) -> list[Scored]:
    """Score every ticket with a model trained on the other folds (plus ``always``)."""
    weights = list(weights) if weights is not None else [1.0] * len(tickets)
    fold_of = folds(tickets, k)
    out: list[Scored] = []
    for fold in range(k):
        train = [t for t, f in zip(tickets, fold_of, strict=True) if f != fold]
        w = [x for x, f in zip(weights, fold_of, strict=True) if f != fold]
        model = fit([*train, *always], settings, [*w, *([always_weight] * len(always))])
        out += _score(model, [t for t, f in zip(tickets, fold_of, strict=True) if f == fold])
    return out


def fit_temperature(scored: Sequence[Scored], priority: bool = False) -> float:
    """The temperature that minimises the log-loss of the true labels (geometric grid 0.5…50)."""
    best_t, best_nll = 1.0, math.inf
    usable = [s for s in scored if (s.ticket.priority is not None if priority else s.type_index >= 0)]
    if not usable:
        return best_t
    for step in range(61):
        temperature = 0.5 * 1.08**step
        nll = 0.0
        for s in usable:
            if priority:
                assert s.ticket.priority is not None
                scores, truth = s.assessment.priority_scores, s.priorities.index(s.ticket.priority.value)
                fallback = [1 / len(scores)] * len(scores)
            else:
                scores, truth = s.assessment.type_scores, s.type_index
                fallback = [1 / len(scores)] * len(scores)
            probs = shrink(softmax(scores, temperature), s.assessment.evidence, fallback)
            nll -= math.log(max(probs[truth], 1e-12))
        if nll < best_nll:
            best_t, best_nll = temperature, nll
    return round(best_t, 2)


def fit_confidence(scored: Sequence[Scored], temperature: float) -> ConfidenceModel:
    """A confidence model from predictions on tickets the model did not train on."""
    rows = [confidence_signals(s.assessment, temperature) for s in scored]
    correct = [_predicted(s) == s.type_index for s in scored]
    return ConfidenceModel.fit(rows, correct)


def _predicted(s: Scored) -> int:
    scores = s.assessment.type_scores
    return max(range(len(scores)), key=scores.__getitem__)


def confusion(scored: Sequence[Scored]) -> dict[str, dict[str, int]]:
    """confusion[true][predicted] of the scored tickets."""
    labels = sorted({s.ticket.type.value for s in scored} | set(scored[0].types if scored else ()))
    matrix = {t: dict.fromkeys(labels, 0) for t in labels}
    for s in scored:
        matrix[s.ticket.type.value][s.types[_predicted(s)]] += 1
    return matrix


def calibrate(
    tickets: Sequence[LabelledTicket],
    calibration: Sequence[Scored],
    settings: ClassifierSettings,
    weights: Sequence[float] | None = None,
) -> TicketClassifier:
    """Fit temperatures and the confidence model on ``calibration``; train on all of ``tickets``."""
    type_t = fit_temperature(calibration)
    priority_t = fit_temperature(calibration, priority=True)
    confidence = fit_confidence(calibration, type_t)
    settings = replace(settings, type_temperature=type_t, priority_temperature=priority_t, confidence=confidence)
    return fit(tickets, settings, weights)


def train_on(tickets: Sequence[LabelledTicket], k: int = 5, settings: ClassifierSettings | None = None) -> Trained:
    """A calibrated classifier for a labelled set (any subset of the five types)."""
    settings = replace(settings or ClassifierSettings(), confidence=None)
    if len({t.type for t in tickets}) < 2:
        raise ValueError("need tickets of at least two types to train a classifier")
    k = max(2, min(k, min(sum(1 for t in tickets if t.type is ty) for ty in {t.type for t in tickets})))
    scored = cross_validate(tickets, k, settings)
    classifier = calibrate(tickets, scored, settings)
    return Trained(classifier, _accuracy(scored), confusion(scored), len(tickets))


def default_training_set() -> tuple[list[LabelledTicket], list[float]]:
    """The shipped model's tickets and their weights: hand-written ones count 1, generated less."""
    hand = load_split(Split.TRAIN)
    gen = generate.generate(GENERATED_COUNT, GENERATED_SEED)
    return [*hand, *gen], [1.0] * len(hand) + [GENERATED_WEIGHT] * len(gen)


def train_default(k: int = 5) -> Trained:
    """The model the project ships, calibrated on in-style *and* cross-style predictions."""
    settings = replace(ClassifierSettings(), confidence=None)
    hand = load_split(Split.TRAIN)
    gen = generate.generate(GENERATED_COUNT, GENERATED_SEED)
    in_style = cross_validate(hand, k, settings, always=gen, always_weight=GENERATED_WEIGHT)
    # Text written unlike anything the model learned from: the hand-written set's model
    # reading generated tickets (chat lines, forms, bug reports, non-native English).
    cross_style = _score(fit(hand, settings), gen[:1000])
    tickets, weights = default_training_set()
    classifier = calibrate(tickets, [*in_style, *cross_style], settings, weights)
    return Trained(classifier, _accuracy(in_style), confusion(in_style), len(tickets))


#: The sources a shipped model is built from; a change to any of them calls for ``make model``.
_SOURCES = (
    ("srs_training", "data/train.jsonl"),
    ("srs_training", "scenarios.txt"),
    ("srs_training", "generate.py"),
    ("srs_training", "training.py"),
    ("agent_runtime.offline", "classifier.py"),
    ("agent_runtime.offline", "features.py"),
    ("agent_runtime.offline", "naive_bayes.py"),
    ("agent_runtime", "textscan.py"),  # features' digit and substring tests
)


def default_fingerprint() -> str:
    """Digest of everything the shipped model is built from (checked by a unit test)."""
    return modelfile.fingerprint(*(resources.files(package).joinpath(name).read_bytes() for package, name in _SOURCES))


def build_default(directory: str | Path) -> Trained:
    """Train, calibrate and save the shipped model to ``directory`` (``make model``)."""
    trained = train_default()
    modelfile.save(
        trained.classifier,
        directory,
        {
            "trained_on": "srs_training/data/train.jsonl + generated tickets",
            "tickets": trained.tickets,
            "cv_type_accuracy": round(trained.cv_accuracy, 4),
            "fingerprint": default_fingerprint(),
        },
    )
    return trained


def _accuracy(scored: Sequence[Scored]) -> float:
    return sum(1 for s in scored if _predicted(s) == s.type_index) / len(scored) if scored else 0.0


def main() -> int:
    """``python -m srs_training.training``: rebuild the shipped model (``make model``)."""
    target = Path(str(resources.files(modelfile.__package__ or "agent_runtime.offline").joinpath("model")))
    trained = build_default(target)
    print(
        f"wrote {target / modelfile.MODEL_FILE}: {trained.tickets} tickets, cv type accuracy {trained.cv_accuracy:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
