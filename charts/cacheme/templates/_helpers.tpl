{{/* Chart name, at most 63 characters. */}}
{{- define "cacheme.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name when the release name does not contain it. */}}
{{- define "cacheme.fullname" -}}
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

{{/* The operator's objects: <fullname>-operator. */}}
{{- define "cacheme.operator.fullname" -}}
{{- printf "%s-operator" (include "cacheme.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cacheme.jaeger.fullname" -}}
{{- printf "%s-jaeger" (include "cacheme.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cacheme.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object of the release. */}}
{{- define "cacheme.labels" -}}
helm.sh/chart: {{ include "cacheme.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cacheme
{{- end }}

{{- define "cacheme.operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cacheme.name" . }}-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cacheme.operator.labels" -}}
{{ include "cacheme.labels" . }}
app.kubernetes.io/name: {{ include "cacheme.name" . }}-operator
app.kubernetes.io/component: operator
{{- end }}

{{- define "cacheme.jaeger.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cacheme.name" . }}-jaeger
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cacheme.jaeger.labels" -}}
{{ include "cacheme.labels" . }}
app.kubernetes.io/name: {{ include "cacheme.name" . }}-jaeger
app.kubernetes.io/component: tracing
{{- end }}

{{- define "cacheme.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cacheme.operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cacheme.operator.image" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) }}
{{- end }}

{{/* OTLP/HTTP endpoint of the bundled Jaeger (empty when it is off). */}}
{{- define "cacheme.jaeger.otlpEndpoint" -}}
{{- if .Values.jaeger.enabled }}
{{- printf "http://%s.%s.svc:4318" (include "cacheme.jaeger.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* The instance's API image: repository:tag (tag defaults to appVersion). */}}
{{- define "cacheme.instance.apiImage" -}}
{{- $img := .Values.instance.api.image }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}

{{- define "cacheme.instance.frontendImage" -}}
{{- $img := .Values.instance.frontend.image }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
