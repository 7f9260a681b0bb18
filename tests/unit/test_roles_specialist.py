"""Specialist drafts and the guardrails they must pass; failing drafts go to people, never away."""

from __future__ import annotations

import asyncio
import random
import re

import pytest

from agent_runtime.roles import guardrails
from agent_runtime.roles.guardrails import check_draft, luhn_valid
from agent_runtime.roles.specialist import Escalation, Resolution, SpecialistRole
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import GuardrailConfig, Priority, SpecialistConfig, TicketType
from tests.unit.agent_fixtures import ScriptedProvider, incomplete, metric

pytestmark = pytest.mark.unit

DEFAULTS = GuardrailConfig()
TICKET = Ticket(
    "TCK-1", "cust-1", "Refund", "Please refund me. You can reach me at maria@example.com or +1 415-555-0132."
)
DECISION = TriageDecision(TicketType.BILLING, Priority.HIGH, 0.9)
CUSTOMER_TEXT = [TICKET.subject, TICKET.body]


def failed(draft: str, config: GuardrailConfig = DEFAULTS) -> tuple[str, ...]:
    return check_draft(draft, config, customer_text=CUSTOMER_TEXT).failed


def test_a_plain_helpful_draft_passes_every_check() -> None:
    result = check_draft("Hi Maria,\n\nWe are reviewing the $49.99 charge.\n", DEFAULTS, customer_text=CUSTOMER_TEXT)
    assert result.passed
    assert {"empty", "max_length", "pii_card_number", "pii_ssn", "pii_secret", "pii_email", "pii_phone"} <= set(
        result.checks
    )


@pytest.mark.parametrize("card", ["4111 1111 1111 1111", "4111-1111-1111-1111", "5500000000000004", "378282246310005"])
def test_a_luhn_valid_card_number_is_blocked(card: str) -> None:
    assert failed(f"We refunded the card {card}.") == ("pii_card_number",)


def test_a_long_number_that_fails_luhn_is_an_order_number_not_a_card() -> None:
    assert not luhn_valid("4111111111111112")
    assert failed("Your order 4111111111111112 has shipped.") == ()


def test_a_social_security_number_is_blocked() -> None:
    assert failed("We verified SSN 123-45-6789 on file.") == ("pii_ssn",)


@pytest.mark.parametrize(
    "secret",
    [
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv",
        "sk-proj-abcdefghijklmnopqrstuvwx",
        "AKIAIOSFODNN7EXAMPLE",
        "ghp_0123456789abcdefghijklmnopqrstuvwxyz",
        "xoxb-123456789012-abcdefghij",
        "-----BEGIN RSA PRIVATE KEY-----",
        "password: Hunter2!xyz",
        "api_key=9f8e7d6c5b4a3210",
    ],
)
def test_anything_that_looks_like_a_credential_is_blocked(secret: str) -> None:
    assert failed(f"Use this to sign in: {secret}") == ("pii_secret",)


def test_the_word_password_alone_is_not_a_secret() -> None:
    assert failed("Use Forgot password on the sign-in page; we never ask for your password.") == ()


def test_the_customers_own_email_and_phone_may_be_repeated_back() -> None:
    assert failed("We will write to maria@example.com or call +1 415-555-0132.") == ()


def test_somebody_elses_email_or_phone_is_blocked() -> None:
    assert failed("Contact john.doe@othercorp.com about it.") == ("pii_email",)
    assert failed("Call our agent on +44 20 7946 0958.") == ("pii_phone",)


def test_pii_checks_can_be_turned_off() -> None:
    assert failed("SSN 123-45-6789", GuardrailConfig(block_pii=False)) == ()


def test_forbidden_phrases_match_regardless_of_case_and_spacing() -> None:
    config = GuardrailConfig(forbidden_phrases=["guaranteed refund", "legal advice"])
    assert failed("You get a Guaranteed\n  Refund today.", config) == ("forbidden_phrase",)
    assert failed("We will review your refund.", config) == ()


def test_a_draft_over_the_length_limit_fails() -> None:
    assert failed("x" * 101, GuardrailConfig(max_length=100)) == ("max_length",)
    assert failed("x" * 100, GuardrailConfig(max_length=100)) == ()


def test_an_empty_draft_fails() -> None:
    assert failed("  \n ") == ("empty",)


def test_the_reason_names_the_checks_and_the_redacted_draft_hides_the_pii() -> None:
    result = check_draft("Card 4111 1111 1111 1111, SSN 123-45-6789.", DEFAULTS, customer_text=CUSTOMER_TEXT)
    assert result.reason() == "draft failed guardrails: pii_card_number, pii_ssn"
    assert "4111" not in result.reason() and "6789" not in result.reason()
    assert result.redacted_draft == "Card [redacted: pii_card_number], SSN [redacted: pii_ssn]."


def specialist(
    provider: ScriptedProvider, guardrails: GuardrailConfig = DEFAULTS, agent: str = "t-spec"
) -> SpecialistRole:
    return SpecialistRole(SpecialistConfig(specialty=TicketType.BILLING), guardrails, provider, agent=agent)


def test_a_draft_that_passes_is_a_resolution() -> None:
    provider = ScriptedProvider(draft_text="Hi Maria,\n\nWe are reviewing it.\n")
    outcome = asyncio.run(specialist(provider).respond(TICKET, DECISION))
    assert isinstance(outcome, Resolution)
    assert outcome.draft == "Hi Maria,\n\nWe are reviewing it.\n"


def test_a_draft_that_fails_a_guardrail_is_escalated_with_the_reason_and_counted() -> None:
    before = metric("srs_agent_guardrail_blocked_total", agent="t-spec-pii", check="pii_ssn")
    provider = ScriptedProvider(draft_text="Hi Maria, we matched SSN 123-45-6789 to your account.")
    outcome = asyncio.run(specialist(provider, agent="t-spec-pii").respond(TICKET, DECISION))
    assert isinstance(outcome, Escalation)
    assert outcome.failed_checks == ("pii_ssn",)
    assert outcome.reason == "draft failed guardrails: pii_ssn"
    assert "123-45-6789" not in outcome.draft and "[redacted: pii_ssn]" in outcome.draft
    assert metric("srs_agent_guardrail_blocked_total", agent="t-spec-pii", check="pii_ssn") == before + 1


def test_a_draft_the_model_could_not_finish_is_escalated_not_sent() -> None:
    provider = ScriptedProvider(error=incomplete("the model stopped at its token limit", "Hi Maria, we"))
    outcome = asyncio.run(specialist(provider).respond(TICKET, DECISION))
    assert isinstance(outcome, Escalation)
    assert outcome.failed_checks == ("incomplete_draft",)
    assert outcome.draft == "Hi Maria, we"


def test_the_customer_record_counts_as_the_customers_own_contact_details() -> None:
    provider = ScriptedProvider(draft_text="We will write to maria.billing@acme.test.")
    role = specialist(provider)
    assert isinstance(asyncio.run(role.respond(TICKET, DECISION)), Escalation)
    known = {"contacts": {"billing_email": "maria.billing@acme.test"}}
    assert isinstance(asyncio.run(role.respond(TICKET, DECISION, known)), Resolution)


@pytest.mark.parametrize(("body_chars", "on_the_loop"), [(1_000, True), (20_000, False)])
def test_the_guardrails_of_a_long_ticket_run_off_the_event_loop(
    body_chars: int, on_the_loop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from agent_runtime.roles import specialist as module

    threads: list[int] = []

    def recording(*args: object, **kwargs: object) -> object:
        threads.append(threading.get_ident())
        return check_draft(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "check_draft", recording)
    ticket = Ticket("TCK-2", "cust-1", "Refund", "Please refund the duplicate charge. " * (body_chars // 36))
    outcome = asyncio.run(specialist(ScriptedProvider(draft_text="Hi, we are on it.")).respond(ticket, DECISION))
    assert isinstance(outcome, Resolution)
    assert (threads == [threading.get_ident()]) is on_the_loop


def test_the_checks_skipped_for_want_of_digits_are_the_checks_that_find_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pattern that needs more digits than an ASCII draft holds is not run on it; run on
    every draft (the count unknown), every check says the same, redactions included."""
    import random

    from agent_runtime.roles import guardrails

    rng = random.Random(3)
    pieces = ("4111 1111 1111 1111", "4222222222222", "4111-1111-1111-1112", "123-45-6789", "078 05 1120",
              "+1 415-555-0132", "(415) 555 0132", "415.555.0132", "12 345 678", "order 12345678", "5 to 10 days",
              "Zoë", "٣٣٣",
              "maria@example.com", "call 555-0132", "1234567", "12-34-5678", " ", ", ", "\n", "Hello")  # fmt: skip
    drafts = ["".join(rng.choice(pieces) + rng.choice(" -.\n") for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    known = ["Reach me at +1 415-555-0132 or maria@example.com"]
    quick = [check_draft(d, DEFAULTS, customer_text=known) for d in drafts]
    monkeypatch.setattr(guardrails, "ascii_digit_count", lambda _text: None)
    assert quick == [check_draft(d, DEFAULTS, customer_text=known) for d in drafts]
    # Both sides of each skip are in the drafts.
    for check in ("pii_card_number", "pii_ssn", "pii_phone"):
        assert 100 < sum(check in r.failed for r in quick) < 2900, check


def test_the_number_patterns_find_what_they_found_as_first_written() -> None:
    # The patterns as first written (a lookbehind first); the shipped ones start with the digit.
    card = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
    ssn = re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}(?![\d-])")
    rng = random.Random(4)
    pieces = ["0", "00", "000", "0000", "666", "9", "123", "45", "6789", "1", "-", " ", "x", "\n", "٣", "5555 5555"]
    areas, groups, serials = ["000", "666", "912", "899", "123", "٣45"], ["00", "01", "45"], ["0000", "0001", "6789"]
    edges = ["", "-", " ", "7", "x", "--"]
    found = 0
    for n in range(60_000):
        if n % 2:
            text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 16)))
        else:  # SSN-shaped, with the areas, groups and serials it must refuse, and what may touch it
            sep = [rng.choice("- x") for _ in range(2)]
            text = rng.choice(edges) + rng.choice(areas) + sep[0] + rng.choice(groups) + sep[1]
            text += rng.choice(serials) + rng.choice(edges)
        for first, shipped in ((card, guardrails._CARD_CANDIDATE), (ssn, guardrails._SSN)):
            spans = [m.span() for m in first.finditer(text)]
            assert [m.span() for m in shipped.finditer(text)] == spans, (first.pattern, text)
            found += bool(spans)
    assert found > 5_000  # many texts hold one: the comparison is not vacuous


def test_the_phone_pattern_finds_what_it_found_as_first_written() -> None:
    first = re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?|\d{2,4}[\s.-])\d{3,4}[\s.-]\d{3,4}(?![\w])"
    )
    rng = random.Random(2)

    def digits(k: int) -> str:
        return "".join(rng.choice("0123456789٣") for _ in range(k))

    found = 0
    for _ in range(60_000):  # phone-shaped: country code or not, area in brackets or not, near misses
        parts = []
        if rng.random() < 0.5:
            parts.append("+" + digits(rng.randint(0, 4)) + rng.choice(["", " ", ".", "-", "x"]))
        if rng.random() < 0.5:
            parts.append("(" + digits(rng.randint(1, 5)) + ")" + rng.choice(["", " ", "-", "x"]))
        else:
            parts.append(digits(rng.randint(1, 5)) + rng.choice([" ", ".", "-", "x", ""]))
        parts.append(digits(rng.randint(2, 5)) + rng.choice([" ", ".", "-", "x"]) + digits(rng.randint(2, 5)))
        text = rng.choice(["", "a", "+", "_", " ", "9", "-"]) + "".join(parts) + rng.choice(["", "a", " ", "5", "-"])
        spans = [m.span() for m in first.finditer(text)]
        assert [m.span() for m in guardrails._PHONE.finditer(text)] == spans, text
        found += bool(spans)
    assert found > 1_500
