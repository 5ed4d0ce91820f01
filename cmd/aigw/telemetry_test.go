package main

import (
	"compress/gzip"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/ledger"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpSink is an OTLP/HTTP traces receiver run in the test.
type otlpSink struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			s.spans = append(s.spans, ss.Spans...)
		}
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Write(out)
}

func (s *otlpSink) span(traceID string) *tracepb.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.spans {
		if hex.EncodeToString(sp.TraceId) == traceID {
			return sp
		}
	}
	return nil
}

// langfuseSink speaks Langfuse's ingestion API: it checks Basic auth and
// keeps the events of each batch.
type langfuseSink struct {
	mu     sync.Mutex
	events []map[string]any
}

func (s *langfuseSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte("pk-lf-test:sk-lf-test"))
	if r.URL.Path != "/api/public/ingestion" || r.Header.Get("Authorization") != want {
		http.Error(w, `{"message":"unauthorized"}`, 401)
		return
	}
	var batch struct{ Batch []map[string]any }
	if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	var ok []map[string]any
	s.mu.Lock()
	for _, e := range batch.Batch {
		s.events = append(s.events, e)
		ok = append(ok, map[string]any{"id": e["id"], "status": 201})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(207)
	json.NewEncoder(w).Encode(map[string]any{"successes": ok, "errors": []any{}})
}

func (s *langfuseSink) generation(traceID string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.events {
		if b, _ := e["body"].(map[string]any); e["type"] == "generation-create" && b["traceId"] == traceID {
			return b
		}
	}
	return nil
}

// TestTelemetryEndToEnd: a call made with the agent's traceparent becomes
// an OTLP span with the ledger's trace id, a child of the agent's span,
// with GenAI attributes and its cost; Langfuse receives its generation;
// /metrics parses as Prometheus text and counts it.
func TestTelemetryEndToEnd(t *testing.T) {
	up := budgetUpstream(t)
	otlp := &otlpSink{}
	otlpSrv := httptest.NewServer(otlp)
	defer otlpSrv.Close()
	lf := &langfuseSink{}
	lfSrv := httptest.NewServer(lf)
	defer lfSrv.Close()
	g := startGW(t, budgetConfig(up.URL, fmt.Sprintf(`
telemetry:
  otlp_endpoint: %s/v1/traces
  langfuse: {host: %s, public_key: pk-lf-test, secret_key: sk-lf-test, flush_interval: 50ms}
`, otlpSrv.URL, lfSrv.URL)))
	key := g.newTeamKey(t, "acme", "research")
	const traceID, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	req, _ := http.NewRequest("POST", g.url()+"/v1/chat/completions", strings.NewReader(`{"model":"m","max_tokens":10,"messages":[{"role":"user","content":"What is the capital of France?"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("traceparent", "00-"+traceID+"-"+parent+"-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("call: %v %v", resp.Status, err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Aigw-Trace-Id"); got != traceID {
		t.Fatalf("trace id header %q", got)
	}
	// The ledger records the call under the same trace id.
	evs := budgetEvents(t, g, "acme", 1)
	var cost string
	for _, ev := range evs {
		if ev.TraceID != traceID {
			t.Fatalf("ledger event %s has trace %s", ev.Kind, ev.TraceID)
		}
		if ev.Kind == ledger.KindResponse {
			cost, _ = attrs(ev)["cost_usd"].(string)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var sp *tracepb.Span
	for sp == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		sp = otlp.span(traceID)
	}
	if sp == nil {
		t.Fatal("no span exported with the ledger's trace id")
	}
	if hex.EncodeToString(sp.ParentSpanId) != parent || sp.Kind != tracepb.Span_SPAN_KIND_CLIENT || sp.Name != "chat m" {
		t.Fatalf("span parent %x kind %v name %q", sp.ParentSpanId, sp.Kind, sp.Name)
	}
	got := map[string]string{}
	for _, kv := range sp.Attributes {
		v := kv.Value.GetStringValue()
		if v == "" {
			v = fmt.Sprint(kv.Value.GetIntValue())
		}
		got[kv.Key] = v
	}
	for k, want := range map[string]string{
		"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.response.model": "m1", "gen_ai.provider.name": "openai",
		"gen_ai.usage.output_tokens": "10", "aigw.tenant": "acme", "aigw.team": "research", "aigw.cost_usd": cost,
	} {
		if got[k] != want {
			t.Errorf("span attribute %s = %q, want %q", k, got[k], want)
		}
	}
	var gen map[string]any
	for gen == nil && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		gen = lf.generation(traceID)
	}
	if gen == nil {
		t.Fatal("Langfuse received no generation for the call")
	}
	if gen["model"] != "m1" || gen["input"] != nil {
		t.Fatalf("generation %v (content must not be sent unless capture_content)", gen)
	}
	// /metrics: one document in the Prometheus text format.
	mresp, err := http.Get(g.url() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer mresp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(mresp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	for _, name := range []string{"aigw_requests_total", "aigw_request_duration_seconds", "aigw_tokens_total", "aigw_cost_usd_total", "aigw_router_target_state", "aigw_ledger_backlog_events", "aigw_ledger_lag_seconds",
		"aigw_ledger_appended_events_total", "aigw_ledger_failed_batches_total", "aigw_ledger_lost_deliveries_total", "aigw_ledger_duplicate_events_total"} {
		if fams[name] == nil {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	if f := fams["aigw_requests_total"]; f != nil {
		n := 0.0
		for _, m := range f.Metric {
			n += m.GetCounter().GetValue()
		}
		if n != 1 {
			t.Errorf("aigw_requests_total sums to %v, want 1", n)
		}
	}
}

// TestMetricsToken: with telemetry.metrics_token, /metrics answers only a
// request that carries it, so tenant labels can be on without naming the
// tenants to whoever reaches the gateway; without a token, tenant labels
// are warned about at start.
func TestMetricsToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-metrics-token"
	g := startGW(t, fmt.Sprintf(`
gateway: {admin_key: %s}
telemetry: {tenant_label: true, metrics_token: %s}
`, testAdminKey, token))
	if code, e, _ := g.agentCall(t, g.newKey(t, "acme"), "mock", ""); code != 200 {
		t.Fatalf("call: %d %v", code, e)
	}
	get := func(auth string) (int, string) {
		code, b := getAuth(t, g.url()+"/metrics", auth)
		return code, string(b)
	}
	for _, auth := range []string{"", "Bearer wrong", token, "Bearer " + testAdminKey} {
		code, body := get(auth)
		if code != 401 || !strings.Contains(body, `"invalid_metrics_token"`) || strings.Contains(body, "acme") {
			t.Errorf("/metrics with %q: %d %s", auth, code, body)
		}
	}
	code, body := get("Bearer " + token)
	if code != 200 || !strings.Contains(body, `tenant="acme"`) {
		t.Fatalf("/metrics with the token: %d %.300s", code, body)
	}
	if errs := g.stderr.String(); strings.Contains(errs, token) || strings.Contains(errs, "without telemetry.metrics_token") {
		t.Fatalf("serve's log:\n%s", errs)
	}

	open := startGW(t, fmt.Sprintf("gateway: {admin_key: %s}\ntelemetry: {tenant_label: true}\n", testAdminKey))
	if code, _ := getAuth(t, open.url()+"/metrics", ""); code != 200 {
		t.Fatalf("/metrics without a metrics token: %d", code)
	}
	if !strings.Contains(open.stderr.String(), "without telemetry.metrics_token") {
		t.Fatalf("no warning about tenant labels on an open /metrics:\n%s", open.stderr.String())
	}
}
