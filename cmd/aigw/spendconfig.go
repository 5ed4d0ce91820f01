package main

import (
	"time"

	"aigw/gateway/spend"
)

// BudgetsConfig configures spend control (gateway/spend).
type BudgetsConfig struct {
	// RedisURL shares the budget counters between gateway replicas
	// (redis://host:6379/0). Empty: counters in this process's memory,
	// for a single gateway (the embedded default).
	RedisURL string `yaml:"redis_url"`
	// Prefix of the Redis keys (default "aigw:budget:").
	Prefix string `yaml:"prefix"`
	// FailOpen admits calls when the counters cannot be reached (their
	// cost is still in the ledger). Default: refuse them with 503.
	FailOpen bool `yaml:"fail_open"`
	// Wait is how long a call whose room is held by calls in flight
	// waits for them to settle before it is refused (default 2s; -1ns: no
	// wait).
	Wait time.Duration `yaml:"wait"`
	// Hold is how long an unsettled reservation (a crashed gateway) holds
	// its amount (default 15m).
	Hold time.Duration `yaml:"hold"`
	// DefaultOutputTokens is what a reservation assumes a request without
	// max_tokens may produce (default 4096).
	DefaultOutputTokens int `yaml:"default_output_tokens"`
	// Budgets set in the file (the admin API adds per-tenant budgets;
	// an admin budget with the same id replaces a file budget).
	Budgets []spend.Budget `yaml:"list"`
	// Webhook receives quota alerts (signed per Standard Webhooks).
	Webhook WebhookConfig `yaml:"webhook"`
}

// WebhookConfig is a signed webhook endpoint.
type WebhookConfig struct {
	URL string `yaml:"url"`
	// Secret signs deliveries ("whsec_<base64>"); use ${ENV}.
	Secret      string        `yaml:"secret"`
	Timeout     time.Duration `yaml:"timeout"`
	MaxAttempts int           `yaml:"max_attempts"`
}

// TelemetryConfig configures OpenTelemetry traces, Prometheus metrics and
// Langfuse.
type TelemetryConfig struct {
	// ServiceName is the OpenTelemetry service.name (default "aigw").
	ServiceName string `yaml:"service_name"`
	// OTLPEndpoint is an OTLP/HTTP traces URL (e.g.
	// http://collector:4318/v1/traces); empty: no trace export.
	OTLPEndpoint string            `yaml:"otlp_endpoint"`
	OTLPHeaders  map[string]string `yaml:"otlp_headers"`
	// SampleRatio of traces without a sampled parent (default 1).
	SampleRatio *float64 `yaml:"sample_ratio"`
	// TenantLabel adds the tenant to the Prometheus metrics' labels (off:
	// cardinality).
	TenantLabel bool `yaml:"tenant_label"`
	// MetricsToken, when set, is required as "Authorization: Bearer
	// <token>" by /metrics; empty: /metrics is open to whoever reaches the
	// listen address (with tenant_label, serve warns: it names tenants).
	MetricsToken string         `yaml:"metrics_token"`
	Langfuse     LangfuseConfig `yaml:"langfuse"`
}

// LangfuseConfig exports every generation to Langfuse.
type LangfuseConfig struct {
	// Host is the Langfuse URL (e.g. https://cloud.langfuse.com); empty:
	// off.
	Host      string `yaml:"host"`
	PublicKey string `yaml:"public_key"`
	SecretKey string `yaml:"secret_key"`
	// CaptureContent sends prompts and answers (they may hold personal
	// data; default off: metadata, tokens and cost only).
	CaptureContent bool          `yaml:"capture_content"`
	QueueSize      int           `yaml:"queue_size"`
	BatchSize      int           `yaml:"batch_size"`
	FlushInterval  time.Duration `yaml:"flush_interval"`
}
