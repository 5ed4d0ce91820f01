package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"time"

	"aigw/gateway"
)

// ActionApprove holds a call for a person to approve or reject through the
// admin API (EU AI Act Art. 14, AIUC-1 C007, D003): the agent waits up to
// the check's approval_wait_ms; if no one has decided by then it gets 403
// approval_pending naming the approval, which it can poll (GET
// /v1/approvals/{id}) and, once approved, send back with the retried call
// (X-Aigw-Approval: {id}), once.
const ActionApprove = "require_approval"

// Approval statuses.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalRejected = "rejected"
)

// approvalTTL is how long an approval is kept (decided or not).
const approvalTTL = time.Hour

// Approval is a held call's approval, as the admin API and agents see it.
type Approval struct {
	ID      string    `json:"id"`
	Tenant  string    `json:"tenant"`
	Check   string    `json:"check"`
	Stage   string    `json:"stage"`
	Reason  string    `json:"reason"`
	Status  string    `json:"status"`
	By      string    `json:"by,omitempty"`
	Created time.Time `json:"created_at"`
}

type pendingApproval struct {
	Approval
	done     chan struct{}
	consumed bool
	why      string
}

// approvals holds this process's approvals. (Replicas each hold their own:
// an approver's decision reaches the replica the admin API call lands on.)
type approvals struct {
	mu sync.Mutex
	m  map[string]*pendingApproval
}

func (a *approvals) add(tenant string, d *decision) *pendingApproval {
	var b [8]byte
	rand.Read(b[:])
	p := &pendingApproval{Approval: Approval{ID: "apr_" + hex.EncodeToString(b[:]), Tenant: tenant, Check: d.c.cfg.ID, Stage: d.stage,
		Reason: d.reason, Status: ApprovalPending, Created: time.Now().UTC()}, done: make(chan struct{})}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]*pendingApproval{}
	}
	for id, q := range a.m {
		if time.Since(q.Created) > approvalTTL {
			delete(a.m, id)
		}
	}
	a.m[p.ID] = p
	return p
}

// Decide records a person's decision on a pending approval of the tenant;
// it reports whether there was one (on this replica) to decide.
func (e *Engine) Decide(tenant, id string, approved bool, by, reason string) bool {
	a := &e.approvals
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.m[id]
	if p == nil || p.Tenant != tenant || p.Status != ApprovalPending {
		return false
	}
	p.Status, p.By, p.why = ApprovalRejected, by, reason
	if approved {
		p.Status = ApprovalApproved
	}
	close(p.done)
	return true
}

// ApprovalStatus returns an approval of the tenant.
func (e *Engine) ApprovalStatus(tenant, id string) (Approval, bool) {
	a := &e.approvals
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.m[id]
	if p == nil || p.Tenant != tenant {
		return Approval{}, false
	}
	return p.Approval, true
}

// PendingApprovals lists the tenant's approvals waiting for a decision.
func (e *Engine) PendingApprovals(tenant string) []Approval {
	a := &e.approvals
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Approval
	for _, p := range a.m {
		if p.Tenant == tenant && p.Status == ApprovalPending {
			out = append(out, p.Approval)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// consumeApproved reports whether the agent sent back an approved approval
// of the tenant for this check (then used up).
func (e *Engine) consumeApproved(ctx context.Context, tenant, check string) (string, bool) {
	id := gateway.ApprovalRef(ctx)
	if id == "" {
		return "", false
	}
	a := &e.approvals
	a.mu.Lock()
	defer a.mu.Unlock()
	p := a.m[id]
	if p == nil || p.Tenant != tenant || p.Check != check || p.Status != ApprovalApproved || p.consumed {
		return "", false
	}
	p.consumed = true
	return id, true
}

// hold makes the gateway.Hold of a decision that requires approval.
func (e *Engine) hold(tenant string, d *decision) *gateway.Hold {
	p := e.approvals.add(tenant, d)
	d.approvalID = p.ID
	wait := time.Duration(d.c.cfg.ApprovalWaitMS) * time.Millisecond
	return &gateway.Hold{ID: p.ID, Wait: func(ctx context.Context) *gateway.Error {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-p.done:
		case <-t.C:
		case <-ctx.Done():
		}
		e.approvals.mu.Lock()
		status, by := p.Status, p.By
		if status == ApprovalApproved {
			p.consumed = true
		}
		e.approvals.mu.Unlock()
		switch status {
		case ApprovalApproved:
			return nil
		case ApprovalRejected:
			return &gateway.Error{Status: 403, Type: gateway.TypePermission, Code: "approval_rejected",
				Message: fmt.Sprintf("Approval %s was rejected by %s (guardrail %q).", p.ID, by, p.Check)}
		}
		return &gateway.Error{Status: 403, Type: gateway.TypePermission, Code: "approval_pending",
			Message: fmt.Sprintf("The call needs a person's approval (guardrail %q: %s). Approval %s is pending: poll GET /v1/approvals/%s and, once approved, retry with the header X-Aigw-Approval: %s.", p.Check, p.Reason, p.ID, p.ID, p.ID)}
	}}
}
