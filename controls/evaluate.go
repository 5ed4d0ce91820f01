package controls

import (
	"fmt"
	"strings"
)

// Evaluate derives a control's status from its rules' results and whether an
// attestation names it. rule maps a rule id to [Satisfied] or [NotSatisfied];
// a rule of the control missing from the map was not evaluated and counts as
// not satisfied, as does any other value. [RuleAttestation], if a control
// lists it, is decided by attested. The same arguments always give the same
// status and reason:
//
//   - [Inapplicable]: [NotApplicable], with the control's Reason.
//   - [Automated]: [Satisfied] when every rule of the control is satisfied,
//     else [NotSatisfied], the reason naming each failing rule in the
//     control's order. Attestations are not needed.
//   - [Attestation]: [Satisfied] when attested, else [NeedsAttestation], the
//     reason saying what a person must attest (the control's Reason). The
//     control's rules, if any, are supporting evidence and do not decide.
//   - [Hybrid]: [NotSatisfied] when a rule fails; [NeedsAttestation] when the
//     rules hold but no attestation names the control; [Satisfied] when both
//     hold.
func Evaluate(c Control, rule map[string]string, attested bool) (status, reason string) {
	switch c.Evidence {
	case Inapplicable:
		if c.Reason == "" {
			return NotApplicable, "not applicable"
		}
		return NotApplicable, c.Reason
	case Attestation:
		if attested {
			return Satisfied, "attested that " + c.Reason
		}
		return NeedsAttestation, "a person must attest that " + c.Reason
	case Automated, Hybrid:
		if len(c.Rules) == 0 {
			return NotSatisfied, "no rule evidences this control"
		}
		failing := failingRules(c.Rules, rule, attested)
		held := "rules satisfied: " + strings.Join(c.Rules, ", ")
		if len(c.Rules) == 1 {
			held = "rule satisfied: " + c.Rules[0]
		}
		switch {
		case len(failing) > 0 && c.Evidence == Hybrid && !attested:
			return NotSatisfied, strings.Join(failing, "; ") + "; a person must also attest that " + c.Reason
		case len(failing) > 0:
			return NotSatisfied, strings.Join(failing, "; ")
		case c.Evidence == Automated:
			return Satisfied, held
		case !attested:
			return NeedsAttestation, held + "; a person must attest that " + c.Reason
		default:
			return Satisfied, held + "; attested that " + c.Reason
		}
	default:
		return NotSatisfied, fmt.Sprintf("unknown evidence kind %q", c.Evidence)
	}
}

// failingRules says, in order, why each failing rule of ids fails.
func failingRules(ids []string, results map[string]string, attested bool) []string {
	var failing []string
	for _, id := range ids {
		if id == RuleAttestation {
			if !attested {
				failing = append(failing, "rule "+id+": no attestation names the control")
			}
			continue
		}
		switch st, ok := results[id]; {
		case !ok:
			failing = append(failing, "rule "+id+" was not evaluated")
		case st == Satisfied:
		case st == NotSatisfied:
			failing = append(failing, "rule "+id+" is not satisfied")
		default:
			failing = append(failing, fmt.Sprintf("rule %s has unknown status %q", id, st))
		}
	}
	return failing
}
