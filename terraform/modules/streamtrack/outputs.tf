output "release" {
  description = "Name, namespace and revision of the Helm release."
  value = {
    name      = helm_release.streamtrack.name
    namespace = helm_release.streamtrack.namespace
    revision  = helm_release.streamtrack.metadata.revision
  }
}
