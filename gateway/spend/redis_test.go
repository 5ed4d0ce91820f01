package spend

import (
	"context"
	"testing"
	"time"
)

// TestRedisLayout: a tenant's counters are one hash that expires with its
// latest counter; a reservation is one field, gone once settled, and the
// settlement's marker expires.
func TestRedisLayout(t *testing.T) {
	ctx := context.Background()
	r := newRedis(t)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	lines := []Line{{Key: "a:1", LimitUSD: 1000, Expires: exp}, {Key: "b:1", LimitTokens: 100, Expires: exp.Add(time.Hour)}}
	if adm, err := r.Reserve(ctx, "t", "r1", lines, 10, 1, time.Minute); err != nil || !adm.OK {
		t.Fatalf("%+v %v", adm, err)
	}
	key := r.countersKey("t")
	if at, err := r.c.PExpireTime(ctx, key).Result(); err != nil || at != exp.Add(time.Hour).Sub(time.UnixMilli(0)) {
		t.Fatalf("hash expires at %v (%v); want %v", at, err, exp.Add(time.Hour))
	}
	if n, _ := r.c.HLen(ctx, key).Result(); n != 5 { // 2 counters, the hold, x, e
		t.Fatalf("%d fields, want 5", n)
	}
	if _, _, err := r.Settle(ctx, "t", "r1", []string{"a:1", "b:1"}, 5, 1); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.c.HExists(ctx, key, "h:r1").Result(); ok {
		t.Fatal("the reservation is still held after its settlement")
	}
	if ttl, err := r.c.TTL(ctx, r.prefix+"{t}:s:r1").Result(); err != nil || ttl <= 0 || ttl > settledTTL {
		t.Fatalf("settled marker ttl %v (%v)", ttl, err)
	}
}

// TestRedisCounterForgotten: a counter past its expiry leaves the hash at
// the next operation on the tenant's counters (its window is over: the
// ledger keeps its spend).
func TestRedisCounterForgotten(t *testing.T) {
	ctx := context.Background()
	r := newRedis(t)
	old := []Line{{Key: "old:1", LimitUSD: 1000, Expires: time.Now().Add(50 * time.Millisecond)}}
	if adm, err := r.Reserve(ctx, "t", "r1", old, 10, 1, 10*time.Millisecond); err != nil || !adm.OK {
		t.Fatalf("%+v %v", adm, err)
	}
	cur := []Line{{Key: "cur:1", LimitUSD: 1000, Expires: time.Now().Add(time.Hour)}}
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		if _, err := r.Reserve(ctx, "t", "n"+string(rune('a'+i%26))+time.Now().Format("150405.000000"), cur, 1, 0, time.Minute); err != nil {
			t.Fatal(err)
		}
		ok, err := r.c.HExists(ctx, r.countersKey("t"), "c:old:1").Result()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the expired counter is still in the hash")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ok, _ := r.c.HExists(ctx, r.countersKey("t"), "h:r1").Result(); ok {
		t.Fatal("the expired reservation is still held")
	}
}

// TestRedisScriptNotCached: a script Redis has not cached runs with EVAL
// (after a restart or SCRIPT FLUSH).
func TestRedisScriptNotCached(t *testing.T) {
	r := newRedis(t)
	s := newScript("return {1, #ARGV} -- " + time.Now().Format(time.RFC3339Nano))
	v, err := r.run(context.Background(), s, []string{r.countersKey("t")}, "x", "y")
	if err != nil || len(v) != 2 || v[0] != 1 || v[1] != 2 {
		t.Fatalf("run = %v, %v", v, err)
	}
	v, err = r.run(context.Background(), s, []string{r.countersKey("t")}, "x")
	if err != nil || len(v) != 2 || v[1] != 1 {
		t.Fatalf("second run (cached) = %v, %v", v, err)
	}
}
