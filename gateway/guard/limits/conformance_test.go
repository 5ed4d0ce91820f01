package limits

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock safe for concurrent use.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// inspectable is what the suite needs beyond Limiter to check counters: the
// counter named key of tenant as stored, and a way to overwrite it.
type inspectable interface {
	Limiter
	inspect(ctx context.Context, tenant, key string) (counter, error)
	poke(ctx context.Context, tenant, key string, c counter) error
}

// newLimiterFunc returns a fresh limiter enforcing rs with clock, with
// counters private to t.
type newLimiterFunc func(t *testing.T, rs []Rule, clock *fakeClock) inspectable

// runConformance checks that limiters made by newLimiter behave as a
// Limiter. Every test uses a fake clock, 10 s into a minute bucket.
func runConformance(t *testing.T, newLimiter newLimiterFunc) {
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, newLimiterFunc)
	}{
		{"RPMRefusesAndRetryAfterIsExact", testRPM},
		{"TPMRefusesAndRetryAfterIsExact", testTPM},
		{"WindowRollsOverWeighted", testRollover},
		{"AllOrNothingAcrossScopes", testAllOrNothing},
		{"RefusalNamesLongestWait", testLongestWait},
		{"MostSpecificRuleApplies", testSpecificity},
		{"TooLargeNeverFits", testTooLarge},
		{"TokensPerDayResetsAtUTCMidnight", testTokensPerDay},
		{"SettleAdjustsByDifference", testSettle},
		{"SettleAcrossBuckets", testSettleAcrossBuckets},
		{"ReleaseUndoes", testRelease},
		{"NeverBelowZero", testNeverBelowZero},
		{"QuotasAndHeaders", testQuotas},
		{"NoRuleNoCounter", testNoRule},
		{"InvalidCalls", testInvalid},
		{"LargeValuesExact", testLargeValues},
		{"ConcurrentExactlyN", testConcurrent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newLimiter)
		})
	}
}

// t0 is 10 s into a minute bucket, on a Wednesday at 20:00:10 UTC.
var t0 = time.Date(2030, 1, 2, 20, 0, 10, 0, time.UTC)

var ctx = context.Background()

func mustReserve(t *testing.T, l Limiter, s Subject, n int64) *Reservation {
	t.Helper()
	r, err := l.Reserve(ctx, s, n)
	if err != nil {
		t.Fatalf("Reserve(%+v, %d) = %v; want a reservation", s, n, err)
	}
	return r
}

func mustRefuse(t *testing.T, l Limiter, s Subject, n int64) *LimitError {
	t.Helper()
	r, err := l.Reserve(ctx, s, n)
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("Reserve(%+v, %d) = %+v, %v; want a *LimitError", s, n, r, err)
	}
	return le
}

func checkRefusal(t *testing.T, got *LimitError, want LimitError) {
	t.Helper()
	if *got != want {
		t.Errorf("refusal = %+v; want %+v", *got, want)
	}
}

// stateOf is the counter of subj in scope as the limiter sees it now.
func stateOf(t *testing.T, l inspectable, clock *fakeClock, subj Subject, scope string) state {
	t.Helper()
	c, err := l.inspect(ctx, subj.Tenant, counterKey(scope, subj))
	if err != nil {
		t.Fatal(err)
	}
	now := clock.Now().UnixMilli()
	return c.state(now/defaultWindow.win, now/defaultWindow.day)
}

func checkState(t *testing.T, l inspectable, clock *fakeClock, subj Subject, scope string, want state) {
	t.Helper()
	if got := stateOf(t, l, clock, subj, scope); got != want {
		t.Errorf("%s counter of %+v = %+v; want %+v", scope, subj, got, want)
	}
}

var acme = Subject{Tenant: "acme", Key: "key-1", Route: "chat"}

func testRPM(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, RPM: 5}}, clock)
	for range 5 {
		mustReserve(t, l, acme, 10)
	}
	le := mustRefuse(t, l, acme, 10)
	// Full current bucket: wait for the next one, then until 5·(1−el/60s) ≤ 4: 50 s + 12 s.
	checkRefusal(t, le, LimitError{Scope: ScopeTenant, Limit: LimitRPM, Max: 5, Used: 5, Requested: 1, RetryAfter: 62 * time.Second})
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 5, ct: 50})

	clock.Advance(le.RetryAfter - time.Millisecond)
	le = mustRefuse(t, l, acme, 10)
	checkRefusal(t, le, LimitError{Scope: ScopeTenant, Limit: LimitRPM, Max: 5, Used: 5, Requested: 1, RetryAfter: time.Millisecond})
	clock.Advance(time.Millisecond)
	mustReserve(t, l, acme, 10)
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 1, ct: 10, pr: 5, pt: 50})
}

func testTPM(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeKey, TPM: 1000}}, clock)
	mustReserve(t, l, acme, 600)
	le := mustRefuse(t, l, acme, 500)
	// Next bucket, then until 600·(1−el/60s) + 500 ≤ 1000: 50 s + 10 s.
	checkRefusal(t, le, LimitError{Scope: ScopeKey, Limit: LimitTPM, Max: 1000, Used: 600, Requested: 500, RetryAfter: 60 * time.Second})
	clock.Advance(le.RetryAfter - time.Millisecond)
	mustRefuse(t, l, acme, 500)
	clock.Advance(time.Millisecond)
	mustReserve(t, l, acme, 500)

	clock = newClock(t0)
	l = newLimiter(t, []Rule{{Scope: ScopeKey, TPM: 1000}}, clock)
	mustReserve(t, l, acme, 600)
	r := mustReserve(t, l, acme, 400) // exactly up to the limit
	if q := r.TokenQuota; q == nil || *q != (Quota{Scope: ScopeKey, Limit: 1000, Remaining: 0, Reset: 110 * time.Second}) {
		t.Errorf("TokenQuota = %+v; want key 1000, 0 remaining, reset in 110s", q)
	}
	mustRefuse(t, l, acme, 1)
	checkState(t, l, clock, acme, ScopeKey, state{cr: 2, ct: 1000})
	// Another key of the tenant has its own counter.
	mustReserve(t, l, Subject{Tenant: "acme", Key: "key-2"}, 1000)
	// So does the same key id under another tenant.
	mustReserve(t, l, Subject{Tenant: "beta", Key: "key-1"}, 1000)

	// Next bucket, then until 1000·(1−el/60s) + 500 ≤ 1000: 50 s + 30 s.
	le = mustRefuse(t, l, acme, 500)
	checkRefusal(t, le, LimitError{Scope: ScopeKey, Limit: LimitTPM, Max: 1000, Used: 1000, Requested: 500, RetryAfter: 80 * time.Second})
	clock.Advance(le.RetryAfter - time.Millisecond)
	mustRefuse(t, l, acme, 500)
	clock.Advance(time.Millisecond)
	mustReserve(t, l, acme, 500)
}

func testRollover(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0.Truncate(time.Minute))
	l := newLimiter(t, []Rule{{Scope: ScopeRoute, RPM: 5}}, clock)
	for range 5 {
		mustReserve(t, l, acme, 0)
	}
	mustRefuse(t, l, acme, 0)
	// Half-way into the next bucket the previous one weighs 2.5: two more fit.
	clock.Advance(90 * time.Second)
	mustReserve(t, l, acme, 0)
	mustReserve(t, l, acme, 0)
	le := mustRefuse(t, l, acme, 0)
	if le.Used != 5 { // ⌈2.5 + 2⌉
		t.Errorf("Used = %d; want 5", le.Used)
	}
	// Two windows later the counter is empty again.
	clock.Advance(2 * time.Minute)
	for range 5 {
		mustReserve(t, l, acme, 0)
	}
	mustRefuse(t, l, acme, 0)
	checkState(t, l, clock, acme, ScopeRoute, state{cr: 5})
}

func testAllOrNothing(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{
		{Scope: ScopeTenant, TPM: 100},
		{Scope: ScopeKey, TPM: 1000},
		{Scope: ScopeRoute, RPM: 10, TokensPerDay: 10000},
	}, clock)
	mustReserve(t, l, acme, 80)
	le := mustRefuse(t, l, acme, 30) // the key's TPM allows it, the tenant's does not
	if le.Scope != ScopeTenant || le.Limit != LimitTPM {
		t.Errorf("refusal names %s %s; want tenant tpm", le.Scope, le.Limit)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 1, ct: 80})
	checkState(t, l, clock, acme, ScopeKey, state{cr: 1, ct: 80})
	checkState(t, l, clock, acme, ScopeRoute, state{cr: 1, ct: 80, dt: 80})
	other := Subject{Tenant: "acme", Key: "key-2", Route: "chat"}
	mustRefuse(t, l, other, 30)
	checkState(t, l, clock, other, ScopeKey, state{})
	mustReserve(t, l, other, 20)
	checkState(t, l, clock, other, ScopeKey, state{cr: 1, ct: 20})
	checkState(t, l, clock, acme, ScopeRoute, state{cr: 2, ct: 100, dt: 100})
}

func testLongestWait(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, RPM: 1}, {Scope: ScopeKey, TokensPerDay: 100}}, clock)
	mustReserve(t, l, acme, 100)
	// Both refuse; the key's day budget (until midnight) outlasts the
	// tenant's minute.
	le := mustRefuse(t, l, acme, 1)
	checkRefusal(t, le, LimitError{Scope: ScopeKey, Limit: LimitTokensPerDay, Max: 100, Used: 100, Requested: 1,
		RetryAfter: 4*time.Hour - 10*time.Second})
	le = mustRefuse(t, l, acme, 0) // zero tokens fit the day; the tenant's RPM does not
	checkRefusal(t, le, LimitError{Scope: ScopeTenant, Limit: LimitRPM, Max: 1, Used: 1, Requested: 1, RetryAfter: 110 * time.Second})
}

func testSpecificity(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{
		{Scope: ScopeKey, RPM: 2},
		{Scope: ScopeKey, ID: "vip", RPM: 5},
		{Scope: ScopeKey, Tenant: "acme", RPM: 3},
		{Scope: ScopeKey, Tenant: "acme", ID: "bot", RPM: 4},
		{Scope: ScopeKey, ID: "exempt"}, // no limits: not counted
		{Scope: ScopeTenant, Tenant: "beta", RPM: 100},
	}, clock)
	for _, c := range []struct {
		subj Subject
		want int
	}{
		{Subject{Tenant: "acme", Key: "vip"}, 5},
		{Subject{Tenant: "acme", Key: "bot"}, 4},
		{Subject{Tenant: "acme", Key: "other"}, 3},
		{Subject{Tenant: "beta", Key: "other"}, 2},
		{Subject{Tenant: "beta", Key: "vip"}, 5},
		{Subject{Tenant: "gamma", Key: "bot"}, 2},
	} {
		for i := range c.want {
			if _, err := l.Reserve(ctx, c.subj, 1); err != nil {
				t.Fatalf("%+v: reservation %d: %v", c.subj, i+1, err)
			}
		}
		if le := mustRefuse(t, l, c.subj, 1); le.Scope != ScopeKey || le.Max != int64(c.want) {
			t.Errorf("%+v: refused by %s max %d; want key max %d", c.subj, le.Scope, le.Max, c.want)
		}
	}
	for range 10 {
		mustReserve(t, l, Subject{Tenant: "acme", Key: "exempt"}, 1)
	}
	checkState(t, l, clock, Subject{Tenant: "acme", Key: "exempt"}, ScopeKey, state{})
	checkState(t, l, clock, Subject{Tenant: "beta"}, ScopeTenant, state{cr: 7, ct: 7})
}

func testTooLarge(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{
		{Scope: ScopeTenant, RPM: 100, TPM: 5000, TokensPerDay: 4000},
		{Scope: ScopeRoute, TokensPerRequest: 1000},
	}, clock)
	for _, c := range []struct {
		n    int64
		want LimitError
	}{
		{1001, LimitError{Scope: ScopeRoute, Limit: LimitTokensPerRequest, Max: 1000, Requested: 1001}},
		{5001, LimitError{Scope: ScopeTenant, Limit: LimitTPM, Max: 5000, Requested: 5001}},
	} {
		le := mustRefuse(t, l, acme, c.n)
		checkRefusal(t, le, c.want)
		if le.Code() != "request_too_large" || !strings.HasPrefix(le.Error(), "Request too large") || le.Header().Get("Retry-After") != "" {
			t.Errorf("%+v: code %q, message %q, Retry-After %q", le, le.Code(), le.Error(), le.Header().Get("Retry-After"))
		}
	}
	l2 := newLimiter(t, []Rule{{Scope: ScopeTenant, RPM: 100, TokensPerDay: 4000}}, clock)
	checkRefusal(t, mustRefuse(t, l2, acme, 4001), LimitError{Scope: ScopeTenant, Limit: LimitTokensPerDay, Max: 4000, Requested: 4001})
	checkState(t, l, clock, acme, ScopeTenant, state{})
	checkState(t, l2, clock, acme, ScopeTenant, state{})
	mustReserve(t, l, acme, 1000)
}

func testTokensPerDay(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(time.Date(2030, 1, 2, 20, 0, 0, 0, time.UTC))
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, TokensPerDay: 1000}}, clock)
	mustReserve(t, l, acme, 600)
	clock.Advance(10 * time.Minute) // minute windows have long passed; the day has not
	le := mustRefuse(t, l, acme, 500)
	checkRefusal(t, le, LimitError{Scope: ScopeTenant, Limit: LimitTokensPerDay, Max: 1000, Used: 600, Requested: 500,
		RetryAfter: 3*time.Hour + 50*time.Minute})
	if le.Code() != "token_budget_exceeded" || le.Header().Get("Retry-After") != "13800" {
		t.Errorf("code %q, Retry-After %q", le.Code(), le.Header().Get("Retry-After"))
	}
	mustReserve(t, l, acme, 400)
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 1, ct: 400, dt: 1000})
	clock.Advance(le.RetryAfter - time.Millisecond)
	mustRefuse(t, l, acme, 1)
	clock.Advance(time.Millisecond) // 00:00 UTC
	mustReserve(t, l, acme, 1000)
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 1, ct: 1000, dt: 1000})
}

func testSettle(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeKey, TPM: 10000, TokensPerDay: 100000}, {Scope: ScopeRoute, RPM: 100}}, clock)
	a := mustReserve(t, l, acme, 100)
	b := mustReserve(t, l, acme, 200)
	checkState(t, l, clock, acme, ScopeKey, state{cr: 2, ct: 300, dt: 300})
	if err := l.Settle(ctx, a, 30); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{cr: 2, ct: 230, dt: 230})
	clock.Advance(5 * time.Second)
	if err := l.Settle(ctx, b, 500); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{cr: 2, ct: 530, dt: 530})
	checkState(t, l, clock, acme, ScopeRoute, state{cr: 2, ct: 530}) // it counts (and settles) tokens too
	if err := l.Settle(ctx, a, 30); !errors.Is(err, ErrDone) {
		t.Errorf("second Settle = %v; want ErrDone", err)
	}
	if err := l.Release(ctx, b); !errors.Is(err, ErrDone) {
		t.Errorf("Release after Settle = %v; want ErrDone", err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{cr: 2, ct: 530, dt: 530})
	c := mustReserve(t, l, acme, 70)
	if err := l.Settle(ctx, c, 70); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{cr: 3, ct: 600, dt: 600})
}

func testSettleAcrossBuckets(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeKey, TPM: 10000, TokensPerDay: 100000}}, clock)
	a := mustReserve(t, l, acme, 100)
	d := mustReserve(t, l, acme, 100)
	e := mustReserve(t, l, acme, 100)
	clock.Advance(time.Minute) // a, d, e are in the previous bucket
	b := mustReserve(t, l, acme, 50)
	if err := l.Settle(ctx, a, 40); err != nil { // −60 from the previous bucket
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{cr: 1, ct: 50, pr: 3, pt: 240, dt: 290})
	if err := l.Settle(ctx, b, 80); err != nil { // +30 now
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{cr: 1, ct: 80, pr: 3, pt: 240, dt: 320})
	clock.Advance(2 * time.Minute) // d's and e's bucket left the window
	if err := l.Settle(ctx, d, 0); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{dt: 220}) // the day still counts d
	if err := l.Settle(ctx, e, 150); err != nil {           // +50 now
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{ct: 50, dt: 270})
}

func testRelease(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, RPM: 2, TPM: 1000, TokensPerDay: 5000}}, clock)
	a := mustReserve(t, l, acme, 400)
	b := mustReserve(t, l, acme, 500)
	mustRefuse(t, l, acme, 1)
	if err := l.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 1, ct: 400, dt: 400})
	c := mustReserve(t, l, acme, 600) // the released request and tokens are available again
	clock.Advance(time.Minute)
	if err := l.Release(ctx, a); err != nil { // from the previous bucket
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{pr: 1, pt: 600, dt: 600})
	if err := l.Release(ctx, a); !errors.Is(err, ErrDone) {
		t.Errorf("second Release = %v; want ErrDone", err)
	}
	if err := l.Settle(ctx, a, 10); !errors.Is(err, ErrDone) {
		t.Errorf("Settle after Release = %v; want ErrDone", err)
	}
	if err := l.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{})
}

func testNeverBelowZero(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, TPM: 1000, TokensPerDay: 5000}}, clock)
	a := mustReserve(t, l, acme, 100)
	b := mustReserve(t, l, acme, 100)
	key := counterKey(ScopeTenant, acme)
	c, err := l.inspect(ctx, acme.Tenant, key)
	if err != nil {
		t.Fatal(err)
	}
	i := a.minute & 1
	c.req[i], c.tok[i], c.dayTok = 0, 30, 30 // as if something had already taken them back
	if err := l.poke(ctx, acme.Tenant, key, c); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{ct: 30, dt: 30})
	if err := l.Settle(ctx, a, 0); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{})
	if err := l.Release(ctx, b); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{})
}

func testQuotas(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, RPM: 10, TPM: 300}, {Scope: ScopeKey, RPM: 3, TPM: 1000}}, clock)
	r := mustReserve(t, l, acme, 100)
	if q := r.RequestQuota; q == nil || *q != (Quota{Scope: ScopeKey, Limit: 3, Remaining: 2, Reset: 110 * time.Second}) {
		t.Errorf("RequestQuota = %+v", q)
	}
	if q := r.TokenQuota; q == nil || *q != (Quota{Scope: ScopeTenant, Limit: 300, Remaining: 200, Reset: 110 * time.Second}) {
		t.Errorf("TokenQuota = %+v", q)
	}
	h := r.Header()
	for k, want := range map[string]string{
		"x-ratelimit-limit-requests": "3", "x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "1m50s",
		"x-ratelimit-limit-tokens": "300", "x-ratelimit-remaining-tokens": "200", "x-ratelimit-reset-tokens": "1m50s",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q; want %q", k, got, want)
		}
	}
	if !r.Time.Equal(t0) || r.Tokens != 100 || r.Subject != acme {
		t.Errorf("reservation = %v %d %+v", r.Time, r.Tokens, r.Subject)
	}
	mustReserve(t, l, acme, 150)
	le := mustRefuse(t, l, acme, 100)
	// Next bucket, then until 250·(1−el/60s) + 100 ≤ 300: 50 s + 12 s.
	checkRefusal(t, le, LimitError{Scope: ScopeTenant, Limit: LimitTPM, Max: 300, Used: 250, Requested: 100, RetryAfter: 62 * time.Second})
	h = le.Header()
	for k, want := range map[string]string{
		"Retry-After": "62", "x-ratelimit-limit-tokens": "300", "x-ratelimit-remaining-tokens": "50", "x-ratelimit-reset-tokens": "1m2s",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("refusal %s = %q; want %q", k, got, want)
		}
	}
	ge := le.GatewayError()
	if ge.Status != 429 || ge.Type != "rate_limit_error" || ge.Code != "rate_limit_exceeded" || ge.RetryAfter != le.RetryAfter ||
		ge.Message != "Rate limit reached for tenant on tokens per min (TPM): Limit 300, Used 250, Requested 100. Please try again in 1m2s." {
		t.Errorf("GatewayError = %+v", ge)
	}
}

func testNoRule(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeRoute, ID: "embeddings", RPM: 1}}, clock)
	for range 3 {
		r := mustReserve(t, l, acme, 1_000_000)
		if r.RequestQuota != nil || r.TokenQuota != nil || len(r.Header()) != 0 {
			t.Errorf("quotas without rules: %+v %+v", r.RequestQuota, r.TokenQuota)
		}
		if err := l.Settle(ctx, r, 5); err != nil {
			t.Fatal(err)
		}
		if err := l.Release(ctx, r); !errors.Is(err, ErrDone) {
			t.Errorf("Release after Settle = %v; want ErrDone", err)
		}
	}
	checkState(t, l, clock, acme, ScopeRoute, state{})
	emb := Subject{Tenant: "acme", Route: "embeddings"}
	mustReserve(t, l, emb, 1)
	mustRefuse(t, l, emb, 1)
}

func testInvalid(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, RPM: 10}}, clock)
	other := newLimiter(t, []Rule{{Scope: ScopeTenant, RPM: 10}}, clock)
	var le *LimitError
	for _, c := range []struct {
		subj Subject
		n    int64
	}{{Subject{Key: "k"}, 1}, {acme, -1}, {acme, MaxLimit + 1}} {
		if _, err := l.Reserve(ctx, c.subj, c.n); err == nil || errors.As(err, &le) {
			t.Errorf("Reserve(%+v, %d) = %v; want an error that is no LimitError", c.subj, c.n, err)
		}
	}
	r := mustReserve(t, l, acme, 1)
	if err := other.Settle(ctx, r, 1); err == nil || errors.Is(err, ErrDone) {
		t.Errorf("Settle by another limiter = %v", err)
	}
	if err := l.Settle(ctx, r, -1); err == nil {
		t.Error("Settle(-1) succeeded")
	}
	if err := l.Settle(ctx, nil, 1); err == nil {
		t.Error("Settle(nil) succeeded")
	}
	if err := l.Settle(ctx, r, 1); err != nil {
		t.Errorf("Settle after the refused calls = %v", err)
	}
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 1, ct: 1})
}

// testConcurrent: 64 clients race for a TPM that admits exactly 100
// reservations of 10 tokens; then settle them concurrently.
func testConcurrent(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, TPM: 1000}, {Scope: ScopeKey, RPM: 1000}}, clock)
	rs := raceReserve(t, []Limiter{l}, acme, 10, 64, 4)
	if len(rs) != 100 {
		t.Fatalf("%d reservations succeeded; want exactly 100", len(rs))
	}
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 100, ct: 1000})
	sum, released := settleAll(t, []Limiter{l}, rs)
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 100 - released, ct: sum})
	checkState(t, l, clock, acme, ScopeKey, state{cr: 100 - released, ct: sum})
}

// raceReserve runs clients goroutines, each reserving n tokens through the
// limiters in turn until it was refused tries times (or 20,000 reservations
// were made in all, for a limiter that never refuses), and returns the
// reservations.
func raceReserve(t *testing.T, ls []Limiter, subj Subject, n int64, clients, tries int) []*Reservation {
	t.Helper()
	var (
		mu    sync.Mutex
		out   []*Reservation
		bad   atomic.Value
		wg    sync.WaitGroup
		total atomic.Int64
	)
	start := make(chan struct{})
	for i := range clients {
		wg.Go(func() {
			<-start
			l := ls[i%len(ls)]
			for refused := 0; refused < tries && total.Add(1) <= 20_000; {
				r, err := l.Reserve(ctx, subj, n)
				var le *LimitError
				switch {
				case errors.As(err, &le):
					refused++
				case err != nil:
					bad.Store(err)
					return
				default:
					mu.Lock()
					out = append(out, r)
					mu.Unlock()
				}
			}
		})
	}
	close(start)
	wg.Wait()
	if err := bad.Load(); err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	return out
}

// settleAll settles every reservation concurrently, through the limiter
// that made it, with a random actual, a tenth of them released, and
// returns the sum of the actual tokens and the number released.
func settleAll(t *testing.T, ls []Limiter, rs []*Reservation) (sum, released int64) {
	t.Helper()
	var total, rel atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(rs))
	for i, r := range rs {
		wg.Go(func() {
			l := ls[0]
			for _, c := range ls {
				if r.owner == c {
					l = c
				}
			}
			if i%10 == 0 {
				rel.Add(1)
				errs <- l.Release(ctx, r)
				return
			}
			actual := rand.Int64N(3 * r.Tokens)
			total.Add(actual)
			errs <- l.Settle(ctx, r, actual)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Settle/Release: %v", err)
		}
	}
	return total.Load(), rel.Load()
}

// Limits up to MaxLimit are exact (Lua computes in doubles).
func testLargeValues(t *testing.T, newLimiter newLimiterFunc) {
	clock := newClock(t0)
	l := newLimiter(t, []Rule{{Scope: ScopeTenant, TPM: MaxLimit}, {Scope: ScopeKey, TokensPerDay: MaxLimit}}, clock)
	a := mustReserve(t, l, acme, MaxLimit/2)
	mustReserve(t, l, acme, MaxLimit/2-1)
	le := mustRefuse(t, l, acme, 2)
	checkRefusal(t, le, LimitError{Scope: ScopeKey, Limit: LimitTokensPerDay, Max: MaxLimit, Used: MaxLimit - 1, Requested: 2, RetryAfter: 4*time.Hour - 10*time.Second})
	mustReserve(t, l, acme, 1)
	checkState(t, l, clock, acme, ScopeTenant, state{cr: 3, ct: MaxLimit})
	if err := l.Settle(ctx, a, MaxLimit/2-7); err != nil {
		t.Fatal(err)
	}
	checkState(t, l, clock, acme, ScopeKey, state{cr: 3, ct: MaxLimit - 7, dt: MaxLimit - 7})
	le = mustRefuse(t, l, Subject{Tenant: "acme", Key: "key-2"}, 8)
	checkRefusal(t, le, LimitError{Scope: ScopeTenant, Limit: LimitTPM, Max: MaxLimit, Used: MaxLimit - 7, Requested: 8, RetryAfter: le.RetryAfter})
	mustReserve(t, l, Subject{Tenant: "acme", Key: "key-2"}, 7)
}
