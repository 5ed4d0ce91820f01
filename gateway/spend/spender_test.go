package spend

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway"

	"github.com/redis/go-redis/v9"
)

func usd(s string) *gateway.NanoUSD {
	v, err := gateway.ParseNanoUSD(s)
	if err != nil {
		panic(err)
	}
	return &v
}

func TestWindowBounds(t *testing.T) {
	at := time.Date(2026, 11, 27, 15, 4, 5, 0, time.UTC) // a Friday
	for _, c := range []struct {
		w          Window
		start, end string
	}{
		{Window{Kind: WindowDay}, "2026-11-27T00:00:00Z", "2026-11-28T00:00:00Z"},
		{Window{Kind: WindowWeek}, "2026-11-23T00:00:00Z", "2026-11-30T00:00:00Z"},
		{Window{Kind: WindowMonth}, "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z"},
		{Window{Kind: WindowCustom, Start: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC), Period: Duration(72 * time.Hour)}, "2026-11-25T12:00:00Z", "2026-11-28T12:00:00Z"},
		// before the anchor: the window that holds t, still Period long
		{Window{Kind: WindowCustom, Start: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), Period: Duration(7 * 24 * time.Hour)}, "2026-11-24T00:00:00Z", "2026-12-01T00:00:00Z"},
	} {
		s, e := c.w.Bounds(at)
		if got := s.Format(time.RFC3339) + " " + e.Format(time.RFC3339); got != c.start+" "+c.end {
			t.Errorf("%+v: %s, want %s %s", c.w, got, c.start, c.end)
		}
	}
	// Sunday belongs to the week that started on Monday.
	s, _ := Window{Kind: WindowWeek}.Bounds(time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC))
	if s.Format(time.DateOnly) != "2026-11-23" {
		t.Errorf("Sunday's week starts %s", s)
	}
}

func TestParseBudget(t *testing.T) {
	b, err := ParseBudget([]byte(`{"id":"research-daily","tenant":"acme","scope":{"team":"research"},"window":{"kind":"day"},"limit_usd":"25.50"}`))
	if err != nil {
		t.Fatal(err)
	}
	if *b.LimitUSD != 25_500_000_000 || len(b.Alerts) != 3 || b.Scope.String() != "team=research" {
		t.Fatalf("%+v", b)
	}
	for _, bad := range []string{
		`{"id":"x","tenant":"acme","window":{"kind":"day"}}`,                                          // no limit
		`{"id":"x","tenant":"acme","window":{"kind":"year"},"limit_tokens":5}`,                        // window
		`{"id":"x","tenant":"acme","window":{"kind":"custom","period":"1h"},"limit_tokens":5}`,        // no start
		`{"id":"X","tenant":"acme","window":{"kind":"day"},"limit_tokens":5}`,                         // id
		`{"id":"x","tenant":"acme","window":{"kind":"day"},"limit_usd":"-1"}`,                         // negative
		`{"id":"x","tenant":"acme","window":{"kind":"day"},"limit_usd":"0.0000000001"}`,               // sub-nano
		`{"id":"x","tenant":"acme","window":{"kind":"day"},"limit_tokens":5,"alerts":[80,50]}`,        // order
		`{"id":"x","tenant":"acme","window":{"kind":"day"},"limit_tokens":5,"color":"red"}`,           // unknown field
		`{"id":"x","tenant":"acme","window":{"kind":"day"},"limit_tokens":5,"scope":{"team":"a\nb"}}`, // control char
	} {
		if _, err := ParseBudget([]byte(bad)); err == nil {
			t.Errorf("ParseBudget(%s) accepted", bad)
		}
	}
}

// ev decodes a budget event's attrs.
func ev(t testing.TB, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("budget event is not JSON: %v: %s", err, b)
	}
	return m
}

func newSpender(t *testing.T, c Counter, budgets ...Budget) *Spender {
	t.Helper()
	for i := range budgets {
		if err := budgets[i].Validate(); err != nil {
			t.Fatal(err)
		}
	}
	s, err := New(Config{Counter: c, Budgets: func(_ context.Context, tenant string) ([]Budget, error) {
		var out []Budget
		for _, b := range budgets {
			if b.Tenant == tenant {
				out = append(out, b)
			}
		}
		return out, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReserveWaitsForCallsInFlight: a call whose room is held by a call
// in flight waits for it; that call settles for less than it reserved, so
// the waiting call is admitted instead of refused.
func TestReserveWaitsForCallsInFlight(t *testing.T) {
	ctx := context.Background()
	s := newSpender(t, NewMemory(), Budget{ID: "b", Tenant: "acme", Window: Window{Kind: WindowDay}, LimitUSD: usd("1")})
	caller := gateway.Caller{Tenant: "acme"}
	req := gateway.SpendRequest{Cost: gateway.Cost{Amount: 600_000_000}}
	first, _, gerr := s.Reserve(ctx, caller, req)
	if gerr != nil {
		t.Fatal(gerr)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		first.Settle(ctx, &gateway.Usage{PromptTokens: 1}, gateway.Cost{Amount: 100_000_000})
	}()
	second, _, gerr := s.Reserve(ctx, caller, req)
	if gerr != nil || second == nil {
		t.Fatalf("the second call was refused while the first settled for less: %v", gerr)
	}
	// A third does not fit what is spent and reserved once nothing is in
	// flight to free room: exceeded... after the second settles in full.
	second.Settle(ctx, &gateway.Usage{PromptTokens: 1}, gateway.Cost{Amount: 600_000_000})
	if _, _, gerr := s.Reserve(ctx, caller, req); gerr == nil || gerr.Code != gateway.CodeBudgetExceeded {
		t.Fatalf("third: %v", gerr)
	}
	// A canceled caller stops waiting and is refused (never admitted unchecked).
	held, _, _ := s.Reserve(ctx, caller, gateway.SpendRequest{Cost: gateway.Cost{Amount: 200_000_000}})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if res, _, gerr := s.Reserve(cctx, caller, gateway.SpendRequest{Cost: gateway.Cost{Amount: 200_000_000}}); res != nil || gerr == nil || gerr.Code != gateway.CodeBudgetReserved {
		t.Fatalf("canceled wait: %v %v", res, gerr)
	}
	held.Settle(ctx, nil, gateway.Cost{})
}

func TestSpenderHierarchy(t *testing.T) {
	ctx := context.Background()
	s := newSpender(t, NewMemory(),
		Budget{ID: "tenant", Tenant: "acme", Window: Window{Kind: WindowMonth}, LimitUSD: usd("10")},
		Budget{ID: "team", Tenant: "acme", Scope: Scope{Team: "research"}, Window: Window{Kind: WindowDay}, LimitUSD: usd("1")},
		Budget{ID: "agent", Tenant: "acme", Scope: Scope{AgentID: "planner"}, Window: Window{Kind: WindowDay}, LimitTokens: 1000},
		Budget{ID: "other", Tenant: "globex", Window: Window{Kind: WindowDay}, LimitUSD: usd("0.000000001")},
	)
	caller := gateway.Caller{Tenant: "acme", KeyID: "key_1", Team: "research", AgentID: "planner"}
	req := gateway.SpendRequest{Model: "m", PromptTokens: 100, OutputTokens: 100, Cost: gateway.Cost{Amount: 600_000_000, PriceVersion: "v1"}, TraceID: strings.Repeat("a", 32)}
	res, evs, gerr := s.Reserve(ctx, caller, req)
	if gerr != nil || res == nil || len(evs) != 1 {
		t.Fatalf("reserve: %v %v", gerr, evs)
	}
	bs := ev(t, evs[0])["budgets"].([]any)
	if len(bs) != 3 || bs[0].(map[string]any)["id"] != "agent" || bs[2].(map[string]any)["id"] != "tenant" {
		t.Fatalf("budgets, narrowest first: %v", bs)
	}
	// The team's $1 holds $0.60: a second $0.60 call is refused once its
	// wait for the call in flight ends.
	s.cfg.Wait = 10 * time.Millisecond
	_, evs2, gerr := s.Reserve(ctx, caller, req)
	if gerr == nil || gerr.Code != gateway.CodeBudgetReserved || gerr.Status != 429 || gerr.RetryAfter != time.Second {
		t.Fatalf("second reserve: %+v", gerr)
	}
	if !strings.Contains(gerr.Message, "`team`") || ev(t, evs2[0])["action"] != "refuse" {
		t.Fatalf("refusal names the wrong budget: %s %v", gerr.Message, evs2)
	}
	// The call used $0.55 and 190 tokens: settled, 50% and 80%? $0.55 is
	// 55% of the team's $1: one alert (50%).
	out := res.Settle(ctx, &gateway.Usage{PromptTokens: 90, CompletionTokens: 100}, gateway.Cost{Amount: 550_000_000, PriceVersion: "v1"})
	if s := ev(t, out[0]); s["action"] != "settle" || s["cost_usd"] != "0.550000000" || s["released_usd"] != "0.050000000" {
		t.Fatalf("settle event: %s", out[0])
	}
	var alerts []string
	for _, b := range out[1:] {
		e := ev(t, b)
		alerts = append(alerts, e["budget"].(string)+"/"+e["unit"].(string))
	}
	if strings.Join(alerts, ",") != "team/usd" {
		t.Fatalf("alerts %v, want team/usd (50%%)", alerts)
	}
	if again := res.Settle(ctx, nil, gateway.Cost{}); again != nil {
		t.Fatal("settled twice")
	}
	// $0.55 spent of $1: a $0.60 estimate no longer fits the spend itself.
	_, _, gerr = s.Reserve(ctx, caller, req)
	if gerr == nil || gerr.Code != gateway.CodeBudgetExceeded || gerr.RetryAfter < time.Second {
		t.Fatalf("third reserve: %+v", gerr)
	}
	if !strings.Contains(gerr.Message, "resets at") || !strings.Contains(gerr.Message, "$0.550000000 of $1.000000000 spent") {
		t.Fatalf("message: %s", gerr.Message)
	}
	// Another team of the tenant is not capped by research's budget.
	other := gateway.Caller{Tenant: "acme", KeyID: "key_2", Team: "ops"}
	res2, _, gerr := s.Reserve(ctx, other, req)
	if gerr != nil || res2 == nil {
		t.Fatalf("other team: %v", gerr)
	}
	res2.Settle(ctx, nil, gateway.Cost{})
	st, err := s.Status(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range st {
		if b.ID == "team" && (b.SpentUSD != 550_000_000 || *b.RemainingUSD != 450_000_000) {
			t.Fatalf("status: %+v", b)
		}
		if b.ID == "agent" && (b.SpentTokens != 190 || *b.RemainingTokens != 810) {
			t.Fatalf("status: %+v", b)
		}
	}
}

// TestAlertsOncePerThreshold: concurrent settlements cross each threshold
// exactly once (the counter adds atomically).
func TestAlertsOncePerThreshold(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		ctx := context.Background()
		var mu sync.Mutex
		got := map[string]int{}
		c := newCounter()
		s := newSpender(t, c, Budget{ID: "b", Tenant: "acme", Window: Window{Kind: WindowDay}, LimitUSD: usd("1"), Alerts: []int{25, 50, 75, 100}})
		s.cfg.Alert = func(a Alert) { mu.Lock(); got[a.ID]++; mu.Unlock() }
		var wg sync.WaitGroup
		var alertEvents sync.Map
		for i := range 100 {
			wg.Go(func() {
				res, _, gerr := s.Reserve(ctx, gateway.Caller{Tenant: "acme"}, gateway.SpendRequest{Cost: gateway.Cost{Amount: 10_000_000}})
				if gerr != nil {
					t.Error(gerr)
					return
				}
				for _, b := range res.Settle(ctx, &gateway.Usage{PromptTokens: 1}, gateway.Cost{Amount: 10_000_000})[1:] {
					alertEvents.Store(ev(t, b)["alert"], i)
				}
			})
		}
		wg.Wait()
		n := 0
		alertEvents.Range(func(_, _ any) bool { n++; return true })
		if n != 4 {
			t.Fatalf("%d alert events, want 4", n)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			mu.Lock()
			k := len(got)
			mu.Unlock()
			if k == 4 || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 4 {
			t.Fatalf("alerts %v", got)
		}
		for id, k := range got {
			if k != 1 {
				t.Fatalf("alert %s raised %d times", id, k)
			}
		}
	})
}

func BenchmarkReserveSettle(b *testing.B) {
	for _, kind := range []string{"memory", "redis"} {
		b.Run(kind, func(b *testing.B) {
			var c Counter = NewMemory()
			if kind == "redis" {
				c = newRedis(b)
			}
			s, _ := New(Config{Counter: c, Budgets: func(context.Context, string) ([]Budget, error) {
				bs := []Budget{
					{ID: "tenant", Tenant: "acme", Window: Window{Kind: WindowMonth}, LimitUSD: usd("1000000")},
					{ID: "team", Tenant: "acme", Scope: Scope{Team: "r"}, Window: Window{Kind: WindowDay}, LimitTokens: 1 << 50},
				}
				for i := range bs {
					bs[i].Validate()
				}
				return bs, nil
			}})
			ctx := context.Background()
			caller := gateway.Caller{Tenant: "acme", Team: "r"}
			req := gateway.SpendRequest{PromptTokens: 100, OutputTokens: 100, Cost: gateway.Cost{Amount: 1000}, TraceID: strings.Repeat("b", 32)}
			u := &gateway.Usage{PromptTokens: 100, CompletionTokens: 50}
			b.ReportAllocs()
			for b.Loop() {
				res, _, gerr := s.Reserve(ctx, caller, req)
				if gerr != nil {
					b.Fatal(gerr)
				}
				res.Settle(ctx, u, gateway.Cost{Amount: 900})
			}
		})
	}
}

// TestCounterStoreDown: with the counter store unreachable, a call with
// budgets is refused with 503 budget_unavailable (fail-closed), or, with
// FailOpen, admitted unchecked and said so in its budget event.
func TestCounterStoreDown(t *testing.T) {
	down := NewRedis(redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1}), "x:")
	b := Budget{ID: "b", Tenant: "acme", Window: Window{Kind: WindowDay}, LimitUSD: usd("1")}
	s := newSpender(t, down, b)
	res, _, gerr := s.Reserve(context.Background(), gateway.Caller{Tenant: "acme"}, gateway.SpendRequest{Cost: gateway.Cost{Amount: 1}})
	if res != nil || gerr == nil || gerr.Status != 503 || gerr.Code != "budget_unavailable" || gerr.RetryAfter == 0 {
		t.Fatalf("fail-closed: %v %+v", res, gerr)
	}
	s.cfg.FailOpen = true
	res, evs, gerr := s.Reserve(context.Background(), gateway.Caller{Tenant: "acme"}, gateway.SpendRequest{Cost: gateway.Cost{Amount: 1}})
	if res != nil || gerr != nil || len(evs) != 1 || ev(t, evs[0])["action"] != "unchecked" {
		t.Fatalf("fail-open: %v %+v %s", res, gerr, evs)
	}
	if s.Errors.Load() != 2 {
		t.Fatalf("errors counted: %d", s.Errors.Load())
	}
}
