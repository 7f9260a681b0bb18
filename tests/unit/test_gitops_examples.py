"""examples/gitops: sync order and drift settings an Argo CD user can rely on.

The operator's Application (its Helm chart, with the CRDs) syncs before the agents'; in
the agents' folder TicketTopics come in an earlier wave than SupportAgents and every topic
an agent touches is declared; every Application applies server-side, the agents' skip the
dry run for kinds not installed yet and leave spec.replicas to an autoscaler; the
ApplicationSet gives each team namespace the same settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
WAVE = "argocd.argoproj.io/sync-wave"


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _apps() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for p in sorted((GITOPS / "apps").glob("*.yaml")) for d in _load(p)}


def _wave(obj: dict[str, Any]) -> int:
    return int(obj["metadata"].get("annotations", {}).get(WAVE, "0"))


def _team_objects() -> list[dict[str, Any]]:
    return [d for p in sorted((GITOPS / "teams" / "support").glob("*.yaml")) for d in _load(p)]


def test_the_operator_application_syncs_before_the_agents() -> None:
    apps = _apps()
    assert set(apps) == {"srs-operator", "srs-support"}
    assert _wave(apps["srs-operator"]) < _wave(apps["srs-support"])
    assert apps["srs-operator"]["spec"]["source"]["path"] == "charts/srs-operator"
    assert (ROOT / "charts" / "srs-operator" / "crds").is_dir(), "the chart ships the CRDs"
    root = _load(GITOPS / "root.yaml")[0]
    assert root["spec"]["source"]["path"] == "examples/gitops/apps"


def test_every_application_points_at_a_folder_of_this_repository() -> None:
    for app in [*_apps().values(), *_load(GITOPS / "root.yaml")]:
        assert (ROOT / app["spec"]["source"]["path"]).is_dir(), app["metadata"]["name"]


def test_the_helm_values_the_operator_application_sets_exist_in_the_chart() -> None:
    chart_values = yaml.safe_load((ROOT / "charts" / "srs-operator" / "values.yaml").read_text())
    values = _apps()["srs-operator"]["spec"]["source"]["helm"]["valuesObject"]

    def keys(d: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for k, v in d.items():
            out.add(prefix + k)
            if isinstance(v, dict) and v:
                out |= keys(v, f"{prefix}{k}.")
        return out

    assert keys(values) <= keys(chart_values)


def test_applications_apply_server_side_and_the_agents_tolerate_missing_crds() -> None:
    apps = _apps()
    for app in apps.values():
        assert "ServerSideApply=true" in app["spec"]["syncPolicy"]["syncOptions"], app["metadata"]["name"]
    agents = apps["srs-support"]["spec"]["syncPolicy"]
    assert "SkipDryRunOnMissingResource=true" in agents["syncOptions"]
    assert agents["retry"]["limit"] > 0, "retry until the operator's Application has installed the CRDs"


def test_an_autoscaler_owns_spec_replicas() -> None:
    spec = _apps()["srs-support"]["spec"]
    assert {"group": "srs.dev", "kind": "SupportAgent", "jsonPointers": ["/spec/replicas"]} in spec["ignoreDifferences"]
    assert "RespectIgnoreDifferences=true" in spec["syncPolicy"]["syncOptions"]
    assert any("replicas" not in o["spec"] for o in _team_objects() if o["kind"] == "SupportAgent"), (
        "the example shows an autoscaled agent (no spec.replicas in git)"
    )


def test_topics_sync_in_a_wave_before_the_agents_that_use_them() -> None:
    objs = _team_objects()
    topics = [o for o in objs if o["kind"] == "TicketTopic"]
    agents = [o for o in objs if o["kind"] == "SupportAgent"]
    assert topics and agents
    assert max(_wave(t) for t in topics) < min(_wave(a) for a in agents)
    assert min(_wave(t) for t in topics) > 0, "after wave 0, where the operator's Application lives"


def test_every_topic_an_agent_touches_is_declared_next_to_it() -> None:
    objs = _team_objects()
    declared = {o["spec"].get("topicName", o["metadata"]["name"]) for o in objs if o["kind"] == "TicketTopic"}
    for agent in (o for o in objs if o["kind"] == "SupportAgent"):
        spec = agent["spec"]
        used = {spec["inputTopic"], *spec.get("routes", {}).values()}
        used |= {spec[k] for k in ("outputTopic", "humanTopic", "deadLetterTopic") if k in spec}
        assert used <= declared, f"{agent['metadata']['name']}: undeclared {sorted(used - declared)}"


def test_the_applicationset_gives_each_team_the_settings_of_the_team_application() -> None:
    [appset] = _load(GITOPS / "applicationset.yaml")
    template = appset["spec"]["template"]["spec"]
    team = _apps()["srs-support"]["spec"]
    assert template["syncPolicy"] == team["syncPolicy"]
    assert template["ignoreDifferences"] == team["ignoreDifferences"]
    [generator] = appset["spec"]["generators"]
    pattern = generator["git"]["directories"][0]["path"]
    assert sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob(pattern)) == ["examples/gitops/teams/support"]
    assert team["source"]["path"] == "examples/gitops/teams/support"
