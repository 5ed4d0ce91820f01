package telemetry

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"aigw/gateway"
	"aigw/gateway/mock"
	"aigw/gateway/router"
)

// parse parses a Prometheus text document (failing the test if it does
// not parse).
func parse(t testing.TB, doc []byte) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, doc)
	}
	return mfs
}

// matches reports whether m has every label of want (a missing label
// has the value "").
func matches(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		got := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == k {
				got = lp.GetValue()
			}
		}
		if got != v {
			return false
		}
	}
	return true
}

// sum is the sum of the family's counter, gauge or untyped values of the
// samples with the labels of want.
func sum(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var v float64
	for _, m := range mfs[name].GetMetric() {
		if matches(m, want) {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return v
}

// histogram returns the count and sum of the histogram with the labels
// of want.
func histogram(mfs map[string]*dto.MetricFamily, name string, want map[string]string) (uint64, float64) {
	var n uint64
	var s float64
	for _, m := range mfs[name].GetMetric() {
		if matches(m, want) {
			n += m.GetHistogram().GetSampleCount()
			s += m.GetHistogram().GetSampleSum()
		}
	}
	return n, s
}

// counterValue reads a counter through the Telemetry's /metrics text.
func counterValue(t testing.TB, tel *Telemetry, name string, want map[string]string) float64 {
	t.Helper()
	var b bytes.Buffer
	if err := tel.WriteMetrics(&b); err != nil {
		t.Fatalf("WriteMetrics: %v", err)
	}
	return sum(parse(t, b.Bytes()), name, want)
}

func slogTo(mu *sync.Mutex, w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, w}, nil))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-12*math.Max(1, math.Abs(b)) }

func testRouter(t testing.TB) *router.Router {
	t.Helper()
	target := gateway.Target{Name: "claude/claude-x", Provider: "claude", Kind: "mock", Model: "claude-x", Upstream: mock.New("claude")}
	r, err := router.New(router.Config{Routes: []router.Route{
		{Name: "smart", Targets: []router.RouteTarget{{Target: target}}},
		{Name: "embed", Targets: []router.RouteTarget{{Target: target}}},
	}})
	if err != nil {
		t.Fatalf("router: %v", err)
	}
	return r
}

// handWritten stands for httpapi's hand-written metrics.
func handWritten(w io.Writer) {
	fmt.Fprintln(w, "# HELP aigw_ledger_failures_total Ledger events not acknowledged.")
	fmt.Fprintln(w, "# TYPE aigw_ledger_failures_total counter")
	fmt.Fprintln(w, "aigw_ledger_failures_total 3")
}

func TestMetrics(t *testing.T) {
	rt := testRouter(t)
	tel := newTel(t, nil, Config{KnownModel: rt.Has})
	chat := chatRecord()
	embed := &gateway.CallRecord{TraceID: gateway.NewTraceID(), Tenant: "acme", Endpoint: "embeddings", Model: "embed",
		Provider: "claude", Target: "claude/claude-x", Start: testStart, Duration: 20 * time.Millisecond, Status: 200,
		Usage: &gateway.Usage{PromptTokens: 10, TotalTokens: 10}, Cost: gateway.Cost{Amount: 1}, Priced: true}
	failed := &gateway.CallRecord{TraceID: gateway.NewTraceID(), Tenant: "acme", Endpoint: "chat.completions", Model: "smart",
		Provider: "claude", Start: testStart, Duration: 3 * time.Second, Status: 502, ErrorType: gateway.TypeUpstream}
	unknown := &gateway.CallRecord{TraceID: gateway.NewTraceID(), Tenant: "acme", Endpoint: "chat.completions",
		Model: "made-up-model", Start: testStart, Status: 404}
	negative := &gateway.CallRecord{TraceID: gateway.NewTraceID(), Endpoint: "chat.completions", Model: "smart", Provider: "claude",
		Status: 200, Usage: &gateway.Usage{PromptTokens: -5, CompletionTokens: -1}, Cost: gateway.Cost{Amount: -10}, Priced: true}
	for _, rec := range []*gateway.CallRecord{chat, chat, embed, failed, unknown, negative} {
		tel.Observe(rec)
	}

	var b bytes.Buffer
	if err := tel.WriteMetrics(&b, rt.WriteMetrics, handWritten); err != nil {
		t.Fatalf("WriteMetrics: %v", err)
	}
	mfs := parse(t, b.Bytes())

	chatL := map[string]string{"endpoint": "chat.completions", "model": "smart", "provider": "claude"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"aigw_requests_total", map[string]string{"endpoint": "chat.completions", "model": "smart", "provider": "claude", "status": "200"}, 3},
		{"aigw_requests_total", map[string]string{"endpoint": "chat.completions", "model": "smart", "provider": "claude", "status": "502"}, 1},
		{"aigw_requests_total", map[string]string{"endpoint": "embeddings", "model": "embed", "status": "200"}, 1},
		{"aigw_requests_total", map[string]string{"model": OtherModel, "provider": "", "status": "404"}, 1},
		{"aigw_requests_total", map[string]string{"model": "made-up-model"}, 0},
		{"aigw_tokens_total", map[string]string{"model": "smart", "provider": "claude", "type": "input"}, 240},
		{"aigw_tokens_total", map[string]string{"model": "smart", "provider": "claude", "type": "output"}, 60},
		{"aigw_tokens_total", map[string]string{"model": "smart", "provider": "claude", "type": "cached"}, 200},
		{"aigw_tokens_total", map[string]string{"model": "embed", "type": "input"}, 10},
		{"aigw_tokens_total", map[string]string{"model": "embed", "type": "output"}, 0},
		{"aigw_cost_usd_total", map[string]string{"model": "smart", "provider": "claude"}, 25e-6},
		{"aigw_cost_usd_total", map[string]string{"model": "embed"}, 1e-9},
		{"aigw_guardrail_decisions_total", map[string]string{"check": "pii", "stage": "input", "verdict": "redact"}, 2},
		{"aigw_guardrail_decisions_total", map[string]string{"check": "tox", "stage": "output", "verdict": "pass"}, 2},
		{"aigw_telemetry_spans_dropped_total", map[string]string{"reason": "queue_full"}, 0},
		{"aigw_router_attempts_total", map[string]string{"target": "claude/claude-x", "outcome": "ok"}, 0},
		{"aigw_ledger_failures_total", nil, 3},
	} {
		if _, ok := mfs[c.name]; !ok {
			t.Errorf("%s missing", c.name)
			continue
		}
		if got := sum(mfs, c.name, c.labels); !near(got, c.want) {
			t.Errorf("%s%v = %v; want %v", c.name, c.labels, got, c.want)
		}
	}
	if n, s := histogram(mfs, "aigw_request_duration_seconds", chatL); n != 4 || !near(s, 2*1.5+3) {
		t.Errorf("duration{chat} count %d sum %v; want 4, 6", n, s)
	}
	if n, s := histogram(mfs, "aigw_time_to_first_byte_seconds", chatL); n != 2 || !near(s, 0.5) {
		t.Errorf("ttfb{chat} count %d sum %v; want 2, 0.5", n, s)
	}
	if n, _ := histogram(mfs, "aigw_time_to_first_byte_seconds", map[string]string{"endpoint": "embeddings"}); n != 0 {
		t.Errorf("ttfb{embeddings} count %d; want 0 (not streamed)", n)
	}
	// Buckets reach from 5 ms to 2 min.
	h := mfs["aigw_request_duration_seconds"].GetMetric()[0].GetHistogram()
	bs := h.GetBucket()
	if math.IsInf(bs[len(bs)-1].GetUpperBound(), 1) {
		bs = bs[:len(bs)-1]
	}
	if bs[0].GetUpperBound() != 0.005 || bs[len(bs)-1].GetUpperBound() != 120 {
		t.Errorf("duration buckets %v; want 0.005 … 120", bs)
	}
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "tenant" {
					t.Errorf("%s has a tenant label without TenantLabel", name)
				}
			}
		}
	}
}

func TestTenantLabel(t *testing.T) {
	tel := newTel(t, nil, Config{TenantLabel: true})
	a, b := chatRecord(), chatRecord()
	b.Tenant = "globex"
	tel.Observe(a)
	tel.Observe(b)
	tel.Observe(b)
	var buf bytes.Buffer
	if err := tel.WriteMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	mfs := parse(t, buf.Bytes())
	for _, name := range []string{"aigw_requests_total", "aigw_tokens_total", "aigw_cost_usd_total"} {
		if got := sum(mfs, name, map[string]string{"tenant": "globex"}); got <= 0 {
			t.Errorf("%s{tenant=globex} = %v", name, got)
		}
	}
	if got := sum(mfs, "aigw_requests_total", map[string]string{"tenant": "acme"}); got != 1 {
		t.Errorf("requests{tenant=acme} = %v; want 1", got)
	}
	if n, _ := histogram(mfs, "aigw_request_duration_seconds", map[string]string{"tenant": "globex"}); n != 2 {
		t.Errorf("duration{tenant=globex} count %d; want 2", n)
	}
}

func TestGaugeFunc(t *testing.T) {
	tel := newTel(t, nil, Config{})
	var mu sync.Mutex
	remaining := map[string]float64{"team:research": 12.5, "tenant:acme": 100}
	err := tel.GaugeFunc("aigw_budget_remaining_usd", "Budget left.", []string{"budget"}, func() []Sample {
		mu.Lock()
		defer mu.Unlock()
		var out []Sample
		for k, v := range remaining {
			out = append(out, Sample{Labels: []string{k}, Value: v})
		}
		return out
	})
	if err != nil {
		t.Fatalf("GaugeFunc: %v", err)
	}
	if err := tel.CounterFunc("aigw_ledger_appended_total", "Events appended.", nil, func() []Sample {
		return []Sample{{Value: 42}}
	}); err != nil {
		t.Fatalf("CounterFunc: %v", err)
	}
	for _, bad := range []struct {
		name, metric string
		labels       []string
		collect      func() []Sample
	}{
		{"Duplicate", "aigw_budget_remaining_usd", []string{"budget"}, func() []Sample { return nil }},
		{"BadName", "aigw-budget", nil, func() []Sample { return nil }},
		{"UTF8Name", "aigw.budget", nil, func() []Sample { return nil }},
		{"BadLabel", "aigw_x", []string{"a-b"}, func() []Sample { return nil }},
		{"NoCollect", "aigw_y", nil, nil},
	} {
		if err := tel.GaugeFunc(bad.metric, "h", bad.labels, bad.collect); err == nil {
			t.Errorf("%s: GaugeFunc(%q) succeeded; want an error", bad.name, bad.metric)
		}
	}

	var b bytes.Buffer
	if err := tel.WriteMetrics(&b, handWritten); err != nil {
		t.Fatalf("WriteMetrics: %v", err)
	}
	mfs := parse(t, b.Bytes())
	if mfs["aigw_budget_remaining_usd"].GetType() != dto.MetricType_GAUGE || mfs["aigw_ledger_appended_total"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("types %v %v; want gauge, counter", mfs["aigw_budget_remaining_usd"].GetType(), mfs["aigw_ledger_appended_total"].GetType())
	}
	if got := sum(mfs, "aigw_budget_remaining_usd", map[string]string{"budget": "team:research"}); got != 12.5 {
		t.Errorf("remaining{team:research} = %v; want 12.5", got)
	}
	if got := sum(mfs, "aigw_ledger_appended_total", nil); got != 42 {
		t.Errorf("appended = %v; want 42", got)
	}

	// A collect function with a wrong sample: the scrape reports it and
	// still writes every other metric.
	if err := tel.GaugeFunc("aigw_broken", "Broken.", []string{"a"}, func() []Sample {
		return []Sample{{Labels: []string{"x", "extra"}, Value: 1}}
	}); err != nil {
		t.Fatal(err)
	}
	b.Reset()
	if err := tel.WriteMetrics(&b, handWritten); err == nil {
		t.Errorf("WriteMetrics with a broken sample succeeded; want an error")
	}
	mfs = parse(t, b.Bytes())
	if got := sum(mfs, "aigw_ledger_failures_total", nil); got != 3 {
		t.Errorf("hand-written metric lost after a collect error")
	}
	if got := sum(mfs, "aigw_budget_remaining_usd", map[string]string{"budget": "tenant:acme"}); got != 100 {
		t.Errorf("remaining{tenant:acme} = %v after a collect error; want 100", got)
	}
}

func TestHandler(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	tel := newTel(t, nil, Config{Logger: slogTo(&mu, &logs)})
	tel.Observe(chatRecord())
	rt := testRouter(t)
	srv := httptest.NewServer(tel.Handler(rt.WriteMetrics, handWritten))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Errorf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	mfs := parse(t, body)
	for _, name := range []string{"aigw_requests_total", "aigw_router_target_state", "aigw_ledger_failures_total"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s missing from /metrics", name)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if logs.Len() > 0 {
		t.Errorf("logged: %s", logs.String())
	}
}

func TestNewErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"EndpointNotURL", Config{OTLPEndpoint: "collector:4318"}},
		{"EndpointScheme", Config{OTLPEndpoint: "grpc://collector:4317"}},
		{"EndpointNoHost", Config{OTLPEndpoint: "http:///v1/traces"}},
		{"Compression", Config{OTLPCompression: "zstd"}},
		{"RatioNegative", Config{SampleRatio: -0.1}},
		{"RatioAboveOne", Config{SampleRatio: 1.5}},
		{"RatioNaN", Config{SampleRatio: math.NaN()}},
		{"NegativeQueue", Config{QueueSize: -1}},
		{"RegistererNotGatherer", Config{Registry: registererOnly{prometheus.NewRegistry()}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if tel, err := New(c.cfg); err == nil {
				tel.Shutdown(t.Context())
				t.Errorf("New(%+v) succeeded; want an error", c.cfg)
			}
		})
	}
	t.Run("SameRegistryTwice", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		newTel(t, nil, Config{Registry: reg})
		if _, err := New(Config{Registry: reg}); err == nil {
			t.Errorf("second New on one registry succeeded; want an error")
		}
	})
	t.Run("RegistererWithGatherer", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		tel := newTel(t, nil, Config{Registry: registererOnly{reg}, Gatherer: reg})
		tel.Observe(chatRecord())
		if got := counterValue(t, tel, "aigw_requests_total", nil); got != 1 {
			t.Errorf("requests = %v; want 1", got)
		}
	})
}

type registererOnly struct{ prometheus.Registerer }

func TestConfigLogValue(t *testing.T) {
	var b strings.Builder
	var mu sync.Mutex
	cfg := Config{OTLPEndpoint: "http://user:s3cr3t-pass@collector:4318/v1/traces", OTLPHeaders: map[string]string{"Authorization": "Bearer s3cr3t-token"}}
	slogTo(&mu, &b).Info("telemetry", "config", cfg)
	out := b.String()
	if strings.Contains(out, "s3cr3t") {
		t.Errorf("a secret was logged: %s", out)
	}
	if !strings.Contains(out, "Authorization=REDACTED") || !strings.Contains(out, "collector:4318") {
		t.Errorf("log %q; want the endpoint and the header's name, redacted", out)
	}
}
