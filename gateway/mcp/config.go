package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"aigw/gateway"
	"aigw/gateway/guard/injection"
	"aigw/gateway/guard/limits"
	"aigw/gateway/guard/tools"
	"aigw/ledger"
)

// Defaults for a Config's zero values.
const (
	DefaultLedgerTimeout  = 5 * time.Second
	DefaultSessionTimeout = 30 * time.Minute
	// DefaultTenantIdleTimeout is how long a tenant's MCP server outlives
	// its last session.
	DefaultTenantIdleTimeout = 5 * time.Minute
	DefaultKeepAlive         = 15 * time.Second
	DefaultConnectTimeout    = 10 * time.Second
	DefaultCallTimeout       = 60 * time.Second
	DefaultReconnectMin      = 250 * time.Millisecond
	DefaultReconnectMax      = 30 * time.Second
	DefaultMaxTools          = 1000
	// DefaultMaxBodyBytes bounds an MCP request body.
	DefaultMaxBodyBytes = 4 << 20
)

// MaxUsageSpan is the longest window the usage tool accepts.
const MaxUsageSpan = 366 * 24 * time.Hour

// Injection actions of an upstream (Upstream.Injection).
const (
	// InjectionBlock replaces a tool result that looks like a prompt
	// injection by a tool error (the default).
	InjectionBlock = "block"
	// InjectionFlag passes the result on and records the verdict.
	InjectionFlag = "flag"
)

// Config configures a Server. Authenticate and Recorder are required; each
// nil context function leaves its tools, resources and prompts out.
type Config struct {
	// Authenticate resolves a gateway key (the secret of "Authorization:
	// Bearer <key>") to its caller. An error refuses the request with 401
	// invalid_api_key before any MCP processing; a *gateway.Error with
	// another status (403, 503) is answered as it is.
	Authenticate func(ctx context.Context, secret string) (gateway.Caller, error)
	// Recorder records every MCP request's event (the ledger).
	Recorder gateway.Recorder
	// FailOpen answers without waiting for the ledger, and even when it
	// cannot record (failures are logged and counted). The default,
	// fail-closed, answers only after the ledger acknowledged the
	// request's event, and a JSON-RPC error ([CodeLedgerUnavailable])
	// when it did not.
	FailOpen bool
	// LedgerTimeout bounds the wait for an acknowledgement (default 5 s).
	LedgerTimeout time.Duration
	// Policy identifies the policy version in force; it is written into
	// every event.
	Policy string

	// Models returns the gateway's models and routes; the caller sees
	// those caller.Allows allows. Tool aigw_models, resource
	// aigw://models.
	Models func(caller gateway.Caller) []gateway.Model
	// Guardrails returns the guardrail rules that apply to the caller
	// (JSON-encodable). Tool aigw_guardrails, resource aigw://guardrails.
	Guardrails func(ctx context.Context, caller gateway.Caller) (any, error)
	// Budgets returns the tenant's budgets and what remains of them. Tool
	// aigw_budgets, resource aigw://budgets.
	Budgets func(ctx context.Context, tenant string) (any, error)
	// Usage returns the tenant's usage in [from, to). Tool aigw_usage
	// (arguments from and to, RFC 3339 or YYYY-MM-DD; default the current
	// UTC month to now), resource aigw://usage (month to date).
	Usage func(ctx context.Context, tenant string, from, to time.Time) (any, error)
	// Proof returns an inclusion proof of the tenant's ledger events of a
	// trace (an error wrapping ledger.ErrNotFound when there is none).
	// Tool aigw_proof, resource template aigw://proof/{trace_id}, prompt
	// aigw_verify.
	Proof func(ctx context.Context, tenant, traceID string) (any, error)

	// Upstreams are the MCP servers whose tools agents reach through the
	// gateway.
	Upstreams []Upstream
	// Limiter, when set, is also asked for every upstream tool call, with
	// the subject {Tenant, Key: key id, Route: "mcp:<server>"} and 0
	// tokens (a shared limits.Redis across gateway replicas, with rules
	// of its own).
	Limiter limits.Limiter
	// Detector inspects tool results (and upstream tool descriptions) for
	// prompt injection; default injection.New(injection.Config{}).
	Detector *injection.Detector
	// HTTPClient reaches streamable HTTP upstreams (it must have no
	// Timeout: the SDK keeps a stream open). Default: a client of its own
	// with [gateway.NewUpstreamTransport] (plain-HTTP upstreams on the
	// calling goroutine, https through net/http) following no redirect
	// (which would carry an upstream's headers elsewhere).
	HTTPClient *http.Client

	// MaxBodyBytes bounds an MCP request body (default 4 MiB).
	MaxBodyBytes int64
	// SessionTimeout closes sessions idle that long (default 30 min).
	SessionTimeout time.Duration
	// TenantIdleTimeout frees a tenant's MCP server (its tools, resources
	// and prompts, made when its first session began) once the tenant has
	// had no session that long (default 5 min); its next session makes it
	// anew.
	TenantIdleTimeout time.Duration
	// KeepAlive is the interval of the pings that tell a dead upstream
	// (default 15 s).
	KeepAlive time.Duration
	// ConnectTimeout bounds connecting to an upstream and listing its
	// tools (default 10 s).
	ConnectTimeout time.Duration
	// CallTimeout bounds one upstream tool call (default 60 s; an
	// Upstream may set its own).
	CallTimeout time.Duration
	// ReconnectMin and ReconnectMax bound the backoff between attempts to
	// reach an upstream (defaults 250 ms and 30 s; doubling, with jitter).
	ReconnectMin, ReconnectMax time.Duration
	// MaxTools bounds the tools taken from one upstream (default 1000).
	MaxTools int
	// Logger logs upstream state changes and failures (default: none).
	Logger *slog.Logger
}

// Upstream is an MCP server whose tools the gateway exposes to the agents
// of some tenants. Exactly one of URL and Command is set.
type Upstream struct {
	// Name namespaces the server's tools ("<name>__<tool>"): 1 to 32 of
	// [a-z0-9_-], starting with a letter or digit, without "__".
	Name string
	// Tenants are the tenants whose agents see the server (at least one).
	Tenants []string
	// URL is a streamable HTTP endpoint (http or https).
	URL string
	// Headers are sent with every request to URL (credentials of the
	// upstream; never logged).
	Headers map[string]string
	// Command is a program and its arguments that the gateway runs and
	// speaks MCP to over stdin and stdout (stdio transport). It is
	// started when the gateway starts and again after it exits.
	Command []string
	// Env is the environment of Command ("KEY=value"); the process gets
	// PATH and these, never the gateway's own environment (which holds
	// secrets).
	Env []string
	// Dir is Command's working directory ("" for the gateway's).
	Dir string
	// Tools is the policy on the server's tools, matched against the
	// names the server gives them ("read_file", not the namespaced name).
	// The zero policy denies every tool; Default: "allow" exposes all
	// but those denied. Arguments are always also checked against the
	// tool's inputSchema.
	Tools tools.Config
	// RateLimit bounds the calls to the server's tools.
	RateLimit RateLimit
	// Injection is what a tool result that looks like a prompt injection
	// gets: InjectionBlock ("" too) or InjectionFlag. A tool whose
	// description looks like one is, under block, not exposed.
	Injection string
	// CallTimeout overrides Config.CallTimeout for this server.
	CallTimeout time.Duration
}

// RateLimit bounds the tool calls made to one upstream, per minute
// (sliding window); zero is no limit.
type RateLimit struct {
	// RPM bounds the calls of one tenant.
	RPM int64
	// KeyRPM bounds the calls of one API key.
	KeyRPM int64
}

// LogValue logs an upstream without its headers' and environment's
// values, which may hold credentials.
func (u Upstream) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("name", u.Name), slog.Any("tenants", u.Tenants)}
	if u.URL != "" {
		attrs = append(attrs, slog.String("url", gateway.RedactURL(u.URL)))
	}
	if len(u.Command) > 0 {
		attrs = append(attrs, slog.String("command", u.Command[0]))
	}
	if len(u.Headers) > 0 {
		attrs = append(attrs, slog.String("headers", "REDACTED"))
	}
	if len(u.Env) > 0 {
		attrs = append(attrs, slog.String("env", "REDACTED"))
	}
	return slog.GroupValue(attrs...)
}

// Validate reports whether New accepts c.
func (c *Config) Validate() error {
	if c.Authenticate == nil {
		return errors.New("mcp: config needs Authenticate")
	}
	if c.Recorder == nil {
		return errors.New("mcp: config needs a Recorder")
	}
	for _, d := range []time.Duration{c.LedgerTimeout, c.SessionTimeout, c.TenantIdleTimeout, c.KeepAlive, c.ConnectTimeout, c.CallTimeout, c.ReconnectMin, c.ReconnectMax} {
		if d < 0 {
			return fmt.Errorf("mcp: negative duration %v", d)
		}
	}
	if c.ReconnectMin > 0 && c.ReconnectMax > 0 && c.ReconnectMin > c.ReconnectMax {
		return fmt.Errorf("mcp: reconnect_min %v is above reconnect_max %v", c.ReconnectMin, c.ReconnectMax)
	}
	if c.MaxBodyBytes < 0 || c.MaxTools < 0 {
		return errors.New("mcp: negative max_body_bytes or max_tools")
	}
	if c.HTTPClient != nil && c.HTTPClient.Timeout > 0 {
		return errors.New("mcp: the upstream HTTP client must have no Timeout (streams stay open); use CallTimeout")
	}
	seen := make(map[string]bool, len(c.Upstreams))
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		if err := u.validate(); err != nil {
			return fmt.Errorf("mcp: upstream %d (%q): %w", i, u.Name, err)
		}
		if seen[u.Name] {
			return fmt.Errorf("mcp: two upstreams named %q", u.Name)
		}
		seen[u.Name] = true
	}
	return nil
}

func (u *Upstream) validate() error {
	if !validServerName(u.Name) {
		return errors.New("name must be 1 to 32 of [a-z0-9_-], starting with a letter or digit, without \"__\"")
	}
	if len(u.Tenants) == 0 {
		return errors.New("no tenants")
	}
	for _, t := range u.Tenants {
		if !ledger.ValidLogName(t) {
			return fmt.Errorf("tenant %q is not a valid tenant name", t)
		}
	}
	switch {
	case u.URL != "" && len(u.Command) > 0:
		return errors.New("both url and command (set one)")
	case u.URL != "":
		p, err := url.Parse(u.URL)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return errors.New("url must be an absolute http or https URL")
		}
	case len(u.Command) > 0:
		if u.Command[0] == "" {
			return errors.New("empty command")
		}
		for _, kv := range u.Env {
			if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
				return errors.New("env entries must be KEY=value")
			}
		}
	default:
		return errors.New("neither url nor command")
	}
	if _, err := tools.New(u.Tools); err != nil {
		return err
	}
	switch u.Injection {
	case "", InjectionBlock, InjectionFlag:
	default:
		return fmt.Errorf("injection %q is not block or flag", u.Injection)
	}
	for _, v := range []int64{u.RateLimit.RPM, u.RateLimit.KeyRPM} {
		if v < 0 || v > limits.MaxLimit {
			return fmt.Errorf("rate limit %d out of range", v)
		}
	}
	if u.CallTimeout < 0 {
		return errors.New("negative call_timeout")
	}
	for k := range u.Headers {
		if k == "" || strings.ContainsAny(k, " :\r\n") {
			return fmt.Errorf("header name %q is invalid", k)
		}
	}
	return nil
}

// validServerName: [a-z0-9][a-z0-9_-]{0,31} without "__".
func validServerName(s string) bool {
	if len(s) == 0 || len(s) > 32 || strings.Contains(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func (c *Config) setDefaults() {
	if c.LedgerTimeout == 0 {
		c.LedgerTimeout = DefaultLedgerTimeout
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.TenantIdleTimeout == 0 {
		c.TenantIdleTimeout = DefaultTenantIdleTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.CallTimeout == 0 {
		c.CallTimeout = DefaultCallTimeout
	}
	if c.ReconnectMin == 0 {
		c.ReconnectMin = DefaultReconnectMin
	}
	if c.ReconnectMax == 0 {
		c.ReconnectMax = max(DefaultReconnectMax, c.ReconnectMin)
	}
	if c.MaxTools == 0 {
		c.MaxTools = DefaultMaxTools
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Detector == nil {
		c.Detector = injection.New(injection.Config{})
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Transport: gateway.NewUpstreamTransport(), CheckRedirect: noRedirects}
	}
}

// noRedirects makes a client answer a redirect as it is (an error status
// for the gateway).
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
