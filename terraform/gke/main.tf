# A regional GKE Standard cluster with three node pools (services, Kafka, ClickHouse), a
# static address for the API's load balancer, and the StreamTrack release with the HA values.

provider "google" {
  project = var.project_id
  region  = var.region
}

data "google_client_config" "current" {}

resource "google_container_cluster" "this" {
  name     = var.cluster_name
  location = var.region

  # Node pools are managed below; the default pool is removed once the cluster exists.
  remove_default_node_pool = true
  initial_node_count       = 1
  deletion_protection      = true

  release_channel {
    channel = var.release_channel
  }

  workload_identity_config {
    workload_pool = "${var.project_id}.svc.id.goog"
  }

  addons_config {
    gce_persistent_disk_csi_driver_config {
      enabled = true
    }
  }
}

resource "google_container_node_pool" "services" {
  name     = "services"
  cluster  = google_container_cluster.this.id
  location = var.region

  initial_node_count = 1
  autoscaling {
    min_node_count = 1
    max_node_count = var.services_max_nodes_per_zone
  }

  node_config {
    machine_type = var.services_machine_type
    disk_size_gb = 50
    labels       = { "streamtrack.io/pool" = "services" }
    oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

resource "google_container_node_pool" "kafka" {
  name       = "kafka"
  cluster    = google_container_cluster.this.id
  location   = var.region
  node_count = 1

  node_config {
    machine_type = var.kafka_machine_type
    disk_size_gb = 50
    labels       = { "streamtrack.io/pool" = "kafka" }
    taint {
      key    = "streamtrack.io/pool"
      value  = "kafka"
      effect = "NO_SCHEDULE"
    }
    oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

resource "google_container_node_pool" "clickhouse" {
  name       = "clickhouse"
  cluster    = google_container_cluster.this.id
  location   = var.region
  node_count = var.clickhouse_nodes_per_zone

  node_config {
    machine_type = var.clickhouse_machine_type
    disk_size_gb = 50
    labels       = { "streamtrack.io/pool" = "clickhouse" }
    taint {
      key    = "streamtrack.io/pool"
      value  = "clickhouse"
      effect = "NO_SCHEDULE"
    }
    oauth_scopes = ["https://www.googleapis.com/auth/cloud-platform"]
    workload_metadata_config {
      mode = "GKE_METADATA"
    }
  }
}

# The public endpoint: a regional static IP given to the API's LoadBalancer Service.
resource "google_compute_address" "api" {
  name   = "${var.cluster_name}-api"
  region = var.region
}

provider "helm" {
  kubernetes = {
    host                   = "https://${google_container_cluster.this.endpoint}"
    token                  = data.google_client_config.current.access_token
    cluster_ca_certificate = base64decode(google_container_cluster.this.master_auth[0].cluster_ca_certificate)
  }
}

module "streamtrack" {
  source = "../modules/streamtrack"

  chart_path     = "${path.module}/../../helm/streamtrack"
  image_registry = var.image_registry
  image_tag      = var.image_tag
  values_files   = ["${path.module}/../../helm/streamtrack/ci/ha-values.yaml"]
  set_values = {
    "api.ingress.enabled"        = "false"
    "api.service.type"           = "LoadBalancer"
    "api.service.loadBalancerIP" = google_compute_address.api.address
    "kafka.storageClass"         = "premium-rwo"
    "clickhouse.storageClass"    = "premium-rwo"
  }

  depends_on = [
    google_container_node_pool.services,
    google_container_node_pool.kafka,
    google_container_node_pool.clickhouse,
  ]
}
