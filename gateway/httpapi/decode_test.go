package httpapi

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// FuzzChatRequest: DecodeChat returns our error or a valid request, never
// panics, and a request it accepts survives re-encoding.
func FuzzChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}],"stream":true,"stream_options":{"include_usage":true}}`,
		`{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"1"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],"tool_choice":"auto"}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object"},"strict":true}},"stop":["a","b"],"temperature":0.5}`,
		`{"model":"m","messages":[]}`, `[]`, `{`, `{"model":1}`,
	} {
		f.Add([]byte(s))
	}
	if fs, _ := filepath.Glob("testdata/*.json"); fs != nil {
		for _, p := range fs {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeChat(body)
		if err != nil {
			if err.Status < 400 || err.Status > 499 || err.Message == "" || err.Type == "" {
				t.Fatalf("error %+v is not a client error with a message", err)
			}
			return
		}
		if req.Model == "" || len(req.Messages) == 0 {
			t.Fatalf("accepted a request without model or messages: %s", body)
		}
		b, merr := json.Marshal(req)
		if merr != nil {
			t.Fatalf("accepted request does not re-encode: %v", merr)
		}
		if _, err := DecodeChat(b); err != nil {
			t.Fatalf("re-encoded request %s refused: %v", b, err)
		}
	})
}

func FuzzEmbeddingsRequest(f *testing.F) {
	for _, s := range []string{`{"model":"m","input":"a"}`, `{"model":"m","input":["a","b"],"dimensions":8}`, `{"model":"m","input":[[1,2],[3]]}`, `{"model":"m","input":[]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeEmbeddings(body)
		if err != nil {
			if err.Status != 400 || err.Message == "" {
				t.Fatalf("error %+v", err)
			}
			return
		}
		if req.Input.Len() == 0 {
			t.Fatalf("accepted empty input: %s", body)
		}
		b, _ := json.Marshal(req)
		if _, err := DecodeEmbeddings(b); err != nil {
			t.Fatalf("re-encoded request %s refused: %v", b, err)
		}
	})
}
