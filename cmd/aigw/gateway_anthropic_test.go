package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"aigw/gateway/providertest"
	"aigw/ledger"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
)

// TestGatewayAnthropicSDK drives /v1/messages with the Anthropic Go SDK:
// passed through byte for byte to an Anthropic target, translated for an
// OpenAI one, streamed and not, with fallback and errors in Anthropic's shape.
func TestGatewayAnthropicSDK(t *testing.T) {
	ant, oai := providertest.NewAnthropic(t), providertest.NewOpenAI(t)
	g := startGW(t, fmt.Sprintf(`
gateway: {admin_key: %s}
providers:
  - {name: ant, type: anthropic, base_url: %s, api_key: %s}
  - {name: oai, type: openai, base_url: %s/v1, api_key: %s}
routes:
  - {name: claude-sonnet-4-5, retries: -1, targets: [{provider: ant}, {provider: oai, model: gpt-4o-mini}]}
  - {name: claude-renamed, retries: -1, targets: [{provider: ant, model: claude-opus-4-1}]}
  - {name: gpt-as-claude, targets: [{provider: oai, model: gpt-4o-mini}]}
breaker: {min_requests: 1000}
`, testAdminKey, ant.URL, providertest.AnthropicKey, oai.URL, providertest.OpenAIKey))
	key := g.newKey(t, "acme")
	cl := anthropic.NewClient(aoption.WithBaseURL(g.url()), aoption.WithAPIKey(key), aoption.WithMaxRetries(0))
	ctx := context.Background()
	var hr *http.Response
	params := func(model string) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: model, MaxTokens: 1024, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hello, Claude"))}}
	}
	streamed := func(p anthropic.MessageNewParams) (anthropic.Message, error) {
		s := cl.Messages.NewStreaming(ctx, p, aoption.WithResponseInto(&hr))
		var msg anthropic.Message
		for s.Next() {
			if err := msg.Accumulate(s.Current()); err != nil {
				return msg, err
			}
		}
		return msg, s.Err()
	}

	t.Run("Passthrough", func(t *testing.T) {
		msg, err := cl.Messages.New(ctx, params("claude-sonnet-4-5"), aoption.WithResponseInto(&hr))
		if err != nil {
			t.Fatal(err)
		}
		if len(msg.Content) == 0 || msg.Usage.InputTokens == 0 {
			t.Fatalf("message = %+v", msg)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
		// Byte for byte: the fake got the client's exact body, and the
		// client got the fake's exact answer.
		sent := ant.Requests()[len(ant.Requests())-1]
		body := []byte(`{"model":"claude-sonnet-4-5","max_tokens":2048,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"thinking":{"type":"enabled","budget_tokens":1024}}`)
		direct := rawAnthropic(t, ant.URL+"/v1/messages", providertest.AnthropicKey, body)
		through := rawAnthropic(t, g.url()+"/v1/messages", key, body)
		if !bytes.Equal(direct, through) {
			t.Fatalf("through the gateway:\n%s\ndirect:\n%s", through, direct)
		}
		if got := ant.Requests()[len(ant.Requests())-1].Body; !bytes.Equal(got, body) {
			t.Fatalf("upstream got %s; sent %s", got, body)
		}
		if sent.Header.Get("x-api-key") != providertest.AnthropicKey || sent.Header.Get("anthropic-version") == "" {
			t.Fatalf("upstream headers %v", sent.Header)
		}
		g.mu.Lock()
		g.traces["acme"] = append(g.traces["acme"], traceWant{id: lastTrace, attempts: 1, terminal: ledger.KindResponse, routed: true})
		g.mu.Unlock()
	})

	t.Run("PassthroughStream", func(t *testing.T) {
		msg, err := streamed(params("claude-sonnet-4-5"))
		if err != nil || len(msg.Content) == 0 || msg.StopReason == "" {
			t.Fatalf("stream = %+v, %v", msg, err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("ModelRewritten", func(t *testing.T) {
		if _, err := cl.Messages.New(ctx, params("claude-renamed"), aoption.WithResponseInto(&hr)); err != nil {
			t.Fatal(err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
		if got := string(ant.Requests()[len(ant.Requests())-1].Body); !strings.HasPrefix(got, `{"max_tokens":1024,"messages":`) && !strings.Contains(got, `"model":"claude-opus-4-1"`) {
			t.Fatalf("upstream body %s", got)
		}
	})

	t.Run("Translated", func(t *testing.T) {
		msg, err := cl.Messages.New(ctx, params("gpt-as-claude"), aoption.WithResponseInto(&hr))
		if err != nil || len(msg.Content) == 0 || msg.Content[0].Text == "" || msg.Model != "gpt-as-claude" {
			t.Fatalf("translated = %+v, %v", msg, err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
		smsg, err := streamed(params("gpt-as-claude"))
		if err != nil || len(smsg.Content) == 0 || smsg.Content[0].Text == "" || smsg.Usage.OutputTokens == 0 {
			t.Fatalf("translated stream = %+v, %v", smsg, err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("OverloadedFallsBack", func(t *testing.T) {
		ant.Push(providertest.Fault{Status: 529})
		msg, err := streamed(params("claude-sonnet-4-5"))
		if err != nil || len(msg.Content) == 0 {
			t.Fatalf("after 529: %+v, %v", msg, err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 2, terminal: ledger.KindResponse, routed: true})
		ant.Push(providertest.Fault{ErrorEventAt: 1})
		if _, err := streamed(params("claude-sonnet-4-5")); err != nil {
			t.Fatalf("after an error as the first event: %v", err)
		}
		g.expect(t, "acme", hr, traceWant{attempts: 2, terminal: ledger.KindResponse, routed: true})
	})

	t.Run("CutMidStream", func(t *testing.T) {
		ant.Push(providertest.Fault{CutAfter: 4})
		_, err := streamed(params("claude-sonnet-4-5"))
		if err == nil {
			t.Fatal("a cut stream ended cleanly")
		}
		g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindError, routed: true})
	})

	t.Run("Errors", func(t *testing.T) {
		_, err := cl.Messages.New(ctx, params("no-such-model"), aoption.WithResponseInto(&hr))
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || !strings.Contains(apiErr.RawJSON(), `"type":"not_found_error"`) {
			t.Fatalf("unknown model: %v", err)
		}
		g.expect(t, "acme", hr, traceWant{terminal: ledger.KindError})
		p := params("claude-sonnet-4-5")
		p.MaxTokens = 0
		_, err = cl.Messages.New(ctx, p, aoption.WithResponseInto(&hr))
		if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.RawJSON(), `"invalid_request_error"`) {
			t.Fatalf("missing max_tokens: %v", err)
		}
		g.expect(t, "acme", hr, traceWant{terminal: ledger.KindError})
		bad := anthropic.NewClient(aoption.WithBaseURL(g.url()), aoption.WithAPIKey("sk-ant-nope"), aoption.WithMaxRetries(0))
		if _, err := bad.Messages.New(ctx, params("claude-sonnet-4-5")); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || !strings.Contains(apiErr.RawJSON(), "authentication_error") {
			t.Fatalf("bad key: %v", err)
		}
	})
	g.checkLedger(t, "acme")
}

var lastTrace string

// rawAnthropic posts a Messages body and returns the answer's bytes.
func rawAnthropic(t *testing.T, url, key string, body []byte) []byte {
	t.Helper()
	req, _ := http.NewRequest("POST", url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", url, resp.StatusCode, b)
	}
	if id := resp.Header.Get("X-Aigw-Trace-Id"); id != "" {
		lastTrace = id
	}
	return b
}
