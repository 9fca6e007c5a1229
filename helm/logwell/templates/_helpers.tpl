{{/* The release's name for logwell's objects. */}}
{{- define "logwell.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "logwell.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "logwell.labels" -}}
{{ include "logwell.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "logwell.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Refusals the schema cannot express, each saying what to set instead. */}}
{{- define "logwell.validate" -}}
{{- if and (eq .Values.mode "postgres") (not .Values.postgres.existingSecret) -}}
{{- fail "mode postgres needs postgres.existingSecret: the name of a Secret holding the database URL (never a plain value)" -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.secretName) -}}
{{- fail "tls.enabled needs tls.secretName: a Secret of type kubernetes.io/tls (cert-manager's Certificate makes one)" -}}
{{- end -}}
{{- if not (or .Values.auth.tokensSecret.name .Values.tls.clientCertificates .Values.auth.insecureNoAuth) -}}
{{- fail "logwell refuses to serve a network without authentication: set auth.tokensSecret.name, or tls.clientCertificates, or (for a network nobody else reaches) auth.insecureNoAuth" -}}
{{- end -}}
{{- if and (eq .Values.mode "embedded") .Values.replicas (gt (int .Values.replicas) 1) -}}
{{- fail "mode embedded runs exactly one replica (one process owns the SQLite file): for more, use mode postgres" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (eq .Values.mode "embedded") -}}
{{- fail "autoscaling needs mode postgres: the embedded mode runs exactly one replica" -}}
{{- end -}}
{{- end -}}

{{/* The port health answers on: the gRPC port, or the plaintext one with TLS. */}}
{{- define "logwell.healthPort" -}}
{{- if .Values.tls.enabled }}{{ .Values.healthPort }}{{ else }}{{ .Values.service.port }}{{ end -}}
{{- end -}}

{{/* What `logwell serve` and `logwell migrate` read from the environment. */}}
{{- define "logwell.env" -}}
- name: LOGWELL_DATABASE_URL
{{- if eq .Values.mode "postgres" }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgres.existingSecret }}
      key: {{ .Values.postgres.secretKey }}
{{- else }}
  value: sqlite:/data/logwell.db
{{- end }}
- name: LOGWELL_LOG_FORMAT
  value: json
{{- with .Values.retention }}
{{- if .system }}
- name: LOGWELL_RETENTION_SYSTEM
  value: {{ .system | quote }}
{{- end }}
{{- if .job }}
- name: LOGWELL_RETENTION_JOB
  value: {{ .job | quote }}
{{- end }}
{{- if .task }}
- name: LOGWELL_RETENTION_TASK
  value: {{ .task | quote }}
{{- end }}
{{- end }}
{{- with .Values.corsAllowedOrigins }}
- name: LOGWELL_CORS_ALLOWED_ORIGINS
  value: {{ join "," . | quote }}
{{- end }}
{{- with .Values.env }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "logwell.securityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The pod of both modes. */}}
{{- define "logwell.podSpec" -}}
serviceAccountName: {{ include "logwell.fullname" . }}
automountServiceAccountToken: false
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  fsGroup: 65532
  seccompProfile:
    type: RuntimeDefault
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: logwell
    image: {{ include "logwell.image" . }}
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      - serve
      - --listen=0.0.0.0:{{ .Values.service.port }}
      {{- if .Values.metrics.enabled }}
      - --metrics-listen=0.0.0.0:{{ .Values.metrics.port }}
      {{- end }}
      {{- if .Values.otlpHttp.enabled }}
      - --otlp-http-listen=0.0.0.0:{{ .Values.otlpHttp.port }}
      {{- end }}
      {{- if .Values.tls.enabled }}
      - --tls-cert-file=/etc/logwell/tls/tls.crt
      - --tls-key-file=/etc/logwell/tls/tls.key
      {{- if .Values.tls.clientCertificates }}
      - --tls-client-ca-file=/etc/logwell/tls/ca.crt
      {{- end }}
      - --health-listen=0.0.0.0:{{ .Values.healthPort }}
      {{- end }}
      {{- with .Values.auth.tokensSecret.name }}
      - --tokens-file=/etc/logwell/tokens/{{ $.Values.auth.tokensSecret.key }}
      {{- end }}
      {{- with .Values.auth.signingKeySecret.name }}
      - --token-signing-key-file=/etc/logwell/signing-key/{{ $.Values.auth.signingKeySecret.key }}
      {{- end }}
      {{- if .Values.auth.insecureNoAuth }}
      - --insecure-no-auth
      {{- end }}
      {{- range .Values.extraArgs }}
      - {{ . | quote }}
      {{- end }}
    env:
      {{- include "logwell.env" . | nindent 6 }}
    ports:
      - name: grpc
        containerPort: {{ .Values.service.port }}
      {{- if .Values.metrics.enabled }}
      - name: metrics
        containerPort: {{ .Values.metrics.port }}
      {{- end }}
      {{- if .Values.otlpHttp.enabled }}
      - name: otlp-http
        containerPort: {{ .Values.otlpHttp.port }}
      {{- end }}
      {{- if .Values.tls.enabled }}
      - name: health
        containerPort: {{ .Values.healthPort }}
      {{- end }}
    # Ready while the database answers; alive while the process does (a
    # database outage must not restart every replica).
    readinessProbe:
      grpc:
        port: {{ include "logwell.healthPort" . }}
      periodSeconds: 5
      failureThreshold: 2
    livenessProbe:
      grpc:
        port: {{ include "logwell.healthPort" . }}
        service: liveness
      periodSeconds: 10
      failureThreshold: 6
    startupProbe:
      grpc:
        port: {{ include "logwell.healthPort" . }}
        service: liveness
      periodSeconds: 2
      failureThreshold: 60
    resources:
      {{- toYaml .Values.resources | nindent 6 }}
    securityContext:
      {{- include "logwell.securityContext" . | nindent 6 }}
    volumeMounts:
      - name: data
        mountPath: /data
      - name: tmp
        mountPath: /tmp
      {{- if .Values.tls.enabled }}
      - name: tls
        mountPath: /etc/logwell/tls
        readOnly: true
      {{- end }}
      {{- if .Values.auth.tokensSecret.name }}
      - name: tokens
        mountPath: /etc/logwell/tokens
        readOnly: true
      {{- end }}
      {{- if .Values.auth.signingKeySecret.name }}
      - name: signing-key
        mountPath: /etc/logwell/signing-key
        readOnly: true
      {{- end }}
volumes:
  {{- if eq .Values.mode "postgres" }}
  - name: data
    emptyDir: {}
  {{- end }}
  - name: tmp
    emptyDir: {}
  {{- if .Values.tls.enabled }}
  - name: tls
    secret:
      secretName: {{ .Values.tls.secretName }}
  {{- end }}
  {{- with .Values.auth.tokensSecret.name }}
  - name: tokens
    secret:
      secretName: {{ . }}
  {{- end }}
  {{- with .Values.auth.signingKeySecret.name }}
  - name: signing-key
    secret:
      secretName: {{ . }}
  {{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
