{{/* The release's base name: the release name, prefixed with the chart name unless it has it. */}}
{{- define "smolstage.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Name of the operator's Deployment, ServiceAccount and RBAC objects. */}}
{{- define "smolstage.operatorName" -}}
{{- printf "%s-operator" (include "smolstage.fullname" .) -}}
{{- end -}}

{{- define "smolstage.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "smolstage.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "smolstage.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels are a subset of smolstage.labels plus a component. */}}
{{- define "smolstage.operatorSelector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "smolstage.minioSelector" -}}
app.kubernetes.io/name: minio
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: object-store
{{- end -}}

{{- define "smolstage.minioLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
{{ include "smolstage.minioSelector" . }}
{{- end -}}

{{- define "smolstage.minioSecretName" -}}
{{- default (printf "%s-credentials" .Values.minio.serviceName) .Values.minio.auth.existingSecret -}}
{{- end -}}

{{/*
The operator's rules, identical to operator/deploy/rbac.yaml (the chart test compares them).
Used by the ClusterRole (all namespaces) or the Role in watchNamespace.
*/}}
{{- define "smolstage.operatorRules" -}}
# Runs are written by users; the operator reads them and owns only their status.
- apiGroups: [smolstage.dev]
  resources: [trainingruns]
  verbs: [get, list, watch]
- apiGroups: [smolstage.dev]
  resources: [trainingruns/status]
  verbs: [get, patch]
# Stages are created by the operator (users may edit one that has not started).
- apiGroups: [smolstage.dev]
  resources: [stages]
  verbs: [get, list, watch, create, patch]
- apiGroups: [smolstage.dev]
  resources: [stages/status]
  verbs: [get, patch]
# Owner references with blockOwnerDeletion need update on the owner's finalizers.
- apiGroups: [smolstage.dev]
  resources: [trainingruns/finalizers, stages/finalizers]
  verbs: [update]
# One Job per stage attempt; patch suspends/resumes it, delete cleans up a failed attempt.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
# The trainer spec (ConfigMap) and the rendezvous Service of each attempt.
- apiGroups: [""]
  resources: [configmaps, services]
  verbs: [get, create]
# Storage credentials named by a run's storage.credentialsSecret (read, never listed).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# An Event per decision.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
