"""The labelled ticket set the offline classifier learns from.

The project ships it as JSON Lines in ``srs_training/data/``: ``train.jsonl``
(what the classifier is trained on) and ``heldout.jsonl`` (a fixed split, stratified by
type and priority, that is never trained on and on which accuracy is reported). Each
line is one ticket::

    {"id": "tr-0001", "subject": "...", "body": "...", "type": "billing", "priority": "high"}

The tickets were written by hand for this project; none is real customer data (see
``docs/offline-classifier.md``).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from agent_runtime.tickets import parse_ticket_type
from srs_contracts.agent_config import Priority, TicketType


class Split(StrEnum):
    """The shipped splits."""

    TRAIN = "train"
    HELDOUT = "heldout"


@dataclass(frozen=True, slots=True)
class LabelledTicket:
    """One ticket with its true type and priority."""

    id: str
    subject: str
    body: str
    type: TicketType
    #: None when the source did not say (``srs train`` accepts sets without priorities).
    priority: Priority | None


def parse_line(line: str, where: str = "<line>") -> LabelledTicket:
    """One JSONL record → a ticket; a clear error names the record that is wrong."""
    try:
        raw = json.loads(line)
        return LabelledTicket(
            id=str(raw["id"]),
            subject=str(raw["subject"]),
            body=str(raw["body"]),
            type=TicketType(raw["type"]),
            priority=Priority(raw["priority"]),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"{where}: not a labelled ticket: {exc}") from exc


def read_jsonl(path: str | Path) -> list[LabelledTicket]:
    """All tickets of a JSONL file (blank lines are skipped)."""
    text = Path(path).read_text(encoding="utf-8")
    return _parse_lines(text.splitlines(), str(path))


def load_split(split: Split) -> list[LabelledTicket]:
    """A shipped split, read from the installed package."""
    text = resources.files(__package__).joinpath("data", f"{split.value}.jsonl").read_text(encoding="utf-8")
    return _parse_lines(text.splitlines(), f"{split.value}.jsonl")


def _parse_lines(lines: Iterable[str], source: str) -> list[LabelledTicket]:
    return [parse_line(line, f"{source}:{n}") for n, line in enumerate(lines, 1) if line.strip()]


@dataclass(frozen=True, slots=True)
class Problem:
    """A row of a labelled file that could not be used, and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True, slots=True)
class LabelledFile:
    """What a labelled file held: the usable tickets and every row that was not."""

    tickets: list[LabelledTicket]
    problems: list[Problem]


def read_labelled(path: str | Path) -> LabelledFile:
    """Tickets of a JSON Lines or CSV file (by extension; ``.csv`` → CSV) with ``subject``,
    ``body``, ``type`` and optionally ``priority`` and ``id``. Type names are read leniently
    ("Billing", "feature request"). Rows that cannot be used are returned as problems with
    their line numbers — never dropped silently."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".csv":
        return _read_csv(text)
    tickets: list[LabelledTicket] = []
    problems: list[Problem] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(n, f"not JSON: {exc.msg} at column {exc.colno}"))
            continue
        if not isinstance(raw, dict):
            problems.append(Problem(n, "not a JSON object"))
            continue
        _row(raw, n, tickets, problems)
    return LabelledFile(tickets, problems)


#: Column names other exports use for ours (case and surrounding spaces are ignored too).
ALIASES: dict[str, str] = {
    "title": "subject",
    "summary": "subject",
    "description": "body",
    "text": "body",
    "message": "body",
    "content": "body",
    "label": "type",
    "category": "type",
    "ticket_type": "type",
    "urgency": "priority",
}


def _canonical(raw: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in raw.items():
        name = str(key).strip().lower()
        out.setdefault(ALIASES.get(name, name), value)
    return out


def _read_csv(text: str) -> LabelledFile:
    reader = csv.DictReader(io.StringIO(text))
    tickets: list[LabelledTicket] = []
    problems: list[Problem] = []
    columns = set(_canonical(dict.fromkeys(reader.fieldnames or ())))
    if "type" not in columns or not {"subject", "body"} & columns:
        return LabelledFile(
            [], [Problem(1, "the header needs the columns subject and/or body (or title, description, text), and type")]
        )
    for row in reader:
        line = reader.line_num
        if None in row:  # more cells than header columns
            problems.append(Problem(line, f"{len(row[None]) if row[None] else 0} more cells than the header has"))
            continue
        _row({k: v for k, v in row.items() if v is not None}, line, tickets, problems)
    return LabelledFile(tickets, problems)


def _row(raw: Mapping[str, object], line: int, tickets: list[LabelledTicket], problems: list[Problem]) -> None:
    raw = _canonical(raw)
    subject, body = raw.get("subject"), raw.get("body")
    subject = subject if isinstance(subject, str) else ""
    body = body if isinstance(body, str) else ""
    if not subject.strip() and not body.strip():
        problems.append(Problem(line, "neither a subject nor a body"))
        return
    ticket_type = parse_ticket_type(raw.get("type"))
    if ticket_type is None:
        valid = ", ".join(t.value for t in TicketType)
        problems.append(Problem(line, f"type {raw.get('type')!r} is not one of {valid}"))
        return
    priority: Priority | None = None
    value = raw.get("priority")
    if value not in (None, ""):
        try:
            priority = Priority(str(value).strip().lower())
        except ValueError:
            valid = ", ".join(p.value for p in Priority)
            problems.append(Problem(line, f"priority {value!r} is not one of {valid} (or leave it empty)"))
            return
    ticket_id = raw.get("id") or raw.get("ticket_id") or f"line-{line}"
    tickets.append(LabelledTicket(str(ticket_id), subject, body, ticket_type, priority))
