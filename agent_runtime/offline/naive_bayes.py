"""A small multinomial naive Bayes text model over sets of string features.

Training is one counting pass (fast enough to run when the runtime starts); scoring is a
dictionary lookup per feature. Features belong to namespaces (their two-character
prefix, see :mod:`agent_runtime.offline.features`); each namespace has a weight, so
that hundreds of correlated character n-grams do not outvote a handful of words, and a
namespace with weight 0 is left out of the model altogether.

Scores are log-likelihoods, not probabilities: naive Bayes is famously over-confident,
so callers turn them into a distribution with a temperature (see
:func:`softmax`) chosen on cross-validated predictions.

Scoring adds up one row of numbers per feature. It must be exact — a ticket's features
are a set, whose order changes with the process's hash seed, and a float sum in another
order can round differently — and it runs for every ticket, so each row is also kept as
one integer (:class:`PackedRows`): exact fixed point, one integer addition per feature.
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
        #: The rows and the log-priors again, as packed integers (the prior last).
        self._packed = PackedRows([*self._rows, self._log_priors], capacity=len(self._rows) + 1)
        self._packed_rows = self._packed.rows[:-1]
        self._packed_prior = self._packed.rows[-1]
        #: Row -> (the label it favours, by how much), for explanations.
        self._leads = tuple(map(lead, self._rows))

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

    def scores(self, ids: Collection[int], prior: bool = True) -> list[float]:
        """Unnormalised log-posterior of each label (order of :attr:`labels`) of the features
        with these rows (:meth:`ids`, each once); without the prior, the features' part alone
        (to add to the scores of another feature set).

        Each label's score is the exact sum of its numbers, rounded once (what ``math.fsum``
        returns), so it does not depend on the (hash-seeded) order of a set.
        """
        if len(ids) >= self._packed.capacity:
            # Only with rows repeated: more terms than the packed lanes have room for.
            rows = [*map(self._rows.__getitem__, ids), self._log_priors if prior else (0.0,) * len(self.labels)]
            return [math.fsum(column) for column in zip(*rows, strict=True)]
        return self._packed.unpack(sum(map(self._packed_rows.__getitem__, ids), self._packed_prior if prior else 0))

    def row(self, feature: str) -> tuple[float, ...] | None:
        """The feature's weighted log-likelihood under each label (order of :attr:`labels`);
        None for a feature the model does not use."""
        i = self._ids.get(feature)
        return None if i is None else self._rows[i]

    @property
    def rows(self) -> tuple[tuple[float, ...], ...]:
        """Every used feature's weighted log-likelihoods (order of :attr:`features`)."""
        return self._rows

    @property
    def packed(self) -> PackedRows:
        """The rows and, last, the log-priors, packed for exact sums."""
        return self._packed

    @property
    def features(self) -> tuple[str, ...]:
        """The features the model uses (weighted ones), in row order."""
        return self._names

    @property
    def log_priors(self) -> tuple[float, ...]:
        """Each label's log-prior, its bias included: what :meth:`scores` starts from."""
        return self._log_priors

    def priors(self) -> list[float]:
        """How often each label occurred in training (order of :attr:`labels`)."""
        return list(self._priors)

    def favouring(self, ids: Iterable[int], label: int) -> list[tuple[str, float]]:
        """(feature, margin) of the rows among ``ids`` that favour label number ``label`` over
        the strongest other label, strongest first (ties by name)."""
        leads, names = self._leads, self._names
        found = sorted([(-leads[i][1], names[i]) for i in ids if leads[i][0] == label])
        return [(name, -negative) for negative, name in found]


class PackedRows:
    """Rows of floats, each packed into one integer, so that summing rows is summing integers.

    Fixed point, exact: a float is an integer times a power of two, so with ``point`` large
    enough for the finest of them (53 bits after the point for the shipped models, whose
    numbers lie between 0.8 and 30 in magnitude), ``value * 2**point`` is an integer for
    every value of the table. A row's integers are laid side by side in lanes of ``width``
    bits, label ``i`` in bits ``width*i`` to ``width*(i+1)``, as a signed sum
    ``sum(x_i << width*i)``. Adding packed rows adds every lane at once, and a lane never
    carries into its neighbour: a sum of at most ``capacity`` rows keeps each lane's total
    below ``capacity * max|x| < 2**(width - 1)`` in magnitude, the bound ``width`` is chosen
    for (74 bits for the shipped type model: 57-bit values, 45,268 terms at most).
    :meth:`unpack` adds ``2**(width - 1)`` to every lane, so that each lies in ``[0, 2**width)``
    and reads with a shift and a mask, and scales each exact lane total by ``2**-point``
    with one rounding (``float()`` of an integer rounds correctly, and multiplying by a power
    of two is exact while the result stays a normal float), so the result is exactly what
    ``math.fsum`` returns for the same numbers, in any order.
    """

    __slots__ = ("_bias", "_half", "_inverse", "_mask", "_shifts", "_unit", "capacity", "point", "rows", "width")

    def __init__(self, rows: Sequence[Sequence[float]], capacity: int) -> None:
        """``rows`` (of one length; their values finite); a sum may hold at most ``capacity`` of them."""
        values = {v for row in rows for v in row}
        if not all(map(math.isfinite, values)):
            raise ValueError("only finite numbers can be packed")
        smallest = min((abs(v) for v in values if v), default=1.0)
        # v = m * 2**e with a 53-bit m: v * 2**(53 - e) is an integer, and finer v have a lower e.
        point = max(0, 53 - math.frexp(smallest)[1])
        fixed = {v: _fixed_point(v, point) for v in values}
        largest = max(map(abs, fixed.values()), default=0)
        width = (largest * max(capacity, 1)).bit_length() + 1
        n = len(rows[0]) if rows else 0
        self.capacity = capacity
        #: A value ``v`` is the integer ``v * 2**point`` (:meth:`fixed`); a lane holds ``width`` bits.
        self.point = point
        self.width = width
        self._shifts = tuple(range(0, width * n, width))
        self._half = 1 << (width - 1)
        self._mask = (1 << width) - 1
        self._bias = sum(self._half << s for s in self._shifts)
        self._unit = 1 << point
        # float(lane) * 2**-point is the correctly rounded lane / 2**point (and quicker to get)
        # as long as neither overflows nor leaves the normal range; else the division.
        self._inverse = math.ldexp(1.0, -point) if point <= 1022 and width <= 1000 else None
        packed: dict[tuple[float, ...], int] = {}  # many rows are equal: one integer each
        out: list[int] = []
        for row in rows:
            key = tuple(row)
            p = packed.get(key)
            if p is None:
                p = packed[key] = sum(fixed[v] << s for v, s in zip(key, self._shifts, strict=True))
            out.append(p)
        #: Each row as one integer, in the order given (a list: ``list.__getitem__`` maps faster
        #: than a tuple's).
        self.rows: list[int] = out

    def fixed(self, row: Sequence[float]) -> list[int]:
        """A row of values of the table as the exact integers its lanes hold."""
        return [_fixed_point(v, self.point) for v in row]

    @property
    def inverse(self) -> float | None:
        """``2**-point`` when a lane's total times it is its nearest float; None when not."""
        return self._inverse

    def unpack(self, total: int) -> list[float]:
        """Each lane of a sum of at most :attr:`capacity` packed rows, as the nearest float."""
        total += self._bias
        mask, half, inverse = self._mask, self._half, self._inverse
        if inverse is not None:
            return [float(((total >> s) & mask) - half) * inverse for s in self._shifts]
        unit = self._unit
        return [(((total >> s) & mask) - half) / unit for s in self._shifts]


def _fixed_point(value: float, point: int) -> int:
    """``value * 2**point``, exactly (``value`` a multiple of ``2**-point``)."""
    numerator, denominator = value.as_integer_ratio()  # the denominator is a power of two
    return numerator << (point - denominator.bit_length() + 1)


def lead(row: Sequence[float]) -> tuple[int, float]:
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
