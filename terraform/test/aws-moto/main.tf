# Test root: modules/srs-aws applied against moto's server (make terraform-test).
# The endpoints are overridden here, in the provider configuration of the root; the module
# knows nothing about where AWS is.

terraform {
  backend "local" {}
}

variable "endpoint" {
  description = "URL of moto's server (every AWS API this module uses goes there)."
  type        = string
}

variable "region" {
  description = "Region the provider and the table use."
  type        = string
  default     = "us-east-1"
}

variable "table_name" {
  description = "Customers table name (unique per test run)."
  type        = string
}

provider "aws" {
  region = var.region
  # moto accepts any credentials; these are not secrets.
  access_key                  = "testing"
  secret_key                  = "testing"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  skip_region_validation      = true

  endpoints {
    dynamodb = var.endpoint
    iam      = var.endpoint
    sts      = var.endpoint
    eks      = var.endpoint
  }
}

module "srs_aws" {
  source = "../../modules/srs-aws"

  customers_table_name = var.table_name
  deletion_protection  = false
  identity             = "irsa"
  oidc_provider_arn    = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/SRSTEST"
  oidc_issuer_url      = "https://oidc.eks.us-east-1.amazonaws.com/id/SRSTEST"
  agent_classes = {
    triage  = { namespace = "support", enrichment = true }
    billing = { namespace = "support", bedrock_model_arns = ["arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0"] }
  }
}

output "customers_table_name" {
  value = module.srs_aws.customers_table_name
}

output "region" {
  value = module.srs_aws.region
}

output "agent_role_arns" {
  value = module.srs_aws.agent_role_arns
}

output "enrichment" {
  value = module.srs_aws.enrichment
}
