"""An agent whose pods cannot start says why, in the kubelet's words, instead of waiting out
the progress deadline with a bare "0 of 1 available"."""

from __future__ import annotations

from typing import Any

import pytest

from srs_operator.builders.supportagent_status import Reason, pod_problem, rollout_of

pytestmark = pytest.mark.unit


def _deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, **status},
    }


def _pod(container_state: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "billing-7c9d-x2x"},
        "status": {"containerStatuses": [{"name": "agent", "state": container_state, **extra}]},
    }


def test_a_missing_image_is_named_with_the_kubelets_reason() -> None:
    pod = _pod({"waiting": {"reason": "ErrImageNeverPull", "message": 'image "srs:nope" is not present'}})
    problem = pod_problem(pod)
    assert problem == 'pod billing-7c9d-x2x: container agent: ErrImageNeverPull: image "srs:nope" is not present'

    rollout = rollout_of(_deployment(availableReplicas=0), 1, [problem])
    assert rollout.verdict.reason is Reason.PODS_FAILING
    assert "0 of 1 updated replicas available" in rollout.verdict.message
    assert "ErrImageNeverPull" in rollout.verdict.message


def test_a_crash_loop_reports_the_exit_code() -> None:
    pod = _pod(
        {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}},
        lastState={"terminated": {"exitCode": 2, "reason": "Error"}},
    )
    assert pod_problem(pod) == "pod billing-7c9d-x2x: container agent: CrashLoopBackOff: exit code 2 (Error)"


def test_pods_on_their_way_are_not_problems() -> None:
    assert pod_problem(_pod({"waiting": {"reason": "ContainerCreating"}})) is None
    assert pod_problem(_pod({"running": {"startedAt": "2026-11-30T10:00:00Z"}})) is None
    rollout = rollout_of(_deployment(availableReplicas=0), 1, [])
    assert rollout.verdict.reason is Reason.ROLLING_OUT


def test_an_unschedulable_pod_is_named() -> None:
    pod = {
        "metadata": {"name": "triage-1"},
        "status": {
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes"}
            ]
        },
    }
    assert pod_problem(pod) == "pod triage-1: Unschedulable: 0/1 nodes"


def test_pods_that_admission_refuses_are_reported_from_the_deployment() -> None:
    failure = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": 'pods "billing-1" is forbidden: violates PodSecurity "restricted:latest"',
    }
    rollout = rollout_of(_deployment(availableReplicas=0, updatedReplicas=0, conditions=[failure]), 1)
    assert rollout.verdict.reason is Reason.PODS_FAILING
    assert "violates PodSecurity" in rollout.verdict.message


def test_a_complete_rollout_ignores_stale_pod_problems() -> None:
    rollout = rollout_of(_deployment(availableReplicas=1, readyReplicas=1), 1, ["pod old: ErrImagePull"])
    assert rollout.verdict.reason is Reason.ROLLOUT_COMPLETE
