"""The quick facts that rule a pattern out are what ``re`` finds."""

from __future__ import annotations

import random
import re

import pytest

from agent_runtime.textscan import ascii_digit_count, contains_any, has_digit

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
