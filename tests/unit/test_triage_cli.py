"""``srs triage``: ticket JSON lines in, one prediction per line out, bad lines reported not fatal."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from agent_runtime.tickets import Ticket, TriageDecision
from agent_runtime.triage_cli import run_triage, ticket_from_line
from srs_contracts.agent_config import Priority, TicketType
from tests.unit.agent_fixtures import ScriptedProvider, ticket_created
from tests.unit.wire_doubles import Reply, openai_completion, wire_server

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


class _EchoModel(ScriptedProvider):
    """Classifies by subject, so outputs can be matched to inputs."""

    async def classify(self, ticket: Ticket) -> TriageDecision:
        await asyncio.sleep(0.01 if ticket.subject == "slow" else 0)
        if ticket.subject == "boom":
            raise RuntimeError("provider exploded")
        return TriageDecision(TicketType.OTHER, Priority.LOW, 0.5, ticket.subject)


def run(lines: list[str], concurrency: int = 4) -> tuple[list[dict[str, object]], str, int]:
    out, err = io.StringIO(), io.StringIO()
    code = asyncio.run(run_triage(_EchoModel(), io.StringIO("".join(lines)), out, err, concurrency))
    return [json.loads(line) for line in out.getvalue().splitlines()], err.getvalue(), code


def test_each_ticket_line_gives_one_prediction_line_in_input_order() -> None:
    lines = [json.dumps({"ticket_id": f"T{i}", "subject": "slow" if i % 2 else f"s{i}", "body": "b"}) + "\n"
             for i in range(10)]  # fmt: skip
    results, errors, code = run(lines)
    assert code == 0 and errors == ""
    assert [r["ticket_id"] for r in results] == [f"T{i}" for i in range(10)]
    assert all({"type", "priority", "confidence"} <= set(r) for r in results)


def test_event_id_created_at_and_ticket_id_may_be_missing() -> None:
    results, _, _ = run([json.dumps({"subject": "Where is my invoice?", "body": "Need it for taxes."}) + "\n"])
    assert results == [{"type": "other", "priority": "low", "confidence": 0.5, "reasoning": "Where is my invoice?"}]


def test_bad_lines_give_error_objects_and_stderr_lines_and_the_run_goes_on() -> None:
    lines = [
        "{not json\n",
        "[1, 2]\n",
        json.dumps({"ticket_id": "T-empty"}) + "\n",
        json.dumps({"ticket_id": "T-boom", "subject": "boom", "body": "x"}) + "\n",
        "\n",  # blank lines are skipped, not errors
        json.dumps({"ticket_id": "T-ok", "subject": "fine", "body": "x"}) + "\n",
    ]
    results, errors, code = run(lines)
    assert code == 0
    assert [r.get("line") for r in results[:4]] == [1, 2, 3, 4]
    assert all("error" in r for r in results[:4])
    assert results[2]["ticket_id"] == "T-empty" and results[3]["ticket_id"] == "T-boom"
    assert "provider exploded" in str(results[3]["error"])
    assert results[4] == {
        "ticket_id": "T-ok",
        "type": "other",
        "priority": "low",
        "confidence": 0.5,
        "reasoning": "fine",
    }
    assert len(errors.splitlines()) == 4 and errors.startswith("srs triage: line 1:")


def test_a_full_ticket_created_event_is_read_whole() -> None:
    ticket = ticket_from_line(json.dumps(ticket_created(metadata={"plan": "pro"})))
    assert (ticket.ticket_id, ticket.event_id, ticket.channel, ticket.metadata) == (
        "TCK-1001", "evt-0001", "email", {"plan": "pro"},
    )  # fmt: skip


def test_the_command_runs_a_network_provider_through_its_real_sdk() -> None:
    answer = json.dumps({"type": "billing", "priority": "high", "confidence": 0.9, "reasoning": "refund"})
    with wire_server(Reply(200, openai_completion(answer))) as server:
        stdin = json.dumps(ticket_created()) + "\n" + "oops\n"
        result = subprocess.run(
            [sys.executable, "-m", "srs.cli", "triage", "--provider", "ollama", "--model", "llama3.1",
             "--base-url", f"{server.url}/v1"],
            input=stdin, capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first == {"ticket_id": "TCK-1001", "type": "billing", "priority": "high", "confidence": 0.9,
                     "reasoning": "refund"}  # fmt: skip
    assert second["line"] == 2 and "not JSON" in second["error"]
    assert len(server.requests) == 1


def test_a_network_provider_needs_a_model_name() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "srs.cli", "triage", "--provider", "anthropic"],
        input="", capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--model is required" in result.stderr


def test_the_command_defaults_to_the_offline_classifier() -> None:
    tickets = [
        {"ticket_id": "E1", "subject": "Refund for double charge", "body": "I was charged $30 twice, refund one."},
        {"subject": "Password reset link never arrives", "body": "I cannot log in to my account."},
    ]
    result = subprocess.run(
        [sys.executable, "-m", "srs.cli", "triage"],
        input="".join(json.dumps(t) + "\n" for t in tickets), capture_output=True, text=True, cwd=REPO,
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["ticket_id"] == "E1" and "ticket_id" not in second
    assert (first["type"], second["type"]) == ("billing", "account")
    for prediction in (first, second):
        assert prediction["priority"] in {p.value for p in Priority}
        assert 0.0 <= float(prediction["confidence"]) <= 1.0
