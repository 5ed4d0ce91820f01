package anthropic

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// tapAll writes b to a new tap in random pieces.
func tapAll(b []byte, rng *rand.Rand) *StreamTap {
	t := NewStreamTap()
	for len(b) > 0 {
		n := 1 + rng.IntN(min(len(b), 64))
		if rng.IntN(8) == 0 {
			n = min(len(b), 1+rng.IntN(4096))
		}
		if m, err := t.Write(b[:n]); m != n || err != nil {
			panic("tap refused a write")
		}
		b = b[n:]
	}
	return t
}

func TestStreamTap(t *testing.T) {
	text := providertest.Fixture(t, "anthropic/message_stream.sse")
	tool := providertest.Fixture(t, "anthropic/message_stream_tool_use.sse")
	newer := []byte("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"x\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":7,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":3,\"output_tokens\":9}}\n\n" +
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	usage := func(in, out, cached, created int) *gateway.Usage {
		return &gateway.Usage{PromptTokens: in + cached + created, CompletionTokens: out, TotalTokens: in + cached + created + out,
			PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: cached, CacheCreationTokens: created}}
	}
	for _, tc := range []struct {
		name     string
		stream   []byte
		usage    *gateway.Usage
		stop     string
		complete bool
		err      func(error) bool
	}{
		{"text", text, usage(25, 15, 0, 0), "end_turn", true, nil},
		{"tool use", tool, usage(472, 89, 0, 0), "tool_use", true, nil},
		{"crlf", bytes.ReplaceAll(tool, []byte("\n"), []byte("\r\n")), usage(472, 89, 0, 0), "tool_use", true, nil},
		{"cr", bytes.ReplaceAll(text, []byte("\n"), []byte("\r")), usage(25, 15, 0, 0), "end_turn", true, nil},
		{"delta usage", newer, usage(7, 9, 100, 3), "max_tokens", true, nil},
		{"cut", text[:bytes.Index(text, []byte("event: message_delta"))], usage(25, 1, 0, 0), "", false, nil},
		{"no trailing blank line", bytes.TrimSuffix(text, []byte("\n\n")), usage(25, 15, 0, 0), "end_turn", false, nil},
		{"error event", append(bytes.Clone(text[:bytes.Index(text, []byte("event: message_delta"))]), "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"...),
			usage(25, 1, 0, 0), "", false, func(err error) bool {
				var pe *gateway.ProviderError
				return errors.As(err, &pe) && pe.Status == 529 && pe.Type == TypeOverloaded && pe.Message == "Overloaded"
			}},
		{"malformed", []byte("event: message_start\ndata: {\"type\":\"mess\n\n"), nil, "", false, func(err error) bool { return errors.Is(err, gateway.ErrStreamMalformed) }},
		{"huge delta skipped", append([]byte("event: content_block_delta\ndata: {\"x\":\""+strings.Repeat("a", maxTapLine+10)+"\"}\n\n"), newer...), usage(7, 9, 100, 3), "max_tokens", true, nil},
		{"huge message_delta", append(bytes.Clone(newer[:bytes.Index(newer, []byte("event: message_stop"))]), "event: message_delta\ndata: {\"x\":\""+strings.Repeat("a", maxTapLine+10)+"\"}\n\n"...),
			usage(7, 9, 100, 3), "max_tokens", false, func(err error) bool { return errors.Is(err, gateway.ErrStreamMalformed) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, uint64(len(tc.stream))))
			rounds := 50
			if len(tc.stream) > 1<<20 {
				rounds = 2
			}
			for i := 0; i < rounds; i++ {
				tap := tapAll(tc.stream, rng)
				if !reflect.DeepEqual(tap.Usage(), tc.usage) || tap.StopReason() != tc.stop || tap.Complete() != tc.complete {
					t.Fatalf("round %d: usage %+v stop %q complete %v", i, tap.Usage(), tap.StopReason(), tap.Complete())
				}
				if (tc.err == nil) != (tap.Err() == nil) || tc.err != nil && !tc.err(tap.Err()) {
					t.Fatalf("round %d: err %v", i, tap.Err())
				}
			}
		})
	}
}

// TestStreamTapForward taps a passthrough stream as the gateway does.
func TestStreamTapForward(t *testing.T) {
	p, fake := newProvider(t)
	body := []byte(`{"model":"claude-test","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	for _, tc := range []struct {
		name     string
		fault    providertest.Fault
		complete bool
		errEvent bool
	}{
		{"clean", providertest.Fault{}, true, false},
		{"cut", providertest.Fault{CutAfter: 9}, false, false},
		{"error event", providertest.Fault{ErrorEventAt: 9}, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake.Push(tc.fault)
			resp, err := p.Forward(context.Background(), &gateway.RawRequest{Stream: true, Body: body, Header: http.Header{}})
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			tap := NewStreamTap()
			var client bytes.Buffer
			io.Copy(&client, io.TeeReader(resp.Body, tap))
			if tap.Complete() != tc.complete || (tap.Err() != nil) != tc.errEvent || tap.Usage() == nil || tap.Usage().PromptTokens != 25 {
				t.Fatalf("complete %v err %v usage %+v", tap.Complete(), tap.Err(), tap.Usage())
			}
			if tc.complete && (tap.Usage().CompletionTokens != 15 || tap.StopReason() != StopEndTurn) {
				t.Fatalf("usage %+v stop %q", tap.Usage(), tap.StopReason())
			}
		})
	}
}

func TestUsageFromBody(t *testing.T) {
	u, stop, err := UsageFromBody(providertest.Fixture(t, "anthropic/message.json"))
	want := &gateway.Usage{PromptTokens: 4015, CompletionTokens: 503, TotalTokens: 4518, PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 1800, CacheCreationTokens: 120}}
	if err != nil || stop != StopEndTurn || !reflect.DeepEqual(u, want) {
		t.Fatalf("%+v %q %v", u, stop, err)
	}
	u, stop, err = UsageFromBody([]byte(`{"type":"error","error":{"type":"rate_limit_error","message":"slow"},"request_id":"req_1"}`))
	var pe *gateway.ProviderError
	if u != nil || stop != "" || !errors.As(err, &pe) || pe.Status != 429 || pe.Type != TypeRateLimit || pe.Message != "slow" {
		t.Fatalf("%+v %q %v", u, stop, err)
	}
	if _, _, err := UsageFromBody([]byte(`{"type":`)); !errors.Is(err, gateway.ErrStreamMalformed) {
		t.Fatalf("err %v", err)
	}
	if u, _, err := UsageFromBody([]byte(`{"type":"message"}`)); u != nil || err != nil {
		t.Fatalf("%+v %v", u, err)
	}
}
