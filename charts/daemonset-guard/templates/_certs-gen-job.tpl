{{/*
A certs-gen hook Job. Call with (dict "root" $ "name" SUFFIX "hook" HOOKS "weight" W "args" LIST).
*/}}
{{- define "daemonset-guard.certsGenJob" -}}
{{- $root := .root }}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ printf "%s-%s" (include "daemonset-guard.fullname" $root) .name | trunc 63 | trimSuffix "-" }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "daemonset-guard.labels" $root | nindent 4 }}
    app.kubernetes.io/component: certs-gen
  annotations:
    helm.sh/hook: {{ .hook }}
    helm.sh/hook-weight: {{ .weight | quote }}
    # Deleted whatever the outcome, with its pods and so their ServiceAccount tokens; on failure
    # helm prints the Job's log first.
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded,hook-failed
    helm.sh/hook-output-log-policy: hook-failed
spec:
  backoffLimit: 3
  activeDeadlineSeconds: {{ $root.Values.tls.certsGen.activeDeadlineSeconds }}
  template:
    metadata:
      labels:
        {{- include "daemonset-guard.labels" $root | nindent 8 }}
        app.kubernetes.io/component: certs-gen
    spec:
      restartPolicy: OnFailure
      serviceAccountName: {{ include "daemonset-guard.certsGenName" $root }}
      # certs-gen talks to the Kubernetes API with this token.
      automountServiceAccountToken: true
      {{- include "daemonset-guard.podCommon" $root | trim | nindent 6 }}
      {{- with $root.Values.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: certs-gen
          image: {{ include "daemonset-guard.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["/usr/local/bin/certs-gen"]
          args:
            {{- toYaml .args | nindent 12 }}
          resources:
            {{- toYaml $root.Values.tls.certsGen.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
{{- end }}
