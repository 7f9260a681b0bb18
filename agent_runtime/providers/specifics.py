"""The specifics of a ticket that a response should mention: name, amounts, references, products.

Used by the offline provider's templates, so that an answer reads like it was written
for this customer and this problem. Plain pattern matching: deterministic and fast. It
never picks up anything a guardrail would reject (long digit runs, e-mail addresses).

Every pattern runs in linear time on any text (the ticket is hostile input): matches
start only where a run starts, repeated groups are possessive, and the whitespace a
pattern skips is bounded. ``tests/unit/test_roles_hostile_text.py`` holds the adversarial inputs.

A pattern that cannot match a text is not run on it (each skip is a fact of the pattern:
one that needs a digit is not run on a text without any, one that needs a word of a list on
a text without it), and on ASCII text the case-insensitive tags are matched on the text
lower-cased once: a 1 KB ticket's specifics took ~0.8 ms, most of it in patterns searching
text where they could not match. ``tests/unit/test_specifics_fast.py`` holds them to
running every pattern everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agent_runtime.textscan import NeedleGroups, has_digit
from agent_runtime.tickets import Ticket

_MAX_ITEMS: Final = 3

_AMOUNT: Final = re.compile(
    # Not inside a number either ("1,000,000": one try at its start, not one per group).
    r"(?<![\w.])(?<!\d,)(?:[$€£¥]\s?\d{1,3}(?:,\d{3})*+(?:\.\d{1,2})?(?!\d)"
    r"|\d{1,3}(?:,\d{3})*+(?:\.\d{1,2})?\s?(?:USD|EUR|GBP|dollars|euros|pounds)\b)",
    re.IGNORECASE,
)
_REFERENCE: Final = re.compile(
    r"\b(?:INV|ORD|ORDER|TKT|CASE|SUB|ACCT|REF|PO|RMA)[-_#]?[A-Z0-9]*\d[A-Z0-9-]{2,}\b"
    r"|(?<![\w#])#\d{3,12}\b",
    re.IGNORECASE,
)
_LABELLED_REFERENCE: Final = re.compile(
    r"\b(?:invoice|order|receipt|transaction|case|reference|booking)\s{0,8}(?:number|no\.?|id|#)?\s{0,8}[:#]?\s{0,8}"
    r"([A-Z0-9][A-Z0-9-]{3,19})\b",
    re.IGNORECASE,
)
_PRODUCT_WORDS: Final = ("plan", "subscription", "tier", "edition", "license", "add-on")
_PRODUCT: Final = re.compile(
    r"\b((?:[A-Z][\w+]*\s){0,2}[A-Z][\w+]*)\s(" + "|".join(map(re.escape, _PRODUCT_WORDS)) + r")\b",
)
_PLATFORMS: Final = (
    "iOS", "Android", "Windows", "macOS", "Linux", "Chrome", "Firefox", "Safari", "Edge", "iPhone", "iPad", "Slack",
    "Salesforce", "Zapier", "Shopify", "Stripe", "PayPal", "Jira", "GitHub", "Okta", "Azure AD", "Google Workspace",
)  # fmt: skip
_PLATFORM: Final = re.compile(r"\b(" + "|".join(map(re.escape, _PLATFORMS)) + r")\b")
_ERROR_WORDS: Final = ("err", "code", "status", "exception")  # "error" holds "err"
_ERROR_CODE: Final = re.compile(
    r"\b(?:error|err|code|status|exception)\s{0,8}(?:code)?\s{0,8}[:#]?\s{0,8}"
    r"((?=[A-Z0-9_-]*\d)[A-Z][A-Z0-9_-]{2,24}|\d{3,5}|[A-Z][A-Z0-9]*_[A-Z0-9_]+)\b"
)
#: Whether a text holds a product word, a platform, an error word: one pass for the three.
_WORD_GROUPS: Final = NeedleGroups((_PRODUCT_WORDS, _PLATFORMS, _ERROR_WORDS))
_HTTP_STATUS: Final = re.compile(r"\b([45]\d\d)\s+(?:error|bad|unauthori[sz]ed|forbidden|not found|internal)", re.I)
_VERSION: Final = re.compile(r"\b(?:version|v\.?|release)\s?(\d+(?:\.\d+){1,3})\b", re.IGNORECASE)
_REQUEST_CUE: Final = re.compile(
    r"would (?:be|love)|please add|could you (?:add|make|support|build|allow)|can you (?:add|make|support|allow)|"
    r"feature request|i'?d (?:like|love)|i would (?:like|love)|wish (?:there|you|it)|it would help|"
    r"is there (?:any )?way to|we need (?:a|an|the ability)|support for|ability to",
    re.IGNORECASE,
)
_SENTENCE: Final = re.compile(r"[^.!?\n]+[.!?]?")
_SIGNOFF: Final = re.compile(
    r"^(?:thanks|thank you|many thanks|regards|best regards|kind regards|best|cheers|sincerely|warm regards|"
    r"thx|br)[,!.]?\s*$",
    re.IGNORECASE,
)
_NAME_LINE: Final = re.compile(r"^-*\s*([A-Z][a-zA-Z'’-]{1,20}(?:\s[A-Z][a-zA-Z'’-]{1,20}){0,2})\s*$")
_MY_NAME: Final = re.compile(r"\b(?i:my name is) ([A-Z][a-zA-Z'’-]{1,20})\b")
_TAGS: Final = {
    "password": re.compile(r"password|reset link|forgot", re.I),
    "two_factor": re.compile(r"2fa|two[- ]factor|mfa|authenticator|verification code|one[- ]time code", re.I),
    "locked": re.compile(
        r"locked|lockout|suspended|disabled account|can'?t (?:log|sign) ?in|cannot (?:log|sign) ?in", re.I
    ),
    "email_change": re.compile(r"change (?:my |the )?e-?mail|update (?:my |the )?e-?mail|new e-?mail", re.I),
    "delete_account": re.compile(r"delete (?:my )?account|close (?:my )?account|cancel (?:my )?account|gdpr", re.I),
    "users": re.compile(r"\b(?:seat|seats|invite|teammate|permission|role|admin rights)\b", re.I),
    "refund": re.compile(r"refund|money back|reimburse", re.I),
    "double_charge": re.compile(r"charged twice|double[- ]charged|duplicate charge|billed twice", re.I),
    "cancel": re.compile(r"\bcancel", re.I),
    "upgrade": re.compile(r"upgrade|downgrade|switch (?:to|plans?)", re.I),
    "invoice": re.compile(r"invoice|receipt|vat|tax", re.I),
    "outage": re.compile(r"\bdown\b|outage|not loading|unavailable|all users", re.I),
    "crash": re.compile(r"crash|freez|hang", re.I),
    "integration": re.compile(r"\bapi\b|webhook|integration|\bsdk\b", re.I),
    "slow": re.compile(r"slow|latency|timeout|timing out", re.I),
}


def _lower_case_twin(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """``pattern`` (case-insensitive, written in lower case) as a case-sensitive pattern: on
    ASCII text, it matches the text lower-cased exactly where ``pattern`` matches the text."""
    if not pattern.flags & re.IGNORECASE or pattern.pattern != pattern.pattern.lower():
        raise ValueError(f"not a case-insensitive pattern written in lower case: {pattern.pattern!r}")
    return re.compile(pattern.pattern)


#: The tags' patterns for ASCII text lower-cased (Python's case-insensitive matching of an
#: alternation tries every branch at every position of the text: ~15x slower here) …
_TAGS_LOWER: Final = {tag: _lower_case_twin(p) for tag, p in _TAGS.items()}
#: … and, per tag, the texts every match starts with (a pattern that cannot tell searches
#: always): a tag none of whose texts is in the text is not searched for.
_TAG_STARTS: Final = NeedleGroups.starts_of(_TAGS_LOWER.values())
_NAME_KEYS: Final = ("first_name", "given_name", "name", "full_name", "customer_name", "display_name")
_HONORIFICS: Final = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam"})
_NOT_NAMES: Final = frozenset({"Team", "Support", "Admin", "Customer", "User", "Sent", "Thanks", "Regards"})


@dataclass(frozen=True)
class TicketSpecifics:
    """What a reply to one ticket can refer to."""

    first_name: str | None
    amounts: tuple[str, ...]
    references: tuple[str, ...]
    plans: tuple[str, ...]  # "Pro plan", "Enterprise subscription"
    platforms: tuple[str, ...]  # "iOS", "Chrome", "Salesforce"
    error_codes: tuple[str, ...]
    versions: tuple[str, ...]
    request: str | None  # the sentence asking for something (feature requests)
    topic: str  # the subject, tidied up to quote in a sentence
    tags: frozenset[str]  # what the ticket mentions (password, refund, outage, …): picks template paragraphs


def _unique(values: Iterable[str], limit: int = _MAX_ITEMS) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for value in values:
        cleaned = value.strip().rstrip(".,;:")
        # "#48213" and "48213" are one reference.
        key = re.sub(r"[^0-9a-z]", "", cleaned.lower()) or cleaned.lower()
        if cleaned and key not in seen:
            seen[key] = cleaned
        if len(seen) >= limit:
            break
    return tuple(seen.values())


def _first_name_from(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    words = [w for w in value.split() if w.lower().rstrip(".") not in _HONORIFICS]
    first = words[0] if words else ""
    return first if re.fullmatch(r"[^\W\d_][\w'’-]{0,30}", first) else None


def _name_from_signoff(body: str) -> str | None:
    lines = [line.strip() for line in body.strip().splitlines()]
    for i, line in enumerate(lines):
        if _SIGNOFF.match(line):
            for following in lines[i + 1 : i + 3]:
                match = _NAME_LINE.match(following)
                if match and match.group(1).split()[0] not in _NOT_NAMES:
                    return match.group(1).split()[0]
                if following:
                    break
    match = _MY_NAME.search(body)
    return match.group(1) if match else None


def customer_first_name(ticket: Ticket, customer: Mapping[str, Any] | None) -> str | None:
    """The customer's first name: from the customer record, the ticket's metadata, or the sign-off."""
    for source in (customer or {}, ticket.metadata):
        for key in _NAME_KEYS:
            name = _first_name_from(source.get(key))
            if name:
                return name
    return _name_from_signoff(ticket.body)


def _topic(subject: str) -> str:
    topic = " ".join(subject.split()).strip().rstrip(".!?")
    topic = re.sub(r"^(?:re|fwd?|aw)\s*:\s*", "", topic, flags=re.IGNORECASE)
    return topic[:120] if topic else "your request"


def _request_sentence(text: str) -> str | None:
    """The first sentence of ``text`` with a request cue in it. A cue holds no sentence end
    (``.!?`` or a line break) and looks at nothing around it, so the first cue in the text
    lies in that sentence."""
    cue = _REQUEST_CUE.search(text)
    if cue is None:
        return None
    for sentence in _SENTENCE.finditer(text):
        if sentence.end() > cue.start():
            cleaned = " ".join(sentence.group().split())
            return cleaned if len(cleaned) <= 200 else cleaned[:197].rstrip() + "…"
    return None  # unreachable: every character a cue can match is in a sentence


def extract(ticket: Ticket, customer: Mapping[str, Any] | None = None) -> TicketSpecifics:
    """The specifics of ``ticket`` (subject and body), in the order they appear."""
    text = f"{ticket.subject}\n{ticket.body}"
    ascii_text = text.isascii()
    # Every pattern below but the tags', and the error codes' last branch (ERR_TIMEOUT),
    # matches a digit; the labelled references keep only those with one.
    digits = has_digit(text)
    product_words, platform_words, error_words = _WORD_GROUPS.present(text)
    references: list[str] = []
    errors: list[str] = []
    if digits:
        references += [m.group(0) for m in _REFERENCE.finditer(text)]
        references += [m.group(1) for m in _LABELLED_REFERENCE.finditer(text) if has_digit(m.group(1))]
    if (digits or "_" in text) and error_words:
        errors += [m.group(1) for m in _ERROR_CODE.finditer(text)]
    if digits:
        errors += [m.group(1) for m in _HTTP_STATUS.finditer(text)]
    if ascii_text:
        lowered = text.lower()
        tags = frozenset(
            tag
            for (tag, pattern), may in zip(_TAGS_LOWER.items(), _TAG_STARTS.present(lowered), strict=True)
            if may and pattern.search(lowered)
        )
    else:
        tags = frozenset(tag for tag, pattern in _TAGS.items() if pattern.search(text))
    return TicketSpecifics(
        first_name=customer_first_name(ticket, customer),
        amounts=_unique(m.group(0) for m in _AMOUNT.finditer(text)) if digits else (),
        # Long digit runs look like card or account numbers: never echo them.
        references=_unique(r for r in references if len(re.sub(r"\D", "", r)) <= 12),
        plans=_unique(f"{m.group(1)} {m.group(2)}" for m in _PRODUCT.finditer(text)) if product_words else (),
        platforms=_unique(m.group(1) for m in _PLATFORM.finditer(text)) if platform_words else (),
        error_codes=_unique(errors),
        versions=_unique(m.group(1) for m in _VERSION.finditer(text)) if digits else (),
        request=_request_sentence(ticket.body) or _request_sentence(ticket.subject),
        topic=_topic(ticket.subject),
        tags=tags,
    )
