package main

import (
	"aigw/gateway/pricing"

	"fmt"
	"strings"
	"time"
)

// GatewayConfig configures the gateway's API.
type GatewayConfig struct {
	// AdminKey protects the admin API (/admin/, "Authorization: Bearer
	// <key>"). Empty: DATA_DIR/admin.key, generated on first start.
	AdminKey string `yaml:"admin_key"`
	// FailOpen answers calls even when the ledger cannot record them. The
	// default (false) is fail-closed: no answer without a durable record;
	// the agent gets 503 with Retry-After instead.
	FailOpen bool `yaml:"fail_open"`
	// MaxBodyBytes bounds request bodies (default 8 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// TenantsDatabaseURL is where tenants and API keys live: a PostgreSQL
	// URL. Empty: the ledger's PostgreSQL database if it has one, else
	// SQLite in DATA_DIR/gateway.db.
	TenantsDatabaseURL string `yaml:"tenants_database_url"`
	// AuthCacheTTL is how long a verified API key is cached; a revocation
	// made on another replica applies within it (default 10s).
	AuthCacheTTL time.Duration `yaml:"auth_cache_ttl"`
	// DefaultTenant: on first start of the embedded default (no config
	// file), create this tenant and one API key, written to
	// DATA_DIR/default.key. Empty in a config file: no bootstrap.
	DefaultTenant string `yaml:"default_tenant"`
}

// ProviderConfig declares an upstream.
type ProviderConfig struct {
	// Name is how routes refer to the provider.
	Name string `yaml:"name"`
	// Type is openai, openai-compatible, anthropic, bedrock, gemini or mock.
	Type string `yaml:"type"`
	// BaseURL overrides the provider's API root (openai: up to /v1; for
	// openai-compatible hosts it is required, e.g.
	// https://ai-gateway.vercel.sh/v1, http://localhost:8000/v1 for vLLM,
	// http://localhost:11434/v1 for Ollama).
	BaseURL string `yaml:"base_url"`
	// APIKey is the provider's key; use ${ENV} to keep it out of the file.
	APIKey string `yaml:"api_key"`
	// Headers are extra headers sent upstream.
	Headers map[string]string `yaml:"headers"`
	// Bedrock: region and static credentials.
	Region          string `yaml:"region"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	SessionToken    string `yaml:"session_token"`
	// Anthropic: the anthropic-version header (default 2023-06-01).
	Version string `yaml:"version"`
	// NoStreamUsage: the OpenAI-compatible host rejects stream_options;
	// streamed usage is then counted by the gateway.
	NoStreamUsage bool `yaml:"no_stream_usage"`
	// MaxConcurrent is the provider's bulkhead: calls in flight at most
	// (default 512).
	MaxConcurrent int `yaml:"max_concurrent"`
}

// RouteConfig declares a model alias: the model name clients send, and the
// targets it is served by.
type RouteConfig struct {
	Name string `yaml:"name"`
	// Strategy: ordered (default; fallback in order), weighted (random by
	// weight, then the rest), cost (cheapest healthy target first).
	Strategy string `yaml:"strategy"`
	// Retries of one target on a retryable error before falling back
	// (default 1; -1 for none).
	Retries        int            `yaml:"retries"`
	Backoff        time.Duration  `yaml:"backoff"`
	MaxBackoff     time.Duration  `yaml:"max_backoff"`
	AttemptTimeout time.Duration  `yaml:"attempt_timeout"`
	Deadline       time.Duration  `yaml:"deadline"`
	Targets        []TargetConfig `yaml:"targets"`
}

// TargetConfig is one target of a route.
type TargetConfig struct {
	Provider string `yaml:"provider"`
	// Model is the upstream model (default: the route's name).
	Model  string `yaml:"model"`
	Weight int    `yaml:"weight"`
	// Price overrides the price table for this target: US dollars per
	// million tokens as decimals (input, output, cached_input,
	// cache_write, request per call, long_context).
	Price *pricing.PriceSpec `yaml:"price"`
}

// PricingConfig overrides the built-in price table; any override changes
// the table's version, which every priced event records.
type PricingConfig struct {
	Overrides []pricing.Override `yaml:"overrides"`
}

// BreakerConfig configures every target's circuit breaker.
type BreakerConfig struct {
	Window         time.Duration `yaml:"window"`
	MinRequests    int           `yaml:"min_requests"`
	FailureRate    float64       `yaml:"failure_rate"`
	SlowCall       time.Duration `yaml:"slow_call"`
	OpenFor        time.Duration `yaml:"open_for"`
	HalfOpenProbes int           `yaml:"half_open_probes"`
}

var providerTypes = []string{"openai", "openai-compatible", "anthropic", "bedrock", "gemini", "mock"}

func (c *Config) validateGateway() error {
	names := map[string]bool{}
	for i, p := range c.Providers {
		if p.Name == "" {
			return fmt.Errorf("providers[%d]: name is required", i)
		}
		if names[p.Name] {
			return fmt.Errorf("providers: %q declared twice", p.Name)
		}
		names[p.Name] = true
		ok := false
		for _, t := range providerTypes {
			ok = ok || p.Type == t
		}
		if !ok {
			return fmt.Errorf("providers[%s]: type %q is not one of %s", p.Name, p.Type, strings.Join(providerTypes, ", "))
		}
		if p.Type == "openai-compatible" && p.BaseURL == "" {
			return fmt.Errorf("providers[%s]: an openai-compatible provider needs base_url", p.Name)
		}
	}
	routes := map[string]bool{}
	for i, r := range c.Routes {
		if r.Name == "" {
			return fmt.Errorf("routes[%d]: name is required", i)
		}
		if routes[r.Name] {
			return fmt.Errorf("routes: %q declared twice", r.Name)
		}
		routes[r.Name] = true
		if len(r.Targets) == 0 {
			return fmt.Errorf("routes[%s]: no targets", r.Name)
		}
		for _, t := range r.Targets {
			if !names[t.Provider] {
				return fmt.Errorf("routes[%s]: unknown provider %q", r.Name, t.Provider)
			}
		}
	}
	return nil
}
