package router_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"aigw/gateway"
	"aigw/gateway/openai"
	"aigw/gateway/providertest"
	"aigw/gateway/router"
)

// upstream is one fake OpenAI server behind a real provider, as a target.
type upstream struct {
	fake   *providertest.Server
	target gateway.Target
}

// newUpstream starts a fake for provider name; its target is "<name>/m"
// with upstream model "up-<name>".
func newUpstream(t testing.TB, name string) *upstream {
	t.Helper()
	return newUpstreamKey(t, name, providertest.OpenAIKey)
}

func newUpstreamKey(t testing.TB, name, key string) *upstream {
	t.Helper()
	fake := providertest.NewOpenAI(t)
	p, err := openai.New(openai.Config{Name: name, BaseURL: fake.URL + "/v1", APIKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return &upstream{fake: fake, target: gateway.Target{Name: name + "/m", Provider: name, Kind: "openai", Model: "up-" + name, Upstream: p}}
}

// requests counts the requests the fake received.
func (u *upstream) requests() int { return len(u.fake.Requests()) }

// targets makes route targets of upstreams.
func targets(us ...*upstream) []router.RouteTarget {
	out := make([]router.RouteTarget, len(us))
	for i, u := range us {
		out[i] = router.RouteTarget{Target: u.target}
	}
	return out
}

// clock is a settable clock for the breakers.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// recorder records what the router reports for a call.
type recorder struct {
	mu       sync.Mutex
	routes   []gateway.RouteDecision
	attempts []gateway.Attempt
}

func (r *recorder) Route(d gateway.RouteDecision) {
	r.mu.Lock()
	r.routes = append(r.routes, d)
	r.mu.Unlock()
}

func (r *recorder) Attempt(a gateway.Attempt) {
	r.mu.Lock()
	r.attempts = append(r.attempts, a)
	r.mu.Unlock()
}

// steps returns the attempts as "N target outcome status next".
func (r *recorder) steps() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.attempts))
	for i, a := range r.attempts {
		out[i] = fmt.Sprintf("%d %s %s %d %s", a.N, a.Target, a.Outcome, a.Status, a.Next)
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

func (r *recorder) decision(t *testing.T) gateway.RouteDecision {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.routes) != 1 {
		t.Fatalf("%d route decisions reported; want 1", len(r.routes))
	}
	return r.routes[0]
}

func observed(ctx context.Context) (context.Context, *recorder) {
	rec := &recorder{}
	return gateway.WithObserver(ctx, rec), rec
}

// testLogger sends the router's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newRouter(t testing.TB, cfg router.Config) *router.Router {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.New(rand.NewPCG(1, 2))
	}
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func chatReq(model string) *gateway.ChatRequest {
	return &gateway.ChatRequest{Model: model, Messages: []gateway.Message{{Role: "user", Content: gateway.TextContent("Hello!")}}}
}

// health returns the health of target name.
func health(t *testing.T, r *router.Router, name string) router.TargetHealth {
	t.Helper()
	for _, h := range r.Health() {
		if h.Name == name {
			return h
		}
	}
	t.Fatalf("no health for target %q", name)
	return router.TargetHealth{}
}

// checkIdle checks that no attempt is in flight and no slot is held.
func checkIdle(t *testing.T, r *router.Router) {
	t.Helper()
	for _, h := range r.Health() {
		if h.InFlight != 0 || h.BulkheadInUse != 0 {
			t.Errorf("target %s: in flight %d, bulkhead in use %d; want 0", h.Name, h.InFlight, h.BulkheadInUse)
		}
	}
}

// waitFor polls cond until it holds (or fails the test after 5 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestValidate(t *testing.T) {
	a := newUpstream(t, "a")
	ok := router.Route{Name: "m", Targets: targets(a)}
	other := a.target
	other.Model = "other"
	for _, test := range []struct {
		name string
		cfg  router.Config
		want string
	}{
		{"Duplicate", router.Config{Routes: []router.Route{ok, ok}}, `duplicate route "m"`},
		{"NoTargets", router.Config{Routes: []router.Route{{Name: "m"}}}, "has no targets"},
		{"NilUpstream", router.Config{Routes: []router.Route{{Name: "m", Targets: []router.RouteTarget{{Target: gateway.Target{Name: "x", Provider: "p", Model: "y"}}}}}}, "has no upstream"},
		{"UnknownStrategy", router.Config{Routes: []router.Route{{Name: "m", Strategy: "fastest", Targets: targets(a)}}}, `unknown strategy "fastest"`},
		{"NoName", router.Config{Routes: []router.Route{{Targets: targets(a)}}}, "has no name"},
		{"DuplicateTarget", router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, a)}}}, "duplicate target"},
		{"TargetRedefined", router.Config{Routes: []router.Route{ok, {Name: "n", Targets: []router.RouteTarget{{Target: other}}}}}, "defined twice"},
		{"NegativeWeight", router.Config{Routes: []router.Route{{Name: "m", Strategy: router.StrategyWeighted, Targets: []router.RouteTarget{{Target: a.target, Weight: -1}}}}}, "negative weight"},
		{"Retries", router.Config{Routes: []router.Route{{Name: "m", Retries: -2, Targets: targets(a)}}}, "retries -2"},
		{"FailureRate", router.Config{Routes: []router.Route{ok}, Breaker: router.BreakerConfig{FailureRate: 1.5}}, "failure rate"},
		{"Valid", router.Config{Routes: []router.Route{ok, {Name: "n", Targets: targets(a)}}}, ""},
		{"Empty", router.Config{}, ""},
	} {
		t.Run(test.name, func(t *testing.T) {
			_, err := router.New(test.cfg)
			switch {
			case test.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case test.want != "" && (err == nil || !strings.Contains(err.Error(), test.want)):
				t.Fatalf("New: %v; want an error containing %q", err, test.want)
			}
		})
	}
}

func TestRouteDefaults(t *testing.T) {
	a := newUpstream(t, "a")
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a)}}})
	rt, ok := r.Route("m")
	if !ok || rt.Strategy != router.StrategyOrdered || rt.Retries != router.DefaultRetries || rt.Backoff != router.DefaultBackoff ||
		rt.MaxBackoff != router.DefaultMaxBackoff || rt.AttemptTimeout != router.DefaultAttemptTimeout || rt.Deadline != router.DefaultDeadline {
		t.Fatalf("Route(m) = %+v, %v", rt, ok)
	}
	if _, ok := r.Route("nope"); ok || r.Has("nope") || !r.Has("m") {
		t.Fatal("Has/Route accept an unknown model")
	}
	if h := health(t, r, "a/m"); h.BulkheadLimit != router.DefaultBulkhead || h.State != "closed" {
		t.Fatalf("health = %+v", h)
	}
}

func TestUnknownModel(t *testing.T) {
	r := newRouter(t, router.Config{})
	_, err := r.Chat(context.Background(), chatReq("gpt-nope"))
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Status != 404 || ge.Type != gateway.TypeInvalidRequest || ge.Code != "model_not_found" || ge.Param != "model" ||
		ge.Message != "The model `gpt-nope` does not exist or you do not have access to it." {
		t.Fatalf("err = %#v", err)
	}
}

func TestChat(t *testing.T) {
	a := newUpstream(t, "a")
	clk := newClock()
	r := newRouter(t, router.Config{Now: clk.Now, Routes: []router.Route{{Name: "fast", Targets: targets(a)}}})
	ctx, rec := observed(context.Background())
	req := chatReq("fast")
	resp, err := r.Chat(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if req.Model != "fast" {
		t.Errorf("the caller's request was changed: model %q", req.Model)
	}
	if resp.Model != "up-a" {
		t.Errorf("response model = %q; want the upstream's", resp.Model)
	}
	if body := string(a.fake.Requests()[0].Body); !strings.Contains(body, `"model":"up-a"`) {
		t.Errorf("upstream got %s", body)
	}
	d := rec.decision(t)
	if d.Route != "fast" || d.Strategy != "ordered" || d.Reason != "ordered" || len(d.Candidates) != 1 || d.Candidates[0] != "a/m" || d.Skipped != nil {
		t.Errorf("decision = %+v", d)
	}
	at := rec.attempts[0]
	if at.Target != "a/m" || at.Provider != "a" || at.Model != "up-a" || at.N != 1 || at.Outcome != "ok" || at.Err != nil ||
		at.Next != "" || !at.Start.Equal(clk.Now()) || at.Duration <= 0 || len(rec.attempts) != 1 {
		t.Errorf("attempts = %+v", rec.attempts)
	}
	checkIdle(t, r)
}

func TestFallback(t *testing.T) {
	closed := newUpstream(t, "dead")
	closed.fake.Close()
	for _, test := range []struct {
		name    string
		a       *upstream // default: a fresh fake "a"
		retries int
		faults  []providertest.Fault
		want    []string
		wantA   int // requests a received
		timeout time.Duration
	}{
		{"500RetriedThenFallback", nil, 1, []providertest.Fault{{Status: 500}, {Status: 500}},
			[]string{"1 a/m error 500 retry", "2 a/m error 500 fallback", "3 b/m ok 0"}, 2, 0},
		{"500Recovers", nil, 1, []providertest.Fault{{Status: 500}},
			[]string{"1 a/m error 500 retry", "2 a/m ok 0"}, 2, 0},
		{"503NoRetries", nil, -1, []providertest.Fault{{Status: 503}},
			[]string{"1 a/m overloaded 503 fallback", "2 b/m ok 0"}, 1, 0},
		{"429RetryAfterBeyondDeadline", nil, 3, []providertest.Fault{{Status: 429, RetryAfter: "30"}},
			[]string{"1 a/m rate_limited 429 fallback", "2 b/m ok 0"}, 1, 0},
		{"429RetryAfterBeyondMaxBackoff", nil, 3, []providertest.Fault{{Status: 429, RetryAfter: "1"}},
			[]string{"1 a/m rate_limited 429 fallback", "2 b/m ok 0"}, 1, 0},
		{"Timeout", nil, -1, []providertest.Fault{{Delay: 5 * time.Second}},
			[]string{"1 a/m timeout 0 fallback", "2 b/m ok 0"}, 1, 300 * time.Millisecond},
		{"Hang", nil, 1, []providertest.Fault{{Hang: true}, {Hang: true}},
			[]string{"1 a/m timeout 0 retry", "2 a/m timeout 0 fallback", "3 b/m ok 0"}, 2, 300 * time.Millisecond},
		{"ConnectionRefused", closed, -1, nil,
			[]string{"1 dead/m error 0 fallback", "2 b/m ok 0"}, -1, 0},
		{"401NotRetriedOnSameTarget", newUpstreamKey(t, "a", "sk-wrong"), 2, nil,
			[]string{"1 a/m error 401 fallback", "2 b/m ok 0"}, 1, 0},
	} {
		t.Run(test.name, func(t *testing.T) {
			a := test.a
			if a == nil {
				a = newUpstream(t, "a")
			}
			b := newUpstream(t, "b")
			a.fake.Push(test.faults...)
			r := newRouter(t, router.Config{Routes: []router.Route{{
				Name: "m", Targets: targets(a, b), Retries: test.retries,
				Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, AttemptTimeout: test.timeout, Deadline: 10 * time.Second,
			}}})
			ctx, rec := observed(context.Background())
			resp, err := r.Chat(ctx, chatReq("m"))
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.steps(); strings.Join(got, "\n") != strings.Join(test.want, "\n") {
				t.Errorf("attempts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(test.want, "\n"))
			}
			if want := "up-b"; strings.HasSuffix(test.name, "Recovers") {
				if resp.Model != "up-a" {
					t.Errorf("answered by %s; want up-a", resp.Model)
				}
			} else if resp.Model != want {
				t.Errorf("answered by %s; want %s", resp.Model, want)
			}
			if test.wantA >= 0 && a.requests() != test.wantA {
				t.Errorf("a received %d requests; want %d", a.requests(), test.wantA)
			}
			for _, at := range rec.attempts {
				if (at.Outcome == "ok") != (at.Err == nil) {
					t.Errorf("attempt %d: outcome %s with err %v", at.N, at.Outcome, at.Err)
				}
			}
			checkIdle(t, r)
		})
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.fake.Push(providertest.Fault{Status: 429, RetryAfter: "0.2"})
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, b), Backoff: time.Millisecond, Deadline: 5 * time.Second}}})
	ctx, rec := observed(context.Background())
	start := time.Now()
	resp, err := r.Chat(ctx, chatReq("m"))
	if err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited < 200*time.Millisecond {
		t.Errorf("retried after %v; Retry-After asked for 200ms", waited)
	}
	want := "1 a/m rate_limited 429 retry\n2 a/m ok 0"
	if got := strings.Join(rec.steps(), "\n"); got != want || resp.Model != "up-a" || b.requests() != 0 {
		t.Errorf("attempts:\n%s\nwant:\n%s (answered by %s)", got, want, resp.Model)
	}
}

func TestNoFallbackOnClientError(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.fake.Push(providertest.Fault{Status: 400, Message: "Invalid 'messages[0].role'."})
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, b)}}})
	ctx, rec := observed(context.Background())
	_, err := r.Chat(ctx, chatReq("m"))
	var pe *gateway.ProviderError
	if !errors.As(err, &pe) || pe.Status != 400 || pe.Provider != "a" {
		t.Fatalf("err = %v; want a's 400 as is", err)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m rejected 400" || b.requests() != 0 {
		t.Errorf("attempts: %s; b got %d requests", got, b.requests())
	}
	if h := health(t, r, "a/m"); h.Requests != 0 {
		t.Errorf("a client error was charged to the breaker: %+v", h)
	}
	checkIdle(t, r)
}

func TestAllFail(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.fake.Push(providertest.Fault{Status: 500})
	b.fake.Push(providertest.Fault{Status: 429})
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, b), Retries: -1}}})
	ctx, rec := observed(context.Background())
	_, err := r.Chat(ctx, chatReq("m"))
	var pe *gateway.ProviderError
	if !errors.As(err, &pe) || pe.Status != 429 || pe.Provider != "b" {
		t.Fatalf("err = %v; want the last error (b's 429) as is", err)
	}
	if got, want := strings.Join(rec.steps(), "\n"), "1 a/m error 500 fallback\n2 b/m rate_limited 429"; got != want {
		t.Errorf("attempts:\n%s\nwant:\n%s", got, want)
	}
	var m strings.Builder
	r.WriteMetrics(&m)
	if !strings.Contains(m.String(), `aigw_router_fallbacks_total{route="m"} 1`) {
		t.Errorf("metrics:\n%s", m.String())
	}
}

func TestTransportErrorIs502(t *testing.T) {
	a := newUpstream(t, "a")
	a.fake.Close()
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a), Retries: -1}}})
	_, err := r.Chat(context.Background(), chatReq("m"))
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Status != 502 || ge.Code != "upstream_error" {
		t.Fatalf("err = %#v", err)
	}
}

func TestDeadline(t *testing.T) {
	t.Run("Hang", func(t *testing.T) {
		a, b := newUpstream(t, "a"), newUpstream(t, "b")
		a.fake.Push(providertest.Fault{Hang: true})
		const deadline = 300 * time.Millisecond
		r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, b), AttemptTimeout: 10 * time.Second, Deadline: deadline}}})
		ctx, rec := observed(context.Background())
		start := time.Now()
		_, err := r.Chat(ctx, chatReq("m"))
		if took := time.Since(start); took < deadline || took > deadline+3*time.Second {
			t.Errorf("call took %v; deadline %v", took, deadline)
		}
		var ge *gateway.Error
		if !errors.As(err, &ge) || ge.Status != 504 || ge.Code != "upstream_timeout" || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %#v", err)
		}
		if got := strings.Join(rec.steps(), "\n"); got != "1 a/m timeout 0" || b.requests() != 0 {
			t.Errorf("attempts: %s; b got %d requests", got, b.requests())
		}
		if h := health(t, r, "a/m"); h.Requests != 0 {
			t.Errorf("a timeout cut short by the call deadline was charged: %+v", h)
		}
		checkIdle(t, r)
	})
	t.Run("Backoff", func(t *testing.T) {
		// The backoff (up to 10 s) never outlasts the deadline: the
		// router falls back instead, and the deadline still holds.
		a, b := newUpstream(t, "a"), newUpstream(t, "b")
		a.fake.Push(providertest.Fault{Status: 500}, providertest.Fault{Status: 500})
		b.fake.Push(providertest.Fault{Status: 500}, providertest.Fault{Status: 500})
		const deadline = 400 * time.Millisecond
		r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, b), Retries: 1, Backoff: 10 * time.Second, MaxBackoff: 10 * time.Second, Deadline: deadline}}})
		start := time.Now()
		_, err := r.Chat(context.Background(), chatReq("m"))
		if took := time.Since(start); took > deadline+3*time.Second {
			t.Errorf("call took %v; deadline %v", took, deadline)
		}
		var pe *gateway.ProviderError
		if !errors.As(err, &pe) || pe.Status != 500 {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestCanceled(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.fake.Push(providertest.Fault{Hang: true})
	r := newRouter(t, router.Config{Breaker: router.BreakerConfig{MinRequests: 1}, Routes: []router.Route{{Name: "m", Targets: targets(a, b)}}})
	ctx, cancel := context.WithCancel(context.Background())
	ctx, rec := observed(ctx)
	go func() {
		for a.requests() == 0 {
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
	}()
	_, err := r.Chat(ctx, chatReq("m"))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m canceled 0" || b.requests() != 0 {
		t.Errorf("attempts: %s; b got %d requests", got, b.requests())
	}
	if h := health(t, r, "a/m"); h.Requests != 0 || h.State != "closed" {
		t.Errorf("a cancellation was charged: %+v", h)
	}
	checkIdle(t, r)
}

func TestBreaker(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	clk := newClock()
	r := newRouter(t, router.Config{
		Now:     clk.Now,
		Breaker: router.BreakerConfig{MinRequests: 4, FailureRate: 0.5, OpenFor: 10 * time.Second, Window: time.Minute},
		Routes:  []router.Route{{Name: "m", Targets: targets(a, b), Retries: -1}},
	})
	call := func() (*recorder, error) {
		ctx, rec := observed(context.Background())
		_, err := r.Chat(ctx, chatReq("m"))
		return rec, err
	}
	// 2 successes, then failures until the rate reaches 50% over 4.
	for range 2 {
		if _, err := call(); err != nil {
			t.Fatal(err)
		}
	}
	a.fake.Push(providertest.Fault{Status: 500}, providertest.Fault{Status: 400}, providertest.Fault{Status: 500})
	for i := range 3 {
		call()
		if h := health(t, r, "a/m"); (h.State == "open") != (i == 2) {
			t.Fatalf("after failure %d: %+v", i+1, h)
		}
	}
	h := health(t, r, "a/m")
	if h.Requests != 4 || h.Failures != 2 || h.ErrorRate != 0.5 || !h.OpenUntil.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("open breaker: %+v", h)
	}

	// Open: a is skipped.
	rec, err := call()
	if err != nil {
		t.Fatal(err)
	}
	if d := rec.decision(t); len(d.Candidates) != 1 || d.Candidates[0] != "b/m" || d.Skipped["a/m"] != "breaker open" {
		t.Fatalf("decision with a open: %+v", d)
	}
	if a.requests() != 5 {
		t.Fatalf("a received %d requests; want 5", a.requests())
	}

	// After OpenFor: half-open, a failed probe opens it again.
	clk.Advance(10 * time.Second)
	if h := health(t, r, "a/m"); h.State != "half_open" {
		t.Fatalf("after OpenFor: %+v", h)
	}
	a.fake.Push(providertest.Fault{Status: 503})
	rec, _ = call()
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m overloaded 503 fallback\n2 b/m ok 0" {
		t.Fatalf("failed probe: %s", got)
	}
	if h := health(t, r, "a/m"); h.State != "open" || !h.OpenUntil.Equal(clk.Now().Add(10*time.Second)) {
		t.Fatalf("after a failed probe: %+v", h)
	}

	// A probe in flight keeps other calls off a; a canceled probe leaves
	// the breaker half-open.
	clk.Advance(10 * time.Second)
	a.fake.Push(providertest.Fault{Hang: true})
	probeCtx, cancelProbe := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := r.Chat(probeCtx, chatReq("m")); done <- err }()
	waitFor(t, "the probe", func() bool { return a.requests() == 7 })
	rec, _ = call()
	if d := rec.decision(t); d.Skipped["a/m"] != "breaker half-open, probe in flight" {
		t.Fatalf("decision during the probe: %+v", d)
	}
	cancelProbe()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled probe: %v", err)
	}
	if h := health(t, r, "a/m"); h.State != "half_open" {
		t.Fatalf("after a canceled probe: %+v", h)
	}
	// The next probe succeeds: closed, with a fresh window.
	rec, _ = call()
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m ok 0" {
		t.Fatalf("probe: %s", got)
	}
	if h := health(t, r, "a/m"); h.State != "closed" || h.Requests != 1 || h.Failures != 0 || !h.OpenUntil.IsZero() {
		t.Fatalf("after a good probe: %+v", h)
	}
	checkIdle(t, r)
}

func TestBreakerSlowCalls(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	clk := newClock()
	r := newRouter(t, router.Config{
		Now:     clk.Now,
		Breaker: router.BreakerConfig{MinRequests: 2, SlowCall: 50 * time.Millisecond},
		Routes:  []router.Route{{Name: "m", Targets: targets(a, b)}},
	})
	a.fake.Push(providertest.Fault{Delay: 80 * time.Millisecond}, providertest.Fault{Delay: 80 * time.Millisecond})
	for range 2 {
		resp, err := r.Chat(context.Background(), chatReq("m"))
		if err != nil || resp.Model != "up-a" {
			t.Fatalf("slow call: %v", err)
		}
	}
	if h := health(t, r, "a/m"); h.State != "open" || h.Failures != 2 || h.MaxLatency < 80*time.Millisecond || h.MeanLatency < 80*time.Millisecond {
		t.Fatalf("after 2 slow calls: %+v", h)
	}
}

func TestNoHealthyTarget(t *testing.T) {
	a := newUpstream(t, "a")
	clk := newClock()
	r := newRouter(t, router.Config{
		Now:     clk.Now,
		Breaker: router.BreakerConfig{MinRequests: 1, OpenFor: 10 * time.Second},
		Routes:  []router.Route{{Name: "m", Targets: targets(a), Retries: -1}},
	})
	a.fake.Push(providertest.Fault{Status: 500})
	r.Chat(context.Background(), chatReq("m"))
	clk.Advance(2500 * time.Millisecond)
	ctx, rec := observed(context.Background())
	_, err := r.Chat(ctx, chatReq("m"))
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Status != 503 || ge.Type != gateway.TypeUnavailable || ge.Code != "no_healthy_target" || ge.RetryAfter != 8*time.Second {
		t.Fatalf("err = %#v", err)
	}
	if d := rec.decision(t); len(d.Candidates) != 0 || d.Skipped["a/m"] != "breaker open" || len(rec.attempts) != 0 {
		t.Fatalf("decision = %+v, attempts %v", d, rec.steps())
	}
}

func TestBulkhead(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	r := newRouter(t, router.Config{
		Bulkhead: map[string]int{"a": 2},
		Routes:   []router.Route{{Name: "m", Targets: targets(a, b)}},
	})
	// Two hanging calls hold a's two slots.
	a.fake.Push(providertest.Fault{Hang: true}, providertest.Fault{Hang: true})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			_, err := r.Chat(ctx, chatReq("m"))
			errs <- err
		})
	}
	waitFor(t, "two hanging calls", func() bool { return a.requests() == 2 })
	if h := health(t, r, "a/m"); h.BulkheadInUse != 2 || h.BulkheadLimit != 2 || h.InFlight != 2 {
		t.Fatalf("health = %+v", h)
	}
	var m strings.Builder
	r.WriteMetrics(&m)
	for _, line := range []string{`aigw_router_bulkhead_in_use{provider="a"} 2`, `aigw_router_bulkhead_limit{provider="a"} 2`, `aigw_router_target_inflight{target="a/m"} 2`} {
		if !strings.Contains(m.String(), line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}

	// The third call skips a.
	obsCtx, rec := observed(context.Background())
	resp, err := r.Chat(obsCtx, chatReq("m"))
	if err != nil || resp.Model != "up-b" {
		t.Fatalf("third call: %v", err)
	}
	if d := rec.decision(t); d.Skipped["a/m"] != "bulkhead full" || len(d.Candidates) != 1 {
		t.Fatalf("decision = %+v", d)
	}

	// Slots come back when the hanging calls end.
	cancel()
	wg.Wait()
	for range 2 {
		if err := <-errs; !errors.Is(err, context.Canceled) {
			t.Errorf("hanging call: %v", err)
		}
	}
	checkIdle(t, r)
	if resp, err := r.Chat(context.Background(), chatReq("m")); err != nil || resp.Model != "up-a" {
		t.Fatalf("after release: %v", err)
	}
	if h := health(t, r, "a/m"); h.Requests != 1 {
		t.Errorf("canceled calls were charged: %+v", h)
	}
}

func TestBulkheadWait(t *testing.T) {
	for _, test := range []struct {
		name   string
		wait   time.Duration
		holder providertest.Fault // what the call holding a's slot meets
		want   string
	}{
		{"SlotFreed", 10 * time.Second, providertest.Fault{Delay: 100 * time.Millisecond}, "1 a/m ok 0"},
		{"WaitedOut", 20 * time.Millisecond, providertest.Fault{Hang: true}, "1 a/m overloaded 0 fallback\n2 b/m ok 0"},
	} {
		t.Run(test.name, func(t *testing.T) {
			a, b := newUpstream(t, "a"), newUpstream(t, "b")
			r := newRouter(t, router.Config{
				Bulkhead: map[string]int{"a": 1}, BulkheadWait: test.wait,
				Routes: []router.Route{{Name: "m", Targets: targets(a, b)}},
			})
			a.fake.Push(test.holder)
			holdCtx, release := context.WithCancel(context.Background())
			defer release()
			done := make(chan error)
			go func() { _, err := r.Chat(holdCtx, chatReq("m")); done <- err }()
			waitFor(t, "the call holding the slot", func() bool { return a.requests() == 1 })
			ctx, rec := observed(context.Background())
			if _, err := r.Chat(ctx, chatReq("m")); err != nil {
				t.Fatal(err)
			}
			release()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			if got := strings.Join(rec.steps(), "\n"); got != test.want {
				t.Errorf("attempts:\n%s\nwant:\n%s", got, test.want)
			}
			if d := rec.decision(t); len(d.Skipped) != 0 {
				t.Errorf("with a bulkhead wait, nothing is skipped up front: %+v", d)
			}
			if test.wait < time.Second && !errors.Is(rec.attempts[0].Err, router.ErrBulkheadFull) {
				t.Errorf("refused attempt err = %v", rec.attempts[0].Err)
			}
			checkIdle(t, r)
		})
	}
}

// readAll reads a stream to its end.
func readAll(s gateway.Stream) (string, []*gateway.ChatChunk, error) {
	var text strings.Builder
	var chunks []*gateway.ChatChunk
	for {
		c, err := s.Next()
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return text.String(), chunks, err
		}
		chunks = append(chunks, c)
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				text.WriteString(*ch.Delta.Content)
			}
		}
	}
}

func TestStream(t *testing.T) {
	for _, test := range []struct {
		name       string
		fault      providertest.Fault
		before     []string // attempts reported when ChatStream returns
		after      string   // the committed attempt, reported at the end
		from       string   // upstream model of the chunks
		wantErr    error
		aRequests  int
		aFailures  int
		bRequested bool
	}{
		{"OK", providertest.Fault{}, nil, "1 a/m ok 0", "up-a", nil, 1, 0, false},
		{"500BeforeFirstChunk", providertest.Fault{Status: 500}, []string{"1 a/m error 500 fallback"}, "2 b/m ok 0", "up-b", nil, 1, 1, true},
		{"MalformedFirstChunk", providertest.Fault{MalformedAt: 1}, []string{"1 a/m error 0 fallback"}, "2 b/m ok 0", "up-b", nil, 1, 1, true},
		{"ErrorEventFirst", providertest.Fault{ErrorEventAt: 1}, []string{"1 a/m error 502 fallback"}, "2 b/m ok 0", "up-b", nil, 1, 1, true},
		{"Hang", providertest.Fault{Hang: true}, []string{"1 a/m timeout 0 fallback"}, "2 b/m ok 0", "up-b", nil, 1, 1, true},
		{"CutAfterFirstChunk", providertest.Fault{CutAfter: 3}, nil, "1 a/m error 0", "up-a", gateway.ErrStreamCut, 1, 1, false},
		{"MalformedLater", providertest.Fault{MalformedAt: 4}, nil, "1 a/m error 0", "up-a", gateway.ErrStreamMalformed, 1, 1, false},
	} {
		t.Run(test.name, func(t *testing.T) {
			a, b := newUpstream(t, "a"), newUpstream(t, "b")
			a.fake.Push(test.fault)
			timeout := time.Duration(0)
			if test.fault.Hang {
				timeout = 300 * time.Millisecond
			}
			r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, b), Retries: -1, AttemptTimeout: timeout}}})
			ctx, rec := observed(context.Background())
			req := chatReq("m")
			req.Stream = true
			s, err := r.ChatStream(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if got := rec.steps(); strings.Join(got, "\n") != strings.Join(test.before, "\n") {
				t.Errorf("attempts before the stream:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(test.before, "\n"))
			}
			text, chunks, err := readAll(s)
			if !errors.Is(err, test.wantErr) || (test.wantErr == nil) != (err == nil) {
				t.Fatalf("stream error %v; want %v", err, test.wantErr)
			}
			if len(chunks) == 0 || chunks[0].Model != test.from {
				t.Fatalf("chunks %+v; want them from %s", chunks, test.from)
			}
			if test.wantErr == nil {
				if text != "Hello! How can I help you today?" || s.Usage() == nil || s.Usage().TotalTokens != 18 {
					t.Errorf("text %q, usage %+v", text, s.Usage())
				}
			} else if len(chunks) != 3 {
				t.Errorf("got %d chunks before the failure", len(chunks))
			}
			all := append(append([]string(nil), test.before...), test.after)
			if got := rec.steps(); strings.Join(got, "\n") != strings.Join(all, "\n") {
				t.Errorf("attempts:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(all, "\n"))
			}
			if _, err := s.Next(); !errors.Is(err, test.wantErr) && !(test.wantErr == nil && err == io.EOF) {
				t.Errorf("Next after the end: %v", err)
			}
			s.Close()
			s.Close()
			if got := len(rec.steps()); got != len(all) {
				t.Errorf("Close after the end reported again: %v", rec.steps())
			}
			if h := health(t, r, "a/m"); h.Requests != test.aRequests || h.Failures != test.aFailures {
				t.Errorf("a's breaker: %+v", h)
			}
			if (b.requests() > 0) != test.bRequested {
				t.Errorf("b received %d requests", b.requests())
			}
			checkIdle(t, r)
		})
	}
}

func TestStreamClose(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	r := newRouter(t, router.Config{Bulkhead: map[string]int{"a": 1}, Routes: []router.Route{{Name: "m", Targets: targets(a, b)}}})
	ctx, rec := observed(context.Background())
	s, err := r.ChatStream(ctx, chatReq("m"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := s.Next(); err != nil || c.Model != "up-a" {
		t.Fatalf("first chunk: %v", err)
	}
	// The open stream holds a's only slot.
	if h := health(t, r, "a/m"); h.BulkheadInUse != 1 || h.InFlight != 1 {
		t.Fatalf("health during the stream: %+v", h)
	}
	other, err := r.ChatStream(context.Background(), chatReq("m"))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := other.Next(); err != nil || c.Model != "up-b" {
		t.Fatalf("second stream: %v, %+v", err, c)
	}
	other.Close()

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { s.Close() })
	}
	wg.Wait()
	if _, err := s.Next(); err == nil || err == io.EOF {
		t.Errorf("Next after Close = %v; want an error", err)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m canceled 0" {
		t.Errorf("attempts: %s", got)
	}
	if h := health(t, r, "a/m"); h.Requests != 0 {
		t.Errorf("a stream the caller closed was charged: %+v", h)
	}
	checkIdle(t, r)
}

func TestStreamConcurrentClose(t *testing.T) {
	// Close from other goroutines while the reader reads: the attempt
	// ends exactly once.
	a := newUpstream(t, "a")
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a)}}})
	for range 20 {
		ctx, rec := observed(context.Background())
		s, err := r.ChatStream(ctx, chatReq("m"))
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		wg.Go(func() { readAll(s) })
		for range 4 {
			wg.Go(func() { s.Close() })
		}
		wg.Wait()
		if n := len(rec.steps()); n != 1 {
			t.Fatalf("%d attempt reports: %v", n, rec.steps())
		}
	}
	checkIdle(t, r)
}

func TestWeighted(t *testing.T) {
	a, b, c := newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")
	r := newRouter(t, router.Config{
		Rand: rand.New(rand.NewPCG(7, 7)),
		Routes: []router.Route{{Name: "m", Strategy: router.StrategyWeighted, Targets: []router.RouteTarget{
			{Target: a.target, Weight: 6}, {Target: b.target, Weight: 3}, {Target: c.target, Weight: 1},
		}}},
	})
	const n = 500
	first := map[string]int{}
	second := map[string]int{}
	for range n {
		ctx, rec := observed(context.Background())
		resp, err := r.Chat(ctx, chatReq("m"))
		if err != nil {
			t.Fatal(err)
		}
		d := rec.decision(t)
		if d.Reason != "weighted draw" || d.Strategy != "weighted" || len(d.Candidates) != 3 {
			t.Fatalf("decision = %+v", d)
		}
		if "up-"+strings.TrimSuffix(d.Candidates[0], "/m") != resp.Model {
			t.Fatalf("answered by %s; first candidate %s", resp.Model, d.Candidates[0])
		}
		first[d.Candidates[0]]++
		second[d.Candidates[1]]++
	}
	for name, want := range map[string]float64{"a/m": 0.6, "b/m": 0.3, "c/m": 0.1} {
		if got := float64(first[name]) / n; got < want-0.06 || got > want+0.06 {
			t.Errorf("%s first in %.2f of calls; want about %.2f", name, got, want)
		}
	}
	// Without replacement: second place given a first is drawn from the
	// rest (P(b second) = .6*.75 + .1*.33 = .48).
	if got := float64(second["b/m"]) / n; got < 0.42 || got > 0.54 {
		t.Errorf("b second in %.2f of calls; want about 0.48", got)
	}
	if a.requests()+b.requests()+c.requests() != n {
		t.Errorf("requests: %d %d %d", a.requests(), b.requests(), c.requests())
	}
}

func TestCost(t *testing.T) {
	a, b, c := newUpstream(t, "a"), newUpstream(t, "b"), newUpstream(t, "c")
	a.target.Price = &gateway.Price{Input: 10, Output: 30}
	b.target.Price = &gateway.Price{Input: 1, Output: 2}
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Strategy: router.StrategyCost, Targets: targets(c, a, b)}}})
	req := chatReq("m")
	maxTokens := 1000
	req.MaxTokens = &maxTokens
	ctx, rec := observed(context.Background())
	resp, err := r.Chat(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	in := float64(gateway.EstimatePromptTokens(req))
	costA, costB := (in*10+1000*30)/1e6, (in*1+1000*2)/1e6
	d := rec.decision(t)
	want := fmt.Sprintf("cheapest first: b/m ($%.4f) < a/m ($%.4f); unpriced last: c/m", costB, costA)
	if strings.Join(d.Candidates, ",") != "b/m,a/m,c/m" || d.Reason != want || d.Strategy != "cost" {
		t.Errorf("decision = %+v; want reason %q", d, want)
	}
	if resp.Model != "up-b" {
		t.Errorf("answered by %s; want the cheapest", resp.Model)
	}
	// Without max tokens the estimate assumes 256 output tokens, which
	// can change the order.
	a.target.Price = &gateway.Price{Input: 1, Output: 1}
	b.target.Price = &gateway.Price{Input: 0.01, Output: 3}
	r = newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Strategy: router.StrategyCost, Targets: targets(b, a)}}})
	ctx, rec = observed(context.Background())
	if _, err := r.Chat(ctx, chatReq("m")); err != nil {
		t.Fatal(err)
	}
	if d := rec.decision(t); strings.Join(d.Candidates, ",") != "a/m,b/m" {
		t.Errorf("decision = %+v", d)
	}
}

func TestEmbed(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	// A target whose upstream makes no embeddings (the real provider with
	// its Embed hidden).
	chatOnly := newUpstream(t, "chatonly")
	chatOnly.target.Upstream = struct{ gateway.Provider }{chatOnly.target.Upstream}
	r := newRouter(t, router.Config{Routes: []router.Route{
		{Name: "emb", Targets: targets(chatOnly, a, b), Retries: -1},
		{Name: "chat", Targets: targets(chatOnly)},
	}})
	a.fake.Push(providertest.Fault{Status: 500})
	var req gateway.EmbeddingRequest
	req.Model = "emb"
	if err := req.Input.UnmarshalJSON([]byte(`["a","bb"]`)); err != nil {
		t.Fatal(err)
	}
	ctx, rec := observed(context.Background())
	resp, err := r.Embed(ctx, &req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Model != "up-b" || len(resp.Data) != 2 || req.Model != "emb" {
		t.Fatalf("embeddings = %+v (request model %q)", resp, req.Model)
	}
	if d := rec.decision(t); d.Skipped["chatonly/m"] != "no embeddings" || strings.Join(d.Candidates, ",") != "a/m,b/m" {
		t.Errorf("decision = %+v", d)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m error 500 fallback\n2 b/m ok 0" {
		t.Errorf("attempts: %s", got)
	}
	req.Model = "chat"
	_, err = r.Embed(context.Background(), &req)
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Status != 400 || ge.Code != "model_not_supported" {
		t.Errorf("embedding on a chat-only route: %v", err)
	}
}

func TestDo(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	a.fake.Push(providertest.Fault{Status: 502})
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a, b), Retries: -1}}})
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx, rec := observed(parent)
	var tried []string
	var kept context.Context
	var resp *gateway.ChatResponse
	err := r.Do(ctx, "m", func(ctx context.Context, tg gateway.Target) error {
		tried = append(tried, tg.Name)
		req := chatReq(tg.Model)
		out, err := tg.Upstream.Chat(ctx, req)
		if err != nil {
			return err
		}
		resp, kept = out, ctx
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tried, ",") != "a/m,b/m" || resp.Model != "up-b" {
		t.Fatalf("tried %v, answered by %s", tried, resp.Model)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m error 502 fallback\n2 b/m ok 0" {
		t.Errorf("attempts: %s", got)
	}
	// The successful attempt's context outlives Do, until the caller's ends.
	if kept.Err() != nil {
		t.Errorf("the context of a successful Do ended with it: %v", kept.Err())
	}
	cancel()
	if kept.Err() == nil {
		t.Error("the context outlived the caller's")
	}
	checkIdle(t, r)

	// fn's own client error stops the call.
	tried = nil
	bad := &gateway.Error{Status: 400, Type: gateway.TypeInvalidRequest, Message: "bad body"}
	err = r.Do(context.Background(), "m", func(ctx context.Context, tg gateway.Target) error {
		tried = append(tried, tg.Name)
		return bad
	})
	if err != bad || len(tried) != 1 {
		t.Errorf("Do = %v after %v", err, tried)
	}
	if err := r.Do(context.Background(), "nope", nil); err == nil {
		t.Error("Do on an unknown model")
	}
}

func TestModelsHealthMetrics(t *testing.T) {
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	weird := b.target
	weird.Name = "we\"ird\\na\nme"
	clk := newClock()
	r := newRouter(t, router.Config{
		Now:      clk.Now,
		Bulkhead: map[string]int{"a": 7},
		Breaker:  router.BreakerConfig{MinRequests: 1},
		Routes: []router.Route{
			{Name: "one", Targets: targets(a)},
			{Name: "two", Targets: []router.RouteTarget{{Target: a.target}, {Target: weird}}, Retries: -1},
		},
	})
	models := r.Models()
	if len(models) != 2 || models[0].ID != "one" || models[1].ID != "two" || models[0].OwnedBy != "aigw" || models[0].Object != "model" || models[0].Created != clk.Now().Unix() {
		t.Fatalf("models = %+v", models)
	}
	a.fake.Push(providertest.Fault{Status: 500})
	if _, err := r.Chat(context.Background(), chatReq("two")); err != nil {
		t.Fatal(err)
	}
	hs := r.Health()
	if len(hs) != 2 || hs[0].Name != "a/m" || hs[1].Name != weird.Name {
		t.Fatalf("health = %+v", hs)
	}
	if h := hs[0]; h.State != "open" || h.Requests != 1 || h.Failures != 1 || h.ErrorRate != 1 || h.BulkheadLimit != 7 || h.Provider != "a" || h.Model != "up-a" || h.MaxLatency <= 0 {
		t.Errorf("a: %+v", h)
	}
	if h := hs[1]; h.State != "closed" || h.Requests != 1 || h.Failures != 0 || h.BulkheadLimit != router.DefaultBulkhead {
		t.Errorf("weird: %+v", h)
	}
	var m strings.Builder
	r.WriteMetrics(&m)
	out := m.String()
	for _, line := range []string{
		"# HELP aigw_router_target_state ",
		"# TYPE aigw_router_target_state gauge",
		"# TYPE aigw_router_attempts_total counter",
		"# TYPE aigw_router_fallbacks_total counter",
		`aigw_router_target_state{target="a/m",provider="a"} 2`,
		`aigw_router_target_state{target="we\"ird\\na\nme",provider="b"} 0`,
		`aigw_router_attempts_total{target="a/m",outcome="error"} 1`,
		`aigw_router_attempts_total{target="a/m",outcome="ok"} 0`,
		`aigw_router_attempts_total{target="we\"ird\\na\nme",outcome="ok"} 1`,
		`aigw_router_target_inflight{target="a/m"} 0`,
		`aigw_router_bulkhead_limit{provider="a"} 7`,
		`aigw_router_bulkhead_in_use{provider="b"} 0`,
		`aigw_router_fallbacks_total{route="one"} 0`,
		`aigw_router_fallbacks_total{route="two"} 1`,
	} {
		if !strings.Contains(out, line+"\n") && !strings.Contains(out, line) {
			t.Errorf("metrics lack %q", line)
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "# ") && !strings.HasPrefix(l, "aigw_router_") {
			t.Errorf("malformed exposition line %q", l)
		}
	}
	clk.Advance(router.DefaultOpenFor)
	if h := health(t, r, "a/m"); h.State != "half_open" || !h.OpenUntil.IsZero() {
		t.Errorf("after OpenFor: %+v", h)
	}
}

func TestHTTPStatusOfErrors(t *testing.T) {
	// The errors the router returns map to the right HTTP answers.
	a := newUpstream(t, "a")
	a.fake.Push(providertest.Fault{Status: http.StatusTooManyRequests, RetryAfter: "20"})
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a), Retries: -1}}})
	_, err := r.Chat(context.Background(), chatReq("m"))
	if ae := gateway.AsError(err); ae.Status != 429 || ae.RetryAfter != 20*time.Second {
		t.Errorf("429 upstream answered as %+v", ae)
	}
}

func TestBreakerStopsRetries(t *testing.T) {
	// The failure that opens a's breaker ends its retries.
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	r := newRouter(t, router.Config{
		Breaker: router.BreakerConfig{MinRequests: 1},
		Routes:  []router.Route{{Name: "m", Targets: targets(a, b), Retries: 3, Backoff: time.Millisecond}},
	})
	a.fake.Push(providertest.Fault{Status: 500})
	ctx, rec := observed(context.Background())
	if _, err := r.Chat(ctx, chatReq("m")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m error 500 fallback\n2 b/m ok 0" {
		t.Errorf("attempts: %s", got)
	}
}

func TestStreamProbe(t *testing.T) {
	// A half-open probe that streams closes the breaker at its first
	// chunk, not when the stream ends; the stream's result then counts
	// in the fresh window.
	a, b := newUpstream(t, "a"), newUpstream(t, "b")
	clk := newClock()
	r := newRouter(t, router.Config{
		Now:     clk.Now,
		Breaker: router.BreakerConfig{MinRequests: 1, OpenFor: time.Second},
		Routes:  []router.Route{{Name: "m", Targets: targets(a, b), Retries: -1}},
	})
	a.fake.Push(providertest.Fault{Status: 500})
	s, err := r.ChatStream(context.Background(), chatReq("m"))
	if err != nil {
		t.Fatal(err)
	}
	readAll(s)
	if h := health(t, r, "a/m"); h.State != "open" {
		t.Fatalf("after a failure: %+v", h)
	}
	clk.Advance(time.Second)
	ctx, rec := observed(context.Background())
	s, err = r.ChatStream(ctx, chatReq("m"))
	if err != nil {
		t.Fatal(err)
	}
	if h := health(t, r, "a/m"); h.State != "closed" || h.Requests != 0 || h.InFlight != 1 {
		t.Fatalf("with the probe's stream started: %+v", h)
	}
	if _, _, err := readAll(s); err != nil {
		t.Fatal(err)
	}
	if h := health(t, r, "a/m"); h.State != "closed" || h.Requests != 1 || h.Failures != 0 {
		t.Fatalf("after the probe's stream: %+v", h)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m ok 0" {
		t.Errorf("attempts: %s", got)
	}
	checkIdle(t, r)
}

func TestAllRefused(t *testing.T) {
	// Every target refused when its turn came (after a bulkhead wait):
	// no upstream error to return, so the router answers 503.
	a := newUpstream(t, "a")
	r := newRouter(t, router.Config{
		Bulkhead: map[string]int{"a": 1}, BulkheadWait: 20 * time.Millisecond,
		Routes: []router.Route{{Name: "m", Targets: targets(a)}},
	})
	a.fake.Push(providertest.Fault{Hang: true})
	holdCtx, release := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { _, err := r.Chat(holdCtx, chatReq("m")); done <- err }()
	waitFor(t, "the call holding the slot", func() bool { return a.requests() == 1 })
	ctx, rec := observed(context.Background())
	_, err := r.Chat(ctx, chatReq("m"))
	release()
	var ge *gateway.Error
	if !errors.As(err, &ge) || ge.Status != 503 || ge.Code != "no_healthy_target" || ge.RetryAfter != time.Second {
		t.Fatalf("err = %#v", err)
	}
	if got := strings.Join(rec.steps(), "\n"); got != "1 a/m overloaded 0" {
		t.Errorf("attempts: %s", got)
	}
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	checkIdle(t, r)
}

func TestStreamAbandoned(t *testing.T) {
	// A stream whose caller's context ends without Close still gives its
	// bulkhead slot back.
	a := newUpstream(t, "a")
	r := newRouter(t, router.Config{Routes: []router.Route{{Name: "m", Targets: targets(a)}}})
	ctx, cancel := context.WithCancel(context.Background())
	ctx, rec := observed(ctx)
	s, err := r.ChatStream(ctx, chatReq("m"))
	if err != nil {
		t.Fatal(err)
	}
	s.Next()
	cancel()
	waitFor(t, "the stream's end", func() bool { return len(rec.steps()) == 1 })
	if got := rec.steps()[0]; got != "1 a/m canceled 0" {
		t.Errorf("attempt: %s", got)
	}
	checkIdle(t, r)
}
