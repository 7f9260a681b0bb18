"""The offline provider: classifier-backed triage and per-specialty templates that use the ticket's specifics."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from agent_runtime.providers import build_provider
from agent_runtime.providers.base import DraftRequest
from agent_runtime.providers.offline import OfflineProvider, render_draft, template_environment
from agent_runtime.providers.specifics import extract
from agent_runtime.roles.guardrails import check_draft
from agent_runtime.tickets import Ticket, TriageDecision
from srs_contracts.agent_config import GuardrailConfig, Priority, TicketType
from tests.unit.agent_fixtures import FakePrediction, KeywordClassifier, metric, triage_config

pytestmark = pytest.mark.unit

# Ticket(ticket_id, customer_id, subject, body): one of each type.
BILLING = Ticket(
    "TCK-1001", "cust-42", "Charged twice for invoice INV-20931",
    "Hello, I was charged $49.99 twice this month for my Pro plan (order #48213). "
    "I'd like a refund of the duplicate.\n\nThanks,\nMaria Lopez",
)  # fmt: skip
TECHNICAL = Ticket(
    "TCK-1002", "cust-7", "App crashes when opening projects",
    "Since version 4.2.1 the iOS app crashes with error E_SYNC_409 whenever I open a project.",
)  # fmt: skip
FEATURE = Ticket(
    "TCK-1003", "cust-8", "Dark mode",
    "Love the product. It would be great if the dashboard had a dark mode for night shifts.\n\nCheers,\nKenji",
)  # fmt: skip
ACCOUNT = Ticket(
    "TCK-1004", "cust-9", "Lost my authenticator",
    "I got a new phone and the 2FA app is gone, so I cannot log in. My name is Priya.",
)  # fmt: skip
OTHER = Ticket("TCK-1005", "cust-10", "Partnership question", "Do you run a reseller program for agencies like ours?")


def decision(ticket_type: TicketType, priority: Priority = Priority.MEDIUM) -> TriageDecision:
    return TriageDecision(ticket_type, priority, 0.9, "test")


def draft(ticket: Ticket, specialty: TicketType, priority: Priority = Priority.MEDIUM, **kw: Any) -> str:
    return render_draft(ticket, decision(specialty, priority), specialty, kw.get("customer"))


def test_there_is_a_template_for_every_specialty() -> None:
    names = set(template_environment().list_templates())
    assert {f"{t.value}.txt.j2" for t in TicketType} <= names


def test_billing_reply_greets_the_customer_and_repeats_amount_invoice_and_plan() -> None:
    text = draft(BILLING, TicketType.BILLING)
    assert text.startswith("Hi Maria,\n")
    assert "$49.99" in text and "INV-20931" in text and "#48213" in text and "Pro plan" in text
    assert "taken twice" in text  # the double-charge paragraph
    assert "TCK-1001" in text


def test_technical_reply_names_the_error_platform_and_version() -> None:
    text = draft(TECHNICAL, TicketType.TECHNICAL)
    assert "E_SYNC_409" in text and "iOS" in text and "4.2.1" in text
    assert "1. Update to the latest version" in text  # crash steps, as a numbered list
    assert text.startswith("Hi there,")  # no name anywhere: no invented one


def test_feature_request_reply_quotes_what_was_asked_for() -> None:
    text = draft(FEATURE, TicketType.FEATURE_REQUEST)
    assert text.startswith("Hi Kenji,")
    assert "dark mode for night shifts" in text


def test_account_reply_answers_the_two_factor_problem() -> None:
    text = draft(ACCOUNT, TicketType.ACCOUNT)
    assert text.startswith("Hi Priya,")
    assert "backup codes" in text
    assert "Forgot password" not in text


def test_other_reply_acknowledges_the_subject() -> None:
    assert '"Partnership question"' in draft(OTHER, TicketType.OTHER)


def test_the_customer_record_name_wins_over_the_sign_off() -> None:
    assert draft(BILLING, TicketType.BILLING, customer={"name": "Dr. Ana Souza"}).startswith("Hi Ana,\n")
    assert draft(BILLING, TicketType.BILLING, customer={"first_name": "Ana"}).startswith("Hi Ana,\n")


def test_urgent_tickets_say_so_and_routine_ones_do_not() -> None:
    assert "marked your ticket as critical" in draft(TECHNICAL, TicketType.TECHNICAL, Priority.CRITICAL)
    assert "marked your ticket" not in draft(TECHNICAL, TicketType.TECHNICAL, Priority.LOW)


def test_drafts_are_deterministic() -> None:
    assert {draft(BILLING, TicketType.BILLING) for _ in range(5)} == {draft(BILLING, TicketType.BILLING)}


@pytest.mark.parametrize("ticket", [BILLING, TECHNICAL, FEATURE, ACCOUNT, OTHER], ids=lambda t: t.ticket_id)
@pytest.mark.parametrize("specialty", list(TicketType), ids=lambda t: t.value)
def test_every_offline_draft_passes_the_default_guardrails(ticket: Ticket, specialty: TicketType) -> None:
    text = draft(ticket, specialty, Priority.HIGH)
    result = check_draft(text, GuardrailConfig(), customer_text=[ticket.subject, ticket.body])
    assert result.passed, result.failed
    assert "{{" not in text and "{%" not in text


def test_specifics_never_pick_up_card_like_digit_runs() -> None:
    ticket = Ticket("T", "c", "Refund", "Order 4111111111111111 was charged $10.00 on invoice INV-77812.")
    specifics = extract(ticket)
    assert specifics.references == ("INV-77812",)
    assert specifics.amounts == ("$10.00",)


def test_classify_reports_the_classifier_prediction() -> None:
    provider = OfflineProvider(agent="t-offline", classifier=KeywordClassifier())
    result = asyncio.run(provider.classify(BILLING))
    assert result == TriageDecision(TicketType.BILLING, Priority.HIGH, 0.9, "mentions billing words")


class _BrokenClassifier:
    def predict(self, subject: str, body: str) -> FakePrediction:
        return FakePrediction("spam", Priority.LOW, 0.99, "?")  # type: ignore[arg-type]


def test_a_prediction_outside_the_ticket_types_becomes_unknown_with_no_confidence() -> None:
    before = metric("srs_agent_provider_errors_total", agent="t-offline-bad", provider="offline", kind="invalid_output")
    provider = OfflineProvider(agent="t-offline-bad", classifier=_BrokenClassifier())
    result = asyncio.run(provider.classify(BILLING))
    assert result.type is None and result.confidence == 0.0
    after = metric("srs_agent_provider_errors_total", agent="t-offline-bad", provider="offline", kind="invalid_output")
    assert after == before + 1


def test_offline_provider_is_the_default_and_uses_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the offline provider opened a socket")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    # The provider an agent gets by default, with the shipped classifier (no stand-in).
    provider = build_provider(triage_config().model, agent="t-offline-net")
    assert isinstance(provider, OfflineProvider) and provider.name == "offline"
    classified = asyncio.run(provider.classify(TECHNICAL))
    assert classified.type is TicketType.TECHNICAL
    draft = asyncio.run(provider.draft(DraftRequest(TECHNICAL, decision(TicketType.TECHNICAL), TicketType.TECHNICAL)))
    assert draft.strip()


def test_offline_calls_are_observed_in_the_llm_latency_histogram() -> None:
    labels = {"agent": "t-offline-lat", "provider": "offline", "operation": "draft"}
    before = metric("srs_agent_llm_latency_seconds_count", **labels)
    provider = OfflineProvider(agent="t-offline-lat", classifier=KeywordClassifier())
    asyncio.run(provider.draft(DraftRequest(OTHER, decision(TicketType.OTHER), TicketType.OTHER)))
    assert metric("srs_agent_llm_latency_seconds_count", **labels) == before + 1
