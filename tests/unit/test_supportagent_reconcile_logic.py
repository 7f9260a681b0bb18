"""The decisions behind a silent, truthful reconcile: when to apply a child, what the
status says about a rollout and the topics, and how the work queue schedules agents."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Callable
from typing import Any

import pytest

from srs_contracts.agent_config import ModelConfig
from srs_operator.builders.supportagent_status import (
    Verdict,
    build_status,
    rollout_of,
    status_document,
    topics_verdict,
    transitions,
)
from srs_operator.models.conditions import ConditionStatus
from srs_operator.models.supportagent import Reason, SupportAgentStatus
from srs_operator.services.drift import APPLIED_ANNOTATION, ApplyCause, needs_apply, with_digest
from srs_operator.services.workqueue import RetryLater, WorkQueue

pytestmark = pytest.mark.unit

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "a", "namespace": "n", "labels": {"app": "a"}},
    "spec": {
        "replicas": 2,
        "template": {
            "spec": {
                "containers": [
                    {
                        "name": "agent",
                        "image": "srs:1",
                        "args": ["agent", "--config", "/etc/srs/agent.yaml"],
                        "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                        "resources": {"requests": {"cpu": "0.5", "memory": "1024Mi"}},
                    }
                ]
            }
        },
    },
}


def _live_after_apply() -> dict[str, Any]:
    """What the API server returns: our fields plus defaults, status and other managers' additions."""
    live = copy.deepcopy(with_digest(DESIRED))
    live["metadata"] |= {"resourceVersion": "17", "uid": "u", "generation": 1}
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    container = live["spec"]["template"]["spec"]["containers"][0]
    container |= {"imagePullPolicy": "IfNotPresent", "terminationMessagePath": "/dev/termination-log"}
    container["resources"]["requests"] = {"cpu": "500m", "memory": "1Gi"}  # normalised quantities
    container["env"] = [{"name": "INJECTED", "value": "by a webhook"}]
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["status"] = {"replicas": 2}
    return live


def test_a_missing_child_is_created() -> None:
    assert needs_apply(DESIRED, None) is ApplyCause.CREATE


def test_an_unchanged_child_is_left_alone_despite_server_defaults() -> None:
    assert needs_apply(DESIRED, _live_after_apply()) is None


def test_a_hand_edit_of_an_owned_field_is_drift() -> None:
    live = _live_after_apply()
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:latest"
    assert needs_apply(DESIRED, live) is ApplyCause.DRIFT
    live = _live_after_apply()
    live["spec"]["replicas"] = 5
    assert needs_apply(DESIRED, live) is ApplyCause.DRIFT
    live = _live_after_apply()
    del live["metadata"]["labels"]["app"]
    assert needs_apply(DESIRED, live) is ApplyCause.DRIFT


def test_a_changed_desired_manifest_is_an_update_even_when_a_field_was_only_removed() -> None:
    smaller = copy.deepcopy(DESIRED)
    del smaller["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert needs_apply(smaller, _live_after_apply()) is ApplyCause.UPDATE
    live = _live_after_apply()
    live["metadata"]["annotations"][APPLIED_ANNOTATION] = "stale"
    assert needs_apply(DESIRED, live) is ApplyCause.UPDATE


def _deployment(**status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 3}, "spec": {"replicas": 3}, "status": {"observedGeneration": 3, **status}}


@pytest.mark.parametrize(
    ("status", "ready", "reason"),
    [
        ({"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}, True, "RolloutComplete"),
        ({"replicas": 4, "updatedReplicas": 3, "readyReplicas": 4, "availableReplicas": 4}, False, "RollingOut"),
        ({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 3, "availableReplicas": 3}, False, "RollingOut"),
        ({"replicas": 3, "updatedReplicas": 3, "readyReplicas": 2, "availableReplicas": 2}, False, "RollingOut"),
        (
            {
                "replicas": 3,
                "updatedReplicas": 3,
                "availableReplicas": 3,
                "conditions": [{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}],
            },
            False,
            "ProgressDeadlineExceeded",
        ),
    ],
)
def test_ready_means_the_current_rollout_is_complete(status: dict[str, Any], ready: bool, reason: str) -> None:
    verdict = rollout_of(_deployment(**status), 1).verdict
    assert (verdict.status is ConditionStatus.TRUE, verdict.reason.value) == (ready, reason)


def test_a_rollout_the_deployment_controller_has_not_observed_is_not_ready() -> None:
    deployment = _deployment(replicas=3, updatedReplicas=3, availableReplicas=3)
    deployment["status"]["observedGeneration"] = 2
    assert rollout_of(deployment, 1).verdict.reason is Reason.ROLLING_OUT
    assert rollout_of(None, 2).desired == 2


def test_topics_ready_names_what_is_missing_and_what_is_not_ready() -> None:
    verdict = topics_verdict({"a", "b", "c"}, {"a": True, "b": False})
    assert verdict.status is ConditionStatus.FALSE
    assert verdict.message == "no TicketTopic for c; TicketTopic not Ready for b"
    assert topics_verdict({"a"}, {"a": True}).status is ConditionStatus.TRUE


def _status(previous: SupportAgentStatus, rollout_status: dict[str, Any], missing: list[str]) -> SupportAgentStatus:
    return build_status(
        previous,
        3,
        accepted=Verdict.true(Reason.APPLIED, "applied"),
        topics=Verdict.true(Reason.TOPICS_READY, "ok"),
        rollout=rollout_of(_deployment(**rollout_status), 3),
        missing_secrets=missing,
        selector="app=a",
    )


def test_recomputing_an_unchanged_status_yields_the_identical_document() -> None:
    complete = {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    first = _status(SupportAgentStatus(), complete, [])
    again = _status(first, complete, [])
    assert status_document(again) == status_document(first)  # so the operator writes nothing
    assert transitions(first, again) == []
    assert status_document(first)["ready"] == "3/3"


def test_a_missing_secret_keeps_the_agent_not_ready_and_is_a_transition() -> None:
    complete = {"replicas": 3, "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3}
    first = _status(SupportAgentStatus(), complete, [])
    broken = _status(first, complete, ["Secret llm (key api-key)"])
    ready = next(c for c in broken.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == (ConditionStatus.FALSE, "SecretNotFound")
    assert "Secret llm (key api-key)" in ready.message
    assert [(before.status if before else None, c.type) for before, c in transitions(first, broken)] == [
        (ConditionStatus.TRUE, "Ready")
    ]


async def _run_queue(keys: list[str], fail_first: set[str]) -> tuple[list[str], int]:
    calls: list[str] = []
    concurrent = 0
    peak = 0
    failed: set[str] = set()

    async def handler(key: str) -> None:
        nonlocal concurrent, peak
        concurrent += 1
        peak = max(peak, concurrent)
        calls.append(key)
        await asyncio.sleep(0.01)
        concurrent -= 1
        if key in fail_first and key not in failed:
            failed.add(key)
            raise RuntimeError("transient")

    queue: WorkQueue[str] = WorkQueue("Test", handler, workers=4, initial_backoff=0.05)
    queue.start()
    for key in keys:
        queue.add(key)
    await _until(lambda: "a" in calls)
    queue.add("a")  # announced while running: runs once more afterwards
    await _until(lambda: calls.count("b") == 2 and queue.idle())
    await queue.stop()
    return calls, peak


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (bounded) until ``condition()`` holds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def test_the_work_queue_coalesces_retries_and_reruns_keys_announced_while_running() -> None:
    calls, peak = asyncio.run(_run_queue(["a", "a", "a", "b"], fail_first={"b"}))
    assert calls.count("a") == 2  # three adds while queued coalesce; one more while running
    assert calls.count("b") == 2  # failed once, retried after backoff
    assert peak <= 2


async def _order_of(adds: list[tuple[str, bool]]) -> list[str]:
    calls: list[str] = []

    async def handler(key: str) -> None:
        calls.append(key)

    queue: WorkQueue[str] = WorkQueue("Test", handler, workers=1)
    for key, urgent in adds:
        queue.add(key, urgent=urgent)
    queue.start()
    await _until(lambda: len(calls) == len(adds) and queue.idle())
    await queue.stop()
    return calls


def test_urgent_keys_overtake_routine_ones_in_arrival_order() -> None:
    order = asyncio.run(_order_of([("resync-1", False), ("new-1", True), ("resync-2", False), ("new-2", True)]))
    assert order == ["new-1", "new-2", "resync-1", "resync-2"]


def test_status_names_the_effective_provider_and_model_with_defaults_applied() -> None:
    # `kubectl get sagent` shows these columns; an agent that leaves spec.model unset runs
    # the runtime's default, and the columns must say which.
    status = build_status(
        SupportAgentStatus(),
        1,
        accepted=Verdict.true(Reason.APPLIED, "applied"),
        topics=Verdict.true(Reason.TOPICS_READY, "ok"),
        rollout=rollout_of(None, 1),
        missing_secrets=[],
        selector="app=a",
        model=ModelConfig(),
    )
    assert (status.provider, status.model) == ("offline", "offline-v1")


async def _fail_past(failures: int) -> tuple[int, tuple[bool, str], float]:
    calls = 0

    async def handler(key: str) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("always fails")

    # Tiny delays so that the key fails more than 1,024 times within the test.
    queue: WorkQueue[str] = WorkQueue("Test", handler, workers=1, initial_backoff=1e-9, max_backoff=1e-6)
    queue.start()
    queue.add("poison")
    deadline = asyncio.get_running_loop().time() + 30
    while calls < failures and queue.healthy()[0] and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.001)
    health = queue.healthy()
    queue.add("poison")
    await queue.stop()
    return calls, health, queue.backoff(calls)


def test_a_key_failing_more_than_1024_times_keeps_its_worker_alive() -> None:
    # 0.5 * 2 ** (failures - 1) overflows a float past 1,024 failures; the worker must survive it.
    calls, (healthy, why), delay = asyncio.run(_fail_past(1_100))
    assert calls >= 1_100
    assert healthy, why
    assert delay == 1e-6


async def _dead_worker_health() -> tuple[bool, str]:
    async def handler(key: str) -> None:
        return None

    queue: WorkQueue[str] = WorkQueue("Test", handler, workers=2)
    queue.start()
    queue._tasks[0].cancel()  # a worker that died, whatever the cause
    await asyncio.sleep(0)
    health = queue.healthy()
    await queue.stop()
    return health


def test_liveness_reports_a_dead_worker() -> None:
    healthy, why = asyncio.run(_dead_worker_health())
    assert not healthy
    assert "1 of 2 Test workers have stopped" in why


def test_backoff_doubles_and_is_capped() -> None:
    async def handler(key: str) -> None:
        return None

    queue: WorkQueue[str] = WorkQueue("Test", handler, initial_backoff=0.5, max_backoff=300)
    assert [queue.backoff(n) for n in (1, 2, 3, 10, 1_025, 10**9)] == [0.5, 1.0, 2.0, 256.0, 300.0, 300.0]


def test_an_empty_env_value_as_the_api_server_stores_it_is_not_drift() -> None:
    # The API server drops `value: ""` (omitempty); the built manifest must already say so,
    # or every resync re-applies the Deployment and posts DriftReverted.
    from srs_operator.builders.supportagent import build_deployment
    from srs_operator.models.supportagent import SupportAgent
    from srs_operator.settings import OperatorSettings

    body = {
        "metadata": {"namespace": "n", "name": "a", "uid": "u", "generation": 1},
        "spec": {
            "role": "specialist",
            "specialty": "billing",
            "inputTopic": "in",
            "env": [{"name": "EMPTY", "value": ""}, {"name": "SET", "value": "x"}],
        },
    }
    desired = build_deployment(SupportAgent.from_body(body), OperatorSettings(), "hash")
    live = copy.deepcopy(with_digest(desired))
    for var in live["spec"]["template"]["spec"]["containers"][0]["env"]:
        if var.get("value") == "":
            del var["value"]  # what a GET returns
    assert needs_apply(desired, live) is None


@pytest.mark.parametrize(
    ("pattern", "namespace", "served"),
    [
        ("srs-test-sa-*", "srs-test-sa-1", True),
        ("srs-test-sa-*", "srs-test-tt-1", False),
        ("!srs-test-*", "support", True),
        ("!srs-test-*", "srs-test-1", False),
        ("team-*, !*-pr-*, *pr-123", "team-pr-123", True),
        ("team-*, !*-pr-*, *pr-123", "team-pr-456", False),
    ],
)
def test_namespace_patterns_follow_kopfs_rules(pattern: str, namespace: str, served: bool) -> None:
    from srs_operator.builders.namespace_patterns import matches

    assert matches(namespace, pattern) is served


def test_liveness_fails_when_an_indexed_object_waits_for_its_handler_past_the_bound() -> None:
    from srs_operator.liveness import HandlingLag

    now = [0.0]
    lag = HandlingLag(bound=60, clock=lambda: now[0])
    lag.indexed(("TicketTopic", "ns", "a"))
    now[0] = 30
    lag.indexed(("TicketTopic", "ns", "a"))  # a later event of the same object keeps the first time
    assert lag.stalled()[0] is False
    now[0] = 61
    stalled, why = lag.stalled()
    assert stalled and "has waited 61s (bound 60s)" in why
    lag.handled(("TicketTopic", "ns", "a"))
    assert lag.stalled()[0] is False


async def _retry_later(delay: float | None, at_most: float | None) -> tuple[list[float], float]:
    started = asyncio.get_running_loop().time()
    runs: list[float] = []

    async def handler(key: str) -> None:
        runs.append(asyncio.get_running_loop().time() - started)
        if len(runs) < 3:
            raise RetryLater("not yet", delay=delay, at_most=at_most)

    queue: WorkQueue[str] = WorkQueue("Test", handler, workers=1, initial_backoff=1.0, max_backoff=60)
    queue.start()
    queue.add("k")
    await _until(lambda: len(runs) == 3 and queue.idle())
    backing_off = len(queue._failures)
    await queue.stop()
    return runs, backing_off


def test_retry_later_with_a_delay_comes_back_after_it_and_counts_no_failure() -> None:
    runs, _ = asyncio.run(_retry_later(delay=0.05, at_most=None))
    assert [round(b - a, 2) >= 0.05 for a, b in itertools.pairwise(runs)] == [True, True]
    assert runs[-1] < 1.0  # not the 1 s, 2 s backoff of failures


def test_retry_later_without_a_delay_backs_off_within_its_bound() -> None:
    runs, backing_off = asyncio.run(_retry_later(delay=None, at_most=0.02))
    assert runs[-1] < 1.0  # the backoff (1 s, then 2 s) capped at 0.02 s
    assert backing_off == 0  # the success cleared it
