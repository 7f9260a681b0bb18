# Test root: modules/srs-kubernetes applied to the local stack (make terraform-test): the
# operator's chart from this repository, a team namespace. Names carry a suffix so runs on
# a shared cluster never collide.

terraform {
  backend "local" {}
}

variable "kubeconfig" {
  description = "Kubeconfig of the cluster (the local stack's .devstack/kubeconfig)."
  type        = string
}

variable "kafka_bootstrap_servers" {
  description = "The stack's Kafka."
  type        = string
}

variable "suffix" {
  description = "Makes every name of this run unique."
  type        = string
}

provider "kubernetes" {
  config_path = var.kubeconfig
}

provider "helm" {
  kubernetes {
    config_path = var.kubeconfig
  }
}

module "srs_kubernetes" {
  source = "../../modules/srs-kubernetes"

  release_name            = "srs-tf-${var.suffix}"
  namespace               = "srs-tf-${var.suffix}"
  kafka_bootstrap_servers = var.kafka_bootstrap_servers
  image                   = { repository = "srs", tag = "0.1.0" }
  replicas                = 1
  watch_namespaces        = ["support-tf-${var.suffix}"]
  team_namespaces         = { "support-tf-${var.suffix}" = { labels = { "srs.dev/test" = "terraform" } } }
  # Helm never deletes a chart's CRDs, so a destroy that must leave nothing behind cannot
  # let Helm install them. The chart's templates hold no custom resources, so none are needed.
  install_crds    = false
  timeout_seconds = 180
}

output "release_name" {
  value = module.srs_kubernetes.release_name
}

output "namespace" {
  value = module.srs_kubernetes.namespace
}

output "status" {
  value = module.srs_kubernetes.status
}

output "team_namespaces" {
  value = module.srs_kubernetes.team_namespaces
}
