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
from collections.abc import Collection, Mapping, Sequence
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

    def weight(self, feature: str) -> float:
        return self.namespace_weights.get(feature[:2], 1.0)


@dataclass(frozen=True, slots=True)
class Contribution:
    """How much one feature pushed the score of a label above the best other label."""

    feature: str
    weight: float


class NaiveBayes:
    """Multinomial naive Bayes over feature presence (binary counts)."""

    def __init__(
        self,
        labels: tuple[str, ...],
        priors: tuple[float, ...],
        label_bias: tuple[float, ...],
        log_likelihoods: dict[str, tuple[float, ...]],
        document_frequency: dict[str, int],
    ) -> None:
        self.labels = labels
        self._priors = priors
        self._log_priors = tuple(math.log(p) + b for p, b in zip(priors, label_bias, strict=True))
        # Namespace weights are already folded into these numbers.
        self._log_likelihoods = log_likelihoods
        self._document_frequency = document_frequency

    @classmethod
    def fit(
        cls, documents: Sequence[Collection[str]], labels: Sequence[str], settings: NaiveBayesSettings
    ) -> NaiveBayes:
        """Count features per label and smooth with ``settings.alpha`` (deterministic)."""
        if len(documents) != len(labels) or not documents:
            raise ValueError("need as many labels as documents, and at least one of each")
        label_set = tuple(sorted(set(labels)))
        index = {label: i for i, label in enumerate(label_set)}
        n_labels = len(label_set)
        counts: dict[str, list[int]] = {}
        totals = [0] * n_labels
        priors = [0] * n_labels
        df: dict[str, int] = {}
        for features, label in zip(documents, labels, strict=True):
            i = index[label]
            priors[i] += 1
            for feature in features:
                if settings.weight(feature) == 0.0:
                    continue
                row = counts.get(feature)
                if row is None:
                    row = counts[feature] = [0] * n_labels
                row[i] += 1
                totals[i] += 1
                df[feature] = df.get(feature, 0) + 1
        vocabulary = len(counts)
        alpha = settings.alpha
        denominators = [math.log(total + alpha * vocabulary) for total in totals]
        likelihoods = {
            feature: tuple(
                settings.weight(feature) * (math.log(row[i] + alpha) - denominators[i]) for i in range(n_labels)
            )
            for feature, row in sorted(counts.items())
        }
        frequencies = tuple(p / len(labels) for p in priors)
        bias = tuple(settings.label_bias.get(label, 0.0) for label in label_set)
        return cls(label_set, frequencies, bias, likelihoods, df)

    def log_scores(self, features: Collection[str]) -> list[float]:
        """Unnormalised log-posterior of each label (order of :attr:`labels`)."""
        table = self._log_likelihoods
        rows = [row for row in map(table.get, features) if row is not None]
        rows.append(self._log_priors)
        return [math.fsum(column) for column in zip(*rows, strict=True)]

    def priors(self) -> list[float]:
        """How often each label occurred in training (order of :attr:`labels`)."""
        return list(self._priors)

    def document_frequency(self, feature: str) -> int:
        """In how many training documents a feature occurred (0 when unknown)."""
        return self._document_frequency.get(feature, 0)

    def contributions(self, features: Collection[str], label: str) -> list[Contribution]:
        """Features that favour ``label`` over the strongest other label, strongest first."""
        i = self.labels.index(label)
        out = []
        for feature in features:
            row = self._log_likelihoods.get(feature)
            if row is None:
                continue
            margin = row[i] - max(row[:i] + row[i + 1 :])
            if margin > 0:
                out.append(Contribution(feature, margin))
        out.sort(key=lambda c: (-c.weight, c.feature))
        return out


def softmax(scores: Sequence[float], temperature: float = 1.0) -> list[float]:
    """Scores → probabilities; a temperature above 1 flattens over-confident scores."""
    top = max(scores)
    exps = [math.exp((s - top) / temperature) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]
