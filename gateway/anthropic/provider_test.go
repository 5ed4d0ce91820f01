package anthropic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// newProvider returns a provider talking to a fresh Anthropic fake.
func newProvider(t *testing.T) (*Provider, *providertest.Server) {
	t.Helper()
	fake := providertest.NewAnthropic(t)
	p, err := New(Config{BaseURL: fake.URL, APIKey: providertest.AnthropicKey})
	if err != nil {
		t.Fatal(err)
	}
	return p, fake
}

// chatRequest decodes an OpenAI-shaped request.
func chatRequest(t testing.TB, s string) *gateway.ChatRequest {
	t.Helper()
	var r gateway.ChatRequest
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("decode chat request: %v", err)
	}
	return &r
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t testing.TB, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("decode %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("decode want %s: %v", want, err)
	}
	return reflect.DeepEqual(g, w)
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"key only", Config{APIKey: "k"}, true},
		{"no key", Config{}, false},
		{"bad url", Config{APIKey: "k", BaseURL: "ftp://x"}, false},
		{"no host", Config{APIKey: "k", BaseURL: "http://"}, false},
		{"negative max", Config{APIKey: "k", DefaultMaxTokens: -1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("New: %v, want ok=%v", err, tc.ok)
			}
		})
	}
	p, _ := New(Config{APIKey: "k", BaseURL: "https://example.test/"})
	if p.url != "https://example.test/v1/messages" || p.version != DefaultVersion || p.maxTokens != DefaultMaxTokens || p.name != DefaultName || p.client != DefaultClient {
		t.Fatalf("defaults not applied: %+v", p)
	}
}

func TestConfigLogRedactsKey(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("provider", "config", Config{Name: "a", APIKey: "sk-ant-secret-value"})
	if strings.Contains(buf.String(), "sk-ant-secret-value") || !strings.Contains(buf.String(), "REDACTED") {
		t.Fatalf("log shows the key or no redaction: %s", buf.String())
	}
}

func TestFromChat(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want string
		plan plan
	}{
		{
			name: "system, defaults, sampling, stop, user",
			in: `{"model":"claude-x","messages":[{"role":"system","content":"Be brief."},{"role":"developer","content":[{"type":"text","text":"Use English."}]},
				{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"},{"role":"user","content":"Again"}],
				"temperature":1.5,"top_p":0.5,"stop":"END","user":"u-1","seed":7,"frequency_penalty":0.1}`,
			want: `{"model":"claude-x","max_tokens":4096,
				"system":[{"type":"text","text":"Be brief."},{"type":"text","text":"Use English."}],
				"messages":[{"role":"user","content":[{"type":"text","text":"Hi"}]},{"role":"assistant","content":[{"type":"text","text":"Hello!"}]},{"role":"user","content":[{"type":"text","text":"Again"}]}],
				"temperature":1,"top_p":0.5,"stop_sequences":["END"],"metadata":{"user_id":"u-1"}}`,
		},
		{
			name: "max_completion_tokens wins over max_tokens",
			in:   `{"model":"m","max_tokens":10,"max_completion_tokens":20,"messages":[{"role":"user","content":"x"}],"stop":["a","b"]}`,
			want: `{"model":"m","max_tokens":20,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"stop_sequences":["a","b"]}`,
		},
		{
			name: "images and files",
			in: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"see"},
				{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0K"}},
				{"type":"image_url","image_url":{"url":"https://example.com/a.jpg","detail":"high"}},
				{"type":"file","file":{"filename":"a.pdf","file_data":"data:application/pdf;base64,JVBERi0x"}},
				{"type":"file","file":{"filename":"n.txt","file_data":"data:text/plain;base64,aGVsbG8="}}]}]}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"see"},
				{"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBORw0K"}},
				{"type":"image","source":{"type":"url","url":"https://example.com/a.jpg"}},
				{"type":"document","title":"a.pdf","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0x"}},
				{"type":"document","title":"n.txt","source":{"type":"text","media_type":"text/plain","data":"hello"}}]}]}`,
		},
		{
			name: "tool calls, merged tool results and the user's next words",
			in: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"weather in Paris and Rome?"},
				{"role":"assistant","content":null,"reasoning_content":"thinking...","tool_calls":[
					{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}},
					{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":""}}]},
				{"role":"tool","tool_call_id":"call_1","content":"15C"},
				{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"18C"}]},
				{"role":"user","content":"thanks"}],
				"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather.","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
					{"type":"function","function":{"name":"now"}}],
				"tool_choice":"required","parallel_tool_calls":false}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"weather in Paris and Rome?"}]},
				{"role":"assistant","content":[{"type":"tool_use","id":"call_1","name":"get_weather","input":{"city":"Paris"}},{"type":"tool_use","id":"call_2","name":"get_weather","input":{}}]},
				{"role":"user","content":[{"type":"tool_result","tool_use_id":"call_1","content":"15C"},{"type":"tool_result","tool_use_id":"call_2","content":[{"type":"text","text":"18C"}]},{"type":"text","text":"thanks"}]}],
				"tools":[{"name":"get_weather","description":"Weather.","input_schema":{"type":"object","properties":{"city":{"type":"string"}}}},{"name":"now","input_schema":{"type":"object","properties":{}}}],
				"tool_choice":{"type":"any","disable_parallel_tool_use":true}}`,
		},
		{
			name: "tool_choice none keeps parallel use",
			in:   `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"none","parallel_tool_calls":false}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"none"}}`,
		},
		{
			name: "parallel_tool_calls false alone",
			in:   `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"parallel_tool_calls":false}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}}`,
		},
		{
			name: "named function and auto",
			in:   `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":{"type":"function","function":{"name":"f"}}}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"}}`,
		},
		{
			name: "tool_choice without tools is dropped",
			in:   `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tool_choice":"auto"}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "json_schema becomes a forced tool",
			in: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],
				"response_format":{"type":"json_schema","json_schema":{"name":"city","schema":{"type":"object","properties":{"name":{"type":"string"}}},"strict":true}}}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],
				"tools":[{"name":"city","description":"Respond with a JSON value matching this schema.","input_schema":{"type":"object","properties":{"name":{"type":"string"}}}}],
				"tool_choice":{"type":"tool","name":"city"}}`,
			plan: plan{responseTool: "city"},
		},
		{
			name: "json_schema with tools becomes an instruction",
			in: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
				"response_format":{"type":"json_schema","json_schema":{"name":"city","schema":{"type": "object"}}}}`,
			want: `{"model":"m","max_tokens":5,"system":[{"type":"text","text":"Respond only with a JSON value that conforms to this JSON Schema, with no other text: {\"type\":\"object\"}"}],
				"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}],"tools":[{"name":"f","input_schema":{"type":"object"}}]}`,
		},
		{
			name: "json_object becomes an instruction",
			in:   `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"S"},{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}`,
			want: `{"model":"m","max_tokens":5,"system":[{"type":"text","text":"S"},{"type":"text","text":"Respond only with a valid JSON object, with no other text."}],"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "reasoning effort without a limit",
			in:   `{"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"high","temperature":0.2,"top_p":0.5}`,
			want: `{"model":"m","max_tokens":20480,"thinking":{"type":"enabled","budget_tokens":16384},"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "reasoning effort within a limit",
			in:   `{"model":"m","max_completion_tokens":1500,"messages":[{"role":"user","content":"x"}],"reasoning_effort":"low","top_p":0.97}`,
			want: `{"model":"m","max_tokens":1500,"thinking":{"type":"enabled","budget_tokens":1499},"top_p":0.97,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "no room to think",
			in:   `{"model":"m","max_tokens":900,"messages":[{"role":"user","content":"x"}],"reasoning_effort":"medium","temperature":0.3}`,
			want: `{"model":"m","max_tokens":900,"temperature":0.3,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]}]}`,
		},
		{
			name: "empty messages skipped, refusal kept",
			in:   `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":""},{"role":"assistant","content":[{"type":"refusal","refusal":"No."}]},{"role":"user","content":[{"type":"text","text":""},{"type":"text","text":"y"}]}]}`,
			want: `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"x"}]},{"role":"assistant","content":[{"type":"text","text":"No."}]},{"role":"user","content":[{"type":"text","text":"y"}]}]}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := chatRequest(t, tc.in)
			before, _ := json.Marshal(req)
			got, pl, err := fromChat(req, DefaultMaxTokens, false)
			if err != nil {
				t.Fatal(err)
			}
			after, _ := json.Marshal(req)
			if !bytes.Equal(before, after) {
				t.Fatalf("request modified:\n%s\n%s", before, after)
			}
			b, _ := json.Marshal(got)
			if !jsonEqual(t, b, []byte(tc.want)) {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
			if pl != tc.plan {
				t.Fatalf("plan %+v, want %+v", pl, tc.plan)
			}
		})
	}
}

func TestFromChatErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, param string }{
		{"n", `{"model":"m","n":2,"messages":[{"role":"user","content":"x"}]}`, "n"},
		{"role", `{"model":"m","messages":[{"role":"function","content":"x"}]}`, "messages[0].role"},
		{"no messages", `{"model":"m","messages":[{"role":"system","content":"x"}]}`, "messages"},
		{"image scheme", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"ftp://x/y.png"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"data url not base64", `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png,abc"}}]}]}`, "messages[0].content[0].image_url.url"},
		{"audio", `{"model":"m","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"x","format":"wav"}}]}]}`, "messages[0].content[0].type"},
		{"file id", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-1"}}]}]}`, "messages[0].content[0].file"},
		{"file type", `{"model":"m","messages":[{"role":"user","content":[{"type":"file","file":{"file_data":"data:image/png;base64,AA=="}}]}]}`, "messages[0].content[0].file"},
		{"arguments", `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"[1]"}}]}]}`, "messages[0].tool_calls[0].function.arguments"},
		{"tool call id", `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[0].tool_calls[0]"},
		{"tool message id", `{"model":"m","messages":[{"role":"tool","content":"x"}]}`, "messages[0].tool_call_id"},
		{"tool_choice", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"sometimes"}`, "tool_choice"},
		{"tool_choice object", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"allowed_tools"}}`, "tool_choice"},
		{"tool type", `{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"custom","function":{"name":"f"}}]}`, "tools[0].type"},
		{"schema missing", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a"}}}`, "response_format.json_schema"},
		{"format type", `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}`, "response_format.type"},
		{"effort", `{"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"extreme"}`, "reasoning_effort"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := fromChat(chatRequest(t, tc.in), DefaultMaxTokens, false)
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Status != http.StatusBadRequest || ge.Param != tc.param {
				t.Fatalf("err %v (%#v), want a 400 on %s", err, ge, tc.param)
			}
		})
	}
}

func TestChat(t *testing.T) {
	p, fake := newProvider(t)
	resp, err := p.Chat(context.Background(), chatRequest(t, `{"model":"claude-test","messages":[{"role":"user","content":"Hello"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &gateway.ChatResponse{
		ID: "msg_013Zva2CMHLNnXjNJJKqJ2EF", Object: "chat.completion", Created: resp.Created, Model: "claude-test",
		Choices: []gateway.Choice{{Message: gateway.Message{Role: "assistant", Content: gateway.TextContent("Hi! My name is Claude.")}, FinishReason: "stop"}},
		Usage: &gateway.Usage{PromptTokens: 2095 + 1800 + 120, CompletionTokens: 503, TotalTokens: 2095 + 1800 + 120 + 503,
			PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 1800, CacheCreationTokens: 120}},
	}
	if !reflect.DeepEqual(resp, want) {
		g, _ := json.Marshal(resp)
		w, _ := json.Marshal(want)
		t.Fatalf("got  %s\nwant %s", g, w)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests", len(reqs))
	}
	h := reqs[0].Header
	if h.Get("x-api-key") != providertest.AnthropicKey || h.Get("anthropic-version") != DefaultVersion || h.Get("content-type") != "application/json" {
		t.Fatalf("headers %v", h)
	}
	if !jsonEqual(t, reqs[0].Body, []byte(`{"model":"claude-test","max_tokens":4096,"messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}]}`)) {
		t.Fatalf("body %s", reqs[0].Body)
	}
}

func TestChatToolUse(t *testing.T) {
	p, _ := newProvider(t)
	resp, err := p.Chat(context.Background(), chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"Weather?"}],
		"tools":[{"type":"function","function":{"name":"lookup_weather","parameters":{"type":"object"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Choices[0]
	if ch.FinishReason != "tool_calls" || ch.Message.Content.String() != "I'll check the current weather in San Francisco for you." {
		t.Fatalf("choice %+v", ch)
	}
	want := []gateway.ToolCall{{ID: "toolu_01A09q90qw90lq917835lq9", Type: "function",
		Function: gateway.FunctionCall{Name: "lookup_weather", Arguments: `{"location":"San Francisco, CA","unit":"celsius"}`}}}
	if !reflect.DeepEqual(ch.Message.ToolCalls, want) {
		t.Fatalf("tool calls %+v", ch.Message.ToolCalls)
	}
}

func TestChatResponseFormat(t *testing.T) {
	p, _ := newProvider(t)
	resp, err := p.Chat(context.Background(), chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"Weather?"}],
		"response_format":{"type":"json_schema","json_schema":{"name":"weather","schema":{"type":"object"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ch := resp.Choices[0]
	// The fake answers the forced tool with the fixture's text and input:
	// the input alone is the content, and no tool call is left.
	if ch.FinishReason != "stop" || len(ch.Message.ToolCalls) != 0 ||
		ch.Message.Content.String() != `{"location":"San Francisco, CA","unit":"celsius"}` {
		t.Fatalf("choice %+v", ch)
	}
}

func TestChatErrors(t *testing.T) {
	for _, tc := range []struct {
		fault   providertest.Fault
		status  int
		typ     string
		retry   time.Duration
		outcome string
	}{
		{providertest.Fault{Status: 400, Message: "messages: bad"}, 400, TypeInvalidRequest, 0, gateway.OutcomeRejected},
		{providertest.Fault{Status: 401}, 401, TypeAuthentication, 0, gateway.OutcomeError},
		{providertest.Fault{Status: 403}, 403, TypePermission, 0, gateway.OutcomeError},
		{providertest.Fault{Status: 404}, 404, TypeNotFound, 0, gateway.OutcomeRejected},
		{providertest.Fault{Status: 413}, 413, TypeRequestTooLarge, 0, gateway.OutcomeRejected},
		{providertest.Fault{Status: 429, RetryAfter: "7"}, 429, TypeRateLimit, 7 * time.Second, gateway.OutcomeRateLimited},
		{providertest.Fault{Status: 500}, 500, TypeAPI, 0, gateway.OutcomeError},
		{providertest.Fault{Status: 529, RetryAfter: "2"}, 529, TypeOverloaded, 2 * time.Second, gateway.OutcomeOverloaded},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			p, fake := newProvider(t)
			for _, stream := range []bool{false, true} {
				fake.Push(tc.fault)
				req := chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`)
				var err error
				if stream {
					_, err = p.ChatStream(context.Background(), req)
				} else {
					_, err = p.Chat(context.Background(), req)
				}
				var pe *gateway.ProviderError
				if !errors.As(err, &pe) || pe.Status != tc.status || pe.Type != tc.typ || pe.RetryAfter != tc.retry || pe.Provider != DefaultName || pe.Message == "" {
					t.Fatalf("stream=%v: err %v (%#v)", stream, err, pe)
				}
				if tc.fault.Message != "" && pe.Message != tc.fault.Message {
					t.Fatalf("message %q", pe.Message)
				}
				if o, _, _ := gateway.Classify(err); o != tc.outcome {
					t.Fatalf("outcome %s, want %s", o, tc.outcome)
				}
			}
		})
	}
}

func TestChatAuth(t *testing.T) {
	fake := providertest.NewAnthropic(t)
	p, _ := New(Config{BaseURL: fake.URL, APIKey: "sk-ant-wrong"})
	_, err := p.Chat(context.Background(), chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`))
	var pe *gateway.ProviderError
	if !errors.As(err, &pe) || pe.Status != 401 || pe.Type != TypeAuthentication {
		t.Fatalf("err %v", err)
	}
	if strings.Contains(err.Error(), "sk-ant-wrong") {
		t.Fatalf("error shows the key: %v", err)
	}
}

func TestChatTransportError(t *testing.T) {
	p, fake := newProvider(t)
	fake.Push(providertest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := p.Chat(ctx, chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	if o, retry, _ := gateway.Classify(err); o != gateway.OutcomeTimeout || !retry {
		t.Fatalf("outcome %s %v", o, retry)
	}
}

// collect reads a stream to its end.
func collect(t testing.TB, s gateway.Stream) ([]*gateway.ChatChunk, error) {
	t.Helper()
	var out []*gateway.ChatChunk
	for {
		c, err := s.Next()
		if err != nil {
			return out, err
		}
		out = append(out, c)
	}
}

// streamText sums the chunks' contents, reasoning and tool calls.
type streamSum struct {
	content, reasoning string
	calls              map[int]*gateway.ToolCall
	finish             string
	roleFirst          bool
	usageLast          *gateway.Usage
}

func sumChunks(t testing.TB, chunks []*gateway.ChatChunk) streamSum {
	t.Helper()
	s := streamSum{calls: map[int]*gateway.ToolCall{}}
	for i, c := range chunks {
		if c.Object != "chat.completion.chunk" {
			t.Fatalf("chunk %d object %q", i, c.Object)
		}
		if len(c.Choices) == 0 {
			if c.Usage == nil || i != len(chunks)-1 {
				t.Fatalf("chunk %d without choices is not the last usage chunk", i)
			}
			s.usageLast = c.Usage
			continue
		}
		d := c.Choices[0].Delta
		if i == 0 {
			s.roleFirst = d.Role == "assistant"
		} else if d.Role != "" {
			t.Fatalf("chunk %d repeats the role", i)
		}
		if d.Content != nil {
			s.content += *d.Content
		}
		if d.ReasoningContent != nil {
			s.reasoning += *d.ReasoningContent
		}
		for _, tc := range d.ToolCalls {
			if tc.Index == nil {
				t.Fatalf("chunk %d: tool call without index", i)
			}
			cur, ok := s.calls[*tc.Index]
			if !ok {
				if tc.ID == "" || tc.Type != "function" || tc.Function.Name == "" {
					t.Fatalf("chunk %d: first delta of call %d lacks id, type or name: %+v", i, *tc.Index, tc)
				}
				cp := tc
				s.calls[*tc.Index] = &cp
				continue
			}
			cur.Function.Arguments += tc.Function.Arguments
		}
		if f := c.Choices[0].FinishReason; f != nil {
			s.finish = *f
		}
	}
	return s
}

func TestChatStream(t *testing.T) {
	p, fake := newProvider(t)
	s, err := p.ChatStream(context.Background(), chatRequest(t, `{"model":"claude-test","messages":[{"role":"user","content":"27*453?"}],"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chunks, err := collect(t, s)
	if err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	sum := sumChunks(t, chunks)
	wantUsage := &gateway.Usage{PromptTokens: 25, CompletionTokens: 15, TotalTokens: 40, PromptTokensDetails: &gateway.PromptTokensDetails{}}
	if !sum.roleFirst || sum.content != "27 * 453 = 12,231" || sum.reasoning != "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3" ||
		sum.finish != "stop" || len(sum.calls) != 0 || !reflect.DeepEqual(sum.usageLast, wantUsage) {
		t.Fatalf("stream %+v", sum)
	}
	if !reflect.DeepEqual(s.Usage(), wantUsage) {
		t.Fatalf("Usage %+v", s.Usage())
	}
	for _, c := range chunks {
		if c.ID != "msg_01D7FLoVKmnQUjZTGqqJ6BbP" || c.Model != "claude-test" {
			t.Fatalf("chunk id/model %q %q", c.ID, c.Model)
		}
	}
	if _, err := s.Next(); err != io.EOF {
		t.Fatalf("after end: %v", err)
	}
	var body struct{ Stream bool }
	json.Unmarshal(fake.Requests()[0].Body, &body)
	if !body.Stream || fake.Requests()[0].Header.Get("accept") != "text/event-stream" {
		t.Fatalf("request not streamed: %s", fake.Requests()[0].Body)
	}
}

func TestChatStreamToolUse(t *testing.T) {
	p, _ := newProvider(t)
	s, err := p.ChatStream(context.Background(), chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"Weather?"}],
		"tools":[{"type":"function","function":{"name":"lookup_weather","parameters":{"type":"object"}}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chunks, err := collect(t, s)
	if err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	sum := sumChunks(t, chunks)
	call := sum.calls[0]
	if sum.content != "Okay, let's check the weather for San Francisco, CA:" || sum.finish != "tool_calls" || len(sum.calls) != 1 ||
		call.ID != "toolu_01T1x1fJ34qAmk2tNTrN7Up6" || call.Function.Name != "lookup_weather" ||
		call.Function.Arguments != `{"location": "San Francisco, CA", "unit": "fahrenheit"}` {
		t.Fatalf("stream %+v call %+v", sum, call)
	}
	if sum.usageLast.PromptTokens != 472 || sum.usageLast.CompletionTokens != 89 {
		t.Fatalf("usage %+v", sum.usageLast)
	}
}

func TestChatStreamResponseFormat(t *testing.T) {
	p, _ := newProvider(t)
	s, err := p.ChatStream(context.Background(), chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"Weather?"}],
		"response_format":{"type":"json_schema","json_schema":{"name":"weather","schema":{"type":"object"}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chunks, err := collect(t, s)
	if err != io.EOF {
		t.Fatalf("end: %v", err)
	}
	sum := sumChunks(t, chunks)
	if sum.content != `{"location": "San Francisco, CA", "unit": "fahrenheit"}` || sum.finish != "stop" || len(sum.calls) != 0 {
		t.Fatalf("stream %+v", sum)
	}
}

func TestChatStreamFaults(t *testing.T) {
	const events = 13 // in message_stream.sse
	for _, tc := range []struct {
		name   string
		fault  providertest.Fault
		check  func(error) bool
		chunks int // chunks before the error
	}{
		{"cut early", providertest.Fault{CutAfter: 3}, func(err error) bool { return errors.Is(err, gateway.ErrStreamCut) }, 1},
		{"cut before message_stop", providertest.Fault{CutAfter: events - 1}, func(err error) bool { return errors.Is(err, gateway.ErrStreamCut) }, 6},
		{"malformed", providertest.Fault{MalformedAt: 5}, func(err error) bool { return errors.Is(err, gateway.ErrStreamMalformed) }, 2},
		{"error event", providertest.Fault{ErrorEventAt: 4}, func(err error) bool {
			var pe *gateway.ProviderError
			o, retry, _ := gateway.Classify(err)
			return errors.As(err, &pe) && pe.Status == StatusOverloaded && pe.Type == TypeOverloaded && pe.Message == "Overloaded" && o == gateway.OutcomeOverloaded && retry
		}, 1},
		{"rate limit event", providertest.Fault{ErrorEventAt: 2, Type: TypeRateLimit, Message: "slow down"}, func(err error) bool {
			var pe *gateway.ProviderError
			return errors.As(err, &pe) && pe.Status == 429 && pe.Type == TypeRateLimit && pe.Message == "slow down"
		}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, fake := newProvider(t)
			fake.Push(tc.fault)
			s, err := p.ChatStream(context.Background(), chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			chunks, err := collect(t, s)
			if err == io.EOF || !tc.check(err) {
				t.Fatalf("err %v", err)
			}
			if len(chunks) != tc.chunks {
				t.Fatalf("%d chunks before the error, want %d", len(chunks), tc.chunks)
			}
			if _, again := s.Next(); again != err {
				t.Fatalf("error not sticky: %v", again)
			}
			if s.Usage() != nil {
				t.Fatalf("usage of a failed stream")
			}
		})
	}
}

func TestChatStreamCloseUnblocks(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p, _ := New(Config{BaseURL: srv.URL, APIKey: "k"})
	s, err := p.ChatStream(context.Background(), chatRequest(t, `{"model":"m","messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := s.Next()
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, gateway.ErrStreamCut) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Next")
	}
}

// streamOf translates SSE text directly.
func streamOf(sse string, pl plan) *stream {
	return newStream("anthropic", io.NopCloser(strings.NewReader(sse)), pl, 1)
}

func TestStreamEdges(t *testing.T) {
	const start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"m\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n"
	const stop = "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"
	for _, tc := range []struct {
		name string
		sse  string
		want error // nil: io.EOF
	}{
		{"unknown event ignored", start + "event: future_event\ndata: {\"type\":\"future_event\"}\n\n" + stop, nil},
		{"second message_delta", start + "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\n" +
			"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":4}}\n\n" + stop, nil},
		{"comments and unnamed events", ": hello\n\n" + start + "data: {\"type\":\"ping\"}\n\n" + stop, nil},
		{"delta before message_start", "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n", gateway.ErrStreamMalformed},
		{"delta for no block", start + "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":3,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}\n\n", gateway.ErrStreamMalformed},
		{"block out of order", start + "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n", gateway.ErrStreamMalformed},
		{"second message_start", start + start, gateway.ErrStreamMalformed},
		{"not json", start + "event: message_delta\ndata: {\n\n", gateway.ErrStreamMalformed},
		{"empty", "", gateway.ErrStreamCut},
		{"cut mid event", start + "event: message_stop\ndata: {\"type\":\"mess", gateway.ErrStreamCut},
		{"no message_stop", start, gateway.ErrStreamCut},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := streamOf(tc.sse, plan{})
			chunks, err := collect(t, s)
			if tc.want == nil && err != io.EOF || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if tc.want == nil {
				finishes := 0
				for _, c := range chunks {
					if len(c.Choices) > 0 && c.Choices[0].FinishReason != nil {
						finishes++
					}
				}
				if finishes > 1 || chunks[len(chunks)-1].Usage == nil {
					t.Fatalf("%d finish chunks, last %+v", finishes, chunks[len(chunks)-1])
				}
			}
		})
	}
	// An error event without detail is still an overload.
	s := streamOf(start+"event: error\ndata: {\"type\":\"error\"}\n\n", plan{})
	_, err := collect(t, s)
	var pe *gateway.ProviderError
	if !errors.As(err, &pe) || pe.Status != StatusOverloaded {
		t.Fatalf("err %v", err)
	}
}

func TestForward(t *testing.T) {
	p, fake := newProvider(t)
	for _, stream := range []bool{false, true} {
		// Odd spacing, key order and escapes must reach Anthropic as sent.
		body := []byte("{ \"max_tokens\" : 64,\n \"model\":\"claude-test\", \"stream\": " + map[bool]string{false: "false", true: "true"}[stream] +
			", \"messages\":[{\"role\":\"user\",\"content\":\"h\\u00e9llo \\ud83d\\ude00\"}], \"unknown_field\": {\"x\":[1,2.50]}}")
		hdr := http.Header{}
		hdr.Set("anthropic-version", "2023-01-01")
		hdr.Add("anthropic-beta", "prompt-caching-2024-07-31")
		hdr.Add("anthropic-beta", "output-128k-2025-02-19")
		hdr.Set("x-api-key", "client-key-must-not-pass")
		resp, err := p.Forward(context.Background(), &gateway.RawRequest{Model: "claude-test", Stream: stream, Body: body, Header: hdr})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, got)
		}
		reqs := fake.Requests()
		r := reqs[len(reqs)-1]
		if !bytes.Equal(r.Body, body) {
			t.Fatalf("body changed:\n%s\n%s", r.Body, body)
		}
		if r.Header.Get("x-api-key") != providertest.AnthropicKey || r.Header.Get("anthropic-version") != "2023-01-01" ||
			!reflect.DeepEqual(r.Header.Values("anthropic-beta"), []string{"prompt-caching-2024-07-31", "output-128k-2025-02-19"}) || r.Path != "/v1/messages" {
			t.Fatalf("headers %v path %s", r.Header, r.Path)
		}
		// The same request sent directly gets the same bytes.
		direct, _ := http.NewRequest(http.MethodPost, fake.URL+"/v1/messages", bytes.NewReader(body))
		direct.Header.Set("x-api-key", providertest.AnthropicKey)
		direct.Header.Set("anthropic-version", "2023-06-01")
		dresp, err := http.DefaultClient.Do(direct)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(dresp.Body)
		dresp.Body.Close()
		if !bytes.Equal(got, want) {
			t.Fatalf("stream=%v: response changed:\n%s\n%s", stream, got, want)
		}
	}
}

func TestForwardErrorsAndDefaults(t *testing.T) {
	p, fake := newProvider(t)
	fake.Push(providertest.Fault{Status: 429, RetryAfter: "3"})
	resp, err := p.Forward(context.Background(), &gateway.RawRequest{Body: []byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"}]}`), Header: http.Header{}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" || !jsonEqual(t, b, []byte(`{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization of 50 requests per minute."},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}`)) {
		t.Fatalf("status %d body %s", resp.StatusCode, b)
	}
	if v := fake.Requests()[0].Header.Get("anthropic-version"); v != DefaultVersion {
		t.Fatalf("version %q", v)
	}
	if p.Native() != "anthropic.messages" {
		t.Fatal(p.Native())
	}
	fake.Close()
	if _, err := p.Forward(context.Background(), &gateway.RawRequest{Body: []byte(`{}`), Header: http.Header{}}); err == nil {
		t.Fatal("forward to a closed server succeeded")
	}
}

func TestFakeValidates(t *testing.T) {
	fake := providertest.NewAnthropic(t)
	for _, tc := range []struct {
		name, body string
		header     map[string]string
		status     int
		typ        string
	}{
		{"no key", `{}`, map[string]string{"anthropic-version": "2023-06-01"}, 401, TypeAuthentication},
		{"no version", `{}`, map[string]string{"x-api-key": providertest.AnthropicKey}, 400, TypeInvalidRequest},
		{"no max_tokens", `{"model":"m","messages":[{"role":"user","content":"x"}]}`, nil, 400, TypeInvalidRequest},
		{"zero max_tokens", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`, nil, 400, TypeInvalidRequest},
		{"no messages", `{"model":"m","max_tokens":1,"messages":[]}`, nil, 400, TypeInvalidRequest},
		{"bad role", `{"model":"m","max_tokens":1,"messages":[{"role":"system","content":"x"}]}`, nil, 400, TypeInvalidRequest},
		{"no model", `{"max_tokens":1,"messages":[{"role":"user","content":"x"}]}`, nil, 400, TypeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, fake.URL+"/v1/messages", strings.NewReader(tc.body))
			h := tc.header
			if h == nil {
				h = map[string]string{"x-api-key": providertest.AnthropicKey, "anthropic-version": "2023-06-01"}
			}
			for k, v := range h {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var eb ErrorBody
			json.NewDecoder(resp.Body).Decode(&eb)
			if resp.StatusCode != tc.status || eb.Type != "error" || eb.Error.Type != tc.typ || eb.Error.Message == "" {
				t.Fatalf("status %d body %+v", resp.StatusCode, eb)
			}
		})
	}
}
