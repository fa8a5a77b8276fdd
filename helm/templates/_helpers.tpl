{{/* Names, labels and the chatd.toml renderer shared by the templates. */}}

{{- define "chat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "chat.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "chat.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "chat.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "chat.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "chat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "chat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "chat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "chat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "chat.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "chat.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret the chart owns (JWT, Redis URL, ScyllaDB nodes, S3 keys). */}}
{{- define "chat.secretName" -}}
{{- include "chat.fullname" . -}}
{{- end -}}

{{/*
The roles this release runs, as a list of dicts. In roles mode a
Deployment per role; in allInOne mode one `chatd serve`.
*/}}
{{- define "chat.roles" -}}
{{- if eq .Values.mode "allInOne" -}}
{{- list (dict "name" "serve" "values" .Values.allInOne) | toJson -}}
{{- else -}}
{{- list (dict "name" "gateway" "values" .Values.gateway) (dict "name" "router" "values" .Values.router) (dict "name" "persist" "values" .Values.persist) | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The component whose pods serve clients (REST and /ws): the gateway, or the
all-in-one process.
*/}}
{{- define "chat.frontRole" -}}
{{- if eq .Values.mode "allInOne" }}serve{{ else }}gateway{{ end -}}
{{- end -}}

{{/*
chatd.toml from a map. Helm reads every number of the values as a float,
and chatd refuses 1024.0 where it wants an integer, so whole floats are
written as integers (chatd accepts an integer for a fractional setting).
Strings and lists are written as JSON, which is valid TOML for them.
*/}}
{{- define "chat.toml.value" -}}
{{- if kindIs "float64" . -}}
{{- if eq . (float64 (int64 .)) }}{{ int64 . }}{{ else }}{{ . }}{{ end -}}
{{- else if or (kindIs "int" .) (kindIs "int64" .) (kindIs "bool" .) -}}
{{ . }}
{{- else -}}
{{ toJson . }}
{{- end -}}
{{- end -}}

{{- define "chat.toml.table" -}}
{{- $prefix := .prefix -}}
{{- range $k, $v := .map }}
{{- if not (kindIs "map" $v) }}
{{ $k }} = {{ include "chat.toml.value" $v }}
{{- end }}
{{- end }}
{{- range $k, $v := .map }}
{{- if kindIs "map" $v }}
{{- $name := ternary $k (printf "%s.%s" $prefix $k) (eq $prefix "") }}

[{{ $name }}]
{{- include "chat.toml.table" (dict "map" $v "prefix" $name) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The effective chatd settings: the values' config plus what the chart owns. */}}
{{- define "chat.config" -}}
{{- $owned := dict "listen" "0.0.0.0:8080" "data_dir" "/var/lib/chat" -}}
{{- if ne .Values.mode "allInOne" -}}
{{- $_ := set $owned "redis_cluster" .Values.redis.cluster -}}
{{- end -}}
{{- $config := mergeOverwrite (deepCopy .Values.config) $owned -}}
{{- if eq .Values.mode "allInOne" -}}
{{- $_ := unset $config "scylla" -}}
{{- end -}}
# chatd.toml, rendered by the chat Helm chart; see docs/configuration.md.
{{- include "chat.toml.table" (dict "map" $config "prefix" "") }}
{{- end -}}

{{/* Fails the render on combinations the schema cannot express. */}}
{{- define "chat.validate" -}}
{{- if ne .Values.mode "allInOne" -}}
{{- if and (not .Values.redis.existingSecret) (not .Values.redis.url) -}}
{{- fail "mode roles needs Redis: set redis.url or redis.existingSecret" -}}
{{- end -}}
{{- if and (not .Values.scylla.existingSecret) (empty .Values.scylla.nodes) -}}
{{- fail "mode roles needs ScyllaDB (SQLite does not span pods): set scylla.nodes or scylla.existingSecret" -}}
{{- end -}}
{{- end -}}
{{- if lt (int .Values.config.realtime.outbound_queue) (int .Values.config.realtime.persist_batch) -}}
{{- fail "config.realtime.outbound_queue must be at least config.realtime.persist_batch (chatd refuses to start otherwise)" -}}
{{- end -}}
{{- end -}}
