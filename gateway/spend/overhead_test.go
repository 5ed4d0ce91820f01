package spend_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/debug"
	"slices"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/gateway/mock"
	"aigw/gateway/pricing"
	"aigw/gateway/router"
	"aigw/gateway/spend"
	"aigw/gateway/telemetry"
	"aigw/ledger"

	"github.com/redis/go-redis/v9"
)

// acked is a Recorder whose events are acknowledged at once: the ledger's
// cost is measured elsewhere (README), this measures what budgets and
// telemetry add to a call.
type acked struct{}

func (acked) Publish(evs []*ledger.Event, _ [][]byte) (gateway.Pending, error) {
	// Encoded as the JetStream producer does: the budget events' encoding
	// is part of what they cost.
	for _, ev := range evs {
		if _, err := ev.Entry(); err != nil {
			return nil, err
		}
	}
	return done{}, nil
}

type done struct{}

func (done) Wait(context.Context) error { return nil }

// newPipe returns a pipeline over the in-process mock provider, with
// budgets (counter c; nil: none) and telemetry (nil: none).
func newPipe(tb testing.TB, c spend.Counter, tel gateway.Telemetry) *gateway.Pipeline {
	tb.Helper()
	rt, err := router.New(router.Config{Routes: []router.Route{{Name: "m", Targets: []router.RouteTarget{{Target: gateway.Target{Name: "mock/mock-1", Provider: "mock", Kind: "mock", Model: "mock-1", Upstream: mock.New("mock")}}}}}})
	if err != nil {
		tb.Fatal(err)
	}
	pr, err := pricing.NewPricer(pricing.Builtin(), []pricing.TargetPrice{{Name: "mock/mock-1", Kind: "mock", Model: "mock-1"}}, map[string][]string{"m": {"mock/mock-1"}})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := gateway.PipelineConfig{Router: rt, Recorder: acked{}, Pricer: pr}
	if tel != nil {
		cfg.Telemetry = tel
	}
	if c != nil {
		limit := gateway.NanoUSD(1 << 60)
		budgets := []spend.Budget{
			{ID: "tenant", Tenant: "acme", Window: spend.Window{Kind: spend.WindowMonth}, LimitUSD: &limit},
			{ID: "team", Tenant: "acme", Scope: spend.Scope{Team: "research"}, Window: spend.Window{Kind: spend.WindowDay}, LimitTokens: 1 << 50},
			{ID: "agent", Tenant: "acme", Scope: spend.Scope{AgentID: "planner"}, Window: spend.Window{Kind: spend.WindowDay}, LimitUSD: &limit},
		}
		for i := range budgets {
			budgets[i].Validate()
		}
		sp, err := spend.New(spend.Config{Counter: c, Budgets: func(context.Context, string) ([]spend.Budget, error) { return budgets, nil }})
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Spender = sp
	}
	p, err := gateway.NewPipeline(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestOverhead measures what budget enforcement and telemetry (OTLP
// export to a receiver in the test, Prometheus metrics) add to a call:
// calls alternate between a pipeline without them and one with them, so
// the machine's noise hits both alike; it prints the p50 and p99 of each
// and their difference. Run with AIGW_OVERHEAD=1 (README, Performance).
func TestOverhead(t *testing.T) {
	if os.Getenv("AIGW_OVERHEAD") == "" {
		t.Skip("set AIGW_OVERHEAD=1 to measure (README: Performance)")
	}
	// As `aigw serve` runs (GOGC=400 unless set; README).
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }))
	defer sink.Close()
	tel, err := telemetry.New(telemetry.Config{OTLPEndpoint: sink.URL + "/v1/traces"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	rc := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	defer rc.Close()
	prefix := fmt.Sprintf("aigw-overhead:%d:", time.Now().UnixNano())
	defer func() {
		ctx := context.Background()
		it := rc.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			rc.Del(ctx, it.Val())
		}
	}()
	base := newPipe(t, nil, nil)
	for _, c := range []struct {
		name    string
		counter spend.Counter
		tel     gateway.Telemetry
	}{
		{"memory", spend.NewMemory(), tel}, {"redis", spend.NewRedis(rc, prefix), tel},
		{"memory-budgets-only", spend.NewMemory(), nil}, {"redis-budgets-only", spend.NewRedis(rc, prefix+"b:"), nil}, {"telemetry-only", nil, tel},
	} {
		if only := os.Getenv("AIGW_OVERHEAD_ONLY"); only != "" && only != c.name {
			continue
		}
		full := newPipe(t, c.counter, c.tel)
		const n = 20000
		var a, b []time.Duration
		caller := gateway.Caller{Tenant: "acme", KeyID: "key_1", Team: "research", AgentID: "planner"}
		body := []byte(`{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"Summarize the quarterly report in three bullet points."}]}`)
		req := &gateway.ChatRequest{Model: "m", Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("Summarize the quarterly report in three bullet points.")}}}
		mt := 64
		req.MaxTokens = &mt
		ctx := context.Background()
		for i := range n + 1000 {
			for j, p := range []*gateway.Pipeline{base, full} {
				r := *req
				start := time.Now()
				if _, _, err := p.Chat(ctx, caller, &r, body, ""); err != nil {
					t.Fatal(err)
				}
				d := time.Since(start)
				if i < 1000 {
					continue // warm-up
				}
				if j == 0 {
					a = append(a, d)
				} else {
					b = append(b, d)
				}
			}
		}
		slices.Sort(a)
		slices.Sort(b)
		q := func(s []time.Duration, f float64) time.Duration { return s[int(f*float64(len(s)-1))] }
		fmt.Printf("overhead %-6s calls=%d  base p50=%v p99=%v  with budgets+telemetry p50=%v p99=%v  added p50=%v p99=%v\n",
			c.name, n, q(a, .5), q(a, .99), q(b, .5), q(b, .99), q(b, .5)-q(a, .5), q(b, .99)-q(a, .99))
	}
}

// BenchmarkPipelineChat is one in-process chat call (mock provider, events
// encoded, acknowledged at once) without and with budgets and metrics.
func BenchmarkPipelineChat(b *testing.B) {
	tel, err := telemetry.New(telemetry.Config{})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		p    *gateway.Pipeline
	}{{"base", newPipe(b, nil, nil)}, {"budgets+metrics", newPipe(b, spend.NewMemory(), tel)}} {
		b.Run(c.name, func(b *testing.B) {
			caller := gateway.Caller{Tenant: "acme", KeyID: "key_1", Team: "research", AgentID: "planner"}
			body := []byte(`{"model":"m","max_tokens":64,"messages":[{"role":"user","content":"Summarize the quarterly report."}]}`)
			mt := 64
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				r := gateway.ChatRequest{Model: "m", MaxTokens: &mt, Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("Summarize the quarterly report.")}}}
				if _, _, err := c.p.Chat(ctx, caller, &r, body, ""); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
