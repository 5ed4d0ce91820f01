package gemini

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"aigw/gateway"
	"aigw/gateway/providertest"
)

// collect reads a stream to its end: the content text, the chunks, and
// the error that ended it (nil for io.EOF).
func collect(t testing.TB, s gateway.Stream) (string, []*gateway.ChatChunk, error) {
	t.Helper()
	defer s.Close()
	var b strings.Builder
	var chunks []*gateway.ChatChunk
	for {
		c, err := s.Next()
		if err != nil {
			if err == io.EOF {
				if _, err := s.Next(); err != io.EOF {
					t.Errorf("Next after io.EOF = %v", err)
				}
				return b.String(), chunks, nil
			}
			if _, again := s.Next(); again != err {
				t.Errorf("Next after %v = %v", err, again)
			}
			return b.String(), chunks, err
		}
		if c.Object != "chat.completion.chunk" || c.ID == "" || c.Created == 0 {
			t.Errorf("chunk header %+v", c)
		}
		chunks = append(chunks, c)
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				b.WriteString(*ch.Delta.Content)
			}
		}
	}
}

// summary renders chunks compactly: per chunk, its choices as
// index:role|content|r=reasoning|tc=calls|fin=reason, or its usage.
func summary(chunks []*gateway.ChatChunk) string {
	var out []string
	for _, c := range chunks {
		var cs []string
		for _, ch := range c.Choices {
			s := fmt.Sprintf("%d:%s", ch.Index, ch.Delta.Role)
			if ch.Delta.Content != nil {
				s += fmt.Sprintf("|%q", *ch.Delta.Content)
			}
			if ch.Delta.ReasoningContent != nil {
				s += fmt.Sprintf("|r=%q", *ch.Delta.ReasoningContent)
			}
			for _, tc := range ch.Delta.ToolCalls {
				id := tc.ID
				if strings.HasPrefix(id, "call_") {
					id = "call_*"
				}
				s += fmt.Sprintf("|tc=%d/%s/%s%s", *tc.Index, id, tc.Function.Name, tc.Function.Arguments)
			}
			if ch.FinishReason != nil {
				s += "|fin=" + *ch.FinishReason
			}
			cs = append(cs, s)
		}
		if c.Usage != nil {
			cs = append(cs, fmt.Sprintf("usage=%d/%d/%d", c.Usage.PromptTokens, c.Usage.CompletionTokens, c.Usage.TotalTokens))
		}
		out = append(out, strings.Join(cs, " "))
	}
	return strings.Join(out, "\n")
}

func TestChatStream(t *testing.T) {
	p, fake := newProvider(t, providertest.GeminiAPIKey)
	s, err := p.ChatStream(context.Background(), chatReq("gemini-2.5-pro"))
	if err != nil {
		t.Fatal(err)
	}
	text, chunks, err := collect(t, s)
	if err != nil {
		t.Fatal(err)
	}
	want := `0:assistant|"Hello"
0:|"! How can I"
0:|" help you today?"|fin=stop
usage=9/21/30`
	if got := summary(chunks); got != want || text != "Hello! How can I help you today?" {
		t.Fatalf("chunks\n%s\nwant\n%s", got, want)
	}
	for _, c := range chunks {
		if c.ID != "H5rTaLzSEaOr1dkPs_DGiAk" || c.Model != "gemini-2.5-pro" || c.Created != chunks[0].Created {
			t.Errorf("chunk header %+v", c)
		}
	}
	if b, _ := json.Marshal(chunks[len(chunks)-1]); !strings.Contains(string(b), `"choices":[]`) {
		t.Errorf("usage chunk %s", b)
	}
	if u := s.Usage(); u == nil || u.TotalTokens != 30 || u.CompletionTokensDetails.ReasoningTokens != 12 || u.Estimated {
		t.Errorf("usage %+v", u)
	}
	r := fake.Requests()[0]
	if r.Path != "/v1beta/models/gemini-2.5-pro:streamGenerateContent" || r.Query != "alt=sse" || r.Header.Get("x-goog-api-key") != providertest.GeminiAPIKey {
		t.Errorf("request %s?%s %v", r.Path, r.Query, r.Header)
	}
}

func TestChatStreamFaults(t *testing.T) {
	for _, test := range []struct {
		name   string
		fault  providertest.Fault
		text   string // content received before the end
		want   error  // wrapped by the error; nil for a *gateway.ProviderError
		status int
	}{
		{"Delay", providertest.Fault{Delay: 10e6}, "Hello! How can I help you today?", nil, 0},
		{"CutAfter1", providertest.Fault{CutAfter: 1}, "Hello", gateway.ErrStreamCut, 0},
		{"CutAfter2", providertest.Fault{CutAfter: 2}, "Hello! How can I", gateway.ErrStreamCut, 0},
		{"CutAfterLast", providertest.Fault{CutAfter: 3}, "Hello! How can I help you today?", gateway.ErrStreamCut, 0},
		{"MalformedAt1", providertest.Fault{MalformedAt: 1}, "", gateway.ErrStreamMalformed, 0},
		{"MalformedAt2", providertest.Fault{MalformedAt: 2}, "Hello", gateway.ErrStreamMalformed, 0},
		{"MalformedAt3", providertest.Fault{MalformedAt: 3}, "Hello! How can I", gateway.ErrStreamMalformed, 0},
		{"ErrorEventAt1", providertest.Fault{ErrorEventAt: 1}, "", nil, 500},
		{"ErrorEventAt3", providertest.Fault{ErrorEventAt: 3, Type: "UNAVAILABLE"}, "Hello! How can I", nil, 503},
	} {
		t.Run(test.name, func(t *testing.T) {
			p, fake := newProvider(t, providertest.GeminiAPIKey)
			fake.Push(test.fault)
			s, err := p.ChatStream(context.Background(), chatReq("gemini-2.5-flash"))
			if err != nil {
				t.Fatal(err)
			}
			text, _, err := collect(t, s)
			if text != test.text {
				t.Errorf("text %q; want %q", text, test.text)
			}
			var pe *gateway.ProviderError
			switch {
			case test.want == nil && test.status == 0:
				if err != nil {
					t.Fatalf("err = %v", err)
				}
			case test.want != nil:
				if !errors.Is(err, test.want) || errors.As(err, &pe) {
					t.Fatalf("err = %v; want %v", err, test.want)
				}
			default:
				if !errors.As(err, &pe) || pe.Status != test.status || pe.Provider != "gem" || pe.Message == "" {
					t.Fatalf("err = %#v; want status %d", err, test.status)
				}
			}
			if s.Usage() == nil && test.text != "" {
				t.Error("no usage kept from the events received")
			}
		})
	}
}

// sseServer streams body as a 200 text/event-stream answer.
func sseServer(t *testing.T, body string) *Provider {
	return rawServer(t, 200, http.Header{"Content-Type": {"text/event-stream"}}, body)
}

func TestStreamEvents(t *testing.T) {
	ev := func(s string) string { return "data: " + s + "\r\n\r\n" }
	for _, test := range []struct {
		name string
		body string
		want string // summary of the chunks
		err  error  // wrapped by the final error; nil for a clean end
	}{
		{
			name: "Thoughts",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"Thinking about it.","thought":true}],"role":"model"},"index":0}],"responseId":"a"}`) +
				ev(`{"candidates":[{"content":{"parts":[{"text":"42","thoughtSignature":"c2ln"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":5,"candidatesTokenCount":1,"thoughtsTokenCount":8,"totalTokenCount":14}}`),
			want: `0:assistant|r="Thinking about it."
0:|"42"|fin=stop
usage=5/9/14`,
		},
		{
			name: "FunctionCalls",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"Checking."},{"functionCall":{"id":"fc1","name":"f","args":{"a": 1}}},{"functionCall":{"name":"g","args":{}}}],"role":"model"}}]}`) +
				ev(`{"candidates":[{"content":{"parts":[{"functionCall":{"name":"h"}}],"role":"model"},"finishReason":"STOP"}]}`),
			want: `0:assistant|"Checking."|tc=0/fc1/f{"a":1}|tc=1/call_*/g{}
0:|tc=2/call_*/h{}|fin=tool_calls`,
		},
		{
			name: "TwoCandidates",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"A"}],"role":"model"}},{"content":{"parts":[{"text":"B"}],"role":"model"},"index":1}]}`) +
				ev(`{"candidates":[{"content":{"parts":[{"text":"a"}],"role":"model"},"finishReason":"STOP"}]}`) +
				ev(`{"candidates":[{"content":{"parts":[{"text":"b"}],"role":"model"},"finishReason":"MAX_TOKENS","index":1}],"usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":4,"totalTokenCount":5}}`),
			want: `0:assistant|"A" 1:assistant|"B"
0:|"a"|fin=stop
1:|"b"|fin=length
usage=1/4/5`,
		},
		{
			name: "SafetyStop",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"Once"}],"role":"model"}}]}`) +
				ev(`{"candidates":[{"finishReason":"SAFETY","safetyRatings":[{"category":"HARM_CATEGORY_HARASSMENT","probability":"HIGH","blocked":true}]}]}`),
			want: `0:assistant|"Once"
0:|fin=content_filter`,
		},
		{
			name: "PromptBlocked",
			body: ev(`{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":6,"totalTokenCount":6},"modelVersion":"gemini-2.5-flash","responseId":"b"}`),
			want: `0:assistant|""|fin=content_filter
usage=6/0/6`,
		},
		{
			name: "UsageAfterFinishAndLF",
			body: "data: " + `{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"},"finishReason":"STOP"}]}` + "\n\n" +
				": keep-alive comment\n\n" +
				"data: " + `{"usageMetadata":{"promptTokenCount":2,"candidatesTokenCount":1,"totalTokenCount":3}}` + "\n\n",
			want: `0:assistant|"Hi"|fin=stop
usage=2/1/3`,
		},
		{
			name: "EmptyDeltasSkipped",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}]}`) +
				ev(`{"candidates":[{"content":{"parts":[],"role":"model"}}]}`) +
				ev(`{"candidates":[{"finishReason":"STOP"}]}`),
			want: `0:assistant|"Hi"
0:|fin=stop`,
		},
		{
			name: "NoFinishReason",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}]}`),
			want: `0:assistant|"Hi"`,
			err:  gateway.ErrStreamCut,
		},
		{
			name: "Empty",
			err:  gateway.ErrStreamCut,
		},
		{
			name: "OnlyUsage",
			body: ev(`{"usageMetadata":{"promptTokenCount":2,"totalTokenCount":2}}`),
			err:  gateway.ErrStreamCut,
		},
		{
			name: "OneOfTwoCandidatesFinished",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"A"}]},"finishReason":"STOP"},{"content":{"parts":[{"text":"B"}]},"index":1}]}`),
			want: `0:assistant|"A"|fin=stop 1:assistant|"B"`,
			err:  gateway.ErrStreamCut,
		},
		{
			name: "LastEventUnterminated",
			body: strings.TrimSuffix(ev(`{"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"STOP"}]}`), "\r\n\r\n"),
			err:  gateway.ErrStreamCut,
		},
		{
			name: "NotJSON",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}`) + "data: [DONE]\r\n\r\n",
			want: `0:assistant|"Hi"`,
			err:  gateway.ErrStreamMalformed,
		},
		{
			name: "WrongTypes",
			body: ev(`{"candidates":[{"content":{"parts":[{"text":42}]}}]}`),
			err:  gateway.ErrStreamMalformed,
		},
	} {
		t.Run(test.name, func(t *testing.T) {
			p := sseServer(t, test.body)
			s, err := p.ChatStream(context.Background(), chatReq("gemini-2.5-flash"))
			if err != nil {
				t.Fatal(err)
			}
			_, chunks, err := collect(t, s)
			if got := summary(chunks); got != test.want {
				t.Errorf("chunks\n%s\nwant\n%s", got, test.want)
			}
			if (test.err == nil && err != nil) || (test.err != nil && !errors.Is(err, test.err)) {
				t.Fatalf("err = %v; want %v", err, test.err)
			}
		})
	}
}

func TestStreamErrorObject(t *testing.T) {
	p := sseServer(t, "data: "+`{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}`+"\r\n\r\n"+
		"data: "+`{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"5s"}]}}`+"\r\n\r\n")
	s, err := p.ChatStream(context.Background(), chatReq("gemini-2.5-flash"))
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = collect(t, s)
	var pe *gateway.ProviderError
	if !errors.As(err, &pe) || pe.Status != 429 || pe.Type != "RESOURCE_EXHAUSTED" || pe.RetryAfter != 5e9 || pe.Provider != "gemini" {
		t.Fatalf("err = %#v", err)
	}
	if outcome, retry, _ := gateway.Classify(err); outcome != gateway.OutcomeRateLimited || !retry {
		t.Errorf("classified %s, %v", outcome, retry)
	}
}

// TestStreamCloseEarly closes a stream whose upstream keeps the connection
// open: Close must not wait for the upstream, and Next then fails.
func TestStreamCloseEarly(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: " + `{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}` + "\r\n\r\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	defer srv.Close()
	defer close(release)
	p, _ := New(Config{BaseURL: srv.URL, APIKey: "k"})
	s, err := p.ChatStream(context.Background(), chatReq("gemini-2.5-flash"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Next(); err != nil || *c.Choices[0].Delta.Content != "Hi" {
		t.Fatalf("first chunk %v, %v", c, err)
	}
	s.Close()
	s.Close()
	if _, err := s.Next(); err == nil || err == io.EOF {
		t.Fatalf("Next after Close = %v", err)
	}
}

func TestStreamCanceled(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: " + `{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}` + "\r\n\r\n"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer srv.Close()
	p, _ := New(Config{BaseURL: srv.URL, APIKey: "k"})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := p.ChatStream(ctx, chatReq("gemini-2.5-flash"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Next(); err != nil {
		t.Fatal(err)
	}
	cancel()
	_, err = s.Next()
	if !errors.Is(err, context.Canceled) || errors.Is(err, gateway.ErrStreamCut) {
		t.Fatalf("err = %v", err)
	}
	if outcome, _, _ := gateway.Classify(err); outcome != gateway.OutcomeCanceled {
		t.Errorf("outcome %s", outcome)
	}
}
