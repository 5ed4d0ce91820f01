package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"aigw/gateway"
)

// TestRules: an agent reads which checks apply to it, never their lists.
func TestRules(t *testing.T) {
	e, err := New(Config{Policies: []PolicyConfig{
		{Name: "acme-strict", Tenants: []string{"acme"}, Checks: []CheckConfig{{ID: "words", Type: "content", Stages: []string{"input"}, Action: "block", Phrases: []string{"project-nightingale"}}}},
		{Name: "globex", Tenants: []string{"globex"}, Checks: []CheckConfig{{ID: "pii", Type: "pii", Stages: []string{"input"}, Action: "redact"}}},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := e.Rules(context.Background(), gateway.Caller{Tenant: "acme", KeyID: "key_1"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(rs)
	if len(rs) != 1 || rs[0].Policy != "acme-strict" || rs[0].Checks[0].Action != "block" || rs[0].Version == "" {
		t.Fatalf("rules %s", b)
	}
	if strings.Contains(string(b), "nightingale") {
		t.Fatalf("the rules show a check's word list: %s", b)
	}
}
