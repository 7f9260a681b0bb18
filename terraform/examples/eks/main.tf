# srs on an existing EKS cluster and an existing Kafka (MSK or any bootstrap address):
# the customers table and the agents' IAM roles (srs-aws), then the operator, team
# namespaces and optional monitoring (srs-kubernetes).

provider "aws" {
  region = var.region
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

locals {
  # Short-lived tokens from the AWS CLI on each run, never a stored credential.
  eks_exec = {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", var.cluster_name, "--region", var.region]
  }
}

provider "kubernetes" {
  host                   = data.aws_eks_cluster.this.endpoint
  cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
  exec {
    api_version = local.eks_exec.api_version
    command     = local.eks_exec.command
    args        = local.eks_exec.args
  }
}

provider "helm" {
  kubernetes = {
    host                   = data.aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(data.aws_eks_cluster.this.certificate_authority[0].data)
    exec                   = local.eks_exec
  }
}

module "srs_aws" {
  source = "../../modules/srs-aws"

  name_prefix          = var.name_prefix
  customers_table_name = var.customers_table_name
  deletion_protection  = var.deletion_protection
  agent_classes        = var.agents
  identity             = var.identity
  eks_cluster_name     = var.cluster_name
  # IRSA only: the cluster's OIDC provider (created with the cluster, e.g. by eksctl or the EKS module).
  oidc_provider_arn = var.identity == "irsa" ? var.oidc_provider_arn : null
  oidc_issuer_url   = var.identity == "irsa" ? data.aws_eks_cluster.this.identity[0].oidc[0].issuer : null
  tags              = var.tags
}

module "srs_kubernetes" {
  source = "../../modules/srs-kubernetes"

  image                   = var.image
  kafka_bootstrap_servers = var.kafka_bootstrap_servers
  kafka_settings_secret   = var.kafka_settings_secret
  team_namespaces         = { for ns in distinct([for a in values(var.agents) : a.namespace]) : ns => {} }
  service_monitor         = { enabled = var.service_monitor }
}
