{{/* Common names and labels. */}}
{{- define "kubeweir.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubeweir.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubeweir.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image: registry override, tag pinned to the chart's appVersion by default. */}}
{{- define "kubeweir.image" -}}
{{- $img := index .root.Values.image .component -}}
{{- $tag := default .root.Chart.AppVersion $img.tag -}}
{{- if .root.Values.global.imageRegistry -}}
{{- printf "%s/%s:%s" .root.Values.global.imageRegistry $img.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $img.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "kubeweir.snifferNamespace" -}}
{{- default .Release.Namespace .Values.podSecurity.snifferNamespace -}}
{{- end -}}

{{- define "kubeweir.hubUrl" -}}
{{- if .Values.sniffer.hubUrl -}}
{{- .Values.sniffer.hubUrl -}}
{{- else -}}
{{- $scheme := ternary "https" "http" (ne .Values.hub.tlsSecretName "") -}}
{{- printf "%s://%s-hub.%s.svc:%d" $scheme (include "kubeweir.fullname" .) .Release.Namespace (int .Values.hub.port) -}}
{{- end -}}
{{- end -}}

{{/* Restricted-profile container security context. */}}
{{- define "kubeweir.restrictedContainer" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
