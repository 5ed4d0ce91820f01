package a2a

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// MemoryStore is a TaskStore in the process's memory: the embedded
// default, for one gateway (it does not survive a restart, and replicas
// do not share it). Hops and keys are dropped after the retention period.
type MemoryStore struct {
	retention time.Duration
	now       func() time.Time

	mu     sync.Mutex
	hops   map[string]*memHop // tenant + "\x00" + id
	claims map[string]*memClaim
	// queue holds one entry per hop and key, in the order they were
	// stored: writes drop the expired ones from its front, a few at a
	// time (an entry refreshed since goes to the back).
	queue []queued
	head  int
}

// queued is a hop or key in the expiry queue, with the expiry it had.
type queued struct {
	key   string
	claim bool
	at    time.Time
}

type memHop struct {
	h        Hop
	children []string
	expires  time.Time
	queuedAt time.Time // the at of its entry in the expiry queue
}

type memClaim struct {
	hopID    string
	done     bool
	expires  time.Time
	queuedAt time.Time
}

var _ TaskStore = (*MemoryStore)(nil)

// NewMemoryStore returns an empty store keeping hops for retention after
// their last change (0: DefaultRetention).
func NewMemoryStore(retention time.Duration) *MemoryStore {
	if retention <= 0 {
		retention = DefaultRetention
	}
	return &MemoryStore{retention: retention, now: time.Now, hops: map[string]*memHop{}, claims: map[string]*memClaim{}}
}

func memKey(tenant, id string) string { return tenant + "\x00" + id }

// clone returns a deep copy of h.
func (h *Hop) clone() *Hop {
	c := *h
	c.Claims.Chain = slices.Clone(h.Claims.Chain)
	c.Claims.Scopes = slices.Clone(h.Claims.Scopes)
	c.Result = slices.Clone(h.Result)
	if h.Push != nil {
		p := *h.Push
		if h.Push.Authentication != nil {
			a := *h.Push.Authentication
			a.Schemes = slices.Clone(a.Schemes)
			p.Authentication = &a
		}
		c.Push = &p
	}
	return &c
}

// sweep looks at up to 4 entries at the front of the expiry queue: an
// expired one is dropped, one refreshed since goes to the back (s.mu
// held). Each write queues at most one entry, so the queue keeps up.
func (s *MemoryStore) sweep(now time.Time) {
	for range 4 {
		if s.head == len(s.queue) || now.Before(s.queue[s.head].at) {
			break
		}
		q := s.queue[s.head]
		s.queue[s.head] = queued{}
		s.head++
		var exp time.Time
		var at *time.Time // the object's queuedAt
		if q.claim {
			if c := s.claims[q.key]; c != nil {
				exp, at = c.expires, &c.queuedAt
			}
		} else if h := s.hops[q.key]; h != nil {
			exp, at = h.expires, &h.queuedAt
		}
		switch {
		case at == nil || !at.Equal(q.at): // gone, or queued again since
		case now.After(exp) && q.claim:
			delete(s.claims, q.key)
		case now.After(exp):
			delete(s.hops, q.key)
		default:
			*at = exp
			s.queue = append(s.queue, queued{key: q.key, claim: q.claim, at: exp})
		}
	}
	if s.head > 1024 && s.head*2 > len(s.queue) {
		s.queue = append(s.queue[:0], s.queue[s.head:]...)
		s.head = 0
	}
}

// live returns the hop unless it is missing or expired (s.mu held).
func (s *MemoryStore) live(tenant, id string, now time.Time) *memHop {
	h := s.hops[memKey(tenant, id)]
	if h == nil || now.After(h.expires) {
		return nil
	}
	return h
}

// Begin stores a new hop and claims its key.
func (s *MemoryStore) Begin(_ context.Context, h *Hop, key string) (Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	tenant, id := h.Tenant(), h.ID()
	k := memKey(tenant, key)
	if c := s.claims[k]; key != "" && c != nil && !now.After(c.expires) {
		return Claim{HopID: c.hopID, Done: c.done}, nil
	}
	if s.live(tenant, id, now) != nil {
		return Claim{}, fmt.Errorf("begin hop %s: %w", id, ErrExists)
	}
	if p := h.Claims.ParentHop; p != "" {
		ph := s.live(tenant, p, now)
		if ph == nil {
			return Claim{}, fmt.Errorf("begin hop %s: parent %s: %w", id, p, ErrNotFound)
		}
		usd, ok1 := allocate(ph.h.Remaining.NanoUSD, h.Claims.Budget.NanoUSD)
		tok, ok2 := allocate(ph.h.Remaining.Tokens, h.Claims.Budget.Tokens)
		if !ok1 || !ok2 {
			return Claim{}, fmt.Errorf("begin hop %s: %w", id, ErrBudgetExhausted)
		}
		ph.h.Remaining = Budget{NanoUSD: usd, Tokens: tok}
		ph.children = append(ph.children, id)
		ph.expires = now.Add(s.retention)
	}
	c := h.clone()
	c.Created, c.Updated = now, now
	hk := memKey(tenant, id)
	s.hops[hk] = &memHop{h: *c, expires: now.Add(s.retention), queuedAt: now.Add(s.retention)}
	s.queue = append(s.queue, queued{key: hk, at: now.Add(s.retention)})
	if key != "" {
		s.setClaim(k, &memClaim{hopID: id, expires: now.Add(s.retention)})
	}
	return Claim{HopID: id, Fresh: true}, nil
}

// Get returns a hop.
func (s *MemoryStore) Get(_ context.Context, tenant, id string) (*Hop, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.live(tenant, id, s.now())
	if h == nil {
		return nil, fmt.Errorf("hop %s: %w", id, ErrNotFound)
	}
	return h.h.clone(), nil
}

// Update applies u to a hop.
func (s *MemoryStore) Update(_ context.Context, tenant, id string, u Update) (*Hop, TaskState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	m := s.live(tenant, id, now)
	if m == nil {
		return nil, "", fmt.Errorf("update hop %s: %w", id, ErrNotFound)
	}
	h := &m.h
	prev := h.State
	if u.State != "" && !CanTransition(h.State, u.State) {
		return nil, prev, fmt.Errorf("hop %s: %s → %s: %w", id, stateName(h.State), u.State, ErrInvalidTransition)
	}
	if u.UpstreamTaskID != "" && h.UpstreamTaskID != "" && h.UpstreamTaskID != u.UpstreamTaskID {
		return nil, prev, fmt.Errorf("hop %s: %w", id, ErrConflict)
	}
	if u.State != "" {
		h.State = u.State
	}
	if u.UpstreamTaskID != "" {
		h.UpstreamTaskID = u.UpstreamTaskID
	}
	if u.ContextID != "" {
		h.ContextID = u.ContextID
	}
	if u.Result != nil {
		h.Result = slices.Clone(u.Result)
	}
	if u.ClearPush {
		h.Push = nil
	}
	if u.Push != nil {
		p := (&Hop{Push: u.Push}).clone().Push
		h.Push = p
	}
	if u.Token != "" {
		h.Token = u.Token
	}
	if u.Settle != "" {
		if c := s.claims[memKey(tenant, u.Settle)]; c != nil && c.hopID == id {
			c.done = true
			c.expires = now.Add(s.retention)
		}
	}
	h.Updated = now
	m.expires = now.Add(s.retention)
	return h.clone(), prev, nil
}

// Children returns the ids of a hop's children.
func (s *MemoryStore) Children(_ context.Context, tenant, id string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.live(tenant, id, s.now())
	if h == nil {
		return nil, fmt.Errorf("children of hop %s: %w", id, ErrNotFound)
	}
	return slices.Clone(h.children), nil
}

// allocate takes one field's amount from remaining.
func allocate(remaining, ask int64) (int64, bool) {
	switch {
	case remaining < 0:
		return remaining, true
	case ask < 0 || ask > remaining:
		return remaining, false
	}
	return remaining - ask, true
}

func refund(remaining, back int64) int64 {
	if remaining < 0 || back <= 0 {
		return remaining
	}
	return remaining + back
}

// Refund gives b back to a hop's remaining budget.
func (s *MemoryStore) Refund(_ context.Context, tenant, id string, b Budget) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.live(tenant, id, s.now())
	if h == nil {
		return fmt.Errorf("refund to hop %s: %w", id, ErrNotFound)
	}
	h.h.Remaining = Budget{NanoUSD: refund(h.h.Remaining.NanoUSD, b.NanoUSD), Tokens: refund(h.h.Remaining.Tokens, b.Tokens)}
	return nil
}

// Spend takes b from a hop's remaining budget.
func (s *MemoryStore) Spend(_ context.Context, tenant, id string, b Budget, force bool) (Budget, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.live(tenant, id, s.now())
	if h == nil {
		return Budget{}, fmt.Errorf("spend of hop %s: %w", id, ErrNotFound)
	}
	rem := h.h.Remaining
	if force {
		h.h.Remaining = Budget{NanoUSD: take(rem.NanoUSD, b.NanoUSD), Tokens: take(rem.Tokens, b.Tokens)}
		return h.h.Remaining, nil
	}
	if h.h.State.Terminal() {
		return rem, fmt.Errorf("spend of hop %s (%s): %w", id, h.h.State, ErrHopEnded)
	}
	usd, ok1 := allocate(rem.NanoUSD, max(b.NanoUSD, 0))
	tok, ok2 := allocate(rem.Tokens, max(b.Tokens, 0))
	if !ok1 || !ok2 {
		return rem, fmt.Errorf("spend of hop %s: %w", id, ErrBudgetExhausted)
	}
	h.h.Remaining = Budget{NanoUSD: usd, Tokens: tok}
	return h.h.Remaining, nil
}

// take takes up to ask from a limited remaining amount, down to zero.
func take(remaining, ask int64) int64 {
	if remaining < 0 || ask <= 0 {
		return remaining
	}
	return max(remaining-ask, 0)
}

// Claim claims an idempotency key.
func (s *MemoryStore) Claim(_ context.Context, tenant, key, hopID string) (Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweep(now)
	k := memKey(tenant, key)
	if c := s.claims[k]; c != nil && !now.After(c.expires) {
		return Claim{HopID: c.hopID, Done: c.done}, nil
	}
	s.setClaim(k, &memClaim{hopID: hopID, expires: now.Add(s.retention)})
	return Claim{HopID: hopID, Fresh: true}, nil
}

// setClaim stores a new claim and queues it for expiry (s.mu held).
func (s *MemoryStore) setClaim(k string, c *memClaim) {
	c.queuedAt = c.expires
	s.queue = append(s.queue, queued{key: k, claim: true, at: c.expires})
	s.claims[k] = c
}

// Lookup returns who holds a key.
func (s *MemoryStore) Lookup(_ context.Context, tenant, key string) (Claim, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.claims[memKey(tenant, key)]; c != nil && !s.now().After(c.expires) {
		return Claim{HopID: c.hopID, Done: c.done}, nil
	}
	return Claim{}, nil
}

// Release frees a claimed key.
func (s *MemoryStore) Release(_ context.Context, tenant, key, hopID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := memKey(tenant, key)
	if c := s.claims[k]; c != nil && c.hopID == hopID && !c.done {
		delete(s.claims, k)
	}
	return nil
}

func stateName(s TaskState) string {
	if s == "" {
		return "(pending)"
	}
	return string(s)
}
