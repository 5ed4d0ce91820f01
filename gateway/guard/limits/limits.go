// Package limits enforces a tenant's rate limits and token budgets: requests
// per minute, tokens per minute, tokens per request and tokens per day, per
// tenant, API key and route.
//
// A call reserves its estimated tokens (prompt counted offline plus its
// output limit, see [Estimate]) before it goes upstream, and settles the
// reservation with the usage the provider reports when it ends, or releases
// it when the call fails. The check and the increment happen atomically,
// across every scope that applies to the call: either every counter takes
// the reservation or none does.
//
// Two limiters implement [Limiter]: [Memory] for one process and [Redis] for
// gateway replicas sharing a Redis server. They pass one conformance suite.
//
// # Windows
//
// Requests and tokens per minute are counted with a sliding-window counter:
// two fixed one-minute buckets, the previous one weighted by the part of it
// that still lies within the last 60 s (Cloudflare's "sliding window
// counter"). It needs two integers per counter and per limit, takes
// reservations of any size, and lets a reservation be adjusted later
// (settled or released) in the bucket it was taken from. We chose it over
// GCRA because settling and releasing amounts taken earlier maps onto plain
// counter arithmetic, and because the counters are what operators and tests
// can read and check ("the counter equals the sum of the reservations").
//
// Error bound. The decision is exact for the model it assumes: that the
// previous bucket's traffic was spread evenly over it. Real traffic is not,
// so the true count of the last 60 s can differ from the estimate by up to
// the previous bucket's count. Admitting too much: the limiter never admits
// more than the limit within one fixed bucket, so never more than twice the
// limit within any 60 s span (worst case: a full previous bucket sent in
// its last instant, and a full current one), the same bound as a token
// bucket whose burst is one minute of rate; over longer spans the rate stays
// at the limit. Refusing too early: when the previous bucket's traffic came
// early in it, by up to that bucket's count times the weight it still has
// (1 − elapsed/60 s). These bounds are on admissions; usage that Settle
// reports above a reservation is counted, never refused. Cloudflare reported
// 0.003 % of 400 million requests wrongly allowed or limited with this
// estimate (blog, 2017). Tokens per day use one fixed bucket per UTC day
// (exact; it resets at 00:00 UTC).
//
// Arithmetic is in integers (milliseconds and tokens), identical in Go and
// in the Redis scripts' Lua (exact up to 2^53), which is why limits are
// capped at [MaxLimit].
package limits

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"aigw/gateway"
	"aigw/gateway/guard/tokenize"
)

// Scopes a rule applies to. Counters are kept per tenant, per (tenant, key)
// and per (tenant, route).
const (
	ScopeTenant = "tenant"
	ScopeKey    = "key"
	ScopeRoute  = "route"
)

// Limits, as named in a [LimitError].
const (
	LimitRPM              = "rpm"
	LimitTPM              = "tpm"
	LimitTokensPerRequest = "tokens_per_request"
	LimitTokensPerDay     = "tokens_per_day"
)

// MaxLimit is the largest limit and the largest reservation accepted: the
// Lua scripts compute limit × window-milliseconds in doubles, exact below
// 2^53.
const MaxLimit = 100_000_000_000

// DefaultOutputTokens is what [Estimate] reserves for the output of a
// request that sets no max_tokens. Settling returns what it does not use.
const DefaultOutputTokens = 1024

// Rule sets the limits of one scope. A zero limit is no limit.
//
// Tenant and ID narrow a rule: Tenant to one tenant, ID (key and route
// scopes only) to one API key id or route name. For each scope the most
// specific rule matching the subject applies, in this order: Tenant and ID
// set, ID set, Tenant set, neither; no two rules may have the same Scope,
// Tenant and ID. A rule with every limit zero exempts what it matches from
// its scope.
type Rule struct {
	Scope  string // ScopeTenant, ScopeKey or ScopeRoute
	Tenant string
	ID     string

	RPM              int64 // requests per minute
	TPM              int64 // tokens per minute (reserved, then settled)
	TokensPerRequest int64 // prompt + max output of one request
	TokensPerDay     int64 // tokens per UTC day
}

func (r Rule) empty() bool {
	return r.RPM == 0 && r.TPM == 0 && r.TokensPerRequest == 0 && r.TokensPerDay == 0
}

// Subject is who makes a call. Tenant is required; an empty Key or Route
// leaves that scope out. Key is an API key's id, never the secret: it
// becomes part of counter names (Redis keys).
type Subject struct {
	Tenant, Key, Route string
}

// Limiter enforces rules on calls. Implementations are safe for concurrent
// use.
type Limiter interface {
	// Reserve checks tokens against every rule that applies to subj and, if
	// all allow it, counts one request and tokens against each, atomically:
	// concurrent reservations (from any process sharing the limiter's
	// store) never overshoot a limit together, and a refusal counts
	// nothing anywhere. A refusal is a *LimitError; any other error means
	// the limiter could not decide (the caller chooses fail-open or
	// fail-closed).
	Reserve(ctx context.Context, subj Subject, tokens int64) (*Reservation, error)
	// Settle replaces the reservation's tokens by the tokens actually used
	// (usually Usage.TotalTokens): the difference is taken back from the
	// minute (and day) the reservation was counted in, while that is still
	// within the window, or added to the current one. Counters never go
	// below zero. The request stays counted.
	Settle(ctx context.Context, r *Reservation, actual int64) error
	// Release undoes a reservation: its request and tokens are taken back
	// from the buckets they were counted in (those still within the
	// window). For calls that never reached the model.
	//
	// Settle and Release complete a reservation once; a second call
	// returns ErrDone and changes nothing. After an error they may be
	// retried: the Redis limiter applies each reservation's completion
	// once even if a retry follows a timeout that did apply it.
	Release(ctx context.Context, r *Reservation) error
}

var (
	_ Limiter = (*Memory)(nil)
	_ Limiter = (*Redis)(nil)
)

// ErrDone is returned by Settle and Release for a reservation already
// settled or released.
var ErrDone = errors.New("limits: reservation already settled or released")

// Reservation is a reservation taken by Reserve.
type Reservation struct {
	Subject Subject
	Tokens  int64     // reserved
	Time    time.Time // when it was counted, by the limiter's clock (Redis: the server's)
	// RequestQuota and TokenQuota describe the tightest requests- and
	// tokens-per-minute limit after this reservation (nil when none
	// applies): the values of OpenAI's x-ratelimit-* headers (see Header).
	RequestQuota, TokenQuota *Quota

	owner  any
	id     string
	minute int64 // bucket index of the reservation
	day    int64
	scopes []counterRef
	done   atomic.Bool
	tried  atomic.Bool // a completion was sent (Redis)
}

// counterRef is a counter a reservation was counted in.
type counterRef struct {
	key string // counter name: "{tenant}:k:key"
	day bool   // it keeps a daily count
}

// Quota is where a subject stands against one limit.
type Quota struct {
	Scope     string
	Limit     int64
	Remaining int64         // what the window can still take now
	Reset     time.Duration // until the window is empty again, if nothing more is reserved
}

// Header returns OpenAI's rate-limit headers for a successful call:
// x-ratelimit-limit-requests, x-ratelimit-remaining-requests,
// x-ratelimit-reset-requests and their -tokens counterparts.
//
// SPEC: https://platform.openai.com/docs/guides/rate-limits#rate-limits-in-headers
func (r *Reservation) Header() http.Header {
	h := http.Header{}
	setQuota(h, "requests", r.RequestQuota)
	setQuota(h, "tokens", r.TokenQuota)
	return h
}

func setQuota(h http.Header, what string, q *Quota) {
	if q == nil {
		return
	}
	h.Set("x-ratelimit-limit-"+what, strconv.FormatInt(q.Limit, 10))
	h.Set("x-ratelimit-remaining-"+what, strconv.FormatInt(q.Remaining, 10))
	h.Set("x-ratelimit-reset-"+what, q.Reset.Round(time.Millisecond).String())
}

// LimitError is a refused reservation: the scope and limit that refused it.
type LimitError struct {
	Scope     string // ScopeTenant, ScopeKey or ScopeRoute
	Limit     string // LimitRPM, LimitTPM, LimitTokensPerRequest or LimitTokensPerDay
	Max       int64  // the limit
	Used      int64  // what the window held (rounded up), without this request
	Requested int64  // 1 for rpm, the reserved tokens otherwise
	// RetryAfter is the earliest time the same request could be admitted
	// if nothing else were reserved meanwhile. Zero means never: the
	// request alone is over the limit (tokens_per_request, or more tokens
	// than the per-minute or per-day limit).
	RetryAfter time.Duration
}

var limitNames = map[string]string{
	LimitRPM:              "requests per min (RPM)",
	LimitTPM:              "tokens per min (TPM)",
	LimitTokensPerDay:     "tokens per day (TPD)",
	LimitTokensPerRequest: "tokens per request",
}

// Error is the message for the client, in OpenAI's words.
func (e *LimitError) Error() string {
	name := limitNames[e.Limit]
	if e.RetryAfter <= 0 {
		return fmt.Sprintf("Request too large for %s on %s: Limit %d, Requested %d. Reduce the prompt or max_tokens.",
			e.Scope, name, e.Max, e.Requested)
	}
	what := "Rate limit"
	if e.Limit == LimitTokensPerDay {
		what = "Token budget"
	}
	return fmt.Sprintf("%s reached for %s on %s: Limit %d, Used %d, Requested %d. Please try again in %s.",
		what, e.Scope, name, e.Max, e.Used, e.Requested, e.RetryAfter.Round(time.Millisecond))
}

// Code is the OpenAI-style error code: rate_limit_exceeded (rpm, tpm),
// token_budget_exceeded (tokens_per_day) or request_too_large (a request
// that can never fit).
func (e *LimitError) Code() string {
	switch {
	case e.RetryAfter <= 0:
		return "request_too_large"
	case e.Limit == LimitTokensPerDay:
		return "token_budget_exceeded"
	}
	return "rate_limit_exceeded"
}

// GatewayError is the error the gateway answers with: status 429,
// rate_limit_error, the code and message above and Retry-After.
func (e *LimitError) GatewayError() *gateway.Error {
	return &gateway.Error{Status: http.StatusTooManyRequests, Type: gateway.TypeRateLimit, Code: e.Code(),
		Message: e.Error(), RetryAfter: e.RetryAfter, Err: e}
}

// Header returns the response headers of a refusal that retrying can
// overcome: Retry-After (whole seconds, rounded up) and, for rpm and tpm,
// OpenAI's x-ratelimit-{limit,remaining,reset}-{requests,tokens}. A request
// that can never fit gets none.
func (e *LimitError) Header() http.Header {
	h := http.Header{}
	if e.RetryAfter <= 0 {
		return h
	}
	h.Set("Retry-After", strconv.FormatInt(int64((e.RetryAfter+time.Second-1)/time.Second), 10))
	q := &Quota{Scope: e.Scope, Limit: e.Max, Remaining: max(0, e.Max-e.Used), Reset: e.RetryAfter}
	switch e.Limit {
	case LimitRPM:
		setQuota(h, "requests", q)
	case LimitTPM:
		setQuota(h, "tokens", q)
	}
	return h
}

// Estimate is the tokens to reserve for req sent to model (the upstream
// model when the caller knows it, else req.Model): its prompt counted
// offline by tokenize.Count, plus its output limit (max_completion_tokens,
// else max_tokens, else defaultOutput) times its number of choices.
func Estimate(model string, req *gateway.ChatRequest, defaultOutput int64) int64 {
	out := int64(req.MaxOutputTokens())
	if out <= 0 {
		out = defaultOutput
	}
	if req.N != nil && *req.N > 1 {
		out *= int64(*req.N)
	}
	return int64(tokenize.Count(model, req)) + out
}

// rules indexes validated rules by (scope, tenant, id).
type rules map[ruleKey]Rule

type ruleKey struct{ scope, tenant, id string }

func newRules(rs []Rule) (rules, error) {
	out := make(rules, len(rs))
	for i, r := range rs {
		switch r.Scope {
		case ScopeTenant:
			if r.ID != "" {
				return nil, fmt.Errorf("limits: rule %d: a tenant rule has no id (set Tenant)", i)
			}
		case ScopeKey, ScopeRoute:
		default:
			return nil, fmt.Errorf("limits: rule %d: unknown scope %q", i, r.Scope)
		}
		for _, v := range []int64{r.RPM, r.TPM, r.TokensPerRequest, r.TokensPerDay} {
			if v < 0 || v > MaxLimit {
				return nil, fmt.Errorf("limits: rule %d: limit %d out of range [0, %d]", i, v, int64(MaxLimit))
			}
		}
		k := ruleKey{r.Scope, r.Tenant, r.ID}
		if _, dup := out[k]; dup {
			return nil, fmt.Errorf("limits: rule %d: a second %s rule for tenant %q id %q", i, r.Scope, r.Tenant, r.ID)
		}
		out[k] = r
	}
	return out, nil
}

func (rs rules) lookup(scope, tenant, id string) (Rule, bool) {
	for _, k := range [...]ruleKey{{scope, tenant, id}, {scope, "", id}, {scope, tenant, ""}, {scope, "", ""}} {
		if r, ok := rs[k]; ok {
			return r, true
		}
	}
	return Rule{}, false
}

// scopePlan is one scope a reservation is checked and counted in.
type scopePlan struct {
	scope string
	key   string // counter name
	rule  Rule
}

// plan returns the scopes that apply to subj, or the error of a request
// that can never fit.
func (rs rules) plan(subj Subject, tokens int64) ([]scopePlan, error) {
	if subj.Tenant == "" {
		return nil, errors.New("limits: subject has no tenant")
	}
	if tokens < 0 || tokens > MaxLimit {
		return nil, fmt.Errorf("limits: %d tokens out of range [0, %d]", tokens, int64(MaxLimit))
	}
	plans := make([]scopePlan, 0, 3)
	add := func(scope, id string) {
		if r, ok := rs.lookup(scope, subj.Tenant, id); ok && !r.empty() {
			plans = append(plans, scopePlan{scope, counterKey(scope, subj), r})
		}
	}
	add(ScopeTenant, "")
	if subj.Key != "" {
		add(ScopeKey, subj.Key)
	}
	if subj.Route != "" {
		add(ScopeRoute, subj.Route)
	}
	for _, p := range plans {
		r := p.rule
		switch {
		case r.TokensPerRequest > 0 && tokens > r.TokensPerRequest:
			return nil, &LimitError{Scope: p.scope, Limit: LimitTokensPerRequest, Max: r.TokensPerRequest, Requested: tokens}
		case r.TPM > 0 && tokens > r.TPM:
			return nil, &LimitError{Scope: p.scope, Limit: LimitTPM, Max: r.TPM, Requested: tokens}
		case r.TokensPerDay > 0 && tokens > r.TokensPerDay:
			return nil, &LimitError{Scope: p.scope, Limit: LimitTokensPerDay, Max: r.TokensPerDay, Requested: tokens}
		}
	}
	return plans, nil
}

// counterKey names subj's counter in scope: "{tenant}:t", "{tenant}:k:<key>"
// or "{tenant}:r:<route>", each part escaped. The tenant in braces is the
// Redis Cluster hash tag.
func counterKey(scope string, subj Subject) string {
	tag := "{" + escape(subj.Tenant) + "}"
	switch scope {
	case ScopeKey:
		return tag + ":k:" + escape(subj.Key)
	case ScopeRoute:
		return tag + ":r:" + escape(subj.Route)
	}
	return tag + ":t"
}

// escape keeps [A-Za-z0-9._~-] and percent-encodes every other byte, so
// that names are unambiguous and hold no Redis hash-tag braces.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b []byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("._~-", c) >= 0 {
			if b != nil {
				b = append(b, c)
			}
			continue
		}
		if b == nil {
			b = append(make([]byte, 0, len(s)+8), s[:i]...)
		}
		b = append(b, '%', hex[c>>4], hex[c&15])
	}
	if b == nil {
		return s
	}
	return string(b)
}

// window holds the window lengths in milliseconds (a minute and a day, but
// tests shorten them).
type window struct{ win, day int64 }

var defaultWindow = window{win: time.Minute.Milliseconds(), day: (24 * time.Hour).Milliseconds()}

// state is a counter as a reservation at one instant sees it: the current
// and previous bucket's requests and tokens, and the day's tokens.
type state struct{ cr, ct, pr, pt, dt int64 }

// fits reports whether adding k to a sliding count of limit l with current
// bucket c and previous bucket p fits el ms into the current bucket:
// p·(win−el)/win + c + k ≤ l, in integers.
func (w window) fits(l, k, c, p, el int64) bool {
	return p*(w.win-el)+(c+k)*w.win <= l*w.win
}

// wait is how long until k fits (see fits), if nothing else is counted.
func (w window) wait(l, k, c, p, el int64) int64 {
	if w.fits(l, k, c, p, el) {
		return 0
	}
	if c+k <= l { // p ≥ 1: wait within this bucket for p's weight to shrink
		return w.win - (l-k-c)*w.win/p - el
	}
	var e int64 // into the next bucket, where c becomes the previous one
	if c > 0 {
		e = w.win - (l-k)*w.win/c
	}
	return w.win - el + e
}

// used is the sliding count, rounded up.
func (w window) used(c, p, el int64) int64 {
	return (p*(w.win-el) + c*w.win + w.win - 1) / w.win
}

// reset is how long until the sliding count is zero if nothing more is
// counted.
func (w window) reset(c, p, el int64) int64 {
	switch {
	case c > 0:
		return 2*w.win - el
	case p > 0:
		return w.win - el
	}
	return 0
}

// check decides a reservation of tokens, given each scope's state at now
// (ms): nil if every limit allows it, else the refusal whose wait is the
// longest (ties: the first scope, rpm before tpm before tokens per day).
func (w window) check(plans []scopePlan, sts []state, tokens, now int64) *LimitError {
	el := now % w.win
	var worst *LimitError
	consider := func(p scopePlan, limit string, max, used, requested, wait int64) {
		if worst == nil || time.Duration(wait)*time.Millisecond > worst.RetryAfter {
			worst = &LimitError{Scope: p.scope, Limit: limit, Max: max, Used: used, Requested: requested, RetryAfter: time.Duration(wait) * time.Millisecond}
		}
	}
	for i, p := range plans {
		r, s := p.rule, sts[i]
		if r.RPM > 0 && !w.fits(r.RPM, 1, s.cr, s.pr, el) {
			consider(p, LimitRPM, r.RPM, w.used(s.cr, s.pr, el), 1, w.wait(r.RPM, 1, s.cr, s.pr, el))
		}
		if r.TPM > 0 && !w.fits(r.TPM, tokens, s.ct, s.pt, el) {
			consider(p, LimitTPM, r.TPM, w.used(s.ct, s.pt, el), tokens, w.wait(r.TPM, tokens, s.ct, s.pt, el))
		}
		if r.TokensPerDay > 0 && s.dt+tokens > r.TokensPerDay {
			consider(p, LimitTokensPerDay, r.TokensPerDay, s.dt, tokens, w.day-now%w.day)
		}
	}
	return worst
}

// quotas fills r's RequestQuota and TokenQuota from the states before the
// reservation of r.Tokens at now.
func (w window) quotas(r *Reservation, plans []scopePlan, sts []state, now int64) {
	el := now % w.win
	for i, p := range plans {
		s := sts[i]
		s.cr++
		s.ct += r.Tokens
		if l := p.rule.RPM; l > 0 {
			q := &Quota{Scope: p.scope, Limit: l, Remaining: max(0, l-w.used(s.cr, s.pr, el)), Reset: time.Duration(w.reset(s.cr, s.pr, el)) * time.Millisecond}
			if r.RequestQuota == nil || q.Remaining < r.RequestQuota.Remaining {
				r.RequestQuota = q
			}
		}
		if l := p.rule.TPM; l > 0 {
			q := &Quota{Scope: p.scope, Limit: l, Remaining: max(0, l-w.used(s.ct, s.pt, el)), Reset: time.Duration(w.reset(s.ct, s.pt, el)) * time.Millisecond}
			if r.TokenQuota == nil || q.Remaining < r.TokenQuota.Remaining {
				r.TokenQuota = q
			}
		}
	}
}

// newReservation returns the reservation of tokens for subj counted at now
// in the counters of plans.
func (w window) newReservation(owner any, subj Subject, tokens, now int64, plans []scopePlan) *Reservation {
	r := &Reservation{Subject: subj, Tokens: tokens, Time: time.UnixMilli(now), owner: owner,
		minute: now / w.win, day: now / w.day, scopes: make([]counterRef, len(plans))}
	for i, p := range plans {
		r.scopes[i] = counterRef{key: p.key, day: p.rule.TokensPerDay > 0}
	}
	return r
}

// checkReservation is the common validation of Settle and Release.
func checkReservation(owner any, r *Reservation, actual int64) error {
	switch {
	case r == nil:
		return errors.New("limits: nil reservation")
	case r.owner != owner:
		return errors.New("limits: reservation made by another limiter")
	case actual < 0 || actual > MaxLimit:
		return fmt.Errorf("limits: %d actual tokens out of range [0, %d]", actual, int64(MaxLimit))
	case r.done.Load():
		return ErrDone
	}
	return nil
}
