"""Checks a drafted response must pass before it reaches a customer.

A draft that fails any check is escalated to people, never sent and never dropped. The
checks: not empty, not longer than ``max_length``, no forbidden phrase, and — with
``block_pii`` — no payment card number (Luhn-valid), no US social security number, nothing
that looks like a credential (API keys, tokens, private keys, ``password: …``), and no
e-mail address or phone number that the customer did not write themselves (their own
contact details may be repeated back to them; anybody else's may not).

Failure reasons name the check, never the matched text: they travel in events and logs.

Every pattern scans in linear time, whatever the text: customer text is hostile input.
A pattern that could start a match at every position of a long run and rescan the run
each time (quadratic: ~80 s for 300 KB of ``a.a.a.`` with the old e-mail pattern) starts
only where such a run starts (a look-behind), consumes runs possessively, or bounds the
run it looks at. ``tests/unit/test_roles_hostile_text.py`` holds the adversarial inputs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from agent_runtime.textscan import NeedleGroups, ascii_digit_count, contains_any
from srs_contracts.agent_config import GuardrailConfig

CHECK_EMPTY: Final = "empty"
CHECK_MAX_LENGTH: Final = "max_length"
CHECK_FORBIDDEN_PHRASE: Final = "forbidden_phrase"
CHECK_CARD_NUMBER: Final = "pii_card_number"
CHECK_SSN: Final = "pii_ssn"
CHECK_SECRET: Final = "pii_secret"  # noqa: S105 - a check name, not a secret
CHECK_EMAIL: Final = "pii_email"
CHECK_PHONE: Final = "pii_phone"

# The number patterns start with the digit itself and look behind it after it (``\d(?<![\d-]\d)``
# is ``(?<![\d-])\d``): a pattern whose first item is a character class lets ``re`` skip every
# position without a digit at C speed, where a leading lookbehind made it try the whole
# pattern at each one (~4x slower on a draft with a few numbers). The SSN's excluded areas
# are checked behind its first three digits. tests/unit/test_roles_specialist.py holds both
# to the patterns as first written, span for span.
_CARD_CANDIDATE: Final = re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?![\d])")
_SSN: Final = re.compile(r"\d(?<![\d-]\d)\d\d(?<!000)(?<!666)(?<!9\d\d)[- ](?!00)\d{2}[- ](?!0000)\d{4}(?![\d-])")
_TOKEN_SECRET: Final = re.compile(
    r"\b(?:sk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{16,}"  # OpenAI/Anthropic/Stripe-style keys
    r"|(?:rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack tokens
    r"|AIza[0-9A-Za-z_-]{35}\b"  # Google API keys
    # JWTs: only at the start of a run of token characters, each part taken whole (possessive).
    r"|(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{8,}+)"
)
#: Whether a text holds one of the texts a token starts with ("sk-", "ghp_", "AKIA", …): one pass.
_TOKEN_STARTS: Final = NeedleGroups.starts_of([_TOKEN_SECRET])
_PRIVATE_KEY: Final = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
_ASSIGNED_SECRET: Final = re.compile(
    r"\b(?:api[_ -]?key|secret(?:[_ -]?key)?|access[_ -]?token|auth[_ -]?token|password|passwd|pwd)"
    # The value is looked at up to 256 characters: one keyword costs a bounded scan.
    r"\s{0,16}(?:is|[:=])\s{0,16}['\"]?(?=[^\s'\"]{0,255}[\d_\-!@#$%^&*])[^\s'\"]{8,256}",
    re.IGNORECASE,
)
#: Cheap substring tests that rule the slower patterns out for most drafts.
_ASSIGNMENT_WORDS: Final = ("key", "secret", "token", "passw", "pwd")
#: Starts only where a run of address characters starts, and takes the local part whole: on
#: ``a.a.a.…`` the old ``\b[…]+@`` tried (and rescanned) a match at every position.
_EMAIL: Final = re.compile(
    r"(?<![A-Za-z0-9._%+-])[._%+-]*+(?P<address>[A-Za-z0-9][A-Za-z0-9._%+-]*+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b)"
)
#: A phone number starts with "+", "(" or a digit, not after a word character or "+": one
#: branch per first character, each looking behind it after it (see the card pattern above).
_PHONE: Final = re.compile(
    r"(?:\+(?<![\w+]\+)\d{1,3}[\s.-]?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])"
    r"|\((?<![\w+]\()\d{2,4}\)[\s.-]?"
    r"|\d(?<![\w+]\d)\d{1,3}[\s.-])"
    r"\d{3,4}[\s.-]\d{3,4}(?![\w])"
)

Span = tuple[int, int]


@dataclass(frozen=True)
class GuardrailResult:
    """The verdict on one draft."""

    checks: tuple[str, ...]  # every check that ran
    failed: tuple[str, ...]  # the checks that failed (empty: passed)
    redacted_draft: str  # the draft with PII findings masked, for the human reviewer

    @property
    def passed(self) -> bool:
        return not self.failed

    def reason(self) -> str:
        """A one-line, PII-free explanation of why the draft was held back."""
        return "draft failed guardrails: " + ", ".join(self.failed)


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a digit string (payment card numbers pass it)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _digits(text: str) -> str:
    return re.sub(r"\D", "", text)


#: The fewest digits a match of each pattern holds: a card number 13, a social security
#: number 9, a phone number 8 (2 + 3 + 3).
_CARD_DIGITS: Final = 13
_SSN_DIGITS: Final = 9
_PHONE_DIGITS: Final = 8


def _normalize(text: str) -> str:
    return " ".join(text.lower().split())


def _card_spans(text: str) -> list[Span]:
    spans = []
    for match in _CARD_CANDIDATE.finditer(text):
        digits = _digits(match.group(0))
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            spans.append(match.span())
    return spans


def _secret_spans(text: str) -> list[Span]:
    (may_hold_token,) = _TOKEN_STARTS.present(text)
    spans = [m.span() for m in _TOKEN_SECRET.finditer(text)] if may_hold_token else []
    if "-----BEGIN" in text:
        spans += [m.span() for m in _PRIVATE_KEY.finditer(text)]
    lowered = text.lower()
    if contains_any(lowered, _ASSIGNMENT_WORDS):
        spans += [m.span() for m in _ASSIGNED_SECRET.finditer(text)]
    return spans


def _email_spans(text: str, source: str) -> list[Span]:
    """The e-mail addresses in ``text`` the customer did not write (``source``)."""
    if "@" not in text:
        return []
    found = list(_EMAIL.finditer(text))
    if not found:
        return []
    known = {m.group("address").lower() for m in _EMAIL.finditer(source)}
    return [m.span("address") for m in found if m.group("address").lower() not in known]


def _phone_spans(text: str, source: str, cards: list[Span]) -> list[Span]:
    """The phone numbers in ``text`` (not inside a card number) the customer did not write."""

    def inside_card(span: Span) -> bool:
        return any(start <= span[0] and span[1] <= end for start, end in cards)

    found = [m for m in _PHONE.finditer(text) if not inside_card(m.span())]
    if not found:
        return []
    known = {_digits(m.group(0)) for m in _PHONE.finditer(source)}
    return [m.span() for m in found if _digits(m.group(0)) not in known]


def check_draft(draft: str, config: GuardrailConfig, *, customer_text: Iterable[str] = ()) -> GuardrailResult:
    """Run every configured check on ``draft``.

    ``customer_text`` is what the customer wrote (subject, body, their own contact
    details): e-mail addresses and phone numbers found there may appear in the draft.
    """
    checks: list[str] = [CHECK_EMPTY, CHECK_MAX_LENGTH]
    failed: list[str] = []
    pii_spans: list[tuple[int, int, str]] = []

    if not draft.strip():
        failed.append(CHECK_EMPTY)
    if len(draft) > config.max_length:
        failed.append(CHECK_MAX_LENGTH)

    if config.forbidden_phrases:
        checks.append(CHECK_FORBIDDEN_PHRASE)
        normalized = _normalize(draft)
        if any(_normalize(p) and _normalize(p) in normalized for p in config.forbidden_phrases):
            failed.append(CHECK_FORBIDDEN_PHRASE)

    if config.block_pii:
        # What the customer wrote is scanned only for a draft with an address or a number in it.
        source = "\n".join(customer_text)
        # Most drafts hold a few digits at most: the patterns that need many are not run on them.
        digits = ascii_digit_count(draft)

        def may_hold(fewest: int) -> bool:
            return digits is None or digits >= fewest

        cards = _card_spans(draft) if may_hold(_CARD_DIGITS) else []
        findings: list[tuple[str, list[Span]]] = [
            (CHECK_CARD_NUMBER, cards),
            (CHECK_SSN, [m.span() for m in _SSN.finditer(draft)] if may_hold(_SSN_DIGITS) else []),
            (CHECK_SECRET, _secret_spans(draft)),
            (CHECK_EMAIL, _email_spans(draft, source)),
            (CHECK_PHONE, _phone_spans(draft, source, cards) if may_hold(_PHONE_DIGITS) else []),
        ]
        for check, spans in findings:
            checks.append(check)
            if spans:
                failed.append(check)
                pii_spans += [(start, end, check) for start, end in spans]

    return GuardrailResult(checks=tuple(checks), failed=tuple(failed), redacted_draft=_redact(draft, pii_spans))


def _redact(text: str, spans: list[tuple[int, int, str]]) -> str:
    # Right to left, so earlier offsets stay valid; overlapping findings merge into one mask.
    result = text
    last_start = len(text) + 1
    for start, end, check in sorted(spans, key=lambda s: s[0], reverse=True):
        end = min(end, last_start)
        if start >= end:
            continue
        result = f"{result[:start]}[redacted: {check}]{result[end:]}"
        last_start = start
    return result
