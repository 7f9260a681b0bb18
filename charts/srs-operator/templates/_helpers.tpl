{{- define "srs-operator.labels" -}}
app.kubernetes.io/name: srs-operator
app.kubernetes.io/part-of: srs
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "srs-operator.selector" -}}
app.kubernetes.io/name: srs-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "srs-operator.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}
