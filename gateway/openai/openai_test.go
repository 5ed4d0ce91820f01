package openai_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/gateway/openai"
	"aigw/gateway/providertest"
)

func newProvider(t *testing.T, key string) (*openai.Provider, *providertest.Server) {
	t.Helper()
	fake := providertest.NewOpenAI(t)
	p, err := openai.New(openai.Config{Name: "oai", BaseURL: fake.URL + "/v1", APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return p, fake
}

func chatReq(model string) *gateway.ChatRequest {
	return &gateway.ChatRequest{Model: model, Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("Hello!")}}}
}

func TestChat(t *testing.T) {
	p, fake := newProvider(t, providertest.OpenAIKey)
	resp, err := p.Chat(context.Background(), chatReq("gpt-4o-mini"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "gpt-4o-mini" || resp.Choices[0].Message.Content.String() != "Hello! How can I assist you today?" || resp.Usage.TotalTokens != 29 {
		t.Fatalf("response = %+v", resp)
	}
	if got := fake.Requests()[0].Header.Get("Authorization"); got != "Bearer "+providertest.OpenAIKey {
		t.Fatalf("Authorization = %q", got)
	}

	req := chatReq("gpt-4o-mini")
	req.Tools = []gateway.Tool{{Type: "function", Function: gateway.FunctionDecl{Name: "get_current_weather", Parameters: []byte(`{"type":"object"}`)}}}
	resp, err = p.Chat(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if tc := resp.Choices[0].Message.ToolCalls; len(tc) != 1 || tc[0].Function.Name != "get_current_weather" || resp.Choices[0].FinishReason != gateway.FinishToolCalls {
		t.Fatalf("tool call response = %+v", resp.Choices[0])
	}
}

func TestChatErrors(t *testing.T) {
	for _, test := range []struct {
		name       string
		key        string
		fault      providertest.Fault
		status     int
		outcome    string
		retryAfter time.Duration
	}{
		{"BadKey", "sk-wrong", providertest.Fault{}, 401, gateway.OutcomeError, 0},
		{"RateLimited", providertest.OpenAIKey, providertest.Fault{Status: 429, RetryAfter: "2"}, 429, gateway.OutcomeRateLimited, 2 * time.Second},
		{"ServerError", providertest.OpenAIKey, providertest.Fault{Status: 500}, 500, gateway.OutcomeError, 0},
		{"Overloaded", providertest.OpenAIKey, providertest.Fault{Status: 503}, 503, gateway.OutcomeOverloaded, 0},
		{"BadRequest", providertest.OpenAIKey, providertest.Fault{Status: 400}, 400, gateway.OutcomeRejected, 0},
	} {
		t.Run(test.name, func(t *testing.T) {
			p, fake := newProvider(t, test.key)
			fake.Push(test.fault)
			_, err := p.Chat(context.Background(), chatReq("m"))
			var pe *gateway.ProviderError
			if !errors.As(err, &pe) || pe.Status != test.status || pe.RetryAfter != test.retryAfter || pe.Provider != "oai" {
				t.Fatalf("err = %#v; want status %d", err, test.status)
			}
			if outcome, _, _ := gateway.Classify(err); outcome != test.outcome {
				t.Fatalf("outcome = %s; want %s", outcome, test.outcome)
			}
		})
	}
}

func collect(t *testing.T, s gateway.Stream) (string, []*gateway.ChatChunk, error) {
	t.Helper()
	defer s.Close()
	var b strings.Builder
	var chunks []*gateway.ChatChunk
	for {
		c, err := s.Next()
		if err != nil {
			if err == io.EOF {
				return b.String(), chunks, nil
			}
			return b.String(), chunks, err
		}
		chunks = append(chunks, c)
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				b.WriteString(*ch.Delta.Content)
			}
		}
	}
}

func TestChatStream(t *testing.T) {
	p, fake := newProvider(t, providertest.OpenAIKey)
	s, err := p.ChatStream(context.Background(), chatReq("gpt-x"))
	if err != nil {
		t.Fatal(err)
	}
	text, chunks, err := collect(t, s)
	if err != nil || text != "Hello! How can I help you today?" {
		t.Fatalf("stream = %q, %v", text, err)
	}
	if u := s.Usage(); u == nil || u.TotalTokens != 18 || u.Estimated {
		t.Fatalf("usage = %+v", u)
	}
	if last := chunks[len(chunks)-1]; len(last.Choices) != 0 || last.Usage == nil || chunks[0].Model != "gpt-x" {
		t.Fatalf("last chunk = %+v", last)
	}
	if body := string(fake.Requests()[0].Body); !strings.Contains(body, `"include_usage":true`) || !strings.Contains(body, `"stream":true`) {
		t.Fatalf("upstream request %s does not ask for usage", body)
	}
}

func TestChatStreamFaults(t *testing.T) {
	for _, test := range []struct {
		name  string
		fault providertest.Fault
		want  error
	}{
		{"Cut", providertest.Fault{CutAfter: 2}, gateway.ErrStreamCut},
		{"Malformed", providertest.Fault{MalformedAt: 3}, gateway.ErrStreamMalformed},
	} {
		t.Run(test.name, func(t *testing.T) {
			p, fake := newProvider(t, providertest.OpenAIKey)
			fake.Push(test.fault)
			s, err := p.ChatStream(context.Background(), chatReq("m"))
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := collect(t, s); !errors.Is(err, test.want) {
				t.Fatalf("err = %v; want %v", err, test.want)
			}
		})
	}
	t.Run("ErrorEvent", func(t *testing.T) {
		p, fake := newProvider(t, providertest.OpenAIKey)
		fake.Push(providertest.Fault{ErrorEventAt: 2})
		s, err := p.ChatStream(context.Background(), chatReq("m"))
		if err != nil {
			t.Fatal(err)
		}
		var pe *gateway.ProviderError
		if _, _, err := collect(t, s); !errors.As(err, &pe) || pe.Type != "server_error" {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("Hang", func(t *testing.T) {
		p, fake := newProvider(t, providertest.OpenAIKey)
		fake.Push(providertest.Fault{Hang: true})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := p.ChatStream(ctx, chatReq("m"))
		if outcome, retry, _ := gateway.Classify(err); outcome != gateway.OutcomeTimeout || !retry {
			t.Fatalf("err = %v classified %s", err, outcome)
		}
	})
	t.Run("StatusBeforeStream", func(t *testing.T) {
		p, fake := newProvider(t, providertest.OpenAIKey)
		fake.Push(providertest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "1"})
		_, err := p.ChatStream(context.Background(), chatReq("m"))
		var pe *gateway.ProviderError
		if !errors.As(err, &pe) || pe.Status != 429 {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestEmbed(t *testing.T) {
	p, _ := newProvider(t, providertest.OpenAIKey)
	var req gateway.EmbeddingRequest
	req.Model = "text-embedding-3-small"
	if err := req.Input.UnmarshalJSON([]byte(`["a","bb"]`)); err != nil {
		t.Fatal(err)
	}
	resp, err := p.Embed(context.Background(), &req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Data) != 2 || resp.Usage.PromptTokens != 16 {
		t.Fatalf("embeddings = %+v", resp)
	}
}

func BenchmarkChat(b *testing.B) {
	fake := providertest.NewOpenAI(b)
	p, _ := openai.New(openai.Config{BaseURL: fake.URL + "/v1", APIKey: providertest.OpenAIKey})
	req := chatReq("m")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Chat(context.Background(), req); err != nil {
			b.Fatal(err)
		}
	}
}
