variable "region" {
  description = "AWS region of the cluster, the customers table and the Bedrock models."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "cluster_name" {
  description = "Name of the existing EKS cluster (with the eks-pod-identity-agent add-on when identity = \"pod_identity\")."
  type        = string

  validation {
    condition     = can(regex("^[0-9A-Za-z][A-Za-z0-9_-]{0,99}$", var.cluster_name))
    error_message = "cluster_name must be an EKS cluster name (letters, digits, '-' and '_', at most 100)."
  }
}

variable "kafka_bootstrap_servers" {
  description = "Kafka bootstrap servers: MSK's BootstrapBrokerString (or …Tls/…SaslIam) or any host:port list (checked by modules/srs-kubernetes)."
  type        = string
}

variable "kafka_settings_secret" {
  description = "Secret in srs-system with KAFKA_* client settings (e.g. KAFKA_SECURITY_PROTOCOL=SSL for MSK TLS); null for plaintext."
  type        = string
  default     = null
}

variable "image" {
  description = "The srs image in your registry (ECR): `make image`, then push it."
  type = object({
    repository = string
    tag        = optional(string)
  })

  validation {
    condition     = length(var.image.repository) > 0 && !can(regex(":[^/]*$", var.image.repository))
    error_message = "image.repository is the repository without a tag (set image.tag for that)."
  }
}

variable "agents" {
  description = "Agent classes (SupportAgent names) with their namespace, enrichment and Bedrock models; see modules/srs-aws."
  type = map(object({
    namespace          = string
    enrichment         = optional(bool, false)
    bedrock_model_arns = optional(list(string), [])
  }))
  default = {
    triage  = { namespace = "support", enrichment = true }
    billing = { namespace = "support" }
  }
}

variable "identity" {
  description = "\"pod_identity\" (EKS Pod Identity associations) or \"irsa\" (service account annotations); checked by modules/srs-aws."
  type        = string
  default     = "pod_identity"
}

variable "oidc_provider_arn" {
  description = "The cluster's IAM OIDC provider ARN (identity = \"irsa\" only)."
  type        = string
  default     = null
}

variable "name_prefix" {
  description = "Prefix of the IAM role names."
  type        = string
  default     = "srs"
}

variable "customers_table_name" {
  description = "DynamoDB table for customer enrichment."
  type        = string
  default     = "srs-customers"
}

variable "deletion_protection" {
  description = "Protect the customers table from deletion."
  type        = bool
  default     = true
}

variable "service_monitor" {
  description = "Render ServiceMonitors (the cluster runs the Prometheus Operator)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags on the AWS resources."
  type        = map(string)
  default     = { "app.kubernetes.io/part-of" = "srs" }
}
