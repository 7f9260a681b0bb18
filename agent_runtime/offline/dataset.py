"""The labelled ticket set the offline classifier learns from.

The project ships it as JSON Lines in ``agent_runtime/offline/data/``: ``train.jsonl``
(what the classifier is trained on) and ``heldout.jsonl`` (a fixed split, stratified by
type and priority, that is never trained on and on which accuracy is reported). Each
line is one ticket::

    {"id": "tr-0001", "subject": "...", "body": "...", "type": "billing", "priority": "high"}

The tickets were written by hand for this project; none is real customer data (see
``docs/offline-classifier.md``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources
from pathlib import Path

from agent_runtime.config import Priority, TicketType


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
    priority: Priority


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
