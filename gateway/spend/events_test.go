package spend

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"aigw/gateway"
	"aigw/ledger"
)

// TestEventsCanonical: the budget events are already in the ledger's
// canonical form (so its encoding copies them), and valid JSON for any
// model name an agent may send.
func TestEventsCanonical(t *testing.T) {
	s := newSpender(t, NewMemory(),
		Budget{ID: "tenant", Tenant: "acme", Window: Window{Kind: WindowMonth}, LimitUSD: usd("10")},
		Budget{ID: "agent.x", Tenant: "acme", Scope: Scope{AgentID: "pl\"an\\ner\u2028é"}, Window: Window{Kind: WindowDay}, LimitTokens: 1 << 40},
	)
	caller := gateway.Caller{Tenant: "acme", AgentID: "pl\"an\\ner\u2028é"}
	res, evs, gerr := s.Reserve(context.Background(), caller, gateway.SpendRequest{Model: "m\x00\"odel\xff", PromptTokens: 3, OutputTokens: 4, Cost: gateway.Cost{Amount: 12, PriceVersion: "v"}, TraceID: strings.Repeat("c", 32)})
	if gerr != nil {
		t.Fatal(gerr)
	}
	evs = append(evs, res.Settle(context.Background(), &gateway.Usage{PromptTokens: 3, CompletionTokens: 1}, gateway.Cost{Amount: 7, PriceVersion: "v"})...)
	for _, e := range evs {
		canon, err := ledger.AppendCanonical(nil, e)
		if err != nil {
			t.Fatalf("%v: %s", err, e)
		}
		if !bytes.Equal(canon, e) {
			t.Errorf("not canonical:\n%s\nwant\n%s", e, canon)
		}
	}
}
