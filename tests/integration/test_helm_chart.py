"""The operator's Helm chart: it lints, carries the same CRDs and RBAC as the rest of the
project, and installs into a real cluster where the operator Deployment becomes available."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from devstack.settings import default_paths
from srs_operator.builders.supportagent import APP_NAME
from srs_operator.settings import MANAGED_BY
from tests.harness import Infra, wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "srs-operator"


def _helm() -> str:
    built = default_paths().go_bins / "helm"
    found = str(built) if built.exists() else shutil.which("helm")
    assert found, "helm is built by `srs dev up` (or install it on PATH for your own cluster)"
    return found


def _render(*args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [_helm(), "template", "srs", str(CHART), "--namespace", "srs-system", *args],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_chart_lints_cleanly() -> None:
    result = subprocess.run([_helm(), "lint", str(CHART)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_chart_grants_exactly_the_operators_least_privilege_rules() -> None:
    docs = _render("--set", "watchNamespaces={support,team-*}", "--set", "secretNamespaces={support,billing}")
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    reference = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((ROOT / "operator/deploy/rbac.yaml").read_text())
        if d["kind"] == "ClusterRole"
    }
    assert roles["srs"]["rules"] == reference["srs-operator"]["rules"]
    assert roles["srs-secrets"]["rules"] == reference["srs-operator-secrets"]["rules"]
    assert not any(r.get("resources") == ["secrets"] for r in roles["srs"]["rules"]), "no cluster-wide Secrets"
    # The Secrets role is bound per namespace: watched namespaces named exactly, and secretNamespaces.
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert [(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in bindings] == [
        ("support", "srs-secrets"),
        ("billing", "srs-secrets"),
    ]
    assert not [d for d in docs if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "srs-secrets"], (
        "the Secrets role is never bound cluster-wide"
    )


def test_chart_binds_the_kafka_credentials_role_only_where_the_operator_manages_kafka_users() -> None:
    reference = {
        d["metadata"]["name"]: d
        for d in yaml.safe_load_all((ROOT / "operator/deploy/rbac.yaml").read_text())
        if d["kind"] == "ClusterRole"
    }
    docs = _render(
        "--set", "watchNamespaces={support}", "--set", "kafka.manageUsers=true",
        "--set", "kafka.agents.securityProtocol=SASL_SSL", "--set", "kafka.agents.ca.secret=kafka-ca",
    )  # fmt: skip
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ClusterRole"}
    assert roles["srs-kafka-credentials"]["rules"] == reference["srs-operator-kafka-credentials"]["rules"]
    bindings = [(b["metadata"]["namespace"], b["roleRef"]["name"]) for b in docs if b["kind"] == "RoleBinding"]
    assert bindings == [("support", "srs-secrets"), ("support", "srs-kafka-credentials")]
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["SRS_AGENT_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["SRS_KAFKA_MANAGE_USERS"] == "true"
    assert env["SRS_AGENT_KAFKA_CA_FILE"] == "/etc/srs-kafka-ca/ca.crt"
    assert env["SRS_KAFKA_CREDENTIALS_ROLE"] == "srs-kafka-credentials"
    assert pod["volumes"] == [
        {"name": "kafka-ca", "secret": {"secretName": "kafka-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
    ]
    # By default the operator decides from the protocol, and nothing may write Secrets.
    default = _render("--set", "watchNamespaces={support}")
    assert [b["roleRef"]["name"] for b in default if b["kind"] == "RoleBinding"] == ["srs-secrets"]
    (deployment,) = [d for d in default if d["kind"] == "Deployment"]
    names = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "SRS_KAFKA_MANAGE_USERS" not in names and "SRS_AGENT_KAFKA_CA_FILE" not in names


def test_chart_ships_the_generated_crds() -> None:
    for generated in sorted((ROOT / "crds").glob("*.yaml")):
        assert (CHART / "crds" / generated.name).read_text() == generated.read_text(), generated.name


def test_values_reach_the_operator_deployment() -> None:
    docs = _render(
        "--set", "kafka.bootstrapServers=b-1.msk.example:9092", "--set", "watchNamespaces={support}",
        "--set", "replicaCount=1", "--set", "kafka.settingsSecret=kafka-sasl",
    )  # fmt: skip
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "b-1.msk.example:9092"
    # The operator knows who it is: a missing Secrets RoleBinding is reported as the exact command.
    assert env["SRS_SECRETS_ROLE"] == "srs-secrets"
    assert env["SRS_OPERATOR_SERVICE_ACCOUNT"] == {"fieldRef": {"fieldPath": "spec.serviceAccountName"}}
    assert "--namespace=support" in container["args"] and "--standalone" in container["args"]
    assert container["envFrom"] == [{"secretRef": {"name": "kafka-sasl"}}]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_chart_installs_and_the_operator_deployment_becomes_available(
    infra: Infra, namespace: str, apps_v1: client.AppsV1Api, api_client: client.ApiClient
) -> None:
    release = f"srs-{uuid.uuid4().hex[:6]}"
    helm = [_helm(), "--kubeconfig", infra.kubeconfig, "--namespace", namespace]
    subprocess.run(
        [*helm, "install", release, str(CHART), "--skip-crds", "--wait", "--timeout", "90s"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    try:
        deployment = apps_v1.read_namespaced_deployment(release, namespace)
        assert deployment.status.available_replicas == 2
        rbac = client.RbacAuthorizationV1Api(api_client)
        binding = rbac.read_cluster_role_binding(release)
        assert binding.subjects[0].name == release and binding.subjects[0].namespace == namespace
    finally:
        subprocess.run([*helm, "uninstall", release, "--wait"], check=True, capture_output=True)
    rbac = client.RbacAuthorizationV1Api(api_client)
    wait_for("cluster role removed", lambda: release not in {r.metadata.name for r in rbac.list_cluster_role().items})


def test_service_monitors_are_rendered_only_when_asked_for() -> None:
    assert not [d for d in _render() if d["kind"] == "ServiceMonitor"]
    docs = _render("--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.serviceMonitor.labels.release=kps")
    monitors = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceMonitor"}
    assert set(monitors) == {"srs-operator", "srs-agents"}
    assert all(m["metadata"]["labels"]["release"] == "kps" for m in monitors.values())
    (operator_service,) = [d for d in docs if d["kind"] == "Service"]
    assert monitors["srs-operator"]["spec"]["selector"]["matchLabels"] == operator_service["spec"]["selector"]
    assert monitors["srs-operator"]["spec"]["endpoints"][0]["port"] == "metrics"
    # The agents' Services, in any namespace, by the labels the operator's builders give them.
    agents = monitors["srs-agents"]["spec"]
    assert agents["namespaceSelector"] == {"any": True}
    selector = {"app.kubernetes.io/name": APP_NAME, "app.kubernetes.io/managed-by": MANAGED_BY}
    assert agents["selector"]["matchLabels"] == selector
    assert agents["endpoints"][0] == {"port": "http", "path": "/metrics", "interval": "30s"}


def test_chart_ships_the_alert_rules_verbatim_as_a_prometheusrule() -> None:
    docs = _render("--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.prometheusRule.labels.release=kps")
    [rule] = [d for d in docs if d["kind"] == "PrometheusRule"]
    plain = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    assert rule["spec"] == plain
    assert rule["metadata"]["labels"]["release"] == "kps"
    assert not [d for d in _render() if d["kind"] == "PrometheusRule"], "off by default"


def test_chart_ships_each_dashboard_as_a_configmap_for_the_grafana_sidecar() -> None:
    docs = _render("--set", "metrics.dashboards.enabled=true")
    maps = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap"}
    assert set(maps) == {"srs-dashboard-overview", "srs-dashboard-agent", "srs-dashboard-operator"}
    for name, cm in maps.items():
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        [(file_name, content)] = cm["data"].items()
        assert content == (CHART / "files" / "dashboards" / file_name).read_text().rstrip("\n"), name


def test_chart_passes_otel_settings_to_the_operator() -> None:
    docs = _render("--set", "otel.OTEL_EXPORTER_OTLP_ENDPOINT=http://collector.obs.svc:4318")
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://collector.obs.svc:4318"
