"""srs's Grafana dashboards, as code: the chart's JSON files are generated from here.

Three dashboards — an overview (tickets in, resolved, to people, dead-lettered; created →
resolved latency; lag per agent), one per agent (throughput, handler latency, retries,
in flight, provider calls, tokens, errors) and the operator's (reconciles, API writes,
conditions). ``srs observability --write`` renders them into
``charts/srs-operator/files/dashboards/``, where the chart ships each as a ConfigMap
labelled for kube-prometheus-stack's Grafana sidecar (``grafana_dashboard: "1"``); a test
fails when the files differ from this module, and a live test evaluates every panel's
query against a real Prometheus scraping real agents (no panel may come back empty).

Panel queries use Grafana's ``$namespace``/``$agent`` variables (regex matchers, "All" is
``.*``) and ``$__rate_interval``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: The label kube-prometheus-stack's Grafana sidecar looks for on ConfigMaps.
SIDECAR_LABEL: Final = ("grafana_dashboard", "1")

_NS: Final = 'namespace=~"$namespace"'
_AGENT: Final = 'namespace=~"$namespace", agent=~"$agent"'


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel and its legend."""

    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    """A time series (or stat) panel."""

    title: str
    queries: Sequence[Query]
    unit: str = "short"
    description: str = ""
    kind: str = "timeseries"
    width: int = 12


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: Sequence[Panel]
    variables: Sequence[str] = field(default_factory=lambda: ("namespace",))


def _rate(metric: str, by: str, selector: str = _AGENT, scale: str = "") -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval])){scale}"


def _quantile(q: float, metric: str, by: str, selector: str = _AGENT) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{{{selector}}}[$__rate_interval])))"


def _per_minute(metric: str, matcher: str = "") -> str:
    selector = f"{_NS}, {matcher}" if matcher else _NS
    return f"sum(rate({metric}{{{selector}}}[$__rate_interval])) * 60"


def _lag(selector: str) -> str:
    # Every replica reports its group's lag: one value per partition, then the sum.
    return f"sum by (agent, topic) (max by (agent, topic, partition) (srs_agent_consumer_lag{{{selector}}}))"


OVERVIEW: Final = Dashboard(
    uid="srs-overview",
    title="srs / Overview",
    description="Tickets through the whole flow: in, resolved, to people, dead-lettered; latency; lag.",
    panels=(
        Panel("Tickets triaged / min", [Query(_per_minute("srs_agent_tickets_total", 'outcome=~"routed|human"'))],
              "short", "Tickets every triage agent decided (to a specialist or to people).", "stat", 6),
        Panel("Resolved / min", [Query(_per_minute("srs_agent_tickets_total", 'outcome="resolved"'), "resolved")],
              "short", "Responses published by specialists.", "stat", 6),
        Panel("To people / min", [Query(_per_minute("srs_agent_tickets_total", 'outcome="human"'), "human queue")],
              "short", "Tickets handed to the human queue (triage not sure, or a guardrail stopped the draft).",
              "stat", 6),
        Panel("Dead-lettered / min", [Query(_per_minute("srs_agent_dead_lettered_total"), "dead-lettered")], "short",
              "Inputs sent to a dead-letter topic, every agent.", "stat", 6),
        Panel("Tickets per minute by outcome", [
            Query(_rate("srs_agent_tickets_total", "outcome", _NS, " * 60"), "{{outcome}}"),
            Query(_per_minute("srs_agent_dead_lettered_total"), "dead-lettered"),
        ], "short", "routed: triage → specialist; human: to people; resolved: a response published.", width=24),
        Panel("Created → resolved latency", [
            Query(_quantile(0.5, "srs_agent_ticket_age_seconds", "outcome", _NS), "p50 {{outcome}}"),
            Query(_quantile(0.95, "srs_agent_ticket_age_seconds", "outcome", _NS), "p95 {{outcome}}"),
        ], "s", "From the ticket's created_at to its resolution (or hand-over to people)."),
        Panel("Consumer lag per agent", [Query(_lag(_NS), "{{agent}} ({{topic}})")], "short",
              "Records of each agent's input topic its consumer group has not committed yet."),
    ),
)  # fmt: skip

AGENT: Final = Dashboard(
    uid="srs-agent",
    title="srs / Agent",
    description="One agent (or all): throughput, handler latency, retries, in flight, provider calls, tokens, errors.",
    variables=("namespace", "agent"),
    panels=(
        Panel("Throughput", [
            Query(_rate("srs_agent_consumed_total", "agent"), "{{agent}} in"),
            Query(_rate("srs_agent_produced_total", "agent"), "{{agent}} out"),
        ], "ops", "Input records consumed and output records acknowledged by Kafka, per second."),
        Panel("Handler latency (consume → outputs acknowledged)", [
            Query(_quantile(0.5, "srs_agent_processing_latency_seconds", "agent"), "p50 {{agent}}"),
            Query(_quantile(0.99, "srs_agent_processing_latency_seconds", "agent"), "p99 {{agent}}"),
        ], "s"),
        Panel("In flight", [Query(f"sum by (agent) (srs_agent_in_flight{{{_AGENT}}})", "{{agent}}")], "short",
              "Inputs being processed right now."),
        Panel("Retries and failed attempts", [
            Query(_rate("srs_agent_retried_total", "agent"), "{{agent}} retries"),
            Query(_rate("srs_agent_failed_total", "agent, reason"), "{{agent}} failed: {{reason}}"),
        ], "ops"),
        Panel("Provider calls", [
            Query(_rate("gen_ai_client_operation_duration_seconds_count", "agent, provider, model, operation"),
                  "{{agent}} {{provider}}/{{model}} {{operation}}"),
        ], "ops", "gen_ai.client.operation.duration: calls per second."),
        Panel("Provider latency p95", [
            Query(_quantile(0.95, "gen_ai_client_operation_duration_seconds", "agent, provider, model"),
                  "{{agent}} {{provider}}/{{model}}"),
        ], "s"),
        Panel("Tokens per minute", [
            Query(_rate("gen_ai_client_token_usage_sum", "agent, model, token_type", scale=" * 60"),
                  "{{agent}} {{model}} {{token_type}}"),
        ], "short", "gen_ai.client.token.usage: input and output tokens."),
        Panel("Provider errors", [
            Query(_rate("srs_agent_provider_errors_total", "agent, provider, kind"), "{{agent}} {{provider}} {{kind}}"),
        ], "ops", "timeout, rate_limited, server, auth, invalid_output, truncated, refused, …"),
        Panel("Dead letters by error class", [
            Query(_rate("srs_agent_dead_lettered_total", "agent, error_class"), "{{agent}} {{error_class}}"),
        ], "ops"),
        Panel("Consumer lag", [Query(_lag(_AGENT), "{{agent}} ({{topic}})")], "short"),
        Panel("Kafka reachable", [Query(f"max by (agent) (srs_agent_kafka_up{{{_AGENT}}})", "{{agent}}")], "short",
              "1: the last lag sample reached the brokers.", "stat"),
        Panel("Triage decisions", [
            Query(_rate("srs_agent_routed_total", "agent, type, route"), "{{agent}} {{type}} → {{route}}"),
        ], "ops"),
    ),
)  # fmt: skip

OPERATOR: Final = Dashboard(
    uid="srs-operator",
    title="srs / Operator",
    description="The operator: reconciles, Kubernetes API writes, Kafka admin calls, conditions.",
    variables=(),
    panels=(
        Panel("Reconciles by kind and result", [
            Query("sum by (kind, result) (rate(srs_operator_reconciles_total[$__rate_interval]))",
                  "{{kind}} {{result}}"),
        ], "ops"),
        Panel("Reconcile duration p95", [
            Query("histogram_quantile(0.95, sum by (kind, le) (rate(srs_operator_reconcile_duration_seconds_bucket"
                  "[$__rate_interval])))", "{{kind}}"),
        ], "s"),
        Panel("API writes", [
            Query("sum by (verb, resource) (rate(srs_operator_api_writes_total[$__rate_interval]))",
                  "{{verb}} {{resource}}"),
            Query("sum by (kind) (rate(srs_operator_status_writes_total[$__rate_interval]))", "status {{kind}}"),
        ], "ops", "A steady state makes none: every write is a change."),
        Panel("API request latency p95", [
            Query("histogram_quantile(0.95, sum by (verb, le) (rate(srs_operator_api_request_duration_seconds_bucket"
                  "[$__rate_interval])))", "{{verb}}"),
        ], "s"),
        Panel("Resources not Ready", [
            Query("sum by (kind) (1 - srs_operator_resource_ready)", "{{kind}}"),
        ], "short", "SupportAgents and TicketTopics whose Ready condition is not True.", "stat"),
        Panel("Ready per resource", [
            Query("srs_operator_resource_ready", "{{kind}} {{namespace}}/{{name}}"),
        ], "short", "1 Ready, 0 not (the condition's reason: kubectl describe)."),
        Panel("Kafka admin requests", [
            Query("sum by (operation) (rate(srs_operator_kafka_admin_calls_total[$__rate_interval]))", "{{operation}}"),
        ], "ops"),
        Panel("Work queue depth", [Query("sum by (kind) (srs_operator_queue_depth)", "{{kind}}")], "short"),
    ),
)  # fmt: skip

DASHBOARDS: Final = (OVERVIEW, AGENT, OPERATOR)


def _variable(name: str) -> dict[str, Any]:
    source = "srs_agent_consumed_total" if name == "agent" else "srs_agent_tickets_total"
    query = (
        f'label_values({source}{{namespace=~"$namespace"}}, agent)'
        if name == "agent"
        else (f"label_values({source}, namespace)")
    )
    return {
        "name": name, "label": name, "type": "query", "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "query": {"query": query, "refId": f"{name}-values"}, "definition": query, "refresh": 2,
        "includeAll": True, "allValue": ".*", "multi": True, "current": {"text": "All", "value": "$__all"},
        "sort": 1,
    }  # fmt: skip


def render(dashboard: Dashboard) -> dict[str, Any]:
    """The Grafana dashboard JSON model of ``dashboard``."""
    panels: list[dict[str, Any]] = []
    x = y = 0
    for number, panel in enumerate(dashboard.panels, start=1):
        height = 4 if panel.kind == "stat" else 8
        if x + panel.width > 24:
            x, y = 0, y + 8
        panels.append({
            "id": number, "type": panel.kind, "title": panel.title, "description": panel.description,
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "gridPos": {"x": x, "y": y, "w": panel.width, "h": height},
            "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
            "options": {"legend": {"displayMode": "list", "placement": "bottom"}} if panel.kind == "timeseries"
            else {"reduceOptions": {"calcs": ["lastNotNull"]}},
            "targets": [
                {"refId": chr(ord("A") + i), "expr": q.expr, "legendFormat": q.legend, "range": True}
                for i, q in enumerate(panel.queries)
            ],
        })  # fmt: skip
        x += panel.width
    datasource = {
        "name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
        "current": {"text": "Prometheus", "value": "prometheus"},
    }  # fmt: skip
    return {
        "uid": dashboard.uid, "title": dashboard.title, "description": dashboard.description,
        "tags": ["srs"], "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": True,
        "time": {"from": "now-1h", "to": "now"}, "refresh": "30s",
        "templating": {"list": [datasource, *(_variable(v) for v in dashboard.variables)]},
        "panels": panels,
    }  # fmt: skip


def files() -> dict[str, str]:
    """File name → content of every dashboard, as the chart ships them."""
    return {f"{d.uid}.json": json.dumps(render(d), indent=2, ensure_ascii=False) + "\n" for d in DASHBOARDS}


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) of every target of a rendered dashboard."""
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            yield panel["title"], target["expr"]
