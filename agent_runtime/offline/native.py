"""The classifier's per-ticket step compiled (the ``srs-native`` package, ``native/``).

For an ASCII ticket — the common case — the token stream, the features, both models'
exact sums and (where this Python's ``sum`` adds floats in order, as 3.11's does) the type
and priority distributions are computed in one call into compiled code instead of a few
thousand Python operations; any other ticket, and a process without the compiled package, takes the Python
path of :mod:`.features` and :mod:`.classifier`, which stays the reference: both give the
same prediction, bit for bit (``tests/unit/test_offline_native.py``). Every word list,
feature name and number is handed over from the Python side here, so the compiled code
holds no second copy of any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

from agent_runtime.offline import features
from agent_runtime.offline.naive_bayes import NaiveBayes, PackedRows
from agent_runtime.textscan import NATIVE_ENV, compiled_package

#: Set to 0 to use the Python path even where the compiled one is installed (to compare).
ENV: Final = NATIVE_ENV
#: The widest lane the compiled sums hold (signed 128-bit integers).
_MAX_WIDTH: Final = 127


class Seen(Protocol):
    """One ticket as the compiled step saw it (``srs_native.Seen``)."""

    word_type_scores: list[float]
    char_type_scores: list[float]
    priority_scores: list[float]
    known_words: int
    content_words: int
    type_scores: list[float]
    #: With a calibration (:func:`calibrate`): the evidence, both distributions and the label
    #: each picks, as ``TicketClassifier._distributions`` and ``predict`` compute them; else None.
    evidence: float | None
    type_probs: list[float] | None
    priority_probs: list[float] | None
    top_type: int | None
    top_priority: int | None
    #: With a calibration and evidence ≥ 0.5: the reasoning's terms for the picked labels.
    type_terms: list[str] | None
    priority_terms: list[str] | None

    def favouring(self, model: int, label: int) -> list[int]: ...

    def surface(self, stem: str) -> str | None: ...


class Vocabulary(Protocol):
    """The classifier's readable features, as it packs them (``classifier._Vocabulary``)."""

    @property
    def names(self) -> Sequence[str]: ...
    @property
    def known(self) -> Sequence[bool]: ...
    @property
    def rows(self) -> Sequence[Sequence[float]]: ...
    @property
    def prior(self) -> Sequence[float]: ...
    @property
    def packed(self) -> PackedRows: ...
    @property
    def leads(self) -> Sequence[tuple[tuple[int, float], tuple[int, float]]]: ...


class Analyzer(Protocol):
    def see(self, folded: str, text: str) -> Seen: ...

    def calibrate(
        self,
        *,
        type_temperature: float,
        priority_temperature: float,
        evidence_scale: float,
        confidence: tuple[list[float], float] | None,
        uniform: list[float],
        priority_priors: list[float],
        is_other: list[bool],
        parts: list[list[str]],
        style_texts: list[str],
        reasoning_terms: int,
    ) -> None: ...


def sums_in_order() -> bool:
    """Whether this Python's ``sum`` of floats adds them one after another, as the compiled
    distributions do (3.11; from 3.12 on it compensates, and Python computes them)."""
    return sum([1e16, 1.0, -1e16]) == 0.0


def available() -> bool:
    """Whether the compiled step is installed (and not turned off by :data:`ENV`)."""
    return compiled_package() is not None


def analyzer(
    settings: features.FeatureSettings, vocabulary: Vocabulary, type_model: NaiveBayes, n_types: int
) -> Analyzer | None:
    """The compiled step for a classifier's tables; None when it is not installed or the
    tables' numbers do not fit its integers (then the Python path runs)."""
    srs_native = compiled_package()
    if srs_native is None:
        return None

    packed = vocabulary.packed
    chars = [(i, f) for i, f in enumerate(type_model.features) if f.startswith(features.CHAR_PREFIX)]
    type_packed = type_model.packed
    if packed.inverse is None or type_packed.inverse is None or max(packed.width, type_packed.width) > _MAX_WIDTH:
        return None
    analyzer: Analyzer = srs_native.Analyzer(
        stop_words=sorted(features.STOP_WORDS),
        contractions=[(k, v.split()) for k, v in features.CONTRACTIONS.items()],
        sentinels=list(features.SENTINELS.items()),
        acronyms=sorted(features.ACRONYMS),
        prefixes=[features.WORD_PREFIX, features.BIGRAM_PREFIX, features.CHAR_PREFIX, features.STYLE_PREFIX],
        shapes=[features.YEAR, features.NUMBER, features.CODE],
        lengths=list(features.LENGTHS),
        style_names=list(features.STYLES),
        words=settings.words,
        bigrams=settings.bigrams,
        style=settings.style,
        char_n=settings.char_n,
        vocabulary=list(vocabulary.names),
        known=vocabulary.known,
        leads=vocabulary.leads,
        readable_rows=[packed.fixed(row) for row in vocabulary.rows],
        readable_prior=packed.fixed(vocabulary.prior),
        readable_inverse=packed.inverse,
        n_types=n_types,
        chars=[f for _, f in chars] if settings.char_ngrams else None,
        char_rows=[type_packed.fixed(type_model.rows[i]) for i, _ in chars] if settings.char_ngrams else [],
        char_inverse=type_packed.inverse,
    )
    return analyzer
