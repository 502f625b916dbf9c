{{/*
Webhook entries shared by both configurations. Call with
(dict "root" $ "kind" "validate"|"mutate" "failurePolicy" "Fail"|"Ignore").

The main webhook sees every namespace but the excluded ones; with webhooks.kubeSystem=failOpen a second
entry covers kube-system alone with failurePolicy Ignore, so kube-system DaemonSets (the CNI) can always
be written even while the webhook cannot be reached.

caBundle: rendered only for tls.mode=existingSecret. In the other modes it is written by certs-gen or
cert-manager's cainjector, and never rendered, so Helm never owns the field: an upgrade (three-way merge
in Helm 3, server-side apply in Helm 4) leaves the live caBundle as it is, and there is no window in which
an empty or stale caBundle meets the serving certificate.
*/}}
{{- define "daemonset-guard.webhooks" -}}
{{- $root := .root }}
{{- $v := $root.Values.webhooks }}
{{- $excluded := list }}
{{- if $v.excludeReleaseNamespace }}
{{- $excluded = append $excluded $root.Release.Namespace }}
{{- end }}
{{- if ne $v.kubeSystem "enforce" }}
{{- $excluded = append $excluded "kube-system" }}
{{- end }}
{{- $excluded = concat $excluded $v.excludeNamespaces | uniq }}
{{- $entries := list (dict "suffix" "" "op" "NotIn" "namespaces" $excluded "failurePolicy" .failurePolicy) }}
{{- $kubeSystemExcluded := or (has "kube-system" $v.excludeNamespaces) (and $v.excludeReleaseNamespace (eq $root.Release.Namespace "kube-system")) }}
{{- if and (eq $v.kubeSystem "failOpen") (not $kubeSystemExcluded) }}
{{- $entries = append $entries (dict "suffix" "-kube-system" "op" "In" "namespaces" (list "kube-system") "failurePolicy" "Ignore") }}
{{- end }}
{{- range $entries }}
- name: {{ printf "%s%s.daemonset-guard.dev" $.kind .suffix }}
  admissionReviewVersions: ["v1"]
  sideEffects: None
  timeoutSeconds: {{ $v.timeoutSeconds }}
  failurePolicy: {{ .failurePolicy }}
  matchPolicy: Equivalent
  {{- if eq $.kind "mutate" }}
  reinvocationPolicy: IfNeeded
  {{- end }}
  clientConfig:
    service:
      name: {{ include "daemonset-guard.fullname" $root }}
      namespace: {{ $root.Release.Namespace }}
      path: {{ printf "/%s" $.kind }}
      port: {{ $root.Values.service.port }}
    {{- if eq $root.Values.tls.mode "existingSecret" }}
    caBundle: {{ required "tls.existingSecret.caBundle (base64 PEM of the CA) is required when tls.mode is existingSecret" $root.Values.tls.existingSecret.caBundle }}
    {{- end }}
  rules:
    - apiGroups: ["apps"]
      apiVersions: ["v1"]
      resources: ["daemonsets"]
      operations: ["CREATE", "UPDATE"]
      scope: Namespaced
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: {{ .op }}
        values:
          {{- toYaml .namespaces | nindent 10 }}
  objectSelector:
    {{- if $v.objectSelector }}
    {{- toYaml $v.objectSelector | nindent 4 }}
    {{- else }} {}
    {{- end }}
{{- end }}
{{- end }}

{{/* Annotations of both configurations: CA injection by cert-manager. */}}
{{- define "daemonset-guard.webhookAnnotations" -}}
{{- if eq .Values.tls.mode "certManager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "daemonset-guard.tlsSecretName" .) }}
{{- end }}
{{- end }}

{{/*
The two configurations. The templates render them for Helm; on install the certs-gen create Job also
gets them (with Helm's ownership metadata) to create them, CA included, before Helm does.
*/}}
{{- define "daemonset-guard.validatingConfiguration" -}}
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: {{ include "daemonset-guard.webhookName" . }}
  labels:
    {{- include "daemonset-guard.labels" . | nindent 4 }}
  {{- with include "daemonset-guard.webhookAnnotations" . | trim }}
  {{- . | nindent 2 }}
  {{- end }}
webhooks:
  {{- include "daemonset-guard.webhooks" (dict "root" . "kind" "validate" "failurePolicy" .Values.webhooks.validating.failurePolicy) | trim | nindent 2 }}
{{- end }}

{{- define "daemonset-guard.mutatingConfiguration" -}}
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: {{ include "daemonset-guard.webhookName" . }}
  labels:
    {{- include "daemonset-guard.labels" . | nindent 4 }}
  {{- with include "daemonset-guard.webhookAnnotations" . | trim }}
  {{- . | nindent 2 }}
  {{- end }}
webhooks:
  {{- include "daemonset-guard.webhooks" (dict "root" . "kind" "mutate" "failurePolicy" .Values.webhooks.mutating.failurePolicy) | trim | nindent 2 }}
{{- end }}
