package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"aigw/gateway"
)

// Defaults of a Config.
const (
	DefaultName             = "anthropic"
	DefaultBaseURL          = "https://api.anthropic.com"
	DefaultVersion          = "2023-06-01"
	DefaultMaxTokens        = 4096
	messagesPath            = "/v1/messages"
	maxErrorBody            = 1 << 20
	maxResponseBody         = 64 << 20
	headerAPIKey            = "x-api-key"
	headerVersion           = "anthropic-version"
	headerBeta              = "anthropic-beta"
	nativeAnthropicMessages = "anthropic.messages"
)

// Config configures a Provider. Only APIKey has no working default.
type Config struct {
	// Name is the provider's name in the gateway config, used in errors
	// and ledger events (default "anthropic").
	Name string
	// BaseURL is the API root, without /v1 (default
	// https://api.anthropic.com).
	BaseURL string
	// APIKey is sent as x-api-key. It is never logged.
	APIKey string
	// Version is the anthropic-version header (default 2023-06-01).
	Version string
	// DefaultMaxTokens is max_tokens when a request sets no output limit
	// (default 4096); the Messages API requires one.
	DefaultMaxTokens int
	// HTTPClient sends the requests (default DefaultClient).
	HTTPClient *http.Client
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.APIKey == "" {
		return errors.New("anthropic: config: APIKey is required")
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("anthropic: config: BaseURL %q is not an http(s) URL", c.BaseURL)
		}
	}
	if c.DefaultMaxTokens < 0 {
		return fmt.Errorf("anthropic: config: DefaultMaxTokens %d is negative", c.DefaultMaxTokens)
	}
	return nil
}

// LogValue logs the config without its API key.
func (c Config) LogValue() slog.Value {
	key := ""
	if c.APIKey != "" {
		key = "REDACTED"
	}
	return slog.GroupValue(
		slog.String("name", c.Name),
		slog.String("base_url", c.BaseURL),
		slog.String("api_key", key),
		slog.String("version", c.Version),
		slog.Int("default_max_tokens", c.DefaultMaxTokens),
	)
}

// DefaultClient is the client of providers configured without one.
var DefaultClient = gateway.DefaultClient

// Provider talks to the Messages API. It is safe for concurrent use.
type Provider struct {
	name      string
	url       string
	key       string
	version   string
	maxTokens int
	client    *http.Client
	now       func() time.Time
}

var (
	_ gateway.Provider    = (*Provider)(nil)
	_ gateway.RawProvider = (*Provider)(nil)
)

// New returns a provider for cfg, with defaults filled in.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Provider{
		name:      cmpOr(cfg.Name, DefaultName),
		url:       strings.TrimRight(cmpOr(cfg.BaseURL, DefaultBaseURL), "/") + messagesPath,
		key:       cfg.APIKey,
		version:   cmpOr(cfg.Version, DefaultVersion),
		maxTokens: cfg.DefaultMaxTokens,
		client:    cfg.HTTPClient,
		now:       time.Now,
	}
	if p.maxTokens == 0 {
		p.maxTokens = DefaultMaxTokens
	}
	if p.client == nil {
		p.client = DefaultClient
	}
	return p, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Chat makes a non-streamed completion.
func (p *Provider) Chat(ctx context.Context, req *gateway.ChatRequest) (*gateway.ChatResponse, error) {
	areq, pl, err := fromChat(req, p.maxTokens, false)
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, areq)
	if err != nil {
		return nil, err
	}
	defer gateway.DrainBody(resp.Body)
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return nil, fmt.Errorf("%s: read response: %w", p.name, err)
	}
	var r Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("%s: response does not parse: %w", p.name, err)
	}
	if r.Type != "message" {
		return nil, fmt.Errorf("%s: response is a %q, not a message", p.name, r.Type)
	}
	return toChatResponse(&r, pl, p.now()), nil
}

// ChatStream starts a streamed completion; it returns once Anthropic has
// answered with a success status.
func (p *Provider) ChatStream(ctx context.Context, req *gateway.ChatRequest) (gateway.Stream, error) {
	areq, pl, err := fromChat(req, p.maxTokens, true)
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, areq)
	if err != nil {
		return nil, err
	}
	return newStream(p.name, resp.Body, pl, p.now().Unix()), nil
}

// post sends a Messages request; an error status is returned as a
// *gateway.ProviderError.
func (p *Provider) post(ctx context.Context, areq *Request) (*http.Response, error) {
	body, err := json.Marshal(areq)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", p.name, err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	h := hreq.Header
	h.Set("content-type", "application/json")
	h.Set(headerAPIKey, p.key)
	h.Set(headerVersion, p.version)
	if areq.Stream {
		h.Set("accept", "text/event-stream")
	} else {
		h.Set("accept", "application/json")
	}
	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	if resp.StatusCode/100 != 2 {
		defer gateway.DrainBody(resp.Body)
		return nil, p.statusError(resp)
	}
	return resp, nil
}

// statusError reads an error response into a *gateway.ProviderError.
func (p *Provider) statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	pe := &gateway.ProviderError{
		Provider:   p.name,
		Status:     resp.StatusCode,
		RetryAfter: gateway.ParseRetryAfter(resp.Header, p.now()),
	}
	var eb ErrorBody
	if json.Unmarshal(body, &eb) == nil && eb.Error.Type != "" {
		pe.Type, pe.Message = eb.Error.Type, eb.Error.Message
	} else {
		pe.Type = TypeForStatus(resp.StatusCode)
		pe.Message = http.StatusText(resp.StatusCode)
	}
	return pe
}

// Native names the API Forward speaks.
func (p *Provider) Native() string { return nativeAnthropicMessages }

// Forward posts a native Messages request body unchanged to /v1/messages
// with the provider's API key, the client's anthropic-version (the
// configured Version when it sent none) and anthropic-beta headers. The
// response is returned as Anthropic sent it, error statuses included; only
// a transport failure is an error.
func (p *Provider) Forward(ctx context.Context, req *gateway.RawRequest) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(req.Body))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.name, err)
	}
	h := hreq.Header
	h.Set("content-type", "application/json")
	h.Set(headerAPIKey, p.key)
	h.Set(headerVersion, p.version)
	if v := req.Header.Get(headerVersion); v != "" {
		h.Set(headerVersion, v)
	}
	for _, v := range req.Header.Values(headerBeta) {
		h.Add(headerBeta, v)
	}
	if req.Stream {
		h.Set("accept", "text/event-stream")
	}
	resp, err := p.client.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("%s: forward: %w", p.name, err)
	}
	return resp, nil
}
