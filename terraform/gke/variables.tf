variable "project_id" {
  description = "Google Cloud project to create the cluster in."
  type        = string
}

variable "region" {
  description = "Region of the regional cluster; node pools spread over its zones."
  type        = string
  default     = "europe-west1"
}

variable "cluster_name" {
  description = "Name of the GKE cluster."
  type        = string
  default     = "streamtrack"
}

variable "release_channel" {
  description = "GKE release channel (REGULAR keeps Kubernetes within the versions the chart is validated against)."
  type        = string
  default     = "REGULAR"
}

variable "services_machine_type" {
  description = "Machine type of the pool running the API, the workers and the operators."
  type        = string
  default     = "e2-standard-4"
}

variable "services_max_nodes_per_zone" {
  description = "Upper bound of the services pool's autoscaler, per zone."
  type        = number
  default     = 3
}

variable "kafka_machine_type" {
  description = "Machine type of the Kafka pool (one broker per zone)."
  type        = string
  default     = "n2-standard-4"
}

variable "clickhouse_machine_type" {
  description = "Machine type of the ClickHouse pool (memory-heavy: merges and aggregations)."
  type        = string
  default     = "n2-highmem-8"
}

variable "clickhouse_nodes_per_zone" {
  description = "ClickHouse nodes per zone; with 2 shards x 2 replicas, 1 per zone gives 3 nodes."
  type        = number
  default     = 1
}

variable "image_registry" {
  description = "Registry with the streamtrack-api and streamtrack-worker images (e.g. europe-west1-docker.pkg.dev/PROJECT/streamtrack)."
  type        = string
}

variable "image_tag" {
  description = "Image tag to deploy; Jenkins deploys later commits with helm upgrade."
  type        = string
}
