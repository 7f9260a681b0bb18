"""The offline classifier's scores are exact sums: packed fixed-point integers
(:class:`~agent_runtime.offline.naive_bayes.PackedRows`) give what ``math.fsum`` gives
over the float rows, and the shipped model predicts what it predicted before they did.

The sample tickets' predictions are pinned in ``tests/unit/golden/``; after an intended
change (``make model``, a new feature), regenerate them with ``SRS_UPDATE_GOLDEN=1 pytest
tests/unit`` and review the diff.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from agent_runtime.offline import features
from agent_runtime.offline.classifier import Assessment, TicketClassifier
from agent_runtime.offline.modelfile import load_default
from agent_runtime.offline.naive_bayes import NaiveBayes, PackedRows
from srs import publish
from srs_training import generate
from srs_training.dataset import Split, load_split

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden" / "offline-sample-predictions.json"


@pytest.fixture(scope="module")
def classifier() -> TicketClassifier:
    return load_default()


def _texts() -> list[tuple[str, str]]:
    """Tickets of every kind the model meets: samples, held-out, generated, odd ones."""
    out = [(t["subject"], t["body"]) for t in publish.sample_tickets()]
    out += [(t.subject, t.body) for t in load_split(Split.HELDOUT)]
    out += [(t.subject, t.body) for t in generate.generate(300, seed=7)]
    out += [("", ""), ("hi", ""), ("URGENT!!!", "HELP NOW ASAP?? " * 40), ("x" * 3000, "a-" * 2000)]
    return out


def _fsum_scores(model: NaiveBayes, found: Iterable[str], prior: bool = True) -> list[float]:
    """The reference: each label's numbers added up by ``math.fsum`` (exact, rounded once)."""
    rows = [row for row in map(model.row, found) if row is not None]
    start = model.log_priors if prior else (0.0,) * len(model.labels)
    return [math.fsum(column) for column in zip(*rows, start, strict=True)]


def test_scores_are_exactly_the_fsum_of_the_rows_on_the_shipped_models(classifier: TicketClassifier) -> None:
    type_model, priority_model = classifier._type_model, classifier._priority_model
    for subject, body in _texts():
        found = features.extract(subject, body)
        for model in (type_model, priority_model):
            for prior in (True, False):
                assert model.scores(model.ids(found), prior) == _fsum_scores(model, found, prior)


def test_scores_are_exact_for_any_set_of_the_models_features(classifier: TicketClassifier) -> None:
    rng = random.Random(3)
    for model in (classifier._type_model, classifier._priority_model):
        every = model.features
        # Every row at once is the most a sum can hold: the bound the lanes are sized for.
        for size in (0, 1, 2, 50, 500, 5000, len(every)):
            found = rng.sample(every, size)
            assert model.scores(model.ids(found)) == _fsum_scores(model, found)


def test_repeated_rows_beyond_what_the_lanes_hold_are_still_summed_exactly(classifier: TicketClassifier) -> None:
    model = classifier._priority_model
    ids = model.ids(model.features) * 2 + [0, 0, 0]
    rows = [model.row(model.features[i]) or () for i in ids]
    expected = [math.fsum(column) for column in zip(*rows, model.log_priors, strict=True)]
    assert model.scores(ids) == expected


@pytest.mark.parametrize(
    "magnitudes",
    [(-3, 3), (-30, 30), (-300, -250), (250, 300), (-320, 300)],
    ids=["usual", "wide", "tiny", "huge", "subnormal-to-huge"],
)
def test_packed_rows_sum_exactly_like_fsum_for_any_finite_numbers(magnitudes: tuple[int, int]) -> None:
    rng = random.Random(magnitudes[0] * 1000 + magnitudes[1])
    low, high = magnitudes

    def number() -> float:
        if rng.random() < 0.1:
            return rng.choice([0.0, -0.0, 1.0, -1.0])
        return rng.choice([-1.0, 1.0]) * rng.random() * 10.0 ** rng.randint(low, high)

    rows = [tuple(number() for _ in range(4)) for _ in range(200)]
    packed = PackedRows(rows, capacity=len(rows))
    for size in (0, 1, 7, 100, len(rows)):
        chosen = rng.sample(range(len(rows)), size)
        total = sum(packed.rows[i] for i in chosen)
        expected = [math.fsum(column) for column in zip(*(rows[i] for i in chosen), (0.0,) * 4, strict=True)]
        assert packed.unpack(total) == expected


def test_only_finite_numbers_are_packed() -> None:
    with pytest.raises(ValueError, match="finite"):
        PackedRows([(1.0, math.inf)], capacity=1)
    with pytest.raises(ValueError, match="finite"):
        PackedRows([(math.nan,)], capacity=1)


def _old_assessment(classifier: TicketClassifier, subject: str, body: str) -> Assessment:
    """What the classifier assessed before its scores were packed: each model scored on its
    own, with fsum, and the known words counted by name."""
    type_model, priority_model = classifier._type_model, classifier._priority_model
    analysis = features.analyse(subject, body, classifier._readable_settings)
    readable = analysis.readable
    content = [f for f in readable if f.startswith(features.WORD_PREFIX)]
    known = len(classifier._known_words.intersection(content))
    words = _fsum_scores(type_model, readable)
    n = classifier.settings.feature_settings.char_n
    grams = {g for stem in set(analysis.stems) for g in features.char_ngrams(stem, n)}
    chars = _fsum_scores(type_model, grams, prior=False)
    return Assessment(
        type_scores=[w + c for w, c in zip(words, chars, strict=True)],
        word_type_scores=words,
        priority_scores=_fsum_scores(priority_model, readable),
        known_words=known,
        content_words=len(content),
        evidence=1.0 - math.exp(-known / classifier.settings.evidence_scale),
    )


def test_the_assessment_is_what_each_model_alone_gives(classifier: TicketClassifier) -> None:
    for subject, body in _texts():
        assert classifier.assess(subject, body) == _old_assessment(classifier, subject, body)


def _predictions(classifier: TicketClassifier, tickets: Sequence[dict[str, str]]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for ticket in tickets:
        p = classifier.predict(ticket["subject"], ticket["body"])
        out.append(
            {
                "ticket": ticket["subject"],
                "type": p.type.value,
                "priority": p.priority.value,
                "confidence": p.confidence,
                "priority_confidence": p.priority_confidence,
                "reasoning": p.reasoning,
            }
        )
    return out


def test_the_sample_tickets_are_classified_and_explained_as_before(classifier: TicketClassifier) -> None:
    rendered = json.dumps(_predictions(classifier, publish.sample_tickets()), indent=1, ensure_ascii=False) + "\n"
    if os.environ.get("SRS_UPDATE_GOLDEN"):
        GOLDEN.write_text(rendered, encoding="utf-8")
    assert rendered == GOLDEN.read_text(encoding="utf-8"), (
        f"{GOLDEN.name} differs; regenerate with SRS_UPDATE_GOLDEN=1 and review"
    )
