# The AWS side of an srs install: the customers table the triage agent's enrichment reads,
# and one least-privilege IAM role per agent class, reached from the agents' ServiceAccounts
# through EKS Pod Identity (or IRSA). No access keys anywhere.

data "aws_region" "current" {}

locals {
  classes = {
    for name, c in var.agent_classes : name => merge(c, {
      service_account = coalesce(c.service_account, name)
    })
  }
  # Roles that may do something: a class with neither enrichment nor models gets no policy.
  policies = {
    for name, c in local.classes : name => concat(
      c.enrichment ? [{
        Sid      = "ReadCustomers"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem"]
        Resource = [aws_dynamodb_table.customers.arn]
      }] : [],
      length(c.bedrock_model_arns) > 0 ? [{
        Sid    = "InvokeNamedModels"
        Effect = "Allow"
        # Converse is authorized by InvokeModel, ConverseStream by InvokeModelWithResponseStream.
        Action   = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
        Resource = sort(c.bedrock_model_arns)
      }] : [],
    ) if c.enrichment || length(c.bedrock_model_arns) > 0
  }
  oidc_issuer = var.oidc_issuer_url == null ? "" : trimprefix(var.oidc_issuer_url, "https://")
  # EKS Pod Identity: the agent assumes the role through the cluster's pod identity agent;
  # which ServiceAccount gets it is decided by the association, not by the trust policy.
  pod_identity_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "pods.eks.amazonaws.com" }
      Action    = ["sts:AssumeRole", "sts:TagSession"]
    }]
  })
}

resource "aws_dynamodb_table" "customers" {
  name                        = var.customers_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = var.customer_key_attribute
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = var.customer_key_attribute
    type = "S"
  }

  point_in_time_recovery {
    enabled = var.point_in_time_recovery
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = var.tags
}

resource "aws_iam_role" "agent" {
  for_each = local.classes

  name                 = "${var.name_prefix}-agent-${each.key}"
  description          = "srs agent ${each.key} (${each.value.namespace}/${each.value.service_account})"
  permissions_boundary = var.permissions_boundary_arn
  tags                 = var.tags

  # Both branches are strings: the two trust documents have different shapes.
  assume_role_policy = var.identity == "pod_identity" ? local.pod_identity_trust : jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Federated = var.oidc_provider_arn }
      Action    = ["sts:AssumeRoleWithWebIdentity"]
      Condition = {
        StringEquals = {
          "${local.oidc_issuer}:sub" = "system:serviceaccount:${each.value.namespace}:${each.value.service_account}"
          "${local.oidc_issuer}:aud" = "sts.amazonaws.com"
        }
      }
    }]
  })

  lifecycle {
    precondition {
      condition     = var.identity != "pod_identity" || var.eks_cluster_name != null
      error_message = "identity = \"pod_identity\" needs eks_cluster_name."
    }
    precondition {
      condition     = var.identity != "irsa" || (var.oidc_provider_arn != null && var.oidc_issuer_url != null)
      error_message = "identity = \"irsa\" needs oidc_provider_arn and oidc_issuer_url."
    }
  }
}

resource "aws_iam_role_policy" "agent" {
  for_each = local.policies

  name   = "srs-agent"
  role   = aws_iam_role.agent[each.key].id
  policy = jsonencode({ Version = "2012-10-17", Statement = each.value })
}

resource "aws_eks_pod_identity_association" "agent" {
  for_each = var.identity == "pod_identity" ? local.classes : {}

  cluster_name    = var.eks_cluster_name
  namespace       = each.value.namespace
  service_account = each.value.service_account
  role_arn        = aws_iam_role.agent[each.key].arn
  tags            = var.tags
}
