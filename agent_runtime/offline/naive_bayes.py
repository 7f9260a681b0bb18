"""A small multinomial naive Bayes text model over sets of string features.

Training is one counting pass (fast enough to run when the runtime starts); scoring is a
dictionary lookup per feature. Features belong to namespaces (their two-character
prefix, see :mod:`agent_runtime.offline.features`); each namespace has a weight, so
that hundreds of correlated character n-grams do not outvote a handful of words, and a
namespace with weight 0 is left out of the model altogether.

Scores are log-likelihoods, not probabilities: naive Bayes is famously over-confident,
so callers turn them into a distribution with a temperature (see
:func:`softmax`) chosen on cross-validated predictions.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NaiveBayesSettings:
    """Smoothing and per-namespace weights of one model."""

    alpha: float = 0.1
    #: Weight of each feature namespace ("w:", "b:", "c:", "s:"); missing → 1.0, 0 → unused.
    namespace_weights: Mapping[str, float] = field(default_factory=dict)
    #: Added to a label's log-prior: above 0 favours a label that is rare in the data but
    #: costly to miss (a critical ticket taken for a high one).
    label_bias: Mapping[str, float] = field(default_factory=dict)
    #: Features in fewer training documents than this are left out of the model.
    min_document_frequency: int = 1

    def weight(self, feature: str) -> float:
        return self.namespace_weights.get(feature[:2], 1.0)


@dataclass(frozen=True, slots=True)
class Counts:
    """What training counted: weighted documents per label and per (feature, label)."""

    labels: tuple[str, ...]
    priors: tuple[float, ...]
    features: dict[str, tuple[float, ...]]
    #: In how many training documents each feature occurred (unweighted).
    document_frequency: dict[str, int]

    @classmethod
    def of(
        cls,
        documents: Sequence[Collection[str]],
        labels: Sequence[str],
        settings: NaiveBayesSettings,
        weights: Sequence[float] | None = None,
    ) -> Counts:
        """Count ``documents`` (sets of features) with their ``labels``."""
        if len(documents) != len(labels) or not documents:
            raise ValueError("need as many labels as documents, and at least one of each")
        weights = weights if weights is not None else [1.0] * len(documents)
        label_set = tuple(sorted(set(labels)))
        index = {label: i for i, label in enumerate(label_set)}
        rows: dict[str, list[float]] = {}
        priors = [0.0] * len(label_set)
        df: dict[str, int] = {}
        for features, label, w in zip(documents, labels, weights, strict=True):
            i = index[label]
            priors[i] += w
            for feature in features:
                if settings.weight(feature) == 0.0:
                    continue
                row = rows.get(feature)
                if row is None:
                    row = rows[feature] = [0.0] * len(label_set)
                row[i] += w
                df[feature] = df.get(feature, 0) + 1
        keep = sorted(f for f, n in df.items() if n >= settings.min_document_frequency)
        # Rounded once here, so that a saved and reloaded model is exactly the trained one.
        return cls(
            label_set,
            tuple(round(p, 4) for p in priors),
            {f: tuple(round(c, 4) for c in rows[f]) for f in keep},
            {f: df[f] for f in keep},
        )

    def to_json(self) -> dict[str, object]:
        """A JSON-ready form: ``{"labels", "priors", "features": {feature: [df, count per label]}}``."""
        return {
            "labels": list(self.labels),
            "priors": list(self.priors),
            "features": {f: [self.document_frequency[f], *row] for f, row in self.features.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Counts:
        """The inverse of :meth:`to_json`; ``ValueError`` when the data is not counts."""
        try:
            labels = tuple(str(x) for x in data["labels"])  # type: ignore[attr-defined]
            priors = tuple(float(x) for x in data["priors"])  # type: ignore[attr-defined]
            raw = data["features"]
            if not isinstance(raw, Mapping) or len(priors) != len(labels):
                raise ValueError("features must be an object and priors match labels")
            features: dict[str, tuple[float, ...]] = {}
            df: dict[str, int] = {}
            for f, row in raw.items():
                if not isinstance(row, list) or len(row) != len(labels) + 1:
                    raise ValueError(f"feature {f!r}: expected [df, count per label]")
                df[str(f)] = int(row[0])
                features[str(f)] = tuple(float(x) for x in row[1:])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not naive Bayes counts: {exc}") from exc
        return cls(labels, priors, features, df)


class NaiveBayes:
    """Multinomial naive Bayes over feature presence (binary counts).

    The model *is* its counts (:class:`Counts`): log-likelihoods are derived from them
    and the settings when it is built, so a saved model is the counts and nothing else.
    """

    def __init__(self, counts: Counts, settings: NaiveBayesSettings) -> None:
        self.labels = counts.labels
        self.counts = counts
        n_labels = len(counts.labels)
        total_prior = sum(counts.priors)
        self._priors = tuple(p / total_prior for p in counts.priors)
        bias = tuple(settings.label_bias.get(label, 0.0) for label in counts.labels)
        self._log_priors = tuple(math.log(p) + b for p, b in zip(self._priors, bias, strict=True))
        totals = [math.fsum(row[i] for row in counts.features.values()) for i in range(n_labels)]
        alpha = settings.alpha
        denominators = [math.log(total + alpha * len(counts.features)) for total in totals]
        # Namespace weights are folded into these numbers.
        log_likelihoods = {
            feature: tuple(
                settings.weight(feature) * (math.log(row[i] + alpha) - denominators[i]) for i in range(n_labels)
            )
            for feature, row in counts.features.items()
            if settings.weight(feature) != 0.0
        }
        #: Each weighted feature's row number, and the rows (a feature's numbers side by side, so
        #: scoring touches one place in memory per feature).
        self._ids = {feature: i for i, feature in enumerate(log_likelihoods)}
        self._names = tuple(log_likelihoods)
        self._rows = tuple(log_likelihoods.values())
        self._no_prior = (0.0,) * n_labels
        #: Row -> (the label it favours, by how much), for explanations.
        self._leads = tuple(map(_lead, self._rows))

    @classmethod
    def fit(
        cls,
        documents: Sequence[Collection[str]],
        labels: Sequence[str],
        settings: NaiveBayesSettings,
        weights: Sequence[float] | None = None,
    ) -> NaiveBayes:
        """Count features per label and smooth with ``settings.alpha`` (deterministic).

        ``weights`` (default 1 each) lets a document count for less than a whole one — the
        generated tickets, which are many but less varied than hand-written ones. Features
        seen in fewer than ``settings.min_document_frequency`` documents are dropped: they
        are noise, and they make a saved model big.
        """
        return cls(Counts.of(documents, labels, settings, weights), settings)

    def ids(self, features: Iterable[str]) -> list[int]:
        """The rows of the features this model knows (unknown and unweighted ones left out)."""
        return [i for i in map(self._ids.get, features) if i is not None]

    def scores(self, ids: Sequence[int], prior: bool = True) -> list[float]:
        """Unnormalised log-posterior of each label (order of :attr:`labels`) of the features
        with these rows (:meth:`ids`, each once); without the prior, the features' part alone
        (to add to the scores of another feature set)."""
        rows = [*map(self._rows.__getitem__, ids), self._log_priors if prior else self._no_prior]
        # fsum: exact, so the result does not depend on the (hash-seeded) order of a set.
        return [math.fsum(column) for column in zip(*rows, strict=True)]

    def priors(self) -> list[float]:
        """How often each label occurred in training (order of :attr:`labels`)."""
        return list(self._priors)

    def favouring(self, ids: Iterable[int], label: int) -> list[tuple[str, float]]:
        """(feature, margin) of the rows among ``ids`` that favour label number ``label`` over
        the strongest other label, strongest first (ties by name)."""
        leads, names = self._leads, self._names
        found = sorted([(-leads[i][1], names[i]) for i in ids if leads[i][0] == label])
        return [(name, -negative) for negative, name in found]


def _lead(row: Sequence[float]) -> tuple[int, float]:
    """The one label a row of log-likelihoods favours over every other, and by how much;
    (-1, 0.0) for a row without a single strongest label. Only the strongest label can have
    a positive margin, so this is all :meth:`NaiveBayes.favouring` needs."""
    if len(row) < 2:
        return (-1, 0.0)
    *_, second, first = sorted(row)
    margin = first - second
    return (row.index(first), margin) if margin > 0 else (-1, 0.0)


def softmax(scores: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Scores → probabilities; a temperature above 1 flattens over-confident scores."""
    top = max(scores)
    exps = [math.exp((s - top) / temperature) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]
