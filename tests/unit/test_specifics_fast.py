"""The specifics of a ticket found quickly are the specifics every pattern finds.

``extract`` skips the patterns that cannot match a text and matches the tags of ASCII text
lower-cased; ``_everywhere`` below runs every pattern on the whole text, case-insensitive
where the pattern says so, and the request cue sentence by sentence — the definition. They
must agree on every text: real and generated tickets, and random text built from what the
patterns look for (cases mixed, digits and none, non-ASCII letters that case-fold to ASCII).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import pytest

from agent_runtime.providers import specifics
from agent_runtime.providers.specifics import TicketSpecifics, extract
from agent_runtime.tickets import Ticket
from srs import publish
from srs_training.generate import generate

pytestmark = pytest.mark.unit


def _request_by_sentence(text: str) -> str | None:
    for sentence in specifics._SENTENCE.findall(text):
        if specifics._REQUEST_CUE.search(sentence):
            cleaned = " ".join(sentence.split())
            return cleaned if len(cleaned) <= 200 else cleaned[:197].rstrip() + "…"
    return None


def _everywhere(ticket: Ticket) -> TicketSpecifics:
    s, unique = specifics, specifics._unique
    text = f"{ticket.subject}\n{ticket.body}"
    references = [m.group(0) for m in s._REFERENCE.finditer(text)]
    references += [m.group(1) for m in s._LABELLED_REFERENCE.finditer(text) if re.search(r"\d", m.group(1))]
    errors = [m.group(1) for m in s._ERROR_CODE.finditer(text)] + [m.group(1) for m in s._HTTP_STATUS.finditer(text)]
    return TicketSpecifics(
        first_name=s.customer_first_name(ticket, None),
        amounts=unique(m.group(0) for m in s._AMOUNT.finditer(text)),
        references=unique(r for r in references if len(re.sub(r"\D", "", r)) <= 12),
        plans=unique(f"{m.group(1)} {m.group(2)}" for m in s._PRODUCT.finditer(text)),
        platforms=unique(m.group(1) for m in s._PLATFORM.finditer(text)),
        error_codes=unique(errors),
        versions=unique(m.group(1) for m in s._VERSION.finditer(text)),
        request=_request_by_sentence(ticket.body) or _request_by_sentence(ticket.subject),
        topic=s._topic(ticket.subject),
        tags=frozenset(tag for tag, pattern in s._TAGS.items() if pattern.search(text)),
    )


def _ticket(subject: str, body: str) -> Ticket:
    return Ticket(ticket_id="T-1", customer_id="c", subject=subject, body=body)


#: What the patterns look for, and what sits next to it.
_FRAGMENTS = (
    *(w for p in specifics._TAGS.values() for w in re.split(r"[|()?:\\\[\]]+", p.pattern) if len(w) > 2),
    *specifics._PLATFORMS, *specifics._PRODUCT_WORDS, "Pro", "Enterprise Plus", "error", "err", "code", "status",
    "exception", "ERR_TIMEOUT", "error ERR_TIMEOUT", "status: AUTH_FAILED", "code SSO_DOWN",
    "E1234", "404", "503 error", "500 internal", "version 2.3.1", "v1.2", "release 10.0",
    "$12.50", "€1,000", "£3", "40 USD", "12 dollars", "INV-20391", "ORD#123456", "#4821", "order number A1B2-C3",
    "invoice no. 12345", "receipt: 99887766", "1234567890123456", "my name is Dana", "Thanks,\nSam", "Regards",
    "would love", "please add", "could you add", "i'd like", "is there any way to", "support for", "ability to",
    "can't log in", "cannot sign in", "two-factor", "one time code", "e-mail", "change my email", "all users",
    "timing out", "double-charged", "money back", "seats", "admin rights", "reset link",
)  # fmt: skip
_GLUE = (" ", "  ", "\n", ". ", "! ", "? ", ".", "!", "?", ", ", "-", "_", "#", ":", "", "\t", "...")
_ODD = ("İ", "ı", "ſ", "K", "é", "Zoë", "٣", "\x1c", "ß", "ﬁ", "Σ", "\u00a0", "’")


#: Without a digit: what the patterns that need one are skipped on.
_NO_DIGITS = tuple(f for f in _FRAGMENTS if not any(c.isdigit() for c in f))


def _random_texts(rng: random.Random, n: int) -> Iterator[tuple[str, str]]:
    fragments = _FRAGMENTS

    def piece() -> str:
        word = rng.choice(fragments)
        roll = rng.random()
        if roll < 0.25:
            word = word.upper()
        elif roll < 0.4:
            word = word.capitalize()
        elif roll < 0.5:
            word = "".join(c.upper() if rng.random() < 0.5 else c for c in word)
        if rng.random() < 0.08:
            word = rng.choice(_ODD) + word if rng.random() < 0.5 else word + rng.choice(_ODD)
        if rng.random() < 0.05:  # a letter that case-folds to ASCII, inside a word
            at = rng.randrange(len(word) + 1)
            word = word[:at] + rng.choice(("K", "ſ", "İ", "ı")) + word[at:]
        return word + rng.choice(_GLUE)

    for _ in range(n):
        fragments = _NO_DIGITS if rng.random() < 0.4 else _FRAGMENTS
        subject = "".join(piece() for _ in range(rng.randint(0, 4)))
        body = "".join(piece() for _ in range(rng.randint(0, 40)))
        yield subject, body


def _corpus() -> list[tuple[str, str]]:
    texts = [(t["subject"], t["body"]) for t in publish.sample_tickets()]
    texts += [(t.subject, t.body) for t in generate(1500, seed=23)]
    filler = "Hello, my card was charged twice for the same invoice this month. "
    texts += [("Charged twice for my invoice", filler * 15), ("", ""), ("x", "1"), ("ERR_X", "_")]
    # Error codes without a digit; a cue right after a sentence's end.
    texts += [("Login fails", "I get error ERR_TIMEOUT, status: AUTH_FAILED."), ("x", "code SSO_DOWN")]
    texts += [("Idea", "Great app.Would love dark mode!"), ("Wish", "Thanks!please add export")]
    texts += list(_random_texts(random.Random(5), 4000))
    return texts


def test_the_quick_specifics_are_what_every_pattern_finds() -> None:
    corpus = _corpus()
    differ = [(s, b) for s, b in corpus if extract(_ticket(s, b)) != _everywhere(_ticket(s, b))]
    assert not differ, f"{len(differ)} of {len(corpus)} texts differ, e.g. {differ[:3]!r}"
    # The corpus reaches what the quick paths skip and what they keep.
    found = [extract(_ticket(s, b)) for s, b in corpus]
    digit_free = [f for (s, b), f in zip(corpus, found, strict=True) if not re.search(r"\d", s + b)]
    assert sum(bool(f.error_codes) for f in digit_free) > 20
    for field in ("amounts", "references", "plans", "platforms", "error_codes", "versions", "request", "tags"):
        assert sum(bool(getattr(f, field)) for f in found) > 50, field
        assert sum(not getattr(f, field) for f in found) > 50, field
    assert sum(not (s + b).isascii() for s, b in corpus) > 200


def test_a_tag_skipped_by_its_quick_test_cannot_match() -> None:
    rng = random.Random(9)
    for subject, body in _random_texts(rng, 2000):
        lowered = f"{subject}\n{body}".lower()
        present = specifics._TAG_STARTS.present(lowered)
        for (tag, pattern), may in zip(specifics._TAGS_LOWER.items(), present, strict=True):
            if not may:
                assert pattern.search(lowered) is None, (tag, lowered)


def test_a_tags_twin_is_a_lower_case_pattern_that_ignores_case() -> None:
    with pytest.raises(ValueError, match="lower case"):
        specifics._lower_case_twin(re.compile("Refund", re.IGNORECASE))
    with pytest.raises(ValueError, match="case-insensitive"):
        specifics._lower_case_twin(re.compile("refund"))
