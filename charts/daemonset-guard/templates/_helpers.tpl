{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "daemonset-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's resources. */}}
{{- define "daemonset-guard.fullname" -}}
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

{{- define "daemonset-guard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every resource carries. */}}
{{- define "daemonset-guard.labels" -}}
helm.sh/chart: {{ include "daemonset-guard.chart" . }}
{{ include "daemonset-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: daemonset-guard
{{- end }}

{{/* Labels that select the server pods. */}}
{{- define "daemonset-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "daemonset-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "daemonset-guard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "daemonset-guard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The one image holding both binaries. */}}
{{- define "daemonset-guard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Secret holding tls.crt and tls.key for the server. */}}
{{- define "daemonset-guard.tlsSecretName" -}}
{{- if eq .Values.tls.mode "existingSecret" }}
{{- required "tls.existingSecret.name is required when tls.mode is existingSecret" .Values.tls.existingSecret.name }}
{{- else }}
{{- printf "%s-tls" (include "daemonset-guard.fullname" .) }}
{{- end }}
{{- end }}

{{/* DNS names of the Service, as the API server and the test Pod address it. */}}
{{- define "daemonset-guard.hosts" -}}
{{- $svc := include "daemonset-guard.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.tls.clusterDomain) | toJson }}
{{- end }}

{{/* Name of the ServiceAccount and RBAC objects of the certs-gen hook Jobs. */}}
{{- define "daemonset-guard.certsGenName" -}}
{{- printf "%s-certs-gen" (include "daemonset-guard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Name of both webhook configurations (cluster scoped). */}}
{{- define "daemonset-guard.webhookName" -}}
{{- include "daemonset-guard.fullname" . }}
{{- end }}

{{/* Pod fields shared by every pod the chart runs. */}}
{{- define "daemonset-guard.podCommon" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}
