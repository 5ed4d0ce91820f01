package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"aigw/gateway/internal/h1"
)

// Provider is an LLM upstream. Implementations translate the OpenAI-shaped
// request to their wire format (the request's Model is the upstream model
// name), and translate the answer back. They are safe for concurrent use.
//
// Errors from the upstream are *ProviderError (status, type, retry-after),
// so the router can tell a rate limit from a bad request; a transport
// failure (connection refused, reset, timeout) is returned wrapped as it
// came, and counts as retryable.
type Provider interface {
	// Chat makes a non-streaming completion.
	Chat(ctx context.Context, req *ChatRequest) (*ChatResponse, error)
	// ChatStream starts a streamed completion. It returns once the upstream
	// has answered with a success status (an error status is returned as an
	// error, before any chunk). The provider asks its upstream for usage
	// when it can, so the final Usage is known.
	ChatStream(ctx context.Context, req *ChatRequest) (Stream, error)
}

// Embedder is a Provider that also makes embeddings.
type Embedder interface {
	Embed(ctx context.Context, req *EmbeddingRequest) (*EmbeddingResponse, error)
}

// Stream is a streamed completion.
type Stream interface {
	// Next returns the next chunk. It returns io.EOF after the upstream
	// ended the stream cleanly (OpenAI's [DONE], Anthropic's message_stop,
	// ...), and any other error when the stream failed: a cut connection or
	// a malformed chunk is an error, never a clean end. A chunk carrying
	// only usage (no choices) may come last.
	Next() (*ChatChunk, error)
	// Usage returns the usage the upstream reported, once Next returned
	// io.EOF; nil if it reported none.
	Usage() *Usage
	// Close releases the stream; it may be called at any time, more than
	// once.
	Close() error
}

// Buffered is a Stream that can tell whether its next chunk has already
// arrived whole (it is in the stream's buffer, so Next will not wait for
// the network). A writer may then hold the flush of the current chunk
// until the next one is written: nothing waits longer, fewer writes reach
// the network.
type Buffered interface {
	Buffered() bool
}

// RawProvider is a Provider that can also forward a request of its native
// API unchanged (byte-faithful passthrough), e.g. Anthropic's /v1/messages
// to Anthropic. The response is returned as the upstream sent it; a status
// of 400 or more is returned as a response too (the caller maps it), and
// only transport failures are errors.
type RawProvider interface {
	// Native names the API the provider forwards, e.g. "anthropic.messages".
	Native() string
	Forward(ctx context.Context, req *RawRequest) (*http.Response, error)
}

// RawRequest is a native API request to forward.
type RawRequest struct {
	// Model is the upstream model; Body already names it.
	Model string
	// Stream: the request asks for a streamed answer.
	Stream bool
	// Body is the request body exactly as it is to be sent.
	Body []byte
	// Header holds the client's headers the native API defines (for
	// Anthropic: anthropic-version, anthropic-beta); the provider adds its
	// own credentials and drops the client's.
	Header http.Header
}

// Target is one upstream a route may send a request to.
type Target struct {
	// Name identifies the target in routes, health and ledger events:
	// "<provider>/<model>".
	Name string
	// Provider is the configured provider's name; Kind its type (openai,
	// anthropic, bedrock, gemini, openai-compatible, mock).
	Provider string
	Kind     string
	// Model is the upstream model name.
	Model string
	// Upstream is the provider implementation.
	Upstream Provider
	// Price is the target's price, nil if unknown.
	Price *Price
}

// Price is a model's price in US dollars per million tokens.
type Price struct {
	Input       float64 `json:"input" yaml:"input"`
	Output      float64 `json:"output" yaml:"output"`
	CachedInput float64 `json:"cached_input,omitempty" yaml:"cached_input"`
}

// Cost returns the price of a usage in US dollars (0 for a nil price or usage).
func (p *Price) Cost(u *Usage) float64 {
	if p == nil || u == nil {
		return 0
	}
	in := float64(u.PromptTokens)
	cached := 0.0
	if u.PromptTokensDetails != nil && p.CachedInput > 0 {
		cached = float64(u.PromptTokensDetails.CachedTokens)
		in -= cached
	}
	return (in*p.Input + cached*p.CachedInput + float64(u.CompletionTokens)*p.Output) / 1e6
}

// RouteDecision is how the router chose targets for a call.
type RouteDecision struct {
	// Route is the route (model alias) the client asked for.
	Route string
	// Strategy is the route's strategy: ordered, weighted or cost.
	Strategy string
	// Candidates are the route's targets in the order they will be tried.
	Candidates []string
	// Skipped names the targets left out and why (breaker open, bulkhead
	// full, no price), by target name.
	Skipped map[string]string
	// Reason says in words why the order is what it is.
	Reason string
}

// Attempt is one try of one target.
type Attempt struct {
	Target   string
	Provider string
	Model    string
	// N numbers the attempts of a call from 1.
	N        int
	Start    time.Time
	Duration time.Duration
	// Outcome is ok, error, rate_limited, timeout, overloaded, canceled or
	// rejected (a client error the router does not retry).
	Outcome string
	// Status is the upstream HTTP status, 0 when there was none.
	Status int
	// Err is the failure, nil on success.
	Err error
	// Retry says what the router does next: "retry", "fallback" or "".
	Next string
}

// Observer receives the router's decisions for a call; the pipeline turns
// them into ledger events. Its methods are called from the goroutine that
// runs the call, in order.
type Observer interface {
	Route(d RouteDecision)
	Attempt(a Attempt)
}

type observerKey struct{}

// WithObserver returns a context whose calls report to o.
func WithObserver(ctx context.Context, o Observer) context.Context {
	return context.WithValue(ctx, observerKey{}, o)
}

// ObserverFrom returns the context's observer, or one that discards.
func ObserverFrom(ctx context.Context) Observer {
	if o, ok := ctx.Value(observerKey{}).(Observer); ok {
		return o
	}
	return nopObserver{}
}

type nopObserver struct{}

func (nopObserver) Route(RouteDecision) {}
func (nopObserver) Attempt(Attempt)     {}

// NewTransport returns the HTTP transport providers use: many idle
// keep-alive connections per upstream host, HTTP/2 where the upstream
// offers it, no overall timeout (streams are long; contexts bound calls).
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// NewUpstreamTransport returns the RoundTripper of DefaultClient:
// plain-HTTP upstreams (a local vLLM or Ollama, a sidecar, the bench's
// fake) through [h1.Transport], which writes the request and reads the
// answer on the calling goroutine, and everything else (https with
// HTTP/2, proxies) through NewTransport's. On two busy cores h1 spends
// ~25% less CPU per call than net/http's three goroutines per call (go
// test -bench . ./gateway/internal/h1).
func NewUpstreamTransport() http.RoundTripper {
	std := NewTransport()
	return &h1.Transport{
		Fallback:            std,
		Proxy:               std.Proxy,
		DialContext:         std.DialContext,
		MaxIdleConnsPerHost: std.MaxIdleConnsPerHost,
		MaxIdleConns:        std.MaxIdleConns,
		IdleConnTimeout:     std.IdleConnTimeout,
	}
}

// DefaultClient is the HTTP client of providers configured without one:
// one connection pool shared by all of them.
var DefaultClient = &http.Client{Transport: NewUpstreamTransport()}

// RedactURL is s as it may be logged: without its user information and
// query, which may carry credentials (a NATS token, an upstream's key).
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// DrainBody reads and closes a response body so its connection is reused.
func DrainBody(b io.ReadCloser) {
	io.Copy(io.Discard, io.LimitReader(b, 64<<10))
	b.Close()
}
