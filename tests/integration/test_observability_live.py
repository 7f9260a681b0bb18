"""The dashboards and traces against real parts: a real Prometheus, a real Jaeger, real agents.

A triage agent (offline classifier) and a billing specialist (the OpenAI wire double: the
real ``openai`` SDK over HTTP) run as ``srs agent`` processes on the real broker, beside
the test suite's operator reconciling a SupportAgent and its TicketTopics. Tickets flow —
resolved, handed to people, retried after a provider error, dead-lettered — while Debian's
Prometheus scrapes every process. Then every panel's query of every dashboard is evaluated
through Prometheus's HTTP API: one that errors or returns no series fails the test.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` pointing at Jaeger, one ticket's trace is fetched
through Jaeger's ``/api/traces``: the triage span, the specialist's span (its child,
through the ``traceparent`` header across the Kafka hop) and the provider's span, with
the messaging and GenAI attributes, and no ticket text.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from srs import dashboards
from srs_contracts.agent_config import AgentConfig
from tests.harness import Infra, TopicFactory, wait_for
from tests.integration.engine_support import FAST_GROUP, free_port, kill, produce, read_all, start_agent
from tests.integration.observability_support import (
    Jaeger,
    Prometheus,
    get_json,
    running_jaeger,
    running_prometheus,
    ticket,
)
from tests.integration.operator_harness import GROUP, VERSION, Agents
from tests.integration.operator_process import OperatorProcess
from tests.unit.wire_doubles import Reply, openai_completion, openai_error, wire_server

pytestmark = pytest.mark.integration

REAL_HANDLER = "agent_runtime.agent:build_handler"
KEY_ENV = "SRS_TEST_OBSERVABILITY_KEY"
DRAFT = "Hello, we have refunded the duplicate charge of your March invoice. Best regards, Billing"
BILLING = [
    ("charged twice for the March invoice", "You charged my card twice for the March invoice, please refund one."),
    ("refund request", "I cancelled last week but was still billed for the Pro plan. Please refund me."),
    ("wrong invoice amount", "My invoice shows the wrong amount, my plan costs less than what I was billed."),
]
#: Words the classifier has never seen: not sure → the human queue.
UNSURE = ("Blorp", "Snarfle gribbit vonk.")


@dataclass(frozen=True)
class Flow:
    """What ran: the agents' topics and names, the tickets and where they ended."""

    topics: dict[str, str]
    triage: str
    specialist: str
    ticket_ids: list[str]
    resolved: list[dict[str, Any]]


def _agent_configs(infra: Infra, topics: dict[str, str], llm_url: str, tag: str) -> tuple[AgentConfig, AgentConfig]:
    triage = AgentConfig.model_validate({
        "name": f"triage-{tag}", "role": "triage", "server": {"port": free_port()},
        "kafka": {"bootstrap_servers": infra.kafka_bootstrap, "group_id": f"triage-{topics['events']}",
                  "input_topic": topics["events"], "dead_letter_topic": topics["dlq"]},
        "model": {"provider": "offline"},
        "triage": {"routes": {"billing": topics["billing"]}, "human_topic": topics["human"],
                   "confidence_threshold": 0.6},
    })  # fmt: skip
    specialist = AgentConfig.model_validate({
        "name": f"billing-{tag}", "role": "specialist", "server": {"port": free_port()},
        "kafka": {"bootstrap_servers": infra.kafka_bootstrap, "group_id": f"billing-{topics['billing']}",
                  "input_topic": topics["billing"], "dead_letter_topic": topics["dlq"]},
        "model": {"provider": "openai", "name": "gpt-test", "base_url": f"{llm_url}/v1", "api_key_env": KEY_ENV,
                  "timeout_seconds": 10, "max_retries": 0},
        "retry": {"max_attempts": 4, "initial_backoff_ms": 50, "max_backoff_ms": 200},
        "specialist": {"specialty": "billing", "output_topic": topics["resolved"], "human_topic": topics["human"]},
    })  # fmt: skip
    return triage, specialist


@pytest.fixture
def flow_topics(kafka_topic: TopicFactory) -> dict[str, str]:
    return {name: kafka_topic(f"obs-{name}") for name in ("events", "billing", "human", "resolved", "dlq")}


@pytest.fixture
def reconciled_agent(
    api_client: client.ApiClient, agent_namespace: str, srs_operator: OperatorProcess
) -> Iterator[str]:
    """A SupportAgent and its four TicketTopics in a namespace the suite's operator watches, Ready;
    deleted (topics too) while the operator still runs, so no finalizer outlives it."""
    custom = client.CustomObjectsApi(api_client)
    names = {role: f"{agent_namespace}.{role}" for role in ("billing", "resolved", "human", "dlq")}
    for name in names.values():
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TicketTopic",
                "metadata": {"name": name, "namespace": agent_namespace},
                "spec": {"partitions": 1, "deletionPolicy": "Delete"}}  # fmt: skip
        custom.create_namespaced_custom_object(GROUP, VERSION, agent_namespace, "tickettopics", body)
    agents = Agents(api_client, agent_namespace)
    agents.create("billing", {
        "role": "specialist", "specialty": "billing", "model": {"provider": "offline"},
        "inputTopic": names["billing"], "outputTopic": names["resolved"], "humanTopic": names["human"],
        "deadLetterTopic": names["dlq"],
    })  # fmt: skip
    agents.wait_ready("billing", timeout=90)
    yield agent_namespace
    agents.delete("billing")
    for name in names.values():
        custom.delete_namespaced_custom_object(GROUP, VERSION, agent_namespace, "tickettopics", name)
    wait_for(
        "the TicketTopics to be deleted",
        lambda: not custom.list_namespaced_custom_object(GROUP, VERSION, agent_namespace, "tickettopics")["items"],
        timeout=60,
    )


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    with running_prometheus(tmp_path / "prometheus") as running:
        yield running


@pytest.fixture
def jaeger(tmp_path: Path) -> Iterator[Jaeger]:
    with running_jaeger(tmp_path / "jaeger") as running:
        yield running


@contextmanager
def flowing(
    infra: Infra, topics: dict[str, str], tmp_path: Path, tag: str, env: dict[str, str],
    prometheus: Prometheus | None = None, namespace: str = "",
) -> Iterator[Flow]:  # fmt: skip
    """Three billing tickets (the first provider call fails once: a retry), one the classifier is
    unsure of (the human queue) and one malformed message (the dead-letter topic), all at their
    end; the agents keep running until the context ends."""
    tickets = [ticket(f"{tag}-B{i}", subject, body) for i, (subject, body) in enumerate(BILLING)]
    unsure = ticket(f"{tag}-U", *UNSURE)
    replies = [Reply(500, openai_error("overloaded")), Reply(200, openai_completion(DRAFT))]
    with wire_server(*replies) as llm:
        triage, specialist = _agent_configs(infra, topics, llm.url, tag)
        agent_env = {KEY_ENV: "sk-test-observability", **FAST_GROUP, **env}
        processes = [
            start_agent(config, tmp_path, config.name, env=agent_env, handler=REAL_HANDLER)
            for config in (triage, specialist)
        ]
        try:
            if prometheus is not None:
                for config in (triage, specialist):
                    address = f"127.0.0.1:{config.server.port}"
                    prometheus.scrape(f"agent-{config.name}", address, {"namespace": namespace, "pod": config.name})
                    prometheus.wait_scraped(address)
            records = [(t["ticket_id"].encode(), json.dumps(t).encode()) for t in [*tickets, unsure]]
            produce(infra.kafka_bootstrap, topics["events"], [*records, (b"bad", b'{"event_type": "ticket.cr')])
            resolved = read_all(infra.kafka_bootstrap, topics["resolved"], len(tickets), timeout_s=90)
            read_all(infra.kafka_bootstrap, topics["human"], 1, timeout_s=60)
            read_all(infra.kafka_bootstrap, topics["dlq"], 1, timeout_s=60)
            if prometheus is not None:
                # A scrape has seen the end of the flow in both agents.
                def scraped() -> bool:
                    ends = "sum by (outcome) (srs_agent_tickets_total)"
                    found = {
                        r["metric"]["outcome"]: float(r["value"][1]) for r in prometheus.query(ends)["data"]["result"]
                    }
                    return found.get("resolved") == len(tickets) and found.get("human") == 1

                wait_for("Prometheus to see every ticket's end", scraped, timeout=30)
            yield Flow(topics, triage.name, specialist.name, [t["ticket_id"] for t in tickets],
                       [r.json() for r in resolved])  # fmt: skip
        finally:
            for process in processes:
                kill(process, signal.SIGTERM)


def _grafana_to_promql(expr: str) -> str:
    """A panel's query as Grafana sends it with every variable at "All"."""
    return expr.replace("$__rate_interval", "1m").replace('"$namespace"', '".*"').replace('"$agent"', '".*"')


def test_every_dashboard_panel_shows_data_from_real_agents_and_the_operator(
    infra: Infra,
    flow_topics: dict[str, str],
    reconciled_agent: str,
    srs_operator: OperatorProcess,
    prometheus: Prometheus,
    tmp_path: Path,
) -> None:
    operator_address = re.sub(r"^http://|/metrics$", "", srs_operator.metrics_url)
    prometheus.scrape("operator", operator_address, {})
    prometheus.wait_scraped(operator_address)
    empty: list[str] = []
    evaluated = 0
    # While the agents still run: what a person opening the dashboards now would see.
    with flowing(infra, flow_topics, tmp_path, "obs", {}, prometheus, namespace=reconciled_agent) as flow:
        for content in dashboards.files().values():
            board = json.loads(content)
            for title, expr in dashboards.panel_queries(board):
                answer = prometheus.query(_grafana_to_promql(expr))
                evaluated += 1
                if answer.get("status") != "success":
                    empty.append(f"{board['title']} / {title}: {answer.get('error')} ({expr})")
                elif not answer["data"]["result"]:
                    empty.append(f"{board['title']} / {title}: no series ({expr})")
        # What the panels show is what happened.
        human = f'sum(srs_agent_tickets_total{{outcome="human", namespace="{reconciled_agent}"}})'
        failed_calls = 'sum(gen_ai_client_operation_duration_seconds_count{error_type="InternalServerError"})'
        ready = f'srs_operator_resource_ready{{kind="SupportAgent", namespace="{reconciled_agent}", name="billing"}}'
        seen = {
            "human": prometheus.value(human),
            "retried": prometheus.value(f'sum(srs_agent_retried_total{{agent="{flow.specialist}"}})'),
            "failed calls": prometheus.value(failed_calls),
            "agent ready": prometheus.value(ready),
            "agents reaching Kafka": prometheus.value(f'sum(srs_agent_kafka_up{{namespace="{reconciled_agent}"}})'),
        }
    assert not empty, "panels without data:\n" + "\n".join(empty)
    assert evaluated >= 30
    assert seen == {"human": 1, "retried": 1, "failed calls": 1, "agent ready": 1, "agents reaching Kafka": 2}
    # srs's alert rules are loaded and evaluate cleanly.
    rules = get_json(f"{prometheus.url}/api/v1/rules")["data"]["groups"]
    assert {g["name"] for g in rules} == {"srs.recording", "srs.agents", "srs.providers", "srs.operator"}
    assert all(r["health"] != "err" for g in rules for r in g["rules"]), rules


def test_one_tickets_trace_crosses_both_agents_in_jaeger(
    infra: Infra, flow_topics: dict[str, str], jaeger: Jaeger, tmp_path: Path
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint, "OTEL_BSP_SCHEDULE_DELAY": "200"}
    with flowing(infra, flow_topics, tmp_path, "trace", env) as flow:
        pass  # every ticket at its end; stopping the agents exports what their spans buffered
    resolved = next(e for e in flow.resolved if e["ticket_id"] == flow.ticket_ids[-1])
    trace_id = resolved["trace_id"]

    found: dict[str, Any] = {}

    def stored() -> bool:
        trace = jaeger.trace(trace_id)
        if trace is None:
            return False
        found.update(trace)
        names = {s["operationName"] for s in trace["spans"]}
        expected = {
            f"process {flow.topics['events']}",
            f"create {flow.topics['billing']}",
            f"process {flow.topics['billing']}",
            "chat gpt-test",
            f"create {flow.topics['resolved']}",
        }
        return expected <= names  # fmt: skip

    wait_for(f"trace {trace_id} with both agents' spans in Jaeger", stored, timeout=60, interval=0.5)
    assert {flow.triage, flow.specialist} <= set(jaeger.services())
    spans = {s["spanID"]: s for s in found["spans"]}
    by_name = {s["operationName"]: s for s in found["spans"]}
    processes = {p: found["processes"][p]["serviceName"] for p in found["processes"]}

    def tags(span: dict[str, Any]) -> dict[str, Any]:
        return {t["key"]: t["value"] for t in span["tags"]}

    def parent(span: dict[str, Any]) -> dict[str, Any] | None:
        refs = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
        return spans.get(refs[0]["spanID"]) if refs else None

    # Any ticket may have met the one failing provider call (then its trace has two attempts):
    # follow the successful call.
    [provider_span] = [
        s for s in found["spans"] if s["operationName"] == "chat gpt-test" and "error.type" not in tags(s)
    ]
    specialist_span = parent(provider_span)
    assert specialist_span is not None and specialist_span["operationName"] == f"process {flow.topics['billing']}"
    triage_span = by_name[f"process {flow.topics['events']}"]
    assert processes[triage_span["processID"]] == flow.triage
    assert processes[specialist_span["processID"]] == flow.specialist
    # triage process → create <billing topic> → specialist process → chat gpt-test
    created = parent(specialist_span)
    assert created is not None and created["operationName"] == f"create {flow.topics['billing']}"
    assert parent(created) is triage_span

    assert tags(triage_span)["messaging.destination.name"] == flow.topics["events"]
    consumer = tags(specialist_span)
    assert consumer["messaging.system"] == "kafka"
    assert consumer["messaging.destination.name"] == flow.topics["billing"]
    assert consumer["messaging.consumer.group.name"] == f"billing-{flow.topics['billing']}"
    assert isinstance(consumer["messaging.kafka.offset"], int)
    assert consumer["span.kind"] == "consumer"
    model = tags(provider_span)
    assert model["gen_ai.operation.name"] == "chat"
    assert model["gen_ai.provider.name"] == "openai"
    assert model["gen_ai.request.model"] == "gpt-test"
    assert (model["gen_ai.usage.input_tokens"], model["gen_ai.usage.output_tokens"]) == (700, 40)
    # No ticket text in any span: subjects, bodies and the draft stay out.
    text = json.dumps(found)
    for subject, body in BILLING:
        assert subject not in text and body not in text
    assert DRAFT not in text
