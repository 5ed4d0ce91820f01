package langfuse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway"
)

const (
	testPublic = "pk-lf-test"
	testSecret = "sk-lf-very-secret-7f3a9c"
)

// ingEvent is an ingestion event as the fake server decodes it.
type ingEvent struct {
	ID        string         `json:"id"`
	Timestamp string         `json:"timestamp"`
	Type      string         `json:"type"`
	Body      map[string]any `json:"body"`
}

// reply is what the fake server answers to a request.
type reply struct {
	status int
	header http.Header
	body   any // encoded as JSON when not nil
}

// fakeLangfuse is a Langfuse ingestion endpoint: it checks the method,
// path, Basic auth and content type, decodes each batch and answers what
// handle returns (default: 207 with every event a success).
type fakeLangfuse struct {
	t      *testing.T
	srv    *httptest.Server
	handle func(n int, batch []ingEvent, r *http.Request) reply

	mu       sync.Mutex
	batches  [][]ingEvent
	arrivals []time.Time
	sizes    []int
}

func newFakeLangfuse(t *testing.T, handle func(n int, batch []ingEvent, r *http.Request) reply) *fakeLangfuse {
	t.Helper()
	f := &fakeLangfuse{t: t, handle: handle}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeLangfuse) serve(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	if r.Method != http.MethodPost || r.URL.Path != "/api/public/ingestion" {
		f.t.Errorf("request %s %s; want POST /api/public/ingestion", r.Method, r.URL.Path)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if user, pass, ok := r.BasicAuth(); !ok || user != testPublic || pass != testSecret {
		http.Error(w, `{"message":"Invalid credentials"}`, http.StatusUnauthorized)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("Content-Type = %q; want application/json", ct)
	}
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	var req struct {
		Batch []ingEvent `json:"batch"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		f.t.Errorf("batch does not decode: %v", err)
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	n := len(f.batches)
	f.batches = append(f.batches, req.Batch)
	f.arrivals = append(f.arrivals, arrived)
	f.sizes = append(f.sizes, len(raw))
	f.mu.Unlock()

	rep := reply{status: http.StatusMultiStatus, body: allSucceeded(req.Batch)}
	if f.handle != nil {
		rep = f.handle(n, req.Batch, r)
	}
	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	if rep.body != nil {
		w.Header().Set("Content-Type", "application/json")
	}
	w.WriteHeader(rep.status)
	if rep.body != nil {
		json.NewEncoder(w).Encode(rep.body)
	}
}

func (f *fakeLangfuse) requests() [][]ingEvent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]ingEvent(nil), f.batches...)
}

// events are every event received, in order.
func (f *fakeLangfuse) events() []ingEvent {
	var all []ingEvent
	for _, b := range f.requests() {
		all = append(all, b...)
	}
	return all
}

type result struct {
	ID      string `json:"id"`
	Status  int    `json:"status"`
	Message string `json:"message,omitempty"`
}

type ingestionReply struct {
	Successes []result `json:"successes"`
	Errors    []result `json:"errors"`
}

func allSucceeded(batch []ingEvent) ingestionReply {
	rep := ingestionReply{Successes: []result{}, Errors: []result{}}
	for _, ev := range batch {
		rep.Successes = append(rep.Successes, result{ID: ev.ID, Status: 201})
	}
	return rep
}

// logBuffer collects an exporter's logs and passes them to t.Logf.
type logBuffer struct {
	t  *testing.T
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("%s", bytes.TrimRight(p, "\n"))
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	lb := &logBuffer{t: t}
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug})), lb
}

// newExporter makes an exporter on f with fast retries; tune changes the
// config first. It is closed when the test ends.
func newExporter(t *testing.T, f *fakeLangfuse, tune func(*Config)) *Exporter {
	t.Helper()
	logger, _ := newLogger(t)
	cfg := Config{
		Host: f.srv.URL, PublicKey: testPublic, SecretKey: testSecret,
		FlushInterval: time.Hour, BatchSize: 1000,
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		Logger: logger,
	}
	if tune != nil {
		tune(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.Close(ctx)
	})
	return e
}

func closeExporter(t *testing.T, e *Exporter) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// waitFor polls cond until it holds (or fails the test after 10 s: a
// bound on a hang, not a timing assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

var start = time.Date(2026, 11, 27, 14, 0, 0, 123456789, time.UTC)

func record(i int) *gateway.CallRecord {
	return &gateway.CallRecord{
		TraceID:         fmt.Sprintf("%032x", i+1),
		Sampled:         true,
		Tenant:          "acme",
		KeyID:           "key-1",
		Team:            "research",
		AgentID:         "agent-7",
		Endpoint:        "chat.completions",
		Model:           "smart",
		Target:          "openai-gpt4o",
		Provider:        "openai",
		UpstreamModel:   "gpt-4o-2024-08-06",
		Attempts:        1,
		Start:           start.Add(time.Duration(i) * time.Second),
		Duration:        1500 * time.Millisecond,
		TTFB:            250 * time.Millisecond,
		Status:          200,
		FinishReason:    "stop",
		Usage:           &gateway.Usage{PromptTokens: 12, CompletionTokens: 30, TotalTokens: 42},
		Cost:            gateway.Cost{Amount: 12_500, PriceVersion: "builtin-2026-11-01"},
		Priced:          true,
		Guardrails:      []map[string]any{{"check": "pii", "stage": "input", "verdict": "pass"}},
		GuardrailPolicy: "baseline", GuardrailPolicyVersion: "sha256:1",
		Input:  []byte(`{"model":"smart","messages":[{"role":"user","content":"my email is jo@example.com"}]}`),
		Output: []byte(`{"choices":[{"message":{"role":"assistant","content":"hello jo"}}]}`),
	}
}

func byType(evs []ingEvent, typ string) []ingEvent {
	var out []ingEvent
	for _, ev := range evs {
		if ev.Type == typ {
			out = append(out, ev)
		}
	}
	return out
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestExport(t *testing.T) {
	f := newFakeLangfuse(t, nil)
	e := newExporter(t, f, func(c *Config) { c.Environment = "production" })
	ok := record(0)
	failed := record(1)
	failed.Status, failed.ErrorType, failed.ErrorCode = 429, "rate_limit_error", "rate_limit_exceeded"
	failed.Usage, failed.Priced, failed.FinishReason = nil, false, ""
	e.Observe(ok)
	e.Observe(failed)
	closeExporter(t, e)

	evs := f.events()
	if len(evs) != 4 {
		t.Fatalf("got %d events; want 4", len(evs))
	}
	for _, ev := range evs {
		if !uuidRE.MatchString(ev.ID) {
			t.Errorf("event id %q is not a UUID", ev.ID)
		}
		if _, err := time.Parse(time.RFC3339Nano, ev.Timestamp); err != nil {
			t.Errorf("event timestamp %q: %v", ev.Timestamp, err)
		}
	}
	traces, gens := byType(evs, "trace-create"), byType(evs, "generation-create")
	if len(traces) != 2 || len(gens) != 2 {
		t.Fatalf("got %d traces and %d generations; want 2 and 2", len(traces), len(gens))
	}

	tr := traces[0].Body
	for k, want := range map[string]any{
		"id": ok.TraceID, "name": "chat.completions", "userId": "agent-7",
		"timestamp": "2026-11-27T14:00:00.123456Z", "environment": "production",
	} {
		if tr[k] != want {
			t.Errorf("trace %s = %v; want %v", k, tr[k], want)
		}
	}
	md, _ := tr["metadata"].(map[string]any)
	for k, want := range map[string]string{"tenant": "acme", "team": "research", "key_id": "key-1", "agent_id": "agent-7"} {
		if md[k] != want {
			t.Errorf("trace metadata %s = %v; want %q", k, md[k], want)
		}
	}

	g := gens[0].Body
	for k, want := range map[string]any{
		"id": GenerationID(ok), "traceId": ok.TraceID, "name": "chat.completions", "model": "gpt-4o-2024-08-06",
		"startTime": "2026-11-27T14:00:00.123456Z", "endTime": "2026-11-27T14:00:01.623456Z",
		"completionStartTime": "2026-11-27T14:00:00.373456Z", "environment": "production",
	} {
		if g[k] != want {
			t.Errorf("generation %s = %v; want %v", k, g[k], want)
		}
	}
	if _, has := g["level"]; has {
		t.Errorf("successful generation has level %v", g["level"])
	}
	usage, _ := g["usageDetails"].(map[string]any)
	for k, want := range map[string]string{"input": "12", "output": "30", "total": "42"} {
		if n, _ := usage[k].(json.Number); string(n) != want {
			t.Errorf("usageDetails.%s = %v; want %s", k, usage[k], want)
		}
	}
	cost, _ := g["costDetails"].(map[string]any)
	if n, _ := cost["total"].(json.Number); n != "0.000012500" {
		t.Errorf("costDetails.total = %v; want the exact 0.000012500", cost["total"])
	}
	gm, _ := g["metadata"].(map[string]any)
	for k, want := range map[string]any{
		"provider": "openai", "target": "openai-gpt4o", "status": json.Number("200"), "model": "smart",
		"price_version": "builtin-2026-11-01", "finish_reason": "stop",
	} {
		if gm[k] != want {
			t.Errorf("generation metadata %s = %v; want %v", k, gm[k], want)
		}
	}
	if gr, _ := gm["guardrails"].([]any); len(gr) != 1 || gr[0].(map[string]any)["verdict"] != "pass" {
		t.Errorf("generation metadata guardrails = %v; want the record's", gm["guardrails"])
	}
	if gm["guardrail_policy"] != "baseline" || gm["guardrail_policy_version"] != "sha256:1" {
		t.Errorf("generation metadata guardrail policy = %v %v; want the record's", gm["guardrail_policy"], gm["guardrail_policy_version"])
	}

	fg := gens[1].Body
	if fg["level"] != "ERROR" || fg["statusMessage"] != "rate_limit_error: rate_limit_exceeded (HTTP 429)" {
		t.Errorf("failed generation level, statusMessage = %v, %v; want ERROR and the error", fg["level"], fg["statusMessage"])
	}
	if _, has := fg["costDetails"]; has {
		t.Errorf("unpriced generation has costDetails %v", fg["costDetails"])
	}
	if _, has := fg["usageDetails"]; has {
		t.Errorf("generation without usage has usageDetails %v", fg["usageDetails"])
	}
	if s := e.Stats(); s != (Stats{Exported: 4}) {
		t.Errorf("Stats = %+v; want 4 exported", s)
	}
}

func TestContentOnlyWhenCaptured(t *testing.T) {
	for _, capture := range []bool{false, true} {
		t.Run(fmt.Sprintf("CaptureContent=%v", capture), func(t *testing.T) {
			f := newFakeLangfuse(t, nil)
			e := newExporter(t, f, func(c *Config) { c.CaptureContent = capture })
			r := record(0)
			sse := record(1)
			sse.Output = []byte("data: {\"x\":1}\n\ndata: [DONE]\n\n") // not JSON
			e.Observe(r)
			e.Observe(sse)
			closeExporter(t, e)

			for _, ev := range f.requests()[0] {
				for _, k := range []string{"input", "output"} {
					if v, has := ev.Body[k]; has != (capture && ev.Type == "generation-create") {
						t.Errorf("%s body has %s = %v (CaptureContent %v)", ev.Type, k, v, capture)
					}
				}
				if !capture {
					b, _ := json.Marshal(ev)
					if bytes.Contains(b, []byte("jo@example.com")) || bytes.Contains(b, []byte("hello jo")) {
						t.Errorf("%s event holds the call's content: %s", ev.Type, b)
					}
				}
			}
			if !capture {
				return
			}
			gens := byType(f.events(), "generation-create")
			in, _ := gens[0].Body["input"].(map[string]any)
			if in["model"] != "smart" {
				t.Errorf("input = %v; want the request body as JSON", gens[0].Body["input"])
			}
			if out := gens[1].Body["output"]; out != string(sse.Output) {
				t.Errorf("non-JSON output = %#v; want it as a string", out)
			}
		})
	}
}

func TestIDsDeterministic(t *testing.T) {
	e := &Exporter{}
	a, err := e.encodeRecord(record(0))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := e.encodeRecord(record(0))
	for i := range a {
		if a[i].id != b[i].id || !bytes.Equal(a[i].raw, b[i].raw) {
			t.Errorf("event %d encodes differently twice:\n%s\n%s", i, a[i].raw, b[i].raw)
		}
	}
	if a[0].id == a[1].id {
		t.Errorf("trace and generation events share id %s", a[0].id)
	}
	if got, want := GenerationID(record(0)), GenerationID(record(0)); got != want || len(got) != 16 {
		t.Errorf("GenerationID = %q then %q; want one 16-digit id", got, want)
	}
	// Two calls under one trace id (an agent's traceparent): one trace,
	// two generations.
	r1, r2 := record(0), record(1)
	r2.TraceID = r1.TraceID
	if GenerationID(r1) == GenerationID(r2) {
		t.Errorf("two calls of trace %s share generation id %s", r1.TraceID, GenerationID(r1))
	}
	c, _ := e.encodeRecord(r2)
	if c[0].id == a[0].id || c[1].id == a[1].id {
		t.Errorf("two calls of one trace share event ids")
	}
	if _, err := e.encodeRecord(&gateway.CallRecord{}); err == nil {
		t.Errorf("a record without trace id encodes")
	}
}

func TestMultiStatus(t *testing.T) {
	recs := []*gateway.CallRecord{record(0), record(1), record(2)}
	f := newFakeLangfuse(t, func(n int, batch []ingEvent, _ *http.Request) reply {
		if n > 0 {
			return reply{status: http.StatusMultiStatus, body: allSucceeded(batch)}
		}
		rep := ingestionReply{Successes: []result{}, Errors: []result{}}
		for _, ev := range batch {
			switch {
			case ev.Type == "generation-create" && ev.Body["traceId"] == recs[0].TraceID:
				rep.Errors = append(rep.Errors, result{ID: ev.ID, Status: 400, Message: "Invalid request data"})
			case ev.Type == "trace-create" && ev.Body["id"] == recs[1].TraceID:
				rep.Errors = append(rep.Errors, result{ID: ev.ID, Status: 500, Message: "internal"})
			default:
				rep.Successes = append(rep.Successes, result{ID: ev.ID, Status: 201})
			}
		}
		return reply{status: http.StatusMultiStatus, body: rep}
	})
	e := newExporter(t, f, func(c *Config) { c.BatchSize = 3 })
	for _, r := range recs {
		e.Observe(r)
	}
	waitFor(t, "every event settled", func() bool { s := e.Stats(); return s.Exported+s.Rejected+s.Failed == 6 })
	closeExporter(t, e)

	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests; want the batch and one retry", len(reqs))
	}
	if len(reqs[1]) != 1 || reqs[1][0].Type != "trace-create" || reqs[1][0].Body["id"] != recs[1].TraceID {
		t.Errorf("retry sent %v; want only the event failed with a 500", reqs[1])
	}
	if s := e.Stats(); s != (Stats{Exported: 5, Rejected: 1}) {
		t.Errorf("Stats = %+v; want 5 exported, 1 rejected (not retried)", s)
	}
}

func TestRetryServerError(t *testing.T) {
	f := newFakeLangfuse(t, func(n int, batch []ingEvent, _ *http.Request) reply {
		if n == 0 {
			return reply{status: http.StatusInternalServerError}
		}
		return reply{status: http.StatusMultiStatus, body: allSucceeded(batch)}
	})
	e := newExporter(t, f, nil)
	e.Observe(record(0))
	closeExporter(t, e)

	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("got %d requests; want 2 (a 500, then a retry)", len(reqs))
	}
	for i := range reqs[0] {
		if reqs[0][i].ID != reqs[1][i].ID {
			t.Errorf("retry event %d id %s; want the first attempt's %s (idempotent)", i, reqs[1][i].ID, reqs[0][i].ID)
		}
	}
	if s := e.Stats(); s != (Stats{Exported: 2}) {
		t.Errorf("Stats = %+v; want 2 exported", s)
	}
}

func TestRetryAfter(t *testing.T) {
	f := newFakeLangfuse(t, func(n int, batch []ingEvent, _ *http.Request) reply {
		if n == 0 {
			return reply{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"1"}}}
		}
		return reply{status: http.StatusMultiStatus, body: allSucceeded(batch)}
	})
	e := newExporter(t, f, func(c *Config) { c.MaxBackoff = time.Minute })
	e.Observe(record(0))
	closeExporter(t, e)

	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.arrivals) != 2 {
		t.Fatalf("got %d requests; want 2 (a 429, then a retry)", len(f.arrivals))
	}
	// A lower bound the exporter guarantees (it waits Retry-After before
	// retrying), not a measure of speed.
	if gap := f.arrivals[1].Sub(f.arrivals[0]); gap < time.Second {
		t.Errorf("retried %v after a 429 with Retry-After: 1; want at least 1s", gap)
	}
	if s := e.Stats(); s.Exported != 2 {
		t.Errorf("Stats = %+v; want 2 exported", s)
	}
}

func TestAttemptsBounded(t *testing.T) {
	f := newFakeLangfuse(t, func(int, []ingEvent, *http.Request) reply {
		return reply{status: http.StatusBadGateway}
	})
	e := newExporter(t, f, func(c *Config) { c.MaxAttempts = 3 })
	e.Observe(record(0))
	closeExporter(t, e)
	if n := len(f.requests()); n != 3 {
		t.Errorf("got %d requests; want MaxAttempts 3", n)
	}
	if s := e.Stats(); s != (Stats{Failed: 2}) {
		t.Errorf("Stats = %+v; want 2 failed", s)
	}
}

func TestUnauthorizedNotRetriedSecretNotLogged(t *testing.T) {
	f := newFakeLangfuse(t, nil)
	logger, logs := newLogger(t)
	e, err := New(Config{Host: f.srv.URL, PublicKey: testPublic, SecretKey: "sk-lf-wrong-secret-1b2c", Logger: logger,
		MinBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e.Observe(record(0))
	closeExporter(t, e)
	if n := len(f.requests()); n != 0 {
		t.Errorf("server accepted %d batches with a wrong secret", n)
	}
	if s := e.Stats(); s != (Stats{Failed: 2}) {
		t.Errorf("Stats = %+v; want 2 failed, no retry", s)
	}
	if !strings.Contains(logs.String(), "HTTP 401") {
		t.Errorf("logs do not report the 401:\n%s", logs)
	}
	logger.Info("config", "config", e.cfg)
	out := logs.String() + fmt.Sprint(e.cfg) + fmt.Sprintf("%+v %s", e.cfg, e.cfg)
	for _, secret := range []string{"sk-lf-wrong-secret-1b2c", e.auth[len("Basic "):]} {
		if strings.Contains(out, secret) {
			t.Errorf("the secret key appears in logs or in a printed Config:\n%s", out)
		}
	}
}

func TestTooLargeSplits(t *testing.T) {
	f := newFakeLangfuse(t, func(_ int, batch []ingEvent, _ *http.Request) reply {
		if len(batch) > 2 {
			return reply{status: http.StatusRequestEntityTooLarge}
		}
		return reply{status: http.StatusMultiStatus, body: allSucceeded(batch)}
	})
	e := newExporter(t, f, nil)
	for i := range 3 {
		e.Observe(record(i))
	}
	closeExporter(t, e)
	if s := e.Stats(); s != (Stats{Exported: 6}) {
		t.Errorf("Stats = %+v; want 6 exported after splitting", s)
	}
}

func TestMaxBatchBytes(t *testing.T) {
	f := newFakeLangfuse(t, nil)
	const limit = 4000
	e := newExporter(t, f, func(c *Config) { c.MaxBatchBytes = limit; c.CaptureContent = true })
	for i := range 10 {
		e.Observe(record(i))
	}
	huge := record(10)
	huge.Input = []byte(`"` + strings.Repeat("x", limit) + `"`)
	e.Observe(huge)
	closeExporter(t, e)

	f.mu.Lock()
	sizes := f.sizes
	f.mu.Unlock()
	if len(sizes) < 2 {
		t.Errorf("10 records in %d requests of limit %d bytes; want several", len(sizes), limit)
	}
	for i, n := range sizes {
		if n > limit {
			t.Errorf("request %d has %d bytes; want at most MaxBatchBytes %d", i, n, limit)
		}
	}
	if s := e.Stats(); s != (Stats{Exported: 20, Failed: 2}) {
		t.Errorf("Stats = %+v; want 20 exported and the huge record's 2 failed", s)
	}
}

func TestCloseFlushes(t *testing.T) {
	f := newFakeLangfuse(t, nil)
	e := newExporter(t, f, nil) // batches of 1000, flushed hourly
	for i := range 5 {
		e.Observe(record(i))
	}
	closeExporter(t, e)
	if n := len(byType(f.events(), "generation-create")); n != 5 {
		t.Errorf("Close flushed %d generations; want 5", n)
	}
	e.Observe(record(5))
	if d := e.Dropped(); d != 1 {
		t.Errorf("Dropped after an Observe past Close = %d; want 1", d)
	}
}

func TestFlushInterval(t *testing.T) {
	f := newFakeLangfuse(t, nil)
	e := newExporter(t, f, func(c *Config) { c.FlushInterval = 5 * time.Millisecond })
	e.Observe(record(0))
	waitFor(t, "the timed flush", func() bool { return len(f.requests()) == 1 })
}

func TestSampledOnly(t *testing.T) {
	f := newFakeLangfuse(t, nil)
	e := newExporter(t, f, func(c *Config) { c.SampledOnly = true })
	unsampled := record(1)
	unsampled.Sampled = false
	e.Observe(record(0))
	e.Observe(unsampled)
	e.Observe(nil)
	closeExporter(t, e)
	if n := len(f.events()); n != 2 {
		t.Errorf("exported %d events; want only the sampled record's 2", n)
	}
}

func TestDropsWhenServerHangs(t *testing.T) {
	release := make(chan struct{})
	f := newFakeLangfuse(t, func(_ int, batch []ingEvent, r *http.Request) reply {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return reply{status: http.StatusMultiStatus, body: allSucceeded(batch)}
	})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the server closes (cleanups run last first)
	e := newExporter(t, f, func(c *Config) { c.QueueSize = 100; c.BatchSize = 10; c.FlushInterval = time.Millisecond })

	const n = 10_000
	for i := range n {
		e.Observe(record(i)) // returns although the server hangs
	}
	if e.Dropped() == 0 {
		t.Fatalf("Dropped = 0 after %d records into a queue of 100 with a hanging server", n)
	}
	// Close gives up on the hanging request when its context ends; every
	// record is then accounted for.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := e.Close(ctx); err == nil {
		t.Errorf("Close returned nil with the server hanging")
	}
	unblock()
	s := e.Stats()
	if got := s.Dropped + (s.Exported+s.Rejected+s.Failed)/2; got != n {
		t.Errorf("Stats = %+v account for %d records; want %d", s, got, n)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Host: "https://cloud.langfuse.com", PublicKey: "pk", SecretKey: "sk"}
	if err := good.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	for _, test := range []struct {
		name string
		edit func(*Config)
	}{
		{"NoHost", func(c *Config) { c.Host = "" }},
		{"NotHTTP", func(c *Config) { c.Host = "ftp://langfuse.example.com" }},
		{"NoHostName", func(c *Config) { c.Host = "https://" }},
		{"CredentialsInHost", func(c *Config) { c.Host = "https://pk:sk@cloud.langfuse.com" }},
		{"NoPublicKey", func(c *Config) { c.PublicKey = "" }},
		{"NoSecretKey", func(c *Config) { c.SecretKey = "" }},
		{"NegativeQueue", func(c *Config) { c.QueueSize = -1 }},
		{"UppercaseEnvironment", func(c *Config) { c.Environment = "Production" }},
		{"ReservedEnvironment", func(c *Config) { c.Environment = "langfuse-prod" }},
		{"NegativeTimeout", func(c *Config) { c.Timeout = -time.Second }},
	} {
		t.Run(test.name, func(t *testing.T) {
			c := good
			test.edit(&c)
			if err := c.Validate(); err == nil {
				t.Errorf("Validate(%v) = nil; want an error", c)
			}
			if _, err := New(c); err == nil {
				t.Errorf("New(%v) = nil error", c)
			}
		})
	}
}

func TestHostPrefix(t *testing.T) {
	f := newFakeLangfuse(t, nil)
	mux := http.NewServeMux()
	mux.Handle("/langfuse/", http.StripPrefix("/langfuse", f.srv.Config.Handler))
	prefixed := httptest.NewServer(mux)
	t.Cleanup(prefixed.Close)
	e := newExporter(t, f, func(c *Config) { c.Host = prefixed.URL + "/langfuse/" })
	e.Observe(record(0))
	closeExporter(t, e)
	if s := e.Stats(); s.Exported != 2 {
		t.Errorf("Stats = %+v; want 2 exported under the host's path prefix", s)
	}
}

func TestRetryAfterHeader(t *testing.T) {
	now := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	for _, test := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0}, {"3", 3 * time.Second}, {"-1", 0}, {"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
	} {
		if got := gateway.ParseRetryAfter(http.Header{"Retry-After": {test.v}}, now); got != test.want {
			t.Errorf("retryAfter(%q) = %v; want %v", test.v, got, test.want)
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusMultiStatus)
		io.WriteString(w, `{"successes":[],"errors":[]}`)
	}))
	defer srv.Close()
	e, err := New(Config{Host: srv.URL, PublicKey: testPublic, SecretKey: testSecret})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(context.Background())
	r := record(0)
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			e.Observe(r)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				e.Observe(r)
			}
		})
	})
}

func BenchmarkEncodeRecord(b *testing.B) {
	for _, capture := range []bool{false, true} {
		b.Run(fmt.Sprintf("content=%v", capture), func(b *testing.B) {
			e := &Exporter{cfg: Config{CaptureContent: capture}}
			r := record(0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.encodeRecord(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
