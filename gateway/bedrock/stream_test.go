package bedrock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// collect reads a stream to its end; err is nil after io.EOF.
func collect(s gateway.Stream) ([]*gateway.ChatChunk, error) {
	defer s.Close()
	var chunks []*gateway.ChatChunk
	for {
		c, err := s.Next()
		if err == io.EOF {
			return chunks, nil
		}
		if err != nil {
			return chunks, err
		}
		chunks = append(chunks, c)
	}
}

func drain(s gateway.Stream) error {
	_, err := collect(s)
	return err
}

// text joins the content deltas of chunks.
func text(chunks []*gateway.ChatChunk) string {
	var b strings.Builder
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				b.WriteString(*ch.Delta.Content)
			}
		}
	}
	return b.String()
}

func TestChatStream(t *testing.T) {
	p, srv := newTestProvider(t)
	s, err := p.ChatStream(context.Background(), userRequest("Write a short poem about the sea."))
	if err != nil {
		t.Fatalf("ChatStream: %v", err)
	}
	chunks, err := collect(s)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if got := srv.Requests()[0].Path; got != "/model/"+testModel+"/converse-stream" {
		t.Errorf("path = %q", got)
	}
	// messageStart, 3 text deltas, messageStop, metadata.
	if len(chunks) != 6 {
		t.Fatalf("chunks = %d, want 6: %s", len(chunks), mustJSON(chunks))
	}
	for _, c := range chunks {
		if c.Object != "chat.completion.chunk" || c.ID != chunks[0].ID || !strings.HasPrefix(c.ID, "chatcmpl-") || c.Model != testModel {
			t.Errorf("chunk envelope = %s", mustJSON(c))
		}
	}
	if d := chunks[0].Choices[0].Delta; d.Role != "assistant" {
		t.Errorf("first delta = %s", mustJSON(d))
	}
	if got, want := text(chunks), "Waves fold silver under a patient moon,\nthe tide keeps time in a low, salt tune."; got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	if fr := chunks[4].Choices[0].FinishReason; fr == nil || *fr != gateway.FinishStop {
		t.Errorf("finish chunk = %s", mustJSON(chunks[4]))
	}
	last := chunks[5]
	want := &gateway.Usage{PromptTokens: 1274, CompletionTokens: 19, TotalTokens: 1293,
		PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 1200, CacheCreationTokens: 53}}
	if len(last.Choices) != 0 || !usageEqual(last.Usage, want) {
		t.Errorf("usage chunk = %s", mustJSON(last))
	}
	if b, _ := json.Marshal(last); !bytes.Contains(b, []byte(`"choices":[]`)) {
		t.Errorf("usage chunk encodes choices as %s", b)
	}
	if !usageEqual(s.Usage(), want) {
		t.Errorf("Usage() = %+v", s.Usage())
	}
}

func TestChatStreamToolUse(t *testing.T) {
	p, _ := newTestProvider(t)
	req := userRequest("What is the most popular song on WZPZ?")
	req.Tools = []gateway.Tool{{Type: "function", Function: gateway.FunctionDecl{Name: "top_song", Parameters: json.RawMessage(`{"type":"object","properties":{"sign":{"type":"string"}},"required":["sign"]}`)}}}
	s, err := p.ChatStream(context.Background(), req)
	if err != nil {
		t.Fatalf("ChatStream: %v", err)
	}
	chunks, err := collect(s)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	var args strings.Builder
	var starts []gateway.ToolCall
	var finish string
	for _, c := range chunks {
		for _, ch := range c.Choices {
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil || *tc.Index != 0 {
					t.Fatalf("tool call delta index = %v", tc.Index)
				}
				if tc.ID != "" {
					starts = append(starts, tc)
				}
				args.WriteString(tc.Function.Arguments)
			}
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
	}
	if len(starts) != 1 || starts[0].ID != "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q" || starts[0].Type != "function" || starts[0].Function.Name != "top_song" {
		t.Errorf("tool call starts = %s", mustJSON(starts))
	}
	if got := args.String(); got != `{"sign": "WZPZ", "limit": 1}` {
		t.Errorf("arguments = %q", got)
	}
	if finish != gateway.FinishToolCalls {
		t.Errorf("finish = %q", finish)
	}
	if got := text(chunks); got != "I'll look up the most popular song on that station." {
		t.Errorf("text = %q", got)
	}
}

// TestStreamFaults runs the text stream (7 events: messageStart, 3 deltas,
// contentBlockStop, messageStop, metadata) through every stream fault.
func TestStreamFaults(t *testing.T) {
	const events = 7
	// chunksBefore is the number of chunks the first n events yield.
	chunksBefore := []int{0, 1, 2, 3, 4, 4, 5, 6}
	type want struct {
		eof    bool
		is     error
		status int
		typ    string
	}
	type tc struct {
		name  string
		fault providertest.Fault
		n     int // events delivered intact
		want  want
	}
	var tests []tc
	for n := 1; n < events; n++ {
		tests = append(tests, tc{"cut after " + strconv.Itoa(n), providertest.Fault{CutAfter: n}, n, want{is: gateway.ErrStreamCut}})
	}
	tests = append(tests, tc{"cut after the last event", providertest.Fault{CutAfter: events}, events, want{eof: true}})
	for n := 1; n <= events; n++ {
		tests = append(tests, tc{"malformed at " + strconv.Itoa(n), providertest.Fault{MalformedAt: n}, n - 1, want{is: gateway.ErrStreamMalformed}})
	}
	for _, e := range []struct {
		typ    string
		status int
	}{
		{"internalServerException", 500},
		{"modelStreamErrorException", 424},
		{"throttlingException", 429},
		{"validationException", 400},
		{"serviceUnavailableException", 503},
	} {
		for _, n := range []int{1, 3, events} {
			code := strings.ToUpper(e.typ[:1]) + e.typ[1:]
			tests = append(tests, tc{e.typ + " at " + strconv.Itoa(n), providertest.Fault{ErrorEventAt: n, Type: e.typ}, n - 1, want{status: e.status, typ: code}})
		}
	}
	tests = append(tests, tc{"default exception", providertest.Fault{ErrorEventAt: 2}, 1, want{status: 500, typ: "InternalServerException"}})

	p, srv := newTestProvider(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Push(tt.fault)
			s, err := p.ChatStream(context.Background(), userRequest("hi"))
			if err != nil {
				t.Fatalf("ChatStream: %v", err)
			}
			chunks, err := collect(s)
			if got := len(chunks); got != chunksBefore[tt.n] {
				t.Errorf("chunks before the end = %d, want %d", got, chunksBefore[tt.n])
			}
			switch {
			case tt.want.eof:
				if err != nil {
					t.Fatalf("err = %v, want a clean end", err)
				}
			case tt.want.is != nil:
				if !errors.Is(err, tt.want.is) {
					t.Fatalf("err = %v, want %v", err, tt.want.is)
				}
			default:
				var pe *gateway.ProviderError
				if !errors.As(err, &pe) || pe.Status != tt.want.status || pe.Type != tt.want.typ || pe.Provider != "bedrock-test" || pe.Message == "" {
					t.Fatalf("err = %#v, want status %d %s", err, tt.want.status, tt.want.typ)
				}
			}
			if err != nil {
				// The error sticks.
				if _, again := s.Next(); again == nil || again == io.EOF {
					t.Errorf("Next after the error = %v", again)
				}
			}
		})
	}
}

// frame encodes one event-stream message.
func frame(t testing.TB, headers map[string]string, payload string) []byte {
	t.Helper()
	var msg eventstream.Message
	for k, v := range headers {
		msg.Headers.Set(k, eventstream.StringValue(v))
	}
	msg.Payload = []byte(payload)
	var b bytes.Buffer
	if err := eventstream.NewEncoder().Encode(&b, msg); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func event(t testing.TB, typ, payload string) []byte {
	return frame(t, map[string]string{":event-type": typ, ":content-type": "application/json", ":message-type": "event"}, payload)
}

// rawProvider returns a provider whose upstream answers every stream with
// the given body (no signature check: the framing is under test).
func rawProvider(t testing.TB, h http.HandlerFunc) *Provider {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	p, err := New(context.Background(), Config{Region: "us-east-1", BaseURL: srv.URL, AccessKeyID: "AK", SecretAccessKey: "SK", HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func streamBody(frames ...[]byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		for _, f := range frames {
			w.Write(f)
		}
	}
}

func TestStreamFraming(t *testing.T) {
	start := event(t, "messageStart", `{"role":"assistant"}`)
	delta := event(t, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"hi"}}`)
	stop := event(t, "messageStop", `{"stopReason":"end_turn"}`)
	meta := event(t, "metadata", `{"usage":{"inputTokens":3,"outputTokens":1,"totalTokens":4},"metrics":{"latencyMs":10}}`)
	tests := []struct {
		name    string
		frames  [][]byte
		wantErr error // nil: a clean end
		status  int
	}{
		{"complete", [][]byte{start, delta, stop, meta}, nil, 0},
		{"no metadata", [][]byte{start, delta, stop}, gateway.ErrStreamCut, 0},
		{"no messageStop", [][]byte{start, delta, meta}, gateway.ErrStreamCut, 0},
		{"empty body", nil, gateway.ErrStreamCut, 0},
		{"half a frame", [][]byte{start, delta[:len(delta)/2]}, gateway.ErrStreamCut, 0},
		{"bad JSON", [][]byte{start, event(t, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":`), stop, meta}, gateway.ErrStreamMalformed, 0},
		{"wrong JSON type", [][]byte{start, event(t, "contentBlockDelta", `{"contentBlockIndex":"zero","delta":{"text":"x"}}`), stop, meta}, gateway.ErrStreamMalformed, 0},
		{"no message type", [][]byte{start, frame(t, map[string]string{":event-type": "messageStop"}, `{}`)}, gateway.ErrStreamMalformed, 0},
		{"garbage", [][]byte{start, []byte("HTTP/1.1 502 Bad Gateway\r\n\r\n<html>bad gateway</html>")}, gateway.ErrStreamMalformed, 0},
		{"delta before messageStart", [][]byte{delta, start, stop, meta}, gateway.ErrStreamMalformed, 0},
		{"tool delta without start", [][]byte{start, event(t, "contentBlockDelta", `{"contentBlockIndex":1,"delta":{"toolUse":{"input":"{}"}}}`), stop, meta}, gateway.ErrStreamMalformed, 0},
		{"second messageStop", [][]byte{start, stop, stop, meta}, gateway.ErrStreamMalformed, 0},
		{"unknown event is skipped", [][]byte{start, event(t, "futureEvent", `{"x":1}`), delta, stop, meta}, nil, 0},
		{"error message", [][]byte{start, frame(t, map[string]string{":message-type": "error", ":error-code": "InternalFailure", ":error-message": "boom"}, ``)}, nil, 500},
		{"unknown exception", [][]byte{start, frame(t, map[string]string{":message-type": "exception", ":exception-type": "brandNewException", ":content-type": "application/json"}, `{"message":"new"}`)}, nil, 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := rawProvider(t, streamBody(tt.frames...))
			s, err := p.ChatStream(context.Background(), userRequest("hi"))
			if err != nil {
				t.Fatalf("ChatStream: %v", err)
			}
			_, err = collect(s)
			switch {
			case tt.status != 0:
				var pe *gateway.ProviderError
				if !errors.As(err, &pe) || pe.Status != tt.status {
					t.Fatalf("err = %v, want status %d", err, tt.status)
				}
			case tt.wantErr == nil:
				if err != nil {
					t.Fatalf("err = %v, want a clean end", err)
				}
			default:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
			}
		})
	}
}

// blockingUpstream sends messageStart and a delta, then holds the stream
// open until the client goes away. It answers without reading the request
// first, which used to let net/http close the connection under the stream
// (see recordingClient).
func blockingUpstream(t testing.TB) http.HandlerFunc {
	start := event(t, "messageStart", `{"role":"assistant"}`)
	delta := event(t, "contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"hi"}}`)
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
		w.Write(start)
		w.Write(delta)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
}

func TestStreamCloseWhileReading(t *testing.T) {
	p := rawProvider(t, blockingUpstream(t))
	s, err := p.ChatStream(context.Background(), userRequest("hi"))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Next(); err != nil {
			t.Fatalf("Next: %v", err)
		}
	}
	time.AfterFunc(20*time.Millisecond, func() { s.Close() })
	_, err = s.Next()
	if err == nil || err == io.EOF || !errors.Is(err, errClosed) {
		t.Fatalf("Next after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestStreamContextCanceled(t *testing.T) {
	p := rawProvider(t, blockingUpstream(t))
	ctx, cancel := context.WithCancel(context.Background())
	s, err := p.ChatStream(ctx, userRequest("hi"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 2 {
		if _, err := s.Next(); err != nil {
			t.Fatalf("Next: %v", err)
		}
	}
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := s.Next(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Next after cancel = %v", err)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
