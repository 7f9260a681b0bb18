"""`srs demo --llm local`: the local-model examples filled in, and the summary's per-ticket model costs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from srs import demo

pytestmark = pytest.mark.unit


def test_the_local_llm_examples_point_every_model_at_the_server(tmp_path: Path) -> None:
    rendered = demo.render_local_llm_examples("http://127.0.0.1:4321/v1", tmp_path)
    docs = [d for f in sorted(rendered.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())]
    agents = {d["metadata"]["name"]: d["spec"] for d in docs}
    assert set(agents) == {"triage", "billing", "technical", "feature-request", "account", "other"}
    for name, spec in agents.items():
        model = spec["fallbackModel"] if name == "triage" else spec["model"]
        assert model["provider"] == "openai" and model["baseURL"] == "http://127.0.0.1:4321/v1", name
    assert "${" not in "".join(f.read_text() for f in rendered.glob("*.yaml"))


def test_the_summary_lists_each_tickets_tokens_and_latency() -> None:
    result = demo.DemoResult(published=["T-1", "T-2"], final_stage={"T-1": "resolved", "T-2": "human"})
    result.latencies_ms = [900.0, 1500.0]
    result.ticket_latency_ms = {"T-1": 900.0, "T-2": 1500.0}
    result.usage = {
        "T-1": {"stage": "resolved", "model": "gemma3-270m", "calls": 1, "input_tokens": 150, "output_tokens": 40,
                "duration_ms": 800.0},
        "T-2": {"stage": "human", "model": "gemma3-270m", "calls": 3, "input_tokens": 450, "output_tokens": 480,
                "duration_ms": 1400.0},
    }  # fmt: skip
    text = demo.summarize(result)
    assert "Model calls per ticket" in text
    row = next(line for line in text.splitlines() if line.strip().startswith("T-2"))
    assert row.split() == ["T-2", "human", "gemma3-270m", "3", "450", "480", "1400", "1500"]
    assert "2 tickets, 520 output tokens, 2.2 s of model time" in text
