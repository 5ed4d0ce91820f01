package limits

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

const redisAddr = "127.0.0.1:6379"

// newRedisClient connects to the machine's Redis; a missing server fails
// the test (see DESIGN.md: tests use real parts).
func newRedisClient(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 32})
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at %s: %v (tests need a running Redis)", redisAddr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testPrefix returns a key prefix private to t, whose keys are deleted when
// t ends.
func testPrefix(t testing.TB, c *redis.Client) string {
	t.Helper()
	prefix := fmt.Sprintf("aigwtest:limits:%x:", rand.Uint64())
	t.Cleanup(func() {
		ctx := context.Background()
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			t.Errorf("scan %s*: %v", prefix, err)
		}
		if len(keys) > 0 {
			if err := c.Del(ctx, keys...).Err(); err != nil {
				t.Errorf("delete %d test keys: %v", len(keys), err)
			}
		}
	})
	return prefix
}

func (l *Redis) inspect(ctx context.Context, _, key string) (counter, error) {
	c := *newCounter()
	m, err := l.c.(redis.Cmdable).HGetAll(ctx, l.prefix+key).Result()
	if err != nil {
		return c, err
	}
	get := func(f string, def int64) int64 {
		if v, ok := m[f]; ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				panic(fmt.Sprintf("field %s = %q is no integer", f, v))
			}
			return n
		}
		return def
	}
	for i := range 2 {
		c.idx[i] = get(fmt.Sprint("i", i), -2)
		c.req[i] = get(fmt.Sprint("r", i), 0)
		c.tok[i] = get(fmt.Sprint("t", i), 0)
	}
	c.day, c.dayTok = get("d", -1), get("dt", 0)
	return c, nil
}

func (l *Redis) poke(ctx context.Context, _, key string, c counter) error {
	return l.c.(redis.Cmdable).HSet(ctx, l.prefix+key, "i0", c.idx[0], "r0", c.req[0], "t0", c.tok[0],
		"i1", c.idx[1], "r1", c.req[1], "t1", c.tok[1], "d", c.day, "dt", c.dayTok).Err()
}

func newTestRedis(t *testing.T, rs []Rule, clock *fakeClock) inspectable {
	t.Helper()
	c := newRedisClient(t)
	l, err := NewRedis(c, testPrefix(t, c), rs, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestRedisConformance(t *testing.T) {
	runConformance(t, newTestRedis)
}

// twoGateways returns two Redis limiters with their own connections and
// the same prefix and rules: two gateway processes sharing Redis.
func twoGateways(t *testing.T, rs []Rule, opts ...Option) (a, b *Redis, inspect *Redis) {
	t.Helper()
	ca, cb := newRedisClient(t), newRedisClient(t)
	prefix := testPrefix(t, ca)
	a, err := NewRedis(ca, prefix, rs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	b, err = NewRedis(cb, prefix, rs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a, b, a
}

// 64 clients through two gateway processes race for limits that admit
// exactly N; the counters then hold exactly the reservations, and after
// concurrent settles exactly the settled tokens.
func TestRedisTwoGatewaysExactlyN(t *testing.T) {
	for _, c := range []struct {
		name  string
		rules []Rule
		n     int64 // tokens per reservation
		want  int
	}{
		{"TPM", []Rule{{Scope: ScopeTenant, TPM: 5000}, {Scope: ScopeKey, RPM: 100000}}, 7, 714},
		{"RPM", []Rule{{Scope: ScopeKey, RPM: 500}, {Scope: ScopeTenant, TPM: 1e9}}, 3, 500},
		{"TPMTenantBindsNotKey", []Rule{{Scope: ScopeTenant, TPM: 2000}, {Scope: ScopeKey, TPM: 1e6}}, 10, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			clock := newClock(t0)
			a, b, in := twoGateways(t, c.rules, WithClock(clock.Now))
			rs := raceReserve(t, []Limiter{a, b}, acme, c.n, 64, 3)
			if len(rs) != c.want {
				t.Fatalf("%d reservations succeeded; want exactly %d", len(rs), c.want)
			}
			var fromA int
			for _, r := range rs {
				if r.owner == a {
					fromA++
				}
			}
			if fromA == 0 || fromA == len(rs) {
				t.Errorf("%d of %d reservations through gateway a; want both gateways used", fromA, len(rs))
			}
			want := state{cr: int64(c.want), ct: int64(c.want) * c.n}
			checkState(t, in, clock, acme, ScopeTenant, want)
			checkState(t, in, clock, acme, ScopeKey, want)
			le := mustRefuse(t, a, acme, c.n)
			if le.RetryAfter <= 0 || le.RetryAfter > 2*time.Minute {
				t.Errorf("RetryAfter = %v; want in (0, 2m]", le.RetryAfter)
			}

			sum, released := settleAll(t, []Limiter{a, b}, rs)
			want = state{cr: int64(c.want) - released, ct: sum}
			checkState(t, in, clock, acme, ScopeTenant, want)
			checkState(t, in, clock, acme, ScopeKey, want)
		})
	}
}

// The same race on the server's TIME (no fake clock). The window is a day
// long so that the race cannot straddle a bucket boundary (except at UTC
// midnight, one chance in a million).
func TestRedisTwoGatewaysServerTime(t *testing.T) {
	a, b, _ := twoGateways(t, []Rule{{Scope: ScopeTenant, TPM: 3000}}, withWindow(24*time.Hour, 24*time.Hour))
	rs := raceReserve(t, []Limiter{a, b}, acme, 3, 64, 3)
	if len(rs) != 1000 {
		t.Fatalf("%d reservations succeeded; want exactly 1000", len(rs))
	}
	count := func() (reqs, toks int64) {
		c, err := a.inspect(ctx, acme.Tenant, counterKey(ScopeTenant, acme))
		if err != nil {
			t.Fatal(err)
		}
		return c.req[0] + c.req[1], c.tok[0] + c.tok[1]
	}
	if reqs, toks := count(); reqs != 1000 || toks != 3000 {
		t.Errorf("counter = %d requests, %d tokens; want 1000, 3000", reqs, toks)
	}
	sum, released := settleAll(t, []Limiter{a, b}, rs)
	if reqs, toks := count(); reqs != 1000-released || toks != sum {
		t.Errorf("counter after settling = %d requests, %d tokens; want %d, %d", reqs, toks, 1000-released, sum)
	}
}

// With the server's TIME (no fake clock) and 300 ms windows, a full
// window refuses with a RetryAfter after which the request is admitted.
func TestRedisServerTimeRollover(t *testing.T) {
	c := newRedisClient(t)
	l, err := NewRedis(c, testPrefix(t, c), []Rule{{Scope: ScopeKey, RPM: 3}}, withWindow(300*time.Millisecond, 24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// An empty window takes at least 3 (the estimate never exceeds the
	// true count); it may take more if the reservations straddle buckets.
	var (
		last     *Reservation
		le       *LimitError
		admitted int
	)
	for admitted < 20 {
		r, err := l.Reserve(ctx, acme, 1)
		if errors.As(err, &le) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		admitted, last = admitted+1, r
	}
	if admitted < 3 || le == nil {
		t.Fatalf("%d admitted before a refusal (%v); want at least 3, then a refusal", admitted, le)
	}
	srv, err := c.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	if d := srv.Sub(last.Time); d < 0 || d > 5*time.Second {
		t.Errorf("reservation time %v is not the server's (%v)", last.Time, srv)
	}
	if le.Scope != ScopeKey || le.Limit != LimitRPM || le.RetryAfter <= 0 || le.RetryAfter > 600*time.Millisecond {
		t.Fatalf("refusal = %+v; want key rpm with RetryAfter in (0, 600ms]", le)
	}
	time.Sleep(le.RetryAfter) // the estimate only falls while nothing is reserved
	mustReserve(t, l, acme, 1)
}

// Keys carry TTLs, share the tenant's hash tag, and the completion marker
// keeps a retried Settle from applying twice.
func TestRedisKeysAndRetries(t *testing.T) {
	c := newRedisClient(t)
	prefix := testPrefix(t, c)
	clock := newClock(t0)
	l, err := NewRedis(c, prefix, []Rule{{Scope: ScopeTenant, TokensPerDay: 1e6}, {Scope: ScopeKey, TPM: 1e5}, {Scope: ScopeRoute, RPM: 100}}, WithClock(clock.Now))
	if err != nil {
		t.Fatal(err)
	}
	subj := Subject{Tenant: "ac{me}", Key: "key:1", Route: "chat"}
	r := mustReserve(t, l, subj, 100)
	keys, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("keys %q; want 3", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, prefix+"{ac%7Bme%7D}:") {
			t.Errorf("key %q lacks the tenant hash tag", k)
		}
		ttl, err := c.PTTL(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		max := 2*time.Minute + time.Second
		if strings.HasSuffix(k, ":t") {
			max = 25 * time.Hour
		}
		if ttl <= 0 || ttl > max {
			t.Errorf("PTTL(%s) = %v; want in (0, %v]", k, ttl, max)
		}
	}

	// A Settle whose reply was lost is retried: applied once.
	if err := l.Settle(ctx, r, 40); err != nil {
		t.Fatal(err)
	}
	r.done.Store(false) // as if the reply had been lost
	if err := l.Settle(ctx, r, 40); err != nil {
		t.Errorf("retried Settle = %v; want nil", err)
	}
	checkState(t, l, clock, subj, ScopeKey, state{cr: 1, ct: 40})
	checkState(t, l, clock, subj, ScopeTenant, state{cr: 1, ct: 40, dt: 40})
	// Completed by someone else (another process with the same id): ErrDone.
	r.done.Store(false)
	r.tried.Store(false)
	if err := l.Release(ctx, r); !errors.Is(err, ErrDone) {
		t.Errorf("Release of a completed reservation = %v; want ErrDone", err)
	}
	checkState(t, l, clock, subj, ScopeRoute, state{cr: 1, ct: 40})
	marker := prefix + "{ac%7Bme%7D}:done:" + r.id
	if ttl, err := c.PTTL(ctx, marker).Result(); err != nil || ttl <= 0 || ttl > MarkerTTL {
		t.Errorf("PTTL(marker) = %v, %v; want in (0, %v]", ttl, err, MarkerTTL)
	}
}

// A limiter that cannot reach Redis says so with an error that is no
// LimitError, so the gateway can choose fail-open or fail-closed.
func TestRedisUnreachable(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	l, err := NewRedis(c, "x:", []Rule{{Scope: ScopeTenant, RPM: 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Reserve(ctx, acme, 1)
	var le *LimitError
	if err == nil || errors.As(err, &le) || !strings.Contains(err.Error(), "limits: reserve in redis") {
		t.Errorf("Reserve without Redis = %v", err)
	}
}

func BenchmarkRedisReserveSettle(b *testing.B) {
	c := newRedisClient(b)
	l, err := NewRedis(c, testPrefix(b, c), []Rule{{Scope: ScopeTenant, RPM: MaxLimit, TPM: MaxLimit, TokensPerDay: MaxLimit}, {Scope: ScopeKey, RPM: MaxLimit, TPM: MaxLimit}})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r, err := l.Reserve(ctx, acme, 1000)
			if err != nil {
				b.Fatal(err)
			}
			if err := l.Settle(ctx, r, 700); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel-32", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				r, err := l.Reserve(ctx, acme, 1000)
				if err != nil {
					b.Error(err)
					return
				}
				if err := l.Settle(ctx, r, 700); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
