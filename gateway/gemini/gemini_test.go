package gemini

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

func newProvider(t testing.TB, key string) (*Provider, *providertest.Server) {
	t.Helper()
	fake := providertest.NewGemini(t)
	p, err := New(Config{Name: "gem", BaseURL: fake.URL, APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return p, fake
}

func chatReq(model string) *gateway.ChatRequest {
	return &gateway.ChatRequest{Model: model, Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("Hello!")}}}
}

var weatherTool = gateway.Tool{Type: "function", Function: gateway.FunctionDecl{
	Name:       "lookup_weather",
	Parameters: json.RawMessage(`{"type":"object","properties":{"location":{"type":"string"}}}`),
}}

// rawServer answers every request with status, header and body: an
// upstream sending bytes the fake does not.
func rawServer(t *testing.T, status int, header http.Header, body string) *Provider {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	p, err := New(Config{BaseURL: srv.URL, APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestChat(t *testing.T) {
	p, fake := newProvider(t, providertest.GeminiAPIKey)
	resp, err := p.Chat(context.Background(), chatReq("gemini-2.5-flash"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"8ZjTaPu7D7WJ1dkPj4rFwQQ","object":"chat.completion","created":0,"model":"gemini-2.5-flash",
		"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],
		"usage":{"prompt_tokens":9,"completion_tokens":21,"total_tokens":30,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":12}}}`
	resp.Created = 0
	if got, _ := json.Marshal(resp); !jsonEqual(t, got, []byte(want)) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	r := fake.Requests()[0]
	if r.Path != "/v1beta/models/gemini-2.5-flash:generateContent" || r.Query != "" {
		t.Errorf("request to %s?%s", r.Path, r.Query)
	}
	if r.Header.Get("x-goog-api-key") != providertest.GeminiAPIKey || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", r.Header)
	}
	if !jsonEqual(t, r.Body, []byte(`{"contents":[{"role":"user","parts":[{"text":"Hello!"}]}]}`)) {
		t.Errorf("body %s", r.Body)
	}
}

func TestChatAPIVersionAndModelPrefix(t *testing.T) {
	fake := providertest.NewGemini(t)
	p, err := New(Config{BaseURL: fake.URL + "/", APIVersion: "v1", APIKey: providertest.GeminiAPIKey})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := p.Chat(context.Background(), chatReq("models/gemini-2.0-flash"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "gemini-2.0-flash" || p.Name() != "gemini" {
		t.Errorf("model %q, name %q", resp.Model, p.Name())
	}
	if r := fake.Requests()[0]; r.Path != "/v1/models/gemini-2.0-flash:generateContent" {
		t.Errorf("request to %s", r.Path)
	}
}

// TestToolCallRoundTrip follows a tool call through two turns: the call's
// id and name come back to Gemini on the functionCall and the
// functionResponse that answers it.
func TestToolCallRoundTrip(t *testing.T) {
	for _, streamed := range []bool{false, true} {
		t.Run(map[bool]string{false: "Chat", true: "ChatStream"}[streamed], func(t *testing.T) {
			p, fake := newProvider(t, providertest.GeminiAPIKey)
			req := chatReq("gemini-2.5-flash")
			req.Messages[0].Content = gateway.TextContent("Weather in Boston?")
			req.Tools = []gateway.Tool{weatherTool}
			req.ToolChoice = json.RawMessage(`"auto"`)

			var call gateway.ToolCall
			var finish string
			if streamed {
				s, err := p.ChatStream(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				_, chunks, err := collect(t, s)
				if err != nil {
					t.Fatal(err)
				}
				for _, c := range chunks {
					for _, ch := range c.Choices {
						if len(ch.Delta.ToolCalls) > 0 {
							call = ch.Delta.ToolCalls[0]
							if call.Index == nil || *call.Index != 0 {
								t.Errorf("tool call delta index %v", call.Index)
							}
						}
						if ch.FinishReason != nil {
							finish = *ch.FinishReason
						}
					}
				}
			} else {
				resp, err := p.Chat(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if msg := resp.Choices[0].Message; len(msg.ToolCalls) != 1 || !msg.Content.Null {
					t.Fatalf("message %+v", msg)
				}
				call, finish = resp.Choices[0].Message.ToolCalls[0], resp.Choices[0].FinishReason
			}
			if finish != gateway.FinishToolCalls || call.Type != "function" || call.Function.Name != "lookup_weather" ||
				call.Function.Arguments != `{"location":"Boston, MA","unit":"celsius"}` || !strings.HasPrefix(call.ID, "call_") {
				t.Fatalf("call %+v, finish %q", call, finish)
			}

			call.Index = nil
			next := *req
			next.Stream = false
			next.Messages = append(append([]gateway.Message(nil), req.Messages...),
				gateway.Message{Role: "assistant", Content: gateway.Content{Null: true}, ToolCalls: []gateway.ToolCall{call}},
				gateway.Message{Role: "tool", ToolCallID: call.ID, Content: gateway.TextContent(`{"temperature": 21}`)},
			)
			resp, err := p.Chat(context.Background(), &next)
			if err != nil {
				t.Fatal(err)
			}
			if resp.Choices[0].Message.Content.String() != "Hello! How can I help you today?" || resp.Choices[0].FinishReason != "stop" {
				t.Fatalf("answer to the tool result %+v", resp.Choices[0])
			}
			var sent generateRequest
			if err := json.Unmarshal(fake.Requests()[1].Body, &sent); err != nil {
				t.Fatal(err)
			}
			if len(sent.Contents) != 3 {
				t.Fatalf("contents %+v", sent.Contents)
			}
			fc, fr := sent.Contents[1].Parts[0].FunctionCall, sent.Contents[2].Parts[0].FunctionResponse
			if sent.Contents[1].Role != "model" || fc == nil || fc.ID != call.ID || fc.Name != "lookup_weather" || !jsonEqual(t, fc.Args, []byte(call.Function.Arguments)) {
				t.Errorf("functionCall sent %+v", sent.Contents[1])
			}
			if sent.Contents[2].Role != "user" || fr == nil || fr.ID != call.ID || fr.Name != "lookup_weather" || !jsonEqual(t, fr.Response, []byte(`{"temperature":21}`)) {
				t.Errorf("functionResponse sent %+v", sent.Contents[2])
			}
			if sent.ToolConfig == nil || sent.ToolConfig.FunctionCallingConfig.Mode != "AUTO" {
				t.Errorf("tool config %+v", sent.ToolConfig)
			}
		})
	}
}

func TestChatErrors(t *testing.T) {
	for _, test := range []struct {
		name       string
		key        string
		fault      providertest.Fault
		status     int
		typ, code  string
		outcome    string
		retryAfter time.Duration
	}{
		{"BadKey", "AIza-wrong", providertest.Fault{}, 400, "INVALID_ARGUMENT", "API_KEY_INVALID", gateway.OutcomeRejected, 0},
		{"RateLimited", providertest.GeminiAPIKey, providertest.Fault{Status: 429, RetryAfter: "7"}, 429, "RESOURCE_EXHAUSTED", "", gateway.OutcomeRateLimited, 7 * time.Second},
		{"RateLimitedDate", providertest.GeminiAPIKey, providertest.Fault{Status: 429, RetryAfter: time.Now().Add(time.Hour + time.Minute).UTC().Format(http.TimeFormat)}, 429, "RESOURCE_EXHAUSTED", "", gateway.OutcomeRateLimited, time.Hour},
		{"Internal", providertest.GeminiAPIKey, providertest.Fault{Status: 500}, 500, "INTERNAL", "", gateway.OutcomeError, 0},
		{"Overloaded", providertest.GeminiAPIKey, providertest.Fault{Status: 503}, 503, "UNAVAILABLE", "", gateway.OutcomeOverloaded, 0},
		{"DeadlineExceeded", providertest.GeminiAPIKey, providertest.Fault{Status: 504}, 504, "DEADLINE_EXCEEDED", "", gateway.OutcomeTimeout, 0},
		{"InvalidArgument", providertest.GeminiAPIKey, providertest.Fault{Status: 400, Message: "Please use a valid role: user, model."}, 400, "INVALID_ARGUMENT", "", gateway.OutcomeRejected, 0},
		{"CustomType", providertest.GeminiAPIKey, providertest.Fault{Status: 403, Type: "PERMISSION_DENIED"}, 403, "PERMISSION_DENIED", "", gateway.OutcomeError, 0},
	} {
		t.Run(test.name, func(t *testing.T) {
			for _, streamed := range []bool{false, true} {
				p, fake := newProvider(t, test.key)
				fake.Push(test.fault)
				var err error
				if streamed {
					_, err = p.ChatStream(context.Background(), chatReq("gemini-2.5-flash"))
				} else {
					_, err = p.Chat(context.Background(), chatReq("gemini-2.5-flash"))
				}
				var pe *gateway.ProviderError
				if !errors.As(err, &pe) || pe.Provider != "gem" || pe.Status != test.status || pe.Type != test.typ || pe.Code != test.code || pe.Message == "" {
					t.Fatalf("stream %v: err = %#v", streamed, err)
				}
				if d := pe.RetryAfter - test.retryAfter; d < -2*time.Second || d > 0 || (test.retryAfter == 0 && pe.RetryAfter != 0) {
					t.Errorf("stream %v: RetryAfter = %v; want %v", streamed, pe.RetryAfter, test.retryAfter)
				}
				if outcome, _, _ := gateway.Classify(err); outcome != test.outcome {
					t.Errorf("stream %v: outcome = %s; want %s", streamed, outcome, test.outcome)
				}
				if strings.Contains(err.Error(), test.key) {
					t.Errorf("the error shows the API key: %v", err)
				}
			}
		})
	}
}

func TestErrorBodies(t *testing.T) {
	for _, test := range []struct {
		name       string
		status     int
		header     http.Header
		body       string
		want       gateway.ProviderError
		retryAfter time.Duration
	}{
		{
			name:   "RetryInfo",
			status: 429,
			body: `{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[
				{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}]},
				{"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},
				{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"37s"}]}}`,
			want:       gateway.ProviderError{Status: 429, Type: "RESOURCE_EXHAUSTED", Message: "You exceeded your current quota."},
			retryAfter: 37 * time.Second,
		},
		{
			name:       "FractionalRetryInfo",
			status:     429,
			body:       `{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.500s"}]}}`,
			want:       gateway.ProviderError{Status: 429, Type: "RESOURCE_EXHAUSTED", Message: "m"},
			retryAfter: 1500 * time.Millisecond,
		},
		{
			name:       "HeaderWinsOverRetryInfo",
			status:     429,
			header:     http.Header{"Retry-After": {"3"}},
			body:       `{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"30s"}]}}`,
			want:       gateway.ProviderError{Status: 429, Type: "RESOURCE_EXHAUSTED", Message: "m"},
			retryAfter: 3 * time.Second,
		},
		{
			name:       "RetryInfoCapped",
			status:     429,
			body:       `{"error":{"code":429,"message":"m","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"86400s"}]}}`,
			want:       gateway.ProviderError{Status: 429, Type: "RESOURCE_EXHAUSTED", Message: "m"},
			retryAfter: time.Hour,
		},
		{
			name:   "BadRetryInfo",
			status: 503,
			body:   `{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"soon"}]}}`,
			want:   gateway.ProviderError{Status: 503, Type: "UNAVAILABLE", Message: "The model is overloaded."},
		},
		{
			name:   "ErrorInfo",
			status: 400,
			body:   `{"error":{"code":400,"message":"API key expired. Please renew the API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com"}]}}`,
			want:   gateway.ProviderError{Status: 400, Type: "INVALID_ARGUMENT", Code: "API_KEY_INVALID", Message: "API key expired. Please renew the API key."},
		},
		{
			name:   "ArrayShape",
			status: 404,
			body:   `[{"error":{"code":404,"message":"models/nope is not found for API version v1beta.","status":"NOT_FOUND"}}]`,
			want:   gateway.ProviderError{Status: 404, Type: "NOT_FOUND", Message: "models/nope is not found for API version v1beta."},
		},
		{
			name:   "NotJSON",
			status: 502,
			body:   "<html><body>Bad Gateway</body></html>",
			want:   gateway.ProviderError{Status: 502, Message: "<html><body>Bad Gateway</body></html>"},
		},
		{
			name:   "Empty",
			status: 500,
			want:   gateway.ProviderError{Status: 500, Message: "Internal Server Error"},
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			p := rawServer(t, test.status, test.header, test.body)
			_, err := p.Chat(context.Background(), chatReq("gemini-2.5-flash"))
			var pe *gateway.ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v", err)
			}
			test.want.Provider, test.want.RetryAfter = "gemini", test.retryAfter
			if *pe != test.want {
				t.Fatalf("got  %+v\nwant %+v", *pe, test.want)
			}
		})
	}
}

func TestChatBrokenBody(t *testing.T) {
	for _, f := range []providertest.Fault{{MalformedAt: 1}, {CutAfter: 1}} {
		p, fake := newProvider(t, providertest.GeminiAPIKey)
		fake.Push(f)
		if _, err := p.Chat(context.Background(), chatReq("m")); err == nil {
			t.Errorf("fault %+v: no error", f)
		}
	}
}

func TestChatContext(t *testing.T) {
	p, fake := newProvider(t, providertest.GeminiAPIKey)
	fake.Push(providertest.Fault{Hang: true}, providertest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Chat(ctx, chatReq("m")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Chat: err = %v", err)
	}
	if _, err := p.ChatStream(ctx, chatReq("m")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("ChatStream: err = %v", err)
	}
}

func TestRejectedBeforeSending(t *testing.T) {
	p, fake := newProvider(t, providertest.GeminiAPIKey)
	bad := chatReq("gemini/../../files")
	_, err := p.Chat(context.Background(), bad)
	_, serr := p.ChatStream(context.Background(), bad)
	_, eerr := p.Embed(context.Background(), &gateway.EmbeddingRequest{Model: "x?y", Input: gateway.EmbeddingInput{Texts: []string{"a"}}})
	for _, err := range []error{err, serr, eerr} {
		var ge *gateway.Error
		if !errors.As(err, &ge) || ge.Status != 400 || ge.Param != "model" {
			t.Errorf("err = %v", err)
		}
	}
	req := chatReq("m")
	req.Messages[0].Role = "robot"
	if _, err := p.ChatStream(context.Background(), req); err == nil {
		t.Error("ChatStream sent an untranslatable request")
	}
	if n := len(fake.Requests()); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
}

// TestFakeAuth checks the fake refuses requests as Gemini does.
func TestFakeAuth(t *testing.T) {
	fake := providertest.NewGemini(t)
	for _, test := range []struct {
		name, query string
		header      http.Header
		status      int
		want        string
	}{
		{"NoKey", "", nil, 403, "PERMISSION_DENIED"},
		{"WrongKey", "", http.Header{"X-Goog-Api-Key": {"nope"}}, 400, "API_KEY_INVALID"},
		{"QueryKey", "?key=" + providertest.GeminiAPIKey, nil, 200, "candidates"},
	} {
		t.Run(test.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", fake.URL+"/v1beta/models/gemini-2.5-flash:generateContent"+test.query, strings.NewReader(`{"contents":[{"parts":[{"text":"hi"}]}]}`))
			for k, v := range test.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			if resp.StatusCode != test.status || !strings.Contains(b.String(), test.want) {
				t.Fatalf("%d %s", resp.StatusCode, b.String())
			}
		})
	}
}

// TestFakeValidates checks the fake refuses what Gemini refuses, so a
// translation mistake fails the tests.
func TestFakeValidates(t *testing.T) {
	for _, test := range []struct {
		name, body, want string
	}{
		{"NoContents", `{"contents":[]}`, "contents is not specified"},
		{"EmptyParts", `{"contents":[{"role":"user","parts":[]}]}`, "must not be empty"},
		{"EmptyText", `{"contents":[{"role":"user","parts":[{"text":""}]}]}`, "empty text parameter"},
		{"BadRole", `{"contents":[{"role":"assistant","parts":[{"text":"x"}]}]}`, "valid role"},
		{"UnknownField", `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"max_tokens":5}}`, "Invalid JSON payload"},
		{"TwoData", `{"contents":[{"role":"user","parts":[{"text":"x","inlineData":{"mimeType":"image/png","data":"AA=="}}]}]}`, "oneof"},
		{"ResponseNotObject", `{"contents":[{"role":"user","parts":[{"functionResponse":{"name":"f","response":"x"}}]}]}`, "not an object"},
		{"BudgetAndLevel", `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"thinkingConfig":{"thinkingBudget":0,"thinkingLevel":"LOW"}}}`, "cannot both be set"},
		{"AllowedWithoutAny", `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"toolConfig":{"functionCallingConfig":{"mode":"AUTO","allowedFunctionNames":["f"]}}}`, "allowed_function_names"},
		{"SchemaWithoutJSON", `{"contents":[{"role":"user","parts":[{"text":"x"}]}],"generationConfig":{"responseJsonSchema":{"type":"object"}}}`, "response_mime_type"},
	} {
		t.Run(test.name, func(t *testing.T) {
			fake := providertest.NewGemini(t)
			req, _ := http.NewRequest("POST", fake.URL+"/v1beta/models/m:generateContent", strings.NewReader(test.body))
			req.Header.Set("x-goog-api-key", providertest.GeminiAPIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			if resp.StatusCode != 400 || !strings.Contains(b.String(), test.want) || !strings.Contains(b.String(), `"status": "INVALID_ARGUMENT"`) {
				t.Fatalf("%d %s", resp.StatusCode, b.String())
			}
		})
	}
}

func TestConfig(t *testing.T) {
	for _, test := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"Defaults", Config{APIKey: "k"}, true},
		{"Full", Config{Name: "g", BaseURL: "http://localhost:8080/proxy", APIVersion: "v1alpha", APIKey: "k"}, true},
		{"NoKey", Config{}, false},
		{"RelativeURL", Config{BaseURL: "localhost:8080", APIKey: "k"}, false},
		{"FTP", Config{BaseURL: "ftp://host", APIKey: "k"}, false},
		{"Query", Config{BaseURL: "https://host/?key=k", APIKey: "k"}, false},
		{"BadVersion", Config{APIVersion: "beta", APIKey: "k"}, false},
		{"VersionPath", Config{APIVersion: "v1/../x", APIKey: "k"}, false},
	} {
		t.Run(test.name, func(t *testing.T) {
			p, err := New(test.cfg)
			if (err == nil) != test.ok || (test.cfg.Validate() == nil) != test.ok {
				t.Fatalf("New = %v, %v", p, err)
			}
			if test.name == "Defaults" && (p.root != "https://generativelanguage.googleapis.com/v1beta" || p.name != "gemini" || p.client == nil) {
				t.Errorf("defaults: %+v", p)
			}
		})
	}
}

func TestConfigLogRedactsKey(t *testing.T) {
	const key = "AIzaSySecretSecretSecret"
	var b bytes.Buffer
	slog.New(slog.NewJSONHandler(&b, nil)).Info("provider", "config", Config{Name: "g", APIKey: key})
	slog.New(slog.NewTextHandler(&b, nil)).Info("provider", "config", Config{Name: "g", APIKey: key})
	if strings.Contains(b.String(), key) || !strings.Contains(b.String(), "REDACTED") {
		t.Fatalf("log: %s", b.String())
	}
}

// TestFakeRoutes checks the fake's endpoints answer as Gemini's do.
func TestFakeRoutes(t *testing.T) {
	fake := providertest.NewGemini(t)
	for _, test := range []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"StreamWithoutSSE", "POST", "/v1beta/models/gemini-2.5-pro:streamGenerateContent", `{"contents":[{"parts":[{"text":"hi"}]}]}`, 200, `[{"candidates": [{"content": {"parts": [{"text": "Hello"}]`},
		{"UnknownMethod", "POST", "/v1beta/models/m:countTokens", `{}`, 404, `"status": "NOT_FOUND"`},
		{"UnknownVersion", "POST", "/v2/models/m:generateContent", `{}`, 404, `"status": "NOT_FOUND"`},
		{"GET", "GET", "/v1beta/models/m:generateContent", ``, 404, `"status": "NOT_FOUND"`},
		{"EmbedWrongModel", "POST", "/v1beta/models/a:batchEmbedContents", `{"requests":[{"model":"models/b","content":{"parts":[{"text":"x"}]}}]}`, 400, "must be the batch's model"},
		{"EmbedTooMany", "POST", "/v1beta/models/a:batchEmbedContents", `{"requests":[` + strings.Repeat(`{"model":"models/a","content":{"parts":[{"text":"x"}]}},`, 100) + `{"model":"models/a","content":{"parts":[{"text":"x"}]}}]}`, 400, "at most 100"},
	} {
		t.Run(test.name, func(t *testing.T) {
			req, _ := http.NewRequest(test.method, fake.URL+test.path, strings.NewReader(test.body))
			req.Header.Set("x-goog-api-key", providertest.GeminiAPIKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			if resp.StatusCode != test.status || !strings.Contains(b.String(), test.want) {
				t.Fatalf("%d %s", resp.StatusCode, b.String())
			}
			if test.status == 200 {
				var arr []generateResponse
				if err := json.Unmarshal(b.Bytes(), &arr); err != nil || len(arr) != 3 || arr[0].ModelVersion != "gemini-2.5-pro" {
					t.Fatalf("array %v: %s", err, b.String())
				}
			}
		})
	}
}
