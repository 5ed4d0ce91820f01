package limits

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Option configures a limiter.
type Option func(*options)

type options struct {
	now    func() time.Time
	window window
}

// WithClock sets the limiter's clock (time.Now by default). For the Redis
// limiter it replaces the server's TIME and is meant for tests only: in
// production the replicas' clocks must not matter.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// withWindow shortens the windows, for tests.
func withWindow(minute, day time.Duration) Option {
	return func(o *options) { o.window = window{win: minute.Milliseconds(), day: day.Milliseconds()} }
}

func buildOptions(opts []Option) options {
	o := options{window: defaultWindow}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// Memory is a Limiter for one process. Counters live in 64 shards chosen by
// tenant (all of a subject's counters are in one shard, so a reservation
// takes one lock); idle counters are dropped as the shard is used.
type Memory struct {
	rules  rules
	now    func() time.Time
	w      window
	seed   maphash.Seed
	shards [64]shard
}

type shard struct {
	mu       sync.Mutex
	counters map[string]*counter
	ops      int // since the last sweep
}

// counter is the state of one counter: two minute buckets (slot = bucket
// index mod 2) and the day's tokens.
type counter struct {
	idx     [2]int64
	req     [2]int64
	tok     [2]int64
	day     int64
	dayTok  int64
	expires int64 // ms: droppable from then on
}

// NewMemory returns a limiter for one process enforcing rules.
func NewMemory(rs []Rule, opts ...Option) (*Memory, error) {
	idx, err := newRules(rs)
	if err != nil {
		return nil, err
	}
	o := buildOptions(opts)
	m := &Memory{rules: idx, now: o.now, w: o.window, seed: maphash.MakeSeed()}
	if m.now == nil {
		m.now = time.Now
	}
	for i := range m.shards {
		m.shards[i].counters = make(map[string]*counter)
	}
	return m, nil
}

func (m *Memory) shard(tenant string) *shard {
	return &m.shards[maphash.String(m.seed, tenant)%uint64(len(m.shards))]
}

func (c *counter) state(idx, day int64) state {
	var s state
	if i := idx & 1; c.idx[i] == idx {
		s.cr, s.ct = c.req[i], c.tok[i]
	}
	if i := (idx - 1) & 1; c.idx[i] == idx-1 {
		s.pr, s.pt = c.req[i], c.tok[i]
	}
	if c.day == day {
		s.dt = c.dayTok
	}
	return s
}

// add counts reqs and toks in bucket idx and toks on day (if hasDay),
// starting the bucket or the day afresh if the slot holds an older one.
func (c *counter) add(w window, now, reqs, toks int64, hasDay bool) {
	idx, day := now/w.win, now/w.day
	i := idx & 1
	if c.idx[i] != idx {
		c.idx[i], c.req[i], c.tok[i] = idx, 0, 0
	}
	c.req[i] += reqs
	c.tok[i] += toks
	c.expires = max(c.expires, (idx+2)*w.win)
	if hasDay {
		if c.day != day {
			c.day, c.dayTok = day, 0
		}
		c.dayTok += toks
		c.expires = max(c.expires, (day+1)*w.day)
	}
}

// takeBack subtracts reqs and toks from bucket idx (if it is still within
// the window at now) and toks from day (if it is still today), never below
// zero.
func (c *counter) takeBack(w window, now, idx, day, reqs, toks int64, hasDay bool) {
	if i := idx & 1; idx >= now/w.win-1 && c.idx[i] == idx {
		c.req[i] = max(0, c.req[i]-reqs)
		c.tok[i] = max(0, c.tok[i]-toks)
	}
	if hasDay && c.day == day && day == now/w.day {
		c.dayTok = max(0, c.dayTok-toks)
	}
}

func newCounter() *counter {
	return &counter{idx: [2]int64{-2, -2}, day: -1}
}

// Reserve implements Limiter.
func (m *Memory) Reserve(ctx context.Context, subj Subject, tokens int64) (*Reservation, error) {
	plans, err := m.rules.plan(subj, tokens)
	if err != nil {
		return nil, err
	}
	now := m.now().UnixMilli()
	r := m.w.newReservation(m, subj, tokens, now, plans)
	if len(plans) == 0 {
		return r, nil
	}
	sh := m.shard(subj.Tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(now)
	var buf [3]state
	sts := buf[:len(plans)]
	cs := make([]*counter, len(plans))
	for i, p := range plans {
		c := sh.counters[p.key]
		if c == nil {
			c = newCounter()
			sh.counters[p.key] = c // an empty counter is dropped by sweep if refused
		}
		cs[i], sts[i] = c, c.state(r.minute, r.day)
	}
	if le := m.w.check(plans, sts, tokens, now); le != nil {
		return nil, le
	}
	for i, c := range cs {
		c.add(m.w, now, 1, tokens, r.scopes[i].day)
	}
	m.w.quotas(r, plans, sts, now)
	return r, nil
}

// Settle implements Limiter.
func (m *Memory) Settle(ctx context.Context, r *Reservation, actual int64) error {
	return m.complete(r, actual, false)
}

// Release implements Limiter.
func (m *Memory) Release(ctx context.Context, r *Reservation) error {
	return m.complete(r, 0, true)
}

func (m *Memory) complete(r *Reservation, actual int64, release bool) error {
	if err := checkReservation(m, r, actual); err != nil {
		return err
	}
	if !r.done.CompareAndSwap(false, true) {
		return ErrDone
	}
	if len(r.scopes) == 0 {
		return nil
	}
	now := m.now().UnixMilli()
	var reqs int64
	if release {
		reqs = 1
	}
	sh := m.shard(r.Subject.Tenant)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, ref := range r.scopes {
		c := sh.counters[ref.key]
		if delta := actual - r.Tokens; delta > 0 { // Settle: more than reserved, used now
			if c == nil {
				c = newCounter()
				sh.counters[ref.key] = c
			}
			c.add(m.w, now, 0, delta, ref.day)
		} else if c != nil {
			c.takeBack(m.w, now, r.minute, r.day, reqs, -delta, ref.day)
		}
	}
	return nil
}

// sweep drops expired counters, every max(1024, len) operations, so its
// cost per operation stays constant.
func (sh *shard) sweep(now int64) {
	sh.ops++
	if sh.ops < max(1024, len(sh.counters)) {
		return
	}
	sh.ops = 0
	for k, c := range sh.counters {
		if c.expires <= now {
			delete(sh.counters, k)
		}
	}
}

// size is the number of counters held, for tests.
func (m *Memory) size() int {
	n := 0
	for i := range m.shards {
		m.shards[i].mu.Lock()
		n += len(m.shards[i].counters)
		m.shards[i].mu.Unlock()
	}
	return n
}
