{{/*
Names, labels, the rendered configuration and the pieces every `desk` pod shares.
*/}}

{{/* The chart's name (nameOverride wins). */}}
{{- define "desk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 52 | trimSuffix "-" }}
{{- end }}

{{/*
The base name of every resource: release name and chart name, 52 characters at most so that
suffixes such as "-migrate" still fit the 63 characters of a DNS label.
*/}}
{{- define "desk.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "desk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select this release's pods (add app.kubernetes.io/component per workload). */}}
{{- define "desk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "desk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "desk.labels" -}}
helm.sh/chart: {{ include "desk.chart" . }}
{{ include "desk.selectorLabels" . }}
app.kubernetes.io/version: {{ include "desk.imageTag" . | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: miz
{{- end }}

{{/* The service account of the web and worker pods. */}}
{{- define "desk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "desk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag, or the chart's appVersion. */}}
{{- define "desk.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/* repository:tag, or repository@digest when image.digest is set. */}}
{{- define "desk.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "desk.imageTag" .) }}
{{- end }}
{{- end }}

{{/* The Secret holding the database URL, the master key and the S3 secret key. */}}
{{- define "desk.secretName" -}}
{{- if .Values.secrets.create }}
{{- default (include "desk.fullname" .) .Values.secrets.name }}
{{- else }}
{{- required "secrets.name: name the existing Secret (or set secrets.create=true)" .Values.secrets.name }}
{{- end }}
{{- end }}

{{/* "true" when uploads go to an S3-compatible store (config.storage.s3_endpoint is set). */}}
{{- define "desk.s3Enabled" -}}
{{- if index .Values.config.storage "s3_endpoint" }}true{{ end }}
{{- end }}

{{/* The platform portal's host: <platform_subdomain>.<base_domain>. */}}
{{- define "desk.platformHost" -}}
{{- printf "%s.%s" (default "admin" (index .Values.config.http "platform_subdomain")) (include "desk.baseDomain" .) }}
{{- end }}

{{/* The base domain (municipalities live at <slug>.<base_domain>). */}}
{{- define "desk.baseDomain" -}}
{{- required "config.http.base_domain is required (municipalities live at <slug>.<base_domain>)" .Values.config.http.base_domain }}
{{- end }}

{{/*
Refuses values that would start pods doomed to fail, before anything is applied.
*/}}
{{- define "desk.validate" -}}
{{- $c := .Values.config }}
{{- if hasKey $c "secrets" }}
{{- fail "config.secrets: the master key is a secret; give it in secrets.masterKey (mounted as a file)" }}
{{- end }}
{{- if and (hasKey $c "database") (hasKey $c.database "url") }}
{{- fail "config.database.url: the database URL is a secret; give it in secrets.databaseUrl (mounted as a file)" }}
{{- end }}
{{- if hasKey $c.storage "s3_secret_key" }}
{{- fail "config.storage.s3_secret_key: give it in secrets.s3SecretKey (mounted as a file)" }}
{{- end }}
{{- if hasKey $c.http "listen" }}
{{- fail "config.http.listen is set by the chart (0.0.0.0:<web.port>); set web.port instead" }}
{{- end }}
{{- if and (hasKey $c "web") (or (hasKey $c.web "themes_dir") (hasKey $c.web "uploads_dir")) }}
{{- fail "config.web.themes_dir and config.web.uploads_dir are set by the image and the chart (see uploads.mountPath)" }}
{{- end }}
{{- if and (include "desk.s3Enabled" .) (not (index $c.storage "s3_access_key")) }}
{{- fail "config.storage.s3_endpoint needs config.storage.s3_access_key (and secrets.s3SecretKey)" }}
{{- end }}
{{- if .Values.secrets.create }}
{{- if not .Values.secrets.databaseUrl.value }}
{{- fail "secrets.create=true needs secrets.databaseUrl.value" }}
{{- end }}
{{- if and .Values.secrets.masterKey.enabled (not .Values.secrets.masterKey.value) }}
{{- fail "secrets.create=true needs secrets.masterKey.value (64 hex characters), or secrets.masterKey.enabled=false" }}
{{- end }}
{{- if and (include "desk.s3Enabled" .) (not .Values.secrets.s3SecretKey.value) }}
{{- fail "S3 storage with secrets.create=true needs secrets.s3SecretKey.value" }}
{{- end }}
{{- end }}
{{- if and .Values.web.autoscaling.enabled (not (dig "requests" "cpu" "" .Values.web.resources)) }}
{{- fail "web.autoscaling needs web.resources.requests.cpu (the HPA scales on CPU utilization)" }}
{{- end }}
{{- if and .Values.worker.enabled .Values.worker.autoscaling.enabled (not (dig "requests" "cpu" "" .Values.worker.resources)) }}
{{- fail "worker.autoscaling needs worker.resources.requests.cpu" }}
{{- end }}
{{- end }}

{{/*
The configuration file (TOML) from .Values.config: one [section] per map, `key = value` per
scalar. Null and empty-string values are left out, so the built-in default applies. Scalars
are written as JSON, whose strings, numbers and booleans are also valid TOML.
*/}}
{{- define "desk.configToml" -}}
# desk configuration, rendered by the desk chart from .Values.config.
# DESK_* environment variables (set by the chart and the image) override what is here.
{{- range $section, $keys := .Values.config }}
{{- if not (kindIs "map" $keys) }}
{{- fail (printf "config.%s must be a section (a map of keys)" $section) }}
{{- end }}

[{{ $section }}]
{{- range $key, $value := $keys }}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{- fail (printf "config.%s.%s must be a string, a number or a boolean" $section $key) }}
{{- end }}
{{- if not (kindIs "invalid" $value) }}
{{- if ne (toString $value) "" }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the config file and the secret files are mounted. */}}
{{- define "desk.configDir" -}}/etc/desk{{- end }}
{{- define "desk.configPath" -}}/etc/desk/desk.toml{{- end }}
{{- define "desk.secretsDir" -}}/run/secrets/desk{{- end }}

{{/*
Environment shared by every desk container. Kubernetes' service links are turned off in the
pod specs: `desk` reads every DESK_* variable as configuration and refuses unknown keys, and a
Service named "desk" would inject DESK_SERVICE_HOST, DESK_PORT, ...
*/}}
{{- define "desk.env" -}}
- name: DESK_CONFIG
  value: {{ include "desk.configPath" . | quote }}
- name: DESK_DATABASE__URL_FILE
  value: {{ printf "%s/database-url" (include "desk.secretsDir" .) | quote }}
{{- if .Values.secrets.masterKey.enabled }}
- name: DESK_SECRETS__MASTER_KEY_FILE
  value: {{ printf "%s/master-key" (include "desk.secretsDir" .) | quote }}
{{- end }}
{{- if include "desk.s3Enabled" . }}
- name: DESK_STORAGE__S3_SECRET_KEY_FILE
  value: {{ printf "%s/s3-secret-key" (include "desk.secretsDir" .) | quote }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volume mounts shared by every desk container: the config file, the secret files, /tmp.
*/}}
{{- define "desk.volumeMounts" -}}
- name: config
  mountPath: {{ include "desk.configDir" . | quote }}
  readOnly: true
- name: secrets
  mountPath: {{ include "desk.secretsDir" . | quote }}
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{/*
Volumes behind desk.volumeMounts. Call with (dict "root" $ "configMap" NAME "secret" NAME).
*/}}
{{- define "desk.volumes" -}}
{{- $root := .root -}}
- name: config
  configMap:
    name: {{ .configMap }}
- name: secrets
  secret:
    secretName: {{ .secret }}
    defaultMode: 0440
    items:
      - key: {{ $root.Values.secrets.databaseUrl.key }}
        path: database-url
      {{- if $root.Values.secrets.masterKey.enabled }}
      - key: {{ $root.Values.secrets.masterKey.key }}
        path: master-key
      {{- end }}
      {{- if include "desk.s3Enabled" $root }}
      - key: {{ $root.Values.secrets.s3SecretKey.key }}
        path: s3-secret-key
      {{- end }}
- name: tmp
  {{- $tmpLimit := index $root.Values.tmp "sizeLimit" }}
  emptyDir: {{ if $tmpLimit }}{ sizeLimit: {{ $tmpLimit }} }{{ else }}{}{{ end }}
{{- end }}

{{/* Pod-level settings shared by every desk pod. */}}
{{- define "desk.podSpecCommon" -}}
enableServiceLinks: false
automountServiceAccountToken: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end }}

{{/* Checksums that roll the pods when the configuration or a chart-made Secret changes. */}}
{{- define "desk.checksums" -}}
checksum/config: {{ include "desk.configToml" . | sha256sum }}
{{- if .Values.secrets.create }}
checksum/secrets: {{ printf "%s|%s|%s" .Values.secrets.databaseUrl.value .Values.secrets.masterKey.value .Values.secrets.s3SecretKey.value | sha256sum }}
{{- end }}
{{- end }}
