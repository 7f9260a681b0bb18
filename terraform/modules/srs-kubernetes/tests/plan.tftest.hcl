# Plan assertions for srs-kubernetes with mocked providers (no cluster needed):
# `tofu test` in this folder. The real apply runs in `make terraform-test`.

mock_provider "helm" {}
mock_provider "kubernetes" {}

variables {
  kafka_bootstrap_servers = "b-1.msk.example:9092,b-2.msk.example:9092"
}

run "defaults_install_the_repository_chart_with_its_crds_and_no_monitoring" {
  command = plan

  assert {
    condition     = helm_release.operator.name == "srs" && helm_release.operator.namespace == "srs-system"
    error_message = "the operator is released as srs in srs-system by default"
  }
  assert {
    condition     = endswith(helm_release.operator.chart, "charts/srs-operator")
    error_message = "the chart defaults to charts/srs-operator of this repository"
  }
  assert {
    condition     = helm_release.operator.skip_crds == false
    error_message = "the chart's CRDs are installed by default"
  }
  assert {
    condition     = yamldecode(helm_release.operator.values[0]).kafka.bootstrapServers == "b-1.msk.example:9092,b-2.msk.example:9092"
    error_message = "the bootstrap servers reach the chart"
  }
  assert {
    condition     = yamldecode(helm_release.operator.values[0]).metrics.serviceMonitor.enabled == false
    error_message = "no ServiceMonitor unless asked for"
  }
  assert {
    condition     = length(helm_release.prometheus_stack) == 0 && length(kubernetes_namespace.monitoring) == 0
    error_message = "no Prometheus stack unless asked for"
  }
  assert {
    condition     = kubernetes_namespace.operator[0].metadata[0].name == "srs-system"
    error_message = "the operator namespace is Terraform's (so destroy removes it)"
  }
}

run "team_namespaces_enforce_restricted_pod_security_and_are_watched" {
  command = plan

  variables {
    watch_namespaces = ["support"]
    team_namespaces  = { "team-billing" = { labels = { owner = "billing" } } }
  }

  assert {
    condition     = kubernetes_namespace.team["team-billing"].metadata[0].labels["pod-security.kubernetes.io/enforce"] == "restricted"
    error_message = "team namespaces enforce the restricted Pod Security Standard"
  }
  assert {
    condition     = kubernetes_namespace.team["team-billing"].metadata[0].labels["owner"] == "billing"
    error_message = "team namespace labels are added"
  }
  assert {
    condition     = output.watch_namespaces == tolist(["support", "team-billing"])
    error_message = "team namespaces join a non-empty watch list"
  }
  assert {
    condition     = yamldecode(helm_release.operator.values[0]).watchNamespaces == ["support", "team-billing"]
    error_message = "the watch list reaches the chart"
  }
}

run "an_empty_watch_list_still_means_the_whole_cluster" {
  command = plan

  variables {
    team_namespaces = { "team-a" = {} }
  }

  assert {
    condition     = length(output.watch_namespaces) == 0
    error_message = "team namespaces must not narrow a cluster-wide operator"
  }
}

run "the_prometheus_stack_turns_the_service_monitors_on" {
  command = plan

  variables {
    prometheus_stack = { enabled = true, repository = "https://charts.example.invalid/prometheus-community", version = "79.0.0" }
  }

  assert {
    condition     = helm_release.prometheus_stack[0].chart == "kube-prometheus-stack" && helm_release.prometheus_stack[0].version == "79.0.0"
    error_message = "kube-prometheus-stack is installed at the pinned version"
  }
  assert {
    condition     = yamldecode(helm_release.prometheus_stack[0].values[0]).prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues == false
    error_message = "Prometheus picks up ServiceMonitors of other releases (the srs ones)"
  }
  assert {
    condition     = yamldecode(helm_release.operator.values[0]).metrics.serviceMonitor.enabled
    error_message = "the srs chart renders its ServiceMonitors"
  }
  assert {
    condition     = yamldecode(helm_release.operator.values[0]).metrics.serviceMonitor.labels.release == "kube-prometheus-stack"
    error_message = "the ServiceMonitors carry the label the stack's Prometheus selects"
  }
}

run "skipping_crds_and_extra_values_reach_helm" {
  command = plan

  variables {
    install_crds = false
    values       = ["replicaCount: 3"]
  }

  assert {
    condition     = helm_release.operator.skip_crds
    error_message = "install_crds = false skips the chart's CRDs"
  }
  assert {
    condition     = helm_release.operator.values[1] == "replicaCount: 3"
    error_message = "extra values come after the module's own"
  }
}

run "a_bootstrap_address_with_a_scheme_is_refused" {
  command = plan

  variables {
    kafka_bootstrap_servers = "kafka://b-1.msk.example:9092"
  }

  expect_failures = [var.kafka_bootstrap_servers]
}

run "a_prometheus_stack_needs_a_repository" {
  command = plan

  variables {
    prometheus_stack = { enabled = true }
  }

  expect_failures = [var.prometheus_stack]
}
