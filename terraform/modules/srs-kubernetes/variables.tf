variable "release_name" {
  description = "Helm release name of the operator (also the name of its Deployment, ServiceAccount and ClusterRoles)."
  type        = string
  default     = "srs"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$", var.release_name))
    error_message = "release_name must be a lower-case DNS label of at most 53 characters (Helm's limit)."
  }
}

variable "namespace" {
  description = "Namespace of the operator."
  type        = string
  default     = "srs-system"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.namespace))
    error_message = "namespace must be a lower-case DNS label."
  }
}

variable "create_namespace" {
  description = "Create the operator's namespace (false: it exists already)."
  type        = bool
  default     = true
}

variable "chart" {
  description = "The srs-operator chart: a path (defaults to charts/srs-operator of this repository) or a chart name in chart_repository."
  type        = string
  default     = null
}

variable "chart_repository" {
  description = "Helm repository (https:// or oci://) holding the chart; null when chart is a path."
  type        = string
  default     = null
}

variable "chart_version" {
  description = "Chart version to install from chart_repository; null for the newest (a path ignores it)."
  type        = string
  default     = null
}

variable "image" {
  description = "The srs image (operator and agents share it): repository and tag (tag null: the chart's appVersion)."
  type = object({
    repository  = string
    tag         = optional(string)
    pull_policy = optional(string, "IfNotPresent")
  })
  default = { repository = "srs" }

  validation {
    condition     = contains(["Always", "IfNotPresent", "Never"], var.image.pull_policy)
    error_message = "image.pull_policy must be Always, IfNotPresent or Never."
  }
}

variable "kafka_bootstrap_servers" {
  description = "Kafka bootstrap servers, host:port[,host:port…] (MSK's bootstrap string works as is)."
  type        = string

  validation {
    condition     = can(regex("^[^,:\\s]+:[0-9]{1,5}(,[^,:\\s]+:[0-9]{1,5})*$", var.kafka_bootstrap_servers))
    error_message = "kafka_bootstrap_servers must be host:port, comma-separated for several brokers (no spaces, no scheme)."
  }
}

variable "kafka_settings_secret" {
  description = "Secret in the operator's namespace with extra KAFKA_* settings (SASL/TLS: KAFKA_SECURITY_PROTOCOL, …); null for none."
  type        = string
  default     = null
}

variable "watch_namespaces" {
  description = "Namespaces the operator watches (globs allowed); empty: the whole cluster. The team namespaces are added."
  type        = list(string)
  default     = []
}

variable "replicas" {
  description = "Operator replicas (kopf peering keeps one active; 1 runs standalone)."
  type        = number
  default     = 2

  validation {
    condition     = var.replicas >= 1 && var.replicas <= 5 && floor(var.replicas) == var.replicas
    error_message = "replicas must be a whole number from 1 to 5."
  }
}

variable "team_namespaces" {
  description = <<-EOT
    Namespaces for agent teams, created here with the restricted Pod Security Standard
    enforced (the agents run under it). Keyed by name; labels and annotations are added.
  EOT
  type = map(object({
    labels      = optional(map(string), {})
    annotations = optional(map(string), {})
  }))
  default = {}

  validation {
    condition     = alltrue([for n in keys(var.team_namespaces) : can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", n))])
    error_message = "team_namespaces keys must be lower-case DNS labels."
  }
}

variable "install_crds" {
  description = "Install the chart's CRDs (SupportAgent, TicketTopic, kopf peering). false: they are managed elsewhere (e.g. GitOps)."
  type        = bool
  default     = true
}

variable "service_monitor" {
  description = "Prometheus Operator ServiceMonitors for the operator and every agent (needs the monitoring.coreos.com CRDs). labels: what your Prometheus selects."
  type = object({
    enabled  = optional(bool, false)
    labels   = optional(map(string), {})
    interval = optional(string, "30s")
  })
  default = {}
}

variable "prometheus_stack" {
  description = <<-EOT
    Optionally install kube-prometheus-stack as well, set up to pick up the srs ServiceMonitors
    from every namespace (this turns service_monitor on). repository: where the chart is served
    (https://prometheus-community.github.io/helm-charts upstream, or your mirror).
  EOT
  type = object({
    enabled    = optional(bool, false)
    repository = optional(string)
    version    = optional(string)
    namespace  = optional(string, "monitoring")
    values     = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = !var.prometheus_stack.enabled || var.prometheus_stack.repository != null
    error_message = "prometheus_stack.enabled needs prometheus_stack.repository (the chart repository to install from)."
  }
}

variable "values" {
  description = "Extra values documents (YAML) for the srs-operator chart, applied after the module's own."
  type        = list(string)
  default     = []
}

variable "wait" {
  description = "Wait until the operator's Deployment is available before the apply completes."
  type        = bool
  default     = true
}

variable "timeout_seconds" {
  description = "How long Helm waits for the release."
  type        = number
  default     = 300
}
