package controls_test

import (
	"testing"

	"aigw/controls"
)

func TestEvaluate(t *testing.T) {
	const (
		a   = controls.RuleActivity
		i   = controls.RuleIntegrity
		sat = controls.Satisfied
		not = controls.NotSatisfied
	)
	automated := controls.Control{ID: "C", Evidence: controls.Automated, Rules: []string{a, i}}
	hybrid := controls.Control{ID: "C", Evidence: controls.Hybrid, Rules: []string{a}, Reason: "reviews happen weekly"}
	attest := controls.Control{ID: "C", Evidence: controls.Attestation, Reason: "staff are trained"}
	attestWithRules := attest
	attestWithRules.Rules = []string{a}
	for _, test := range []struct {
		name       string
		c          controls.Control
		rules      map[string]string
		attested   bool
		wantStatus string
		wantReason string
	}{
		{"InapplicableRetired", controls.Control{Evidence: controls.Inapplicable, Reason: "retired from AIUC-1", Retired: true}, nil, false,
			controls.NotApplicable, "retired from AIUC-1"},
		{"InapplicableAttested", controls.Control{Evidence: controls.Inapplicable, Reason: "no such duty"}, map[string]string{a: sat}, true,
			controls.NotApplicable, "no such duty"},

		{"AutomatedAllSatisfied", automated, map[string]string{a: sat, i: sat}, false,
			controls.Satisfied, "rules satisfied: activity-recorded, ledger-integrity"},
		{"AutomatedOneNotSatisfied", automated, map[string]string{a: sat, i: not}, true,
			controls.NotSatisfied, "rule ledger-integrity is not satisfied"},
		{"AutomatedOneMissing", automated, map[string]string{a: sat}, false,
			controls.NotSatisfied, "rule ledger-integrity was not evaluated"},
		{"AutomatedBothFailInRuleOrder", automated, map[string]string{i: not}, false,
			controls.NotSatisfied, "rule activity-recorded was not evaluated; rule ledger-integrity is not satisfied"},
		{"AutomatedNilMap", automated, nil, true,
			controls.NotSatisfied, "rule activity-recorded was not evaluated; rule ledger-integrity was not evaluated"},
		{"AutomatedUnknownStatus", automated, map[string]string{a: "maybe", i: sat}, false,
			controls.NotSatisfied, `rule activity-recorded has unknown status "maybe"`},
		{"AutomatedExtraRulesIgnored", automated, map[string]string{a: sat, i: sat, controls.RuleIncidents: not}, false,
			controls.Satisfied, "rules satisfied: activity-recorded, ledger-integrity"},
		{"AutomatedWithoutRules", controls.Control{Evidence: controls.Automated}, map[string]string{a: sat}, true,
			controls.NotSatisfied, "no rule evidences this control"},
		{"AutomatedAttestationRuleAttested", controls.Control{Evidence: controls.Automated, Rules: []string{a, controls.RuleAttestation}},
			map[string]string{a: sat}, true, controls.Satisfied, "rules satisfied: activity-recorded, attestation"},
		{"AutomatedAttestationRuleNotAttested", controls.Control{Evidence: controls.Automated, Rules: []string{a, controls.RuleAttestation}},
			map[string]string{a: sat, controls.RuleAttestation: sat}, false, controls.NotSatisfied, "rule attestation: no attestation names the control"},

		{"AttestationAttested", attest, nil, true,
			controls.Satisfied, "attested that staff are trained"},
		{"AttestationNotAttested", attest, map[string]string{a: sat}, false,
			controls.NeedsAttestation, "a person must attest that staff are trained"},
		{"AttestationSupportingRuleFailsStillAttested", attestWithRules, map[string]string{a: not}, true,
			controls.Satisfied, "attested that staff are trained"},

		{"HybridBoth", hybrid, map[string]string{a: sat}, true,
			controls.Satisfied, "rule satisfied: activity-recorded; attested that reviews happen weekly"},
		{"HybridRulesOnly", hybrid, map[string]string{a: sat}, false,
			controls.NeedsAttestation, "rule satisfied: activity-recorded; a person must attest that reviews happen weekly"},
		{"HybridRuleFailsAttested", hybrid, map[string]string{a: not}, true,
			controls.NotSatisfied, "rule activity-recorded is not satisfied"},
		{"HybridRuleFailsNotAttested", hybrid, map[string]string{a: not}, false,
			controls.NotSatisfied, "rule activity-recorded is not satisfied; a person must also attest that reviews happen weekly"},
		{"HybridRuleMissing", hybrid, nil, true,
			controls.NotSatisfied, "rule activity-recorded was not evaluated"},

		{"UnknownEvidence", controls.Control{Evidence: "manual", Rules: []string{a}}, map[string]string{a: sat}, true,
			controls.NotSatisfied, `unknown evidence kind "manual"`},
	} {
		t.Run(test.name, func(t *testing.T) {
			status, reason := controls.Evaluate(test.c, test.rules, test.attested)
			if status != test.wantStatus || reason != test.wantReason {
				t.Errorf("Evaluate = %q, %q; want %q, %q", status, reason, test.wantStatus, test.wantReason)
			}
		})
	}
}

// TestEvaluateCatalogs evaluates every control of every catalog at both
// extremes: nothing evaluated and no attestation (no control may be
// satisfied), and every rule satisfied with an attestation (every control
// that applies is satisfied). Results are the same on a second call.
func TestEvaluateCatalogs(t *testing.T) {
	all := map[string]string{}
	for _, r := range controls.Rules() {
		all[r.ID] = controls.Satisfied
	}
	for _, f := range controls.Frameworks() {
		for _, ctl := range mustLoad(t, f).Controls {
			noneStatus, noneReason := controls.Evaluate(ctl, nil, false)
			allStatus, allReason := controls.Evaluate(ctl, all, true)
			var wantNone, wantAll string
			switch ctl.Evidence {
			case controls.Inapplicable:
				wantNone, wantAll = controls.NotApplicable, controls.NotApplicable
			case controls.Attestation:
				wantNone, wantAll = controls.NeedsAttestation, controls.Satisfied
			default:
				wantNone, wantAll = controls.NotSatisfied, controls.Satisfied
			}
			if noneStatus != wantNone || allStatus != wantAll {
				t.Errorf("%s %s (%s): nothing = %q, everything = %q; want %q, %q", f, ctl.ID, ctl.Evidence, noneStatus, allStatus, wantNone, wantAll)
			}
			if noneReason == "" || allReason == "" {
				t.Errorf("%s %s: empty reason", f, ctl.ID)
			}
			if s, r := controls.Evaluate(ctl, nil, false); s != noneStatus || r != noneReason {
				t.Errorf("%s %s: second evaluation differs", f, ctl.ID)
			}
		}
	}
}
