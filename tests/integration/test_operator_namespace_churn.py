"""Never deaf: an operator started while watched namespaces come and go still reconciles
new objects within seconds, every time.

kopf, asked to watch namespace globs, runs watch streams per namespace and holds every
handler until each stream finished its initial listing; a namespace deleted before its
streams listed leaves that wait unfinished forever (srs_operator.kopf_patches). Each round
below starts a fresh operator (under the shipped least-privilege role) while namespaces
matching its glob are deleted under it (and a thread keeps creating and deleting others
in the background), then creates a TicketTopic and a SupportAgent and waits a few seconds
for them to be reconciled.
"""

from __future__ import annotations

import contextlib
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from kubernetes import client

from tests.harness import Infra, create_test_namespace, wait_for
from tests.integration.operator_harness import Agents
from tests.integration.operator_process import run_operator
from tests.integration.tickettopic_support import (
    GROUP,
    PLURAL,
    TOPIC_OPERATOR_ENV,
    VERSION,
    TicketTopics,
    delete_topic_if_present,
)

pytestmark = pytest.mark.integration

ROUNDS = 3
#: "Within seconds": the bound each round's objects must be reconciled in.
RECONCILED_WITHIN = 20.0


class Churn:
    """Creates namespaces matching a glob (each with a few objects to list) and deletes them
    again, round and round, until stopped."""

    def __init__(self, core_v1: client.CoreV1Api, prefix: str) -> None:
        self.core_v1 = core_v1
        self.prefix = prefix
        self.created = 0
        self.deleted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Churn:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        alive: list[str] = []
        while not self._stop.is_set():
            try:
                name = f"{self.prefix}churn-{uuid.uuid4().hex[:6]}"
                create_test_namespace(self.core_v1, name)
                for i in range(3):  # something for the streams of that namespace to list
                    self.core_v1.create_namespaced_config_map(
                        name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i}"), data={"k": "v"})
                    )
                self.created += 1
                alive.append(name)
                if len(alive) > 3:
                    self.core_v1.delete_namespace(alive.pop(0), propagation_policy="Background")
                    self.deleted += 1
            except client.ApiException:
                pass  # a namespace still terminating, a conflict: churn on
            self._stop.wait(0.8)  # a busy shared cluster, not a flood kopf cannot keep up with
        for name in alive:
            with contextlib.suppress(client.ApiException):
                self.core_v1.delete_namespace(name, propagation_policy="Background")


def _namespaces_to_vanish(core_v1: client.CoreV1Api, prefix: str, count: int = 6) -> list[str]:
    """Namespaces matching the glob, with something to list, that will vanish while the
    next operator starts (the issue's "right after the namespace was deleted")."""
    names = [f"{prefix}gone-{uuid.uuid4().hex[:6]}" for _ in range(count)]
    for name in names:
        create_test_namespace(core_v1, name)
        for i in range(3):
            core_v1.create_namespaced_config_map(
                name, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=f"cm-{i}"), data={"k": "v"})
            )
    return names


def _delete_during_startup(core_v1: client.CoreV1Api, names: list[str], over: float = 3.0) -> threading.Thread:
    """Delete ``names`` one after another over ``over`` seconds, from now on (in a thread)."""

    def run() -> None:
        for name in names:
            with contextlib.suppress(client.ApiException):
                core_v1.delete_namespace(name, propagation_policy="Background")
            time.sleep(over / len(names))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _liveness(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - localhost
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_an_operator_started_amid_namespace_churn_reconciles_new_objects_within_seconds(
    infra: Infra,
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    srs_crds: None,
    operator_kubeconfig: str,
    kafka_admin: AdminClient,
    tmp_path: Path,
) -> None:
    prefix = f"srs-test-nd{uuid.uuid4().hex[:4]}-"
    topics = TicketTopics(api_client)
    timings: list[tuple[float, float]] = []
    made: list[str] = []
    with Churn(core_v1, prefix) as churn:
        wait_for("the churn to get going", lambda: churn.deleted >= 2, timeout=60)
        for round_ in range(ROUNDS):
            log = tmp_path / f"operator-{round_}.log"
            vanishing = _delete_during_startup(core_v1, _namespaces_to_vanish(core_v1, prefix))
            with run_operator(
                operator_kubeconfig, infra.kafka_bootstrap, log, f"{prefix}*", env=TOPIC_OPERATOR_ENV
            ) as operator:
                vanishing.join(timeout=30)
                ns = f"{prefix}r{round_}-{uuid.uuid4().hex[:4]}"
                create_test_namespace(core_v1, ns)
                try:
                    started = time.monotonic()
                    topic = f"nd-{uuid.uuid4().hex[:8]}"
                    topics.create(ns, topic, {"partitions": 1})
                    agents = Agents(api_client, ns)
                    agents.create(
                        "triage",
                        {
                            "role": "triage",
                            "inputTopic": topic,
                            "routes": {"billing": f"{topic}.billing"},
                            "humanTopic": f"{topic}.human",
                        },
                    )
                    try:
                        topics.wait_condition(ns, topic, "True", timeout=RECONCILED_WITHIN)
                        topic_at = time.monotonic() - started
                        agents.wait_condition("triage", "Accepted", "True", timeout=RECONCILED_WITHIN)
                        agent_at = time.monotonic() - started
                    except AssertionError as e:
                        raise AssertionError(
                            f"round {round_}: {e}\n--- operator log ---\n{operator.log_tail()}"
                        ) from None
                    timings.append((topic_at, agent_at))
                    assert _liveness(operator.liveness_url) == 200
                finally:
                    made.append(topic)
                    with contextlib.suppress(client.ApiException):
                        core_v1.delete_namespace(ns, propagation_policy="Background")
        print(f"namespace churn: {churn.created} created, {churn.deleted} deleted during the test")
    for name in made:
        delete_topic_if_present(kafka_admin, name)
    for round_, (topic_at, agent_at) in enumerate(timings):
        print(f"round {round_}: TicketTopic Ready after {topic_at:.1f}s, SupportAgent Accepted after {agent_at:.1f}s")


#: More objects of one kind in one namespace than kopf once handled at a time (150).
BACKLOG = 200


def test_an_operator_started_beside_hundreds_of_objects_handles_them_without_waiting_on_itself(
    infra: Infra,
    api_client: client.ApiClient,
    core_v1: client.CoreV1Api,
    srs_crds: None,
    operator_kubeconfig: str,
    kafka_admin: AdminClient,
    tmp_path: Path,
) -> None:
    # kopf indexes every object of its first listing before any handler runs, and each
    # object's worker waits for that, holding its place. With a bound on the workers
    # (srs once set 150), a listing longer than the bound left the rest unindexed behind
    # them: every handler waited until kopf_patches' watchdog released the stuck objects
    # (20 s), at each start of an operator beside that many agents or topics.
    prefix = f"srs-test-bl{uuid.uuid4().hex[:4]}-"
    ns = f"{prefix}topics"
    create_test_namespace(core_v1, ns)
    topics = TicketTopics(api_client)
    names = [f"bl-{uuid.uuid4().hex[:8]}" for _ in range(BACKLOG)]
    try:
        for name in names:
            topics.create(ns, name, {"partitions": 1})
        log = tmp_path / "operator.log"
        with run_operator(
            operator_kubeconfig, infra.kafka_bootstrap, log, f"{prefix}*", env=TOPIC_OPERATOR_ENV
        ) as operator:

            def all_ready() -> bool:
                items = topics.api.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)["items"]
                return sum(
                    any(
                        c.get("type") == "Ready" and c.get("status") == "True"
                        for c in i.get("status", {}).get("conditions") or ()
                    )
                    for i in items
                ) == len(names)

            wait_for(f"{BACKLOG} TicketTopics Ready", all_ready, timeout=180, interval=1)
            stuck = [line for line in operator.log.read_text().splitlines() if "index toggles" in line]
            assert stuck == [], f"kopf waited on its own workers:\n{stuck}"
    finally:
        with contextlib.suppress(client.ApiException):
            core_v1.delete_namespace(ns, propagation_policy="Background")
        for future in kafka_admin.delete_topics(names).values():
            with contextlib.suppress(Exception):
                future.result(timeout=60)
