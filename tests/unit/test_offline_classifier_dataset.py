"""The shipped labelled ticket set: well-formed, balanced, and the held-out split truly held out."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agent_runtime.offline import features
from srs_contracts.agent_config import Priority, TicketType
from srs_training.dataset import LabelledTicket, Split, load_split, parse_line, read_jsonl

pytestmark = pytest.mark.unit

UNSEEN = Path(__file__).parent / "data" / "offline_unseen.jsonl"
OUT_OF_STYLE = Path(__file__).parent / "data" / "offline_out_of_style.jsonl"
PUBLIC_STYLES = Path(__file__).parent / "data" / "offline_public_styles.jsonl"


def _text(ticket: LabelledTicket) -> str:
    return " ".join(features.tokens(f"{ticket.subject}\n{ticket.body}"))


def test_every_record_parses_and_ids_are_unique() -> None:
    train, heldout = load_split(Split.TRAIN), load_split(Split.HELDOUT)
    ids = [t.id for t in train + heldout]
    assert len(ids) == len(set(ids))
    assert all(t.id.startswith("tr-") for t in train)
    assert all(t.id.startswith("ho-") for t in heldout)


def test_the_set_is_large_and_covers_every_type_and_priority() -> None:
    tickets = load_split(Split.TRAIN) + load_split(Split.HELDOUT)
    assert len(tickets) >= 600
    types, priorities = Counter(t.type for t in tickets), Counter(t.priority for t in tickets)
    assert set(types) == set(TicketType)
    assert set(priorities) == set(Priority)
    assert min(types.values()) >= 100
    assert min(priorities.values()) >= 30


def test_heldout_is_a_stratified_fifth_of_each_type() -> None:
    train, heldout = (
        Counter(t.type for t in load_split(Split.TRAIN)),
        Counter(t.type for t in load_split(Split.HELDOUT)),
    )
    for ticket_type in TicketType:
        share = heldout[ticket_type] / (heldout[ticket_type] + train[ticket_type])
        assert 0.18 <= share <= 0.27, (ticket_type, share)


def test_no_ticket_text_appears_twice_within_or_across_the_sets() -> None:
    texts = [
        _text(t)
        for t in load_split(Split.TRAIN)
        + load_split(Split.HELDOUT)
        + read_jsonl(UNSEEN)
        + read_jsonl(OUT_OF_STYLE)
        + read_jsonl(PUBLIC_STYLES)
    ]
    duplicates = [text for text, n in Counter(texts).items() if n > 1]
    assert duplicates == []


def test_the_unseen_set_is_balanced_and_separate() -> None:
    unseen = read_jsonl(UNSEEN)
    assert len(unseen) >= 50
    assert set(Counter(t.type for t in unseen).values()) == {len(unseen) // len(TicketType)}
    assert all(t.id.startswith("un-") for t in unseen)


@pytest.mark.parametrize(("path", "prefix", "size"), [(OUT_OF_STYLE, "os-", 100), (PUBLIC_STYLES, "ps-", 50)])
def test_the_out_of_style_sets_are_balanced_and_separate(path: Path, prefix: str, size: int) -> None:
    tickets = read_jsonl(path)
    assert len(tickets) >= size
    assert set(Counter(t.type for t in tickets).values()) == {len(tickets) // len(TicketType)}
    assert all(t.id.startswith(prefix) for t in tickets)
    assert all(t.priority is not None for t in tickets)


def test_a_bad_record_is_reported_with_its_location() -> None:
    line = json.dumps({"id": "x", "subject": "s", "body": "b", "type": "shipping", "priority": "low"})
    with pytest.raises(ValueError, match=r"train\.jsonl:7"):
        parse_line(line, "train.jsonl:7")
