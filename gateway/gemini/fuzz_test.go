package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// FuzzStream feeds arbitrary bytes to the stream decoder as an upstream
// body: it must never panic, and must end either cleanly after a complete
// answer or with an error, never loop.
func FuzzStream(f *testing.F) {
	for _, name := range []string{"gemini/stream.sse", "gemini/stream_tool_call.sse"} {
		b := providertest.Fixture(f, name)
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte("data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"}}\n\n"))
	f.Add([]byte("data: {\"error\":{\"code\":503,\"status\":\"UNAVAILABLE\",\"details\":[{\"@type\":\"x/google.rpc.RetryInfo\",\"retryDelay\":\"1s\"}]}}\n\n"))
	f.Add([]byte("data: {\"candidates\":[{\"index\":-5,\"finishReason\":\"STOP\",\"content\":{\"parts\":[{\"functionCall\":{\"name\":\"f\",\"args\":null}}]}}]}\n\n"))
	f.Add([]byte(": comment\n\ndata: [DONE]\n\n"))
	p := &Provider{name: "fuzz"}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := newStream(p, io.NopCloser(bytes.NewReader(body)), "m")
		defer s.Close()
		for range len(body) + 3 { // every chunk consumes at least one event
			c, err := s.Next()
			if err == io.EOF {
				if !s.complete() {
					t.Fatal("io.EOF from an incomplete stream")
				}
				return
			}
			if err != nil {
				var pe *gateway.ProviderError
				if !errors.Is(err, gateway.ErrStreamCut) && !errors.Is(err, gateway.ErrStreamMalformed) && !errors.As(err, &pe) {
					t.Fatalf("unexpected error kind: %v", err)
				}
				return
			}
			if _, err := json.Marshal(c); err != nil {
				t.Fatalf("chunk does not encode: %v", err)
			}
		}
		t.Fatal("the stream did not end")
	})
}

// FuzzResponse feeds arbitrary bytes to the non-streamed response and error
// decoding: no panic, and a translated response always has a choice.
func FuzzResponse(f *testing.F) {
	f.Add(providertest.Fixture(f, "gemini/generate.json"))
	f.Add(providertest.Fixture(f, "gemini/generate_tool_call.json"))
	f.Add([]byte(`{"promptFeedback":{"blockReason":"OTHER"}}`))
	f.Add([]byte(`[{"error":{"code":404,"message":"m","status":"NOT_FOUND"}}]`))
	f.Add([]byte(`{"error":{"code":429,"details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"9999999999999s"}]}}`))
	p := &Provider{name: "fuzz"}
	f.Fuzz(func(t *testing.T, body []byte) {
		if e := parseError(body); e != nil {
			if pe := p.apiError(e, 500, nil); pe.RetryAfter < 0 || pe.Status == 0 && e.Code != 0 {
				t.Fatalf("error %+v from %+v", pe, e)
			}
		}
		var gr generateResponse
		if json.Unmarshal(body, &gr) != nil {
			return
		}
		resp, err := translateResponse(&gr, "m")
		if err != nil {
			return
		}
		if len(resp.Choices) == 0 {
			t.Fatal("a response without choices")
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatalf("response does not encode: %v", err)
		}
	})
}

// FuzzTranslateRequest checks that any chat request the gateway accepts
// either translates to a Gemini request or is refused with a 400, never a
// panic.
func FuzzTranslateRequest(f *testing.F) {
	f.Add([]byte(`{"model":"gemini-2.5-flash","messages":[{"role":"system","content":"s"},{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"required"}`))
	f.Add([]byte(`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"a","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"a","content":"x"}],"reasoning_effort":"high","response_format":{"type":"json_schema","json_schema":{"schema":{}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req gateway.ChatRequest
		if json.Unmarshal(b, &req) != nil {
			return
		}
		gr, err := translateRequest(&req)
		if err != nil {
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Status != 400 {
				t.Fatalf("err = %v", err)
			}
			return
		}
		if len(gr.Contents) == 0 {
			t.Fatal("no contents")
		}
		if _, err := json.Marshal(gr); err != nil {
			t.Fatalf("request does not encode: %v", err)
		}
	})
}
