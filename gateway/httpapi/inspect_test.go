package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"aigw/gateway"
	gwanthropic "aigw/gateway/anthropic"
	"aigw/gateway/guard/engine"
	"aigw/gateway/httpapi"
	"aigw/gateway/providertest"
	"aigw/gateway/router"
	"aigw/ledger"
	"aigw/ledger/ledgertest"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
)

const guardedModel = "claude-sonnet-4-5"

// guardedAPI is the API with one route, guardedModel, to an Anthropic
// upstream at baseURL, under one guardrail policy.
type guardedAPI struct {
	url string
	rec *recorder
}

func newGuardedAPI(t testing.TB, baseURL string, policy engine.PolicyConfig) *guardedAPI {
	t.Helper()
	log := ledgertest.TestLogger(t)
	if _, ok := t.(*testing.B); ok {
		log = slog.New(slog.DiscardHandler)
	}
	up, err := gwanthropic.New(gwanthropic.Config{Name: "ant", BaseURL: baseURL, APIKey: providertest.AnthropicKey})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := router.New(router.Config{Routes: []router.Route{{Name: guardedModel, Retries: -1, Targets: []router.RouteTarget{
		{Target: gateway.Target{Name: "ant/" + guardedModel, Provider: "ant", Model: guardedModel, Upstream: up}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	pcfg := gateway.PipelineConfig{Router: rt, Recorder: rec}
	if policy.Name != "" {
		guards, err := engine.New(engine.Config{Policies: []engine.PolicyConfig{policy}}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { guards.Close() })
		pcfg.Guard = guards
	}
	pipe, err := gateway.NewPipeline(pcfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := httpapi.New(httpapi.Config{Pipeline: pipe, Logger: log,
		Authenticate: func(ctx context.Context, secret string) (gateway.Caller, error) {
			if secret != "agent-key" {
				return gateway.Caller{}, errors.New("unknown key")
			}
			return gateway.Caller{Tenant: "acme", KeyID: "k1"}, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &guardedAPI{url: srv.URL, rec: rec}
}

// messagesRequest is a /v1/messages request to url with key.
func messagesRequest(url, key, body string) *http.Request {
	req, _ := http.NewRequest("POST", url+"/v1/messages", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-api-key", key)
	req.Header.Set("anthropic-version", "2023-06-01")
	return req
}

// postMessages sends a /v1/messages request to url with key and returns
// the status, the body and the trace id.
func postMessages(t *testing.T, url, key, body string) (int, []byte, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(messagesRequest(url, key, body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b, resp.Header.Get("X-Aigw-Trace-Id")
}

// sdkStream streams a request through the Anthropic SDK and returns the
// accumulated message and the stream's error.
func (g *guardedAPI) sdkStream(t *testing.T, p anthropic.MessageNewParams) (anthropic.Message, error) {
	t.Helper()
	cl := anthropic.NewClient(aoption.WithBaseURL(g.url), aoption.WithAPIKey("agent-key"), aoption.WithMaxRetries(0))
	p.Model, p.MaxTokens = guardedModel, 2048
	s := cl.Messages.NewStreaming(t.Context(), p)
	defer s.Close()
	var msg anthropic.Message
	for s.Next() {
		if err := msg.Accumulate(s.Current()); err != nil {
			return msg, err
		}
	}
	return msg, s.Err()
}

// trace returns the attributes of the trace's events of a kind, in order.
func (g *guardedAPI) trace(t *testing.T, traceID, kind string) []map[string]any {
	t.Helper()
	evs, _ := g.rec.since(0)
	var out []map[string]any
	for _, ev := range evs {
		if ev.TraceID == traceID && ev.Kind == kind {
			out = append(out, attrsOf(t, ev))
		}
	}
	return out
}

// expectGuardrail checks the trace's last decision of check at stage (a
// tool policy decides on the request's tools, then on the answer's calls).
func (g *guardedAPI) expectGuardrail(t *testing.T, traceID, check, stage, verdict string) {
	t.Helper()
	var last map[string]any
	for _, ins := range g.trace(t, traceID, ledger.KindGuardrail) {
		ds, _ := ins["decisions"].([]any)
		if len(ds) == 0 || ins["checks"] != float64(len(ds)) {
			t.Fatalf("guardrail event without its decisions: %v", ins)
		}
		for _, d := range ds {
			if a, _ := d.(map[string]any); a["check"] == check && a["stage"] == stage {
				last = a
			}
		}
	}
	if last == nil || last["verdict"] != verdict {
		t.Fatalf("guardrail %s at %s: %v; want %s (trace: %v)", check, stage, last, verdict, g.trace(t, traceID, ledger.KindGuardrail))
	}
}

// expectEnd checks the trace's last event: its kind, status and tokens
// (completion 0: any, as estimated for a stream cut short).
func (g *guardedAPI) expectEnd(t *testing.T, traceID, kind string, status, prompt, completion int) map[string]any {
	t.Helper()
	evs, _ := g.rec.since(0)
	var last *ledger.Event
	for _, ev := range evs {
		if ev.TraceID == traceID {
			last = ev
		}
	}
	if last == nil || last.Kind != kind {
		t.Fatalf("trace %s ends with %+v; want %s", traceID, last, kind)
	}
	a := attrsOf(t, last)
	tok, _ := a["tokens"].(map[string]any)
	if fmt.Sprint(a["status"]) != fmt.Sprint(status) || tok == nil || fmt.Sprint(tok["prompt"]) != fmt.Sprint(prompt) ||
		completion > 0 && fmt.Sprint(tok["completion"]) != fmt.Sprint(completion) || completion == 0 && tok["estimated"] != true {
		t.Fatalf("%s event %v; want status %d, %d prompt and %d completion tokens", kind, a, status, prompt, completion)
	}
	return a
}

// sseUpstream is a fake Anthropic Messages API that answers every request
// (with the fake's key) with stream, one event per write.
func sseUpstream(t testing.TB, stream []byte) string { return gatedUpstream(t, stream, nil, nil) }

// gatedUpstream is sseUpstream answering first, then, once gate is
// closed, rest.
func gatedUpstream(t testing.TB, first, rest []byte, gate <-chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if r.URL.Path != "/v1/messages" || r.Header.Get("x-api-key") != providertest.AnthropicKey {
			http.Error(w, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`, 401)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.WriteHeader(200)
		for _, ev := range bytes.SplitAfter(first, []byte("\n\n")) {
			w.Write(ev)
			w.(http.Flusher).Flush()
		}
		if gate == nil {
			return
		}
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
		for _, ev := range bytes.SplitAfter(rest, []byte("\n\n")) {
			w.Write(ev)
			w.(http.Flusher).Flush()
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// sse frames Messages events (JSON data, its type naming the event).
func sse(events ...string) []byte {
	var b bytes.Buffer
	for _, data := range events {
		var e struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal([]byte(data), &e); err != nil {
			panic(data)
		}
		fmt.Fprintf(&b, "event: %s\ndata: %s\n\n", e.Type, data)
	}
	return b.Bytes()
}

const (
	evMessageStart = `{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":31,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}`
	evPing         = `{"type": "ping"}`
	evMessageStop  = `{"type":"message_stop"}`
)

func textStart(i int) string {
	return fmt.Sprintf(`{"type":"content_block_start","index":%d,"content_block":{"type":"text","text":""}}`, i)
}
func blockStop(i int) string { return fmt.Sprintf(`{"type":"content_block_stop","index":%d}`, i) }
func textDelta(i int, text string) string {
	return fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"text_delta","text":%s}}`, i, jsonString(text))
}

// jsonString is s in JSON, with <, > and & as they are (as the API writes
// them).
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
func jsonDelta(i int, js string) string {
	return fmt.Sprintf(`{"type":"content_block_delta","index":%d,"delta":{"type":"input_json_delta","partial_json":%s}}`, i, jsonString(js))
}
func messageDelta(stop string, out int) string {
	return fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":%q,"stop_sequence":null},"usage":{"output_tokens":%d}}`, stop, out)
}

// textAnswer is a stream with one text block of deltas.
func textAnswer(deltas ...string) []byte {
	evs := []string{evMessageStart, textStart(0), evPing}
	for _, d := range deltas {
		evs = append(evs, textDelta(0, d))
	}
	return sse(append(evs, blockStop(0), messageDelta("end_turn", 42), evMessageStop)...)
}

// splitEvents splits a stream into its events, each with its blank line.
func splitEvents(b []byte) []string {
	var out []string
	for _, ev := range bytes.SplitAfter(b, []byte("\n\n")) {
		if len(ev) > 0 {
			out = append(out, string(ev))
		}
	}
	return out
}

// errorEvent checks that ev is an Anthropic error event naming check, and
// returns its error type.
func errorEvent(t *testing.T, ev, check string) string {
	t.Helper()
	data, ok := strings.CutPrefix(ev, "event: error\ndata: ")
	var body gwanthropic.ErrorBody
	if !ok || !strings.HasSuffix(data, "\n\n") || json.Unmarshal([]byte(data), &body) != nil || body.Type != "error" ||
		!strings.Contains(body.Error.Message, fmt.Sprintf("guardrail %q", check)) {
		t.Fatalf("last event %q is not an error event naming guardrail %s", ev, check)
	}
	return body.Error.Type
}

const streamRequest = `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Tell me."}]}`

// TestMessagesStreamInspectedNatively: a /v1/messages stream to Anthropic
// whose output a guardrail inspects passes through as the upstream sent
// it, inspected with the hold-back window: events the policy passes are
// byte for byte the upstream's, a block ends the stream with an error
// event before the blocked text, a redaction re-encodes only the text
// deltas it changes.
func TestMessagesStreamInspectedNatively(t *testing.T) {
	// words is a new policy each time: engine.New fills in its checks'
	// defaults in place.
	words := func() engine.PolicyConfig {
		return engine.PolicyConfig{Name: "words", Holdback: 32, Checks: []engine.CheckConfig{
			{ID: "words", Type: engine.TypeContent, Stages: []string{engine.StageOutput}, Action: engine.ActionBlock, Phrases: []string{"project zephyr"}}}}
	}

	t.Run("ThinkingPassesByteForByte", func(t *testing.T) {
		t.Parallel()
		ant := providertest.NewAnthropic(t)
		g := newGuardedAPI(t, ant.URL, words())
		body := `{"model":"claude-sonnet-4-5","max_tokens":2048,"stream":true,"thinking":{"type":"enabled","budget_tokens":1024},"messages":[{"role":"user","content":[{"type":"text","text":"What is 27 * 453?","cache_control":{"type":"ephemeral"}}]}]}`
		status, direct, _ := postMessages(t, ant.URL, providertest.AnthropicKey, body)
		if status != 200 {
			t.Fatalf("direct: %d %s", status, direct)
		}
		status, through, trace := postMessages(t, g.url, "agent-key", body)
		if status != 200 || !bytes.Equal(through, direct) {
			t.Fatalf("through the gateway (%d):\n%s\ndirect:\n%s", status, through, direct)
		}
		if got := ant.Requests()[len(ant.Requests())-1].Body; string(got) != body {
			t.Fatalf("upstream got %s", got)
		}
		g.expectGuardrail(t, trace, "words", engine.StageOutput, "pass")
		g.expectEnd(t, trace, ledger.KindResponse, 200, 25, 15)

		msg, err := g.sdkStream(t, anthropic.MessageNewParams{Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("What is 27 * 453?"))},
			Thinking: anthropic.ThinkingConfigParamOfEnabled(1024)})
		if err != nil || len(msg.Content) != 2 || msg.Content[0].Type != "thinking" || msg.Content[0].Signature != "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds" ||
			msg.Content[1].Text != "27 * 453 = 12,231" || msg.StopReason != "end_turn" {
			t.Fatalf("SDK: %+v, %v", msg, err)
		}
	})

	t.Run("BlockedPhraseAcrossDeltas", func(t *testing.T) {
		t.Parallel()
		upstream := textAnswer("The answer you asked for ", "is written down in ", "the internal wiki under ",
			"the codename project zep", "hyr, which you ", "should never share.")
		g := newGuardedAPI(t, sseUpstream(t, upstream), words())
		status, got, trace := postMessages(t, g.url, "agent-key", streamRequest)
		evs := splitEvents(got)
		if status != 200 || len(evs) < 2 {
			t.Fatalf("%d %q", status, got)
		}
		// What came before the error is the upstream's first events, as
		// sent, and some of its text (not all held back): never the phrase.
		sent := strings.Join(evs[:len(evs)-1], "")
		if !bytes.HasPrefix(upstream, []byte(sent)) || !strings.Contains(sent, "The answer you asked for") || strings.Contains(sent, "project") {
			t.Fatalf("sent before the error:\n%s", sent)
		}
		if typ := errorEvent(t, evs[len(evs)-1], "words"); typ != gwanthropic.TypeInvalidRequest {
			t.Fatalf("error type %s", typ)
		}
		g.expectGuardrail(t, trace, "words", engine.StageOutput, "block")
		if a := g.expectEnd(t, trace, ledger.KindError, 422, 31, 0); a["error_code"] != "guardrail_blocked" {
			t.Fatalf("error event %v", a)
		}

		msg, err := g.sdkStream(t, anthropic.MessageNewParams{Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Tell me."))}})
		var apiErr *anthropic.Error
		if !errors.As(err, &apiErr) || !strings.Contains(apiErr.Error(), `guardrail \"words\"`) && !strings.Contains(apiErr.Error(), `guardrail "words"`) {
			t.Fatalf("SDK error %v", err)
		}
		if len(msg.Content) != 1 || strings.Contains(msg.Content[0].Text, "project") || msg.Content[0].Text == "" {
			t.Fatalf("SDK got %+v", msg.Content)
		}
	})

	t.Run("RedactionAcrossDeltas", func(t *testing.T) {
		t.Parallel()
		pii := engine.PolicyConfig{Name: "pii", Checks: []engine.CheckConfig{
			{ID: "pii", Type: engine.TypePII, Stages: []string{engine.StageOutput}, Action: engine.ActionRedact}}}
		deltas := []string{"Sure. ", "You can reach our support lead at alice.sm", "ith@example.com any time", " during office hours."}
		upstream := textAnswer(deltas...)
		g := newGuardedAPI(t, sseUpstream(t, upstream), pii)
		status, got, trace := postMessages(t, g.url, "agent-key", streamRequest)
		gotEvs, upEvs := splitEvents(got), splitEvents(upstream)
		if status != 200 || len(gotEvs) != len(upEvs) {
			t.Fatalf("%d: %d events, upstream %d:\n%s", status, len(gotEvs), len(upEvs), got)
		}
		// The two deltas the address spans carry the redacted text, in
		// the same block; every other event is the upstream's.
		want := map[int]string{4: textDelta(0, "You can reach our support lead at <EMAIL_ADDRESS_1>"), 5: textDelta(0, " any time")}
		for i, ev := range gotEvs {
			w := upEvs[i]
			if d, ok := want[i]; ok {
				w = string(sse(d))
			}
			if ev != w {
				t.Fatalf("event %d: %q; want %q", i, ev, w)
			}
		}
		g.expectGuardrail(t, trace, "pii", engine.StageOutput, "redact")
		g.expectEnd(t, trace, ledger.KindResponse, 200, 31, 42)

		msg, err := g.sdkStream(t, anthropic.MessageNewParams{Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Tell me."))}})
		if err != nil || msg.Content[0].Text != "Sure. You can reach our support lead at <EMAIL_ADDRESS_1> any time during office hours." {
			t.Fatalf("SDK: %+v, %v", msg, err)
		}
	})

	t.Run("ToolInput", func(t *testing.T) {
		t.Parallel()
		tools := engine.PolicyConfig{Name: "tools", Checks: []engine.CheckConfig{
			{ID: "tools", Type: engine.TypeToolPolicy, Stages: []string{engine.StageToolCalls}, Action: engine.ActionBlock, Tools: &engine.ToolsConfig{
				Default: "allow", Rules: []engine.ToolRule{{Tool: "refund", Decision: "allow", Args: map[string]engine.ArgConstraint{"amount": {Max: ptr(500.0)}}}}}}}}
		answer := func(amount string) []byte {
			return sse(evMessageStart, textStart(0), evPing, textDelta(0, "I will refund the order now."), blockStop(0),
				`{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01A","name":"refund","input":{}}}`,
				jsonDelta(1, ""), jsonDelta(1, `{"order": "A-17", "amount": `), jsonDelta(1, amount+"}"), blockStop(1),
				messageDelta("tool_use", 57), evMessageStop)
		}
		req := `{"model":"claude-sonnet-4-5","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"Refund order A-17."}],` +
			`"tools":[{"name":"refund","description":"Refund an order.","input_schema":{"type":"object","properties":{"order":{"type":"string"},"amount":{"type":"number"}},"required":["order","amount"]}}]}`

		// Within the policy: the upstream's bytes.
		allowed := answer("300")
		g := newGuardedAPI(t, sseUpstream(t, allowed), tools)
		status, got, trace := postMessages(t, g.url, "agent-key", req)
		if status != 200 || !bytes.Equal(got, allowed) {
			t.Fatalf("allowed call (%d):\n%s", status, got)
		}
		g.expectGuardrail(t, trace, "tools", engine.StageToolCalls, "pass")
		g.expectEnd(t, trace, ledger.KindResponse, 200, 31, 57)

		// Over the limit: blocked before any of its input reaches the agent.
		g = newGuardedAPI(t, sseUpstream(t, answer("900")), tools)
		status, got, trace = postMessages(t, g.url, "agent-key", req)
		evs := splitEvents(got)
		if status != 200 || len(evs) == 0 || strings.Contains(string(got), "input_json_delta") || strings.Contains(string(got), "toolu_01A") {
			t.Fatalf("blocked call (%d):\n%s", status, got)
		}
		sent := strings.Join(evs[:len(evs)-1], "")
		if !bytes.HasPrefix(allowed, []byte(sent)) {
			t.Fatalf("sent before the error:\n%s", sent)
		}
		errorEvent(t, evs[len(evs)-1], "tools")
		g.expectGuardrail(t, trace, "tools", engine.StageToolCalls, "block")
		// The calls are checked once the stream ended: its usage is the
		// upstream's.
		g.expectEnd(t, trace, ledger.KindError, 422, 31, 57)
	})

	t.Run("UpstreamErrorEventPassedOn", func(t *testing.T) {
		t.Parallel()
		// The error comes once the agent has message_start (an error in
		// the stream's first bytes still falls back).
		errEv := "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n"
		first := sse(evMessageStart, textStart(0), textDelta(0, "Some text, held back."))
		gate := make(chan struct{})
		g := newGuardedAPI(t, gatedUpstream(t, first, []byte(errEv), gate), words())
		resp, err := http.DefaultClient.Do(messagesRequest(g.url, "agent-key", streamRequest))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		start := splitEvents(first)[0]
		got := make([]byte, len(start))
		if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != start {
			t.Fatalf("%d: %q, %v", resp.StatusCode, got, err)
		}
		close(gate)
		rest, _ := io.ReadAll(resp.Body)
		// The held delta is dropped; the upstream's error event is passed
		// on as it came.
		if !bytes.HasPrefix(first, append(got, rest[:len(rest)-len(errEv)]...)) || !strings.HasSuffix(string(rest), errEv) ||
			strings.Contains(string(rest), "held back") {
			t.Fatalf("after message_start: %q", rest)
		}
		g.expectEnd(t, resp.Header.Get("X-Aigw-Trace-Id"), ledger.KindError, 503, 31, 0)
	})
}

// BenchmarkMessagesStream compares one streamed /v1/messages call (400
// text deltas) straight to the fake upstream, passed through the gateway
// with no output check (copied), and passed through with a content check
// on the output (inspected natively): inspected − copied is what the
// inspection adds (ledger events recorded in memory).
func BenchmarkMessagesStream(b *testing.B) {
	deltas := make([]string, 400)
	for i := range deltas {
		deltas[i] = fmt.Sprintf(" word%d", i%10)
	}
	up := sseUpstream(b, textAnswer(deltas...))
	copied := newGuardedAPI(b, up, engine.PolicyConfig{})
	inspected := newGuardedAPI(b, up, engine.PolicyConfig{Name: "words", Checks: []engine.CheckConfig{
		{ID: "words", Type: engine.TypeContent, Stages: []string{engine.StageOutput}, Action: engine.ActionBlock, Phrases: []string{"project zephyr"}}}})
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	call := func(b *testing.B, url, key string) {
		resp, err := c.Do(messagesRequest(url, key, streamRequest))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < 20000 {
			b.Fatalf("status %d, %d bytes", resp.StatusCode, n)
		}
	}
	b.Run("straight", func(b *testing.B) {
		for b.Loop() {
			call(b, up, providertest.AnthropicKey)
		}
	})
	b.Run("copied", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call(b, copied.url, "agent-key")
		}
	})
	b.Run("inspected", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			call(b, inspected.url, "agent-key")
		}
	})
}

// TestMessagesStreamCopiedRecordsBody: a stream passed through byte for
// byte whose message_stop came in the same read as events before it (here
// the whole stream in one write) is recorded as the agent received it,
// those events included.
func TestMessagesStreamCopiedRecordsBody(t *testing.T) {
	stream := textAnswer("Hello", " there.")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Write(stream)
	}))
	t.Cleanup(srv.Close)
	g := newGuardedAPI(t, srv.URL, engine.PolicyConfig{})
	status, got, trace := postMessages(t, g.url, "agent-key", streamRequest)
	if status != 200 || !bytes.Equal(got, stream) {
		t.Fatalf("%d: %q", status, got)
	}
	g.expectEnd(t, trace, ledger.KindResponse, 200, 31, 42)
	evs, pls := g.rec.since(0)
	for i, ev := range evs {
		if ev.TraceID == trace && ev.Kind == ledger.KindResponse && !bytes.Equal(pls[i], stream) {
			t.Fatalf("response recorded %q; want the stream as sent", pls[i])
		}
	}
}
