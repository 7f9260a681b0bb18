output "region" {
  description = "Region of the table and roles: the SupportAgent's spec.enrichment.region and Bedrock region."
  value       = data.aws_region.current.name
}

output "customers_table_name" {
  description = "The customers table: the triage SupportAgent's spec.enrichment.table."
  value       = aws_dynamodb_table.customers.name
}

output "customers_table_arn" {
  description = "ARN of the customers table."
  value       = aws_dynamodb_table.customers.arn
}

output "customer_key_attribute" {
  description = "Partition key of the customers table: spec.enrichment.keyAttribute."
  value       = aws_dynamodb_table.customers.hash_key
}

output "agent_role_arns" {
  description = "IAM role ARN per agent class."
  value       = { for name, role in aws_iam_role.agent : name => role.arn }
}

output "service_account_annotations" {
  description = "Per agent class, the SupportAgent's spec.serviceAccountAnnotations: the IRSA role annotation, or {} with Pod Identity (the association needs none)."
  value = {
    for name, role in aws_iam_role.agent : name => (
      var.identity == "irsa" ? { "eks.amazonaws.com/role-arn" = role.arn } : {}
    )
  }
}

output "enrichment" {
  description = "spec.enrichment for each agent class with enrichment = true (table, region, keyAttribute)."
  value = {
    for name, c in local.classes : name => {
      table        = aws_dynamodb_table.customers.name
      region       = data.aws_region.current.name
      keyAttribute = aws_dynamodb_table.customers.hash_key
    } if c.enrichment
  }
}
