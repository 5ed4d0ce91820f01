package loadgen

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sseData splits an SSE body into its events' data, checking that every
// event is one "data: " line.
func sseData(t *testing.T, body []byte) []string {
	t.Helper()
	if !bytes.HasSuffix(body, []byte("\n\n")) {
		t.Fatalf("stream does not end with a blank line: %q", body)
	}
	var out []string
	for ev := range strings.SplitSeq(strings.TrimSuffix(string(body), "\n\n"), "\n\n") {
		d, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(d, "\n") {
			t.Fatalf("event %q is not one data line", ev)
		}
		out = append(out, d)
	}
	return out
}

type testChunk struct {
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Delta struct {
			Role    string  `json:"role"`
			Content *string `json:"content"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// checkStream checks a chat stream's events: the role, chunks content
// chunks spelling text, the finish reason, the usage chunk if withUsage
// (and "usage": null on every other chunk), then [DONE].
func checkStream(t *testing.T, body []byte, chunks int, text string, withUsage bool) {
	t.Helper()
	data := sseData(t, body)
	want := 1 + chunks + 1 + 1 // role, content, finish, [DONE]
	if withUsage {
		want++
	}
	if len(data) != want {
		t.Fatalf("%d events, want %d: %q", len(data), want, data)
	}
	if data[len(data)-1] != "[DONE]" {
		t.Fatalf("last event %q, want [DONE]", data[len(data)-1])
	}
	var content strings.Builder
	for i, d := range data[:len(data)-1] {
		var c testChunk
		if err := json.Unmarshal([]byte(d), &c); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		var raw map[string]json.RawMessage
		json.Unmarshal([]byte(d), &raw)
		if c.Object != "chat.completion.chunk" || c.Model != DefaultFakeModel {
			t.Errorf("event %d: object %q, model %q", i, c.Object, c.Model)
		}
		u, hasUsage := raw["usage"]
		isUsage := withUsage && i == len(data)-2
		switch {
		case !withUsage && hasUsage:
			t.Errorf("event %d has usage without include_usage", i)
		case withUsage && !isUsage && string(u) != "null":
			t.Errorf("event %d: usage %s, want null", i, u)
		case isUsage:
			if len(c.Choices) != 0 || c.Usage == nil || c.Usage.CompletionTokens != chunks ||
				c.Usage.TotalTokens != c.Usage.PromptTokens+chunks {
				t.Errorf("usage chunk %s", d)
			}
			continue
		}
		if len(c.Choices) != 1 {
			t.Fatalf("event %d: %d choices", i, len(c.Choices))
		}
		ch := c.Choices[0]
		switch {
		case i == 0:
			if ch.Delta.Role != "assistant" || ch.FinishReason != nil {
				t.Errorf("first event %s", d)
			}
		case i <= chunks:
			if ch.Delta.Content == nil || ch.FinishReason != nil {
				t.Errorf("content event %d: %s", i, d)
			} else {
				content.WriteString(*ch.Delta.Content)
			}
		default:
			if ch.FinishReason == nil || *ch.FinishReason != "stop" || ch.Delta.Content != nil {
				t.Errorf("finish event %s", d)
			}
		}
	}
	if content.String() != text {
		t.Errorf("content %q, want %q", content.String(), text)
	}
}

func TestFakeUpstream(t *testing.T) {
	t.Parallel()
	fake := startFake(t, FakeConfig{})
	three := startFake(t, FakeConfig{Chunks: 3, Model: "m", EmbeddingDims: 5})
	slow := startFake(t, FakeConfig{ChunkDelay: time.Millisecond})
	const text = "The quick brown fox jumps over the lazy"

	var atOnce []byte // the stream with usage, written at once
	tests := []struct {
		name        string
		base        string
		method      string
		path        string
		body        string
		status      int
		contentType string
		check       func(t *testing.T, body []byte)
	}{
		{"chat", fake.URL, "POST", "/v1/chat/completions", string(chatBody), 200, "application/json", func(t *testing.T, body []byte) {
			var c struct {
				Object  string `json:"object"`
				Model   string `json:"model"`
				Choices []struct {
					Message      struct{ Role, Content string } `json:"message"`
					FinishReason string                         `json:"finish_reason"`
				} `json:"choices"`
				Usage struct {
					PromptTokens     int `json:"prompt_tokens"`
					CompletionTokens int `json:"completion_tokens"`
					TotalTokens      int `json:"total_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(body, &c); err != nil {
				t.Fatal(err)
			}
			if c.Object != "chat.completion" || c.Model != DefaultFakeModel || len(c.Choices) != 1 ||
				c.Choices[0].Message.Role != "assistant" || c.Choices[0].Message.Content != text ||
				c.Choices[0].FinishReason != "stop" || c.Usage != (struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
				TotalTokens      int `json:"total_tokens"`
			}{12, 8, 20}) {
				t.Errorf("completion %s", body)
			}
		}},
		{"chat stream false", fake.URL, "POST", "/v1/chat/completions", `{"stream": false, "messages":[]}`, 200, "application/json", nil},
		{"stream", fake.URL, "POST", "/v1/chat/completions", `{"model":"x","stream": true}`, 200, "text/event-stream; charset=utf-8",
			func(t *testing.T, body []byte) { checkStream(t, body, 8, text, false) }},
		{"stream with usage", fake.URL, "POST", "/v1/chat/completions", string(streamBody), 200, "text/event-stream; charset=utf-8",
			func(t *testing.T, body []byte) { checkStream(t, body, 8, text, true); atOnce = body }},
		{"stream usage off", fake.URL, "POST", "/v1/chat/completions", `{"stream":true,"stream_options":{"include_usage":false}}`, 200, "text/event-stream; charset=utf-8",
			func(t *testing.T, body []byte) { checkStream(t, body, 8, text, false) }},
		{"stream of three", three.URL, "POST", "/v1/chat/completions", `{"stream":true,"stream_options":{"include_usage":true}}`, 200, "text/event-stream; charset=utf-8",
			func(t *testing.T, body []byte) {
				if !bytes.Contains(body, []byte(`"model":"m"`)) {
					t.Errorf("model not m: %s", body)
				}
				body = bytes.ReplaceAll(body, []byte(`"model":"m"`), []byte(`"model":"`+DefaultFakeModel+`"`))
				checkStream(t, body, 3, "The quick brown", true)
			}},
		{"stream with delay", slow.URL, "POST", "/v1/chat/completions", string(streamBody), 200, "text/event-stream; charset=utf-8",
			func(t *testing.T, body []byte) {
				checkStream(t, body, 8, text, true)
				// Same events as the stream written at once, bar the
				// creation time.
				if len(body) != len(atOnce) {
					t.Errorf("delayed stream is %d bytes, at once %d", len(body), len(atOnce))
				}
			}},
		{"embeddings", three.URL, "POST", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`, 200, "application/json", func(t *testing.T, body []byte) {
			var e struct {
				Object string `json:"object"`
				Data   []struct {
					Object    string    `json:"object"`
					Index     int       `json:"index"`
					Embedding []float64 `json:"embedding"`
				} `json:"data"`
				Model string `json:"model"`
				Usage struct {
					PromptTokens int `json:"prompt_tokens"`
					TotalTokens  int `json:"total_tokens"`
				} `json:"usage"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatal(err)
			}
			if e.Object != "list" || len(e.Data) != 1 || e.Data[0].Object != "embedding" || len(e.Data[0].Embedding) != 5 ||
				e.Model != DefaultFakeEmbeddingModel || e.Usage.TotalTokens != 12 {
				t.Errorf("embeddings %s", body)
			}
		}},
		{"models", fake.URL, "GET", "/v1/models", "", 200, "application/json", func(t *testing.T, body []byte) {
			var m struct {
				Object string `json:"object"`
				Data   []struct {
					ID, Object string
					OwnedBy    string `json:"owned_by"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			if m.Object != "list" || len(m.Data) != 2 || m.Data[0].ID != DefaultFakeModel || m.Data[1].ID != DefaultFakeEmbeddingModel || m.Data[0].Object != "model" {
				t.Errorf("models %s", body)
			}
		}},
		{"chat empty body", fake.URL, "POST", "/v1/chat/completions", "", 400, "application/json", checkFakeError},
		{"chat get", fake.URL, "GET", "/v1/chat/completions", "", 405, "application/json", checkFakeError},
		{"embeddings get", fake.URL, "GET", "/v1/embeddings", "", 405, "application/json", checkFakeError},
		{"embeddings empty", fake.URL, "POST", "/v1/embeddings", "", 400, "application/json", checkFakeError},
		{"models post", fake.URL, "POST", "/v1/models", "{}", 405, "application/json", checkFakeError},
		{"unknown", fake.URL, "POST", "/v1/completions", "{}", 404, "application/json", checkFakeError},
	}
	client := &http.Client{Transport: &http.Transport{}}
	for _, tt := range tests { // in order: "stream with delay" compares with "stream with usage"
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), tt.method, tt.base+tt.path, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || resp.Header.Get("Content-Type") != tt.contentType {
				t.Fatalf("status %d, content type %q; want %d, %q (%s)", resp.StatusCode, resp.Header.Get("Content-Type"), tt.status, tt.contentType, body)
			}
			if strings.HasPrefix(tt.contentType, "text/event-stream") {
				if resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
					t.Errorf("stream sent with length %d, transfer encoding %v; want chunked", resp.ContentLength, resp.TransferEncoding)
				}
			} else if resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
				t.Errorf("content length %q for %d bytes", resp.Header.Get("Content-Length"), len(body))
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}

func checkFakeError(t *testing.T, body []byte) {
	t.Helper()
	var e struct {
		Error *struct {
			Message string          `json:"message"`
			Type    string          `json:"type"`
			Param   json.RawMessage `json:"param"`
			Code    json.RawMessage `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Message == "" ||
		e.Error.Type != "invalid_request_error" || string(e.Error.Param) != "null" || string(e.Error.Code) != "null" {
		t.Errorf("error body %s (%v)", body, err)
	}
}

func TestJSONTrue(t *testing.T) {
	tests := []struct {
		body string
		want bool
	}{
		{`{"stream":true}`, true},
		{`{"stream" :	 true}`, true},
		{"{\"stream\":\n true}", true},
		{`{"stream":false}`, false},
		{`{"stream_options":{"include_usage":true}}`, false},
		{`{"messages":[{"content":"\"stream\" is a word"}],"stream":true}`, true},
		{`{"messages":[{"content":"say \"stream\""}]}`, false},
		{`{"stream"`, false},
		{``, false},
	}
	for _, tt := range tests {
		if got := jsonTrue([]byte(tt.body), `"stream"`); got != tt.want {
			t.Errorf("jsonTrue(%q) = %v, want %v", tt.body, got, tt.want)
		}
	}
}
