"""The offline triage classifier: ticket text → type, priority, confidence, reasoning.

This is the public API other parts code against::

    from agent_runtime.offline.classifier import load_default

    prediction = load_default().predict(subject, body)
    prediction.type, prediction.priority, prediction.confidence, prediction.reasoning

Two naive Bayes models (:mod:`agent_runtime.offline.naive_bayes`) — one for the type,
one for the priority — are trained on the project's labelled ticket set
(:mod:`agent_runtime.offline.dataset`) when :func:`load_default` is first called; training
is a counting pass, deterministic, and takes a fraction of a second.

Confidence is the probability of the chosen type after two corrections: a temperature
(fitted on cross-validated predictions by ``python -m agent_runtime.offline.evaluate
--calibrate``) tames naive Bayes' over-confidence, and an *evidence* factor pulls the
distribution towards a fallback (every type equally likely; priorities as often as they
occur) when the text holds little known vocabulary — gibberish, "hi", a language the set
never saw — so such tickets fall below the triage threshold and go to the human queue
instead of being guessed at.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent_runtime.config import Priority, TicketType
from agent_runtime.offline import features
from agent_runtime.offline.dataset import LabelledTicket, Split, load_split
from agent_runtime.offline.naive_bayes import Contribution, NaiveBayes, NaiveBayesSettings, softmax

__all__ = ["ClassifierSettings", "Prediction", "TicketClassifier", "load_default"]


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the classifier says about one ticket."""

    type: TicketType
    priority: Priority
    #: Probability (0..1) that ``type`` is right; low for texts with little evidence.
    confidence: float
    #: A short human-readable explanation: the terms that decided type and priority.
    reasoning: str
    #: Probability (0..1) that ``priority`` is right.
    priority_confidence: float


@dataclass(frozen=True, slots=True)
class ClassifierSettings:
    """Hyper-parameters, chosen by cross-validation on the training split (see the docs)."""

    feature_settings: features.FeatureSettings = field(default_factory=features.FeatureSettings)
    type_model: NaiveBayesSettings = field(
        default_factory=lambda: NaiveBayesSettings(alpha=0.2, namespace_weights={"c:": 0.2, "s:": 0.0})
    )
    priority_model: NaiveBayesSettings = field(
        default_factory=lambda: NaiveBayesSettings(
            alpha=0.3, namespace_weights={"c:": 0.0, "s:": 3.0}, label_bias={Priority.CRITICAL.value: 6.0}
        )
    )
    #: Temperatures that turn naive Bayes log-scores into calibrated-ish probabilities.
    type_temperature: float = 5.0
    priority_temperature: float = 4.7
    #: Known content words at which the evidence factor reaches 1 - 1/e (≈ 0.63).
    evidence_scale: float = 1.5
    #: Terms quoted in ``reasoning`` per decision.
    reasoning_terms: int = 3


class TicketClassifier:
    """Predicts type and priority of a ticket from its subject and body."""

    def __init__(self, type_model: NaiveBayes, priority_model: NaiveBayes, settings: ClassifierSettings) -> None:
        self._type_model = type_model
        self._priority_model = priority_model
        self._types = tuple(TicketType(label) for label in type_model.labels)
        self._priorities = tuple(Priority(label) for label in priority_model.labels)
        self.settings = settings

    @classmethod
    def train(cls, tickets: Sequence[LabelledTicket], settings: ClassifierSettings | None = None) -> TicketClassifier:
        """Fit both models on labelled tickets (deterministic: same tickets, same model)."""
        settings = settings or ClassifierSettings()
        documents = [features.extract(t.subject, t.body, settings.feature_settings) for t in tickets]
        type_model = NaiveBayes.fit(documents, [t.type.value for t in tickets], settings.type_model)
        priority_model = NaiveBayes.fit(documents, [t.priority.value for t in tickets], settings.priority_model)
        return cls(type_model, priority_model, settings)

    def predict(self, subject: str, body: str) -> Prediction:
        """Classify one ticket. Never raises on odd text; empty text gets low confidence."""
        analysis = features.analyse(subject, body, self.settings.feature_settings)
        type_probs, priority_probs, evidence = self._distributions(analysis)
        # Ties (only without any evidence) go to the catch-all type.
        t = max(range(len(type_probs)), key=lambda i: (type_probs[i], self._types[i] is TicketType.OTHER))
        p = max(range(len(priority_probs)), key=priority_probs.__getitem__)
        ticket_type, priority = self._types[t], self._priorities[p]
        return Prediction(
            type=ticket_type,
            priority=priority,
            confidence=round(type_probs[t], 4),
            reasoning=self._reasoning(analysis, ticket_type, priority, evidence),
            priority_confidence=round(priority_probs[p], 4),
        )

    def distributions(self, subject: str, body: str) -> tuple[dict[TicketType, float], dict[Priority, float]]:
        """The full probability of every type and every priority (for evaluation)."""
        type_probs, priority_probs, _ = self._distributions(
            features.analyse(subject, body, self.settings.feature_settings)
        )
        return dict(zip(self._types, type_probs, strict=True)), dict(zip(self._priorities, priority_probs, strict=True))

    def raw_scores(self, subject: str, body: str) -> tuple[list[float], list[float], float]:
        """Uncalibrated log-scores of types and priorities and the evidence factor (for calibration)."""
        analysis = features.analyse(subject, body, self.settings.feature_settings)
        found = analysis.features
        return self._type_model.log_scores(found), self._priority_model.log_scores(found), self._evidence(analysis)

    def _distributions(self, analysis: features.Analysis) -> tuple[list[float], list[float], float]:
        evidence = self._evidence(analysis)
        found = analysis.features
        s = self.settings
        type_probs = shrink(
            softmax(self._type_model.log_scores(found), s.type_temperature),
            evidence,
            [1.0 / len(self._types)] * len(self._types),
        )
        # Without evidence the priority falls back to how often each priority occurs (mostly low).
        priority_probs = shrink(
            softmax(self._priority_model.log_scores(found), s.priority_temperature),
            evidence,
            self._priority_model.priors(),
        )
        return type_probs, priority_probs, evidence

    def _evidence(self, analysis: features.Analysis) -> float:
        """0 for text without known content words, → 1 as more of them appear."""
        known = sum(
            1
            for f in analysis.readable
            if f.startswith(features.WORD_PREFIX) and self._type_model.document_frequency(f) >= 2
        )
        return 1.0 - math.exp(-known / self.settings.evidence_scale)

    def _reasoning(
        self, analysis: features.Analysis, ticket_type: TicketType, priority: Priority, evidence: float
    ) -> str:
        if evidence < 0.5:
            return "too little known vocabulary to classify reliably; best guess " + ticket_type.value
        surface = _surface_forms(analysis.tokens)
        n = self.settings.reasoning_terms
        readable = analysis.readable  # character n-grams are evidence, not explanations
        type_terms = _readable(self._type_model.contributions(readable, ticket_type.value), surface, n)
        priority_terms = _readable(self._priority_model.contributions(readable, priority.value), surface, n)
        type_part = f"{ticket_type.value}: " + (", ".join(type_terms) or "no single decisive term")
        priority_part = f"priority {priority.value}: " + (", ".join(priority_terms) or "no single decisive term")
        return f"{type_part}; {priority_part}"


def shrink(probabilities: Sequence[float], evidence: float, fallback: Sequence[float]) -> list[float]:
    """Mix a distribution with a fallback one: all of it at evidence 1, only the fallback at 0."""
    return [evidence * p + (1.0 - evidence) * q for p, q in zip(probabilities, fallback, strict=True)]


_STYLE_WORDS = {
    "s:shouting": "written in capitals",
    "s:repeated_punctuation": "repeated '!!' or '??'",
    "s:question": "asks a question",
}


def _surface_forms(tokens: Sequence[str]) -> dict[str, str]:
    """Stem → the word as the customer wrote it (first occurrence), for readable reasons."""
    forms: dict[str, str] = {}
    for token in tokens:
        forms.setdefault(features.stem(token), token)
    return forms


def _readable(contributions: Sequence[Contribution], surface: dict[str, str], limit: int) -> list[str]:
    terms: list[str] = []
    for c in contributions:
        text = _describe(c.feature, surface)
        if text is not None and not any(text in t or t in text for t in terms):
            terms.append(text)
        if len(terms) == limit:
            break
    return [t if t in _STYLE_WORDS.values() else f"'{t}'" for t in terms]


# Function words carry weight in the models but explain nothing to a reader.
_NOT_EXPLANATIONS = features.STOP_WORDS | frozenset(
    "any can could how no not please should what when where why will would".split()  # noqa: SIM905
)


def _describe(feature: str, surface: dict[str, str]) -> str | None:
    if feature.startswith((features.WORD_PREFIX, features.BIGRAM_PREFIX)):
        words = feature[2:].split(" ")
        if any(w in _NOT_EXPLANATIONS for w in words):
            return None
        return " ".join(_SHAPES.get(w, surface.get(w, w)) for w in words)
    return _STYLE_WORDS.get(feature)


_SHAPES = {
    features.MONEY: "<amount>",
    features.NUMBER: "<number>",
    features.YEAR: "<year>",
    features.CODE: "<code>",
    features.URL: "<link>",
    features.EMAIL: "<e-mail>",
}


@functools.cache
def load_default() -> TicketClassifier:
    """The classifier trained on the shipped training split (built once per process)."""
    return TicketClassifier.train(load_split(Split.TRAIN))
