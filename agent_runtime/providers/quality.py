"""What a real model returns that cannot be used, and asking again within a budget.

Small and local models answer with invalid or truncated JSON, a type outside the enum,
an empty text, or a draft that repeats one sentence until its token limit. Each is
named here (:func:`classification_problem`, :func:`draft_problem`) so that a provider
can ask again — a few times, while the ticket's time budget lasts (:class:`Attempts`) —
and, when no attempt is usable, hand the ticket to people with the reason instead of
crashing or letting the engine dead-letter it.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from agent_runtime.tickets import UNKNOWN_TYPE, parse_confidence, parse_ticket_type

#: Attempts at one usable answer (the first and two more).
MAX_ATTEMPTS: Final = 3
#: A sentence this many times in one draft is a loop, not emphasis.
MAX_SENTENCE_REPEATS: Final = 3
#: Word 4-grams: above this share of repeats (in drafts of 40+ words) the draft loops.
MAX_REPEATED_NGRAM_SHARE: Final = 0.5

_SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD: Final = re.compile(r"\w+")


def classification_problem(output: object, *, truncated: bool = False) -> str | None:
    """Why ``output`` (the parsed JSON answer) is not a usable classification; None when it is."""
    if truncated:
        return "the answer was cut off at the token limit (truncated JSON)"
    if output is None:
        return "the answer is not JSON"
    if not isinstance(output, Mapping):
        return f"the answer is JSON but not an object ({type(output).__name__})"
    raw_type = output.get("type")
    if parse_ticket_type(raw_type) is None and not (isinstance(raw_type, str) and raw_type.strip() == UNKNOWN_TYPE):
        return f"type {str(raw_type)[:40]!r} is not one of the ticket types"
    if parse_confidence(output.get("confidence")) is None:
        return f"confidence {str(output.get('confidence'))[:20]!r} is not a number in [0, 1]"
    return None


def _normalized_sentences(text: str) -> list[str]:
    sentences = (" ".join(_WORD.findall(s.lower())) for s in _SENTENCE_END.split(text))
    return [s for s in sentences if len(s) >= 12]


def repeats_itself(text: str) -> bool:
    """Whether ``text`` loops: one sentence again and again, or mostly repeated word runs."""
    counts = Counter(_normalized_sentences(text))
    if counts and counts.most_common(1)[0][1] >= MAX_SENTENCE_REPEATS:
        return True
    words = _WORD.findall(text.lower())
    if len(words) < 40:
        return False
    grams = Counter(tuple(words[i : i + 4]) for i in range(len(words) - 3))
    repeated = sum(n for n in grams.values() if n > 1)
    return repeated / max(sum(grams.values()), 1) > MAX_REPEATED_NGRAM_SHARE


def draft_problem(text: str) -> str | None:
    """Why ``text`` is not a usable draft (before the guardrails look at it); None when it is."""
    if not text.strip():
        return "the model returned an empty draft"
    if repeats_itself(text):
        return "the draft repeats itself"
    return None


@dataclass
class Attempts:
    """Up to ``limit`` attempts at a usable answer, while ``budget_s`` seconds last.

    The budget is measured from the first attempt; a retry is made only when the time
    an attempt took so far fits in what remains, so retries never push a ticket past
    its deadline. ``problems`` keeps each unusable answer's reason, for the one that
    goes to people.
    """

    budget_s: float
    limit: int = MAX_ATTEMPTS
    problems: list[str] = field(default_factory=list)
    _started: float = field(default_factory=time.monotonic)
    _count: int = 0

    def next(self) -> bool:
        """Whether to make another attempt (counts it)."""
        if self._count >= self.limit:
            return False
        if self._count:
            elapsed = time.monotonic() - self._started
            if elapsed + elapsed / self._count > self.budget_s:
                return False
        self._count += 1
        return True

    @property
    def retrying(self) -> bool:
        """Whether the current attempt is a retry."""
        return self._count > 1

    def reason(self) -> str:
        """Every unusable answer's reason, for people: ``after N attempts: …``."""
        distinct = list(dict.fromkeys(self.problems))
        return f"no usable answer after {len(self.problems)} attempt(s): {'; '.join(distinct)}"
