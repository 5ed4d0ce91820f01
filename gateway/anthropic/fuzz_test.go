package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"testing"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// FuzzParseRequest checks that ParseRequest never panics and returns either
// a *RequestError or a request that validates, re-encodes to JSON that
// parses again to the same encoding (a fixed point), and translates to the
// OpenAI shape and back without panicking.
func FuzzParseRequest(f *testing.F) {
	f.Add(providertest.Fixture(f, "anthropic/request.json"))
	f.Add(providertest.Fixture(f, "anthropic/request_tool_use.json"))
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":"x"},{"role":"assistant","content":""}]}`))
	f.Add([]byte(`{"model":"m","max_tokens":1,"tools":[{"type":"web_search_20250305","name":"web_search","max_uses":5}],"messages":[{"role":"user","content":[{"type":"search_result","source":"s","title":"t","content":[]},{"type":"document","source":{"type":"content","content":"x"}}]}]}`))
	f.Add([]byte(`{"model":"m","max_tokens":1,"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","is_error":true,"content":[{"type":"image","source":{"type":"url","url":"https://x"}}]}]}],"output_format":{"type":"json_schema","schema":{}}}`))
	f.Add([]byte(`{"model":"m","max_tokens":0,"messages":[]}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := ParseRequest(body)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) || re.Status != 400 || re.Type != TypeInvalidRequest || re.Message == "" {
				t.Fatalf("error %v is not a 400 RequestError", err)
			}
			if r != nil {
				t.Fatal("a request with an error")
			}
			return
		}
		if err := r.validate(); err != nil {
			t.Fatalf("parsed request does not validate: %v", err)
		}
		enc, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("encode: %v", err)
		}
		r2, err := ParseRequest(enc)
		if err != nil {
			t.Fatalf("re-encoded request %s does not parse: %v", enc, err)
		}
		enc2, _ := json.Marshal(r2)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not a fixed point:\n%s\n%s", enc, enc2)
		}
		c, err := ToChat(r)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("ToChat error %v is not a RequestError", err)
			}
			return
		}
		if _, _, err := fromChat(c, DefaultMaxTokens, r.Stream); err != nil {
			var ge *gateway.Error
			if !errors.As(err, &ge) || ge.Status != 400 {
				t.Fatalf("fromChat error %v is not a 400", err)
			}
		}
	})
}

// BenchmarkStreamTranslate measures translating a streamed answer (text
// then a tool call, 29 events) into OpenAI chunks.
func BenchmarkStreamTranslate(b *testing.B) {
	sse := providertest.Fixture(b, "anthropic/message_stream_tool_use.sse")
	b.SetBytes(int64(len(sse)))
	b.ReportAllocs()
	for b.Loop() {
		s := newStream("anthropic", io.NopCloser(bytes.NewReader(sse)), plan{}, 1)
		for {
			if _, err := s.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
	}
}

// BenchmarkStreamWriter measures writing a streamed answer's chunks as
// Messages events.
func BenchmarkStreamWriter(b *testing.B) {
	sse := providertest.Fixture(b, "anthropic/message_stream_tool_use.sse")
	s := newStream("anthropic", io.NopCloser(bytes.NewReader(sse)), plan{}, 1)
	chunks, err := collect(b, s)
	if err != io.EOF {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		w := NewStreamWriter(io.Discard, nil, "m", "msg_1")
		for _, c := range chunks {
			if err := w.WriteChunk(c); err != nil {
				b.Fatal(err)
			}
		}
		if err := w.Finish(nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkStreamTap measures tapping a passed-through stream.
func BenchmarkStreamTap(b *testing.B) {
	sse := providertest.Fixture(b, "anthropic/message_stream_tool_use.sse")
	b.SetBytes(int64(len(sse)))
	b.ReportAllocs()
	for b.Loop() {
		t := NewStreamTap()
		for p := sse; len(p) > 0; p = p[min(len(p), 512):] {
			t.Write(p[:min(len(p), 512)])
		}
		if !t.Complete() {
			b.Fatal("incomplete")
		}
	}
}
