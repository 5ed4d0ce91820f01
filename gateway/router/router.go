// Package router maps the model a client asks for (a route, i.e. a model
// alias) to upstream targets and runs each call on them: in configured,
// weighted-random or cheapest-first order, with retries and backoff,
// fallback to the next target, a circuit breaker per target, a bulkhead
// (concurrency limit) per provider, and bounds on each attempt and on the
// whole call. A *Router is itself a gateway.Provider and gateway.Embedder.
//
// Every call reports how it was routed to gateway.ObserverFrom(ctx): Route
// once, then Attempt once per attempt, in order; the pipeline turns those
// reports into ledger events.
package router

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"aigw/gateway"
)

// Route strategies.
const (
	// StrategyOrdered tries targets in the configured order.
	StrategyOrdered = "ordered"
	// StrategyWeighted tries targets in a weighted random order.
	StrategyWeighted = "weighted"
	// StrategyCost tries the cheapest target (by estimated cost) first.
	StrategyCost = "cost"
)

// Defaults applied to zero fields.
const (
	DefaultBulkhead       = 512
	DefaultRetries        = 1
	DefaultBackoff        = 100 * time.Millisecond
	DefaultMaxBackoff     = 2 * time.Second
	DefaultAttemptTimeout = 60 * time.Second
	DefaultDeadline       = 120 * time.Second

	DefaultBreakerWindow  = 30 * time.Second
	DefaultMinRequests    = 10
	DefaultFailureRate    = 0.5
	DefaultSlowCall       = 30 * time.Second
	DefaultOpenFor        = 30 * time.Second
	DefaultHalfOpenProbes = 1
)

// Config configures a Router. The zero value of every field but Routes
// works.
type Config struct {
	// Routes are the models clients may ask for.
	Routes []Route
	// Breaker configures the circuit breaker of every target.
	Breaker BreakerConfig
	// Bulkhead limits the concurrent attempts per provider name (a target's
	// Provider); 0 or absent means DefaultBulkhead.
	Bulkhead map[string]int
	// BulkheadWait is how long an attempt waits for a free bulkhead slot
	// before its target is skipped (0: skip at once).
	BulkheadWait time.Duration
	// Logger receives breaker transitions and fallbacks (default: discard).
	Logger *slog.Logger
	// Now is the clock of the breakers and of Attempt.Start (default
	// time.Now). Timeouts, backoff sleeps and durations use the real
	// clock.
	Now func() time.Time
	// Rand (math/rand/v2) is the source of backoff jitter and weighted
	// draws (default: the global source). The router serializes its use,
	// so a seeded *rand.Rand, which is not safe for concurrent use, may be
	// given as is.
	Rand *rand.Rand
}

// Route is a model clients may ask for and the targets that serve it.
type Route struct {
	// Name is the model clients send.
	Name string
	// Strategy orders the targets: StrategyOrdered (default),
	// StrategyWeighted or StrategyCost.
	Strategy string
	// Targets serve the route.
	Targets []RouteTarget
	// Retries is how many extra tries the same target gets on a retryable
	// error before the next target is tried (0: DefaultRetries; -1: none).
	Retries int
	// Backoff and MaxBackoff shape the wait before a retry: full jitter
	// over Backoff*2^n, capped by MaxBackoff (defaults 100 ms and 2 s). An
	// upstream's Retry-After replaces it when it fits in the deadline.
	Backoff, MaxBackoff time.Duration
	// AttemptTimeout bounds one attempt: the whole call when not
	// streaming, the time to the first chunk when streaming (default 60 s).
	AttemptTimeout time.Duration
	// Deadline bounds the whole call, retries and fallback included
	// (default 120 s); for a stream, the time until its first chunk.
	// Backoff sleeps and Retry-After waits never exceed it.
	Deadline time.Duration
}

// RouteTarget is a target of a route.
type RouteTarget struct {
	Target gateway.Target
	// Weight is the target's share in a weighted route (0 means 1).
	Weight int
}

// BreakerConfig configures a target's circuit breaker. The breaker opens
// when, over the last Window, at least MinRequests counted attempts
// happened and the share of failures reached FailureRate; it stays open
// for OpenFor, then lets HalfOpenProbes concurrent probes through: a
// successful probe closes it, a failed one opens it again. Client errors
// (rejected) and cancellations are not counted.
type BreakerConfig struct {
	Window      time.Duration // default 30 s
	MinRequests int           // default 10
	FailureRate float64       // in (0, 1]; default 0.5
	// SlowCall: a successful attempt slower than this counts as a failure
	// (default 30 s); for a stream the time to its first chunk counts.
	SlowCall       time.Duration
	OpenFor        time.Duration // default 30 s
	HalfOpenProbes int           // default 1
}

// Errors of attempts the router refused itself (reported as attempts with
// outcome overloaded, never charged to a breaker).
var (
	ErrBreakerOpen  = errors.New("circuit breaker open")
	ErrBulkheadFull = errors.New("bulkhead full")
)

// errStreamClosed is what Next returns after Close.
var errStreamClosed = errors.New("stream closed")

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.BulkheadWait < 0 {
		return errors.New("router: negative bulkhead wait")
	}
	for p, n := range c.Bulkhead {
		if n < 0 {
			return fmt.Errorf("router: bulkhead of provider %q is negative", p)
		}
	}
	b := c.Breaker
	switch {
	case b.Window < 0, b.SlowCall < 0, b.OpenFor < 0:
		return errors.New("router: negative breaker duration")
	case b.MinRequests < 0, b.HalfOpenProbes < 0:
		return errors.New("router: negative breaker count")
	case b.FailureRate < 0 || b.FailureRate > 1:
		return fmt.Errorf("router: breaker failure rate %v is not in [0, 1]", b.FailureRate)
	}
	routes := make(map[string]bool, len(c.Routes))
	targets := make(map[string]gateway.Target)
	for i := range c.Routes {
		rt := &c.Routes[i]
		if rt.Name == "" {
			return fmt.Errorf("router: route %d has no name", i)
		}
		if routes[rt.Name] {
			return fmt.Errorf("router: duplicate route %q", rt.Name)
		}
		routes[rt.Name] = true
		switch rt.Strategy {
		case "", StrategyOrdered, StrategyWeighted, StrategyCost:
		default:
			return fmt.Errorf("router: route %q: unknown strategy %q (want ordered, weighted or cost)", rt.Name, rt.Strategy)
		}
		if len(rt.Targets) == 0 {
			return fmt.Errorf("router: route %q has no targets", rt.Name)
		}
		switch {
		case rt.Retries < -1:
			return fmt.Errorf("router: route %q: retries %d (want -1 or more)", rt.Name, rt.Retries)
		case rt.Backoff < 0, rt.MaxBackoff < 0, rt.AttemptTimeout < 0, rt.Deadline < 0:
			return fmt.Errorf("router: route %q: negative duration", rt.Name)
		}
		seen := make(map[string]bool, len(rt.Targets))
		for j, tg := range rt.Targets {
			t := tg.Target
			switch {
			case t.Name == "":
				return fmt.Errorf("router: route %q: target %d has no name", rt.Name, j)
			case t.Upstream == nil:
				return fmt.Errorf("router: route %q: target %q has no upstream", rt.Name, t.Name)
			case t.Provider == "":
				return fmt.Errorf("router: route %q: target %q has no provider", rt.Name, t.Name)
			case t.Model == "":
				return fmt.Errorf("router: route %q: target %q has no model", rt.Name, t.Name)
			case tg.Weight < 0:
				return fmt.Errorf("router: route %q: target %q has a negative weight", rt.Name, t.Name)
			case seen[t.Name]:
				return fmt.Errorf("router: route %q: duplicate target %q", rt.Name, t.Name)
			}
			seen[t.Name] = true
			if prev, ok := targets[t.Name]; ok && (prev.Provider != t.Provider || prev.Model != t.Model || prev.Upstream != t.Upstream) {
				return fmt.Errorf("router: target %q is defined twice with different provider, model or upstream", t.Name)
			}
			targets[t.Name] = t
		}
	}
	return nil
}

// Router routes calls to targets. It is safe for concurrent use.
type Router struct {
	log *slog.Logger
	now func() time.Time
	// realClock: now is time.Now, so a real clock read serves as both.
	realClock bool
	rmu       sync.Mutex
	rnd       *rand.Rand
	wait      time.Duration
	created   int64

	routes    map[string]*route
	routeList []*route
	targets   []*target // each once, in first-seen order
	bulkheads []*bulkhead
}

var (
	_ gateway.Provider = (*Router)(nil)
	_ gateway.Embedder = (*Router)(nil)
	_ gateway.Router   = (*Router)(nil)
)

// route is a Route with defaults applied and its targets resolved.
type route struct {
	Route
	retries   int // extra tries of a target, >= 0
	targets   []*target
	weights   []int
	fallbacks atomic.Int64
}

// target is a target's shared state: its breaker, bulkhead and counters.
type target struct {
	gateway.Target
	embedder gateway.Embedder // nil if the upstream makes no embeddings
	breaker  breaker
	bulk     *bulkhead
	inflight atomic.Int64
	attempts [len(outcomes)]atomic.Int64
}

// New returns a router for cfg.
func New(cfg Config) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &Router{log: cfg.Logger, now: cfg.Now, rnd: cfg.Rand, wait: cfg.BulkheadWait, routes: make(map[string]*route, len(cfg.Routes))}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now, r.realClock = time.Now, true
	}
	r.created = r.now().Unix()
	bc := cfg.Breaker.withDefaults()
	byName := make(map[string]*target)
	byProvider := make(map[string]*bulkhead)
	for _, rc := range cfg.Routes {
		rt := &route{Route: rc.withDefaults()}
		rt.Targets = append([]RouteTarget(nil), rc.Targets...)
		rt.retries = max(rt.Retries, 0)
		for _, tg := range rt.Targets {
			t := byName[tg.Target.Name]
			if t == nil {
				t = &target{Target: tg.Target}
				t.embedder, _ = tg.Target.Upstream.(gateway.Embedder)
				t.breaker.init(bc)
				b := byProvider[t.Provider]
				if b == nil {
					limit := cfg.Bulkhead[t.Provider]
					if limit <= 0 {
						limit = DefaultBulkhead
					}
					b = newBulkhead(t.Provider, limit)
					byProvider[t.Provider] = b
					r.bulkheads = append(r.bulkheads, b)
				}
				t.bulk = b
				byName[t.Name] = t
				r.targets = append(r.targets, t)
			}
			rt.targets = append(rt.targets, t)
			rt.weights = append(rt.weights, max(tg.Weight, 1))
		}
		r.routes[rt.Name] = rt
		r.routeList = append(r.routeList, rt)
	}
	return r, nil
}

func (rc Route) withDefaults() Route {
	if rc.Strategy == "" {
		rc.Strategy = StrategyOrdered
	}
	if rc.Retries == 0 {
		rc.Retries = DefaultRetries
	}
	if rc.Backoff == 0 {
		rc.Backoff = DefaultBackoff
	}
	if rc.MaxBackoff == 0 {
		rc.MaxBackoff = DefaultMaxBackoff
	}
	if rc.AttemptTimeout == 0 {
		rc.AttemptTimeout = DefaultAttemptTimeout
	}
	if rc.Deadline == 0 {
		rc.Deadline = DefaultDeadline
	}
	return rc
}

func (c BreakerConfig) withDefaults() BreakerConfig {
	if c.Window == 0 {
		c.Window = DefaultBreakerWindow
	}
	if c.MinRequests == 0 {
		c.MinRequests = DefaultMinRequests
	}
	if c.FailureRate == 0 {
		c.FailureRate = DefaultFailureRate
	}
	if c.SlowCall == 0 {
		c.SlowCall = DefaultSlowCall
	}
	if c.OpenFor == 0 {
		c.OpenFor = DefaultOpenFor
	}
	if c.HalfOpenProbes == 0 {
		c.HalfOpenProbes = DefaultHalfOpenProbes
	}
	return c
}

// Has reports whether model names a route.
func (r *Router) Has(model string) bool {
	_, ok := r.routes[model]
	return ok
}

// Route returns the route model names, with defaults applied.
func (r *Router) Route(model string) (Route, bool) {
	rt, ok := r.routes[model]
	if !ok {
		return Route{}, false
	}
	out := rt.Route
	out.Targets = append([]RouteTarget(nil), rt.Targets...)
	return out, true
}

// Models lists the routes, in configured order, as OpenAI model entries.
func (r *Router) Models() []gateway.Model {
	out := make([]gateway.Model, len(r.routeList))
	for i, rt := range r.routeList {
		out[i] = gateway.Model{ID: rt.Name, Object: "model", Created: r.created, OwnedBy: "aigw"}
	}
	return out
}

// Chat runs a non-streaming completion on the route req.Model names. Each
// attempt gets a copy of req with Model set to the target's upstream
// model; req itself is not modified. The response keeps the upstream's
// model name.
func (r *Router) Chat(ctx context.Context, req *gateway.ChatRequest) (*gateway.ChatResponse, error) {
	var resp *gateway.ChatResponse
	err := r.run(ctx, req.Model, kindChat, estimate{chat: req}, func(ctx context.Context, t *target, _ *attempt) error {
		cp := *req
		cp.Model = t.Model
		out, err := t.Upstream.Chat(ctx, &cp)
		if err == nil {
			resp = out
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// ChatStream starts a streamed completion on the route req.Model names. An
// attempt succeeds once its first chunk arrives (within AttemptTimeout);
// until then failures fall back to the next target. After it the stream
// is committed: later errors reach the caller through Next. The committed
// attempt is reported to the observer, and charged to its breaker, when
// the stream ends (Next returns io.EOF or an error, or Close is called
// first, which reports it canceled), from the goroutine doing so. A stream
// still open when ctx ends is closed then.
func (r *Router) ChatStream(ctx context.Context, req *gateway.ChatRequest) (gateway.Stream, error) {
	var out *stream
	err := r.run(ctx, req.Model, kindStream, estimate{chat: req}, func(ctx context.Context, t *target, a *attempt) error {
		cp := *req
		cp.Model = t.Model
		st, err := t.Upstream.ChatStream(ctx, &cp)
		if err != nil {
			return err
		}
		first, err := st.Next()
		if err != nil && err != io.EOF {
			st.Close()
			return err
		}
		if !a.commit() {
			st.Close()
			return a.timeoutError()
		}
		s := &stream{a: a, inner: st, first: first, pendingEOF: err == io.EOF, ttfb: time.Since(a.begin), finished: make(chan struct{})}
		// A stream the caller abandons is closed when its context ends,
		// so that its bulkhead slot is not lost.
		s.stopClose = context.AfterFunc(a.parent, func() { s.Close() })
		out = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Embed makes embeddings on the route req.Model names, on the targets
// whose upstream implements gateway.Embedder.
func (r *Router) Embed(ctx context.Context, req *gateway.EmbeddingRequest) (*gateway.EmbeddingResponse, error) {
	rt, ok := r.routes[req.Model]
	if ok && !rt.embeds() {
		return nil, &gateway.Error{Status: http.StatusBadRequest, Type: gateway.TypeInvalidRequest, Code: "model_not_supported", Param: "model",
			Message: fmt.Sprintf("The model `%s` does not support embeddings.", req.Model)}
	}
	var resp *gateway.EmbeddingResponse
	err := r.run(ctx, req.Model, kindEmbed, estimate{embed: req}, func(ctx context.Context, t *target, _ *attempt) error {
		cp := *req
		cp.Model = t.Model
		out, err := t.embedder.Embed(ctx, &cp)
		if err == nil {
			resp = out
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// Do runs fn with the route's policy (order, retries, fallback, breakers,
// bulkheads, timeouts), for calls the router cannot make itself, such as
// forwarding a native request byte for byte. fn's error is classified with
// gateway.Classify; fn may be called once per attempt and must release
// what it opened when it fails. The context given to fn is bounded by the
// attempt timeout only while fn runs: when fn succeeds it stays live
// after Do returns (until ctx ends), so a response body fn opened can be
// read afterwards. The bulkhead slot is released when fn returns. With
// StrategyCost, whose estimate needs a request, Do assumes 1,000 prompt
// and 256 output tokens.
func (r *Router) Do(ctx context.Context, model string, fn func(ctx context.Context, t gateway.Target) error) error {
	return r.run(ctx, model, kindDo, estimate{in: 1000, out: defaultOutputTokens}, func(ctx context.Context, t *target, a *attempt) error {
		if err := fn(ctx, t.Target); err != nil {
			return err
		}
		a.detach = true
		return nil
	})
}

func (rt *route) embeds() bool {
	for _, t := range rt.targets {
		if t.embedder != nil {
			return true
		}
	}
	return false
}

// float64 returns a random number in [0, 1).
func (r *Router) float64() float64 {
	if r.rnd == nil {
		return rand.Float64()
	}
	r.rmu.Lock()
	f := r.rnd.Float64()
	r.rmu.Unlock()
	return f
}
