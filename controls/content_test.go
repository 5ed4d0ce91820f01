package controls_test

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"aigw/controls"
)

// wantRules fails the test unless ctl has evidence ev and lists every rule of
// rules.
func wantRules(t *testing.T, ctl controls.Control, ev string, rules ...string) {
	t.Helper()
	if ev != "" && ctl.Evidence != ev {
		t.Errorf("%s: evidence %q; want %q", ctl.ID, ctl.Evidence, ev)
	}
	for _, r := range rules {
		if !slices.Contains(ctl.Rules, r) {
			t.Errorf("%s: rules %q lack %q", ctl.ID, ctl.Rules, r)
		}
	}
}

// TestNISTAIRMFMatchesReference compares the catalog with the reference copy
// of the AI RMF Core (testdata/nist-ai-rmf.json, byte-identical to the
// project's reference file): all 72 subcategories, in order, with NIST's text.
func TestNISTAIRMFMatchesReference(t *testing.T) {
	b, err := os.ReadFile("testdata/nist-ai-rmf.json")
	if err != nil {
		t.Fatal(err)
	}
	var ref struct {
		Subcategories []struct {
			ID, Function, Text string
		}
	}
	if err := json.Unmarshal(b, &ref); err != nil {
		t.Fatal(err)
	}
	if len(ref.Subcategories) != 72 {
		t.Fatalf("reference has %d subcategories; want 72", len(ref.Subcategories))
	}
	c := mustLoad(t, controls.NISTAIRMF)
	if len(c.Controls) != len(ref.Subcategories) {
		t.Fatalf("catalog has %d controls; want %d", len(c.Controls), len(ref.Subcategories))
	}
	perFunction := map[string]int{}
	for i, s := range ref.Subcategories {
		ctl := c.Controls[i]
		if ctl.ID != s.ID || ctl.Statement != s.Text || ctl.Group != s.Function {
			t.Errorf("control %d = %q (%s) %q; want %q (%s) %q", i, ctl.ID, ctl.Group, ctl.Statement, s.ID, s.Function, s.Text)
		}
		if want := strings.ToLower(strings.ReplaceAll(s.ID, " ", "-")); ctl.OSCALID != want {
			t.Errorf("%s: oscal_id %q; want %q", s.ID, ctl.OSCALID, want)
		}
		if ctl.Title == "" || ctl.Title == ctl.Statement {
			t.Errorf("%s: title %q is not a short paraphrase", s.ID, ctl.Title)
		}
		perFunction[ctl.Group]++
	}
	if want := map[string]int{"GOVERN": 19, "MAP": 18, "MEASURE": 22, "MANAGE": 13}; fmt.Sprint(perFunction) != fmt.Sprint(want) {
		t.Errorf("subcategories per function = %v; want %v", perFunction, want)
	}
}

// TestNISTAIRMFEvidence checks the evidence kinds against the D/S/O marks of
// the compliance notes (§a): D (direct) is automated, S (supports) hybrid,
// O (organisational) attestation; and the rules that must speak to some
// subcategories.
func TestNISTAIRMFEvidence(t *testing.T) {
	direct := []string{"GOVERN 1.6", "MAP 3.3", "MAP 4.2", "MEASURE 2.4", "MEASURE 2.6", "MEASURE 2.7", "MEASURE 2.8",
		"MEASURE 2.10", "MANAGE 2.4", "MANAGE 3.1", "MANAGE 3.2", "MANAGE 4.1"}
	organisational := []string{"GOVERN 1.1", "GOVERN 1.2", "GOVERN 2.2", "GOVERN 3.1", "GOVERN 4.1", "GOVERN 4.2", "GOVERN 5.2",
		"MAP 1.1", "MAP 1.2", "MAP 1.3", "MAP 1.4", "MAP 1.6", "MAP 2.3", "MAP 3.1", "MAP 3.2", "MAP 3.4", "MAP 5.1", "MAP 5.2",
		"MEASURE 2.2", "MEASURE 2.11", "MEASURE 2.13", "MEASURE 3.2", "MEASURE 4.1", "MEASURE 4.2",
		"MANAGE 1.1", "MANAGE 1.2", "MANAGE 2.1", "MANAGE 4.2"}
	c := mustLoad(t, controls.NISTAIRMF)
	for _, ctl := range c.Controls {
		want := controls.Hybrid
		switch {
		case slices.Contains(direct, ctl.ID):
			want = controls.Automated
		case slices.Contains(organisational, ctl.ID):
			want = controls.Attestation
		}
		if ctl.Evidence != want {
			t.Errorf("%s: evidence %q; want %q", ctl.ID, ctl.Evidence, want)
		}
	}
	wantRules(t, byID(t, c, "MEASURE 2.4"), controls.Automated, controls.RuleActivity, controls.RuleRecordContent, controls.RuleIntegrity)
	wantRules(t, byID(t, c, "MEASURE 2.7"), controls.Automated, controls.RuleGuardrails, controls.RuleAccessDenials, controls.RuleIntegrity)
	wantRules(t, byID(t, c, "MANAGE 2.4"), controls.Automated, controls.RuleOversight)
	wantRules(t, byID(t, c, "GOVERN 6.2"), controls.Hybrid, controls.RuleProviderResilience)
	wantRules(t, byID(t, c, "MANAGE 4.3"), controls.Hybrid, controls.RuleIncidents)
	wantRules(t, byID(t, c, "MEASURE 2.10"), controls.Automated, controls.RuleGuardrails)
	wantRules(t, byID(t, c, "MEASURE 2.8"), controls.Automated, controls.RuleRecordContent, controls.RuleIntegrity)
}

func TestAIUC1(t *testing.T) {
	var want []string
	for _, domain := range []struct {
		letter string
		n      int
	}{{"A", 8}, {"B", 10}, {"C", 12}, {"D", 4}, {"E", 17}, {"F", 2}} {
		for i := 1; i <= domain.n; i++ {
			want = append(want, fmt.Sprintf("%s%03d", domain.letter, i))
		}
	}
	if len(want) != 53 {
		t.Fatalf("test lists %d ids; want 53", len(want))
	}
	c := mustLoad(t, controls.AIUC1)
	var got []string
	for _, ctl := range c.Controls {
		got = append(got, ctl.ID)
		if ctl.OSCALID != strings.ToLower(ctl.ID) || ctl.Group != ctl.ID[:1] {
			t.Errorf("%s: oscal_id %q group %q", ctl.ID, ctl.OSCALID, ctl.Group)
		}
		retired := ctl.ID == "E007" || ctl.ID == "E014"
		if ctl.Retired != retired {
			t.Errorf("%s: retired = %v; want %v", ctl.ID, ctl.Retired, retired)
		}
		if retired && (ctl.Evidence != controls.Inapplicable || ctl.Reason != "retired from AIUC-1") {
			t.Errorf("%s: evidence %q reason %q; want %q %q", ctl.ID, ctl.Evidence, ctl.Reason, controls.Inapplicable, "retired from AIUC-1")
		}
		if !retired && ctl.Evidence == controls.Inapplicable {
			t.Errorf("%s: not applicable but not retired", ctl.ID)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("AIUC-1 ids = %q; want %q", got, want)
	}
	wantRules(t, byID(t, c, "E015"), controls.Automated, controls.RuleActivity, controls.RuleRecordContent, controls.RuleIntegrity, controls.RuleRetention)
	wantRules(t, byID(t, c, "E016"), "", controls.RuleDisclosure)
	wantRules(t, byID(t, c, "C007"), controls.Hybrid, controls.RuleApprovals)
	wantRules(t, byID(t, c, "D003"), "", controls.RuleGuardrails, controls.RuleApprovals, controls.RuleAccessDenials)
	wantRules(t, byID(t, c, "E004"), controls.Hybrid, controls.RuleAdminChanges)
	wantRules(t, byID(t, c, "E009"), "", controls.RuleProviderResilience, controls.RuleActivity)
	for _, id := range []string{"B005", "C003", "A006", "A008"} {
		wantRules(t, byID(t, c, id), "", controls.RuleGuardrails)
	}
	for _, id := range []string{"B007", "B008", "A003"} {
		wantRules(t, byID(t, c, id), "", controls.RuleAccessDenials, controls.RuleKeyLifecycle)
	}
	// Third-party testing is evidenced by the tester's report only.
	for _, id := range []string{"B001", "C010", "C011", "C012", "D002", "D004"} {
		wantRules(t, byID(t, c, id), controls.Attestation)
	}
	if byID(t, c, "E005").Title != "Document data storage security" {
		t.Errorf("E005 title %q", byID(t, c, "E005").Title)
	}
}

func TestFedRAMPModerate(t *testing.T) {
	required := []string{"AU-2", "AU-3", "AU-3(1)", "AU-4", "AU-5", "AU-6", "AU-6(1)", "AU-6(3)", "AU-7", "AU-7(1)", "AU-8",
		"AU-9", "AU-9(4)", "AU-11", "AU-12", "AC-2", "AC-2(4)", "AC-2(12)", "AC-3", "AC-4", "AC-6", "AC-6(9)", "AC-6(10)",
		"IA-2", "IA-5", "SC-8", "SC-8(1)", "SC-13", "SC-28", "SC-28(1)", "SI-4", "SI-4(2)", "SI-4(4)", "SI-4(5)", "SI-7",
		"SI-7(1)", "SI-10", "SI-11", "SI-12", "CM-3", "CM-5", "CM-6", "CM-8", "CA-5", "CA-7", "IR-4", "IR-5", "IR-6",
		"SA-9", "SR-3", "SR-5"}
	c := mustLoad(t, controls.FedRAMPModerate)
	for _, id := range required {
		ctl := byID(t, c, id)
		// OSCAL 800-53 convention: AU-6(1) -> au-6.1.
		want := strings.ToLower(strings.NewReplacer("(", ".", ")", "").Replace(id))
		if ctl.OSCALID != want {
			t.Errorf("%s: oscal_id %q; want %q", id, ctl.OSCALID, want)
		}
		if ctl.Group != id[:2] {
			t.Errorf("%s: group %q", id, ctl.Group)
		}
	}
	// High-baseline only: not in the Moderate catalog.
	for _, id := range []string{"AU-10", "AU-10(1)", "AU-9(2)", "AU-9(3)", "AU-5(1)", "AU-5(2)", "AU-12(1)"} {
		if _, ok := controls.Lookup(controls.FedRAMPModerate, id); ok {
			t.Errorf("%s is not in the FedRAMP Moderate baseline", id)
		}
	}
	for _, ctl := range c.Controls {
		// Parameters resolved, markdown links gone, no rendering debris.
		for _, line := range strings.Split(ctl.Statement, "\n") {
			for _, bad := range []string{"{{", "](#", "\\\"", "  ", " ;", ".;", "to to ", ",,", ",."} {
				if strings.Contains(strings.TrimLeft(line, " "), bad) {
					t.Errorf("%s: statement line contains %q: %q", ctl.ID, bad, line)
				}
			}
		}
	}

	param := func(id, pid string) string {
		t.Helper()
		for _, p := range byID(t, c, id).Params {
			if p.ID == pid {
				return p.Value
			}
		}
		t.Errorf("%s: no param %q", id, pid)
		return ""
	}
	for _, test := range []struct{ id, param, want string }{
		{"AU-6", "au-06_odp.01", "at least weekly"},
		{"AU-8", "au-08_odp", "one second granularity of time measurement"},
		{"AU-11", "au-11_odp", "a time period in compliance with M-21-31"},
		{"AU-2", "au-02_odp.04", "annually and whenever there is a change in the threat environment"},
		{"AC-2", "ac-02_odp.10", "quarterly for privileged access, annually for non-privileged access"},
		{"SC-13", "sc-13_odp.02", "FIPS-validated or NSA-approved cryptography"},
	} {
		if got := param(test.id, test.param); got != test.want {
			t.Errorf("%s param %s = %q; want %q", test.id, test.param, got, test.want)
		}
		if !strings.Contains(byID(t, c, test.id).Statement, test.want) {
			t.Errorf("%s: statement does not carry its parameter value %q", test.id, test.want)
		}
	}
	if v := param("AU-2", "au-02_odp.01"); !strings.Contains(v, "authentication checks") || !strings.Contains(v, "all administrator activity") {
		t.Errorf("AU-2 event types = %q", v)
	}
	if s := byID(t, c, "AU-11").Statement; !strings.Contains(s, "at least ninety days") || !strings.Contains(s, "NARA") {
		t.Errorf("AU-11 statement lacks the FedRAMP retention requirement: %q", s)
	}
	if s := byID(t, c, "AU-3").Statement; !strings.Contains(s, "f. Identity of any individuals, subjects, or objects/entities associated with the event.") {
		t.Errorf("AU-3 statement %q", s)
	}

	for _, id := range []string{"AU-2", "AU-3", "AU-12"} {
		wantRules(t, byID(t, c, id), controls.Automated, controls.RuleRecordContent)
	}
	wantRules(t, byID(t, c, "AU-2"), "", controls.RuleActivity)
	wantRules(t, byID(t, c, "AU-12"), "", controls.RuleActivity)
	wantRules(t, byID(t, c, "AU-8"), controls.Automated, controls.RuleTimestamps)
	wantRules(t, byID(t, c, "AU-9"), "", controls.RuleIntegrity)
	wantRules(t, byID(t, c, "AU-11"), "", controls.RuleRetention)
	wantRules(t, byID(t, c, "AU-5"), controls.Hybrid)
	wantRules(t, byID(t, c, "AU-6"), controls.Hybrid)
	wantRules(t, byID(t, c, "AC-2"), "", controls.RuleKeyLifecycle, controls.RuleAdminChanges)
	wantRules(t, byID(t, c, "AC-3"), "", controls.RuleAccessDenials)
	wantRules(t, byID(t, c, "CM-3"), controls.Hybrid, controls.RuleAdminChanges, controls.RuleConfigInForce)
	for _, id := range []string{"IR-4", "IR-5", "IR-6"} {
		wantRules(t, byID(t, c, id), "", controls.RuleIncidents)
	}
	for _, id := range []string{"SC-8", "SC-8(1)", "SC-13", "SC-28", "SC-28(1)"} {
		wantRules(t, byID(t, c, id), controls.Attestation)
	}
	wantRules(t, byID(t, c, "SI-4"), "", controls.RuleGuardrails, controls.RuleProviderResilience)
	wantRules(t, byID(t, c, "SI-10"), "", controls.RuleAccessDenials, controls.RuleGuardrails)
	wantRules(t, byID(t, c, "CA-7"), "", controls.RuleIntegrity, controls.RuleActivity)
}

func TestEUAIAct(t *testing.T) {
	c := mustLoad(t, controls.EUAIAct)
	for _, n := range []int{9, 11, 12, 13, 14, 15, 17, 18, 19, 20, 26, 50, 72, 73, 79, 86} {
		ctl := byID(t, c, fmt.Sprintf("Art. %d", n))
		if want := fmt.Sprintf("art-%d", n); ctl.OSCALID != want {
			t.Errorf("%s: oscal_id %q; want %q", ctl.ID, ctl.OSCALID, want)
		}
		if !strings.HasPrefix(ctl.Group, "Chapter ") {
			t.Errorf("%s: group %q", ctl.ID, ctl.Group)
		}
	}
	for _, test := range []struct{ id, text string }{
		{"Art. 12", "High-risk AI systems shall technically allow for the automatic recording of events (logs) over their lifetime"},
		{"Art. 12", "Article 26(5)"},
		{"Art. 14", "'stop' button"},
		{"Art. 19", "of at least six months"},
		{"Art. 26", "of at least six months"},
		{"Art. 50", "informed that they are interacting with an AI system"},
		{"Art. 73", "not later than 15 days"},
		{"Art. 73", "not later than two days"},
		{"Art. 73", "not later than 10 days"},
	} {
		if !strings.Contains(byID(t, c, test.id).Statement, test.text) {
			t.Errorf("%s: statement lacks %q", test.id, test.text)
		}
	}
	wantRules(t, byID(t, c, "Art. 12"), controls.Automated, controls.RuleActivity, controls.RuleRecordContent, controls.RuleTimestamps, controls.RuleIntegrity)
	wantRules(t, byID(t, c, "Art. 14"), controls.Hybrid, controls.RuleOversight, controls.RuleApprovals)
	wantRules(t, byID(t, c, "Art. 19"), "", controls.RuleRetention, controls.RuleIntegrity)
	wantRules(t, byID(t, c, "Art. 26"), "", controls.RuleRetention, controls.RuleIntegrity)
	wantRules(t, byID(t, c, "Art. 50"), "", controls.RuleDisclosure)
	wantRules(t, byID(t, c, "Art. 73"), "", controls.RuleIncidents)
	wantRules(t, byID(t, c, "Art. 13"), controls.Hybrid)
}
