package router

import (
	"sync"
	"time"
)

// breakerState is a circuit breaker's state; its value is the one
// aigw_router_target_state reports.
type breakerState uint8

const (
	stateClosed breakerState = iota
	stateHalfOpen
	stateOpen
)

func (s breakerState) String() string {
	switch s {
	case stateHalfOpen:
		return "half_open"
	case stateOpen:
		return "open"
	}
	return "closed"
}

// transition is a state change a result caused.
type transition uint8

const (
	unchanged transition = iota
	opened
	closed
)

// windowBuckets is how many buckets the sliding window has.
const windowBuckets = 10

// breaker is a target's circuit breaker over a sliding window of
// windowBuckets time buckets. A mutex guards it; nothing allocates.
type breaker struct {
	cfg   BreakerConfig
	width int64 // bucket width, ns

	mu        sync.Mutex
	state     breakerState
	gen       uint64 // bumped on every state change
	openUntil time.Time
	probes    int // half-open probes in flight
	buckets   [windowBuckets]bucket
}

type bucket struct {
	epoch              int64 // time / width
	requests, failures int
	latSum, latMax     time.Duration
}

// permit lets an attempt through; probe marks a half-open probe of state
// generation gen.
type permit struct {
	gen   uint64
	probe bool
}

func (b *breaker) init(c BreakerConfig) {
	b.cfg = c
	b.width = max(int64(c.Window)/windowBuckets, 1)
}

// peek reports whether an attempt would be let through now and, if not,
// why and when one may be.
func (b *breaker) peek(now time.Time) (ok bool, at time.Time, why string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateOpen:
		if now.Before(b.openUntil) {
			return false, b.openUntil, "breaker open"
		}
	case stateHalfOpen:
		if b.probes >= b.cfg.HalfOpenProbes {
			return false, now.Add(time.Second), "breaker half-open, probe in flight"
		}
	}
	return true, time.Time{}, ""
}

// acquire lets an attempt through if the breaker allows it: always when
// closed, as a probe when half-open with a probe free (an open breaker
// whose OpenFor passed turns half-open).
func (b *breaker) acquire(now time.Time) (permit, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case stateClosed:
		return permit{gen: b.gen}, true
	case stateOpen:
		if now.Before(b.openUntil) {
			return permit{}, false
		}
		b.state, b.probes = stateHalfOpen, 0
		b.gen++
	}
	if b.probes >= b.cfg.HalfOpenProbes {
		return permit{}, false
	}
	b.probes++
	return permit{gen: b.gen, probe: true}, true
}

// isProbe reports whether p is a probe of the current half-open state.
func (b *breaker) isProbe(p permit) bool {
	return p.probe && p.gen == b.gen && b.state == stateHalfOpen
}

// release ends an attempt that does not count (canceled, rejected).
func (b *breaker) release(p permit) {
	b.mu.Lock()
	if b.isProbe(p) && b.probes > 0 {
		b.probes--
	}
	b.mu.Unlock()
}

// record counts an attempt's result: a failure, or a success slower than
// SlowCall (which counts as a failure). A probe's result closes or reopens
// the breaker; in the closed state, enough failures open it.
func (b *breaker) record(p permit, now time.Time, failed bool, latency time.Duration) transition {
	if latency > b.cfg.SlowCall {
		failed = true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	tr := unchanged
	switch {
	case b.isProbe(p) && failed:
		b.trip(now)
		tr = opened
	case b.isProbe(p):
		b.reset()
		tr = closed
	}
	b.add(now, failed, latency)
	if tr == unchanged && failed && b.state == stateClosed {
		req, fail, _, _ := b.counts(now)
		if req >= b.cfg.MinRequests && float64(fail) >= b.cfg.FailureRate*float64(req) {
			b.trip(now)
			tr = opened
		}
	}
	return tr
}

// confirm resolves a probe as a success without recording a result (a
// stream that started: its result comes when it ends). It returns the
// permit under which to record that result.
func (b *breaker) confirm(p permit, now time.Time) (permit, transition) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.isProbe(p) {
		return p, unchanged
	}
	b.reset()
	return permit{gen: b.gen}, closed
}

func (b *breaker) trip(now time.Time) {
	b.state, b.probes = stateOpen, 0
	b.openUntil = now.Add(b.cfg.OpenFor)
	b.gen++
}

// reset closes the breaker with an empty window.
func (b *breaker) reset() {
	b.state, b.probes, b.openUntil = stateClosed, 0, time.Time{}
	b.gen++
	b.buckets = [windowBuckets]bucket{}
}

func (b *breaker) epoch(now time.Time) int64 {
	ns := now.UnixNano()
	e := ns / b.width
	if ns%b.width < 0 {
		e-- // floor, so that epochs stay ordered before 1970
	}
	return e
}

func (b *breaker) add(now time.Time, failed bool, latency time.Duration) {
	e := b.epoch(now)
	k := &b.buckets[((e%windowBuckets)+windowBuckets)%windowBuckets]
	if k.epoch != e {
		*k = bucket{epoch: e}
	}
	k.requests++
	if failed {
		k.failures++
	}
	k.latSum += latency
	k.latMax = max(k.latMax, latency)
}

// counts sums the window's buckets.
func (b *breaker) counts(now time.Time) (requests, failures int, latSum, latMax time.Duration) {
	e := b.epoch(now)
	for i := range b.buckets {
		k := &b.buckets[i]
		if k.requests > 0 && k.epoch > e-windowBuckets && k.epoch <= e {
			requests += k.requests
			failures += k.failures
			latSum += k.latSum
			latMax = max(latMax, k.latMax)
		}
	}
	return
}

// breakerView is a breaker's state for Health and metrics.
type breakerView struct {
	state              breakerState
	requests, failures int
	latSum, latMax     time.Duration
	openUntil          time.Time
}

// snapshot returns the breaker's state; an open breaker whose OpenFor has
// passed shows as half-open (the next attempt is a probe).
func (b *breaker) snapshot(now time.Time) breakerView {
	b.mu.Lock()
	defer b.mu.Unlock()
	v := breakerView{state: b.state}
	v.requests, v.failures, v.latSum, v.latMax = b.counts(now)
	if b.state == stateOpen {
		if now.Before(b.openUntil) {
			v.openUntil = b.openUntil
		} else {
			v.state = stateHalfOpen
		}
	}
	return v
}
