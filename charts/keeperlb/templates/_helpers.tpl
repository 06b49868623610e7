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

{{/*
Metrics flags of both components: HTTPS with TokenReview and
SubjectAccessReview unless metrics.secure is false, with the certificate
from metrics.certSecret when one is named (else self-signed).
*/}}
{{- define "keeperlb.metricsArgs" -}}
{{- if .Values.metrics.secure }}
{{- if .Values.metrics.certSecret }}
- --metrics-cert-dir=/tmp/k8s-metrics-server/metrics-certs
{{- end }}
{{- else }}
- --metrics-secure=false
{{- end }}
{{- end }}

{{/*
The metrics certificate's volume mount and volume, when one is named.
*/}}
{{- define "keeperlb.metricsCertMount" -}}
{{- if and .Values.metrics.secure .Values.metrics.certSecret }}
- name: metrics-certs
  mountPath: /tmp/k8s-metrics-server/metrics-certs
  readOnly: true
{{- end }}
{{- end }}
{{- define "keeperlb.metricsCertVolume" -}}
{{- if and .Values.metrics.secure .Values.metrics.certSecret }}
- name: metrics-certs
  secret:
    secretName: {{ .Values.metrics.certSecret }}
{{- end }}
{{- end }}
