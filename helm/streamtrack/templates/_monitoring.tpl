{{/* Monitoring helpers (servicemonitors.yaml, prometheusrule.yaml). */}}

{{/* "true" when the cluster serves the Prometheus Operator's API: its objects are rendered only
     there (as the prometheus-community charts do), so enabling them elsewhere is harmless. */}}
{{- define "streamtrack.monitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* The scrape job names, as the ServiceMonitors make them (job = the Service's name). */}}
{{- define "streamtrack.job" -}}
{{- if eq .component "api" }}{{ include "streamtrack.fullname" .ctx }}-api{{ else }}{{ include "streamtrack.fullname" .ctx }}-{{ .component }}-metrics{{ end }}
{{- end }}
