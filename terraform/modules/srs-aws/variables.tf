variable "name_prefix" {
  description = "Prefix of every name this module creates (IAM roles are named <prefix>-agent-<class>)."
  type        = string
  default     = "srs"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,31}$", var.name_prefix))
    error_message = "name_prefix must start with a letter and hold at most 32 letters, digits or '-'."
  }
}

variable "customers_table_name" {
  description = "Name of the DynamoDB table the triage agent's enrichment reads customers from."
  type        = string
  default     = "srs-customers"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_.-]{3,255}$", var.customers_table_name))
    error_message = "customers_table_name must be 3-255 characters of letters, digits, '_', '.' or '-' (DynamoDB's rule)."
  }
}

variable "customer_key_attribute" {
  description = "Partition key (a string) that holds the customer id; the SupportAgent's enrichment.keyAttribute."
  type        = string
  default     = "customer_id"

  validation {
    condition     = length(var.customer_key_attribute) >= 1 && length(var.customer_key_attribute) <= 255
    error_message = "customer_key_attribute must be 1-255 characters."
  }
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the table's encryption at rest; null uses the AWS-managed key (aws/dynamodb)."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID) or null."
  }
}

variable "point_in_time_recovery" {
  description = "Keep continuous backups of the customers table (point-in-time recovery)."
  type        = bool
  default     = true
}

variable "deletion_protection" {
  description = "Refuse to delete the customers table until this is set to false and applied."
  type        = bool
  default     = true
}

variable "agent_classes" {
  description = <<-EOT
    One IAM role per agent class, keyed by the SupportAgent's name (the operator names the
    agent's ServiceAccount after it). Each role may only:
      - enrichment = true:   dynamodb:GetItem on the customers table;
      - bedrock_model_arns:  bedrock:InvokeModel (which also authorizes Converse) and
                             bedrock:InvokeModelWithResponseStream (ConverseStream) on these
                             foundation-model / inference-profile ARNs, nothing else.
    namespace is where the SupportAgent lives; service_account defaults to the key.
  EOT
  type = map(object({
    namespace          = string
    service_account    = optional(string)
    enrichment         = optional(bool, false)
    bedrock_model_arns = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.agent_classes) : can(regex("^[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?$", k))])
    error_message = "agent_classes keys must be SupportAgent names: lower-case DNS labels of at most 40 characters."
  }

  validation {
    condition = alltrue(flatten([
      for c in values(var.agent_classes) : [
        can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", c.namespace)),
        c.service_account == null || can(regex("^[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?$", c.service_account)),
      ]
    ]))
    error_message = "Each agent class needs a Kubernetes namespace name (DNS label) and, if set, a valid ServiceAccount name."
  }

  validation {
    condition = alltrue(flatten([
      for c in values(var.agent_classes) : [
        for arn in c.bedrock_model_arns :
        can(regex("^arn:aws[a-z-]*:bedrock:[a-z0-9-]*:[0-9]{0,12}:(foundation-model|inference-profile|application-inference-profile|provisioned-model)/[^*?]+$", arn))
      ]
    ]))
    error_message = "bedrock_model_arns must be named model ARNs (foundation-model/…, inference-profile/…): no wildcards."
  }
}

variable "identity" {
  description = <<-EOT
    How agent pods get their role:
      - "pod_identity": EKS Pod Identity associations (needs the eks-pod-identity-agent add-on); set eks_cluster_name.
      - "irsa":         IAM roles for service accounts; set oidc_provider_arn and oidc_issuer_url, and put the
                        service_account_annotations output on the SupportAgents (spec.serviceAccountAnnotations).
  EOT
  type        = string
  default     = "pod_identity"

  validation {
    condition     = contains(["pod_identity", "irsa"], var.identity)
    error_message = "identity must be \"pod_identity\" or \"irsa\"."
  }
}

variable "eks_cluster_name" {
  description = "EKS cluster that gets the Pod Identity associations (identity = \"pod_identity\")."
  type        = string
  default     = null
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (identity = \"irsa\")."
  type        = string
  default     = null

  validation {
    condition     = var.oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/.+$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be an IAM OIDC provider ARN (arn:aws:iam::ACCOUNT:oidc-provider/…)."
  }
}

variable "oidc_issuer_url" {
  description = "The cluster's OIDC issuer URL, with or without https:// (identity = \"irsa\")."
  type        = string
  default     = null
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary attached to every agent role (many organisations require one); null for none."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags on every resource that takes tags."
  type        = map(string)
  default     = {}
}
