"""An agent that scales on lag: the KEDA ScaledObject it gets, the replicas the operator
leaves to it, the bound set by the input's partitions, and what the status says when KEDA
is missing or reports."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from srs_operator.builders import supportagent as build
from srs_operator.builders.supportagent_status import (
    Rollout,
    Verdict,
    build_status,
    scaling_of,
)
from srs_operator.models.conditions import ConditionStatus
from srs_operator.models.supportagent import ConditionType, Reason, SupportAgent, SupportAgentStatus
from srs_operator.services.controller import merge_patch
from srs_operator.services.supportagent_watches import Autoscaler
from srs_operator.services.supportagents import SupportAgentController
from srs_operator.settings import OperatorSettings
from tests.unit.test_supportagent_controller import NAME, NS, SPECIALIST, FakeCluster, FakeEvents, NoSecrets, agent

pytestmark = pytest.mark.unit

SETTINGS = OperatorSettings(agent_image="srs:test", agent_kafka_bootstrap_servers="kafka.kafka:9092")
LAG: dict[str, Any] = {
    "minReplicas": 1,
    "maxReplicas": 4,
    "lagThreshold": 50,
    "activationLagThreshold": 5,
    "cooldownSeconds": 60,
    "pollingSeconds": 5,
}


def _agent(autoscaling: dict[str, Any] | None = LAG, **spec: Any) -> SupportAgent:
    body = {
        "metadata": {"namespace": NS, "name": NAME, "uid": "uid-1", "generation": 3},
        "spec": {**SPECIALIST, **spec, **({"autoscaling": autoscaling} if autoscaling is not None else {})},
    }
    return SupportAgent.from_body(body)


def _children(agent: SupportAgent, *, keda: bool, partitions: int | None = None) -> dict[str, dict[str, Any]]:
    desired = build.build_desired(agent, SETTINGS, None, {}, keda=keda, partitions=partitions)
    return {m["kind"]: m for m in desired.children}


def test_the_scaled_object_scales_the_deployment_on_the_groups_lag_of_the_input_topic() -> None:
    children = _children(_agent(), keda=True, partitions=8)
    assert list(children) == ["ServiceAccount", "ConfigMap", "Service", "Deployment", "ScaledObject"]
    assert "replicas" not in children["Deployment"]["spec"]  # KEDA's HPA owns them
    scaled = children["ScaledObject"]
    assert scaled["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert scaled["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "srs-operator"
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (1, 4)
    assert (spec["pollingInterval"], spec["cooldownPeriod"]) == (5, 60)
    # Scaling down waits out the cooldown too, not only the step to zero.
    hpa = spec["advanced"]["horizontalPodAutoscalerConfig"]
    assert hpa == {"name": NAME, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}
    assert spec["fallback"] == {"failureThreshold": 3, "replicas": 1}
    [trigger] = spec["triggers"]
    assert trigger["type"] == "kafka"
    # The group and the address are exactly what the agent's pods use.
    config = build.render_config(_agent(), SETTINGS, None)
    assert trigger["metadata"] == {
        "bootstrapServers": "kafka.kafka:9092",
        "consumerGroup": config.kafka.group_id,
        "topic": "ticket.triaged.billing",
        "lagThreshold": "50",
        "activationLagThreshold": "5",
        # Before the group's first commit the lag is every retained ticket, as the agent reads from the start.
        "offsetResetPolicy": "earliest",
        "allowIdleConsumers": "false",
    }
    assert all(isinstance(v, str) for v in trigger["metadata"].values())  # KEDA's trigger metadata is strings


def test_max_replicas_is_capped_at_the_input_topics_partitions() -> None:
    scaled = _children(_agent({"maxReplicas": 10}), keda=True, partitions=4)["ScaledObject"]["spec"]
    assert (scaled["minReplicaCount"], scaled["maxReplicaCount"]) == (1, 4)
    # Unknown partitions (no Ready TicketTopic yet): the spec's bound.
    assert _children(_agent({"maxReplicas": 10}), keda=True)["ScaledObject"]["spec"]["maxReplicaCount"] == 10
    # A floor above the partitions is lowered with the ceiling.
    low = _children(_agent({"minReplicas": 3, "maxReplicas": 6}), keda=True, partitions=2)["ScaledObject"]
    assert (low["spec"]["minReplicaCount"], low["spec"]["maxReplicaCount"]) == (2, 2)


def test_defaults_are_kedas_and_scale_to_zero_keeps_one_pod_as_fallback() -> None:
    scaled = _children(_agent({"maxReplicas": 3, "minReplicas": 0}), keda=True)["ScaledObject"]["spec"]
    assert scaled["minReplicaCount"] == 0
    assert (scaled["pollingInterval"], scaled["cooldownPeriod"]) == (30, 300)
    assert scaled["triggers"][0]["metadata"]["lagThreshold"] == "10"
    assert scaled["triggers"][0]["metadata"]["activationLagThreshold"] == "0"
    assert scaled["fallback"]["replicas"] == 1


def test_without_keda_the_agent_runs_min_replicas_and_gets_no_scaled_object() -> None:
    children = _children(_agent({"minReplicas": 2, "maxReplicas": 4}), keda=False)
    assert "ScaledObject" not in children
    assert children["Deployment"]["spec"]["replicas"] == 2
    # minReplicas 0 without an autoscaler would stop the agent for good: one pod runs.
    assert _children(_agent({"minReplicas": 0, "maxReplicas": 4}), keda=False)["Deployment"]["spec"]["replicas"] == 1


def test_without_a_kafka_address_for_keda_no_scaled_object_is_made() -> None:
    agent = _agent()
    desired = build.build_desired(agent, OperatorSettings(agent_image="srs:test"), None, {}, keda=True)
    kinds = [m["kind"] for m in desired.children]
    assert "ScaledObject" not in kinds
    assert desired.children[kinds.index("Deployment")]["spec"]["replicas"] == 1


def test_fixed_and_externally_managed_replicas_are_unchanged() -> None:
    fixed = _children(_agent(None, replicas=3), keda=True)
    assert fixed["Deployment"]["spec"]["replicas"] == 3 and "ScaledObject" not in fixed
    external = _children(_agent({"externallyManaged": True}), keda=True)
    assert "replicas" not in external["Deployment"]["spec"] and "ScaledObject" not in external


def test_max_replicas_is_at_least_one() -> None:
    # The rules across fields (CEL) are the API server's: tests/integration/admission/supportagent.yaml.
    with pytest.raises(ValueError, match=r"max_replicas|maxReplicas"):
        _agent({"minReplicas": 0, "maxReplicas": 0})


# -- status -----------------------------------------------------------------------------


def _status(agent: SupportAgent, **scaling: Any) -> SupportAgentStatus:
    rollout = Rollout(Verdict.true(Reason.ROLLOUT_COMPLETE, "2 of 2 replicas updated and available"), 2, 2, 2)
    return build_status(
        SupportAgentStatus(),
        3,
        accepted=Verdict.true(Reason.APPLIED, "applied"),
        topics=Verdict.true(Reason.TOPICS_READY, "ready"),
        rollout=rollout,
        missing_secrets=(),
        selector="",
        scaling=scaling_of(agent, **scaling),
    )


def _condition(status: SupportAgentStatus, type_: str) -> tuple[ConditionStatus, str, str]:
    [c] = [c for c in status.conditions if c.type == type_]
    return c.status, c.reason, c.message


def test_without_keda_the_agent_is_not_ready_and_says_what_to_install() -> None:
    status = _status(
        _agent(), keda=False, bootstrap_servers="kafka:9092", partitions=4, scaled_object=None, autoscaler=None
    )
    ready, reason, message = _condition(status, ConditionType.READY)
    assert (ready, reason) == (ConditionStatus.FALSE, Reason.AUTOSCALER_MISSING)
    assert "install KEDA" in message and "meanwhile 1 pod(s) run" in message
    assert _condition(status, ConditionType.AUTOSCALING)[1] == Reason.AUTOSCALER_MISSING


def test_a_bound_above_the_partitions_is_reported_with_the_reason() -> None:
    status = _status(
        _agent({"maxReplicas": 8}),
        keda=True,
        bootstrap_servers="kafka:9092",
        partitions=4,
        scaled_object=None,
        autoscaler=None,
    )
    state, reason, message = _condition(status, ConditionType.AUTOSCALING)
    assert (state, reason) == (ConditionStatus.TRUE, Reason.MAX_REPLICAS_CAPPED)
    assert "maxReplicas 8 is above the topic's 4 partitions" in message
    assert status.autoscaling is not None and status.autoscaling.max_replicas == 4
    assert _condition(status, ConditionType.READY)[1] == Reason.ROLLOUT_COMPLETE


def test_the_last_scaling_reason_is_the_hpas_and_keda_fallback_comes_first() -> None:
    hpa = Autoscaler(
        agent=NAME,
        last_scale_time="2026-12-06T10:00:00Z",
        conditions=(
            ("AbleToScale", "True", "SucceededRescale", "the HPA controller was able to update the target scale to 3"),
            ("ScalingActive", "True", "ValidMetricFound", "the HPA was able to successfully calculate a replica count"),
            ("ScalingLimited", "False", "DesiredWithinRange", "the desired count is within the acceptable range"),
        ),
    )
    scaled: dict[str, Any] = {
        "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "ScaledObjectReady"}]}
    }
    common = {"keda": True, "bootstrap_servers": "kafka:9092", "partitions": 4}
    status = _status(_agent(), scaled_object=scaled, autoscaler=hpa, **common)
    assert status.autoscaling is not None
    assert (status.autoscaling.reason, status.autoscaling.last_scale_time) == (
        "SucceededRescale",
        "2026-12-06T10:00:00Z",
    )
    assert _condition(status, ConditionType.AUTOSCALING)[1] == Reason.SCALING_ON_LAG

    limited = Autoscaler(NAME, None, (("ScalingLimited", "True", "TooManyReplicas", "more than the maximum"),))
    assert _status(_agent(), scaled_object=scaled, autoscaler=limited, **common).autoscaling.reason == "TooManyReplicas"  # type: ignore[union-attr]

    failing = copy.deepcopy(scaled)
    failing["status"]["conditions"] += [
        {
            "type": "Fallback",
            "status": "True",
            "reason": "FallbackExists",
            "message": "At least one trigger is falling back",
        }
    ]
    assert _status(_agent(), scaled_object=failing, autoscaler=hpa, **common).autoscaling.reason == "Fallback"  # type: ignore[union-attr]

    broken = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ScaledObjectCheckFailed", "message": "no broker"}
            ]
        }
    }
    state, reason, message = _condition(
        _status(_agent(), scaled_object=broken, autoscaler=None, **common), "Autoscaling"
    )
    assert (state, reason, message) == (
        ConditionStatus.FALSE,
        Reason.SCALER_NOT_READY,
        "KEDA: ScaledObjectCheckFailed: no broker",
    )


def test_an_agent_that_stops_scaling_on_lag_loses_the_condition() -> None:
    scaled = _status(
        _agent(), keda=False, bootstrap_servers="kafka:9092", partitions=None, scaled_object=None, autoscaler=None
    )
    rollout = Rollout(Verdict.true(Reason.ROLLOUT_COMPLETE, "ok"), 1, 1, 1)
    fixed = build_status(
        scaled,
        4,
        accepted=Verdict.true(Reason.APPLIED, "applied"),
        topics=Verdict.true(Reason.TOPICS_READY, "ready"),
        rollout=rollout,
        missing_secrets=(),
        selector="",
        scaling=None,
    )
    assert [c.type for c in fixed.conditions] == ["Accepted", "TopicsReady", "Ready"]
    assert fixed.autoscaling is None and fixed.desired_replicas == 1


# -- the controller -----------------------------------------------------------------------


def test_the_scaled_object_is_applied_with_keda_and_deleted_when_the_spec_drops_it() -> None:
    cluster = FakeCluster(keda=True)
    ctl = SupportAgentController(
        cluster,  # type: ignore[arg-type]
        cluster,
        SETTINGS,
        events=FakeEvents(),  # type: ignore[arg-type]
        secrets=NoSecrets(),
    )

    async def scenario() -> None:
        cluster.put(agent({**SPECIALIST, "autoscaling": {"maxReplicas": 3}}))
        await ctl.reconcile((NS, NAME))
        applied = [kind for verb, kind in cluster.writes if verb == "apply"]
        assert applied[-2:] == ["Deployment", "ScaledObject"]  # KEDA checks the workload it targets
        assert "replicas" not in cluster.objects[("Deployment", NS, NAME)]["spec"]

        cluster.put(agent({**SPECIALIST, "replicas": 2}))
        await ctl.reconcile((NS, NAME))
        assert ("ScaledObject", NS, NAME) not in cluster.objects
        assert ("delete", "ScaledObject") in cluster.writes
        assert cluster.objects[("Deployment", NS, NAME)]["spec"]["replicas"] == 2
        await ctl.stop()

    asyncio.run(scenario())


def test_a_status_field_the_new_status_lacks_is_removed_by_the_patch() -> None:
    before = {"replicas": 2, "autoscaling": {"maxReplicas": 4, "reason": "SucceededRescale"}, "ready": "2/2"}
    assert merge_patch(before, {"replicas": 1, "ready": "1/1"}) == {"replicas": 1, "ready": "1/1", "autoscaling": None}
    assert merge_patch(before, {**before, "autoscaling": {"maxReplicas": 4}}) == {
        **before,
        "autoscaling": {"maxReplicas": 4, "reason": None},
    }
