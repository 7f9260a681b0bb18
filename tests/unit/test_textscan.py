"""The quick facts that rule a pattern out are what ``re`` finds."""

from __future__ import annotations

import random
import re

import pytest

from agent_runtime.roles import guardrails
from agent_runtime.textscan import (
    NATIVE_ENV,
    NeedleGroups,
    ascii_digit_count,
    contains_any,
    has_digit,
    leading_texts,
)

pytestmark = pytest.mark.unit


def test_a_digit_and_the_digits_are_what_backslash_d_finds() -> None:
    rng = random.Random(7)
    alphabet = "ab 09_-.\n\tZé٣६ⅷ²"  # ASCII digits, Arabic-Indic and Devanagari digits, a numeral, a superscript
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        assert has_digit(text) == bool(re.search(r"\d", text)), text
        count = ascii_digit_count(text)
        if text.isascii():
            assert count == len(re.findall(r"\d", text)), text
        else:
            assert count is None


def test_any_needle_is_a_substring() -> None:
    assert contains_any("charged twice", ("refund", "twice"))
    assert not contains_any("charged twice", ("refund", "Twice"))
    assert not contains_any("anything", ())


def test_the_starts_of_a_match_are_read_from_the_pattern() -> None:
    def starts(pattern: str, flags: int = 0) -> frozenset[str] | None:
        return leading_texts(re.compile(pattern, flags))

    assert starts(r"\bcancel(?:led|lation)?\b") == {"cancel"}
    assert starts(r"\b(?:seat|seats|invite)\b") == {"seat", "seats", "invite"}
    assert starts(r"two[- ]factor|mfa") == {"two-factor", "two factor", "mfa"}
    assert starts(r"(down)time") == {"downtime"}
    assert starts(r"[ab]c|d") == {"ac", "bc", "d"}
    assert starts(r"gh[pousr]_[A-Za-z0-9]{30,}") == {"ghp_", "gho_", "ghu_", "ghs_", "ghr_"}
    assert starts(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z]+") == {"eyJ"}  # a lookbehind consumes nothing
    assert starts(r"(?:my )?account") is None  # a match may start with "account"
    assert starts(r"a|b?c") is None  # … or with "c"
    assert starts(r"[^a]b") is None and starts(r"\dx") is None and starts(r"[a-z]x") is None
    assert starts(r"refund", re.IGNORECASE) is None
    assert starts(r"(?i:refund)") is None


def test_a_pattern_ruled_out_by_its_starts_finds_nothing() -> None:
    # The patterns it is used on, against texts made of their own pieces (so that many come close).
    patterns = [guardrails._TOKEN_SECRET, re.compile(r"gh[pousr]_x|(?:rk|pk)_(?:live|test)_y|two[- ]factor|\bab?c")]
    pieces = ["sk-", "gh", "p", "o", "_", "x", "rk", "pk", "_live", "_test", "_y", "AKIA", "eyJ", "two", "-", " ",
              "factor", "a", "b", "c", "Q" * 16, "aB9_" * 9, ".", "ASIA", "AIza", "xox", "b-"]  # fmt: skip
    rng = random.Random(11)
    ruled_out = 0
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        for pattern in patterns:
            starts = leading_texts(pattern)
            assert starts is not None
            if not contains_any(text, starts):
                ruled_out += 1
                assert pattern.search(text) is None, (pattern.pattern, text)
    assert ruled_out > 5_000  # the test rules many out: it is not vacuous


def test_needle_groups_read_at_once_find_what_a_search_per_needle_finds(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = [["ab", "bc"], ["abc"], ["b"], [], ["cab", "x"], ["two factor", "two-factor"], [""], ["bb", "bcb"]]
    compiled = NeedleGroups(groups)
    assert compiled._compiled is not None  # `make install` builds it
    monkeypatch.setenv(NATIVE_ENV, "0")
    python = NeedleGroups(groups)
    assert python._compiled is None
    rng = random.Random(12)
    pieces = ["a", "b", "c", "ab", "bc", "x", "two", " ", "-", "factor", "é", "\n"]
    seen = [0] * len(groups)
    for _ in range(30_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        expected = [contains_any(text, group) for group in groups]
        assert compiled.present(text) == expected == python.present(text), text
        seen = [n + found for n, found in zip(seen, expected, strict=True)]
    # Every group found in some texts and missed in others (the empty one never, "" always).
    assert seen[3] == 0 and seen[6] == 30_000 and all(0 < n < 30_000 for i, n in enumerate(seen) if i not in (3, 6))
