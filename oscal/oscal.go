// Package oscal renders a framework's controls (package controls) and an
// evidence report (package evidence) as the OSCAL 1.1.3 documents of an
// assessor package, with the go-oscal types, and checks them before they are
// written: NIST's JSON Schema through go-oscal's validator, plus the
// references JSON Schema cannot check (duplicate and malformed UUIDs,
// dangling uuid references and "#uuid" links, control ids missing from the
// catalog, back-matter hashes that do not match the packaged files).
//
// The documents, by package path (see evidence/PACKAGE.md):
//
//	catalog.json                             the framework's controls
//	oscal/profile.json                       the baseline: every control of the catalog but the withdrawn ones
//	oscal/component-definition.json          aigw as a component: how it evidences each control
//	oscal/system-security-plan.json          the tenant's system: implementation status per control
//	oscal/assessment-results.json            one result for the period: an observation per rule, a finding per control
//	oscal/plan-of-action-and-milestones.json one item per control not satisfied (absent when there is none)
//
// Rendering is deterministic: every UUID is a version 5 UUID derived from a
// stable name, every time comes from the report (never the wall clock), and
// every list has a fixed order, so the same report gives the same bytes.
// Objects that stand for the same subject in every package keep their UUID
// (aigw's component, the tool, the control implementations, the tenant's
// implemented requirements, POA&M items and risks, per framework, tenant
// and control); the documents and the assessment's own objects (result,
// observations, findings, back-matter resources) derive theirs from the
// package id. metadata.version is the package id, last-modified the
// report's generation time.
//
// Choices the OSCAL models leave open:
//   - The SSP imports oscal/profile.json (import-profile must name a
//     profile), which imports catalog.json.
//   - There is no assessment plan: aigw assesses continuously. The
//     assessment results' import-ap points at a back-matter resource of
//     their own that says so ("#uuid"), rather than at a document that is
//     not an assessment plan.
//   - A finding targets the control's assessment objective (part
//     "<control>_obj" in the catalog). Its state is satisfied or
//     not-satisfied; the reason says which not-satisfied it is: "fail", or
//     "needs-attestation" when only an attestation is missing.
//     Not-applicable controls get no finding; the result lists them as
//     "not-applicable" props and in its remarks.
//   - A POA&M must hold at least one item, so none is written when every
//     assessed control is satisfied.
//
// SPEC: https://pages.nist.gov/OSCAL-Reference/models/v1.1.3/complete/json-reference/
package oscal

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	oscalTypes "github.com/defenseunicorns/go-oscal/src/types/oscal-1-1-3"

	"aigw/controls"
	"aigw/evidence"
)

// OSCALVersion is the OSCAL version of every document rendered and the
// schema version they are validated against.
const OSCALVersion = "1.1.3"

// NS is the namespace of aigw's own props.
const NS = "https://aigw.dev/ns/oscal"

// Package paths of the documents.
const (
	CatalogPath             = "catalog.json"
	ProfilePath             = "oscal/profile.json"
	ComponentDefinitionPath = "oscal/component-definition.json"
	SSPPath                 = "oscal/system-security-plan.json"
	AssessmentResultsPath   = "oscal/assessment-results.json"
	POAMPath                = "oscal/plan-of-action-and-milestones.json"
)

// Render renders the OSCAL documents of an assessor package: the report r
// of the framework whose catalog is cat. files maps the package path of
// every evidence file already written (populations, proofs, checkpoints,
// evidence/report.json, ...) to the lowercase hex SHA-256 of its bytes;
// every file a rule relies on must be among them, and the assessment
// results and POA&M cite them, hashes included, in their back-matter. Rules
// are described from the controls' rule table ([controls.RuleByID]).
//
// The result maps package paths (the *Path constants) to the documents:
// indented JSON with a final newline. The POA&M is left out when every
// assessed control is satisfied: OSCAL requires a POA&M to hold at least one
// item. Render checks the documents with [Check] and never returns one
// that fails.
func Render(r *evidence.Report, cat *controls.Catalog, files map[string]string) (map[string][]byte, error) {
	return render(r, cat, files, func(id string) string {
		if rule, ok := controls.RuleByID(id); ok {
			return rule.Description
		}
		return ""
	})
}

// render is Render with the rule descriptions from describe ("" for none).
func render(r *evidence.Report, cat *controls.Catalog, files map[string]string, describe func(ruleID string) string) (map[string][]byte, error) {
	in, err := newInput(r, cat, files, describe)
	if err != nil {
		return nil, err
	}
	docs := make(map[string][]byte)
	for _, d := range []struct {
		path  string
		build func() (*oscalTypes.OscalModels, error)
	}{
		{CatalogPath, in.catalog},
		{ProfilePath, in.profile},
		{ComponentDefinitionPath, in.componentDefinition},
		{SSPPath, in.ssp},
		{AssessmentResultsPath, in.assessmentResults},
		{POAMPath, in.poam},
	} {
		m, err := d.build()
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", d.path, err)
		}
		if m == nil {
			continue
		}
		b, err := encode(m)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", d.path, err)
		}
		docs[d.path] = b
	}
	if err := Check(docs, files); err != nil {
		return nil, fmt.Errorf("rendered documents fail their checks: %w", err)
	}
	return docs, nil
}

// encode writes m as JSON indented by two spaces with a final newline,
// without HTML escaping.
func encode(m *oscalTypes.OscalModels) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// input is what the documents are rendered from, indexed and checked.
type input struct {
	r     *evidence.Report
	cat   *controls.Catalog
	files map[string]string
	// desc are the descriptions of the report's rules.
	desc map[string]string
	// rules are r.Rules by ID, ruleIDs their IDs sorted.
	rules   map[string]*evidence.RuleResult
	ruleIDs []string
	// controls are the catalog's controls, in catalog order, with their
	// results.
	controls []control
	// pops are the listed populations by file path.
	pops map[string]*evidence.Population
	// gen, from and to are the report's times in UTC.
	gen, from, to time.Time
}

// control is a catalog control and its result in the report (nil when the
// report does not list it, which only an inapplicable control may do).
type control struct {
	controls.Control
	res *evidence.ControlResult
}

// status is the control's status in the report; a control the report does
// not list, or a withdrawn one, is not applicable.
func (c control) status() string {
	if c.res == nil || c.Retired {
		return controls.NotApplicable
	}
	return c.res.Status
}

// assessed says the control is assessed: it applies to the system.
func (c control) assessed() bool { return c.status() != controls.NotApplicable }

// reason is why the control has its status.
func (c control) reason() string {
	if c.res != nil && strings.TrimSpace(c.res.Reason) != "" {
		return c.res.Reason
	}
	if strings.TrimSpace(c.Reason) != "" {
		return c.Reason
	}
	switch c.status() {
	case controls.Satisfied:
		return "Every rule of the control holds."
	case controls.NeedsAttestation:
		return "No attestation naming the control was recorded in the period."
	case controls.NotApplicable:
		return "The control does not apply to an AI gateway deployment."
	}
	return "The control's evidence does not hold."
}

// needsAttestation says an attestation is part of the control's evidence.
func (c control) needsAttestation() bool {
	if c.Evidence == controls.Attestation || c.Evidence == controls.Hybrid {
		return true
	}
	if c.res != nil {
		if len(c.res.Attestations) > 0 {
			return true
		}
		for _, id := range c.res.Rules {
			if id == controls.RuleAttestation {
				return true
			}
		}
	}
	return false
}

// ruleIDs are the rules the control's status derives from (the report's
// list, else the catalog's), attestation excluded.
func (c control) ruleIDs() []string {
	ids := c.Rules
	if c.res != nil && len(c.res.Rules) > 0 {
		ids = c.res.Rules
	}
	var out []string
	for _, id := range ids {
		if id != controls.RuleAttestation {
			out = append(out, id)
		}
	}
	return out
}

func newInput(r *evidence.Report, cat *controls.Catalog, files map[string]string, describe func(string) string) (*input, error) {
	if r == nil || cat == nil {
		return nil, errors.New("nil report or catalog")
	}
	switch {
	case r.PackageID == "":
		return nil, fmt.Errorf("report has no package id")
	case r.Tenant == "":
		return nil, fmt.Errorf("report has no tenant")
	case r.Framework != cat.Framework:
		return nil, fmt.Errorf("report is for framework %q, catalog for %q", r.Framework, cat.Framework)
	case r.From.IsZero() || r.To.IsZero() || r.Generated.IsZero():
		return nil, fmt.Errorf("report period or generation time is zero")
	case !r.From.Before(r.To):
		return nil, fmt.Errorf("report period is empty: from %s to %s", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	case len(cat.Controls) == 0:
		return nil, fmt.Errorf("catalog %q has no controls", cat.Framework)
	case strings.TrimSpace(cat.Title) == "" || strings.TrimSpace(cat.Version) == "":
		return nil, fmt.Errorf("catalog %q has no title or version", cat.Framework)
	}
	in := &input{
		r: r, cat: cat, files: files,
		desc:  make(map[string]string),
		rules: make(map[string]*evidence.RuleResult),
		pops:  make(map[string]*evidence.Population),
		gen:   r.Generated.UTC(), from: r.From.UTC(), to: r.To.UTC(),
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		sum := files[p]
		if err := checkPackagePath(p); err != nil {
			return nil, fmt.Errorf("evidence file: %w", err)
		}
		if isDocument(p) {
			return nil, fmt.Errorf("evidence file %q has the path of an OSCAL document", p)
		}
		if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size || sum != strings.ToLower(sum) {
			return nil, fmt.Errorf("evidence file %q: sha256 %q is not lowercase hex of 32 bytes", p, sum)
		}
	}
	for i := range r.Rules {
		ru := &r.Rules[i]
		if ru.ID == "" {
			return nil, fmt.Errorf("report rule %d has no id", i)
		}
		if _, dup := in.rules[ru.ID]; dup {
			return nil, fmt.Errorf("report lists rule %q twice", ru.ID)
		}
		if ru.Status != controls.Satisfied && ru.Status != controls.NotSatisfied {
			return nil, fmt.Errorf("rule %q has status %q, want %q or %q", ru.ID, ru.Status, controls.Satisfied, controls.NotSatisfied)
		}
		for _, f := range ru.Files {
			if _, ok := files[f]; !ok {
				return nil, fmt.Errorf("rule %q relies on %q, which is not among the evidence files", ru.ID, f)
			}
		}
		in.rules[ru.ID] = ru
		in.ruleIDs = append(in.ruleIDs, ru.ID)
		if d := clean(describe(ru.ID)); d != "" {
			in.desc[ru.ID] = d
		}
	}
	sort.Strings(in.ruleIDs)
	if d := clean(describe(controls.RuleAttestation)); d != "" && in.desc[controls.RuleAttestation] == "" {
		in.desc[controls.RuleAttestation] = d
	}
	for i := range r.Populations {
		p := &r.Populations[i]
		if p.File != "" {
			in.pops[p.File] = p
		}
	}

	results := make(map[string]*evidence.ControlResult)
	for i := range r.Controls {
		cr := &r.Controls[i]
		if _, dup := results[cr.OSCALID]; dup {
			return nil, fmt.Errorf("report lists control %q twice", cr.OSCALID)
		}
		results[cr.OSCALID] = cr
	}
	seen := make(map[string]bool)
	for _, c := range cat.Controls {
		if seen[c.OSCALID] {
			return nil, fmt.Errorf("catalog lists control %q twice", c.OSCALID)
		}
		seen[c.OSCALID] = true
		if c.ID == "" || c.OSCALID == "" || strings.TrimSpace(c.Title) == "" {
			return nil, fmt.Errorf("catalog control %q (%q) has no id, OSCAL id or title", c.ID, c.OSCALID)
		}
		cr := results[c.OSCALID]
		if cr == nil && !c.Retired && c.Evidence != controls.Inapplicable {
			return nil, fmt.Errorf("control %s (%s) applies but the report has no result for it", c.ID, c.OSCALID)
		}
		if cr != nil {
			switch cr.Status {
			case controls.Satisfied, controls.NotSatisfied, controls.NeedsAttestation, controls.NotApplicable:
			default:
				return nil, fmt.Errorf("control %s has status %q", c.ID, cr.Status)
			}
		}
		ctl := control{Control: c, res: cr}
		if ctl.assessed() {
			for _, id := range ctl.ruleIDs() {
				if in.rules[id] == nil {
					return nil, fmt.Errorf("control %s derives from rule %q, which the report does not list", c.ID, id)
				}
			}
		}
		in.controls = append(in.controls, ctl)
	}
	for id := range results {
		if !seen[id] {
			return nil, fmt.Errorf("report has a result for control %q, which the catalog does not list", id)
		}
	}
	return in, nil
}

// isDocument says p is the package path of an OSCAL document Render writes.
func isDocument(p string) bool {
	switch p {
	case CatalogPath, ProfilePath, ComponentDefinitionPath, SSPPath, AssessmentResultsPath, POAMPath:
		return true
	}
	return false
}

// checkPackagePath checks p is a package path as PACKAGE.md defines them.
func checkPackagePath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "." || p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "\\") {
		return fmt.Errorf("%q is not a clean relative package path", p)
	}
	return nil
}

// relHref is the href of package path target from the document at package
// path doc.
func relHref(doc, target string) string {
	from := strings.Split(path.Dir(doc), "/")
	if path.Dir(doc) == "." {
		from = nil
	}
	to := strings.Split(target, "/")
	i := 0
	for i < len(from) && i < len(to)-1 && from[i] == to[i] {
		i++
	}
	var b strings.Builder
	if i == len(from) {
		b.WriteString("./")
	}
	for range from[i:] {
		b.WriteString("../")
	}
	b.WriteString(strings.Join(to[i:], "/"))
	return b.String()
}

// id derives a version 5 UUID from the parts of a stable name.
func (in *input) id(parts ...string) string {
	return uuidFor(strings.Join(parts, "/"))
}

// pkgID derives a version 5 UUID for an object of this package only.
func (in *input) pkgID(parts ...string) string {
	return uuidFor("aigw/package/" + in.r.PackageID + "/" + strings.Join(parts, "/"))
}

// metadata is the metadata of a document of the package.
func (in *input) metadata(title string) oscalTypes.Metadata {
	m := oscalTypes.Metadata{
		Title:        title,
		LastModified: in.gen,
		Version:      in.r.PackageID,
		OscalVersion: OSCALVersion,
		Remarks: fmt.Sprintf("Generated by %s for the assessor package %s (framework %s, tenant %s, period %s to %s). "+
			"The version is the package id: every export of a different ledger state is a different package.",
			nonEmpty(in.r.Generator, "aigw"), in.r.PackageID, in.r.Framework, in.r.Tenant, stamp(in.from), stamp(in.to)),
	}
	props := []oscalTypes.Property{
		prop("framework", in.r.Framework),
		prop("package-id", in.r.PackageID),
		prop("tenant", in.r.Tenant),
	}
	if g := clean(in.r.Generator); g != "" {
		props = append(props, prop("generator", g))
	}
	m.Props = &props
	return m
}

// prop is one of aigw's props.
func prop(name, value string) oscalTypes.Property {
	return oscalTypes.Property{Name: name, Ns: NS, Value: clean(value)}
}

// clean collapses white space: OSCAL strings have no leading or trailing
// white space, and prop values no line breaks.
func clean(s string) string { return strings.Join(strings.Fields(s), " ") }

// sentence makes s a sentence: cleaned, its first letter upper case, ending
// with a full stop (or another final punctuation mark).
func sentence(s string) string {
	s = clean(s)
	if s == "" {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	s = string(unicode.ToUpper(r)) + s[n:]
	if !strings.ContainsAny(s[len(s)-1:], ".!?") {
		s += "."
	}
	return s
}

// fragment makes s a clause to follow a colon: cleaned, without a final
// full stop.
func fragment(s string) string { return strings.TrimSuffix(clean(s), ".") }

func nonEmpty(s, alt string) string {
	if s = clean(s); s != "" {
		return s
	}
	return alt
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// mediaType is the media type of an evidence file, "" when unknown.
func mediaType(p string) string {
	switch {
	case strings.HasSuffix(p, ".jsonl"):
		return "application/jsonl"
	case strings.HasSuffix(p, ".json"):
		return "application/json"
	case strings.HasSuffix(p, ".csv"):
		return "text/csv"
	case strings.HasSuffix(p, ".md"):
		return "text/markdown"
	case strings.HasPrefix(p, "checkpoints/"), strings.HasSuffix(p, ".vkey"), strings.HasSuffix(p, ".sig"):
		return "text/plain"
	}
	return ""
}

func ptr[T any](v T) *T { return &v }

// some is a pointer to s, or nil when s is empty: OSCAL arrays have at
// least one item.
func some[T any](s []T) *[]T {
	if len(s) == 0 {
		return nil
	}
	return &s
}
