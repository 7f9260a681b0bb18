output "release_name" {
  description = "Helm release of the operator."
  value       = helm_release.operator.name
}

output "namespace" {
  description = "Namespace of the operator."
  value       = helm_release.operator.namespace
}

output "status" {
  description = "Helm's status of the operator release (deployed, failed, …)."
  value       = helm_release.operator.status
}

output "team_namespaces" {
  description = "Namespaces created for agent teams (restricted Pod Security Standard enforced)."
  value       = sort([for ns in kubernetes_namespace.team : ns.metadata[0].name])
}

output "watch_namespaces" {
  description = "What the operator watches: [] for the whole cluster."
  value       = local.watch_namespaces
}

output "service_monitor_enabled" {
  description = "Whether the chart renders ServiceMonitors for the operator and the agents."
  value       = local.monitoring
}
