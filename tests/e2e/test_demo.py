"""The demo path, headless: every published ticket ends resolved, in the human queue or
in the dead-letter topic, and every agent reports Ready.

The demo always runs on the local stack (its pod runner stands in for the kubelet), so
this test brings that stack up even when the other tests use your own cluster."""

from __future__ import annotations

import pytest
from kubernetes import client, config

from devstack import stack
from srs import demo

pytestmark = pytest.mark.e2e


def test_demo_accounts_for_every_ticket_and_agents_are_ready() -> None:
    result = demo.run(tickets=40, timeout=180, quiet=True)

    assert result.unaccounted == []
    stages = [result.final_stage[t] for t in result.published]
    assert stages.count("dead-letter") == 1, "the one malformed message is dead-lettered, with its reason"
    assert stages.count("resolved") + stages.count("human") == 40
    assert stages.count("resolved") >= 20, "most sample tickets are resolved by a specialist"
    assert len(result.resolved_types) >= 4, f"tickets reach most specialists: {result.resolved_types}"

    state = stack.load_state(stack.default_paths())
    assert state is not None
    api = config.new_client_from_config(config_file=state.kubeconfig)
    agents = client.CustomObjectsApi(api).list_namespaced_custom_object(
        "srs.dev", "v1alpha1", "default", "supportagents"
    )["items"]
    assert {a["metadata"]["name"] for a in agents} >= {"triage", *(s.replace("_", "-") for s in demo.SPECIALTIES)}
    for agent in agents:
        ready = [c for c in agent["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", (agent["metadata"]["name"], agent["status"])
