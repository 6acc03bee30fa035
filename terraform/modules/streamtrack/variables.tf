variable "release_name" {
  description = "Helm release name; also the prefix of every object's name."
  type        = string
  default     = "streamtrack"
}

variable "namespace" {
  description = "Namespace of the release (created when missing)."
  type        = string
  default     = "streamtrack"
}

variable "chart_path" {
  description = "Path of the StreamTrack chart (helm/streamtrack in this repository)."
  type        = string
}

variable "image_registry" {
  description = "Registry holding the streamtrack-api and streamtrack-worker images."
  type        = string
}

variable "image_tag" {
  description = "Image tag to deploy (Jenkins pushes one per commit); empty: the chart's appVersion."
  type        = string
  default     = ""
}

variable "values_files" {
  description = "Chart value files, later ones override earlier ones (e.g. helm/streamtrack/ci/ha-values.yaml)."
  type        = list(string)
  default     = []
}

variable "set_values" {
  description = "Individual chart values (name = value), applied after the files."
  type        = map(string)
  default     = {}
}

variable "timeout_seconds" {
  description = "How long Helm waits for the release to be ready before rolling it back."
  type        = number
  default     = 1200
}
