# Assertions for srs-aws with a mocked AWS provider (no AWS account needed):
# `tofu test` in this folder. The real apply against moto runs in `make terraform-test`.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/srs-customers" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/srs-agent" }
  }
}

variables {
  eks_cluster_name = "support-prod"
  agent_classes = {
    triage = {
      namespace          = "support"
      enrichment         = true
      bedrock_model_arns = ["arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0"]
    }
    billing = { namespace = "support" }
  }
}

run "the_customers_table_is_on_demand_encrypted_and_recoverable" {
  command = plan

  assert {
    condition     = aws_dynamodb_table.customers.billing_mode == "PAY_PER_REQUEST"
    error_message = "the table is on-demand"
  }
  assert {
    condition     = aws_dynamodb_table.customers.point_in_time_recovery[0].enabled
    error_message = "point-in-time recovery is on"
  }
  assert {
    condition     = aws_dynamodb_table.customers.server_side_encryption[0].enabled
    error_message = "encryption at rest is on"
  }
  assert {
    condition     = aws_dynamodb_table.customers.deletion_protection_enabled
    error_message = "deletion protection is on by default"
  }
  assert {
    condition     = aws_dynamodb_table.customers.hash_key == "customer_id"
    error_message = "customers are keyed by customer_id, as the enrichment reads them"
  }
}

run "each_role_may_do_only_what_its_class_needs" {
  command = apply

  assert {
    condition     = jsondecode(aws_iam_role_policy.agent["triage"].policy).Statement[0].Action == ["dynamodb:GetItem"]
    error_message = "enrichment gets GetItem and nothing else on DynamoDB"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.agent["triage"].policy).Statement[0].Resource == [aws_dynamodb_table.customers.arn]
    error_message = "GetItem is allowed on the customers table only"
  }
  assert {
    condition     = jsondecode(aws_iam_role_policy.agent["triage"].policy).Statement[1].Resource == ["arn:aws:bedrock:eu-west-1::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0"]
    error_message = "Bedrock calls are allowed on the named models only"
  }
  assert {
    condition     = !contains(keys(aws_iam_role_policy.agent), "billing")
    error_message = "a class with neither enrichment nor models gets no permissions at all"
  }
  assert {
    condition     = aws_eks_pod_identity_association.agent["triage"].service_account == "triage" && aws_eks_pod_identity_association.agent["triage"].namespace == "support"
    error_message = "the association binds the SupportAgent's ServiceAccount (named after it)"
  }
  assert {
    condition     = jsondecode(aws_iam_role.agent["triage"].assume_role_policy).Statement[0].Principal.Service == "pods.eks.amazonaws.com"
    error_message = "Pod Identity roles trust the EKS pod identity service"
  }
  assert {
    condition     = output.service_account_annotations["triage"] == {}
    error_message = "Pod Identity needs no ServiceAccount annotation"
  }
  assert {
    condition     = output.enrichment["triage"].table == "srs-customers" && output.enrichment["triage"].region == "eu-west-1"
    error_message = "the enrichment output is what the SupportAgent's spec.enrichment takes"
  }
}

run "irsa_trusts_only_the_agents_service_account" {
  command = apply

  variables {
    identity          = "irsa"
    eks_cluster_name  = null
    oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/ABC"
    oidc_issuer_url   = "https://oidc.eks.eu-west-1.amazonaws.com/id/ABC"
  }

  assert {
    condition     = jsondecode(aws_iam_role.agent["triage"].assume_role_policy).Statement[0].Condition.StringEquals["oidc.eks.eu-west-1.amazonaws.com/id/ABC:sub"] == "system:serviceaccount:support:triage"
    error_message = "the role trusts exactly the agent's ServiceAccount"
  }
  assert {
    condition     = length(aws_eks_pod_identity_association.agent) == 0
    error_message = "IRSA creates no Pod Identity associations"
  }
  assert {
    condition     = output.service_account_annotations["billing"]["eks.amazonaws.com/role-arn"] == aws_iam_role.agent["billing"].arn
    error_message = "IRSA hands the role ARN annotation to the SupportAgent"
  }
}

run "wildcard_model_arns_are_refused" {
  command = plan

  variables {
    agent_classes = {
      triage = { namespace = "support", bedrock_model_arns = ["arn:aws:bedrock:eu-west-1::foundation-model/*"] }
    }
  }

  expect_failures = [var.agent_classes]
}

run "pod_identity_needs_a_cluster_name" {
  command = plan

  variables {
    eks_cluster_name = null
  }

  expect_failures = [aws_iam_role.agent]
}
