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
import operator
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from agent_runtime.offline import features, native
from agent_runtime.offline.naive_bayes import Counts, NaiveBayes, NaiveBayesSettings, PackedRows, lead, softmax
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


def confidence_signals(a: Assessment, temperature: float, probs: Sequence[float] | None = None) -> tuple[float, ...]:
    """Why a prediction may be wrong, as numbers: how sure the model is (log-odds of its top
    type, margin over the runner-up), whether words alone point the same way as words plus
    character n-grams (conflicting signals), and how much of the text it knows.

    ``probs``: ``softmax(a.type_scores, temperature)``, when the caller has it already."""
    if probs is None:
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
        if len(signals) != len(self.weights):
            raise ValueError(f"{len(signals)} signals for {len(self.weights)} weights")
        z = self.bias + math.fsum(map(operator.mul, self.weights, signals))
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
        self._confidence_model = confidence_model
        self._types = tuple(TicketType(label) for label in type_model.labels)
        self._priorities = tuple(Priority(label) for label in priority_model.labels)
        #: Per type: is it the catch-all (which wins ties); every type equally likely; how often
        #: each priority occurs (the fallbacks of :meth:`_distributions`).
        self._is_other = tuple(t is TicketType.OTHER for t in self._types)
        self._uniform = [1.0 / len(self._types)] * len(self._types)
        self._priority_priors = priority_model.priors()
        #: The labels' wire names (an enum's ``.value`` is a Python-level property: slow, per ticket).
        self._type_names = tuple(t.value for t in self._types)
        self._priority_names = tuple(p.value for p in self._priorities)
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
        self._vocabulary = _Vocabulary(type_model, priority_model, self._known_words)
        #: The per-ticket step compiled, for ASCII tickets (None: not installed; Python for all).
        self._native = native.analyzer(found, self._vocabulary, type_model, len(self._types))
        self._calibrate()

    @property
    def confidence_model(self) -> ConfidenceModel | None:
        """Turns the signals of an assessment into P(type is right); None → temperature only."""
        return self._confidence_model

    @confidence_model.setter
    def confidence_model(self, model: ConfidenceModel | None) -> None:
        self._confidence_model = model
        self._calibrate()

    def _calibrate(self) -> None:
        """Hand the compiled step what :meth:`_distributions` needs, so that it computes the
        distributions too (only where its sums are the running Python's)."""
        if self._native is None or not native.sums_in_order():
            return
        s, model = self.settings, self._confidence_model
        self._native.calibrate(
            type_temperature=s.type_temperature,
            priority_temperature=s.priority_temperature,
            evidence_scale=s.evidence_scale,
            confidence=(list(model.weights), model.bias) if model is not None else None,
            uniform=list(self._uniform),
            priority_priors=list(self._priority_priors),
            is_other=list(self._is_other),
            parts=[list(parts) for parts in self._vocabulary.parts],
            style_texts=sorted(_STYLE_TEXTS),
            reasoning_terms=s.reasoning_terms,
        )

    @property
    def compiled(self) -> bool:
        """Whether ASCII tickets take the compiled per-ticket step (:mod:`.native`)."""
        return self._native is not None

    def predict(self, subject: str, body: str) -> Prediction:
        """Classify one ticket. Never raises on odd text; empty text gets low confidence."""
        seen = self._see(subject, body)
        type_probs, priority_probs, t, p = self._decided(seen)
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
        type_probs, priority_probs, _t, _p = self._decided(self._see(subject, body))
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

    def _see(self, subject: str, body: str) -> _Seen | _NativeSeen:
        if self._native is not None and (ascii_ticket := features.ascii_ticket(subject, body)) is not None:
            return _NativeSeen(self._native.see(*ascii_ticket), self._vocabulary.parts, self.settings.evidence_scale)
        analysis = features.analyse(subject, body, self._readable_settings)
        # Words, bigrams and style first (both models at once); character n-grams added on top
        # (each n-gram once).
        words, priority_scores, known, entries = self._vocabulary.see(analysis.readable)
        chars = self._type_model.scores(self._char_rows_in(analysis.stems), prior=False)
        assessment = Assessment(
            type_scores=[w + c for w, c in zip(words, chars, strict=True)],
            word_type_scores=words,
            # The priority model has no character n-grams (weight 0): the readable features are all it knows.
            priority_scores=priority_scores,
            known_words=known,
            content_words=analysis.content_words,
            evidence=_evidence(known, self.settings.evidence_scale),
        )
        return _Seen(analysis, entries, assessment)

    def _char_rows_in(self, stems: Sequence[str]) -> set[int]:
        """The type model's rows of the character n-grams of these words, each once."""
        if self._char_rows is None:
            return set()
        return set(itertools.chain.from_iterable(map(self._char_rows, set(stems))))

    def _char_rows_of(self, stem: str) -> tuple[int, ...]:
        return tuple(self._type_model.ids(features.char_ngrams(stem, self.settings.feature_settings.char_n)))

    def _decided(self, seen: _Seen | _NativeSeen) -> tuple[list[float], list[float], int, int]:
        """Both distributions and the label each picks: the compiled step's, where it computed
        them (operation for operation), else :meth:`_distributions`."""
        compiled = seen.compiled if isinstance(seen, _NativeSeen) else None
        if (
            compiled is not None
            and (type_probs := compiled.type_probs) is not None
            and (priority_probs := compiled.priority_probs) is not None
            and (t := compiled.top_type) is not None
            and (p := compiled.top_priority) is not None
        ):
            return type_probs, priority_probs, t, p
        type_probs, priority_probs = self._distributions(seen.assessment)
        # Ties (only without any evidence) go to the catch-all type.
        is_other = self._is_other
        t = max(range(len(type_probs)), key=lambda i: (type_probs[i], is_other[i]))
        p = max(range(len(priority_probs)), key=priority_probs.__getitem__)
        return type_probs, priority_probs, t, p

    def _distributions(self, a: Assessment) -> tuple[list[float], list[float]]:
        s = self.settings
        n = len(self._types)
        probs = softmax(a.type_scores, s.type_temperature)
        if self.confidence_model is not None and n > 1:
            # The confidence model says how likely the top type is right; the rest of the
            # mass is spread as the model spread it, so the distribution stays consistent.
            top = max(range(n), key=probs.__getitem__)
            sure = self.confidence_model.probability(confidence_signals(a, s.type_temperature, probs))
            probs = _with_top(probs, top, sure)
        type_probs = shrink(probs, a.evidence, self._uniform)
        # Without evidence the priority falls back to how often each priority occurs (mostly low).
        priority_probs = shrink(softmax(a.priority_scores, s.priority_temperature), a.evidence, self._priority_priors)
        return type_probs, priority_probs

    def _reasoning(self, seen: _Seen | _NativeSeen, t: int, p: int) -> str:
        ticket_type, priority = self._type_names[t], self._priority_names[p]
        if seen.evidence < 0.5:
            return "too little known vocabulary to classify reliably; best guess " + ticket_type
        compiled = seen.compiled if isinstance(seen, _NativeSeen) else None
        if (
            compiled is not None
            and compiled.top_type == t
            and compiled.top_priority == p
            and (type_terms := compiled.type_terms) is not None
            and (priority_terms := compiled.priority_terms) is not None
        ):
            pass  # the compiled step picked them as :func:`_readable` does
        else:
            surface = seen.surface()
            n = self.settings.reasoning_terms
            # Only readable features explain (character n-grams are evidence, not explanations).
            type_terms = _readable(seen.favouring(0, t), surface, n)
            priority_terms = _readable(seen.favouring(1, p), surface, n)
        type_part = f"{ticket_type}: " + (", ".join(type_terms) or "no single decisive term")
        priority_part = f"priority {priority}: " + (", ".join(priority_terms) or "no single decisive term")
        return f"{type_part}; {priority_part}"


@dataclass(frozen=True, slots=True)
class _Seen:
    """One ticket as the models saw it: its readable analysis, the vocabulary's entries of its
    readable features, and the assessment made of them."""

    analysis: features.Analysis
    entries: list[_Entry]
    assessment: Assessment

    @property
    def evidence(self) -> float:
        return self.assessment.evidence

    def favouring(self, model: int, label: int) -> Iterable[tuple[str, ...]]:
        """How the features favouring label ``label`` of model ``model`` read, strongest first."""
        return _Vocabulary.favouring(self.entries, model, label)

    def surface(self) -> Callable[[str], str]:
        """Stem → the word as the customer wrote it (the stem itself when none has it)."""
        forms = _surface_forms(self.analysis.tokens, self.analysis.stems)
        return lambda stem: forms.get(stem, stem)


class _NativeSeen:
    """The same, seen by the compiled step (:mod:`.native`); its assessment is built when asked
    for (a calibrated compiled step has computed what ``predict`` needs from it)."""

    __slots__ = ("_assessment", "_evidence_scale", "compiled", "parts")

    def __init__(self, compiled: native.Seen, parts: Sequence[tuple[str, ...]], evidence_scale: float) -> None:
        self.compiled = compiled
        #: How each vocabulary entry reads in a reasoning.
        self.parts = parts
        self._evidence_scale = evidence_scale
        self._assessment: Assessment | None = None

    @property
    def evidence(self) -> float:
        evidence = self.compiled.evidence
        return self.assessment.evidence if evidence is None else evidence

    @property
    def assessment(self) -> Assessment:
        if self._assessment is None:
            compiled = self.compiled
            known, evidence = compiled.known_words, compiled.evidence
            self._assessment = Assessment(
                type_scores=compiled.type_scores,
                word_type_scores=compiled.word_type_scores,
                priority_scores=compiled.priority_scores,
                known_words=known,
                content_words=compiled.content_words,
                evidence=_evidence(known, self._evidence_scale) if evidence is None else evidence,
            )
        return self._assessment

    def favouring(self, model: int, label: int) -> Iterable[tuple[str, ...]]:
        return map(self.parts.__getitem__, self.compiled.favouring(model, label))

    def surface(self) -> Callable[[str], str]:
        seen = self.compiled
        return lambda stem: seen.surface(stem) or stem


#: What the vocabulary knows of one feature: its packed row, then per model (type, priority)
#: the label it favours over every other (-1: none, or it explains nothing, see
#: :func:`_parts`) and its place among a reasoning's terms (minus its margin, its name, how it
#: reads: strongest first, ties by name).
_Entry = tuple[int, int, int, tuple[float, str, tuple[str, ...]], tuple[float, str, tuple[str, ...]]]
_PACKED: Final = operator.itemgetter(0)
_LABEL: Final = (operator.itemgetter(1), operator.itemgetter(2))
_KEY: Final = (operator.itemgetter(3), operator.itemgetter(4))
_NO_KEY: Final = (0.0, "", ())


class _Vocabulary:
    """The readable features (words, bigrams, style) of both models, looked up once per ticket
    for both, and for the reasoning.

    Each has one packed row (:class:`PackedRows`) with the type model's numbers and the
    priority model's side by side (0 where a model does not use the feature), and a last
    lane that is 1 for a known word: one sum per ticket gives the type scores of the
    readable features, the priority scores, each exactly what that model's own
    :meth:`NaiveBayes.scores` gives (the extra zeros change no exact sum), and how many
    known words the ticket holds. Character n-grams are left out: they are looked up by
    word, in the type model (see :meth:`TicketClassifier._char_rows_in`). What the reasoning
    needs of a feature is in the same entry, so that a ticket's features are looked up in
    one big table once.
    """

    def __init__(self, type_model: NaiveBayes, priority_model: NaiveBayes, known_words: Collection[str]) -> None:
        names = tuple(
            f
            for f in dict.fromkeys([*type_model.features, *priority_model.features, *sorted(known_words)])
            if not f.startswith(features.CHAR_PREFIX)
        )
        no_type, no_priority = (0.0,) * len(type_model.labels), (0.0,) * len(priority_model.labels)
        type_rows = [type_model.row(f) or no_type for f in names]
        priority_rows = [priority_model.row(f) or no_priority for f in names]
        known = frozenset(known_words)
        #: The features, in row order; whether each is a known word; their rows and the prior's
        #: (type labels, priority labels, 1 for a known word).
        self.names = names
        self.known = [f in known for f in names]
        self.rows = [t + p + (1.0 if k else 0.0,) for t, p, k in zip(type_rows, priority_rows, self.known, strict=True)]
        self.prior = (*type_model.log_priors, *priority_model.log_priors, 0.0)
        # A ticket's readable features are a set: each feature once, plus the prior.
        packed = PackedRows([*self.rows, self.prior], capacity=len(names) + 1)
        self.packed = packed
        self._prior = packed.rows[-1]
        self._split = len(type_model.labels)
        type_leads = list(map(_lead_of, type_rows, names))
        priority_leads = list(map(_lead_of, priority_rows, names))
        self._entries: dict[str, _Entry] = {
            name: (row, t, p, t_key, p_key)
            for name, row, (t, t_key), (p, p_key) in zip(
                names, packed.rows[:-1], type_leads, priority_leads, strict=True
            )
        }
        #: Per feature (row order), per model (type, priority): the label it favours in a
        #: reasoning (-1: none) and by how much; and how it reads there (:func:`_parts`).
        self.leads = [
            ((t, -t_key[0]), (p, -p_key[0])) for (t, t_key), (p, p_key) in zip(type_leads, priority_leads, strict=True)
        ]
        self.parts = tuple(_parts(name) or () for name in names)

    def see(self, readable: Iterable[str]) -> tuple[list[float], list[float], int, list[_Entry]]:
        """The type model's scores of a ticket's readable features (each once: a set; prior
        included), the priority model's, how many of them are known words, and their entries."""
        entries = list(filter(None, map(self._entries.get, readable)))
        # Each feature once: at most one packed row per feature, within the lanes' capacity.
        sums = self.packed.unpack(sum(map(_PACKED, entries), self._prior))
        return sums[: self._split], sums[self._split : -1], int(sums[-1]), entries

    @staticmethod
    def favouring(entries: Sequence[_Entry], model: int, label: int) -> list[tuple[str, ...]]:
        """How the features of these entries that favour label number ``label`` of model
        ``model`` (0: type, 1: priority) over its strongest other label read (:func:`_parts`),
        strongest first (ties by name)."""
        found = itertools.compress(entries, map(operator.eq, map(_LABEL[model], entries), itertools.repeat(label)))
        return [parts for _, _, parts in sorted(map(_KEY[model], found))]


def _lead_of(row: Sequence[float], name: str) -> tuple[int, tuple[float, str, tuple[str, ...]]]:
    """The label a feature's row favours, for the reasoning, and its key there (see ``_Entry``)."""
    label, margin = lead(row)
    parts = _parts(name)
    if label < 0 or parts is None:
        return -1, _NO_KEY
    return label, (-margin, name, parts)


def _evidence(known_words: int, scale: float) -> float:
    """How much a ticket's known words let the models say: 0 without any, → 1 as more appear."""
    return 1.0 - math.exp(-known_words / scale)


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

_STYLE_TEXTS = frozenset(_STYLE_WORDS.values())


def _surface_forms(tokens: Sequence[str], stems: Sequence[str]) -> dict[str, str]:
    """Stem → the word as the customer wrote it (its first occurrence), for readable reasons."""
    # Built back to front, so that the first occurrence is the one that stays.
    return dict(zip(reversed(stems), reversed(tokens), strict=True))


def _readable(favouring: Iterable[tuple[str, ...]], surface: Callable[[str], str], limit: int) -> list[str]:
    terms: list[str] = []
    for parts in favouring:
        text = " ".join(map(surface, parts))
        for t in terms:
            if text in t or t in text:
                break
        else:
            terms.append(text)
            if len(terms) == limit:
                break
    return [t if t in _STYLE_TEXTS else f"'{t}'" for t in terms]


# Function words carry weight in the models but explain nothing to a reader.
_NOT_EXPLANATIONS = features.STOP_WORDS | frozenset(
    "any can could how no not please should what when where why will would".split()  # noqa: SIM905
)


def _parts(feature: str) -> tuple[str, ...] | None:
    """How a feature reads, to be put in a reasoning: its words, each a stem to show as the
    customer wrote it (the stem itself when the ticket has no such token) or a fixed text
    (a shape's, a style's, which no stem equals); None for a feature that explains nothing."""
    if not feature.startswith((features.WORD_PREFIX, features.BIGRAM_PREFIX)):
        style = _STYLE_WORDS.get(feature)
        return None if style is None else (style,)
    words = feature[2:].split(" ")
    return None if any(w in _NOT_EXPLANATIONS for w in words) else tuple(_SHAPES.get(w, w) for w in words)


_SHAPES = {
    features.MONEY: "<amount>",
    features.NUMBER: "<number>",
    features.YEAR: "<year>",
    features.CODE: "<code>",
    features.URL: "<link>",
    features.EMAIL: "<e-mail>",
}
