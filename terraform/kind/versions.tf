terraform {
  required_version = ">= 1.6"
  required_providers {
    kind = {
      source  = "tehcyx/kind"
      version = ">= 0.9"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.0"
    }
  }
  # Local state: this environment lives and dies on one laptop.
}
