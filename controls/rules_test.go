package controls_test

import (
	"slices"
	"testing"

	"aigw/controls"
	"aigw/ledger"
)

// ruleIDs is every Rule* constant, in declaration order.
var ruleIDs = []string{
	controls.RuleIntegrity, controls.RuleActivity, controls.RuleRecordContent, controls.RuleTimestamps,
	controls.RuleRetention, controls.RuleAdminChanges, controls.RuleKeyLifecycle, controls.RuleAccessDenials,
	controls.RuleGuardrails, controls.RuleProviderResilience, controls.RuleApprovals, controls.RuleOversight,
	controls.RuleDisclosure, controls.RuleIncidents, controls.RuleConfigInForce, controls.RuleAttestation,
}

func TestRules(t *testing.T) {
	kinds := map[string]bool{
		ledger.KindRequest: true, ledger.KindRoute: true, ledger.KindAttempt: true, ledger.KindGuardrail: true,
		ledger.KindResponse: true, ledger.KindError: true, ledger.KindToolCall: true, ledger.KindDelegation: true,
		ledger.KindApproval: true, ledger.KindAdmin: true, ledger.KindKey: true, ledger.KindErasure: true,
		controls.KindAttestation: true, controls.KindOversight: true, controls.KindDisclosure: true, controls.KindIncident: true,
	}
	rules := controls.Rules()
	var got []string
	for _, r := range rules {
		got = append(got, r.ID)
		if r.Title == "" || len(r.Description) < 40 || len(r.Kinds) == 0 {
			t.Errorf("rule %q: title %q, description %q, kinds %q", r.ID, r.Title, r.Description, r.Kinds)
		}
		for _, k := range r.Kinds {
			if !kinds[k] {
				t.Errorf("rule %q reads unknown kind %q", r.ID, k)
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(r.Kinds)))) != len(r.Kinds) {
			t.Errorf("rule %q lists a kind twice: %q", r.ID, r.Kinds)
		}
		byID, ok := controls.RuleByID(r.ID)
		if !ok || byID.ID != r.ID || byID.Title != r.Title || !slices.Equal(byID.Kinds, r.Kinds) {
			t.Errorf("RuleByID(%q) = %+v, %v; want %+v", r.ID, byID, ok, r)
		}
	}
	if !slices.Equal(got, ruleIDs) {
		t.Fatalf("Rules() ids = %q; want one per Rule* constant %q", got, ruleIDs)
	}
	for _, test := range []struct {
		rule string
		kind string
	}{
		{controls.RuleAdminChanges, ledger.KindAdmin},
		{controls.RuleKeyLifecycle, ledger.KindKey},
		{controls.RuleGuardrails, ledger.KindGuardrail},
		{controls.RuleApprovals, ledger.KindApproval},
		{controls.RuleOversight, controls.KindOversight},
		{controls.RuleDisclosure, controls.KindDisclosure},
		{controls.RuleIncidents, controls.KindIncident},
		{controls.RuleAttestation, controls.KindAttestation},
		{controls.RuleRetention, ledger.KindErasure},
		{controls.RuleActivity, ledger.KindRequest},
		{controls.RuleAccessDenials, ledger.KindError},
		{controls.RuleProviderResilience, ledger.KindAttempt},
	} {
		r, _ := controls.RuleByID(test.rule)
		if !slices.Contains(r.Kinds, test.kind) {
			t.Errorf("rule %q kinds %q lack %q", test.rule, r.Kinds, test.kind)
		}
	}
	if _, ok := controls.RuleByID("no-such-rule"); ok {
		t.Error(`RuleByID("no-such-rule") found a rule`)
	}

	rules[0].Kinds[0] = "changed"
	rules[0].Title = "changed"
	if r := controls.Rules()[0]; r.Kinds[0] == "changed" || r.Title == "changed" {
		t.Error("Rules() returns rules shared with the package")
	}
	r, _ := controls.RuleByID(controls.RuleIntegrity)
	r.Kinds[0] = "changed"
	if r, _ := controls.RuleByID(controls.RuleIntegrity); r.Kinds[0] == "changed" {
		t.Error("RuleByID returns kinds shared with the package")
	}
}
