package spend

import (
	"context"
	"sync"
	"time"
)

// Line is one budget window's counter in a reservation: its key and
// limits (0: none).
type Line struct {
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
	// groups the lines (one Redis hash slot).
	Reserve(ctx context.Context, tenant, id string, lines []Line, usd, tokens int64, hold time.Duration) (Admission, error)
	// Settle releases reservation id (if still held) and adds the spend
	// on the keys; a second Settle of the same id does nothing and
	// reports dup. It returns the counters after.
	Settle(ctx context.Context, tenant, id string, keys []string, usd, tokens int64) (states []State, dup bool, err error)
	// Read returns the counters (zero for unknown keys).
	Read(ctx context.Context, tenant string, keys []string) ([]State, error)
}

// Memory is a Counter in one process's memory (the embedded default).
type Memory struct {
	mu       sync.Mutex
	now      func() time.Time
	counters map[memKey]*memCounter
	settled  map[string]time.Time // reservation ids settled, until when they are remembered
	ops      int
}

type memCounter struct {
	State
	expires time.Time
	held    map[string]memHold
}

type memHold struct {
	usd, tokens int64
	until       time.Time
}

// NewMemory returns an empty in-memory counter store.
func NewMemory() *Memory {
	return &Memory{now: time.Now, counters: map[memKey]*memCounter{}, settled: map[string]time.Time{}}
}

// settledTTL is how long a settled reservation id is remembered (a retried
// settlement within it is not applied twice).
const settledTTL = 48 * time.Hour

// memKey names a counter: tenant and line key.
type memKey struct{ tenant, key string }

func (m *Memory) counter(tenant, key string, now time.Time) *memCounter {
	k := memKey{tenant, key}
	c := m.counters[k]
	if c == nil {
		c = &memCounter{held: map[string]memHold{}}
		m.counters[k] = c
	}
	for id, h := range c.held {
		if !now.Before(h.until) {
			c.ReservedUSD -= h.usd
			c.ReservedTokens -= h.tokens
			delete(c.held, id)
		}
	}
	return c
}

// gc forgets expired counters and settled ids now and then.
func (m *Memory) gc(now time.Time) {
	m.ops++
	if m.ops%4096 != 0 {
		return
	}
	for k, c := range m.counters {
		if !c.expires.IsZero() && now.After(c.expires) && len(c.held) == 0 {
			delete(m.counters, k)
		}
	}
	for id, until := range m.settled {
		if now.After(until) {
			delete(m.settled, id)
		}
	}
}

// Reserve implements Counter.
func (m *Memory) Reserve(_ context.Context, tenant, id string, lines []Line, usd, tokens int64, hold time.Duration) (Admission, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	m.gc(now)
	cs := make([]*memCounter, len(lines))
	adm := Admission{States: make([]State, len(lines))}
	for i, l := range lines {
		c := m.counter(tenant, l.Key, now)
		cs[i] = c
		adm.States[i] = c.State
	}
	for i, l := range lines {
		if reason, tok := check(cs[i].State, l, usd, tokens); reason != "" {
			adm.Line, adm.Reason, adm.Tokens = i, reason, tok
			return adm, nil
		}
	}
	for i, l := range lines {
		c := cs[i]
		c.ReservedUSD += usd
		c.ReservedTokens += tokens
		c.held[id] = memHold{usd: usd, tokens: tokens, until: now.Add(hold)}
		if l.Expires.After(c.expires) {
			c.expires = l.Expires
		}
		adm.States[i] = c.State
	}
	adm.OK = true
	return adm, nil
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
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	states := make([]State, len(keys))
	if _, dup := m.settled[id]; dup {
		for i, k := range keys {
			states[i] = m.counter(tenant, k, now).State
		}
		return states, true, nil
	}
	m.settled[id] = now.Add(settledTTL)
	for i, k := range keys {
		c := m.counter(tenant, k, now)
		if h, ok := c.held[id]; ok {
			c.ReservedUSD -= h.usd
			c.ReservedTokens -= h.tokens
			delete(c.held, id)
		}
		c.SpentUSD += usd
		c.SpentTokens += tokens
		if c.expires.IsZero() { // a reservation forgotten before it settled
			c.expires = now.Add(counterGrace + 31*24*time.Hour)
		}
		states[i] = c.State
	}
	return states, false, nil
}

// Read implements Counter.
func (m *Memory) Read(_ context.Context, tenant string, keys []string) ([]State, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	states := make([]State, len(keys))
	for i, k := range keys {
		if _, ok := m.counters[memKey{tenant, k}]; ok {
			states[i] = m.counter(tenant, k, now).State
		}
	}
	return states, nil
}
