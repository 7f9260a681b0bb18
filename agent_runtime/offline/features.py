"""Ticket text → sparse features for the offline classifier.

Three families, each in its own namespace so that one model can weigh them:

- ``w:`` word unigrams, lightly stemmed, stop words dropped (the readable evidence that
  ends up in a prediction's ``reasoning``);
- ``b:`` word bigrams over the full token stream ("log in", "charged twice"), which keep
  the short function words that single words lose;
- ``c:`` character 4-grams inside words, so that typos ("pasword", "refnd"), inflections
  and half-translated words ("factura", "Rechnung") still meet known evidence;
- ``s:`` style: shouting, "!!", questions, length — how a ticket is written says more
  about its urgency than about its topic.

Normalisation folds accents and case, maps money amounts, URLs, e-mail addresses,
numbers and opaque codes to shape tokens, and expands the usual contractions, so that the
model learns "an amount was mentioned" instead of memorising "$49".
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from agent_runtime.textscan import contains_any, has_digit

WORD_PREFIX: Final = "w:"
BIGRAM_PREFIX: Final = "b:"
CHAR_PREFIX: Final = "c:"
STYLE_PREFIX: Final = "s:"

MONEY: Final = "_money_"
NUMBER: Final = "_num_"
YEAR: Final = "_year_"
CODE: Final = "_code_"
URL: Final = "_url_"
EMAIL: Final = "_email_"

# Ticket text is hostile input: each pattern starts a match only where a run of its
# characters starts (a look-behind, not \b) and takes the run whole, so text such as
# "a-a-a-…", "a.a.a.…@" or "1.1.1.…" is scanned once, not once per position (quadratic:
# 1.4 s for a 20,000-character body before).
_URL_RE = re.compile(r"(?:https?://|www\.)\S+|(?<![a-z0-9-])[a-z0-9-]++\.(?:ly|io|com|net|org)/\S*")
_EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]++@[\w-]+(?:\.[\w-]+)+\b")
_MONEY_RE = re.compile(
    r"(?:[$€£¥₹]|\b(?:usd|eur|gbp|chf|aud|cad|r\$))\s?\d[\d.,\s]*\d?"
    r"|(?<![\w.,])\d[\d.,]*+\s?(?:[$€£¥₹]|(?:usd|eur|gbp|chf|dollars?|euros?|pounds?|bucks)\b)"
)
_TOKEN_RE = re.compile(r"[^\W_]+(?:'[^\W_]+)?")
# The same on ASCII text, where [^\W_] is [A-Za-z0-9]: a plain range is quicker to match than
# a Unicode category.
_ASCII_TOKEN_RE = re.compile(r"[A-Za-z0-9]+(?:'[A-Za-z0-9]+)?")
#: ASCII text cut into runs of token characters ([A-Za-z0-9']) by a translation and a split,
#: which is three times quicker than the pattern on a ticket's text: a run without an
#: apostrophe is one token, the pattern splits the others (see :func:`_ascii_tokens`).
_ASCII_SEPARATORS: Final = str.maketrans({c: " " for c in map(chr, range(128)) if not (c.isalnum() or c == "'")})
# What every match of _MONEY_RE holds: a digit, and a currency sign or name.
_CURRENCY_MARKS: Final = tuple("$ € £ ¥ ₹ usd eur gbp chf aud cad dollar euro pound buck".split())  # noqa: SIM905


def _mentions_currency(text: str) -> bool:
    return contains_any(text, _CURRENCY_MARKS)


_HTTP_STATUS_RE = re.compile(r"[1-5]\d\d")
# Placeholders that survive tokenisation and cannot collide with a real word.
SENTINELS: Final = {"qqurlqq": URL, "qqemailqq": EMAIL, "qqmoneyqq": MONEY}

CONTRACTIONS: Final = {
    "can't": "can not",
    "cant": "can not",
    "cannot": "can not",
    "won't": "will not",
    "wont": "will not",
    "don't": "do not",
    "dont": "do not",
    "doesn't": "does not",
    "doesnt": "does not",
    "didn't": "did not",
    "didnt": "did not",
    "isn't": "is not",
    "isnt": "is not",
    "aren't": "are not",
    "wasn't": "was not",
    "wasnt": "was not",
    "haven't": "have not",
    "havent": "have not",
    "hasn't": "has not",
    "couldn't": "could not",
    "couldnt": "could not",
    "shouldn't": "should not",
    "wouldn't": "would not",
    "i'm": "i am",
    "im": "i am",
    "i've": "i have",
    "ive": "i have",
    "i'd": "i would",
    "i'll": "i will",
    "it's": "it is",
    "that's": "that is",
    "there's": "there is",
    "we're": "we are",
    "you're": "you are",
    "they're": "they are",
    "let's": "let us",
    "u": "you",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "acct": "account",
    "pw": "password",
    "pwd": "password",
    "notifs": "notifications",
}

#: Words that carry no topic on their own. Kept in bigrams ("log in"), dropped as unigrams.
#: Modals, negations and question words stay: "would", "not" and "how" separate a wish
#: from a bug report from a how-to question.
STOP_WORDS: Final = frozenset(
    """
    a about above after again all also am an and are as at be because been before being below
    between both but by did do does doing down during each few for from further get got had has
    have having he her here hers him his i if in into is it its itself just me more most my myself
    nor now of off on once only or other our ours out over own same she so some such than that the
    their theirs them then there these they this those through to too under until up very was we
    were which while who whom with you your yours yourself hi hello hey dear thanks thank regards
    best kind cheers team guys ok okay yes one two also still already really just since
    """.split()  # noqa: SIM905 - a word list reads better as prose
)


@dataclass(frozen=True, slots=True)
class FeatureSettings:
    """Which feature families to extract and how."""

    words: bool = True
    bigrams: bool = True
    char_ngrams: bool = True
    char_n: int = 4
    style: bool = True


def fold(text: str) -> str:
    """Lower-case, fold accents and compatibility forms ("Réfund" → "refund")."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _shape(token: str) -> str:
    """Replace numbers and opaque identifiers by their shape; keep words and short codes."""
    if token.isalpha() or not any(ch.isdigit() for ch in token):
        return token
    if token.isdigit():
        if len(token) == 3 and _HTTP_STATUS_RE.fullmatch(token):
            return token  # HTTP statuses (402, 429, 503) are strong evidence
        if len(token) == 4 and token[:2] in ("19", "20"):
            return YEAR
        return NUMBER
    if len(token) <= 3:
        return token  # 2fa, v2, s3, p1
    return CODE


def tokens(text: str) -> list[str]:
    """The normalised token stream of a text (shape tokens included, nothing dropped)."""
    folded = _marked(fold(text)).replace("’", "'")
    found = _ascii_tokens(folded) if folded.isascii() else _TOKEN_RE.findall(folded)
    return list(itertools.chain.from_iterable(map(_normalised, found)))


def _marked(folded: str) -> str:
    """Folded text with its links, e-mail addresses and amounts replaced by placeholders."""
    # Each pattern runs only on text that holds what every match of it needs (a URL a '/'
    # or 'www.', an address an '@', an amount a digit and a currency): same result, and
    # most tickets skip most of the scans.
    if "/" in folded or "www." in folded:
        folded = _URL_RE.sub(" qqurlqq ", folded)
    if "@" in folded:
        folded = _EMAIL_RE.sub(" qqemailqq ", folded)
    if has_digit(folded) and _mentions_currency(folded):
        folded = _MONEY_RE.sub(" qqmoneyqq ", folded)
    return folded


def ascii_ticket(subject: str, body: str) -> tuple[str, str] | None:
    """An ASCII ticket's text as :func:`analyse` reads it, and the same folded, with its links,
    addresses and amounts marked (what the compiled step takes, :mod:`.native`); None for a
    ticket with any other character."""
    text = f"{subject}\n{body}"
    if not text.isascii():
        return None
    return _marked(text.lower()), text


def _ascii_tokens(text: str) -> list[str]:
    """``_ASCII_TOKEN_RE.findall(text)`` of an ASCII text: no match spans a character
    outside [A-Za-z0-9'], so the pattern is needed only inside runs holding an apostrophe."""
    runs = text.translate(_ASCII_SEPARATORS).split()
    if "'" not in text:
        return runs
    found: list[str] = []
    for run in runs:
        if "'" in run:
            found += _ASCII_TOKEN_RE.findall(run)
        else:
            found.append(run)
    return found


@functools.lru_cache(maxsize=1 << 16)
def _normalised(raw: str) -> tuple[str, ...]:
    """What one token of the text stands for: a shape, a contraction's words, or itself."""
    sentinel = SENTINELS.get(raw)
    if sentinel is not None:
        return (sentinel,)
    expanded = CONTRACTIONS.get(raw)
    if expanded is not None:
        return tuple(expanded.split())
    return (_shape(raw.split("'")[0]),)


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """A deliberately light suffix stripper: plurals, -ing, -ed, -ly.

    Good enough to merge "charges/charged/charging" into "charg"; character n-grams cover
    what it misses.
    """
    if len(word) <= 4 or word.startswith("_"):
        return word
    for suffix, replacement in (("ies", "y"), ("sses", "ss"), ("ing", ""), ("ed", ""), ("ly", ""), ("es", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@dataclass(frozen=True, slots=True)
class Analysis:
    """A ticket's features, and the token stream they came from (for explanations)."""

    features: frozenset[str]
    #: The features a person can read: all but the character n-grams.
    readable: frozenset[str]
    tokens: tuple[str, ...]
    #: ``stem`` of each token, in the same order.
    stems: tuple[str, ...]
    #: How many distinct content words (``w:`` features) the text holds.
    content_words: int = 0


def analyse(subject: str, body: str, settings: FeatureSettings = FeatureSettings()) -> Analysis:
    """Tokenise a ticket once and extract every enabled feature family."""
    text = f"{subject}\n{body}"
    raw = tokens(text)
    stream = list(map(stem, raw))
    found: set[str] = set()
    # Per-word work is cached by word (vocabulary repeats; tickets do not), and the loops
    # run inside map/chain.
    if settings.words:
        found.update(map(_word, stream))
        found.discard("")
    content_words = len(found)
    if settings.bigrams:
        found.update(map(_bigram, stream, stream[1:]))
    found.discard("")
    if settings.style:
        found.update(_style(text, len(stream)))
    readable = frozenset(found)
    every = readable
    if settings.char_ngrams:
        found.update(itertools.chain.from_iterable(map(char_ngrams, set(stream), itertools.repeat(settings.char_n))))
        every = frozenset(found)
    return Analysis(every, readable, tuple(raw), tuple(stream), content_words)


@functools.lru_cache(maxsize=1 << 16)
def _word(token: str) -> str:
    """A stemmed token's word feature; "" for a stop word or a single character."""
    return "" if token in STOP_WORDS or len(token) <= 1 else WORD_PREFIX + token


@functools.lru_cache(maxsize=1 << 16)
def _bigram(a: str, b: str) -> str:
    """The bigram feature of two adjacent stemmed tokens; "" when both are stop words."""
    return "" if a in STOP_WORDS and b in STOP_WORDS else f"{BIGRAM_PREFIX}{a} {b}"


def extract(subject: str, body: str, settings: FeatureSettings = FeatureSettings()) -> frozenset[str]:
    """The set of features present in a ticket (presence, not counts: short texts dominate)."""
    return analyse(subject, body, settings).features


# Upper-case words that are names of things, not shouting.
ACRONYMS: Final = frozenset(
    "AMEX CORS GDPR HIPAA HTTP HTTPS IBAN JSON OAUTH SAML SCIM SEPA SFTP SMTP SWIFT XLSX YAML".split()  # noqa: SIM905
)
_SHOUT_RE = re.compile(r"\b[A-Z]{4,}\b")
# What every shouted word holds: a quick no for most tickets (spelled out: sre scans for
# four classes in a row faster than for one repeated four times).
_CAPITALS_RE = re.compile(r"[A-Z][A-Z][A-Z][A-Z]")


def _style(text: str, n_tokens: int) -> list[str]:
    found = [LENGTHS[min(n_tokens // 25, 4)]]
    if _CAPITALS_RE.search(text) and sum(1 for w in _SHOUT_RE.findall(text) if w not in ACRONYMS) >= 2:
        found.append(SHOUTING)
    if "!!" in text or "??" in text:
        found.append(REPEATED_PUNCTUATION)
    if "?" in text:
        found.append(QUESTION)
    return found


#: The style features besides the length: capitals, "!!" or "??", a question.
SHOUTING: Final = STYLE_PREFIX + "shouting"
REPEATED_PUNCTUATION: Final = STYLE_PREFIX + "repeated_punctuation"
QUESTION: Final = STYLE_PREFIX + "question"
STYLES: Final = (SHOUTING, REPEATED_PUNCTUATION, QUESTION)


#: The length features, by length // 25 tokens (capped at 4).
LENGTHS: Final = tuple(f"{STYLE_PREFIX}length_{n}" for n in range(5))


@functools.lru_cache(maxsize=1 << 16)
def char_ngrams(token: str, n: int) -> tuple[str, ...]:
    """The character n-gram features of one stemmed token (none for stop words and shapes)."""
    if token in STOP_WORDS or token.startswith("_"):
        return ()
    padded = f"<{token}>"
    return tuple(CHAR_PREFIX + padded[i : i + n] for i in range(len(padded) - n + 1))
