package gateway

import (
	"reflect"
	"testing"
)

// TestInspectionAttrs: an inspection is one event holding its decisions,
// and its verdict is the most severe decision that is enforced (shadow
// decisions only recorded).
func TestInspectionAttrs(t *testing.T) {
	d := func(check, verdict string, shadow bool) map[string]any {
		m := map[string]any{"check": check, "stage": "input", "verdict": verdict}
		if shadow {
			m["shadow"] = true
		}
		return m
	}
	for _, tc := range []struct {
		name string
		ds   []map[string]any
		want string
	}{
		{"AllPass", []map[string]any{d("a", "pass", false), d("b", "pass", false)}, "pass"},
		{"Flag", []map[string]any{d("a", "pass", false), d("b", "flag", false), d("c", "log_only", false)}, "flag"},
		{"RedactOverFlag", []map[string]any{d("a", "flag", false), d("b", "redact", false)}, "redact"},
		{"BlockLast", []map[string]any{d("a", "redact", false), d("b", "require_approval", false), d("c", "block", false)}, "block"},
		{"ShadowBlockNotEnforced", []map[string]any{d("a", "block", true), d("b", "not_evaluated", false)}, "not_evaluated"},
		{"UnknownRanksAsFlag", []map[string]any{d("a", "approved", false), d("b", "custom", false)}, "custom"},
		{"NoVerdict", []map[string]any{{"check": "limits"}}, "pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ins := &Inspection{Events: tc.ds, Policy: "sha256:1", PolicyName: "base"}
			a := inspectionAttrs("output", ins)
			ds, _ := a["decisions"].([]any)
			if a["verdict"] != tc.want || a["stage"] != "output" || a["checks"] != len(tc.ds) || len(ds) != len(tc.ds) ||
				a["policy"] != "base" || a["policy_version"] != "sha256:1" {
				t.Fatalf("attrs %v; want verdict %s over %d decisions", a, tc.want, len(tc.ds))
			}
			for i := range ds {
				if !reflect.DeepEqual(ds[i], tc.ds[i]) {
					t.Fatalf("decision %d: %v, want %v", i, ds[i], tc.ds[i])
				}
			}
		})
	}
	// Without a policy (a rate limit alone), no policy attrs.
	a := inspectionAttrs("input", &Inspection{Events: []map[string]any{d("limits", "pass", false)}})
	if _, ok := a["policy"]; ok {
		t.Fatalf("policy attr without a policy: %v", a)
	}
	if _, ok := a["policy_version"]; ok {
		t.Fatalf("policy_version attr without a policy: %v", a)
	}
}
