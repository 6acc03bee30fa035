variable "cluster_name" {
  description = "Name of the kind cluster."
  type        = string
  default     = "streamtrack"
}

variable "node_image" {
  description = "kindest/node image: the Kubernetes version of the local cluster."
  type        = string
  default     = "kindest/node:v1.35.0"
}

variable "host_port" {
  description = "Port on this machine where the API answers."
  type        = number
  default     = 8000
}

variable "image_registry" {
  description = "Registry part of the image names; images built locally are loaded with `kind load docker-image`."
  type        = string
  default     = "streamtrack.local"
}

variable "image_tag" {
  description = "Tag of the locally built images."
  type        = string
  default     = "dev"
}
