package bedrock

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

const testModel = "anthropic.claude-3-5-sonnet-20241022-v2:0"

// newTestProvider returns a provider talking to a fresh fake Bedrock.
func newTestProvider(t testing.TB, mod ...func(*Config)) (*Provider, *providertest.Server) {
	t.Helper()
	srv := providertest.NewBedrock(t)
	cfg := Config{
		Name:            "bedrock-test",
		Region:          providertest.BedrockRegion,
		BaseURL:         srv.URL,
		AccessKeyID:     providertest.BedrockAccessKey,
		SecretAccessKey: providertest.BedrockSecretKey,
		HTTPClient:      srv.Client(),
	}
	for _, m := range mod {
		m(&cfg)
	}
	p, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p, srv
}

func userRequest(text string) *gateway.ChatRequest {
	return &gateway.ChatRequest{Model: testModel, Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent(text)}}}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Region: "us-east-1", AccessKeyID: "AK", SecretAccessKey: "SK"}
	tests := []struct {
		name    string
		mod     func(*Config)
		wantErr string
	}{
		{"valid", func(*Config) {}, ""},
		{"valid with base url", func(c *Config) { c.BaseURL = "https://vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com" }, ""},
		{"no region", func(c *Config) { c.Region = "" }, "region is required"},
		{"no access key", func(c *Config) { c.AccessKeyID = "" }, "access key id and secret access key are required"},
		{"no secret", func(c *Config) { c.SecretAccessKey = "" }, "access key id and secret access key are required"},
		{"relative base url", func(c *Config) { c.BaseURL = "bedrock.local" }, "absolute http or https URL"},
		{"bad scheme", func(c *Config) { c.BaseURL = "ftp://bedrock.local" }, "absolute http or https URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mod(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := New(context.Background(), c); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tt.wantErr)
			}
			if _, err := New(context.Background(), c); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

func TestConfigDoesNotLogSecrets(t *testing.T) {
	cfg := Config{Name: "b", Region: "us-east-1", AccessKeyID: "AKIASECRETID", SecretAccessKey: "very/secret+key", SessionToken: "session-token-xyz"}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("provider", "config", cfg)
	fmt.Fprintf(&buf, "%v %+v %#v %s", cfg, cfg, cfg, cfg)
	for _, secret := range []string{cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken} {
		if strings.Contains(buf.String(), secret) {
			t.Fatalf("output holds a credential: %s", buf.String())
		}
	}
	if !strings.Contains(buf.String(), "REDACTED") {
		t.Fatalf("output does not say the credentials are redacted: %s", buf.String())
	}
}

func TestChat(t *testing.T) {
	p, srv := newTestProvider(t)
	req := userRequest("Write a short poem about the sea.")
	resp, err := p.Chat(context.Background(), req)
	if err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if !strings.HasPrefix(resp.ID, "chatcmpl-") || resp.Object != "chat.completion" || resp.Model != testModel || resp.Created == 0 {
		t.Errorf("envelope = %q %q %q %d", resp.ID, resp.Object, resp.Model, resp.Created)
	}
	if len(resp.Choices) != 1 {
		t.Fatalf("choices = %d", len(resp.Choices))
	}
	c := resp.Choices[0]
	if c.FinishReason != gateway.FinishStop || c.Message.Role != "assistant" || !strings.HasPrefix(c.Message.Content.Text, "Here is a short poem") {
		t.Errorf("choice = %+v", c)
	}
	want := gateway.Usage{PromptTokens: 21 + 1200 + 53, CompletionTokens: 30, TotalTokens: 1304,
		PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 1200, CacheCreationTokens: 53}}
	if !usageEqual(resp.Usage, &want) {
		t.Errorf("usage = %+v, want %+v", resp.Usage, want)
	}
	reqs := srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("upstream requests = %d", len(reqs))
	}
	if got, want := reqs[0].Path, "/model/"+testModel+"/converse"; got != want {
		t.Errorf("path = %q, want %q", got, want)
	}
	if auth := reqs[0].Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential="+providertest.BedrockAccessKey+"/") || !strings.Contains(auth, "/us-east-1/bedrock/aws4_request") {
		t.Errorf("authorization = %q", auth)
	}
	if req.Messages[0].Content.Text != "Write a short poem about the sea." || len(req.Messages) != 1 {
		t.Error("Chat modified the request")
	}
}

// TestModelIDs checks that model ids the SDK must path-escape (inference
// profiles, ARNs with '/') reach the fake intact and still sign correctly.
func TestModelIDs(t *testing.T) {
	p, srv := newTestProvider(t)
	for _, model := range []string{
		"us.anthropic.claude-3-5-sonnet-20241022-v2:0",
		"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20241022-v2:0",
		"amazon.nova-pro-v1:0",
	} {
		req := userRequest("hi")
		req.Model = model
		if _, err := p.Chat(context.Background(), req); err != nil {
			t.Fatalf("Chat(%s): %v", model, err)
		}
		reqs := srv.Requests()
		if got := reqs[len(reqs)-1].Path; got != "/model/"+model+"/converse" {
			t.Errorf("path = %q", got)
		}
	}
}

func TestSignature(t *testing.T) {
	tests := []struct {
		name       string
		mod        func(*Config)
		wantStatus int
		wantType   string
	}{
		{"valid keys", func(*Config) {}, 0, ""},
		{"valid keys with session token", func(c *Config) { c.SessionToken = "FwoGZXIvYXdzEXAMPLETOKEN" }, 0, ""},
		{"wrong secret", func(c *Config) { c.SecretAccessKey = "not-the-secret" }, http.StatusForbidden, "InvalidSignatureException"},
		{"unknown access key", func(c *Config) { c.AccessKeyID = "AKIAUNKNOWN" }, http.StatusForbidden, "UnrecognizedClientException"},
		{"wrong region", func(c *Config) { c.Region = "eu-west-1" }, http.StatusForbidden, "InvalidSignatureException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, srv := newTestProvider(t, tt.mod)
			for _, stream := range []bool{false, true} {
				var err error
				if stream {
					var s gateway.Stream
					s, err = p.ChatStream(context.Background(), userRequest("hi"))
					if err == nil {
						err = drain(s)
					}
				} else {
					_, err = p.Chat(context.Background(), userRequest("hi"))
				}
				if tt.wantStatus == 0 {
					if err != nil {
						t.Fatalf("stream=%t: %v", stream, err)
					}
					continue
				}
				var pe *gateway.ProviderError
				if !errors.As(err, &pe) || pe.Status != tt.wantStatus || pe.Type != tt.wantType || pe.Provider != "bedrock-test" {
					t.Fatalf("stream=%t: err = %#v, want %d %s", stream, err, tt.wantStatus, tt.wantType)
				}
			}
			cfg := Config{}
			tt.mod(&cfg)
			if got := srv.Requests()[0].Header.Get("X-Amz-Security-Token"); got != cfg.SessionToken {
				t.Errorf("X-Amz-Security-Token = %q, want %q", got, cfg.SessionToken)
			}
		})
	}
}

// TestBearerTokenEnvIgnored: the SDK would sign with a Bedrock API key from
// the environment; the configured keys must win.
func TestBearerTokenEnvIgnored(t *testing.T) {
	t.Setenv("AWS_BEARER_TOKEN_BEDROCK", "bedrock-api-key-from-env")
	p, srv := newTestProvider(t)
	if _, err := p.Chat(context.Background(), userRequest("hi")); err != nil {
		t.Fatalf("Chat: %v", err)
	}
	if auth := srv.Requests()[0].Header.Get("Authorization"); !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
		t.Errorf("authorization = %q, want SigV4", auth)
	}
}

// TestFakeRefusesUnsignedRequests checks the fake's side of the signature
// check with hand-made requests: Bedrock's error shape for a missing or
// stale signature and for a body changed after signing.
func TestFakeRefusesUnsignedRequests(t *testing.T) {
	srv := providertest.NewBedrock(t)
	body := []byte(`{"messages":[{"role":"user","content":[{"text":"hi"}]}]}`)
	sign := func(r *http.Request, payload []byte, at time.Time) {
		sum := sha256.Sum256(payload)
		creds := aws.Credentials{AccessKeyID: providertest.BedrockAccessKey, SecretAccessKey: providertest.BedrockSecretKey}
		if err := v4.NewSigner().SignHTTP(context.Background(), creds, r, hex.EncodeToString(sum[:]), "bedrock", providertest.BedrockRegion, at); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		path     string
		prepare  func(r *http.Request)
		status   int
		wantType string
	}{
		{"signed", "/model/" + url.PathEscape(testModel) + "/converse", func(r *http.Request) { sign(r, body, time.Now()) }, 200, ""},
		{"no authorization", "/model/m/converse", func(*http.Request) {}, 403, "MissingAuthenticationTokenException"},
		{"body changed after signing", "/model/m/converse", func(r *http.Request) { sign(r, []byte(`{"messages":[]}`), time.Now()) }, 403, "InvalidSignatureException"},
		{"signed an hour ago", "/model/m/converse", func(r *http.Request) { sign(r, body, time.Now().Add(-time.Hour)) }, 403, "InvalidSignatureException"},
		{"unknown operation", "/model/m/invoke", func(r *http.Request) { sign(r, body, time.Now()) }, 404, "UnknownOperationException"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodPost, srv.URL+tt.path, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Content-Type", "application/json")
			tt.prepare(r)
			resp, err := srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var msg struct {
				Message string `json:"message"`
			}
			json.NewDecoder(resp.Body).Decode(&msg)
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d (%s), want %d", resp.StatusCode, msg.Message, tt.status)
			}
			if tt.wantType == "" {
				return
			}
			if typ, _, _ := strings.Cut(resp.Header.Get("X-Amzn-Errortype"), ":"); typ != tt.wantType || msg.Message == "" {
				t.Errorf("x-amzn-ErrorType %q, message %q; want %s", resp.Header.Get("X-Amzn-Errortype"), msg.Message, tt.wantType)
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name      string
		fault     providertest.Fault
		want      gateway.ProviderError
		retryable bool
	}{
		{"throttled with retry-after", providertest.Fault{Status: 429, RetryAfter: "7"},
			gateway.ProviderError{Status: 429, Type: "ThrottlingException", Message: "Too many requests, please wait before trying again.", RetryAfter: 7 * time.Second}, true},
		{"internal error", providertest.Fault{Status: 500},
			gateway.ProviderError{Status: 500, Type: "InternalServerException", Message: "The server encountered an internal error while processing the request."}, true},
		{"unavailable", providertest.Fault{Status: 503, Message: "Bedrock is busy"},
			gateway.ProviderError{Status: 503, Type: "ServiceUnavailableException", Message: "Bedrock is busy"}, true},
		{"validation", providertest.Fault{Status: 400, Message: "messages.0.content: blank"},
			gateway.ProviderError{Status: 400, Type: "ValidationException", Message: "messages.0.content: blank"}, false},
		{"model not ready", providertest.Fault{Status: 429, Type: "ModelNotReadyException", Message: "model is not ready"},
			gateway.ProviderError{Status: 429, Type: "ModelNotReadyException", Message: "model is not ready"}, true},
		{"access denied", providertest.Fault{Status: 403},
			gateway.ProviderError{Status: 403, Type: "AccessDeniedException", Message: "You don't have access to the model with the specified model ID."}, true},
		{"not found", providertest.Fault{Status: 404},
			gateway.ProviderError{Status: 404, Type: "ResourceNotFoundException", Message: "Could not resolve the foundation model from the provided model identifier."}, false},
		{"model timeout", providertest.Fault{Status: 408},
			gateway.ProviderError{Status: 408, Type: "ModelTimeoutException", Message: "Model has timed out in processing the request. Try your request again."}, true},
		{"quota", providertest.Fault{Status: 400, Type: "ServiceQuotaExceededException", Message: "quota exceeded"},
			gateway.ProviderError{Status: 400, Type: "ServiceQuotaExceededException", Message: "quota exceeded"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, srv := newTestProvider(t)
			for _, stream := range []bool{false, true} {
				srv.Push(tt.fault)
				var err error
				if stream {
					_, err = p.ChatStream(context.Background(), userRequest("hi"))
				} else {
					_, err = p.Chat(context.Background(), userRequest("hi"))
				}
				var pe *gateway.ProviderError
				if !errors.As(err, &pe) {
					t.Fatalf("stream=%t: err = %v, want a ProviderError", stream, err)
				}
				want := tt.want
				want.Provider = "bedrock-test"
				if *pe != want {
					t.Errorf("stream=%t: error = %+v, want %+v", stream, *pe, want)
				}
				if _, retryable, _ := gateway.Classify(err); retryable != tt.retryable {
					t.Errorf("stream=%t: retryable = %t", stream, retryable)
				}
			}
			if n := len(srv.Requests()); n != 2 {
				t.Errorf("upstream requests = %d, want 2 (the SDK must not retry)", n)
			}
		})
	}
}

func TestTransportError(t *testing.T) {
	p, srv := newTestProvider(t)
	srv.Close()
	_, err := p.Chat(context.Background(), userRequest("hi"))
	var pe *gateway.ProviderError
	if err == nil || errors.As(err, &pe) {
		t.Fatalf("err = %v, want a transport error", err)
	}
	if outcome, retryable, _ := gateway.Classify(err); outcome != gateway.OutcomeError || !retryable {
		t.Errorf("classified %s retryable=%t", outcome, retryable)
	}
}

func TestContextEnds(t *testing.T) {
	p, srv := newTestProvider(t)
	srv.Push(providertest.Fault{Hang: true}, providertest.Fault{Hang: true})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := p.Chat(ctx, userRequest("hi")); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Chat after the deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := p.ChatStream(ctx, userRequest("hi")); !errors.Is(err, context.Canceled) {
		t.Errorf("ChatStream canceled: %v", err)
	}
}

// TestConcurrentCalls runs calls and streams at once on one provider: with
// the race detector on it guards ownProtocol (the SDK's shared event-stream
// decoder).
func TestConcurrentCalls(t *testing.T) {
	p, srv := newTestProvider(t)
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			if i%2 == 0 {
				_, err := p.Chat(context.Background(), userRequest("hi"))
				errs <- err
				return
			}
			s, err := p.ChatStream(context.Background(), userRequest("hi"))
			if err != nil {
				errs <- err
				return
			}
			chunks, err := collect(s)
			if err == nil && !strings.HasPrefix(text(chunks), "Waves fold silver") {
				err = fmt.Errorf("stream text %q", text(chunks))
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := len(srv.Requests()); n != 16 {
		t.Errorf("upstream requests = %d", n)
	}
}

func usageEqual(a, b *gateway.Usage) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}

func BenchmarkChat(b *testing.B) {
	p, _ := newTestProvider(b)
	req := userRequest("Write a short poem about the sea.")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Chat(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
