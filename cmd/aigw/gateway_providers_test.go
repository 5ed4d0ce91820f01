package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"aigw/gateway/providertest"
	"aigw/ledger"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// TestGatewayProviders drives every provider type through the gateway with
// the OpenAI SDK: plain, streamed and tool-calling answers, a rate limit
// that falls back to another provider before the first byte, and a stream
// cut mid-answer that reaches the agent as an explicit error. Then the
// tenant's log accounts for every call and verifies.
func TestGatewayProviders(t *testing.T) {
	oai := providertest.NewOpenAI(t)
	ant := providertest.NewAnthropic(t)
	gem := providertest.NewGemini(t)
	bed := providertest.NewBedrock(t)
	cfg := fmt.Sprintf(`
gateway: {admin_key: %s}
providers:
  - {name: oai, type: openai, base_url: %s/v1, api_key: %s}
  - {name: ant, type: anthropic, base_url: %s, api_key: %s}
  - {name: gem, type: gemini, base_url: %s, api_key: %s}
  - {name: bed, type: bedrock, base_url: %s, region: %s, access_key_id: %s, secret_access_key: %s}
routes:
  - {name: claude, retries: -1, attempt_timeout: 1s, targets: [{provider: ant, model: claude-sonnet-4-5}, {provider: oai, model: fallback-model}]}
  - {name: gemini, retries: -1, attempt_timeout: 1s, targets: [{provider: gem, model: gemini-2.5-flash}, {provider: oai, model: fallback-model}]}
  - {name: bedrock, retries: -1, attempt_timeout: 1s, targets: [{provider: bed, model: anthropic.claude-3-5-sonnet-20241022-v2:0}, {provider: oai, model: fallback-model}]}
breaker: {min_requests: 1000}
`, testAdminKey, oai.URL, providertest.OpenAIKey, ant.URL, providertest.AnthropicKey, gem.URL, providertest.GeminiAPIKey,
		bed.URL, providertest.BedrockRegion, providertest.BedrockAccessKey, providertest.BedrockSecretKey)
	g := startGW(t, cfg)
	cl := g.client(g.newKey(t, "acme"))
	ctx := context.Background()
	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{
		Name: "get_current_weather", Description: openai.String("Get the weather"),
		Parameters: openai.FunctionParameters{"type": "object", "properties": map[string]any{"location": map[string]any{"type": "string"}}, "required": []string{"location"}},
	})}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("Be brief."), openai.UserMessage("What is the weather in Paris?")}
	stream := func(t *testing.T, params openai.ChatCompletionNewParams, hr **http.Response) (openai.ChatCompletionAccumulator, int, error) {
		s := cl.Chat.Completions.NewStreaming(ctx, params, option.WithResponseInto(hr))
		acc := openai.ChatCompletionAccumulator{}
		n := 0
		for s.Next() {
			acc.AddChunk(s.Current())
			n++
		}
		return acc, n, s.Err()
	}
	for _, p := range []struct {
		route string
		fake  *providertest.Server
	}{{"claude", ant}, {"gemini", gem}, {"bedrock", bed}} {
		t.Run(p.route, func(t *testing.T) {
			var hr *http.Response
			resp, err := cl.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: p.route, Messages: msgs}, option.WithResponseInto(&hr))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content == "" || resp.Usage.TotalTokens == 0 || resp.Model == "fallback-model" {
				t.Fatalf("chat = %+v", resp)
			}
			g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})

			acc, _, err := stream(t, openai.ChatCompletionNewParams{Model: p.route, Messages: msgs, StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}}, &hr)
			if err != nil || acc.Choices[0].Message.Content == "" || acc.Usage.TotalTokens == 0 || acc.Choices[0].FinishReason != "stop" {
				t.Fatalf("stream = %+v, %v", acc.ChatCompletion, err)
			}
			g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})

			acc, _, err = stream(t, openai.ChatCompletionNewParams{Model: p.route, Messages: msgs, Tools: tools}, &hr)
			if err != nil || len(acc.Choices[0].Message.ToolCalls) != 1 || acc.Choices[0].Message.ToolCalls[0].Function.Name == "" || acc.Choices[0].FinishReason != "tool_calls" {
				t.Fatalf("tool stream = %+v, %v", acc.ChatCompletion, err)
			}
			g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindResponse, routed: true})

			// A rate limit before the first byte: the agent gets the
			// fallback's answer, as a stream.
			p.fake.Push(providertest.Fault{Status: 429, RetryAfter: "30"})
			acc, _, err = stream(t, openai.ChatCompletionNewParams{Model: p.route, Messages: msgs}, &hr)
			if err != nil || acc.Model != "fallback-model" {
				t.Fatalf("after a 429: %+v, %v; want the fallback's answer", acc.ChatCompletion, err)
			}
			g.expect(t, "acme", hr, traceWant{attempts: 2, terminal: ledger.KindResponse, routed: true})

			// Overloaded, not streamed: falls back too.
			p.fake.Push(providertest.Fault{Status: 503})
			resp, err = cl.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: p.route, Messages: msgs}, option.WithResponseInto(&hr))
			if err != nil || resp.Model != "fallback-model" {
				t.Fatalf("after a 503: %v, %v", resp, err)
			}
			g.expect(t, "acme", hr, traceWant{attempts: 2, terminal: ledger.KindResponse, routed: true})

			// A provider that hangs, and one whose first chunk is
			// malformed: both fall back before the first byte.
			for _, f := range []providertest.Fault{{Hang: true}, {MalformedAt: 1}} {
				p.fake.Push(f)
				acc, _, err = stream(t, openai.ChatCompletionNewParams{Model: p.route, Messages: msgs}, &hr)
				if err != nil || acc.Model != "fallback-model" {
					t.Fatalf("after %+v: %+v, %v; want the fallback's answer", f, acc.ChatCompletion, err)
				}
				g.expect(t, "acme", hr, traceWant{attempts: 2, terminal: ledger.KindResponse, routed: true})
			}

			// Cut after the first chunks: no fallback, an explicit error.
			p.fake.Push(providertest.Fault{CutAfter: 3})
			_, n, err := stream(t, openai.ChatCompletionNewParams{Model: p.route, Messages: msgs}, &hr)
			if n == 0 || err == nil || !strings.Contains(err.Error(), "upstream_stream_error") {
				t.Fatalf("cut stream: %d chunks, err %v; want chunks then an explicit error", n, err)
			}
			g.expect(t, "acme", hr, traceWant{attempts: 1, terminal: ledger.KindError, routed: true})
		})
	}
	// The admin API shows every target's health.
	code, b := g.admin(t, "GET", "/admin/health", "")
	for _, want := range []string{`"ant/claude-sonnet-4-5"`, `"gem/gemini-2.5-flash"`, `"state":"closed"`, `"failures":`} {
		if code != 200 || !strings.Contains(string(b), want) {
			t.Fatalf("health: %d %s lacks %s", code, b, want)
		}
	}
	g.checkLedger(t, "acme")
}
