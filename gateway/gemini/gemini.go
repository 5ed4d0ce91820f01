// Package gemini is the provider for Google's Gemini API
// (generativelanguage.googleapis.com): chat completions, streamed or not,
// translated from and to the OpenAI shape the gateway speaks, and
// embeddings.
//
// Requests go to POST /{version}/models/{model}:generateContent,
// :streamGenerateContent?alt=sse and :batchEmbedContents, authenticated by
// the x-goog-api-key header (the key never goes into a URL, so it cannot
// leak into logs or errors that quote one).
//
// # Translation
//
// System and developer messages, wherever they are, become the
// systemInstruction. User messages become "user" turns and assistant
// messages "model" turns; consecutive turns of the same role are merged,
// so the tool results answering one assistant turn form one user turn.
// Text parts stay text; data: image URLs (and input_audio, and file parts
// with file_data) become inlineData; http(s) and gs:// image URLs become
// fileData with a MIME type guessed from the URL's extension (omitted when
// unknown) — the gateway never fetches a URL, so Gemini must be able to
// read it (Files API URIs and, where Gemini supports them, public URLs).
// Assistant tool calls become functionCall parts; a tool message becomes a
// functionResponse named after the call it answers, whose response is the
// tool's result if that is a JSON object and {"content": result} otherwise.
//
// Gemini 3 requires the thought signature it attached to a function call
// back on that call when the conversation is replayed. The OpenAI shape
// has nowhere to carry it, so for models other than Gemini 1 and 2 the
// replayed calls carry Google's documented placeholder
// (skip_thought_signature_validator) on the first call of each model turn
// instead: the request is accepted, but the model does not get its earlier
// reasoning back.
//
// reasoning_effort becomes a thinkingConfig: a thinkingBudget for Gemini 1
// and 2 models (none 0, minimal 512, low 1024, medium 8192, high 24576, as
// Google's OpenAI compatibility layer does) and a thinkingLevel for later
// ones, with includeThoughts so thought summaries come back as
// reasoning_content. Fields Gemini has no equivalent for (logit_bias,
// logprobs, parallel_tool_calls, user, metadata, ...) are ignored; the
// deprecated functions and function_call fields are refused. Answers map
// back as the OpenAI shape expects: candidates become choices, thought
// parts reasoning_content, function calls tool_calls (with the call's id,
// or a generated call_ id), finish reasons stop, length, tool_calls or
// content_filter, and a blocked prompt an empty choice with content_filter.
//
// # Streams
//
// A Gemini stream is a sequence of SSE data events, each a whole
// GenerateContentResponse carrying the parts generated since the last one,
// with no end marker. A stream is complete when every candidate has had a
// finishReason (or the prompt was blocked) and the body then ends on an
// event boundary; a body that ends or breaks otherwise is an error
// wrapping gateway.ErrStreamCut. The last chunk carries the usage of the
// last usageMetadata.
//
// # Errors
//
// Google's error body {"error":{"code","message","status","details"}}
// becomes a *gateway.ProviderError whose Type is the status name
// (RESOURCE_EXHAUSTED, UNAVAILABLE, ...), Code the google.rpc.ErrorInfo
// reason (API_KEY_INVALID, ...), and RetryAfter the Retry-After header or
// else the google.rpc.RetryInfo retryDelay.
//
// SPEC: https://ai.google.dev/api/generate-content
// SPEC: https://ai.google.dev/api/embeddings
// SPEC: https://ai.google.dev/gemini-api/docs/thought-signatures
package gemini

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"aigw/gateway"
)

// Defaults of a Config.
const (
	DefaultBaseURL    = "https://generativelanguage.googleapis.com"
	DefaultAPIVersion = "v1beta"
	DefaultName       = "gemini"
)

// maxResponse bounds a non-streamed response body.
const maxResponse = 64 << 20

// Config configures a Provider. Its zero value, with an APIKey, talks to
// Google's public endpoint.
type Config struct {
	// Name is the provider's name in the gateway config (errors and ledger
	// events use it); default "gemini".
	Name string
	// BaseURL is the API root, without the version
	// (default https://generativelanguage.googleapis.com).
	BaseURL string
	// APIVersion is the path's version segment: v1beta (default), v1 or
	// v1alpha.
	APIVersion string
	// APIKey is the Gemini API key, sent as the x-goog-api-key header.
	APIKey string
	// HTTPClient is the client used (default: a pooled client with no
	// overall timeout, since streams are long; contexts bound calls).
	HTTPClient *http.Client
}

var versionRE = regexp.MustCompile(`^v[0-9]+((alpha|beta)[0-9]*)?$`)

// Validate reports a config New would refuse.
func (c Config) Validate() error {
	if c.APIKey == "" {
		return errors.New("gemini: an API key is required")
	}
	if c.BaseURL != "" {
		u, err := url.Parse(c.BaseURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("gemini: base URL %q is not an absolute http(s) URL", c.BaseURL)
		}
		if u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("gemini: base URL %q has a query or fragment", c.BaseURL)
		}
	}
	if c.APIVersion != "" && !versionRE.MatchString(c.APIVersion) {
		return fmt.Errorf("gemini: API version %q is not like v1beta", c.APIVersion)
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
		slog.String("api_version", c.APIVersion),
		slog.String("api_key", key),
	)
}

// Provider talks to the Gemini API. It is safe for concurrent use.
type Provider struct {
	name   string
	root   string // BaseURL + "/" + version
	key    string
	client *http.Client
}

var (
	_ gateway.Provider = (*Provider)(nil)
	_ gateway.Embedder = (*Provider)(nil)
)

// New returns a provider for cfg.
func New(cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Name == "" {
		cfg.Name = DefaultName
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = gateway.DefaultClient
	}
	return &Provider{
		name:   cfg.Name,
		root:   strings.TrimRight(cfg.BaseURL, "/") + "/" + cfg.APIVersion,
		key:    cfg.APIKey,
		client: cfg.HTTPClient,
	}, nil
}

// Name returns the provider's name.
func (p *Provider) Name() string { return p.name }

// modelRE matches the model ids the gateway puts into a path segment.
var modelRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// resource returns the model's resource name, models/<id> (or
// tunedModels/<id>), refusing ids that would change the URL's meaning.
func resource(model string) (string, error) {
	coll, id := "models", model
	if c, rest, ok := strings.Cut(model, "/"); ok && (c == "models" || c == "tunedModels") {
		coll, id = c, rest
	}
	if !modelRE.MatchString(id) {
		return "", gateway.Errorf("model", "model %q is not a Gemini model id", model)
	}
	return coll + "/" + id, nil
}

// Chat makes a non-streamed completion.
func (p *Provider) Chat(ctx context.Context, req *gateway.ChatRequest) (*gateway.ChatResponse, error) {
	res, err := resource(req.Model)
	if err != nil {
		return nil, err
	}
	gr, err := translateRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, res+":generateContent", gr)
	if err != nil {
		return nil, err
	}
	defer gateway.DrainBody(resp.Body)
	var out generateResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxResponse)).Decode(&out); err != nil {
		return nil, fmt.Errorf("gemini %s: decode generateContent response: %w", p.name, err)
	}
	if out.Error != nil {
		return nil, p.apiError(out.Error, resp.StatusCode, resp.Header)
	}
	return translateResponse(&out, req.Model)
}

// ChatStream starts a streamed completion.
func (p *Provider) ChatStream(ctx context.Context, req *gateway.ChatRequest) (gateway.Stream, error) {
	res, err := resource(req.Model)
	if err != nil {
		return nil, err
	}
	gr, err := translateRequest(req)
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, res+":streamGenerateContent?alt=sse", gr)
	if err != nil {
		return nil, err
	}
	return newStream(p, resp.Body, req.Model), nil
}

// post sends body as JSON to root/path and returns a 2xx response; an
// error status is returned as a *gateway.ProviderError.
func (p *Provider) post(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("gemini %s: encode request: %w", p.name, err)
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.root+"/"+path, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("gemini %s: %w", p.name, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("x-goog-api-key", p.key)
	resp, err := p.client.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("gemini %s: %w", p.name, err)
	}
	if resp.StatusCode/100 != 2 {
		defer gateway.DrainBody(resp.Body)
		return nil, p.statusError(resp)
	}
	return resp, nil
}

// newID returns a random id with the prefix, e.g. call_3Q7R....
func newID(prefix string) string { return prefix + rand.Text() }
