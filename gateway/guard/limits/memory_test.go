package limits

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"aigw/gateway"
)

func chatRequest(text string) *gateway.ChatRequest {
	return &gateway.ChatRequest{Model: "gpt-4o", Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent(text)}}}
}

func (m *Memory) inspect(_ context.Context, tenant, key string) (counter, error) {
	sh := m.shard(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if c := sh.counters[key]; c != nil {
		return *c, nil
	}
	return *newCounter(), nil
}

func (m *Memory) poke(_ context.Context, tenant, key string, c counter) error {
	sh := m.shard(tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.counters[key] = &c
	return nil
}

func newTestMemory(t *testing.T, rs []Rule, clock *fakeClock) inspectable {
	t.Helper()
	m, err := NewMemory(rs, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMemoryConformance(t *testing.T) {
	runConformance(t, newTestMemory)
}

// Idle counters are dropped once both minute buckets (and the day, for
// daily limits) are over.
func TestMemoryDropsIdleCounters(t *testing.T) {
	clock := newClock(t0)
	m, err := NewMemory([]Rule{{Scope: ScopeKey, RPM: 1000}, {Scope: ScopeTenant, Tenant: "daily", TokensPerDay: 1e6}}, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		mustReserve(t, m, Subject{Tenant: "acme", Key: fmt.Sprint("key-", i)}, 1)
	}
	mustReserve(t, m, Subject{Tenant: "daily"}, 1)
	if n := m.size(); n != 5001 {
		t.Fatalf("%d counters; want 5001", n)
	}
	clock.Advance(3 * time.Minute)
	for i := range 10_000 {
		mustReserve(t, m, Subject{Tenant: "acme", Key: fmt.Sprint("new-", i%100)}, 1)
	}
	if n := m.size(); n != 101 { // the 100 new keys and the daily tenant
		t.Errorf("%d counters after the old ones went idle; want 101", n)
	}
}

func TestRulesValidation(t *testing.T) {
	for _, c := range []struct {
		rules []Rule
		want  string
	}{
		{[]Rule{{Scope: "user", RPM: 1}}, "unknown scope"},
		{[]Rule{{Scope: ScopeTenant, ID: "x", RPM: 1}}, "tenant rule has no id"},
		{[]Rule{{Scope: ScopeKey, RPM: -1}}, "out of range"},
		{[]Rule{{Scope: ScopeKey, TPM: MaxLimit + 1}}, "out of range"},
		{[]Rule{{Scope: ScopeKey, ID: "a", RPM: 1}, {Scope: ScopeKey, ID: "a", TPM: 1}}, "a second key rule"},
	} {
		if _, err := NewMemory(c.rules); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewMemory(%+v) = %v; want %q", c.rules, err, c.want)
		}
	}
	if _, err := NewMemory([]Rule{{Scope: ScopeKey, ID: "a", RPM: 1}, {Scope: ScopeKey, Tenant: "t", ID: "a", RPM: 1}, {Scope: ScopeKey, RPM: 1}}); err != nil {
		t.Errorf("NewMemory(distinct rules) = %v", err)
	}
}

func TestCounterKeyEscaping(t *testing.T) {
	for _, c := range []struct {
		scope string
		subj  Subject
		want  string
	}{
		{ScopeTenant, Subject{Tenant: "acme"}, "{acme}:t"},
		{ScopeKey, Subject{Tenant: "acme", Key: "sk_live.1"}, "{acme}:k:sk_live.1"},
		{ScopeRoute, Subject{Tenant: "a}c{me", Route: "chat/gpt-4o:fast"}, "{a%7Dc%7Bme}:r:chat%2Fgpt-4o%3Afast"},
		{ScopeKey, Subject{Tenant: "x", Key: "a:k:b"}, "{x}:k:a%3Ak%3Ab"},
	} {
		if got := counterKey(c.scope, c.subj); got != c.want {
			t.Errorf("counterKey(%s, %+v) = %q; want %q", c.scope, c.subj, got, c.want)
		}
	}
}

func TestEstimate(t *testing.T) {
	req := chatRequest("Hello, world!")
	prompt := int64(3 + 3 + 1 + 4) // priming, message, "user", "Hello, world!"
	if got := Estimate("gpt-4o", req, DefaultOutputTokens); got != prompt+DefaultOutputTokens {
		t.Errorf("Estimate(no max_tokens) = %d; want %d", got, prompt+DefaultOutputTokens)
	}
	mt, mct, n := 100, 300, 3
	req.MaxTokens = &mt
	if got := Estimate("gpt-4o", req, DefaultOutputTokens); got != prompt+100 {
		t.Errorf("Estimate(max_tokens 100) = %d; want %d", got, prompt+100)
	}
	req.MaxCompletionTokens, req.N = &mct, &n
	if got := Estimate("gpt-4o", req, DefaultOutputTokens); got != prompt+900 {
		t.Errorf("Estimate(max_completion_tokens 300, n 3) = %d; want %d", got, prompt+900)
	}
}

func BenchmarkMemoryReserveSettle(b *testing.B) {
	m, err := NewMemory([]Rule{{Scope: ScopeTenant, RPM: MaxLimit, TPM: MaxLimit, TokensPerDay: MaxLimit}, {Scope: ScopeKey, RPM: MaxLimit, TPM: MaxLimit}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := m.Reserve(ctx, acme, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if err := m.Settle(ctx, r, 700); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-64-tenants", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			subj := Subject{Tenant: fmt.Sprint("t", next.Add(1)%64), Key: "k"}
			for pb.Next() {
				r, err := m.Reserve(ctx, subj, 1000)
				if err != nil {
					b.Error(err)
					return
				}
				m.Settle(ctx, r, 700)
			}
		})
	})
}
