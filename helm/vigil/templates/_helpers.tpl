{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vigil.fullname" -}}
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

{{- define "vigil.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vigil.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vigil.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- end }}

{{- define "vigil.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vigil.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vigil.workloadKind" -}}
{{- if .Values.persistence.enabled }}StatefulSet{{ else }}Deployment{{ end }}
{{- end }}

{{/* vigil.yml: the user's config with the paths and listener the chart owns. */}}
{{- define "vigil.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "rules" "/etc/vigil/rules" }}
{{- $state := default dict $config.state }}
{{- $_ := set $state "dir" "/var/lib/vigil" }}
{{- if .Values.sharedCheckpoints.existingClaim }}
{{- $_ := set $state "checkpoint_dir" "/var/lib/vigil-checkpoints" }}
{{- end }}
{{- $_ := set $config "state" $state }}
{{- $metrics := default dict $config.metrics }}
{{- $_ := set $metrics "listen" (printf "0.0.0.0:%d" (int .Values.service.port)) }}
{{- $_ := set $config "metrics" $metrics }}
{{- toYaml $config }}
{{- end }}

{{/* The rule files: the shipped ones and values.rules.custom, keyed flat. */}}
{{- define "vigil.ruleFiles" -}}
{{- $files := dict }}
{{- if .Values.rules.shipped }}
{{- range $path, $_ := .Files.Glob "files/rules/**.yml" }}
{{- $_ := set $files (trimPrefix "files/rules/" $path) ($.Files.Get $path) }}
{{- end }}
{{- range $path, $_ := .Files.Glob "files/rules/lists/*.txt" }}
{{- $_ := set $files (trimPrefix "files/rules/" $path) ($.Files.Get $path) }}
{{- end }}
{{- range $path, $_ := .Files.Glob "files/rules/lists/*.{csv,jsonl}" }}
{{- $_ := set $files (trimPrefix "files/rules/" $path) ($.Files.Get $path) }}
{{- end }}
{{- end }}
{{- range $name, $text := .Values.rules.custom }}
{{- $_ := set $files (printf "custom/%s" $name) $text }}
{{- end }}
{{- range $name, $text := .Values.rules.lists }}
{{- $_ := set $files (printf "lists/%s.txt" $name) $text }}
{{- end }}
{{- range $name, $text := .Values.rules.tables }}
{{- $_ := unset $files (printf "lists/%s.csv" $name) }}
{{- $_ := unset $files (printf "lists/%s.jsonl" $name) }}
{{- $ext := ternary "jsonl" "csv" (hasPrefix "{" (trim $text)) }}
{{- $_ := set $files (printf "lists/%s.%s" $name $ext) $text }}
{{- end }}
{{- toJson $files }}
{{- end }}
