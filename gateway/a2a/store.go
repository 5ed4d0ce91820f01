package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"time"
)

// Reasons: the data.reason of the proxy's errors and the "reason"
// attribute of its refusal events.
const (
	ReasonUnauthenticated      = "unauthenticated"
	ReasonAgentNotFound        = "agent_not_found"
	ReasonNotAllowed           = "not_allowed"
	ReasonTokenRequired        = "token_required"
	ReasonTokenMalformed       = "token_malformed"
	ReasonTokenSignature       = "token_signature"
	ReasonTokenExpired         = "token_expired"
	ReasonTokenIssuer          = "token_issuer"
	ReasonTokenTenant          = "token_tenant"
	ReasonTokenCallee          = "token_callee"
	ReasonParentEnded          = "parent_ended"
	ReasonWidened              = "widened"
	ReasonBudgetExhausted      = "budget_exhausted"
	ReasonLoop                 = "loop"
	ReasonDepth                = "depth"
	ReasonTooLarge             = "too_large"
	ReasonParseError           = "parse_error"
	ReasonInvalidRequest       = "invalid_request"
	ReasonMethodNotFound       = "method_not_found"
	ReasonInvalidParams        = "invalid_params"
	ReasonUnsupported          = "unsupported"
	ReasonTaskNotFound         = "task_not_found"
	ReasonTaskNotCancelable    = "task_not_cancelable"
	ReasonInProgress           = "in_progress"
	ReasonLedgerUnavailable    = "ledger_unavailable"
	ReasonUpstreamUnavailable  = "upstream_unavailable"
	ReasonInvalidAgentResponse = "invalid_agent_response"
	ReasonUpstreamError        = "upstream_error"
	ReasonInternal             = "internal"
)

// Hop is one delegation, caller → callee, and the callee's task: the
// token it was given and what the gateway knows of the task.
type Hop struct {
	// Claims are the hop's token's claims (ID, tenant, parent, chain,
	// scopes, budget, expiry); Token is the token.
	Claims Claims `json:"claims"`
	Token  string `json:"token"`
	// CallerKey is the gateway key id of the caller.
	CallerKey string `json:"caller_key,omitempty"`
	// Remaining is the budget not yet given to the hop's own delegations.
	Remaining Budget `json:"remaining"`
	// UpstreamTaskID and ContextID are the callee's names for the task
	// ("" until it answers with one).
	UpstreamTaskID string `json:"upstream_task_id,omitempty"`
	ContextID      string `json:"context_id,omitempty"`
	// State is the task's last known state ("" before the callee answers).
	State TaskState `json:"state,omitempty"`
	// Result is the last answer for the task as the caller got it (a
	// Task, or the Message that answered a message/send): what a retry
	// of the same message gets.
	Result json.RawMessage `json:"result,omitempty"`
	// Push is the caller's webhook for the task's changes (nil: none).
	Push *PushNotificationConfig `json:"push,omitempty"`
	// CallbackToken authenticates the callee's push notifications to the
	// gateway.
	CallbackToken string `json:"callback_token,omitempty"`
	// Created and Updated are when the hop was stored and last changed.
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// ID is the hop's id (also the task id the caller knows).
func (h *Hop) ID() string { return h.Claims.HopID }

// Tenant is the hop's tenant.
func (h *Hop) Tenant() string { return h.Claims.Tenant }

// Update is a change to a hop, applied atomically by [TaskStore.Update].
type Update struct {
	// State, when set, moves the task to it; a transition that
	// CanTransition refuses fails with ErrInvalidTransition and changes
	// nothing.
	State TaskState
	// UpstreamTaskID, when set, binds the callee's task id; a different
	// id already bound fails with ErrConflict.
	UpstreamTaskID string
	// ContextID, when set, replaces the context id.
	ContextID string
	// Result, when set, replaces the last answer.
	Result json.RawMessage
	// Push, when set, replaces the webhook; ClearPush removes it.
	Push      *PushNotificationConfig
	ClearPush bool
	// Token, when set, is stored as the hop's token (it is signed while
	// the hop's grant is recorded, after Begin).
	Token string
	// Settle, when set, marks the idempotency key Settle, claimed for
	// this hop, as answered (see Claim).
	Settle string
}

// Claim is the state of an idempotency key.
type Claim struct {
	// HopID is the hop the key's first request created or continued.
	HopID string
	// Fresh is true when this call claimed the key.
	Fresh bool
	// Done is true once that request was answered.
	Done bool
}

// Errors of a TaskStore, matched with errors.Is.
var (
	ErrNotFound          = errors.New("a2a: hop not found")
	ErrExists            = errors.New("a2a: hop already exists")
	ErrInvalidTransition = errors.New("a2a: invalid task state transition")
	ErrConflict          = errors.New("a2a: hop is bound to another upstream task")
	ErrBudgetExhausted   = errors.New("a2a: budget exhausted")
	ErrHopEnded          = errors.New("a2a: the hop's task has ended")
)

// TaskStore keeps hops and idempotency keys. Implementations must be safe
// for concurrent use, and every method must be atomic and linearizable
// across every process sharing the store (gateway replicas); what a
// method wrote is durable once it returns. Tenants are isolated: a hop is
// found only with its own tenant. Hops and keys may expire after a
// retention period set on the store.
type TaskStore interface {
	// Begin stores a new hop (its id is h.Claims.HopID) and claims the
	// idempotency key for it, as one atomic step. If key is already held,
	// nothing is stored and the holder is returned (Fresh false).
	// Otherwise a hop with a parent takes its budget (h.Claims.Budget,
	// each field an amount or Unlimited) from the parent's remaining
	// budget and is added to the parent's children: ErrBudgetExhausted
	// if a limited field of the parent has less than asked, or is asked
	// for Unlimited (an unlimited field gives anything); ErrNotFound if
	// the parent is gone; ErrExists if the id is taken. On error nothing
	// is stored.
	Begin(ctx context.Context, h *Hop, key string) (Claim, error)
	// Get returns a hop; ErrNotFound if there is none.
	Get(ctx context.Context, tenant, id string) (*Hop, error)
	// Update applies u to a hop and returns it as updated, with the state
	// it had before; ErrNotFound, ErrInvalidTransition or ErrConflict
	// (then nothing changed).
	Update(ctx context.Context, tenant, id string, u Update) (h *Hop, prev TaskState, err error)
	// Children returns the ids of the hops begun with id as parent, in
	// order.
	Children(ctx context.Context, tenant, id string) ([]string, error)
	// Refund gives b back to the hop's remaining budget (unlimited fields
	// of b or of the hop are left alone).
	Refund(ctx context.Context, tenant, id string, b Budget) error
	// Spend takes b (each field an amount ≥ 0) from the hop's remaining
	// budget, as one atomic step, for what the hop's agent spends itself
	// (its model calls), and returns what remains. Unless force is set it
	// is all or nothing: ErrBudgetExhausted if a limited field has less
	// than asked, ErrHopEnded if the hop's task is in a terminal state.
	// With force (a charge for what was already used) it takes what
	// there is, down to zero, whatever the state.
	Spend(ctx context.Context, tenant, id string, b Budget, force bool) (Budget, error)
	// Claim claims an idempotency key for an existing hop, or returns who
	// holds it (a follow-up message).
	Claim(ctx context.Context, tenant, key, hopID string) (Claim, error)
	// Lookup returns who holds an idempotency key (HopID "" if no one),
	// claiming nothing.
	Lookup(ctx context.Context, tenant, key string) (Claim, error)
	// Release frees a key claimed by hopID and not yet settled (its
	// request failed and may be retried); nothing otherwise.
	Release(ctx context.Context, tenant, key, hopID string) error
}

// DefaultRetention is how long stores keep hops and idempotency keys
// after their last change, unless told otherwise.
const DefaultRetention = 7 * 24 * time.Hour
