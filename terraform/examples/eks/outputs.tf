output "customers_table_name" {
  description = "Seed it with `srs customers seed --table <this> --region <region>`."
  value       = module.srs_aws.customers_table_name
}

output "agent_role_arns" {
  description = "IAM role per agent class."
  value       = module.srs_aws.agent_role_arns
}

output "support_agent_specs" {
  description = "Per agent class, the fields to merge into its SupportAgent's spec (YAML)."
  value = {
    for name, annotations in module.srs_aws.service_account_annotations : name => yamlencode(merge(
      length(annotations) > 0 ? { serviceAccountAnnotations = annotations } : {},
      contains(keys(module.srs_aws.enrichment), name) ? { enrichment = module.srs_aws.enrichment[name] } : {},
    ))
  }
}

output "operator_release" {
  description = "Helm release of the operator and its status."
  value       = "${module.srs_kubernetes.namespace}/${module.srs_kubernetes.release_name}: ${module.srs_kubernetes.status}"
}
