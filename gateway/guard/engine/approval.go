package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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

// approvalTimeout bounds one operation of the approval store made on
// behalf of a call or the admin API (not a wait for a decision).
const approvalTimeout = 5 * time.Second

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

// Errors of an ApprovalStore.
var (
	// ErrApprovalNotFound: no such approval of the tenant (never one, or
	// another tenant's, or expired), or not one of the check consumed.
	ErrApprovalNotFound = errors.New("guardrails: approval not found")
	// ErrApprovalDecided: the approval was already decided (the first
	// decision stands).
	ErrApprovalDecided = errors.New("guardrails: approval already decided")
	// ErrApprovalNotApproved: the approval is pending or rejected, so it
	// cannot be used.
	ErrApprovalNotApproved = errors.New("guardrails: approval not approved")
	// ErrApprovalUsed: the approval was approved and already used by a
	// call.
	ErrApprovalUsed = errors.New("guardrails: approval already used")
)

// ApprovalStore keeps the approvals of calls held by require_approval
// checks. Approvals are the tenant's: every method names the tenant, and an
// id of another tenant's approval is ErrApprovalNotFound. An approval is
// kept for the store's TTL from its creation (decided or not), then is
// ErrApprovalNotFound.
//
// Decide and Consume MUST be atomic across every user of the store
// (replicas sharing it included): of concurrent decisions the first wins
// and the others get ErrApprovalDecided; an approval is consumed at most
// once. A decision MUST reach Wait on every replica: it may be late (a lost
// notification), never lost. All methods are safe for concurrent use.
type ApprovalStore interface {
	// Add stores a new approval, pending (a.Status is ignored); a.ID is
	// unique ("apr_" and 16 lowercase hex digits).
	Add(ctx context.Context, a Approval) error
	// Get returns the tenant's approval id.
	Get(ctx context.Context, tenant, id string) (Approval, error)
	// Decide records a person's decision on the tenant's pending approval
	// id, once, and returns the approval decided. It returns
	// ErrApprovalDecided (with the approval as decided before) when it
	// was already decided.
	Decide(ctx context.Context, tenant, id string, approved bool, by, reason string) (Approval, error)
	// Consume uses up the tenant's approval id, of the check, if it is
	// approved: once. Otherwise it returns the approval as it stands with
	// ErrApprovalNotApproved (pending or rejected) or ErrApprovalUsed;
	// ErrApprovalNotFound also when the approval is of another check.
	Consume(ctx context.Context, tenant, id, check string) (Approval, error)
	// Pending lists the tenant's approvals waiting for a decision, oldest
	// first.
	Pending(ctx context.Context, tenant string) ([]Approval, error)
	// Wait waits until the tenant's approval id is decided and returns it;
	// when ctx ends first, it returns the approval as last read with
	// ctx.Err().
	Wait(ctx context.Context, tenant, id string) (Approval, error)
}

// newApprovalID returns a new approval id: "apr_" and 16 hex digits.
func newApprovalID() string {
	var b [8]byte
	rand.Read(b[:])
	return "apr_" + hex.EncodeToString(b[:])
}

// validApprovalID says whether id has the shape of newApprovalID's.
func validApprovalID(id string) bool {
	rest, ok := strings.CutPrefix(id, "apr_")
	if !ok || len(rest) != 16 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Approvals returns the engine's approval store.
func (e *Engine) Approvals() ApprovalStore {
	e.approvalsOnce.Do(func() {
		if e.approvals == nil {
			e.approvals = NewMemoryApprovals(0)
		}
	})
	return e.approvals
}

// Decide records a person's decision on a pending approval of the tenant.
// It reports whether this call decided it: false with a nil error when
// there is no such pending approval or it was decided before; an error
// when the store failed (the decision did not reach the held call).
func (e *Engine) Decide(ctx context.Context, tenant, id string, approved bool, by, reason string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, approvalTimeout)
	defer cancel()
	_, err := e.Approvals().Decide(ctx, tenant, id, approved, by, reason)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, ErrApprovalNotFound), errors.Is(err, ErrApprovalDecided):
		return false, nil
	}
	return false, fmt.Errorf("guardrail approval %s: the decision could not be stored: %w", id, err)
}

// ApprovalStatus returns an approval of the tenant (false: none, or the
// store failed, which is logged).
func (e *Engine) ApprovalStatus(tenant, id string) (Approval, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), approvalTimeout)
	defer cancel()
	a, err := e.Approvals().Get(ctx, tenant, id)
	if err != nil && !errors.Is(err, ErrApprovalNotFound) {
		e.log.Error("guardrail approval: cannot read the approval", "tenant", tenant, "approval_id", id, "err", err)
	}
	return a, err == nil
}

// PendingApprovals lists the tenant's approvals waiting for a decision
// (nil: none, or the store failed, which is logged).
func (e *Engine) PendingApprovals(tenant string) []Approval {
	ctx, cancel := context.WithTimeout(context.Background(), approvalTimeout)
	defer cancel()
	as, err := e.Approvals().Pending(ctx, tenant)
	if err != nil {
		e.log.Error("guardrail approval: cannot list pending approvals", "tenant", tenant, "err", err)
		return nil
	}
	return as
}

// consumeApproved reports whether the agent sent back an approved approval
// of the tenant for this check (then used up).
func (e *Engine) consumeApproved(ctx context.Context, tenant, check string) (string, bool) {
	id := gateway.ApprovalRef(ctx)
	if id == "" {
		return "", false
	}
	ctx, cancel := context.WithTimeout(ctx, approvalTimeout)
	defer cancel()
	_, err := e.Approvals().Consume(ctx, tenant, id, check)
	if err != nil {
		if !errors.Is(err, ErrApprovalNotFound) && !errors.Is(err, ErrApprovalNotApproved) && !errors.Is(err, ErrApprovalUsed) {
			e.log.Warn("guardrail approval: cannot use the approval sent back", "tenant", tenant, "approval_id", id, "err", err)
		}
		return "", false
	}
	return id, true
}

// hold makes the gateway.Hold of a decision that requires approval: the
// approval is stored, pending.
func (e *Engine) hold(ctx context.Context, tenant string, d *decision) (*gateway.Hold, error) {
	a := Approval{ID: newApprovalID(), Tenant: tenant, Check: d.c.cfg.ID, Stage: d.stage,
		Reason: d.reason, Status: ApprovalPending, Created: time.Now().UTC()}
	actx, cancel := context.WithTimeout(ctx, approvalTimeout)
	defer cancel()
	if err := e.Approvals().Add(actx, a); err != nil {
		return nil, err
	}
	d.approvalID = a.ID
	wait := time.Duration(d.c.cfg.ApprovalWaitMS) * time.Millisecond
	return &gateway.Hold{ID: a.ID, Wait: func(ctx context.Context) *gateway.Error { return e.await(ctx, a, wait) }}, nil
}

// await waits up to wait for a person's decision on a held call's approval:
// nil when approved (the approval is then used up by the call), else the
// error the agent gets.
func (e *Engine) await(ctx context.Context, a Approval, wait time.Duration) *gateway.Error {
	store := e.Approvals()
	wctx, cancel := context.WithTimeout(ctx, wait)
	_, err := store.Wait(wctx, a.Tenant, a.ID)
	cancel()
	if err != nil && wctx.Err() == nil {
		e.log.Warn("guardrail approval: waiting for the decision failed", "tenant", a.Tenant, "approval_id", a.ID, "err", err)
	}
	// Whatever ended the wait, the store has the last word: a decision
	// that came meanwhile counts.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), approvalTimeout)
	defer cancel()
	got, err := store.Consume(cctx, a.Tenant, a.ID, a.Check)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrApprovalNotApproved) && got.Status == ApprovalRejected:
		return &gateway.Error{Status: 403, Type: gateway.TypePermission, Code: "approval_rejected",
			Message: fmt.Sprintf("Approval %s was rejected by %s (guardrail %q).", a.ID, got.By, a.Check)}
	case errors.Is(err, ErrApprovalNotApproved):
		return &gateway.Error{Status: 403, Type: gateway.TypePermission, Code: "approval_pending",
			Message: fmt.Sprintf("The call needs a person's approval (guardrail %q: %s). Approval %s is pending: poll GET /v1/approvals/%s and, once approved, retry with the header X-Aigw-Approval: %s.", a.Check, a.Reason, a.ID, a.ID, a.ID)}
	case errors.Is(err, ErrApprovalUsed):
		return &gateway.Error{Status: 403, Type: gateway.TypePermission, Code: "approval_used",
			Message: fmt.Sprintf("Approval %s was already used by another call (guardrail %q).", a.ID, a.Check)}
	}
	e.log.Error("guardrail approval: cannot read the decision", "tenant", a.Tenant, "approval_id", a.ID, "err", err)
	return approvalUnavailable()
}

// approvalUnavailable is what an agent is told when the approval store
// fails: the call is refused, not let through.
func approvalUnavailable() *gateway.Error {
	return &gateway.Error{Status: 503, Type: gateway.TypeUnavailable, Code: "approval_unavailable", RetryAfter: time.Second,
		Message: "The call needs a person's approval, and the gateway cannot keep approvals now; retry later."}
}
