// Package openai is the provider for OpenAI's API and for every host that
// speaks it (Vercel AI Gateway, vLLM, Ollama, llama.cpp, Together, Groq, ...):
// chat completions, streamed or not, and embeddings.
//
// SPEC: https://platform.openai.com/docs/api-reference/chat
package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"aigw/gateway"
)

// maxResponse bounds a non-streamed answer.
const maxResponse = 64 << 20

// DefaultBaseURL is OpenAI's API.
const DefaultBaseURL = "https://api.openai.com/v1"

// Config configures a Provider.
type Config struct {
	// Name is the provider's name in the gateway config (errors and
	// ledger events use it).
	Name string
	// BaseURL is the API root, up to and including /v1 (default OpenAI).
	BaseURL string
	// APIKey is sent as a bearer token; empty sends no Authorization
	// (local vLLM or Ollama).
	APIKey string
	// Organization and Project set OpenAI-Organization and OpenAI-Project.
	Organization, Project string
	// Header holds extra headers sent with every request.
	Header map[string]string
	// NoStreamUsage: the host rejects stream_options, so usage is not
	// requested on streams (the gateway then counts tokens itself).
	NoStreamUsage bool
	// HTTPClient is the client used (default: a shared pooled client).
	HTTPClient *http.Client
}

// Provider talks to an OpenAI-shaped API.
type Provider struct {
	cfg    Config
	chat   string
	embed  string
	header http.Header
}

var (
	_ gateway.Provider = (*Provider)(nil)
	_ gateway.Embedder = (*Provider)(nil)
)

// DefaultClient is the client of providers configured without one.
var DefaultClient = gateway.DefaultClient

// New returns a provider.
func New(cfg Config) (*Provider, error) {
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, fmt.Errorf("openai provider %q: base URL %q is not http(s)", cfg.Name, cfg.BaseURL)
	}
	if cfg.Name == "" {
		cfg.Name = "openai"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = DefaultClient
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	h := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
	if cfg.APIKey != "" {
		h.Set("Authorization", "Bearer "+cfg.APIKey)
	}
	if cfg.Organization != "" {
		h.Set("OpenAI-Organization", cfg.Organization)
	}
	if cfg.Project != "" {
		h.Set("OpenAI-Project", cfg.Project)
	}
	for k, v := range cfg.Header {
		h.Set(k, v)
	}
	return &Provider{cfg: cfg, chat: base + "/chat/completions", embed: base + "/embeddings", header: h}, nil
}

// Name returns the provider's name.
func (p *Provider) Name() string { return p.cfg.Name }

func (p *Provider) post(ctx context.Context, url string, body []byte, stream bool) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header = p.header.Clone()
	if stream {
		req.Header.Set("Accept", "text/event-stream")
	}
	resp, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p.cfg.Name, err)
	}
	if resp.StatusCode >= 300 {
		defer gateway.DrainBody(resp.Body)
		return nil, p.statusError(resp)
	}
	return resp, nil
}

// statusError reads an error response into a *gateway.ProviderError.
func (p *Provider) statusError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	pe := &gateway.ProviderError{Provider: p.cfg.Name, Status: resp.StatusCode, RetryAfter: gateway.ParseRetryAfter(resp.Header, time.Now())}
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && len(body.Error) > 0 {
		fillError(pe, body.Error)
	}
	if pe.Message == "" {
		pe.Message = http.StatusText(resp.StatusCode)
	}
	return pe
}

// fillError reads OpenAI's error object ({"message","type","code"}); some
// compatible hosts send a plain string.
func fillError(pe *gateway.ProviderError, raw json.RawMessage) {
	var e struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Code    json.RawMessage `json:"code"`
	}
	if json.Unmarshal(raw, &e) == nil {
		pe.Message, pe.Type = e.Message, e.Type
		var code string
		if json.Unmarshal(e.Code, &code) == nil {
			pe.Code = code
		} else if len(e.Code) > 0 && string(e.Code) != "null" {
			pe.Code = string(e.Code)
		}
		return
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		pe.Message = s
	}
}

// Chat makes a completion.
func (p *Provider) Chat(ctx context.Context, req *gateway.ChatRequest) (*gateway.ChatResponse, error) {
	r := *req
	r.Stream, r.StreamOptions = false, nil
	body, err := json.Marshal(&r)
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, p.chat, body, false)
	if err != nil {
		return nil, err
	}
	defer gateway.DrainBody(resp.Body)
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return nil, fmt.Errorf("%s: read response: %w", p.cfg.Name, err)
	}
	var out gateway.ChatResponse
	if err := gateway.DecodeChatResponse(raw, &out); err != nil {
		return nil, fmt.Errorf("%s: decode response: %w: %w", p.cfg.Name, gateway.ErrStreamMalformed, err)
	}
	if out.Usage == nil {
		out.Usage = estimateUsage(req, &out)
	} else {
		out.Raw = raw
	}
	return &out, nil
}

func estimateUsage(req *gateway.ChatRequest, out *gateway.ChatResponse) *gateway.Usage {
	u := &gateway.Usage{PromptTokens: gateway.EstimatePromptTokens(req), Estimated: true}
	for _, c := range out.Choices {
		u.CompletionTokens += gateway.EstimateTokens(c.Message.Content.String())
		for _, tc := range c.Message.ToolCalls {
			u.CompletionTokens += gateway.EstimateTokens(tc.Function.Name) + gateway.EstimateTokens(tc.Function.Arguments)
		}
	}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

// ChatStream starts a streamed completion, asking for usage.
func (p *Provider) ChatStream(ctx context.Context, req *gateway.ChatRequest) (gateway.Stream, error) {
	r := *req
	r.Stream = true
	if !p.cfg.NoStreamUsage {
		so := gateway.StreamOptions{}
		if req.StreamOptions != nil {
			so = *req.StreamOptions
		}
		so.IncludeUsage = true
		r.StreamOptions = &so
	} else {
		r.StreamOptions = nil
	}
	body, err := json.Marshal(&r)
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, p.chat, body, true)
	if err != nil {
		return nil, err
	}
	return &stream{p: p, req: req, resp: resp, sse: gateway.NewSSEReader(resp.Body, 0)}, nil
}

type stream struct {
	p      *Provider
	req    *gateway.ChatRequest
	resp   *http.Response
	sse    *gateway.SSEReader
	usage  *gateway.Usage
	done   bool
	closed bool
	// counted output, for hosts that report no usage
	chars int
}

func (s *stream) Next() (*gateway.ChatChunk, error) {
	if s.done {
		return nil, io.EOF
	}
	for {
		ev, err := s.sse.Next()
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("%s: %w", s.p.cfg.Name, gateway.ErrStreamCut)
			}
			return nil, fmt.Errorf("%s: read stream: %w", s.p.cfg.Name, err)
		}
		if ev.Event == "error" || bytes.HasPrefix(ev.Data, []byte(`{"error"`)) {
			return nil, s.streamError(ev.Data)
		}
		if bytes.Equal(ev.Data, []byte("[DONE]")) {
			s.done = true
			if s.usage == nil {
				s.usage = s.estimate()
			}
			return nil, io.EOF
		}
		c := new(gateway.ChatChunk)
		if err := gateway.DecodeChatChunk(ev.Data, c); err != nil {
			return nil, fmt.Errorf("%s: %w: %v", s.p.cfg.Name, gateway.ErrStreamMalformed, err)
		}
		c.Raw = append([]byte(nil), ev.Data...)
		if c.Usage != nil {
			u := *c.Usage
			s.usage = &u
		}
		for i := range c.Choices {
			d := &c.Choices[i].Delta
			if d.Content != nil {
				s.chars += len(*d.Content)
			}
			for _, tc := range d.ToolCalls {
				s.chars += len(tc.Function.Arguments) + len(tc.Function.Name)
			}
		}
		return c, nil
	}
}

func (s *stream) streamError(data []byte) error {
	pe := &gateway.ProviderError{Provider: s.p.cfg.Name, Status: http.StatusBadGateway, Type: "stream_error"}
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(data, &body) == nil && len(body.Error) > 0 {
		fillError(pe, body.Error)
	}
	if pe.Type == "" {
		pe.Type = "stream_error"
	}
	if pe.Message == "" {
		pe.Message = "the upstream sent an error event mid-stream"
	}
	return pe
}

func (s *stream) estimate() *gateway.Usage {
	u := &gateway.Usage{PromptTokens: gateway.EstimatePromptTokens(s.req), CompletionTokens: (s.chars + 3) / 4, Estimated: true}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	return u
}

func (s *stream) Usage() *gateway.Usage { return s.usage }

// Buffered reports whether the next event has already arrived.
func (s *stream) Buffered() bool { return s.sse.Buffered() }

func (s *stream) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	if !s.done {
		// Closing without draining drops the connection, which also tells
		// the upstream to stop generating.
		return s.resp.Body.Close()
	}
	gateway.DrainBody(s.resp.Body)
	return nil
}

// Embed makes embeddings.
func (p *Provider) Embed(ctx context.Context, req *gateway.EmbeddingRequest) (*gateway.EmbeddingResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	resp, err := p.post(ctx, p.embed, body, false)
	if err != nil {
		return nil, err
	}
	defer gateway.DrainBody(resp.Body)
	var out gateway.EmbeddingResponse
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("%s: decode embeddings: %w", p.cfg.Name, err)
	}
	if out.Usage.PromptTokens == 0 {
		for _, t := range req.Input.Texts {
			out.Usage.PromptTokens += gateway.EstimateTokens(t)
		}
		out.Usage.TotalTokens, out.Usage.Estimated = out.Usage.PromptTokens, true
	}
	return &out, nil
}
