"""The offline triage classifier: ticket text → type, priority, confidence, reasoning.

This is the public API other parts code against::

    from agent_runtime.offline.modelfile import load_default

    prediction = load_default().predict(subject, body)
    prediction.type, prediction.priority, prediction.confidence, prediction.reasoning

Two naive Bayes models (:mod:`agent_runtime.offline.naive_bayes`) — one for the type,
one for the priority — are trained on the project's labelled ticket set
(:mod:`srs_training.dataset`) by ``make model``, which ships the result as
``model/model.json.gz``; :func:`agent_runtime.offline.modelfile.load_default` loads it
(this module never imports the model file's: the file format depends on the classifier,
not the other way round). Training is a counting pass, deterministic, and takes a
fraction of a second.

Confidence is the probability of the chosen type after two corrections: a temperature
(fitted on cross-validated predictions by ``python -m srs_training.evaluate
--calibrate``) tames naive Bayes' over-confidence, and an *evidence* factor pulls the
distribution towards a fallback (every type equally likely; priorities as often as they
occur) when the text holds little known vocabulary — gibberish, "hi", a language the set
never saw — so such tickets fall below the triage threshold and go to the human queue
instead of being guessed at.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from agent_runtime.offline import features
from agent_runtime.offline.naive_bayes import Counts, NaiveBayes, NaiveBayesSettings, softmax
from srs_contracts.agent_config import Priority, TicketType

__all__ = ["ClassifierSettings", "Prediction", "TicketClassifier"]


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
        default_factory=lambda: NaiveBayesSettings(
            alpha=0.2, namespace_weights={"c:": 0.2, "s:": 0.0}, min_document_frequency=1
        )
    )
    priority_model: NaiveBayesSettings = field(
        default_factory=lambda: NaiveBayesSettings(
            alpha=0.3,
            namespace_weights={"c:": 0.0, "s:": 3.0},
            label_bias={Priority.CRITICAL.value: 6.0},
            min_document_frequency=2,
        )
    )
    #: Temperatures that turn naive Bayes log-scores into calibrated-ish probabilities.
    type_temperature: float = 5.0
    priority_temperature: float = 4.7
    #: Known content words at which the evidence factor reaches 1 - 1/e (≈ 0.63).
    evidence_scale: float = 1.5
    #: Terms quoted in ``reasoning`` per decision.
    reasoning_terms: int = 3
    #: P(type is right) from the signals; None → the temperature alone.
    confidence: ConfidenceModel | None = None


@dataclass(frozen=True, slots=True)
class Assessment:
    """What the models see in one ticket, before calibration."""

    #: Naive Bayes log-scores of the types (all features) and from words and bigrams only.
    type_scores: list[float]
    word_type_scores: list[float]
    priority_scores: list[float]
    #: Distinct content words, and those of them seen in at least two training tickets.
    known_words: int
    content_words: int
    #: 0 without known words, → 1 as more appear.
    evidence: float


#: Names of the signals a confidence model weighs, in order (see :func:`confidence_signals`).
SIGNALS: Final = ("log_odds", "margin", "words_agree", "known_words", "known_share")


def confidence_signals(a: Assessment, temperature: float) -> tuple[float, ...]:
    """Why a prediction may be wrong, as numbers: how sure the model is (log-odds of its top
    type, margin over the runner-up), whether words alone point the same way as words plus
    character n-grams (conflicting signals), and how much of the text it knows."""
    probs = softmax(a.type_scores, temperature)
    order = sorted(range(len(probs)), key=probs.__getitem__, reverse=True)
    top = probs[order[0]]
    second = probs[order[1]] if len(order) > 1 else 0.0
    clipped = min(max(top, 1e-6), 1 - 1e-6)
    words_top = max(range(len(a.word_type_scores)), key=a.word_type_scores.__getitem__)
    return (
        math.log(clipped / (1 - clipped)),
        top - second,
        1.0 if words_top == order[0] else 0.0,
        math.log1p(a.known_words),
        a.known_words / a.content_words if a.content_words else 0.0,
    )


@dataclass(frozen=True, slots=True)
class ConfidenceModel:
    """Logistic regression from :data:`SIGNALS` to the probability that the type is right.

    Fitted on predictions for tickets the model did not train on, written differently
    from the ones it did (see :mod:`srs_training.training`), so that confidence
    means "right this often" on unfamiliar text too.
    """

    weights: tuple[float, ...]
    bias: float

    def probability(self, signals: Sequence[float]) -> float:
        z = self.bias + math.fsum(w * x for w, x in zip(self.weights, signals, strict=True))
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    @classmethod
    def fit(cls, signals: Sequence[Sequence[float]], correct: Sequence[bool], l2: float = 1e-3) -> ConfidenceModel:
        """Maximum likelihood by Newton's method (a handful of parameters: exact and fast)."""
        n = len(SIGNALS) + 1
        w = [0.0] * n
        rows = [(1.0, *x) for x in signals]
        for _ in range(50):
            grad = [0.0] * n
            hess = [[0.0] * n for _ in range(n)]
            for x, y in zip(rows, correct, strict=True):
                z = math.fsum(wi * xi for wi, xi in zip(w, x, strict=True))
                p = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
                for i in range(n):
                    grad[i] += (p - float(y)) * x[i]
                    for j in range(n):
                        hess[i][j] += p * (1 - p) * x[i] * x[j]
            for i in range(n):
                grad[i] += l2 * len(rows) * w[i]
                hess[i][i] += l2 * len(rows)
            step = _solve(hess, grad)
            w = [wi - si for wi, si in zip(w, step, strict=True)]
            if max(abs(si) for si in step) < 1e-7:
                break
        return cls(tuple(round(x, 5) for x in w[1:]), round(w[0], 5))


def _solve(a: list[list[float]], b: list[float]) -> list[float]:
    """Solve a small linear system by Gaussian elimination with partial pivoting."""
    n = len(b)
    m = [[*row, b[i]] for i, row in enumerate(a)]
    for c in range(n):
        pivot = max(range(c, n), key=lambda r: abs(m[r][c]))
        m[c], m[pivot] = m[pivot], m[c]
        if abs(m[c][c]) < 1e-12:
            continue
        for r in range(n):
            if r != c:
                f = m[r][c] / m[c][c]
                m[r] = [x - f * y for x, y in zip(m[r], m[c], strict=True)]
    return [m[i][n] / m[i][i] if abs(m[i][i]) >= 1e-12 else 0.0 for i in range(n)]


class TicketClassifier:
    """Predicts type and priority of a ticket from its subject and body."""

    def __init__(
        self,
        type_model: NaiveBayes,
        priority_model: NaiveBayes,
        settings: ClassifierSettings,
        confidence_model: ConfidenceModel | None = None,
    ) -> None:
        self._type_model = type_model
        self._priority_model = priority_model
        #: Turns the signals of an assessment into P(type is right); None → temperature only.
        self.confidence_model = confidence_model
        self._types = tuple(TicketType(label) for label in type_model.labels)
        self._priorities = tuple(Priority(label) for label in priority_model.labels)
        self.settings = settings
        found = settings.feature_settings
        #: The features a person can read come from the analysis; the character n-grams are
        #: looked up by word instead (each word's n-grams as the type model's rows, cached:
        #: vocabulary repeats, tickets do not).
        self._readable_settings = dataclasses.replace(found, char_ngrams=False)
        self._char_rows = functools.lru_cache(maxsize=1 << 16)(self._char_rows_of) if found.char_ngrams else None
        #: Content words seen in at least two training tickets: "known" vocabulary.
        self._known_words = frozenset(
            f for f, n in type_model.counts.document_frequency.items() if n >= 2 and f.startswith(features.WORD_PREFIX)
        )

    def predict(self, subject: str, body: str) -> Prediction:
        """Classify one ticket. Never raises on odd text; empty text gets low confidence."""
        seen = self._see(subject, body)
        type_probs, priority_probs = self._distributions(seen.assessment)
        # Ties (only without any evidence) go to the catch-all type.
        t = max(range(len(type_probs)), key=lambda i: (type_probs[i], self._types[i] is TicketType.OTHER))
        p = max(range(len(priority_probs)), key=priority_probs.__getitem__)
        ticket_type, priority = self._types[t], self._priorities[p]
        return Prediction(
            type=ticket_type,
            priority=priority,
            confidence=round(type_probs[t], 4),
            reasoning=self._reasoning(seen, t, p),
            priority_confidence=round(priority_probs[p], 4),
        )

    def distributions(self, subject: str, body: str) -> tuple[dict[TicketType, float], dict[Priority, float]]:
        """The full probability of every type and every priority (for evaluation)."""
        type_probs, priority_probs = self._distributions(self._see(subject, body).assessment)
        return dict(zip(self._types, type_probs, strict=True)), dict(zip(self._priorities, priority_probs, strict=True))

    def assess(self, subject: str, body: str) -> Assessment:
        """Uncalibrated scores and the evidence behind them (for calibration)."""
        return self._see(subject, body).assessment

    @property
    def type_counts(self) -> Counts:
        """What the type model counted (a saved model is these counts)."""
        return self._type_model.counts

    @property
    def priority_counts(self) -> Counts:
        """What the priority model counted."""
        return self._priority_model.counts

    @property
    def types(self) -> tuple[TicketType, ...]:
        """The types this model knows (a model trained on a subset knows only those)."""
        return self._types

    @property
    def priorities(self) -> tuple[Priority, ...]:
        """The priorities this model knows."""
        return self._priorities

    def _see(self, subject: str, body: str) -> _Seen:
        analysis = features.analyse(subject, body, self._readable_settings)
        readable = analysis.readable
        content = [f for f in readable if f.startswith(features.WORD_PREFIX)]
        known = len(self._known_words.intersection(content))
        type_rows = self._type_model.ids(readable)
        priority_rows = self._priority_model.ids(readable)
        # Words, bigrams and style first; character n-grams added on top (each n-gram once).
        words = self._type_model.scores(type_rows)
        chars = self._type_model.scores(self._char_rows_in(analysis.stems), prior=False)
        assessment = Assessment(
            type_scores=[w + c for w, c in zip(words, chars, strict=True)],
            word_type_scores=words,
            # The priority model has no character n-grams (weight 0): the readable features are all it knows.
            priority_scores=self._priority_model.scores(priority_rows),
            known_words=known,
            content_words=len(content),
            evidence=1.0 - math.exp(-known / self.settings.evidence_scale),
        )
        return _Seen(analysis, type_rows, priority_rows, assessment)

    def _char_rows_in(self, stems: Sequence[str]) -> list[int]:
        """The type model's rows of the character n-grams of these words, each once."""
        if self._char_rows is None:
            return []
        return list(set(itertools.chain.from_iterable(map(self._char_rows, set(stems)))))

    def _char_rows_of(self, stem: str) -> tuple[int, ...]:
        return tuple(self._type_model.ids(features.char_ngrams(stem, self.settings.feature_settings.char_n)))

    def _distributions(self, a: Assessment) -> tuple[list[float], list[float]]:
        s = self.settings
        n = len(self._types)
        probs = softmax(a.type_scores, s.type_temperature)
        if self.confidence_model is not None and n > 1:
            # The confidence model says how likely the top type is right; the rest of the
            # mass is spread as the model spread it, so the distribution stays consistent.
            top = max(range(n), key=probs.__getitem__)
            sure = self.confidence_model.probability(confidence_signals(a, s.type_temperature))
            probs = _with_top(probs, top, sure)
        type_probs = shrink(probs, a.evidence, [1.0 / n] * n)
        # Without evidence the priority falls back to how often each priority occurs (mostly low).
        priority_probs = shrink(
            softmax(a.priority_scores, s.priority_temperature), a.evidence, self._priority_model.priors()
        )
        return type_probs, priority_probs

    def _reasoning(self, seen: _Seen, t: int, p: int) -> str:
        ticket_type, priority = self._types[t], self._priorities[p]
        if seen.assessment.evidence < 0.5:
            return "too little known vocabulary to classify reliably; best guess " + ticket_type.value
        surface = _surface_forms(seen.analysis.tokens, seen.analysis.stems)
        n = self.settings.reasoning_terms
        # Only readable features explain (character n-grams are evidence, not explanations).
        type_terms = _readable(self._type_model.favouring(seen.type_rows, t), surface, n)
        priority_terms = _readable(self._priority_model.favouring(seen.priority_rows, p), surface, n)
        type_part = f"{ticket_type.value}: " + (", ".join(type_terms) or "no single decisive term")
        priority_part = f"priority {priority.value}: " + (", ".join(priority_terms) or "no single decisive term")
        return f"{type_part}; {priority_part}"


@dataclass(frozen=True, slots=True)
class _Seen:
    """One ticket as the models saw it: its readable analysis, the rows of its readable
    features in each model, and the assessment made of them."""

    analysis: features.Analysis
    type_rows: list[int]
    priority_rows: list[int]
    assessment: Assessment


def _with_top(probs: Sequence[float], top: int, sure: float) -> list[float]:
    """``probs`` with ``probs[top]`` set to ``sure`` and the rest rescaled, keeping ``top`` the
    most likely: the rest is spread as the model spread it, flattened towards uniform as far
    as needed so that no other label overtakes it."""
    n = len(probs)
    sure = max(sure, 1.0 / n)
    rest = 1.0 - probs[top]
    others = [p for i, p in enumerate(probs) if i != top]
    uniform = 1.0 / (n - 1)
    share = max(others) / rest if rest > 0 else uniform
    limit = sure / (1.0 - sure) if sure < 1.0 else math.inf
    mix = 1.0 if share <= limit else max(0.0, (limit - uniform) / (share - uniform))
    return [
        sure if i == top else (1.0 - sure) * (mix * (p / rest if rest > 0 else uniform) + (1.0 - mix) * uniform)
        for i, p in enumerate(probs)
    ]


def shrink(probabilities: Sequence[float], evidence: float, fallback: Sequence[float]) -> list[float]:
    """Mix a distribution with a fallback one: all of it at evidence 1, only the fallback at 0."""
    return [evidence * p + (1.0 - evidence) * q for p, q in zip(probabilities, fallback, strict=True)]


_STYLE_WORDS = {
    "s:shouting": "written in capitals",
    "s:repeated_punctuation": "repeated '!!' or '??'",
    "s:question": "asks a question",
}


def _surface_forms(tokens: Sequence[str], stems: Sequence[str]) -> dict[str, str]:
    """Stem → the word as the customer wrote it (its first occurrence), for readable reasons."""
    # Built back to front, so that the first occurrence is the one that stays.
    return dict(zip(reversed(stems), reversed(tokens), strict=True))


def _readable(favouring: Sequence[tuple[str, float]], surface: dict[str, str], limit: int) -> list[str]:
    terms: list[str] = []
    for feature, _margin in favouring:
        text = _describe(feature, surface)
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
    words = _explaining_words(feature)
    if words is None:
        return _STYLE_WORDS.get(feature)
    return " ".join(_SHAPES.get(w) or surface.get(w, w) for w in words)


@functools.lru_cache(maxsize=1 << 16)
def _explaining_words(feature: str) -> tuple[str, ...] | None:
    """The stems a word or bigram feature reads as; None for one that explains nothing."""
    if not feature.startswith((features.WORD_PREFIX, features.BIGRAM_PREFIX)):
        return None
    words = tuple(feature[2:].split(" "))
    return None if any(w in _NOT_EXPLANATIONS for w in words) else words


_SHAPES = {
    features.MONEY: "<amount>",
    features.NUMBER: "<number>",
    features.YEAR: "<year>",
    features.CODE: "<code>",
    features.URL: "<link>",
    features.EMAIL: "<e-mail>",
}
