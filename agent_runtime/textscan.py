"""Quick facts about a text that rule a pattern out before it scans the text.

Customer text is hostile and can be long, and most patterns find nothing in most tickets:
a pattern that cannot match a text need not scan it. Each fact here is exact — what it says
of a text holds for ``\\d`` and substring matching as ``re`` does them — so skipping on it
changes no result.
"""

from __future__ import annotations

import os
import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parser  # type: ignore[import-not-found]
from collections.abc import Iterable, Sequence
from typing import Any, Final

#: Set to 0 to run every per-ticket step in Python, where a compiled one is installed (the
#: ``srs-native`` package, ``native/``), to compare.
NATIVE_ENV: Final = "SRS_NATIVE_CLASSIFIER"

_DIGIT: Final = re.compile(r"\d")
_ASCII_DIGITS: Final = tuple("0123456789")
_ASCII_DIGIT_BYTES: Final = b"0123456789"


def contains_any(text: str, needles: Iterable[str]) -> bool:
    """Whether one of ``needles`` is a substring of ``text`` (a substring search each: a
    regex alternation of them would try every one at every position)."""
    return any(map(text.__contains__, needles))


def compiled_package() -> Any | None:
    """The compiled package (``srs_native``), or None when it is not installed or
    :data:`NATIVE_ENV` turns it off."""
    if os.environ.get(NATIVE_ENV, "1") == "0":
        return None
    try:
        import srs_native
    except ImportError:
        return None
    return srs_native


class NeedleGroups:
    """Groups of needles, and which groups have one in a text (a substring each).

    :func:`contains_any` searches the text once per needle; with the compiled package
    installed, ASCII text is read once for all of them (Aho-Corasick, every overlap seen).
    Both answer the same (``tests/unit/test_textscan.py``).
    """

    def __init__(self, groups: Iterable[Iterable[str]]) -> None:
        self._groups = [tuple(group) for group in groups]
        package = compiled_package()
        self._compiled: Any = None if package is None else package.NeedleGroups(self._groups)

    @classmethod
    def starts_of(cls, patterns: Iterable[re.Pattern[str]]) -> NeedleGroups:
        """Per pattern, the texts every match of it starts with (:func:`leading_texts`):
        :meth:`present` then says which patterns may match a text (one whose starts cannot
        be read always may)."""
        return cls(leading_texts(pattern) or ("",) for pattern in patterns)

    def present(self, text: str) -> list[bool]:
        """Per group: whether one of its needles is in ``text``."""
        if self._compiled is not None and text.isascii():
            found: list[bool] = self._compiled.present(text)
            return found
        return [contains_any(text, group) for group in self._groups]


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


#: Zero-width items (``\\b``, ``^``, lookarounds): a match's text does not start with them.
_ZERO_WIDTH: Final = frozenset({sre_constants.AT, sre_constants.ASSERT, sre_constants.ASSERT_NOT})
#: How many texts :func:`leading_texts` follows at most (past it, the shorter ones it has).
_MAX_TEXTS: Final = 64
#: The largest character class it reads as one character each.
_MAX_CLASS: Final = 16


def leading_texts(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Texts one of which every match of ``pattern`` starts with, read from how ``re`` parsed
    it: literal characters, small character classes and alternations, after zero-width items,
    followed as far as they stay fixed (``gh[pousr]_`` → ``ghp_``, ``gho_``, …); None when a
    match can start with anything (a large class, an optional or repeated part first) or the
    pattern ignores case."""
    if pattern.flags & re.IGNORECASE:
        return None
    texts, _whole = _fixed_start(sre_parser.parse(pattern.pattern, pattern.flags).data)
    return None if "" in texts else texts


def _fixed_start(items: Sequence[tuple[Any, Any]]) -> tuple[frozenset[str], bool]:
    """The texts the items' matches start with, and whether they are the whole of each match."""
    texts: frozenset[str] = frozenset({""})
    for op, argument in items:
        if op in _ZERO_WIDTH:
            continue  # consumes nothing: what follows starts the text
        if op is sre_constants.LITERAL:
            step, whole = frozenset({chr(argument)}), True
        elif op is sre_constants.IN:
            chars = _class_chars(argument)
            if chars is None:
                return texts, False
            step, whole = chars, True
        elif op is sre_constants.SUBPATTERN and not argument[1] and not argument[2]:  # a group, no flags
            step, whole = _fixed_start(argument[3].data)
        elif op is sre_constants.BRANCH:
            branches = [_fixed_start(branch.data) for branch in argument[1]]
            step = frozenset().union(*(starts for starts, _ in branches))
            whole = all(entire for _, entire in branches)
        else:
            return texts, False
        longer = frozenset(t + s for t in texts for s in step)
        if len(longer) > _MAX_TEXTS:
            return texts, False
        texts = longer
        if not whole:
            return texts, False
    return texts, True


def _class_chars(items: Sequence[tuple[Any, Any]]) -> frozenset[str] | None:
    """The characters of a small class of literals and ranges (None: negated, categories, large)."""
    chars: set[str] = set()
    for op, argument in items:
        if op is sre_constants.LITERAL:
            chars.add(chr(argument))
        elif op is sre_constants.RANGE and argument[1] - argument[0] < _MAX_CLASS:
            chars.update(map(chr, range(argument[0], argument[1] + 1)))
        else:
            return None
        if len(chars) > _MAX_CLASS:
            return None
    return frozenset(chars)
