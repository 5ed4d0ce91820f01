package engine

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// MemoryApprovals is an ApprovalStore in this process's memory: one
// gateway. (Replicas each hold their own: a decision reaches only the
// replica the admin API call lands on; use RedisApprovals for replicas.)
type MemoryApprovals struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[memKey]*memApproval
	// order is the approvals' keys in the order added, to drop the
	// expired ones from the oldest.
	order []memKey
}

// memKey names an approval: its id within its tenant.
type memKey struct{ tenant, id string }

var _ ApprovalStore = (*MemoryApprovals)(nil)

type memApproval struct {
	Approval
	why      string
	consumed bool
	done     chan struct{} // closed on the decision
}

// NewMemoryApprovals returns an empty store keeping approvals for ttl
// (0: an hour).
func NewMemoryApprovals(ttl time.Duration) *MemoryApprovals {
	if ttl <= 0 {
		ttl = approvalTTL
	}
	return &MemoryApprovals{ttl: ttl, m: map[memKey]*memApproval{}}
}

// lookup returns the tenant's live approval id, or nil; s.mu is held.
func (s *MemoryApprovals) lookup(tenant, id string) *memApproval {
	k := memKey{tenant, id}
	p := s.m[k]
	if p == nil {
		return nil
	}
	if time.Since(p.Created) > s.ttl {
		delete(s.m, k)
		return nil
	}
	return p
}

// Add implements ApprovalStore.
func (s *MemoryApprovals) Add(ctx context.Context, a Approval) error {
	if !validApprovalID(a.ID) {
		return fmt.Errorf("guardrails: approval id %q is malformed", a.ID)
	}
	a.Status, a.By = ApprovalPending, ""
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.order) > 0 {
		k := s.order[0]
		if q := s.m[k]; q != nil {
			if time.Since(q.Created) <= s.ttl {
				break
			}
			delete(s.m, k)
		}
		s.order = s.order[1:]
	}
	k := memKey{a.Tenant, a.ID}
	if s.m[k] != nil {
		return fmt.Errorf("guardrails: approval id %s is in use", a.ID)
	}
	s.m[k] = &memApproval{Approval: a, done: make(chan struct{})}
	s.order = append(s.order, k)
	return nil
}

// Get implements ApprovalStore.
func (s *MemoryApprovals) Get(ctx context.Context, tenant, id string) (Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(tenant, id)
	if p == nil {
		return Approval{}, ErrApprovalNotFound
	}
	return p.Approval, nil
}

// Decide implements ApprovalStore.
func (s *MemoryApprovals) Decide(ctx context.Context, tenant, id string, approved bool, by, reason string) (Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(tenant, id)
	switch {
	case p == nil:
		return Approval{}, ErrApprovalNotFound
	case p.Status != ApprovalPending:
		return p.Approval, ErrApprovalDecided
	}
	p.Status, p.By, p.why = ApprovalRejected, by, reason
	if approved {
		p.Status = ApprovalApproved
	}
	close(p.done)
	return p.Approval, nil
}

// Consume implements ApprovalStore.
func (s *MemoryApprovals) Consume(ctx context.Context, tenant, id, check string) (Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.lookup(tenant, id)
	switch {
	case p == nil || p.Check != check:
		return Approval{}, ErrApprovalNotFound
	case p.Status != ApprovalApproved:
		return p.Approval, ErrApprovalNotApproved
	case p.consumed:
		return p.Approval, ErrApprovalUsed
	}
	p.consumed = true
	return p.Approval, nil
}

// Pending implements ApprovalStore.
func (s *MemoryApprovals) Pending(ctx context.Context, tenant string) ([]Approval, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Approval
	for _, p := range s.m {
		if p.Tenant == tenant && p.Status == ApprovalPending && time.Since(p.Created) <= s.ttl {
			out = append(out, p.Approval)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// Wait implements ApprovalStore.
func (s *MemoryApprovals) Wait(ctx context.Context, tenant, id string) (Approval, error) {
	s.mu.Lock()
	p := s.lookup(tenant, id)
	if p == nil {
		s.mu.Unlock()
		return Approval{}, ErrApprovalNotFound
	}
	done := p.done
	s.mu.Unlock()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	a := p.Approval
	if a.Status != ApprovalPending {
		err = nil
	}
	return a, err
}
