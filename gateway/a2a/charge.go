package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"

	"aigw/gateway"
)

// Model-call scopes: a delegation token allows a model (route) when one of
// its scopes covers "model:<route>" ("model:*", "*").
const ScopeModelPrefix = "model:"

// Errors of model calls made under a delegation token (OpenAI-style codes).
const (
	CodeDelegationInvalid   = "invalid_delegation"
	CodeDelegationScope     = "delegation_scope"
	CodeDelegationExhausted = "delegation_budget_exhausted"
	CodeDelegationEnded     = "delegation_ended"
)

// DelegatedSpender charges the model calls an agent makes for a delegated
// task to that delegation's budget: the agent sends its delegation token
// (X-Aigw-Delegation, the token the gateway gave it with the task) with
// its calls to /v1/chat/completions, /v1/messages or /v1/embeddings. Before
// the call, the token is verified (signature, expiry, tenant, the agent
// it is for) and must allow the model (a "model:" scope); the call's
// estimate (cost and tokens) is taken from the hop's remaining budget in
// the task store, all or nothing, atomically across replicas (the same
// budget the hop's own delegations draw on), and refused when it does not
// fit or the task has ended. After it, the difference with what the call
// really used is given back (or, when the provider reported more than
// estimated, taken, down to zero). So a sub-agent can never spend, itself
// and through its delegations, more than its caller gave it.
//
// Calls without a token go to Next alone; with one, to both (the tenant's
// own budgets still apply). The reservation and settlement are `budget`
// events of the call (action delegation.reserve, delegation.settle,
// delegation.refuse, with the hop, its root task and the amounts), so the
// spend of a delegation tree can be recomputed from the ledger.
type DelegatedSpender struct {
	// Next is the tenant's own budgets (nil: none).
	Next gateway.Spender

	proxy atomic.Pointer[Proxy]
}

// Bind makes s charge delegations of p's tokens and store. Until it is
// called, calls with a token are refused (the pipeline is built before
// the proxy).
func (s *DelegatedSpender) Bind(p *Proxy) { s.proxy.Store(p) }

var _ gateway.Spender = (*DelegatedSpender)(nil)

// Reserve implements gateway.Spender.
func (s *DelegatedSpender) Reserve(ctx context.Context, caller gateway.Caller, r gateway.SpendRequest) (gateway.Reservation, [][]byte, *gateway.Error) {
	tok := gateway.Delegation(ctx)
	if tok == "" {
		return s.next(ctx, caller, r)
	}
	p := s.proxy.Load()
	if p == nil {
		return nil, nil, delegationError(403, CodeDelegationInvalid, "Delegation tokens are not accepted: this gateway has no A2A agents.")
	}
	cl, err := p.signer.Verify(tok, p.now())
	if err != nil {
		return nil, nil, delegationError(403, CodeDelegationInvalid, "Invalid X-Aigw-Delegation token: "+err.Error()+".")
	}
	refuse := func(status int, code, reason, msg string) (gateway.Reservation, [][]byte, *gateway.Error) {
		return nil, [][]byte{delegationEvent("delegation.refuse", cl, r.Model, map[string]any{"reason": reason})},
			delegationError(status, code, msg)
	}
	switch {
	case cl.Tenant != caller.Tenant:
		// Another tenant's token: nothing of it is recorded in this log.
		return nil, nil, delegationError(403, CodeDelegationInvalid, "Invalid X-Aigw-Delegation token: it is not of this key's tenant.")
	case caller.AgentID != "" && caller.AgentID != cl.Callee:
		return refuse(403, CodeDelegationInvalid, "agent_mismatch",
			fmt.Sprintf("The X-Aigw-Delegation token is for agent %q, not %q (X-Aigw-Agent).", cl.Callee, caller.AgentID))
	case !allows(cl.Scopes, ScopeModelPrefix+r.Model):
		return refuse(403, CodeDelegationScope, "scope",
			fmt.Sprintf("The delegation does not allow model %q (its scopes have no %q).", r.Model, ScopeModelPrefix+r.Model))
	}
	ask := Budget{NanoUSD: int64(r.Cost.Amount), Tokens: int64(r.PromptTokens) + int64(r.OutputTokens)}
	rem, err := p.store.Spend(ctx, cl.Tenant, cl.HopID, ask, false)
	switch {
	case errors.Is(err, ErrBudgetExhausted):
		return refuse(429, CodeDelegationExhausted, "budget_exhausted",
			fmt.Sprintf("The delegation's remaining budget (%d nano-USD, %d tokens; -1: unlimited) does not cover this call's estimate (%d nano-USD, %d tokens).",
				rem.NanoUSD, rem.Tokens, ask.NanoUSD, ask.Tokens))
	case errors.Is(err, ErrHopEnded), errors.Is(err, ErrNotFound):
		return refuse(403, CodeDelegationEnded, "ended", "The delegated task has ended (or is unknown): its token allows no more calls.")
	case err != nil:
		p.log.Error("a2a: delegation budget", "hop", cl.HopID, "err", err)
		return nil, nil, &gateway.Error{Status: 503, Type: gateway.TypeServer, Code: "delegation_unavailable",
			Message: "The delegation's budget cannot be checked now; retry later."}
	}
	res := &delegatedReservation{p: p, cl: cl, model: r.Model, ask: ask}
	evs := [][]byte{delegationEvent("delegation.reserve", cl, r.Model, map[string]any{"estimate": ask.attrs(), "remaining": rem.attrs()})}
	inner, more, gerr := s.next(ctx, caller, r)
	evs = append(evs, more...)
	if gerr != nil {
		// The tenant's budgets refused it: the delegation's estimate goes
		// back, recorded as a settlement of nothing (so every reserve
		// event has its settle event).
		return nil, append(evs, res.Settle(ctx, nil, gateway.Cost{})...), gerr
	}
	res.inner = inner
	return res, evs, nil
}

func (s *DelegatedSpender) next(ctx context.Context, caller gateway.Caller, r gateway.SpendRequest) (gateway.Reservation, [][]byte, *gateway.Error) {
	if s.Next == nil {
		return nil, nil, nil
	}
	return s.Next.Reserve(ctx, caller, r)
}

// delegatedReservation is a call's estimate taken from a hop's budget
// (and its reservation on the tenant's budgets, if any).
type delegatedReservation struct {
	p     *Proxy
	cl    *Claims
	model string
	ask   Budget
	inner gateway.Reservation
}

// Settle implements gateway.Reservation: the hop is charged what the call
// used (u nil: nothing).
func (r *delegatedReservation) Settle(ctx context.Context, u *gateway.Usage, c gateway.Cost) [][]byte {
	ctx = context.WithoutCancel(ctx)
	var evs [][]byte
	if r.inner != nil {
		evs = r.inner.Settle(ctx, u, c)
	}
	used := Budget{}
	if u != nil {
		used = Budget{NanoUSD: int64(c.Amount), Tokens: int64(u.TotalTokens)}
		if used.Tokens == 0 {
			used.Tokens = int64(u.PromptTokens) + int64(u.CompletionTokens)
		}
	}
	back := Budget{NanoUSD: max(r.ask.NanoUSD-used.NanoUSD, 0), Tokens: max(r.ask.Tokens-used.Tokens, 0)}
	over := Budget{NanoUSD: max(used.NanoUSD-r.ask.NanoUSD, 0), Tokens: max(used.Tokens-r.ask.Tokens, 0)}
	attrs := map[string]any{"estimate": r.ask.attrs(), "charged": used.attrs(), "released": back.attrs()}
	if c.PriceVersion != "" {
		attrs["price_version"] = c.PriceVersion
	}
	var err error
	if back != (Budget{}) {
		err = r.p.store.Refund(ctx, r.cl.Tenant, r.cl.HopID, back)
	}
	if over != (Budget{}) && err == nil {
		// The provider reported more than the estimate: charged anyway,
		// down to zero (the call has happened).
		attrs["over_estimate"] = over.attrs()
		var rem Budget
		rem, err = r.p.store.Spend(ctx, r.cl.Tenant, r.cl.HopID, over, true)
		if err == nil {
			attrs["remaining"] = rem.attrs()
		}
	}
	if err != nil {
		r.p.log.Error("a2a: delegation settlement", "hop", r.cl.HopID, "err", err)
		attrs["error"] = truncate(err.Error(), 200)
	}
	return append(evs, delegationEvent("delegation.settle", r.cl, r.model, attrs))
}

// delegationEvent is the attrs of a `budget` event of a model call made
// under a delegation.
func delegationEvent(action string, cl *Claims, model string, extra map[string]any) []byte {
	a := map[string]any{"action": action, "scope": "delegation", "hop_id": cl.HopID, "root_task_id": cl.RootTask,
		"agent": cl.Callee, "depth": cl.Depth, "model": model}
	for k, v := range extra {
		a[k] = v
	}
	b, err := json.Marshal(a)
	if err != nil { // strings, numbers and maps of them
		panic("a2a: delegation event: " + err.Error())
	}
	return b
}

func delegationError(status int, code, msg string) *gateway.Error {
	typ := gateway.TypePermission
	if status == 429 {
		typ = gateway.TypeRateLimit
	}
	return &gateway.Error{Status: status, Type: typ, Code: code, Message: msg}
}

// allows reports whether scopes cover want.
func allows(scopes []string, want string) bool {
	_, ok := ScopesWithin([]string{want}, scopes)
	return ok
}
