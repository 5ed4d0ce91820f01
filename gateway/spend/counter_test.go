package spend

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const redisAddr = "127.0.0.1:6379"

// newRedis returns a Redis counter under a fresh key prefix; the keys are
// deleted when the test ends.
func newRedis(t testing.TB) *Redis {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 64})
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v (the test machine runs Redis; .ci/run waits for it)", redisAddr, err)
	}
	var b [6]byte
	rand.Read(b[:])
	prefix := "aigw-test:spend:" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
		c.Close()
	})
	return NewRedis(c, prefix)
}

// counters runs a test on each Counter implementation.
func counters(t *testing.T, f func(t *testing.T, newCounter func() Counter)) {
	t.Run("memory", func(t *testing.T) { f(t, func() Counter { return NewMemory() }) })
	t.Run("redis", func(t *testing.T) {
		// Two stores over one prefix behave as two replicas.
		r := newRedis(t)
		f(t, func() Counter { return NewRedis(redis.NewClient(&redis.Options{Addr: redisAddr}), r.prefix) })
	})
}

func TestCounterReserveSettle(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		ctx := context.Background()
		c := newCounter()
		exp := time.Now().Add(time.Hour)
		lines := []Line{{Key: "team:1", LimitUSD: 1000, Expires: exp}, {Key: "tenant:1", LimitUSD: 5000, LimitTokens: 100, Expires: exp}}
		adm, err := c.Reserve(ctx, "t1", "r1", lines, 600, 10, time.Minute)
		if err != nil || !adm.OK {
			t.Fatalf("first reserve: %+v, %v", adm, err)
		}
		if adm.States[0].ReservedUSD != 600 || adm.States[1].ReservedTokens != 10 {
			t.Fatalf("states after reserve: %+v", adm.States)
		}
		// 600 reserved of 1000: 500 more does not fit while r1 is in
		// flight, but would against the settled spend alone.
		adm, err = c.Reserve(ctx, "t1", "r2", lines, 500, 10, time.Minute)
		if err != nil || adm.OK || adm.Reason != Reserved || adm.Line != 0 || adm.Tokens {
			t.Fatalf("second reserve: %+v, %v; want refused as reserved on line 0", adm, err)
		}
		// r1 settles for less than it reserved: the difference is free.
		states, dup, err := c.Settle(ctx, "t1", "r1", []string{"team:1", "tenant:1"}, 400, 7)
		if err != nil || dup {
			t.Fatalf("settle: %v dup=%v", err, dup)
		}
		if want := (State{SpentUSD: 400, SpentTokens: 7}); states[0] != want {
			t.Fatalf("after settle: %+v, want %+v", states[0], want)
		}
		// A retried settlement is applied once.
		states, dup, err = c.Settle(ctx, "t1", "r1", []string{"team:1", "tenant:1"}, 400, 7)
		if err != nil || !dup || states[0].SpentUSD != 400 {
			t.Fatalf("second settle: %+v dup=%v %v", states, dup, err)
		}
		adm, err = c.Reserve(ctx, "t1", "r2", lines, 500, 10, time.Minute)
		if err != nil || !adm.OK {
			t.Fatalf("reserve after settle: %+v, %v", adm, err)
		}
		// Spent 400 + reserved 500: 200 more does not fit, and 700 does
		// not fit even against the spend alone.
		adm, _ = c.Reserve(ctx, "t1", "r3", lines, 700, 1, time.Minute)
		if adm.OK || adm.Reason != Exceeded || adm.Line != 0 {
			t.Fatalf("reserve beyond the spend: %+v, want exceeded", adm)
		}
		// Released with nothing used.
		if _, _, err := c.Settle(ctx, "t1", "r2", []string{"team:1", "tenant:1"}, 0, 0); err != nil {
			t.Fatal(err)
		}
		st, err := c.Read(ctx, "t1", []string{"team:1", "tenant:1", "unknown"})
		if err != nil {
			t.Fatal(err)
		}
		if want := (State{SpentUSD: 400, SpentTokens: 7}); st[0] != want || st[1] != want || st[2] != (State{}) {
			t.Fatalf("read: %+v", st)
		}
		// Token limit: 93 tokens remain on tenant:1.
		adm, _ = c.Reserve(ctx, "t1", "r4", lines, 1, 94, time.Minute)
		if adm.OK || adm.Line != 1 || !adm.Tokens || adm.Reason != Exceeded {
			t.Fatalf("token limit: %+v", adm)
		}
		// Another tenant's counters are separate.
		st, _ = c.Read(ctx, "t2", []string{"team:1"})
		if st[0] != (State{}) {
			t.Fatalf("tenant t2 sees %+v", st[0])
		}
	})
}

func TestCounterExpiredReservationReleased(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		ctx := context.Background()
		c := newCounter()
		lines := []Line{{Key: "b:1", LimitUSD: 100, Expires: time.Now().Add(time.Hour)}}
		if adm, err := c.Reserve(ctx, "t", "dead", lines, 100, 0, 50*time.Millisecond); err != nil || !adm.OK {
			t.Fatalf("%+v %v", adm, err)
		}
		if adm, _ := c.Reserve(ctx, "t", "r2", lines, 1, 0, time.Minute); adm.OK {
			t.Fatal("reserved beyond a held reservation")
		}
		// A gateway that crashed never settles: its hold expires.
		deadline := time.Now().Add(5 * time.Second)
		for {
			adm, err := c.Reserve(ctx, "t", "r2", lines, 100, 0, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if adm.OK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the expired reservation was never released: %+v", adm)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Settling the expired one still charges its spend.
		st, dup, err := c.Settle(ctx, "t", "dead", []string{"b:1"}, 30, 0)
		if err != nil || dup || st[0].SpentUSD != 30 || st[0].ReservedUSD != 100 {
			t.Fatalf("late settle: %+v dup=%v %v", st, dup, err)
		}
	})
}

// TestCounterConcurrentExact: many reservations race for a limit that fits
// exactly n of them, from several store clients (replicas): exactly n are
// admitted, and after settling, the spend is exactly the limit.
func TestCounterConcurrentExact(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		ctx := context.Background()
		const n, calls, cost = 37, 200, 1_234_567
		stores := []Counter{newCounter(), newCounter()}
		if _, ok := stores[0].(*Memory); ok {
			stores[1] = stores[0] // one process
		}
		lines := []Line{{Key: "b:1", LimitUSD: n * cost, Expires: time.Now().Add(time.Hour)}}
		var ok, refused atomic.Int64
		var wg sync.WaitGroup
		for i := range calls {
			wg.Go(func() {
				c := stores[i%2]
				id := fmt.Sprintf("r%d", i)
				adm, err := c.Reserve(ctx, "t", id, lines, cost, 0, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if !adm.OK {
					refused.Add(1)
					return
				}
				ok.Add(1)
				if _, _, err := c.Settle(ctx, "t", id, []string{"b:1"}, cost, 0); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ok.Load() != n || refused.Load() != calls-n {
			t.Fatalf("admitted %d, refused %d; want exactly %d admitted", ok.Load(), refused.Load(), n)
		}
		st, _ := stores[0].Read(ctx, "t", []string{"b:1"})
		if st[0].SpentUSD != n*cost || st[0].ReservedUSD != 0 {
			t.Fatalf("counter %+v, want spent %d", st[0], n*cost)
		}
	})
}

// TestCounterReserveRetried: a reservation retried under the same id (a
// command whose reply was lost) is held once.
func TestCounterReserveRetried(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		ctx := context.Background()
		c := newCounter()
		lines := []Line{{Key: "b:1", LimitUSD: 1000, Expires: time.Now().Add(time.Hour)}}
		for range 2 {
			adm, err := c.Reserve(ctx, "t", "r1", lines, 600, 5, time.Minute)
			if err != nil || !adm.OK || adm.States[0].ReservedUSD != 600 {
				t.Fatalf("reserve: %+v %v; want admitted with 600 reserved", adm, err)
			}
		}
		st, _, err := c.Settle(ctx, "t", "r1", []string{"b:1"}, 100, 1)
		if err != nil || st[0] != (State{SpentUSD: 100, SpentTokens: 1}) {
			t.Fatalf("settle: %+v %v", st, err)
		}
	})
}

// TestCounterSettleReleasesWholeReservation: a settlement releases its
// reservation on every line it holds, even one it does not charge.
func TestCounterSettleReleasesWholeReservation(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		ctx := context.Background()
		c := newCounter()
		exp := time.Now().Add(time.Hour)
		lines := []Line{{Key: "a:1", LimitUSD: 1000, Expires: exp}, {Key: "b:1", LimitTokens: 1000, Expires: exp}}
		if adm, err := c.Reserve(ctx, "t", "r1", lines, 600, 50, time.Minute); err != nil || !adm.OK {
			t.Fatalf("reserve: %+v %v", adm, err)
		}
		if _, _, err := c.Settle(ctx, "t", "r1", []string{"a:1"}, 100, 10); err != nil {
			t.Fatal(err)
		}
		st, err := c.Read(ctx, "t", []string{"a:1", "b:1"})
		if err != nil {
			t.Fatal(err)
		}
		if st[0] != (State{SpentUSD: 100, SpentTokens: 10}) || st[1] != (State{}) {
			t.Fatalf("after settling on a:1 alone: %+v; want a:1 charged, nothing held on b:1", st)
		}
	})
}

// TestCounterHoldsExpireApart: of two reservations on a line, the one
// that expires is released and the other still held until it settles.
func TestCounterHoldsExpireApart(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		ctx := context.Background()
		c := newCounter()
		lines := []Line{{Key: "b:1", LimitUSD: 1000, Expires: time.Now().Add(time.Hour)}}
		if adm, err := c.Reserve(ctx, "t", "long", lines, 300, 3, time.Hour); err != nil || !adm.OK {
			t.Fatalf("%+v %v", adm, err)
		}
		if adm, err := c.Reserve(ctx, "t", "dead", lines, 200, 2, 30*time.Millisecond); err != nil || !adm.OK {
			t.Fatalf("%+v %v", adm, err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			st, err := c.Read(ctx, "t", []string{"b:1"})
			if err != nil {
				t.Fatal(err)
			}
			if st[0] == (State{ReservedUSD: 300, ReservedTokens: 3}) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("counter %+v; want only the live reservation held", st[0])
			}
			time.Sleep(10 * time.Millisecond)
		}
		st, _, err := c.Settle(ctx, "t", "long", []string{"b:1"}, 250, 3)
		if err != nil || st[0] != (State{SpentUSD: 250, SpentTokens: 3}) {
			t.Fatalf("settle: %+v %v", st, err)
		}
	})
}

// TestMemoryForgets: settled ids are remembered for at least settledTTL,
// and counters are forgotten once they expire.
func TestMemoryForgets(t *testing.T) {
	ctx := context.Background()
	m := NewMemory()
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	m.now = func() time.Time { return now }
	lines := []Line{{Key: "b:1", LimitUSD: 1000, Expires: now.Add(time.Hour)}}
	if adm, _ := m.Reserve(ctx, "t", "r1", lines, 10, 1, time.Minute); !adm.OK {
		t.Fatalf("%+v", adm)
	}
	if _, dup, _ := m.Settle(ctx, "t", "r1", []string{"b:1"}, 5, 1); dup {
		t.Fatal("first settlement reported as a duplicate")
	}
	now = now.Add(2 * time.Hour)
	m.Read(ctx, "t", nil)
	if _, ok := m.counters[memKey{"t", "b:1"}]; ok {
		t.Fatal("expired counter kept")
	}
	for _, d := range []time.Duration{0, settledTTL - 3*time.Hour, settledTTL + time.Minute, 2*settledTTL - 3*time.Hour} {
		now = now.Add(d)
		if _, dup, _ := m.Settle(ctx, "t", "r1", []string{"b:1"}, 5, 1); !dup {
			t.Fatalf("settled again %v later", d+2*time.Hour)
		}
		now = now.Add(-d)
	}
	if _, dup, _ := m.Settle(ctx, "u", "r1", []string{"b:1"}, 5, 1); dup {
		t.Fatal("another tenant's reservation of the same id taken for a duplicate")
	}
	now = now.Add(5 * settledTTL)
	if _, dup, _ := m.Settle(ctx, "t", "r1", []string{"b:1"}, 5, 1); dup {
		t.Fatal("a settled id is remembered for ever")
	}
}

// TestCounterSettleCanceled: a settlement lands even when its call's
// context is canceled (the agent went away).
func TestCounterSettleCanceled(t *testing.T) {
	counters(t, func(t *testing.T, newCounter func() Counter) {
		c := newCounter()
		lines := []Line{{Key: "k:1", LimitUSD: 1000, Expires: time.Now().Add(time.Hour)}}
		if adm, err := c.Reserve(t.Context(), "t", "r1", lines, 10, 1, time.Minute); err != nil || !adm.OK {
			t.Fatalf("%+v %v", adm, err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		st, dup, err := c.Settle(ctx, "t", "r1", []string{"k:1"}, 7, 1)
		if err != nil || dup || st[0] != (State{SpentUSD: 7, SpentTokens: 1}) {
			t.Fatalf("settled %+v dup %v: %v", st, dup, err)
		}
	})
}
