# The Kubernetes side of an srs install: the operator from this repository's Helm chart,
# namespaces for agent teams, and (optionally) Prometheus Operator monitoring.

locals {
  chart = coalesce(var.chart, "${path.module}/../../../charts/srs-operator")

  monitoring = var.service_monitor.enabled || var.prometheus_stack.enabled
  # kube-prometheus-stack's own Prometheus selects ServiceMonitors labelled release=<its release>.
  monitor_labels = merge(
    var.prometheus_stack.enabled ? { release = "kube-prometheus-stack" } : {},
    var.service_monitor.labels,
  )

  # Empty means the whole cluster, team namespaces included; a list gets them added.
  watch_namespaces = length(var.watch_namespaces) == 0 ? [] : distinct(concat(var.watch_namespaces, sort(keys(var.team_namespaces))))

  operator_values = yamlencode({
    image = {
      repository = var.image.repository
      tag        = var.image.tag != null ? var.image.tag : ""
      pullPolicy = var.image.pull_policy
    }
    replicaCount    = var.replicas
    watchNamespaces = local.watch_namespaces
    kafka = {
      bootstrapServers = var.kafka_bootstrap_servers
      settingsSecret   = var.kafka_settings_secret != null ? var.kafka_settings_secret : ""
    }
    metrics = {
      serviceMonitor = {
        enabled  = local.monitoring
        labels   = local.monitor_labels
        interval = var.service_monitor.interval
      }
    }
  })
}

# Namespaces are Terraform's, not Helm's: `helm uninstall` never deletes a namespace, so
# a namespace Helm created would outlive `destroy`.
resource "kubernetes_namespace" "operator" {
  count = var.create_namespace ? 1 : 0

  metadata {
    name   = var.namespace
    labels = { "app.kubernetes.io/part-of" = "srs" }
  }
}

resource "kubernetes_namespace" "team" {
  for_each = var.team_namespaces

  metadata {
    name = each.key
    labels = merge(
      {
        "app.kubernetes.io/part-of"          = "srs"
        "pod-security.kubernetes.io/enforce" = "restricted"
      },
      each.value.labels,
    )
    annotations = each.value.annotations
  }
}

resource "kubernetes_namespace" "monitoring" {
  count = var.prometheus_stack.enabled ? 1 : 0

  metadata {
    name   = var.prometheus_stack.namespace
    labels = { "app.kubernetes.io/part-of" = "srs" }
  }
}

resource "helm_release" "prometheus_stack" {
  count = var.prometheus_stack.enabled ? 1 : 0

  name       = "kube-prometheus-stack"
  namespace  = kubernetes_namespace.monitoring[0].metadata[0].name
  repository = var.prometheus_stack.repository
  chart      = "kube-prometheus-stack"
  version    = var.prometheus_stack.version
  timeout    = var.timeout_seconds
  values = concat([yamlencode({
    prometheus = {
      prometheusSpec = {
        # Pick up ServiceMonitors from every namespace, not only this release's.
        serviceMonitorSelectorNilUsesHelmValues = false
        serviceMonitorNamespaceSelector         = {}
      }
    }
  })], var.prometheus_stack.values)
}

resource "helm_release" "operator" {
  name       = var.release_name
  namespace  = var.namespace
  chart      = local.chart
  repository = var.chart_repository
  version    = var.chart_version
  # CRDs in the chart's crds/ folder: Helm installs them once and never deletes them
  # (deleting a CRD deletes every SupportAgent and TicketTopic in the cluster).
  skip_crds = !var.install_crds
  wait      = var.wait
  timeout   = var.timeout_seconds
  values    = concat([local.operator_values], var.values)

  # The namespace first; the ServiceMonitor CRD before a chart that renders ServiceMonitors.
  depends_on = [kubernetes_namespace.operator, kubernetes_namespace.team, helm_release.prometheus_stack]
}
