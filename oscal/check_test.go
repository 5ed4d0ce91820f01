package oscal

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
)

// edit returns doc with fn applied to its JSON.
func edit(t *testing.T, doc []byte, fn func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	fn(m)
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// obj and set navigate the JSON of a document in a tamper case.
func obj(t *testing.T, v any, path ...any) map[string]any {
	t.Helper()
	m, ok := walkPath(t, v, path...).(map[string]any)
	if !ok {
		t.Fatalf("%v is not an object", path)
	}
	return m
}

const (
	freshV4 = "2b1f7a3e-4c5d-4e6f-8a9b-0c1d2e3f4a5b"
	v7      = "0192f0a0-0000-7000-8000-000000000001"
	zeroSum = "0000000000000000000000000000000000000000000000000000000000000000"
)

// TestCheckTamper breaks each kind of reference on purpose: Check must
// catch it, in the right document, with a message that says what is wrong.
func TestCheckTamper(t *testing.T) {
	f := fedrampFixture()
	docs := mustRender(t, f)
	sums := f.sums()
	if err := Check(docs, sums); err != nil {
		t.Fatalf("untampered documents: %v", err)
	}
	ar := func(m map[string]any) map[string]any { return obj(t, m, "assessment-results", "results", 0) }

	for _, test := range []struct {
		name string
		doc  string
		fn   func(m map[string]any)
		// files changes the evidence files' sums instead of a document.
		files func(s map[string]string)
		want  string
	}{
		{name: "DanglingRelatedObservation", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "findings", 0, "related-observations", 0)["observation-uuid"] = freshV4
		}, want: "observation-uuid " + freshV4 + ": no observation with this uuid in the document"},
		{name: "DanglingEvidenceHref", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "observations", 0, "relevant-evidence", 0)["href"] = "#" + freshV4
		}, want: `href "#` + freshV4 + `": no back-matter resource`},
		{name: "DanglingImportAp", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, m, "assessment-results", "import-ap")["href"] = "#" + freshV4
		}, want: "no back-matter resource " + freshV4},
		{name: "HrefToAnObservation", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			id := obj(t, ar(m), "observations", 1)["uuid"].(string)
			obj(t, ar(m), "observations", 0, "relevant-evidence", 0)["href"] = "#" + id
		}, want: "no back-matter resource"},
		{name: "DuplicateUUID", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "findings", 1)["uuid"] = obj(t, ar(m), "findings", 0)["uuid"]
		}, want: "is defined twice"},
		{name: "UUIDv7", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "findings", 0)["uuid"] = v7
		}, want: "uuid " + v7 + " is version 7; OSCAL allows versions 4 and 5 only"},
		{name: "UUIDv7Reference", doc: POAMPath, fn: func(m map[string]any) {
			obj(t, m, "plan-of-action-and-milestones", "poam-items", 0, "related-risks", 0)["risk-uuid"] = v7
		}, want: "risk-uuid: uuid " + v7 + " is version 7"},
		{name: "WrongHashInDocument", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, m, "assessment-results", "back-matter", "resources", 1, "rlinks", 0, "hashes", 0)["value"] = zeroSum
		}, want: "hash of README.md is " + zeroSum + ", but the file's SHA-256 is " + sums["README.md"]},
		{name: "EvidenceFileChanged", files: func(s map[string]string) {
			s["populations/admin-changes.jsonl"] = zeroSum
		}, doc: AssessmentResultsPath, want: "hash of populations/admin-changes.jsonl is " + sums["populations/admin-changes.jsonl"] + ", but the file's SHA-256 is " + zeroSum},
		{name: "EvidenceFileMissing", files: func(s map[string]string) {
			delete(s, "populations/guardrail-decisions.jsonl")
		}, doc: POAMPath, want: `href "../populations/guardrail-decisions.jsonl" names populations/guardrail-decisions.jsonl, which is not in the package`},
		{name: "HashAlgorithm", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, m, "assessment-results", "back-matter", "resources", 1, "rlinks", 0, "hashes", 0)["algorithm"] = "SHA-512"
		}, want: `algorithm "SHA-512" cannot be checked`},
		{name: "HrefLeavesPackage", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, m, "assessment-results", "back-matter", "resources", 1, "rlinks", 0)["href"] = "../../etc/passwd"
		}, want: `href "../../etc/passwd" leaves the package`},
		{name: "UnknownControlID", doc: SSPPath, fn: func(m map[string]any) {
			obj(t, m, "system-security-plan", "control-implementation", "implemented-requirements", 0)["control-id"] = "zz-99"
		}, want: `control-id "zz-99": no control with this id in catalog.json`},
		{name: "UnknownReviewedControl", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "reviewed-controls", "control-selections", 0, "include-controls", 0)["control-id"] = "au-99"
		}, want: `control-id "au-99": no control`},
		{name: "UnknownObjective", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "findings", 0, "target")["target-id"] = "au-2_xyz"
		}, want: `target-id "au-2_xyz": no part with this id in catalog.json`},
		{name: "UnknownParam", doc: ComponentDefinitionPath, fn: func(m map[string]any) {
			obj(t, m, "component-definition", "components", 0, "control-implementations", 0, "implemented-requirements", 2, "set-parameters", 0)["param-id"] = "au-11_odp.09"
		}, want: `param-id "au-11_odp.09": no param`},
		{name: "DanglingActor", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "observations", 0, "origins", 0, "actors", 0)["actor-uuid"] = freshV4
		}, want: "actor-uuid " + freshV4 + ": no component with this uuid"},
		{name: "ActorOfTheWrongKind", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			id := obj(t, ar(m), "findings", 0)["uuid"].(string)
			obj(t, ar(m), "observations", 0, "origins", 0, "actors", 0)["actor-uuid"] = id
		}, want: "names the finding at /assessment-results/results/0/findings/0/uuid, where a component is expected"},
		{name: "DanglingSubject", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "observations", 0, "subjects", 0)["subject-uuid"] = freshV4
		}, want: "subject-uuid " + freshV4 + ": no component"},
		{name: "DanglingByComponent", doc: SSPPath, fn: func(m map[string]any) {
			obj(t, m, "system-security-plan", "control-implementation", "implemented-requirements", 0, "by-components", 0)["component-uuid"] = freshV4
		}, want: "component-uuid " + freshV4 + ": no component"},
		{name: "DanglingRelatedFinding", doc: POAMPath, fn: func(m map[string]any) {
			obj(t, m, "plan-of-action-and-milestones", "poam-items", 0, "related-findings", 0)["finding-uuid"] = freshV4
		}, want: "finding-uuid " + freshV4 + ": no finding"},
		{name: "DanglingRelatedRisk", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "findings", 2, "related-risks", 0)["risk-uuid"] = freshV4
		}, want: "risk-uuid " + freshV4 + ": no risk"},
		{name: "ImportProfileMissing", doc: SSPPath, fn: func(m map[string]any) {
			obj(t, m, "system-security-plan", "import-profile")["href"] = "./no-profile.json"
		}, want: `href "./no-profile.json" names oscal/no-profile.json, which is not in the package`},
		{name: "CatalogSourceMissing", doc: ComponentDefinitionPath, fn: func(m map[string]any) {
			obj(t, m, "component-definition", "components", 0, "control-implementations", 0)["source"] = "../catalogue.json"
		}, want: `href "../catalogue.json" names catalogue.json, which is not in the package`},
		{name: "EmptyString", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "findings", 0)["description"] = ""
		}, want: "empty string"},
		{name: "SchemaViolation", doc: AssessmentResultsPath, fn: func(m map[string]any) {
			obj(t, ar(m), "findings", 0, "target", "status")["state"] = "partially"
		}, want: "schema:"},
		{name: "OtherOSCALVersion", doc: SSPPath, fn: func(m map[string]any) {
			obj(t, m, "system-security-plan", "metadata")["oscal-version"] = "1.1.2"
		}, want: `oscal-version is "1.1.2", want "1.1.3"`},
		{name: "CatalogMissing", doc: CatalogPath, want: "missing: the package's control ids cannot be resolved"},
		{name: "DuplicateCatalogID", doc: CatalogPath, fn: func(m map[string]any) {
			obj(t, m, "catalog", "groups", 0, "controls", 1)["id"] = "au-2"
		}, want: `id "au-2" is defined twice`},
	} {
		t.Run(test.name, func(t *testing.T) {
			d := maps.Clone(docs)
			s := maps.Clone(sums)
			switch {
			case test.files != nil:
				test.files(s)
			case test.fn != nil:
				d[test.doc] = edit(t, d[test.doc], test.fn)
			default:
				delete(d, test.doc)
			}
			err := Check(d, s)
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("Check = %v; want a *CheckError", err)
			}
			for _, p := range ce.Problems {
				if p.Path == test.doc && strings.Contains(p.Message, test.want) {
					return
				}
			}
			t.Errorf("Check found:\n%v\nwant a problem in %s containing %q", err, test.doc, test.want)
		})
	}
}

// TestValidate checks the single-document checks on their own.
func TestValidate(t *testing.T) {
	docs := mustRender(t, fedrampFixture())
	ar := docs[AssessmentResultsPath]
	if err := Validate(AssessmentResultsPath, ar); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	bad := edit(t, ar, func(m map[string]any) {
		obj(t, m, "assessment-results", "results", 0, "findings", 0, "related-observations", 0)["observation-uuid"] = freshV4
	})
	err := Validate(AssessmentResultsPath, bad)
	if err == nil || !strings.Contains(err.Error(), "oscal/assessment-results.json: /assessment-results/results/0/findings/0/related-observations/0/observation-uuid: observation-uuid") {
		t.Errorf("Validate = %v; want the dangling observation with its location", err)
	}
	for _, test := range []struct {
		name, doc, want string
	}{
		{"NotJSON", "{", "not a JSON object"},
		{"TwoModels", `{"catalog": {}, "profile": {}}`, "more than one model"},
		{"NoModel", `{}`, "no OSCAL model"},
		{"Unwrapped", `{"uuid": "` + freshV4 + `"}`, "schema:"},
	} {
		if err := Validate("x.json", []byte(test.doc)); err == nil || !strings.Contains(err.Error(), test.want) {
			t.Errorf("%s: Validate = %v; want an error containing %q", test.name, err, test.want)
		}
	}
}

func TestRelHref(t *testing.T) {
	for _, test := range []struct{ doc, target, want string }{
		{"oscal/assessment-results.json", "populations/admin-changes.jsonl", "../populations/admin-changes.jsonl"},
		{"oscal/assessment-results.json", "oscal/component-definition.json", "./component-definition.json"},
		{"oscal/profile.json", "catalog.json", "../catalog.json"},
		{"catalog.json", "oscal/profile.json", "./oscal/profile.json"},
		{"catalog.json", "README.md", "./README.md"},
		{"a/b/c.json", "a/d/e", "../d/e"},
	} {
		got := relHref(test.doc, test.target)
		if got != test.want {
			t.Errorf("relHref(%q, %q) = %q; want %q", test.doc, test.target, got, test.want)
		}
		if back, ok := resolve(test.doc, got); !ok || back != test.target {
			t.Errorf("resolve(%q, %q) = %q, %v; want %q", test.doc, got, back, ok, test.target)
		}
	}
	for _, test := range []struct {
		href   string
		target string
		ok     bool
	}{
		{"#" + freshV4, "", false},
		{"https://example.com/x", "", false},
		{"urn:uuid:" + freshV4, "", false},
		{"../../x", "", true},
		{"/etc/passwd", "", true},
		{"../catalog.json#au-2", "catalog.json", true},
	} {
		target, ok := resolve("oscal/ssp.json", test.href)
		if target != test.target || ok != test.ok {
			t.Errorf("resolve(%q) = %q, %v; want %q, %v", test.href, target, ok, test.target, test.ok)
		}
	}
}
