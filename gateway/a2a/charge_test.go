package a2a

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"aigw/gateway"
	"aigw/gateway/spend"
)

// TestDelegatedSpend: the model calls an agent makes under its delegation
// token are charged to the delegation's budget, the one its own
// delegations draw on, in the memory and the Redis store alike.
func TestDelegatedSpend(t *testing.T) {
	for _, st := range []struct {
		name string
		new  func() TaskStore
	}{
		{"memory", func() TaskStore { return nil }},
		{"redis", func() TaskStore { rc := newRedisClient(t); return NewRedisStore(rc, testPrefix(t, rc), 0) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			ch := newChain(t, st.new())
			_, tb, _, tokB, tokC := ch.delegate(t)
			// b has 1e9 - 4e8 nano-USD and 1000 - 400 tokens left (c took the rest).
			s := &DelegatedSpender{}
			b := gateway.Caller{Tenant: "acme", KeyID: "key_b", AgentID: "b"}
			ctxB := gateway.WithDelegation(bg, tokB)
			remaining := func() Budget {
				t.Helper()
				h, err := ch.g.p.store.Get(bg, "acme", tb.HopID)
				if err != nil {
					t.Fatal(err)
				}
				return h.Remaining
			}
			req := func(prompt, out int, usd int64) gateway.SpendRequest {
				return gateway.SpendRequest{Model: "gpt-4o", PromptTokens: prompt, OutputTokens: out, Cost: gateway.Cost{Amount: gateway.NanoUSD(usd)}}
			}
			action := func(ev []byte) map[string]any {
				var a map[string]any
				if err := json.Unmarshal(ev, &a); err != nil {
					t.Fatal(err)
				}
				return a
			}

			if _, _, gerr := s.Reserve(ctxB, b, req(10, 10, 1)); gerr == nil || gerr.Code != CodeDelegationInvalid {
				t.Fatalf("unbound spender: %v; want %s", gerr, CodeDelegationInvalid)
			}
			s.Bind(ch.g.p)

			// Without a token: nothing applies (no Next).
			if res, evs, gerr := s.Reserve(bg, b, req(10, 10, 1)); res != nil || evs != nil || gerr != nil {
				t.Fatalf("no token: %v %v %v", res, evs, gerr)
			}

			// A call within the budget: its estimate is taken, the rest of
			// it given back when it settles.
			res, evs, gerr := s.Reserve(ctxB, b, req(100, 200, 200_000_000))
			if gerr != nil || res == nil || len(evs) != 1 || action(evs[0])["action"] != "delegation.reserve" {
				t.Fatalf("reserve: %v %v %s", res, gerr, evs)
			}
			if got := remaining(); got != (Budget{NanoUSD: 400_000_000, Tokens: 300}) {
				t.Errorf("after the reservation: %+v", got)
			}
			evs = res.Settle(bg, &gateway.Usage{PromptTokens: 100, CompletionTokens: 150, TotalTokens: 250}, gateway.Cost{Amount: 150_000_000, PriceVersion: "v1"})
			if len(evs) != 1 {
				t.Fatalf("settle events: %s", evs)
			}
			if a := action(evs[0]); a["action"] != "delegation.settle" || a["hop_id"] != tb.HopID || a["root_task_id"] != tb.RootTask ||
				a["charged"].(map[string]any)["tokens"] != 250.0 || a["released"].(map[string]any)["nano_usd"] != 50_000_000.0 {
				t.Errorf("settle event: %v", a)
			}
			if got := remaining(); got != (Budget{NanoUSD: 450_000_000, Tokens: 350}) {
				t.Errorf("after the settlement: %+v; want the estimate minus what was used", got)
			}

			// More than what remains: refused, nothing taken, and recorded.
			_, evs, gerr = s.Reserve(ctxB, b, req(200, 200, 1))
			if gerr == nil || gerr.Status != 429 || gerr.Code != CodeDelegationExhausted || len(evs) != 1 || action(evs[0])["action"] != "delegation.refuse" {
				t.Fatalf("over the budget: %v %s", gerr, evs)
			}
			if got := remaining(); got != (Budget{NanoUSD: 450_000_000, Tokens: 350}) {
				t.Errorf("after a refusal: %+v", got)
			}

			// A provider that reports more than the estimate: charged, down to zero.
			res, _, gerr = s.Reserve(ctxB, b, req(50, 50, 1_000))
			if gerr != nil {
				t.Fatal(gerr)
			}
			evs = res.Settle(bg, &gateway.Usage{TotalTokens: 900}, gateway.Cost{Amount: 2_000})
			if a := action(evs[0]); a["over_estimate"] == nil {
				t.Errorf("settle over the estimate: %v", a)
			}
			if got := remaining(); got != (Budget{NanoUSD: 450_000_000 - 2_000, Tokens: 0}) {
				t.Errorf("after a call over its estimate: %+v; want its tokens charged down to 0", got)
			}
			if _, _, gerr := s.Reserve(ctxB, b, req(1, 0, 0)); gerr == nil || gerr.Code != CodeDelegationExhausted {
				t.Errorf("with no tokens left: %v", gerr)
			}

			// A call that used nothing gives everything back.
			if err := ch.g.p.store.Refund(bg, "acme", tb.HopID, Budget{Tokens: 100}); err != nil {
				t.Fatal(err)
			}
			res, _, gerr = s.Reserve(ctxB, b, req(40, 40, 5))
			if gerr != nil {
				t.Fatal(gerr)
			}
			res.Settle(bg, nil, gateway.Cost{})
			if got := remaining(); got.Tokens != 100 {
				t.Errorf("after a released reservation: %+v", got)
			}

			// The tenant's own budgets refuse the call: the delegation's
			// estimate goes back, and the ledger says so.
			tenantBudget := []spend.Budget{{ID: "tiny", Tenant: "acme", Window: spend.Window{Kind: spend.WindowDay}, LimitTokens: 10}}
			if err := tenantBudget[0].Validate(); err != nil {
				t.Fatal(err)
			}
			next, err := spend.New(spend.Config{Counter: spend.NewMemory(),
				Budgets: func(context.Context, string) ([]spend.Budget, error) { return tenantBudget, nil }})
			if err != nil {
				t.Fatal(err)
			}
			withNext := &DelegatedSpender{Next: next}
			withNext.Bind(ch.g.p)
			before := remaining()
			res, evs, gerr = withNext.Reserve(ctxB, b, req(20, 20, 5))
			if gerr == nil || gerr.Code != gateway.CodeBudgetExceeded || res != nil {
				t.Fatalf("over the tenant's budget: %v %v", res, gerr)
			}
			if len(evs) < 3 || action(evs[0])["action"] != "delegation.reserve" || action(evs[len(evs)-1])["action"] != "delegation.settle" ||
				action(evs[len(evs)-1])["released"].(map[string]any)["tokens"] != 40.0 {
				t.Errorf("events of a call the tenant's budget refused: %s", evs)
			}
			if got := remaining(); got != before {
				t.Errorf("after the tenant's budget refused: %+v; want %+v", got, before)
			}

			// c's token has no model scope; b's token is not c's; another
			// tenant's key; a forged token.
			ctxC := gateway.WithDelegation(bg, tokC)
			if _, evs, gerr := s.Reserve(ctxC, gateway.Caller{Tenant: "acme", AgentID: "c"}, req(1, 1, 1)); gerr == nil || gerr.Code != CodeDelegationScope || len(evs) != 1 {
				t.Errorf("c calling gpt-4o: %v", gerr)
			}
			if _, _, gerr := s.Reserve(ctxB, gateway.Caller{Tenant: "acme", AgentID: "c"}, req(1, 1, 1)); gerr == nil || gerr.Code != CodeDelegationInvalid {
				t.Errorf("b's token sent by c: %v", gerr)
			}
			if _, evs, gerr := s.Reserve(ctxB, gateway.Caller{Tenant: "zeta", AgentID: "b"}, req(1, 1, 1)); gerr == nil || gerr.Code != CodeDelegationInvalid || evs != nil {
				t.Errorf("b's token with another tenant's key: %v %s", gerr, evs)
			}
			forged := []byte(tokB)
			forged[len(forged)/2] ^= 1
			if _, _, gerr := s.Reserve(gateway.WithDelegation(bg, string(forged)), b, req(1, 1, 1)); gerr == nil || gerr.Code != CodeDelegationInvalid {
				t.Errorf("forged token: %v", gerr)
			}

			// Once b's task has ended, its token allows no more calls.
			if _, _, err := ch.g.p.store.Update(bg, "acme", tb.HopID, Update{State: StateCanceled}); err != nil {
				t.Fatal(err)
			}
			if _, _, gerr := s.Reserve(ctxB, b, req(1, 1, 1)); gerr == nil || gerr.Code != CodeDelegationEnded {
				t.Errorf("after the task was canceled: %v", gerr)
			}
			if _, err := ch.g.p.store.Spend(bg, "acme", tb.HopID, Budget{Tokens: 1}, false); !errors.Is(err, ErrHopEnded) {
				t.Errorf("Spend on a canceled hop: %v", err)
			}
		})
	}
}
