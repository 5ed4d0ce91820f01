package telemetry

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"aigw/gateway"
)

// newTel returns a Telemetry exporting to r (nil: no trace export), shut
// down when the test ends.
func newTel(t testing.TB, r *receiver, cfg Config) *Telemetry {
	t.Helper()
	if r != nil {
		cfg.OTLPEndpoint = r.URL
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	tel, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := tel.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return tel
}

func flush(t testing.TB, tel *Telemetry) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

var testStart = time.Date(2026, 11, 3, 10, 0, 0, 0, time.UTC)

// chatRecord is a streamed chat call that two guardrails inspected.
func chatRecord() *gateway.CallRecord {
	return &gateway.CallRecord{
		TraceID: gateway.NewTraceID(), Sampled: true,
		Tenant: "acme", KeyID: "k1", Team: "research", AgentID: "agent-7",
		Endpoint: "chat.completions", Model: "smart", Stream: true,
		Target: "claude/claude-x", Provider: "claude", UpstreamModel: "claude-x",
		Attempts: 2, Start: testStart, Duration: 1500 * time.Millisecond, TTFB: 250 * time.Millisecond,
		Status: 200, FinishReason: "stop",
		Usage: &gateway.Usage{PromptTokens: 120, CompletionTokens: 30, TotalTokens: 150,
			PromptTokensDetails: &gateway.PromptTokensDetails{CachedTokens: 100, CacheCreationTokens: 7}},
		Cost: gateway.Cost{Amount: 12_500, PriceVersion: "builtin-2026-11-01"}, Priced: true,
		Guardrails: []map[string]any{
			{"check": "pii", "type": "pii", "stage": "input", "verdict": "redact", "action": "redact",
				"score": 0.93, "duration_us": int64(40), "count": 1, "shadow": true,
				"findings": []any{map[string]any{"type": "email", "start": 3, "end": 20}}},
			{"check": "tox", "type": "content", "stage": "output", "verdict": "pass", "action": "block",
				"labels": []any{"a", "b"}, "missing": nil},
		},
		GuardrailPolicy: "baseline", GuardrailPolicyVersion: "p1",
		Input:  []byte(`{"messages":[{"role":"user","content":"SECRET-INPUT"}]}`),
		Output: []byte(`{"choices":[{"message":{"content":"SECRET-OUTPUT"}}]}`),
	}
}

func TestSpan(t *testing.T) {
	r := newReceiver(t)
	tel := newTel(t, r, Config{
		ServiceName: "aigw-test", ServiceVersion: "v9",
		OTLPHeaders:   map[string]string{"Authorization": "Bearer collector-secret"},
		ProviderKinds: map[string]string{"claude": "anthropic"},
	})
	rec := chatRecord()
	tel.Observe(rec)
	flush(t, tel)

	s := r.spanByTrace(rec.TraceID)
	if s == nil {
		t.Fatalf("no span with trace id %s; got %d spans", rec.TraceID, len(r.received()))
	}
	if len(s.ParentSpanId) != 0 {
		t.Errorf("parent span id = %x; want none", s.ParentSpanId)
	}
	if len(s.SpanId) != 8 || bytes.Equal(s.SpanId, make([]byte, 8)) {
		t.Errorf("span id = %x; want 8 random bytes", s.SpanId)
	}
	if s.Name != "chat smart" || s.Kind != tracepb.Span_SPAN_KIND_CLIENT {
		t.Errorf("span %q kind %v; want %q CLIENT", s.Name, s.Kind, "chat smart")
	}
	if got, want := time.Unix(0, int64(s.StartTimeUnixNano)), rec.Start; !got.Equal(want) {
		t.Errorf("start = %v; want %v", got, want)
	}
	if got, want := time.Unix(0, int64(s.EndTimeUnixNano)), rec.Start.Add(rec.Duration); !got.Equal(want) {
		t.Errorf("end = %v; want %v", got, want)
	}
	if s.Status.GetCode() == tracepb.Status_STATUS_CODE_ERROR {
		t.Errorf("status = %v; want unset", s.Status)
	}
	want := map[string]any{
		"gen_ai.operation.name":                    "chat",
		"gen_ai.provider.name":                     "anthropic",
		"gen_ai.request.model":                     "smart",
		"gen_ai.response.model":                    "claude-x",
		"gen_ai.usage.input_tokens":                int64(120),
		"gen_ai.usage.output_tokens":               int64(30),
		"gen_ai.usage.cache_read.input_tokens":     int64(100),
		"gen_ai.usage.cache_creation.input_tokens": int64(7),
		"gen_ai.response.finish_reasons":           []any{"stop"},
		"http.response.status_code":                int64(200),
		"aigw.tenant":                              "acme",
		"aigw.key_id":                              "k1",
		"aigw.team":                                "research",
		"aigw.agent_id":                            "agent-7",
		"aigw.endpoint":                            "chat.completions",
		"aigw.target":                              "claude/claude-x",
		"aigw.attempts":                            int64(2),
		"aigw.cost_usd":                            "0.000012500",
		"aigw.price_version":                       "builtin-2026-11-01",
		"aigw.ttfb_ms":                             250.0,
		"aigw.stream":                              true,
		"aigw.guardrail.policy":                    "baseline",
		"aigw.guardrail.policy_version":            "p1",
	}
	if got := attrs(s.Attributes); !reflect.DeepEqual(got, want) {
		t.Errorf("attributes\n got %v\nwant %v", got, want)
	}
	if len(s.Events) != 2 {
		t.Fatalf("%d events; want 2", len(s.Events))
	}
	wantEvents := []struct {
		at    time.Time
		attrs map[string]any
	}{
		{rec.Start, map[string]any{"check": "pii", "type": "pii", "stage": "input", "verdict": "redact", "action": "redact",
			"score": 0.93, "duration_us": int64(40), "count": int64(1), "shadow": true,
			"findings": `[{"end":20,"start":3,"type":"email"}]`}},
		{rec.Start.Add(rec.Duration), map[string]any{"check": "tox", "type": "content", "stage": "output", "verdict": "pass",
			"action": "block", "labels": []any{"a", "b"}}},
	}
	for i, ev := range s.Events {
		if ev.Name != GuardrailEvent {
			t.Errorf("event %d name %q; want %q", i, ev.Name, GuardrailEvent)
		}
		if got := time.Unix(0, int64(ev.TimeUnixNano)); !got.Equal(wantEvents[i].at) {
			t.Errorf("event %d at %v; want %v", i, got, wantEvents[i].at)
		}
		if got := attrs(ev.Attributes); !reflect.DeepEqual(got, wantEvents[i].attrs) {
			t.Errorf("event %d attributes\n got %v\nwant %v", i, got, wantEvents[i].attrs)
		}
	}
	r.mu.Lock()
	res := attrs(r.resource)
	hdr := r.headers[0]
	bodies := bytes.Join(r.bodies, nil)
	r.mu.Unlock()
	if res["service.name"] != "aigw-test" || res["service.version"] != "v9" {
		t.Errorf("resource %v; want service.name aigw-test, service.version v9", res)
	}
	if got := hdr.Get("Authorization"); got != "Bearer collector-secret" {
		t.Errorf("Authorization header %q; want the configured one", got)
	}
	if got := hdr.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding %q; want gzip by default", got)
	}
	for _, secret := range []string{"SECRET-INPUT", "SECRET-OUTPUT"} {
		if bytes.Contains(bodies, []byte(secret)) {
			t.Errorf("the export holds the call's input or output (%s)", secret)
		}
	}
}

func TestSpanParent(t *testing.T) {
	r := newReceiver(t)
	tel := newTel(t, r, Config{OTLPCompression: "none", SampleRatio: 1e-9})
	sampled := chatRecord()
	sampled.ParentSpanID = "00f067aa0ba902b7"
	unsampled := chatRecord()
	unsampled.ParentSpanID = "1111111111111111"
	unsampled.Sampled = false
	// Without a traceparent the ratio decides, on the trace id's low 63
	// bits: 0x…01 is below any ratio's bound, 0x…ff above 1e-9's.
	rootIn, rootOut := chatRecord(), chatRecord()
	rootIn.TraceID = "4bf92f3577b34da60000000000000001"
	rootOut.TraceID = "4bf92f3577b34da6ffffffffffffffff"
	for _, rec := range []*gateway.CallRecord{unsampled, sampled, rootIn, rootOut} {
		tel.Observe(rec)
	}
	flush(t, tel)
	if r.spanByTrace(rootIn.TraceID) == nil || r.spanByTrace(rootOut.TraceID) != nil {
		t.Errorf("root spans: sampled in %v, out %v; want in only", r.spanByTrace(rootIn.TraceID) != nil, r.spanByTrace(rootOut.TraceID) != nil)
	}

	s := r.spanByTrace(sampled.TraceID)
	if s == nil {
		t.Fatalf("no span for the sampled parent's call (trace %s)", sampled.TraceID)
	}
	if got := hex.EncodeToString(s.ParentSpanId); got != sampled.ParentSpanID {
		t.Errorf("parent span id = %s; want %s", got, sampled.ParentSpanID)
	}
	if hex.EncodeToString(s.SpanId) == sampled.ParentSpanID {
		t.Errorf("span id = the parent's")
	}
	if s := r.spanByTrace(unsampled.TraceID); s != nil {
		t.Errorf("a span was exported for a call whose traceparent is not sampled")
	}
	if n := len(r.received()); n != 2 {
		t.Errorf("%d spans exported; want 2", n)
	}
	r.mu.Lock()
	enc := r.headers[0].Get("Content-Encoding")
	r.mu.Unlock()
	if enc != "" {
		t.Errorf("Content-Encoding %q; want none", enc)
	}
}

func TestSpanError(t *testing.T) {
	r := newReceiver(t)
	tel := newTel(t, r, Config{})
	for _, test := range []struct {
		name     string
		rec      func(*gateway.CallRecord)
		wantType string
	}{
		{"Upstream", func(c *gateway.CallRecord) {
			c.Status, c.ErrorType, c.ErrorCode = 502, gateway.TypeUpstream, "upstream_error"
		}, "upstream_error"},
		{"TypeOnly", func(c *gateway.CallRecord) { c.Status, c.ErrorType = 500, gateway.TypeServer }, gateway.TypeServer},
		{"StatusOnly", func(c *gateway.CallRecord) { c.Status = 404 }, "404"},
		{"Unrouted", func(c *gateway.CallRecord) {
			c.Status, c.ErrorType, c.ErrorCode = 400, gateway.TypeInvalidRequest, "guardrail_blocked"
			c.Target, c.Provider, c.UpstreamModel, c.Usage, c.Priced, c.FinishReason = "", "", "", nil, false, ""
		}, "guardrail_blocked"},
	} {
		t.Run(test.name, func(t *testing.T) {
			rec := chatRecord()
			test.rec(rec)
			tel.Observe(rec)
			flush(t, tel)
			s := r.spanByTrace(rec.TraceID)
			if s == nil {
				t.Fatal("no span")
			}
			if s.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || s.Status.GetMessage() != test.wantType {
				t.Errorf("status %v; want ERROR %q", s.Status, test.wantType)
			}
			a := attrs(s.Attributes)
			if a["error.type"] != test.wantType || a["http.response.status_code"] != int64(rec.Status) {
				t.Errorf("error.type %v status %v; want %q %d", a["error.type"], a["http.response.status_code"], test.wantType, rec.Status)
			}
			if rec.Provider == "" {
				for _, k := range []string{"gen_ai.provider.name", "gen_ai.response.model", "aigw.target", "gen_ai.usage.input_tokens", "aigw.cost_usd"} {
					if v, ok := a[k]; ok {
						t.Errorf("%s = %v on a call never routed", k, v)
					}
				}
			}
		})
	}
}

// TestSpanBadInput: invalid UTF-8, odd ids and values export, and spans of
// other calls in the same batch are not lost.
func TestSpanBadInput(t *testing.T) {
	r := newReceiver(t)
	tel := newTel(t, r, Config{})
	bad := chatRecord()
	bad.Model = "mod\xffel"
	bad.Tenant = "ten\xfeant"
	bad.ParentSpanID = "not-a-span-id"
	bad.Start = time.Time{}
	bad.Guardrails = append(bad.Guardrails, map[string]any{"check\xff": "x\xff", "ch": make(chan int), "list": []string{"\xff"}})
	badTrace := chatRecord()
	badTrace.TraceID = "zz"
	good := chatRecord()
	tel.Observe(nil)
	tel.Observe(bad)
	tel.Observe(badTrace)
	tel.Observe(good)
	flush(t, tel)
	if n := len(r.received()); n != 3 {
		t.Fatalf("%d spans; want 3", n)
	}
	s := r.spanByTrace(bad.TraceID)
	if s == nil {
		t.Fatal("no span for the call with invalid UTF-8")
	}
	if len(s.ParentSpanId) != 0 {
		t.Errorf("a malformed parent span id gave a parent %x", s.ParentSpanId)
	}
	if a := attrs(s.Attributes); a["gen_ai.request.model"] != "mod\uFFFDel" {
		t.Errorf("model %q; want the invalid byte replaced", a["gen_ai.request.model"])
	}
	if s.EndTimeUnixNano < s.StartTimeUnixNano {
		t.Errorf("span without a start time ends before it starts")
	}
	if r.spanByTrace(good.TraceID) == nil {
		t.Errorf("the good call's span was lost")
	}
}

func TestExportFailure(t *testing.T) {
	r := newReceiver(t)
	r.status = http.StatusBadRequest // not retried
	var logs strings.Builder
	var mu sync.Mutex
	tel := newTel(t, r, Config{Logger: slogTo(&mu, &logs)})
	tel.Observe(chatRecord())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tel.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded; want the export's failure")
	}
	if got := counterValue(t, tel, "aigw_telemetry_spans_dropped_total", map[string]string{"reason": "export_failed"}); got != 1 {
		t.Errorf("dropped{export_failed} = %v; want 1", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "span export failed") {
		t.Errorf("the failure was not logged: %q", logs.String())
	}
}

// TestQueueFull: a stuck collector makes spans drop, counted, and Observe
// never waits for it.
func TestQueueFull(t *testing.T) {
	r := newReceiver(t)
	r.block = make(chan struct{})
	tel := newTel(t, r, Config{QueueSize: 2, BatchSize: 1, BatchTimeout: time.Millisecond, ExportTimeout: time.Minute})
	tel.Observe(chatRecord())
	<-r.started // the first span's export is stuck in the collector
	const n = 20
	for range n {
		tel.Observe(chatRecord())
	}
	// At most QueueSize spans wait behind the stuck export.
	dropped := counterValue(t, tel, "aigw_telemetry_spans_dropped_total", map[string]string{"reason": "queue_full"})
	if dropped < n-2 {
		t.Errorf("dropped{queue_full} = %v; want at least %d", dropped, n-2)
	}
	close(r.block)
	flush(t, tel)
	exported := counterValue(t, tel, "aigw_telemetry_spans_exported_total", nil)
	if exported+dropped != n+1 || len(r.received()) != int(exported) {
		t.Errorf("exported %v + dropped %v != %d spans observed (received %d)", exported, dropped, n+1, len(r.received()))
	}
}

func TestNoExport(t *testing.T) {
	tel := newTel(t, nil, Config{})
	tel.Observe(chatRecord())
	if err := tel.Flush(context.Background()); err != nil {
		t.Errorf("Flush without export: %v", err)
	}
	if got := counterValue(t, tel, "aigw_requests_total", map[string]string{"model": "smart"}); got != 1 {
		t.Errorf("requests = %v; want 1", got)
	}
}

// TestConcurrent observes from many goroutines while exporting and
// scraping (run with -race).
func TestConcurrent(t *testing.T) {
	r := newReceiver(t)
	tel := newTel(t, r, Config{BatchTimeout: time.Millisecond, TenantLabel: true})
	var wg sync.WaitGroup
	const workers, calls = 8, 200
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				rec := chatRecord()
				rec.Tenant = fmt.Sprintf("t%d", (w+i)%3)
				rec.Model = fmt.Sprintf("m%d", i%4)
				tel.Observe(rec)
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			var b bytes.Buffer
			if err := tel.WriteMetrics(&b); err != nil {
				t.Errorf("WriteMetrics: %v", err)
			}
		}
	})
	wg.Wait()
	flush(t, tel)
	exported := counterValue(t, tel, "aigw_telemetry_spans_exported_total", nil)
	dropped := counterValue(t, tel, "aigw_telemetry_spans_dropped_total", map[string]string{"reason": "queue_full"})
	if exported+dropped != workers*calls {
		t.Errorf("exported %v + dropped %v != %d", exported, dropped, workers*calls)
	}
	if got := counterValue(t, tel, "aigw_requests_total", nil); got != workers*calls {
		t.Errorf("requests = %v; want %d", got, workers*calls)
	}
}

// TestCallSpanMethods: callSpan implements every exported method of
// sdktrace.ReadOnlySpan itself; one it did not would be promoted from the
// nil embedded interface and panic on the export goroutine (a newer SDK
// may add methods).
func TestCallSpanMethods(t *testing.T) {
	sp := reflect.ValueOf(&callSpan{t: &Telemetry{}, series: &series{}})
	it := reflect.TypeFor[sdktrace.ReadOnlySpan]()
	for i := range it.NumMethod() {
		m := it.Method(i)
		if !m.IsExported() {
			continue
		}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Errorf("callSpan.%s panics (not implemented): %v", m.Name, r)
				}
			}()
			sp.MethodByName(m.Name).Call(nil)
		}()
	}
}

func TestObserveAfterShutdown(t *testing.T) {
	r := newReceiver(t)
	tel := newTel(t, r, Config{QueueSize: 1})
	if err := tel.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		tel.Observe(chatRecord())
	}
	if got := counterValue(t, tel, "aigw_requests_total", nil); got != 3 {
		t.Errorf("requests = %v; want 3", got)
	}
	if got := counterValue(t, tel, "aigw_telemetry_spans_dropped_total", nil); got != 0 {
		t.Errorf("dropped = %v after shutdown; want 0 (not exporting is not dropping)", got)
	}
}
