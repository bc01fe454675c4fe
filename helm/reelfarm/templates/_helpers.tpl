{{/* Names */}}
{{- define "reelfarm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reelfarm.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "reelfarm.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels; call with (dict "ctx" $ "component" "api") */}}
{{- define "reelfarm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reelfarm.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "reelfarm.labels" -}}
helm.sh/chart: {{ include "reelfarm.chart" .ctx }}
{{ include "reelfarm.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: reelfarm
{{- end }}

{{- define "reelfarm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reelfarm.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "reelfarm.secretName" -}}
{{- default (printf "%s-secrets" (include "reelfarm.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "reelfarm.configMapName" -}}
{{- printf "%s-config" (include "reelfarm.fullname" .) }}
{{- end }}

{{- define "reelfarm.schedulerHost" -}}
{{- printf "%s-scheduler" (include "reelfarm.fullname" .) }}
{{- end }}

{{- define "reelfarm.rayClusterName" -}}
{{- printf "%s-ray" (include "reelfarm.fullname" .) | trunc 50 | trimSuffix "-" }}
{{- end }}

{{/* Images: pinned tags, defaulting to the chart's appVersion. */}}
{{- define "reelfarm.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "reelfarm.nodeImage" -}}
{{- printf "%s:%s" .Values.nodeImage.repository (default .Chart.AppVersion .Values.nodeImage.tag) }}
{{- end }}

{{- define "reelfarm.nodeGpuImage" -}}
{{- printf "%s:%s" .Values.nodeImage.repository (default (printf "%s-gpu" .Chart.AppVersion) .Values.nodeImage.gpuTag) }}
{{- end }}

{{/* Non-secret settings as a map of environment variables (ConfigMap data, and the
     migrations hook's env, which runs before the ConfigMap exists). */}}
{{- define "reelfarm.configEnv" -}}
REELFARM_ENVIRONMENT: {{ .Values.config.environment | quote }}
REELFARM_DATA_DIR: "/data"
REELFARM_WORK_DIR: "/data/work"
REELFARM_STORAGE_URL: {{ include "reelfarm.storageUrl" . | quote }}
{{- with (include "reelfarm.s3EndpointUrl" .) }}
REELFARM_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
REELFARM_S3_REGION: {{ .Values.config.s3Region | quote }}
REELFARM_PUBLIC_URL: {{ .Values.config.publicUrl | quote }}
REELFARM_SCHEDULER_ADDRESS: {{ printf "%s:%d" (include "reelfarm.schedulerHost" .) (int .Values.scheduler.grpcPort) | quote }}
REELFARM_NODE_PORT: {{ .Values.rayCluster.nodeGrpcPort | quote }}
REELFARM_SCHEDULER_METRICS_PORT: {{ .Values.scheduler.metricsPort | quote }}
REELFARM_NODE_METRICS_PORT: {{ .Values.rayCluster.nodeMetricsPort | quote }}
HOME: "/tmp"
{{- range $name, $value := .Values.config.env }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{- define "reelfarm.storageUrl" -}}
{{- if .Values.devMode.s3.enabled }}
{{- printf "s3://%s" .Values.devMode.s3.bucket }}
{{- else }}
{{- .Values.config.storageUrl }}
{{- end }}
{{- end }}

{{- define "reelfarm.s3EndpointUrl" -}}
{{- if .Values.devMode.s3.enabled }}
{{- printf "http://%s-dev-s3:8333" (include "reelfarm.fullname" .) }}
{{- else }}
{{- .Values.config.s3EndpointUrl }}
{{- end }}
{{- end }}

{{/* Secret settings as env entries (secretKeyRef; optional ones may be absent). */}}
{{- define "reelfarm.secretEnv" -}}
{{- $secret := include "reelfarm.secretName" . }}
{{- $keys := .Values.secrets.keys }}
- name: REELFARM_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.databaseUrl }}}
- name: REELFARM_SECRET_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.secretKey }}}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.rayAuthToken }}}
- name: REELFARM_REDIS_URL
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.redisUrl }}, optional: true}
- name: REELFARM_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.s3AccessKeyId }}, optional: true}
- name: REELFARM_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.s3SecretAccessKey }}, optional: true}
- name: REELFARM_LLM_API_KEY
  valueFrom:
    secretKeyRef: {name: {{ $secret }}, key: {{ $keys.llmApiKey }}, optional: true}
{{- end }}

{{/* Writable scratch: /data (REELFARM_DATA_DIR, work files) and /tmp on a read-only root. */}}
{{- define "reelfarm.scratchVolumes" -}}
- name: data
  emptyDir:
    sizeLimit: {{ .Values.scratch.dataSizeLimit }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratch.tmpSizeLimit }}
{{- end }}

{{- define "reelfarm.scratchMounts" -}}
- name: data
  mountPath: /data
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* A random value kept across upgrades: the existing Secret's key when there is one. */}}
{{- define "reelfarm.keptRandom" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret }}
{{- if and $existing (hasKey ($existing.data | default dict) .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
