package gemini

import (
	"context"
	"io"
	"testing"

	"aigw/gateway/providertest"
)

// BenchmarkChatStream measures a whole streamed call against the fake:
// request translation, the HTTP round trip, SSE decoding and chunk
// translation.
func BenchmarkChatStream(b *testing.B) {
	p, _ := newProvider(b, providertest.GeminiAPIKey)
	req := chatReq("gemini-2.5-flash")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		s, err := p.ChatStream(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		for {
			if _, err := s.Next(); err != nil {
				if err != io.EOF {
					b.Fatal(err)
				}
				break
			}
		}
		s.Close()
	}
}

// BenchmarkTranslateRequest measures the request translation alone, on a
// tool-using conversation.
func BenchmarkTranslateRequest(b *testing.B) {
	req := parseChatRequest(b, `{"model":"gemini-2.5-flash","messages":[
		{"role":"system","content":"You are a weather bot."},
		{"role":"user","content":"Weather in Boston?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Boston\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"{\"temp\":20}"},
		{"role":"user","content":"And tomorrow?"}],
		"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}],
		"max_tokens":256,"temperature":0.2}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := translateRequest(req); err != nil {
			b.Fatal(err)
		}
	}
}
