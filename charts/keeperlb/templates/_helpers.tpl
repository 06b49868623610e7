{{/*
Labels on every object: the fixed name label (selectors and the webhook
Service rely on it) plus Helm's bookkeeping.
*/}}
{{- define "keeperlb.labels" -}}
app.kubernetes.io/name: keeperlb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/*
Selector labels of one component; call with (dict "component" "controller").
The same as config/ uses, so that the Services and the webhook select the
same pods whichever way KeeperLB was installed.
*/}}
{{- define "keeperlb.selector" -}}
app.kubernetes.io/name: keeperlb
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of one component's objects; call with (dict "root" $ "component" "...").
*/}}
{{- define "keeperlb.componentLabels" -}}
{{ include "keeperlb.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
An image reference; call with (dict "root" $ "image" .Values.x.image).
*/}}
{{- define "keeperlb.image" -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}
{{- else -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/*
The memberlist Secret's name.
*/}}
{{- define "keeperlb.memberlistSecret" -}}
{{ .Values.speaker.memberlist.existingSecret | default "keeperlb-memberlist" }}
{{- end }}
