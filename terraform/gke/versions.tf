terraform {
  required_version = ">= 1.6"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0"
    }
    helm = {
      source  = "hashicorp/helm"
      version = ">= 3.0"
    }
  }

  # Remote state in a GCS bucket (versioned, with state locking). Give the bucket at init:
  #   terraform init -backend-config="bucket=<your-state-bucket>" -backend-config="prefix=streamtrack/gke"
  backend "gcs" {}
}
