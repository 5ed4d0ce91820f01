package spend

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// Line is one budget window's counter in a reservation: its key and
// limits (0: none).
type Line struct {
	// Key names the counter within its tenant (no newline).
	Key         string
	LimitUSD    int64
	LimitTokens int64
	// Expires is when the counter may be forgotten (the window's end and
	// a grace period: the ledger keeps the spend for good).
	Expires time.Time
}

// State is a budget window's counter.
type State struct {
	SpentUSD, ReservedUSD       int64
	SpentTokens, ReservedTokens int64
}

// Refusal reasons of Reserve.
const (
	// Exceeded: the settled spend leaves no room for the estimate.
	Exceeded = "exceeded"
	// Reserved: calls in flight hold the room the estimate needs.
	Reserved = "reserved"
)

// Admission is the result of Reserve.
type Admission struct {
	// OK: reserved on every line. Otherwise Line is the index of the
	// first line refused, Reason why (Exceeded or Reserved) and Tokens
	// whether the token limit refused (else the money limit).
	OK     bool
	Line   int
	Reason string
	Tokens bool
	// States are the lines' counters after the reservation (OK), or
	// before it (refused).
	States []State
}

// Counter is the store of budget counters, shared by the gateways that
// enforce the same budgets. Every method is one atomic step.
type Counter interface {
	// Reserve checks every line (spent + reserved + amount within the
	// limits) and, if all have room, reserves the amount on all under
	// id until hold has passed (an expired reservation is released by
	// the next operation on its line), else reserves nothing. tenant
	// groups the lines (one Redis hash slot). A reservation id already
	// holds (a retried command) is not reserved twice: it is admitted
	// with the counters as they are.
	Reserve(ctx context.Context, tenant, id string, lines []Line, usd, tokens int64, hold time.Duration) (Admission, error)
	// Settle releases reservation id (if still held) and adds the spend
	// on the keys; a second Settle of the same id does nothing and
	// reports dup. It returns the counters after. The settlement must
	// land even when ctx is canceled (the agent went away): an
	// implementation that waits bounds the wait itself.
	Settle(ctx context.Context, tenant, id string, keys []string, usd, tokens int64) (states []State, dup bool, err error)
	// Read returns the counters (zero for unknown keys).
	Read(ctx context.Context, tenant string, keys []string) ([]State, error)
}

// Memory is a Counter in one process's memory (the embedded default).
//
// Its bookkeeping is sized to stay off a call's latency: a reservation is
// one record (not one per counter), found again by id; expired holds are
// looked for only once the earliest of them is due; settled ids are kept
// as 128-bit hashes in maps without pointers (the garbage collector does
// not scan them), dropped a generation at a time.
type Memory struct {
	mu       sync.Mutex
	now      func() time.Time
	counters map[memKey]*memCounter
	holds    map[memKey]*memHold // by tenant and reservation id
	next     int64               // Unix ns when the earliest hold expires (0: none held)
	gcAt     int64               // Unix ns of the next look for expired counters
	// settled holds the hashed ids of settled reservations: [0] those of
	// the current generation, started at since, [1] the previous one.
	// A generation lasts settledTTL, so an id is remembered for at least
	// that long.
	settled [2]map[[2]uint64]struct{}
	since   int64
	seeds   [2]maphash.Seed
	free    []*memHold // settled hold records, for reuse
}

type memCounter struct {
	State
	expires int64 // Unix ns (0: unknown)
	holds   int   // reservations held on it
}

// memHold is a reservation held: its amount, until when, and its
// counters.
type memHold struct {
	usd, tokens int64
	until       int64 // Unix ns
	on          []*memCounter
}

// NewMemory returns an empty in-memory counter store.
func NewMemory() *Memory {
	return &Memory{
		now:      time.Now,
		counters: map[memKey]*memCounter{},
		holds:    map[memKey]*memHold{},
		settled:  [2]map[[2]uint64]struct{}{{}, {}},
		seeds:    [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
	}
}

// settledTTL is how long a settled reservation id is remembered (a retried
// settlement within it is not applied twice).
const settledTTL = 48 * time.Hour

// memKey names a counter (tenant and line key) or a hold (tenant and
// reservation id).
type memKey struct{ tenant, key string }

// counter returns a counter, created if create and missing (else nil).
func (m *Memory) counter(tenant, key string, create bool) *memCounter {
	c := m.counters[memKey{tenant, key}]
	if c == nil && create {
		c = &memCounter{}
		m.counters[memKey{tenant, key}] = c
	}
	return c
}

// expire releases the holds expired at now (only once the earliest is
// due) and now and then forgets expired counters.
func (m *Memory) expire(now int64) {
	if m.next != 0 && now >= m.next {
		m.next = 0
		for k, h := range m.holds {
			if now >= h.until {
				m.release(h)
				delete(m.holds, k)
				m.recycle(h)
			} else if m.next == 0 || h.until < m.next {
				m.next = h.until
			}
		}
	}
	if now >= m.gcAt || m.gcAt-now > int64(time.Minute) { // (or the clock went back)
		m.gcAt = now + int64(time.Minute)
		for k, c := range m.counters {
			if c.expires != 0 && now > c.expires && c.holds == 0 {
				delete(m.counters, k)
			}
		}
	}
}

// release takes a hold off its counters.
func (m *Memory) release(h *memHold) {
	for _, c := range h.on {
		c.ReservedUSD -= h.usd
		c.ReservedTokens -= h.tokens
		c.holds--
	}
}

func (m *Memory) recycle(h *memHold) {
	if len(m.free) < 1024 {
		clear(h.on)
		*h = memHold{on: h.on[:0]}
		m.free = append(m.free, h)
	}
}

// settle marks a reservation settled; it reports whether it was already.
func (m *Memory) settle(tenant, id string, now int64) (dup bool) {
	if now-m.since >= int64(settledTTL) {
		m.settled[1], m.settled[0], m.since = m.settled[0], map[[2]uint64]struct{}{}, now
	}
	k := [2]uint64{maphash.Comparable(m.seeds[0], memKey{tenant, id}), maphash.Comparable(m.seeds[1], memKey{tenant, id})}
	if len(m.settled[1]) > 0 {
		if _, ok := m.settled[1][k]; ok {
			return true
		}
	}
	n := len(m.settled[0])
	m.settled[0][k] = struct{}{}
	return len(m.settled[0]) == n // one access, not a lookup and an insert
}

// Reserve implements Counter.
func (m *Memory) Reserve(_ context.Context, tenant, id string, lines []Line, usd, tokens int64, hold time.Duration) (Admission, error) {
	adm := Admission{States: make([]State, len(lines))}
	var buf [8]*memCounter
	cs := buf[:0]
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixNano()
	m.expire(now)
	for i, l := range lines {
		c := m.counter(tenant, l.Key, true)
		if e := l.Expires.UnixNano(); e > c.expires {
			c.expires = e
		}
		cs = append(cs, c)
		adm.States[i] = c.State
	}
	if _, ok := m.holds[memKey{tenant, id}]; ok {
		adm.OK = true // held already (a retried reservation)
		return adm, nil
	}
	for i, l := range lines {
		if reason, tok := check(cs[i].State, l, usd, tokens); reason != "" {
			adm.Line, adm.Reason, adm.Tokens = i, reason, tok
			return adm, nil
		}
	}
	h := m.newHold()
	h.usd, h.tokens, h.until = usd, tokens, now+int64(hold)
	for i, c := range cs {
		c.ReservedUSD += usd
		c.ReservedTokens += tokens
		c.holds++
		h.on = append(h.on, c)
		adm.States[i] = c.State
	}
	m.holds[memKey{tenant, id}] = h
	if m.next == 0 || h.until < m.next {
		m.next = h.until
	}
	adm.OK = true
	return adm, nil
}

func (m *Memory) newHold() *memHold {
	if n := len(m.free); n > 0 {
		h := m.free[n-1]
		m.free = m.free[:n-1]
		return h
	}
	return &memHold{}
}

// check says whether a line has room for an amount: "" if so, else why.
func check(s State, l Line, usd, tokens int64) (reason string, tok bool) {
	if l.LimitUSD > 0 {
		if s.SpentUSD+usd > l.LimitUSD {
			return Exceeded, false
		}
		if s.SpentUSD+s.ReservedUSD+usd > l.LimitUSD {
			return Reserved, false
		}
	}
	if l.LimitTokens > 0 {
		if s.SpentTokens+tokens > l.LimitTokens {
			return Exceeded, true
		}
		if s.SpentTokens+s.ReservedTokens+tokens > l.LimitTokens {
			return Reserved, true
		}
	}
	return "", false
}

// Settle implements Counter.
func (m *Memory) Settle(_ context.Context, tenant, id string, keys []string, usd, tokens int64) ([]State, bool, error) {
	states := make([]State, len(keys))
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now().UnixNano()
	m.expire(now)
	if m.settle(tenant, id, now) {
		for i, k := range keys {
			if c := m.counter(tenant, k, false); c != nil {
				states[i] = c.State
			}
		}
		return states, true, nil
	}
	if h := m.holds[memKey{tenant, id}]; h != nil {
		m.release(h)
		delete(m.holds, memKey{tenant, id})
		m.recycle(h)
	}
	for i, k := range keys {
		c := m.counter(tenant, k, true)
		c.SpentUSD += usd
		c.SpentTokens += tokens
		if c.expires == 0 { // a reservation forgotten before it settled
			c.expires = now + int64(counterGrace+31*24*time.Hour)
		}
		states[i] = c.State
	}
	return states, false, nil
}

// Read implements Counter.
func (m *Memory) Read(_ context.Context, tenant string, keys []string) ([]State, error) {
	states := make([]State, len(keys))
	m.mu.Lock()
	defer m.mu.Unlock()
	m.expire(m.now().UnixNano())
	for i, k := range keys {
		if c := m.counter(tenant, k, false); c != nil {
			states[i] = c.State
		}
	}
	return states, nil
}
