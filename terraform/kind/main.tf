# A local environment: a one-node kind cluster, the API reachable on localhost:<host_port>
# through a NodePort, and StreamTrack with the minimal values (Kafka and ClickHouse included).

resource "kind_cluster" "this" {
  name           = var.cluster_name
  node_image     = var.node_image
  wait_for_ready = true

  kind_config {
    kind        = "Cluster"
    api_version = "kind.x-k8s.io/v1alpha4"
    node {
      role = "control-plane"
      extra_port_mappings {
        container_port = 30080
        host_port      = var.host_port
        listen_address = "127.0.0.1"
      }
    }
  }
}

provider "helm" {
  kubernetes = {
    host                   = kind_cluster.this.endpoint
    client_certificate     = kind_cluster.this.client_certificate
    client_key             = kind_cluster.this.client_key
    cluster_ca_certificate = kind_cluster.this.cluster_ca_certificate
  }
}

module "streamtrack" {
  source = "../modules/streamtrack"

  chart_path     = "${path.module}/../../helm/streamtrack"
  image_registry = var.image_registry
  image_tag      = var.image_tag
  values_files   = ["${path.module}/../../helm/streamtrack/ci/minimal-values.yaml"]
  set_values = {
    "image.pullPolicy"       = "Never"
    "api.service.type"       = "NodePort"
    "api.service.nodePort"   = "30080"
    "kafka.storageSize"      = "2Gi"
    "clickhouse.storageSize" = "2Gi"
  }
}
