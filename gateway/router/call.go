package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"aigw/gateway"
)

// opKind is the kind of call the router runs.
type opKind uint8

const (
	kindChat opKind = iota
	kindStream
	kindEmbed
	kindDo
)

// callFunc makes one attempt on t in ctx.
type callFunc func(ctx context.Context, t *target, a *attempt) error

// run calls the route model names: it plans the order, reports it, then
// tries the candidates with retries and fallback until one succeeds, a
// non-retryable error, the caller leaving or the deadline ends it.
func (r *Router) run(ctx context.Context, model string, kind opKind, est estimate, call callFunc) error {
	rt := r.routes[model]
	if rt == nil {
		return modelNotFound(model)
	}
	obs := gateway.ObserverFrom(ctx)
	now := time.Now() // the real clock; r.clock(now) is Config.Now's
	cands, dec, retryAt := r.plan(rt, kind, est, r.clock(now))
	obs.Route(dec)
	if len(cands) == 0 {
		return r.noHealthy(model, retryAt)
	}
	end := now.Add(rt.Deadline)
	var lastErr error
	n := 0
	for i, t := range cands {
		last := i == len(cands)-1
	tries:
		for try := 0; ; try++ {
			if err := ctx.Err(); err != nil {
				return callerGone(model, err)
			}
			if n > 0 {
				now = time.Now()
			}
			if !now.Before(end) {
				return deadlineError(rt, lastErr)
			}
			n++
			a, waited, err := r.start(ctx, rt, t, obs, n, now, end)
			if err != nil {
				// Refused here (breaker or bulkhead) or the caller left
				// while waiting for a slot.
				if cerr := ctx.Err(); cerr != nil {
					r.refused(t, obs, n, gateway.OutcomeCanceled, err, "", waited)
					return callerGone(model, cerr)
				}
				next := ""
				if !last && time.Until(end) > 0 {
					next = "fallback"
					rt.fallbacks.Add(1)
				}
				r.refused(t, obs, n, gateway.OutcomeOverloaded, err, next, waited)
				break tries
			}
			err = call(a.ctx, t, a)
			if err == nil {
				switch {
				case kind == kindStream:
					// The stream owns the attempt now and ends it.
					a.confirmProbe()
					return nil
				case a.detach && !a.commit():
					a.timedOut.Store(true)
					err = a.timeoutError()
				default:
					d := time.Since(a.begin)
					a.end(gateway.OutcomeOK, d, d)
					a.report(gateway.OutcomeOK, 0, nil, "", d)
					return nil
				}
			}
			outcome, retryable, status, err := a.settle(err)
			d := time.Since(a.begin)
			a.end(outcome, d, d)
			if outcome == gateway.OutcomeCanceled {
				a.report(outcome, status, err, "", d)
				return callerGone(model, ctx.Err())
			}
			if !retryable {
				a.report(outcome, status, err, "", d)
				return err
			}
			lastErr = err
			wait, retry := r.retryWait(rt, t, try, err, status, end)
			next := ""
			switch {
			case retry:
				next = "retry"
			case !last && time.Until(end) > 0:
				next = "fallback"
				rt.fallbacks.Add(1)
			}
			a.report(outcome, status, err, next, d)
			r.log.Debug("router attempt failed", "route", rt.Name, "target", t.Name, "n", n, "outcome", outcome, "status", status, "next", next, "err", err)
			if !retry {
				break tries
			}
			if !sleep(ctx, wait) {
				return callerGone(model, ctx.Err())
			}
		}
	}
	if lastErr == nil {
		return r.noHealthy(model, r.retryAt(rt))
	}
	return upstreamError(lastErr)
}

// attempt is one try of one target: it holds the target's breaker permit
// and bulkhead slot, and its context, until end.
type attempt struct {
	r      *Router
	t      *target
	obs    gateway.Observer
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	// timedOut: the attempt timeout (or the call deadline) ended ctx.
	timedOut atomic.Bool
	limit    time.Duration
	// cut: the call deadline made limit shorter than AttemptTimeout, so a
	// timeout is not the target's fault and is not charged.
	cut    bool
	permit permit
	n      int
	start  time.Time // Config.Now
	begin  time.Time // real clock
	// detach: keep ctx live after success (Do).
	detach bool
}

var errAttemptTimeout = errors.New("attempt timed out")

// start acquires t's breaker permit and bulkhead slot and starts the
// attempt's clock (now is the real time). The error is ErrBreakerOpen,
// ErrBulkheadFull or the caller's context error; waited is how long it
// waited for a slot.
func (r *Router) start(ctx context.Context, rt *route, t *target, obs gateway.Observer, n int, now, end time.Time) (_ *attempt, waited time.Duration, _ error) {
	p, ok := t.breaker.acquire(r.clock(now))
	if !ok {
		return nil, 0, ErrBreakerOpen
	}
	if !t.bulk.tryAcquire() {
		err := t.bulk.acquire(ctx, min(r.wait, end.Sub(now)))
		waited = time.Since(now)
		if err != nil {
			t.breaker.release(p)
			return nil, waited, err
		}
		now = now.Add(waited)
	}
	t.inflight.Add(1)
	a := &attempt{r: r, t: t, obs: obs, parent: ctx, permit: p, n: n, start: r.clock(now), begin: now}
	a.limit = rt.AttemptTimeout
	if remaining := end.Sub(a.begin); remaining < a.limit {
		a.limit, a.cut = max(remaining, 0), true
	}
	a.ctx, a.cancel = context.WithCancelCause(ctx)
	a.timer = time.AfterFunc(a.limit, a.expire)
	return a, 0, nil
}

func (a *attempt) expire() {
	a.timedOut.Store(true)
	a.cancel(errAttemptTimeout)
}

// commit stops the attempt timer; false if it already fired.
func (a *attempt) commit() bool { return a.timer.Stop() }

// confirmProbe resolves a half-open probe whose stream started: the
// target answers, so its breaker closes; the stream's own outcome is
// recorded when it ends.
func (a *attempt) confirmProbe() {
	var tr transition
	a.permit, tr = a.t.breaker.confirm(a.permit, a.r.now())
	a.r.logTransition(a.t, tr)
}

// timeoutError is the error of an attempt that did not answer in time.
func (a *attempt) timeoutError() error {
	return &gateway.Error{Status: http.StatusGatewayTimeout, Type: gateway.TypeUpstream, Code: "upstream_timeout",
		Message: "The upstream provider did not answer in time.",
		Err:     fmt.Errorf("%s: no answer within %v: %w", a.t.Name, a.limit, context.DeadlineExceeded)}
}

// settle classifies a failed attempt's error: the caller leaving makes it
// canceled, the attempt's own timeout a timeout, anything else is what
// gateway.Classify says.
func (a *attempt) settle(err error) (outcome string, retryable bool, status int, _ error) {
	switch {
	case a.parent.Err() != nil:
		return gateway.OutcomeCanceled, false, 0, err
	case a.timedOut.Load():
		return gateway.OutcomeTimeout, true, 0, a.timeoutError()
	}
	outcome, retryable, status = gateway.Classify(err)
	if outcome == gateway.OutcomeCanceled {
		// A cancellation that is neither the caller's nor ours came from
		// the upstream's side.
		outcome, retryable = gateway.OutcomeError, true
	}
	return outcome, retryable, status, err
}

// end releases the attempt: it charges (or spares) the breaker, frees the
// bulkhead slot, counts the outcome and, unless the attempt is detached,
// ends its context. d is the attempt's duration, latency what the breaker
// judges slowness by.
func (a *attempt) end(outcome string, d, latency time.Duration) {
	a.timer.Stop()
	t := a.t
	switch {
	case outcome == gateway.OutcomeOK:
		a.r.logTransition(t, t.breaker.record(a.permit, a.r.clock(a.begin.Add(d)), false, latency))
	case outcome == gateway.OutcomeCanceled, outcome == gateway.OutcomeRejected,
		outcome == gateway.OutcomeTimeout && a.cut:
		t.breaker.release(a.permit)
	default:
		a.r.logTransition(t, t.breaker.record(a.permit, a.r.clock(a.begin.Add(d)), true, latency))
	}
	t.bulk.release()
	t.inflight.Add(-1)
	t.attempts[outcomeIndex(outcome)].Add(1)
	if !(a.detach && outcome == gateway.OutcomeOK) {
		a.cancel(context.Canceled)
	}
}

// report tells the observer about the attempt, which took d.
func (a *attempt) report(outcome string, status int, err error, next string, d time.Duration) {
	a.obs.Attempt(gateway.Attempt{
		Target: a.t.Name, Provider: a.t.Provider, Model: a.t.Model, N: a.n,
		Start: a.start, Duration: d, Outcome: outcome, Status: status, Err: err, Next: next,
	})
}

// refused reports an attempt the router refused itself; d is how long it
// waited for a bulkhead slot.
func (r *Router) refused(t *target, obs gateway.Observer, n int, outcome string, err error, next string, d time.Duration) {
	t.attempts[outcomeIndex(outcome)].Add(1)
	obs.Attempt(gateway.Attempt{Target: t.Name, Provider: t.Provider, Model: t.Model, N: n, Start: r.now().Add(-d), Duration: d, Outcome: outcome, Err: err, Next: next})
}

// clock returns Config.Now's time for the real time now (the same when
// Config.Now is not set, saving a clock read).
func (r *Router) clock(now time.Time) time.Time {
	if r.realClock {
		return now
	}
	return r.now()
}

// retryWait says whether to try t again after a retryable failure, and
// after how long: the upstream's Retry-After when it is at most the route's
// MaxBackoff and fits in the deadline (if not, the next target is tried at
// once: an agent is better served by another target than by a long wait,
// and the last target's Retry-After reaches the agent), else a backoff with
// full jitter. 401 and 403 are never retried on the same target, nor is
// a target whose breaker the failure opened.
func (r *Router) retryWait(rt *route, t *target, try int, err error, status int, end time.Time) (time.Duration, bool) {
	if try >= rt.retries || status == http.StatusUnauthorized || status == http.StatusForbidden {
		return 0, false
	}
	if ok, _, _ := t.breaker.peek(r.now()); !ok {
		return 0, false
	}
	remaining := time.Until(end)
	if ra := retryAfter(err); ra > 0 {
		return ra, ra < remaining && ra <= rt.MaxBackoff
	}
	d := r.backoff(rt, try)
	return d, d < remaining
}

// retryAfter is the wait an error asks for (an upstream's Retry-After),
// 0 if none.
func retryAfter(err error) time.Duration {
	var pe *gateway.ProviderError
	if errors.As(err, &pe) {
		return pe.RetryAfter
	}
	var ge *gateway.Error
	if errors.As(err, &ge) {
		return ge.RetryAfter
	}
	return 0
}

// backoff is the wait before retry n (from 0): uniform in [0, min(max,
// base*2^n)).
func (r *Router) backoff(rt *route, n int) time.Duration {
	ceil := rt.MaxBackoff
	if n < 32 {
		if d := rt.Backoff << n; d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(r.float64() * float64(ceil))
}

// sleep waits d unless ctx ends first (then false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *Router) logTransition(t *target, tr transition) {
	switch tr {
	case opened:
		h := t.breaker.snapshot(r.now())
		r.log.Warn("circuit breaker opened", "target", t.Name, "provider", t.Provider,
			"requests", h.requests, "failures", h.failures, "open_until", h.openUntil)
	case closed:
		r.log.Info("circuit breaker closed", "target", t.Name, "provider", t.Provider)
	}
}

func modelNotFound(model string) error {
	return &gateway.Error{Status: http.StatusNotFound, Type: gateway.TypeInvalidRequest, Code: "model_not_found", Param: "model",
		Message: fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model)}
}

// noHealthy is the error of a call none of whose targets may be tried now;
// retryAt is when one may be.
func (r *Router) noHealthy(model string, retryAt time.Time) error {
	d := retryAt.Sub(r.now())
	if rem := d % time.Second; rem != 0 {
		d += time.Second - rem
	}
	return &gateway.Error{Status: http.StatusServiceUnavailable, Type: gateway.TypeUnavailable, Code: "no_healthy_target",
		Message:    fmt.Sprintf("No upstream for model `%s` is available now; retry later.", model),
		RetryAfter: max(d, time.Second)}
}

// retryAt is when the earliest of the route's targets whose breaker
// refuses attempts now may be tried again (zero if none refuses).
func (r *Router) retryAt(rt *route) time.Time {
	now := r.now()
	var at time.Time
	for _, t := range rt.targets {
		if ok, when, _ := t.breaker.peek(now); !ok && (at.IsZero() || when.Before(at)) {
			at = when
		}
	}
	return at
}

func callerGone(model string, err error) error {
	return fmt.Errorf("router: call to %q ended by the caller: %w", model, err)
}

// deadlineError is the error of a call whose deadline passed before
// another attempt could start.
func deadlineError(rt *route, lastErr error) error {
	if lastErr != nil {
		return upstreamError(lastErr)
	}
	return &gateway.Error{Status: http.StatusGatewayTimeout, Type: gateway.TypeUpstream, Code: "upstream_timeout",
		Message: "The upstream provider did not answer in time.",
		Err:     fmt.Errorf("route %q: deadline of %v passed: %w", rt.Name, rt.Deadline, context.DeadlineExceeded)}
}

// upstreamError is the error a failed call returns: an upstream's error
// status (*gateway.ProviderError) or a gateway error as is, and a failure
// without a status (connection refused, reset, an answer that does not
// parse) as a 502, so it is not mistaken for the gateway's own fault.
func upstreamError(err error) error {
	var pe *gateway.ProviderError
	var ge *gateway.Error
	switch {
	case errors.As(err, &pe), errors.As(err, &ge),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled),
		errors.Is(err, gateway.ErrStreamCut), errors.Is(err, gateway.ErrStreamMalformed):
		return err
	}
	return &gateway.Error{Status: http.StatusBadGateway, Type: gateway.TypeUpstream, Code: "upstream_error",
		Message: "The upstream provider failed or could not be reached.", Err: err}
}
