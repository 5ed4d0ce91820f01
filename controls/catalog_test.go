package controls_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"aigw/controls"
)

var update = flag.Bool("update", false, "rewrite data/*.json in the canonical format (TestDataFormat)")

func mustLoad(t *testing.T, framework string) *controls.Catalog {
	t.Helper()
	c, err := controls.Load(framework)
	if err != nil {
		t.Fatalf("Load(%q): %v", framework, err)
	}
	return c
}

func byID(t *testing.T, c *controls.Catalog, id string) controls.Control {
	t.Helper()
	for _, ctl := range c.Controls {
		if ctl.ID == id {
			return ctl
		}
	}
	t.Fatalf("%s: no control %q", c.Framework, id)
	return controls.Control{}
}

func TestFrameworks(t *testing.T) {
	want := []string{"nist-ai-rmf", "aiuc-1", "fedramp-moderate", "eu-ai-act"}
	got := controls.Frameworks()
	if !slices.Equal(got, want) {
		t.Fatalf("Frameworks() = %q; want %q", got, want)
	}
	got[0] = "changed"
	if controls.Frameworks()[0] != want[0] {
		t.Error("Frameworks() returns a slice shared with the package")
	}
}

func TestLoad(t *testing.T) {
	for _, test := range []struct {
		framework, version string
	}{
		{controls.NISTAIRMF, "1.0"},
		{controls.AIUC1, "2026-07-15"},
		{controls.FedRAMPModerate, "rev5"},
		{controls.EUAIAct, "2024/1689"},
	} {
		c := mustLoad(t, test.framework)
		if c.Framework != test.framework || c.Version != test.version {
			t.Errorf("Load(%q) = framework %q version %q; want %q %q", test.framework, c.Framework, c.Version, test.framework, test.version)
		}
		if !strings.HasPrefix(c.Source, "https://") || c.Title == "" {
			t.Errorf("Load(%q): title %q source %q", test.framework, c.Title, c.Source)
		}
	}
}

func TestLoadUnknownFramework(t *testing.T) {
	for _, name := range []string{"", "nist", "NIST-AI-RMF", "fedramp-high"} {
		c, err := controls.Load(name)
		if err == nil || c != nil {
			t.Fatalf("Load(%q) = %v, %v; want an error", name, c, err)
		}
		for _, f := range controls.Frameworks() {
			if !strings.Contains(err.Error(), f) {
				t.Errorf("Load(%q) error %q does not name %q", name, err, f)
			}
		}
	}
}

func TestLoadReturnsCopy(t *testing.T) {
	c := mustLoad(t, controls.FedRAMPModerate)
	au6 := byID(t, c, "AU-6")
	if len(au6.Rules) == 0 || len(au6.Params) == 0 {
		t.Fatal("AU-6 needs rules and params for this test")
	}
	for i := range c.Controls {
		if c.Controls[i].ID == "AU-6" {
			c.Controls[i].Title = "changed"
			c.Controls[i].Rules[0] = "changed"
			c.Controls[i].Params[0].Value = "changed"
		}
	}
	c.Controls = c.Controls[:1]
	c.Title = "changed"

	again := mustLoad(t, controls.FedRAMPModerate)
	got := byID(t, again, "AU-6")
	if got.Title == "changed" || got.Rules[0] == "changed" || got.Params[0].Value == "changed" || again.Title == "changed" || len(again.Controls) == 1 {
		t.Fatal("a change to a loaded catalog reached the next Load")
	}
	l, _ := controls.Lookup(controls.FedRAMPModerate, "AU-6")
	l.Rules[0] = "changed"
	if l2, _ := controls.Lookup(controls.FedRAMPModerate, "AU-6"); l2.Rules[0] == "changed" {
		t.Fatal("a change to a looked-up control reached the next Lookup")
	}
}

// oscalToken is the OSCAL TokenDatatype pattern (control-id).
var oscalToken = regexp.MustCompile(`^(\p{L}|_)(\p{L}|\p{N}|[.\-_])*$`)

// TestCatalogInvariants checks every catalog directly (not only through
// Validate): unique IDs and OSCAL IDs, OSCAL tokens, known evidence kinds,
// rules that exist, at least one rule for automated and hybrid controls, and a
// reason where one is needed.
func TestCatalogInvariants(t *testing.T) {
	evidence := map[string]bool{controls.Automated: true, controls.Attestation: true, controls.Hybrid: true, controls.Inapplicable: true}
	for _, f := range controls.Frameworks() {
		t.Run(f, func(t *testing.T) {
			c := mustLoad(t, f)
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			ids, oscalIDs := map[string]bool{}, map[string]bool{}
			for _, ctl := range c.Controls {
				if ids[ctl.ID] {
					t.Errorf("duplicate id %q", ctl.ID)
				}
				ids[ctl.ID] = true
				if oscalIDs[ctl.OSCALID] {
					t.Errorf("duplicate oscal_id %q", ctl.OSCALID)
				}
				oscalIDs[ctl.OSCALID] = true
				if !oscalToken.MatchString(ctl.OSCALID) || strings.ToLower(ctl.OSCALID) != ctl.OSCALID {
					t.Errorf("%s: oscal_id %q is not a lowercase OSCAL token", ctl.ID, ctl.OSCALID)
				}
				if ctl.Title == "" || ctl.Statement == "" || ctl.Group == "" {
					t.Errorf("%s: empty title, statement or group", ctl.ID)
				}
				if !evidence[ctl.Evidence] {
					t.Errorf("%s: evidence %q", ctl.ID, ctl.Evidence)
				}
				if (ctl.Evidence == controls.Automated || ctl.Evidence == controls.Hybrid) && len(ctl.Rules) == 0 {
					t.Errorf("%s: %s control without rules", ctl.ID, ctl.Evidence)
				}
				for _, r := range ctl.Rules {
					if _, ok := controls.RuleByID(r); !ok {
						t.Errorf("%s: unknown rule %q", ctl.ID, r)
					}
				}
				if ctl.Evidence != controls.Automated && ctl.Reason == "" {
					t.Errorf("%s: %s control without a reason", ctl.ID, ctl.Evidence)
				}
				// Every control is found by its own ID and OSCAL ID.
				for _, key := range []string{ctl.ID, ctl.OSCALID, strings.ToUpper(ctl.OSCALID)} {
					got, ok := controls.Lookup(f, key)
					if !ok || got.ID != ctl.ID {
						t.Errorf("Lookup(%q, %q) = %q, %v; want %q", f, key, got.ID, ok, ctl.ID)
					}
				}
			}
		})
	}
}

// TestEveryRuleUsed: each rule evidences at least one control of some
// catalog (RuleAttestation aside: attestations are passed to Evaluate).
func TestEveryRuleUsed(t *testing.T) {
	used := map[string]int{}
	for _, f := range controls.Frameworks() {
		for _, ctl := range mustLoad(t, f).Controls {
			for _, r := range ctl.Rules {
				used[r]++
			}
		}
	}
	for _, r := range controls.Rules() {
		if r.ID != controls.RuleAttestation && used[r.ID] == 0 {
			t.Errorf("rule %q is used by no control", r.ID)
		}
	}
}

// TestDataFormat keeps data/*.json readable and stable: each file is exactly
// its catalog re-encoded with two-space indentation (the Catalog field
// order), so that no field is unknown or lost. Run with -update to rewrite
// the files in that form after editing them.
func TestDataFormat(t *testing.T) {
	files, err := filepath.Glob("data/*.json")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, file := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(file), ".json"))
	}
	slices.Sort(names)
	want := controls.Frameworks()
	slices.Sort(want)
	if !slices.Equal(names, want) {
		t.Fatalf("data/*.json = %q; want one file per framework %q", names, want)
	}
	for _, f := range controls.Frameworks() {
		file := filepath.Join("data", f+".json")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var c controls.Catalog
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&c); err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(buf.Bytes(), b) {
			continue
		}
		if *update {
			if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote %s", file)
			continue
		}
		t.Errorf("%s is not in canonical form (run go test ./controls -run TestDataFormat -update)", file)
	}
}

func TestEvidenceCounts(t *testing.T) {
	for _, f := range controls.Frameworks() {
		count := map[string]int{}
		c := mustLoad(t, f)
		for _, ctl := range c.Controls {
			count[ctl.Evidence]++
		}
		t.Logf("%-16s %3d controls: automated %d, hybrid %d, attestation %d, not-applicable %d", f, len(c.Controls),
			count[controls.Automated], count[controls.Hybrid], count[controls.Attestation], count[controls.Inapplicable])
	}
}

func TestValidateRejects(t *testing.T) {
	valid := func() *controls.Catalog {
		return &controls.Catalog{Framework: "x", Title: "X", Version: "1", Source: "https://example.org/x", Controls: []controls.Control{
			{ID: "X-1", OSCALID: "x-1", Group: "X", Title: "One", Statement: "Do one.", Evidence: controls.Automated, Rules: []string{controls.RuleActivity}},
			{ID: "X-2", OSCALID: "x-2", Group: "X", Title: "Two", Statement: "Do two.", Evidence: controls.Hybrid, Rules: []string{controls.RuleIntegrity}, Reason: "two is done"},
			{ID: "X-3", OSCALID: "x-3", Group: "X", Title: "Three", Statement: "Do three.", Evidence: controls.Attestation, Reason: "three is done"},
			{ID: "X-4", OSCALID: "x-4", Group: "X", Title: "Four", Statement: "Gone.", Evidence: controls.Inapplicable, Reason: "retired", Retired: true},
		}}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid catalog: %v", err)
	}
	for _, test := range []struct {
		name   string
		mutate func(c *controls.Catalog)
		want   string
	}{
		{"DuplicateID", func(c *controls.Catalog) { c.Controls[1].ID = "X-1" }, "duplicate id"},
		{"DuplicateOSCALID", func(c *controls.Catalog) { c.Controls[1].OSCALID = "x-1" }, "duplicate oscal_id"},
		{"OSCALIDWithSpace", func(c *controls.Catalog) { c.Controls[0].OSCALID = "x 1" }, "not a lowercase OSCAL token"},
		{"OSCALIDUppercase", func(c *controls.Catalog) { c.Controls[0].OSCALID = "X-1" }, "not a lowercase OSCAL token"},
		{"OSCALIDLeadingDigit", func(c *controls.Catalog) { c.Controls[0].OSCALID = "1x" }, "not a lowercase OSCAL token"},
		{"EmptyStatement", func(c *controls.Catalog) { c.Controls[0].Statement = "" }, "statement are required"},
		{"AutomatedWithoutRules", func(c *controls.Catalog) { c.Controls[0].Rules = nil }, "automated control without rules"},
		{"HybridWithoutRules", func(c *controls.Catalog) { c.Controls[1].Rules = nil }, "hybrid control without rules"},
		{"UnknownRule", func(c *controls.Catalog) { c.Controls[0].Rules = []string{"no-such-rule"} }, `unknown rule "no-such-rule"`},
		{"RuleTwice", func(c *controls.Catalog) {
			c.Controls[0].Rules = []string{controls.RuleActivity, controls.RuleActivity}
		}, "listed twice"},
		{"AutomatedWithReason", func(c *controls.Catalog) { c.Controls[0].Reason = "why" }, "automated control with a reason"},
		{"AttestationWithoutReason", func(c *controls.Catalog) { c.Controls[2].Reason = "" }, "reason (what a person must attest) is required"},
		{"ReasonCapitalised", func(c *controls.Catalog) { c.Controls[2].Reason = "The thing" }, "must start in lowercase"},
		{"ReasonWithPeriod", func(c *controls.Catalog) { c.Controls[1].Reason = "two is done." }, "must not end with a period"},
		{"InapplicableWithoutReason", func(c *controls.Catalog) { c.Controls[3].Reason = "" }, "not-applicable control without a reason"},
		{"InapplicableWithRules", func(c *controls.Catalog) { c.Controls[3].Rules = []string{controls.RuleActivity} }, "not-applicable control with rules"},
		{"RetiredButApplicable", func(c *controls.Catalog) { c.Controls[2].Retired = true }, "retired control must be"},
		{"UnknownEvidence", func(c *controls.Catalog) { c.Controls[0].Evidence = "manual" }, `unknown evidence "manual"`},
		{"NoSource", func(c *controls.Catalog) { c.Source = "" }, "source are required"},
		{"NoControls", func(c *controls.Catalog) { c.Controls = nil }, "no controls"},
	} {
		t.Run(test.name, func(t *testing.T) {
			c := valid()
			test.mutate(c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), test.want) {
				t.Fatalf("Validate() = %v; want an error containing %q", err, test.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	for _, test := range []struct {
		framework, key string
		want           string // "" = not found
	}{
		{controls.NISTAIRMF, "GOVERN 1.1", "GOVERN 1.1"},
		{controls.NISTAIRMF, "govern-1.1", "GOVERN 1.1"},
		{controls.NISTAIRMF, "Govern 1.1", "GOVERN 1.1"},
		{controls.NISTAIRMF, "GV-1.1", "GOVERN 1.1"},
		{controls.NISTAIRMF, "gv 6.2", "GOVERN 6.2"},
		{controls.NISTAIRMF, "MP-3.3", "MAP 3.3"},
		{controls.NISTAIRMF, "MS-2.7", "MEASURE 2.7"},
		{controls.NISTAIRMF, "MG-4.3", "MANAGE 4.3"},
		{controls.NISTAIRMF, "MEASURE 2.1", "MEASURE 2.1"},
		{controls.NISTAIRMF, "measure-2.10", "MEASURE 2.10"},
		{controls.NISTAIRMF, "MEASURE 2.14", ""},
		{controls.NISTAIRMF, "GOVERN 1", ""},
		{controls.NISTAIRMF, "", ""},
		{controls.AIUC1, "E015", "E015"},
		{controls.AIUC1, "e015", "E015"},
		{controls.AIUC1, "E15", "E015"},
		{controls.AIUC1, "F002", "F002"},
		{controls.AIUC1, "E007", "E007"},
		{controls.AIUC1, "E018", ""},
		{controls.AIUC1, "E015.1", ""},
		{controls.FedRAMPModerate, "AU-6(1)", "AU-6(1)"},
		{controls.FedRAMPModerate, "au-6.1", "AU-6(1)"},
		{controls.FedRAMPModerate, "AU-6 (1)", "AU-6(1)"},
		{controls.FedRAMPModerate, "au-06.01", "AU-6(1)"},
		{controls.FedRAMPModerate, "AU-06(01)", "AU-6(1)"},
		{controls.FedRAMPModerate, "AU-6", "AU-6"},
		{controls.FedRAMPModerate, "ac-2.12", "AC-2(12)"},
		{controls.FedRAMPModerate, "SC-28(1)", "SC-28(1)"},
		{controls.FedRAMPModerate, "AU-10", ""},
		{controls.FedRAMPModerate, "AU-9(3)", ""},
		{controls.FedRAMPModerate, "MP-1.1", ""},
		{controls.EUAIAct, "Art. 12", "Art. 12"},
		{controls.EUAIAct, "art-12", "Art. 12"},
		{controls.EUAIAct, "Article 12", "Art. 12"},
		{controls.EUAIAct, "ART12", "Art. 12"},
		{controls.EUAIAct, "art. 73", "Art. 73"},
		{controls.EUAIAct, "Art. 1", ""},
		{controls.EUAIAct, "Art. 99", ""},
		{"no-such-framework", "AU-2", ""},
		{controls.NISTAIRMF, "AU-2", ""},
	} {
		got, ok := controls.Lookup(test.framework, test.key)
		if ok != (test.want != "") || got.ID != test.want {
			t.Errorf("Lookup(%q, %q) = %q, %v; want %q", test.framework, test.key, got.ID, ok, test.want)
		}
	}
}
