{{/* Chart name, truncated to the 63 characters Kubernetes allows in names. */}}
{{- define "streamtrack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamtrack.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "streamtrack.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "streamtrack.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels on every object; the chart version is here, never in selectors. */}}
{{- define "streamtrack.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "streamtrack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamtrack
{{- end }}

{{/* Selector labels of one component: include with (dict "ctx" $ "component" "api"). */}}
{{- define "streamtrack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamtrack.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streamtrack.componentLabels" -}}
{{ include "streamtrack.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streamtrack.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "streamtrack.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* image: include with (dict "ctx" $ "image" .Values.image.api). The tag defaults to the chart's appVersion. */}}
{{- define "streamtrack.image" -}}
{{- $registry := .ctx.Values.image.registry -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag -}}
{{- if $registry }}{{ printf "%s/%s:%s" $registry .image.repository $tag }}{{ else }}{{ printf "%s:%s" .image.repository $tag }}{{ end }}
{{- end }}

{{- define "streamtrack.kafkaName" -}}
{{- printf "%s-kafka" (include "streamtrack.fullname" .) | trunc 40 | trimSuffix "-" }}
{{- end }}

{{/* Altinity names the ClickHouse service clickhouse-<installation name>; keep that name short. */}}
{{- define "streamtrack.clickhouseName" -}}
{{- printf "%s" (include "streamtrack.fullname" .) | trunc 30 | trimSuffix "-" }}
{{- end }}

{{- define "streamtrack.bootstrapServers" -}}
{{- if .Values.kafka.enabled }}
{{- printf "%s-kafka-bootstrap:9092" (include "streamtrack.kafkaName" .) }}
{{- else }}
{{- required "kafka.external.bootstrapServers is required when kafka.enabled is false" .Values.kafka.external.bootstrapServers }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding CLICKHOUSE_URL / STREAMTRACK_KAFKA_OPTIONS: an existing one or the chart's. */}}
{{- define "streamtrack.clickhouseSecret" -}}
{{- if and (not .Values.clickhouse.enabled) .Values.clickhouse.external.existingSecret }}
{{- .Values.clickhouse.external.existingSecret }}
{{- else }}
{{- printf "%s-secrets" (include "streamtrack.fullname" .) }}
{{- end }}
{{- end }}

{{/* The Secret whose keys are librdkafka properties (SASL/TLS): an existing one, or the chart's
     from kafka.external.properties. Empty when Kafka needs no credentials. */}}
{{- define "streamtrack.kafkaAuthSecret" -}}
{{- if .Values.kafka.external.authSecret }}
{{- .Values.kafka.external.authSecret }}
{{- else if .Values.kafka.external.properties }}
{{- printf "%s-kafka-auth" (include "streamtrack.fullname" .) }}
{{- end }}
{{- end }}

{{- define "streamtrack.kafkaAuthKeys" -}}
{{- if .Values.kafka.external.authSecret }}
{{- toJson .Values.kafka.external.authSecretKeys }}
{{- else }}
{{- toJson (keys .Values.kafka.external.properties | sortAlpha) }}
{{- end }}
{{- end }}

{{/* Environment shared by every StreamTrack container: the ConfigMap, then the secrets.
     STREAMTRACK_KAFKA_OPTIONS is assembled from the auth Secret's keys by Kubernetes'
     $(VAR) expansion, so one Secret serves both the processes and the operator. */}}
{{- define "streamtrack.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "streamtrack.fullname" . }}
env:
  - name: CLICKHOUSE_URL
    valueFrom:
      secretKeyRef:
        name: {{ include "streamtrack.clickhouseSecret" . }}
        key: {{ if and (not .Values.clickhouse.enabled) .Values.clickhouse.external.existingSecret }}{{ .Values.clickhouse.external.existingSecretKey }}{{ else }}CLICKHOUSE_URL{{ end }}
  {{- with include "streamtrack.kafkaAuthSecret" . }}
  {{- $secret := . }}
  {{- $options := list }}
  {{- range $i, $key := fromJsonArray (include "streamtrack.kafkaAuthKeys" $) }}
  - name: STREAMTRACK_KAFKA_PROPERTY_{{ $i }}
    valueFrom:
      secretKeyRef:
        name: {{ $secret }}
        key: {{ $key }}
  {{- $options = append $options (printf "%s=$(STREAMTRACK_KAFKA_PROPERTY_%d)" $key $i) }}
  {{- end }}
  - name: STREAMTRACK_KAFKA_OPTIONS
    value: {{ join "," $options | quote }}
  {{- end }}
{{- end }}

{{/* Pod annotations that restart pods when the settings change. */}}
{{- define "streamtrack.configChecksum" -}}
checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print $.Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}

{{- define "streamtrack.topologySpread" -}}
{{- $ctx := .ctx -}}
{{- range $ctx.Values.topologySpread.topologyKeys }}
- maxSkew: 1
  topologyKey: {{ . }}
  whenUnsatisfiable: {{ $ctx.Values.topologySpread.whenUnsatisfiable }}
  labelSelector:
    matchLabels:
      {{- include "streamtrack.selectorLabels" (dict "ctx" $ctx "component" $.component) | nindent 6 }}
{{- end }}
{{- end }}

{{- define "streamtrack.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "streamtrack.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}
