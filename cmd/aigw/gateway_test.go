package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway/providertest"
	"aigw/ledger"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

const testAdminKey = "aigw_admin_test_0123456789abcdef"

// gwProc is `aigw serve` with a gateway config and fake providers.
type gwProc struct {
	*serveProc
	vkey string
	// traces records, per tenant, the trace id of every call made and the
	// events it must have produced.
	mu     sync.Mutex
	traces map[string][]traceWant
}

type traceWant struct {
	id       string
	attempts int    // attempt events
	terminal string // response or error
	routed   bool
}

// startGW runs serve with config (YAML; %s-free) in a fresh data dir.
func startGW(t *testing.T, config string) *gwProc {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "aigw.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, "-config", path, "-data-dir", filepath.Join(dir, "data"))
	var h struct {
		VKey string `json:"vkey"`
	}
	if err := json.Unmarshal(getOK(t, s.url()+"/healthz"), &h); err != nil {
		t.Fatal(err)
	}
	return &gwProc{serveProc: s, vkey: h.VKey, traces: map[string][]traceWant{}}
}

func (g *gwProc) admin(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	code, _, b := send(t, method, g.url()+path, "Bearer "+testAdminKey, ct, body)
	return code, b
}

// newKey creates a tenant (if needed) and an API key of it.
func (g *gwProc) newKey(t *testing.T, tenantID string, models ...string) string {
	t.Helper()
	if code, b := g.admin(t, "POST", "/admin/tenants", fmt.Sprintf(`{"id":%q,"name":"Tenant %s"}`, tenantID, tenantID)); code != 201 && code != 409 {
		t.Fatalf("create tenant: %d %s", code, b)
	}
	m, _ := json.Marshal(models)
	if models == nil {
		m = []byte("[]")
	}
	code, b := g.admin(t, "POST", "/admin/tenants/"+tenantID+"/keys", fmt.Sprintf(`{"name":"test","models":%s}`, m))
	if code != 201 {
		t.Fatalf("create key: %d %s", code, b)
	}
	var k struct{ Key string }
	json.Unmarshal(b, &k)
	return k.Key
}

func (g *gwProc) client(key string, opts ...option.RequestOption) openai.Client {
	return openai.NewClient(append([]option.RequestOption{option.WithBaseURL(g.url() + "/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0)}, opts...)...)
}

// expect notes a call's trace (from the response header) and the events it
// must have left in the tenant's log.
func (g *gwProc) expect(t *testing.T, tenantID string, resp *http.Response, w traceWant) {
	t.Helper()
	if resp == nil {
		t.Fatal("no HTTP response captured")
	}
	w.id = resp.Header.Get("X-Aigw-Trace-Id")
	if len(w.id) != 32 {
		t.Fatalf("response has no trace id header: %v", resp.Header)
	}
	g.mu.Lock()
	g.traces[tenantID] = append(g.traces[tenantID], w)
	g.mu.Unlock()
}

// entries reads every entry of a log through the read API.
func (g *gwProc) entries(t *testing.T, log string, size uint64) []ledger.Event {
	t.Helper()
	var out []ledger.Event
	for n := uint64(0); n*256 < size; n++ {
		w := int(min(256, size-n*256))
		b := getOK(t, g.url()+"/ledger/"+log+"/"+ledger.Tile{N: n, W: w, Entries: true}.Path())
		es, err := ledger.ParseEntryBundle(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			ev, err := ledger.ParseEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, *ev)
		}
	}
	return out
}

// checkLedger waits for the tenant's log to hold exactly the events of the
// calls made, checks each call's events (no missing, no duplicate, one
// trace each) and verifies the log with `aigw verify`.
func (g *gwProc) checkLedger(t *testing.T, tenantID string) []ledger.Event {
	t.Helper()
	g.mu.Lock()
	wants := append([]traceWant(nil), g.traces[tenantID]...)
	g.mu.Unlock()
	total := 0
	for _, w := range wants {
		total += 2 + w.attempts // request + terminal
		if w.routed {
			total++
		}
	}
	waitSize(t, g.serveProc, tenantID, uint64(total))
	time.Sleep(100 * time.Millisecond) // anything extra would show now
	cp := waitSize(t, g.serveProc, tenantID, uint64(total))
	body, _ := ledger.SplitNote(cp)
	c, _ := ledger.ParseCheckpointBody(body)
	evs := g.entries(t, tenantID, c.Size)
	byTrace := map[string]map[string]int{}
	ids := map[string]bool{}
	for _, ev := range evs {
		if ids[ev.ID] {
			t.Fatalf("event %s appears twice", ev.ID)
		}
		ids[ev.ID] = true
		if byTrace[ev.TraceID] == nil {
			byTrace[ev.TraceID] = map[string]int{}
		}
		byTrace[ev.TraceID][ev.Kind]++
	}
	for _, w := range wants {
		k := byTrace[w.id]
		routes := 0
		if w.routed {
			routes = 1
		}
		if k[ledger.KindRequest] != 1 || k[w.terminal] != 1 || k[ledger.KindAttempt] != w.attempts || k[ledger.KindRoute] != routes || len(k) != 2+min(1, w.attempts)+routes {
			t.Errorf("trace %s: events %v; want 1 request, %d route, %d attempts, 1 %s", w.id, k, routes, w.attempts, w.terminal)
		}
	}
	if len(evs) != total {
		t.Fatalf("log %s holds %d events; the calls made account for %d", tenantID, len(evs), total)
	}
	if code, out, errs := run(t, "", "verify", "-server", g.url(), "-log", tenantID, "-vkey", g.vkey); code != 0 {
		t.Fatalf("verify %s: exit %d %s %s", tenantID, code, out, errs)
	}
	return evs
}

func openAIConfig(a, b *providertest.Server) string {
	return fmt.Sprintf(`
gateway:
  admin_key: %s
providers:
  - {name: oai-a, type: openai, base_url: %s/v1, api_key: %s}
  - {name: oai-b, type: openai-compatible, base_url: %s/v1, api_key: %s}
routes:
  - name: gpt-4o-mini
    retries: 1
    backoff: 1ms
    attempt_timeout: 2s
    targets:
      - {provider: oai-a, model: gpt-4o-mini-a, price: {input: 0.15, output: 0.6}}
      - {provider: oai-b, model: gpt-4o-mini-b}
  - name: text-embedding-3-small
    targets: [{provider: oai-a}]
breaker: {min_requests: 1000}
`, testAdminKey, a.URL, providertest.OpenAIKey, b.URL, providertest.OpenAIKey)
}

func TestGatewayOpenAISDK(t *testing.T) {
	a, b := providertest.NewOpenAI(t), providertest.NewOpenAI(t)
	g := startGW(t, openAIConfig(a, b))
	key := g.newKey(t, "acme")
	cl := g.client(key)
	ctx := context.Background()
	var hr *http.Response

	t.Run("Chat", func(t *testing.T) {
		resp, err := cl.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("Hello!")},
		}, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Choices[0].Message.Content != "Hello! How can I assist you today?" || resp.Model != "gpt-4o-mini-a" || resp.Usage.TotalTokens != 29 {
			t.Fatalf("response = %+v", resp)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("Stream", func(t *testing.T) {
		s := cl.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
			StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
		}, option.WithResponseInto(&hr))
		acc := openai.ChatCompletionAccumulator{}
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if acc.Choices[0].Message.Content != "Hello! How can I help you today?" || acc.Usage.TotalTokens != 18 || acc.Choices[0].FinishReason != "stop" {
			t.Fatalf("accumulated = %+v", acc.ChatCompletion)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("StreamWithoutUsage", func(t *testing.T) {
		s := cl.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
			Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello!")},
		}, option.WithResponseInto(&hr))
		n := 0
		for s.Next() {
			if c := s.Current(); len(c.Choices) == 0 || c.Usage.TotalTokens != 0 {
				t.Fatalf("usage chunk sent to a client that did not ask: %+v", c)
			}
			n++
		}
		if err := s.Err(); err != nil || n == 0 {
			t.Fatal(n, err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("Tools", func(t *testing.T) {
		params := openai.ChatCompletionNewParams{
			Model:    "gpt-4o-mini",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("What's the weather in Boston?")},
			Tools: []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
				Name: "get_current_weather", Description: openai.String("Get the weather"),
				Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}, "required": []string{"location"}},
			})},
			ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &openai.ResponseFormatJSONSchemaParam{
				JSONSchema: openai.ResponseFormatJSONSchemaJSONSchemaParam{Name: "answer", Schema: map[string]any{"type": "object"}, Strict: openai.Bool(true)},
			}},
		}
		resp, err := cl.Chat.Completions.New(ctx, params, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		if tc := resp.Choices[0].Message.ToolCalls; len(tc) != 1 || tc[0].Function.Name != "get_current_weather" {
			t.Fatalf("tool calls = %+v", resp.Choices[0].Message)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
		// The upstream received the tools and the response format as sent.
		got := string(a.Requests()[len(a.Requests())-1].Body)
		if !strings.Contains(got, `"get_current_weather"`) || !strings.Contains(got, `"json_schema"`) || !strings.Contains(got, `"strict":true`) {
			t.Fatalf("upstream request = %s", got)
		}

		s := cl.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(&hr))
		acc := openai.ChatCompletionAccumulator{}
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil {
			t.Fatal(err)
		}
		if tc := acc.Choices[0].Message.ToolCalls; len(tc) != 1 || tc[0].Function.Arguments != `{"location":"Boston, MA"}` {
			t.Fatalf("streamed tool calls = %+v", acc.Choices[0].Message)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("Embeddings", func(t *testing.T) {
		resp, err := cl.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "text-embedding-3-small", Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a", "bb"}}}, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 2 || len(resp.Data[1].Embedding) != 3 {
			t.Fatalf("embeddings = %+v", resp)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("Models", func(t *testing.T) {
		page, err := cl.Models.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Data) != 2 {
			t.Fatalf("models = %+v", page.Data)
		}
	})

	t.Run("Fallback", func(t *testing.T) {
		a.Push(providertest.Fault{Status: 500}, providertest.Fault{Status: 500})
		resp, err := cl.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}}, option.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Model != "gpt-4o-mini-b" {
			t.Fatalf("answered by %s; want the fallback", resp.Model)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 3, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("StreamFallbackBeforeFirstByte", func(t *testing.T) {
		a.Push(providertest.Fault{Status: 503}, providertest.Fault{MalformedAt: 1})
		s := cl.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}}, option.WithResponseInto(&hr))
		acc := openai.ChatCompletionAccumulator{}
		for s.Next() {
			acc.AddChunk(s.Current())
		}
		if err := s.Err(); err != nil || acc.Model != "gpt-4o-mini-b" || acc.Choices[0].Message.Content == "" {
			t.Fatalf("stream = %+v, %v", acc.ChatCompletion, err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 3, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("StreamCutMidAnswer", func(t *testing.T) {
		a.Push(providertest.Fault{CutAfter: 3})
		s := cl.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}}, option.WithResponseInto(&hr))
		n := 0
		for s.Next() {
			n++
		}
		err := s.Err()
		if n == 0 || err == nil || !strings.Contains(err.Error(), "upstream_stream_error") {
			t.Fatalf("after %d chunks: err = %v; want an explicit error event", n, err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindError, routed: true})
	})

	t.Run("Errors", func(t *testing.T) {
		_, err := cl.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "no-such-model", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}}, option.WithResponseInto(&hr))
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
			t.Fatalf("unknown model: %v", err)
		}
		g.expect(t, "acme", hr, traceWant{terminal: ledger.KindError})

		a.Push(providertest.Fault{Status: 400, Message: "Invalid 'messages[0].content': string too long."})
		_, err = cl.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}}, option.WithResponseInto(&hr))
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.Message, "string too long") {
			t.Fatalf("upstream 400: %v", err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindError, routed: true})

		bad := g.client("aigw_" + strings.Repeat("A", 43))
		_, err = bad.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")}})
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
			t.Fatalf("bad key: %v", err)
		}
	})

	g.checkLedger(t, "acme")
}
