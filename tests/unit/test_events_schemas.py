"""The wire format: schemas from events/, validation that names fields, stable ids, traces, builders."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from agent_runtime import events
from agent_runtime.events import AgentInfo, Escalation, EventType, EventValidationError, Stage, TriageSection
from agent_runtime.traceparent import parse_traceparent
from tests.unit.agent_fixtures import ticket_created, ticket_triaged

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
AGENT = AgentInfo(name="triage", role="triage", provider="offline", model="offline-v1")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_schemas_are_read_from_the_repository_events_folder() -> None:
    assert events.schema_dir() == REPO / "events"
    for event_type in EventType:
        on_disk = json.loads((REPO / "events" / f"{event_type.value}.schema.json").read_text())
        assert events.schema(event_type) == on_disk


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    for event_type in EventType:
        Draft202012Validator.check_schema(events.schema(event_type))


def test_an_installed_package_finds_the_schemas_shipped_as_package_data(tmp_path: Path) -> None:
    # The layout pip installs: agent_runtime/events/ next to agent_runtime/schemas/*.json,
    # and no repository around it.
    package = tmp_path / "site" / "agent_runtime"
    (package / "schemas").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copytree(REPO / "agent_runtime" / "events", package / "events", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "agent_runtime" / "traceparent.py", package / "traceparent.py")
    for schema_file in (REPO / "events").glob("*.schema.json"):
        shutil.copy(schema_file, package / "schemas" / schema_file.name)
    probe = (
        "from agent_runtime import events; "
        "print(events.schema_dir()); events.validate(events.EventType.TICKET_CREATED, {})"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(tmp_path / "site")},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.stdout.splitlines()[0] == str(package / "schemas")
    assert "EventValidationError" in result.stderr and "event_type" in result.stderr


def test_pyproject_ships_the_events_folder_as_package_data() -> None:
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["agent_runtime.schemas"] == "events"
    assert "agent_runtime.schemas" in setuptools["packages"]
    assert "*.schema.json" in setuptools["package-data"]["agent_runtime.schemas"]
    assert "templates/*.j2" in setuptools["package-data"]["agent_runtime.providers"]


def test_a_complete_ticket_created_event_is_valid() -> None:
    events.validate(EventType.TICKET_CREATED, ticket_created())
    assert events.validation_errors(EventType.TICKET_CREATED, ticket_created()) == []


def test_a_missing_field_is_named_in_the_error() -> None:
    payload = ticket_created()
    del payload["body"]
    with pytest.raises(EventValidationError, match="'body' is a required property") as caught:
        events.validate(EventType.TICKET_CREATED, payload)
    assert caught.value.field == "$"


def test_a_wrong_nested_field_is_named_by_its_path() -> None:
    payload = ticket_triaged()
    payload["triage"]["route"] = "admin"
    with pytest.raises(EventValidationError) as caught:
        events.validate(EventType.TICKET_TRIAGED, payload)
    assert caught.value.field == "$.triage.route"


def test_the_ticket_inside_a_triaged_event_is_checked_against_ticket_created() -> None:
    payload = ticket_triaged(ticket_created(subject=""))
    with pytest.raises(EventValidationError) as caught:
        events.validate(EventType.TICKET_TRIAGED, payload)
    assert caught.value.field == "$.ticket.subject"


@pytest.mark.parametrize("created_at", ["yesterday", "2025-03-01", "2025-03-01T09:30:00", "2025-13-01T09:30:00Z"])
def test_timestamps_must_be_rfc3339_date_times(created_at: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        events.validate(EventType.TICKET_CREATED, ticket_created(created_at=created_at))
    assert caught.value.field == "$.created_at"


def test_timestamps_with_offsets_and_fractions_are_accepted() -> None:
    events.validate(EventType.TICKET_CREATED, ticket_created(created_at="2025-03-01T09:30:00.123+02:00"))


def test_date_times_found_valid_are_remembered_boundedly_and_invalid_ones_never() -> None:
    from agent_runtime.events import schemas

    for second in range(5_000):  # more than it remembers
        events.validate(
            EventType.TICKET_CREATED,
            ticket_created(created_at=f"2025-03-01T09:{second // 60 % 60:02d}:{second % 60:02d}.{second}Z"),
        )
    assert 0 < len(schemas._VALID_DATE_TIMES) <= 4096
    for _ in range(2):  # refused the second time too
        with pytest.raises(EventValidationError):
            events.validate(EventType.TICKET_CREATED, ticket_created(created_at="2025-02-30T09:30:00Z"))


def test_a_huge_offending_value_is_not_copied_whole_into_the_message() -> None:
    with pytest.raises(EventValidationError) as caught:
        events.validate(EventType.TICKET_CREATED, ticket_created(body="x" * 25_000))
    assert caught.value.field == "$.body"
    assert len(str(caught.value)) < 400


def test_the_same_input_stage_and_agent_always_give_the_same_event_id() -> None:
    first = events.derive_event_id("evt-1", Stage.TRIAGE, "triage")
    assert first == events.derive_event_id("evt-1", Stage.TRIAGE, "triage")
    assert len({
        first,
        events.derive_event_id("evt-2", Stage.TRIAGE, "triage"),
        events.derive_event_id("evt-1", Stage.RESOLUTION, "triage"),
        events.derive_event_id("evt-1", Stage.TRIAGE, "triage-canary"),
    }) == 4  # fmt: skip


def test_event_ids_do_not_depend_on_the_process() -> None:
    probe = "from agent_runtime import events; print(events.derive_event_id('evt-1', 'triage', 'triage'))"
    other_process = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert other_process.stdout.strip() == events.derive_event_id("evt-1", Stage.TRIAGE, "triage")


def test_trace_comes_from_the_payload_first() -> None:
    header = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert events.resolve_trace_id({"trace_id": TRACE}, header, "evt-1") == TRACE


def test_trace_comes_from_the_traceparent_header_when_the_payload_has_none() -> None:
    header = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert events.resolve_trace_id({}, header, "evt-1") == "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize(
    "header",
    [
        b"garbage",
        b"00-00000000000000000000000000000000-b7ad6b7169203331-01",  # all-zero trace id
        b"00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # all-zero parent id
        b"ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        b"00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
        b"\xff\xfe",
    ],
)
def test_an_invalid_traceparent_is_ignored_and_a_stable_trace_is_derived(header: bytes) -> None:
    trace_id = events.resolve_trace_id({"trace_id": "not-a-trace"}, header, "evt-1")
    assert events.is_trace_id(trace_id)
    assert trace_id == events.resolve_trace_id({}, None, "evt-1")
    assert trace_id != events.resolve_trace_id({}, None, "evt-2")


def test_an_output_traceparent_carries_the_trace_and_a_stable_span() -> None:
    header = events.format_traceparent(TRACE, "event-a")
    parsed = parse_traceparent(header)
    assert parsed is not None and parsed.trace_id == TRACE
    assert header == events.format_traceparent(TRACE, "event-a")
    assert header != events.format_traceparent(TRACE, "event-b")


def test_built_triaged_events_match_their_schema() -> None:
    event = events.build_triaged(
        event_id="e-1",
        trace_id=TRACE,
        ticket=ticket_created(),
        triage=TriageSection(
            "billing", "high", 0.91, "specialist", "ticket.triaged.billing", reasoning="double charge"
        ),
        agent=AGENT,
        customer={"name": "Maria"},
    )
    events.validate(EventType.TICKET_TRIAGED, event)
    assert event["ticket"] == ticket_created()


def test_built_escalations_match_the_triaged_schema() -> None:
    event = events.build_triaged(
        event_id="e-2",
        trace_id=TRACE,
        ticket=ticket_created(),
        triage=TriageSection("billing", "high", 0.91, "human", "ticket.triaged.human", human_reason="guardrails"),
        agent=AgentInfo("billing", "specialist", "offline", "offline-v1"),
        escalation=Escalation("draft failed guardrails: pii_ssn", ("pii_ssn",), "Your SSN is [redacted: pii_ssn]"),
    )
    events.validate(EventType.TICKET_TRIAGED, event)
    assert event["escalation"]["stage"] == "specialist"


def test_built_resolved_events_match_their_schema() -> None:
    event = events.build_resolved(
        event_id="e-3",
        trace_id=TRACE,
        ticket=ticket_created(),
        ticket_type="billing",
        priority="high",
        confidence=0.91,
        response_body="Hi Maria, ...",
        response_subject="Re: Charged twice",
        guardrail_checks=("empty", "max_length"),
        agent=AgentInfo("billing", "specialist", "offline", "offline-v1"),
    )
    events.validate(EventType.TICKET_RESOLVED, event)
    assert event["created_at"] == ticket_created()["created_at"]


def test_model_reasoning_longer_than_the_schema_allows_is_cut_not_rejected() -> None:
    section = TriageSection("other", "low", 0.7, "specialist", "t", reasoning="why " * 1000)
    event = events.build_triaged(event_id="e", trace_id=TRACE, ticket=ticket_created(), triage=section, agent=AGENT)
    events.validate(EventType.TICKET_TRIAGED, event)
    assert len(event["triage"]["reasoning"]) == events.MAX_REASONING_CHARS


def test_event_ids_are_the_uuid5_of_stage_agent_and_input() -> None:
    import uuid

    from agent_runtime.events.ids import EVENT_ID_NAMESPACE

    for i in range(2000):
        input_id, agent = f"evt-{i}-{uuid.UUID(int=i * 7919)}", "tri\u00e4ge" if i % 2 else "billing"
        for stage in Stage:
            expected = str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{stage}\x1f{agent}\x1f{input_id}"))
            assert events.derive_event_id(input_id, stage, agent) == expected
