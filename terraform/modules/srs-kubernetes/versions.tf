terraform {
  required_version = ">= 1.6.0"

  required_providers {
    # Only provider-neutral arguments are used (values as YAML, no `set` blocks), so the
    # module works with every helm and kubernetes provider release since these.
    helm = {
      source  = "hashicorp/helm"
      version = ">= 1.3.2"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = ">= 1.13.4"
    }
  }
}
