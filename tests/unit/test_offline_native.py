"""The offline classifier's compiled step (native/) against its Python reference: the same
prediction, confidence, reasoning and scores, bit for bit, on every kind of ticket text."""

from __future__ import annotations

import random
import string
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

from agent_runtime.offline import features, modelfile, native
from agent_runtime.offline.classifier import TicketClassifier
from srs import publish
from srs_training.dataset import Split, load_split
from srs_training.generate import generate

pytestmark = pytest.mark.unit

_MODEL = Path(str(resources.files("agent_runtime.offline").joinpath("model")))


@pytest.fixture(scope="module")
def compiled() -> TicketClassifier:
    return modelfile.load(_MODEL)


@pytest.fixture(scope="module")
def reference() -> TicketClassifier:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(native.ENV, "0")
        return modelfile.load(_MODEL)


def test_the_compiled_step_is_installed_and_used(compiled: TicketClassifier, reference: TicketClassifier) -> None:
    # `make install` builds it: an environment without it runs every ticket in Python (slower).
    assert native.available()
    assert compiled.compiled
    assert not reference.compiled


def _random_texts(rng: random.Random, n: int) -> Iterator[tuple[str, str]]:
    # What the patterns and the tokenizer react to: capitals (shouting, acronyms), apostrophes
    # (contractions), digits (statuses, years, codes), amounts, links, addresses, Python's
    # whitespace (\x1c-\x1f are whitespace to its patterns), underscores (word characters).
    alphabet = string.ascii_letters + string.digits + "''!?.,$@/_-:\t\n\x0b\x0c\x1c\x1fAAAA" + " " * 6
    words = """
        refund charge charged charges charging pasword password passwords login log in can't won't
        don't im u pls plz thx acct pw usd eur 49 $49 49$ 1,200.50 r$ 402 503 2023 1999 ab12cd v2
        2fa s3 x1y2z3 https://x.io/a www.example.com bit.ly/q a@b.com first.last+tag@mail.example.org
        cancel ACCOUNT URGENT NOW HTTP GDPR SEPA ASAP!! why?? it's let's i'd cannot dont qqurlqq
        qqmoneyqq _num_ the a of to and dollars bucks pounds 12 dollars 7 bucks classes glasses
        buses status analysis
    """.split()  # noqa: SIM905 - a word list reads better as prose
    for _ in range(n):
        yield (
            "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))),
            " ".join(rng.choice(words) for _ in range(rng.randint(0, 250))),
        )
        yield "", "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 400)))


def _corpus() -> list[tuple[str, str]]:
    texts = [(t.subject, t.body) for split in Split for t in load_split(split)]
    texts += [(t.subject, t.body) for t in generate(1500, seed=11)]
    texts += [(t["subject"], t["body"]) for t in publish.sample_tickets()]
    texts += list(_random_texts(random.Random(5), 1500))
    texts += [("", ""), ("?", ""), ("A", "b"), ("HELLO WORLD", "THIS IS BROKEN"), ("x" * 5000, "y " * 3000)]
    return texts


def test_the_compiled_step_predicts_exactly_what_python_does(
    compiled: TicketClassifier, reference: TicketClassifier
) -> None:
    texts = _corpus()
    assert sum(features.ascii_ticket(s, b) is not None for s, b in texts) > 0.95 * len(texts)
    for subject, body in texts:
        # Every field, floats compared exactly: type, priority, confidences, reasoning …
        assert compiled.predict(subject, body) == reference.predict(subject, body), (subject, body)
        assert compiled.assess(subject, body) == reference.assess(subject, body), (subject, body)
        # … and both whole distributions, unrounded (the compiled step computes them too).
        assert compiled.distributions(subject, body) == reference.distributions(subject, body), (subject, body)


def test_the_compiled_step_computes_the_distributions_labels_and_reasoning_terms(compiled: TicketClassifier) -> None:
    assert compiled.confidence_model is not None  # the shipped model has one: its path is the one compared
    seen = compiled._native.see("refund\ncharged twice", "Refund\ncharged twice") if compiled._native else None
    assert seen is not None and seen.type_probs is not None and seen.priority_probs is not None
    assert seen.top_type == max(range(len(seen.type_probs)), key=seen.type_probs.__getitem__)
    assert compiled.types[seen.top_type].value == "billing"
    # … and the reasoning's terms for the labels it picked (what the corpus test compares).
    assert seen.type_terms is not None and "'charged'" in seen.type_terms
    assert seen.priority_terms is not None


def test_the_compiled_exact_sum_is_pythons_fsum() -> None:
    import math

    import srs_native

    rng = random.Random(3)
    cases = [[], [0.0], [1e16, 1.0, -1e16], [1e308, 1e307, -1e308], [0.1] * 10, [1.0, 1e-16, 1e-16], [-0.0]]
    # Sums whose exact value lies half-way between two floats (the last rounding's case).
    cases += [[1.0, 2.0**-53, 2.0**-106], [1.0, -(2.0**-53), -(2.0**-106)], [2.0**53, 1.0, 2.0**-50]]
    for _ in range(20_000):
        n = rng.randint(1, 8)
        cases.append([rng.choice((-1, 1)) * rng.random() * 10.0 ** rng.randint(-20, 20) for _ in range(n)])
        cases.append([rng.uniform(-30, 30) * rng.uniform(-2, 2) for _ in range(5)])  # weights × signals
    for values in cases:
        mine, python = srs_native.exact_sum(values), math.fsum(values)
        assert mine == python and math.copysign(1, mine or 1) == math.copysign(1, python or 1), values
    # Not finite, or an overflow on the way (Python raises): the Python path decides.
    assert srs_native.exact_sum([1.0, math.inf]) is None
    assert srs_native.exact_sum([1e308, 1e308, -1e308]) is None


def test_a_ticket_with_other_characters_takes_the_python_path(
    compiled: TicketClassifier, reference: TicketClassifier
) -> None:
    assert features.ascii_ticket("Réfund", "please") is None
    assert features.ascii_ticket("Refund", "please") == ("refund\nplease", "Refund\nplease")
    for subject, body in [("Réfund", "I was CHARGED TWICE €49"), ("Rechnung", "doppelt bezahlt — bitte erstatten")]:
        assert compiled.predict(subject, body) == reference.predict(subject, body)


def test_the_word_cache_is_bounded_and_stays_exact(compiled: TicketClassifier, reference: TicketClassifier) -> None:
    # More distinct words than the compiled step caches (65,536): it starts over, same answers.
    rng = random.Random(9)
    for _ in range(400):
        words = ("".join(rng.choices(string.ascii_lowercase, k=rng.randint(5, 9))) for _ in range(200))
        body = " ".join(words)
        assert compiled.predict("refund", body) == reference.predict("refund", body)


def test_the_compiled_step_refuses_text_it_cannot_read(compiled: TicketClassifier) -> None:
    analyzer = compiled._native
    assert analyzer is not None
    with pytest.raises(ValueError, match="ASCII"):
        analyzer.see("réfund", "Réfund")
