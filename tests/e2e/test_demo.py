"""The demo path, headless: every published ticket ends resolved, in the human queue or
in the dead-letter topic, and every agent reports Ready."""

from __future__ import annotations

import pytest
from kubernetes import client

from srs import demo
from tests.harness import Infra

pytestmark = pytest.mark.e2e


def test_demo_accounts_for_every_ticket_and_agents_are_ready(infra: Infra, api_client: client.ApiClient) -> None:
    if not infra.local:
        pytest.fail("the demo runs on the local stack; unset KUBECONFIG/KAFKA_BOOTSTRAP_SERVERS")
    result = demo.run(tickets=40, timeout=180, quiet=True)

    assert result.unaccounted == []
    stages = [result.final_stage[t] for t in result.published]
    assert stages.count("dead-letter") == 1, "the one malformed message is dead-lettered, with its reason"
    assert stages.count("resolved") + stages.count("human") == 40
    assert stages.count("resolved") >= 20, "most sample tickets are resolved by a specialist"
    assert len(result.resolved_types) >= 4, f"tickets reach most specialists: {result.resolved_types}"

    agents = client.CustomObjectsApi(api_client).list_namespaced_custom_object(
        "srs.dev", "v1alpha1", "default", "supportagents"
    )["items"]
    assert {a["metadata"]["name"] for a in agents} >= {"triage", *(s.replace("_", "-") for s in demo.SPECIALTIES)}
    for agent in agents:
        ready = [c for c in agent["status"]["conditions"] if c["type"] == "Ready"]
        assert ready and ready[0]["status"] == "True", (agent["metadata"]["name"], agent["status"])
