terraform {
  required_version = ">= 1.6.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # aws_eks_pod_identity_association arrived in 5.31.
      version = ">= 5.31.0"
    }
  }
}
