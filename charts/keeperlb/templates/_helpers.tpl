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
The memberlist Secret's name: the one the speakers read their heartbeat
key from.
*/}}
{{- define "keeperlb.memberlistSecret" -}}
{{ .Values.speaker.memberlist.existingSecret | default "keeperlb-memberlist" }}
{{- end }}

{{/*
The heartbeat key given in the values (speaker.memberlist.secretKey), or
empty. It fails the render on values that cannot work: a key and an
existing Secret both, a secondary key without a key, or a key shorter than
the 16 bytes a speaker accepts.
*/}}
{{- define "keeperlb.memberlistKey" -}}
{{- $m := .Values.speaker.memberlist }}
{{- $key := toString ($m.secretKey | default "") }}
{{- $second := toString ($m.secondaryKey | default "") }}
{{- if and $key $m.existingSecret }}
{{- fail "speaker.memberlist.secretKey and speaker.memberlist.existingSecret are both set: give the key, or name the Secret holding it, not both" }}
{{- end }}
{{- if and $second (not $key) }}
{{- fail "speaker.memberlist.secondaryKey is set without speaker.memberlist.secretKey: a rotation through the values needs both (with existingSecret, put secondarykey into that Secret)" }}
{{- end }}
{{- if and $key (lt (len $key) 16) }}
{{- fail (printf "speaker.memberlist.secretKey has %d bytes; a speaker refuses a key shorter than 16 (use random bytes, e.g. head -c 48 /dev/urandom | base64)" (len $key)) }}
{{- end }}
{{- if and $second (lt (len $second) 16) }}
{{- fail (printf "speaker.memberlist.secondaryKey has %d bytes; a speaker refuses a key shorter than 16" (len $second)) }}
{{- end }}
{{- $key }}
{{- end }}

{{/*
The controller's --memberlist-secret-name: the Secret it creates with a
random key when missing. keeperlb-memberlist by default, where the chart
renders no key; empty (create nothing) when the chart renders the key
(speaker.memberlist.secretKey) or the user owns the Secret
(speaker.memberlist.existingSecret), so that it never races to make a
second one.
*/}}
{{- define "keeperlb.controllerMemberlistSecret" -}}
{{- if not (or (include "keeperlb.memberlistKey" .) .Values.speaker.memberlist.existingSecret) -}}
keeperlb-memberlist
{{- end -}}
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

{{/*
The NetworkPolicy peer allowed to scrape the metrics ports
(networkPolicy.prometheus); {} as a selector means all.
*/}}
{{- define "keeperlb.prometheusPeer" -}}
{{- $p := .Values.networkPolicy.prometheus -}}
{{- $peer := dict -}}
{{- if kindIs "map" $p.namespaceSelector }}{{ $_ := set $peer "namespaceSelector" $p.namespaceSelector }}{{ end -}}
{{- if kindIs "map" $p.podSelector }}{{ $_ := set $peer "podSelector" $p.podSelector }}{{ end -}}
{{- toYaml (list $peer) -}}
{{- end }}
