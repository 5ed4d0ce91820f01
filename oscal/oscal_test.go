package oscal

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	oscalTypes "github.com/defenseunicorns/go-oscal/src/types/oscal-1-1-3"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"aigw/controls"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenName is the golden file of a fixture's document.
func goldenName(fixture, docPath string) string {
	return filepath.Join("testdata", fixture+"_"+strings.ReplaceAll(docPath, "/", "_")+".golden")
}

func mustRender(t *testing.T, f fixture) map[string][]byte {
	t.Helper()
	docs, err := f.render()
	if err != nil {
		t.Fatalf("render %s: %v", f.name, err)
	}
	return docs
}

func TestGolden(t *testing.T) {
	for _, f := range fixtures() {
		t.Run(f.name, func(t *testing.T) {
			docs := mustRender(t, f)
			want := make(map[string]bool)
			for p, b := range docs {
				name := goldenName(f.name, p)
				want[name] = true
				if *update {
					if err := os.WriteFile(name, b, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				g, err := os.ReadFile(name)
				if err != nil {
					t.Fatalf("%s: %v (run go test ./oscal -update)", p, err)
				}
				if !bytes.Equal(b, g) {
					t.Errorf("%s differs from %s (run go test ./oscal -update and review the diff)", p, name)
				}
			}
			existing, err := filepath.Glob(filepath.Join("testdata", f.name+"_*.golden"))
			if err != nil {
				t.Fatal(err)
			}
			for _, name := range existing {
				if want[name] {
					continue
				}
				if *update {
					os.Remove(name)
					continue
				}
				t.Errorf("%s: golden file of a document Render no longer writes", name)
			}
		})
	}
}

func TestDocumentsWritten(t *testing.T) {
	for _, test := range []struct {
		f    fixture
		want []string
	}{
		{fedrampFixture(), []string{CatalogPath, AssessmentResultsPath, ComponentDefinitionPath, POAMPath, ProfilePath, SSPPath}},
		// Every assessed control satisfied: no POA&M (it needs an item).
		{aiucFixture(), []string{CatalogPath, AssessmentResultsPath, ComponentDefinitionPath, ProfilePath, SSPPath}},
	} {
		docs := mustRender(t, test.f)
		var got []string
		for p, b := range docs {
			got = append(got, p)
			if !bytes.HasSuffix(b, []byte("}\n")) || bytes.HasSuffix(b, []byte("\n\n")) {
				t.Errorf("%s/%s does not end with exactly one newline", test.f.name, p)
			}
			if !bytes.HasPrefix(b, []byte("{\n  \"")) {
				t.Errorf("%s/%s is not indented JSON", test.f.name, p)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, test.want) {
			t.Errorf("%s: documents %v; want %v", test.f.name, got, test.want)
		}
	}
}

// TestValid validates every document on its own (go-oscal and the
// referential checks), as a package (Check), and against NIST's official
// per-model schemas, independently of go-oscal.
func TestValid(t *testing.T) {
	schemas := officialSchemas(t)
	for _, f := range fixtures() {
		docs := mustRender(t, f)
		if err := Check(docs, f.sums()); err != nil {
			t.Errorf("%s: Check: %v", f.name, err)
		}
		for p, b := range docs {
			if err := Validate(p, b); err != nil {
				t.Errorf("%s: Validate(%s): %v", f.name, p, err)
			}
			var root map[string]any
			if err := json.Unmarshal(b, &root); err != nil {
				t.Fatal(err)
			}
			var model string
			for k := range root {
				model = k
			}
			sch := schemas[model]
			if sch == nil {
				t.Fatalf("%s: no official schema for model %q", p, model)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(inst); err != nil {
				t.Errorf("%s: %s fails NIST's %s schema: %v", f.name, p, model, err)
			}
		}
	}
}

// officialSchemas compiles NIST's OSCAL 1.1.3 per-model schemas in
// testdata/schema, by model name.
func officialSchemas(t *testing.T) map[string]*jsonschema.Schema {
	t.Helper()
	out := make(map[string]*jsonschema.Schema)
	for model, file := range map[string]string{
		"catalog":                       "oscal_catalog_schema.json",
		"profile":                       "oscal_profile_schema.json",
		"component-definition":          "oscal_component_schema.json",
		"system-security-plan":          "oscal_ssp_schema.json",
		"assessment-results":            "oscal_assessment-results_schema.json",
		"plan-of-action-and-milestones": "oscal_poam_schema.json",
	} {
		fh, err := os.Open(filepath.Join("testdata", "schema", file))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(fh)
		fh.Close()
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		c := jsonschema.NewCompiler()
		url := "file:///oscal/" + file
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			t.Fatalf("compile %s: %v", file, err)
		}
		out[model] = sch
	}
	return out
}

func TestDeterministic(t *testing.T) {
	f := fedrampFixture()
	a := mustRender(t, f)
	// The same report with its rules and populations in another order.
	g := fedrampFixture()
	slices.Reverse(g.report.Rules)
	for i := range g.report.Rules {
		slices.Reverse(g.report.Rules[i].Files)
	}
	b := mustRender(t, g)
	if len(a) != len(b) {
		t.Fatalf("%d documents, then %d", len(a), len(b))
	}
	for p := range a {
		if !bytes.Equal(a[p], b[p]) {
			t.Errorf("%s: two renders of the same report differ", p)
		}
	}
}

// uuidAt returns the string at a JSON path of the document.
func uuidAt(t *testing.T, doc []byte, path ...any) string {
	t.Helper()
	var m any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	v := walkPath(t, m, path...)
	s, ok := v.(string)
	if !ok {
		t.Fatalf("%v is %T, not a string", path, v)
	}
	return s
}

func walkPath(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch p := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("at %q: %T is not an object", p, v)
			}
			v = m[p]
		case int:
			a, ok := v.([]any)
			if !ok || p >= len(a) {
				t.Fatalf("at %d: %T is not an array that long", p, v)
			}
			v = a[p]
		}
	}
	return v
}

// TestUUIDs checks which UUIDs stay the same across packages (the same
// subject) and which change (the documents and the assessment's objects).
func TestUUIDs(t *testing.T) {
	f := fedrampFixture()
	a := mustRender(t, f)
	g := fedrampFixture()
	g.report.PackageID = "8f14e45f-ceea-567a-9a36-7b6d1f2e4c3b"
	b := mustRender(t, g)

	for _, test := range []struct {
		name string
		doc  string
		path []any
		same bool
	}{
		{"component", ComponentDefinitionPath, []any{"component-definition", "components", 0, "uuid"}, true},
		{"control implementation", ComponentDefinitionPath, []any{"component-definition", "components", 0, "control-implementations", 0, "uuid"}, true},
		{"implemented requirement", ComponentDefinitionPath, []any{"component-definition", "components", 0, "control-implementations", 0, "implemented-requirements", 0, "uuid"}, true},
		{"SSP implemented requirement", SSPPath, []any{"system-security-plan", "control-implementation", "implemented-requirements", 0, "uuid"}, true},
		{"SSP this-system", SSPPath, []any{"system-security-plan", "system-implementation", "components", 0, "uuid"}, true},
		{"POA&M item", POAMPath, []any{"plan-of-action-and-milestones", "poam-items", 0, "uuid"}, true},
		{"risk", POAMPath, []any{"plan-of-action-and-milestones", "risks", 0, "uuid"}, true},
		{"tool", AssessmentResultsPath, []any{"assessment-results", "results", 0, "local-definitions", "components", 1, "uuid"}, true},
		{"catalog document", CatalogPath, []any{"catalog", "uuid"}, false},
		{"SSP document", SSPPath, []any{"system-security-plan", "uuid"}, false},
		{"AR document", AssessmentResultsPath, []any{"assessment-results", "uuid"}, false},
		{"result", AssessmentResultsPath, []any{"assessment-results", "results", 0, "uuid"}, false},
		{"observation", AssessmentResultsPath, []any{"assessment-results", "results", 0, "observations", 0, "uuid"}, false},
		{"finding", AssessmentResultsPath, []any{"assessment-results", "results", 0, "findings", 0, "uuid"}, false},
		{"evidence resource", AssessmentResultsPath, []any{"assessment-results", "back-matter", "resources", 1, "uuid"}, false},
	} {
		x, y := uuidAt(t, a[test.doc], test.path...), uuidAt(t, b[test.doc], test.path...)
		if (x == y) != test.same {
			t.Errorf("%s: uuid %s in one package, %s in another; want same=%v", test.name, x, y, test.same)
		}
		if x[14] != '5' {
			t.Errorf("%s: uuid %s is not version 5", test.name, x)
		}
	}
	comp := uuidAt(t, a[ComponentDefinitionPath], "component-definition", "components", 0, "uuid")
	if comp != uuidAt(t, a[SSPPath], "system-security-plan", "system-implementation", "components", 1, "uuid") ||
		comp != uuidAt(t, a[AssessmentResultsPath], "assessment-results", "results", 0, "local-definitions", "components", 0, "uuid") {
		t.Errorf("aigw's component has different uuids in the component definition, the SSP and the assessment results")
	}
}

func parseModels(t *testing.T, b []byte) *oscalTypes.OscalModels {
	t.Helper()
	var m oscalTypes.OscalModels
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestAssessmentResults checks what the assessment results say: one
// observation per rule and per attestation check, one finding per assessed
// control with the right state, not-applicable controls left out.
func TestAssessmentResults(t *testing.T) {
	f := fedrampFixture()
	docs := mustRender(t, f)
	ar := parseModels(t, docs[AssessmentResultsPath]).AssessmentResults
	if len(ar.Results) != 1 {
		t.Fatalf("%d results; want 1", len(ar.Results))
	}
	res := ar.Results[0]
	if !res.Start.Equal(testFrom) || res.End == nil || !res.End.Equal(testTo) {
		t.Errorf("result from %v to %v; want %v to %v", res.Start, res.End, testFrom, testTo)
	}

	// Six rules, and attestation checks for AU-11 (hybrid), AU-6 and AC-2.
	methods := map[string]string{}
	for _, o := range *res.Observations {
		methods[o.Title] = strings.Join(o.Methods, ",")
		if o.Types == nil || !slices.Equal(*o.Types, []string{"control-objective"}) {
			t.Errorf("observation %q: types %v", o.Title, o.Types)
		}
	}
	if len(methods) != 9 {
		t.Errorf("%d observations; want 9: %v", len(methods), methods)
	}
	for title, want := range map[string]string{
		"Rule ledger-integrity: Ledger integrity": "TEST",
		"Attestations naming AC-2":                "EXAMINE",
		"Attestations naming AU-11":               "EXAMINE",
	} {
		if methods[title] != want {
			t.Errorf("observation %q: methods %q; want %q", title, methods[title], want)
		}
	}

	type state struct{ state, reason string }
	got := map[string]state{}
	for _, fi := range *res.Findings {
		got[fi.Target.TargetId] = state{fi.Target.Status.State, fi.Target.Status.Reason}
		if fi.Target.Type != "objective-id" {
			t.Errorf("finding %s: target type %q", fi.Title, fi.Target.Type)
		}
	}
	want := map[string]state{
		"au-2_obj":  {"satisfied", "pass"},
		"au-9_obj":  {"satisfied", "pass"},
		"au-11_obj": {"not-satisfied", "needs-attestation"},
		"au-6_obj":  {"satisfied", "pass"},
		"ac-2_obj":  {"not-satisfied", "needs-attestation"},
		"ac-7_obj":  {"not-satisfied", "fail"},
	}
	if len(got) != len(want) {
		t.Errorf("findings %v; want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("finding %s: %v; want %v", k, got[k], w)
		}
	}
	var reviewed []string
	for _, c := range *res.ReviewedControls.ControlSelections[0].IncludeControls {
		reviewed = append(reviewed, c.ControlId)
	}
	if !slices.Equal(reviewed, []string{"au-2", "au-9", "au-11", "au-6", "ac-2", "ac-7"}) {
		t.Errorf("reviewed controls %v", reviewed)
	}
	if res.Props == nil || len(*res.Props) != 1 || (*res.Props)[0].Value != "ac-17" || !strings.Contains(res.Remarks, "AC-17") {
		t.Errorf("not-applicable AC-17 is not listed in the result: props %v, remarks %q", res.Props, res.Remarks)
	}
	if res.Risks == nil || len(*res.Risks) != 3 {
		t.Errorf("risks %v; want one per control not satisfied", res.Risks)
	}

	// Every evidence file is a back-matter resource with its hash.
	sums := f.sums()
	n := 0
	for _, r := range *ar.BackMatter.Resources {
		if r.Rlinks == nil {
			continue
		}
		n++
		l := (*r.Rlinks)[0]
		if want := "../" + r.Title; l.Href != want {
			t.Errorf("resource %s: href %q; want %q", r.Title, l.Href, want)
		}
		if h := (*l.Hashes)[0]; h.Algorithm != "SHA-256" || h.Value != sums[r.Title] {
			t.Errorf("resource %s: hash %v; want SHA-256 %s", r.Title, h, sums[r.Title])
		}
	}
	if n != len(sums) {
		t.Errorf("%d evidence resources; want %d", n, len(sums))
	}
	if !strings.HasPrefix(ar.ImportAp.Href, "#") {
		t.Errorf("import-ap %q; want a back-matter resource", ar.ImportAp.Href)
	}
}

func TestPOAM(t *testing.T) {
	docs := mustRender(t, fedrampFixture())
	p := parseModels(t, docs[POAMPath]).PlanOfActionAndMilestones
	var titles []string
	for _, it := range p.PoamItems {
		titles = append(titles, it.Title)
		if it.RelatedFindings == nil || it.RelatedRisks == nil || it.RelatedObservations == nil {
			t.Errorf("item %q lacks related findings, risks or observations", it.Title)
		}
	}
	want := []string{"AU-11: Audit Record Retention", "AC-2: Account Management", "AC-7: Unsuccessful Logon Attempts"}
	if !slices.Equal(titles, want) {
		t.Errorf("items %v; want %v", titles, want)
	}
	for _, r := range *p.Risks {
		if r.Status != "open" || r.Statement == "" {
			t.Errorf("risk %q: status %q, statement %q", r.Title, r.Status, r.Statement)
		}
	}
	if p.ImportSsp == nil || p.ImportSsp.Href != "./system-security-plan.json" {
		t.Errorf("import-ssp %v", p.ImportSsp)
	}
}

func TestSSPAndCatalog(t *testing.T) {
	docs := mustRender(t, fedrampFixture())
	ssp := parseModels(t, docs[SSPPath]).SystemSecurityPlan
	got := map[string]string{}
	for _, ir := range ssp.ControlImplementation.ImplementedRequirements {
		bc := (*ir.ByComponents)[0]
		got[ir.ControlId] = bc.ImplementationStatus.State
	}
	want := map[string]string{"au-2": "implemented", "au-9": "implemented", "au-11": "partial", "au-6": "implemented",
		"ac-2": "planned", "ac-17": "not-applicable", "ac-7": "partial"}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("SSP %s: implementation status %q; want %q", k, got[k], w)
		}
	}
	if ssp.SystemCharacteristics.SecuritySensitivityLevel != "fips-199-moderate" {
		t.Errorf("FedRAMP SSP sensitivity %q", ssp.SystemCharacteristics.SecuritySensitivityLevel)
	}
	if ssp.ImportProfile.Href != "./profile.json" {
		t.Errorf("import-profile %q", ssp.ImportProfile.Href)
	}

	// AIUC-1: the retired control is withdrawn in the catalog, excluded
	// from the profile and absent from the SSP and component definition.
	docs = mustRender(t, aiucFixture())
	cat := parseModels(t, docs[CatalogPath]).Catalog
	withdrawn := false
	for _, g := range *cat.Groups {
		for _, c := range *g.Controls {
			for _, p := range *c.Props {
				if c.ID == "e007" && p.Name == "status" && p.Value == "withdrawn" {
					withdrawn = true
				}
			}
		}
	}
	if !withdrawn || cat.Controls == nil || (*cat.Controls)[0].ID != "f001" {
		t.Errorf("catalog: e007 withdrawn %v; ungrouped controls %v", withdrawn, cat.Controls)
	}
	prof := parseModels(t, docs[ProfilePath]).Profile
	if ex := prof.Imports[0].ExcludeControls; ex == nil || !slices.Equal(*(*ex)[0].WithIds, []string{"e007"}) {
		t.Errorf("profile excludes %v; want e007", ex)
	}
	for _, p := range []string{SSPPath, ComponentDefinitionPath} {
		if bytes.Contains(docs[p], []byte(`"e007"`)) {
			t.Errorf("%s names the withdrawn control e007", p)
		}
	}
	if ssp := parseModels(t, docs[SSPPath]).SystemSecurityPlan; ssp.SystemCharacteristics.SecuritySensitivityLevel != "" {
		t.Errorf("AIUC-1 SSP has a FIPS 199 level")
	}
}

// TestRender runs the exported Render, with the controls' own rule table.
func TestRender(t *testing.T) {
	f := fedrampFixture()
	docs, err := Render(f.report, f.cat, f.sums())
	if err != nil {
		t.Fatal(err)
	}
	rule, ok := controls.RuleByID(controls.RuleIntegrity)
	if !ok || rule.Description == "" {
		t.Fatalf("controls.RuleByID(%q) = %v, %v", controls.RuleIntegrity, rule, ok)
	}
	if !bytes.Contains(docs[ComponentDefinitionPath], []byte(clean(rule.Description))) {
		t.Errorf("the component definition does not describe rule %s with the controls' description", rule.ID)
	}
}

func TestRenderErrors(t *testing.T) {
	for _, test := range []struct {
		name   string
		modify func(f *fixture) map[string]string
		want   string
	}{
		{"RuleFileMissing", func(f *fixture) map[string]string {
			s := f.sums()
			delete(s, "populations/admin-changes.jsonl")
			return s
		}, `relies on "populations/admin-changes.jsonl", which is not among the evidence files`},
		{"BadSum", func(f *fixture) map[string]string {
			s := f.sums()
			s["README.md"] = "ABC"
			return s
		}, "not lowercase hex"},
		{"UncleanPath", func(f *fixture) map[string]string {
			s := f.sums()
			s["../outside"] = s["README.md"]
			return s
		}, "not a clean relative package path"},
		{"FileNamedLikeADocument", func(f *fixture) map[string]string {
			s := f.sums()
			s[SSPPath] = s["README.md"]
			return s
		}, "has the path of an OSCAL document"},
		{"ControlMissingFromReport", func(f *fixture) map[string]string {
			f.report.Controls = f.report.Controls[1:]
			return f.sums()
		}, "AU-2 (au-2) applies but the report has no result for it"},
		{"ControlMissingFromCatalog", func(f *fixture) map[string]string {
			f.cat.Controls = f.cat.Controls[:len(f.cat.Controls)-1]
			return f.sums()
		}, `result for control "ac-7", which the catalog does not list`},
		{"BadStatus", func(f *fixture) map[string]string {
			f.report.Controls[0].Status = "partially"
			return f.sums()
		}, `AU-2 has status "partially"`},
		{"UnknownRule", func(f *fixture) map[string]string {
			f.report.Controls[0].Rules = append(f.report.Controls[0].Rules, "no-such-rule")
			return f.sums()
		}, `derives from rule "no-such-rule", which the report does not list`},
		{"ZeroTime", func(f *fixture) map[string]string {
			f.report.Generated = time.Time{}
			return f.sums()
		}, "generation time is zero"},
		{"EmptyPeriod", func(f *fixture) map[string]string {
			f.report.To = f.report.From
			return f.sums()
		}, "period is empty"},
		{"OtherFramework", func(f *fixture) map[string]string {
			f.report.Framework = controls.EUAIAct
			return f.sums()
		}, `report is for framework "eu-ai-act", catalog for "fedramp-moderate"`},
		{"DuplicateRule", func(f *fixture) map[string]string {
			f.report.Rules = append(f.report.Rules, f.report.Rules[0])
			return f.sums()
		}, "lists rule \"ledger-integrity\" twice"},
	} {
		t.Run(test.name, func(t *testing.T) {
			f := fedrampFixture()
			files := test.modify(&f)
			_, err := render(f.report, f.cat, files, describe)
			if err == nil || !strings.Contains(err.Error(), test.want) {
				t.Errorf("render: %v; want an error containing %q", err, test.want)
			}
		})
	}
}
