"""Guardrails, ticket specifics and the offline classifier scan hostile text in linear time.

Each input below made at least one pattern quadratic before (an e-mail pattern that
rescanned ``a.a.a.…`` from every position took ~80 s on 300 KB and ~15 min on 1 MB). The
linear-time test measures it: four times the text may cost at most about four times the CPU
(a quadratic scan costs sixteen times); the figures per input are printed by
``benchmarks/hostile_text_benchmark.py``.
"""

from __future__ import annotations

import time

import pytest

from agent_runtime.offline.features import analyse
from agent_runtime.providers.specifics import extract
from agent_runtime.roles.guardrails import CHECK_EMAIL, CHECK_SECRET, check_draft
from agent_runtime.tickets import Ticket
from srs_contracts.agent_config import GuardrailConfig

pytestmark = pytest.mark.unit

#: Repeated units that each defeated one pattern (see the module docstrings of guardrails/specifics).
HOSTILE_UNITS = (
    "a.", "a-", "1-", "a@", "a1-", "x@a.", "eyJ-", "sk-", "pwd:", "pwd:1", "1,", ",000", "$1", "1 ", "A ", "Aa ",
    "invoice ", "error ", "error code ", " ", "\n", ".", "+1 ", "(12) ", "INV1-", "v1.", "Thanks\n",
)  # fmt: skip


def hostile(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def scan(text: str) -> None:
    check_draft(text, GuardrailConfig(max_length=10**9), customer_text=[text])
    analyse(text[:500], text)  # the offline classifier's tokeniser (1.4 s for 20,000 chars of "a." before)
    extract(Ticket(ticket_id="T", customer_id="c", subject=text[:500], body=text, metadata={"note": text}))


@pytest.mark.timeout(600)
def test_a_megabyte_of_dotted_text_is_scanned() -> None:
    text = hostile("a.", 1_000_000)
    result = check_draft(text, GuardrailConfig(max_length=10**9), customer_text=[text])
    assert result.passed  # and it returned: the old e-mail pattern needed ~15 min here


def cpu_seconds(text: str) -> float:
    """The least CPU time of three scans of ``text`` (CPU, not wall clock: a busy machine
    slows both sizes alike)."""
    times = []
    for _ in range(3):
        started = time.process_time()
        scan(text)
        times.append(time.process_time() - started)
    return min(times)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("unit", HOSTILE_UNITS)
def test_hostile_text_is_scanned_in_linear_time(unit: str) -> None:
    small, large = cpu_seconds(hostile(unit, 25_000)), cpu_seconds(hostile(unit, 100_000))
    # Linear: ~4x. Quadratic: ~16x. 8x leaves room for noise; 20 ms for timer granularity.
    assert large <= 8 * small + 0.02, f"{unit!r}: 25k chars {small:.3f}s, 100k chars {large:.3f}s"


def test_findings_survive_the_linear_patterns() -> None:
    config = GuardrailConfig()
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    assert CHECK_SECRET in check_draft(f"your token: {jwt}", config).failed
    assert CHECK_SECRET in check_draft("the password: hunter2!xyz", config).failed
    assert CHECK_EMAIL in check_draft("write to --someone.else@example.com.", config).failed
    mine = check_draft("we will write to jo.doe@example.com.", config, customer_text=["I am jo.doe@example.com"])
    assert mine.passed
    specifics = extract(Ticket(ticket_id="T", customer_id="c", subject="Refund", body="I paid $1,299.00 and 25 USD"))
    assert specifics.amounts == ("$1,299.00", "25 USD")
