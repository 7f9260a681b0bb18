"""Training on your own tickets: the generator, labelled files, model directories, srs train/eval/triage."""

from __future__ import annotations

import base64
import csv
import gzip
import json
import os
import subprocess
import sys
from collections import Counter
from importlib import resources
from pathlib import Path

import pytest

from agent_runtime.offline import features, modelfile
from srs_contracts.agent_config import TicketType
from srs_training import evaluate, generate, training
from srs_training.dataset import LabelledTicket, Split, load_split, read_jsonl, read_labelled
from tests.unit.wire_doubles import Reply, openai_completion, wire_server

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[2]


def _srs(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "srs.cli", *args], input=stdin, capture_output=True, text=True, cwd=REPO, check=False
    )


def _write_jsonl(path: Path, tickets: list[LabelledTicket]) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "id": t.id,
                    "subject": t.subject,
                    "body": t.body,
                    "type": t.type.value,
                    "priority": t.priority.value if t.priority else None,
                }
            )
            + "\n"
            for t in tickets
        )
    )
    return path


# --- the generator --------------------------------------------------------------------------


def test_generation_is_deterministic_and_balanced() -> None:
    first, second = generate.generate(500, seed=7), generate.generate(500, seed=7)
    assert first == second
    assert generate.generate(50, seed=8) != first[:50]
    assert set(Counter(t.type for t in first).values()) == {100}


def test_every_scenario_type_and_priority_is_used() -> None:
    tickets = generate.generate(3000, seed=1)
    assert {t.type for t in tickets} == set(TicketType)
    assert {t.priority for t in tickets} == {p for s in generate.scenarios() for p in s.priorities}


def test_a_malformed_scenario_is_reported_with_its_line() -> None:
    with pytest.raises(ValueError, match=r"scenarios.txt:2"):
        generate.parse_scenarios("@billing lm\n= not a line kind\n")
    with pytest.raises(ValueError, match=r"scenarios.txt:1: bad scenario header"):
        generate.parse_scenarios("@shipping l\n> s\n- b\n")


def test_no_generated_ticket_repeats_an_evaluation_ticket() -> None:
    # Generated text must not leak the sets the model is judged on.
    judged = {
        " ".join(features.tokens(f"{t.subject}\n{t.body}"))
        for t in load_split(Split.HELDOUT) + read_jsonl(DATA / "offline_unseen.jsonl")
        + read_jsonl(DATA / "offline_out_of_style.jsonl") + read_jsonl(DATA / "offline_public_styles.jsonl")
    }  # fmt: skip
    generated = {" ".join(features.tokens(f"{t.subject}\n{t.body}")) for t in generate.generate(5000, seed=1)}
    assert judged.isdisjoint(generated)


# --- labelled files -------------------------------------------------------------------------


def test_bad_rows_are_reported_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(
        json.dumps({"subject": "Refund", "body": "charged twice", "type": "Billing"}) + "\n"
        "{oops\n"
        "\n"
        + json.dumps({"subject": "x", "body": "y", "type": "shipping"}) + "\n"
        + json.dumps({"subject": "", "body": " ", "type": "other"}) + "\n"
        + json.dumps({"subject": "a", "body": "b", "type": "account", "priority": "urgent"}) + "\n"
        + json.dumps({"subject": "Dark mode", "body": "please", "type": "feature request", "priority": "Low"}) + "\n"
    )  # fmt: skip
    read = read_labelled(path)
    assert [(p.line, p.reason.split(":")[0].split(" ")[0]) for p in read.problems] == [
        (2, "not"),
        (4, "type"),
        (5, "neither"),
        (6, "priority"),
    ]
    assert [t.type for t in read.tickets] == [TicketType.BILLING, TicketType.FEATURE_REQUEST]
    assert read.tickets[0].priority is None


def test_csv_files_are_read_with_their_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["subject", "body", "type", "priority"])
        w.writerow(["Locked out", "reset link expired,\nplease help", "account", "high"])
        w.writerow(["?", "", "nonsense", ""])
        w.writerow(["Invoice", "copy please", "billing", ""])
    read = read_labelled(path)
    assert [(t.type, t.priority) for t in read.tickets] == [
        (TicketType.ACCOUNT, read.tickets[0].priority),
        (TicketType.BILLING, None),
    ]
    assert read.tickets[0].priority is not None and read.tickets[0].priority.value == "high"
    assert [p.line for p in read.problems] == [4]  # the quoted newline makes the first record two lines


# --- model directories ----------------------------------------------------------------------


def test_a_saved_model_predicts_exactly_like_the_trained_one(tmp_path: Path) -> None:
    trained = training.train_on(load_split(Split.TRAIN)[:400], k=3)
    modelfile.save(trained.classifier, tmp_path)
    loaded = modelfile.load(tmp_path)
    for t in load_split(Split.HELDOUT)[:60]:
        assert loaded.predict(t.subject, t.body) == trained.classifier.predict(t.subject, t.body)


def test_a_damaged_or_missing_model_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(modelfile.ModelFileError, match="cannot read"):
        modelfile.load(tmp_path)
    (tmp_path / modelfile.MODEL_FILE).write_bytes(b"not gzip")
    with pytest.raises(modelfile.ModelFileError, match="not a gzip-compressed JSON model"):
        modelfile.load(tmp_path)
    (tmp_path / modelfile.MODEL_FILE).write_bytes(gzip.compress(b'{"format": "something-else"}'))
    with pytest.raises(modelfile.ModelFileError, match="not an offline classifier model"):
        modelfile.load(tmp_path)


def test_the_shipped_model_fits_in_a_config_map() -> None:
    data = resources.files("agent_runtime.offline").joinpath("model", modelfile.MODEL_FILE).read_bytes()
    assert len(base64.b64encode(data)) < modelfile.CONFIG_MAP_LIMIT


def test_a_model_of_a_subset_of_types_only_predicts_those() -> None:
    tickets = [t for t in load_split(Split.TRAIN) if t.type in (TicketType.BILLING, TicketType.ACCOUNT)]
    classifier = training.train_on(tickets, k=3).classifier
    assert set(classifier.types) == {TicketType.BILLING, TicketType.ACCOUNT}
    for t in load_split(Split.HELDOUT)[:40]:
        prediction = classifier.predict(t.subject, t.body)
        assert prediction.type in (TicketType.BILLING, TicketType.ACCOUNT)
        assert 0.0 <= prediction.confidence <= 1.0


def test_tickets_without_priorities_still_train_a_priority_model() -> None:
    tickets = [LabelledTicket(t.id, t.subject, t.body, t.type, None) for t in load_split(Split.TRAIN)[:300]]
    classifier = training.train_on(tickets, k=3).classifier
    assert len(classifier.priorities) == 4
    urgent = classifier.predict(
        "PRODUCTION DOWN", "Our whole site is down for every customer since 9am, all orders failing!!"
    )
    assert urgent.priority.value in ("high", "critical")


# --- the commands ---------------------------------------------------------------------------


def test_srs_train_then_triage_and_eval_with_the_model(tmp_path: Path) -> None:
    # One company's style: a few thousand tickets told one way, then new tickets told the same way.
    company = generate.generate(3000, seed=11)
    data = _write_jsonl(tmp_path / "history.jsonl", company[:2400])
    heldout = _write_jsonl(tmp_path / "new.jsonl", company[2400:])
    out = _srs("train", "--data", str(data), "--output", str(tmp_path / "model"))
    assert out.returncode == 0, out.stderr
    assert "cross-validated type accuracy" in out.stdout and "confusion" in out.stdout
    assert (tmp_path / "model" / modelfile.MODEL_FILE).exists()

    lines = "".join(
        json.dumps({"ticket_id": t.id, "subject": t.subject, "body": t.body}) + "\n" for t in company[2400:2500]
    )
    triaged = _srs("triage", "--provider", "offline", "--model", str(tmp_path / "model"), stdin=lines)
    assert triaged.returncode == 0, triaged.stderr
    results = [json.loads(line) for line in triaged.stdout.splitlines()]
    right = sum(r["type"] == t.type.value for r, t in zip(results, company[2400:2500], strict=True))
    assert right / 100 >= 0.93

    evaluated = _srs("eval", "--data", str(heldout), "--model", str(tmp_path / "model"), "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["type_accuracy"] >= 0.93
    assert {p["threshold"] for p in report["thresholds"]} >= {0.5, 0.85, 0.9}
    assert {"expected_calibration_error", "priority_within_one", "per_type", "seconds_per_ticket"} <= set(report)


def test_srs_train_refuses_bad_rows_unless_told_to_skip_them(tmp_path: Path) -> None:
    data = _write_jsonl(tmp_path / "t.jsonl", generate.generate(200, seed=3))
    with data.open("a") as f:
        f.write(json.dumps({"subject": "x", "body": "y", "type": "shipping"}) + "\n")
    refused = _srs("train", "--data", str(data), "--output", str(tmp_path / "m"))
    assert refused.returncode == 2
    assert f"{data}:201: type 'shipping' is not one of" in refused.stderr
    assert not (tmp_path / "m").exists()
    skipped = _srs("train", "--data", str(data), "--output", str(tmp_path / "m"), "--skip-bad", "--folds", "3")
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped 1 bad row" in skipped.stderr


def test_srs_eval_reports_the_shipped_model_as_text() -> None:
    out = _srs("eval", "--data", str(DATA / "offline_unseen.jsonl"))
    assert out.returncode == 0, out.stderr
    assert "type accuracy" in out.stdout and "threshold  coverage  routed accuracy" in out.stdout
    assert "µs CPU" in out.stdout


def test_srs_triage_with_a_missing_model_directory_fails_once_and_clearly(tmp_path: Path) -> None:
    out = _srs("triage", "--provider", "offline", "--model", str(tmp_path / "nope"), stdin="")
    assert out.returncode == 2
    assert "not a directory" in out.stderr
    (tmp_path / "empty").mkdir()
    out = _srs("triage", "--provider", "offline", "--model", str(tmp_path / "empty"), stdin="{}\n")
    assert out.returncode == 1
    assert "cannot read" in out.stderr


def test_report_json_has_no_nan() -> None:
    outcomes = [
        evaluate.Outcome(LabelledTicket("a", "s", "b", TicketType.OTHER, None), "billing", "low", 0.1, 0.0),
    ]
    report = evaluate.report(outcomes, "tiny")
    assert json.loads(json.dumps(report.to_json(), allow_nan=False))["routed_accuracy"] is None


def test_a_model_too_big_for_a_config_map_is_pruned_until_it_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    classifier = training.train_on(load_split(Split.TRAIN), k=3).classifier
    size = len(modelfile.encode(classifier))
    monkeypatch.setattr(modelfile, "CONFIG_MAP_LIMIT", size)  # base64 needs 4/3 of it: too big now
    assert not modelfile.fits_config_map(modelfile.encode(classifier))
    pruned, min_df = modelfile.shrink_to_fit(classifier)
    assert min_df is not None and min_df >= 2
    assert modelfile.fits_config_map(modelfile.encode(pruned))
    report = evaluate.evaluate(pruned, load_split(Split.HELDOUT), "pruned")
    assert report.type_accuracy >= 0.8


def test_srs_eval_measures_an_llm_provider_through_its_wire_protocol(tmp_path: Path) -> None:
    tickets = load_split(Split.HELDOUT)[:4]
    data = _write_jsonl(tmp_path / "t.jsonl", tickets)
    answer = {"type": tickets[0].type.value, "priority": "low", "confidence": 0.9, "reasoning": "double"}
    with wire_server(Reply(200, openai_completion(json.dumps(answer)))) as llm:
        out = subprocess.run(
            [sys.executable, "-m", "srs.cli", "eval", "--data", str(data), "--provider", "openai", "--model", "gpt-x",
             "--base-url", f"{llm.url}/v1", "--api-key-env", "SRS_TEST_EVAL_KEY", "--json"],
            env={**os.environ, "SRS_TEST_EVAL_KEY": "sk-test"}, capture_output=True, text=True, cwd=REPO, check=False,
        )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["size"] == 4 and report["time_kind"] == "wall"
    assert len(llm.requests) == 4
    assert report["type_accuracy"] == sum(t.type is tickets[0].type for t in tickets) / 4


def test_common_column_names_of_other_exports_are_understood(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("Title,Description,Category\nLocked out,the reset link expired,Account\nHi,,nonsense\n")
    read = read_labelled(path)
    assert [(t.subject, t.body, t.type) for t in read.tickets] == [
        ("Locked out", "the reset link expired", TicketType.ACCOUNT)
    ]
    assert [p.line for p in read.problems] == [3]
