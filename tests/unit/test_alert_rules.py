"""srs's alert rules, dashboards and metrics reference: tested, complete, and not drifting.

``promtool`` is Debian's (``prometheus`` package), installed by the project's own code
when missing (``devstack/observability.py``); these tests fail, never skip, when it
cannot be.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack import observability
from srs import dashboards
from srs import observability as observability_cli

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts" / "srs-operator" / "files" / "prometheus-rules.yaml"
RULE_TESTS = ROOT / "tests" / "promtool" / "rules_test.yaml"
DOC = ROOT / "docs" / "observability.md"
DASHBOARDS = ROOT / "charts" / "srs-operator" / "files" / "dashboards"


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


@pytest.fixture(scope="module")
def promtool() -> Path:
    return observability.ensure_prometheus(print)[1]


def test_the_rules_file_is_valid_for_prometheus(promtool: Path) -> None:
    done = subprocess.run([str(promtool), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_fires_on_what_should_page_and_stays_silent_otherwise(promtool: Path) -> None:
    done = subprocess.run(
        [str(promtool), "test", "rules", RULE_TESTS.name], cwd=RULE_TESTS.parent, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    assert {a["alert"] for a in _alerts()} <= firing


def test_every_alert_has_severity_summary_a_description_naming_the_object_and_a_runbook() -> None:
    headings = {
        re.sub(r"[^a-z0-9-]", "", line.lstrip("# ").strip().lower().replace(" ", "-"))
        for line in DOC.read_text().splitlines()
        if line.startswith("### ")
    }
    alerts = _alerts()
    assert len(alerts) >= 14
    for alert in alerts:
        name = alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        annotations = alert["annotations"]
        assert annotations["summary"].strip(), name
        assert re.search(r"\$labels\.(agent|name|pod|kind)", annotations["description"]), name
        anchor = annotations["runbook"].removeprefix("docs/observability.md#")
        assert anchor == name.lower() and anchor in headings, f"{name}: no runbook section '### {name}'"


def test_the_charts_dashboards_are_the_ones_the_code_generates() -> None:
    generated = dashboards.files()
    shipped = {p.name: p.read_text() for p in DASHBOARDS.glob("*.json")}
    assert shipped == generated, "run `make observability`"


def test_every_panel_has_a_query_and_the_dashboards_cover_overview_agent_and_operator() -> None:
    titles = set()
    for content in dashboards.files().values():
        board = json.loads(content)
        titles.add(board["title"])
        for panel in board["panels"]:
            assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    assert titles == {"srs / Overview", "srs / Agent", "srs / Operator"}


def test_the_metrics_reference_in_the_docs_is_the_one_the_code_generates() -> None:
    text = DOC.read_text()
    assert observability_cli.updated_doc(text) == text, "run `make observability`"
