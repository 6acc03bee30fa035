output "endpoint" {
  description = "The API on this machine."
  value       = "http://127.0.0.1:${var.host_port}"
}

output "kubeconfig_context" {
  description = "kubectl context of the kind cluster."
  value       = "kind-${kind_cluster.this.name}"
}
