{{/* Chart name, truncated to the 63 characters of a label value. */}}
{{- define "cie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name when it already contains the chart name (the documented commands). */}}
{{- define "cie.fullname" -}}
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

{{- define "cie.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels shared by every object except the ConfigMaps the chart creates (see cie.configMapLabels). */}}
{{- define "cie.labels" -}}
helm.sh/chart: {{ include "cie.chart" . }}
{{ include "cie.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: carbon-intensity-exporter
{{- end }}

{{- define "cie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cie.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels for ConfigMaps the chart itself creates (forecast file, dashboard). They deliberately carry no
app.kubernetes.io/name=carbon-intensity-exporter: the exporter watches ConfigMaps with that label, and
these are not its forecasts.
*/}}
{{- define "cie.configMapLabels" -}}
helm.sh/chart: {{ include "cie.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: carbon-intensity-exporter
{{- end }}

{{- define "cie.namespace" -}}
{{- .Values.namespace }}
{{- end }}

{{- define "cie.serviceAccountName" -}}
{{- include "cie.fullname" . }}
{{- end }}

{{- define "cie.secretName" -}}
{{- default (include "cie.fullname" .) .Values.existingSecret }}
{{- end }}

{{- define "cie.forecastConfigMapName" -}}
{{- default (printf "%s-forecast" (include "cie.fullname" .)) .Values.file.existingConfigMap }}
{{- end }}

{{- define "cie.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "cie.str" (default .Chart.AppVersion .Values.image.tag)) }}
{{- end }}

{{/* "true" when more than one replica: Lease-based leader election. */}}
{{- define "cie.leaderElection" -}}
{{- if gt (int .Values.replicaCount) 1 }}true{{ else }}false{{ end }}
{{- end }}

{{/*
The Lease the exporter elects its leader on: <configmapName>-leader (one per published ConfigMap set, so two
releases with different configmapNames never share a Lease).
*/}}
{{- define "cie.leaseName" -}}
{{- printf "%s-leader" .Values.carbonDataExporter.configmapName }}
{{- end }}

{{/* Comma-separated additional regions, as ADDITIONAL_REGIONS expects. */}}
{{- define "cie.additionalRegions" -}}
{{- $regions := list }}
{{- range .Values.carbonDataExporter.additionalRegions }}
{{- $regions = append $regions (toString . | trim) }}
{{- end }}
{{- join "," $regions }}
{{- end }}

{{/*
Every ConfigMap name the exporter publishes, one per line: <configmapName> for the region, then
<configmapName>-<suffix> for each additional region, where suffix is the region lowercased with every run of
characters outside [a-z0-9] turned into "-" (settings.region_configmap_suffix in the program).
*/}}
{{- define "cie.publishedConfigMaps" -}}
{{- $base := .Values.carbonDataExporter.configmapName }}
{{- $primary := toString .Values.carbonDataExporter.region | trim }}
{{- $names := list $base }}
{{- range .Values.carbonDataExporter.additionalRegions }}
{{- $region := toString . | trim }}
{{- if and $region (ne $region $primary) }}
{{- $suffix := regexReplaceAll "[^a-z0-9]+" (lower $region) "-" | trimAll "-" }}
{{- $names = append $names (printf "%s-%s" $base $suffix) }}
{{- end }}
{{- end }}
{{- range uniq $names }}
{{ . }}
{{- end }}
{{- end }}

{{/* Which Secret keys the selected provider reads. */}}
{{- define "cie.usesWattTime" -}}
{{- if eq .Values.providerName "WattTime" }}true{{ end }}
{{- end }}
{{- define "cie.usesElectricityMaps" -}}
{{- if eq .Values.providerName "ElectricityMaps" }}true{{ end }}
{{- end }}

{{/* Checks the schema cannot express; each message names the value to set. */}}
{{- define "cie.validate" -}}
{{- $p := .Values.providerName }}
{{- $wt := .Values.wattTime }}
{{- $em := .Values.electricityMaps }}
{{- $inlineWT := or (include "cie.str" $wt.username) (include "cie.str" $wt.password) }}
{{- $inlineEM := include "cie.str" $em.apiToken }}
{{- if and .Values.existingSecret (or $inlineWT $inlineEM) }}
{{- fail "set either existingSecret or the inline credentials (wattTime.username/password, electricityMaps.apiToken), not both" }}
{{- end }}
{{- if and (eq $p "WattTime") (not .Values.existingSecret) }}
{{- if not (and (include "cie.str" $wt.username) (include "cie.str" $wt.password)) }}
{{- fail "providerName=WattTime needs credentials: --set wattTime.username=... --set wattTime.password=... (or existingSecret with keys wt-username, wt-password); to try without an account use --set providerName=Sample" }}
{{- end }}
{{- end }}
{{- if and (eq $p "ElectricityMaps") (not .Values.existingSecret) (not $inlineEM) }}
{{- fail "providerName=ElectricityMaps needs a token: --set electricityMaps.apiToken=... (or existingSecret with key em-api-token)" }}
{{- end }}
{{- if and (eq $p "CarbonAwareSDK") (not .Values.carbonAwareSDK.url) }}
{{- fail "providerName=CarbonAwareSDK needs --set carbonAwareSDK.url=http://<carbon-aware-sdk-webapi>:<port>" }}
{{- end }}
{{- if eq $p "File" }}
{{- if and .Values.file.forecast .Values.file.existingConfigMap }}
{{- fail "providerName=File: set either file.forecast or file.existingConfigMap, not both" }}
{{- end }}
{{- if not (or .Values.file.forecast .Values.file.existingConfigMap) }}
{{- fail "providerName=File needs the forecast: --set-file file.forecast=forecast.json (a JSON EmissionsData array) or --set file.existingConfigMap=<name>" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A value as text. Numbers reach templates as float64 (values files, and the JSON that SDKs pass), which
toString prints as 1.2345678e+07: print whole numbers as integers so a numeric password or region id
survives.
*/}}
{{- define "cie.str" -}}
{{- if kindIs "float64" . }}
{{- if eq (float64 (int64 .)) . }}{{ int64 . }}{{ else }}{{ . }}{{ end }}
{{- else if kindIs "invalid" . }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}
