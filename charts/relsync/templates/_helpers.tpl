{{/* Chart name, overridable with nameOverride. */}}
{{- define "relsync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: <release>-<chart>, or the release name when it already holds the chart name. */}}
{{- define "relsync.fullname" -}}
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

{{/* chart label value */}}
{{- define "relsync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Common labels. */}}
{{- define "relsync.labels" -}}
helm.sh/chart: {{ include "relsync.chart" . }}
{{ include "relsync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: controller
{{- end }}

{{/* Selector labels. */}}
{{- define "relsync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relsync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pod runs as. */}}
{{- define "relsync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "relsync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The leader-election Lease name. */}}
{{- define "relsync.leaseName" -}}
{{- default (printf "%s-leader" (include "relsync.fullname" .)) .Values.leaderElection.leaseName | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ConfigMap holding relsync.yaml. */}}
{{- define "relsync.configMapName" -}}
{{- printf "%s-config" (include "relsync.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The ConfigMap relsync keeps sync history and rollback holds in. Its name is fixed by
relsync (docs/reference.md, "Rollback"), so one release per namespace.
*/}}
{{- define "relsync.stateConfigMapName" -}}
relsync-state
{{- end }}

{{/* The image reference: repository@digest, else repository:tag (tag defaults to appVersion). */}}
{{- define "relsync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}
{{- end }}

{{/*
Environment variable names the config takes secrets from, as a JSON list (deduplicated, in
order of appearance): registries[].usernameEnv, registries[].passwordEnv, webhook.secretEnv.
*/}}
{{- define "relsync.secretEnvNames" -}}
{{- $names := list }}
{{- range (.Values.config.registries | default list) }}
{{- with .usernameEnv }}{{ $names = append $names . }}{{ end }}
{{- with .passwordEnv }}{{ $names = append $names . }}{{ end }}
{{- end }}
{{- with .Values.config.webhook }}
{{- with .secretEnv }}{{ $names = append $names . }}{{ end }}
{{- end }}
{{- $names | uniq | toJson }}
{{- end }}

{{/* Refuses value combinations that cannot work, with a message saying what to change. */}}
{{- define "relsync.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail (printf "replicas is %d but leaderElection.enabled is false: several replicas would sync at once; enable leader election or set replicas to 1" (int .Values.replicas)) }}
{{- end }}
{{- if lt (int .Values.replicas) 0 }}
{{- fail "replicas must not be negative" }}
{{- end }}
{{- $cluster := .Values.config.cluster | default dict }}
{{- if not $cluster.enabled }}
{{- fail "config.cluster.enabled must be true in this chart: relsync keeps its sync history in the ConfigMap relsync-state (the root filesystem is read-only)" }}
{{- end }}
{{- $git := .Values.config.git | default dict }}
{{- if not $git.repo }}
{{- fail "config.git.repo must name the desired-state Git repository (a URL)" }}
{{- end }}
{{- $names := include "relsync.secretEnvNames" . | fromJsonArray }}
{{- if and $names (not .Values.existingSecret) }}
{{- fail (printf "config names the environment variables %s for credentials; set existingSecret to a Secret in the release namespace holding them" (join ", " $names)) }}
{{- end }}
{{- range .Values.imageStreamNamespaces }}
{{- if not (regexMatch "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$" .) }}
{{- fail (printf "imageStreamNamespaces: %q is not a valid namespace name" .) }}
{{- end }}
{{- end }}
{{- end }}
