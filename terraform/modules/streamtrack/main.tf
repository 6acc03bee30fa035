# The StreamTrack release, shared by the cloud and the kind environments.
# atomic: a release that does not become ready in time is rolled back, so a failed apply
# leaves the previous version serving. dependency_update fetches the Strimzi and Altinity
# operator charts the chart depends on.
resource "helm_release" "streamtrack" {
  name              = var.release_name
  namespace         = var.namespace
  create_namespace  = true
  chart             = var.chart_path
  dependency_update = true
  atomic            = true
  wait              = true
  timeout           = var.timeout_seconds

  values = [for path in var.values_files : file(path)]

  set = concat(
    [
      { name = "image.registry", value = var.image_registry },
      { name = "image.tag", value = var.image_tag },
    ],
    [for name, value in var.set_values : { name = name, value = value }],
  )
}
