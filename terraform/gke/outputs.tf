output "endpoint" {
  description = "The API's public URL: POST /track and GET /activities answer here."
  value       = "http://${google_compute_address.api.address}"
}

output "cluster_name" {
  description = "GKE cluster name, for `gcloud container clusters get-credentials`."
  value       = google_container_cluster.this.name
}

output "get_credentials" {
  description = "Command that points kubectl (and Jenkins' helm) at the cluster."
  value       = "gcloud container clusters get-credentials ${google_container_cluster.this.name} --region ${var.region} --project ${var.project_id}"
}

output "release" {
  description = "The StreamTrack Helm release."
  value       = module.streamtrack.release
}
